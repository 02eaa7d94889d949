#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: driver_check
short_description: Check that a GPU node can run MIG in Kubernetes
version_added: 0.1.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Checks the NVIDIA driver, the selected GPUs and the NVIDIA Container Toolkit of a GPU node against the
    minimums MIG needs. The task fails with a message that lists every failed check; the message names the
    version found, the version wanted and the option that changes the policy.
  - The checks are that an NVIDIA driver is loaded; that the driver is at least O(min_driver_version) and at
    least the per-model minimum of O(model_min_driver_versions) for every selected GPU; that the node has GPUs
    and every selected GPU supports MIG; and that the container toolkit is at least
    O(min_container_toolkit_version), or, when only the legacy C(nvidia-docker2) package is found, that this
    package is at least O(min_nvidia_docker2_version).
  - Returns the facts it checked and one entry per check in RV(checks), also when a check fails.
  - Never changes anything. Runs on the GPU node itself.
requirements:
  - nvidia-ml-py (pynvml)
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.attributes.info_module
  - gpufleet.mig.gpus
options:
  min_driver_version:
    description:
      - The oldest NVIDIA driver accepted on any node.
      - The default is the R450 driver the NVIDIA document "MIG Support in Kubernetes" requires.
    type: str
    default: 450.80.02
  model_min_driver_versions:
    description:
      - The oldest driver accepted per GPU model, on top of O(min_driver_version).
      - A key matches a GPU when it appears as a whole word in the GPU name NVML reports, ignoring case. For
        example, V(H100) matches C(NVIDIA H100 80GB HBM3). When several keys match, the longest one wins.
      - The default comes from the MIG User Guide "Deployment Considerations".
      - A value replaces the whole table; V({}) checks O(min_driver_version) only.
    type: dict
    default:
      A100: 450.80.02
      A30: 460.73.01
      H100: 525.85.12
      H200: 550.90.07
      B200: 570.133.20
  check_container_toolkit:
    description:
      - Check the NVIDIA Container Toolkit. Set to V(false) on nodes whose container runtime gets GPU support
        another way; the toolkit is then neither probed nor reported.
    type: bool
    default: true
  min_container_toolkit_version:
    description:
      - The oldest NVIDIA Container Toolkit accepted. The module reads the version from C(nvidia-ctk),
        C(nvidia-container-cli) or the C(nvidia-container-toolkit) package.
      - The default, 1.3.0, is the toolkit released together with the C(nvidia-docker2) 2.5.0 that the MIG
        document requires. The C(nvidia-container-toolkit) packaging commit for 1.3.0 made the toolkit
        depend on C(libnvidia-container-tools) 1.3.0 or newer.
    type: str
    default: 1.3.0
  min_nvidia_docker2_version:
    description:
      - The oldest C(nvidia-docker2) package accepted. It applies only when no toolkit version can be read
        and the package is found.
    type: str
    default: 2.5.0
seealso:
  - module: gpufleet.mig.gpu_info
  - name: MIG Support in Kubernetes
    description: The minimum driver and container toolkit versions for MIG in Kubernetes.
    link: https://docs.nvidia.com/datacenter/cloud-native/kubernetes/latest/index.html
  - name: NVIDIA Multi-Instance GPU User Guide
    description: Supported GPUs and the minimum driver for each.
    link: https://docs.nvidia.com/datacenter/tesla/mig-user-guide/
"""

EXAMPLES = r"""
- name: Check that the node can run MIG
  gpufleet.mig.driver_check:

- name: Check only GPUs 0 and 1, with a newer minimum driver
  gpufleet.mig.driver_check:
    gpus: [0, 1]
    min_driver_version: 535.104.05

- name: Check the driver and GPUs only, on a node without the container toolkit
  gpufleet.mig.driver_check:
    check_container_toolkit: false

- name: Collect the result of every check without failing the play
  gpufleet.mig.driver_check:
  register: mig_readiness
  failed_when: false

- name: Report the checks that failed
  ansible.builtin.debug:
    msg: "{{ mig_readiness.checks | rejectattr('ok') | map(attribute='detail') | list }}"
"""

RETURN = r"""
checks:
  description: Every check made, in order; each has C(name), C(ok) and C(detail), and C(gpu) for per-GPU checks.
  type: list
  elements: dict
  returned: always
  sample:
    - {"name": "nvidia_driver", "ok": true, "detail": "NVIDIA driver 450.51.06 is loaded (CUDA 11.0, NVML 11.450.51.06)"}
    - {"name": "driver_version", "ok": false,
       "detail": "NVIDIA driver 450.51.06 is older than 450.80.02, the minimum for MIG (min_driver_version); upgrade the driver"}
  contains:
    name:
      description:
        - The check, one of V(nvidia_driver), V(driver_version), V(gpus_present), V(model_driver_version),
          V(mig_capable) or V(container_toolkit).
      type: str
      sample: driver_version
    ok:
      description: Whether the node passed the check.
      type: bool
      sample: false
    detail:
      description: What was found against what is wanted.
      type: str
      sample: NVIDIA driver 450.51.06 is older than 450.80.02, the minimum for MIG (min_driver_version); upgrade the driver
    gpu:
      description: The GPU index, for per-GPU checks.
      type: int
      sample: 0
