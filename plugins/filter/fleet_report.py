# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters ``fleet_report`` and ``fleet_report_markdown``; documented in the sidecar YAML files beside this one."""

from __future__ import annotations

from ansible_collections.gpufleet.mig.plugins.module_utils._fleet_report import fleet_report, render_markdown


def _fleet_report(hosts, hostvars, generated=None, check_mode=False, rollout_id=None, refused=None):
    return fleet_report(list(hosts), hostvars, generated=generated, check_mode=check_mode, rollout_id=rollout_id, refused=refused)


def _fleet_report_markdown(report):
    return render_markdown(report)


class FilterModule(object):
    def filters(self):
        return {
            "fleet_report": _fleet_report,
            "fleet_report_markdown": _fleet_report_markdown,
        }
