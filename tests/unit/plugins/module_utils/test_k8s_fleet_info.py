"""The fleet-wide read a rollout plans from: every node and the pods a drain would evict, in two API requests."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from gpufleet_twin.kube import ApiServer

from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeClient
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_node import read_fleet_info

NODES = ("gpu-0", "gpu-1", "gpu-2", "cpu-0")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[KubeClient]:
    api = ApiServer(state_dir=tmp_path / "apiserver").start()
    for name in NODES:
        api.cluster.add_node(name)
    try:
        with KubeClient.from_params({"kubeconfig": str(api.kubeconfig_path)}) as kube:
            yield kube
    finally:
        api.stop()


def _pod(name: str, node: str, gpu: bool = True, owner: str | None = "trainer-abc") -> dict:
    limits = {"nvidia.com/mig-1g.5gb": "1"} if gpu else {"cpu": "1"}
    metadata: dict = {"name": name, "namespace": "default"}
    if owner:
        metadata["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": "u-" + owner,
                                        "controller": True}]
    return {"metadata": metadata, "spec": {"nodeName": node, "containers": [
        {"name": "main", "image": "cuda", "resources": {"limits": limits}}]}}


def test_every_node_and_the_pods_a_drain_would_evict_come_from_two_requests(client: KubeClient) -> None:
    client.create_pod("default", _pod("train-0", "gpu-0"))
    client.create_pod("default", _pod("web-0", "gpu-0", gpu=False))
    client.create_pod("default", _pod("scratch", "gpu-1", owner=None))
    client.create_pod("default", _pod("train-9", "cpu-0"))
    calls = []
    for method in ("get_node", "list_nodes", "list_pods", "pods_on_node"):
        original = getattr(client, method)

        def counted(*args, _original=original, _method=method, **kwargs):
            calls.append(_method)
            return _original(*args, **kwargs)

        setattr(client, method, counted)

    result = read_fleet_info(client, ["gpu-0", "gpu-1", "gpu-2", "gpu-9"], drain_preview={"gpu_pods_only": True})

    assert calls == ["list_nodes", "list_pods"]
    assert sorted(result["nodes"]) == ["gpu-0", "gpu-1", "gpu-2"]
    assert result["missing"] == ["gpu-9"]
    assert result["nodes"]["gpu-0"]["drain"]["evict"] == [{"namespace": "default", "name": "train-0"}]
    assert result["nodes"]["gpu-1"]["drain"]["evict"] == []
    assert [(ref["name"], "has no controller" in ref["reason"]) for ref in result["nodes"]["gpu-1"]["drain"]["refuse"]] == [
        ("scratch", True)]
    assert result["nodes"]["gpu-2"]["drain"] == {"evict": [], "refuse": [], "terminating": []}
    assert result["nodes"]["gpu-0"]["unschedulable"] is False


def test_without_a_drain_preview_no_pod_is_listed(client: KubeClient) -> None:
    result = read_fleet_info(client, ["gpu-0"])
    assert result == {"nodes": {"gpu-0": {"name": "gpu-0", "unschedulable": False, "labels": result["nodes"]["gpu-0"]["labels"],
                                          "annotations": result["nodes"]["gpu-0"]["annotations"]}}, "missing": []}
    assert "drain" not in result["nodes"]["gpu-0"]
