#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mig_mode
short_description: Enable or disable NVIDIA MIG mode on the GPUs of a node
version_added: 0.1.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Sets the MIG (Multi-Instance GPU) mode of the selected GPUs of a GPU node through NVML (C(pynvml)).
  - NVML first records the new mode as I(pending). On Ampere GPUs (A100, A30) the driver then resets the GPU
    itself to activate it, which fails while anything holds the GPU; the change then stays pending until a GPU
    reset or a reboot. Hopper GPUs (H100, H200) activate the mode without a reset.
  - With O(reset=true) the module activates pending changes with C(nvidia-smi -r -i <PCI bus id>), since NVML
    has no reset call. It refuses, naming the processes, when NVML shows processes on such a GPU.
  - Where the host cannot reset a GPU (NVML answers RESET_REQUIRED, or C(nvidia-smi) says resetting is not
    supported, as in passthrough VMs) the module does not fail; it returns RV(reboot_required=true).
  - Disabling MIG needs the GPU to have no GPU instances. The module refuses while they exist unless
    O(force=true), which destroys them (compute instances first) and never touches instances that processes
    run on.
  - A GPU whose pending mode already equals O(state) is not set again. It is reported with
    RV(gpus[].reset_required=true) while the change is still pending.
  - Runs on the GPU node itself. Stop the GPU's clients (drain the node) before changing the mode.
requirements:
  - nvidia-ml-py (pynvml)
  - nvidia-smi (part of the NVIDIA driver), only with O(reset=true)
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.gpus
  - gpufleet.mig.option_names
attributes:
  check_mode:
    support: full
    details:
      - Check mode predicts that the driver activates the mode at once unless NVML lists processes on the GPU.
        Clients that NVML does not list as processes (such as C(nvidia-persistenced)) can still keep a real
        change pending.
  diff_mode:
    support: full
    details:
      - Shows each GPU's current and pending mode, and its GPU instances, before and after.
  idempotent:
    support: full
options:
  state:
    description:
      - The MIG mode the selected GPUs should have.
    type: str
    required: true
    choices: [enabled, disabled]
  reset:
    description:
      - Reset each GPU whose mode change is still pending after the mode was set, with C(nvidia-smi -r).
      - A reset drops every GPU instance of that GPU and is refused while any client holds the GPU.
      - With V(false), pending changes are only reported (RV(reset_required)); a reboot also activates them on
        Ampere GPUs.
    type: bool
    default: false
  force:
    description:
      - When disabling MIG, destroy the GPU's GPU instances and compute instances first.
      - Instances that processes run on are never destroyed; the task fails naming the processes instead.
      - Has no effect with O(state=enabled).
    type: bool
    default: false
notes:
  - GPUs that cannot do MIG are skipped and listed in RV(skipped_gpus) when O(gpus=all); naming one in O(gpus) fails
    the task.
  - On Ampere GPUs the mode is stored on the GPU and survives a reboot. On Hopper GPUs it lasts only while the
    driver is loaded, so a reboot turns MIG off again.
  - GPU instances never survive a mode change; create them afterwards with M(gpufleet.mig.mig_layout).
seealso:
  - module: gpufleet.mig.gpu_info
  - module: gpufleet.mig.mig_layout
  - name: NVIDIA Multi-Instance GPU User Guide, Enable MIG Mode
    description: How MIG mode, GPU resets and pending changes work.
    link: https://docs.nvidia.com/datacenter/tesla/mig-user-guide/
"""

EXAMPLES = r"""
- name: Enable MIG on every MIG-capable GPU and reset those where the change is pending
  gpufleet.mig.mig_mode:
    state: enabled
    reset: true
  register: mig

- name: Reboot when the host cannot reset its GPUs (for example a passthrough VM)
  ansible.builtin.reboot:
  when: mig.reboot_required

- name: Enable MIG on GPUs 0 and 1 only, leaving pending changes for a later reboot
  gpufleet.mig.mig_mode:
    state: enabled
    gpus: [0, 1]

- name: Disable MIG, destroying the GPU instances first
  gpufleet.mig.mig_mode:
    state: disabled
    force: true
    reset: true
"""

RETURN = r"""
changed:
  description: Whether GPU instances were destroyed, a mode was set or a GPU was reset (or would be, in check mode).
  type: bool
  returned: always
  sample: true
