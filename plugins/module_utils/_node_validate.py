# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Validate a Kubernetes node against its MIG state: wait for resources and labels, then run test pods.

The work behind ``gpufleet.mig.mig_node_validate``. ``node_expectation`` says what the node must show (the
device plugin's resources from mig_strategy, GFD's labels from gfd_labels) and ``compare_node`` what differs;
this file polls the Node object until it does (or the deadline passes), then optionally runs one
validation pod per resource (or per device), reads each pod's ``nvidia-smi -L`` listing and checks that
every pod got a device of its resource, on this node, and that no two pods got the same one.

The API is reached only through ``k8s.KubeClient`` (any object with ``get_node``, ``get_namespace``,
``create_pod``, ``get_pod``, ``read_pod_log``, ``delete_pod`` and ``list_pods`` of the same shapes works),
and time through ``clock``/``sleep`` arguments, so the logic runs unchanged against the fleet twin.

Pods are bound with ``spec.nodeName`` (no scheduler involved, so a cordoned node, which is how a rollout
leaves it while validating, still runs them), tolerate every taint, never restart, and request exactly one
unit of their resource. They carry ``app.kubernetes.io/managed-by=gpufleet.mig`` and
``gpufleet.mig/validation-node=<node>`` labels; pods left by an earlier run for the same node are deleted
first, since they could hold the devices the new pods need.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import OptionNames, option_name
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, ProfileError, TaskError
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import normalize_profile
from ansible_collections.gpufleet.mig.plugins.module_utils._gfd_labels import MIG_STRATEGY_LABEL, LabelExpectation, expected_labels
from ansible_collections.gpufleet.mig.plugins.module_utils._mig_strategy import (
    RESOURCE_PREFIX,
    DeviceRef,
    StrategyLayoutError,
    gpu_layouts,
    layout_problem,
    resource_devices,
    strategy_warnings,
    validate_strategy,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeClient

POD_COUNT_ONE_PER_RESOURCE = "one_per_resource"
POD_COUNT_ONE_PER_DEVICE = "one_per_device"
POD_COUNTS = (POD_COUNT_ONE_PER_RESOURCE, POD_COUNT_ONE_PER_DEVICE)

CLEANUP_ALWAYS = "always"
CLEANUP_ON_SUCCESS = "on_success"
CLEANUP_NEVER = "never"
CLEANUPS = (CLEANUP_ALWAYS, CLEANUP_ON_SUCCESS, CLEANUP_NEVER)

DEFAULT_COMMAND = ("nvidia-smi", "-L")
CONTAINER_NAME = "validate"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "gpufleet.mig"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT = "mig-node-validate"
NODE_LABEL = "gpufleet.mig/validation-node"
NODE_ANNOTATION = "gpufleet.mig/node"
RESOURCE_ANNOTATION = "gpufleet.mig/resource"

# `nvidia-smi -L`: "GPU 0: A100-SXM4-40GB (UUID: GPU-...)" and "  MIG 1g.5gb Device 0: (UUID: MIG-...)".
# Matched anywhere in the text, so listings flattened onto one line (as logs are sometimes shown) parse too.
_GPU_LINE = re.compile(r"GPU (?P<index>\d+): (?P<name>.+?) \(UUID: (?P<uuid>GPU-[^)\s]+)\)")
_MIG_LINE = re.compile(r"MIG (?P<profile>\S+)\s+Device\s+(?P<index>\d+): \(UUID: (?P<uuid>MIG-[^)\s]+)\)")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_TERMINAL_PHASES = ("Succeeded", "Failed")


# ------------------------------------------------------------------------------ what the node must show


@dataclass(frozen=True)
class NodeExpectation:
    """Everything a node must show for one MIG state and strategy."""

    strategy: str
    resources: Dict[str, int]
    labels: LabelExpectation
    devices: Dict[str, Tuple[DeviceRef, ...]]  # resource name -> its devices
    warnings: Tuple[str, ...] = ()
    problem: Optional[StrategyLayoutError] = None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "strategy": self.strategy,
            "resources": dict(self.resources),
            "labels": dict(self.labels.labels),
            "unverified_labels": list(self.labels.unverified),
            "devices": dict((name, [ref.to_dict() for ref in refs]) for name, refs in sorted(self.devices.items())),
            "warnings": list(self.warnings),
            "problem": None if self.problem is None else self.problem.to_dict(),
        }


