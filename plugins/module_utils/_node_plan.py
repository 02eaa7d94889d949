# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollout plan of one GPU node: one pure function from what the GPUs report and what the inventory asks.

``decide_gpu`` is the one per-GPU decision (MIG mode, MIG devices to keep / destroy / create, the rules
around the planner); ``plan_node`` applies it to every GPU of a node and checks the node as the plan leaves
it against the device plugin's MIG strategy. The preflight of a rollout (mig_plan_info), ``--check --diff``
and the node phase (mig_layout, given the preflight plan with ``plan_from_result``) all decide through it,
so the plan shown can never disagree with the plan applied.

* Under ``none`` the rollout sets MIG mode as the layout says but neither creates nor destroys MIG devices.
  A GPU whose mode must go to disabled still loses its instances (NVML cannot disable MIG otherwise).
* GPUs the layout does not cover (a mig-parted entry that skips them, a GPU that cannot do MIG) keep their
  current state, and the strategy check counts them as they are. A layout that covers no GPU because none
  can do MIG is refused (``coverage_problem``).
* Drivers before R550 list no MIG profiles while MIG is off (docs/hardware.md), so the fit of a GPU whose
  MIG is still off there is checked once MIG is on (``devices_verified: false``).
* ``config_id`` records the applied config in a node label: the config name when it is a valid label value,
  else ``config-<hash>`` / ``layout-<hash>`` of the resolved layout (hex digits of a SHA-256).
