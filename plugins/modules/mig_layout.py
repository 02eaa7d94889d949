#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mig_layout
short_description: Make the MIG devices of a node's GPUs match a desired layout
version_added: 0.1.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Creates and destroys the GPU instances and compute instances of the selected GPUs of a GPU node through NVML
    (C(pynvml)), so that each GPU ends up with the MIG devices its layout asks for.
  - The layout is a named config (O(config)), from a mig-parted config file on the node (O(config_file)), a mig-parted
    config given as data (O(config_data)) or the built-in configs (mig-parted's defaults such as V(all-1g.5gb) and
    V(all-balanced)), or an inline O(layout).
  - Each GPU is planned on its own. Instances that already match the layout are kept; only what must go is
    destroyed (compute instances first); the missing GPU instances are created at explicit placements chosen
    so that they always fit, largest first, each with its compute instances.
  - A MIG device is one compute instance. By default each GPU instance gets one compute instance spanning it,
    as C(nvidia-smi mig -cgi ... -C) does. Name partial devices in the layout (V(1c.3g.20gb)) to get several
    compute instances per GPU instance.
  - Every selected GPU is validated and planned before anything changes. MIG mode must already be enabled where
    the layout wants MIG devices; the module never changes MIG mode (see M(gpufleet.mig.mig_mode)).
  - Instances that processes run on are never destroyed and processes are never killed; see O(in_use).
  - If a write fails half-way, the task fails with the steps done, the failed step and the layout the GPU has
    now. The next run plans from that layout and converges.
  - Runs on the GPU node itself.
requirements:
  - nvidia-ml-py (pynvml)
  - PyYAML, to read a YAML O(config_file) (JSON needs nothing)
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.gpus
  - gpufleet.mig.layout_source
  - gpufleet.mig.option_names
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the GPUs and returns the plan of each (RV(gpus[].plan)) without touching them.
  diff_mode:
    support: full
    details:
      - Shows each GPU's GPU instances before and after, one line per GPU instance
        (C(3g.20gb at 4:4 3g.20gb)). In check mode the after side is the plan.
  idempotent:
    support: full
options:
  plan:
    description:
      - A node plan as M(gpufleet.mig.mig_plan_info) returned it, instead of a layout. The module carries out
        the MIG devices that plan manages, deciding each GPU the way M(gpufleet.mig.mig_plan_info) did.
      - The plan is refused, before anything changes, when the node's GPUs are not the ones it was made for
        (another GPU UUID at an index, a GPU gone or added, MIG support changed with the driver).
      - GPUs whose MIG devices the plan does not manage are reported in RV(skipped_gpus) as V(not in the layout).
    type: dict
  in_use:
    description:
      - What to do with a GPU whose plan must destroy GPU instances that processes run on.
      - V(fail) fails the task before anything changes, naming the processes.
      - V(skip) leaves that GPU exactly as it is, lists it in RV(skipped_gpus) with a warning, and converges the other
        GPUs.
      - Either way no instance in use is destroyed and no process is killed.
    type: str
    choices: [fail, skip]
    default: fail
notes:
  - A GPU whose layout wants MIG devices while its MIG mode is disabled, or MIG disabled (for example a mig-parted
    entry with C(mig-enabled) set to false) while it is enabled, fails the task before anything changes. The
    message names the GPUs and the M(gpufleet.mig.mig_mode) call that fixes them.
  - GPUs that cannot do MIG are skipped when O(gpus=all) and fail the task when named in O(gpus). A layout that covers
    no GPU because none of them can do MIG with this driver fails the task, as mig-parted does.
  - Drivers before R460 cannot place GPU instances explicitly. There the module lets the driver place them,
    largest first, and verifies that the resulting MIG devices are the ones asked for.
  - GPU instances do not survive a GPU reset or a reboot; run this module again afterwards.
seealso:
  - module: gpufleet.mig.mig_mode
  - module: gpufleet.mig.gpu_info
  - name: NVIDIA mig-parted config file format
    description: The format O(config_file) reads, and the configs O(config) knows built in.
    link: https://github.com/NVIDIA/mig-parted
"""

EXAMPLES = r"""
- name: Give every A100 seven 1g.5gb MIG devices (built-in mig-parted config)
  gpufleet.mig.mig_layout:
    config: all-1g.5gb

