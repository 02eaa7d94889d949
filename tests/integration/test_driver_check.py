"""gpufleet.mig.driver_check through ansible-playbook on simulated nodes.

One fleet holds one node per scenario, so a single playbook run checks them all; a second run, in check
mode, covers the options and shows that nothing on the nodes changes.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

A100 = [{"model": "A100-SXM4-40GB"}]
FLEET = {"cluster": False, "nodes": [
    {"name": "ready", "driver_version": "550.54.15", "gpus": A100},
    {"name": "seed-minimum", "driver_version": "450.80.02", "container_toolkit": {"version": "1.3.0"}, "gpus": A100},
    {"name": "r450-early", "driver_version": "450.51.06", "gpus": A100},
    {"name": "no-driver", "driver_version": None, "gpus": A100},
    {"name": "mixed-gpus", "driver_version": "550.54.15",
     "gpus": [{"model": "Tesla-T4"}, {"model": "A100-SXM4-40GB", "mig_mode": "enabled"}]},
    {"name": "h200-early", "driver_version": "550.54.15", "gpus": [{"model": "H200-141GB"}]},
    {"name": "old-toolkit", "driver_version": "550.54.15", "container_toolkit": {"version": "1.2.0"}, "gpus": A100},
    {"name": "no-toolkit", "driver_version": "550.54.15", "container_toolkit": None, "gpus": A100},
]}
PREFIX = "This node cannot run MIG in Kubernetes: "
NO_TOOLKIT = ("NVIDIA Container Toolkit not found: no nvidia-ctk or nvidia-container-cli command and no "
              "nvidia-container-toolkit / nvidia-container-toolkit-base / libnvidia-container-tools / nvidia-docker2 "
              "package; install the toolkit, or set check_container_toolkit: false")
T4_NOT_MIG = ("GPU 0 (Tesla T4) does not support MIG with driver 550.54.15 (NVML reports no MIG mode); leave it out "
              "with the gpus option if it is not meant for MIG")


@pytest.fixture
def fleet(sim_fleet):
    return sim_fleet(FLEET)


def test_each_node_is_accepted_or_rejected_with_an_exact_message(fleet):
    run = fleet.play([{"name": "Check MIG readiness", "gpufleet.mig.driver_check": {}}])

    def result(node):
        return run.task("Check MIG readiness", node)

    ready = result("ready")
    assert (ready.status, ready.changed) == ("ok", False)
    assert ready.result["checks"] == [
        {"name": "nvidia_driver", "ok": True, "detail": "NVIDIA driver 550.54.15 is loaded (CUDA 12.4, NVML 12.550.54.15)"},
        {"name": "driver_version", "ok": True, "detail": "NVIDIA driver 550.54.15 is at least 450.80.02 (min_driver_version)"},
        {"name": "mig_capable", "ok": True, "gpu": 0,
         "detail": "GPU 0 (NVIDIA A100-SXM4-40GB) supports MIG (mode: current disabled, pending disabled)"},
        {"name": "container_toolkit", "ok": True,
         "detail": "NVIDIA Container Toolkit 1.17.8 (from nvidia-ctk) is at least 1.3.0 (min_container_toolkit_version)"},
    ]
    assert ready.result["gpus"] == [{
        "index": 0, "uuid": fleet.status("ready")["gpus"][0]["uuid"], "name": "NVIDIA A100-SXM4-40GB",
        "pci_device_id": "0x20B010DE", "mig_capable": True, "mig_mode": {"current": "disabled", "pending": "disabled"},
        "min_driver_version": "450.80.02"}]
    assert (ready.result["driver_version"], ready.result["container_toolkit"]["version"]) == ("550.54.15", "1.17.8")

    assert not result("seed-minimum").failed  # exactly the seed document's minimums pass

    assert result("r450-early").failed
    assert result("r450-early").msg == PREFIX + (
        "NVIDIA driver 450.51.06 is older than 450.80.02, the minimum for MIG (min_driver_version); upgrade the "
        "driver; GPU 0 (A100-SXM4-40GB) does not support MIG with driver 450.51.06 (NVML reports no MIG mode); "
        "leave it out with the gpus option if it is not meant for MIG")
    assert [check["name"] for check in result("r450-early").result["checks"] if not check["ok"]] == [
        "driver_version", "mig_capable"]
    assert result("r450-early").result["driver_version"] == "450.51.06"

    assert result("no-driver").msg == PREFIX + (
        "no NVIDIA driver on this node: nvmlInit failed with Driver Not Loaded (NVML error 9); install and load the "
        "NVIDIA datacenter driver")
    assert (result("no-driver").result["driver_loaded"], result("no-driver").result["gpus"]) == (False, [])

    assert result("mixed-gpus").msg == PREFIX + T4_NOT_MIG

    assert result("h200-early").msg == PREFIX + (
        "GPU 0 (NVIDIA H200) needs NVIDIA driver 550.90.07 or newer for MIG, the H200 minimum "
        "(model_min_driver_versions); the node runs 550.54.15; GPU 0 (NVIDIA H200) does not support MIG with driver "
        "550.54.15 (NVML reports no MIG mode); leave it out with the gpus option if it is not meant for MIG")
    assert result("h200-early").result["gpus"][0]["min_driver_version"] == "550.90.07"

    assert result("old-toolkit").msg == PREFIX + (
        "NVIDIA Container Toolkit 1.2.0 (from nvidia-container-cli) is older than 1.3.0, the minimum for MIG "
        "(min_container_toolkit_version); upgrade the toolkit")

    assert result("no-toolkit").msg == PREFIX + NO_TOOLKIT

    assert all(not r.changed for r in run.results)


def test_options_in_check_mode_change_nothing(fleet):
    states_before = {node["name"]: fleet.state_path(node["name"]).read_bytes() for node in FLEET["nodes"]}
    only = "inventory_hostname == '%s'"
    run = fleet.play([
        {"name": "Skip the toolkit", "gpufleet.mig.driver_check": {"check_container_toolkit": False},
         "when": only % "no-toolkit"},
        {"name": "Check the MIG GPU only", "gpufleet.mig.driver_check": {"gpus": ["1"]}, "when": only % "mixed-gpus"},
        {"name": "Select a GPU the node lacks", "gpufleet.mig.driver_check": {"gpus": ["5"]}, "when": only % "ready"},
        {"name": "Raise the minimum driver", "gpufleet.mig.driver_check": {"min_driver_version": "550.90.07"},
         "when": only % "seed-minimum"},
        {"name": "Accept an older toolkit", "gpufleet.mig.driver_check": {"min_container_toolkit_version": "1.2.0"},
         "when": only % "old-toolkit"},
        {"name": "Reject a malformed minimum", "gpufleet.mig.driver_check": {"min_driver_version": "R450"},
         "when": only % "h200-early"},
    ], check=True, diff=True)

    skipped_toolkit = run.task("Skip the toolkit", "no-toolkit")
    assert (skipped_toolkit.status, skipped_toolkit.result["container_toolkit"]) == ("ok", None)
    assert "container_toolkit" not in [check["name"] for check in skipped_toolkit.result["checks"]]

    mig_gpu_only = run.task("Check the MIG GPU only", "mixed-gpus")
    assert (mig_gpu_only.status, [gpu["index"] for gpu in mig_gpu_only.result["gpus"]]) == ("ok", [1])

    assert run.task("Select a GPU the node lacks", "ready").msg.startswith("gpus: this node has no GPU 5; it has: 0 (GPU-")
    assert run.task("Raise the minimum driver", "seed-minimum").msg == PREFIX + (
        "NVIDIA driver 450.80.02 is older than 550.90.07, the minimum for MIG (min_driver_version); upgrade the driver")
    assert run.task("Accept an older toolkit", "old-toolkit").status == "ok"
    assert run.task("Reject a malformed minimum", "h200-early").msg == (
        "min_driver_version: 'R450' is not a version; expected dot-separated numbers such as 450.80.02 or 1.17.8")

    assert all(not r.changed and "diff" not in r.result for r in run.results)
    assert {node: fleet.state_path(node).read_bytes() for node in states_before} == states_before
