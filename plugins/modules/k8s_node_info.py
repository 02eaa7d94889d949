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
  - Runs wherever the Kubernetes API is reachable (usually the control host, with C(delegate_to)).
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.attributes.info_module
  - gpufleet.mig.k8s_auth
  - gpufleet.mig.option_names
options:
  name:
    description: The name of the node.
    type: str
    required: true
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
"""

RETURN = r"""
node:
  description: The node as it is.
  type: dict
  returned: success
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
  returned: always
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
api_status:
  description: The HTTP status of a failed API call.
  type: int
  returned: when an API call failed with an HTTP answer
  sample: 404
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gpufleet.mig.plugins.module_utils.errors import MigError
from ansible_collections.gpufleet.mig.plugins.module_utils.k8s import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    KubeClient,
    k8s_auth_argument_spec,
)
from ansible_collections.gpufleet.mig.plugins.module_utils.k8s_node import DEFAULT_TIMEOUT, WAIT_CONDITIONS, read_node_info
from ansible_collections.gpufleet.mig.plugins.module_utils.module_glue import exit_with, fail_with
from ansible_collections.gpufleet.mig.plugins.module_utils.option_names import checked_option_names, option_names_argument_spec


def argument_spec():
    spec = k8s_auth_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        pod_selector=dict(type="str"),
        wait_for=dict(type="str", choices=list(WAIT_CONDITIONS)),
        wait_timeout=dict(type="int", default=DEFAULT_TIMEOUT),
        wait_sleep=dict(type="int", default=2),
    )
    spec.update(option_names_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), required_by={"wait_for": "pod_selector"},
                           supports_check_mode=True)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)

    params = module.params
    try:
        names = checked_option_names(params["option_names"], module.argument_spec)
        with KubeClient.from_params(params) as client:
            result = read_node_info(client, params["name"], pod_selector=params["pod_selector"],
                                    wait_for=params["wait_for"], timeout=params["wait_timeout"],
                                    sleep_seconds=params["wait_sleep"], names=names)
    except MigError as error:
        fail_with(module, error)
    exit_with(module, dict(result, changed=False))


if __name__ == "__main__":
    main()
