"""DaemonSet placement, PodDisruptionBudget status and the Eviction subresource, through the in-process API."""

from __future__ import annotations

from typing import Any

import pytest
from gpufleet_twin.kube import ApiError, Cluster
from gpufleet_twin.kube.workloads import PDB_VIOLATION_MESSAGE, daemon_pod_fits_node, scaled_value, toleration_tolerates

GPU_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "feature.node.kubernetes.io/pci-10de.present", "operator": "In", "values": ["true"]}]},
                {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]},
            ]
        }
    }
}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def _daemonset(name: str, *, image: str = "plugin:1", tolerations: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [{"name": "plugin", "image": image}], **spec}
    if tolerations is not None:
        pod_spec["tolerations"] = tolerations
    return {
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def _pods_by_node(cluster: Cluster, namespace: str = "gpu") -> dict[str, str]:
    return {p["spec"]["nodeName"]: p["status"]["phase"] for p in cluster.list("pods", namespace)}


@pytest.fixture
def gpu_cluster(cluster: Cluster) -> Cluster:
    cluster.create("namespaces", {"metadata": {"name": "gpu"}})
    cluster.add_node("gpu-0", labels={"nvidia.com/gpu.present": "true"}, taints=[GPU_TAINT])
    cluster.add_node("gpu-1", labels={"nvidia.com/gpu.present": "true"})
    cluster.add_node("cpu-0")
    return cluster


def test_daemonset_follows_affinity_and_taints(gpu_cluster: Cluster) -> None:
    gpu_cluster.create("daemonsets", _daemonset("untolerating", affinity=GPU_AFFINITY), "gpu")
    assert _pods_by_node(gpu_cluster) == {"gpu-1": "Running"}, "the tainted GPU node needs a toleration"
    gpu_cluster.create(
        "daemonsets",
        _daemonset("plugin", affinity=GPU_AFFINITY, tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]),
        "gpu",
    )
    plugin_pods = gpu_cluster.list("pods", "gpu", label_selector="app=plugin")
    assert sorted(p["spec"]["nodeName"] for p in plugin_pods) == ["gpu-0", "gpu-1"]
    pod = plugin_pods[0]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet" and pod["metadata"]["ownerReferences"][0]["controller"]
    assert {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    status = gpu_cluster.get("daemonsets", "plugin", "gpu")["status"]
    assert (status["desiredNumberScheduled"], status["numberReady"], status["updatedNumberScheduled"]) == (2, 2, 2)


def test_daemonset_reacts_to_node_labels_and_cordon(gpu_cluster: Cluster) -> None:
    gpu_cluster.create(
        "daemonsets", _daemonset("gfd", nodeSelector={"nvidia.com/gpu.present": "true"}, tolerations=[{"operator": "Exists"}]), "gpu"
    )
    assert set(_pods_by_node(gpu_cluster)) == {"gpu-0", "gpu-1"}
    gpu_cluster.set_node_labels("cpu-0", {"nvidia.com/gpu.present": "true"})
    gpu_cluster.set_node_labels("gpu-1", {"nvidia.com/gpu.present": None})
    assert set(_pods_by_node(gpu_cluster)) == {"gpu-0", "cpu-0"}
    gpu_cluster.patch("nodes", "gpu-0", {"spec": {"unschedulable": True}}, "strategic")
    assert "gpu-0" in _pods_by_node(gpu_cluster), "cordoning does not remove daemon pods"


def test_deleting_a_daemonset_pod_recreates_it_and_deleting_the_daemonset_removes_all(gpu_cluster: Cluster) -> None:
    gpu_cluster.create(
        "daemonsets", _daemonset("plugin", nodeSelector={"nvidia.com/gpu.present": "true"}, tolerations=[{"operator": "Exists"}]), "gpu"
    )
    old = {p["metadata"]["name"] for p in gpu_cluster.list("pods", "gpu")}
    gpu_cluster.delete("pods", sorted(old)[0], "gpu")
    new = {p["metadata"]["name"] for p in gpu_cluster.list("pods", "gpu")}
    assert len(new) == 2 and new != old
    gpu_cluster.delete("daemonsets", "plugin", "gpu")
    assert gpu_cluster.list("pods", "gpu") == []


def test_template_change_rolls_pods(gpu_cluster: Cluster) -> None:
    gpu_cluster.create(
        "daemonsets", _daemonset("plugin", nodeSelector={"nvidia.com/gpu.present": "true"}, tolerations=[{"operator": "Exists"}]), "gpu"
    )
    before = {p["metadata"]["name"] for p in gpu_cluster.list("pods", "gpu")}
    gpu_cluster.patch(
        "daemonsets",
        "plugin",
        {"spec": {"template": {"spec": {"containers": [{"name": "plugin", "image": "plugin:2"}]}}}},
        "strategic",
        "gpu",
    )
    pods = gpu_cluster.list("pods", "gpu")
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"plugin:2"}
    assert not before & {p["metadata"]["name"] for p in pods}
    status = gpu_cluster.get("daemonsets", "plugin", "gpu")["status"]
    assert status["observedGeneration"] == 2 and status["updatedNumberScheduled"] == 2


