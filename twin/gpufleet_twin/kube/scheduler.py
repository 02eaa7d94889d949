"""A minimal default scheduler (the node agents run it; a bare ``Cluster(schedule_pods=True)`` too), so pods created without ``spec.nodeName`` (``kubectl run``, Jobs'
pods, validation pods) land on a node as they would in a real cluster.

A node fits when it is not cordoned (unless the pod tolerates ``node.kubernetes.io/unschedulable``),
the pod tolerates its NoSchedule/NoExecute taints, its ``nodeSelector`` and required node affinity
match, and every ``nvidia.com/*`` request fits in allocatable minus what the node's other live pods
request (cpu, memory and pods are not counted). The first fitting node by name wins. A pod that fits
nowhere stays Pending with ``PodScheduled=False``, reason ``Unschedulable`` and a message shaped like
the real one (``0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) were unschedulable.``).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .selectors import node_selector_matches
from .timestamps import now_rfc3339
from .workloads import is_terminating, toleration_tolerates

if TYPE_CHECKING:
    from .protocols import ClusterStore

EXTENDED_PREFIX = "nvidia.com/"

UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def creation_order(pod: Mapping[str, Any]) -> tuple[str, int]:
    """Oldest first; timestamps have one-second resolution, the resourceVersion of creation breaks ties
    well enough for pods that were never written since (later writes only move a pod back)."""
    meta = pod.get("metadata") or {}
    return meta.get("creationTimestamp", ""), int(meta.get("resourceVersion") or 0)


def extended_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """nvidia.com/* amounts the pod's containers ask for (limits, else requests: they must be equal)."""
    wanted: dict[str, int] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        amounts = dict(resources.get("requests") or {})
        amounts.update(resources.get("limits") or {})
        for name, quantity in amounts.items():
            if str(name).startswith(EXTENDED_PREFIX):
                wanted[str(name)] = wanted.get(str(name), 0) + int(str(quantity))
    return {name: amount for name, amount in sorted(wanted.items()) if amount > 0}


def _schedules_here(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
        and not is_terminating(pod)
        and ((pod.get("status") or {}).get("phase") or "Pending") == "Pending"
    )


def why_not(pod: Mapping[str, Any], node: Mapping[str, Any], used: Mapping[str, int]) -> str | None:
    """None when ``pod`` fits ``node``, else the scheduler's reason for the summary message."""
    spec = pod.get("spec") or {}
    tolerations = spec.get("tolerations") or []
    if (node.get("spec") or {}).get("unschedulable") and not any(toleration_tolerates(t, UNSCHEDULABLE_TAINT) for t in tolerations):
        return "node(s) were unschedulable"
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(toleration_tolerates(t, taint) for t in tolerations):
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in (spec.get("nodeSelector") or {}).items()):
        return "node(s) didn't match Pod's node affinity/selector"
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required and not node_selector_matches(required, node):
        return "node(s) didn't match Pod's node affinity/selector"
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    for resource, amount in extended_requests(pod).items():
        if amount > int(str(allocatable.get(resource, "0"))) - used.get(resource, 0):
            return f"Insufficient {resource}"
    return None


def schedule_pending_pods(cluster: ClusterStore) -> None:
    # Look before copying: most writes leave no pod to schedule, and a fleet holds thousands of pods.
    if not any(_schedules_here(pod) for pod in cluster._iter(cluster.resource("pods"), None)):
        return
    pending = [pod for pod in cluster.list("pods") if _schedules_here(pod)]
    nodes = cluster.list("nodes")
    used: dict[str, Counter[str]] = {node["metadata"]["name"]: Counter() for node in nodes}
    for pod in cluster.list("pods"):
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name in used and ((pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")):
            used[node_name].update(extended_requests(pod))
    for pod in sorted(pending, key=creation_order):
        meta = pod["metadata"]
        reasons: Counter[str] = Counter()
        chosen = None
        for node in nodes:
            reason = why_not(pod, node, used[node["metadata"]["name"]])
            if reason is None:
                chosen = node["metadata"]["name"]
                break
            reasons[reason] += 1
        stamp = now_rfc3339()
        if chosen is None:
            summary = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
            condition = {
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastTransitionTime": stamp,
                "message": f"0/{len(nodes)} nodes are available: {summary}." if nodes else "no nodes available to schedule pods",
            }
            current = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"]
            if not current or current[0].get("message") != condition["message"]:
                cluster.patch("pods", meta["name"], {"status": {"conditions": [condition]}}, "merge", meta["namespace"], subresource="status")
            continue
        used[chosen].update(extended_requests(pod))
        cluster.patch("pods", meta["name"], {"spec": {"nodeName": chosen}}, "merge", meta["namespace"])


class PodScheduler:
    """``schedule_pending_pods`` as a controller of the settle loop."""

    def reconcile(self, cluster: ClusterStore, dirty: set[tuple[str, str]]) -> None:
        if any(resource in ("pods", "nodes", "nodes/status") for resource, _ in dirty):
            schedule_pending_pods(cluster)
