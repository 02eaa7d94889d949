# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the GPU and compute instances of a node's GPUs match a desired layout.

One run: read the node (gpu.read_node_facts), take the desired layout per GPU (layout.resolve_layout, or
the preflight plan through node_plan.plan_from_result), decide every selected GPU with node_plan.decide_gpu
(the decision mig_plan_info makes) before anything changes, then apply the plans GPU by GPU
(apply.apply_gpu_plan), re-read the node and verify that each GPU now has the desired MIG devices. Check
mode stops after deciding.

* MIG mode belongs to gpufleet.mig.mig_mode: a GPU whose layout needs the other MIG mode fails the task
  before anything changes, naming the mig_mode call that fixes it. A GPU that is off and should be off is
  converged.
* GPU instances that processes run on are never destroyed: ``in_use=fail`` fails the task before anything
  changes, ``in_use=skip`` leaves such a GPU as it is (``skipped_gpus``) and converges the others. The same
  holds in check mode.
* GPUs the layout does not mention are left untouched (``skipped_gpus``); GPUs that cannot do MIG are skipped
  with ``gpus=all`` and fail the task when named, and a layout that covers none but such GPUs fails.
"""

from __future__ import annotations


from typing import Any, Dict, List, NoReturn, Optional, Sequence

from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu as nvml
from ansible_collections.gpufleet.mig.plugins.module_utils._apply import ApplyError, apply_gpu_plan
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, TaskError
from ansible_collections.gpufleet.mig.plugins.module_utils._layout import DesiredGpuLayout, resolve_layout
from ansible_collections.gpufleet.mig.plugins.module_utils._node_plan import (
    IN_USE_FAIL,
    IN_USE_SKIP,
    REASON_NOT_IN_LAYOUT,
    STRATEGY_MIXED,
    GpuDecision,
    coverage_problem,
    decide_gpu,
    plan_from_result,
    select_mig_capable,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._node_report import (
    describe_gpu, describe_step, gpu_identity, layout_lines, mig_devices,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import OptionNames, option_name
from ansible_collections.gpufleet.mig.plugins.module_utils._planner import devices_from_instances
from ansible_collections.gpufleet.mig.plugins.module_utils._selection import select_gpus

ENABLED = "enabled"


def _busy_advice(names):
    return "; stop them (drain the node) and re-run, or set %s=%s to leave this GPU as it is" % (
        option_name(names, "in_use"), IN_USE_SKIP)


def _changes(decision: GpuDecision) -> bool:
    return decision.plan is not None and not decision.plan.converged


def _predicted_lines(decision: GpuDecision) -> List[str]:
    if decision.plan is None:
        return []
    return layout_lines(tuple(decision.plan.keep) + tuple(decision.plan.create))


def mode_mismatch(gpu: dict, desired: DesiredGpuLayout) -> Optional[str]:
    """``None`` when the GPU's current MIG mode suits ``desired``, else ``"needs_enabled"`` / ``"needs_disabled"``."""
    mig_on = gpu["mig_mode"]["current"] == ENABLED
    if desired.mig_enabled and not mig_on:
        return "needs_enabled"
    if not desired.mig_enabled and mig_on:
        return "needs_disabled"
    return None


def _pending_note(gpu: Dict[str, Any]) -> str:
    mode = gpu["mig_mode"]
    if mode["pending"] != mode["current"]:
        return " (%s is pending until a GPU reset)" % mode["pending"]
    return ""


def _mode_problems(needs_enabled: Sequence[Dict[str, Any]], needs_disabled: Sequence[Dict[str, Any]]) -> List[str]:
    problems = []
    if needs_enabled:
        problems.append(
            "MIG mode is disabled on %s, but the layout wants MIG devices there; mig_layout does not change "
            "MIG mode: run gpufleet.mig.mig_mode with state=enabled (and reset=true where a change is pending) "
            "first" % ", ".join(describe_gpu(gpu) + _pending_note(gpu) for gpu in needs_enabled))
    if needs_disabled:
        problems.append(
            "the layout wants MIG mode disabled on %s, where it is enabled; mig_layout does not change MIG mode: "
            "run gpufleet.mig.mig_mode with state=disabled (force=true destroys the GPU instances) first"
            % ", ".join(describe_gpu(gpu) for gpu in needs_disabled))
    return problems