driver_loaded:
  description: Whether NVML initialised, which means an NVIDIA driver is installed and loaded.
  type: bool
  returned: always
  sample: true
driver_version:
  description: The NVIDIA driver version; V(null) without a driver.
  type: str
  returned: always
  sample: 550.54.15
cuda_driver_version:
  description: The highest CUDA version the driver supports; V(null) without a driver.
  type: str
  returned: always
  sample: "12.4"
nvml_version:
  description: The NVML library version; V(null) without a driver.
  type: str
  returned: always
  sample: 12.550.54.15
gpus:
  description: The selected GPUs, with the facts the checks used.
  type: list
  elements: dict
  returned: always
  contains:
    index:
      description: The GPU index.
      type: int
      sample: 0
    uuid:
      description: The GPU UUID.
      type: str
      sample: GPU-4200ccc0-2667-d4cb-9137-f932c716232a
    name:
      description: The GPU name as NVML reports it.
      type: str
      sample: NVIDIA A100-SXM4-40GB
    pci_device_id:
      description: The combined PCI device and vendor id.
      type: str
      sample: "0x20B010DE"
    mig_capable:
      description: Whether the GPU supports MIG with this driver.
      type: bool
      sample: true
    mig_mode:
      description: The current and pending MIG mode; V(null) when the GPU is not MIG-capable.
      type: dict
      sample: {"current": "disabled", "pending": "disabled"}
    min_driver_version:
      description: The oldest driver accepted for this GPU, from O(min_driver_version) and O(model_min_driver_versions).
      type: str
      sample: 450.80.02
container_toolkit:
  description:
    - The NVIDIA Container Toolkit found, as M(gpufleet.mig.gpu_info) returns it.
    - V(null) when O(check_container_toolkit=false).
  type: dict
  returned: always
  sample: {"installed": true, "version": "1.17.8", "source": "nvidia-ctk", "packages": null, "nvidia_docker2_version": null,
           "tools": {"nvidia-ctk": {"path": "/usr/bin/nvidia-ctk", "version": "1.17.8"}}}
driver_error:
  description: Why NVML did not initialise; the keys are C(call), C(code), C(text) and C(no_driver).
  type: dict
  returned: when RV(driver_loaded) is V(false)
  sample: {"call": "nvmlInit", "code": 9, "text": "Driver Not Loaded", "no_driver": true}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gpufleet.mig.plugins.module_utils._driver_checks import (
    DEFAULT_MIN_DRIVER_VERSION,
    DEFAULT_MODEL_MIN_DRIVER_VERSIONS,
    DriverPolicy,
    checked_facts,
    evaluate_node,
    failure_message,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, NvmlCallError
from ansible_collections.gpufleet.mig.plugins.module_utils._gpu import HAS_PYNVML, PYNVML_IMPORT_ERROR
from ansible_collections.gpufleet.mig.plugins.module_utils._node_info import read_node
from ansible_collections.gpufleet.mig.plugins.module_utils._toolkit import (
    DEFAULT_MIN_CONTAINER_TOOLKIT_VERSION,
    DEFAULT_MIN_NVIDIA_DOCKER2_VERSION,
    detect_with_module,
)


def argument_spec():
    return dict(
        gpus=dict(type="list", elements="str", default=["all"]),
        min_driver_version=dict(type="str", default=DEFAULT_MIN_DRIVER_VERSION),
        model_min_driver_versions=dict(type="dict", default=dict(DEFAULT_MODEL_MIN_DRIVER_VERSIONS)),
        check_container_toolkit=dict(type="bool", default=True),
        min_container_toolkit_version=dict(type="str", default=DEFAULT_MIN_CONTAINER_TOOLKIT_VERSION),
        min_nvidia_docker2_version=dict(type="str", default=DEFAULT_MIN_NVIDIA_DOCKER2_VERSION),
    )


def policy_from(params):
    return DriverPolicy(
        min_driver_version=params["min_driver_version"],
        model_min_driver_versions=params["model_min_driver_versions"],
        check_container_toolkit=params["check_container_toolkit"],
        min_container_toolkit_version=params["min_container_toolkit_version"],
        min_nvidia_docker2_version=params["min_nvidia_docker2_version"],
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_PYNVML:
        module.fail_json(msg=missing_required_lib("nvidia-ml-py"), exception=PYNVML_IMPORT_ERROR)

    try:
        policy = policy_from(module.params)
        node = read_node()
        toolkit = None
        if policy.check_container_toolkit:
            toolkit = detect_with_module(module)
        checks = evaluate_node(node, toolkit, policy, module.params["gpus"])
        facts = checked_facts(node, toolkit, policy, module.params["gpus"])
    except NvmlCallError as error:
        module.fail_json(msg="Reading the GPUs of this node failed: %s" % error, **error.failure_keys())
    except MigError as error:
        module.fail_json(msg=str(error))

    message = failure_message(checks)
    if message:
        module.fail_json(msg=message, changed=False, checks=checks, **facts)
    module.exit_json(changed=False, checks=checks, **facts)


if __name__ == "__main__":
    main()
