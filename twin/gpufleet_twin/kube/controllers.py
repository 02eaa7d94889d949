"""The few controllers the emulated cluster runs in-process, synchronously after each write.

- ``GarbageCollector``: owner references cascade deletion (background) or are stripped (orphan).
- ``DaemonSetController``: one pod per fitting node, template changes roll pods (RollingUpdate) or
  wait for deletion (OnDelete), status counters as ``kubectl rollout status`` and helm read them.
  Pods are bound with ``spec.nodeName`` directly: there is no scheduler.
- ``InstantKubelet``: a bound pod on an existing node turns Running and Ready at once. Node agents that
  play kubelet themselves build the cluster with ``instant_pod_start=False``.
- ``DisruptionController``: PodDisruptionBudget status (expectedPods, desiredHealthy, currentHealthy,
  disruptionsAllowed, disruptedPods, the DisruptionAllowed condition), as kube-controller-manager does.

A controller is any object with ``reconcile(cluster, dirty)``, ``dirty`` being the set of
(qualified resource, namespace) pairs written since the last pass. It must write only when something
changes, or the settle loop would never end.
"""
from __future__ import annotations

import copy
import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import ApiError
from .workloads import (
    controller_ref,
    daemon_pod_fits_node,
    daemon_pod_tolerations,
    is_terminating,
    pdb_status,
    pod_ready,
    template_hash,
)

if TYPE_CHECKING:
    from .cluster import Cluster

# After this long an eviction that did not lead to a deletion stops counting (disruption.DeletionTimeout).
DISRUPTION_TIMEOUT = datetime.timedelta(minutes=2)
_SCALED_KINDS = {"ReplicaSet": "replicasets", "StatefulSet": "statefulsets", "Deployment": "deployments"}


def _touches(dirty: set[tuple[str, str]], qualified: str) -> set[str]:
    return {namespace for resource, namespace in dirty if resource == qualified}


def _now() -> str:
    from .cluster import now_rfc3339

    return now_rfc3339()


class GarbageCollector:
    def reconcile(self, cluster: Cluster, dirty: set[tuple[str, str]]) -> None:
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

    def reconcile(self, cluster: Cluster, dirty: set[tuple[str, str]]) -> None:
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
                cluster.patch(pods, pod["metadata"]["name"], {"status": self.running_status(pod)}, "merge", namespace, subresource="status")

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


class DaemonSetController:
    def reconcile(self, cluster: Cluster, dirty: set[tuple[str, str]]) -> None:
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

    def _sync(self, cluster: Cluster, ds: dict[str, Any]) -> None:
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
    def _update_status(cluster: Cluster, ds: Mapping[str, Any], wanted: set[str], revision: str) -> None:
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


class DisruptionController:
    WATCHED = ("pods", "poddisruptionbudgets.policy", "replicasets.apps", "deployments.apps", "statefulsets.apps")

    def reconcile(self, cluster: Cluster, dirty: set[tuple[str, str]]) -> None:
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
    def _find_scale(cluster: Cluster, reference: Mapping[str, Any], namespace: str) -> tuple[str, int] | None:
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


def default_controllers(instant_pod_start: bool) -> list[Any]:
    controllers: list[Any] = [GarbageCollector(), DaemonSetController()]
    if instant_pod_start:
        controllers.append(InstantKubelet())
    controllers.append(DisruptionController())
    return controllers
