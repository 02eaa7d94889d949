#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: helm_release
short_description: Install, upgrade or uninstall a Helm release, changing it only when its chart or values differ
version_added: 0.1.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Runs the C(helm) binary (Helm 3 or Helm 4) to bring a release to O(state).
  - With O(state=present) the release is installed when missing and upgraded (C(helm upgrade --install
    --reset-values)) when the chart version or the effective values differ from the deployed release.
    The effective values are the chart's defaults (C(helm show values)) with the user values on top, so
    spelling out a default value, or leaving it out, is no change. The chart compared is the one C(helm show
    chart) finds for O(chart_ref), O(chart_repo_url) and O(chart_version).
  - The user values of the release are O(values_files) in order, then O(values), then O(set_values), merged as
    helm merges C(--values) files and C(--set) options (later wins, maps merge key by key), the order
    M(kubernetes.core.helm) passes them in. They are written to one private temporary file passed with
    C(--values); they never appear on the command line. Neither do credentials; helm reads them from a
    kubeconfig (see the notes).
  - A release in status C(failed) is upgraded. A release stuck in C(pending-install), C(pending-upgrade),
    C(pending-rollback) or C(uninstalling) (another helm run is in progress, or died halfway) makes the task
    fail with the commands that repair it, rather than run into helm's "another operation is in progress".
  - A release uninstalled with kept history counts as absent.
  - The module is generic. For the NVIDIA device plugin the chart is C(nvidia-device-plugin) from
    U(https://nvidia.github.io/k8s-device-plugin), version C(0.20.0); the roles of this collection set those.
extends_documentation_fragment:
  - gpufleet.mig.attributes
  - gpufleet.mig.k8s_auth
attributes:
  check_mode:
    support: full
    details:
      - Check mode runs only the helm commands that read (C(version), C(list), C(get values), C(show chart),
        C(show values)) and returns the command it would run in RV(command).
  diff_mode:
    support: full
    details:
      - Shows the chart (C(<name>-<version>)) and the user-supplied values of the release before and after
        (O(values_files), O(values) and O(set_values) merged).
  idempotent:
    support: full
options:
  release_name:
    description:
      - The name of the release.
    type: str
    required: true
    aliases: [name]
  release_namespace:
    description:
      - The namespace of the release.
    type: str
    required: true
    aliases: [namespace]
  state:
    description:
      - V(present) installs or upgrades the release, V(absent) uninstalls it.
    type: str
    choices: [present, absent]
    default: present
  chart_ref:
    description:
      - The chart, as C(helm upgrade) takes it. A chart name when O(chart_repo_url) is set, otherwise a
        C(repo/chart) reference of a repository added with C(helm repo add), a path to a chart directory or
        archive, a URL, or an C(oci://) reference.
      - A relative path is resolved against O(playbook_dir) when a chart exists there (not against the
        module's temporary working directory).
      - Required with O(state=present).
    type: str
  playbook_dir:
    description:
      - The directory relative paths in O(chart_ref), O(values_files) and O(set_values) (C(file) type) are
        resolved against. Pass C({{ playbook_dir }}); the roles of this collection do.
      - When not set, relative paths are used as they are, from the module's working directory.
    type: path
  values_files:
    description:
      - Values files (YAML), merged in order before O(values) and O(set_values), as C(helm --values) takes them.
        Relative paths are resolved against O(playbook_dir). Read where the module runs (the controller, when
        the task is delegated to localhost as in the examples).
    type: list
    elements: path
    default: []
  set_values:
    description:
      - Values in C(helm --set) syntax, applied in order after O(values_files) and O(values).
    type: list
    elements: dict
    default: []
    suboptions:
      value:
        description:
          - C(key=value) pairs as C(--set) takes them (C(a.b=c), C(a[0]=x), C(a={x,y}), several separated by commas).
            With O(set_values[].value_type=json) or V(file), one C(key=value) whose value is JSON or a file path.
        type: str
        required: true
      value_type:
        description:
          - V(raw) infers booleans, null and integers as C(--set) does; V(string) keeps text (C(--set-string));
            V(json) parses JSON (C(--set-json)); V(file) reads the named file's content (C(--set-file)).
        type: str
        choices: [raw, string, json, file]
        default: raw
  chart_repo_url:
    description:
      - The chart repository URL, passed as C(--repo); no C(helm repo add) is needed then.
    type: str
  chart_version:
    description:
      - The chart version (or a version constraint), without a leading C(v) (chart versions have none).
      - When not set, the newest version; a newer chart version appearing in the repository then upgrades the release.
    type: str
  values:
    description:
      - Values for the chart. The release carries exactly these user values after an install or upgrade
        (values of earlier revisions are not reused).
    type: dict
    default: {}
    aliases: [release_values]
  create_namespace:
    description:
      - Create O(release_namespace) when it does not exist.
    type: bool
    default: false
  wait:
    description:
      - Wait until the release's resources are ready (and, with O(state=absent), deleted), up to O(timeout).
    type: bool
    default: false
  timeout:
    description:
      - How long helm may wait for any single Kubernetes operation, as a duration such as V(300s), V(5m0s) or V(1h).
    type: str
    default: 5m0s
  atomic:
    description:
      - Roll the release back when the install or upgrade fails (C(--atomic) with Helm 3,
        C(--rollback-on-failure) with Helm 4). Implies waiting.
    type: bool
    default: false
  binary_path:
    description:
      - The helm binary to run. When not set, C(helm) is looked up in E(PATH).
    type: path
  lock:
    description:
      - Make the change under a Kubernetes Lease, so runs that may change the same release at once (job slices of
        one rollout, two control hosts) take turns instead of colliding in helm's "another operation is in
        progress".
      - The release is compared first without the lease; only a release that must change takes it, compares again
        under it (another run may have made the change meanwhile) and gives it back afterwards, also on failure. A
        release that already matches costs no API write. Ignored in check mode.
      - Needs the Python library C(kubernetes) and reaches the API with the O(kubeconfig) / O(context) options.
    type: dict
    suboptions:
      name:
        description: The Lease's name.
        type: str
        required: true
      namespace:
        description: The Lease's namespace.
        type: str
        default: kube-system
      holder:
        description: Who holds the lease (the run), as M(gpufleet.mig.k8s_lease) O(gpufleet.mig.k8s_lease#module:holder).
        type: str
        required: true
      controller:
        description:
          - This run's C(hostname:pid), recorded on the lease; a lease written by a process of this host that no
            longer exists is taken over at once.
        type: str
      timeout:
        description:
          - Seconds to wait for another holder, and the lease's duration, after which the lease of a run that died is free.
        type: int
        default: 900
      poll_interval:
        description: Seconds between looks at a lease another holder has.
        type: float
        default: 2
requirements:
  - helm 3 or helm 4
  - PyYAML
notes:
  - Helm gets O(kubeconfig) as C(--kubeconfig) and O(context) as C(--kube-context). When O(host), O(api_key),
    O(ca_cert) or O(validate_certs=false) are set, or O(kubeconfig) is a dictionary, the module writes a private
    temporary kubeconfig with them (on top of O(kubeconfig), or of the default kubeconfig when O(host) is not
    set) and passes that instead, so the token never appears on helm's command line.
  - Unlike M(kubernetes.core.helm), the module needs no helm-diff plugin and compares effective values, so a
    release is not upgraded again on every run.
  - Helm 4 applies new releases server-side; the module leaves helm's choice alone.
seealso:
  - module: kubernetes.core.helm
  - module: gpufleet.mig.k8s_node
  - name: NVIDIA device plugin Helm chart
    description: The chart this module installs in gpufleet.mig's roles.
    link: https://github.com/NVIDIA/k8s-device-plugin#deployment-via-helm
"""

EXAMPLES = r"""
- name: Deploy the NVIDIA device plugin with the mixed MIG strategy
  gpufleet.mig.helm_release:
    release_name: nvdp
    release_namespace: nvidia-device-plugin
    create_namespace: true
    chart_ref: nvidia-device-plugin
    chart_repo_url: https://nvidia.github.io/k8s-device-plugin
    chart_version: 0.20.0
    values:
      migStrategy: mixed
      gfd:
        enabled: true
    wait: true
    timeout: 5m
  delegate_to: localhost
  run_once: true

- name: Upgrade with Helm 3, rolling back on failure
  gpufleet.mig.helm_release:
    name: nvdp
    namespace: nvidia-device-plugin
    chart_ref: nvdp/nvidia-device-plugin
    chart_version: 0.20.0
    values:
      migStrategy: single
    atomic: true
    binary_path: /usr/local/bin/helm3
  delegate_to: localhost
  run_once: true

- name: Values from files and --set options, as with kubernetes.core.helm
  gpufleet.mig.helm_release:
    release_name: nvdp
    release_namespace: nvidia-device-plugin
    chart_ref: charts/nvidia-device-plugin-0.20.0.tgz  # relative to the playbook directory
    playbook_dir: "{{ playbook_dir }}"
    values_files:
      - values/device-plugin.yml
    set_values:
      - value: migStrategy=mixed,gfd.enabled=true
      - value: image.tag=v0.20.0
        value_type: string
  delegate_to: localhost
  run_once: true

- name: Remove the release
  gpufleet.mig.helm_release:
    release_name: nvdp
    release_namespace: nvidia-device-plugin
    state: absent
    wait: true
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
changed:
  description: Whether the release was installed, upgraded or uninstalled (or would be, in check mode).
  type: bool
  returned: always
  sample: true
status:
  description:
    - The release after the task, V(null) when it is absent. In check mode, the release as it is now.
  type: dict
  returned: success
  contains:
    name:
      description: The release name.
      type: str
      sample: nvdp
    namespace:
      description: The release namespace.
      type: str
      sample: nvidia-device-plugin
    revision:
      description: The release revision.
      type: int
      sample: 2
    status:
      description: The helm status of the release (C(deployed), C(failed), ...).
      type: str
      sample: deployed
    chart:
      description: The chart, as C(<name>-<version>).
      type: str
      sample: nvidia-device-plugin-0.20.0
    app_version:
      description: The application version of the chart.
      type: str
      sample: 0.20.0
    updated:
      description: When the release was last changed, as helm prints it.
      type: str
      sample: "2026-03-02 10:14:05.072195652 +0000 UTC"
    values:
      description: The user-supplied values of the release.
      type: dict
      sample: {"migStrategy": "mixed"}
reasons:
  description: Why the release was (or would be) changed.
  type: list
  elements: str
  returned: success
  sample: ["chart nvidia-device-plugin-0.19.3 -> nvidia-device-plugin-0.20.0", "values differ"]
command:
  description:
    - The helm command that changed the release (in check mode, that would), V(null) when none was needed.
    - The C(--values) file and any C(--kubeconfig) file are temporary and removed when the task ends.
  type: list
  elements: str
  returned: success
  sample: ["/usr/local/bin/helm", "upgrade", "nvdp", "nvidia-device-plugin", "--repo", "https://nvidia.github.io/k8s-device-plugin",
           "--version", "0.20.0", "--install", "--reset-values", "--values", "/tmp/ansible-tmp/helm-values-x1.yaml",
           "--namespace", "nvidia-device-plugin", "--timeout", "5m0s"]
commands:
  description: Every helm command the task ran, in order (reads included). No secrets appear in them.
  type: list
  elements: list
  returned: always
  sample: [["/usr/local/bin/helm", "version", "--template", "{{.Version}}"]]
helm_version:
  description: The version of the helm binary.
  type: str
  returned: success
  sample: 4.1.4
cmd:
  description: The helm command that failed.
  type: list
  elements: str
  returned: when a helm command failed
  sample: ["/usr/local/bin/helm", "uninstall", "nvdp", "--namespace", "nvidia-device-plugin"]
rc:
  description: The exit status of the failed helm command.
  type: int
  returned: when a helm command failed
  sample: 1
stdout:
  description: The output of the failed helm command.
  type: str
  returned: when a helm command failed
  sample: ""
stderr:
  description: The error output of the failed helm command.
  type: str
  returned: when a helm command failed
  sample: "Error: INSTALLATION FAILED: create: failed to create: namespaces \"nvidia-device-plugin\" not found"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError
from ansible_collections.gpufleet.mig.plugins.module_utils._helm import (
    HAS_YAML,
    YAML_IMPORT_ERROR,
    HelmRunner,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._helm_release import (
    DEFAULT_TIMEOUT, STATES, lease_lock, run_helm_release)
from ansible_collections.gpufleet.mig.plugins.module_utils._helm_values import VALUE_TYPES
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_auth import k8s_auth_argument_spec
from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import command_runner, fail_with, with_kube_client


def argument_spec():
    spec = k8s_auth_argument_spec()
    spec.update(
        release_name=dict(type="str", required=True, aliases=["name"]),
        release_namespace=dict(type="str", required=True, aliases=["namespace"]),
        state=dict(type="str", choices=list(STATES), default="present"),
        chart_ref=dict(type="str"),
        chart_repo_url=dict(type="str"),
        chart_version=dict(type="str"),
        values=dict(type="dict", default={}, aliases=["release_values"]),
        values_files=dict(type="list", elements="path", default=[]),
        set_values=dict(
            type="list", elements="dict", default=[],
            options=dict(value=dict(type="str", required=True), value_type=dict(type="str", choices=list(VALUE_TYPES), default="raw")),
        ),
        playbook_dir=dict(type="path"),
        create_namespace=dict(type="bool", default=False),
        wait=dict(type="bool", default=False),
        timeout=dict(type="str", default=DEFAULT_TIMEOUT),
        atomic=dict(type="bool", default=False),
        binary_path=dict(type="path"),
        lock=dict(type="dict", options=dict(
            name=dict(type="str", required=True),
            namespace=dict(type="str", default="kube-system"),
            holder=dict(type="str", required=True),
            controller=dict(type="str"),
            timeout=dict(type="int", default=900),
            poll_interval=dict(type="float", default=2),
        )),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("state", "present", ["chart_ref"])],
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=YAML_IMPORT_ERROR)

    binary = module.params["binary_path"] or module.get_bin_path("helm", required=True)
    runner = HelmRunner(command_runner(module))
    lock = module.params["lock"]
    if lock and (lock["timeout"] < 1 or lock["poll_interval"] <= 0):
        module.fail_json(msg="lock.timeout must be 1 or more seconds and lock.poll_interval positive.")

    def release(check_mode):
        return run_helm_release(runner, binary, module.params, check_mode=check_mode, tmpdir=module.tmpdir)

    def release_under_lock(client):
        with lease_lock(client, lock):
            return release(False)

    try:
        result = release(module.check_mode or bool(lock))
        if lock and not module.check_mode and result["changed"]:
            result = with_kube_client(module, release_under_lock)
    except MigError as error:
        fail_with(module, error, commands=runner.commands)

    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
