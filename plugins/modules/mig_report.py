#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mig_report
short_description: Write a rollout's fleet report (JSON and Markdown) and point C(latest) at it
version_added: 0.4.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Writes O(report) (built by the P(gpufleet.mig.fleet_report#filter) filter) as C(fleet-report.json) and
    C(fleet-report.md) (as P(gpufleet.mig.fleet_report_markdown#filter) renders it) in the directory
    O(dir)/O(name), and points the link O(dir)/C(latest) at that directory.
  - One task for what took four (a directory, two files and a link); each file is replaced atomically, so a reader
    never sees half a report, and C(latest) is swung to the new run in one rename.
  - Runs never overwrite each other's reports when each has its own O(name) (the rollout id).
extends_documentation_fragment:
  - gpufleet.mig.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports which files would be written and where C(latest) would point, and writes nothing.
  diff_mode:
    support: full
    details:
      - The target of C(latest) and the names of the files written, before and after.
  idempotent:
    support: full
options:
  report:
    description: The fleet report, as the P(gpufleet.mig.fleet_report#filter) filter returns it.
    type: dict
    required: true
  dir:
    description: The directory that holds one subdirectory per run, and C(latest). Created when missing.
    type: path
    required: true
  name:
    description:
      - The run's subdirectory, one directory name (no C(/)); the rollout id. V(latest) is taken by the link.
    type: str
    required: true
  latest:
    description: Whether to point O(dir)/C(latest) at this run's directory.
    type: bool
    default: true
notes:
  - Run it on the host that keeps the reports (the playbook delegates it to C(mig_control_host)).
  - A C(latest) that exists and is not a link is not replaced; the task fails naming it.
seealso:
  - plugin: gpufleet.mig.fleet_report
    plugin_type: filter
  - plugin: gpufleet.mig.fleet_report_markdown
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Write the fleet report of this run
  gpufleet.mig.mig_report:
    report: "{{ report_fleet }}"
    dir: /var/log/gpufleet-mig
    name: "{{ mig_rollout_id }}"
  delegate_to: localhost
  run_once: true

- name: Write a report beside the others without moving latest
  gpufleet.mig.mig_report:
    report: "{{ report_fleet }}"
    dir: "{{ playbook_dir }}/reports"
    name: rehearsal-1
    latest: false
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
path:
  description: The run's report directory.
  type: str
  returned: success
  sample: /var/log/gpufleet-mig/gpufleet-mig-20261204t091500-a1b2c3
written:
  description: The files whose content was written (in check mode, would be).
  type: list
  elements: str
  returned: success
  sample: ["/var/log/gpufleet-mig/gpufleet-mig-20261204t091500-a1b2c3/fleet-report.json"]
latest:
  description: The C(latest) link, or V(null) with O(latest=false).
  type: str
  returned: success
  sample: /var/log/gpufleet-mig/latest
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError
from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import exit_with, fail_with
from ansible_collections.gpufleet.mig.plugins.module_utils._report_files import write_report


def main():
    module = AnsibleModule(
        argument_spec=dict(
            report=dict(type="dict", required=True),
            dir=dict(type="path", required=True),
            name=dict(type="str", required=True),
            latest=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = write_report(params["report"], params["dir"], params["name"], point_latest=params["latest"],
                              check_mode=module.check_mode)
    except MigError as error:
        fail_with(module, error)
    except OSError as error:
        module.fail_json(msg="Cannot write the fleet report: %s" % error)
    exit_with(module, result)


if __name__ == "__main__":
    main()
