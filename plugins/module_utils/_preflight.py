# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The preflight verdict of one node: its inputs, what ``gpu_info`` read on it, its entry in the one read of the
cluster and its plan, judged together into the ``preflight_node`` record the node phase and the report use.

Pure; the action of ``gpufleet.mig.mig_preflight`` calls it on the control host right after reading the node, so a
fleet plan costs one task per node however many checks it makes.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, StrategyError
from ansible_collections.gpufleet.mig.plugins.module_utils._node_plan import IN_USE_FAIL, STRATEGY_MIXED, plan_node_from_facts

# What preflight does when it finds another MIG manager on the node.
FINDING_FAIL = "fail"
FINDING_IGNORE = "ignore"

# The node label the GPU Operator's k8s-mig-manager watches (docs/mig-manager.md).
OPERATOR_CONFIG_LABEL = "nvidia.com/mig.config"

PLAN_OPTION_NAMES = {"strategy": "mig_strategy", "gpus": "mig_gpus", "in_use": "mig_in_use", "config": "mig_config",
                     "layout": "mig_layout"}

NO_EVICTIONS: Dict[str, List[Any]] = {"evict": [], "refuse": [], "terminating": []}


def plan_from_gpu_info(gpu_info: Optional[Mapping[str, Any]], mig_config: Optional[str] = None, mig_layout: Any = None,
                       config_data: Any = None, strategy: str = STRATEGY_MIXED, gpus: Any = None,
                       in_use: str = IN_USE_FAIL, option_names: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """The plan mig_plan_info would return for the node gpu_info read, or ``{"problem": why}``; never raises."""
    if mig_layout is not None:
        source: Dict[str, Any] = {"mig_layout": mig_layout}
    else:
        source = {"mig_config": mig_config or None}
        if config_data:
            source["mig_config_file"] = config_data
    facts = dict(gpu_info or {})
    try:
        plan = plan_node_from_facts(facts, source, strategy, gpus=gpus, in_use=in_use, names=option_names)
    except StrategyError as error:
        return {"problem": "The MIG layout cannot be rolled out on this node: %s" % error}
    except MigError as error:
        return {"problem": str(error)}
    plan["warnings_found"] = plan.pop("warnings")
    plan["driver_version"] = facts.get("driver_version")
    plan["problem"] = None
    return plan


def input_problems(mig_config: str, mig_config_file: str, mig_layout: Any, policies: bool,
                   role_variable_errors: Sequence[str] = ()) -> List[str]:
    """What is wrong with the node's own inputs: role variables the inventory set, and where its layout comes from."""
    problems = []
    if role_variable_errors:
        problems.append("invalid variables: " + "; ".join(role_variable_errors))
    has_layout = mig_layout is not None
    # With fleet policies, a group-wide mig_config_file only names where the policies' configs live: the host's own
    # value is then mig_config or mig_layout.
    has_config = bool(mig_config) or (not policies and bool(mig_config_file))
    # Without a value of its own, a host gets its layout from the fleet policies, when there are any.
    if has_config == has_layout and (has_layout or not policies):
        if has_layout:
            problems.append("both a config (mig_config / mig_config_file) and an inline mig_layout are set; set only one")
        else:
            problems.append("no desired MIG layout: set mig_config (a config name, built in or from mig_config_file) or "
                            "mig_layout for this host, or fleet mig_policies")
    config_path = config_file_path(mig_config_file)
    if config_path and not os.path.isfile(config_path):
        problems.append("mig_config_file %s is not a file on the control host" % config_path)
    return problems


def config_file_path(mig_config_file: Optional[str]) -> str:
    """The mig-parted file's absolute path: relative to where ansible-playbook runs, like a path on its command line."""
    return os.path.realpath(mig_config_file) if mig_config_file else ""


def host_layout_source(mig_config: str, mig_layout: Any) -> Dict[str, Any]:
    """Where the layout of a host comes from when no fleet policy decided: its own variables."""
    return {"source": "host", "mig_config": mig_config or "", "mig_layout": mig_layout, "policy_index": None,
            "match": None, "problem": None,
            "description": "layout from the host variable " + ("mig_layout" if mig_layout is not None else "mig_config")}


def _node_problem(k8s_node_name: str, cluster: Mapping[str, Any]) -> str:
    return ("Kubernetes node %s cannot be read: %s (set k8s_node_name when it differs from the host name, "
            "k8s_kubeconfig / k8s_context for the API, or mig_kubernetes: false for hosts outside Kubernetes)"
            % (k8s_node_name, cluster.get("msg") or "the cluster has no node of that name"))


def _operator_text(config: str) -> str:
    return ("the GPU Operator's mig-manager drives this node (label %s=%s): it applies that config whenever the label "
            "changes and would fight this rollout; disable it in the operator (helm value migManager.enabled=false) "
            "and remove the label, or set preflight_gpu_operator_mig_manager to ignore" % (OPERATOR_CONFIG_LABEL, config))


def _host_mig_manager_text(paths: Sequence[str]) -> str:
    return ("nvidia-mig-manager.service is installed (%s): it re-applies its own MIG config (MIG_PARTED_SELECTED_CONFIG, "
            "all-disabled by default) at every boot and would undo this rollout; disable it (systemctl disable "
            "nvidia-mig-manager.service) or set preflight_host_mig_manager to ignore" % ", ".join(paths))


def judge_node(gpu_info: Optional[Mapping[str, Any]], *, host: str, kubernetes: bool, k8s_node_name: str,
               strategy: str, cluster: Optional[Mapping[str, Any]] = None,
               layout_source: Optional[Mapping[str, Any]] = None, policies: bool = False,
               policy_problems: Sequence[str] = (), role_variable_errors: Sequence[str] = (),
               mig_config: Optional[str] = "", mig_config_file: Optional[str] = "", mig_layout: Any = None,
               gpus: Any = None, in_use: str = IN_USE_FAIL, gpu_operator_mig_manager: str = FINDING_FAIL,
               host_mig_manager: str = FINDING_FAIL, labels: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """The node's ``preflight_node`` record: every problem found (not just the first), the plan when nothing is wrong
    before planning, whether the node is converged, and what a drain would evict.

    ``cluster`` is the ``k8s_node_info`` result of the fleet read (its ``nodes`` by Kubernetes name, or ``msg``);
    ``labels`` names the node labels the rollout writes (keys state, config, strategy, gpu_clients, cordoned_by).
    """
    gpu_info = gpu_info or {}
    cluster = cluster or {}
    labels = labels or {}
    mig_config = mig_config or ""
    source = dict(layout_source) if layout_source else host_layout_source(mig_config, mig_layout)

    node_found = (cluster.get("nodes") or {}).get(k8s_node_name) if kubernetes else None
    found_labels = (node_found or {}).get("labels") or {}
    failed_checks = [check for check in gpu_info.get("checks") or [] if not check.get("ok")]
    operator_text = _operator_text(found_labels[OPERATOR_CONFIG_LABEL]) if OPERATOR_CONFIG_LABEL in found_labels else ""

    early = input_problems(mig_config, mig_config_file or "", mig_layout, policies, role_variable_errors)
    if "gpus" not in gpu_info:
        early.append(gpu_info.get("msg") or "gpu_info returned no GPUs")
    early.extend(check.get("detail") for check in failed_checks if check.get("name") != "mig_capable")
    if kubernetes and node_found is None:
        early.append(_node_problem(k8s_node_name, cluster))
    if operator_text and gpu_operator_mig_manager == FINDING_FAIL:
        early.append(operator_text)
    early.extend(policy_problems)

    plan_result: Dict[str, Any] = {}
    if not early and source.get("source") in ("host", "policy"):
        config_path = config_file_path(mig_config_file)
        config_data = None
        if config_path and source.get("mig_layout") is None:
            config_data = _read_text(config_path)
        plan_result = plan_from_gpu_info(gpu_info, mig_config=source.get("mig_config") or None,
                                         mig_layout=source.get("mig_layout"), config_data=config_data,
                                         strategy=strategy, gpus=gpus, in_use=in_use, option_names=PLAN_OPTION_NAMES)
    plan = plan_result if "converged" in plan_result else {}

    problems = list(early)
    if plan_result.get("problem"):
        problems.append(plan_result["problem"])
    if "gpus" in plan_result and not [gpu for gpu in plan_result["gpus"] if gpu.get("managed")]:
        problems.append("the layout covers no MIG-capable GPU of this node: " + "; ".join(
            check.get("detail") for check in failed_checks if check.get("name") == "mig_capable"))
    mig_manager_paths = list(gpu_info.get("host_paths_present") or [])
    if mig_manager_paths and host_mig_manager == FINDING_FAIL:
        problems.append(_host_mig_manager_text(mig_manager_paths))

    warnings = []
    if operator_text and gpu_operator_mig_manager == FINDING_IGNORE:
        warnings.append(operator_text)
    warnings.extend(plan_result.get("warnings_found") or [])
    if mig_manager_paths and host_mig_manager == FINDING_IGNORE:
        warnings.append(_host_mig_manager_text(mig_manager_paths))

    skipped = source.get("source") == "skip" and not problems
    labels_match = (found_labels.get(labels.get("state")) == "success"
                    and found_labels.get(labels.get("config")) == (plan.get("config_id") or "")
                    and found_labels.get(labels.get("strategy")) == strategy
                    and labels.get("gpu_clients") not in found_labels
                    and labels.get("cordoned_by") not in found_labels)
    plan_converged = bool(plan.get("converged"))
    return {
        "host": host,
        "k8s_node_name": k8s_node_name if kubernetes else None,
        "kubernetes": kubernetes,
        "strategy": strategy,
        "config_id": plan.get("config_id"),
        # MIG mode and devices already match: the node needs no drain and no GPU change.
        "mig_converged": skipped or plan_converged,
        # Nothing to do at all: MIG matches and, in a cluster, the node's labels record this config and strategy as
        # applied successfully. A node no policy matches under mig_policy_default: skip is left alone like one.
        "converged": skipped or (plan_converged and (not kubernetes or labels_match)),
        "skipped": skipped,
        "layout_source": source,
        "plan": plan,
        "driver_version": gpu_info.get("driver_version"),
        # The GPUs as read, without their MIG profile catalogs: the plan has used them, and the record is kept for
        # the report of every node.
        "gpus_before": [{key: value for key, value in gpu.items() if key != "profile_catalog"}
                        for gpu in gpu_info.get("gpus") or []],
        "labels_before": dict(found_labels),
        # An interrupted run left the device plugin and GFD paused on the node: the node phase lets them back.
        "clients_paused": found_labels.get(labels.get("gpu_clients")) == "paused",
        # What draining the node would do now: the pods it would evict, and those it would refuse (and why).
        "evictions": (node_found or {}).get("drain") or dict(NO_EVICTIONS),
        # Host services an interrupted run stopped and did not start again; the node phase starts them.
        "stopped_services": list(gpu_info.get("stopped_services") or []),
        "problems": problems,
        # Not "warnings": in a task result Ansible takes that key for its own warnings (mig_preflight shows these so).
        "warnings_found": warnings,
    }


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def role_variable_errors(role_specs: Mapping[str, Mapping[str, Any]], role_variables: Mapping[str, Any]) -> List[str]:
    """What is wrong with the node-phase role variables the inventory set, as each role's argument spec would say.

    ``role_specs`` are the roles' options by name; ``role_variables`` the node's values of those it defines. Only
    options set to other than their default are checked, and required ones are left out: the playbook gives those
    later, so a required input is not missing here.
    """
    checked = {name: role_specs[name] for name, value in role_variables.items()
               if name in role_specs and not role_specs[name].get("required")
               and value != role_specs[name].get("default")}
    if not checked:
        return []
    result = ArgumentSpecValidator(checked).validate({name: role_variables[name] for name in checked})
    return list(result.error_messages)
