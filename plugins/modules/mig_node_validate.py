#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mig_node_validate
short_description: Check that a Kubernetes node advertises the MIG devices and labels its GPUs have
version_added: 0.1.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Computes, from a GPU node's actual MIG state (the result of M(gpufleet.mig.gpu_info)) and the device plugin's
    MIG strategy, the C(nvidia.com/*) extended resources and the C(nvidia.com/*) GPU feature discovery (GFD) labels
    the node must show, as the NVIDIA k8s-device-plugin and GFD v0.20.0 produce them.
  - Reads the Node object until its allocatable and capacity resources and its labels match, or fails after
    O(timeout) seconds with the differences between expected and seen values. O(check_labels=false) leaves the
    labels out.
  - Resources are validated on allocatable. A resource at 0 counts as absent, because kubelet keeps a vanished
    resource in capacity with 0 allocatable for a grace period; such resources are returned in RV(lingering).
  - With O(validation_pods=true), runs one pod per resource (or per device), reads each pod's C(nvidia-smi -L)
    listing, and checks that every pod got a device of its resource on this node and that no two pods got the
    same device.
  - Fails at once, without waiting, when the device plugin cannot serve the layout under the strategy, for example
    a node with more than one MIG profile under the single strategy.
  - Runs on the control host. Delegate it to C(localhost) and pass the node's M(gpufleet.mig.gpu_info) result in
    O(gpu_facts).
requirements:
  - kubernetes (the Python client)
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.k8s_auth
  - gpufleet.mig.option_names
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the node once, without waiting, and runs no validation pods. A node that does not match
        still fails the task.
  diff_mode:
    support: none
    details:
      - The module changes nothing it could show a diff of; the differences between expected and seen values are
        always returned in RV(differences).
  idempotent:
    support: partial
    details:
      - Validation pods are deleted after the run unless O(validation_pod_cleanup) keeps them. Kept pods, and the
        deletion of pods an earlier run left behind, report a change.
options:
  node_name:
    description:
      - The name of the Kubernetes node that runs the GPUs described by O(gpu_facts).
    type: str
    required: true
    aliases: [name]
  gpu_facts:
    description:
      - The registered result of M(gpufleet.mig.gpu_info) on that node, run without O(gpufleet.mig.gpu_info#module:gpus)
        so that it covers every GPU the device plugin sees.
      - Read it after the last MIG change on the node.
    type: dict
    required: true
  strategy:
    description:
      - The MIG strategy the device plugin and GFD run with (their C(migStrategy) chart value).
    type: str
    required: true
    choices: [none, single, mixed]
    aliases: [mig_strategy]
  timeout:
    description:
      - How many seconds to wait for the node to show the expected resources and labels.
      - GFD relabels every 60 seconds by default, and the device plugin only sees a new MIG layout after its pod
        restarts, so allow for both.
    type: int
    default: 300
  poll_interval:
    description:
      - Seconds between two reads of the node, and between two reads of the validation pods.
    type: int
    default: 5
  check_labels:
    description:
      - Compare the node's GFD labels too.
      - Set to V(false) when GPU feature discovery does not run in the cluster (the device plugin chart deploys it
        only with C(gfd.enabled=true)); resources are then the only check.
    type: bool
    default: true
  validation_pods:
    description:
      - Run validation pods after the node matches.
    type: bool
    default: false
  validation_pod_count:
    description:
      - V(one_per_resource) runs one pod per extended resource.
      - V(one_per_device) runs as many pods per resource as the resource has devices, which also proves that every
        device can be handed out. Pods that end at once free their device for the next pod, so use a
        O(validation_command) that keeps the container running, such as C(["sh", "-c", "nvidia-smi -L; sleep 3600"]);
        the module reads each log as soon as it lists a device and then deletes the pods.
    type: str
    default: one_per_resource
    choices: [one_per_resource, one_per_device]
  validation_namespace:
    description:
      - The namespace of the validation pods. It must exist.
    type: str
    default: default
  validation_image:
    description:
      - The container image of the validation pods. It must contain C(nvidia-smi), or the NVIDIA container runtime must
        inject it.
    type: str
    default: nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04
  validation_command:
    description:
      - The command of the validation pods. Its output must contain the C(nvidia-smi -L) listing of the pod's devices.
    type: list
    elements: str
    default: [nvidia-smi, -L]
  validation_pod_timeout:
    description:
      - How many seconds the validation pods have, in total, to list their devices.
    type: int
    default: 120
  validation_pod_cleanup:
    description:
      - When to delete the validation pods. V(on_success) keeps them for inspection when a check fails.
    type: str
    default: always
    choices: [always, on_success, never]
notes:
  - The expected labels follow today's GFD, not the GFD v0.2.0 output of NVIDIA's original MIG document. For example,
    the A100-40GB C(3g.20gb) device is labelled C(nvidia.com/mig-3g.20gb.*), not C(mig-3g.21gb.*), and
    C(nvidia.com/gpu.replicas), C(nvidia.com/vgpu.present) and the C(nvidia.com/cuda.*-version.*) labels exist.
  - Labels that the GPU facts do not determine are not compared and are listed in RV(expected.unverified_labels).
    These include C(nvidia.com/gfd.timestamp), C(nvidia.com/gpu.machine) and C(nvidia.com/gpu.mode), and the
    architecture, SM and engine labels when O(gpu_facts) does not carry those numbers.
  - The module assumes the device plugin runs without GPU sharing (time-slicing or MPS) and that the node is not a
    vGPU guest.
  - Validation pods are bound to the node with C(spec.nodeName), so they run on a cordoned node. They tolerate
    every taint and request one unit of their resource.
seealso:
  - module: gpufleet.mig.gpu_info
  - module: gpufleet.mig.mig_layout
  - name: NVIDIA k8s-device-plugin
    description: The device plugin and GPU feature discovery, their MIG strategies and labels.
    link: https://github.com/NVIDIA/k8s-device-plugin
  - name: MIG Support in Kubernetes
    description: NVIDIA's walkthrough of the none, single and mixed strategies.
    link: https://docs.nvidia.com/datacenter/cloud-native/kubernetes/latest/index.html
"""

EXAMPLES = r"""
- name: Read the GPUs of the node after the MIG change
  gpufleet.mig.gpu_info:
  register: node_gpus

- name: Wait until the node advertises its MIG devices under the mixed strategy
  gpufleet.mig.mig_node_validate:
    node_name: "{{ inventory_hostname }}"
    gpu_facts: "{{ node_gpus }}"
    strategy: mixed
    timeout: 600
  delegate_to: localhost

- name: Validate and run one pod per MIG device, keeping failed pods for inspection
  gpufleet.mig.mig_node_validate:
    node_name: "{{ inventory_hostname }}"
    gpu_facts: "{{ node_gpus }}"
    strategy: single
    kubeconfig: /etc/gpufleet/kubeconfig
    validation_pods: true
    validation_pod_count: one_per_device
    validation_namespace: gpu-validation
    validation_command: [sh, -c, "nvidia-smi -L; sleep 3600"]
    validation_pod_cleanup: on_success
  delegate_to: localhost
  register: validation

- name: Show which device each validation pod got
  ansible.builtin.debug:
    msg: "{{ validation.pods | map(attribute='assigned.uuid') | list }}"
"""

RETURN = r"""
node:
  description: The validated node.
  type: str
  returned: always
  sample: gpu-node-1
matched:
  description: Whether the node showed the expected resources and labels.
  type: bool
  returned: when the node was read
  sample: true
waited:
  description: Seconds spent waiting for the node to match.
  type: float
  returned: when the node was read
  sample: 12.5
expected:
  description: What the node must show.
  type: dict
  returned: always
  contains:
    strategy:
      description: The MIG strategy.
      type: str
      sample: single
    resources:
      description: The C(nvidia.com/*) extended resources and their counts.
      type: dict
      sample: {"nvidia.com/gpu": 7}
    labels:
      description: The C(nvidia.com/*) labels GFD must have written, with their values.
      type: dict
      sample: {"nvidia.com/gpu.product": "A100-SXM4-40GB-MIG-1g.5gb", "nvidia.com/gpu.count": "7", "nvidia.com/mig.strategy": "single"}
    unverified_labels:
      description: Labels GFD writes that the GPU facts do not determine; they are not compared.
      type: list
      elements: str
      sample: ["nvidia.com/gfd.timestamp", "nvidia.com/gpu.machine", "nvidia.com/gpu.mode"]
    devices:
      description:
        - The devices the device plugin hands out under each resource.
        - Each has C(kind) (C(gpu) or C(mig)), C(uuid), C(gpu_index), C(gpu_uuid), C(gpu_name), C(profile) and
          C(mig_device_index).
      type: dict
      sample: {"nvidia.com/mig-1g.5gb": [{"kind": "mig", "uuid": "MIG-GPU-4200ccc0-2667-d4cb-9137-f932c716232a/9/0",
               "gpu_index": 0, "gpu_uuid": "GPU-4200ccc0-2667-d4cb-9137-f932c716232a", "gpu_name": "A100-SXM4-40GB",
               "profile": "1g.5gb", "mig_device_index": 2}]}
    warnings:
      description: Conditions that do not stop the device plugin, such as a pending MIG mode change.
      type: list
      elements: str
      sample: []
    problem:
      description:
        - Why the device plugin cannot serve the layout under the strategy, or V(null).
        - Has C(strategy), C(reason) (C(empty_mig_gpu), C(multiple_profiles), C(mixed_mig_modes) or C(partial_profile)),
          C(plugin_error) (the error the device plugin logs), C(gpus) and C(message).
      type: dict
      sample: null
seen:
  description: The C(nvidia.com/*) resources and labels the node showed at the last read.
  type: dict
  returned: when the node was read
  contains:
    allocatable:
      description: Allocatable C(nvidia.com/*) resources.
      type: dict
      sample: {"nvidia.com/gpu": 7}
    capacity:
      description: Capacity of C(nvidia.com/*) resources.
      type: dict
      sample: {"nvidia.com/gpu": 7}
    labels:
      description: The node's C(nvidia.com/*) labels.
      type: dict
      sample: {"nvidia.com/gpu.count": "7"}
differences:
  description:
    - The differences between expected and seen values under C(allocatable), C(capacity) and C(labels); empty when the
      node matches.
    - Each entry maps a resource or label to C(expected) and C(seen); V(null) means absent.
  type: dict
  returned: when the node was read
  sample: {"allocatable": {"nvidia.com/gpu": {"expected": 7, "seen": 1}}, "capacity": {},
           "labels": {"nvidia.com/mig.strategy": {"expected": "single", "seen": null}}}
lingering:
  description: Resources still in capacity with 0 allocatable, left by a device plugin that no longer serves them.
  type: dict
  returned: when the node was read
  sample: {"nvidia.com/mig-7g.40gb": 1}
pods:
  description: The validation pods.
  type: list
  elements: dict
  returned: always
  contains:
    name:
      description: The pod name.
      type: str
      sample: gpufleet-validate-gpu-x7k2p
    namespace:
      description: The pod namespace.
      type: str
      sample: default
    resource:
      description: The resource the pod requested one unit of.
      type: str
      sample: nvidia.com/gpu
    phase:
      description: The pod phase when its log was read.
      type: str
      sample: Succeeded
    log:
      description: The pod's log.
      type: str
      sample: "GPU 0: A100-SXM4-40GB (UUID: GPU-4200ccc0-2667-d4cb-9137-f932c716232a)\n
        MIG 1g.5gb Device 0: (UUID: MIG-GPU-4200ccc0-2667-d4cb-9137-f932c716232a/7/0)\n"
    devices:
      description: The devices the log lists, each with C(kind), C(index), C(uuid) and C(name) (GPUs) or C(profile) and C(gpu_uuid) (MIG devices).
      type: list
      elements: dict
      sample: [{"kind": "mig", "index": 0, "profile": "1g.5gb", "uuid": "MIG-GPU-4200ccc0-2667-d4cb-9137-f932c716232a/7/0",
                "gpu_uuid": "GPU-4200ccc0-2667-d4cb-9137-f932c716232a"}]
    assigned:
      description: The node's device the pod got, in the form of RV(expected.devices), or V(null) when the check failed.
      type: dict
      sample: {"kind": "mig", "uuid": "MIG-GPU-4200ccc0-2667-d4cb-9137-f932c716232a/7/0", "profile": "1g.5gb"}
    problem:
      description: Why the pod check failed, or V(null).
      type: str
      sample: null
    deleted:
      description: Whether the module deleted the pod.
      type: bool
      sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, StrategyError, TaskError
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeApiError, KubeClient
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_auth import k8s_auth_argument_spec
from ansible_collections.gpufleet.mig.plugins.module_utils._mig_strategy import STRATEGIES
from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import require_kubernetes
from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import checked_option_names, option_name, option_names_argument_spec
from ansible_collections.gpufleet.mig.plugins.module_utils._node_validate import (
    CLEANUPS,
    DEFAULT_COMMAND,
    POD_COUNTS,
    node_expectation,
    validate_node,
)


def argument_spec():
    spec = k8s_auth_argument_spec()
    spec.update(
        node_name=dict(type="str", required=True, aliases=["name"]),
        gpu_facts=dict(type="dict", required=True),
        strategy=dict(type="str", required=True, choices=list(STRATEGIES), aliases=["mig_strategy"]),
        timeout=dict(type="int", default=300),
        poll_interval=dict(type="int", default=5),
        check_labels=dict(type="bool", default=True),
        validation_pods=dict(type="bool", default=False),
        validation_pod_count=dict(type="str", default=POD_COUNTS[0], choices=list(POD_COUNTS)),
        validation_namespace=dict(type="str", default="default"),
        validation_image=dict(type="str", default="nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"),
        validation_command=dict(type="list", elements="str", default=list(DEFAULT_COMMAND)),
        validation_pod_timeout=dict(type="int", default=120),
        validation_pod_cleanup=dict(type="str", default=CLEANUPS[0], choices=list(CLEANUPS)),
    )
    spec.update(option_names_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_kubernetes(module)
    params = module.params
    node = params["node_name"]
    try:
        names = checked_option_names(params["option_names"], module.argument_spec)
    except MigError as error:
        module.fail_json(msg=str(error))
    for option, minimum in (("timeout", 0), ("poll_interval", 1), ("validation_pod_timeout", 0)):
        if params[option] < minimum:
            module.fail_json(msg="%s must be at least %d, not %s" % (option_name(names, option), minimum, params[option]))

    try:
        expectation = node_expectation(params["gpu_facts"], params["strategy"])
    except StrategyError as error:
        module.fail_json(msg="Cannot compute what node %s must show: %s" % (node, error), node=node)
    if expectation.problem is not None:
        module.fail_json(msg="Node %s cannot be validated: %s" % (node, expectation.problem), node=node,
                         expected=expectation.to_dict(), pods=[])
    for warning in expectation.warnings:
        module.warn(warning)

    try:
        with KubeClient.from_params(params) as client:
            result = validate_node(
                client, node, expectation, timeout=params["timeout"], poll_interval=params["poll_interval"],
                check_mode=module.check_mode, check_labels=params["check_labels"],
                validation_pods=params["validation_pods"],
                namespace=params["validation_namespace"], image=params["validation_image"],
                command=params["validation_command"], pod_count=params["validation_pod_count"],
                cleanup=params["validation_pod_cleanup"], pod_timeout=params["validation_pod_timeout"], names=names)
    except TaskError as error:
        module.fail_json(msg=str(error), **error.details)
    except KubeApiError as error:
        module.fail_json(msg=str(error), node=node, expected=expectation.to_dict(), status=error.status,
                         reason=error.reason)
    except MigError as error:
        module.fail_json(msg=str(error), node=node, expected=expectation.to_dict())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
