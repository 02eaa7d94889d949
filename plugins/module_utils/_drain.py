# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Draining a node as ``kubectl drain`` does it: which pods go, and the eviction loop.

``plan_drain(pods, ...)`` is pure: it sorts the pods bound to a node (API JSON) into

* ``evict``: pods to evict;
* ``skip``: pods that stay: DaemonSet pods (their controller would recreate them at once and they are
  the node's own agents, the device plugin among them; kubectl needs ``--ignore-daemonsets`` for this,
  a MIG rollout always wants it), mirror pods (the kubelet owns them; the API cannot remove them), and
  with ``gpu_pods_only`` the pods that request no ``nvidia.com/*`` resource;
* ``terminating``: pods already being deleted (``deletionTimestamp``): not evicted again, but waited for;
* ``refuse``: pods whose eviction would lose data or work unless the caller says otherwise: an ``emptyDir``
  volume (``delete_emptydir_data``) and no controller to recreate the pod (``force``). As in kubectl, pods
  that have finished (Succeeded/Failed) lose nothing and are never refused.

``run_evictions(client, plan, ...)`` then evicts with the Eviction API, retrying while a
PodDisruptionBudget answers 429 (kubectl retries every 5 s; so does ``poll_interval``'s default), and waits
until every evicted or terminating pod is gone, all within one deadline. It never uncordons and never falls
back to a plain DELETE: that happens only with ``disable_eviction=True``. On failure it raises ``DrainError``
with what was evicted and what blocked.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import OptionNames, option_name
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeApiError, KubeClient

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
GPU_RESOURCE_PREFIX = "nvidia.com/"
FINISHED_PHASES = ("Succeeded", "Failed")

# Reasons, as they appear in results.
SKIP_DAEMONSET = "DaemonSet pod"
SKIP_MIRROR = "mirror pod"
SKIP_NO_GPU = "requests no nvidia.com/* resource"
REFUSE_EMPTYDIR = "uses emptyDir volume(s) %s (set %s to evict it and lose that data)"
REFUSE_UNMANAGED = "has no controller to recreate it (set %s to evict it anyway)"

DEFAULT_POLL_INTERVAL = 5
# kubectl checks every second whether evicted pods are gone; a shorter poll_interval wins.
GONE_POLL_INTERVAL = 1


class DrainError(MigError):
    """A drain could not finish. ``evicted`` / ``blocked`` / ``terminating`` say how far it got.

    ``blocked`` holds ``{"namespace", "name", "reason"}`` for each pod that could not be evicted (the last
    answer of the API server), ``terminating`` the pods evicted (or already terminating) that were still
    there at the deadline.
    """

    def __init__(self, message: str, evicted: Iterable[Dict[str, str]] = (), blocked: Iterable[Dict[str, str]] = (),
                 terminating: Iterable[Dict[str, str]] = (), timed_out: bool = False) -> None:
        super(DrainError, self).__init__(message)
        self.evicted = list(evicted)
        self.blocked = list(blocked)
        self.terminating = list(terminating)
        self.timed_out = timed_out


def _metadata(pod: Dict[str, Any]) -> Dict[str, Any]:
    return pod.get("metadata") or {}


def pod_ref(pod: Dict[str, Any]) -> Dict[str, str]:
    """``{"namespace", "name"}`` of a pod, the form results use."""
    metadata = _metadata(pod)
    return {"namespace": metadata.get("namespace", ""), "name": metadata.get("name", "")}


def _ref_text(ref: Dict[str, str]) -> str:
    return "%s/%s" % (ref["namespace"], ref["name"])


def controller_of(pod: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The owner reference with ``controller: true``, or ``None``."""
    for owner in _metadata(pod).get("ownerReferences") or []:
        if owner.get("controller"):
            return owner
    return None


def is_daemonset_pod(pod: Dict[str, Any]) -> bool:
    controller = controller_of(pod)
    return bool(controller) and controller.get("kind") == "DaemonSet"


def is_mirror_pod(pod: Dict[str, Any]) -> bool:
    return MIRROR_POD_ANNOTATION in (_metadata(pod).get("annotations") or {})


def is_finished(pod: Dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in FINISHED_PHASES


def is_terminating(pod: Dict[str, Any]) -> bool:
    return bool(_metadata(pod).get("deletionTimestamp"))


def emptydir_volumes(pod: Dict[str, Any]) -> List[str]:
    return [volume.get("name", "") for volume in (pod.get("spec") or {}).get("volumes") or [] if "emptyDir" in volume]


def gpu_resources(pod: Dict[str, Any]) -> List[str]:
    """Sorted ``nvidia.com/*`` resource names that any container or init container requests or limits."""
    spec = pod.get("spec") or {}
    names = set()
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        resources = container.get("resources") or {}
        for section in ("limits", "requests"):
            for name in resources.get(section) or {}:
                if name.startswith(GPU_RESOURCE_PREFIX):
                    names.add(name)
    return sorted(names)


class DrainPlan:
    """The pods of a node, sorted. Each list holds pod refs; ``skip`` and ``refuse`` add ``reason``."""

    def __init__(self) -> None:
        self.evict = []
        self.skip = []
        self.terminating = []
        self.refuse = []
        self._uids = {}

    def uid_of(self, ref: Dict[str, str]) -> Optional[str]:
        return self._uids.get(_ref_text(ref))

    def to_dict(self) -> Dict[str, List[Dict[str, str]]]:
        return {"evict": list(self.evict), "skip": list(self.skip), "terminating": list(self.terminating), "refuse": list(self.refuse)}


def plan_drain(pods: Iterable[Dict[str, Any]], gpu_pods_only: bool = False, delete_emptydir_data: bool = False,
               force: bool = False, names: OptionNames = None) -> DrainPlan:
    """Sort the pods bound to a node for a drain; pure (see the module docstring for the rules)."""
    plan = DrainPlan()
    for pod in sorted(pods, key=lambda item: (_metadata(item).get("namespace", ""), _metadata(item).get("name", ""))):
        ref = pod_ref(pod)
        plan._uids[_ref_text(ref)] = _metadata(pod).get("uid")
        if is_daemonset_pod(pod):
            plan.skip.append(dict(ref, reason=SKIP_DAEMONSET))
            continue
        if is_mirror_pod(pod):
            plan.skip.append(dict(ref, reason=SKIP_MIRROR))
            continue
        if gpu_pods_only and not gpu_resources(pod):
            plan.skip.append(dict(ref, reason=SKIP_NO_GPU))
            continue
        if is_terminating(pod):
            plan.terminating.append(ref)
            continue
        reasons = []
        if not is_finished(pod):
            volumes = emptydir_volumes(pod)
            if volumes and not delete_emptydir_data:
                reasons.append(REFUSE_EMPTYDIR % (", ".join(volumes), option_name(names, "delete_emptydir_data")))
            if controller_of(pod) is None and not force:
                reasons.append(REFUSE_UNMANAGED % option_name(names, "force"))
        if reasons:
            plan.refuse.append(dict(ref, reason="; ".join(reasons)))
        else:
            plan.evict.append(ref)
    return plan


def refusal_message(node_name: str, plan: DrainPlan) -> str:
    """The failure message for a plan with refused pods: every pod and why, so one run shows them all."""
    listed = "; ".join("%s %s" % (_ref_text(ref), ref["reason"]) for ref in plan.refuse)
    return "Cannot drain node %s: %d pod(s) cannot be evicted safely: %s." % (node_name, len(plan.refuse), listed)


def _is_gone(client: KubeClient, ref: Dict[str, str], uid: Optional[str]) -> bool:
    current = client.get_pod(ref["namespace"], ref["name"])
    if current is None:
        return True
    # A controller (StatefulSet) may have recreated a pod of the same name: that one is a new pod.
    return bool(uid) and _metadata(current).get("uid") != uid


def _describe(refs: Sequence[Dict[str, str]]) -> str:
    return ", ".join(_ref_text(ref) for ref in refs) if refs else "none"


def run_evictions(client: KubeClient, node_name: str, plan: DrainPlan, timeout: float,
                  poll_interval: float = DEFAULT_POLL_INTERVAL, grace_period: Optional[int] = None,
                  disable_eviction: bool = False, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep, names: OptionNames = None) -> List[Dict[str, str]]:
    """Evict ``plan.evict`` and wait until they and ``plan.terminating`` are gone; return the evicted refs.

    ``client`` is a ``k8s.KubeClient``. ``timeout`` (seconds) bounds the whole run: evictions refused with
    429 are retried every ``poll_interval`` seconds until then. Any other API error stops at once. Raises
    ``DrainError``; the node is left as it is (cordoned), and pods already evicted stay evicted.
    """
    deadline = clock() + timeout
    evicted = []
    pending = list(plan.evict)
    last_refusal = {}
    while pending:
        still_blocked = []
        for ref in pending:
            try:
                if disable_eviction:
                    client.delete_pod(ref["namespace"], ref["name"], grace_period_seconds=grace_period)
                else:
                    client.evict_pod(ref["namespace"], ref["name"], grace_period_seconds=grace_period)
            except KubeApiError as error:
                if not error.too_many_requests:
                    raise DrainError(
                        "Cannot drain node %s: %s. Pods evicted so far: %s. The node stays cordoned."
                        % (node_name, str(error).rstrip("."), _describe(evicted)),
                        evicted=evicted,
                        blocked=[dict(ref, reason=str(error))],
                    )
                last_refusal[_ref_text(ref)] = error.api_message or str(error)
                still_blocked.append(ref)
            else:
                evicted.append(ref)
        pending = still_blocked
        if not pending:
            break
        remaining = deadline - clock()
        if remaining <= 0:
            blocked = [dict(ref, reason=last_refusal[_ref_text(ref)]) for ref in pending]
            listed = "; ".join("%s (%s)" % (_ref_text(ref), ref["reason"]) for ref in blocked)
            raise DrainError(
                "Timed out after %s s draining node %s: %d pod(s) could not be evicted: %s. Pods evicted: %s. "
                "The node stays cordoned; let the disruption budget allow the eviction or raise %s, and run again."
                % (timeout, node_name, len(blocked), listed, _describe(evicted), option_name(names, "timeout")),
                evicted=evicted,
                blocked=blocked,
                timed_out=True,
            )
        sleep(min(poll_interval, remaining))

    waiting = list(evicted) + list(plan.terminating)
    while waiting:
        waiting = [ref for ref in waiting if not _is_gone(client, ref, plan.uid_of(ref))]
        if not waiting:
            break
        remaining = deadline - clock()
        if remaining <= 0:
            raise DrainError(
                "Timed out after %s s draining node %s: %d pod(s) are still terminating: %s. The node stays cordoned; "
                "raise %s to give them longer, and run again."
                % (timeout, node_name, len(waiting), _describe(waiting), option_name(names, "timeout")),
                evicted=evicted,
                terminating=waiting,
                timed_out=True,
            )
        sleep(min(GONE_POLL_INTERVAL, poll_interval, remaining))
    return evicted