@dataclass(frozen=True)
class NodeComparison:
    """Result of comparing a node with its expectation; ``diff`` is empty when the node matches."""

    seen: Dict[str, Any]
    diff: Dict[str, Any]
    lingering: Dict[str, Any] = field(default_factory=dict)  # capacity left by vanished resources (allocatable 0)

    @property
    def matches(self) -> bool:
        return not any(self.diff.values())

    def to_dict(self) -> Dict[str, Any]:
        return {"seen": self.seen, "diff": self.diff, "lingering": self.lingering, "matches": self.matches}


# -------------------------------------------------------------------------------------- expectation


def node_expectation(facts: Dict[str, Any], strategy: str) -> NodeExpectation:
    """Resources, labels, devices per resource, warnings and the plugin-refusal problem of one node.

    With a refused layout, ``resources`` and ``devices`` are empty (the plugin's pod crash-loops, so kubelet
    drops the allocatable of everything it served) and ``problem`` carries the error.
    """
    validate_strategy(strategy)
    problem = layout_problem(gpu_layouts(facts), strategy)
    devices = {} if problem is not None else resource_devices(facts, strategy)
    return NodeExpectation(
        strategy=strategy,
        resources=dict((name, len(refs)) for name, refs in devices.items()),
        labels=expected_labels(facts, strategy),
        devices=devices,
        warnings=strategy_warnings(facts, strategy),
        problem=problem,
    )


# ---------------------------------------------------------------------------------------- comparison


