"""Charts that need more than DaemonSets, with helm 4 and helm 3, ``--wait`` included.

``operator-chart`` (ours) exercises what NVIDIA's nvidia-device-plugin chart 0.20.0 and its
node-feature-discovery 0.19.0 subchart ask of a cluster; the last test installs NVIDIA's chart itself when it
is provided (gpufleet_twin.nvidia_chart), and skips saying how to provide it otherwise.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpufleet_twin import nvidia_chart
from gpufleet_twin.kube import ApiServer, Cluster

OPERATOR_CHART = Path(__file__).resolve().parent / "data" / "operator-chart"
NAMESPACE = "operators"
Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def scheduling_apiserver(tmp_path: Path) -> Iterator[ApiServer]:
    cluster = Cluster(schedule_pods=True)  # Deployment and Job pods need a node chosen for them
    cluster.add_node("gpu-0", labels={"nvidia.com/gpu.present": "true"}, capacity={"cpu": "64", "memory": "512Gi", "pods": "110"})
    cluster.add_node("cpu-0", capacity={"cpu": "8", "memory": "32Gi", "pods": "110"})
    api = ApiServer(cluster, state_dir=tmp_path / "apiserver").start()
    try:
        yield api
        assert not list(api.handler.errors), f"the emulated API server failed internally: {list(api.handler.errors)!r}"
    finally:
        api.stop()


@pytest.fixture
def apiserver(scheduling_apiserver: ApiServer) -> ApiServer:
    """Overrides conftest's, so its helm3/helm4 fixtures talk to the scheduling server."""
    return scheduling_apiserver


@pytest.fixture(params=["helm4", "helm3"])
def helm(request: pytest.FixtureRequest) -> Helm:
    return request.getfixturevalue(request.param)


def _established(cluster: Cluster, name: str) -> bool:
    conditions = cluster.get("customresourcedefinitions", name)["status"]["conditions"]
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


@pytest.mark.slow
def test_operator_chart_installs_upgrades_and_uninstalls(scheduling_apiserver: ApiServer, helm: Helm) -> None:
    cluster = scheduling_apiserver.cluster
    ns = ["--namespace", NAMESPACE]
    helm("install", "op", str(OPERATOR_CHART), *ns, "--create-namespace", "--wait", "--timeout", "60s")
    assert _established(cluster, "widgets.example.gpufleet.dev") and _established(cluster, "gadgets.example.gpufleet.dev")
    assert cluster.get("widgets", "op-widget", NAMESPACE)["spec"] == {"image": "tiny/operator:1"}
    assert cluster.exists("gadgets", "op-gadget")
    master = cluster.get("deployments", "op-master", NAMESPACE)
    assert master["status"]["availableReplicas"] == 2
    pods = cluster.list("pods", NAMESPACE, label_selector="app=op-master")
    assert sorted(p["status"]["phase"] for p in pods) == ["Running", "Running"] and all(p["spec"].get("nodeName") for p in pods)
    assert len(cluster.list("pods", NAMESPACE, label_selector="app=op-worker")) == 2

    helm("upgrade", "op", str(OPERATOR_CHART), *ns, "--set", "image=tiny/operator:2", "--wait", "--timeout", "60s")
    assert {p["spec"]["containers"][0]["image"] for p in cluster.list("pods", NAMESPACE)} == {"tiny/operator:2"}
    revisions = sorted(
        (rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"], rs["spec"]["replicas"]) for rs in cluster.list("replicasets", NAMESPACE)
    )
    assert revisions == [("1", 0), ("2", 2)]
    before = cluster.revision
    helm("upgrade", "op", str(OPERATOR_CHART), *ns, "--set", "image=tiny/operator:2", "--wait", "--timeout", "60s")
    rewritten = {e.resource.kind for e in cluster.events_since(before)}
    assert rewritten == {"Secret"}, "a no-op upgrade writes only helm's release record"

    start = cluster.revision
    helm("uninstall", "op", *ns, "--wait", "--timeout", "60s")
    assert json.loads(helm("list", "--all-namespaces", "-o", "json").stdout) == []
    job_events = [(e.type, e.object["status"]) for e in cluster.events_since(start) if e.resource.kind == "Job"]
    assert any(any(c["type"] == "Complete" for c in status.get("conditions", [])) for _, status in job_events), "the post-delete hook ran"
    assert job_events[-1][0] == "DELETED", "hook-succeeded removed it"
    leftovers = {kind: cluster.list(kind, NAMESPACE) for kind in ("deployments", "replicasets", "daemonsets", "pods", "jobs", "widgets")}
    assert all(not items for items in leftovers.values()), leftovers
    assert not cluster.exists("gadgets", "op-gadget") and not cluster.exists("clusterroles", "op-operator")
    assert _established(cluster, "widgets.example.gpufleet.dev"), "helm leaves CRDs installed"


@pytest.mark.slow
def test_nvidia_chart_installs_upgrades_and_uninstalls(scheduling_apiserver: ApiServer, helm: Helm) -> None:
    chart = nvidia_chart.nvidia_chart()
    if chart is None:
        pytest.skip(nvidia_chart.unavailable_reason())
    cluster = scheduling_apiserver.cluster
    ns = ["--namespace", "nvidia-device-plugin"]
    values = ["--set", "gfd.enabled=true", "--set", "migStrategy=mixed"]
    helm("install", "nvdp", str(chart), *ns, "--create-namespace", *values, "--wait", "--timeout", "60s")
    for crd in ("nodefeatures", "nodefeaturerules", "nodefeaturegroups"):
        assert _established(cluster, f"{crd}.nfd.k8s-sigs.io")
    deployments = {d["metadata"]["name"]: d["status"].get("availableReplicas") for d in cluster.list("deployments", "nvidia-device-plugin")}
    assert deployments == {"nvdp-node-feature-discovery-gc": 1, "nvdp-node-feature-discovery-master": 1}
    daemonsets = {d["metadata"]["name"]: d["status"]["numberReady"] for d in cluster.list("daemonsets", "nvidia-device-plugin")}
    assert daemonsets == {
        "nvdp-node-feature-discovery-worker": 2,
        "nvdp-nvidia-device-plugin": 1,
        "nvdp-nvidia-device-plugin-gpu-feature-discovery": 1,
        "nvdp-nvidia-device-plugin-mps-control-daemon": 0,
    }

    helm("upgrade", "nvdp", str(chart), *ns, "--set", "gfd.enabled=true", "--set", "migStrategy=single", "--wait", "--timeout", "60s")
    plugin_pods = cluster.list("pods", "nvidia-device-plugin", label_selector="app.kubernetes.io/name=nvidia-device-plugin")
    assert {e["value"] for p in plugin_pods for c in p["spec"]["containers"] for e in c.get("env", []) if e["name"] == "MIG_STRATEGY"} == {"single"}
    before = cluster.revision
    helm("upgrade", "nvdp", str(chart), *ns, "--set", "gfd.enabled=true", "--set", "migStrategy=single", "--wait", "--timeout", "60s")
    assert {e.resource.kind for e in cluster.events_since(before)} == {"Secret"}

    helm("uninstall", "nvdp", *ns, "--wait", "--timeout", "60s")
    assert all(not cluster.list(kind, "nvidia-device-plugin") for kind in ("deployments", "daemonsets", "pods", "jobs"))
