#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_lease
short_description: Hold, renew or release a Kubernetes Lease, so that only one rollout runs at a time
version_added: 0.2.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Takes a C(coordination.k8s.io/v1) Lease for O(holder) as client-go's leader election does, renews it when
    O(holder) already has it, and releases it with O(state=absent).
  - A lease held by another live holder is waited for up to O(wait_timeout) seconds (V(0) refuses at once); the
    failure names the holder and since when it holds the lease.
  - A lease whose holder stopped renewing it (its C(renewTime) plus C(leaseDurationSeconds) has passed), or whose
    holder was a process of this control host that no longer exists (see O(controller)), is taken over;
    RV(action=takeover) and RV(previous) report from whom.
  - Writes are conditional on the C(resourceVersion) the decision was based on, so of two runs racing for the
    lease exactly one gets it.
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.k8s_auth
attributes:
  check_mode:
    support: full
    details:
      - Reads the lease and reports what would happen, including a refusal, without writing.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - Renewing moves C(renewTime), so holding a lease always reports a change; releasing a lease one does not
        hold changes nothing.
options:
  name:
    description: Name of the Lease.
    type: str
    required: true
  namespace:
    description: Namespace of the Lease.
    type: str
    default: kube-system
  holder:
    description:
      - Identity of the holder, for example a rollout id. Runs that cooperate (job slices of one rollout) share it.
    type: str
    required: true
  state:
    description:
      - V(present) takes or renews the lease; V(absent) releases it if O(holder) holds it.
    type: str
    choices: [present, absent]
    default: present
  duration:
    description:
      - Seconds the lease stays valid after each renewal. Another run may take it over once that time has passed
        without a renewal, so it must cover the longest stretch between two renewals.
    type: int
    default: 900
  wait_timeout:
    description:
      - Seconds to wait while another live holder has the lease. V(0) refuses at once.
    type: int
    default: 0
  poll_interval:
    description: Seconds between looks at a lease held by someone else.
    type: float
    default: 5
  controller:
    description:
      - C(<hostname>:<pid>) of the run that holds the lease (lookup P(gpufleet.mig.controller_process#lookup)), recorded
        in the lease's C(gpufleet.mig/controller) annotation.
      - When another holder's lease was last written by a process of this host that no longer exists (a run that was
        killed), the lease is taken over at once instead of after it expires. The module must then run on the control
        host that runs the play (C(delegate_to) it), as the liveness check looks at this host's processes.
    type: str
requirements:
  - kubernetes (the Python client)
seealso:
  - module: gpufleet.mig.k8s_node
  - name: Leases
    description: How Kubernetes uses Lease objects for leader election.
    link: https://kubernetes.io/docs/concepts/architecture/leases/
"""

EXAMPLES = r"""
- name: Take the cluster's rollout lease, or refuse at once if another rollout holds it
  gpufleet.mig.k8s_lease:
    name: gpufleet-mig-rollout
    holder: "{{ mig_rollout_id }}"
    controller: "{{ lookup('gpufleet.mig.controller_process') }}"
    duration: 900
  delegate_to: localhost
  run_once: true

- name: Wait up to ten minutes for the rollout that holds the lease
  gpufleet.mig.k8s_lease:
    name: gpufleet-mig-rollout
    holder: "{{ mig_rollout_id }}"
    wait_timeout: 600
  delegate_to: localhost
  run_once: true

- name: Give the lease back at the end of the rollout
  gpufleet.mig.k8s_lease:
    name: gpufleet-mig-rollout
    holder: "{{ mig_rollout_id }}"
    state: absent
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
action:
  description:
    - V(create), V(renew), V(acquire) (a released lease), V(takeover) (an expired lease), V(release) or V(none).
  type: str
  returned: success
  sample: takeover
previous:
  description: The lease as it was before the task, or V(null) when it did not exist.
  type: dict
  returned: success
  contains:
    holder:
      description: Who held it (V(null) when released).
      type: str
      sample: rollout-20261203-1
    since:
      description: When that holder acquired it.
      type: str
      sample: "2026-12-03T12:00:00.000000Z"
    renewed:
      description: When it was last renewed.
      type: str
      sample: "2026-12-03T12:10:00.000000Z"
    expires:
      description: When it expires without a renewal.
      type: str
      sample: "2026-12-03T12:25:00.000000Z"
    expired:
      description: Whether it had expired.
      type: bool
      sample: true
    duration_seconds:
      description: Its C(leaseDurationSeconds).
      type: int
      sample: 900
    transitions:
      description: Its C(leaseTransitions).
      type: int
      sample: 2
    controller_gone:
      description: Whether its holder was a process of this control host that no longer exists.
      type: bool
      sample: false
  sample: {"holder": "rollout-1", "since": "2026-12-03T12:00:00.000000Z", "expired": true}
lease:
  description: The Lease object after the task (in check mode, as it would be written).
  type: dict
  returned: success
  sample: {"spec": {"holderIdentity": "rollout-2", "leaseDurationSeconds": 900}}
holder:
  description: On a refusal, the holder that kept the lease.
  type: str
  returned: when the lease was held by another holder past O(wait_timeout)
  sample: rollout-20261203-1
since:
  description: On a refusal, since when that holder has the lease.
  type: str
  returned: when the lease was held by another holder past O(wait_timeout)
  sample: "2026-12-03T12:00:00.000000Z"
api_status:
  description: The HTTP status of a failed Kubernetes API call.
  type: int
  returned: when an API call failed
  sample: 403
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_auth import k8s_auth_argument_spec
from ansible_collections.gpufleet.mig.plugins.module_utils._lease import hold_lease, release_lease
from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import require_kubernetes, with_kube_client


def argument_spec():
    spec = k8s_auth_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        namespace=dict(type="str", default="kube-system"),
        holder=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        duration=dict(type="int", default=900),
        wait_timeout=dict(type="int", default=0),
        poll_interval=dict(type="float", default=5),
        controller=dict(type="str"),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_kubernetes(module)
    params = module.params
    if params["duration"] < 1 or params["wait_timeout"] < 0 or params["poll_interval"] <= 0:
        module.fail_json(msg="duration must be 1 or more, wait_timeout 0 or more and poll_interval positive (seconds).")

    def lease_task(client):
        if params["state"] == "absent":
            return release_lease(client, params["name"], params["namespace"], params["holder"], check_mode=module.check_mode)
        return hold_lease(client, params["name"], params["namespace"], params["holder"], params["duration"],
                          params["wait_timeout"], check_mode=module.check_mode, poll_interval=params["poll_interval"],
                          controller=params["controller"])

    result = with_kube_client(module, lease_task)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
