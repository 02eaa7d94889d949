"""Where the twin's tests, ``make demo`` and molecule find NVIDIA's nvidia-device-plugin chart 0.20.0.

The chart cannot be vendored into this repository, nor downloaded where the tests run, so it is provided
from outside (tests/charts/README.md):

1. ``GPUFLEET_NVIDIA_CHART``: a chart directory or a ``.tgz``;
2. else ``../shared/charts/nvidia-device-plugin-0.20.0.tgz`` beside the checkout, if present.

A ``.tgz`` must be the published artefact (its sha256 is pinned below, as NVIDIA's chart repository index
lists it); a directory must be a chart named nvidia-device-plugin at version 0.20.0 (for instance
``deployments/helm/nvidia-device-plugin`` of github.com/NVIDIA/k8s-device-plugin at tag v0.20.0, whose
``charts/`` holds node-feature-discovery 0.19.0). Anything else is an error, never a silent fallback.
Without either, ``device_plugin_chart`` answers the repository's stand-in chart and the tests that need
NVIDIA's own chart skip with ``unavailable_reason``.

``python -m gpufleet_twin.nvidia_chart [REPO_ROOT]`` prints the chart to use (NVIDIA's, else the stand-in).
"""
from __future__ import annotations

import hashlib
import os
import sys
import tarfile
from pathlib import Path

import yaml

CHART_NAME = "nvidia-device-plugin"
CHART_VERSION = "0.20.0"
# https://nvidia.github.io/k8s-device-plugin/index.yaml, entry nvidia-device-plugin 0.20.0, field digest.
CHART_URL = "https://nvidia.github.io/k8s-device-plugin/stable/nvidia-device-plugin-0.20.0.tgz"
CHART_SHA256 = "9e5642bcdd3805c6e931f9d3ca542677d1f714d68c14c1364892011e67d9a606"
ENV_VAR = "GPUFLEET_NVIDIA_CHART"
SHARED_CHART = Path("..") / "shared" / "charts" / f"{CHART_NAME}-{CHART_VERSION}.tgz"
STAND_IN = Path("tests") / "charts" / CHART_NAME


class ChartMismatch(Exception):
    """A chart was provided but is not NVIDIA's nvidia-device-plugin 0.20.0."""


def default_repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _chart_metadata(path: Path) -> dict[str, object]:
    if path.is_dir():
        chart_yaml = path / "Chart.yaml"
        return yaml.safe_load(chart_yaml.read_text()) if chart_yaml.is_file() else {}
    with tarfile.open(path) as archive:
        member = archive.extractfile(f"{CHART_NAME}/Chart.yaml")
        return yaml.safe_load(member.read()) if member is not None else {}


def verify(path: Path) -> Path:
    """``path`` if it is NVIDIA's chart 0.20.0 (checksum for a .tgz, name and version for both)."""
    if not path.exists():
        raise ChartMismatch(f"{path} does not exist")
    if path.is_file():
        actual = _sha256(path)
        if actual != CHART_SHA256:
            raise ChartMismatch(f"{path} has sha256 {actual}, not {CHART_SHA256} of {CHART_URL}")
    metadata = _chart_metadata(path)
    if (metadata.get("name"), str(metadata.get("version"))) != (CHART_NAME, CHART_VERSION):
        raise ChartMismatch(f"{path} is chart {metadata.get('name')} {metadata.get('version')}, not {CHART_NAME} {CHART_VERSION}")
    return path


def nvidia_chart(repo_root: Path | None = None) -> Path | None:
    """NVIDIA's chart where provided (verified), else None."""
    root = repo_root or default_repo_root()
    configured = os.environ.get(ENV_VAR, "").strip()
    if configured:
        return verify(Path(configured).expanduser().resolve())
    shared = (root / SHARED_CHART).resolve()
    return verify(shared) if shared.exists() else None


def unavailable_reason() -> str:
    return (
        f"NVIDIA's {CHART_NAME} chart {CHART_VERSION} is not provided: set {ENV_VAR} to the chart directory or to "
        f"{CHART_URL} (sha256 {CHART_SHA256}), or put that file at {SHARED_CHART} beside the checkout "
        "(tests/charts/README.md)"
    )


def device_plugin_chart(repo_root: Path | None = None) -> Path:
    """NVIDIA's chart when provided, else the repository's stand-in."""
    root = repo_root or default_repo_root()
    return nvidia_chart(root) or (root / STAND_IN)


def main(argv: list[str]) -> int:
    root = Path(argv[1]).resolve() if len(argv) > 1 else default_repo_root()
    try:
        print(device_plugin_chart(root))
    except ChartMismatch as wrong:
        print(f"error: {wrong}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
