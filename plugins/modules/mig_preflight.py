#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mig_preflight
short_description: Read a GPU node and judge whether and how its MIG rollout can go, in one task
version_added: 0.1.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Reads the node with M(gpufleet.mig.gpu_info) (its GPUs with their MIG profile catalogs, the driver checks, the
    unit files of other MIG managers, the record of host services an interrupted run stopped, whose each GPU process
    is), then judges it on the control host. The verdict is the node's preflight record, the one the
    gpufleet.mig.preflight role registers as C(preflight_node).
  - Collects every problem of the node rather than stopping at the first - its role variables checked against the
    node-phase roles' argument specs, where its layout comes from (its own O(mig_config) or O(mig_layout), or the
    first matching fleet policy), failed driver checks, its Kubernetes node missing, another MIG manager driving
    it - and plans the node when nothing is wrong before planning. The plan is made by the decision function of
    M(gpufleet.mig.mig_plan_info), which the node phase applies with M(gpufleet.mig.mig_layout).
  - Never fails for what it finds; RV(problems) lists it, and the caller refuses the node. Never changes anything.
  - The Kubernetes side comes from one read of the whole fleet with M(gpufleet.mig.k8s_node_info) before this task,
    named by O(cluster_var), so a fleet of N nodes makes two API requests rather than N.
  - An action plugin; the read runs on the node, the judging on the control host. Fleet policies need the Python
    library C(jmespath) on the control host.
requirements:
  - nvidia-ml-py (pynvml), on the node
  - jmespath, on the control host, with O(policies)
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.attributes.info_module
options:
  read:
    description:
      - Options of M(gpufleet.mig.gpu_info) for the read, such as C(driver_checks), C(host_paths),
        C(stopped_services_record), C(proc_root) and C(detect_container_toolkit). C(profile_catalog) is always on and
        C(gpus) is O(gpus).
    type: dict
    default: {}
  kubernetes:
    description: Whether the node is a Kubernetes node; V(false) judges it without the cluster.
    type: bool
    default: true
  k8s_node_name:
    description: The node's Kubernetes node name; unset means the inventory name.
    type: str
  cluster_var:
    description:
      - The name of the variable that holds the M(gpufleet.mig.k8s_node_info) result of the fleet read (with
        C(names) and C(drain_preview)). It is read as the variable holds it rather than templated into this task's
        arguments, since it is the same for every node of the fleet.
      - Unset, or a node missing from it, is a problem for a Kubernetes node.
    type: str
  strategy:
    description: The NVIDIA device plugin's MIG strategy the layout is checked against.
    type: str
    choices: [none, single, mixed]
    default: mixed
  mig_config:
    description: The node's desired layout as a config name, built in or from O(mig_config_file).
    type: str
    default: ""
  mig_config_file:
    description: A mig-parted v1 config file on the control host, relative to where C(ansible-playbook) runs.
    type: str
    default: ""
  mig_layout:
    description: The node's desired layout inline, as M(gpufleet.mig.mig_layout) takes it.
    type: raw
  gpus:
    description: The GPUs the rollout changes, by index or UUID, or V(all).
    type: list
    elements: str
    default: [all]
  in_use:
    description: What a GPU gets that a host process outside any pod is in the way of.
    type: str
    choices: [fail, skip]
    default: fail
  policies:
    description:
      - Fleet policies, each C({match, mig_config | mig_layout}); for a node without its own O(mig_config) or
        O(mig_layout) the first whose JMESPath C(match) is truthy on the read, the node's C(labels) and
        C(inventory_hostname) gives the layout.
    type: list
    elements: raw
    default: []
  policy_default:
    description: What a node without a layout of its own that no policy matches gets.
    type: str
    choices: [fail, skip]
    default: fail
  gpu_operator_mig_manager:
    description: What a node the GPU Operator's mig-manager drives (label C(nvidia.com/mig.config)) gets.
    type: str
    choices: [fail, ignore]
    default: fail
  host_mig_manager:
    description: What a node with C(nvidia-mig-manager.service) installed (O(read) C(host_paths)) gets.
    type: str
    choices: [fail, ignore]
    default: fail
  role_specs_var:
    description:
      - The name of the variable that holds the options of the node-phase roles' argument specs, by name. Every
        such role variable the node defines with another value than its default is checked against its option, so
        a bad value refuses the node before anything changes. Required options are left out, the playbook gives
        them later.
      - "When a role variable among them feeds one of this task's own options and that option's check fails, the task
        fails naming the role variable (C(Preflight refused <host>: invalid variables: ...)) instead of the option."
    type: str
  labels:
    description: The node label keys the rollout writes, by role (C(state), C(config), C(strategy), C(gpu_clients), C(cordoned_by)).
    type: dict
    default: {}
