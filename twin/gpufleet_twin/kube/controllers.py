"""The few controllers the emulated cluster runs in-process, synchronously after each write.

- ``GarbageCollector``: owner references cascade deletion (background) or are stripped (orphan).
- the workload controllers (DaemonSets, Deployments, ReplicaSets, Jobs): ``workload_controllers.py``;
- ``CustomResourceDefinitionController``: ``crds.py``;
- ``InstantKubelet``: a bound pod on an existing node turns Running and Ready at once; a Job's pod
  (restartPolicy Never or OnFailure, owned by a Job) runs to completion at once (Succeeded, exit 0). Node agents that
  play kubelet themselves build the cluster with ``instant_pod_start=False``.
- ``DisruptionController``: PodDisruptionBudget status (expectedPods, desiredHealthy, currentHealthy,
  disruptionsAllowed, disruptedPods, the DisruptionAllowed condition), as kube-controller-manager does.

A controller is any object with ``reconcile(cluster, dirty)``, ``dirty`` being the set of
(qualified resource, namespace) pairs written since the last pass. It must write only when something
changes, or the settle loop would never end.
"""
from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import ApiError
from .timestamps import now_rfc3339
from .crds import CustomResourceDefinitionController
from .workload_controllers import DaemonSetController, DeploymentController, JobController, ReplicaSetController
from .workloads import controller_ref, is_terminating, pdb_status

__all__ = [
    "CustomResourceDefinitionController",
    "DaemonSetController",
    "DeploymentController",
    "DisruptionController",
    "GarbageCollector",
    "InstantKubelet",
    "JobController",
    "ReplicaSetController",
    "default_controllers",
    "workload_controllers",
]

if TYPE_CHECKING:
    from .protocols import ClusterStore

# After this long an eviction that did not lead to a deletion stops counting (disruption.DeletionTimeout).
DISRUPTION_TIMEOUT = datetime.timedelta(minutes=2)
_SCALED_KINDS = {"ReplicaSet": "replicasets", "StatefulSet": "statefulsets", "Deployment": "deployments"}


def _touches(dirty: set[tuple[str, str]], qualified: str) -> set[str]:
    return {namespace for resource, namespace in dirty if resource == qualified}


def _now() -> str:
    return now_rfc3339()


class GarbageCollector:
    def reconcile(self, cluster: ClusterStore, dirty: set[tuple[str, str]]) -> None:
        removed, orphaned = cluster.take_removed_uids()
        if not removed and not orphaned:
            return
        live_uids = {obj["metadata"].get("uid") for _, obj in cluster._all_objects()}
        for qualified, obj in list(cluster._all_objects()):
            references = obj["metadata"].get("ownerReferences") or []
            gone = [r for r in references if r.get("uid") in removed or r.get("uid") in orphaned]
            if not gone:
                continue
            resource = next(r for r in cluster.registry if r.qualified == qualified)
            name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace")
            remaining = [r for r in references if r.get("uid") in live_uids and r not in gone]
            cascade = any(r.get("uid") in removed for r in gone)
            try:
                if cascade and not remaining:
                    cluster.delete(resource, name, namespace)
                else:
                    cluster.patch(resource, name, {"metadata": {"ownerReferences": remaining or None}}, "merge", namespace)
            except ApiError:
                continue  # already gone through another cascade


class InstantKubelet:
    """Marks bound pods Running and Ready as soon as they land on an existing node."""

    def reconcile(self, cluster: ClusterStore, dirty: set[tuple[str, str]]) -> None:
        pods = cluster.resource("pods")
        namespaces = _touches(dirty, "pods")
        if ("nodes", "") in dirty:
            namespaces = {pod["metadata"].get("namespace", "") for pod in cluster._iter(pods, None)}
        if not namespaces:
            return
        nodes = {node["metadata"]["name"] for node in cluster._iter(cluster.resource("nodes"), None)}
        for namespace in sorted(namespaces):
            for pod in list(cluster._iter(pods, namespace)):
                node = pod.get("spec", {}).get("nodeName")
                if node not in nodes or is_terminating(pod) or (pod.get("status") or {}).get("phase", "Pending") != "Pending":
                    continue
                status = self.succeeded_status(pod) if _runs_to_completion(pod) else self.running_status(pod)
                cluster.patch(pods, pod["metadata"]["name"], {"status": status}, "merge", namespace, subresource="status")

    @staticmethod
    def succeeded_status(pod: Mapping[str, Any]) -> dict[str, Any]:
        stamp = _now()
        return {
            "phase": "Succeeded",
            "startTime": stamp,
            "hostIP": "10.0.0.1",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": stamp},
                {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": stamp},
                {"type": "Initialized", "status": "True", "reason": "PodCompleted", "lastTransitionTime": stamp},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            ],
            "containerStatuses": [
                {
                    "name": container.get("name", ""),
                    "image": container.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": stamp, "finishedAt": stamp}},
                }
                for container in pod.get("spec", {}).get("containers") or []
            ],
        }

    @staticmethod
    def running_status(pod: Mapping[str, Any]) -> dict[str, Any]:
        stamp = _now()
        containers = pod.get("spec", {}).get("containers") or []
        return {
            "phase": "Running",
            "startTime": stamp,
            "hostIP": "10.0.0.1",
            "podIP": "10.244.0.1",
            "conditions": [
                {"type": condition, "status": "True", "lastTransitionTime": stamp}
                for condition in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": container.get("name", ""),
                    "image": container.get("image", ""),
                    "imageID": "",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": stamp}},
                }
                for container in containers
            ],
        }