def test_on_delete_strategy_keeps_old_pods(gpu_cluster: Cluster) -> None:
    ds = _daemonset("plugin", nodeSelector={"nvidia.com/gpu.present": "true"}, tolerations=[{"operator": "Exists"}])
    ds["spec"]["updateStrategy"] = {"type": "OnDelete"}
    gpu_cluster.create("daemonsets", ds, "gpu")
    gpu_cluster.patch(
        "daemonsets",
        "plugin",
        {"spec": {"template": {"spec": {"containers": [{"name": "plugin", "image": "plugin:2"}]}}}},
        "strategic",
        "gpu",
    )
    assert {p["spec"]["containers"][0]["image"] for p in gpu_cluster.list("pods", "gpu")} == {"plugin:1"}
    assert gpu_cluster.get("daemonsets", "plugin", "gpu")["status"]["updatedNumberScheduled"] == 0


# ---------------------------------------------------------------- disruption budgets


def _replicaset_with_pods(cluster: Cluster, replicas: int, nodes: list[str], *, deployment: dict[str, Any] | None = None) -> None:
    owner = []
    if deployment is not None:
        owner = [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment["metadata"]["name"],
                "uid": deployment["metadata"]["uid"],
                "controller": True,
            }
        ]
    rs = cluster.create(
        "replicasets",
        {
            "metadata": {"name": "web-rs", "ownerReferences": owner},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                # No containers: an inert owner the ReplicaSet controller leaves alone (workload_controllers.py),
                # so the budget arithmetic sees exactly the hand-made pods below.
                "template": {"metadata": {"labels": {"app": "web"}}},
            },
        },
        "default",
    )
    reference = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "uid": rs["metadata"]["uid"], "controller": True}
    for index, node in enumerate(nodes):
        cluster.create(
            "pods",
            {
                "metadata": {"name": f"web-{index}", "labels": {"app": "web"}, "ownerReferences": [reference]},
                "spec": {"nodeName": node, "containers": [{"name": "c"}]},
            },
            "default",
        )


