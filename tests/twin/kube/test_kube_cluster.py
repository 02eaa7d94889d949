"""The store's API-server semantics, through the in-process API node agents will use."""

from __future__ import annotations

import time

import pytest
from gpufleet_twin.kube import ApiError, Cluster


def _configmap(name: str, **data: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "data": dict(data)}


def test_create_sets_server_fields_and_revisions_grow(cluster: Cluster) -> None:
    first = cluster.create("configmaps", _configmap("a", k="1"), "default")
    second = cluster.create("configmaps", _configmap("b"), "default")
    assert first["apiVersion"] == "v1" and first["kind"] == "ConfigMap"
    assert first["metadata"]["uid"] != second["metadata"]["uid"]
    assert first["metadata"]["creationTimestamp"].endswith("Z")
    assert int(second["metadata"]["resourceVersion"]) == int(first["metadata"]["resourceVersion"]) + 1
    assert "generation" not in first["metadata"]
    assert cluster.revision == int(second["metadata"]["resourceVersion"])


def test_create_conflicts_and_missing_namespace(cluster: Cluster) -> None:
    cluster.create("configmaps", _configmap("a"), "default")
    with pytest.raises(ApiError) as exists:
        cluster.create("configmaps", _configmap("a"), "default")
    assert (exists.value.code, exists.value.reason, exists.value.message) == (409, "AlreadyExists", 'configmaps "a" already exists')
    with pytest.raises(ApiError) as missing:
        cluster.create("configmaps", _configmap("a"), "nowhere")
    assert (missing.value.code, missing.value.message) == (404, 'namespaces "nowhere" not found')
    with pytest.raises(ApiError) as invalid:
        cluster.create("configmaps", _configmap("Upper_Case"), "default")
    assert invalid.value.code == 422 and "metadata.name" in invalid.value.message


def test_not_found_names_the_group(cluster: Cluster) -> None:
    with pytest.raises(ApiError) as missing:
        cluster.get("daemonsets", "dp", "default")
    assert missing.value.to_status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'daemonsets.apps "dp" not found',
        "reason": "NotFound",
        "details": {"name": "dp", "kind": "daemonsets", "group": "apps"},
        "code": 404,
    }


def test_update_is_optimistic_and_noop_writes_nothing(cluster: Cluster) -> None:
    created = cluster.create("configmaps", _configmap("a", k="1"), "default")
    stale = dict(created, data={"k": "2"})
    updated = cluster.replace("configmaps", "a", stale, "default")
    assert updated["data"] == {"k": "2"}
    with pytest.raises(ApiError) as conflict:
        cluster.replace("configmaps", "a", dict(created, data={"k": "3"}), "default")
    assert conflict.value.code == 409 and "the object has been modified" in conflict.value.message
    again = cluster.patch("configmaps", "a", {"data": {"k": "2"}}, "merge", "default")
    assert again["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]


def test_generation_follows_spec_only() -> None:
    cluster = Cluster(controllers=[])  # storage semantics only: the Deployment controller would write status
    spec = {
        "selector": {"matchLabels": {"app": "x"}},
        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "1"}]}},
    }
    created = cluster.create("deployments", {"metadata": {"name": "d"}, "spec": spec}, "default")
    assert created["metadata"]["generation"] == 1
    labelled = cluster.patch("deployments", "d", {"metadata": {"labels": {"l": "1"}}}, "merge", "default")
    assert labelled["metadata"]["generation"] == 1
    status = cluster.patch("deployments", "d", {"status": {"replicas": 1}}, "merge", "default", subresource="status")
    assert status["metadata"]["generation"] == 1 and status["status"] == {"replicas": 1}
    changed = cluster.patch("deployments", "d", {"spec": {"replicas": 3}}, "merge", "default")
    assert changed["metadata"]["generation"] == 2


def test_status_is_separate_from_the_main_resource(cluster: Cluster) -> None:
    pod = cluster.create(
        "pods", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"}}, "default"
    )
    assert pod["status"]["phase"] == "Pending", "status is reset on create"
    ignored = cluster.patch("pods", "p", {"status": {"phase": "Failed"}}, "merge", "default")
    assert ignored["status"]["phase"] == "Pending", "the main resource ignores status"
    node = cluster.add_node("gpu-0", capacity={"nvidia.com/gpu": "8"})
    assert node["status"]["capacity"] == {"nvidia.com/gpu": "8"}, "a node registers with its status"
    node = cluster.patch("nodes", "gpu-0", {"status": {"capacity": {"nvidia.com/gpu": "1"}}}, "merge")
    assert node["status"]["capacity"] == {"nvidia.com/gpu": "8"}
    node = cluster.set_node_status("gpu-0", {"allocatable": {"nvidia.com/mig-1g.5gb": "7"}})
    assert node["status"]["allocatable"] == {"nvidia.com/mig-1g.5gb": "7"}


