"""gpufleet.mig.k8s_node through ansible-playbook against the emulated API server (real kubernetes client, real HTTP)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from gpufleet_twin.kube import Cluster
from kube_harness import KubeControl, start_kube_control

pytestmark = pytest.mark.slow

MODULE = "gpufleet.mig.k8s_node"
NODE = "gpu-node-1"
PDB_REFUSAL = "Cannot evict pod as it would violate the pod's disruption budget."


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeControl]:
    yield from start_kube_control(tmp_path)


@pytest.fixture
def kube_slow_termination(tmp_path: Path) -> Iterator[KubeControl]:
    """Deleted pods stay Terminating for up to 2 s, so the module must wait for them to go."""
    yield from start_kube_control(tmp_path, Cluster(pod_termination_seconds=2))


# --- cluster objects --------------------------------------------------------------------------------


def add_gpu_node(cluster: Cluster, name: str = NODE) -> None:
    cluster.add_node(
        name,
        labels={"nvidia.com/gpu.present": "true", "stale.example.com/label": "x"},
        capacity={"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"},
    )


def replica_set(cluster: Cluster, name: str, namespace: str = "default", replicas: int = 1) -> list[dict[str, Any]]:
    """A ReplicaSet object to own pods; returns the ownerReferences its pods carry."""
    rs = cluster.create(
        "replicasets",
        {"metadata": {"name": name}, "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {}}},
        namespace,
    )
    return [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": rs["metadata"]["uid"], "controller": True}]


def add_pod(cluster: Cluster, name: str, *, namespace: str = "default", node: str = NODE, owner: list[dict[str, Any]] | None = None,
            labels: dict[str, str] | None = None, limits: dict[str, str] | None = None, volumes: list[dict[str, Any]] | None = None,
            annotations: dict[str, str] | None = None) -> None:
    container: dict[str, Any] = {"name": "main", "image": "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"}
    if limits:
        container["resources"] = {"limits": limits}
    metadata: dict[str, Any] = {"name": name, "labels": labels or {"app": name}}
    if owner:
        metadata["ownerReferences"] = owner
    if annotations:
        metadata["annotations"] = annotations
    spec: dict[str, Any] = {"nodeName": node, "containers": [container]}
    if volumes:
        spec["volumes"] = volumes
    cluster.create("pods", {"metadata": metadata, "spec": spec}, namespace)


def add_device_plugin_daemonset(cluster: Cluster) -> None:
    cluster.create("namespaces", {"metadata": {"name": "nvidia-device-plugin"}})
    cluster.create(
        "daemonsets",
        {
            "metadata": {"name": "nvdp-nvidia-device-plugin"},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "nvidia-device-plugin"}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "nvidia-device-plugin"}},
                    "spec": {
                        "nodeSelector": {"nvidia.com/gpu.present": "true"},
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{"name": "nvidia-device-plugin-ctr", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"}],
                    },
                },
            },
        },
        "nvidia-device-plugin",
    )


def add_pdb(cluster: Cluster, name: str, min_available: int, namespace: str = "default") -> None:
    cluster.create(
        "poddisruptionbudgets",
        {"metadata": {"name": name}, "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": name}}}},
        namespace,
    )


def pod_names(cluster: Cluster, node: str = NODE) -> list[str]:
    return sorted(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in cluster.pods_on_node(node))


def node_of(cluster: Cluster, name: str = NODE) -> dict[str, Any]:
    return cluster.get("nodes", name)


def refs(*keys: str) -> list[dict[str, str]]:
    return [{"namespace": key.split("/")[0], "name": key.split("/")[1]} for key in keys]


# --- cordon / uncordon / labels ----------------------------------------------------------------------


def test_cordon_with_labels_check_mode_diff_then_apply_then_noop(kube: KubeControl) -> None:
    add_gpu_node(kube.cluster)
    args = {"name": NODE, "state": "cordoned", "labels": {"nvidia.com/mig.config.state": "pending", "stale.example.com/label": None},
            "annotations": {"gpufleet.example.com/rollout": 7}}
    before_version = node_of(kube.cluster)["metadata"]["resourceVersion"]

    run = kube.play([kube.task(MODULE, "Cordon in check mode", **args)], check=True, diff=True)
    predicted = run.task("Cordon in check mode")
    assert predicted.changed and not predicted.failed, predicted.result
    assert predicted.result["diff"] == {
        "before": {"unschedulable": False, "labels": {"nvidia.com/mig.config.state": None, "stale.example.com/label": "x"},
                   "annotations": {"gpufleet.example.com/rollout": None}},
        "after": {"unschedulable": True, "labels": {"nvidia.com/mig.config.state": "pending", "stale.example.com/label": None},
                  "annotations": {"gpufleet.example.com/rollout": "7"}},
    }
    assert predicted.result["node"]["unschedulable"] is True
    assert node_of(kube.cluster)["metadata"]["resourceVersion"] == before_version, "check mode wrote to the node"

    success = {"nvidia.com/mig.config.state": "success"}
    run = kube.play(
        [
            kube.task(MODULE, "Cordon", **args),
            kube.task(MODULE, "Cordon again", **args),
            kube.task(MODULE, "Uncordon", name=NODE, state="uncordoned", labels=success, _diff=True),
            kube.task(MODULE, "Uncordon again", name=NODE, state="uncordoned", labels=success),
            kube.task(MODULE, "Labels only", name=NODE, labels=success),
        ]
    )
    assert run.task("Cordon").changed and not run.task("Cordon again").changed
    cordoned = run.task("Cordon again").result["node"]  # read back from the server by the second run
    assert cordoned["unschedulable"] is True
    assert cordoned["labels"]["nvidia.com/mig.config.state"] == "pending" and "stale.example.com/label" not in cordoned["labels"]
    assert cordoned["annotations"]["gpufleet.example.com/rollout"] == "7"
    assert run.task("Uncordon").changed
    assert run.task("Uncordon").result["diff"] == {"before": {"unschedulable": True, "labels": {"nvidia.com/mig.config.state": "pending"}},
                                                   "after": {"unschedulable": False, "labels": success}}
    assert not run.task("Uncordon again").changed and not run.task("Labels only").changed
    node = node_of(kube.cluster)
    assert not node["spec"].get("unschedulable")
    assert node["metadata"]["labels"]["nvidia.com/mig.config.state"] == "success"
    assert node["metadata"]["annotations"]["gpufleet.example.com/rollout"] == "7"


def test_auth_from_host_token_and_ca_instead_of_kubeconfig(kube: KubeControl) -> None:
    add_gpu_node(kube.cluster)
    auth = {"kubeconfig": None, "host": kube.api.url, "api_key": kube.api.token, "ca_cert": str(kube.api.ca_path)}
    wrong_token = dict(auth, api_key="not-the-token")
    run = kube.play(
        [
            kube.task(MODULE, "Cordon with host and token", name=NODE, state="cordoned", **auth),
            kube.task(MODULE, "Cordon with a wrong token", name=NODE, state="cordoned", _ignore_errors=True, **wrong_token),
            kube.task(MODULE, "Missing node", name="no-such-node", state="cordoned", _ignore_errors=True),
        ]
    )
    assert run.task("Cordon with host and token").changed
    assert node_of(kube.cluster)["spec"]["unschedulable"] is True
    refused = run.task("Cordon with a wrong token")
    assert refused.failed and refused.msg == "Cannot read node gpu-node-1: the API server answered 401 Unauthorized: Unauthorized"
    assert "not-the-token" not in run.stdout + run.stderr
    missing = run.task("Missing node")
    assert missing.failed and missing.msg == 'Cannot read node no-such-node: the API server answered 404 NotFound: nodes "no-such-node" not found'
    assert missing.result["api_status"] == 404


# --- drain ------------------------------------------------------------------------------------------


def test_drain_refuses_emptydir_and_unmanaged_pods_before_touching_the_node(kube: KubeControl) -> None:
    cluster = kube.cluster
    add_gpu_node(cluster)
    add_device_plugin_daemonset(cluster)
    add_pod(cluster, "trainer", owner=replica_set(cluster, "trainer"), limits={"nvidia.com/gpu": "1"})
    add_pod(cluster, "scratch", owner=replica_set(cluster, "scratch"), volumes=[{"name": "cache", "emptyDir": {}}])
    add_pod(cluster, "bare")
    before = pod_names(cluster)

    run = kube.play([kube.task(MODULE, "Drain", name=NODE, state="drained", timeout=20, poll_interval=1, _ignore_errors=True)])
    result = run.task("Drain")
    assert result.failed
    assert result.msg == (
        "Cannot drain node gpu-node-1: 2 pod(s) cannot be evicted safely: "
        "default/bare has no controller to recreate it (set force to evict it anyway); "
        "default/scratch uses emptyDir volume(s) cache (set delete_emptydir_data to evict it and lose that data). Nothing was changed."
    )
    assert result.result["changed"] is False
    assert not node_of(cluster)["spec"].get("unschedulable"), "a refused drain must not cordon"
    assert pod_names(cluster) == before
    assert kube.api_requests("POST", "/eviction") == []


def test_drain_check_mode_then_drain_skips_daemonset_and_mirror_pods(kube: KubeControl) -> None:
    cluster = kube.cluster
    add_gpu_node(cluster)
    add_device_plugin_daemonset(cluster)
    add_pod(cluster, "trainer", owner=replica_set(cluster, "trainer"), limits={"nvidia.com/gpu": "1"})
    add_pod(cluster, "scratch", owner=replica_set(cluster, "scratch"), volumes=[{"name": "cache", "emptyDir": {}}])
    add_pod(cluster, "bare")
    node_owner = [{"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": node_of(cluster)["metadata"]["uid"], "controller": True}]
    add_pod(cluster, f"static-exporter-{NODE}", namespace="kube-system", owner=node_owner,
            annotations={"kubernetes.io/config.mirror": "3f1c"})
    daemon_pods = [name for name in pod_names(cluster) if name.startswith("nvidia-device-plugin/")]
    assert len(daemon_pods) == 1
    drain = {"name": NODE, "state": "drained", "delete_emptydir_data": True, "force": True, "timeout": 20, "poll_interval": 1}

    run = kube.play([kube.task(MODULE, "Drain in check mode", **drain)], check=True, diff=True)
    predicted = run.task("Drain in check mode")
    assert predicted.changed
    assert predicted.result["evicted"] == refs("default/bare", "default/scratch", "default/trainer")
    assert predicted.result["diff"] == {"before": {"unschedulable": False}, "after": {"unschedulable": True}}
    assert not node_of(cluster)["spec"].get("unschedulable")
    assert len(pod_names(cluster)) == 5, "check mode evicted pods"

    run = kube.play([kube.task(MODULE, "Drain", **drain), kube.task(MODULE, "Drain again", **drain)])
    drained = run.task("Drain")
    assert drained.changed and not drained.failed, drained.result
    assert drained.result["evicted"] == refs("default/bare", "default/scratch", "default/trainer")
    assert drained.result["skipped_pods"] == [
        {"namespace": "kube-system", "name": f"static-exporter-{NODE}", "reason": "mirror pod"},
        {"namespace": "nvidia-device-plugin", "name": daemon_pods[0].split("/")[1], "reason": "DaemonSet pod"},
    ]
    assert pod_names(cluster) == sorted([f"kube-system/static-exporter-{NODE}", *daemon_pods])
    assert node_of(cluster)["spec"]["unschedulable"] is True
    assert not run.task("Drain again").changed and run.task("Drain again").result["evicted"] == []
    # Only the Eviction API removed pods: no plain DELETE reached the server.
    assert sorted(kube.api_requests("POST", "/eviction")) == [
        "/api/v1/namespaces/default/pods/bare/eviction",
        "/api/v1/namespaces/default/pods/scratch/eviction",
        "/api/v1/namespaces/default/pods/trainer/eviction",
    ]
    assert [path for path in kube.api_requests("DELETE", "") if "/pods/" in path] == []


def test_gpu_only_drain_with_pod_selector_keeps_other_pods(kube: KubeControl) -> None:
    cluster = kube.cluster
    add_gpu_node(cluster)
    cluster.create("namespaces", {"metadata": {"name": "ml"}})
    add_pod(cluster, "full-gpu", owner=replica_set(cluster, "full-gpu"), limits={"nvidia.com/gpu": "1"})
    add_pod(cluster, "mig-slice", namespace="ml", owner=replica_set(cluster, "mig-slice", "ml"),
            limits={"nvidia.com/mig-1g.5gb": "1", "cpu": "2"})
    add_pod(cluster, "web", owner=replica_set(cluster, "web"), limits={"cpu": "1"})
    add_pod(cluster, "protected-gpu", owner=replica_set(cluster, "protected-gpu"), limits={"nvidia.com/gpu": "1"},
            labels={"app": "protected-gpu", "keep": "yes"})

    run = kube.play([
        kube.task(MODULE, "Evict GPU pods", name=NODE, state="drained", gpu_pods_only=True, pod_selector="keep!=yes",
                  timeout=20, poll_interval=1),
    ])
    result = run.task("Evict GPU pods")
    assert result.changed and not result.failed, result.result
    assert result.result["evicted"] == refs("default/full-gpu", "ml/mig-slice")
    assert result.result["skipped_pods"] == [{"namespace": "default", "name": "web", "reason": "requests no nvidia.com/* resource"}]
    assert pod_names(cluster) == ["default/protected-gpu", "default/web"]


def test_drain_waits_while_a_disruption_budget_blocks_then_allows(kube_slow_termination: KubeControl) -> None:
    kube = kube_slow_termination
    cluster = kube.cluster
    add_gpu_node(cluster)
    cluster.add_node("cpu-node-1")
    owner = replica_set(cluster, "train", replicas=2)
    add_pod(cluster, "train-0", owner=owner, labels={"app": "train"}, limits={"nvidia.com/gpu": "1"})
    add_pod(cluster, "train-1", node="cpu-node-1", owner=owner, labels={"app": "train"})
    add_pdb(cluster, "train", min_available=2)
    assert cluster.get("poddisruptionbudgets", "train", "default")["status"]["disruptionsAllowed"] == 0

    stop = threading.Event()

    def relax_after_two_refusals() -> None:
        # Driven by what the server saw, not by wall time, so a slow ansible-playbook start cannot skip the refusals.
        while not stop.wait(0.1):
            if len(kube.api_requests("POST", "/pods/train-0/eviction")) >= 2:
                cluster.patch("poddisruptionbudgets", "train", {"spec": {"minAvailable": 1}}, "merge", "default")
                return

    relax = threading.Thread(target=relax_after_two_refusals, daemon=True)
    relax.start()
    try:
        run = kube.play([kube.task(MODULE, "Drain", name=NODE, state="drained", timeout=60, poll_interval=1)])
    finally:
        stop.set()
        relax.join()
    result = run.task("Drain")
    assert result.changed and not result.failed, result.result
    assert result.result["evicted"] == refs("default/train-0")
    assert len(kube.api_requests("POST", "/pods/train-0/eviction")) == 3, "two refusals while the budget blocked, then the eviction"
    assert pod_names(cluster) == [], "the module returned before the evicted pod was gone"
    assert pod_names(cluster, "cpu-node-1") == ["default/train-1"]


def test_drain_times_out_on_a_budget_that_never_allows_and_stays_cordoned(kube: KubeControl) -> None:
    cluster = kube.cluster
    add_gpu_node(cluster)
    add_pod(cluster, "serving-0", owner=replica_set(cluster, "serving"), labels={"app": "serving"}, limits={"nvidia.com/gpu": "1"})
    add_pod(cluster, "batch", owner=replica_set(cluster, "batch"), limits={"nvidia.com/gpu": "1"})
    add_pdb(cluster, "serving", min_available=1)

    run = kube.play([kube.task(MODULE, "Drain", name=NODE, state="drained", timeout=3, poll_interval=1, _ignore_errors=True)])
    result = run.task("Drain")
    assert result.failed
    assert result.msg == (
        "Timed out after 3 s draining node gpu-node-1: 1 pod(s) could not be evicted: default/serving-0 "
        f"({PDB_REFUSAL} (The disruption budget serving needs 1 healthy pods and has 1 currently)). Pods evicted: default/batch. "
        "The node stays cordoned; let the disruption budget allow the eviction or raise timeout, and run again."
    )
    assert result.result["changed"] is True
    assert result.result["evicted"] == refs("default/batch")
    assert result.result["blocked"] == [
        {"namespace": "default", "name": "serving-0",
         "reason": f"{PDB_REFUSAL} (The disruption budget serving needs 1 healthy pods and has 1 currently)"}
    ]
    assert node_of(cluster)["spec"]["unschedulable"] is True, "a failed drain must leave the node cordoned"
    assert pod_names(cluster) == ["default/serving-0"], "the blocked pod must not be deleted"