"""

from __future__ import annotations

import hashlib
import json
import re

from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu as nvml
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import LayoutError, MigError, ProfileError, StrategyError
from ansible_collections.gpufleet.mig.plugins.module_utils._host_processes import OWNER_GONE, OWNER_POD, annotate_process_owners
from ansible_collections.gpufleet.mig.plugins.module_utils._layout import DesiredGpuLayout, resolve_layout
from ansible_collections.gpufleet.mig.plugins.module_utils._node_report import (
    describe_devices, describe_gpu, describe_processes, gpu_identity, layout_lines, processes_on_gpu_instances,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._planner import (
    GpuPlan, busy_gpu_instance_ids, devices_from_instances, plan_gpu_layout,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import OptionNames, option_name
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import GpuCatalog, catalog_from_dict
from ansible_collections.gpufleet.mig.plugins.module_utils._selection import ALL_GPUS, normalize_selection, select_gpus
from ansible_collections.gpufleet.mig.plugins.module_utils._mig_strategy import (
    STRATEGIES,
    STRATEGY_MIXED,
    STRATEGY_NONE,
    layout_problem,
)

ENABLED = "enabled"
DISABLED = "disabled"
REASON_NOT_MIG_CAPABLE = "not MIG-capable"
REASON_NOT_IN_LAYOUT = "not in the layout"
REASON_IN_USE = "in use by host processes"
# What to do with a GPU whose plan destroys GPU instances (or changes MIG mode) under a process outside any pod.
IN_USE_FAIL = "fail"
IN_USE_SKIP = "skip"
IN_USE_CHOICES = (IN_USE_FAIL, IN_USE_SKIP)

# Kubernetes label values: at most 63 characters, alphanumerics with - _ . inside.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_HASH_LENGTH = 12


def _mode_word(enabled: bool) -> str:
    return ENABLED if enabled else DISABLED


def _counts(devices: Iterable[str]) -> Dict[str, int]:
    """``("1g.5gb", "1g.5gb")`` -> ``{"1g.5gb": 2}``, keeping the canonical largest-first order."""
    counts = {}
    for name in devices:
        counts[name] = counts.get(name, 0) + 1
    return counts


def config_id(source: Optional[Dict[str, Any]], desired_by_index: Dict[int, Optional[DesiredGpuLayout]]) -> str:
    """Label-safe id of the desired config: its name, or a hash of the layout resolved for this node."""
    name = source.get("mig_config") if isinstance(source, dict) else None
    layout = dict((str(index), desired.to_dict() if desired is not None else None)
                  for index, desired in sorted(desired_by_index.items()))
    digest = hashlib.sha256(json.dumps(layout, sort_keys=True).encode("utf-8")).hexdigest()[:_HASH_LENGTH]
    if name:
        return name if _LABEL_VALUE.match(name) else "config-" + digest
    return "layout-" + digest


class GpuDecision(object):
    """One GPU: its facts, what the layout wants, and the plan (built by ``decide_gpu``).

    ``problem`` says why the layout cannot be applied to the GPU (None when it can), ``warnings`` what the
    caller should tell, ``busy_processes`` which processes run on GPU instances the plan destroys: the
    rollout drains them first, mig_layout refuses or skips the GPU (its ``in_use``).
    """

    def __init__(self, gpu: dict, desired: Optional[DesiredGpuLayout], strategy: str,
                 catalog: Optional[GpuCatalog] = None) -> None:
        self.gpu = gpu
        self.desired = desired
        self.strategy = strategy
        self.catalog = catalog
        self.current_devices = devices_from_instances(gpu.get("gpu_instances") or ()) if gpu.get("mig_capable") else ()
        self.plan: Optional[GpuPlan] = None
        self.devices_verified = True
        self.reason: Optional[str] = None
        self.problem: Optional[str] = None
        self.warnings: List[str] = []
        self.busy_processes: List[dict] = []

    @property
    def managed(self) -> bool:
        return self.desired is not None

    @property
    def manages_devices(self) -> bool:
        return self.managed and self.strategy != STRATEGY_NONE and self.desired.mig_enabled

    @property
    def mode(self) -> dict:
        return self.gpu.get("mig_mode") or {"current": DISABLED, "pending": DISABLED}

    @property
    def desired_mode(self) -> Optional[str]:
        return _mode_word(self.desired.mig_enabled) if self.managed else None

    @property
    def mode_change(self) -> bool:
        return self.managed and mode_change_needed(self.mode, self.desired_mode)

    @property
    def desired_devices(self) -> Optional[tuple]:
        if not self.managed:
            return None
        if not self.desired.mig_enabled:
            return ()
        if self.strategy == STRATEGY_NONE:
            return None
        return tuple(self.desired.devices)

    @property
    def layout_change(self) -> bool:
        if self.plan is not None:
            return not self.plan.converged
        # Without a plan the devices are unmanaged, MIG goes off (instances go with it), or the fit could not
        # be checked yet because MIG is still off.
        return self.manages_devices and tuple(self.current_devices) != tuple(self.desired.devices)

    @property
    def converged(self) -> bool:
        return not self.mode_change and not self.layout_change

    def devices_after(self) -> tuple:
        """MIG devices the GPU has after the rollout (what the strategy check and the report use)."""
        if not self.managed:
            return tuple(self.current_devices)
        if not self.desired.mig_enabled:
            return ()
        if self.strategy == STRATEGY_NONE:
            # Mode-only rollout: enabling MIG from off leaves no instances; otherwise the devices stay.
            return tuple(self.current_devices) if self.mode["current"] == ENABLED else ()
        return tuple(self.desired.devices)

    def mig_after(self) -> bool:
        if not self.gpu.get("mig_capable"):
            return False
        if not self.managed:
            return self.mode["current"] == ENABLED
        return self.desired.mig_enabled

    def busy_problem(self) -> Optional[str]:
        """Why the plan cannot be carried out while processes run on GPU instances it destroys; None if none do."""
        if not self.busy_processes:
            return None
        doomed = dict((gi.id, gi) for gi in self.plan.destroy)
        ids = sorted(set(process["gpu_instance_id"] for process in self.busy_processes))
        return ("%s: the layout needs GPU instances %s destroyed, but processes run on them: %s"
                % (describe_gpu(self.gpu),
                   ", ".join("%d (%s)" % (gi_id, layout_lines([doomed[gi_id]])[0]) for gi_id in ids),
                   describe_processes(self.busy_processes)))

    def host_processes_in_the_way(self) -> List[dict]:
        """Processes outside any Kubernetes pod (a drain does not end them) that the change cannot go past.

        Those on GPU instances the plan destroys, and with a MIG mode change any on the GPU (the change destroys
        every instance and the GPU must be idle for its reset). Only processes whose owner is known are judged
        (``host_processes.annotate_process_owners``); one that has ended is no longer in the way.
        """
        if not self.managed:
            return []
        if self.mode_change:
            candidates = list(self.gpu.get("processes") or ())
        elif self.plan is not None:
            candidates = processes_on_gpu_instances(self.gpu, [gi.id for gi in self.plan.destroy])
        else:
            return []
        return [process for process in candidates if process.get("owner") not in (None, OWNER_POD, OWNER_GONE)]

    def to_dict(self) -> dict:
        entry = gpu_identity(self.gpu)
        entry.update(
            mig_capable=bool(self.gpu.get("mig_capable")),
            managed=self.managed,
            reason=self.reason,
            mig_mode=dict(self.mode) if self.gpu.get("mig_capable") else None,
            desired_mig_mode=self.desired_mode,
            mode_change=self.mode_change,
            current_devices=list(self.current_devices),
            desired_devices=None if self.desired_devices is None else list(self.desired_devices),
            devices_after=list(self.devices_after()),
            devices_verified=self.devices_verified,
            layout_change=self.layout_change,
            converged=self.converged,
            plan=self.plan.to_dict() if self.plan is not None else None,
            processes=list(self.gpu.get("processes") or ()),
        )
        return entry

    def summary(self) -> str:
        gpu = self.gpu
        head = "GPU %d %s" % (gpu["index"], gpu.get("name") or "")
        if not self.managed:
            return "%s: left as it is (%s)" % (head, self.reason)
        mode = self.mode
        mode_now = mode["current"] + (" (pending %s)" % mode["pending"] if mode["pending"] != mode["current"] else "")
        parts = ["MIG %s" % (mode_now if not self.mode_change else "%s -> %s" % (mode_now, self.desired_mode))]
        before = describe_devices(self.current_devices)
        if self.desired_devices is None:
            parts.append("devices %s (unmanaged under mig_strategy none)" % before)
        else:
            after = describe_devices(self.desired_devices)
            parts.append("devices %s" % before if not self.layout_change and before == after
                         else "devices %s -> %s" % (before, after))
        if not self.devices_verified:
            parts.append("fit checked once MIG is on")
        return "%s: %s%s" % (head, "; ".join(parts), "" if not self.converged else " (converged)")


def mode_change_needed(mode: dict, wanted: str) -> bool:
    """Whether a GPU whose MIG ``mode`` is ``{current, pending}`` must be set to ``wanted``: either side differs."""
    return mode["current"] != wanted or mode["pending"] != wanted


def decide_gpu(gpu: dict, desired: Optional[DesiredGpuLayout], strategy: str,
               catalog: Optional[GpuCatalog] = None) -> GpuDecision:
    """The per-GPU decision of a rollout, pure; mig_plan_info and mig_layout both decide through it.

    ``gpu`` is a ``read_node_facts`` record, ``desired`` its layout (None: not in the layout), ``catalog``
    its profiles when its devices are planned (None or empty: the fit cannot be checked yet).
    """
    decision = GpuDecision(gpu, desired, strategy, catalog)
    if not gpu.get("mig_capable"):
        decision.desired = None
        decision.reason = REASON_NOT_MIG_CAPABLE
        return decision
    if desired is None:
        decision.reason = REASON_NOT_IN_LAYOUT
        return decision
    if strategy == STRATEGY_NONE and desired.mig_enabled and desired.devices:
        decision.warnings.append(
            "%s: mig_strategy none ignores MIG layouts, so its MIG devices (%s) are neither created nor destroyed; "
            "only MIG mode is set" % (describe_gpu(gpu), describe_devices(desired.devices)))
    if not decision.manages_devices:
        return decision
    mig_on = decision.mode["current"] == ENABLED
    current_instances = (gpu.get("gpu_instances") or ()) if mig_on else ()
    if catalog is None or not catalog.profiles:
        decision.devices_verified = False
        decision.warnings.append(
            "%s reports no MIG profiles while MIG is %s (drivers before R550 list them only with MIG on): the fit "
            "of %s is checked when the layout is applied"
            % (describe_gpu(gpu), decision.mode["current"], describe_devices(desired.devices)))
        return decision
    try:
        decision.plan = plan_gpu_layout(catalog, current_instances, desired.devices,
                                        busy_gpu_instances=busy_gpu_instance_ids(gpu))
    except (LayoutError, ProfileError) as error:
        decision.problem = "%s: %s" % (describe_gpu(gpu), error)
        return decision
    decision.busy_processes = processes_on_gpu_instances(gpu, [gi.id for gi in decision.plan.destroy])
    return decision


def coverage_problem(decisions: Sequence[GpuDecision], driver_version: Optional[str] = None) -> Optional[str]:
    """A layout that manages no GPU because the GPUs cannot do MIG is refused, as mig-parted fails it.

    (A plan that silently changes nothing would hide a driver without MIG support.) Returns the message or None.
    """
    if any(decision.managed for decision in decisions):
        return None
    incapable = [decision.gpu for decision in decisions if decision.reason == REASON_NOT_MIG_CAPABLE]
    if not incapable:
        return None
    return ("the layout covers no MIG-capable GPU of this node: %s cannot do MIG%s"
            % (", ".join(describe_gpu(gpu) for gpu in incapable),
               " with driver %s" % driver_version if driver_version else ""))


def plan_from_result(plan: dict, facts: dict) -> Tuple[Dict[int, Optional[DesiredGpuLayout]], str]:
    """The desired layout a preflight plan (``plan_node``'s result) manages: ``({index: layout}, strategy)``.

    Only the GPUs whose MIG devices the plan manages get a layout; the others are "not in the layout".
    Raises MigError when the node's GPUs are not the ones the plan was made for (another GPU at an index, a
    GPU gone, MIG support changed with the driver): the plan must be made again.
    """
    if not isinstance(plan, dict) or not isinstance(plan.get("gpus"), list) or plan.get("strategy") not in STRATEGIES:
        raise MigError("plan must be the result of gpufleet.mig.mig_plan_info (with gpus and strategy)")
    now = dict((gpu["index"], gpu) for gpu in facts.get("gpus") or ())
    drifted, desired = [], {}
    for entry in plan["gpus"]:
        gpu = now.get(entry.get("index"))
        if gpu is None or gpu.get("uuid") != entry.get("uuid") \
                or bool(gpu.get("mig_capable")) != bool(entry.get("mig_capable")):
            drifted.append("GPU %s" % entry.get("index"))
            continue
        devices = entry.get("desired_devices")
        if entry.get("managed") and entry.get("desired_mig_mode") == ENABLED and devices is not None:
            desired[gpu["index"]] = DesiredGpuLayout(True, tuple(devices))
    drifted.extend("GPU %d" % index for index in sorted(set(now) - set(entry.get("index") for entry in plan["gpus"])))
    if drifted:
        raise MigError("the GPUs of this node are not the ones the plan was made for (%s changed since): plan the "
                       "node again (gpufleet.mig.mig_plan_info) and apply that plan" % ", ".join(drifted))
    return desired, plan["strategy"]


def select_mig_capable(facts: Dict[str, Any], gpus: Any, names: OptionNames = None) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], List[str]]:
    """The node modules' rule for GPUs that cannot do MIG: ``(capable, skipped, problems)`` of a selection.

    With ``gpus=all`` such a GPU is skipped (reason ``not MIG-capable``); named in ``gpus``, it is a problem.
    """
    explicit = normalize_selection(gpus) != ALL_GPUS
    capable, skipped, problems = [], [], []
    for gpu in select_gpus(facts["gpus"], gpus, option_name(names, "gpus")):
        if gpu.get("mig_capable"):
            capable.append(gpu)
        elif explicit:
            problems.append("%s is not MIG-capable (with driver %s); remove it from %s (%s=all skips such GPUs)"
                            % (describe_gpu(gpu), facts.get("driver_version"), option_name(names, "gpus"), option_name(names, "gpus")))
        else:
            entry = gpu_identity(gpu)
            entry["reason"] = REASON_NOT_MIG_CAPABLE
            skipped.append(entry)
    return capable, skipped, problems


def strategy_problems(decisions: Sequence[GpuDecision], strategy: str) -> Tuple[List[str], List[str]]:
    """(problems, warnings) of the node as the plan leaves it, for the device plugin's ``strategy``.

    The refusals are strategy.layout_problem's, the checks the device plugin itself makes at start.
    """
    layouts = [{"index": decision.gpu["index"], "mig_enabled": decision.mig_after(), "devices": decision.devices_after()}
               for decision in decisions]
    problem = layout_problem(layouts, strategy)
    warnings = []
    if strategy == STRATEGY_MIXED:
        for decision in decisions:
            if decision.mig_after() and not decision.devices_after():
                warnings.append("%s has MIG enabled without MIG devices: under mig_strategy mixed it offers no resource"
                                % describe_gpu(decision.gpu))
    return ([str(problem)] if problem is not None else []), warnings


def _layout_for_mig_layout(decisions: Sequence[GpuDecision]) -> Dict[str, Any]:
    """Inline per-index layout (``{"0": {"3g.20gb": 1}}``) of the GPUs whose devices the rollout manages."""
    layout = {}
    for decision in decisions:
        if decision.manages_devices:
            layout[str(decision.gpu["index"])] = _counts(decision.desired.devices)
    return layout


def describe_host_processes(processes: Sequence[dict]) -> str:
    """``pid 4242 (python3) on GPU instance 1, cgroup /user.slice/...``: which process, where, and why not a pod's."""
    words = []
    for process in sorted(processes, key=lambda item: item["pid"]):
        text = describe_processes([process])
        if process.get("cgroup"):
            text += " (cgroup %s)" % process["cgroup"]
        elif process.get("owner") == "unknown":
            text += " (cgroup unreadable)"
        words.append(text)
    return ", ".join(words)


