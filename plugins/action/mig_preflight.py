# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action of gpufleet.mig.mig_preflight (documented in plugins/modules/mig_preflight.py): one task per node reads it
with gpu_info and judges it on the control host, so a fleet plan costs one task per node."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.gpufleet.mig.plugins.module_utils._policy import POLICY_DEFAULTS, resolve_node_policy
from ansible_collections.gpufleet.mig.plugins.module_utils._preflight import (
    FINDING_FAIL, FINDING_IGNORE, judge_node, role_variable_errors)

_FINDINGS = [FINDING_FAIL, FINDING_IGNORE]

ARGUMENT_SPEC = dict(
    read=dict(type="dict", default={}),
    kubernetes=dict(type="bool", default=True),
    k8s_node_name=dict(type="str"),
    cluster_var=dict(type="str"),
    strategy=dict(type="str", default="mixed", choices=["none", "single", "mixed"]),
    mig_config=dict(type="str", default=""),
    mig_config_file=dict(type="str", default=""),
    mig_layout=dict(type="raw"),
    gpus=dict(type="list", elements="str", default=["all"]),
    in_use=dict(type="str", default="fail", choices=["fail", "skip"]),
    policies=dict(type="list", elements="raw", default=[]),
    policy_default=dict(type="str", default="fail", choices=list(POLICY_DEFAULTS)),
    gpu_operator_mig_manager=dict(type="str", default=FINDING_FAIL, choices=_FINDINGS),
    host_mig_manager=dict(type="str", default=FINDING_FAIL, choices=_FINDINGS),
    role_specs_var=dict(type="str"),
    labels=dict(type="dict", default={}),
)


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        host = task_vars.get("inventory_hostname")
        # The role specs are read as the variable holds them, not templated into the task's arguments: they are the
        # same for every node, and templating them per node made a fleet plan cost nodes x fleet.
        role_specs_var = self._task.args.get("role_specs_var")
        role_specs = task_vars.get(role_specs_var) if isinstance(role_specs_var, str) else None
        role_variables = dict((name, self._templar.template(task_vars[name])) for name in role_specs or ()
                              if name in task_vars)
        role_errors = role_variable_errors(role_specs or {}, role_variables)
        try:
            _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        except AnsibleActionFail:
            # This task's arguments come from role variables (the preflight role's own, whose argument check the
            # playbook leaves to this task): name the variable the user set, not the argument it fed.
            if not role_errors:
                raise
            result.update(failed=True, changed=False,
                          msg="Preflight refused %s: invalid variables: %s" % (host, "; ".join(role_errors)))
            return result
        # Like the role specs, the fleet's cluster read is the same for every node.
        cluster = task_vars.get(args["cluster_var"]) if args["cluster_var"] else None

        read_args = dict(args["read"], profile_catalog=True, gpus=args["gpus"])
        try:
            gpu_info = self._execute_module(module_name="gpufleet.mig.gpu_info", module_args=read_args,
                                            task_vars=task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

        kubernetes = args["kubernetes"]
        k8s_node_name = (args["k8s_node_name"] or host) if kubernetes else ""
        layout_source = None
        policy_problems = []
        if args["policies"]:
            node_labels = (((cluster or {}).get("nodes") or {}).get(k8s_node_name) or {}).get("labels") or {}
            read = gpu_info if gpu_info.get("gpus") is not None else {}
            layout_source = resolve_node_policy(args["policies"], read, labels=node_labels if kubernetes else {},
                                                inventory_hostname=host, default=args["policy_default"],
                                                host_config=args["mig_config"], host_layout=args["mig_layout"])
            if layout_source.get("problem"):
                policy_problems.append(layout_source["problem"])

        record = judge_node(
            gpu_info, host=host, kubernetes=kubernetes, k8s_node_name=k8s_node_name, strategy=args["strategy"],
            cluster=cluster if isinstance(cluster, dict) else {}, layout_source=layout_source,
            policies=bool(args["policies"]), policy_problems=policy_problems,
            role_variable_errors=role_errors,
            mig_config=args["mig_config"], mig_config_file=args["mig_config_file"], mig_layout=args["mig_layout"],
            gpus=args["gpus"], in_use=args["in_use"], gpu_operator_mig_manager=args["gpu_operator_mig_manager"],
            host_mig_manager=args["host_mig_manager"], labels=args["labels"])
        result.update(record)
        # The read's own warnings and what preflight let pass are shown as the task's warnings, node by node.
        result["warnings"] = list(gpu_info.get("warnings") or []) + list(record["warnings_found"])
        result["changed"] = False
        return result