class _LayoutRun(object):
    """One mig_layout task on one node."""

    def __init__(self, source: Optional[Dict[str, Any]], plan: Optional[Dict[str, Any]], gpus: Any, in_use: str,
                 check_mode: bool, names: OptionNames = None) -> None:
        self.names = names
        self.source = source
        self.plan = plan
        self.gpus = gpus
        self.in_use = in_use
        self.check_mode = check_mode
        self.entries = {}
        self.skipped = []
        self.warnings = []
        self.diff = {"before": {}, "after": {}}

    def _skip(self, gpu: Dict[str, Any], reason: str, detail: Optional[str] = None) -> None:
        entry = gpu_identity(gpu)
        entry["reason"] = reason
        if detail:
            entry["detail"] = detail
        self.skipped.append(entry)

    # ----------------------------------------------------------------- decide
    def decide(self, facts: Dict[str, Any]) -> List[GpuDecision]:
        if self.plan is not None:
            desired_by_index, strategy = plan_from_result(self.plan, facts)
        else:
            desired_by_index, strategy = resolve_layout(self.source, facts["gpus"]), STRATEGY_MIXED
        capable, self.skipped, problems = select_mig_capable(facts, self.gpus, self.names)
        needs_enabled, needs_disabled, candidates, decisions = [], [], [], []
        for gpu in capable:
            desired = desired_by_index.get(gpu["index"])
            if desired is None:
                self._skip(gpu, REASON_NOT_IN_LAYOUT, "no entry of the layout or config applies to this GPU")
                continue
            mismatch = mode_mismatch(gpu, desired)
            if mismatch == "needs_enabled":
                needs_enabled.append(gpu)
            elif mismatch == "needs_disabled":
                needs_disabled.append(gpu)
            else:
                candidates.append((gpu, desired))
        if not problems:  # a GPU named in gpus that cannot do MIG is already refused on its own
            coverage = coverage_problem([decide_gpu(gpu, desired_by_index.get(gpu["index"]), strategy)
                                         for gpu in select_gpus(facts["gpus"], self.gpus)], facts.get("driver_version"))
            if coverage:
                problems.append(coverage)
        problems.extend(_mode_problems(needs_enabled, needs_disabled))
        for gpu, desired in candidates:
            decision = self._decide(gpu, desired, strategy)
            busy = decision.busy_problem()
            if decision.problem:
                problems.append("%s; change the layout or config for this GPU" % decision.problem)
            elif busy and self.in_use == IN_USE_SKIP:
                self._skip(gpu, "in use", busy + _busy_advice(self.names))
                self.warnings.append("left as it is: " + busy + _busy_advice(self.names))
            elif busy:
                problems.append(busy + _busy_advice(self.names))
            else:
                decisions.append(decision)
        if problems:
            raise TaskError("; ".join(problems), changed=False, gpus=[], skipped_gpus=self.skipped)
        for decision in decisions:
            self._start_entry(decision)
        return decisions

    def _decide(self, gpu: Dict[str, Any], desired: Optional[DesiredGpuLayout], strategy: str) -> GpuDecision:
        if not desired.mig_enabled:
            return decide_gpu(gpu, desired, strategy)
        if gpu["mig_mode"]["pending"] != gpu["mig_mode"]["current"]:
            self.warnings.append("MIG mode %s is pending on %s: a GPU reset or reboot will discard the GPU "
                                 "instances this task creates" % (gpu["mig_mode"]["pending"], describe_gpu(gpu)))
        decision = decide_gpu(gpu, desired, strategy, nvml.read_catalog(gpu["index"]))
        if not decision.devices_verified and decision.problem is None:
            # MIG is on here, so a catalog without profiles is the driver's answer, not a deferred check.
            decision.problem = "%s reports no MIG profiles with MIG enabled" % describe_gpu(gpu)
        return decision

    def _start_entry(self, decision: GpuDecision) -> None:
        gpu = decision.gpu
        entry = gpu_identity(gpu)
        entry.update(mig_enabled=decision.desired.mig_enabled, desired_devices=list(decision.desired.devices),
                     converged=not _changes(decision), changed=False,
                     plan=decision.plan.to_dict() if decision.plan is not None else None,
                     actions=[], devices=mig_devices(gpu))
        self.entries[gpu["index"]] = entry
        self.diff["before"]["GPU %d" % gpu["index"]] = layout_lines(gpu.get("gpu_instances") or ())

    # ------------------------------------------------------------------ apply
    def apply(self, decisions: Sequence[GpuDecision]) -> None:
        for decision in decisions:
            if not _changes(decision):
                continue
            entry = self.entries[decision.gpu["index"]]
            try:
                entry["actions"] = apply_gpu_plan(decision.gpu["index"], decision.plan, decision.catalog)
            except ApplyError as error:
                entry["actions"] = error.done
                entry["changed"] = bool(error.done)
                self._fail_after_apply(decision, error)
            entry["changed"] = True

    def _fail_after_apply(self, decision: GpuDecision, error: ApplyError) -> NoReturn:
        gpu_now = self._reread(decision.gpu["index"])
        entry = self.entries[decision.gpu["index"]]
        entry["devices"] = mig_devices(gpu_now)
        now = layout_lines(gpu_now.get("gpu_instances") or ())
        done = [describe_step(step) for step in error.done]
        message = ("MIG layout of %s left incomplete: %s; steps done before it: %s; GPU %d now has: %s; re-run the "
                   "task to converge" % (describe_gpu(decision.gpu), error, ", ".join(done) or "none",
                                         decision.gpu["index"], "; ".join(now) or "no GPU instances"))
        raise TaskError(message, changed=any(item["changed"] for item in self.entries.values()),
                        gpus=self.result_gpus(), skipped_gpus=self.skipped, failed_step=error.step,
                        **error.cause.failure_keys())

    def _reread(self, index: int) -> Dict[str, Any]:
        for gpu in nvml.read_node_facts()["gpus"]:
            if gpu["index"] == index:
                return gpu
        raise MigError("GPU %d disappeared from NVML while its MIG layout was being changed" % index)

    # ----------------------------------------------------------------- report
    def finish(self, decisions: Sequence[GpuDecision], facts_after: Optional[Dict[str, Any]]) -> None:
        by_index = dict((gpu["index"], gpu) for gpu in facts_after["gpus"]) if facts_after else {}
        wrong = []
        for decision in decisions:
            index = decision.gpu["index"]
            key = "GPU %d" % index
            if self.check_mode or index not in by_index:
                self.entries[index]["changed"] = _changes(decision)
                self.diff["after"][key] = _predicted_lines(decision)
                continue
            gpu = by_index[index]
            self.entries[index]["devices"] = mig_devices(gpu)
            self.diff["after"][key] = layout_lines(gpu.get("gpu_instances") or ())
            if _changes(decision):
                have = devices_from_instances(gpu.get("gpu_instances") or (), decision.catalog)
                if tuple(have) != tuple(decision.plan.desired_devices):
                    wrong.append("%s has MIG devices %s after the run, not the %s the layout asks for"
                                 % (describe_gpu(gpu), ", ".join(have) or "none",
                                    ", ".join(decision.plan.desired_devices) or "none"))
        if wrong:
            raise TaskError("; ".join(wrong) + "; re-run the task to converge", changed=True,
                            gpus=self.result_gpus(), skipped_gpus=self.skipped)

    def result_gpus(self) -> List[Dict[str, Any]]:
        return [self.entries[index] for index in sorted(self.entries)]

    def result(self) -> Dict[str, Any]:
        gpus = self.result_gpus()
        return {"changed": any(entry["changed"] for entry in gpus), "gpus": gpus, "skipped_gpus": self.skipped,
                "warnings": self.warnings, "diff": self.diff}