def host_process_problem(decision: GpuDecision, processes: Sequence[dict], names: OptionNames = None) -> str:
    """Why a GPU cannot be changed while processes outside any pod use it, and what the user can do."""
    gpu = decision.gpu
    if decision.mode_change:
        what = "the MIG mode change to %s needs the GPU idle" % decision.desired_mode
    else:
        doomed = dict((gi.id, gi) for gi in decision.plan.destroy)
        ids = sorted(set(process["gpu_instance_id"] for process in processes))
        what = "the layout destroys GPU instance%s %s" % (
            "s" if len(ids) > 1 else "", ", ".join("%d (%s)" % (gi_id, layout_lines([doomed[gi_id]])[0]) for gi_id in ids))
    many = len(processes) > 1
    return ("%s: %s, but %s outside any Kubernetes pod, which draining the node does not end: %s; stop %s and "
            "re-run, set %s=%s to leave this GPU as it is, or leave the GPU out with %s"
            % (describe_gpu(gpu), what, "processes run there" if many else "a process runs there",
               describe_host_processes(processes), "them" if many else "it",
               option_name(names, "in_use"), IN_USE_SKIP, option_name(names, "gpus")))


def _leave_in_use_gpu(decision: GpuDecision, processes: Sequence[dict]) -> GpuDecision:
    """The decision for a GPU that in_use=skip leaves as it is: unmanaged, with the reason and a warning."""
    left = decide_gpu(decision.gpu, None, decision.strategy)
    left.reason = REASON_IN_USE
    left.warnings.append("%s left as it is: host processes outside any Kubernetes pod use it: %s"
                         % (describe_gpu(decision.gpu), describe_host_processes(processes)))
    return left


