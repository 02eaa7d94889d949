# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The work of the gpufleet.mig.k8s_node module (cordon, drain, uncordon, labels and annotations) and of the
read-only gpufleet.mig.k8s_node_info module (``read_node_info``: the node and the pods on it, with a wait).

``plan_node_update`` is pure: current node + wanted schedulability/labels/annotations -> the strategic
merge patch (or ``None``) and the before/after the diff shows. ``run_k8s_node`` reads the node, decides,
writes only outside check mode, and drains through ``drain.py``.

Order of a drain, so that nothing is lost: the pods are classified *before* the node is touched, so a
refused pod (emptyDir, no controller) fails the task with nothing changed; then the node is cordoned; then
the pods are listed again (something may have been scheduled in between) and evicted. Once cordoned, the
node is never uncordoned by a failure: the failure leaves it cordoned and says so.
"""

from __future__ import annotations

import time
from typing import List, Optional

from ansible_collections.gpufleet.mig.plugins.module_utils.drain import (
    DEFAULT_POLL_INTERVAL,
    DrainError,
    controller_of,
    plan_drain,
    refusal_message,
    run_evictions,
)
from ansible_collections.gpufleet.mig.plugins.module_utils.errors import TaskError
from ansible_collections.gpufleet.mig.plugins.module_utils.k8s import KubeApiError

STATES = ("cordoned", "drained", "uncordoned")
DEFAULT_TIMEOUT = 300

_WANTS_UNSCHEDULABLE = {"cordoned": True, "drained": True, "uncordoned": False}


def label_value(key, value, what="label"):
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


def _normalised(mapping, what):
    return {key: label_value(key, value, what) for key, value in (mapping or {}).items()}


def _managed_view(current, wanted):
    """The managed keys as they are: the value, or None where absent (None in the diff means absent)."""
    return {key: current.get(key) for key in sorted(wanted)}


def node_view(node):
    """What results report about a node."""
    metadata = node.get("metadata") or {}
    return {
        "name": metadata.get("name"),
        "unschedulable": bool((node.get("spec") or {}).get("unschedulable")),
        "labels": dict(metadata.get("labels") or {}),
        "annotations": dict(metadata.get("annotations") or {}),
    }


def plan_node_update(node, unschedulable=None, labels=None, annotations=None):
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


def _predicted_node(node, patch):
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


def run_k8s_node(client, name, state=None, labels=None, annotations=None, pod_selector=None, gpu_pods_only=False,
                 delete_emptydir_data=False, force=False, disable_eviction=False, grace_period=None,
                 timeout=DEFAULT_TIMEOUT, poll_interval=DEFAULT_POLL_INTERVAL, check_mode=False):
    """Bring node ``name`` to ``state`` with ``labels``/``annotations``; return the module result.

    ``client`` is a ``k8s.KubeClient``. Result keys: ``changed``, ``node``, ``evicted`` (in check mode: the
    pods that would be evicted), ``skipped_pods``, ``diff``. Raises ``TaskError`` / ``KubeApiError``.
    """
    if timeout < 0 or poll_interval < 1:
        raise TaskError("Cannot drain node %s: timeout must be 0 or more and poll_interval 1 or more (seconds)." % name, changed=False)
    if grace_period is not None and grace_period < 0:
        grace_period = None  # kubectl's --grace-period=-1: each pod's own terminationGracePeriodSeconds
    node = client.get_node(name)
    drain = state == "drained"
    plan = None
    if drain:
        plan = plan_drain(client.pods_on_node(name, label_selector=pod_selector), gpu_pods_only=gpu_pods_only,
                          delete_emptydir_data=delete_emptydir_data, force=force)
        if plan.refuse:
            raise TaskError(refusal_message(name, plan) + " Nothing was changed.", changed=False, refused=plan.refuse,
                            node=node_view(node))

    patch, before, after = plan_node_update(node, _WANTS_UNSCHEDULABLE.get(state), labels, annotations)
    changed = patch is not None
    if patch and not check_mode:
        node = client.patch_node(name, patch)
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
            plan = plan_drain(pods, gpu_pods_only=gpu_pods_only, delete_emptydir_data=delete_emptydir_data, force=force)
            if plan.refuse:
                raise TaskError(refusal_message(name, plan) + " The node stays cordoned.", changed=changed, refused=plan.refuse,
                                node=node_after)
            try:
                evicted = run_evictions(client, name, plan, timeout, poll_interval=poll_interval, grace_period=grace_period,
                                        disable_eviction=disable_eviction)
            except DrainError as error:
                raise TaskError(str(error), changed=changed or bool(error.evicted), evicted=error.evicted, blocked=error.blocked,
                                terminating=error.terminating, node=node_after)
            except KubeApiError as error:
                # Evictions succeeded but watching the pods go failed: some may have been evicted already.
                raise TaskError("%s. The node stays cordoned." % str(error).rstrip("."), changed=True, node=node_after, api_status=error.status)
        skipped = list(plan.skip)
        changed = changed or bool(evicted)

    return {
        "changed": changed,
        "node": node_after,
        "evicted": evicted,
        "skipped_pods": skipped,
        "diff": {"before": before, "after": after},
    }


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


def read_node_info(client, name: str, pod_selector: Optional[str] = None, wait_for: Optional[str] = None,
                   timeout: int = DEFAULT_TIMEOUT, sleep_seconds: int = 2, clock=time.monotonic,
                   sleep=time.sleep) -> dict:
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
                "Pods matching %s %s on node %s after %d s: %s" % (
                    pod_selector, "are still" if wait_for == WAIT_PODS_ABSENT else "did not appear", name, timeout,
                    ", ".join("%s/%s" % (pod["namespace"], pod["name"]) for pod in pods) or "none"),
                node=node, pods=pods)
        sleep(sleep_seconds)
