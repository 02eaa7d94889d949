# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollout plan of one GPU node: one pure function from what the GPUs report and what the inventory asks.

``plan_node(facts, desired_by_index, catalogs, strategy)`` decides, per GPU, whether MIG mode must change
and which MIG devices must be created or destroyed (``planner.plan_gpu_layout``), then checks the node as it
will be afterwards against the device plugin's MIG strategy. The preflight of a rollout, the node phase that
applies it and ``--check --diff`` all call it, so the plan shown can never disagree with the plan applied.

The strategy check is strategy.layout_problem (the refusals of the device plugin: under ``single`` a MIG GPU
without devices, more than one profile, MIG on next to MIG off; under ``mixed`` a partial device such as
``1c.3g.20gb``), applied to the node as the plan leaves it. Under ``mixed`` a MIG-enabled GPU without devices is
only a warning (it offers nothing); ``none`` advertises one ``nvidia.com/gpu`` per physical GPU whatever MIG does.

Choices where the issue leaves room (documented here and in the role READMEs):

* Under ``none`` the rollout sets MIG mode as the layout says but neither creates nor destroys MIG devices:
  "none ignores MIG layouts but keeps MIG mode as configured". The devices the layout names are reported as
  ignored; a GPU whose mode must go to disabled still loses its instances (NVML cannot disable MIG otherwise).
* GPUs the layout does not cover (a mig-parted entry that skips them, a GPU that cannot do MIG) keep their
  current state, and the strategy check counts them as they are.
* Drivers before R550 list no MIG profiles while MIG is off (mig-hardware.md 8), so a GPU whose MIG is still
  off there cannot be fit-checked yet: its profile names are validated, the fit is checked by mig_layout
  once MIG is on, and the plan carries a warning (``devices_verified: false``).
* ``config_id`` records the applied config in a node label: the config name when it is a valid label value,
  else ``config-<hash>`` / ``layout-<hash>`` of the resolved layout (hex digits of a SHA-256).
