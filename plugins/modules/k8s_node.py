#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_node
short_description: Cordon, drain or uncordon a Kubernetes node and manage its labels and annotations
version_added: 0.1.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Makes a Kubernetes node schedulable or not, drains it the way C(kubectl drain) does, and sets or removes
    its labels and annotations. Runs wherever the Kubernetes API is reachable (usually the control host,
    with C(delegate_to)).
  - O(state=drained) cordons the node and evicts its pods through the Eviction API, so PodDisruptionBudgets
    are honoured. An eviction refused because of a budget (HTTP 429) is retried every O(poll_interval)
    seconds until O(timeout); the task then waits until every evicted pod is gone.
  - DaemonSet pods are never evicted (their controller would recreate them at once; the NVIDIA device plugin
    is one of them). Mirror pods (static pods of the kubelet) are skipped. Pods already terminating are
    waited for. Pods that finished (C(Succeeded), C(Failed)) are evicted like any other.
  - Before touching the node, the module checks every pod it would evict and fails, changing nothing, when a
    pod uses an C(emptyDir) volume (see O(delete_emptydir_data)) or has no controller to recreate it (see
    O(force)). The message lists every such pod.
  - A drain that fails (timeout, API error) leaves the node cordoned and never uncordons it, so no new work
    lands on a node in an unknown state. The result lists the pods evicted and the pods that blocked.
  - Pods are only ever deleted through the Eviction API, unless O(disable_eviction=true).
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.k8s_auth
  - gpufleet.mig.option_names
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module reports in RV(evicted) the pods a drain would evict, and fails as a real run
        would when a pod cannot be evicted safely. It cannot predict PodDisruptionBudget refusals.
  diff_mode:
    support: full
    details:
      - Shows C(unschedulable) and the managed labels and annotations before and after (V(null) = absent).
  idempotent:
    support: full
    details:
      - A node already in O(state) with the wanted labels and annotations, and with nothing left to evict,
        reports no change.
