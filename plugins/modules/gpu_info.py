#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_info
short_description: Read NVIDIA driver, GPU and MIG facts from a GPU node
version_added: 0.1.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Reads, through NVML (the C(pynvml) Python bindings), what a GPU node has.
  - Node facts are the driver version, the CUDA driver version, the NVML version and the NVIDIA Container Toolkit
    version, when the toolkit is installed.
  - Per GPU, the facts are its index, UUID, name, PCI bus id, memory, whether it is MIG-capable, its current and
    pending MIG mode, its GPU instances and compute instances (profile names, placements, MIG device UUIDs,
    memory), and the processes running on it.
  - Never changes anything. The facts come back as result keys; the module does not set C(ansible_facts).
  - A node without a usable NVIDIA driver is reported with RV(driver_loaded=false) instead of failing, unless
    O(require_driver=true). Use M(gpufleet.mig.driver_check) to enforce minimum versions.
  - Runs on the GPU node itself.
requirements:
  - nvidia-ml-py (pynvml)
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.attributes.info_module
  - gpufleet.mig.gpus
options:
  detect_container_toolkit:
    description:
      - Also detect the NVIDIA Container Toolkit. The module runs C(nvidia-ctk --version) and
        C(nvidia-container-cli --version). When neither command reports a version, it queries the package database
        (C(dpkg-query) or C(rpm)) for C(nvidia-container-toolkit), C(nvidia-container-toolkit-base),
        C(libnvidia-container-tools) and C(nvidia-docker2).
      - Set to V(false) to skip running these commands; RV(container_toolkit) is then V(null).
    type: bool
    default: true
  profile_catalog:
    description:
      - Also return, for each MIG-capable GPU, every MIG profile it offers (RV(gpus[].profile_catalog)), as read from
        NVML now. gpufleet.mig.mig_demand_info proposes layouts from it.
      - Some drivers list MIG profiles only while MIG mode is enabled; the catalog is then empty.
    type: bool
    default: false
  driver_checks:
    description:
      - Also run the checks of M(gpufleet.mig.driver_check) on what was read, and return them in RV(checks) without
        failing, so one call gives a rollout's preflight everything it needs from the node.
      - The suboptions are those of M(gpufleet.mig.driver_check), with the same defaults.
      - With O(driver_checks.check_container_toolkit=true) the container toolkit is detected whatever
        O(detect_container_toolkit) says.
    type: dict
    suboptions:
      min_driver_version:
        description: The oldest NVIDIA driver accepted on any node.
        type: str
        default: 450.80.02
      model_min_driver_versions:
        description: The oldest driver accepted per GPU model, on top of O(driver_checks.min_driver_version).
        type: dict
      check_container_toolkit:
        description: Check the NVIDIA Container Toolkit.
        type: bool
        default: true
      min_container_toolkit_version:
        description: The oldest NVIDIA Container Toolkit accepted.
        type: str
        default: 1.3.0
      min_nvidia_docker2_version:
        description: The oldest C(nvidia-docker2) package accepted when no toolkit version can be read.
        type: str
        default: 2.5.0
  host_paths:
    description:
      - Paths on the node to look for, such as the unit files of other MIG managers; RV(host_paths_present) lists
        those that exist.
    type: list
    elements: path
    default: []
  stopped_services_record:
    description:
      - The record M(gpufleet.mig.host_services) keeps on the node of the host services it stopped and has not
        started again; RV(stopped_services) lists what it names. A rollout interrupted between stopping and starting
        them leaves it behind.
    type: path
  proc_root:
    description:
      - Where the node's process table is mounted. With it, every process NVML reports on a GPU gets C(owner)
        (V(pod) when its cgroup lies below the kubelet's C(kubepods) cgroup, V(host) otherwise, V(gone) when it has
        ended, V(unknown) when its cgroup cannot be read) and C(cgroup), read from C(<proc_root>/<pid>/cgroup).
      - V(/proc) on the node itself, V(/host/proc) from a container that mounts the host's. Unset, processes are
        returned as NVML reports them.
    type: path
  require_driver:
    description:
      - Fail when NVML cannot be initialised, for example when the node has no NVIDIA driver.
      - With V(false), such a node is reported with RV(driver_loaded=false) and the NVML error in RV(driver_error).
      - Initialisation failures that do not mean "no driver" fail the task either way. One example is an NVML
        library that does not match the loaded kernel module.
    type: bool
    default: false
notes:
  - The O(gpus) option limits RV(gpus) to the selected GPUs; a GPU the node does not have fails the task.
  - Profile names follow the names the NVIDIA device plugin and C(nvidia-smi) use (V(3g.20gb), V(1c.3g.20gb)).
    The module computes them from the NVML numbers, so they exist on drivers whose NVML reports no names.
