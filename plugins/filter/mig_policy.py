# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters ``mig_policy_resolve`` and ``mig_policy_fleet_problem``; documented in the sidecar YAML files beside this one."""

from __future__ import annotations

from ansible_collections.gpufleet.mig.plugins.module_utils._policy import fleet_problem, resolve_node_policy


def _mig_policy_fleet_problem(policies, resolutions):
    return fleet_problem(policies, list(resolutions or ()))


class FilterModule(object):
    def filters(self):
        return {
            "mig_policy_resolve": resolve_node_policy,
            "mig_policy_fleet_problem": _mig_policy_fleet_problem,
        }