- name: Apply the config this node's inventory selects, from a mig-parted file on the node
  gpufleet.mig.mig_layout:
    config: "{{ mig_config }}"
    config_file: /etc/nvidia-mig-manager/config.yaml

- name: Apply a config from a mig-parted file kept next to the playbook
  gpufleet.mig.mig_layout:
    config: custom-config
    config_data: "{{ lookup('ansible.builtin.file', 'files/mig-config.yaml') }}"

- name: One 3g.20gb, one 2g.10gb and one 1g.5gb on GPU 0
  gpufleet.mig.mig_layout:
    layout:
      3g.20gb: 1
      2g.10gb: 1
      1g.5gb: 1
    gpus: [0]

- name: Three 1c.3g.20gb devices sharing one GPU instance, and seven 1g.5gb on GPU 1
  gpufleet.mig.mig_layout:
    layout:
      "0": {"1c.3g.20gb": 3}
      "1": {"1g.5gb": 7}

- name: Show the plan without touching the GPUs
  gpufleet.mig.mig_layout:
    config: all-balanced
  check_mode: true
  diff: true
  register: mig_plan

- name: Plan the node, then apply exactly that plan
  gpufleet.mig.mig_plan_info:
    config: all-balanced
  register: node_plan

- name: Apply the plan (refused if the GPUs changed since)
  gpufleet.mig.mig_layout:
    plan: "{{ node_plan }}"

- name: Converge the GPUs that are idle, leave busy ones for later
  gpufleet.mig.mig_layout:
    config: all-balanced
    in_use: skip
"""

RETURN = r"""
changed:
  description: Whether instances were destroyed or created (or would be, in check mode).
  type: bool
  returned: always
  sample: true
gpus:
  description: One entry per selected GPU that the layout covers, in index order.
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
    mig_enabled:
      description: Whether the layout wants MIG enabled on this GPU.
      type: bool
      sample: true
    desired_devices:
      description: The MIG devices the layout asks for, largest first.
      type: list
      elements: str
      sample: ["3g.20gb", "2g.10gb", "1g.5gb"]
    converged:
      description: Whether the GPU already matched the layout before the task.
      type: bool
      sample: false
    changed:
      description: Whether this GPU was changed (or would be, in check mode).
      type: bool
      sample: true
    plan:
      description:
        - The plan for this GPU; V(null) when the layout wants MIG disabled (and it is).
        - C(keep) and C(destroy) list existing GPU instances (C(id), C(profile_id), C(profile_name), C(placement),
          C(compute_instances)); C(create) lists new ones (C(profile_name), C(profile_id), C(profile_index),
          C(placement), C(compute_instances)).
      type: dict
      sample:
        converged: false
        keep: []
        destroy: []
        create:
          - profile_name: 3g.20gb
            profile_id: 9
            profile_index: 2
            placement: {"start": 0, "size": 4}
            compute_instances:
              - {"profile_name": "3g.20gb", "profile_index": 2, "profile_id": 2, "placement": {"start": 0, "size": 3}}
        current_devices: []
        desired_devices: ["3g.20gb"]
    actions:
      description:
        - The writes done on this GPU, in order; empty in check mode.
        - Each has C(action) (C(destroy_compute_instance), C(destroy_gpu_instance), C(create_gpu_instance),
          C(create_compute_instance)), C(profile), C(gpu_instance_id) and, where it applies,
          C(compute_instance_id) and C(placement).
        - C(create_gpu_instance) also has C(planned_placement), and C(placement_source). That is V(explicit),
          or V(driver) when the driver cannot place instances explicitly.
      type: list
      elements: dict
      sample:
        - {"action": "create_gpu_instance", "profile": "3g.20gb", "profile_id": 9, "gpu_instance_id": 1,
           "placement": {"start": 0, "size": 4}, "planned_placement": {"start": 0, "size": 4},
           "placement_source": "explicit"}
        - {"action": "create_compute_instance", "profile": "3g.20gb", "profile_index": 2, "gpu_instance_id": 1,
           "compute_instance_id": 0, "placement": {"start": 0, "size": 3}}
    devices:
      description:
        - The MIG devices the GPU has after the task, in C(nvidia-smi -L) order (as it is now, in check mode).
      type: list
      elements: dict
      contains:
        profile:
          description: The MIG device profile.
          type: str
          sample: 3g.20gb
        gpu_instance_id:
          description: Its GPU instance id.
          type: int
          sample: 2
        compute_instance_id:
          description: Its compute instance id.
          type: int
          sample: 0
        gpu_instance_profile:
          description: The profile of its GPU instance (differs from RV(gpus[].devices[].profile) for partial devices).
          type: str
          sample: 3g.20gb
        placement:
          description: The placement of its GPU instance, in memory slices.
          type: dict
          sample: {"start": 4, "size": 4}
        compute_placement:
          description: The placement of its compute instance inside the GPU instance, in compute slices.
          type: dict
          sample: {"start": 0, "size": 3}
        uuid:
          description: The MIG device UUID (C(MIG-<uuid>), or C(MIG-GPU-<uuid>/<gi>/<ci>) on drivers before R470).
          type: str
          sample: MIG-GPU-4200ccc0-2667-d4cb-9137-f932c716232a/2/0
        mig_device_index:
          description: The MIG device index C(nvidia-smi -L) prints.
          type: int
          sample: 0
        memory_mib:
          description: The memory of its GPU instance, in MiB.
          type: int
          sample: 20096