seealso:
  - module: gpufleet.mig.driver_check
  - name: NVIDIA Multi-Instance GPU User Guide
    description: Concepts, supported GPUs and profiles.
    link: https://docs.nvidia.com/datacenter/tesla/mig-user-guide/
"""

EXAMPLES = r"""
- name: Read the GPU facts of the node
  gpufleet.mig.gpu_info:
  register: node_gpus

- name: Show each GPU's MIG mode
  ansible.builtin.debug:
    msg: "GPU {{ item.index }} {{ item.name }}: MIG {{ item.mig_mode.current | default('not supported') }}"
  loop: "{{ node_gpus.gpus }}"

- name: Read only GPU 0, without probing the container toolkit
  gpufleet.mig.gpu_info:
    gpus: [0]
    detect_container_toolkit: false
  register: gpu0

- name: Read everything a rollout plan needs from the node in one call
  gpufleet.mig.gpu_info:
    profile_catalog: true
    driver_checks:
      min_driver_version: 535.104.05
    host_paths: [/etc/systemd/system/nvidia-mig-manager.service]
    stopped_services_record: /var/lib/gpufleet-mig/stopped-host-services.json
  register: node_read

- name: Fail on nodes without an NVIDIA driver
  gpufleet.mig.gpu_info:
    require_driver: true
"""

RETURN = r"""
checks:
  description:
    - The checks of M(gpufleet.mig.driver_check) on what was read, each with C(name), C(ok), C(detail) and C(gpu) for
      per-GPU checks. The module does not fail on them.
  type: list
  elements: dict
  returned: when O(driver_checks) is set
  sample:
    - {"name": "driver_version", "ok": true, "detail": "NVIDIA driver 550.54.15 is at least 450.80.02"}
host_paths_present:
  description: The paths of O(host_paths) that exist on the node.
  type: list
  elements: str
  returned: always
  sample: [/etc/systemd/system/nvidia-mig-manager.service]
stopped_services:
  description: The host services the record O(stopped_services_record) names, in the order to start them.
  type: list
  elements: str
  returned: when O(stopped_services_record) is set
  sample: [nvidia-persistenced.service, nvidia-dcgm.service]
driver_loaded:
  description: Whether NVML initialised, which means an NVIDIA driver is installed and loaded.
  type: bool
  returned: always
  sample: true
driver_error:
  description: Why NVML did not initialise.
  type: dict
  returned: when RV(driver_loaded) is V(false)
  contains:
    call:
      description: The NVML call that failed.
      type: str
      sample: nvmlInit
    code:
      description: The NVML return code.
      type: int
      sample: 9
    text:
      description: NVML's text for the code.
      type: str
      sample: Driver Not Loaded
    no_driver:
      description: V(true) when the code means that no driver is installed or loaded (DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND).
      type: bool
      sample: true
driver_version:
  description: The NVIDIA driver version; V(null) without a driver.
  type: str
  returned: always
  sample: 550.54.15
cuda_driver_version:
  description: The highest CUDA version the driver supports (C(major.minor)); V(null) without a driver.
  type: str
  returned: always
  sample: "12.4"
nvml_version:
  description: The NVML library version; V(null) without a driver.
  type: str
  returned: always
  sample: 12.550.54.15
container_toolkit:
  description:
    - The NVIDIA Container Toolkit found on the node.
    - V(null) when O(detect_container_toolkit=false).
  type: dict
  returned: always
  contains:
    installed:
      description: Whether any part of the toolkit was found.
      type: bool
      sample: true
    version:
      description: The toolkit version, in the toolkit's own numbering; V(null) when unknown.
      type: str
      sample: 1.17.8
    source:
      description: Where RV(container_toolkit.version) was read from, a command name or C(package <name>).
      type: str
      sample: nvidia-ctk
    tools:
      description:
        - The toolkit commands found, by name, each with C(path) and C(version).
        - A command whose version cannot be read also has C(rc) and C(output).
      type: dict
      sample: {"nvidia-ctk": {"path": "/usr/bin/nvidia-ctk", "version": "1.17.8"}}
    packages:
      description:
        - The toolkit packages installed, by name, with their upstream versions.
        - V(null) unless the package database was consulted, which happens only when no toolkit command reports a version.
      type: dict
      sample: {"nvidia-docker2": "2.5.0", "nvidia-container-toolkit": "1.3.0"}
    nvidia_docker2_version:
      description: The version of the legacy C(nvidia-docker2) package, when the package database was consulted and has it.
      type: str
      sample: 2.5.0