class DisruptionController:
    WATCHED = ("pods", "poddisruptionbudgets.policy", "replicasets.apps", "deployments.apps", "statefulsets.apps")

    def reconcile(self, cluster: ClusterStore, dirty: set[tuple[str, str]]) -> None:
        namespaces: set[str] = set()
        for qualified in self.WATCHED:
            namespaces |= _touches(dirty, qualified)
        if not namespaces:
            return
        pdbs = cluster.resource("poddisruptionbudgets")
        pods_resource = cluster.resource("pods")
        for namespace in sorted(namespaces):
            for budget in list(cluster._iter(pdbs, namespace)):
                pods = [
                    pod for pod in cluster._iter(pods_resource, namespace)
                    if _budget_selects(budget, pod)
                ]
                disrupted = self._live_disruptions(budget, {p["metadata"]["name"]: p for p in pods})
                status = pdb_status(budget, pods, lambda ref, ns: self._find_scale(cluster, ref, ns), disrupted)
                status["conditions"] = _keep_transition_times(budget.get("status", {}).get("conditions"), status["conditions"])
                if status != budget.get("status"):
                    cluster.replace(pdbs, budget["metadata"]["name"], {"metadata": {}, "status": status}, namespace, subresource="status")

    @staticmethod
    def _live_disruptions(budget: Mapping[str, Any], pods: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        """``buildDisruptedPodMap``: drop entries whose pod is gone, terminating, or past the timeout."""
        now = datetime.datetime.now(datetime.timezone.utc)
        live = {}
        for pod_name, stamp in ((budget.get("status") or {}).get("disruptedPods") or {}).items():
            pod = pods.get(pod_name)
            if pod is None or is_terminating(pod):
                continue
            try:
                when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
            except (TypeError, ValueError):
                continue
            if when + DISRUPTION_TIMEOUT > now:
                live[pod_name] = stamp
        return live

    @staticmethod
    def _find_scale(cluster: ClusterStore, reference: Mapping[str, Any], namespace: str) -> tuple[str, int] | None:
        plural = _SCALED_KINDS.get(reference.get("kind", ""))
        if plural is None:
            return None
        owner = cluster._lookup(cluster.resource(plural), namespace, reference.get("name", ""))
        if owner is None or owner["metadata"].get("uid") != reference.get("uid"):
            return None
        if plural == "replicasets":
            parent = controller_ref(owner)
            if parent is not None and parent.get("kind") == "Deployment":
                found = DisruptionController._find_scale(cluster, parent, namespace)
                if found is not None:
                    return found
        replicas = owner.get("spec", {}).get("replicas")
        return owner["metadata"]["uid"], 1 if replicas is None else int(replicas)


def _runs_to_completion(pod: Mapping[str, Any]) -> bool:
    owner = controller_ref(pod) or {}
    return owner.get("kind") == "Job" and pod.get("spec", {}).get("restartPolicy") in ("Never", "OnFailure")


def _budget_selects(budget: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    from .selectors import object_selector_matches

    return object_selector_matches(budget.get("spec", {}).get("selector"), pod.get("metadata", {}).get("labels"), empty_matches=False)


def _keep_transition_times(old: list[Mapping[str, Any]] | None, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    previous = {c.get("type"): c for c in old or []}
    result = []
    for condition in new:
        before = previous.get(condition["type"])
        stamped = dict(condition)
        if before is not None and before.get("status") == condition["status"] and before.get("lastTransitionTime"):
            stamped["lastTransitionTime"] = before["lastTransitionTime"]
        else:
            stamped["lastTransitionTime"] = _now()
        result.append(stamped)
    return result


def workload_controllers() -> list[Any]:
    """The controllers every emulated cluster runs before its kubelet (InstantKubelet or node agents)."""
    return [
        GarbageCollector(),
        CustomResourceDefinitionController(),
        DeploymentController(),
        ReplicaSetController(),
        JobController(),
        DaemonSetController(),
    ]


def default_controllers(instant_pod_start: bool, schedule_pods: bool = False) -> list[Any]:
    controllers = workload_controllers()
    if schedule_pods:
        from .scheduler import PodScheduler

        controllers.append(PodScheduler())
    if instant_pod_start:
        controllers.append(InstantKubelet())
    controllers.append(DisruptionController())
    return controllers