def plan_node(facts: Dict[str, Any], desired_by_index: Dict[int, Optional[DesiredGpuLayout]], catalogs: Dict[int, GpuCatalog],
              strategy: str, source: Optional[Dict[str, Any]] = None, in_use: str = IN_USE_FAIL,
              names: OptionNames = None) -> Dict[str, Any]:
    """Plan one node. Pure: reads nothing but its arguments.

    ``facts`` is ``gpu.read_node_facts()`` (``gpus`` records), ``desired_by_index`` what
    ``layout.resolve_layout`` returned for it, ``catalogs`` ``{gpu index: GpuCatalog}`` for the GPUs whose
    devices are planned (missing or empty catalogs mean "cannot check the fit yet"), ``strategy`` one of
    STRATEGIES and ``source`` the layout source (for ``config_id``).

    Processes whose records carry an ``owner`` (``host_processes.annotate_process_owners``) are judged: one outside
    any Kubernetes pod on a GPU instance the plan destroys (or on a GPU whose MIG mode changes) survives the drain,
    so ``in_use`` ``fail`` refuses the node and ``skip`` leaves that GPU as it is. ``names`` maps option names to
    what the messages call them (``option_names``).

    Returns the plan as a JSON-able dict. Raises StrategyError (every problem of the node in one message)
    when the layout does not fit a GPU or does not suit the strategy.
    """
    if strategy not in STRATEGIES:
        raise MigError("mig_strategy must be one of %s, got %r" % (", ".join(STRATEGIES), strategy))
    if in_use not in IN_USE_CHOICES:
        raise MigError("%s must be one of %s, got %r" % (option_name(names, "in_use"), ", ".join(IN_USE_CHOICES), in_use))
    decisions = [decide_gpu(gpu, desired_by_index.get(gpu["index"]), strategy, catalogs.get(gpu["index"]))
                 for gpu in sorted(facts.get("gpus") or (), key=lambda item: item["index"])]
    problems = []
    for position, decision in enumerate(decisions):
        in_the_way = [] if decision.problem else decision.host_processes_in_the_way()
        if in_the_way and in_use == IN_USE_SKIP:
            decisions[position] = _leave_in_use_gpu(decision, in_the_way)
        elif in_the_way:
            problems.append(host_process_problem(decision, in_the_way, names))
    problems = [decision.problem for decision in decisions if decision.problem] + problems
    warnings = [warning for decision in decisions for warning in decision.warnings]
    coverage = coverage_problem(decisions, facts.get("driver_version"))
    if coverage:
        problems.append(coverage)
    elif not any(decision.managed for decision in decisions):
        warnings.append("the layout covers no MIG-capable GPU of this node; nothing will change")
    found, noted = strategy_problems(decisions, strategy)
    problems.extend(found)
    warnings.extend(noted)
    if problems:
        raise StrategyError("; ".join(problems))
    for decision in decisions:
        if decision.busy_processes:
            warnings.append("%s has processes (%s) and GPU instances to destroy: draining the node must end them"
                            % (describe_gpu(decision.gpu), describe_processes(decision.busy_processes)))
    gpus = [decision.to_dict() for decision in decisions]
    return {
        "converged": all(decision.converged for decision in decisions),
        "strategy": strategy,
        "config_id": config_id(source or {}, desired_by_index),
        "mode_enable": [d.gpu["index"] for d in decisions if d.mode_change and d.desired.mig_enabled],
        "mode_disable": [d.gpu["index"] for d in decisions if d.mode_change and not d.desired.mig_enabled],
        "layout": _layout_for_mig_layout(decisions),
        "layout_change": any(decision.layout_change for decision in decisions),
        "gpus": gpus,
        "summary": [decision.summary() for decision in decisions],
        "warnings": warnings,
    }


