# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the GPU and compute instances of a node's GPUs match a desired layout.

One run: read the node (gpu.read_node_facts), resolve the desired layout per GPU (layout.resolve_layout),
validate every selected GPU and plan it (planner.plan_gpu_layout) before anything changes, then apply the
plans GPU by GPU (apply.apply_gpu_plan), re-read the node and verify that each GPU now has the desired
MIG devices. Check mode stops after planning.

Decisions where the issue leaves a choice:

* MIG mode belongs to gpufleet.mig.mig_mode. A GPU whose layout needs MIG on while it is off, or whose
  layout (for example a mig-parted entry with ``mig-enabled: false``) needs MIG off while it is on, fails
  the task before anything changes, naming the GPUs and the mig_mode call that fixes them. A GPU that is
  off and should be off is reported as converged.
* GPU instances the plan must destroy while NVML shows processes on them are never destroyed (NVML
  would refuse anyway, and processes are never killed). ``in_use=fail`` (default) fails the task before
  anything changes, naming the processes; ``in_use=skip`` leaves such a GPU exactly as it is, reports it
  under ``skipped_gpus`` and converges the others.
* GPUs the layout does not mention (a mig-parted config whose entries skip them) are left untouched and
  reported under ``skipped_gpus``; GPUs that cannot do MIG are skipped with ``gpus=all`` and fail the task when
  named explicitly.
* Compute instances: one full-size compute instance per GPU instance unless the layout names partial
  devices (``1c.3g.20gb: 3``), which the planner packs into shared GPU instances.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.gpufleet.mig.plugins.module_utils import gpu as nvml
from ansible_collections.gpufleet.mig.plugins.module_utils.apply import (
    ApplyError,
    MigTaskError,
    apply_gpu_plan,
    describe_gpu,
    describe_processes,
    describe_step,
    gpu_identity,
    layout_lines,
    mig_devices,
    processes_on_gpu_instances,
)
from ansible_collections.gpufleet.mig.plugins.module_utils.errors import LayoutError, MigError
from ansible_collections.gpufleet.mig.plugins.module_utils.layout import resolve_layout
from ansible_collections.gpufleet.mig.plugins.module_utils.planner import (
    busy_gpu_instance_ids, devices_from_instances, plan_gpu_layout,
)
from ansible_collections.gpufleet.mig.plugins.module_utils.selection import ALL_GPUS, normalize_selection, select_gpus

IN_USE_FAIL = "fail"
IN_USE_SKIP = "skip"
ENABLED = "enabled"


@dataclass(frozen=True)
class LayoutDecision:
    """One GPU's desired layout and plan; ``plan`` is None when the GPU should stay with MIG off."""

    gpu: dict
    desired: object  # layout.DesiredGpuLayout
    catalog: object  # Optional[profiles.GpuCatalog]
    plan: object  # Optional[planner.GpuPlan]

    @property
    def changes(self):
        return self.plan is not None and not self.plan.converged

    def predicted_lines(self):
        if self.plan is None:
            return []
        return layout_lines(tuple(self.plan.keep) + tuple(self.plan.create))


def mode_mismatch(gpu, desired):
    """``None`` when the GPU's current MIG mode suits ``desired``, else ``"needs_enabled"`` / ``"needs_disabled"``."""
    mig_on = gpu["mig_mode"]["current"] == ENABLED
    if desired.mig_enabled and not mig_on:
        return "needs_enabled"
    if not desired.mig_enabled and mig_on:
        return "needs_disabled"
    return None


def _pending_note(gpu):
    mode = gpu["mig_mode"]
    if mode["pending"] != mode["current"]:
        return " (%s is pending until a GPU reset)" % mode["pending"]
    return ""


def _mode_problems(needs_enabled, needs_disabled):
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


def busy_instances_problem(gpu, plan):
    """Message when processes run on GPU instances the plan destroys, else None."""
    doomed = dict((gi.id, gi) for gi in plan.destroy)
    busy = processes_on_gpu_instances(gpu, doomed)
    if not busy:
        return None
    ids = sorted(set(process["gpu_instance_id"] for process in busy))
    return ("%s: the layout needs GPU instances %s destroyed, but processes run on them: %s; stop them (drain the "
            "node) and re-run, or set in_use=skip to leave this GPU as it is"
            % (describe_gpu(gpu), ", ".join("%d (%s)" % (gi_id, layout_lines([doomed[gi_id]])[0]) for gi_id in ids),
               describe_processes(busy)))


