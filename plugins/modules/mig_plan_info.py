#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mig_plan_info
short_description: Plan the MIG rollout of a GPU node without changing it
version_added: 0.1.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Reads the GPUs of a GPU node through NVML (C(pynvml)), resolves the node's desired MIG layout and returns
    the plan that would make the node match it. The GPUs are not touched.
  - Per GPU, the plan says whether MIG mode must change and which GPU instances would be kept, destroyed and
    created, with their placements. This is the plan M(gpufleet.mig.mig_mode) and M(gpufleet.mig.mig_layout)
    carry out, computed by the same planner.
  - The layout is a named config (O(config)), from a mig-parted config file on the node (O(config_file)), a mig-parted
    config given as data (O(config_data)) or the built-in configs (mig-parted's defaults such as V(all-1g.5gb) and
    V(all-balanced)), or an inline O(layout), the same options M(gpufleet.mig.mig_layout) takes.
  - With O(gpus), only the selected GPUs are planned; the others are left as they are.
  - Unlike M(gpufleet.mig.mig_layout), a GPU whose MIG mode is still disabled is planned as if it were enabled, so a
    whole rollout can be checked before anything changes.
  - The node as the plan leaves it is checked against the NVIDIA device plugin's MIG O(strategy). A layout that does
    not fit a GPU, names a profile the GPU lacks, or would make the device plugin fail fails the task, naming
    every problem of the node.
  - Runs on the GPU node itself. Never changes anything.
requirements:
  - nvidia-ml-py (pynvml)
  - PyYAML, when O(config_data) or O(config_file) is YAML
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.attributes.info_module
  - gpufleet.mig.gpus
  - gpufleet.mig.layout_source
  - gpufleet.mig.option_names
