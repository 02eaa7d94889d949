# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The work of the gpufleet.mig.k8s_node module (cordon, drain, uncordon, labels and annotations) and of the
read-only gpufleet.mig.k8s_node_info module (``read_node_info``: the node and the pods on it, with a wait).

``plan_node_update`` is pure: current node + wanted schedulability/labels/annotations -> the strategic
merge patch (or ``None``) and the before/after the diff shows. ``run_k8s_node`` reads the node, decides,
writes only outside check mode, and drains through ``_drain.py``.

Order of a drain, so that nothing is lost: the pods are classified *before* the node is touched, so a
refused pod (emptyDir, no controller) fails the task with nothing changed; then the node is cordoned; then
the pods are listed again (something may have been scheduled in between) and evicted. Once cordoned, the
node is never uncordoned by a failure: the failure leaves it cordoned and says so.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import OptionNames, option_name
from ansible_collections.gpufleet.mig.plugins.module_utils._drain import (
    DEFAULT_POLL_INTERVAL,
    DrainError,
    controller_of,
    plan_drain,
    refusal_message,
    run_evictions,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import TaskError
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeApiError, KubeClient
from ansible_collections.gpufleet.mig.plugins.module_utils._lease import LeaseHeldError, hold_lease, release_lease

STATES = ("cordoned", "drained", "uncordoned")
DEFAULT_TIMEOUT = 300

_WANTS_UNSCHEDULABLE = {"cordoned": True, "drained": True, "uncordoned": False}

# Set together with the cordon the rollout makes; its presence is what lets a later uncordon lift it. A node
# that was already unschedulable without it was cordoned by someone else and stays cordoned.
CORDONED_BY_LABEL = "gpufleet.mig/cordoned-by"
# How long the cordon-budget lock may be held by a run that died holding it.
BUDGET_LOCK_DURATION = 30
BUDGET_POLL_INTERVAL = 5
# The lock is held only for one count and one patch, so its waiters look again soon.
BUDGET_LOCK_POLL_INTERVAL = 0.2
DEFAULT_BUDGET_LOCK = {"name": "gpufleet-mig-cordon-budget", "namespace": "kube-system"}
# A failed node keeps its cordon, and its place in the budget, until a later run finishes it.
STATE_LABEL = "gpufleet.mig/state"
STATE_FAILED = "failed"


def owner_label_value(owner: str) -> str:
    """``owner`` as a label value: at most 63 characters of ``[A-Za-z0-9._-]``, alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", owner or "")[:63].strip("._-")
    if not value:
        raise TaskError("Cannot record who cordons the node: cordon_owner %r has no letters or digits." % owner, changed=False)
    return value


def cordoned_by_us(node: Dict[str, Any]) -> bool:
    view = node_view(node)
    return view["unschedulable"] and CORDONED_BY_LABEL in view["labels"]


def plan_cordon_ownership(node: Dict[str, Any], state: Optional[str], cordon_owner: str) -> Tuple[Optional[bool], Dict[str, Optional[str]], str]:
    """Pure: ``(unschedulable, labels, cordon)`` for a state when the rollout records whose cordon it is.

    ``cordon`` says what happens to the node's schedulability: ``cordon`` (ours now), ``ours`` (we cordoned
    it in this or an earlier run), ``kept`` (someone else's cordon: we neither take it nor lift it),
    ``uncordon`` (ours, lifted), ``none`` (schedulable and stays so).
    """
    view = node_view(node)
    ours = CORDONED_BY_LABEL in view["labels"]
    if state in ("cordoned", "drained"):
        if not view["unschedulable"]:
            return True, {CORDONED_BY_LABEL: owner_label_value(cordon_owner)}, "cordon"
        return None, {}, "ours" if ours else "kept"
    if state == "uncordoned":
        if view["unschedulable"] and not ours:
            return None, {}, "kept"
        if view["unschedulable"]:
            return False, {CORDONED_BY_LABEL: None}, "uncordon"
        return None, ({CORDONED_BY_LABEL: None} if ours else {}), "none"
    return None, {}, "ours" if ours and view["unschedulable"] else ("kept" if view["unschedulable"] else "none")


def budget_holders(nodes: Iterable[Dict[str, Any]], excluding: str) -> List[str]:
    """Names of the nodes that hold the cordon budget: cordoned by a gpufleet.mig rollout and still cordoned."""
    return sorted(
        node_view(node)["name"] for node in nodes
        if cordoned_by_us(node) and node_view(node)["name"] != excluding
    )


def failed_holders(nodes: Iterable[Dict[str, Any]], holders: Iterable[str]) -> List[str]:
    """Those of ``holders`` a rollout labelled failed: they keep their cordon until a later run finishes them."""
    return sorted(
        node_view(node)["name"] for node in nodes
        if node_view(node)["name"] in holders and node_view(node)["labels"].get(STATE_LABEL) == STATE_FAILED
    )


def _wait_for_budget(client: KubeClient, name: str, cordon_owner: str, max_unavailable: int, lock: Dict[str, str], wait_timeout: float,
                     sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic) -> str:
    """Hold the budget lock with room for one more cordon, or fail naming mig_max_unavailable and the holders.

    Returns the lock's holder identity; the caller cordons, then releases the lock. The lock makes the
    count and the cordon one step for every cooperating run (job slices each limited to their own hosts).
    """
    holder = "%s/%s" % (owner_label_value(cordon_owner), name)
    deadline = monotonic() + max(0, wait_timeout)
    while True:
        remaining = max(0.0, deadline - monotonic())
        try:
            hold_lease(client, lock["name"], lock["namespace"], holder, BUDGET_LOCK_DURATION, remaining,
                       poll_interval=BUDGET_LOCK_POLL_INTERVAL)
        except LeaseHeldError as error:
            raise TaskError("Cannot cordon node %s: %s Raise mig_budget_timeout to wait longer." % (name, error), changed=False)
        nodes = client.list_nodes(label_selector=CORDONED_BY_LABEL)
        holders = budget_holders(nodes, excluding=name)
        if len(holders) < max_unavailable:
            return holder
        release_lease(client, lock["name"], lock["namespace"], holder)
        failed = failed_holders(nodes, holders)
        if len(failed) >= max_unavailable:
            # Failed nodes free their place only when a later run finishes them: waiting here would wait in vain.
            raise TaskError(
                "Cannot cordon node %s: failed node(s) %s keep their cordon and fill the fleet-wide budget "
                "mig_max_unavailable=%d. Fix them and run again, or raise mig_max_unavailable. Nothing was changed on %s."
                % (name, ", ".join(failed), max_unavailable, name),
                changed=False, budget_holders=holders)
        if monotonic() >= deadline:
            raise TaskError(
                "Cannot cordon node %s: %d GPU node(s) are already cordoned by MIG rollouts (%s), which is the fleet-wide "
                "budget mig_max_unavailable=%d. Waited %ds. Finish or fix those nodes, or raise mig_max_unavailable."
                % (name, len(holders), ", ".join(holders), max_unavailable, wait_timeout),
                changed=False, budget_holders=holders)
        sleep(min(BUDGET_POLL_INTERVAL, max(0.1, deadline - monotonic())))


def label_value(key: str, value: Any, what: str = "label") -> Optional[str]:
    """The string a label/annotation value becomes; ``None`` means remove.

    YAML turns unquoted ``true`` and ``1`` into bool/int; Kubernetes wants strings, and ``true`` is what
    the user meant (Python's ``str(True)`` would give ``True``).
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise TaskError("Cannot set %s %s: its value must be a string, or null to remove it, not %s." % (what, key, type(value).__name__))


def _normalised(mapping: Optional[Dict[str, Any]], what: str) -> Dict[str, Optional[str]]:
    return {key: label_value(key, value, what) for key, value in (mapping or {}).items()}


def _managed_view(current: Dict[str, str], wanted: Iterable[str]) -> Dict[str, Optional[str]]:
    """The managed keys as they are: the value, or None where absent (None in the diff means absent)."""
    return {key: current.get(key) for key in sorted(wanted)}


def node_view(node: Dict[str, Any]) -> Dict[str, Any]:
    """What results report about a node."""
    metadata = node.get("metadata") or {}
    return {
        "name": metadata.get("name"),
        "unschedulable": bool((node.get("spec") or {}).get("unschedulable")),
        "labels": dict(metadata.get("labels") or {}),
        "annotations": dict(metadata.get("annotations") or {}),
    }


def plan_node_update(node: Dict[str, Any], unschedulable: Optional[bool] = None, labels: Optional[Dict[str, Any]] = None,
                     annotations: Optional[Dict[str, Any]] = None) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any], Dict[str, Any]]:
    """Return ``(patch, before, after)``; ``patch`` is ``None`` when the node already matches.

    ``unschedulable`` ``None`` leaves scheduling alone. In ``labels`` / ``annotations`` a ``None`` value
    removes the key (strategic merge patch semantics). ``before`` / ``after`` hold ``unschedulable`` and
    only the managed label/annotation keys (``None`` = absent), so the diff shows what the task governs.
    """
    current = node_view(node)
    wanted_labels = _normalised(labels, "label")
    wanted_annotations = _normalised(annotations, "annotation")
    patch = {}
    before = {"unschedulable": current["unschedulable"]}
    after = {"unschedulable": current["unschedulable"]}
    if unschedulable is not None and unschedulable != current["unschedulable"]:
        # Uncordon removes the field, as kubectl does, instead of writing false.
        patch["spec"] = {"unschedulable": True if unschedulable else None}
        after["unschedulable"] = unschedulable
    for key, wanted, present in (("labels", wanted_labels, current["labels"]), ("annotations", wanted_annotations, current["annotations"])):
        if not wanted:
            continue
        before[key] = _managed_view(present, wanted)
        after[key] = dict(sorted(wanted.items()))
        changes = {name: value for name, value in wanted.items() if present.get(name) != value}
        if changes:
            patch.setdefault("metadata", {})[key] = changes
    return (patch or None), before, after


