"""mig_mode.py: the per-GPU decision (pure) and whole runs against a simulated node.

GPU resets go through ``NvidiaSmiReset`` with the twin's nvidia-smi stand-in as ``run_command``, so the
exact argv is asserted and the reset really happens in the simulator.
"""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, TaskError
from ansible_collections.gpufleet.mig.plugins.module_utils._mig_mode import (
    NvidiaSmiReset,
    decide_mig_mode,
    reset_argv,
    reset_not_supported,
    run_mig_mode,
)
from sim_node import sim, simulated_node

GPU0 = "GPU 0 (NVIDIA A100-SXM4-40GB, 00000000:07:00.0)"
THREE_G = {"id": 2, "profile_id": 9, "profile_name": "3g.20gb", "placement": {"start": 4, "size": 4},
           "compute_instances": [{"id": 0, "profile_id": 2, "profile_name": "3g.20gb"}]}


def facts(current, pending=None, instances=(), processes=()):
    return {"index": 0, "uuid": "GPU-1", "name": "NVIDIA A100-SXM4-40GB", "pci_bus_id": "00000000:07:00.0",
            "mig_capable": True, "mig_mode": {"current": current, "pending": pending or current},
            "gpu_instances": list(instances), "processes": list(processes)}


@pytest.mark.parametrize("gpu, state, reset, expected", [
    (facts("disabled"), "enabled", False, (True, False, [])),
    (facts("disabled"), "enabled", True, (True, True, [])),
    (facts("enabled"), "enabled", True, (False, False, [])),
    # Pending already matches: never set again; only a reset (when asked) is left to do.
    (facts("disabled", "enabled"), "enabled", False, (False, False, [])),
    (facts("disabled", "enabled"), "enabled", True, (False, True, [])),
    # Disable requested earlier (pending) with instances still there: nothing to set, nothing destroyed.
    (facts("enabled", "disabled", [THREE_G]), "disabled", False, (False, False, [])),
    (facts("enabled", "enabled", [THREE_G]), "enabled", False, (False, False, [])),
])
def test_decision_sets_only_a_differing_pending_mode_and_resets_only_on_request(gpu, state, reset, expected):
    decision = decide_mig_mode(gpu, state, force=False, reset=reset)
    assert (decision.set_mode, decision.reset, [gi["id"] for gi in decision.destroy]) == expected
    assert decision.changes == any(expected[:2])


def test_disabling_with_instances_needs_force_and_never_destroys_busy_ones():
    gpu = facts("enabled", instances=[THREE_G])
    with pytest.raises(MigError) as refused:
        decide_mig_mode(gpu, "disabled")
    assert str(refused.value) == (
        "cannot disable MIG mode on %s: it has GPU instances (3g.20gb at 4:4: 3g.20gb); destroy them first "
        "(gpufleet.mig.mig_layout with layout {}) or set force=true" % GPU0)
    assert [gi["id"] for gi in decide_mig_mode(gpu, "disabled", force=True).destroy] == [2]
    busy = facts("enabled", instances=[THREE_G],
                 processes=[{"pid": 31, "name": "train.py", "gpu_instance_id": 2, "compute_instance_id": 0}])
    with pytest.raises(MigError) as in_use:
        decide_mig_mode(busy, "disabled", force=True)
    assert str(in_use.value) == (
        "cannot disable MIG mode on %s: processes run on its GPU instances: pid 31 (train.py) on GPU instance 2; "
        "force=true never destroys instances in use: stop the processes (drain the node) and re-run" % GPU0)
    # A pending disable with instances left needs force as soon as a reset would drop them.
    with pytest.raises(MigError):
        decide_mig_mode(facts("enabled", "disabled", [THREE_G]), "disabled", reset=True)


def test_a_reset_is_refused_up_front_while_processes_use_the_gpu():
    gpu = facts("disabled", processes=[{"pid": 8, "name": "python3", "gpu_instance_id": None}])
    assert decide_mig_mode(gpu, "enabled").predicted_mode() == {"current": "disabled", "pending": "enabled"}
    with pytest.raises(MigError) as refused:
        decide_mig_mode(gpu, "enabled", reset=True)
    assert str(refused.value) == (
        "cannot reset %s to activate MIG mode enabled: processes use it: pid 8 (python3); stop them (drain the "
        "node) and re-run, or set reset=false and reboot the node later" % GPU0)
    # Through the reconfigure role, the message names the variable the user sets.
    with pytest.raises(MigError, match="or set reconfigure_reset=false and reboot the node later"):
        decide_mig_mode(gpu, "enabled", reset=True, names={"reset": "reconfigure_reset"})
    assert decide_mig_mode(facts("disabled"), "enabled").predicted_mode() == {"current": "enabled",
                                                                            "pending": "enabled"}
    with pytest.raises(MigError):
        decide_mig_mode(facts("disabled"), "on")