gpus:
  description: The selected GPUs, in index order; empty without a driver.
  type: list
  elements: dict
  returned: always
  contains:
    index:
      description: The GPU index, as C(nvidia-smi) numbers GPUs.
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
    pci_bus_id:
      description: The PCI bus id.
      type: str
      sample: "00000000:36:00.0"
    pci_device_id:
      description: The combined PCI device and vendor id.
      type: str
      sample: "0x20B010DE"
    pci_subsystem_id:
      description: The PCI subsystem id.
      type: str
      sample: "0x134F10DE"
    memory_total_mib:
      description: The total GPU memory in MiB.
      type: int
      sample: 40960
    compute_capability:
      description: The CUDA compute capability, C(major.minor).
      type: str
      sample: "8.0"
    mig_capable:
      description: Whether the GPU supports MIG with this driver.
      type: bool
      sample: true
    mig_mode:
      description: The MIG mode; V(null) when the GPU is not MIG-capable.
      type: dict
      contains:
        current:
          description: The mode in effect, V(enabled) or V(disabled).
          type: str
          sample: enabled
        pending:
          description: The mode that applies after the next GPU reset, V(enabled) or V(disabled).
          type: str
          sample: enabled
    max_mig_devices:
      description: How many MIG devices the GPU can have; V(0) when MIG is off.
      type: int
      sample: 7
    gpu_instances:
      description: The GPU instances, by id; empty when MIG is off.
      type: list
      elements: dict
      contains:
        id:
          description: The GPU instance id.
          type: int
          sample: 2
        profile_id:
          description: The GPU instance profile id, as C(nvidia-smi mig -lgip) prints it.
          type: int
          sample: 9
        profile_name:
          description: The profile name.
          type: str
          sample: 3g.20gb
        placement:
          description: The placement, in memory slices.
          type: dict
          sample: {"start": 4, "size": 4}
        memory_mib:
          description: The GPU instance memory in MiB, shared by its compute instances.
          type: int
          sample: 20096
        slice_count:
          description: The compute slices of the GPU instance profile.
          type: int
          sample: 3
        multiprocessors:
          description: The streaming multiprocessors of the GPU instance profile.
          type: int
          sample: 42
        copy_engines:
          description: The copy engines of the GPU instance profile.
          type: int
          sample: 3
        decoders:
          description: The video decoders (NVDEC) of the GPU instance profile.
          type: int
          sample: 2
        encoders:
          description: The video encoders (NVENC) of the GPU instance profile.
          type: int
          sample: 0
        jpegs:
          description: The JPEG decoders of the GPU instance profile.
          type: int
          sample: 0
        ofas:
          description: The optical flow accelerators of the GPU instance profile.
          type: int
          sample: 0
        compute_instances:
          description: The compute instances of the GPU instance, by id. Each is one MIG device.
          type: list
          elements: dict
          contains:
            id:
              description: The compute instance id within its GPU instance.
              type: int
              sample: 0
            profile_id:
              description: The compute instance profile id.
              type: int
              sample: 2
            profile_name:
              description: The MIG device profile name.
              type: str
              sample: 3g.20gb
            placement:
              description: The placement, in compute slices within the GPU instance.
              type: dict
              sample: {"start": 0, "size": 3}
            multiprocessors:
              description: The streaming multiprocessors of the compute instance profile.
              type: int
              sample: 42
            mig_uuid:
              description: The MIG device UUID.
              type: str
              sample: MIG-c7384736-a75d-5afc-978f-d2f1294409fd
            mig_device_index:
              description: The MIG device index on its GPU, as C(nvidia-smi -L) prints it.
              type: int
              sample: 0
    processes:
      description: The processes using the GPU or its MIG devices.
      type: list
      elements: dict
      contains:
        pid:
          description: The process id.
          type: int
          sample: 4242
        name:
          description: The process name, when NVML can read it.
          type: str
          sample: python3
        used_memory_mib:
          description: The GPU memory the process uses in MiB, when NVML reports it.
          type: int
          sample: 1024
        gpu_instance_id:
          description: The GPU instance the process runs on; V(null) when MIG is off.
          type: int
          sample: 2
        compute_instance_id:
          description: The compute instance the process runs on; V(null) when MIG is off.
          type: int
          sample: 0
    profile_catalog:
      description:
        - Every GPU instance profile the GPU offers, as NVML reports it (C(model), C(memory_total_bytes), C(profiles)
          with C(index), C(profile_id), C(name), C(slice_count), C(instance_count), C(memory_mib), engine counts and
          C(placements) in memory slices).
      type: dict
      returned: when O(profile_catalog=true) and the GPU is MIG-capable
      sample: {"model": "NVIDIA A100-SXM4-40GB", "memory_total_bytes": 42949672960, "profiles": []}
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu as nvml
from ansible_collections.gpufleet.mig.plugins.module_utils._driver_checks import (
    DEFAULT_MIN_DRIVER_VERSION,
    DriverPolicy,
    evaluate_node,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, NvmlCallError
from ansible_collections.gpufleet.mig.plugins.module_utils._host_processes import annotate_process_owners
from ansible_collections.gpufleet.mig.plugins.module_utils._host_services import Record
from ansible_collections.gpufleet.mig.plugins.module_utils._gpu import HAS_PYNVML, PYNVML_IMPORT_ERROR
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import catalog_to_dict
from ansible_collections.gpufleet.mig.plugins.module_utils._node_info import driver_failure_message, read_node
from ansible_collections.gpufleet.mig.plugins.module_utils._selection import select_gpus
from ansible_collections.gpufleet.mig.plugins.module_utils._toolkit import (
    DEFAULT_MIN_CONTAINER_TOOLKIT_VERSION,
    DEFAULT_MIN_NVIDIA_DOCKER2_VERSION,
    detect_with_module,
)


def argument_spec():
    return dict(
        gpus=dict(type="list", elements="str", default=["all"]),
        detect_container_toolkit=dict(type="bool", default=True),
        profile_catalog=dict(type="bool", default=False),
        require_driver=dict(type="bool", default=False),
        driver_checks=dict(type="dict", options=dict(
            min_driver_version=dict(type="str", default=DEFAULT_MIN_DRIVER_VERSION),
            model_min_driver_versions=dict(type="dict"),
            check_container_toolkit=dict(type="bool", default=True),
            min_container_toolkit_version=dict(type="str", default=DEFAULT_MIN_CONTAINER_TOOLKIT_VERSION),
            min_nvidia_docker2_version=dict(type="str", default=DEFAULT_MIN_NVIDIA_DOCKER2_VERSION),
        )),
        host_paths=dict(type="list", elements="path", default=[]),
        stopped_services_record=dict(type="path"),
        proc_root=dict(type="path"),
    )


def driver_policy(options):
    """The driver_check policy of the driver_checks suboptions (an unset model table is driver_check's default)."""
    return DriverPolicy(
        min_driver_version=options["min_driver_version"],
        model_min_driver_versions=options["model_min_driver_versions"],
        check_container_toolkit=options["check_container_toolkit"],
        min_container_toolkit_version=options["min_container_toolkit_version"],
        min_nvidia_docker2_version=options["min_nvidia_docker2_version"],
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_PYNVML:
        module.fail_json(msg=missing_required_lib("nvidia-ml-py"), exception=PYNVML_IMPORT_ERROR)

    try:
        node = read_node()
    except NvmlCallError as error:
        module.fail_json(msg="Reading the GPUs of this node failed: %s" % error, **error.failure_keys())
    except MigError as error:
        module.fail_json(msg=str(error))

    failure = driver_failure_message(node, module.params["require_driver"])
    if failure:
        module.fail_json(msg=failure, driver_loaded=False, driver_error=node["driver_error"])

    params = module.params
    try:
        policy = driver_policy(params["driver_checks"]) if params["driver_checks"] else None
    except MigError as error:
        module.fail_json(msg="driver_checks: %s" % error)
    toolkit = None
    if params["detect_container_toolkit"] or (policy is not None and policy.check_container_toolkit):
        toolkit = detect_with_module(module)
    try:
        if policy is not None:
            # On the whole node, before the selection, as driver_check does.
            node["checks"] = evaluate_node(node, toolkit if policy.check_container_toolkit else None, policy,
                                           params["gpus"])
        node["gpus"] = select_gpus(node["gpus"], params["gpus"]) if node["driver_loaded"] else []
        annotate_process_owners(node, params["proc_root"])
        if params["stopped_services_record"]:
            node["stopped_services"] = Record(params["stopped_services_record"]).read()
    except MigError as error:
        module.fail_json(msg=str(error))
    node["host_paths_present"] = [path for path in params["host_paths"] if os.path.exists(path)]

    if module.params["profile_catalog"] and node["gpus"]:
        try:
            with nvml.NvmlSession():
                for gpu in node["gpus"]:
                    if gpu.get("mig_capable"):
                        gpu["profile_catalog"] = catalog_to_dict(nvml.read_catalog(gpu["index"]))
        except NvmlCallError as error:
            module.fail_json(msg="Reading the MIG profiles of this node failed: %s" % error, **error.failure_keys())

    node["container_toolkit"] = toolkit if module.params["detect_container_toolkit"] else None
    module.exit_json(changed=False, **node)


if __name__ == "__main__":
    main()