gpus:
  description: One entry per selected MIG-capable GPU, in index order.
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
      description: The PCI bus id, which the reset uses.
      type: str
      sample: "00000000:07:00.0"
    before:
      description: The current and pending MIG mode before the task.
      type: dict
      sample: {"current": "disabled", "pending": "disabled"}
    after:
      description:
        - The current and pending MIG mode after the task, as NVML reports them.
        - In check mode, the prediction described under check mode support.
      type: dict
      sample: {"current": "enabled", "pending": "enabled"}
    changed:
      description: Whether this GPU was changed (or would be, in check mode).
      type: bool
      sample: true
    plan:
      description: What the task decided to do with this GPU.
      type: dict
      sample: {"set_mode": true, "reset": false, "destroy_gpu_instances": []}
      contains:
        set_mode:
          description: Whether the mode is set (its pending mode differs from O(state)).
          type: bool
        reset:
          description: Whether the GPU is reset (O(reset=true) and its current mode differs from O(state)).
          type: bool
        destroy_gpu_instances:
          description: Ids of the GPU instances destroyed first (O(force=true)).
          type: list
          elements: int
    actions:
      description:
        - The writes done, in order; empty in check mode.
        - Each has C(action) (C(destroy_compute_instance), C(destroy_gpu_instance), C(set_mig_mode), C(reset)).
          C(set_mig_mode) adds C(mode), C(activation_status) and C(activation_status_text), NVML's verdict on
          activating the mode. C(reset) adds C(cmd) and C(rc), and C(failed) when the reset was refused.
      type: list
      elements: dict
      sample: [{"action": "set_mig_mode", "mode": "enabled", "activation_status": 0, "activation_status_text": "Success"}]
    reset_required:
      description: Whether the change is still pending, so that a GPU reset or a reboot must follow.
      type: bool
      sample: false
    reboot_required:
      description: Whether only a reboot can activate the pending mode, because this host cannot reset the GPU.
      type: bool
      sample: false
skipped_gpus:
  description: Selected GPUs that cannot do MIG (only with O(gpus=all)), each with C(index), C(uuid), C(name),
    C(pci_bus_id) and C(reason).
  type: list
  elements: dict
  returned: always
  sample: [{"index": 1, "uuid": "GPU-5e1b0c9e-0d8f-4c1a-9c55-0b7e5ad51a21", "name": "Tesla T4",
            "pci_bus_id": "00000000:0F:00.0", "reason": "not MIG-capable"}]
reset_required:
  description: Whether any selected GPU still has a pending mode change.
  type: bool
  returned: always
  sample: false
reboot_required:
  description: Whether any selected GPU needs a reboot to activate its pending mode.
  type: bool
  returned: always
  sample: false
cmd:
  description: The C(nvidia-smi) command of a reset that was refused.
  type: list
  elements: str
  returned: when a reset was refused
  sample: ["/usr/bin/nvidia-smi", "-r", "-i", "00000000:07:00.0"]
rc:
  description: The exit status of a refused reset.
  type: int
  returned: when a reset was refused
  sample: 255
stdout:
  description: What C(nvidia-smi) printed when it refused a reset.
  type: str
  returned: when a reset was refused
  sample: "The following GPUs could not be reset:"
stderr:
  description: The error output of a refused reset.
  type: str
  returned: when a reset was refused
  sample: ""
nvml_call:
  description: The NVML call that failed.
  type: str
  returned: when an NVML write failed
  sample: nvmlDeviceSetMigMode
nvml_code:
  description: The NVML return code of the failed call (for example 4 for NO_PERMISSION).
  type: int
  returned: when an NVML write failed
  sample: 4
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError
from ansible_collections.gpufleet.mig.plugins.module_utils._gpu import HAS_PYNVML, PYNVML_IMPORT_ERROR
from ansible_collections.gpufleet.mig.plugins.module_utils._mig_mode import MODES, NvidiaSmiReset, run_mig_mode
from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import command_runner, exit_with, fail_with
from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import checked_option_names, option_names_argument_spec


def argument_spec():
    spec = dict(
        state=dict(type="str", required=True, choices=list(MODES)),
        gpus=dict(type="list", elements="str", default=["all"]),
        reset=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
    )
    spec.update(option_names_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_PYNVML:
        module.fail_json(msg=missing_required_lib("nvidia-ml-py"), exception=PYNVML_IMPORT_ERROR)

    resetter = None
    if module.params["reset"]:
        resetter = NvidiaSmiReset(module.get_bin_path("nvidia-smi", required=True), command_runner(module))
    try:
        names = checked_option_names(module.params["option_names"], module.argument_spec)
        result = run_mig_mode(module.params["state"], gpus=module.params["gpus"], force=module.params["force"],
                              reset=module.params["reset"], check_mode=module.check_mode, resetter=resetter, names=names)
    except MigError as error:
        fail_with(module, error)
    exit_with(module, result)


if __name__ == "__main__":
    main()