def _predicted_node(node: Dict[str, Any], patch: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    view = node_view(node)
    if not patch:
        return view
    if "spec" in patch:
        view["unschedulable"] = bool(patch["spec"]["unschedulable"])
    for key in ("labels", "annotations"):
        for name, value in ((patch.get("metadata") or {}).get(key) or {}).items():
            if value is None:
                view[key].pop(name, None)
            else:
                view[key][name] = value
    return view


def run_k8s_node(client: KubeClient, name: str, state: Optional[str] = None, labels: Optional[Dict[str, Any]] = None,
                 annotations: Optional[Dict[str, Any]] = None, pod_selector: Optional[str] = None, gpu_pods_only: bool = False,
                 delete_emptydir_data: bool = False, force: bool = False, disable_eviction: bool = False, grace_period: Optional[int] = None,
                 timeout: float = DEFAULT_TIMEOUT, poll_interval: float = DEFAULT_POLL_INTERVAL, check_mode: bool = False,
                 cordon_owner: Optional[str] = None, max_unavailable: Optional[int] = None, budget_lock: Optional[Dict[str, str]] = None,
                 budget_timeout: float = DEFAULT_TIMEOUT, names: OptionNames = None) -> Dict[str, Any]:
    """Bring node ``name`` to ``state`` with ``labels``/``annotations``; return the module result.

    ``client`` is a ``k8s.KubeClient``. Result keys: ``changed``, ``node``, ``evicted`` (in check mode: the
    pods that would be evicted), ``skipped_pods``, ``diff`` and, with ``cordon_owner``, ``cordon`` (see
    ``plan_cordon_ownership``). With ``cordon_owner`` the cordon is recorded as the rollout's and an uncordon lifts
    only such a cordon; with ``max_unavailable`` too, a new cordon waits (up to ``budget_timeout``) until fewer
    than that many nodes carry a rollout's cordon, counted under the ``budget_lock`` lease ``{name, namespace}``.
    Raises ``TaskError`` / ``KubeApiError``.
    """
    if timeout < 0 or poll_interval < 1:
        raise TaskError("Cannot drain node %s: %s must be 0 or more and %s 1 or more (seconds)."
                        % (name, option_name(names, "timeout"), option_name(names, "poll_interval")), changed=False)
    if grace_period is not None and grace_period < 0:
        grace_period = None  # kubectl's --grace-period=-1: each pod's own terminationGracePeriodSeconds
    node = client.get_node(name)
    drain = state == "drained"
    plan = None
    if drain:
        plan = plan_drain(client.pods_on_node(name, label_selector=pod_selector), gpu_pods_only=gpu_pods_only,
                          delete_emptydir_data=delete_emptydir_data, force=force, names=names)
        if plan.refuse:
            raise TaskError(refusal_message(name, plan) + " Nothing was changed.", changed=False, refused=plan.refuse,
                            node=node_view(node))

    unschedulable = _WANTS_UNSCHEDULABLE.get(state)
    cordon = None
    if cordon_owner:
        unschedulable, ownership_labels, cordon = plan_cordon_ownership(node, state, cordon_owner)
        labels = dict(labels or {}, **ownership_labels)
    patch, before, after = plan_node_update(node, unschedulable, labels, annotations)
    changed = patch is not None
    budget_lock = budget_lock or DEFAULT_BUDGET_LOCK
    if patch and not check_mode:
        budget_holder = None
        if cordon == "cordon" and max_unavailable:
            budget_holder = _wait_for_budget(client, name, cordon_owner, max_unavailable, budget_lock, budget_timeout)
        try:
            node = client.patch_node(name, patch)
        finally:
            if budget_holder:
                release_lease(client, budget_lock["name"], budget_lock["namespace"], budget_holder)
    node_after = node_view(node) if not check_mode else _predicted_node(node, patch)

    evicted = []
    skipped = []
    if drain:
        if check_mode:
            evicted = list(plan.evict)
        else:
            # Listed again now that the node is cordoned: pods scheduled since the first listing count too.
            try:
                pods = client.pods_on_node(name, label_selector=pod_selector)
            except KubeApiError as error:
                raise TaskError("%s. The node stays cordoned." % str(error).rstrip("."), changed=changed, node=node_after, api_status=error.status)
            plan = plan_drain(pods, gpu_pods_only=gpu_pods_only, delete_emptydir_data=delete_emptydir_data, force=force, names=names)
            if plan.refuse:
                raise TaskError(refusal_message(name, plan) + " The node stays cordoned.", changed=changed, refused=plan.refuse,
                                node=node_after)
            try:
                evicted = run_evictions(client, name, plan, timeout, poll_interval=poll_interval, grace_period=grace_period,
                                        disable_eviction=disable_eviction, names=names)
            except DrainError as error:
                raise TaskError(str(error), changed=changed or bool(error.evicted), evicted=error.evicted, blocked=error.blocked,
                                terminating=error.terminating, node=node_after)
            except KubeApiError as error:
                # Evictions succeeded but watching the pods go failed: some may have been evicted already.
                raise TaskError("%s. The node stays cordoned." % str(error).rstrip("."), changed=True, node=node_after, api_status=error.status)
        skipped = list(plan.skip)
        changed = changed or bool(evicted)

    result = {
        "changed": changed,
        "node": node_after,
        "evicted": evicted,
        "skipped_pods": skipped,
        "diff": {"before": before, "after": after},
    }
    if cordon is not None:
        result["cordon"] = cordon
    return result


# ------------------------------------------------------------------------------------------------ reading

WAIT_PODS_ABSENT = "pods_absent"
WAIT_PODS_PRESENT = "pods_present"
WAIT_CONDITIONS = (WAIT_PODS_ABSENT, WAIT_PODS_PRESENT)


def pod_view(pod: dict) -> dict:
    """What results report about a pod: where it is, what owns it and how far it got."""
    metadata = pod.get("metadata") or {}
    owner = controller_of(pod) or {}
    return {
        "namespace": metadata.get("namespace", ""),
        "name": metadata.get("name", ""),
        "phase": (pod.get("status") or {}).get("phase"),
        "terminating": bool(metadata.get("deletionTimestamp")),
        "controller_kind": owner.get("kind"),
        "controller_name": owner.get("name"),
    }


def _wait_met(condition: Optional[str], pods: List[dict]) -> bool:
    if condition == WAIT_PODS_ABSENT:
        return not pods
    if condition == WAIT_PODS_PRESENT:
        return bool(pods)
    return True


def read_node_info(client: KubeClient, name: str, pod_selector: Optional[str] = None, wait_for: Optional[str] = None,
                   timeout: float = DEFAULT_TIMEOUT, sleep_seconds: float = 2, clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep, names: OptionNames = None) -> Dict[str, Any]:
    """The node and, with ``pod_selector``, the pods on it that match; changes nothing.

    ``wait_for`` polls every ``sleep_seconds`` until ``pods_absent`` (no matching pod is left on the node,
    terminating ones included) or ``pods_present`` (at least one is there), and fails after ``timeout``
    seconds. Returns ``{"node", "pods"}``; raises ``TaskError`` / ``KubeApiError``.
    """
    if wait_for is not None and wait_for not in WAIT_CONDITIONS:
        raise TaskError("wait_for must be one of %s, got %r" % (", ".join(WAIT_CONDITIONS), wait_for))
    if wait_for is not None and not pod_selector:
        raise TaskError("wait_for needs pod_selector: it waits for the pods that selector matches")
    deadline = clock() + max(timeout, 0)
    while True:
        node = node_view(client.get_node(name))
        pods = [pod_view(pod) for pod in client.pods_on_node(name, label_selector=pod_selector)] if pod_selector else []
        if _wait_met(wait_for, pods):
            return {"node": node, "pods": pods}
        if clock() >= deadline:
            raise TaskError(
                "Pods matching %s %s on node %s after %d s: %s; raise %s if they need longer" % (
                    pod_selector, "are still" if wait_for == WAIT_PODS_ABSENT else "did not appear", name, timeout,
                    ", ".join("%s/%s" % (pod["namespace"], pod["name"]) for pod in pods) or "none",
                    option_name(names, "wait_timeout")),
                node=node, pods=pods)
        sleep(sleep_seconds)


def _evictions_preview(pods: List[dict], drain_preview: dict) -> dict:
    """What draining the node would do with ``pods``, as the drain role would sort them (``plan_drain``)."""
    plan = plan_drain(pods, gpu_pods_only=drain_preview.get("gpu_pods_only", True),
                      delete_emptydir_data=drain_preview.get("delete_emptydir_data", False),
                      force=drain_preview.get("force", False))
    return {"evict": plan.evict, "refuse": plan.refuse, "terminating": plan.terminating}


def read_fleet_info(client: KubeClient, names: List[str], drain_preview: Optional[dict] = None) -> dict:
    """Many nodes in two API calls: every node, and with ``drain_preview`` every pod, listed once.

    A rollout plans its whole fleet from this instead of reading each node (and the pods on it) on its own,
    so a plan costs two requests however many nodes it covers. Returns ``{"nodes": {name: node view, with
    "drain" when drain_preview is set}, "missing": [names the cluster does not have]}``; changes nothing.
    ``drain_preview`` takes the drain role's choices: ``gpu_pods_only``, ``pod_selector``,
    ``delete_emptydir_data``, ``force``.
    """
    wanted = set(names)
    nodes = dict((view["name"], view) for view in (node_view(node) for node in client.list_nodes()) if view["name"] in wanted)
    if drain_preview is not None:
        pods_by_node = dict((name, []) for name in nodes)
        for pod in client.list_pods(label_selector=drain_preview.get("pod_selector") or None):
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name in pods_by_node:
                pods_by_node[node_name].append(pod)
        for name, pods in pods_by_node.items():
            nodes[name]["drain"] = _evictions_preview(pods, drain_preview)
    return {"nodes": nodes, "missing": sorted(wanted - set(nodes))}