options:
  in_use:
    description:
      - What to do with a GPU where a process outside any Kubernetes pod runs on a GPU instance the plan destroys,
        or on a GPU whose MIG mode changes. Draining the node does not end such a process (a job started over SSH,
        a systemd service), so the change would fail after the node was cordoned and drained.
      - V(fail) refuses the node, naming the process, its cgroup and the GPU instance. V(skip) leaves that GPU as it
        is (RV(gpus[].reason=in use by host processes)) and plans the others.
      - Processes of pods (their cgroup lies below the kubelet's C(kubepods) cgroup) never count, the drain evicts
        them. A process whose cgroup cannot be read counts as a host process.
    type: str
    choices: [fail, skip]
    default: fail
  proc_root:
    description:
      - Where the node's process table is mounted. The cgroup of each process NVML reports is read from
        C(<proc_root>/<pid>/cgroup) to tell a pod's process from a host process.
      - V(/proc) on the node itself; a module run in a container sees the host's processes where the host's
        C(/proc) is mounted, such as V(/host/proc).
    type: path
    default: /proc
  strategy:
    description:
      - The MIG strategy of the NVIDIA device plugin the node is checked against.
      - V(single) needs, once any GPU of the node has MIG enabled, MIG on every GPU, at least one MIG device on each
        and a single MIG device profile across the node.
      - V(mixed) refuses partial MIG devices such as V(1c.3g.20gb), which it cannot advertise, and warns about
        MIG-enabled GPUs without devices.
      - V(none) advertises whole GPUs only. The plan then sets MIG mode as the layout says but leaves MIG devices
        alone (RV(gpus[].desired_devices) is V(null) for such GPUs).
    type: str
    choices: [none, single, mixed]
    default: mixed
notes:
  - Drivers before R550 list no MIG profiles while MIG mode is disabled. On such a GPU the profile names are
    checked but the fit is not; the GPU is returned with RV(gpus[].devices_verified=false) and a warning, and
    M(gpufleet.mig.mig_layout) checks the fit once MIG is on.
seealso:
  - module: gpufleet.mig.gpu_info
  - module: gpufleet.mig.mig_mode
  - module: gpufleet.mig.mig_layout
  - name: NVIDIA k8s-device-plugin MIG strategies
    description: What the none, single and mixed strategies advertise.
    link: https://github.com/NVIDIA/k8s-device-plugin
"""

EXAMPLES = r"""
- name: Plan the node's layout under the mixed strategy
  gpufleet.mig.mig_plan_info:
    config: all-balanced
    strategy: mixed
  register: node_plan

- name: Show what would change
  ansible.builtin.debug:
    msg: "{{ node_plan.summary }}"

- name: Plan a config from a mig-parted file kept next to the playbook
  gpufleet.mig.mig_plan_info:
    config: custom-config
    config_data: "{{ lookup('ansible.builtin.file', 'files/mig-config.yaml') }}"
    strategy: single

- name: Plan an inline layout for GPU 0 only
  gpufleet.mig.mig_plan_info:
    layout:
      "0": {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 1}
"""

RETURN = r"""
converged:
  description: Whether every GPU already has the MIG mode and MIG devices the plan wants.
  type: bool
  returned: always
  sample: false
strategy:
  description: The O(strategy) the node was checked against.
  type: str
  returned: always
  sample: mixed
config_id:
  description:
    - A label-safe name of the desired config, for a node label that records it.
    - The config name when it is a valid Kubernetes label value, else C(config-<hash>), or C(layout-<hash>) for an
      inline layout, the hash being 12 hex digits of the SHA-256 of the layout resolved for this node.
  type: str
  returned: always
  sample: all-balanced
mode_enable:
  description: Indices of the GPUs whose MIG mode must be enabled (current or pending mode is disabled).
  type: list
  elements: int
  returned: always
  sample: [0, 1]
mode_disable:
  description: Indices of the GPUs whose MIG mode must be disabled.
  type: list
  elements: int
  returned: always
  sample: []
layout:
  description:
    - The MIG devices the rollout creates, per GPU index, as an inline layout for O(gpufleet.mig.mig_layout#module:layout).
    - Holds only the GPUs whose devices are managed (MIG enabled in the layout and O(strategy) not V(none)); empty when
      there are none.
  type: dict
  returned: always
  sample: {"0": {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 1}}
layout_change:
  description: Whether MIG devices must be created or destroyed on some GPU.
  type: bool
  returned: always
  sample: true
summary:
  description: One line per GPU, current state to desired state, for people.
  type: list
  elements: str
  returned: always
  sample: ["GPU 0 NVIDIA A100-SXM4-40GB: MIG disabled -> enabled; devices none -> 3g.20gb, 2g.10gb, 1g.5gb"]
warnings_found:
  description: Problems that do not stop the rollout (they are also emitted as warnings).
  type: list
  elements: str
  returned: always
  sample: []
gpus:
  description: One entry per GPU of the node, in index order.
  type: list
  elements: dict
  returned: always
  contains:
    index:
      description: The GPU index, as C(nvidia-smi) numbers it.
      type: int
      sample: 0
    uuid:
      description: The GPU UUID.
      type: str
      sample: GPU-4200ccc0-2667-d4cb-9137-f932c716232a
    name:
      description: The GPU name NVML reports.
      type: str
      sample: NVIDIA A100-SXM4-40GB
    pci_bus_id:
      description: The PCI bus id.
      type: str
      sample: "00000000:07:00.0"
    mig_capable:
      description: Whether the GPU supports MIG with this driver.
      type: bool
      sample: true
    managed:
      description: Whether the layout covers this GPU; GPUs it does not cover are left as they are.
      type: bool
      sample: true
    reason:
      description: Why an unmanaged GPU is left alone (V(not MIG-capable), V(not in the layout), V(in use by host processes)
        with O(in_use=skip)); V(null) otherwise.
      type: str
      sample: null
    mig_mode:
      description: The current and pending MIG mode; V(null) when the GPU is not MIG-capable.
      type: dict
      sample: {"current": "disabled", "pending": "disabled"}
    desired_mig_mode:
      description: The MIG mode the layout wants, V(enabled) or V(disabled); V(null) when unmanaged.
      type: str
      sample: enabled
    mode_change:
      description: Whether the MIG mode must be set.
      type: bool
      sample: true
    current_devices:
      description: The MIG devices the GPU has now, largest first.
      type: list
      elements: str
      sample: []
    desired_devices:
      description: The MIG devices the layout wants, largest first; V(null) when the devices are not managed.
      type: list
      elements: str
      sample: ["3g.20gb", "2g.10gb", "1g.5gb"]
    devices_after:
      description: The MIG devices the GPU has once the plan is carried out.
      type: list
      elements: str
      sample: ["3g.20gb", "2g.10gb", "1g.5gb"]
    devices_verified:
      description: Whether the fit of the desired devices was checked (see the notes).
      type: bool
      sample: true
    layout_change:
      description: Whether MIG devices must be created or destroyed on this GPU.
      type: bool
      sample: true
    converged:
      description: Whether this GPU already matches.
      type: bool
      sample: false
    plan:
      description: The planner's plan (C(keep), C(destroy), C(create), C(current_devices), C(desired_devices),
        C(converged)), as M(gpufleet.mig.mig_layout) returns it; V(null) when no devices are planned.
      type: dict
      sample: {"converged": false, "keep": [], "destroy": [], "create": [], "current_devices": [], "desired_devices": []}
    processes:
      description: The processes NVML lists on the GPU (C(pid), C(name), C(used_memory_mib), C(gpu_instance_id),
        C(compute_instance_id)), with C(owner) (V(pod), V(host), V(gone) when it has ended, V(unknown) when its cgroup
        cannot be read) and C(cgroup), read from O(proc_root).
      type: list
      elements: dict
      sample: []
driver_version:
  description: The NVIDIA driver version.
  type: str
  returned: always
  sample: 550.54.15
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, NvmlCallError, StrategyError
from ansible_collections.gpufleet.mig.plugins.module_utils._gpu import HAS_PYNVML, PYNVML_IMPORT_ERROR
from ansible_collections.gpufleet.mig.plugins.module_utils._layout import (
    LAYOUT_SOURCE_MUTUALLY_EXCLUSIVE,
    LAYOUT_SOURCE_OPTIONS,
    layout_source_argument_spec,
    layout_source_from_params,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._host_processes import DEFAULT_PROC_ROOT
from ansible_collections.gpufleet.mig.plugins.module_utils._node_plan import (
    IN_USE_CHOICES, IN_USE_FAIL, STRATEGIES, STRATEGY_MIXED, read_and_plan_node,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import checked_option_names, option_names_argument_spec


def argument_spec():
    spec = layout_source_argument_spec()
    spec.update(strategy=dict(type="str", choices=list(STRATEGIES), default=STRATEGY_MIXED),
                in_use=dict(type="str", choices=list(IN_USE_CHOICES), default=IN_USE_FAIL),
                proc_root=dict(type="path", default=DEFAULT_PROC_ROOT))
    spec.update(option_names_argument_spec())
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=LAYOUT_SOURCE_MUTUALLY_EXCLUSIVE,
        required_one_of=[LAYOUT_SOURCE_OPTIONS],
        supports_check_mode=True,
    )
    if not HAS_PYNVML:
        module.fail_json(msg=missing_required_lib("nvidia-ml-py"), exception=PYNVML_IMPORT_ERROR)

    try:
        names = checked_option_names(module.params["option_names"], module.argument_spec)
        facts, plan = read_and_plan_node(layout_source_from_params(module.params), module.params["strategy"],
                                         gpus=module.params["gpus"], in_use=module.params["in_use"],
                                         proc_root=module.params["proc_root"], names=names)
    except NvmlCallError as error:
        module.fail_json(msg="Reading the GPUs of this node failed: %s; check the driver with gpufleet.mig.driver_check"
                         % error, **error.failure_keys())
    except StrategyError as error:
        module.fail_json(msg="The MIG layout cannot be rolled out on this node: %s" % error)
    except MigError as error:
        module.fail_json(msg=str(error))

    for warning in plan["warnings"]:
        module.warn(warning)
    plan["warnings_found"] = plan.pop("warnings")
    module.exit_json(changed=False, driver_version=facts.get("driver_version"), **plan)


if __name__ == "__main__":
    main()
