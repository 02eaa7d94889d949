"""The preflight verdict of a node, judged on the control host from one read of the node and one of the cluster."""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu as nvml
from ansible_collections.gpufleet.mig.plugins.module_utils._node_info import read_node
from ansible_collections.gpufleet.mig.plugins.module_utils._preflight import judge_node, role_variable_errors
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import catalog_to_dict

from sim_node import simulated_node

LABELS = {"state": "gpufleet.mig/state", "config": "gpufleet.mig/config", "strategy": "gpufleet.mig/strategy",
          "gpu_clients": "gpufleet.mig/gpu-clients", "cordoned_by": "gpufleet.mig/cordoned-by"}


@pytest.fixture(scope="module")
def a100_read(tmp_path_factory):
    """What gpu_info returns with profile_catalog: true on a node with one A100 in MIG mode, no MIG devices."""
    path = tmp_path_factory.mktemp("node") / "node.json"
    with simulated_node(path, driver_version="550.54.15",
                        gpus=[{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled"}]):
        node = read_node()
        with nvml.NvmlSession():
            for gpu in node["gpus"]:
                gpu["profile_catalog"] = catalog_to_dict(nvml.read_catalog(gpu["index"]))
    return node


def _cluster(labels=None, drain=None):
    return {"nodes": {"gpu-1": {"labels": labels or {}, "drain": drain or {"evict": [], "refuse": [], "terminating": []}}}}


def _judge(read, **overrides):
    options = {"host": "gpu-1", "kubernetes": True, "k8s_node_name": "gpu-1", "strategy": "mixed",
               "cluster": _cluster(), "mig_config": "all-1g.5gb", "labels": LABELS}
    options.update(overrides)
    return judge_node(read, **options)


def test_a_node_with_work_to_do_gets_its_plan_and_what_a_drain_would_evict(a100_read):
    evict = [{"namespace": "ml", "name": "train-0"}]
    node = _judge(a100_read, cluster=_cluster(drain={"evict": evict, "refuse": [], "terminating": []}))
    assert node["problems"] == [] and node["warnings_found"] == []
    assert not node["converged"] and not node["mig_converged"]
    assert node["plan"]["summary"] == ["GPU 0 NVIDIA A100-SXM4-40GB: MIG enabled; devices none -> 7 x 1g.5gb"]
    assert node["evictions"]["evict"] == evict
    assert node["layout_source"]["description"] == "layout from the host variable mig_config"
    assert node["driver_version"] == "550.54.15"
    assert [gpu["uuid"] for gpu in node["gpus_before"]] == [gpu["uuid"] for gpu in a100_read["gpus"]]
    assert "profile_catalog" in a100_read["gpus"][0] and "profile_catalog" not in node["gpus_before"][0]


def test_a_node_is_converged_only_when_its_labels_record_this_config_and_strategy(a100_read):
    config_id = _judge(a100_read, mig_config="all-disabled")["config_id"]
    recorded = {LABELS["state"]: "success", LABELS["config"]: config_id, LABELS["strategy"]: "mixed"}
    # MIG mode enabled with no devices is not all-disabled: the plan changes the GPU.
    assert not _judge(a100_read, mig_config="all-disabled", cluster=_cluster(recorded))["mig_converged"]

    empty_layout = {"0": {}}
    config_id = _judge(a100_read, mig_config="", mig_layout=empty_layout)["config_id"]
    recorded = {LABELS["state"]: "success", LABELS["config"]: config_id, LABELS["strategy"]: "mixed"}
    node = _judge(a100_read, mig_config="", mig_layout=empty_layout, cluster=_cluster(recorded))
    assert node["mig_converged"] and node["converged"]
    # Another strategy on record, or our cordon still on the node: validate and record again.
    assert not _judge(a100_read, mig_config="", mig_layout=empty_layout, strategy="single",
                      cluster=_cluster(recorded))["converged"]
    cordoned = dict(recorded, **{LABELS["cordoned_by"]: "run-1"})
    node = _judge(a100_read, mig_config="", mig_layout=empty_layout, cluster=_cluster(cordoned))
    assert node["mig_converged"] and not node["converged"]
    paused = dict(recorded, **{LABELS["gpu_clients"]: "paused"})
    assert _judge(a100_read, mig_config="", mig_layout=empty_layout, cluster=_cluster(paused))["clients_paused"]


def test_every_problem_of_a_node_is_collected_and_it_is_not_planned(a100_read, tmp_path):
    failed_check = dict(a100_read, checks=[{"name": "driver_version", "ok": False, "detail": "driver too old"}])
    node = _judge(failed_check, mig_layout={"1g.5gb": 7}, mig_config_file=str(tmp_path / "missing.yaml"),
                  role_variable_errors=["drain_timeout must be an int"], cluster={"nodes": {}, "msg": "API timed out"},
                  policy_problems=["mig_policies[0] is bad"])
    assert node["problems"] == [
        "invalid variables: drain_timeout must be an int",
        "both a config (mig_config / mig_config_file) and an inline mig_layout are set; set only one",
        "mig_config_file %s is not a file on the control host" % (tmp_path / "missing.yaml"),
        "driver too old",
        "Kubernetes node gpu-1 cannot be read: API timed out (set k8s_node_name when it differs from the host name, "
        "k8s_kubeconfig / k8s_context for the API, or mig_kubernetes: false for hosts outside Kubernetes)",
        "mig_policies[0] is bad",
    ]
    assert node["plan"] == {} and not node["converged"]


def test_a_host_without_a_layout_is_a_problem_only_without_fleet_policies(a100_read):
    assert _judge(a100_read, mig_config="")["problems"][0].startswith("no desired MIG layout: set mig_config")
    skipped = _judge(a100_read, mig_config="", policies=True,
                     layout_source={"source": "skip", "description": "no fleet policy matches"})
    assert skipped["problems"] == [] and skipped["skipped"] and skipped["converged"]


def test_other_mig_managers_refuse_the_node_or_warn(a100_read):
    operated = _cluster({"nvidia.com/mig.config": "all-disabled"})
    refused = _judge(a100_read, cluster=operated)
    assert refused["problems"][0].startswith(
        "the GPU Operator's mig-manager drives this node (label nvidia.com/mig.config=all-disabled)")
    warned = _judge(a100_read, cluster=operated, gpu_operator_mig_manager="ignore")
    assert warned["problems"] == [] and warned["warnings_found"][0].startswith("the GPU Operator's mig-manager")

    with_unit = dict(a100_read, host_paths_present=["/etc/systemd/system/nvidia-mig-manager.service"])
    assert _judge(with_unit)["problems"] == [
        "nvidia-mig-manager.service is installed (/etc/systemd/system/nvidia-mig-manager.service): it re-applies its "
        "own MIG config (MIG_PARTED_SELECTED_CONFIG, all-disabled by default) at every boot and would undo this "
        "rollout; disable it (systemctl disable nvidia-mig-manager.service) or set preflight_host_mig_manager to ignore"]
    assert _judge(with_unit, host_mig_manager="ignore")["problems"] == []


def test_a_node_outside_kubernetes_needs_no_cluster_read(a100_read):
    node = _judge(a100_read, kubernetes=False, cluster={})
    assert node["problems"] == [] and node["k8s_node_name"] is None
    assert node["evictions"] == {"evict": [], "refuse": [], "terminating": []}


def test_a_failed_read_is_the_problem(a100_read):
    assert _judge({"msg": "NVML: driver not loaded"})["problems"] == ["NVML: driver not loaded"]


def test_a_mig_parted_file_is_read_for_the_plan(a100_read, tmp_path):
    config_file = tmp_path / "config.yaml"
    config_file.write_text("version: v1\nmig-configs:\n  two-3g:\n    - devices: all\n      mig-enabled: true\n"
                           "      mig-devices:\n        3g.20gb: 2\n")
    node = _judge(a100_read, mig_config="two-3g", mig_config_file=str(config_file))
    assert node["problems"] == [] and node["plan"]["summary"] == ["GPU 0 NVIDIA A100-SXM4-40GB: MIG enabled; devices none -> 2 x 3g.20gb"]
    unknown = _judge(a100_read, mig_config="nothing-like-it", mig_config_file=str(config_file))
    assert unknown["plan"] == {} and len(unknown["problems"]) == 1 and "nothing-like-it" in unknown["problems"][0]


DRAIN_SPECS = {"drain_timeout": {"type": "int", "default": 300, "description": "Seconds the whole drain may take."},
               "drain_k8s_node_name": {"type": "str", "required": True},
               "drain_gpu_pods_only": {"type": "bool", "default": True}}


def test_only_role_variables_set_to_other_than_their_default_are_checked():
    assert role_variable_errors(DRAIN_SPECS, {"drain_timeout": 300, "drain_gpu_pods_only": True}) == []
    # A required input is given by the playbook later: not missing, and not checked here.
    assert role_variable_errors(DRAIN_SPECS, {"drain_k8s_node_name": ["not", "a", "name"]}) == []
    errors = role_variable_errors(DRAIN_SPECS, {"drain_timeout": "soon", "drain_gpu_pods_only": "maybe"})
    assert len(errors) == 2 and all("drain_timeout" in error or "drain_gpu_pods_only" in error for error in errors)
    assert any("soon" in error for error in errors) and not any("description" in error for error in errors)

