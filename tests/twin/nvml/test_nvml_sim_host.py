"""Host services and kernel modules that hold a node's GPUs, and the systemctl stand-in (issue 8 item 4)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Callable

import pynvml
import pytest

from gpufleet_twin import nvml as sim
from gpufleet_twin.nvml import NodeSpecError, host
from gpufleet_twin.nvml.state import read_state

A100 = {"model": "A100-SXM4-40GB", "count": 2, "mig_mode": "disabled"}
H100 = {"model": "H100-SXM5-80GB", "count": 1, "mig_mode": "disabled"}


def systemctl(state: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **sim.node_env(state))
    return subprocess.run(["systemctl", *argv], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_dgx_preset_runs_the_services_a_dgx_node_has(make_node: Callable[..., Path]) -> None:
    status = sim.node_status(make_node([A100], host_services="dgx"))
    names = [s["name"] for s in status["host_services"]]
    assert names == ["nvidia-persistenced", "nvidia-fabricmanager", "nv_peer_mem", "nvidia-dcgm", "dcgm-exporter", "nvsm"]
    assert all(s["active"] and s["enabled"] for s in status["host_services"])


@pytest.mark.parametrize("bare", [[], "none", None])
def test_a_bare_node_has_no_holders(make_node: Callable[..., Path], bare: Any) -> None:
    state = make_node([A100], host_services=bare)
    sim.reset_gpu(state, 0)  # nothing holds it
    assert sim.node_status(state)["host_services"] == []


@pytest.mark.parametrize(
    ("gpus", "driver", "expected"),
    [
        # An 8-GPU SXM board has NVSwitch, so fabric manager runs (DGX/HGX A100, H100, H200).
        ([{"model": "A100-SXM4-80GB", "count": 8}], "550.54.15",
         ["nvidia-persistenced", "nvidia-fabricmanager", "nv_peer_mem", "nvidia-dcgm", "dcgm-exporter", "nvsm"]),
        ([{"model": "H200-141GB", "count": 8}], "550.54.15",
         ["nvidia-persistenced", "nvidia-fabricmanager", "nv_peer_mem", "nvidia-dcgm", "dcgm-exporter", "nvsm"]),
        # Fewer SXM GPUs: a 4-GPU board without NVSwitch, no fabric manager.
        ([{"model": "H100-SXM5-80GB", "count": 4}], "550.54.15",
         ["nvidia-persistenced", "nv_peer_mem", "nvidia-dcgm", "dcgm-exporter", "nvsm"]),
        # PCIe cards: persistenced and the telemetry agents only.
        ([{"model": "A30-24GB", "count": 2}], "535.129.03", ["nvidia-persistenced", "nvidia-dcgm", "dcgm-exporter"]),
        ([{"model": "Tesla-T4", "count": 1}], "535.129.03", ["nvidia-persistenced", "nvidia-dcgm", "dcgm-exporter"]),
        # Without a driver there is no persistenced and nothing that talks to the GPUs.
        ([{"model": "A100-SXM4-40GB", "count": 8}], None, []),
    ],
    ids=["hgx-a100-8", "hgx-h200-8", "hgx-h100-4", "a30-pcie", "t4-pcie", "no-driver"],
)
def test_the_default_holders_are_those_a_node_of_its_gpu_kind_has(
    make_node: Callable[..., Path], gpus: list[dict[str, Any]], driver: str | None, expected: list[str]
) -> None:
    status = sim.node_status(make_node(gpus, driver_version=driver, host_services="default"))
    assert [s["name"] for s in status["host_services"]] == expected
    assert all(s["active"] and s["enabled"] and s["holds_gpus"] for s in status["host_services"])


def test_bad_host_specs_are_refused(make_node: Callable[..., Path]) -> None:
    with pytest.raises(NodeSpecError, match="host_services"):
        make_node([A100], host_services="cray")
    with pytest.raises(NodeSpecError, match="listed twice"):
        make_node([A100], host_services=["nvsm", "nvsm.service"])
    with pytest.raises(NodeSpecError, match="kernel_modules"):
        make_node([A100], kernel_modules="nvidia_drm")


def test_a_running_holder_keeps_the_ampere_mode_change_pending_and_refuses_the_reset(
    make_node: Callable[..., Path], nvml_on: Any
) -> None:
    state = make_node([A100], host_services=["nvidia-persistenced"])
    nvml_on(state)
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    status = pynvml.nvmlDeviceSetMigMode(handle, pynvml.NVML_DEVICE_MIG_ENABLE)
    assert status == pynvml.NVML_ERROR_IN_USE
    assert pynvml.nvmlDeviceGetMigMode(handle) == [0, 1]
    with pytest.raises(sim.NvmlCallError):
        sim.reset_gpu(state, 0)
    assert systemctl(state, "stop", "nvidia-persistenced.service").returncode == 0
    sim.reset_gpu(state, 0)
    assert sim.node_status(state)["gpus"][0]["mig"] == {"current": "enabled", "pending": "enabled", "supported": True}


def test_nvidia_drm_refuses_the_reset_until_a_reboot_and_stays_loaded(make_node: Callable[..., Path]) -> None:
    state = make_node([{**A100, "mig_mode": {"current": "disabled", "pending": "enabled"}}], kernel_modules=["nvidia_drm"])
    with pytest.raises(sim.NvmlCallError):
        sim.reset_gpu(state, 0)
    sim.reboot(state)
    status = sim.node_status(state)
    assert status["gpus"][0]["mig"]["current"] == "enabled"  # A100 keeps the pending mode across a reboot
    assert status["kernel_modules"] == ["nvidia_drm"]


def test_monitoring_agents_make_gpu_instance_creation_answer_in_use(make_node: Callable[..., Path], nvml_on: Any) -> None:
    state = make_node([{**A100, "count": 1, "mig_mode": "enabled"}], host_services=["nvidia-persistenced", {"name": "nvidia-dcgm", "blocks_instance_changes": True}])
    nvml_on(state)
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    info = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE)
    with pytest.raises(pynvml.NVMLError) as refused:
        pynvml.nvmlDeviceCreateGpuInstance(handle, info.id)
    assert refused.value.value == pynvml.NVML_ERROR_IN_USE
    assert systemctl(state, "stop", "nvidia-dcgm").returncode == 0
    pynvml.nvmlDeviceCreateGpuInstance(handle, info.id)  # persistenced alone does not stop it


def test_the_initial_mig_devices_of_a_dgx_node_are_made_before_its_services_start(make_node: Callable[..., Path]) -> None:
    state = make_node([{**A100, "count": 1, "mig_mode": "enabled", "mig_devices": ["3g.20gb"]}], host_services="dgx")
    assert len(sim.node_status(state)["gpus"][0]["gpu_instances"]) == 1


def test_a_reboot_starts_the_enabled_services_again(make_node: Callable[..., Path]) -> None:
    state = make_node([H100], host_services=["nvidia-persistenced", {"name": "nvsm", "active": False}])
    assert systemctl(state, "stop", "nvidia-persistenced").returncode == 0
    sim.reboot(state)
    active = {s["name"]: s["active"] for s in sim.node_status(state)["host_services"]}
    assert active == {"nvidia-persistenced": True, "nvsm": False}


def test_the_systemctl_stand_in_answers_as_systemd(make_node: Callable[..., Path]) -> None:
    state = make_node([A100], host_services=["nvidia-persistenced", {"name": "nvsm", "active": False}])
    assert systemctl(state, "is-active", "nvidia-persistenced").stdout == "active\n"
    inactive = systemctl(state, "is-active", "nvsm.service")
    assert (inactive.returncode, inactive.stdout) == (3, "inactive\n")
    assert systemctl(state, "is-active", "--quiet", "nvidia-dcgm").returncode == 3
    shown = systemctl(state, "show", "--property=LoadState,ActiveState", "nvidia-persistenced", "nvidia-dcgm")
    assert shown.stdout == "LoadState=loaded\nActiveState=active\n\nLoadState=not-found\nActiveState=inactive\n"
    missing = systemctl(state, "start", "nvidia-dcgm")
    assert missing.returncode == 5 and "Unit nvidia-dcgm.service not found." in missing.stderr
    assert systemctl(state, "start", "nvsm").returncode == 0
    listed = systemctl(state, "list-units", "--type=service", "--no-legend", "--plain")
    assert listed.stdout.split("\n")[:2] == [
        "nvidia-persistenced.service loaded active running nvidia-persistenced",
        "nvsm.service loaded active running nvsm",
    ]
    assert systemctl(state, "daemon-reexec").returncode == 1
    assert [h["name"] for h in host.gpu_holders(read_state(state))] == ["nvidia-persistenced.service", "nvsm.service"]