def run_mig_layout(source: Optional[Dict[str, Any]] = None, gpus: Any = None, in_use: str = IN_USE_FAIL, check_mode: bool = False,
                   plan: Optional[Dict[str, Any]] = None, names: OptionNames = None) -> Dict[str, Any]:
    """Make the selected GPUs match the layout ``source`` (see ``layout.resolve_layout``), or carry out
    ``plan``, a node plan mig_plan_info returned (refused when the node's GPUs are no longer the planned ones).

    Returns the module result (``changed``, ``gpus``, ``skipped_gpus``, ``warnings``, ``diff``). Raises
    TaskError with the partial result in ``details``, or MigError (ConfigError, LayoutError, ...).
    """
    if in_use not in (IN_USE_FAIL, IN_USE_SKIP):
        raise MigError("%s must be %s or %s, got %r" % (option_name(names, "in_use"), IN_USE_FAIL, IN_USE_SKIP, in_use))
    if (source is None) == (plan is None):
        raise MigError("give exactly one of a layout source or a plan")
    run = _LayoutRun(source, plan, gpus, in_use, check_mode, names)
    with nvml.NvmlSession():
        decisions = run.decide(nvml.read_node_facts())
        if check_mode or not any(_changes(decision) for decision in decisions):
            run.finish(decisions, None if check_mode else {"gpus": [decision.gpu for decision in decisions]})
            return run.result()
        run.apply(decisions)
        run.finish(decisions, nvml.read_node_facts())
    return run.result()