attributes:
  action:
    support: full
    description: Reads the node through the module M(gpufleet.mig.gpu_info), judges it on the control host.
  async:
    support: none
    description: Cannot run asynchronously.
seealso:
  - module: gpufleet.mig.gpu_info
  - module: gpufleet.mig.mig_plan_info
  - module: gpufleet.mig.k8s_node_info
"""

EXAMPLES = r"""
- name: Read every GPU node of the play in the cluster, once
  gpufleet.mig.k8s_node_info:
    names: "{{ ansible_play_hosts }}"
    drain_preview: {}
  delegate_to: localhost
  run_once: true
  register: fleet_read

- name: Read and judge the node
  gpufleet.mig.mig_preflight:
    cluster_var: fleet_read
    mig_config: all-balanced
    read:
      driver_checks:
        min_driver_version: "535.54.03"
  register: node_verdict

- name: Refuse the node when something is wrong with it
  ansible.builtin.assert:
    that: node_verdict.problems | length == 0
    fail_msg: "{{ node_verdict.problems | join(' | ') }}"
"""

RETURN = r"""
problems:
  description: Everything that stops the node's rollout; empty when it can go.
  returned: always
  type: list
  elements: str
warnings_found:
  description:
    - What was found and let pass, such as another MIG manager set to V(ignore), or a driver that lists no MIG
      profiles while MIG is disabled. Also shown as the task's warnings.
  returned: always
  type: list
  elements: str
plan:
  description:
    - The node's plan, as M(gpufleet.mig.mig_plan_info) returns it (C(gpus), C(summary), C(layout), C(converged),
      C(config_id)); empty when a problem stopped planning.
  returned: always
  type: dict
converged:
  description: Nothing to do - MIG matches and, in a cluster, the node's labels record this config and strategy as applied.
  returned: always
  type: bool
mig_converged:
  description: MIG mode and devices already match, so the node needs no drain and no GPU change.
  returned: always
  type: bool
skipped:
  description: No layout of its own and no matching policy, under O(policy_default=skip); the node is left alone.
  returned: always
  type: bool
config_id:
  description: The identity of the desired layout that the node's config label records.
  returned: always
  type: str
layout_source:
  description: Where the layout came from (C(source) host, policy or skip, C(description), C(policy_index), C(match)).
  returned: always
  type: dict
evictions:
  description: What draining the node would do now (C(evict), C(refuse), C(terminating) pods).
  returned: always
  type: dict
gpus_before:
  description: The GPUs as read, without their profile catalogs.
  returned: always
  type: list
  elements: dict
labels_before:
  description: The node's Kubernetes labels as read.
  returned: always
  type: dict
stopped_services:
  description: Host services an interrupted run stopped and did not start again.
  returned: always
  type: list
  elements: str
clients_paused:
  description: An interrupted run left the device plugin and GPU feature discovery paused on the node.
  returned: always
  type: bool
host:
  description: The node's inventory name.
  returned: always
  type: str
k8s_node_name:
  description: The node's Kubernetes node name; null outside Kubernetes.
  returned: always
  type: str
kubernetes:
  description: Whether the node was judged as a Kubernetes node.
  returned: always
  type: bool
strategy:
  description: The MIG strategy judged against.
  returned: always
  type: str
driver_version:
  description: The NVIDIA driver version read.
  returned: always
  type: str
"""
