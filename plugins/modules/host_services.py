#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: host_services
short_description: Stop the host services that hold a node's GPUs, and start exactly those again
version_added: 0.1.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Host services such as C(nvidia-persistenced), DCGM, C(dcgm-exporter), NVSM, C(nv_peer_mem) and
    C(nvidia-fabricmanager) keep the GPUs open, so a MIG mode change stays pending, a GPU reset is refused and
    creating GPU instances can fail. This module stops them before the GPUs change and starts them afterwards,
    as NVIDIA's mig-parted hooks and mig-manager do.
  - With O(state=stopped) it stops those of O(names) that run, in reverse order, and records each on the node
    (O(record)) before stopping it. Services that are not installed or not running are left alone.
  - With O(state=started) it starts, in the order of O(names), every service the record names, then removes them
    from it. A run that was interrupted after stopping services therefore starts them on the next run. Services
    that an operator stopped before the rollout are never started.
  - Uses C(systemctl show), C(systemctl stop) and C(systemctl start) on the node.
requirements:
  - systemd (C(systemctl)) on the node
extends_documentation_fragment:
  - gpufleet.mig.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be stopped or started; neither the services nor the record change.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - A second O(state=stopped) stops nothing; O(state=started) with an empty record starts nothing.
options:
  state:
    description:
      - V(stopped) stops those of O(names) that run and records them; V(started) starts what the record names.
    type: str
    required: true
    choices: [stopped, started]
  names:
    description:
      - Service units, in the order they start (C(nvsm) means C(nvsm.service)). With O(state=stopped), the
        candidates; with O(state=started), the order to start in, and also started when they are named here.
    type: list
    elements: str
    default: []
  only_recorded:
    description:
      - With O(state=started), start only what the record names and use O(names) for the order alone.
    type: bool
    default: true
  record:
    description:
      - The file on the node that lists the services this module stopped and has not started again.
    type: path
    required: true
notes:
  - Sources for the default service lists of the C(gpufleet.mig.reconfigure) role are in docs/host-services.md.
seealso:
  - module: gpufleet.mig.mig_mode
  - name: NVIDIA mig-parted systemd hooks (deployments/systemd/hooks.sh)
    description: Which services NVIDIA stops before a MIG change and starts afterwards.
    link: https://github.com/NVIDIA/mig-parted/tree/main/deployments/systemd
"""

EXAMPLES = r"""
- name: Stop the host services that hold the GPUs
  gpufleet.mig.host_services:
    state: stopped
    names: [nvidia-persistenced, nvidia-fabricmanager, nvidia-dcgm, dcgm-exporter, nvsm]
    record: /var/lib/gpufleet-mig/stopped-host-services.json
  register: stopped

- name: Start exactly the services stopped before (also those of an interrupted run)
  gpufleet.mig.host_services:
    state: started
    names: [nvidia-persistenced, nvidia-fabricmanager, nvidia-dcgm, dcgm-exporter, nvsm]
    record: /var/lib/gpufleet-mig/stopped-host-services.json
"""

RETURN = r"""
stopped:
  description: The units this task stopped (would stop, in check mode).
  returned: state=stopped
  type: list
  elements: str
  sample: [nvsm.service, nvidia-dcgm.service]
to_restart:
  description: Every unit the record names after this task, in start order; the O(state=started) step starts them.
  returned: state=stopped
  type: list
  elements: str
not_running:
  description: Units of O(names) that are installed but were not running.
  returned: state=stopped
  type: list
  elements: str
not_installed:
  description: Units of O(names) that the node does not have.
  returned: state=stopped
  type: list
  elements: str
started:
  description: The units this task started (would start, in check mode).
  returned: state=started
  type: list
  elements: str
already_running:
  description: Recorded units that were running already (a reboot started them), now off the record.
  returned: state=started
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.mig.plugins.module_utils._host_services import (
    HostServiceError,
    Record,
    Systemctl,
    start_services,
    stop_services,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import command_runner, fail_with

# systemctl pages and colours its output on a terminal; a module never wants either.
SYSTEMCTL_ENVIRON = {"SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}


def argument_spec():
    return dict(
        state=dict(type="str", required=True, choices=["stopped", "started"]),
        names=dict(type="list", elements="str", default=[]),
        only_recorded=dict(type="bool", default=True),
        record=dict(type="path", required=True),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    systemctl = Systemctl(module.get_bin_path("systemctl", required=True),
                          command_runner(module, SYSTEMCTL_ENVIRON))
    record = Record(module.params["record"])
    try:
        if module.params["state"] == "stopped":
            result = stop_services(systemctl, record, module.params["names"], check_mode=module.check_mode)
        else:
            extra = [] if module.params["only_recorded"] else module.params["names"]
            result = start_services(systemctl, record, extra, order=module.params["names"], check_mode=module.check_mode)
    except HostServiceError as error:
        fail_with(module, error)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
