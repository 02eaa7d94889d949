"""The fleet plan: one read per node, planned on the control host by the node phase's own decision function."""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu as nvml
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError
from ansible_collections.gpufleet.mig.plugins.module_utils._fleet_report import grouped_gpu_summaries, plan_line
from ansible_collections.gpufleet.mig.plugins.module_utils._node_info import read_node
from ansible_collections.gpufleet.mig.plugins.module_utils._node_plan import plan_node_from_facts, read_and_plan_node
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import catalog_to_dict

from sim_node import simulated_node

NODES = {
    "a100-off": ("550.54.15", [{"model": "A100-SXM4-40GB", "count": 2, "mig_mode": "disabled"}]),
    "h100-1g": ("550.54.15", [{"model": "H100-SXM5-80GB", "count": 2, "mig_mode": "enabled", "mig_devices": ["1g.10gb"] * 7}]),
    "a30-r535-off": ("535.129.03", [{"model": "A30-24GB", "count": 1, "mig_mode": "disabled"}]),
    "mixed-t4": ("550.54.15", [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled", "mig_devices": ["3g.20gb"]},
                               {"model": "Tesla-T4", "count": 1}]),
}
SOURCES = [{"mig_config": "all-balanced"}, {"mig_config": "all-disabled"}, {"mig_layout": {"2g.10gb": 2}},
           {"mig_layout": {"0": {"1g.5gb": 7}}}]


def _gpu_info_read():
    """What gpu_info returns with profile_catalog: true (read_node, then each MIG-capable GPU's catalog)."""
    node = read_node()
    with nvml.NvmlSession():
        for gpu in node["gpus"]:
            if gpu.get("mig_capable"):
                gpu["profile_catalog"] = catalog_to_dict(nvml.read_catalog(gpu["index"]))
    return node


def _outcome(plan_call):
    try:
        return plan_call()
    except MigError as error:
        return (type(error).__name__, str(error))


@pytest.mark.parametrize("node", sorted(NODES))
@pytest.mark.parametrize("strategy", ["mixed", "single", "none"])
def test_the_plan_from_one_read_is_the_plan_the_node_reads_itself(tmp_path, node, strategy):
    driver, gpus = NODES[node]
    with simulated_node(tmp_path / "node.json", driver_version=driver, gpus=gpus):
        read = _gpu_info_read()
        for source in SOURCES:
            on_node = _outcome(lambda: read_and_plan_node(source, strategy)[1])
            on_control_host = _outcome(lambda: plan_node_from_facts(read, source, strategy))
            assert on_control_host == on_node, source


def test_a_read_without_the_catalog_a_plan_needs_is_refused(tmp_path):
    with simulated_node(tmp_path / "node.json", driver_version="550.54.15"):
        read = read_node()
    with pytest.raises(MigError, match="GPU 0 was read without its MIG profile catalog"):
        plan_node_from_facts(read, {"mig_config": "all-1g.5gb"}, "mixed")


def test_a_node_without_a_driver_cannot_be_planned():
    with pytest.raises(MigError, match="no usable NVIDIA driver"):
        plan_node_from_facts({"driver_loaded": False, "gpus": []}, {"mig_config": "all-1g.5gb"}, "mixed")


def test_gpus_that_plan_alike_share_one_entry():
    assert grouped_gpu_summaries([
        "GPU 0 NVIDIA A100: MIG disabled -> enabled", "GPU 1 NVIDIA A100: MIG disabled -> enabled",
        "GPU 2 NVIDIA A100: MIG disabled -> enabled", "GPU 3 Tesla T4: left as it is (not MIG-capable)",
        "GPU 5 NVIDIA A100: MIG disabled -> enabled",
    ]) == ["GPUs 0-2,5 NVIDIA A100: MIG disabled -> enabled", "GPU 3 Tesla T4: left as it is (not MIG-capable)"]


def _preflight(**overrides):
    record = {"kubernetes": True, "converged": False, "mig_converged": False, "skipped": False, "problems": [],
              "warnings_found": [], "stopped_services": [],
              "plan": {"summary": ["GPU 0 NVIDIA A100: MIG disabled -> enabled; devices none -> 7 x 1g.5gb"]},
              "evictions": {"evict": [{"namespace": "ml", "name": "train-0"}], "refuse": [], "terminating": []},
              "layout_source": {"description": "layout from the host variable mig_config"}}
    record.update(overrides)
    return record


def test_the_plan_line_names_the_change_the_evictions_and_the_layout_source():
    assert plan_line(_preflight()) == (
        "reconfigure: cordon and drain the node, change the GPUs | "
        "GPU 0 NVIDIA A100: MIG disabled -> enabled; devices none -> 7 x 1g.5gb | evicts ml/train-0 | "
        "layout from the host variable mig_config")


def test_the_plan_line_says_what_a_drain_would_refuse_and_what_an_interrupted_run_left_stopped():
    line = plan_line(_preflight(
        evictions={"evict": [], "refuse": [{"namespace": "ml", "name": "scratch", "reason": "pod has emptyDir volumes"}]},
        stopped_services=["nvidia-dcgm.service"], warnings_found=["GPU 0 has processes"]))
    assert " | evicts no pod | a drain would refuse ml/scratch: pod has emptyDir volumes | " in line
    assert " | starts the host services an interrupted run stopped: nvidia-dcgm.service | " in line
    assert line.endswith(" | warning: GPU 0 has processes")


def test_a_converged_or_refused_node_evicts_nothing():
    assert plan_line(_preflight(converged=True, mig_converged=True)).startswith(
        "nothing to do: MIG layout, strategy and labels already match | GPU 0")
    assert "evicts" not in plan_line(_preflight(converged=True, mig_converged=True))
    assert plan_line(_preflight(problems=["no driver", "bad layout"])) == (
        "refused: no driver | bad layout | layout from the host variable mig_config")