def test_set_node_status_merges_conditions_by_type(cluster: Cluster) -> None:
    cluster.add_node("gpu-0")
    node = cluster.set_node_status("gpu-0", {"conditions": [{"type": "MemoryPressure", "status": "False"}]})
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]} == {"Ready": "True", "MemoryPressure": "False"}


def test_finalizers_hold_deletion(cluster: Cluster) -> None:
    cluster.create("configmaps", {"metadata": {"name": "a", "finalizers": ["example.com/hold"]}}, "default")
    held, deleted_now = cluster.delete("configmaps", "a", "default")
    assert not deleted_now and held["metadata"]["deletionTimestamp"]
    cluster.patch("configmaps", "a", {"metadata": {"finalizers": None}}, "merge", "default")
    assert not cluster.exists("configmaps", "a", "default")


def test_delete_preconditions(cluster: Cluster) -> None:
    created = cluster.create("configmaps", _configmap("a"), "default")
    with pytest.raises(ApiError) as conflict:
        cluster.delete("configmaps", "a", "default", preconditions={"uid": "other"})
    assert conflict.value.code == 409 and "Precondition failed: UID" in conflict.value.message
    _, deleted_now = cluster.delete("configmaps", "a", "default", preconditions={"uid": created["metadata"]["uid"]})
    assert deleted_now


def test_owner_references_cascade_or_orphan(cluster: Cluster) -> None:
    owner = cluster.create("configmaps", _configmap("owner"), "default")
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    cluster.create("configmaps", {"metadata": {"name": "dependent", "ownerReferences": [reference]}}, "default")
    cluster.delete("configmaps", "owner", "default")
    assert not cluster.exists("configmaps", "dependent", "default")

    owner = cluster.create("configmaps", _configmap("owner"), "default")
    reference["uid"] = owner["metadata"]["uid"]
    cluster.create("configmaps", {"metadata": {"name": "dependent", "ownerReferences": [reference]}}, "default")
    cluster.delete("configmaps", "owner", "default", propagation_policy="Orphan")
    assert "ownerReferences" not in cluster.get("configmaps", "dependent", "default")["metadata"]


def test_namespace_deletion_removes_its_contents(cluster: Cluster) -> None:
    cluster.create("namespaces", {"metadata": {"name": "gpu"}})
    cluster.create("configmaps", _configmap("a"), "gpu")
    cluster.delete("namespaces", "gpu")
    assert cluster.list("configmaps", "gpu") == []
    with pytest.raises(ApiError) as forbidden:
        cluster.delete("namespaces", "default")
    assert forbidden.value.code == 403


def test_list_filters_and_sorts(cluster: Cluster) -> None:
    for name, node in (("b", "gpu-1"), ("a", "gpu-0"), ("c", "gpu-0")):
        cluster.create(
            "pods",
            {"metadata": {"name": name, "labels": {"app": "x" if name != "c" else "y"}}, "spec": {"nodeName": node, "containers": []}},
            "default",
        )
    assert [p["metadata"]["name"] for p in cluster.list("pods", "default")] == ["a", "b", "c"]
    assert [p["metadata"]["name"] for p in cluster.pods_on_node("gpu-0")] == ["a", "c"]
    assert [p["metadata"]["name"] for p in cluster.list("pods", label_selector="app in (x)", field_selector="spec.nodeName=gpu-0")] == ["a"]
    with pytest.raises(ApiError) as bad:
        cluster.list("pods", field_selector="spec.containers=x")
    assert bad.value.code == 400


def test_secret_string_data_becomes_data(cluster: Cluster) -> None:
    secret = cluster.create("secrets", {"metadata": {"name": "s"}, "stringData": {"token": "abc"}}, "default")
    assert secret["data"] == {"token": "YWJj"} and secret["type"] == "Opaque" and "stringData" not in secret


def test_server_side_apply_creates_then_prunes(cluster: Cluster) -> None:
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}}
    cluster.patch("configmaps", "a", applied, "apply", "default", field_manager="helm")
    cluster.patch("configmaps", "a", {"data": {"z": "other writer"}}, "merge", "default")
    reapplied = dict(applied, data={"x": "1"})
    result = cluster.patch("configmaps", "a", reapplied, "apply", "default", field_manager="helm")
    assert result["data"] == {"x": "1", "z": "other writer"}
    with pytest.raises(ApiError) as no_manager:
        cluster.patch("configmaps", "a", reapplied, "apply", "default")
    assert no_manager.value.code == 400


