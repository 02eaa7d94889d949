# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""MIG mode of a node's GPUs: decide per GPU (pure), then set the mode, reset, and report what happened.

The driver behaviour this follows (pending vs current mode, activation status, resets through
``nvidia-smi -r``, instances lost on a mode change) is in docs/hardware.md, "How MIG mode changes".

* A GPU whose *pending* mode already matches is not set again (that would make the driver retry the
  activation); a change still pending is ``reset_required``, and ``reset=True`` activates it by a reset.
* ``reboot_required`` when SetMigMode answers RESET_REQUIRED or ``nvidia-smi -r`` says resets are not
  supported: only a reboot can activate the mode, so the task does not fail.
* Check mode predicts that the driver activates the mode by itself unless NVML lists processes on the GPU.
* ``reset=True`` on a GPU that NVML shows processes on is refused before anything changes; a reset that
  nvidia-smi refuses for other holders fails the task after the mode was set, reporting it pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, NoReturn, Optional, Tuple

from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu as nvml
from ansible_collections.gpufleet.mig.plugins.module_utils._apply import ApplyError, destroy_gpu_instances
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, NvmlCallError, TaskError
from ansible_collections.gpufleet.mig.plugins.module_utils._node_report import (
    describe_gpu, describe_processes, gpu_identity, layout_lines,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._node_plan import select_mig_capable
from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import OptionNames, option_name
from ansible_collections.gpufleet.mig.plugins.module_utils._selection import ALL_GPUS, normalize_selection

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import CommandRunner

ENABLED = "enabled"
DISABLED = "disabled"
MODES = (ENABLED, DISABLED)

# nvidia-smi exits with the NVML return code (NOT_SUPPORTED = 3) when a GPU reset is not exposed.
_SMI_EXIT_NOT_SUPPORTED = 3


@dataclass(frozen=True)
class ModeDecision:
    """What to do to one GPU. ``destroy`` holds facts records of GPU instances to destroy first (force)."""

    gpu: Dict[str, Any]
    desired: str
    set_mode: bool
    destroy: Tuple[Dict[str, Any], ...]
    reset: bool

    @property
    def changes(self) -> bool:
        return bool(self.set_mode or self.destroy or self.reset)

    def predicted_mode(self) -> Dict[str, str]:
        """Mode after a successful run: the driver activates by itself unless processes hold the GPU."""
        current = self.gpu["mig_mode"]["current"]
        if self.reset or (self.set_mode and not self.gpu.get("processes")):
            current = self.desired
        return {"current": current, "pending": self.desired}

    def plan(self) -> Dict[str, Any]:
        return {"set_mode": self.set_mode, "reset": self.reset,
                "destroy_gpu_instances": [gi["id"] for gi in self.destroy]}


def decide_mig_mode(gpu: Dict[str, Any], desired: str, force: bool = False, reset: bool = False, names: OptionNames = None) -> ModeDecision:
    """Decide for one MIG-capable GPU (a ``read_node_facts`` record). Raises MigError when it must refuse.

    Pure: reads nothing but ``gpu``.
    """
    if desired not in MODES:
        raise MigError("state must be one of %s, got %r" % (", ".join(MODES), desired))
    current, pending = gpu["mig_mode"]["current"], gpu["mig_mode"]["pending"]
    set_mode = pending != desired
    do_reset = bool(reset) and current != desired
    instances = tuple(gpu.get("gpu_instances") or ()) if current == ENABLED else ()
    destroy = ()
    if desired == DISABLED and instances and (set_mode or do_reset):
        if not force:
            raise MigError(
                "cannot disable MIG mode on %s: it has GPU instances (%s); destroy them first "
                "(gpufleet.mig.mig_layout with layout {}) or set %s=true"
                % (describe_gpu(gpu), "; ".join(layout_lines(instances)), option_name(names, "force")))
        busy = [process for process in gpu.get("processes") or () if process.get("gpu_instance_id") is not None]
        if busy:
            raise MigError(
                "cannot disable MIG mode on %s: processes run on its GPU instances: %s; %s=true never "
                "destroys instances in use: stop the processes (drain the node) and re-run"
                % (describe_gpu(gpu), describe_processes(busy), option_name(names, "force")))
        destroy = instances
    if do_reset and gpu.get("processes"):
        raise MigError(
            "cannot reset %s to activate MIG mode %s: processes use it: %s; stop them (drain the node) and "
            "re-run, or set %s=false and reboot the node later"
            % (describe_gpu(gpu), desired, describe_processes(gpu["processes"]), option_name(names, "reset")))
    return ModeDecision(gpu=gpu, desired=desired, set_mode=set_mode, destroy=destroy, reset=do_reset)


def reset_argv(nvidia_smi: str, gpu: Dict[str, Any]) -> List[str]:
    """``nvidia-smi -r -i <PCI bus id>``; the bus id survives re-enumeration, an index may not."""
    return [nvidia_smi, "-r", "-i", gpu.get("pci_bus_id") or str(gpu["index"])]


class NvidiaSmiReset(object):
    """The GPU reset seam: ``run_command(argv) -> (rc, stdout, stderr)`` (AnsibleModule.run_command)."""

    def __init__(self, nvidia_smi: str, run_command: CommandRunner) -> None:
        self.nvidia_smi = nvidia_smi
        self.run_command = run_command

    def __call__(self, gpu: Dict[str, Any]) -> Dict[str, Any]:
        argv = reset_argv(self.nvidia_smi, gpu)
        rc, stdout, stderr = self.run_command(argv)
        return {"cmd": argv, "rc": rc, "stdout": stdout, "stderr": stderr}


def reset_not_supported(outcome: Dict[str, Any]) -> bool:
    text = ("%s\n%s" % (outcome.get("stdout") or "", outcome.get("stderr") or "")).lower()
    return outcome["rc"] == _SMI_EXIT_NOT_SUPPORTED or "not supported" in text


def _first_paragraph(text: Optional[str]) -> str:
    lines = []
    for line in (text or "").splitlines():
        if not line.strip():
            if lines:
                break
            continue
        lines.append(line.strip())
    return " ".join(lines)


def _gpu_entry(gpu: Dict[str, Any], decision: Optional[ModeDecision] = None) -> Dict[str, Any]:
    entry = gpu_identity(gpu)
    entry.update(before=dict(gpu["mig_mode"]), after=dict(gpu["mig_mode"]), changed=False, actions=[],
                 plan=decision.plan() if decision else None, reset_required=False, reboot_required=False)
    return entry


def _diff_view(mode: Dict[str, Any], gpu_instances: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    return {"mig_mode": dict(mode), "gpu_instances": layout_lines(gpu_instances)}


class _ModeRun(object):
    """One mig_mode task on one node: selection, decisions, writes, reset, re-read, result."""

    def __init__(self, state: str, gpus: Any, force: bool, reset: bool, check_mode: bool,
                 resetter: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]], names: OptionNames = None) -> None:
        self.names = names
        self.state = state
        self.gpus = gpus
        self.force = force
        self.reset = reset
        self.check_mode = check_mode
        self.resetter = resetter
        self.entries = {}
        self.skipped = []
        self.warnings = []
        self.diff = {"before": {}, "after": {}}

    # ----------------------------------------------------------------- decide
    def decide(self, facts: Dict[str, Any]) -> List[ModeDecision]:
        capable, self.skipped, problems = select_mig_capable(facts, self.gpus, self.names)
        decisions = []
        for gpu in capable:
            try:
                decisions.append(decide_mig_mode(gpu, self.state, self.force, self.reset, self.names))
            except MigError as error:
                problems.append(str(error))
        if problems:
            raise TaskError("; ".join(problems), changed=False, gpus=[], skipped_gpus=self.skipped)
        if not decisions and normalize_selection(self.gpus) == ALL_GPUS:
            self.warnings.append("no MIG-capable GPU among the selected GPUs; nothing to do")
        for decision in decisions:
            self.entries[decision.gpu["index"]] = _gpu_entry(decision.gpu, decision)
            key = "GPU %d" % decision.gpu["index"]
            self.diff["before"][key] = _diff_view(decision.gpu["mig_mode"], decision.gpu["gpu_instances"])
        return decisions

    # ------------------------------------------------------------------ write
    def _fail(self, message: str, **extra: Any) -> NoReturn:
        """Raise with every entry's ``after`` as NVML reports it now, so a half-done run is reported exactly."""
        try:
            with nvml.NvmlSession():
                now = dict((gpu["index"], gpu) for gpu in nvml.read_node_facts()["gpus"])
        except MigError:
            now = {}  # keep what the writes reported; the failure message matters more than a re-read
        for index, entry in self.entries.items():
            if index in now and now[index].get("mig_mode"):
                entry["after"] = dict(now[index]["mig_mode"])
            entry["reset_required"] = entry["after"]["current"] != entry["after"]["pending"]
        details = dict(changed=any(entry["changed"] for entry in self.entries.values()),
                       gpus=self.result_gpus(), skipped_gpus=self.skipped)
        details.update(extra)
        raise TaskError(message, **details)

    def write(self, decision: ModeDecision) -> None:
        """Destroy instances (force) and set the mode; inside an NVML session."""
        gpu = decision.gpu
        entry = self.entries[gpu["index"]]
        if decision.destroy:
            try:
                entry["actions"].extend(destroy_gpu_instances(gpu["index"], decision.destroy))
            except ApplyError as error:
                entry["actions"].extend(error.done)
                entry["changed"] = entry["changed"] or bool(error.done)
                self._fail("cannot disable MIG mode on %s: %s; nothing else was changed on it; re-run the task"
                           % (describe_gpu(gpu), error), **error.cause.failure_keys())
            entry["changed"] = True
        if decision.set_mode:
            try:
                outcome = nvml.set_mig_mode(gpu["index"], decision.desired == ENABLED)
            except NvmlCallError as error:
                self._fail("setting MIG mode %s on %s failed: %s" % (decision.desired, describe_gpu(gpu), error),
                           **error.failure_keys())
            entry["changed"] = True
            entry["actions"].append({"action": "set_mig_mode", "mode": decision.desired,
                                     "activation_status": outcome["activation_status"],
                                     "activation_status_text": outcome["activation_status_text"]})
            entry["after"] = {"current": outcome["current"], "pending": outcome["pending"]}
            if outcome["activation_status"] == nvml.NVML_ERROR_RESET_REQUIRED:
                entry["reboot_required"] = True

    def reset_pending(self, decision: ModeDecision) -> None:
        """Run the GPU reset for a decision that asks for it and still needs it; outside any NVML session."""
        gpu = decision.gpu
        entry = self.entries[gpu["index"]]
        if entry["after"]["current"] == entry["after"]["pending"] or entry["reboot_required"]:
            return
        outcome = self.resetter(gpu)
        action = {"action": "reset", "cmd": outcome["cmd"], "rc": outcome["rc"]}
        if outcome["rc"] == 0:
            entry["changed"] = True
            entry["actions"].append(action)
            return
        action["failed"] = True
        entry["actions"].append(action)
        if reset_not_supported(outcome):
            entry["reboot_required"] = True
            return
        self._fail("GPU reset of %s was refused, so MIG mode %s stays pending on it: nvidia-smi exited %d: %s; "
                   "stop the GPU's clients (drain the node; nvidia-persistenced, DCGM and the device plugin also "
                   "hold GPUs) and re-run, or reboot the node"
                   % (describe_gpu(gpu), decision.desired, outcome["rc"],
                      _first_paragraph(outcome["stdout"]) or _first_paragraph(outcome["stderr"]) or "no output"),
                   cmd=outcome["cmd"], rc=outcome["rc"], stdout=outcome["stdout"], stderr=outcome["stderr"])

    # ----------------------------------------------------------------- report
    def finish(self, decisions: Iterable[ModeDecision], facts_after: Optional[Dict[str, Any]]) -> None:
        by_index = dict((gpu["index"], gpu) for gpu in facts_after["gpus"]) if facts_after else {}
        for decision in decisions:
            index = decision.gpu["index"]
            entry = self.entries[index]
            if self.check_mode:
                entry["after"] = decision.predicted_mode()
                entry["changed"] = decision.changes
                after_instances = () if decision.destroy else decision.gpu["gpu_instances"]
            else:
                gpu = by_index.get(index, decision.gpu)
                entry["after"] = dict(gpu["mig_mode"])
                after_instances = gpu["gpu_instances"]
            entry["reset_required"] = entry["after"]["current"] != entry["after"]["pending"]
            self.diff["after"]["GPU %d" % index] = _diff_view(entry["after"], after_instances)
            self._warn_pending(decision.gpu, entry)

    def _warn_pending(self, gpu: Dict[str, Any], entry: Dict[str, Any]) -> None:
        if entry["reboot_required"]:
            self.warnings.append("MIG mode %s is pending on %s and only a reboot can activate it (no GPU reset on "
                                 "this host); reboot the node" % (entry["after"]["pending"], describe_gpu(gpu)))
        elif entry["reset_required"]:
            self.warnings.append("MIG mode %s is pending on %s: stop its clients and reset it (%s=true), or "
                                 "reboot the node" % (entry["after"]["pending"], describe_gpu(gpu), option_name(self.names, "reset")))

    def result_gpus(self) -> List[Dict[str, Any]]:
        return [self.entries[index] for index in sorted(self.entries)]

    def result(self) -> Dict[str, Any]:
        gpus = self.result_gpus()
        return {
            "changed": any(entry["changed"] for entry in gpus),
            "gpus": gpus,
            "skipped_gpus": self.skipped,
            "reset_required": any(entry["reset_required"] for entry in gpus),
            "reboot_required": any(entry["reboot_required"] for entry in gpus),
            "warnings": self.warnings,
            "diff": self.diff,
        }


