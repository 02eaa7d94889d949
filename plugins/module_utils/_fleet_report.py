# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report of a MIG rollout: one record per node, built from what the roles recorded on it.

Pure functions; the ``gpufleet.mig.fleet_report`` filters call them from the ``report`` role.

Inputs per node (host facts the roles set):

* ``preflight_node``: the preflight record (plan, GPUs before, labels before, converged);
* ``drain_result``: whether the node was cordoned/drained and which pods were evicted;
* ``reconfigure_result``: the GPUs after the change (``gpu_info`` records), mode changes, reboot;
* ``validate_result``: the resources and labels the node showed when it was validated;
* ``rollout_state_result``: ``state`` (``pending`` while the node phase runs, then ``success`` or ``failed``), start,
  end, duration and, for a failure, the task and message.

Result of a node: ``success`` and ``failed`` as the rollout_state role recorded them; ``unchanged`` when preflight found nothing
to do; ``refused`` when preflight found a problem on it; ``interrupted`` when the node phase started but recorded no
outcome; ``not reached`` when its batch has not run (a report written part-way, a rollout stopped by
max_fail_percentage, or one refused in preflight).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Mapping, Optional

from ansible_collections.gpufleet.mig.plugins.module_utils._node_report import describe_devices, mig_device_instances

RESULT_SUCCESS = "success"
RESULT_FAILED = "failed"
RESULT_UNCHANGED = "unchanged"
RESULT_INTERRUPTED = "interrupted"
RESULT_NOT_REACHED = "not reached"
RESULT_REFUSED = "refused"
RESULTS = (RESULT_SUCCESS, RESULT_UNCHANGED, RESULT_FAILED, RESULT_REFUSED, RESULT_INTERRUPTED, RESULT_NOT_REACHED)

NODE_FACTS = ("preflight_node", "drain_result", "reconfigure_result", "validate_result", "rollout_state_result")


def _mapping(value: Any) -> Dict[str, Any]:
    return dict(value) if isinstance(value, dict) or hasattr(value, "items") else {}


def gpu_view(gpu: Dict[str, Any]) -> Dict[str, Any]:
    """A ``gpu_info`` GPU record -> ``{index, name, mig, devices}`` (devices in nvidia-smi -L order)."""
    mode = gpu.get("mig_mode") or None
    if not gpu.get("mig_capable") or not mode:
        mig = "not supported"
    elif mode.get("pending") and mode.get("pending") != mode.get("current"):
        mig = "%s (pending %s)" % (mode.get("current"), mode.get("pending"))
    else:
        mig = mode.get("current")
    devices = [ci.get("profile_name") or gi.get("profile_name") for gi, ci in mig_device_instances(gpu)]
    return {"index": gpu.get("index"), "name": gpu.get("name"), "mig": mig, "devices": devices}


def validation_pod_text(pod: Any) -> str:
    """A ``mig_node_validate`` pod record -> ``nvidia.com/mig-1g.5gb: MIG 1g.5gb MIG-... (Succeeded)``."""
    pod = _mapping(pod)
    assigned = _mapping(pod.get("assigned"))
    got = assigned.get("uuid") or "no device"
    if assigned.get("profile"):
        got = "MIG %s %s" % (assigned["profile"], got)
    text = "%s: %s" % (pod.get("resource") or pod.get("name") or "?", got)
    if pod.get("problem"):
        text += " (problem: %s)" % pod["problem"]
    return text


def _result(preflight: Dict[str, Any], outcome: Dict[str, Any]) -> str:
    state = outcome.get("state")
    if state == RESULT_SUCCESS:
        return RESULT_SUCCESS
    if state == RESULT_FAILED:
        return RESULT_FAILED
    if state:
        return RESULT_INTERRUPTED
    if preflight.get("problems"):
        return RESULT_REFUSED
    if preflight.get("converged"):
        return RESULT_UNCHANGED
    return RESULT_NOT_REACHED


CORDON_KEPT_TEXT = "stays cordoned: it was cordoned before the rollout, which does not lift a cordon it did not set"


def _cordon_outcome(drain: Dict[str, Any], outcome: Dict[str, Any]) -> Optional[str]:
    """``kept`` when someone else's cordon was left in place; otherwise what the end of the node phase or the drain did."""
    outcomes = (outcome.get("cordon"), drain.get("cordon"))
    if "kept" in outcomes:
        return "kept"
    return next((outcome for outcome in outcomes if outcome), None)


