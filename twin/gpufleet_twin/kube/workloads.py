"""Pure rules the emulated controllers apply: pod health, PodDisruptionBudget arithmetic, DaemonSet placement.

They follow kube-controller-manager (pkg/controller/disruption, pkg/controller/daemon) and the eviction
handler (pkg/registry/core/pod/storage/eviction.go); deviations are noted where they are made.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .selectors import node_selector_matches

PDB_VIOLATION_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."

# What the DaemonSet controller adds to every daemon pod (pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations).
DAEMON_POD_TOLERATIONS: tuple[dict[str, str], ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """``podutil.IsPodReady``: the Ready condition is True."""
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def pod_phase(pod: Mapping[str, Any]) -> str:
    return pod.get("status", {}).get("phase") or "Pending"


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for reference in obj.get("metadata", {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return reference
    return None


def eviction_ignores_pdb(pod: Mapping[str, Any]) -> bool:
    """``canIgnorePDB``: terminal, pending and already-terminating pods are deleted without a budget check."""
    return pod_phase(pod) in ("Succeeded", "Failed", "Pending") or is_terminating(pod)


def scaled_value(value: int | str, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``."""
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError as exc:
            raise ValueError(f"invalid value for IntOrString: invalid value {text!r}") from exc
    percent = int(text[:-1])
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


class NoControllerError(ValueError):
    """A selected pod's controller has no scale, so a percentage budget cannot be computed."""


ScaleFinder = Callable[[Mapping[str, Any], str], "tuple[str, int] | None"]


def expected_scale(pods: Iterable[Mapping[str, Any]], find_scale: ScaleFinder) -> int:
    """``getExpectedScale``: the sum of the scales of the pods' distinct controllers.

    Pods without a controller are skipped (the controller reports them as unmanaged); a controller
    without a scale (a DaemonSet, say) makes the whole computation fail, as in the real controller.
    """
    scales: dict[str, int] = {}
    for pod in pods:
        reference = controller_ref(pod)
        if reference is None:
            continue
        if reference.get("uid") in scales:
            continue
        found = find_scale(reference, pod["metadata"].get("namespace", ""))
        if found is None:
            raise NoControllerError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
        uid, scale = found
        scales[uid] = scale
    return sum(scales.values())


def expected_and_desired(pdb: Mapping[str, Any], pods: list[Mapping[str, Any]], find_scale: ScaleFinder) -> tuple[int, int]:
    """``getExpectedPodCount``: (expectedPods, desiredHealthy)."""
    spec = pdb.get("spec", {})
    if spec.get("maxUnavailable") is not None:
        expected = expected_scale(pods, find_scale)
        max_unavailable = scaled_value(spec["maxUnavailable"], expected, round_up=True)
        return expected, max(0, expected - max_unavailable)
    min_available = spec.get("minAvailable")
    if min_available is None:
        return len(pods), 0
    if isinstance(min_available, int):
        return len(pods), min_available
    expected = expected_scale(pods, find_scale)
    return expected, scaled_value(min_available, expected, round_up=True)


def count_healthy(pods: Iterable[Mapping[str, Any]], disrupted: Mapping[str, Any]) -> int:
    """``countHealthyPods``: ready pods that are neither terminating nor recently evicted."""
    return sum(
        1
        for pod in pods
        if not is_terminating(pod) and pod["metadata"]["name"] not in disrupted and pod_ready(pod)
    )


def disruption_condition(allowed: int, reason_if_blocked: str = "InsufficientPods", message: str = "") -> dict[str, str]:
    if allowed > 0:
        return {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods", "message": ""}
    return {"type": "DisruptionAllowed", "status": "False", "reason": reason_if_blocked, "message": message}


def pdb_status(
    pdb: Mapping[str, Any],
    pods: list[Mapping[str, Any]],
    find_scale: ScaleFinder,
    disrupted: Mapping[str, Any],
) -> dict[str, Any]:
    """The status the disruption controller writes; on a failed sync only the fail-safe fields change."""
    old = dict(pdb.get("status") or {})
    generation = pdb.get("metadata", {}).get("generation", 1)
    try:
        expected, desired = expected_and_desired(pdb, pods, find_scale)
    except (NoControllerError, ValueError) as exc:
        failed = {"currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0, "observedGeneration": 0, **old}
        failed["disruptionsAllowed"] = 0
        failed["conditions"] = [disruption_condition(0, "SyncFailed", str(exc))]
        return failed
    healthy = count_healthy(pods, disrupted)
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [disruption_condition(allowed)],
    }
    if disrupted:
        status["disruptedPods"] = dict(disrupted)
    return status


def toleration_tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """``Toleration.ToleratesTaint``."""
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("key") and toleration.get("key") != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def daemon_pod_tolerations(pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    tolerations = [dict(t) for t in pod_spec.get("tolerations") or []]
    extra = list(DAEMON_POD_TOLERATIONS) + ([HOST_NETWORK_TOLERATION] if pod_spec.get("hostNetwork") else [])
    for toleration in extra:
        if toleration not in tolerations:
            tolerations.append(dict(toleration))
    return tolerations


def daemon_pod_fits_node(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """``NodeShouldRunDaemonPod``: nodeSelector, required node affinity, NoSchedule/NoExecute taints."""
    labels = node.get("metadata", {}).get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (
        (pod_spec.get("affinity") or {}).get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    )
    if required and not node_selector_matches(required, node):
        return False
    tolerations = daemon_pod_tolerations(pod_spec)
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(toleration_tolerates(t, taint) for t in tolerations):
            return False
    return True


def template_hash(template: Mapping[str, Any]) -> str:
    """Stands in for the controller-revision-hash label: stable for a template, different when it changes."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return digest[:10]
