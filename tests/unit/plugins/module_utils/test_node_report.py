"""node_report.py: the words and result keys the node modules report GPUs with (pure, from NVML facts)."""
from __future__ import annotations

from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu as gpu
from ansible_collections.gpufleet.mig.plugins.module_utils._node_report import (
    describe_devices,
    describe_processes,
    layout_lines,
    mig_devices,
    placement,
    placement_pair,
    placement_text,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._planner import plan_gpu_layout
from sim_node import simulated_node


def test_reporting_helpers_describe_facts_and_plans_alike(tmp_path):
    gpus = [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled", "mig_devices": ["3g.20gb", "2g.10gb"]}]
    with simulated_node(tmp_path / "node.json", gpus=gpus), gpu.NvmlSession():
        facts = gpu.read_node_facts()["gpus"][0]
        plan = plan_gpu_layout(gpu.read_catalog(0), (), ["3g.20gb", "2g.10gb"])
    assert layout_lines(facts["gpu_instances"]) == ["2g.10gb at 0:2: 2g.10gb", "3g.20gb at 4:4: 3g.20gb"]
    assert layout_lines(plan.create) == ["3g.20gb at 0:4: 3g.20gb", "2g.10gb at 4:2: 2g.10gb"]
    devices = mig_devices(facts)
    assert [(d["mig_device_index"], d["profile"], d["gpu_instance_id"], d["memory_mib"]) for d in devices] == [
        (0, "3g.20gb", 2, 20096), (1, "2g.10gb", 3, 9984)]  # R580 profile sizes
    assert devices[0]["placement"] == {"start": 4, "size": 4} and devices[0]["uuid"].startswith("MIG-")
    assert describe_processes([{"pid": 9, "name": "b", "gpu_instance_id": None},
                               {"pid": 4, "name": "a", "gpu_instance_id": 2}, {"pid": 7}]) == (
        "pid 4 (a) on GPU instance 2, pid 7, pid 9 (b)")


def test_one_device_list_form_largest_first_counted():
    assert describe_devices(["1g.5gb", "3g.20gb", "1g.5gb", "2g.10gb"]) == "3g.20gb, 2g.10gb, 2 x 1g.5gb"
    assert describe_devices([]) == "none" and describe_devices([], empty="no MIG devices") == "no MIG devices"
    assert describe_devices(None) == "unmanaged"
    assert describe_devices(["not-a-profile", "1g.5gb"]) == "1g.5gb, not-a-profile"


def test_one_placement_form_from_pairs_and_dicts():
    assert placement((4, 4)) == placement({"start": "4", "size": 4}) == {"start": 4, "size": 4}
    assert placement_pair({"start": 0, "size": 8}) == (0, 8) and placement(None) is None
    assert placement_text((6, 1)) == "6:1" and placement_text(None) == "?"