class _LayoutRun(object):
    """One mig_layout task on one node."""

    def __init__(self, source, gpus, in_use, check_mode):
        self.source = source
        self.gpus = gpus
        self.in_use = in_use
        self.check_mode = check_mode
        self.entries = {}
        self.skipped = []
        self.warnings = []
        self.diff = {"before": {}, "after": {}}

    def _skip(self, gpu, reason, detail=None):
        entry = gpu_identity(gpu)
        entry["reason"] = reason
        if detail:
            entry["detail"] = detail
        self.skipped.append(entry)

    # ----------------------------------------------------------------- decide
    def decide(self, facts):
        explicit = normalize_selection(self.gpus) != ALL_GPUS
        selected = select_gpus(facts["gpus"], self.gpus)
        desired_by_index = resolve_layout(self.source, facts["gpus"])
        problems, needs_enabled, needs_disabled, candidates = [], [], [], []
        for gpu in selected:
            if not gpu.get("mig_capable"):
                if explicit:
                    problems.append("%s is not MIG-capable (with driver %s); remove it from gpus (gpus=all skips "
                                    "such GPUs)" % (describe_gpu(gpu), facts.get("driver_version")))
                else:
                    self._skip(gpu, "not MIG-capable")
                continue
            desired = desired_by_index.get(gpu["index"])
            if desired is None:
                self._skip(gpu, "not in the layout", "no entry of the layout or config applies to this GPU")
                continue
            mismatch = mode_mismatch(gpu, desired)
            if mismatch == "needs_enabled":
                needs_enabled.append(gpu)
            elif mismatch == "needs_disabled":
                needs_disabled.append(gpu)
            else:
                candidates.append((gpu, desired))
        problems.extend(_mode_problems(needs_enabled, needs_disabled))
        decisions = []
        for gpu, desired in candidates:
            try:
                decision = self._plan(gpu, desired)
            except LayoutError as error:
                problems.append("%s: %s; change the layout or config for this GPU" % (describe_gpu(gpu), error))
                continue
            busy = busy_instances_problem(gpu, decision.plan) if decision.plan is not None else None
            if busy and self.in_use == IN_USE_SKIP:
                self._skip(gpu, "in use", busy)
                self.warnings.append("left as it is: " + busy)
            elif busy:
                problems.append(busy)
            else:
                decisions.append(decision)
        if problems:
            raise MigTaskError("; ".join(problems), changed=False, gpus=[], skipped_gpus=self.skipped)
        for decision in decisions:
            self._start_entry(decision)
        return decisions

    def _plan(self, gpu, desired):
        if not desired.mig_enabled:
            return LayoutDecision(gpu=gpu, desired=desired, catalog=None, plan=None)
        if gpu["mig_mode"]["pending"] != gpu["mig_mode"]["current"]:
            self.warnings.append("MIG mode %s is pending on %s: a GPU reset or reboot will discard the GPU "
                                 "instances this task creates" % (gpu["mig_mode"]["pending"], describe_gpu(gpu)))
        catalog = nvml.read_catalog(gpu["index"])
        plan = plan_gpu_layout(catalog, gpu.get("gpu_instances") or (), desired.devices,
                               busy_gpu_instances=busy_gpu_instance_ids(gpu))
        return LayoutDecision(gpu=gpu, desired=desired, catalog=catalog, plan=plan)

    def _start_entry(self, decision):
        gpu = decision.gpu
        entry = gpu_identity(gpu)
        entry.update(mig_enabled=decision.desired.mig_enabled, desired_devices=list(decision.desired.devices),
                     converged=not decision.changes, changed=False,
                     plan=decision.plan.to_dict() if decision.plan is not None else None,
                     actions=[], devices=mig_devices(gpu))
        self.entries[gpu["index"]] = entry
        self.diff["before"]["GPU %d" % gpu["index"]] = layout_lines(gpu.get("gpu_instances") or ())

    # ------------------------------------------------------------------ apply
    def apply(self, decisions):
        for decision in decisions:
            if not decision.changes:
                continue
            entry = self.entries[decision.gpu["index"]]
            try:
                entry["actions"] = apply_gpu_plan(decision.gpu["index"], decision.plan, decision.catalog)
            except ApplyError as error:
                entry["actions"] = error.done
                entry["changed"] = bool(error.done)
                self._fail_after_apply(decision, error)
            entry["changed"] = True

    def _fail_after_apply(self, decision, error):
        gpu_now = self._reread(decision.gpu["index"])
        entry = self.entries[decision.gpu["index"]]
        entry["devices"] = mig_devices(gpu_now)
        now = layout_lines(gpu_now.get("gpu_instances") or ())
        done = [describe_step(step) for step in error.done]
        message = ("MIG layout of %s left incomplete: %s; steps done before it: %s; GPU %d now has: %s; re-run the "
                   "task to converge" % (describe_gpu(decision.gpu), error, ", ".join(done) or "none",
                                         decision.gpu["index"], "; ".join(now) or "no GPU instances"))
        raise MigTaskError(message, changed=any(item["changed"] for item in self.entries.values()),
                           gpus=self.result_gpus(), skipped_gpus=self.skipped, failed_step=error.step,
                           nvml_call=error.cause.call, nvml_code=error.cause.code)

    def _reread(self, index):
        for gpu in nvml.read_node_facts()["gpus"]:
            if gpu["index"] == index:
                return gpu
        raise MigError("GPU %d disappeared from NVML while its MIG layout was being changed" % index)

    # ----------------------------------------------------------------- report
    def finish(self, decisions, facts_after):
        by_index = dict((gpu["index"], gpu) for gpu in facts_after["gpus"]) if facts_after else {}
        wrong = []
        for decision in decisions:
            index = decision.gpu["index"]
            key = "GPU %d" % index
            if self.check_mode or index not in by_index:
                self.entries[index]["changed"] = decision.changes
                self.diff["after"][key] = decision.predicted_lines()
                continue
            gpu = by_index[index]
            self.entries[index]["devices"] = mig_devices(gpu)
            self.diff["after"][key] = layout_lines(gpu.get("gpu_instances") or ())
            if decision.plan is not None and decision.changes:
                have = devices_from_instances(gpu.get("gpu_instances") or (), decision.catalog)
                if tuple(have) != tuple(decision.plan.desired_devices):
                    wrong.append("%s has MIG devices %s after the run, not the %s the layout asks for"
                                 % (describe_gpu(gpu), ", ".join(have) or "none",
                                    ", ".join(decision.plan.desired_devices) or "none"))
        if wrong:
            raise MigTaskError("; ".join(wrong) + "; re-run the task to converge", changed=True,
                               gpus=self.result_gpus(), skipped_gpus=self.skipped)

    def result_gpus(self):
        return [self.entries[index] for index in sorted(self.entries)]

    def result(self):
        gpus = self.result_gpus()
        return {"changed": any(entry["changed"] for entry in gpus), "gpus": gpus, "skipped_gpus": self.skipped,
                "warnings": self.warnings, "diff": self.diff}


def run_mig_layout(source, gpus=None, in_use=IN_USE_FAIL, check_mode=False):
    """Make the selected GPUs match the layout ``source`` (see ``layout.resolve_layout``).

    Returns the module result (``changed``, ``gpus``, ``skipped_gpus``, ``warnings``, ``diff``). Raises
    MigTaskError with the partial result in ``details``, or MigError (ConfigError, LayoutError, ...).
    """
    if in_use not in (IN_USE_FAIL, IN_USE_SKIP):
        raise MigError("in_use must be %s or %s, got %r" % (IN_USE_FAIL, IN_USE_SKIP, in_use))
    run = _LayoutRun(source, gpus, in_use, check_mode)
    with nvml.NvmlSession():
        decisions = run.decide(nvml.read_node_facts())
        if check_mode or not any(decision.changes for decision in decisions):
            run.finish(decisions, None if check_mode else {"gpus": [decision.gpu for decision in decisions]})
            return run.result()
        run.apply(decisions)
        run.finish(decisions, nvml.read_node_facts())
    return run.result()