def test_reset_command_and_not_supported_detection():
    assert reset_argv("/usr/bin/nvidia-smi", facts("disabled")) == ["/usr/bin/nvidia-smi", "-r", "-i", "00000000:07:00.0"]
    assert reset_not_supported({"rc": 3, "stdout": "", "stderr": ""})
    assert reset_not_supported({"rc": 1, "stdout": "Resetting GPU 00000000:07:00.0 is not supported.", "stderr": ""})
    assert not reset_not_supported({"rc": 255, "stdout": "In use by another client", "stderr": ""})


def test_check_mode_predicts_without_touching_the_gpu(tmp_path):
    gpus = [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled", "mig_devices": ["3g.20gb"]}]
    with simulated_node(tmp_path / "node.json", gpus=gpus) as node:
        result = run_mig_mode("disabled", force=True, reset=True, check_mode=True)
        assert node.lines(0) == ["3g.20gb at 4:4: 3g.20gb"] and node.modes() == [("enabled", "enabled")]
    gpu = result["gpus"][0]
    assert result["changed"] and gpu["actions"] == []
    assert gpu["plan"] == {"set_mode": True, "reset": True, "destroy_gpu_instances": [2]}
    assert gpu["after"] == {"current": "disabled", "pending": "disabled"}
    assert result["diff"]["after"] == {"GPU 0": {"mig_mode": {"current": "disabled", "pending": "disabled"},
                                                 "gpu_instances": []}}


def test_a_pending_change_is_reset_through_nvidia_smi_with_the_bus_id(tmp_path):
    with simulated_node(tmp_path / "node.json", gpus=[{"model": "A100-SXM4-40GB", "count": 2}],
                        clients=[{"gpu": 0, "name": "nvidia-persistenced"}, {"gpu": 1, "name": "dcgm"}]) as node:
        pending = run_mig_mode("enabled")
        assert pending["reset_required"] and node.modes() == [("disabled", "enabled")] * 2
        sim.release_gpu(node.path, 0)
        resetter = NvidiaSmiReset("/usr/bin/nvidia-smi", node.nvidia_smi)
        with pytest.raises(TaskError) as refused:
            run_mig_mode("enabled", reset=True, resetter=resetter)
        assert node.commands == [["/usr/bin/nvidia-smi", "-r", "-i", "00000000:07:00.0"],
                                 ["/usr/bin/nvidia-smi", "-r", "-i", "00000000:0F:00.0"]]
        assert node.modes() == [("enabled", "enabled"), ("disabled", "enabled")]
    details = refused.value.details
    assert str(refused.value).startswith("GPU reset of GPU 1 (NVIDIA A100-SXM4-40GB, 00000000:0F:00.0) was refused")
    assert details["changed"] and details["rc"] == 255
    assert [(gpu["index"], gpu["reset_required"], [a["action"] for a in gpu["actions"]]) for gpu in details["gpus"]] == [
        (0, False, ["reset"]), (1, True, ["reset"])]


def test_a_host_without_gpu_reset_reports_reboot_required_and_hopper_needs_no_reset(tmp_path):
    with simulated_node(tmp_path / "vm.json", gpus=[{"model": "A100-SXM4-40GB", "count": 1}],
                        passthrough_vm=True) as node:
        resetter = NvidiaSmiReset("nvidia-smi", node.nvidia_smi)
        first = run_mig_mode("enabled", reset=True, resetter=resetter)
        second = run_mig_mode("enabled", reset=True, resetter=resetter)
    assert first["changed"] and first["reboot_required"] and node.commands == [["nvidia-smi", "-r", "-i",
                                                                                 "00000000:07:00.0"]]
    assert first["gpus"][0]["actions"][0]["activation_status_text"] == "GPU requires restart"
    assert not second["changed"] and second["reboot_required"]
    assert any("only a reboot can activate it" in warning for warning in second["warnings"])
    with simulated_node(tmp_path / "h100.json", gpus=[{"model": "H100-SXM5-80GB", "count": 1}]) as node:
        hopper = run_mig_mode("enabled", reset=True, resetter=NvidiaSmiReset("nvidia-smi", node.nvidia_smi))
    assert hopper["gpus"][0]["after"] == {"current": "enabled", "pending": "enabled"} and node.commands == []


def test_explicitly_named_non_mig_gpus_are_refused_and_all_skips_them(tmp_path):
    gpus = [{"model": "Tesla-T4", "count": 1}]
    with simulated_node(tmp_path / "node.json", driver_version="550.54.15", gpus=gpus):
        skipped = run_mig_mode("enabled")
        with pytest.raises(TaskError) as refused:
            run_mig_mode("enabled", gpus=[0])
    assert not skipped["changed"] and skipped["gpus"] == []
    assert [gpu["reason"] for gpu in skipped["skipped_gpus"]] == ["not MIG-capable"]
    assert skipped["warnings"] == ["no MIG-capable GPU among the selected GPUs; nothing to do"]
    assert str(refused.value) == ("GPU 0 (Tesla T4, 00000000:07:00.0) is not MIG-capable (with driver 550.54.15); "
                                  "remove it from gpus (gpus=all skips such GPUs)")