"""

from __future__ import annotations

import hashlib
import json
import re

from ansible_collections.gpufleet.mig.plugins.module_utils import gpu as nvml
from ansible_collections.gpufleet.mig.plugins.module_utils.apply import describe_gpu, describe_processes, gpu_identity
from ansible_collections.gpufleet.mig.plugins.module_utils.errors import LayoutError, MigError, ProfileError, StrategyError
from ansible_collections.gpufleet.mig.plugins.module_utils.layout import resolve_layout
from ansible_collections.gpufleet.mig.plugins.module_utils.planner import (
    busy_gpu_instance_ids, devices_from_instances, plan_gpu_layout,
)
from ansible_collections.gpufleet.mig.plugins.module_utils.strategy import (
    STRATEGIES,
    STRATEGY_MIXED,
    STRATEGY_NONE,
    layout_problem,
)

ENABLED = "enabled"
DISABLED = "disabled"

# Kubernetes label values: at most 63 characters, alphanumerics with - _ . inside.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_HASH_LENGTH = 12


def _mode_word(enabled):
    return ENABLED if enabled else DISABLED


def _counts(devices):
    """``("1g.5gb", "1g.5gb")`` -> ``{"1g.5gb": 2}``, keeping the canonical largest-first order."""
    counts = {}
    for name in devices:
        counts[name] = counts.get(name, 0) + 1
    return counts


def _describe_devices(devices):
    if devices is None:
        return "unmanaged"
    if not devices:
        return "none"
    counts = _counts(devices)
    return ", ".join(("%d x %s" % (count, name)) if count > 1 else name for name, count in counts.items())


def config_id(source, desired_by_index):
    """Label-safe id of the desired config: its name, or a hash of the layout resolved for this node."""
    name = source.get("mig_config") if isinstance(source, dict) else None
    layout = dict((str(index), desired.to_dict() if desired is not None else None)
                  for index, desired in sorted(desired_by_index.items()))
    digest = hashlib.sha256(json.dumps(layout, sort_keys=True).encode("utf-8")).hexdigest()[:_HASH_LENGTH]
    if name:
        return name if _LABEL_VALUE.match(name) else "config-" + digest
    return "layout-" + digest


class _GpuDecision(object):
    """One GPU: its facts, what the layout wants, and the plan."""

    def __init__(self, gpu, desired, strategy):
        self.gpu = gpu
        self.desired = desired
        self.strategy = strategy
        self.current_devices = devices_from_instances(gpu.get("gpu_instances") or ()) if gpu.get("mig_capable") else ()
        self.plan = None
        self.devices_verified = True
        self.reason = None

    @property
    def managed(self):
        return self.desired is not None

    @property
    def manages_devices(self):
        return self.managed and self.strategy != STRATEGY_NONE and self.desired.mig_enabled

    @property
    def mode(self):
        return self.gpu.get("mig_mode") or {"current": DISABLED, "pending": DISABLED}

    @property
    def desired_mode(self):
        return _mode_word(self.desired.mig_enabled) if self.managed else None

    @property
    def mode_change(self):
        if not self.managed:
            return False
        wanted = self.desired_mode
        return self.mode["current"] != wanted or self.mode["pending"] != wanted

    @property
    def desired_devices(self):
        if not self.managed:
            return None
        if not self.desired.mig_enabled:
            return ()
        if self.strategy == STRATEGY_NONE:
            return None
        return tuple(self.desired.devices)

    @property
    def layout_change(self):
        if self.plan is not None:
            return not self.plan.converged
        # Without a plan the devices are unmanaged, MIG goes off (instances go with it), or the fit could not
        # be checked yet because MIG is still off.
        return self.manages_devices and tuple(self.current_devices) != tuple(self.desired.devices)

    @property
    def converged(self):
        return not self.mode_change and not self.layout_change

    def devices_after(self):
        """MIG devices the GPU has after the rollout (what the strategy check and the report use)."""
        if not self.managed:
            return tuple(self.current_devices)
        if not self.desired.mig_enabled:
            return ()
        if self.strategy == STRATEGY_NONE:
            # Mode-only rollout: enabling MIG from off leaves no instances; otherwise the devices stay.
            return tuple(self.current_devices) if self.mode["current"] == ENABLED else ()
        return tuple(self.desired.devices)

    def mig_after(self):
        if not self.gpu.get("mig_capable"):
            return False
        if not self.managed:
            return self.mode["current"] == ENABLED
        return self.desired.mig_enabled

    def to_dict(self):
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

    def summary(self):
        gpu = self.gpu
        head = "GPU %d %s" % (gpu["index"], gpu.get("name") or "")
        if not self.managed:
            return "%s: left as it is (%s)" % (head, self.reason)
        mode = self.mode
        mode_now = mode["current"] + (" (pending %s)" % mode["pending"] if mode["pending"] != mode["current"] else "")
        parts = ["MIG %s" % (mode_now if not self.mode_change else "%s -> %s" % (mode_now, self.desired_mode))]
        before = _describe_devices(self.current_devices)
        if self.desired_devices is None:
            parts.append("devices %s (unmanaged under mig_strategy none)" % before)
        else:
            after = _describe_devices(self.desired_devices)
            parts.append("devices %s" % before if not self.layout_change and before == after
                         else "devices %s -> %s" % (before, after))
        if not self.devices_verified:
            parts.append("fit checked once MIG is on")
        return "%s: %s%s" % (head, "; ".join(parts), "" if not self.converged else " (converged)")


def _decide(gpu, desired, strategy, catalogs, problems, warnings):
    decision = _GpuDecision(gpu, desired, strategy)
    if not gpu.get("mig_capable"):
        decision.desired = None
        decision.reason = "not MIG-capable"
        return decision
    if desired is None:
        decision.reason = "not in the layout"
        return decision
    if strategy == STRATEGY_NONE and desired.mig_enabled and desired.devices:
        warnings.append("%s: mig_strategy none ignores MIG layouts, so its MIG devices (%s) are neither created "
                        "nor destroyed; only MIG mode is set" % (describe_gpu(gpu), _describe_devices(desired.devices)))
    if not decision.manages_devices:
        return decision
    catalog = catalogs.get(gpu["index"])
    mig_on = decision.mode["current"] == ENABLED
    current_instances = (gpu.get("gpu_instances") or ()) if mig_on else ()
    if catalog is None or not catalog.profiles:
        decision.devices_verified = False
        warnings.append("%s reports no MIG profiles while MIG is %s (drivers before R550 list them only with MIG "
                        "on): the fit of %s is checked when the layout is applied"
                        % (describe_gpu(gpu), decision.mode["current"], _describe_devices(desired.devices)))
        return decision
    try:
        decision.plan = plan_gpu_layout(catalog, current_instances, desired.devices,
                                        busy_gpu_instances=busy_gpu_instance_ids(gpu))
    except (LayoutError, ProfileError) as error:
        problems.append("%s: %s" % (describe_gpu(gpu), error))
    return decision


def strategy_problems(decisions, strategy):
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


def _layout_for_mig_layout(decisions):
    """Inline per-index layout (``{"0": {"3g.20gb": 1}}``) of the GPUs whose devices the rollout manages."""
    layout = {}
    for decision in decisions:
        if decision.manages_devices:
            layout[str(decision.gpu["index"])] = _counts(decision.desired.devices)
    return layout


def plan_node(facts, desired_by_index, catalogs, strategy, source=None):
    """Plan one node. Pure: reads nothing but its arguments.

    ``facts`` is ``gpu.read_node_facts()`` (``gpus`` records), ``desired_by_index`` what
    ``layout.resolve_layout`` returned for it, ``catalogs`` ``{gpu index: GpuCatalog}`` for the GPUs whose
    devices are planned (missing or empty catalogs mean "cannot check the fit yet"), ``strategy`` one of
    STRATEGIES and ``source`` the layout source (for ``config_id``).

    Returns the plan as a JSON-able dict. Raises StrategyError (every problem of the node in one message)
    when the layout does not fit a GPU or does not suit the strategy.
    """
    if strategy not in STRATEGIES:
        raise MigError("mig_strategy must be one of %s, got %r" % (", ".join(STRATEGIES), strategy))
    problems, warnings = [], []
    decisions = [_decide(gpu, desired_by_index.get(gpu["index"]), strategy, catalogs, problems, warnings)
                 for gpu in sorted(facts.get("gpus") or (), key=lambda item: item["index"])]
    if not any(decision.managed for decision in decisions):
        warnings.append("the layout covers no MIG-capable GPU of this node; nothing will change")
    found, noted = strategy_problems(decisions, strategy)
    problems.extend(found)
    warnings.extend(noted)
    if problems:
        raise StrategyError("; ".join(problems))
    busy = [decision for decision in decisions if decision.plan is not None and decision.plan.destroy
            and decision.gpu.get("processes")]
    for decision in busy:
        warnings.append("%s has processes (%s) and GPU instances to destroy: draining the node must end them"
                        % (describe_gpu(decision.gpu), describe_processes(decision.gpu["processes"])))
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


def read_and_plan_node(source, strategy):
    """Read the node through NVML (one session) and plan it: ``(facts, plan)``.

    Catalogs are read only for the GPUs whose devices the rollout manages. Raises NvmlCallError when NVML
    fails (including a node without a driver), ConfigError for a bad layout source, StrategyError as
    ``plan_node``.
    """
    with nvml.NvmlSession():
        facts = nvml.read_node_facts()
        desired_by_index = resolve_layout(source, facts["gpus"])
        catalogs = {}
        if strategy != STRATEGY_NONE:
            for gpu in facts["gpus"]:
                desired = desired_by_index.get(gpu["index"])
                if gpu.get("mig_capable") and desired is not None and desired.mig_enabled:
                    catalogs[gpu["index"]] = nvml.read_catalog(gpu["index"])
    return facts, plan_node(facts, desired_by_index, catalogs, strategy, source=source)
