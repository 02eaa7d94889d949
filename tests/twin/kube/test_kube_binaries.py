"""The real kubectl 1.35 and helm 4.1 / 3.17 binaries against the emulated API server.

They run in CI after ``scripts/install-k8s-tools .tools/bin`` and skip, saying so, when the binaries
are absent. No special flags are needed: the server answers the OpenAPI v3 queries that make kubectl
and helm leave field validation to it (so no ``--validate=false`` / ``--disable-openapi-validation``),
and it implements server-side apply (so helm 4 runs with its default ``--server-side=true``).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from gpufleet_twin.kube import ApiServer

CommandLine = Callable[..., subprocess.CompletedProcess[str]]  # the kubectl/helm fixtures from conftest

pytestmark = pytest.mark.slow

CHART = Path(__file__).resolve().parent / "data" / "chart"


def _gpu_nodes(api: ApiServer) -> None:
    api.cluster.add_node(
        "gpu-0", labels={"nvidia.com/gpu.present": "true"}, taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    )
    api.cluster.add_node("cpu-0")


def test_kubectl_reads_and_labels_nodes(apiserver: ApiServer, kubectl: CommandLine) -> None:
    _gpu_nodes(apiserver)
    listing = json.loads(kubectl("get", "nodes", "-o", "json").stdout)
    assert sorted(item["metadata"]["name"] for item in listing["items"]) == ["cpu-0", "gpu-0"]
    kubectl("label", "node", "gpu-0", "nvidia.com/mig.config=all-1g.5gb")
    kubectl("label", "node", "gpu-0", "nvidia.com/mig.config=all-balanced", "--overwrite")
    assert apiserver.cluster.get("nodes", "gpu-0")["metadata"]["labels"]["nvidia.com/mig.config"] == "all-balanced"
    selected = kubectl("get", "nodes", "-l", "nvidia.com/mig.config in (all-balanced)", "-o", "name").stdout.split()
    assert selected == ["node/gpu-0"]
    kubectl("label", "node", "gpu-0", "nvidia.com/mig.config-")
    assert "nvidia.com/mig.config" not in apiserver.cluster.get("nodes", "gpu-0")["metadata"]["labels"]
    kubectl("wait", "--for=condition=Ready", "node/gpu-0", "--timeout=10s")


def test_kubectl_cordon_and_uncordon(apiserver: ApiServer, kubectl: CommandLine) -> None:
    _gpu_nodes(apiserver)
    kubectl("cordon", "gpu-0")
    assert apiserver.cluster.get("nodes", "gpu-0")["spec"]["unschedulable"] is True
    assert "SchedulingDisabled" in kubectl("get", "node", "gpu-0").stdout
    kubectl("uncordon", "gpu-0")
    assert not apiserver.cluster.get("nodes", "gpu-0")["spec"].get("unschedulable")


def test_kubectl_drain_waits_for_the_disruption_budget(apiserver: ApiServer, kubectl: CommandLine) -> None:
    cluster = apiserver.cluster
    _gpu_nodes(apiserver)
    cluster.create(
        "daemonsets",
        {
            "metadata": {"name": "plugin"},
            "spec": {
                "selector": {"matchLabels": {"app": "plugin"}},
                "template": {
                    "metadata": {"labels": {"app": "plugin"}},
                    "spec": {
                        "nodeSelector": {"nvidia.com/gpu.present": "true"},
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{"name": "p", "image": "p"}],
                    },
                },
            },
        },
        "kube-system",
    )
    rs = cluster.create(
        "replicasets",
        {"metadata": {"name": "train"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "train"}}, "template": {}}},
        "default",
    )
    owner = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "train", "uid": rs["metadata"]["uid"], "controller": True}]
    for name, node in (("train-0", "gpu-0"), ("train-1", "cpu-0")):
        cluster.create(
            "pods",
            {
                "metadata": {"name": name, "labels": {"app": "train"}, "ownerReferences": owner},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "c"}]},
            },
            "default",
        )
    cluster.create(
        "poddisruptionbudgets",
        {"metadata": {"name": "train"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "train"}}}},
        "default",
    )

    # kubectl retries a 429 every 5 s; relax the budget after its first refusal.
    relax = threading.Timer(1.0, lambda: cluster.patch("pdb", "train", {"spec": {"minAvailable": 1}}, "merge", "default"))
    relax.start()
    try:
        result = kubectl("drain", "gpu-0", "--ignore-daemonsets", "--timeout=30s")
    finally:
        relax.cancel()
    assert "Cannot evict pod as it would violate the pod's disruption budget." in result.stderr
    assert "pod/train-0 evicted" in result.stdout
    assert [p["metadata"]["name"] for p in cluster.pods_on_node("gpu-0", "default")] == []
    assert len(cluster.pods_on_node("gpu-0", "kube-system")) == 1, "daemon pods stay"
    assert cluster.get("nodes", "gpu-0")["spec"]["unschedulable"] is True


def test_kubectl_logs(apiserver: ApiServer, kubectl: CommandLine) -> None:
    apiserver.cluster.add_node("gpu-0")
    apiserver.cluster.create(
        "pods", {"metadata": {"name": "plugin"}, "spec": {"nodeName": "gpu-0", "containers": [{"name": "p", "image": "p"}]}}, "default"
    )
    apiserver.cluster.set_pod_log("default", "plugin", "Starting\nRegistered device plugin for 'nvidia.com/mig-1g.5gb'\n")
    assert kubectl("logs", "plugin", "--tail=1").stdout == "Registered device plugin for 'nvidia.com/mig-1g.5gb'\n"


@pytest.mark.parametrize("server_side", [False, True], ids=["client-side", "server-side"])
def test_kubectl_apply(apiserver: ApiServer, kubectl: CommandLine, tmp_path: Path, server_side: bool) -> None:
    manifest = tmp_path / "cm.yaml"
    flags = ["--server-side"] if server_side else []
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mig-parted-config\n  namespace: default\ndata:\n  a: '1'\n  b: '2'\n"
    )
    kubectl("apply", *flags, "-f", str(manifest))
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mig-parted-config\n  namespace: default\ndata:\n  a: '3'\n")
    result = kubectl("apply", *flags, "-f", str(manifest))
    assert "warning" not in result.stderr.lower()
    assert apiserver.cluster.get("configmaps", "mig-parted-config", "default")["data"] == {"a": "3"}


@pytest.fixture(params=["helm4", "helm3"])
def helm(request: pytest.FixtureRequest) -> CommandLine:
    return request.getfixturevalue(request.param)


def test_helm_release_lifecycle(apiserver: ApiServer, helm: CommandLine, tmp_path: Path) -> None:
    cluster = apiserver.cluster
    _gpu_nodes(apiserver)
    values = tmp_path / "values.yaml"
    values.write_text("migStrategy: mixed\n")
    helm(
        "upgrade",
        "--install",
        "nvdp",
        str(CHART),
        "--namespace",
        "nvidia-device-plugin",
        "--create-namespace",
        "-f",
        str(values),
        "--wait",
        "--timeout",
        "30s",
    )

    releases = json.loads(helm("list", "--namespace", "nvidia-device-plugin", "-o", "json").stdout)
    assert [(r["name"], r["status"], r["chart"], r["revision"]) for r in releases] == [
        ("nvdp", "deployed", "tiny-device-plugin-0.1.0", "1")
    ]
    assert json.loads(helm("get", "values", "nvdp", "--namespace", "nvidia-device-plugin", "-o", "json").stdout) == {"migStrategy": "mixed"}
    pods = cluster.list("pods", "nvidia-device-plugin")
    assert [p["spec"]["nodeName"] for p in pods] == ["gpu-0"]
    assert pods[0]["spec"]["containers"][0]["env"] == [{"name": "MIG_STRATEGY", "value": "mixed"}]
    assert cluster.exists("clusterrolebindings", "nvdp-role-binding")

    values.write_text("migStrategy: single\n")
    helm("upgrade", "nvdp", str(CHART), "--namespace", "nvidia-device-plugin", "-f", str(values), "--wait", "--timeout", "30s")
    assert json.loads(helm("get", "values", "nvdp", "--namespace", "nvidia-device-plugin", "-o", "json").stdout) == {
        "migStrategy": "single"
    }
    assert "migStrategy: single" in cluster.get("configmaps", "nvdp-configs", "nvidia-device-plugin")["data"]["config.yaml"]
    rolled = cluster.list("pods", "nvidia-device-plugin")
    assert [p["spec"]["containers"][0]["env"][0]["value"] for p in rolled] == ["single"]
    assert rolled[0]["metadata"]["name"] != pods[0]["metadata"]["name"]
    history = [s["metadata"]["labels"]["status"] for s in cluster.list("secrets", "nvidia-device-plugin", label_selector="owner=helm")]
    assert history == ["superseded", "deployed"]

    helm("uninstall", "nvdp", "--namespace", "nvidia-device-plugin")
    assert json.loads(helm("list", "--all-namespaces", "-o", "json").stdout) == []
    leftovers = [
        (kind, len(cluster.list(kind, "nvidia-device-plugin")))
        for kind in ("daemonsets", "pods", "configmaps", "serviceaccounts", "secrets")
    ]
    assert all(count == 0 for _, count in leftovers), leftovers
    assert not cluster.exists("clusterroles", "nvdp-role")


def test_kubectl_imperative_creates_arrive_as_protobuf(apiserver: ApiServer, kubectl: CommandLine) -> None:
    kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=0")
    kubectl("create", "pdb", "web", "--selector=app=web", "--min-available=0")
    assert apiserver.cluster.get("deployments", "web", "default")["spec"]["replicas"] == 0
    assert apiserver.cluster.get("poddisruptionbudgets", "web", "default")["spec"]["minAvailable"] == 0
    protobuf_posts = [r.url.path for r in apiserver.handler if r.method.value == "POST" and r.body.startswith(b"k8s\x00")]
    assert protobuf_posts == ["/apis/apps/v1/namespaces/default/deployments", "/apis/policy/v1/namespaces/default/poddisruptionbudgets"]


def test_kubectl_rollout_status_of_a_daemonset(apiserver: ApiServer, kubectl: CommandLine, tmp_path: Path) -> None:
    _gpu_nodes(apiserver)
    manifest = tmp_path / "ds.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: gfd\n  namespace: default\nspec:\n"
        "  selector:\n    matchLabels: {app: gfd}\n  template:\n    metadata:\n      labels: {app: gfd}\n"
        "    spec:\n      nodeSelector: {nvidia.com/gpu.present: 'true'}\n      tolerations: [{operator: Exists}]\n"
        "      containers: [{name: gfd, image: gfd}]\n"
    )
    kubectl("apply", "-f", str(manifest))
    result = kubectl("rollout", "status", "daemonset/gfd", "--timeout=20s")
    assert 'daemon set "gfd" successfully rolled out' in result.stdout
