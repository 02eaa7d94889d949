#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mig_demand_info
short_description: Propose per-node MIG layouts that serve the GPU pods the cluster has pending
version_added: 0.1.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Reads the GPU requests (C(nvidia.com/gpu), C(nvidia.com/mig-*)) of the cluster's pending and running pods and
    the GPU nodes, and proposes a MIG layout per node that serves the pending pods. Changes nothing.
  - A pod's C(nodeSelector) and required node affinity, and the nodes' taints and cordons, decide which nodes it may
    go to. Labels under C(nvidia.com/) are set by GPU feature discovery from the layout, so they do not rule a node
    out; under the C(single) strategy a C(nvidia.com/gpu.product) selector ending in C(-MIG-<profile>) asks for that
    profile.
  - A node's current layout and profile catalog come from O(nodes) (M(gpufleet.mig.gpu_info) results with
    C(profile_catalog=true)). A GPU node the API lists but O(nodes) does not describe is used as it is (what it
    advertises) and never changed.
  - The proposal serves the most pending pods; among equal proposals it evicts the fewest running pods (a node that
    changes is drained; its new layout still holds its running GPU pods), then changes the fewest nodes. Every
    proposed GPU layout is one the planner places, and every node keeps to O(strategy) (C(single) keeps one profile
    per node). For up to 16 pending pods on up to 16 GPU nodes the optimum is searched exhaustively within
    O(search_budget) steps; otherwise, or when the budget runs out, the greedy proposal stands.
  - Runs once, wherever the Kubernetes API is reachable (usually the control host).
requirements:
  - kubernetes (the Python client)
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.attributes.info_module
  - gpufleet.mig.k8s_auth
