"""GFD through NFD's NodeFeature API and the nfd-master agent (gpufleet_twin/agents/nfd_master.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from gpufleet_twin.agents import gfd_labels
from gpufleet_twin.agents.nfd_master import FEATURE_LABELS_ANNOTATION, NODE_NAME_LABEL, merged_labels

from agents_seed import MIXED_LABELS
from conftest import AgentCluster, daemonset, seed_gpu

NS = "nvidia-device-plugin"
NODE_FEATURE = "nvidia-features-for-node1"


def node_feature_crd() -> dict[str, Any]:
    """NFD's NodeFeature CRD as far as the API server needs it (names and scope of nfd.k8s-sigs.io/v1alpha1)."""
    return {
        "metadata": {"name": "nodefeatures.nfd.k8s-sigs.io"},
        "spec": {
            "group": "nfd.k8s-sigs.io",
            "names": {"plural": "nodefeatures", "singular": "nodefeature", "kind": "NodeFeature", "listKind": "NodeFeatureList"},
            "scope": "Namespaced",
            "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}}}],
        },
    }


def nfd_master(extra_label_ns: list[str], args: list[str] | None = None, kind: str = "deployments") -> dict[str, Any]:
    """An nfd-master workload shaped like the NFD chart's: command nfd-master, its config from a ConfigMap volume."""
    labels = {"app": "nfd-master" if not args else "nfd-prune"}
    pod_spec: dict[str, Any] = {
        "containers": [{"name": "master", "image": "registry.k8s.io/nfd/node-feature-discovery:v0.19.0",
                        "command": ["nfd-master"], "args": args or ["-port=8080"]}],
        "volumes": [{"name": "nfd-master-conf", "configMap": {"name": "nfd-master-conf"}}],
    }
    if kind == "jobs":
        pod_spec["restartPolicy"] = "Never"
        return {"metadata": {"name": "nfd-prune"}, "spec": {"template": {"spec": pod_spec}}}
    return {
        "metadata": {"name": "nfd-master"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
    }


@pytest.fixture
def mixed_node(make_node: Callable[..., Path], agent_cluster) -> AgentCluster:
    cluster = agent_cluster({"node1": make_node([seed_gpu("enabled", ["3g.20gb", "2g.10gb", "1g.5gb"])])})
    cluster.cluster.create("namespaces", {"metadata": {"name": NS}})
    return cluster


def expected(cluster: AgentCluster) -> dict[str, str]:
    """Today's GFD labels for the node (the seed's mixed example; the machine name is the agent's)."""
    agent = cluster.controller.agents["node1"]
    labels, _ = gfd_labels(agent.inventory(), "mixed", agent.spec.machine)
    assert {k: v for k, v in labels.items() if k != "nvidia.com/gpu.machine"} == {
        k: v for k, v in MIXED_LABELS.items() if k != "nvidia.com/gpu.machine"
    }
    return labels


def _install_nfd(cluster: AgentCluster, extra_label_ns: list[str]) -> None:
    api = cluster.cluster
    api.create("crd", node_feature_crd())
    api.create("configmaps", {"metadata": {"name": "nfd-master-conf"}, "data": {"nfd-master.conf": f"extraLabelNs: {extra_label_ns}\n"}}, NS)
    api.create("deployments", nfd_master(extra_label_ns), NS)


def _gfd(cluster: AgentCluster) -> None:
    cluster.cluster.create(
        "daemonsets", daemonset("gfd", "gpu-feature-discovery", {"MIG_STRATEGY": "mixed", "GFD_NO_TIMESTAMP": "true"}), NS
    )


def test_gfd_publishes_a_node_feature_and_nfd_master_labels_the_node(mixed_node: AgentCluster) -> None:
    _install_nfd(mixed_node, ["nvidia.com"])
    _gfd(mixed_node)
    feature = mixed_node.cluster.get("nodefeatures", NODE_FEATURE, NS)
    assert feature["metadata"]["labels"] == {NODE_NAME_LABEL: "node1"}
    assert [(r["kind"], r.get("controller", False)) for r in feature["metadata"]["ownerReferences"]] == [("DaemonSet", True), ("Pod", False)]
    assert feature["spec"]["labels"] == expected(mixed_node)
    assert mixed_node.nvidia_labels() == expected(mixed_node), "the same labels as GFD writing them itself"
    annotation = mixed_node.node()["metadata"]["annotations"][FEATURE_LABELS_ANNOTATION]
    assert annotation.split(",") == sorted(expected(mixed_node))


def test_labels_are_the_same_without_nfd(mixed_node: AgentCluster) -> None:
    _gfd(mixed_node)  # the stand-in chart's way: no NodeFeature CRD, GFD labels the node
    assert mixed_node.nvidia_labels() == expected(mixed_node)
    assert FEATURE_LABELS_ANNOTATION not in (mixed_node.node()["metadata"].get("annotations") or {})


def test_labels_of_a_node_feature_that_goes_away_are_removed(mixed_node: AgentCluster) -> None:
    _install_nfd(mixed_node, ["nvidia.com"])
    _gfd(mixed_node)
    pod = mixed_node.cluster.list("pods", NS, label_selector="app.kubernetes.io/instance=gfd")[0]["metadata"]["name"]
    mixed_node.cluster.delete("pods", pod, NS)
    assert mixed_node.cluster.exists("nodefeatures", NODE_FEATURE, NS), "owned by the DaemonSet too: it outlives the pod"
    assert mixed_node.nvidia_labels() == expected(mixed_node)
    mixed_node.cluster.delete("daemonsets", "gfd", NS)
    assert not mixed_node.cluster.exists("nodefeatures", NODE_FEATURE, NS)
    assert mixed_node.nvidia_labels() == {}
    assert FEATURE_LABELS_ANNOTATION not in (mixed_node.node()["metadata"].get("annotations") or {})


def test_without_a_running_master_node_features_change_nothing(mixed_node: AgentCluster) -> None:
    mixed_node.cluster.create("crd", node_feature_crd())
    _gfd(mixed_node)
    assert mixed_node.cluster.get("nodefeatures", NODE_FEATURE, NS)["spec"]["labels"] == expected(mixed_node)
    assert mixed_node.nvidia_labels() == {}
    mixed_node.cluster.create("configmaps", {"metadata": {"name": "nfd-master-conf"}, "data": {"nfd-master.conf": "extraLabelNs: [nvidia.com]\n"}}, NS)
    mixed_node.cluster.create("deployments", nfd_master(["nvidia.com"]), NS)
    assert mixed_node.nvidia_labels() == expected(mixed_node), "a master that comes up labels the node"


def test_label_namespaces_outside_extra_label_ns_are_dropped(mixed_node: AgentCluster) -> None:
    _install_nfd(mixed_node, [])
    _gfd(mixed_node)
    assert mixed_node.nvidia_labels() == {}


def test_prune_job_removes_nfd_labels(mixed_node: AgentCluster) -> None:
    _install_nfd(mixed_node, ["nvidia.com"])
    _gfd(mixed_node)
    mixed_node.cluster.delete("deployments", "nfd-master", NS)
    mixed_node.cluster.delete("daemonsets", "gfd", NS)
    assert mixed_node.nvidia_labels() == expected(mixed_node), "no master: nobody removes them"
    mixed_node.cluster.create("jobs", nfd_master([], ["-prune"], kind="jobs"), NS)
    assert mixed_node.nvidia_labels() == {}
    assert mixed_node.cluster.get("jobs", "nfd-prune", NS)["status"]["succeeded"] == 1


def test_merge_order_and_default_prefix() -> None:
    def feature(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {"metadata": {"namespace": namespace, "name": name}, "spec": {"labels": labels}}

    objects = [feature("other", "a", {"x": "other", "nvidia.com/y": "1"}), feature("nfd", "z", {"x": "mine", "evil.io/z": "1"})]
    assert merged_labels(objects, "nfd", frozenset({"nvidia.com"})) == {"feature.node.kubernetes.io/x": "other", "nvidia.com/y": "1"}
