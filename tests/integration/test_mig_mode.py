"""gpufleet.mig.mig_mode through ansible-playbook on simulated nodes.

Every outcome is checked twice: in what the module returned, and in the simulator's own view of the node
(``SimFleet.status``), which the module cannot influence except through NVML and nvidia-smi.
The nodes are bare (``BARE_NODES``): on a real node the module runs after the rollout or the operator stopped
the host GPU clients; site.yml tests cover the default nodes that have them.
"""
from __future__ import annotations

import pytest

from fleet_harness import BARE_NODES, one_node_spec
from gpufleet_twin import nvml

pytestmark = pytest.mark.slow

A100 = "NVIDIA A100-SXM4-40GB"
GPU0 = "GPU 0 (%s, 00000000:07:00.0)" % A100
GPU1 = "GPU 1 (%s, 00000000:0F:00.0)" % A100


def mig_task(name, ignore_errors=False, **options):
    task = {"name": name, "gpufleet.mig.mig_mode": options}
    if ignore_errors:
        task["ignore_errors"] = True
    return task


def sim_modes(fleet, node="gpu-node-1"):
    return [(gpu["mig"]["current"], gpu["mig"]["pending"]) for gpu in fleet.status(node)["gpus"]]


def test_enable_reports_before_after_is_idempotent_and_skips_or_refuses_non_mig_gpus(sim_fleet):
    fleet = sim_fleet({"node_defaults": BARE_NODES, "nodes": [{"name": "gpu-node-1", "driver_version": "550.54.15", "gpus": [
        {"model": "A100-SXM4-40GB", "count": 1}, {"model": "Tesla-T4", "count": 1}]}]})

    check = fleet.play([mig_task("Predict enabling MIG", state="enabled")], check=True, diff=True)
    predicted = check.task("Predict enabling MIG")
    assert predicted.changed and not predicted.failed
    assert predicted.result["gpus"][0]["after"] == {"current": "enabled", "pending": "enabled"}
    assert predicted.result["gpus"][0]["actions"] == []
    assert predicted.result["diff"] == {
        "before": {"GPU 0": {"mig_mode": {"current": "disabled", "pending": "disabled"}, "gpu_instances": []}},
        "after": {"GPU 0": {"mig_mode": {"current": "enabled", "pending": "enabled"}, "gpu_instances": []}},
    }
    assert sim_modes(fleet) == [("disabled", "disabled"), ("disabled", "disabled")]

    run = fleet.play([mig_task("Enable MIG", state="enabled"), mig_task("Enable MIG again", state="enabled"),
                      mig_task("Enable MIG on the T4", ignore_errors=True, state="enabled", gpus=["1"])],
                     diff=True)
    first, second = run.task("Enable MIG"), run.task("Enable MIG again")
    assert first.changed and not second.changed, run.stdout
    assert [gpu["index"] for gpu in first.result["gpus"]] == [0]
    gpu = first.result["gpus"][0]
    assert (gpu["index"], gpu["name"], gpu["pci_bus_id"]) == (0, A100, "00000000:07:00.0")
    assert gpu["before"] == {"current": "disabled", "pending": "disabled"}
    assert gpu["after"] == {"current": "enabled", "pending": "enabled"}
    assert gpu["actions"] == [{"action": "set_mig_mode", "mode": "enabled", "activation_status": 0,
                               "activation_status_text": "Success"}]
    assert not first.result["reset_required"] and not first.result["reboot_required"]
    assert first.result["diff"]["after"]["GPU 0"]["mig_mode"] == {"current": "enabled", "pending": "enabled"}
    assert first.result["skipped_gpus"] == [{"index": 1, "uuid": fleet.status("gpu-node-1")["gpus"][1]["uuid"],
                                             "name": "Tesla T4", "pci_bus_id": "00000000:0F:00.0",
                                             "reason": "not MIG-capable"}]
    assert second.result["gpus"][0]["actions"] == [] and "diff" in second.result
    named = run.task("Enable MIG on the T4")
    assert named.failed and not named.changed
    assert named.msg == ("GPU 1 (Tesla T4, 00000000:0F:00.0) is not MIG-capable (with driver 550.54.15); "
                         "remove it from gpus (gpus=all skips such GPUs)")
    assert sim_modes(fleet) == [("enabled", "enabled"), ("disabled", "disabled")]


