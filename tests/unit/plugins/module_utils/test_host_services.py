"""host_services: stop the host services that hold the GPUs, start exactly those again (issue 8 item 4).

The systemctl calls run against the fleet twin's systemctl stand-in, so the node state really changes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._host_services import (
    HostServiceError,
    Record,
    Systemctl,
    start_order,
    start_services,
    stop_order,
    stop_services,
    unit_of,
)
from gpufleet_twin import nvml as sim

HOLDERS = ["nvidia-persistenced", "nvidia-fabricmanager", "nvidia-dcgm", "dcgm-exporter", "nvsm"]


@pytest.fixture
def node(tmp_path: Path) -> Path:
    state = tmp_path / "node" / "state.json"
    sim.create_node_state(state, {
        "name": "n1", "driver_version": "550.54.15", "gpus": [{"model": "A100-SXM4-40GB"}],
        "host_services": ["nvidia-persistenced", "nvidia-dcgm", {"name": "nvsm", "active": False}],
    })
    return state


@pytest.fixture
def systemctl(node: Path) -> tuple[Systemctl, list[list[str]]]:
    calls: list[list[str]] = []
    env = dict(os.environ, **sim.node_env(node))

    def run(argv: list[str]) -> tuple[int, str, str]:
        calls.append(argv[1:])
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
        return done.returncode, done.stdout, done.stderr

    return Systemctl("systemctl", run), calls


def active(node: Path) -> dict[str, bool]:
    return {s["name"]: s["active"] for s in sim.node_status(node)["host_services"]}


def test_unit_names_and_orders() -> None:
    assert unit_of("nvsm") == "nvsm.service" and unit_of("nvsm.service") == "nvsm.service"
    assert unit_of("nvidia-gpu-reset.target") == "nvidia-gpu-reset.target"
    assert start_order(["a", "b.service", "a.service"]) == ["a.service", "b.service"]
    assert stop_order(["a", "b"]) == ["b.service", "a.service"]


def test_stop_stops_the_running_holders_and_records_them_and_start_brings_back_exactly_those(node, systemctl, tmp_path):
    runner, calls = systemctl
    record = Record(str(tmp_path / "state" / "stopped.json"))
    stopped = stop_services(runner, record, HOLDERS)
    assert stopped["changed"] and stopped["stopped"] == ["nvidia-dcgm.service", "nvidia-persistenced.service"]
    assert stopped["not_running"] == ["nvsm.service"]
    assert stopped["not_installed"] == ["dcgm-exporter.service", "nvidia-fabricmanager.service"]
    assert stopped["to_restart"] == ["nvidia-persistenced.service", "nvidia-dcgm.service"]
    assert active(node) == {"nvidia-persistenced": False, "nvidia-dcgm": False, "nvsm": False}
    assert json.loads(Path(record.path).read_text())["stopped"] == ["nvidia-persistenced.service", "nvidia-dcgm.service"]
    sim.reset_gpu(node, 0)  # nothing holds the GPU any more

    again = stop_services(runner, record, HOLDERS)
    assert not again["changed"] and again["to_restart"] == ["nvidia-persistenced.service", "nvidia-dcgm.service"]

    calls.clear()
    started = start_services(runner, record, order=HOLDERS)
    assert started == {"changed": True, "started": ["nvidia-persistenced.service", "nvidia-dcgm.service"], "already_running": []}
    assert [c for c in calls if c[0] == "start"] == [["start", "nvidia-persistenced.service"], ["start", "nvidia-dcgm.service"]]
    assert active(node) == {"nvidia-persistenced": True, "nvidia-dcgm": True, "nvsm": False}  # nvsm stays stopped
    assert not Path(record.path).exists()
    assert start_services(runner, record, order=HOLDERS)["changed"] is False


def test_a_record_left_by_an_interrupted_run_is_started_on_the_next_run(node, systemctl, tmp_path):
    runner, _ = systemctl
    record = Record(str(tmp_path / "stopped.json"))
    stop_services(runner, record, HOLDERS)
    # The run dies here. The next run's start step starts what the first one stopped.
    result = start_services(Systemctl("systemctl", runner.run_command), Record(record.path), order=HOLDERS)
    assert result["started"] == ["nvidia-persistenced.service", "nvidia-dcgm.service"]


def test_check_mode_changes_neither_services_nor_record(node, systemctl, tmp_path):
    runner, calls = systemctl
    record = Record(str(tmp_path / "stopped.json"))
    result = stop_services(runner, record, HOLDERS, check_mode=True)
    assert result["stopped"] == ["nvidia-dcgm.service", "nvidia-persistenced.service"]
    assert all(c[0] == "show" for c in calls)
    assert active(node)["nvidia-persistenced"] and not Path(record.path).exists()


def test_a_service_running_again_after_a_reboot_just_leaves_the_record(node, systemctl, tmp_path):
    runner, _ = systemctl
    record = Record(str(tmp_path / "stopped.json"))
    stop_services(runner, record, HOLDERS)
    sim.reboot(node)  # enabled services start at boot
    result = start_services(runner, record, order=HOLDERS)
    assert result == {"changed": False, "started": [], "already_running": ["nvidia-persistenced.service", "nvidia-dcgm.service"]}
    assert not Path(record.path).exists()


def test_a_failed_stop_names_the_command(tmp_path):
    def refuse(argv):
        if argv[1] == "show":
            return 0, "LoadState=loaded\nActiveState=active\n", ""
        return 1, "", "Failed to stop nvsm.service: Access denied"

    with pytest.raises(HostServiceError, match="systemctl stop nvsm.service failed .exit 1.: Failed to stop") as failed:
        stop_services(Systemctl("systemctl", refuse), Record(str(tmp_path / "r.json")), ["nvsm"])
    assert failed.value.details["cmd"] == ["systemctl", "stop", "nvsm.service"]
    # Recorded before the stop: a retry's start step still knows about it.
    assert Record(str(tmp_path / "r.json")).read() == ["nvsm.service"]