options:
  nodes:
    description:
      - The GPU nodes whose layout may change, one entry per inventory host.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description: The inventory host name; the proposal's host vars are keyed by it.
        type: str
        required: true
      k8s_node_name:
        description: The Kubernetes node name, when it differs from O(nodes[].host).
        type: str
      gpus:
        description: The RV(gpufleet.mig.gpu_info#module:gpus) of the node, read with C(profile_catalog=true).
        type: list
        elements: dict
        required: true
  strategy:
    description: The NVIDIA device plugin's MIG strategy; with V(none) no MIG device is advertised and nothing is proposed.
    type: str
    choices: [none, single, mixed]
    default: mixed
  namespaces:
    description: Read the pods of these namespaces only; all namespaces when empty.
    type: list
    elements: str
    default: []
  search_budget:
    description:
      - How many steps the exhaustive search for the optimum may take before the greedy proposal stands
        (RV(method) says which). V(0) skips the search.
    type: int
    default: 20000
notes:
  - Pods are matched to nodes as the default scheduler filters them (node selector, required node affinity, taints,
    cordons). Preferred affinity, pod (anti-)affinity, topology spread and priorities are not modelled.
  - Pending pods that fit a node as it is are counted as served by the current layout.
seealso:
  - module: gpufleet.mig.gpu_info
  - name: NVIDIA device plugin, MIG strategies
    description: What each strategy advertises.
    link: https://github.com/NVIDIA/k8s-device-plugin#configuration-option-details
"""

EXAMPLES = r"""
# Run on the GPU nodes; playbooks/propose.yml does this and can write the proposal to a file.
- name: Read the GPUs and their MIG profiles
  gpufleet.mig.gpu_info:
    profile_catalog: true
    detect_container_toolkit: false
  register: node_gpus

- name: Describe the node
  ansible.builtin.set_fact:
    demand_node:
      host: "{{ inventory_hostname }}"
      k8s_node_name: "{{ k8s_node_name | default(inventory_hostname) }}"
      gpus: "{{ node_gpus.gpus }}"

- name: Propose layouts for the pending GPU pods
  gpufleet.mig.mig_demand_info:
    strategy: mixed
    nodes: "{{ ansible_play_hosts | map('extract', hostvars, 'demand_node') | list }}"
    kubeconfig: ~/.kube/config
  run_once: true
  delegate_to: localhost
  register: proposal

- name: Show the proposal
  ansible.builtin.debug:
    var: proposal.table
  run_once: true
"""

RETURN = r"""
host_vars:
  description: The proposal as host vars for site.yml, C(mig_layout) per inventory host that changes.
  type: dict
  returned: always
  sample: {"gpu-1": {"mig_layout": {"3g.20gb": 1, "1g.5gb": 2}}}
limit:
  description: The hosts that change, comma-separated, for C(--limit).
  type: str
  returned: always
  sample: gpu-1
nodes:
  description: Per GPU node, C(node), C(host), C(changed), C(current) and C(proposed) (one line per GPU), C(mig_layout),
    C(serves) and C(evicts) (pod keys), and C(unchangeable) (why the node cannot change, or V(null)).
  type: list
  elements: dict
  returned: always
served:
  description: The pending pods the proposal serves, with C(pod), C(node) and C(by) (V(current layout) or V(proposed layout)).
  type: list
  elements: dict
  returned: always
pending:
  description: The pending pods that stay pending, with C(pod) and C(reason).
  type: list
  elements: dict
  returned: always
  sample: [{"pod": "ml/huge", "reason": "asks for nvidia.com/mig-7g.80gb, which no GPU of the known nodes offers"}]
totals:
  description: C(pending_pods), C(served), C(served_by_current_layout), C(still_pending), C(changed_nodes), C(evictions).
  type: dict
  returned: always
table:
  description: The proposal as lines of text.
  type: list
  elements: str
  returned: always
method:
  description: V(exhaustive) when the search for the optimum finished within O(search_budget), else V(greedy).
  type: str
  returned: always
strategy:
  description: The strategy the proposal keeps to.
  type: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.mig.plugins.module_utils._demand import STRATEGIES, gpu_nodes, gpu_pods, propose, render
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_auth import k8s_auth_argument_spec
from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import fail_with, require_kubernetes, with_kube_client


def argument_spec():
    spec = k8s_auth_argument_spec()
    spec.update(
        nodes=dict(type="list", elements="dict", default=[], options=dict(
            host=dict(type="str", required=True),
            k8s_node_name=dict(type="str"),
            gpus=dict(type="list", elements="dict", required=True),
        )),
        strategy=dict(type="str", choices=list(STRATEGIES), default="mixed"),
        namespaces=dict(type="list", elements="str", default=[]),
        search_budget=dict(type="int", default=20000),
    )
    return spec


def read_cluster(client, namespaces):
    """(API nodes, API pods): every node, and the pods of ``namespaces`` (all when empty)."""
    api_nodes = client.list_nodes()
    if namespaces:
        api_pods = [pod for namespace in namespaces for pod in client.list_pods(namespace=namespace)]
    else:
        api_pods = client.list_pods()
    return api_nodes, api_pods


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_kubernetes(module)
    params = module.params
    if params["search_budget"] < 0:
        module.fail_json(msg="search_budget must be 0 or more, got %d" % params["search_budget"])
    node_facts = {}
    for entry in params["nodes"]:
        name = entry["k8s_node_name"] or entry["host"]
        if name in node_facts:
            module.fail_json(msg="nodes lists the Kubernetes node %s twice (hosts %s and %s)"
                             % (name, node_facts[name]["host"], entry["host"]))
        node_facts[name] = {"host": entry["host"], "gpus": entry["gpus"]}

    api_nodes, api_pods = with_kube_client(module, lambda client: read_cluster(client, params["namespaces"]))
    try:
        known = set(node["metadata"]["name"] for node in api_nodes)
        missing = sorted(set(node_facts) - known)
        if missing:
            module.fail_json(msg="nodes names Kubernetes node(s) the API does not list: %s (set k8s_node_name when the "
                                 "node name differs from the host name)" % ", ".join(missing))
        result = propose(gpu_nodes(api_nodes, node_facts), gpu_pods(api_pods), params["strategy"],
                         exhaustive_budget=params["search_budget"])
    except MigError as error:
        fail_with(module, error)
    module.exit_json(changed=False, **render(result, params["strategy"]))


if __name__ == "__main__":
    main()