def test_pending_change_is_reported_then_reset_refused_while_in_use_then_applied(sim_fleet):
    spec = one_node_spec("A100-SXM4-40GB", host_services="none", count=2,
                         processes=[{"gpu": 0, "pid": 4242, "name": "python3", "used_memory_mib": 1024}],
                         clients=[{"gpu": 1, "name": "nvidia-persistenced"}])
    fleet = sim_fleet(spec)
    run = fleet.play([
        mig_task("Enable MIG without reset", state="enabled"),
        mig_task("Enable MIG again", state="enabled"),
        mig_task("Reset GPU 0 while a process runs", ignore_errors=True, state="enabled", gpus=["0"], reset=True),
        mig_task("Reset GPU 1 while a client holds it", ignore_errors=True, state="enabled", gpus=["1"], reset=True),
    ])
    pending = run.task("Enable MIG without reset")
    assert pending.changed and pending.result["reset_required"] and not pending.result["reboot_required"]
    for gpu in pending.result["gpus"]:
        assert gpu["after"] == {"current": "disabled", "pending": "enabled"} and gpu["reset_required"]
        assert gpu["actions"][0]["activation_status_text"] == "In use by another client"
    assert any("MIG mode enabled is pending on %s" % GPU0 in warning for warning in pending.result["warnings"])

    again = run.task("Enable MIG again")
    assert not again.changed and again.result["reset_required"]
    assert [gpu["actions"] for gpu in again.result["gpus"]] == [[], []]

    busy = run.task("Reset GPU 0 while a process runs")
    assert busy.failed and not busy.changed
    assert busy.msg == ("cannot reset %s to activate MIG mode enabled: processes use it: pid 4242 (python3); stop "
                        "them (drain the node) and re-run, or set reset=false and reboot the node later" % GPU0)

    held = run.task("Reset GPU 1 while a client holds it")
    assert held.failed and not held.changed
    assert held.msg == (
        "GPU reset of %s was refused, so MIG mode enabled stays pending on it: nvidia-smi exited 255: The following "
        "GPUs could not be reset: GPU 00000000:0F:00.0: In use by another client; stop the GPU's clients (drain the "
        "node; nvidia-persistenced, DCGM and the device plugin also hold GPUs) and re-run, or reboot the node" % GPU1)
    assert held.result["cmd"][1:] == ["-r", "-i", "00000000:0F:00.0"] and held.result["rc"] == 255
    assert held.result["gpus"][0]["reset_required"]
    assert sim_modes(fleet) == [("disabled", "enabled"), ("disabled", "enabled")]

    nvml.remove_process(fleet.state_path("gpu-node-1"), 4242)
    nvml.release_gpu(fleet.state_path("gpu-node-1"), 1)
    run = fleet.play([mig_task("Reset pending GPUs", state="enabled", reset=True),
                      mig_task("Reset pending GPUs again", state="enabled", reset=True)])
    reset = run.task("Reset pending GPUs")
    assert reset.changed and not reset.result["reset_required"], run.stdout
    for gpu in reset.result["gpus"]:
        assert gpu["before"] == {"current": "disabled", "pending": "enabled"}
        assert gpu["after"] == {"current": "enabled", "pending": "enabled"}
        assert [(action["action"], action["cmd"][1:], action["rc"]) for action in gpu["actions"]] == [
            ("reset", ["-r", "-i", gpu["pci_bus_id"]], 0)]
    assert not run.task("Reset pending GPUs again").changed
    assert sim_modes(fleet) == [("enabled", "enabled"), ("enabled", "enabled")]


def test_reboot_required_where_no_reset_exists_and_hopper_needs_no_reset(sim_fleet):
    fleet = sim_fleet({"node_defaults": BARE_NODES, "nodes": [
        {"name": "vm-node", "driver_version": "550.54.15", "passthrough_vm": True,
         "gpus": [{"model": "A100-SXM4-40GB", "count": 1}]},
        {"name": "hopper-node", "driver_version": "550.54.15", "gpus": [{"model": "H100-SXM5-80GB", "count": 1}]},
    ]})
    tasks = [mig_task("Enable MIG with reset", state="enabled", reset=True),
             mig_task("Enable MIG with reset again", state="enabled", reset=True)]
    run = fleet.play(tasks)
    vm_first, vm_again = run.task("Enable MIG with reset", "vm-node"), run.task("Enable MIG with reset again", "vm-node")
    assert vm_first.changed and not vm_first.failed
    assert vm_first.result["reboot_required"] and vm_first.result["reset_required"]
    vm_gpu = vm_first.result["gpus"][0]
    assert vm_gpu["after"] == {"current": "disabled", "pending": "enabled"}
    assert [action["action"] for action in vm_gpu["actions"]] == ["set_mig_mode"]
    assert vm_gpu["actions"][0]["activation_status"] == 16
    assert not vm_again.changed and not vm_again.failed and vm_again.result["reboot_required"]
    assert [(a["action"], a["rc"], a["failed"]) for a in vm_again.result["gpus"][0]["actions"]] == [("reset", 3, True)]

    hopper = run.task("Enable MIG with reset", "hopper-node")
    assert hopper.changed and not hopper.result["reset_required"]
    assert [action["action"] for action in hopper.result["gpus"][0]["actions"]] == ["set_mig_mode"]
    assert not run.task("Enable MIG with reset again", "hopper-node").changed
    assert sim_modes(fleet, "vm-node") == [("disabled", "enabled")]
    assert sim_modes(fleet, "hopper-node") == [("enabled", "enabled")]

    nvml.reboot(fleet.state_path("vm-node"))
    after_reboot = fleet.play([mig_task("Enable MIG after the reboot", state="enabled", reset=True)],
                              hosts="vm-node").task("Enable MIG after the reboot")
    assert not after_reboot.changed and not after_reboot.result["reboot_required"]
    assert after_reboot.result["gpus"][0]["after"] == {"current": "enabled", "pending": "enabled"}