options:
  name:
    description:
      - The name of the node.
    type: str
    required: true
  state:
    description:
      - V(cordoned) marks the node unschedulable; running pods stay.
      - V(drained) cordons the node and evicts its pods (see the description for which ones).
      - V(uncordoned) marks the node schedulable again.
      - When not set, the module only manages O(labels) and O(annotations).
    type: str
    choices: [cordoned, drained, uncordoned]
  labels:
    description:
      - Labels to set on the node. A value of V(null) removes the label. Labels not named here are left alone.
      - Values must be strings; booleans become V(true)/V(false) and numbers their decimal text.
    type: dict
  annotations:
    description:
      - Annotations to set on the node, with the same rules as O(labels).
    type: dict
  pod_selector:
    description:
      - Only with O(state=drained). A label selector (for example V(app=training,tier!=web)) that limits the
        drain to the pods it matches; the others stay. As C(kubectl drain --pod-selector).
    type: str
  gpu_pods_only:
    description:
      - Only with O(state=drained). Evict only the pods that request or limit an C(nvidia.com/*) resource
        (full GPUs or MIG devices); every other pod stays on the node.
    type: bool
    default: false
  delete_emptydir_data:
    description:
      - Only with O(state=drained). Evict pods that use C(emptyDir) volumes, whose data is then lost.
      - Without it such pods make the task fail before anything changes.
    type: bool
    default: false
  force:
    description:
      - Only with O(state=drained). Evict pods that no controller manages (no owner reference with
        C(controller=true)). Nothing recreates them.
      - Without it such pods make the task fail before anything changes.
      - This does not bypass PodDisruptionBudgets; see O(disable_eviction).
    type: bool
    default: false
  disable_eviction:
    description:
      - Only with O(state=drained). Delete pods with a plain DELETE instead of the Eviction API, which bypasses
        PodDisruptionBudgets. Use with care.
    type: bool
    default: false
  grace_period:
    description:
      - Only with O(state=drained). Seconds each pod gets to terminate. V(0) stops them at once.
      - When not set (or negative), every pod gets its own C(terminationGracePeriodSeconds).
    type: int
  timeout:
    description:
      - Only with O(state=drained). Seconds the whole drain may take, evictions refused by a
        PodDisruptionBudget and the wait for evicted pods included. Past it the task fails and the node
        stays cordoned.
    type: int
    default: 300
  poll_interval:
    description:
      - Only with O(state=drained). Seconds between eviction retries while a PodDisruptionBudget refuses them.
    type: int
    default: 5
  cordon_owner:
    description:
      - Record that this task's cordon belongs to a rollout, and lift only such a cordon.
      - With O(state=cordoned) or O(state=drained), a schedulable node is cordoned and labelled
        C(gpufleet.mig/cordoned-by) with this value (made a valid label value). A node that is already
        unschedulable without that label was cordoned by someone else; it is drained as asked but not labelled.
      - With O(state=uncordoned), the node is uncordoned only when it carries C(gpufleet.mig/cordoned-by), from
        this or an earlier run; someone else's cordon stays (RV(cordon=kept)).
      - Not set, the task cordons and uncordons whatever the node's history.
    type: str
  max_unavailable:
    description:
      - With O(cordon_owner), a new cordon waits until fewer than this many nodes carry a rollout's cordon
        (label C(gpufleet.mig/cordoned-by) and unschedulable), across every run that uses the same O(budget_lock).
      - Nodes that failed and stay cordoned keep counting until a later run finishes them.
    type: int
  budget_lock:
    description:
      - The coordination.k8s.io/v1 Lease under which the count and the cordon are one step for all runs.
    type: dict
    default: {name: gpufleet-mig-cordon-budget, namespace: kube-system}
    suboptions:
      name:
        description: Lease name.
        type: str
        default: gpufleet-mig-cordon-budget
      namespace:
        description: Lease namespace.
        type: str
        default: kube-system
  budget_timeout:
    description:
      - Seconds a new cordon may wait for room in the O(max_unavailable) budget before the task fails with the
        node untouched.
    type: int
    default: 300
requirements:
  - kubernetes (the Python client)
notes:
  - Unlike M(kubernetes.core.k8s_drain), a PodDisruptionBudget refusal is retried until O(timeout) instead of
    failing at once, DaemonSet pods are always left alone, the task waits for evicted pods to be gone, and a
    failed drain never uncordons the node.
seealso:
  - module: kubernetes.core.k8s_drain
  - module: gpufleet.mig.helm_release
  - name: Safely Drain a Node
    description: How kubectl drain and PodDisruptionBudgets work.
    link: https://kubernetes.io/docs/tasks/administer-cluster/safely-drain-node/
"""

EXAMPLES = r"""
- name: Cordon a GPU node before changing its MIG layout
  gpufleet.mig.k8s_node:
    name: gpu-node-1
    state: cordoned
  delegate_to: localhost

- name: Evict the pods that use GPUs, waiting up to 10 minutes for disruption budgets
  gpufleet.mig.k8s_node:
    name: gpu-node-1
    state: drained
    gpu_pods_only: true
    delete_emptydir_data: true
    timeout: 600
  delegate_to: localhost

- name: Mark the rollout state and make the node schedulable again
  gpufleet.mig.k8s_node:
    name: gpu-node-1
    state: uncordoned
    labels:
      nvidia.com/mig.config.state: success
      example.com/maintenance: null
  delegate_to: localhost

- name: Cordon as part of a rollout, at most two rollout cordons in the cluster at once
  gpufleet.mig.k8s_node:
    name: gpu-node-1
    state: drained
    gpu_pods_only: true
    cordon_owner: mig-rollout-20261203
    max_unavailable: 2
  delegate_to: localhost

- name: Lift the rollout's cordon, leaving an administrator's cordon in place
  gpufleet.mig.k8s_node:
    name: gpu-node-1
    state: uncordoned
    cordon_owner: mig-rollout-20261203
  delegate_to: localhost

- name: Use a given kubeconfig and context
  gpufleet.mig.k8s_node:
    name: gpu-node-1
    labels:
      nvidia.com/gpu.present: "true"
    kubeconfig: /etc/gpufleet/kubeconfig
    context: production
  delegate_to: localhost
"""

RETURN = r"""
changed:
  description: Whether the node was patched or pods were evicted (or would be, in check mode).
  type: bool
  returned: always
  sample: true
node:
  description: The node after the task (in check mode, as it would be).
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
      sample: true
    labels:
      description: All labels of the node.
      type: dict
      sample: {"kubernetes.io/hostname": "gpu-node-1", "nvidia.com/gpu.present": "true"}
    annotations:
      description: All annotations of the node.
      type: dict
      sample: {}
evicted:
  description:
    - The pods evicted (deleted, with O(disable_eviction=true)), each with C(namespace) and C(name).
    - In check mode, the pods that would be evicted.
  type: list
  elements: dict
  returned: success
  sample: [{"namespace": "ml", "name": "train-7c9f6d-xk2lp"}]
skipped_pods:
  description: Pods of the node a drain left alone, each with C(namespace), C(name) and C(reason).
  type: list
  elements: dict
  returned: success
  sample: [{"namespace": "nvidia-device-plugin", "name": "nvdp-nvidia-device-plugin-5xq2d", "reason": "DaemonSet pod"}]
blocked:
  description: On a failed drain, the pods that could not be evicted, with C(namespace), C(name) and the API server's C(reason).
  type: list
  elements: dict
  returned: when a drain failed on evictions
  sample: [{"namespace": "ml", "name": "train-0", "reason": "Cannot evict pod as it would violate the pod's disruption budget."}]
terminating:
  description: On a failed drain, the pods evicted that were still terminating at the deadline.
  type: list
  elements: dict
  returned: when a drain timed out waiting for pods to go
  sample: [{"namespace": "ml", "name": "train-0"}]
refused:
  description: The pods a drain refused to evict, with C(namespace), C(name) and C(reason) (see O(force), O(delete_emptydir_data)).
  type: list
  elements: dict
  returned: when a drain failed on such pods
  sample: [{"namespace": "default", "name": "scratch", "reason": "has no controller to recreate it (set force to evict it anyway)"}]
cordon:
  description:
    - With O(cordon_owner), what happened to the node's cordon. V(cordon) the task cordoned it; V(ours) a rollout
      had cordoned it before (an interrupted run); V(kept) someone else's cordon, neither taken nor lifted;
      V(uncordon) the rollout's cordon was lifted; V(none) schedulable before and after.
  type: str
  returned: with O(cordon_owner)
  sample: kept
budget_holders:
  description: When the O(max_unavailable) budget stayed full, the nodes holding it.
  type: list
  elements: str
  returned: when a cordon waited for the budget in vain
  sample: [gpu-node-3]
api_status:
  description: The HTTP status of a failed Kubernetes API call.
  type: int
  returned: when an API call failed
  sample: 404
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_auth import k8s_auth_argument_spec
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_node import DEFAULT_TIMEOUT, STATES, run_k8s_node
from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import exit_with, with_kube_client
from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import checked_option_names, option_names_argument_spec


def argument_spec():
    spec = k8s_auth_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=list(STATES)),
        labels=dict(type="dict"),
        annotations=dict(type="dict"),
        pod_selector=dict(type="str"),
        gpu_pods_only=dict(type="bool", default=False),
        delete_emptydir_data=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        disable_eviction=dict(type="bool", default=False),
        grace_period=dict(type="int"),
        timeout=dict(type="int", default=DEFAULT_TIMEOUT),
        poll_interval=dict(type="int", default=5),
        cordon_owner=dict(type="str"),
        max_unavailable=dict(type="int"),
        budget_lock=dict(
            type="dict",
            default=dict(name="gpufleet-mig-cordon-budget", namespace="kube-system"),
            options=dict(
                name=dict(type="str", default="gpufleet-mig-cordon-budget"),
                namespace=dict(type="str", default="kube-system"),
            ),
        ),
        budget_timeout=dict(type="int", default=DEFAULT_TIMEOUT),
    )
    spec.update(option_names_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, required_by={"max_unavailable": "cordon_owner"})
    if module.params["max_unavailable"] is not None and module.params["max_unavailable"] < 1:
        module.fail_json(msg="max_unavailable must be 1 or more (mig_max_unavailable): with 0 no node could ever be cordoned.")

    params = module.params

    def task(client):
        names = checked_option_names(params["option_names"], module.argument_spec)
        return run_k8s_node(
            client,
            params["name"],
            state=params["state"],
            labels=params["labels"],
            annotations=params["annotations"],
            pod_selector=params["pod_selector"],
            gpu_pods_only=params["gpu_pods_only"],
            delete_emptydir_data=params["delete_emptydir_data"],
            force=params["force"],
            disable_eviction=params["disable_eviction"],
            grace_period=params["grace_period"],
            timeout=params["timeout"],
            poll_interval=params["poll_interval"],
            check_mode=module.check_mode,
            cordon_owner=params["cordon_owner"],
            max_unavailable=params["max_unavailable"],
            budget_lock=params["budget_lock"],
            budget_timeout=params["budget_timeout"],
            names=names,
        )

    result = with_kube_client(module, task)
    exit_with(module, result)


if __name__ == "__main__":
    main()
