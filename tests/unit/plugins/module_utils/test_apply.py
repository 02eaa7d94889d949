"""apply.py: plans carried out through gpu.py on a simulated node, with exact step records."""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu as gpu
from ansible_collections.gpufleet.mig.plugins.module_utils._apply import ApplyError, apply_gpu_plan, destroy_gpu_instances
from ansible_collections.gpufleet.mig.plugins.module_utils._node_report import describe_step
from ansible_collections.gpufleet.mig.plugins.module_utils._planner import plan_gpu_layout
from sim_node import sim, simulated_node


def plan_and_apply(index, devices):
    catalog = gpu.read_catalog(index)
    facts = gpu.read_node_facts()["gpus"][index]
    plan = plan_gpu_layout(catalog, facts["gpu_instances"], devices)
    return plan, apply_gpu_plan(index, plan, catalog)


def test_partial_devices_share_a_gpu_instance_at_the_planned_placements(tmp_path):
    with simulated_node(tmp_path / "node.json") as node, gpu.NvmlSession():
        plan, steps = plan_and_apply(0, {"1c.3g.20gb": 3, "3g.20gb": 1})
    assert [(step["action"], step["profile"]) for step in steps] == [
        ("create_gpu_instance", "3g.20gb"), ("create_compute_instance", "3g.20gb"),
        ("create_gpu_instance", "3g.20gb"), ("create_compute_instance", "1c.3g.20gb"),
        ("create_compute_instance", "1c.3g.20gb"), ("create_compute_instance", "1c.3g.20gb")]
    creates = [step for step in steps if step["action"] == "create_gpu_instance"]
    assert [step["placement"] for step in creates] == [gi.to_dict()["placement"] for gi in plan.create]
    assert all(step["placement_source"] == "explicit" for step in creates)
    partial = [step for step in steps if step["profile"] == "1c.3g.20gb"]
    assert [step["placement"] for step in partial] == [{"start": s, "size": 1} for s in (0, 1, 2)]
    assert node.lines(0) == ["3g.20gb at 0:4: 3g.20gb", "3g.20gb at 4:4: 1c.3g.20gb, 1c.3g.20gb, 1c.3g.20gb"]


def test_without_explicit_placement_the_driver_places_largest_first(tmp_path):
    # R450 exports no nvmlDeviceCreateGpuInstanceWithPlacement: every GI is placed by the driver.
    with simulated_node(tmp_path / "node.json", driver_version="450.80.02") as node, gpu.NvmlSession():
        _, steps = plan_and_apply(0, ["1g.5gb", "2g.10gb", "3g.20gb"])
    creates = [step for step in steps if step["action"] == "create_gpu_instance"]
    assert [(s["profile"], s["gpu_instance_id"], s["placement"], s["planned_placement"], s["placement_source"])
            for s in creates] == [
        ("3g.20gb", 2, {"start": 4, "size": 4}, {"start": 0, "size": 4}, "driver"),
        ("2g.10gb", 3, {"start": 0, "size": 2}, {"start": 4, "size": 2}, "driver"),
        ("1g.5gb", 9, {"start": 2, "size": 1}, {"start": 6, "size": 1}, "driver")]
    assert node.lines(0) == ["2g.10gb at 0:2: 2g.10gb", "1g.5gb at 2:1: 1g.5gb", "3g.20gb at 4:4: 3g.20gb"]


def test_a_failed_write_reports_the_steps_done_and_leaves_them_in_place(tmp_path):
    gpus = [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled", "mig_devices": ["2g.10gb", "1g.5gb"]}]
    with simulated_node(tmp_path / "node.json", gpus=gpus) as node, gpu.NvmlSession():
        sim.inject_fault(node.path, "nvmlGpuInstanceCreateComputeInstance", "INSUFFICIENT_RESOURCES", times=1)
        with pytest.raises(ApplyError) as raised:
            plan_and_apply(0, ["3g.20gb", "1g.5gb"])
    error = raised.value
    # The 1g.5gb at 6:1 (GI 9 on R580) rules out a 3g at 4:4, so the plan keeps it, destroys the 2g (GI 3 at
    # 4:2) and creates the 3g at 0:4; creating its compute instance then fails. R580 numbers GIs apart from
    # their placement (A100 on 580.126.09: 4g at 0:4 is GI 2), so the 3g at 0:4 is GI 2 here.
    assert [describe_step(step) for step in error.done] == [
        "destroy compute instance 0 (2g.10gb) of GPU instance 3",
        "destroy GPU instance 3 (2g.10gb at 4:2)",
        "create GPU instance 3g.20gb at 0:4 (GPU instance 2)"]
    assert error.step == {"action": "create_compute_instance", "gpu_instance_id": 2, "profile": "3g.20gb",
                          "profile_index": 2}
    assert (error.cause.call, error.cause.code, error.gpu_index) == ("nvmlGpuInstanceCreateComputeInstance", 23, 0)
    assert str(error) == ("create compute instance 3g.20gb in GPU instance 2 failed: nvmlGpuInstanceCreateComputeInstance "
                          "failed on GPU 0 (compute profile 2 in GPU instance 2): Insufficient Resources (NVML error 23)")
    assert node.lines(0) == ["3g.20gb at 0:4: no compute instance", "1g.5gb at 6:1: 1g.5gb"]


def test_destroying_instances_removes_compute_instances_first(tmp_path):
    # The 1g.5gb lands on slot 0 (GPU instance 9 on R580): the 3g.20gb at 4:4 covers slots 4-7.
    gpus = [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled", "mig_devices": ["3g.20gb", "1g.5gb"]}]
    with simulated_node(tmp_path / "node.json", gpus=gpus) as node, gpu.NvmlSession():
        facts = gpu.read_node_facts()["gpus"][0]
        steps = destroy_gpu_instances(0, facts["gpu_instances"])
    assert [(step["action"], step["gpu_instance_id"]) for step in steps] == [
        ("destroy_compute_instance", 2), ("destroy_gpu_instance", 2),
        ("destroy_compute_instance", 9), ("destroy_gpu_instance", 9)]
    assert node.lines(0) == []
