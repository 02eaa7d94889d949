"""mig_layout.py: whole runs against a simulated node (validation, check mode, skips, failures)."""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import ConfigError, MigError, TaskError
from ansible_collections.gpufleet.mig.plugins.module_utils._layout import DesiredGpuLayout
from ansible_collections.gpufleet.mig.plugins.module_utils._mig_layout import mode_mismatch, run_mig_layout
from ansible_collections.gpufleet.mig.plugins.module_utils._node_plan import read_and_plan_node
from sim_node import sim, simulated_node

A100 = "NVIDIA A100-SXM4-40GB"


def test_mode_mismatch_is_judged_on_the_current_mode():
    gpu = {"mig_mode": {"current": "disabled", "pending": "enabled"}}
    assert mode_mismatch(gpu, DesiredGpuLayout(True, ("1g.5gb",))) == "needs_enabled"
    assert mode_mismatch(gpu, DesiredGpuLayout(False)) is None
    gpu = {"mig_mode": {"current": "enabled", "pending": "enabled"}}
    assert mode_mismatch(gpu, DesiredGpuLayout(False)) == "needs_disabled"
    assert mode_mismatch(gpu, DesiredGpuLayout(True)) is None


def test_check_mode_returns_the_plan_and_leaves_the_gpu_alone(tmp_path):
    gpus = [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled", "mig_devices": ["1g.5gb"] * 7}]
    with simulated_node(tmp_path / "node.json", gpus=gpus) as node:
        result = run_mig_layout({"mig_config": "all-3g.20gb"}, check_mode=True)
        assert node.lines(0) == ["1g.5gb at %d:1: 1g.5gb" % slot for slot in range(7)]
    gpu = result["gpus"][0]
    assert result["changed"] and gpu["changed"] and not gpu["converged"] and gpu["actions"] == []
    assert gpu["desired_devices"] == ["3g.20gb", "3g.20gb"]
    assert len(gpu["plan"]["destroy"]) == 7 and len(gpu["plan"]["create"]) == 2
    assert result["diff"]["after"] == {"GPU 0": ["3g.20gb at 0:4: 3g.20gb", "3g.20gb at 4:4: 3g.20gb"]}
    assert [device["profile"] for device in gpu["devices"]] == ["1g.5gb"] * 7  # what the GPU has now


def test_every_gpu_with_the_wrong_mode_is_named_in_one_refusal(tmp_path):
    with simulated_node(tmp_path / "node.json", driver_version="550.54.15",
                        gpus=[{"model": "A100-SXM4-40GB", "count": 2}]) as node:
        with pytest.raises(TaskError) as refused:
            run_mig_layout({"mig_config": "all-1g.5gb"})
        assert node.modes() == [("disabled", "disabled")] * 2
    assert str(refused.value) == (
        "MIG mode is disabled on GPU 0 (%s, 00000000:07:00.0), GPU 1 (%s, 00000000:0F:00.0), but the layout wants "
        "MIG devices there; mig_layout does not change MIG mode: run gpufleet.mig.mig_mode with state=enabled (and "
        "reset=true where a change is pending) first" % (A100, A100))
    assert refused.value.details == {"changed": False, "gpus": [], "skipped_gpus": []}


def test_gpus_outside_the_layout_are_skipped_and_mig_off_as_wanted_is_converged(tmp_path):
    gpus = [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled"}, {"model": "A100-SXM4-40GB", "count": 2}]
    with simulated_node(tmp_path / "node.json", gpus=gpus) as node:
        result = run_mig_layout({"mig_layout": {"0": {"7g.40gb": 1}, "1": "disabled"}})
        again = run_mig_layout({"mig_layout": {"0": {"7g.40gb": 1}, "1": "disabled"}})
        assert node.lines(0) == ["7g.40gb at 0:8: 7g.40gb"]
    assert [(gpu["index"], gpu["changed"], gpu["mig_enabled"]) for gpu in result["gpus"]] == [
        (0, True, True), (1, False, False)]
    assert result["gpus"][1]["plan"] is None and result["gpus"][1]["devices"] == []
    assert [(gpu["index"], gpu["reason"]) for gpu in result["skipped_gpus"]] == [(2, "not in the layout")]
    assert not again["changed"] and again["gpus"][0]["converged"]


def test_in_use_skip_converges_the_idle_gpus_only(tmp_path):
    gpus = [{"model": "A100-SXM4-40GB", "count": 2, "mig_mode": "enabled", "mig_devices": ["7g.40gb"]}]
    with simulated_node(tmp_path / "node.json", gpus=gpus) as node:
        sim.add_process(node.path, gpu=1, pid=12, name="serve", gi=0, ci=0)
        with pytest.raises(TaskError) as refused:
            run_mig_layout({"mig_layout": {"3g.20gb": 2}})
        assert node.lines(0) == node.lines(1) == ["7g.40gb at 0:8: 7g.40gb"]
        with pytest.raises(TaskError) as named:
            run_mig_layout({"mig_layout": {"3g.20gb": 2}}, names={"in_use": "mig_in_use"})
        result = run_mig_layout({"mig_layout": {"3g.20gb": 2}}, in_use="skip")
        assert node.lines(0) == ["3g.20gb at 0:4: 3g.20gb", "3g.20gb at 4:4: 3g.20gb"]
        assert node.lines(1) == ["7g.40gb at 0:8: 7g.40gb"]
    assert str(refused.value) == (
        "GPU 1 (%s, 00000000:0F:00.0): the layout needs GPU instances 0 (7g.40gb at 0:8: 7g.40gb) destroyed, but "
        "processes run on them: pid 12 (serve) on GPU instance 0; stop them (drain the node) and re-run, or set "
        "in_use=skip to leave this GPU as it is" % A100)
    assert str(named.value) == str(refused.value).replace("in_use=skip", "mig_in_use=skip")
    assert [gpu["index"] for gpu in result["gpus"]] == [0]
    assert [(gpu["index"], gpu["reason"], gpu["detail"]) for gpu in result["skipped_gpus"]] == [
        (1, "in use", str(refused.value))]


def test_a_failure_half_way_reports_the_other_gpus_and_the_next_run_converges(tmp_path):
    gpus = [{"model": "A100-SXM4-40GB", "count": 2, "mig_mode": "enabled"}]
    with simulated_node(tmp_path / "node.json", gpus=gpus) as node:
        sim.inject_fault(node.path, "nvmlDeviceCreateGpuInstanceWithPlacement", "UNKNOWN", times=1, gpu=1)
        with pytest.raises(TaskError) as failed:
            run_mig_layout({"mig_config": "all-2g.10gb"})
        assert node.lines(0) == ["2g.10gb at %d:2: 2g.10gb" % start for start in (0, 2, 4)]
        assert node.lines(1) == []
        details = failed.value.details
        assert details["changed"] and details["nvml_code"] == 999
        assert [(gpu["index"], gpu["changed"], len(gpu["actions"])) for gpu in details["gpus"]] == [
            (0, True, 6), (1, False, 0)]
        assert details["failed_step"] == {"action": "create_gpu_instance", "profile": "2g.10gb", "profile_id": 14,
                                          "placement": {"start": 0, "size": 2}}
        rerun = run_mig_layout({"mig_config": "all-2g.10gb"})
        assert [gpu["changed"] for gpu in rerun["gpus"]] == [False, True]
        assert node.lines(1) == node.lines(0)


def test_source_and_option_errors_surface_as_mig_errors(tmp_path):
    with simulated_node(tmp_path / "node.json"):
        with pytest.raises(ConfigError):
            run_mig_layout({"mig_config": "no-such-config"})
        with pytest.raises(MigError) as bad_option:
            run_mig_layout({"mig_layout": {}}, in_use="kill")
    assert str(bad_option.value) == "in_use must be fail or skip, got 'kill'"


def test_a_layout_for_gpus_that_cannot_do_mig_fails_as_mig_parted_does(tmp_path):
    # An H200 on a driver before its MIG support: a silent ok/skipped would hide that nothing can happen.
    with simulated_node(tmp_path / "node.json", driver_version="550.54.15",
                        gpus=[{"model": "H200-141GB", "count": 1}]):
        for check_mode in (True, False):
            with pytest.raises(TaskError) as refused:
                run_mig_layout({"mig_layout": {"1g.18gb": 7}}, check_mode=check_mode)
            assert "the layout covers no MIG-capable GPU of this node: GPU 0 (NVIDIA H200" in str(refused.value)
            assert str(refused.value).endswith("cannot do MIG with driver 550.54.15")
            assert refused.value.details["changed"] is False


def test_busy_instances_are_refused_in_check_mode_as_in_the_real_run(tmp_path):
    gpus = [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled", "mig_devices": ["7g.40gb"]}]
    with simulated_node(tmp_path / "node.json", gpus=gpus) as node:
        sim.add_process(node.path, gpu=0, pid=12, name="serve", gi=0, ci=0)
        messages = []
        for check_mode in (True, False):
            with pytest.raises(TaskError) as refused:
                run_mig_layout({"mig_layout": {"3g.20gb": 2}}, check_mode=check_mode)
            messages.append(str(refused.value))
        assert node.lines(0) == ["7g.40gb at 0:8: 7g.40gb"]
    assert messages[0] == messages[1] and "processes run on them: pid 12 (serve)" in messages[0]


def test_the_preflight_plan_is_the_plan_applied(tmp_path):
    gpus = [{"model": "A100-SXM4-40GB", "count": 2, "mig_mode": "enabled"}]
    with simulated_node(tmp_path / "node.json", gpus=gpus) as node:
        _facts, plan = read_and_plan_node({"mig_layout": {"0": {"3g.20gb": 2}}}, "mixed")
        result = run_mig_layout(plan=plan)
        again = run_mig_layout(plan=plan)
        assert node.lines(0) == ["3g.20gb at 0:4: 3g.20gb", "3g.20gb at 4:4: 3g.20gb"] and node.lines(1) == []
    assert [(gpu["index"], gpu["changed"]) for gpu in result["gpus"]] == [(0, True)]
    assert [(gpu["index"], gpu["reason"]) for gpu in result["skipped_gpus"]] == [(1, "not in the layout")]
    assert result["gpus"][0]["plan"]["create"] == plan["gpus"][0]["plan"]["create"]
    assert not again["changed"]


def test_a_plan_made_for_other_gpus_is_refused_before_anything_changes(tmp_path):
    gpus = [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled"}]
    with simulated_node(tmp_path / "node.json", gpus=gpus) as node:
        _facts, plan = read_and_plan_node({"mig_layout": {"3g.20gb": 2}}, "mixed")
        plan["gpus"][0]["uuid"] = "GPU-00000000-0000-0000-0000-000000000000"
        with pytest.raises(MigError) as refused:
            run_mig_layout(plan=plan)
        assert node.lines(0) == []
    assert str(refused.value) == ("the GPUs of this node are not the ones the plan was made for (GPU 0 changed since): "
                                  "plan the node again (gpufleet.mig.mig_plan_info) and apply that plan")


def test_plan_info_plans_only_the_selected_gpus(tmp_path):
    gpus = [{"model": "A100-SXM4-40GB", "count": 2, "mig_mode": "enabled"}]
    with simulated_node(tmp_path / "node.json", gpus=gpus):
        _facts, plan = read_and_plan_node({"mig_layout": {"3g.20gb": 2}}, "mixed", gpus=[1])
    assert [(gpu["index"], gpu["managed"], gpu["reason"]) for gpu in plan["gpus"]] == [
        (0, False, "not in the layout"), (1, True, None)]
    assert plan["layout"] == {"1": {"3g.20gb": 2}}