skipped_gpus:
  description:
    - Selected GPUs left as they are, each with C(index), C(uuid), C(name), C(pci_bus_id), C(reason) and maybe
      C(detail).
    - Reasons are V(not MIG-capable) (only with O(gpus=all)), V(not in the layout) and V(in use) (only with
      O(in_use=skip)).
  type: list
  elements: dict
  returned: always
  sample: [{"index": 1, "uuid": "GPU-5e1b0c9e-0d8f-4c1a-9c55-0b7e5ad51a21", "name": "Tesla T4",
            "pci_bus_id": "00000000:0F:00.0", "reason": "not MIG-capable"}]
failed_step:
  description: The write that failed, in the form of RV(gpus[].actions) entries.
  type: dict
  returned: when a write failed
  sample: {"action": "create_gpu_instance", "profile": "2g.10gb", "profile_id": 14, "placement": {"start": 4, "size": 2}}
nvml_call:
  description: The NVML call that failed.
  type: str
  returned: when a write failed
  sample: nvmlDeviceCreateGpuInstanceWithPlacement
nvml_code:
  description: The NVML return code of the failed call (for example 23 for INSUFFICIENT_RESOURCES).
  type: int
  returned: when a write failed
  sample: 23
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError
from ansible_collections.gpufleet.mig.plugins.module_utils._gpu import HAS_PYNVML, PYNVML_IMPORT_ERROR
from ansible_collections.gpufleet.mig.plugins.module_utils._layout import (
    LAYOUT_SOURCE_MUTUALLY_EXCLUSIVE,
    LAYOUT_SOURCE_OPTIONS,
    layout_source_argument_spec,
    layout_source_from_params,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._mig_layout import IN_USE_FAIL, IN_USE_SKIP, run_mig_layout
from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import exit_with, fail_with
from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import checked_option_names, option_names_argument_spec


def argument_spec():
    spec = layout_source_argument_spec()
    spec.update(
        plan=dict(type="dict"),
        in_use=dict(type="str", choices=[IN_USE_FAIL, IN_USE_SKIP], default=IN_USE_FAIL),
    )
    spec.update(option_names_argument_spec())
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=LAYOUT_SOURCE_MUTUALLY_EXCLUSIVE + [("plan", name) for name in LAYOUT_SOURCE_OPTIONS],
        required_one_of=[LAYOUT_SOURCE_OPTIONS + ("plan",)],
        supports_check_mode=True,
    )
    if not HAS_PYNVML:
        module.fail_json(msg=missing_required_lib("nvidia-ml-py"), exception=PYNVML_IMPORT_ERROR)

    try:
        names = checked_option_names(module.params["option_names"], module.argument_spec)
        result = run_mig_layout(layout_source_from_params(module.params), gpus=module.params["gpus"],
                                in_use=module.params["in_use"], check_mode=module.check_mode, plan=module.params["plan"],
                                names=names)
    except MigError as error:
        fail_with(module, error)
    exit_with(module, result)


if __name__ == "__main__":
    main()