def _quantity(value: Any) -> Any:
    """An extended-resource quantity as an int (they are whole numbers); anything else stays as given."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    return int(text) if re.match(r"^[0-9]+$", text) else text


def _nvidia_resources(resources: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    return dict((name, _quantity(value)) for name, value in sorted((resources or {}).items())
                if name.startswith(RESOURCE_PREFIX))


def _present(quantity: Any) -> bool:
    return quantity is not None and quantity != 0


def compare_node(expectation: NodeExpectation, node: Dict[str, Any], check_labels: bool = True) -> NodeComparison:
    """Compare a node (API JSON of a Node, or ``{capacity, allocatable, labels}``) with ``expectation``.

    * allocatable: every expected resource at its count, and no other ``nvidia.com/*`` resource above 0;
    * capacity: every expected resource at its count; other names with 0 allocatable are ``lingering``
      (kubelet keeps them until its grace period ends), not a mismatch;
    * labels: every expected label at its value, and no other label the expectation speaks for
      (``LabelExpectation.is_checked``), so stale ``mig-*`` labels or ``mig.strategy`` under none show up;
      skipped with ``check_labels=False`` (a cluster without GFD).

    ``diff`` maps ``allocatable`` / ``capacity`` / ``labels`` to ``{key: {"expected": x, "seen": y}}`` with
    ``None`` for absent.
    """
    status = node.get("status") if "status" in node else node
    metadata = node.get("metadata") if "metadata" in node else node
    allocatable = _nvidia_resources((status or {}).get("allocatable"))
    capacity = _nvidia_resources((status or {}).get("capacity"))
    all_labels = (metadata or {}).get("labels") or {}
    labels = dict((key, value) for key, value in sorted(all_labels.items()) if key.startswith(RESOURCE_PREFIX))

    diff = {"allocatable": {}, "capacity": {}, "labels": {}}
    for name in sorted(set(expectation.resources) | set(allocatable)):
        wanted = expectation.resources.get(name)
        have = allocatable.get(name)
        if not _present(wanted) and not _present(have):
            continue
        if wanted != have:
            diff["allocatable"][name] = {"expected": wanted, "seen": have}
    for name, wanted in sorted(expectation.resources.items()):
        if capacity.get(name) != wanted:
            diff["capacity"][name] = {"expected": wanted, "seen": capacity.get(name)}
    lingering = dict((name, value) for name, value in capacity.items()
                     if name not in expectation.resources and _present(value) and not _present(allocatable.get(name)))

    expected = expectation.labels.labels if check_labels else {}
    for key in sorted(set(expected) | set(labels)) if check_labels else ():
        if not expectation.labels.is_checked(key):
            continue
        if expected.get(key) != labels.get(key):
            diff["labels"][key] = {"expected": expected.get(key), "seen": labels.get(key)}

    seen = {"allocatable": allocatable, "capacity": capacity, "labels": labels}
    return NodeComparison(seen=seen, diff=diff, lingering=lingering)


def _label_priority(key: str) -> int:
    """Labels that tell the most first: the strategy, then counts and products, then the rest."""
    if key == MIG_STRATEGY_LABEL:
        return 0
    if key.endswith(".count") or key.endswith(".product"):
        return 1
    return 2


def describe_diff(diff: Dict[str, Any], limit: int = 12) -> List[str]:
    """One line per difference, for failure messages (``limit`` lines, then a count of the rest).

    Resources come first, then labels by importance. When every expected label is missing, which is what a
    node without a (running) GFD looks like, the labels are summed up in one line.
    """
    lines = []
    for section in ("allocatable", "capacity"):
        for key, values in sorted(diff.get(section, {}).items()):
            lines.append("%s %s: expected %s, seen %s" % (
                section, key, _shown(values.get("expected")), _shown(values.get("seen"))))
    labels = diff.get("labels", {})
    missing = [key for key, values in labels.items() if values.get("seen") is None]
    if len(missing) > 1 and len(missing) == len(labels):
        lines.append("none of the %d expected labels is present (%s, ...), so GPU feature discovery has not labelled the node"
                     % (len(missing), ", ".join(sorted(missing, key=lambda key: (_label_priority(key), key))[:3])))
    else:
        for key in sorted(labels, key=lambda key: (_label_priority(key), key)):
            lines.append("label %s: expected %s, seen %s" % (
                key, _shown(labels[key].get("expected")), _shown(labels[key].get("seen"))))
    if len(lines) > limit:
        lines = lines[:limit] + ["... and %d more differences" % (len(lines) - limit)]
    return lines


def _shown(value: Any) -> str:
    if value is None:
        return "absent"
    if isinstance(value, str):
        return "'%s'" % value
    return str(value)


# ------------------------------------------------------------------------------------------ validation


# ------------------------------------------------------------------------------------ nvidia-smi -L


def parse_device_listing(text: Optional[str]) -> List[Dict[str, Any]]:
    """The devices an ``nvidia-smi -L`` listing names, in order: ``{"kind": "gpu"|"mig", ...}`` dicts.

    MIG entries carry the UUID of the GPU listed before them as ``gpu_uuid``.
    """
    entries = []
    for match in sorted(list(_GPU_LINE.finditer(text or "")) + list(_MIG_LINE.finditer(text or "")),
                        key=lambda found: found.start()):
        if match.re is _GPU_LINE:
            entries.append({"kind": "gpu", "index": int(match.group("index")), "name": match.group("name").strip(),
                            "uuid": match.group("uuid")})
        else:
            parent = [entry for entry in entries if entry["kind"] == "gpu"]
            entries.append({"kind": "mig", "index": int(match.group("index")), "profile": match.group("profile"),
                            "uuid": match.group("uuid"), "gpu_uuid": parent[-1]["uuid"] if parent else None})
    return entries


def _same_profile(printed: str, wanted: Optional[str]) -> bool:
    try:
        return normalize_profile(printed) == normalize_profile(wanted)
    except ProfileError:
        return False


def assigned_device(resource: str, candidates: Sequence[DeviceRef],
                    listing: Sequence[Dict[str, Any]]) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """``(device dict, None)`` for the device a pod of ``resource`` got, or ``(None, problem text)``.

    ``candidates`` are the ``strategy.DeviceRef`` the plugin serves under ``resource`` on this node. A pod
    for a full-GPU resource must list exactly one GPU (MIG lines are ignored: whether they show depends on
    the container's MIG capabilities); a pod for a MIG resource exactly one MIG device.
    """
    kind = candidates[0].kind if candidates else "gpu"
    found = [entry for entry in listing if entry["kind"] == kind]
    if len(found) != 1:
        return None, "the pod for %s lists %d %s device(s), expected exactly 1" % (
            resource, len(found), "GPU" if kind == "gpu" else "MIG")
    device = found[0]
    by_uuid = dict((ref.uuid, ref) for ref in candidates)
    ref = by_uuid.get(device["uuid"])
    if ref is None:
        return None, "the pod for %s got %s, which is not a %s device of this node (it has: %s)" % (
            resource, device["uuid"], resource, ", ".join(sorted(str(uuid) for uuid in by_uuid)) or "none")
    if kind == "mig":
        if not _same_profile(device["profile"], ref.profile):
            return None, "the pod for %s got %s listed as profile %s, but the node's facts say %s" % (
                resource, device["uuid"], device["profile"], ref.profile)
        if device.get("gpu_uuid") and ref.gpu_uuid and device["gpu_uuid"] != ref.gpu_uuid:
            return None, "the pod for %s got %s under GPU %s, but it belongs to GPU %s" % (
                resource, device["uuid"], device["gpu_uuid"], ref.gpu_uuid)
    return dict(ref.to_dict()), None


# --------------------------------------------------------------------------------------------- pods


def node_label_value(node_name: str) -> str:
    """A label value naming the node (node names may be longer than the 63 characters labels allow)."""
    if len(node_name) <= 63 and _LABEL_VALUE.match(node_name):
        return node_name
    return "sha1-" + hashlib.sha1(node_name.encode("utf-8")).hexdigest()[:32]


def pod_selector(node_name: str) -> str:
    return "%s=%s,%s=%s,%s=%s" % (MANAGED_BY_LABEL, MANAGED_BY, COMPONENT_LABEL, COMPONENT,
                                  NODE_LABEL, node_label_value(node_name))


def _slug(resource: str) -> str:
    name = resource.split("/", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:30]


def validation_pod(node_name: str, resource: str, namespace: str, image: str, command: Sequence[str]) -> Dict[str, Any]:
    """The manifest of one validation pod (``generateName``: the server picks the suffix)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "gpufleet-validate-%s-" % _slug(resource),
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, COMPONENT_LABEL: COMPONENT, NODE_LABEL: node_label_value(node_name)},
            "annotations": {NODE_ANNOTATION: node_name, RESOURCE_ANNOTATION: resource},
        },
        "spec": {
            "nodeName": node_name,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": CONTAINER_NAME,
                "image": image,
                "command": list(command),
                "resources": {"limits": {resource: "1"}, "requests": {resource: "1"}},
            }],
        },
    }


def _pod_problem_from_status(pod: Dict[str, Any]) -> Optional[str]:
    """Why a pod is stuck, from its container statuses (image pull errors, crash loops) or conditions."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or ():
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return "%s: %s" % (waiting["reason"], waiting.get("message") or "")
    for condition in status.get("conditions") or ():
        if condition.get("status") == "False" and condition.get("message"):
            return "%s: %s" % (condition.get("reason") or condition.get("type"), condition["message"])
    return status.get("reason") or status.get("message")


class _PodRun(object):
    def __init__(self, resource: str, candidates: Sequence[DeviceRef], pod: Dict[str, Any]) -> None:
        self.resource = resource
        self.candidates = candidates
        self.pod = pod
        self.log = ""
        self.listing = []
        self.done = False
        self.vanished = False

    @property
    def name(self) -> str:
        return self.pod["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.pod["metadata"]["namespace"]

    @property
    def phase(self) -> str:
        return (self.pod.get("status") or {}).get("phase", "Pending")

    def wanted_kind(self) -> str:
        return self.candidates[0].kind if self.candidates else "gpu"

    def refresh(self, client: KubeClient) -> None:
        pod = client.get_pod(self.namespace, self.name)
        if pod is None:
            # Deleted behind our back (an eviction, another tool); there is nothing left to read.
            self.done = self.vanished = True
            return
        self.pod = pod
        if self.phase == "Pending":
            return
        self.log = client.read_pod_log(self.namespace, self.name, container=CONTAINER_NAME)
        self.listing = parse_device_listing(self.log)
        # A running container may be one that lists its devices and then sleeps (one pod per device);
        # its listing is complete once it names a device of the wanted kind.
        listed = any(entry["kind"] == self.wanted_kind() for entry in self.listing)
        self.done = self.phase in _TERMINAL_PHASES or (self.phase == "Running" and listed)


def _delete_and_wait(client: KubeClient, pods: Iterable[Tuple[str, str]], deadline: float, clock: Callable[[], float],
                     sleep: Callable[[float], None], poll: float) -> List[str]:
    """Delete pods (grace 0) and wait until the API no longer has them; names of pods still present."""
    for namespace, name in pods:
        client.delete_pod(namespace, name, grace_period_seconds=0)
    remaining = list(pods)
    while remaining:
        remaining = [(namespace, name) for namespace, name in remaining if client.get_pod(namespace, name) is not None]
        if not remaining or clock() >= deadline:
            break
        sleep(poll)
    return ["%s/%s" % pod for pod in remaining]


def run_validation_pods(client: KubeClient, node_name: str, expectation: NodeExpectation, namespace: str, image: str,
                        command: Sequence[str], pod_count: str, cleanup: str, timeout: float,
                        poll_interval: float, clock: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], None] = time.sleep) -> Tuple[List[Dict[str, Any]], List[str], bool]:
    """Create, watch, check and clean up the validation pods; returns ``(pods, problems, changed)``.

    ``changed`` is true when pods of an earlier run were deleted or this run's pods are kept.
    """
    if client.get_namespace(namespace) is None:
        raise MigError("Cannot run validation pods: namespace %s does not exist; create it or set validation_namespace"
                       % namespace)
    deadline = clock() + timeout
    leftovers = [(pod["metadata"]["namespace"], pod["metadata"]["name"])
                 for pod in client.list_pods(label_selector=pod_selector(node_name))]
    if leftovers:
        still = _delete_and_wait(client, leftovers, deadline, clock, sleep, poll_interval)
        if still:
            raise MigError("Cannot run validation pods on node %s: the pods of an earlier validation (%s) are still "
                           "terminating after %s s" % (node_name, ", ".join(still), timeout))

    runs = []
    try:
        for resource, candidates in sorted(expectation.devices.items()):
            count = 1 if pod_count == POD_COUNT_ONE_PER_RESOURCE else len(candidates)
            for _copy in range(count):
                pod = client.create_pod(namespace, validation_pod(node_name, resource, namespace, image, command))
                runs.append(_PodRun(resource, candidates, pod))
        while True:
            for run in runs:
                if not run.done:
                    run.refresh(client)
            if all(run.done for run in runs) or clock() >= deadline:
                break
            sleep(poll_interval)
        pods, problems = _check_runs(runs, timeout)
    except Exception:
        # Whatever failed, do not leave pods holding the node's devices unless told to.
        if cleanup != CLEANUP_NEVER:
            _delete_and_wait(client, [(run.namespace, run.name) for run in runs], clock() + timeout, clock, sleep,
                             poll_interval)
        raise

    keep = cleanup == CLEANUP_NEVER or (cleanup == CLEANUP_ON_SUCCESS and problems)
    if runs and not keep:
        _delete_and_wait(client, [(run.namespace, run.name) for run in runs], clock() + timeout, clock, sleep,
                         poll_interval)
    for pod in pods:
        pod["deleted"] = not keep
    # Pods that came and went leave the cluster as it was; deleted leftovers or kept pods do not.
    return pods, problems, bool(leftovers) or bool(runs and keep)


def _check_runs(runs: Sequence[_PodRun], timeout: float) -> Tuple[List[Dict[str, Any]], List[str]]:
    pods = []
    problems = []
    owners = {}
    for run in runs:
        entry = {"name": run.name, "namespace": run.namespace, "resource": run.resource, "phase": run.phase,
                 "log": run.log, "devices": run.listing, "assigned": None, "problem": None}
        if run.vanished:
            entry["problem"] = "pod %s for %s was deleted before it listed its devices" % (run.name, run.resource)
        elif not run.done:
            entry["problem"] = "pod %s for %s did not list its devices within %s s (phase %s%s)" % (
                run.name, run.resource, timeout, run.phase,
                "; " + _pod_problem_from_status(run.pod) if _pod_problem_from_status(run.pod) else "")
        elif run.phase == "Failed" and not run.listing:
            cause = _pod_problem_from_status(run.pod) or run.log.strip() or "no log"
            entry["problem"] = "pod %s for %s failed: %s" % (run.name, run.resource, cause)
        else:
            device, problem = assigned_device(run.resource, run.candidates, run.listing)
            entry["assigned"] = device
            if problem:
                entry["problem"] = "pod %s: %s" % (run.name, problem)
            elif device["uuid"] in owners:
                entry["problem"] = "pods %s and %s both got %s; each validation pod must get a distinct device" % (
                    owners[device["uuid"]], run.name, device["uuid"])
            else:
                owners[device["uuid"]] = run.name
        if entry["problem"]:
            problems.append(entry["problem"])
        pods.append(entry)
    return pods, problems


# ------------------------------------------------------------------------------------------ the wait


def wait_for_node(client: KubeClient, node_name: str, expectation: NodeExpectation, timeout: float, poll_interval: float,
                  once: bool = False, check_labels: bool = True, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> Tuple[NodeComparison, float]:
    """Poll the Node until it shows ``expectation`` or ``timeout`` passes; ``(comparison, waited seconds)``.

    With ``once`` (check mode) the node is read a single time.
    """
    started = clock()
    while True:
        comparison = compare_node(expectation, client.get_node(node_name), check_labels=check_labels)
        waited = clock() - started
        if comparison.matches or once or waited >= timeout:
            return comparison, round(waited, 3)
        sleep(min(poll_interval, max(timeout - waited, 0)))


def validate_node(client: KubeClient, node_name: str, expectation: NodeExpectation, timeout: float = 300, poll_interval: float = 5,
                  check_mode: bool = False, check_labels: bool = True, validation_pods: bool = False, namespace: str = "default",
                  image: Optional[str] = None, command: Sequence[str] = DEFAULT_COMMAND,
                  pod_count: str = POD_COUNT_ONE_PER_RESOURCE, cleanup: str = CLEANUP_ALWAYS, pod_timeout: float = 120,
                  clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep, names: OptionNames = None) -> Dict[str, Any]:
    """Wait for the node to show ``expectation`` and run the validation pods; the module's result.

    Raises ``TaskError`` (carrying the partial result in ``details``) when the node does not match in time or a
    pod check fails; ``changed`` is true when pods were deleted from an earlier run or are left behind.
    """
    result = {"changed": False, "node": node_name, "expected": expectation.to_dict(), "pods": []}
    comparison, waited = wait_for_node(client, node_name, expectation, timeout, poll_interval, once=check_mode,
                                       check_labels=check_labels, clock=clock, sleep=sleep)
    result.update(seen=comparison.seen, differences=comparison.diff, lingering=comparison.lingering,
                  matched=comparison.matches, waited=waited)
    if not comparison.matches:
        lines = describe_diff(comparison.diff)
        raise TaskError(
            "Node %s does not show the resources %sits MIG state requires under the %s strategy%s: %s. "
            "Check that the device plugin and GPU feature discovery pods run on the node and started after the last "
            "MIG change%s" % (
                node_name, "and labels " if check_labels else "", expectation.strategy,
                "" if check_mode else " after %s s" % timeout, "; ".join(lines),
                "" if check_mode else ", or raise %s" % option_name(names, "timeout")),
            **result)
    if not validation_pods or check_mode or not expectation.devices:
        return result
    pods, problems, changed = run_validation_pods(
        client, node_name, expectation, namespace, image, command, pod_count, cleanup, pod_timeout, poll_interval,
        clock=clock, sleep=sleep)
    result.update(pods=pods, changed=bool(changed))
    if problems:
        raise TaskError("Validation pods on node %s failed: %s" % (node_name, "; ".join(problems)), **result)
    return result