def _desired_and_needed(source: Dict[str, Any], facts: Dict[str, Any], strategy: str, gpus: Any,
                        names: OptionNames = None) -> Tuple[Dict[int, Optional[DesiredGpuLayout]], List[int]]:
    """``desired_by_index`` for the selected GPUs, and the indexes whose MIG profile catalog the plan needs."""
    selected = set(gpu["index"] for gpu in select_gpus(facts["gpus"], gpus, option_name(names, "gpus")))
    desired_by_index = dict((index, desired) for index, desired in resolve_layout(source, facts["gpus"]).items()
                            if index in selected)
    needed = []
    if strategy != STRATEGY_NONE:
        for gpu in facts["gpus"]:
            desired = desired_by_index.get(gpu["index"])
            if gpu.get("mig_capable") and desired is not None and desired.mig_enabled:
                needed.append(gpu["index"])
    return desired_by_index, needed


def read_and_plan_node(source: Dict[str, Any], strategy: str, gpus: Any = None, in_use: str = IN_USE_FAIL,
                       proc_root: Optional[str] = None, names: OptionNames = None) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Read the node through NVML (one session) and plan it: ``(facts, plan)``.

    Only the GPUs ``gpus`` selects (``selection.select_gpus``; all by default) are planned, the others are
    left as they are. Catalogs are read only for the GPUs whose devices the rollout manages. Raises NvmlCallError when NVML
    fails (including a node without a driver), ConfigError for a bad layout source, StrategyError as
    ``plan_node``. With ``proc_root`` (``/proc``), every process is told apart as a pod's or the host's
    (``host_processes``) and ``in_use`` decides about host processes in the way.
    """
    with nvml.NvmlSession():
        facts = nvml.read_node_facts()
        desired_by_index, needed = _desired_and_needed(source, facts, strategy, gpus, names)
        catalogs = dict((index, nvml.read_catalog(index)) for index in needed)
    annotate_process_owners(facts, proc_root)
    return facts, plan_node(facts, desired_by_index, catalogs, strategy, source=source, in_use=in_use, names=names)


def plan_node_from_facts(facts: Dict[str, Any], source: Dict[str, Any], strategy: str, gpus: Any = None,
                         in_use: str = IN_USE_FAIL, names: OptionNames = None) -> Dict[str, Any]:
    """``plan_node`` on what ``gpu_info`` returned with ``profile_catalog: true``; pure.

    The same decision as ``read_and_plan_node`` without reading the node again, so a control host can plan a
    whole fleet from one read per node. Raises MigError when a GPU whose devices the plan manages was read
    without its catalog, and what ``read_and_plan_node`` raises otherwise. Process owners are judged when the read
    carried them (``gpu_info proc_root``).
    """
    if not facts.get("driver_loaded", True):
        raise MigError("the node has no usable NVIDIA driver, so its layout cannot be planned")
    desired_by_index, needed = _desired_and_needed(source, facts, strategy, gpus, names)
    by_index = dict((gpu["index"], gpu) for gpu in facts["gpus"])
    catalogs = {}
    for index in needed:
        data = by_index[index].get("profile_catalog")
        if data is None:
            raise MigError("GPU %d was read without its MIG profile catalog (gpu_info profile_catalog: true)" % index)
        catalogs[index] = catalog_from_dict(data)
    return plan_node(facts, desired_by_index, catalogs, strategy, source=source, in_use=in_use, names=names)