def node_record(host: str, facts: Any) -> Dict[str, Any]:
    """One node's report entry from its host facts (a mapping holding some of NODE_FACTS)."""
    facts = _mapping(facts)
    preflight = _mapping(facts.get("preflight_node"))
    drain = _mapping(facts.get("drain_result"))
    reconfigure = _mapping(facts.get("reconfigure_result"))
    validate = _mapping(facts.get("validate_result"))
    outcome = _mapping(facts.get("rollout_state_result"))
    plan = _mapping(preflight.get("plan"))
    result = _result(preflight, outcome)
    before = [gpu_view(gpu) for gpu in preflight.get("gpus_before") or ()]
    if reconfigure.get("gpus_after") is not None:
        after = [gpu_view(gpu) for gpu in reconfigure["gpus_after"]]
    elif outcome.get("gpus_after") is not None:
        after = [gpu_view(gpu) for gpu in outcome["gpus_after"]]  # read again after a failure
    elif result in (RESULT_UNCHANGED, RESULT_SUCCESS):
        after = before  # nothing on the GPUs changed (the node was converged, or only its labels were updated)
    else:
        after = None
    return {
        "host": host,
        "k8s_node_name": preflight.get("k8s_node_name"),
        "result": result,
        "strategy": preflight.get("strategy"),
        "config": preflight.get("config_id"),
        "driver_version": preflight.get("driver_version"),
        "plan": list(plan.get("summary") or ()),
        "warnings": list(preflight.get("warnings_found") or ()),
        "before": before,
        "after": after,
        "drained": bool(drain.get("drained")),
        "cordon": _cordon_outcome(drain, outcome),
        "evicted_pods": list(drain.get("evicted_pods") or ()),
        "rebooted": bool(reconfigure.get("rebooted")),
        "resources": _mapping(validate.get("resources")) or None,
        "labels": _mapping(validate.get("labels")) or None,
        "validation_pods": [validation_pod_text(pod) for pod in validate.get("pods") or ()],
        "validation_waited_s": validate.get("waited_s"),
        "started": outcome.get("started"),
        "finished": outcome.get("finished"),
        "duration_s": outcome.get("duration_s"),
        "failed_task": outcome.get("failed_task"),
        "message": outcome.get("message") or ("; ".join(preflight.get("problems") or ()) or None),
    }


def fleet_report(hosts: Iterable[str], hostvars: Mapping[str, Any], generated: Optional[str] = None, check_mode: bool = False,
                 rollout_id: Optional[str] = None, refused: Optional[str] = None) -> Dict[str, Any]:
    """The whole report: ``{generated, rollout_id, check_mode, refused, nodes, totals}`` for ``hosts`` from ``hostvars``.

    ``refused``: why preflight refused the run; nothing was changed then.
    """
    nodes = []
    for host in hosts:
        facts = hostvars[host] if host in hostvars else {}
        nodes.append(node_record(host, dict((name, facts.get(name)) for name in NODE_FACTS if name in facts)))
    totals = dict((result, sum(1 for node in nodes if node["result"] == result)) for result in RESULTS)
    totals["nodes"] = len(nodes)
    strategies = sorted(set(node["strategy"] for node in nodes if node["strategy"]))
    return {"generated": generated, "rollout_id": rollout_id, "check_mode": bool(check_mode), "refused": refused or None,
            "strategy": ", ".join(strategies) or None, "totals": totals, "nodes": nodes}


def _gpu_lines(gpus: Optional[List[Dict[str, Any]]]) -> List[str]:
    if gpus is None:
        return ["unknown"]
    if not gpus:
        return ["no GPUs"]
    return ["GPU %s %s: MIG %s; %s" % (gpu["index"], gpu.get("name") or "", gpu["mig"], describe_devices(gpu["devices"], empty="no MIG devices"))
            for gpu in gpus]


def _cell(lines: Iterable[str]) -> str:
    return "<br>".join(line.replace("|", "\\|") for line in lines)


def _resources_text(resources: Optional[Dict[str, Any]]) -> str:
    if resources is None:
        return "not validated"
    present = [name for name in sorted(resources) if str(resources[name]) not in ("0", "")]
    return ", ".join("%s: %s" % (name, resources[name]) for name in present) or "none"


# The GFD labels the Markdown shows; the JSON report has them all.
_SHOWN_LABEL_SUFFIXES = (".count", "/mig.strategy", "/gpu.product")


def _labels_text(labels: Dict[str, str]) -> str:
    shown = [key for key in sorted(labels) if key.endswith(_SHOWN_LABEL_SUFFIXES)]
    text = ", ".join("%s=%s" % (key, labels[key]) for key in shown) or "none of note"
    hidden = len(labels) - len(shown)
    return text + ("; %d more in the JSON report" % hidden if hidden else "")