def test_disabling_refuses_instances_without_force_and_in_use_with_force(sim_fleet):
    # Three devices made by the simulator itself (as nvidia-smi mig -cgi 9,14,19 -C would), one of them busy.
    fleet_spec = one_node_spec("A100-SXM4-40GB", host_services="none", mig_mode="enabled")
    fleet_spec["nodes"][0]["gpus"][0]["mig_devices"] = ["3g.20gb", "2g.10gb", "1g.5gb"]
    fleet = sim_fleet(fleet_spec)
    state = fleet.state_path("gpu-node-1")
    nvml.add_process(state, gpu=0, pid=777, name="trainer", used_memory_mib=2048, gi=2, ci=0)

    run = fleet.play([
        mig_task("Disable MIG", ignore_errors=True, state="disabled"),
        mig_task("Disable MIG with force", ignore_errors=True, state="disabled", force=True),
    ])
    assert run.task("Disable MIG").msg == (
        "cannot disable MIG mode on %s: it has GPU instances (2g.10gb at 0:2: 2g.10gb; 1g.5gb at 2:1: 1g.5gb; "
        "3g.20gb at 4:4: 3g.20gb); destroy them first (gpufleet.mig.mig_layout with layout {}) or set force=true" % GPU0)
    assert run.task("Disable MIG with force").msg == (
        "cannot disable MIG mode on %s: processes run on its GPU instances: pid 777 (trainer) on GPU instance 2; "
        "force=true never destroys instances in use: stop the processes (drain the node) and re-run" % GPU0)
    assert len(fleet.status("gpu-node-1")["gpus"][0]["gpu_instances"]) == 3

    nvml.remove_process(state, 777)
    run = fleet.play([
        {**mig_task("Predict disabling with force", state="disabled", force=True), "check_mode": True, "diff": True},
        mig_task("Disable with force", state="disabled", force=True),
        mig_task("Disable with force again", state="disabled", force=True),
    ])
    predicted = run.task("Predict disabling with force")
    assert predicted.changed and predicted.result["gpus"][0]["plan"]["destroy_gpu_instances"] == [2, 3, 9]
    assert predicted.result["gpus"][0]["actions"] == []
    assert predicted.result["diff"]["after"]["GPU 0"] == {"mig_mode": {"current": "disabled", "pending": "disabled"},
                                                          "gpu_instances": []}
    forced = run.task("Disable with force")
    assert forced.changed
    assert [(a["action"], a.get("gpu_instance_id")) for a in forced.result["gpus"][0]["actions"]] == [
        ("destroy_compute_instance", 2), ("destroy_gpu_instance", 2), ("destroy_compute_instance", 3),
        ("destroy_gpu_instance", 3), ("destroy_compute_instance", 9), ("destroy_gpu_instance", 9),
        ("set_mig_mode", None)]
    assert forced.result["gpus"][0]["after"] == {"current": "disabled", "pending": "disabled"}
    assert not run.task("Disable with force again").changed
    assert sim_modes(fleet) == [("disabled", "disabled")]
    assert fleet.status("gpu-node-1")["gpus"][0]["gpu_instances"] == []


def test_an_nvml_error_from_set_mig_mode_fails_the_task_and_a_rerun_converges(sim_fleet):
    fleet = sim_fleet(one_node_spec("A100-SXM4-40GB", host_services="none"))
    nvml.inject_fault(fleet.state_path("gpu-node-1"), "nvmlDeviceSetMigMode", "NO_PERMISSION", times=1)
    run = fleet.play([mig_task("Enable MIG", ignore_errors=True, state="enabled"),
                      mig_task("Enable MIG once more", state="enabled"),
                      mig_task("Enable MIG a last time", state="enabled")])
    refused = run.task("Enable MIG")
    assert refused.failed and not refused.changed
    assert refused.msg == ("setting MIG mode enabled on %s failed: nvmlDeviceSetMigMode failed on GPU 0 (enable): "
                           "Insufficient Permissions (NVML error 4)" % GPU0)
    assert (refused.result["nvml_call"], refused.result["nvml_code"]) == ("nvmlDeviceSetMigMode", 4)
    assert run.task("Enable MIG once more").changed
    assert not run.task("Enable MIG a last time").changed
    assert sim_modes(fleet) == [("enabled", "enabled")]
