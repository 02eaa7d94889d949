"""The workload controllers of the emulated cluster: DaemonSets, Deployments, ReplicaSets and Jobs.

They run synchronously in the cluster's settle loop, like the other controllers (``controllers.py``),
and follow kube-controller-manager (pkg/controller/daemon, deployment, replicaset, job) where clients
look: the objects they create, their names and labels, and the status fields ``kubectl rollout status``,
helm 3's ready checker and helm 4's kstatus waiter read.

- ``DaemonSetController``: one pod per fitting node, template changes roll pods (RollingUpdate) or
  wait for deletion (OnDelete). Pods are bound with ``spec.nodeName`` directly.
- ``DeploymentController``: one ReplicaSet per pod template (``<name>-<pod-template-hash>``, the hash
  label on its selector and template, ``deployment.kubernetes.io/revision``); the new ReplicaSet is
  scaled to ``spec.replicas`` at once (a surge of the whole template) and the old ones to 0 once the new
  one is available; ``revisionHistoryLimit`` old ReplicaSets are kept. Status with ``Available`` and
  ``Progressing`` (``NewReplicaSetAvailable`` when complete). ``paused``, ``minReadySeconds`` and progress
  deadlines are not modelled.
- ``ReplicaSetController``: creates unbound pods (``<name>-<suffix>``) up to ``spec.replicas`` and
  deletes the surplus, unbound, pending and unready ones first, then the newest (as
  ``getPodsToDelete`` ranks them). A scheduler binds the pods (``scheduler.py``).
- ``JobController``: NonIndexed jobs: ``parallelism`` pods at a time until ``completions`` succeeded
  (conditions ``SuccessCriteriaMet`` and ``Complete``), or more than ``backoffLimit`` failed
  (``FailureTarget`` and ``Failed``, reason ``BackoffLimitExceeded``). The server defaults the Job's
  selector and pod labels (``batch.kubernetes.io/controller-uid``, ``batch.kubernetes.io/job-name``)
  on create (``job_defaults``).

A workload whose pod template has no containers (a real API server refuses it:
``spec.template.spec.containers: Required value``) is kept as an inert owner object: the twin's tests
use such ReplicaSets and Deployments to own hand-made pods, and no controller acts on them.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .timestamps import now_rfc3339
from .workloads import (
    controller_ref,
    daemon_pod_fits_node,
    daemon_pod_tolerations,
    is_terminating,
    pod_phase,
    pod_ready,
    scaled_value,
    template_hash,
)

if TYPE_CHECKING:
    from .protocols import ClusterStore

HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _touches(dirty: set[tuple[str, str]], qualified: str) -> set[str]:
    return {namespace for resource, namespace in dirty if resource == qualified}


def _owned_by(cluster: ClusterStore, resource: str, namespace: str, uid: str) -> list[dict[str, Any]]:
    return [obj for obj in cluster._iter(cluster.resource(resource), namespace) if (controller_ref(obj) or {}).get("uid") == uid]


def _owner_reference(owner: Mapping[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _number(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def has_pod_template(workload: Mapping[str, Any]) -> bool:
    """False for the inert owner objects of the module docstring."""
    return bool(((((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")))


def _pod_from_template(owner: Mapping[str, Any], reference: dict[str, Any], extra_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    template = (owner.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    labels = dict(template_meta.get("labels") or {})
    labels.update(extra_labels or {})
    return {
        "metadata": {
            "generateName": f"{owner['metadata']['name']}-",
            "labels": labels,
            "annotations": dict(template_meta.get("annotations") or {}),
            "ownerReferences": [reference],
        },
        "spec": copy.deepcopy(dict(template.get("spec") or {})),
    }


def _write_status(cluster: ClusterStore, resource: str, obj: Mapping[str, Any], status: dict[str, Any]) -> None:
    meta = obj["metadata"]
    live = cluster._lookup(cluster.resource(resource), meta.get("namespace"), meta["name"])
    if live is not None and live.get("status") != status:
        cluster.replace(resource, meta["name"], {"metadata": {}, "status": status}, meta.get("namespace"), subresource="status")


def _stamped(old: list[Mapping[str, Any]] | None, new: list[dict[str, Any]], *, update_time: bool) -> list[dict[str, Any]]:
    """Conditions keep their timestamps while their status, reason and message stay the same."""
    previous = {c.get("type"): c for c in old or []}
    stamp = now_rfc3339()
    result = []
    for condition in new:
        before = previous.get(condition["type"])
        same = before is not None and all(before.get(k) == condition.get(k) for k in ("status", "reason", "message"))
        stamped = dict(condition)
        if update_time:
            stamped["lastUpdateTime"] = before.get("lastUpdateTime", stamp) if same and before else stamp
        moved = before is None or before.get("status") != condition["status"]
        stamped["lastTransitionTime"] = stamp if moved or not before.get("lastTransitionTime") else before["lastTransitionTime"]
        result.append(stamped)
    return result


class DaemonSetController:
    def reconcile(self, cluster: ClusterStore, dirty: set[tuple[str, str]]) -> None:
        daemonsets = cluster.resource("daemonsets")
        if ("nodes", "") in dirty:
            namespaces = None  # every DaemonSet may gain or lose a node
        else:
            namespaces = _touches(dirty, daemonsets.qualified) | _touches(dirty, "pods")
            if not namespaces:
                return
        for ds in list(cluster._iter(daemonsets, None)):
            if (namespaces is not None and ds["metadata"]["namespace"] not in namespaces) or is_terminating(ds):
                continue
            self._sync(cluster, ds)

    def _sync(self, cluster: ClusterStore, ds: dict[str, Any]) -> None:
        pods_resource = cluster.resource("pods")
        namespace, uid = ds["metadata"]["namespace"], ds["metadata"]["uid"]
        template = ds.get("spec", {}).get("template") or {}
        pod_spec = template.get("spec") or {}
        revision = template_hash(template)
        on_delete = (ds.get("spec", {}).get("updateStrategy") or {}).get("type") == "OnDelete"
        nodes = list(cluster._iter(cluster.resource("nodes"), None))
        wanted = {node["metadata"]["name"] for node in nodes if daemon_pod_fits_node(pod_spec, node)}
        owned = [
            pod for pod in cluster._iter(pods_resource, namespace)
            if (controller_ref(pod) or {}).get("uid") == uid
        ]
        by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in owned:
            by_node.setdefault(pod.get("spec", {}).get("nodeName", ""), []).append(pod)

        for node_name, pods in by_node.items():
            active = [p for p in pods if not is_terminating(p)]
            if node_name not in wanted:
                for pod in active:
                    cluster.delete(pods_resource, pod["metadata"]["name"], namespace)
                continue
            current = [p for p in active if p["metadata"].get("labels", {}).get("controller-revision-hash") == revision]
            stale = [p for p in active if p not in current]
            keep = current[:1] if current else ([] if not on_delete else stale[:1])
            for pod in active:
                if pod not in keep:
                    cluster.delete(pods_resource, pod["metadata"]["name"], namespace)

        occupied = {
            p.get("spec", {}).get("nodeName") for p in cluster._iter(pods_resource, namespace) if (controller_ref(p) or {}).get("uid") == uid
        }  # a node whose old pod is still terminating gets its new pod once that one is gone
        for node_name in sorted(wanted - occupied):
            cluster.create(pods_resource, self._pod_for(ds, template, revision, node_name), namespace)

        self._update_status(cluster, ds, wanted, revision)

    @staticmethod
    def _pod_for(ds: Mapping[str, Any], template: Mapping[str, Any], revision: str, node_name: str) -> dict[str, Any]:
        template_meta = template.get("metadata") or {}
        labels = dict(template_meta.get("labels") or {})
        labels["controller-revision-hash"] = revision
        labels["pod-template-generation"] = str(ds["metadata"].get("generation", 1))
        spec = copy.deepcopy(dict(template.get("spec") or {}))
        spec["nodeName"] = node_name
        spec["tolerations"] = daemon_pod_tolerations(spec)
        return {
            "metadata": {
                "generateName": f"{ds['metadata']['name']}-",
                "labels": labels,
                "annotations": dict(template_meta.get("annotations") or {}),
                "ownerReferences": [{
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": ds["metadata"]["name"],
                    "uid": ds["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }],
            },
            "spec": spec,
        }

    @staticmethod
    def _update_status(cluster: ClusterStore, ds: Mapping[str, Any], wanted: set[str], revision: str) -> None:
        namespace, uid = ds["metadata"]["namespace"], ds["metadata"]["uid"]
        pods = [
            p for p in cluster._iter(cluster.resource("pods"), namespace)
            if (controller_ref(p) or {}).get("uid") == uid and not is_terminating(p)
        ]
        scheduled = [p for p in pods if p.get("spec", {}).get("nodeName") in wanted]
        ready = [p for p in scheduled if pod_ready(p)]
        updated = [p for p in scheduled if p["metadata"].get("labels", {}).get("controller-revision-hash") == revision]
        status = {
            "desiredNumberScheduled": len(wanted),
            "currentNumberScheduled": len({p["spec"]["nodeName"] for p in scheduled}),
            "numberMisscheduled": len(pods) - len(scheduled),
            "numberReady": len(ready),
            "numberAvailable": len(ready),
            "numberUnavailable": max(0, len(wanted) - len(ready)),
            "updatedNumberScheduled": len(updated),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        live = cluster._lookup(cluster.resource("daemonsets"), namespace, ds["metadata"]["name"])
        if live is not None and live.get("status") != status:
            cluster.replace("daemonsets", ds["metadata"]["name"], {"metadata": {}, "status": status}, namespace, subresource="status")


def _pod_delete_rank(pod: Mapping[str, Any]) -> tuple[int, int, int, str, str]:
    """``controller.ActivePodsWithRanks`` abridged: unbound < pending < unready < ready, then newest first."""
    newest_first = "".join(chr(0x10FFFF - ord(c)) for c in pod["metadata"].get("creationTimestamp", ""))
    name_desc = "".join(chr(0x10FFFF - ord(c)) for c in pod["metadata"]["name"])
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,
        {"Pending": 0, "Unknown": 1}.get(pod_phase(pod), 2),
        1 if pod_ready(pod) else 0,
        newest_first,
        name_desc,
    )


def _live_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in pods if not is_terminating(p) and pod_phase(p) not in ("Succeeded", "Failed")]


class ReplicaSetController:
    def reconcile(self, cluster: ClusterStore, dirty: set[tuple[str, str]]) -> None:
        namespaces = _touches(dirty, "replicasets.apps") | _touches(dirty, "pods")
        replicasets = cluster.resource("replicasets")
        for namespace in sorted(namespaces):
            for rs in list(cluster._iter(replicasets, namespace)):
                if not is_terminating(rs) and has_pod_template(rs):
                    self._sync(cluster, rs)

    @staticmethod
    def _sync(cluster: ClusterStore, rs: dict[str, Any]) -> None:
        namespace = rs["metadata"]["namespace"]
        pods = _live_pods(_owned_by(cluster, "pods", namespace, rs["metadata"]["uid"]))
        wanted = _number((rs.get("spec") or {}).get("replicas"), 1)
        if len(pods) < wanted:
            reference = _owner_reference(rs, "apps/v1", "ReplicaSet")
            for _ in range(wanted - len(pods)):
                cluster.create("pods", _pod_from_template(rs, reference), namespace)
        elif len(pods) > wanted:
            for pod in sorted(pods, key=_pod_delete_rank)[: len(pods) - wanted]:
                cluster.delete("pods", pod["metadata"]["name"], namespace)
        pods = _live_pods(_owned_by(cluster, "pods", namespace, rs["metadata"]["uid"]))
        ready = sum(1 for p in pods if pod_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        _write_status(cluster, "replicasets", rs, status)


class DeploymentController:
    def reconcile(self, cluster: ClusterStore, dirty: set[tuple[str, str]]) -> None:
        namespaces = _touches(dirty, "deployments.apps") | _touches(dirty, "replicasets.apps")
        deployments = cluster.resource("deployments")
        for namespace in sorted(namespaces):
            for deployment in list(cluster._iter(deployments, namespace)):
                if not is_terminating(deployment) and has_pod_template(deployment):
                    self._sync(cluster, deployment)

    def _sync(self, cluster: ClusterStore, deployment: dict[str, Any]) -> None:
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        spec = deployment.get("spec") or {}
        desired = _number(spec.get("replicas"), 1)
        template_hash_value = template_hash(spec.get("template") or {})
        owned = [rs for rs in _owned_by(cluster, "replicasets", namespace, deployment["metadata"]["uid"]) if not is_terminating(rs)]
        new = next((rs for rs in owned if (rs["metadata"].get("labels") or {}).get(HASH_LABEL) == template_hash_value), None)
        old = [rs for rs in owned if rs is not new]
        if new is None:
            revision = 1 + max((int((rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "0")) for rs in old), default=0)
            new = cluster.create("replicasets", self._replicaset_for(deployment, template_hash_value, desired, revision), namespace)
        elif _number((new.get("spec") or {}).get("replicas"), 1) != desired:
            new = cluster.patch("replicasets", new["metadata"]["name"], {"spec": {"replicas": desired}}, "merge", namespace)
        new = cluster.get("replicasets", new["metadata"]["name"], namespace)
        new_available = int((new.get("status") or {}).get("availableReplicas", 0))
        if new_available >= desired:
            for rs in old:
                if _number((rs.get("spec") or {}).get("replicas"), 1) != 0:
                    cluster.patch("replicasets", rs["metadata"]["name"], {"spec": {"replicas": 0}}, "merge", namespace)
        self._prune_history(cluster, deployment, namespace)
        self._update_status(cluster, name, namespace, new, desired)

    @staticmethod
    def _replicaset_for(deployment: Mapping[str, Any], hash_value: str, desired: int, revision: int) -> dict[str, Any]:
        spec = deployment.get("spec") or {}
        template = copy.deepcopy(dict(spec.get("template") or {}))
        template_meta = template.setdefault("metadata", {})
        template_meta["labels"] = {**(template_meta.get("labels") or {}), HASH_LABEL: hash_value}
        selector = copy.deepcopy(dict(spec.get("selector") or {}))
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: hash_value}
        return {
            "metadata": {
                "name": f"{deployment['metadata']['name']}-{hash_value}",
                "labels": dict(template_meta["labels"]),
                "annotations": {
                    REVISION_ANNOTATION: str(revision),
                    "deployment.kubernetes.io/desired-replicas": str(desired),
                    "deployment.kubernetes.io/max-replicas": str(desired + _max_surge(deployment, desired)),
                },
                "ownerReferences": [_owner_reference(deployment, "apps/v1", "Deployment")],
            },
            "spec": {"replicas": desired, "minReadySeconds": _number(spec.get("minReadySeconds"), 0), "selector": selector, "template": template},
        }

    @staticmethod
    def _prune_history(cluster: ClusterStore, deployment: Mapping[str, Any], namespace: str) -> None:
        limit = _number((deployment.get("spec") or {}).get("revisionHistoryLimit"), 10)
        retired = [
            rs for rs in _owned_by(cluster, "replicasets", namespace, deployment["metadata"]["uid"])
            if not is_terminating(rs) and _number((rs.get("spec") or {}).get("replicas"), 1) == 0 and int((rs.get("status") or {}).get("replicas", 0)) == 0
            and (rs["metadata"].get("labels") or {}).get(HASH_LABEL) != template_hash((deployment.get("spec") or {}).get("template") or {})
        ]
        retired.sort(key=lambda rs: int((rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "0")))
        for rs in retired[: max(0, len(retired) - limit)]:
            cluster.delete("replicasets", rs["metadata"]["name"], namespace)

    @staticmethod
    def _update_status(cluster: ClusterStore, name: str, namespace: str, new: Mapping[str, Any], desired: int) -> None:
        deployment = cluster.get("deployments", name, namespace)
        owned = [rs for rs in _owned_by(cluster, "replicasets", namespace, deployment["metadata"]["uid"]) if not is_terminating(rs)]
        total = sum(int((rs.get("status") or {}).get("replicas", 0)) for rs in owned)
        ready = sum(int((rs.get("status") or {}).get("readyReplicas", 0)) for rs in owned)
        available = sum(int((rs.get("status") or {}).get("availableReplicas", 0)) for rs in owned)
        updated = int((new.get("status") or {}).get("replicas", 0))
        new_name = new["metadata"]["name"]
        minimum = desired - _max_unavailable(deployment, desired)
        complete = updated == desired and total == desired and available >= desired
        conditions = [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."}
            if available >= minimum else
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": f'ReplicaSet "{new_name}" has successfully progressed.'}
            if complete else
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": f'ReplicaSet "{new_name}" is progressing.'},
        ]
        status = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available) if total > desired else max(0, desired - available),
            "conditions": _stamped((deployment.get("status") or {}).get("conditions"), conditions, update_time=True),
        }
        for zero_omitted in ("readyReplicas", "availableReplicas", "unavailableReplicas", "updatedReplicas", "replicas"):
            if status[zero_omitted] == 0:
                del status[zero_omitted]  # omitempty, as the real server writes them
        _write_status(cluster, "deployments", deployment, status)


def _rolling(deployment: Mapping[str, Any]) -> Mapping[str, Any] | None:
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    return (strategy.get("rollingUpdate") or {}) if strategy.get("type", "RollingUpdate") == "RollingUpdate" else None


def _max_surge(deployment: Mapping[str, Any], desired: int) -> int:
    rolling = _rolling(deployment)
    return 0 if rolling is None else scaled_value(_or(rolling.get("maxSurge"), "25%"), desired, True)


def _max_unavailable(deployment: Mapping[str, Any], desired: int) -> int:
    """``deploymentutil.MaxUnavailable``: 0 for Recreate; never 0 together with a zero surge."""
    rolling = _rolling(deployment)
    if rolling is None or desired == 0:
        return 0
    unavailable = scaled_value(_or(rolling.get("maxUnavailable"), "25%"), desired, False)
    if unavailable == 0 and _max_surge(deployment, desired) == 0:
        unavailable = 1
    return min(unavailable, desired)


def job_defaults(job: dict[str, Any]) -> None:
    """What the API server sets on a new Job (pkg/registry/batch/job/strategy.go generateSelector)."""
    spec = job.get("spec") or {}
    job["spec"] = spec
    spec["parallelism"] = 1 if spec.get("parallelism") is None else spec["parallelism"]
    spec["completions"] = 1 if spec.get("completions") is None else spec["completions"]
    spec["backoffLimit"] = 6 if spec.get("backoffLimit") is None else spec["backoffLimit"]
    spec["completionMode"] = "NonIndexed" if spec.get("completionMode") is None else spec["completionMode"]
    spec["suspend"] = False if spec.get("suspend") is None else spec["suspend"]
    if spec.get("manualSelector"):
        return
    uid, name = job["metadata"]["uid"], job["metadata"]["name"]
    labels = {JOB_UID_LABEL: uid, JOB_NAME_LABEL: name, "controller-uid": uid, "job-name": name}
    spec["selector"] = {"matchLabels": {JOB_UID_LABEL: uid}}
    template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}


class JobController:
    def reconcile(self, cluster: ClusterStore, dirty: set[tuple[str, str]]) -> None:
        namespaces = _touches(dirty, "jobs.batch") | _touches(dirty, "pods")
        jobs = cluster.resource("jobs")
        for namespace in sorted(namespaces):
            for job in list(cluster._iter(jobs, namespace)):
                if not is_terminating(job) and has_pod_template(job):
                    self._sync(cluster, job)

    @staticmethod
    def _finished(job: Mapping[str, Any]) -> bool:
        return any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or []
        )

    def _sync(self, cluster: ClusterStore, job: dict[str, Any]) -> None:
        if self._finished(job):
            return
        namespace = job["metadata"]["namespace"]
        spec = job.get("spec") or {}
        pods = _owned_by(cluster, "pods", namespace, job["metadata"]["uid"])
        succeeded = sum(1 for p in pods if pod_phase(p) == "Succeeded")
        failed = sum(1 for p in pods if pod_phase(p) == "Failed")
        active = _live_pods(pods)
        completions = _number(spec.get("completions"), 1)
        status = copy.deepcopy((job.get("status") or {}))
        stamp = now_rfc3339()
        status.setdefault("startTime", stamp)
        new_conditions: list[dict[str, Any]] = []
        if succeeded >= completions:
            for pod in active:
                cluster.delete("pods", pod["metadata"]["name"], namespace)
            active = []
            status["completionTime"] = stamp
            message = "Reached expected number of succeeded pods"
            new_conditions = [
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": message},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": message},
            ]
        elif failed > _number(spec.get("backoffLimit"), 6):
            for pod in active:
                cluster.delete("pods", pod["metadata"]["name"], namespace)
            active = []
            message = "Job has reached the specified backoff limit"
            new_conditions = [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": message},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": message},
            ]
        elif not spec.get("suspend"):
            wanted = min(_number(spec.get("parallelism"), 1), completions - succeeded)
            reference = _owner_reference(job, "batch/v1", "Job")
            for _ in range(wanted - len(active)):
                cluster.create("pods", _pod_from_template(job, reference), namespace)
            active = _live_pods(_owned_by(cluster, "pods", namespace, job["metadata"]["uid"]))
        status.update({"active": len(active), "ready": sum(1 for p in active if pod_ready(p)), "succeeded": succeeded, "failed": failed})
        status["terminating"] = 0
        status["uncountedTerminatedPods"] = {}
        for zero_omitted in ("active", "succeeded", "failed"):
            if status[zero_omitted] == 0:
                del status[zero_omitted]
        if new_conditions:
            status["conditions"] = list((job.get("status") or {}).get("conditions") or []) + _stamped(None, new_conditions, update_time=False)
            for condition in status["conditions"]:
                condition.setdefault("lastProbeTime", stamp)
        _write_status(cluster, "jobs", job, status)