def run_mig_mode(state: str, gpus: Any = None, force: bool = False, reset: bool = False, check_mode: bool = False,
                 resetter: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None, names: OptionNames = None) -> Dict[str, Any]:
    """Bring the selected GPUs' MIG mode to ``state`` (``enabled`` / ``disabled``).

    ``resetter(gpu) -> {cmd, rc, stdout, stderr}`` runs the GPU reset (``NvidiaSmiReset``); it is needed
    only with ``reset=True``. Returns the module result (``changed``, ``gpus``, ``skipped_gpus``,
    ``reset_required``, ``reboot_required``, ``warnings``, ``diff``). Raises TaskError (with the
    partial result in ``details``) or MigError.
    """
    if reset and resetter is None and not check_mode:
        raise MigError("reset=true needs a GPU reset runner (nvidia-smi)")
    run = _ModeRun(state, gpus, force, reset, check_mode, resetter, names)
    with nvml.NvmlSession():
        decisions = run.decide(nvml.read_node_facts())
        acting = [decision for decision in decisions if decision.changes]
        if check_mode or not acting:
            run.finish(decisions, None if check_mode else {"gpus": [d.gpu for d in decisions]})
            return run.result()
        for decision in acting:
            run.write(decision)
    for decision in acting:
        if decision.reset:
            run.reset_pending(decision)
    with nvml.NvmlSession():
        facts_after = nvml.read_node_facts()
    run.finish(decisions, facts_after)
    return run.result()