def test_watch_history_and_expiry(cluster: Cluster) -> None:
    start = cluster.revision
    seen = []
    handle = cluster.subscribe(seen.append)
    cluster.create("configmaps", _configmap("a"), "default")
    cluster.patch("configmaps", "a", {"data": {"k": "v"}}, "merge", "default")
    cluster.delete("configmaps", "a", "default")
    cluster.unsubscribe(handle)
    assert [e.type for e in seen] == ["ADDED", "MODIFIED", "DELETED"]
    assert seen[1].previous is not None and seen[1].previous["data"] == {} and seen[1].object["data"] == {"k": "v"}
    assert [e.type for e in cluster.events_since(start)] == ["ADDED", "MODIFIED", "DELETED"]
    assert cluster.events_since(cluster.revision) == []
    restored = Cluster()
    restored.restore(cluster.snapshot())
    with pytest.raises(ApiError) as expired:
        restored.events_since(start)
    assert expired.value.code == 410


def test_snapshot_round_trip_keeps_identity(cluster: Cluster) -> None:
    created = cluster.create("configmaps", _configmap("a", k="1"), "default")
    cluster.add_node("gpu-0")
    restored = Cluster()
    restored.restore(cluster.snapshot())
    assert restored.get("configmaps", "a", "default") == created
    assert restored.revision == cluster.revision
    assert restored.create("configmaps", _configmap("b"), "default")["metadata"]["resourceVersion"] == str(cluster.revision + 1)


def test_snapshot_keeps_what_each_manager_applied(cluster: Cluster) -> None:
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}}
    cluster.patch("configmaps", "a", applied, "apply", "default", field_manager="helm")
    restored = Cluster()
    restored.restore(cluster.snapshot())
    result = restored.patch("configmaps", "a", dict(applied, data={"x": "1"}), "apply", "default", field_manager="helm")
    assert result["data"] == {"x": "1"}


def test_pod_logs(cluster: Cluster) -> None:
    cluster.create("pods", {"metadata": {"name": "p"}, "spec": {"containers": []}}, "default")
    cluster.set_pod_log("default", "p", "one\ntwo\n")
    cluster.append_pod_log("default", "p", "three\n")
    assert cluster.pod_log("default", "p") == "one\ntwo\nthree\n"
    assert cluster.pod_log("default", "p", tail_lines=1) == "three\n"
    with pytest.raises(ApiError):
        cluster.pod_log("default", "missing")


def test_graceful_pod_termination_when_asked() -> None:
    cluster = Cluster(pod_termination_seconds=0.2)
    cluster.add_node("gpu-0")
    cluster.create("pods", {"metadata": {"name": "p"}, "spec": {"nodeName": "gpu-0", "containers": [{"name": "c"}]}}, "default")
    pod, deleted_now = cluster.delete("pods", "p", "default")
    assert not deleted_now and pod["metadata"]["deletionTimestamp"] and pod["metadata"]["deletionGracePeriodSeconds"] == 30
    deadline = time.monotonic() + 5
    while cluster.exists("pods", "p", "default") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not cluster.exists("pods", "p", "default")


def test_extended_resources_leave_core_resources_alone(cluster: Cluster) -> None:
    cluster.add_node("gpu-0", capacity={"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"})
    node = cluster.set_extended_resources("gpu-0", {"nvidia.com/mig-1g.5gb": 56})
    assert node["status"]["capacity"] == {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/mig-1g.5gb": "56"}
    assert node["status"]["allocatable"] == node["status"]["capacity"]
    stopped = cluster.set_extended_resources("gpu-0", {"nvidia.com/mig-1g.5gb": 56}, {"nvidia.com/mig-1g.5gb": 0})
    assert stopped["status"]["allocatable"]["nvidia.com/mig-1g.5gb"] == "0"
    assert stopped["status"]["capacity"]["nvidia.com/mig-1g.5gb"] == "56"


class _RecordingController:
    def __init__(self) -> None:
        self.seen: list[set[tuple[str, str]]] = []

    def reconcile(self, cluster: Cluster, dirty: set[tuple[str, str]]) -> None:
        self.seen.append(set(dirty))


def test_a_heartbeat_wakes_no_controller_and_a_status_change_wakes_only_status_readers():
    recorder = _RecordingController()
    cluster = Cluster(controllers=[recorder])
    cluster.add_node("n1")
    recorder.seen.clear()
    ready = dict(cluster.get("nodes", "n1")["status"]["conditions"][0], lastHeartbeatTime="2099-01-01T00:00:00Z")
    cluster.set_node_status("n1", {"conditions": [ready]})
    assert recorder.seen == [], "a heartbeat-only update is not work for controllers (DaemonSets, NFD, scheduler)"
    assert cluster.get("nodes", "n1")["status"]["conditions"][0]["lastHeartbeatTime"] == "2099-01-01T00:00:00Z"
    cluster.set_extended_resources("n1", {"nvidia.com/gpu": 1})
    assert recorder.seen == [{("nodes/status", "")}]
    cluster.set_node_labels("n1", {"a": "b"})
    assert recorder.seen[-1] == {("nodes", "")}
