# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Propose per-node MIG layouts that serve the GPU requests of the cluster's pending pods.

Pure functions; ``mig_demand_info`` feeds them the API's nodes and pods and the nodes' ``gpu_info`` facts.

The model, and what it leaves out:

* A pod's GPU demand is the sum of its containers' ``nvidia.com/gpu`` and ``nvidia.com/mig-*`` requests (limits
  when no request is given: extended resources cannot be overcommitted), or its largest init container's if larger.
* What a node offers is what its layout makes the NVIDIA device plugin advertise
  (https://github.com/NVIDIA/k8s-device-plugin, docs: "MIG support", strategies): ``mixed`` advertises a
  MIG-enabled GPU's devices as ``nvidia.com/mig-<profile>`` and a MIG-disabled GPU as one ``nvidia.com/gpu``;
  ``single`` advertises every MIG device of the node's one profile as ``nvidia.com/gpu``; ``none`` exposes no MIG
  device, so nothing is proposed.
* A pod can go to a node when the node is schedulable (or the pod tolerates it), the pod tolerates the node's
  NoSchedule/NoExecute taints, and its ``nodeSelector`` and required node affinity match the node's labels. Labels
  under ``nvidia.com/`` are GPU feature discovery's and follow the layout, so they do not constrain the choice of
  node, except that under ``single`` a ``nvidia.com/gpu.product`` value ending in ``-MIG-<profile>`` asks for
  that profile (GFD's single-strategy product label).
* A node that changes is drained (its running GPU pods are evicted: the proposal counts them) and comes back
  with a layout that still holds those pods, so they can be placed again.
* Pending pods that already fit a node's free capacity are served by the current layout (the scheduler has not
  placed them yet, or their node is cordoned only for a moment).

The choice: serve the most pending pods; among equal, evict the fewest running pods; among equal, change the
fewest nodes. It is made greedily (nodes without running GPU pods first; each step changes the node that serves
the most remaining pods, lazily re-scored), which the tests compare with an exhaustive search on small fleets.
Every proposed GPU layout is checked with the planner (``planner.plan_gpu_layout``) against the GPU's current
instances, and every node's with the strategy check (``mig_strategy.layout_problem``).
"""

from __future__ import annotations

import functools
import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Counter as CounterType, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import LayoutError, ProfileError
from ansible_collections.gpufleet.mig.plugins.module_utils._planner import busy_gpu_instance_ids, plan_gpu_layout
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import (
    canonical_devices,
    catalog_from_dict,
    GpuCatalog,
    device_sort_key,
    normalize_profile,
    parse_profile,
    resource_name,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._mig_strategy import layout_problem
from ansible_collections.gpufleet.mig.plugins.module_utils._node_report import describe_devices, mig_device_instances

RESOURCE_GPU = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
PRODUCT_LABEL = "nvidia.com/gpu.product"
LAYOUT_LABEL_PREFIX = "nvidia.com/"
STRATEGIES = ("none", "single", "mixed")
# One GPU's layout: (MIG enabled, canonical MIG device names, largest first); a node's is one per GPU, in index order.
GpuState = Tuple[bool, Tuple[str, ...]]
NodeStates = List[GpuState]
_UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def is_gpu_resource(resource: str) -> bool:
    return resource == RESOURCE_GPU or resource.startswith(MIG_RESOURCE_PREFIX)


def device_of_resource(resource: str) -> str:
    """``nvidia.com/mig-1g.5gb.me`` -> ``1g.5gb+me``; ProfileError for names that are no MIG profile."""
    return normalize_profile(resource[len(MIG_RESOURCE_PREFIX):])


def _quantity(value: Any) -> int:
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return int(float(text))  # "1e0" and friends; extended resources are whole numbers


def _container_requests(container: Dict[str, Any]) -> CounterType[str]:
    resources = container.get("resources") or {}
    wanted = dict(resources.get("limits") or {})
    wanted.update(resources.get("requests") or {})
    return Counter(dict((key, _quantity(value)) for key, value in wanted.items() if is_gpu_resource(key)))


def pod_gpu_requests(pod: Dict[str, Any]) -> Dict[str, int]:
    """The pod's GPU requests, ``{resource: count}``, as the scheduler sums them."""
    spec = pod.get("spec") or {}
    total = Counter()
    for container in spec.get("containers") or ():
        total.update(_container_requests(container))
    for container in spec.get("initContainers") or ():
        for resource, count in _container_requests(container).items():
            total[resource] = max(total[resource], count)
    return dict((key, value) for key, value in total.items() if value > 0)


@dataclass
class GpuPod:
    """A pod that asks for GPUs: pending (no node yet) or bound to ``node_name``."""

    key: str
    requests: Dict[str, int]
    node_name: Optional[str] = None
    node_selector: Dict[str, str] = field(default_factory=dict)
    required_terms: Optional[List[Dict[str, Any]]] = None  # nodeSelectorTerms of the required node affinity
    tolerations: List[Dict[str, Any]] = field(default_factory=list)
    created: str = ""

    @property
    def pending(self) -> bool:
        return self.node_name is None


def gpu_pods(api_pods: Optional[Iterable[Dict[str, Any]]]) -> List[GpuPod]:
    """GpuPod records of the API's pods that ask for GPUs and are pending or running (finished and terminating pods
    hold nothing)."""
    pods = []
    for pod in api_pods or ():
        metadata = pod.get("metadata") or {}
        status = pod.get("status") or {}
        spec = pod.get("spec") or {}
        if status.get("phase") in ("Succeeded", "Failed") or metadata.get("deletionTimestamp"):
            continue
        requests = pod_gpu_requests(pod)
        if not requests:
            continue
        affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        pods.append(GpuPod(
            key="%s/%s" % (metadata.get("namespace", ""), metadata.get("name", "")),
            requests=requests,
            node_name=spec.get("nodeName") or None,
            node_selector=dict(spec.get("nodeSelector") or {}),
            required_terms=list((affinity or {}).get("nodeSelectorTerms") or []) if affinity else None,
            tolerations=list(spec.get("tolerations") or []),
            created=str(metadata.get("creationTimestamp") or ""),
        ))
    return pods


@dataclass
class GpuSlot:
    """One GPU of a node: what it has now and, when known, every MIG profile it offers."""

    index: int
    model: str
    mig_capable: bool
    mig_enabled: bool
    devices: Tuple[str, ...]  # canonical names of its MIG devices now
    gpu_instances: List[Dict[str, Any]] = field(default_factory=list)  # gpu_info records, for the planner
    busy: FrozenSet[int] = frozenset()
    catalog: Optional[GpuCatalog] = None

    @property
    def state(self) -> GpuState:
        return (self.mig_enabled, self.devices if self.mig_enabled else ())


@dataclass
class GpuNode:
    name: str
    host: Optional[str] = None  # the inventory host the layout goes to
    labels: Dict[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    taints: List[Dict[str, Any]] = field(default_factory=list)
    allocatable: Dict[str, int] = field(default_factory=dict)  # GPU resources the node advertises now
    gpus: Optional[List[GpuSlot]] = None  # None when no gpu_info facts were given

    def unchangeable_reason(self) -> Optional[str]:
        if self.gpus is None:
            return "no gpu_info facts for this node (its current layout is read from the API, its profile catalog is unknown)"
        if not self.gpus:
            return "gpu_info found no GPUs"
        missing = [gpu.index for gpu in self.gpus if gpu.mig_capable and (gpu.catalog is None or not gpu.catalog.profiles)]
        if missing:
            return "no MIG profile catalog for GPU(s) %s (gpu_info with profile_catalog: true)" % ", ".join(map(str, missing))
        if not any(gpu.mig_capable for gpu in self.gpus):
            return "no MIG-capable GPU"
        return None


def _intern_catalog(data: Dict[str, Any], interned: Dict[Optional[str], GpuCatalog]) -> GpuCatalog:
    key = repr(sorted(data.items())) if isinstance(data, dict) else None
    if key not in interned:
        interned[key] = catalog_from_dict(data)
    return interned[key]


def gpu_slots(gpu_facts: Optional[Iterable[Dict[str, Any]]], interned: Optional[Dict[Optional[str], GpuCatalog]] = None) -> List[GpuSlot]:
    """GpuSlot records from a ``gpu_info`` result's ``gpus`` (with ``profile_catalog`` for MIG-capable GPUs)."""
    interned = {} if interned is None else interned
    slots = []
    for gpu in gpu_facts or ():
        mode = (gpu.get("mig_mode") or {}).get("current")
        names = [ci.get("profile_name") for _gi, ci in mig_device_instances(gpu)]
        catalog = _intern_catalog(gpu["profile_catalog"], interned) if gpu.get("profile_catalog") else None
        slots.append(GpuSlot(
            index=int(gpu["index"]),
            model=str(gpu.get("name") or "GPU"),
            mig_capable=bool(gpu.get("mig_capable")),
            mig_enabled=mode == "enabled",
            devices=canonical_devices([name for name in names if name]),
            gpu_instances=list(gpu.get("gpu_instances") or ()),
            busy=busy_gpu_instance_ids(gpu),
            catalog=catalog,
        ))
    return sorted(slots, key=lambda slot: slot.index)


def gpu_nodes(api_nodes: Optional[Iterable[Dict[str, Any]]], node_facts: Optional[Dict[str, Dict[str, Any]]] = None) -> List[GpuNode]:
    """GpuNode records of the API nodes that advertise GPUs or have gpu_info facts in ``node_facts``
    (``{k8s node name: {"host": inventory name, "gpus": gpu_info gpus}}``)."""
    node_facts = node_facts or {}
    interned = {}
    nodes = []
    for node in api_nodes or ():
        metadata = node.get("metadata") or {}
        name = metadata.get("name")
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        gpu_allocatable = dict((key, _quantity(value)) for key, value in allocatable.items() if is_gpu_resource(key))
        facts = node_facts.get(name)
        if facts is None and not gpu_allocatable:
            continue
        nodes.append(GpuNode(
            name=name,
            host=(facts or {}).get("host") or None,
            labels=dict(metadata.get("labels") or {}),
            unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
            taints=list((node.get("spec") or {}).get("taints") or []),
            allocatable=gpu_allocatable,
            gpus=gpu_slots(facts.get("gpus"), interned) if facts is not None else None,
        ))
    return sorted(nodes, key=lambda node: node.name)


# Where a pod may go -----------------------------------------------------------------------------------------


def _tolerates(toleration: Dict[str, Any], taint: Dict[str, Any]) -> bool:
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration.get("key") == taint.get("key")
    return toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def _expression_matches(expression: Dict[str, Any], labels: Dict[str, str]) -> bool:
    key, operator = expression.get("key", ""), expression.get("operator")
    if key.startswith(LAYOUT_LABEL_PREFIX):
        return True  # GFD's labels follow the layout the proposal chooses
    values = list(expression.get("values") or ())
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and values:
        try:
            left, right = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def _field_matches(expression: Dict[str, Any], node: GpuNode) -> bool:
    if expression.get("key") != "metadata.name":
        return False
    values = list(expression.get("values") or ())
    if expression.get("operator") == "In":
        return node.name in values
    if expression.get("operator") == "NotIn":
        return node.name not in values
    return False


def _term_matches(term: Dict[str, Any], node: GpuNode) -> bool:
    expressions = list(term.get("matchExpressions") or ())
    fields = list(term.get("matchFields") or ())
    if not expressions and not fields:
        return False  # an empty term matches no node (core/v1 NodeSelectorTerm)
    return all(_expression_matches(e, node.labels) for e in expressions) and all(_field_matches(f, node) for f in fields)


def why_not_node(pod: GpuPod, node: GpuNode) -> Optional[str]:
    """None when ``pod`` may go to ``node`` whatever its layout, else the reason, in the scheduler's words."""
    if node.unschedulable and not any(_tolerates(t, _UNSCHEDULABLE_TAINT) for t in pod.tolerations):
        return "node(s) were unschedulable"
    for taint in node.taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(_tolerates(t, taint) for t in pod.tolerations):
            return "node(s) had untolerated taint {%s: %s}" % (taint.get("key"), taint.get("value", ""))
    for key, value in pod.node_selector.items():
        if not key.startswith(LAYOUT_LABEL_PREFIX) and node.labels.get(key) != value:
            return "node(s) didn't match Pod's node affinity/selector"
    if pod.required_terms is not None and not any(_term_matches(term, node) for term in pod.required_terms):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def single_profile_wanted(pod: GpuPod) -> Optional[str]:
    """Under ``single``: the MIG profile a pod's ``nvidia.com/gpu.product`` selector names, ``''`` for a whole GPU,
    None when it names none."""
    product = pod.node_selector.get(PRODUCT_LABEL)
    if not product:
        return None
    if "-MIG-" in product:
        try:
            return normalize_profile(product.rsplit("-MIG-", 1)[1])
        except ProfileError:
            return None
    return ""


# What a layout offers ---------------------------------------------------------------------------------------


def layout_resources(states: Iterable[GpuState], strategy: str) -> CounterType[str]:
    """GPU resources a node with per-GPU ``(mig_enabled, devices)`` states advertises under ``strategy``."""
    offered = Counter()
    for enabled, devices in states:
        if not enabled or strategy == "none":
            offered[RESOURCE_GPU] += 1
        elif strategy == "single":
            offered[RESOURCE_GPU] += len(devices)
        else:
            for device in devices:
                offered[resource_name(device)] += 1
    return offered


def single_profile(states: Iterable[GpuState]) -> Optional[str]:
    """The node's one MIG profile under ``single`` (``''`` when MIG is off everywhere), None when it has several."""
    profiles = set(device for enabled, devices in states if enabled for device in devices)
    if not profiles:
        return ""
    return profiles.pop() if len(profiles) == 1 else None


def _fits(requests: Dict[str, int], free: Dict[str, int]) -> bool:
    return all(free.get(resource, 0) >= count for resource, count in requests.items())


def pod_size(pod: GpuPod) -> int:
    """How much GPU a pod takes, in compute slices (a whole GPU counts as 8): small pods are packed first."""
    size = 0
    for resource, count in pod.requests.items():
        if resource.startswith(MIG_RESOURCE_PREFIX):
            try:
                size += parse_profile(device_of_resource(resource)).gpu_slices * count
            except ProfileError:
                size += 8 * count
        else:
            size += 8 * count
    return size


class _Placeable(object):
    """Whether a multiset of MIG devices can exist together on a GPU, per catalog, memoised (the planner decides)."""

    def __init__(self) -> None:
        self.known = {}
        self.layouts = {}  # (node, demand) -> per-GPU states or None, for _mixed_layout
        self.bounds = {}  # node -> (compute slices of all its GPUs, of its smallest GPU)
        self.calls = 0

    def __call__(self, catalog: GpuCatalog, devices: Tuple[str, ...]) -> bool:
        key = (id(catalog), devices)
        if key not in self.known:
            self.calls += 1
            try:
                plan_gpu_layout(catalog, (), devices)
                self.known[key] = True
            except (LayoutError, ProfileError):
                self.known[key] = False
        return self.known[key]


@functools.lru_cache(maxsize=None)
def _device_order(name: str) -> Tuple[tuple, str]:
    return (device_sort_key(name), name)


def _sorted_devices(devices: Iterable[str]) -> Tuple[str, ...]:
    return tuple(sorted(devices, key=_device_order))


def _mixed_layout(node: GpuNode, demand: Dict[str, int], placeable: _Placeable) -> Optional[NodeStates]:
    """Per-GPU states of ``node`` that hold ``demand`` (a Counter of resources) under ``mixed``, or None."""
    whole = demand.get(RESOURCE_GPU, 0)
    wanted = []
    for resource, count in demand.items():
        if resource.startswith(MIG_RESOURCE_PREFIX) and count > 0:
            try:
                wanted.extend([device_of_resource(resource)] * count)
            except ProfileError:
                return None
    fixed = [gpu for gpu in node.gpus if not gpu.mig_capable]
    capable = [gpu for gpu in node.gpus if gpu.mig_capable]
    to_disable = max(0, whole - len(fixed))
    if to_disable > len(capable):
        return None
    # Whole GPUs come from GPUs already without MIG first, so fewer GPUs change mode.
    ordered = sorted(capable, key=lambda gpu: (gpu.mig_enabled, len(gpu.devices), gpu.index))
    disabled = set(gpu.index for gpu in ordered[:to_disable])
    enabled = [gpu for gpu in capable if gpu.index not in disabled]
    assigned = dict((gpu.index, ()) for gpu in enabled)
    for device in _sorted_devices(wanted):
        # A GPU that has the device now first (the planner can keep it), then in index order.
        for gpu in sorted(enabled, key=lambda g: (device not in g.devices, g.index)):
            candidate = _sorted_devices(assigned[gpu.index] + (device,))
            if placeable(gpu.catalog, candidate):
                assigned[gpu.index] = candidate
                break
        else:
            return None
    states = {}
    for gpu in fixed:
        states[gpu.index] = gpu.state
    for gpu in capable:
        if gpu.index in disabled:
            states[gpu.index] = (False, ())
        elif not assigned[gpu.index]:
            states[gpu.index] = gpu.state  # nothing asked of it: leave it as it is
        else:
            devices = assigned[gpu.index]
            # Fill what is left with the GPU's current devices that still fit, so the planner keeps them.
            if gpu.mig_enabled:
                remaining = Counter(gpu.devices) - Counter(devices)
                for device in _sorted_devices(remaining.elements()):
                    candidate = _sorted_devices(devices + (device,))
                    if placeable(gpu.catalog, candidate):
                        devices = candidate
            states[gpu.index] = (True, devices)
    return [states[gpu.index] for gpu in node.gpus]


def _single_candidates(node: GpuNode, placeable: _Placeable) -> List[NodeStates]:
    """Every node layout ``single`` allows: MIG off on all GPUs, or each GPU full of one profile."""
    capable = [gpu for gpu in node.gpus if gpu.mig_capable]
    candidates = [[(False, ()) if gpu.mig_capable else gpu.state for gpu in node.gpus]]
    if len(capable) != len(node.gpus):
        return candidates  # MIG on some GPUs and not on others is refused by the plugin under single
    profiles = None
    for gpu in capable:
        names = set(p.name for p in gpu.catalog.profiles if p.full_compute_profile is not None)
        profiles = names if profiles is None else profiles & names
    for profile in sorted(profiles or (), key=lambda name: (device_sort_key(name), name)):
        states = []
        for gpu in node.gpus:
            count = 0
            while placeable(gpu.catalog, (profile,) * (count + 1)):
                count += 1
            states.append((True, (profile,) * count))
        if all(devices for _enabled, devices in states):
            candidates.append(states)
    return candidates


def _single_holds(states: NodeStates, pods: Iterable[GpuPod]) -> bool:
    profile = single_profile(states)
    if profile is None:
        return False
    needed = 0
    for pod in pods:
        if any(resource != RESOURCE_GPU for resource in pod.requests):
            return False
        wanted = single_profile_wanted(pod)
        if wanted is not None and wanted != profile:
            return False
        needed += pod.requests.get(RESOURCE_GPU, 0)
    return needed <= layout_resources(states, "single")[RESOURCE_GPU]


def _total(pods: Iterable[GpuPod]) -> CounterType[str]:
    total = Counter()
    for pod in pods:
        total.update(pod.requests)
    return total


def _pack(base_pods: Sequence[GpuPod], candidates: Iterable[GpuPod], holds: Callable[[GpuPod, CounterType[str]], bool],
          weight: Optional[Callable[[GpuPod], int]] = None, capacity: Optional[int] = None,
          precheck: Optional[Callable[[GpuPod, CounterType[str]], bool]] = None) -> List[GpuPod]:
    """Add ``candidates`` (best first) one by one while ``holds(the pod added, the total requests with it)``; the
    pods added. ``base_pods`` are held already. With ``weight`` and ``capacity``, a pod whose weight no longer fits
    is passed over without asking ``holds``; so is one ``precheck(pod, total without it)`` refuses."""
    chosen = []
    total = _total(base_pods)
    used = sum(weight(pod) for pod in base_pods) if weight is not None else 0
    for pod in candidates:
        if weight is not None and used + weight(pod) > capacity:
            continue
        if precheck is not None and not precheck(pod, total):
            continue
        trial = total.copy()
        trial.update(pod.requests)
        if holds(pod, trial):
            chosen.append(pod)
            total = trial
            used += weight(pod) if weight is not None else 0
    return chosen


def _single_pod_fits(states: NodeStates, pod: GpuPod, total: Dict[str, int]) -> bool:
    """Under single: ``pod`` asks only for nvidia.com/gpu, of the node's profile, and ``total`` fits its count."""
    if any(resource != RESOURCE_GPU for resource in pod.requests):
        return False
    wanted = single_profile_wanted(pod)
    if wanted is not None and wanted != single_profile(states):
        return False
    return total.get(RESOURCE_GPU, 0) <= layout_resources(states, "single")[RESOURCE_GPU]


def _slice_bound(node: GpuNode) -> Optional[Tuple[int, int]]:
    """Compute slices a node can give at most (None when a GPU without MIG makes the bound meaningless)."""
    if any(not gpu.mig_capable or gpu.catalog is None for gpu in node.gpus):
        return None
    return sum(gpu.catalog.compute_slice_count for gpu in node.gpus), min(gpu.catalog.compute_slice_count for gpu in node.gpus)


@functools.lru_cache(maxsize=None)
def _resource_slices(resource: str) -> int:
    try:
        return parse_profile(device_of_resource(resource)).gpu_slices
    except ProfileError:
        return 0


def _mixed_layout_memo(node: GpuNode, total: Dict[str, int], placeable: _Placeable) -> Optional[NodeStates]:
    bound = placeable.bounds.get(id(node), False)
    if bound is False:
        bound = placeable.bounds[id(node)] = _slice_bound(node)
    if bound is not None:
        # A cheap refusal before the packing: the devices' compute slices, and a full GPU per whole-GPU request.
        wanted = sum(_resource_slices(resource) * count for resource, count in total.items() if resource != RESOURCE_GPU)
        if wanted + total.get(RESOURCE_GPU, 0) * bound[1] > bound[0]:
            return None
    key = (id(node), frozenset((resource, count) for resource, count in total.items() if count > 0))
    if key not in placeable.layouts:
        placeable.layouts[key] = _mixed_layout(node, total, placeable)
    return placeable.layouts[key]


def best_relayout(node: GpuNode, base_pods: Sequence[GpuPod], candidates: Sequence[GpuPod], strategy: str,
                  placeable: _Placeable) -> Tuple[Optional[NodeStates], List[GpuPod]]:
    """The layout of ``node`` that holds ``base_pods`` (those that must stay) and as many ``candidates`` as it can:
    ``(states, served pods)``, or ``(None, [])`` when no layout holds ``base_pods``."""
    if strategy == "mixed":
        def holds(pod: GpuPod, total: CounterType[str]) -> bool:
            return _mixed_layout_memo(node, total, placeable) is not None

        if _mixed_layout_memo(node, _total(base_pods), placeable) is None:
            return None, []
        bound = _slice_bound(node)
        if bound is None:
            served = _pack(base_pods, candidates, holds)
        else:
            def weight(pod: GpuPod) -> int:
                return sum((_resource_slices(resource) if resource != RESOURCE_GPU else bound[1]) * count
                           for resource, count in pod.requests.items())

            served = _pack(base_pods, candidates, holds, weight, bound[0])
        return _mixed_layout_memo(node, _total(list(base_pods) + served), placeable), served
    if strategy == "single":
        best = (None, [])
        current = [gpu.state for gpu in node.gpus]
        for states in _single_candidates(node, placeable):
            if not _single_holds(states, base_pods):
                continue
            served = _pack(base_pods, candidates, lambda pod, total, states=states: _single_pod_fits(states, pod, total))
            if best[0] is None or len(served) > len(best[1]) or (len(served) == len(best[1]) and states == current):
                best = (states, served)
        return best
    return None, []


# The proposal -----------------------------------------------------------------------------------------------


@dataclass
class NodeProposal:
    node: GpuNode
    states: NodeStates  # per-GPU (mig_enabled, devices), in node.gpus order
    serves: List[GpuPod] = field(default_factory=list)  # pending pods served by this node
    evicted: List[GpuPod] = field(default_factory=list)  # running pods the drain evicts

    @property
    def changed(self) -> bool:
        return self.node.gpus is not None and self.states != [gpu.state for gpu in self.node.gpus]


def _order(pod: GpuPod) -> Tuple[int, str, str]:
    return (pod_size(pod), pod.created, pod.key)


def _describe_state(state: GpuState) -> str:
    enabled, devices = state
    if not enabled:
        return "MIG disabled"
    return describe_devices(devices, empty="MIG enabled, no devices")


def mig_layout_of(node: GpuNode, states: NodeStates) -> Dict[Any, Any]:
    """The inline ``mig_layout`` host var for a node's per-GPU states: one layout for every MIG-capable GPU when
    they all agree, else one per GPU index."""
    def one(state: GpuState) -> Any:
        enabled, devices = state
        if not enabled:
            return "disabled"
        counts = Counter(devices)
        return dict((name, counts[name]) for name in _sorted_devices(counts))

    per_gpu = [(gpu.index, one(state)) for gpu, state in zip(node.gpus, states) if gpu.mig_capable]
    layouts = [layout for _index, layout in per_gpu]
    if layouts and all(layout == layouts[0] for layout in layouts):
        return layouts[0]
    return dict(per_gpu)


def _verify(proposal: NodeProposal, strategy: str) -> Optional[str]:
    """The planner's and the strategy check's word on a changed node's layout: None, or the problem."""
    node = proposal.node
    for gpu, (enabled, devices) in zip(node.gpus, proposal.states):
        if enabled and devices and (gpu.state != (enabled, devices)):
            try:
                plan_gpu_layout(gpu.catalog, gpu.gpu_instances, devices, busy_gpu_instances=gpu.busy)
            except (LayoutError, ProfileError) as error:
                return "GPU %d: %s" % (gpu.index, error)
    problem = layout_problem([{"index": gpu.index, "mig_enabled": enabled, "devices": list(devices)}
                              for gpu, (enabled, devices) in zip(node.gpus, proposal.states)], strategy)
    return str(problem) if problem is not None else None


def holding_states(node: GpuNode, pods: Sequence[GpuPod], strategy: str, placeable: _Placeable,
                   total: Optional[Dict[str, int]] = None) -> Optional[NodeStates]:
    """Per-GPU states of ``node`` that hold ``pods`` (its running pods included), its current layout whenever that
    does; None when no layout the strategy allows holds them."""
    current = [gpu.state for gpu in node.gpus] if node.gpus is not None else []
    total = _total(pods) if total is None else total
    if _held_as_is(node, pods, strategy, placeable, total):
        return current
    if node.unchangeable_reason() is not None:
        return None
    if strategy == "mixed":
        return _mixed_layout_memo(node, total, placeable)
    if strategy == "single":
        for states in _single_candidates(node, placeable):
            if _single_holds(states, pods):
                return states
    return None


class _Assignment(object):
    """Which node serves which pending pod, and the layout every node needs for it."""

    def __init__(self, nodes: Sequence[GpuNode], running: Dict[str, List[GpuPod]], strategy: str,
                 placeable: _Placeable) -> None:
        self.nodes = dict((node.name, node) for node in nodes)
        self.running = running
        self.strategy = strategy
        self.placeable = placeable
        self.serves = dict((node.name, []) for node in nodes)
        self.running_totals = {}
        self.currents = {}
        self.states = dict((node.name, [gpu.state for gpu in node.gpus] if node.gpus is not None else []) for node in nodes)

    def current(self, name: str) -> NodeStates:
        if name not in self.currents:
            node = self.nodes[name]
            self.currents[name] = [gpu.state for gpu in node.gpus] if node.gpus is not None else []
        return self.currents[name]

    def changed(self, name: str) -> bool:
        return self.states[name] != self.current(name)

    def cost(self, name: str, states: NodeStates) -> Tuple[int, int]:
        """(evictions, changed) of giving node ``name`` these states."""
        if states == self.current(name):
            return (0, 0)
        return (len(self.running[name]), 1)

    def try_states(self, name: str, serves: List[GpuPod]) -> Optional[NodeStates]:
        if name not in self.running_totals:
            self.running_totals[name] = _total(self.running[name])
        total = self.running_totals[name] + _total(serves)
        return holding_states(self.nodes[name], self.running[name] + serves, self.strategy, self.placeable, total)

    def apply(self, name: str, serves: List[GpuPod], states: NodeStates) -> None:
        self.serves[name] = serves
        self.states[name] = states

    def totals(self) -> Tuple[int, int, int]:
        evictions = sum(len(self.running[name]) for name in self.nodes if self.changed(name))
        return (sum(len(pods) for pods in self.serves.values()), evictions, sum(1 for name in self.nodes if self.changed(name)))


def _greedy(assignment: _Assignment, remaining: List[GpuPod], eligible: Dict[str, List[str]], order: Sequence[str]) -> None:
    """Give nodes pods one node at a time, the node that serves the most remaining pods first (the fewest evictions,
    then no change, among equal), re-scored lazily. First without evicting anything (nodes without running GPU
    pods, and the others as they are), then with the drains that serve more."""
    for evicting in (False, True):
        def score(name: str) -> Tuple[Optional[NodeStates], List[GpuPod]]:
            node = assignment.nodes[name]
            candidates = [pod for pod in remaining if name in eligible[pod.key]]
            if not candidates:
                return None, []
            base = assignment.running[name] + assignment.serves[name]
            options = []
            if not assignment.changed(name):
                # As it is: what fits next to what the node holds now, no drain.
                allocatable = node.allocatable
                chosen = _pack(base, candidates,
                               lambda pod, total: _held_as_is(node, [pod], assignment.strategy, assignment.placeable, total),
                               precheck=lambda pod, total: all(total.get(resource, 0) + count <= allocatable.get(resource, 0)
                                                               for resource, count in pod.requests.items()))
                if chosen:
                    options.append((assignment.current(name), chosen))
            as_is_only = not evicting and bool(assignment.running[name]) and not assignment.changed(name)
            if not as_is_only and node.unchangeable_reason() is None:
                states, chosen = best_relayout(node, base, candidates, assignment.strategy, assignment.placeable)
                if states is not None and chosen:
                    # The current layout when it holds them: no drain.
                    options.append((assignment.try_states(name, assignment.serves[name] + chosen) or states, chosen))
            if not options:
                return None, []
            return min(options, key=lambda option: key(name, *option))

        def key(name: str, states: NodeStates, chosen: List[GpuPod]) -> tuple:
            return (-len(chosen),) + assignment.cost(name, states) + (name,)

        heap = []
        for name in order:
            states, chosen = score(name)
            if states is not None:
                heapq.heappush(heap, key(name, states, chosen))
        while heap and remaining:
            name = heapq.heappop(heap)[-1]
            states, chosen = score(name)
            if states is None:
                continue
            if heap and key(name, states, chosen) > heap[0]:
                heapq.heappush(heap, key(name, states, chosen))  # its bound was stale: re-score later
                continue
            assignment.apply(name, assignment.serves[name] + chosen, states)
            taken = set(pod.key for pod in chosen)
            remaining[:] = [pod for pod in remaining if pod.key not in taken]
            states, chosen = score(name)
            if states is not None:
                heapq.heappush(heap, key(name, states, chosen))


def _augment(assignment: _Assignment, remaining: List[GpuPod], eligible: Dict[str, List[str]]) -> None:
    """Serve more: a pending pod takes a node's place by moving one pod that node serves to another node (where it
    fits as that node is, or by changing it). Repeats until no move serves one more pod."""
    improved = True
    while improved and remaining:
        improved = False
        # A node re-packed from scratch may serve more than it does (small pods instead of one large one).
        for name, node in assignment.nodes.items():
            if node.unchangeable_reason() is not None:
                continue
            candidates = sorted(assignment.serves[name] + [pod for pod in remaining if name in eligible[pod.key]], key=_order)
            if len(candidates) == len(assignment.serves[name]):
                continue
            states, chosen = best_relayout(node, assignment.running[name], candidates, assignment.strategy, assignment.placeable)
            if states is not None and len(chosen) > len(assignment.serves[name]):
                taken = set(pod.key for pod in chosen)
                remaining[:] = sorted([pod for pod in remaining if pod.key not in taken]
                                      + [pod for pod in assignment.serves[name] if pod.key not in taken], key=_order)
                assignment.apply(name, chosen, states)
                improved = True
        for pod in list(remaining):
            move = _find_move(assignment, pod, eligible)
            if move is None:
                continue
            for name, serves, states in move:
                assignment.apply(name, serves, states)
            remaining.remove(pod)
            improved = True


def _find_move(assignment: _Assignment, pod: GpuPod, eligible: Dict[str, List[str]]) -> Optional[List[Tuple[str, List[GpuPod], NodeStates]]]:
    best = None
    for name in eligible[pod.key]:
        serves = assignment.serves[name]
        states = assignment.try_states(name, serves + [pod])
        if states is not None:
            option = (assignment.cost(name, states), [(name, serves + [pod], states)])
            best = option if best is None or option[0] < best[0] else best
            continue
        for displaced in serves:
            kept = [other for other in serves if other.key != displaced.key] + [pod]
            states = assignment.try_states(name, kept)
            if states is None:
                continue
            for other_name in eligible[displaced.key]:
                if other_name == name:
                    continue
                other_serves = assignment.serves[other_name] + [displaced]
                other_states = assignment.try_states(other_name, other_serves)
                if other_states is None:
                    continue
                cost = tuple(a + b for a, b in zip(assignment.cost(name, states), assignment.cost(other_name, other_states)))
                option = (cost, [(name, kept, states), (other_name, other_serves, other_states)])
                best = option if best is None or option[0] < best[0] else best
    return None if best is None else best[1]


def _undo_changes(assignment: _Assignment, eligible: Dict[str, List[str]]) -> None:
    """Fewer evictions and changes for the same service: a changed node goes back to its layout when the pods it
    serves beyond that layout fit on nodes that change anyway (or already have room)."""
    changed = sorted((name for name in assignment.nodes if assignment.changed(name)),
                     key=lambda name: (-len(assignment.running[name]), len(assignment.serves[name]), name))
    for name in changed:
        if not assignment.changed(name):
            continue
        before = assignment.totals()
        saved = dict((n, (list(assignment.serves[n]), assignment.states[n])) for n in assignment.nodes)
        # Keep on the node what its current layout holds; re-home the rest.
        kept, moving = [], []
        for pod in assignment.serves[name]:
            if holding_states(assignment.nodes[name], assignment.running[name] + kept + [pod], assignment.strategy,
                              assignment.placeable) == assignment.current(name):
                kept.append(pod)
            else:
                moving.append(pod)
        assignment.apply(name, kept, assignment.current(name))
        ok = True
        for pod in moving:
            homes = []
            for other in eligible[pod.key]:
                if other == name:
                    continue
                states = assignment.try_states(other, assignment.serves[other] + [pod])
                if states is not None:
                    homes.append((assignment.cost(other, states) if not assignment.changed(other) else (0, 0), other, states))
            if not homes:
                ok = False
                break
            _cost, other, states = min(homes, key=lambda item: (item[0], item[1]))
            assignment.apply(other, assignment.serves[other] + [pod], states)
        after = assignment.totals()
        if not ok or after[0] < before[0] or (after[1], after[2]) >= (before[1], before[2]):
            for n, (serves, states) in saved.items():
                assignment.apply(n, serves, states)


EXHAUSTIVE_BUDGET = 20000  # search steps; beyond it the greedy answer stands
# Larger problems do not finish within any useful budget; the search is not started for them.
EXHAUSTIVE_MAX_PENDING = 16
EXHAUSTIVE_MAX_NODES = 16


def _exhaustive(assignment: _Assignment, pending: Sequence[GpuPod], eligible: Dict[str, List[str]],
                budget: int) -> Optional[Tuple[Dict[str, List[GpuPod]], Dict[str, NodeStates]]]:
    """The lexicographic optimum (most pods served, then fewest evictions, then fewest changed nodes) by branch
    and bound over every pod's node, seeded with the greedy answer; None when ``budget`` steps do not finish."""
    names = list(assignment.nodes)
    best_serves = dict((name, list(assignment.serves[name])) for name in names)
    best_states = dict(assignment.states)
    totals = assignment.totals()
    best_key = [(-totals[0], totals[1], totals[2])]
    holds = {}
    serves = dict((name, []) for name in names)
    states = dict((name, assignment.current(name)) for name in names)
    steps = [0]

    def node_states(name: str) -> Optional[NodeStates]:
        key = (name, frozenset(pod.key for pod in serves[name]))
        if key not in holds:
            holds[key] = assignment.try_states(name, serves[name])
        return holds[key]

    def cost() -> Tuple[int, int]:
        changed = [name for name in names if states[name] != assignment.current(name)]
        return sum(len(assignment.running[name]) for name in changed), len(changed)

    def search(position: int, served: int) -> None:
        steps[0] += 1
        if steps[0] > budget:
            raise _OutOfBudget()
        evictions, changed = cost()
        if (-(served + len(pending) - position), evictions, changed) >= best_key[0]:
            return
        if position == len(pending):
            best_key[0] = (-served, evictions, changed)
            for name in names:
                best_serves[name] = list(serves[name])
                best_states[name] = states[name]
            return
        pod = pending[position]
        for name in eligible[pod.key]:
            serves[name].append(pod)
            held = node_states(name)
            if held is not None:
                previous = states[name]
                states[name] = held
                search(position + 1, served + 1)
                states[name] = previous
            serves[name].pop()
        search(position + 1, served)

    try:
        search(0, 0)
    except _OutOfBudget:
        return None
    return best_serves, best_states


class _OutOfBudget(Exception):
    pass


def propose(nodes: Sequence[GpuNode], pods: Sequence[GpuPod], strategy: str = "mixed",
            exhaustive_budget: int = EXHAUSTIVE_BUDGET) -> Dict[str, Any]:
    """The proposal for ``nodes`` (GpuNode) and ``pods`` (GpuPod) under ``strategy``; ``render`` makes it JSON.

    Returns a dict with ``proposals`` (NodeProposal per node), ``served`` ({pod key: (node name, how)}),
    ``pending`` ({pod key: reason}), ``placeable_calls`` (how many layouts the planner checked) and ``method``
    (``exhaustive`` when the search for the optimum finished within ``exhaustive_budget`` steps, else ``greedy``).
    """
    if strategy not in STRATEGIES:
        raise ValueError("strategy must be one of %s" % ", ".join(STRATEGIES))
    placeable = _Placeable()
    by_name = dict((node.name, node) for node in nodes)
    running = dict((node.name, []) for node in nodes)
    for pod in pods:
        if not pod.pending and pod.node_name in running:
            running[pod.node_name].append(pod)
    pending = sorted((pod for pod in pods if pod.pending), key=_order)
    assignment = _Assignment(nodes, running, strategy, placeable)
    reasons = {}

    if strategy == "none":
        for pod in pending:
            reasons[pod.key] = "mig_strategy none advertises no MIG device; nothing to propose"
        return _result(assignment, nodes, {}, reasons, placeable, "none")

    eligible = dict((pod.key, [node.name for node in nodes if why_not_node(pod, node) is None]) for pod in pending)

    remaining = list(pending)
    # 1. Give nodes pods greedily, 2. serve more by moving pods between nodes, 3. undo changes that are not needed.
    _greedy(assignment, remaining, eligible, [node.name for node in nodes])
    _augment(assignment, remaining, eligible)
    _undo_changes(assignment, eligible)
    method = "greedy"
    if exhaustive_budget and len(pending) <= EXHAUSTIVE_MAX_PENDING and len(nodes) <= EXHAUSTIVE_MAX_NODES:
        exact = _exhaustive(assignment, pending, eligible, exhaustive_budget)
        if exact is not None:
            method = "exhaustive"
            for name in assignment.nodes:
                assignment.apply(name, exact[0][name], exact[1][name])

    # 4. Check every change with the planner and the strategy; a refusal here would be a defect, never a rollout.
    for node in nodes:
        if assignment.changed(node.name):
            problem = _verify(NodeProposal(node, assignment.states[node.name]), strategy)
            if problem is not None:
                for pod in assignment.serves[node.name]:
                    remaining.append(pod)
                    reasons[pod.key] = "the layout proposed for %s was refused: %s" % (node.name, problem)
                assignment.apply(node.name, [], assignment.current(node.name))
    served = {}
    for name, serves in assignment.serves.items():
        for pod in serves:
            served[pod.key] = (name, "proposed layout" if assignment.changed(name) else "current layout")
    for pod in pending:
        if pod.key not in served and pod.key not in reasons:
            reasons[pod.key] = _pending_reason(pod, nodes, eligible[pod.key], strategy, by_name)
    return _result(assignment, nodes, served, reasons, placeable, method)


def _held_as_is(node: GpuNode, pods: Sequence[GpuPod], strategy: str, placeable: _Placeable,
                total: Optional[Dict[str, int]] = None) -> bool:
    """Whether ``node`` holds ``pods`` with the layout it has (what it advertises, and under single its profile)."""
    if total is None:
        total = _total(pods)
    if not _fits(total, node.allocatable):
        return False
    if strategy == "single" and node.gpus is not None:
        profile = single_profile([gpu.state for gpu in node.gpus])
        return all(single_profile_wanted(pod) in (None, profile) for pod in pods)
    return True


def _result(assignment: _Assignment, nodes: Sequence[GpuNode], served: Dict[str, Tuple[str, str]], reasons: Dict[str, str],
            placeable: _Placeable, method: str) -> Dict[str, Any]:
    proposals = []
    for node in nodes:
        proposal = NodeProposal(node, assignment.states[node.name], serves=list(assignment.serves[node.name]))
        if proposal.changed:
            proposal.evicted = list(assignment.running[node.name])
        proposals.append(proposal)
    return {"proposals": proposals, "served": served, "pending": reasons, "placeable_calls": placeable.calls,
            "method": method}


def _pending_reason(pod: GpuPod, nodes: Sequence[GpuNode], eligible: Sequence[str], strategy: str,
                    by_name: Dict[str, GpuNode]) -> str:
    asks = ", ".join("%s: %d" % item for item in sorted(pod.requests.items()))
    if strategy == "single" and any(resource != RESOURCE_GPU for resource in pod.requests):
        return ("asks for %s, but mig_strategy single advertises MIG devices as nvidia.com/gpu (select the profile with "
                "a nodeSelector on nvidia.com/gpu.product)" % asks)
    unknown = []
    for resource in pod.requests:
        if resource.startswith(MIG_RESOURCE_PREFIX):
            try:
                device = device_of_resource(resource)
            except ProfileError:
                unknown.append(resource)
                continue
            offered = [node for node in nodes if node.gpus and any(
                gpu.catalog is not None and device in gpu.catalog.device_names() for gpu in node.gpus)]
            if not offered and any(node.gpus for node in nodes):
                unknown.append(resource)
    if unknown:
        return "asks for %s, which no GPU of the known nodes offers" % ", ".join(sorted(unknown))
    if not eligible:
        why = Counter(why_not_node(pod, node) for node in nodes)
        return "0/%d GPU nodes can take it: %s" % (
            len(nodes), ", ".join("%d %s" % (count, text) for text, count in sorted(why.items(), key=lambda item: -item[1])))
    fixed = [name for name in eligible if by_name[name].unchangeable_reason() is not None]
    parts = ["asks for %s; no layout of the node(s) it may go to (%s) holds it next to the pods already there or "
             "proposed" % (asks, ", ".join(eligible))]
    if fixed:
        parts.append("cannot change %s: %s" % (", ".join(fixed), by_name[fixed[0]].unchangeable_reason()))
    return "; ".join(parts)


def render(result: Dict[str, Any], strategy: str = "mixed") -> Dict[str, Any]:
    """The JSON-able proposal: host vars for site.yml, per-node rows, served and pending pods, totals, table."""
    rows = []
    host_vars = {}
    for proposal in result["proposals"]:
        node = proposal.node
        changed = proposal.changed
        current = [gpu.state for gpu in node.gpus] if node.gpus is not None else []
        row = {
            "node": node.name,
            "host": node.host,
            "changed": changed,
            "current": [("GPU %d: %s" % (gpu.index, _describe_state(state))) for gpu, state in zip(node.gpus or (), current)]
            or ["as advertised: %s" % (", ".join("%s=%d" % item for item in sorted(node.allocatable.items())) or "none")],
            "proposed": [("GPU %d: %s" % (gpu.index, _describe_state(state))) for gpu, state in zip(node.gpus or (), proposal.states)],
            "mig_layout": mig_layout_of(node, proposal.states) if changed else None,
            "serves": [pod.key for pod in proposal.serves],
            "evicts": [pod.key for pod in proposal.evicted],
            "unchangeable": node.unchangeable_reason(),
        }
        rows.append(row)
        if changed:
            host_vars[node.host or node.name] = {"mig_layout": row["mig_layout"]}
    served = [{"pod": key, "node": node, "by": how} for key, (node, how) in sorted(result["served"].items())]
    pending = [{"pod": key, "reason": reason} for key, reason in sorted(result["pending"].items())]
    changed_rows = [row for row in rows if row["changed"]]
    totals = {
        "pending_pods": len(served) + len(pending),
        "served": len(served),
        "served_by_current_layout": sum(1 for item in served if item["by"] == "current layout"),
        "still_pending": len(pending),
        "changed_nodes": len(changed_rows),
        "evictions": sum(len(row["evicts"]) for row in rows),
    }
    return {
        "strategy": strategy,
        "host_vars": host_vars,
        "limit": ",".join(row["host"] or row["node"] for row in changed_rows),
        "nodes": rows,
        "served": served,
        "pending": pending,
        "totals": totals,
        "method": result.get("method"),
        "table": table(rows, pending, totals),
    }


def table(rows: Sequence[Dict[str, Any]], pending: Sequence[Dict[str, Any]], totals: Dict[str, Any]) -> List[str]:
    """The proposal as lines of text, one row per GPU node, then the pods that stay pending."""
    header = ("NODE", "CHANGE", "CURRENT", "PROPOSED", "SERVES", "EVICTS")
    lines = [header]
    for row in rows:
        current = "; ".join(row["current"])
        proposed = "; ".join(row["proposed"]) if row["changed"] else "(unchanged)"
        lines.append((row["node"], "yes" if row["changed"] else "no", current, proposed,
                      str(len(row["serves"])), str(len(row["evicts"]))))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    text.append("served %(served)d of %(pending_pods)d pending GPU pod(s) (%(served_by_current_layout)d by current "
                "layouts); %(changed_nodes)d node(s) change; %(evictions)d running pod(s) evicted" % totals)
    for item in pending:
        text.append("pending %s: %s" % (item["pod"], item["reason"]))
    return text