def _budget(cluster: Cluster, **spec: Any) -> dict[str, Any]:
    cluster.create(
        "poddisruptionbudgets", {"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}, "default"
    )
    return cluster.get("poddisruptionbudgets", "web", "default")["status"]


def _counts(status: dict[str, Any]) -> tuple[int, int, int, int]:
    return status["expectedPods"], status["desiredHealthy"], status["currentHealthy"], status["disruptionsAllowed"]


def test_budget_with_integer_min_available(gpu_cluster: Cluster) -> None:
    _replicaset_with_pods(gpu_cluster, 3, ["gpu-0", "gpu-1", "cpu-0"])
    status = _budget(gpu_cluster, minAvailable=2)
    assert _counts(status) == (3, 2, 3, 1)
    assert status["observedGeneration"] == 1
    assert status["conditions"][0]["type"] == "DisruptionAllowed" and status["conditions"][0]["status"] == "True"
    gpu_cluster.set_pod_status("default", "web-2", ready=False)
    status = gpu_cluster.get("pdb", "web", "default")["status"]
    assert _counts(status) == (3, 2, 2, 0) and status["conditions"][0]["reason"] == "InsufficientPods"


def test_budget_percentages_use_the_controller_scale(gpu_cluster: Cluster) -> None:
    deployment = gpu_cluster.create(
        "deployments",
        {"metadata": {"name": "web"}, "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}}, "template": {}}},
        "default",
    )
    _replicaset_with_pods(gpu_cluster, 4, ["gpu-0", "gpu-1"], deployment=deployment)
    assert _counts(_budget(gpu_cluster, minAvailable="50%")) == (4, 2, 2, 0)
    gpu_cluster.patch("pdb", "web", {"spec": {"minAvailable": None, "maxUnavailable": "25%"}}, "merge", "default")
    assert _counts(gpu_cluster.get("pdb", "web", "default")["status"]) == (4, 3, 2, 0)


def test_budget_over_daemonset_pods_fails_safe(gpu_cluster: Cluster) -> None:
    gpu_cluster.create("daemonsets", _daemonset("web", tolerations=[{"operator": "Exists"}]), "default")
    gpu_cluster.create(
        "poddisruptionbudgets",
        {"metadata": {"name": "web"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}},
        "default",
    )
    status = gpu_cluster.get("pdb", "web", "default")["status"]
    assert status["disruptionsAllowed"] == 0 and status["conditions"][0]["reason"] == "SyncFailed"
    assert "found no controllers for pod" in status["conditions"][0]["message"]
    pod = gpu_cluster.list("pods", "default")[0]["metadata"]["name"]
    with pytest.raises(ApiError) as blocked:
        gpu_cluster.evict("default", pod)
    assert blocked.value.code == 429
    assert "still being processed" in blocked.value.details["causes"][0]["message"]


def test_eviction_blocked_then_allowed(gpu_cluster: Cluster) -> None:
    _replicaset_with_pods(gpu_cluster, 2, ["gpu-0", "gpu-1"])
    _budget(gpu_cluster, minAvailable=2)
    with pytest.raises(ApiError) as blocked:
        gpu_cluster.evict("default", "web-0")
    assert (blocked.value.code, blocked.value.reason, blocked.value.message) == (429, "TooManyRequests", PDB_VIOLATION_MESSAGE)
    assert blocked.value.details["causes"] == [
        {"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}
    ]
    assert gpu_cluster.exists("pods", "web-0", "default")

    gpu_cluster.patch("pdb", "web", {"spec": {"minAvailable": 1}}, "merge", "default")
    gpu_cluster.evict("default", "web-0")
    assert not gpu_cluster.exists("pods", "web-0", "default")
    assert _counts(gpu_cluster.get("pdb", "web", "default")["status"]) == (1, 1, 1, 0)
    with pytest.raises(ApiError) as again:
        gpu_cluster.evict("default", "web-1")
    assert again.value.code == 429


def test_eviction_paths_that_skip_the_budget(gpu_cluster: Cluster) -> None:
    _replicaset_with_pods(gpu_cluster, 3, ["gpu-0", "gpu-1", "nowhere"])  # the pod on a missing node stays Pending
    _budget(gpu_cluster, minAvailable=2)
    assert gpu_cluster.get("pods", "web-2", "default")["status"]["phase"] == "Pending"
    gpu_cluster.evict("default", "web-2")  # Pending pods are deleted without consulting the budget
    assert not gpu_cluster.exists("pods", "web-2", "default")

    gpu_cluster.patch("pdb", "web", {"spec": {"minAvailable": 1}}, "merge", "default")
    gpu_cluster.set_pod_status("default", "web-1", ready=False)
    status = gpu_cluster.get("pdb", "web", "default")["status"]
    assert (status["currentHealthy"], status["desiredHealthy"], status["disruptionsAllowed"]) == (1, 1, 0)
    gpu_cluster.evict("default", "web-1")  # unready pod, budget healthy: allowed without decrementing
    assert not gpu_cluster.exists("pods", "web-1", "default")


def test_eviction_dry_run_and_overlapping_budgets(gpu_cluster: Cluster) -> None:
    _replicaset_with_pods(gpu_cluster, 2, ["gpu-0", "gpu-1"])
    _budget(gpu_cluster, minAvailable=1)
    gpu_cluster.evict("default", "web-0", dry_run=True)
    assert gpu_cluster.exists("pods", "web-0", "default")
    assert gpu_cluster.get("pdb", "web", "default")["status"]["disruptionsAllowed"] == 1
    gpu_cluster.create(
        "poddisruptionbudgets",
        {"metadata": {"name": "second"}, "spec": {"minAvailable": 0, "selector": {"matchLabels": {"app": "web"}}}},
        "default",
    )
    with pytest.raises(ApiError) as overlapping:
        gpu_cluster.evict("default", "web-0")
    assert overlapping.value.code == 500 and "more than one PodDisruptionBudget" in overlapping.value.message


def test_evicted_pod_counts_as_disrupted_while_terminating() -> None:
    cluster = Cluster(pod_termination_seconds=30)
    cluster.add_node("gpu-0")
    _replicaset_with_pods(cluster, 2, ["gpu-0", "gpu-0"])
    _budget(cluster, minAvailable=1)
    cluster.evict("default", "web-0")
    terminating = cluster.get("pods", "web-0", "default")
    assert terminating["metadata"]["deletionTimestamp"]
    status = cluster.get("pdb", "web", "default")["status"]
    assert (status["currentHealthy"], status["disruptionsAllowed"]) == (1, 0)
    with pytest.raises(ApiError):
        cluster.evict("default", "web-1")


# ---------------------------------------------------------------- pure rules


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"), [(2, 10, True, 2), ("50%", 3, True, 2), ("50%", 3, False, 1), ("0%", 5, True, 0)]
)
def test_scaled_value(value: int | str, total: int, round_up: bool, expected: int) -> None:
    assert scaled_value(value, total, round_up) == expected


def test_toleration_matching() -> None:
    assert toleration_tolerates({"key": "nvidia.com/gpu", "operator": "Exists"}, GPU_TAINT)
    assert toleration_tolerates({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}, GPU_TAINT)
    assert not toleration_tolerates({"key": "nvidia.com/gpu", "value": "other"}, GPU_TAINT)
    assert not toleration_tolerates({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, GPU_TAINT)
    assert toleration_tolerates({"operator": "Exists"}, GPU_TAINT)


def test_prefer_no_schedule_taints_do_not_block_daemon_pods() -> None:
    node = {"metadata": {"name": "n", "labels": {}}, "spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}
    assert daemon_pod_fits_node({"containers": []}, node)
    node["spec"]["taints"][0]["effect"] = "NoExecute"
    assert not daemon_pod_fits_node({"containers": []}, node)