def render_markdown(report: Dict[str, Any]) -> str:
    """The report as Markdown: a summary table, then one section per node."""
    totals = report["totals"]
    lines = ["# MIG fleet report", ""]
    lines.append("Generated %s%s. Strategy: %s. %d node(s): %s." % (
        report.get("generated") or "now", " (check mode: nothing was changed)" if report.get("check_mode") else "",
        report.get("strategy") or "unknown", totals["nodes"],
        ", ".join("%d %s" % (totals[result], result) for result in RESULTS if totals.get(result))))
    if report.get("rollout_id"):
        lines += ["", "Rollout %s." % report["rollout_id"]]
    if report.get("refused"):
        lines += ["", "**Refused in preflight; nothing was changed on any node.** %s" % report["refused"]]
    lines += ["", "| Node | Result | Before | After | Evicted pods | Duration |", "|---|---|---|---|---|---|"]
    for node in report["nodes"]:
        duration = "" if node.get("duration_s") in (None, "") else "%s s" % node["duration_s"]
        lines.append("| %s | %s | %s | %s | %d | %s |" % (
            node["host"], node["result"], _cell(_gpu_lines(node["before"])), _cell(_gpu_lines(node["after"])),
            len(node["evicted_pods"]), duration))
    for node in report["nodes"]:
        lines += ["", "## %s" % node["host"], ""]
        lines.append("- Result: **%s**; config %s, strategy %s, driver %s" % (
            node["result"], node.get("config") or "-", node.get("strategy") or "-", node.get("driver_version") or "-"))
        if node.get("k8s_node_name"):
            lines.append("- Kubernetes node: %s%s" % (node["k8s_node_name"], ", drained" if node["drained"] else ", not drained"))
        for entry in node["plan"]:
            lines.append("- Plan: %s" % entry)
        lines.append("- After: %s" % "; ".join(_gpu_lines(node["after"])))
        if node.get("cordon") == "kept":
            lines.append("- Cordon: %s" % CORDON_KEPT_TEXT)
        if node["rebooted"]:
            lines.append("- Rebooted to activate the MIG mode")
        if node["evicted_pods"]:
            lines.append("- Evicted pods: %s" % ", ".join(str(pod) for pod in node["evicted_pods"]))
        if node.get("resources") is not None or node["result"] == RESULT_SUCCESS:
            lines.append("- Allocatable GPU resources: %s" % _resources_text(node.get("resources")))
        if node.get("labels"):
            lines.append("- GFD labels: %s" % _labels_text(node["labels"]))
        for pod in node["validation_pods"]:
            lines.append("- Validation pod: %s" % pod)
        for warning in node["warnings"]:
            lines.append("- Warning: %s" % warning)
        if node["result"] == RESULT_FAILED:
            lines.append("- Failed in task '%s': %s" % (node.get("failed_task") or "?", node.get("message") or "no message"))
        if node["result"] == RESULT_REFUSED:
            lines.append("- Refused in preflight: %s" % (node.get("message") or "no message"))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- the plan, one line

_GPU_SUMMARY = re.compile(r"^GPU (\d+) (.*)$")


def _index_ranges(indexes: List[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2,5``."""
    ranges, start, previous = [], None, None
    for index in sorted(indexes):
        if start is None:
            start = previous = index
        elif index == previous + 1:
            previous = index
        else:
            ranges.append((start, previous))
            start = previous = index
    if start is not None:
        ranges.append((start, previous))
    return ",".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in ranges)


def grouped_gpu_summaries(summaries: List[str]) -> List[str]:
    """Per-GPU plan summaries (``GPU 3 NVIDIA A100...: MIG ...``) with the GPUs that plan alike on one entry."""
    order, indexes_of = [], {}
    for summary in summaries:
        match = _GPU_SUMMARY.match(summary)
        if not match:
            order.append(summary)
            continue
        rest = match.group(2)
        if rest not in indexes_of:
            indexes_of[rest] = []
            order.append(rest)
        indexes_of[rest].append(int(match.group(1)))
    lines = []
    for entry in order:
        indexes = indexes_of.get(entry)
        if indexes is None:
            lines.append(entry)
        else:
            lines.append("GPU%s %s %s" % ("s" if len(indexes) > 1 else "", _index_ranges(indexes), entry))
    return lines


def _pod_names(refs: List[dict]) -> str:
    return ", ".join("%s/%s" % (ref.get("namespace", ""), ref.get("name", "")) for ref in refs)


def plan_line(preflight: dict) -> str:
    """One line of the fleet plan for a node's preflight record: what it does, current -> desired, the pods a drain
    would evict, where the layout came from, and warnings."""
    preflight = _mapping(preflight)
    problems = list(preflight.get("problems") or [])
    plan = _mapping(preflight.get("plan"))
    if problems:
        head = "refused: %s" % " | ".join(problems)
    elif preflight.get("skipped"):
        head = "skipped: no fleet policy matches and the host sets no layout"
    elif preflight.get("converged"):
        head = "nothing to do: MIG layout, strategy and labels already match"
    elif preflight.get("mig_converged"):
        head = "MIG layout already matches; validate and record the config, no drain"
    else:
        head = "reconfigure: %schange the GPUs" % ("cordon and drain the node, " if preflight.get("kubernetes") else "")
    parts = [head]
    if not problems:
        parts.extend(grouped_gpu_summaries(list(plan.get("summary") or [])))
        evictions = _mapping(preflight.get("evictions"))
        if preflight.get("kubernetes") and not preflight.get("mig_converged"):
            evict = list(evictions.get("evict") or [])
            parts.append("evicts %s" % (_pod_names(evict) if evict else "no pod"))
            for refused in evictions.get("refuse") or []:
                parts.append("a drain would refuse %s/%s: %s" % (refused.get("namespace"), refused.get("name"), refused.get("reason")))
        if preflight.get("stopped_services"):
            parts.append("starts the host services an interrupted run stopped: %s" % ", ".join(preflight["stopped_services"]))
    description = _mapping(preflight.get("layout_source")).get("description")
    if description:
        parts.append(description)
    parts.extend("warning: %s" % warning for warning in preflight.get("warnings_found") or [])
    return " | ".join(parts)
