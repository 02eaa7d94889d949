"""The emulated API over HTTPS, driven by the official kubernetes Python client (never monkeypatched)."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import kmock
import pytest
from gpufleet_twin.kube import ApiServer
from kubernetes import client, watch

DATA_DIR = Path(__file__).resolve().parent / "data"
# k8s\0 + runtime.Unknown{typeMeta{apiVersion: autoscaling/v1, kind: Scale}, raw: ""}: a kind the decoder lacks
SCALE_ENVELOPE = b"k8s\x00\n\x17\n\x0eautoscaling/v1\x12\x05Scale\x12\x00"


def _raw(
    api: ApiServer, method: str, path: str, body: bytes | None = None, content_type: str = "application/json", token: str | None = "default"
) -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {api.token if token == 'default' else token}"
    request = urllib.request.Request(api.url + path, data=body, method=method, headers=headers)
    context = ssl.create_default_context(cafile=str(api.ca_path))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload.decode()


def test_discovery_documents(apiserver: ApiServer) -> None:
    assert _raw(apiserver, "GET", "/api")[1]["versions"] == ["v1"]
    groups = {g["name"]: g["preferredVersion"]["version"] for g in _raw(apiserver, "GET", "/apis")[1]["groups"]}
    assert {"apps": "v1", "policy": "v1", "rbac.authorization.k8s.io": "v1", "coordination.k8s.io": "v1"}.items() <= groups.items()
    core = {r["name"]: r for r in _raw(apiserver, "GET", "/api/v1")[1]["resources"]}
    assert core["pods/eviction"]["group"] == "policy" and core["pods/eviction"]["kind"] == "Eviction"
    assert core["pods/log"]["verbs"] == ["get"] and core["nodes/status"]["verbs"] == ["get", "patch", "update"]
    assert core["nodes"]["namespaced"] is False and "no" in core["nodes"]["shortNames"]
    assert _raw(apiserver, "GET", "/apis/nope.example.com")[0] == 404
    assert _raw(apiserver, "GET", "/version")[1]["minor"] == "35"


def test_openapi_v3_advertises_server_side_field_validation(apiserver: ApiServer) -> None:
    root = _raw(apiserver, "GET", "/openapi/v3")[1]
    url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
    document = _raw(apiserver, "GET", url)[1]
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "DaemonSet"}
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in patch["parameters"] if p["name"] == "fieldValidation"
    ).items()


def test_authentication_is_required(apiserver: ApiServer) -> None:
    for token in (None, "wrong"):
        status, body = _raw(apiserver, "GET", "/api/v1/nodes", token=token)
        assert (status, body["reason"], body["code"]) == (401, "Unauthorized", 401)
    assert _raw(apiserver, "GET", "/readyz", token=None) == (200, "ok")
    config = client.Configuration()
    config.host, config.ssl_ca_cert = apiserver.url, str(apiserver.ca_path)
    with pytest.raises(client.ApiException) as refused:
        client.CoreV1Api(client.ApiClient(config)).list_node()
    assert refused.value.status == 401
    config.api_key = {"authorization": f"Bearer {apiserver.token}"}
    assert client.CoreV1Api(client.ApiClient(config)).list_node().items == []


def test_node_patch_types(core_v1: client.CoreV1Api) -> None:
    core_v1.create_node({"metadata": {"name": "gpu-0", "labels": {"a": "1"}}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}})
    strategic = core_v1.patch_node("gpu-0", {"metadata": {"labels": {"b": "2"}}, "spec": {"unschedulable": True}})
    assert strategic.metadata.labels == {"a": "1", "b": "2"} and strategic.spec.unschedulable
    json_patched = core_v1.patch_node("gpu-0", [{"op": "replace", "path": "/metadata/labels/a", "value": "3"}])
    assert json_patched.metadata.labels["a"] == "3"
    merged = core_v1.patch_node(
        "gpu-0", {"metadata": {"labels": {"b": None}}, "spec": {"taints": None}}, _content_type="application/merge-patch+json"
    )
    assert merged.metadata.labels == {"a": "3"} and merged.spec.taints is None
    applied = core_v1.patch_node(
        "gpu-0",
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-0", "labels": {"nvidia.com/mig.config": "all-1g.5gb"}}},
        field_manager="gpufleet",
        _content_type="application/apply-patch+yaml",
    )
    assert applied.metadata.labels == {"a": "3", "nvidia.com/mig.config": "all-1g.5gb"}
    assert int(applied.metadata.resource_version) > int(strategic.metadata.resource_version)
    with pytest.raises(client.ApiException) as failed_test:
        core_v1.patch_node("gpu-0", [{"op": "test", "path": "/metadata/name", "value": "other"}])
    assert failed_test.value.status == 422


def test_node_status_subresource(core_v1: client.CoreV1Api) -> None:
    core_v1.create_node({"metadata": {"name": "gpu-0"}, "status": {"allocatable": {"nvidia.com/gpu": "8"}}})
    core_v1.patch_node("gpu-0", {"status": {"allocatable": {"nvidia.com/gpu": "0"}}})
    assert core_v1.read_node("gpu-0").status.allocatable == {"nvidia.com/gpu": "8"}, "main resource ignores status"
    core_v1.patch_node_status("gpu-0", {"status": {"allocatable": {"nvidia.com/gpu": None, "nvidia.com/mig-1g.5gb": "56"}}})
    assert core_v1.read_node_status("gpu-0").status.allocatable == {"nvidia.com/mig-1g.5gb": "56"}


def test_selectors_and_list_shape(apiserver: ApiServer, core_v1: client.CoreV1Api) -> None:
    for name, labels in (
        ("gpu-0", {"nvidia.com/gpu.present": "true", "nvidia.com/mig.config.state": "success"}),
        ("gpu-1", {"nvidia.com/gpu.present": "true"}),
        ("cpu-0", {}),
    ):
        apiserver.cluster.add_node(name, labels=labels)
    names = lambda **kw: sorted(n.metadata.name for n in core_v1.list_node(**kw).items)  # noqa: E731
    assert names(label_selector="nvidia.com/gpu.present=true") == ["gpu-0", "gpu-1"]
    assert names(label_selector="nvidia.com/gpu.present,!nvidia.com/mig.config.state") == ["gpu-1"]
    assert names(label_selector="nvidia.com/mig.config.state notin (success)") == ["cpu-0", "gpu-1"]
    assert names(field_selector="metadata.name=cpu-0") == ["cpu-0"]
    status, listing = _raw(apiserver, "GET", "/api/v1/nodes?labelSelector=nvidia.com%2Fgpu.present%3Dtrue")
    assert (status, listing["kind"], listing["apiVersion"]) == (200, "NodeList", "v1")
    assert listing["metadata"]["resourceVersion"] == str(apiserver.cluster.revision)
    with pytest.raises(client.ApiException) as bad:
        core_v1.list_node(label_selector="in in in")
    assert bad.value.status == 400


def test_errors_are_status_objects(core_v1: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as missing:
        core_v1.read_namespaced_pod("nope", "default")
    assert missing.value.status == 404
    assert json.loads(missing.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "nope" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "nope", "kind": "pods"},
    }
    core_v1.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    with pytest.raises(client.ApiException) as exists:
        core_v1.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert exists.value.status == 409 and json.loads(exists.value.body)["reason"] == "AlreadyExists"


def test_dry_run_and_delete_collection(apiserver: ApiServer, core_v1: client.CoreV1Api) -> None:
    core_v1.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All")
    assert not apiserver.cluster.exists("configmaps", "dry", "default")
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        core_v1.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"app": app}}})
    core_v1.delete_collection_namespaced_config_map("default", label_selector="app=x")
    assert [c["metadata"]["name"] for c in apiserver.cluster.list("configmaps", "default")] == ["c"]


def test_watch_follows_a_selection(apiserver: ApiServer, core_v1: client.CoreV1Api) -> None:
    apiserver.cluster.add_node("gpu-0", labels={"pool": "gpu"})
    listed = core_v1.list_node(label_selector="pool=gpu")

    def changes() -> None:
        apiserver.cluster.set_node_labels("gpu-0", {"extra": "1"})
        apiserver.cluster.set_node_labels("gpu-0", {"pool": None})
        apiserver.cluster.add_node("gpu-1", labels={"pool": "gpu"})

    timer = threading.Timer(0.3, changes)
    timer.start()
    seen = []
    stream = watch.Watch()
    for event in stream.stream(
        core_v1.list_node, label_selector="pool=gpu", resource_version=listed.metadata.resource_version, timeout_seconds=5
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            stream.stop()
    timer.join()
    assert seen == [("MODIFIED", "gpu-0"), ("DELETED", "gpu-0"), ("ADDED", "gpu-1")]


def test_eviction_and_logs_through_the_client(apiserver: ApiServer, core_v1: client.CoreV1Api) -> None:
    cluster = apiserver.cluster
    cluster.add_node("gpu-0")
    for name in ("w-0", "w-1"):
        cluster.create(
            "pods",
            {"metadata": {"name": name, "labels": {"app": "w"}}, "spec": {"nodeName": "gpu-0", "containers": [{"name": "c"}]}},
            "default",
        )
    cluster.create(
        "poddisruptionbudgets",
        {"metadata": {"name": "w"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "w"}}}},
        "default",
    )
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "w-0", "namespace": "default"}}
    with pytest.raises(client.ApiException) as blocked:
        core_v1.create_namespaced_pod_eviction("w-0", "default", eviction)
    body = json.loads(blocked.value.body)
    assert (blocked.value.status, body["reason"], body["message"]) == (
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    )
    cluster.patch("pdb", "w", {"spec": {"minAvailable": 1}}, "merge", "default")
    core_v1.create_namespaced_pod_eviction("w-0", "default", eviction)
    assert [p.metadata.name for p in core_v1.list_namespaced_pod("default").items] == ["w-1"]

    cluster.set_pod_log("default", "w-1", "nvidia-device-plugin: starting\nMIG strategy: mixed\n")
    assert core_v1.read_namespaced_pod_log("w-1", "default", tail_lines=1) == "MIG strategy: mixed\n"


def test_protobuf_bodies_are_decoded(apiserver: ApiServer) -> None:
    body = (DATA_DIR / "helm4-release-secret.pb").read_bytes()
    status, created = _raw(apiserver, "POST", "/api/v1/namespaces/default/secrets", body, "application/vnd.kubernetes.protobuf")
    assert status == 201 and created["type"] == "helm.sh/release.v1"
    assert apiserver.cluster.get("secrets", "sh.helm.release.v1.tiny.v1", "default")["metadata"]["labels"]["owner"] == "helm"
    status, refused = _raw(
        apiserver, "PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", SCALE_ENVELOPE, "application/vnd.kubernetes.protobuf"
    )
    assert status == 404, "the scale subresource is not served"
    status, refused = _raw(
        apiserver, "POST", "/api/v1/namespaces/default/configmaps", SCALE_ENVELOPE, "application/vnd.kubernetes.protobuf"
    )
    assert status == 415 and "autoscaling/v1/Scale" in refused["message"]


def test_faults_can_be_injected_in_front_of_the_emulation(apiserver: ApiServer, core_v1: client.CoreV1Api) -> None:
    apiserver.cluster.create("pods", {"metadata": {"name": "p"}, "spec": {"containers": []}}, "default")
    (
        apiserver.handler["post", kmock.subresource("eviction")][:1]
        << 503
        << {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503}
    )
    eviction = {"metadata": {"name": "p", "namespace": "default"}}
    with pytest.raises(client.ApiException) as injected:
        core_v1.create_namespaced_pod_eviction("p", "default", eviction)
    assert injected.value.status == 503
    core_v1.create_namespaced_pod_eviction("p", "default", eviction)
    assert not apiserver.cluster.exists("pods", "p", "default")
    assert len(list(apiserver.handler["post", kmock.subresource("eviction")])) == 2


def test_abandoned_watches_are_dropped(apiserver: ApiServer) -> None:
    connection = http.client.HTTPSConnection("127.0.0.1", apiserver.port, context=ssl.create_default_context(cafile=str(apiserver.ca_path)))
    connection.request("GET", "/api/v1/namespaces?watch=1", headers={"Authorization": f"Bearer {apiserver.token}"})
    response = connection.getresponse()
    assert (response.status, response.getheader("Content-Type")) == (200, "application/json")
    assert len(apiserver.cluster._subscribers) == 1
    connection.close()
    deadline = time.monotonic() + 5
    while apiserver.cluster._subscribers and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the closed connection on its own
    assert apiserver.cluster._subscribers == {}
