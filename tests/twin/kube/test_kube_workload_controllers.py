"""Deployments, ReplicaSets and Jobs on the emulated cluster (workload_controllers.py)."""

from __future__ import annotations

from typing import Any

import pytest
from gpufleet_twin.kube import Cluster


@pytest.fixture
def scheduled() -> Cluster:
    cluster = Cluster(schedule_pods=True)
    cluster.add_node("cpu-0", capacity={"cpu": "8", "memory": "32Gi", "pods": "110"})
    return cluster


def _deployment(image: str = "app:1", replicas: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}},
        },
    }


def _conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in obj["status"].get("conditions") or []}


def test_a_deployment_becomes_available_through_its_replicaset(scheduled: Cluster) -> None:
    scheduled.create("deployments", _deployment(), "default")
    replicasets = scheduled.list("replicasets", "default")
    assert len(replicasets) == 1
    rs = replicasets[0]
    hash_label = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{hash_label}"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": hash_label}
    pods = scheduled.list("pods", "default")
    assert [(p["spec"]["nodeName"], p["status"]["phase"]) for p in pods] == [("cpu-0", "Running")] * 2
    assert all(p["metadata"]["name"].startswith(f"web-{hash_label}-") for p in pods)

    deployment = scheduled.get("deployments", "web", "default")
    status = deployment["status"]
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"], status["availableReplicas"]) == (2, 2, 2, 2)
    assert status["observedGeneration"] == deployment["metadata"]["generation"]
    assert _conditions(deployment) == {"Available": ("True", "MinimumReplicasAvailable"), "Progressing": ("True", "NewReplicaSetAvailable")}


def test_a_template_change_rolls_to_a_new_replicaset(scheduled: Cluster) -> None:
    scheduled.create("deployments", _deployment("app:1"), "default")
    scheduled.patch("deployments", "web", {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "app:2"}]}}}}, "strategic", "default")
    by_revision = {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs["spec"]["replicas"] for rs in scheduled.list("replicasets", "default")
    }
    assert by_revision == {"1": 0, "2": 2}, "the old ReplicaSet is kept, scaled to zero"
    assert {p["spec"]["containers"][0]["image"] for p in scheduled.list("pods", "default")} == {"app:2"}
    assert _conditions(scheduled.get("deployments", "web", "default"))["Progressing"] == ("True", "NewReplicaSetAvailable")


def test_a_deployment_without_a_fitting_node_is_not_available() -> None:
    cluster = Cluster(schedule_pods=True)  # no nodes: the pods stay Pending
    cluster.create("deployments", _deployment(replicas=1), "default")
    deployment = cluster.get("deployments", "web", "default")
    assert _conditions(deployment) == {"Available": ("False", "MinimumReplicasUnavailable"), "Progressing": ("True", "ReplicaSetUpdated")}
    assert deployment["status"]["unavailableReplicas"] == 1


def test_a_replicaset_replaces_deleted_pods_and_removes_surplus_unready_first(scheduled: Cluster) -> None:
    scheduled.create("deployments", _deployment(replicas=2), "default")
    first = sorted(p["metadata"]["name"] for p in scheduled.list("pods", "default"))
    scheduled.delete("pods", first[0], "default")
    after = sorted(p["metadata"]["name"] for p in scheduled.list("pods", "default"))
    assert len(after) == 2 and first[0] not in after and first[1] in after
    scheduled.set_pod_status("default", first[1], ready=False)
    scheduled.patch("deployments", "web", {"spec": {"replicas": 1}}, "merge", "default")
    assert [p["metadata"]["name"] for p in scheduled.list("pods", "default")] == [n for n in after if n != first[1]]


def _job(command: list[str], backoff: int = 6) -> dict[str, Any]:
    return {
        "metadata": {"name": "prune"},
        "spec": {
            "backoffLimit": backoff,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "tool:1", "command": command}]}},
        },
    }


def test_a_job_runs_to_completion(scheduled: Cluster) -> None:
    job = scheduled.create("jobs", _job(["prune"]), "default")
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    (pod,) = scheduled.list("pods", "default")
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "prune" and pod["status"]["phase"] == "Succeeded"
    done = scheduled.get("jobs", "prune", "default")
    assert _conditions(done) == {"SuccessCriteriaMet": ("True", "CompletionsReached"), "Complete": ("True", "CompletionsReached")}
    assert done["status"]["succeeded"] == 1 and "active" not in done["status"] and done["status"]["completionTime"]


def test_a_job_fails_after_its_backoff_limit() -> None:
    cluster = Cluster(instant_pod_start=False, schedule_pods=True)  # nothing runs the pods: the test fails them
    cluster.add_node("cpu-0", capacity={"cpu": "8", "memory": "32Gi", "pods": "110"})
    cluster.create("jobs", _job(["prune"], backoff=1), "default")
    for _ in range(2):
        (pod,) = [p for p in cluster.list("pods", "default") if p["status"]["phase"] == "Pending"]
        cluster.patch("pods", pod["metadata"]["name"], {"status": {"phase": "Failed"}}, "merge", "default", subresource="status")
    job = cluster.get("jobs", "prune", "default")
    assert _conditions(job) == {"FailureTarget": ("True", "BackoffLimitExceeded"), "Failed": ("True", "BackoffLimitExceeded")}
    assert job["status"]["failed"] == 2 and len(cluster.list("pods", "default")) == 2, "no new pod after the limit"


def test_deleting_a_deployment_cascades_to_its_pods(scheduled: Cluster) -> None:
    scheduled.create("deployments", _deployment(), "default")
    scheduled.delete("deployments", "web", "default")
    assert scheduled.list("replicasets", "default") == [] and scheduled.list("pods", "default") == []
