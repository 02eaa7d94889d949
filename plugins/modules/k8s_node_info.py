#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_node_info
short_description: Read a Kubernetes node and the pods on it, optionally waiting for pods to leave or arrive
version_added: 0.1.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Reads a Kubernetes node (schedulability, labels, annotations) and, with O(pod_selector), the pods bound to
    it that the selector matches, in every namespace. Never changes anything.
  - With O(wait_for), polls until no matching pod is left on the node (V(pods_absent), terminating pods
    included) or until at least one is there (V(pods_present)), and fails after O(wait_timeout) seconds.
  - With O(names) instead, reads many nodes at once for a fleet-wide plan, in two API requests however many nodes
    there are (every node, and with O(drain_preview) every pod, listed once), and returns them in RV(nodes).
  - Runs wherever the Kubernetes API is reachable (usually the control host, with C(delegate_to)).
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.attributes.info_module
  - gpufleet.mig.k8s_auth
  - gpufleet.mig.option_names
options:
  name:
    description: The name of the node. Exactly one of O(name) and O(names) is required.
    type: str
  names:
    description:
      - The names of many nodes, read together (RV(nodes), RV(missing)). Cannot be combined with O(pod_selector) or
        O(wait_for); O(drain_preview) says which pods on them a drain would evict.
    type: list
    elements: str
  drain_preview:
    description:
      - With O(names), also sort the pods on each node as M(gpufleet.mig.k8s_node) would for a drain with the same
        choices, and return the result as C(drain) in each entry of RV(nodes). Nothing is evicted.
    type: dict
    suboptions:
      gpu_pods_only:
        description: Only pods that use C(nvidia.com/*) resources would be evicted.
        type: bool
        default: true
      pod_selector:
        description: Only pods this label selector matches would be evicted.
        type: str
      delete_emptydir_data:
        description: Pods with emptyDir volumes would be evicted instead of refused.
        type: bool
        default: false
      force:
        description: Pods no controller recreates would be evicted instead of refused.
        type: bool
        default: false
  pod_selector:
    description:
      - A label selector (C(app.kubernetes.io/name=nvidia-device-plugin)). The pods on the node that it matches are
        returned in RV(pods). Without it no pods are read.
    type: str
  wait_for:
    description:
      - Wait until no pod matching O(pod_selector) is on the node (V(pods_absent)) or until at least one is
        (V(pods_present)). Needs O(pod_selector).
    type: str
    choices: [pods_absent, pods_present]
  wait_timeout:
    description: How many seconds O(wait_for) waits before the task fails.
    type: int
    default: 300
  wait_sleep:
    description: Seconds between two reads while waiting.
    type: int
    default: 2
seealso:
  - module: gpufleet.mig.k8s_node
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Read the node
  gpufleet.mig.k8s_node_info:
    name: gpu-node-1
  delegate_to: localhost
  register: node_info

- name: Wait until the device plugin has left the node
  gpufleet.mig.k8s_node_info:
    name: gpu-node-1
    pod_selector: app.kubernetes.io/name=nvidia-device-plugin
    wait_for: pods_absent
    wait_timeout: 120
  delegate_to: localhost

- name: Read every GPU node of the play once, with the pods a drain would evict
  gpufleet.mig.k8s_node_info:
    names: "{{ ansible_play_hosts }}"
    drain_preview:
      gpu_pods_only: true
  run_once: true
  delegate_to: localhost
  register: cluster_nodes
"""

RETURN = r"""
node:
  description: The node as it is.
  type: dict
  returned: with O(name)
  contains:
    name:
      description: The node name.
      type: str
      sample: gpu-node-1
    unschedulable:
      description: Whether the node is cordoned.
      type: bool
      sample: false
    labels:
      description: All labels of the node.
      type: dict
      sample: {"nvidia.com/mig.strategy": "mixed"}
    annotations:
      description: All annotations of the node.
      type: dict
      sample: {}
pods:
  description: The pods on the node that O(pod_selector) matches, by namespace and name; empty without O(pod_selector).
  type: list
  elements: dict
  returned: with O(name)
  contains:
    namespace:
      description: The pod's namespace.
      type: str
      sample: kube-system
    name:
      description: The pod's name.
      type: str
      sample: nvidia-device-plugin-daemonset-x7k2p
    phase:
      description: The pod's phase.
      type: str
      sample: Running
    terminating:
      description: Whether the pod is being deleted.
      type: bool
      sample: false
    controller_kind:
      description: The kind of the pod's controller (V(DaemonSet), V(ReplicaSet), ...); V(null) without one.
      type: str
      sample: DaemonSet
    controller_name:
      description: The name of the pod's controller.
      type: str
      sample: nvidia-device-plugin-daemonset
nodes:
  description: With O(names), the nodes found, by name, as RV(node) describes one.
  type: dict
  returned: when O(names) is set
  sample:
    gpu-node-1:
      name: gpu-node-1
      unschedulable: false
      labels: {"nvidia.com/gpu.present": "true"}
      annotations: {}
      drain:
        evict: [{"namespace": "ml", "name": "trainer-0"}]
        refuse: []
        terminating: []
missing:
  description: With O(names), the names the cluster has no node for.
  type: list
  elements: str
  returned: when O(names) is set
  sample: [gpu-node-9]
api_status:
  description: The HTTP status of a failed API call.
  type: int
  returned: when an API call failed with an HTTP answer
  sample: 404
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_auth import k8s_auth_argument_spec
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_node import (
    DEFAULT_TIMEOUT,
    WAIT_CONDITIONS,
    read_fleet_info,
    read_node_info,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import exit_with, with_kube_client
from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import checked_option_names, option_names_argument_spec


def argument_spec():
    spec = k8s_auth_argument_spec()
    spec.update(
        name=dict(type="str"),
        names=dict(type="list", elements="str"),
        drain_preview=dict(type="dict", options=dict(
            gpu_pods_only=dict(type="bool", default=True),
            pod_selector=dict(type="str"),
            delete_emptydir_data=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
        )),
        pod_selector=dict(type="str"),
        wait_for=dict(type="str", choices=list(WAIT_CONDITIONS)),
        wait_timeout=dict(type="int", default=DEFAULT_TIMEOUT),
        wait_sleep=dict(type="int", default=2),
    )
    spec.update(option_names_argument_spec())
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(), required_by={"wait_for": ("pod_selector", "name"), "drain_preview": "names"},
        required_one_of=[("name", "names")], mutually_exclusive=[("name", "names"), ("names", "pod_selector")],
        supports_check_mode=True)

    params = module.params

    def task(client):
        names = checked_option_names(params["option_names"], module.argument_spec)
        if params["names"] is not None:
            return read_fleet_info(client, params["names"], drain_preview=params["drain_preview"])
        return read_node_info(client, params["name"], pod_selector=params["pod_selector"], wait_for=params["wait_for"],
                              timeout=params["wait_timeout"], sleep_seconds=params["wait_sleep"], names=names)

    result = with_kube_client(module, task)
    exit_with(module, dict(result, changed=False))


if __name__ == "__main__":
    main()
