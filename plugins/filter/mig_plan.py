# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters ``mig_plan`` and ``mig_plan_line``; documented in the sidecar YAML files beside this one."""

from __future__ import annotations

from ansible_collections.gpufleet.mig.plugins.module_utils._fleet_report import plan_line
from ansible_collections.gpufleet.mig.plugins.module_utils._preflight import plan_from_gpu_info


class FilterModule(object):
    def filters(self):
        return {"mig_plan": plan_from_gpu_info, "mig_plan_line": plan_line}
