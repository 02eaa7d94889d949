"""The resolver that finds NVIDIA's nvidia-device-plugin chart for tests, the demo and molecule."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from gpufleet_twin import nvidia_chart


def _chart_dir(root: Path, name: str = "nvidia-device-plugin", version: str = "0.20.0") -> Path:
    chart = root / name
    chart.mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    return chart


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / nvidia_chart.STAND_IN).mkdir(parents=True)
    return repo


def test_without_a_provided_chart_the_stand_in_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(nvidia_chart.ENV_VAR, raising=False)
    repo = _repo(tmp_path)
    assert nvidia_chart.nvidia_chart(repo) is None
    assert nvidia_chart.device_plugin_chart(repo) == repo / nvidia_chart.STAND_IN
    assert nvidia_chart.ENV_VAR in nvidia_chart.unavailable_reason() and nvidia_chart.CHART_SHA256 in nvidia_chart.unavailable_reason()


def test_a_chart_directory_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chart = _chart_dir(tmp_path / "upstream")
    monkeypatch.setenv(nvidia_chart.ENV_VAR, str(chart))
    assert nvidia_chart.device_plugin_chart(_repo(tmp_path)) == chart


def test_a_directory_of_another_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(nvidia_chart.ENV_VAR, str(_chart_dir(tmp_path / "upstream", version="0.19.0")))
    with pytest.raises(nvidia_chart.ChartMismatch, match="not nvidia-device-plugin 0.20.0"):
        nvidia_chart.nvidia_chart(_repo(tmp_path))


def test_a_shared_tgz_with_the_wrong_checksum_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(nvidia_chart.ENV_VAR, raising=False)
    repo = _repo(tmp_path)
    shared = (repo / nvidia_chart.SHARED_CHART).resolve()
    shared.parent.mkdir(parents=True)
    payload = b"apiVersion: v2\nname: nvidia-device-plugin\nversion: 0.20.0\n"
    with tarfile.open(shared, "w:gz") as archive:
        info = tarfile.TarInfo("nvidia-device-plugin/Chart.yaml")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    with pytest.raises(nvidia_chart.ChartMismatch, match=nvidia_chart.CHART_SHA256):
        nvidia_chart.nvidia_chart(repo)
    assert nvidia_chart.main(["nvidia_chart", str(repo)]) == 1
