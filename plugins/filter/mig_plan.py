# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters ``mig_plan`` and ``mig_plan_line``; documented in the sidecar YAML file beside this one."""

from __future__ import annotations

from ansible_collections.gpufleet.mig.plugins.module_utils.fleet_report import plan_line
from ansible_collections.gpufleet.mig.plugins.module_utils.errors import MigError, StrategyError
from ansible_collections.gpufleet.mig.plugins.module_utils.node_plan import IN_USE_FAIL, STRATEGY_MIXED, plan_node_from_facts


def _mig_plan(gpu_info, mig_config=None, mig_layout=None, config_data=None, strategy=STRATEGY_MIXED, gpus=None,
              in_use=IN_USE_FAIL, option_names=None):
    """The plan mig_plan_info would return for the node gpu_info read, or ``{"problem": why}``; never raises."""
    if mig_layout is not None:
        source = {"mig_layout": mig_layout}
    else:
        source = {"mig_config": mig_config or None}
        if config_data:
            source["mig_config_file"] = config_data
    try:
        plan = plan_node_from_facts(gpu_info or {}, source, strategy, gpus=gpus, in_use=in_use, names=option_names)
    except StrategyError as error:
        return {"problem": "The MIG layout cannot be rolled out on this node: %s" % error}
    except MigError as error:
        return {"problem": str(error)}
    plan["warnings_found"] = plan.pop("warnings")
    plan["driver_version"] = (gpu_info or {}).get("driver_version")
    plan["problem"] = None
    return plan


class FilterModule(object):
    def filters(self):
        return {"mig_plan": _mig_plan, "mig_plan_line": plan_line}
