# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The work of the gpufleet.mig.helm_release module, on top of the helm seam (_helm.py).

Reads (helm version, list, get values, show chart/values) run in check mode too; the write (upgrade
--install, or uninstall) runs only when the decision says so and not in check mode. Temp files (values,
private kubeconfig) live in the directory the caller gives (the module's tmpdir) and are removed at the end.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ansible_collections.gpufleet.mig.plugins.module_utils._helm import (
    ACTION_NONE,
    ACTION_UNINSTALL,
    STATUS_UNINSTALLED,
    HelmError,
    HelmRunner,
    check_timeout,
    chart_label,
    connection_args,
    decide_absent,
    decide_present,
    default_kubeconfig_path,
    get_values_argv,
    helm_kubeconfig,
    list_argv,
    needs_private_kubeconfig,
    parse_helm_version,
    parse_release_list,
    parse_values,
    parse_yaml_document,
    release_view,
    show_argv,
    uninstall_argv,
    upgrade_argv,
    version_argv,
    write_private_file,
)

from ansible_collections.gpufleet.mig.plugins.module_utils._helm_values import (
    read_values_files,
    resolve_chart_ref,
    set_values_document,
    user_values,
)

STATES = ("present", "absent")
DEFAULT_TIMEOUT = "5m0s"


def _private_kubeconfig(params: Dict[str, Any], tmpdir: Optional[str], temp_files: List[str]) -> Tuple[Optional[str], Optional[str]]:
    """``(kubeconfig path, context)`` to hand helm; writes a private kubeconfig when options override the file."""
    kubeconfig = params.get("kubeconfig")
    host, api_key, ca_cert = params.get("host"), params.get("api_key"), params.get("ca_cert")
    validate_certs = params.get("validate_certs", True)
    if not needs_private_kubeconfig(kubeconfig, host, api_key, ca_cert, validate_certs):
        return kubeconfig, params.get("context")
    base, base_dir = None, None
    if isinstance(kubeconfig, dict):
        base = kubeconfig
    else:
        path = kubeconfig or (None if host else default_kubeconfig_path())
        if path:
            try:
                with open(path) as stream:
                    base = parse_yaml_document(stream.read(), "kubeconfig %s" % path)
            except (IOError, OSError) as error:
                if kubeconfig:
                    raise HelmError("Cannot read kubeconfig %s: %s" % (path, error))
            base_dir = os.path.dirname(os.path.abspath(path))
    document = helm_kubeconfig(base, params.get("context"), host, api_key, ca_cert, validate_certs, base_dir)
    path = write_private_file(tmpdir, "helm-kubeconfig-", json.dumps(document))
    temp_files.append(path)
    return path, None


def _read_release(runner: HelmRunner, binary: str, major: int, name: str,
                  connection: List[str]) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]]]:
    stdout = runner.output(list_argv(binary, major, name, connection), "helm list")
    release = parse_release_list(stdout, name)
    values = None
    if release is not None and release.get("status") != STATUS_UNINSTALLED:
        stdout = runner.output(get_values_argv(binary, name, connection), "helm get values")
        values = parse_values(stdout)
    return release, values


def run_helm_release(runner: HelmRunner, binary: str, params: Dict[str, Any], check_mode: bool = False,
                     tmpdir: Optional[str] = None) -> Dict[str, Any]:
    """Bring release ``params['release_name']`` to ``params['state']``; return the module result.

    ``runner`` is a ``helm.HelmRunner``. The user values are ``values_files``, ``values`` and ``set_values`` merged
    (_helm_values.py); relative paths resolve against ``playbook_dir``. Result keys: ``changed``, ``status`` (the release afterwards, or
    ``None`` when absent; as it is now in check mode), ``reasons``, ``command`` (the write run, or that would
    run in check mode), ``commands`` (every helm argv run), ``helm_version``, ``diff``.
    Raises ``HelmError`` / ``helm.HelmCommandError``.
    """
    name = params["release_name"]
    namespace = params["release_namespace"]
    state = params.get("state") or "present"
    timeout = check_timeout(params.get("timeout") or DEFAULT_TIMEOUT)
    base_dir = params.get("playbook_dir")
    chart_ref = resolve_chart_ref(params.get("chart_ref"), params.get("chart_repo_url"), base_dir)
    wanted_values = {}
    if state == "present":  # read and check every values source before running anything
        wanted_values = user_values(
            read_values_files(params.get("values_files"), base_dir, parse_yaml_document),
            params.get("values"),
            set_values_document(params.get("set_values"), base_dir),
        )
    temp_files = []
    try:
        kubeconfig_path, context = _private_kubeconfig(params, tmpdir, temp_files)
        connection = connection_args(namespace, kubeconfig_path, context)
        stdout = runner.output(version_argv(binary), "helm version")
        version = parse_helm_version(stdout)
        major = version[0]
        release, deployed_values = _read_release(runner, binary, major, name, connection)
        before = {} if deployed_values is None else {"chart": release.get("chart"), "values": deployed_values}

        if state == "absent":
            action, reasons = decide_absent(release)
            command = uninstall_argv(binary, name, connection, params.get("wait"), timeout) if action == ACTION_UNINSTALL else None
            after = {} if command else before
        else:
            chart = (chart_ref, params.get("chart_version"), params.get("chart_repo_url"))
            stdout = runner.output(show_argv(binary, "chart", *chart), "helm show chart")
            chart_metadata = parse_yaml_document(stdout, "the output of helm show chart")
            stdout = runner.output(show_argv(binary, "values", *chart), "helm show values")
            chart_defaults = parse_yaml_document(stdout, "the output of helm show values")
            action, reasons = decide_present(release, deployed_values, chart_metadata, chart_defaults, wanted_values, namespace)
            command = None
            after = before
            if action != ACTION_NONE:
                values_file = write_private_file(tmpdir, "helm-values-", json.dumps(wanted_values, sort_keys=True))
                temp_files.append(values_file)
                command = upgrade_argv(
                    binary, major, name, chart_ref, values_file, connection,
                    chart_version=params.get("chart_version"), chart_repo_url=params.get("chart_repo_url"),
                    create_namespace=params.get("create_namespace"), wait=params.get("wait"), timeout=timeout,
                    atomic=params.get("atomic"),
                )
                after = {"chart": chart_label(chart_metadata), "values": wanted_values}

        status = release_view(release, deployed_values)
        if command and not check_mode:
            runner.run(command, "helm %s of release %s in namespace %s" % (command[1], name, namespace))
            if state == "absent":
                status = None
            else:
                status = release_view(*_read_release(runner, binary, major, name, connection))
        elif state == "absent" and (release is None or release.get("status") == STATUS_UNINSTALLED):
            status = None
    finally:
        for path in temp_files:
            try:
                os.remove(path)
            except OSError:
                pass

    return {
        "changed": command is not None,
        "status": status,
        "reasons": reasons,
        "command": command,
        "commands": runner.commands,
        "helm_version": ".".join(str(part) for part in version),
        "diff": {"before": before, "after": after},
    }


@contextmanager
def lease_lock(client: Any, lock: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    """Hold the Kubernetes Lease ``lock`` names (``_lease.hold_lease``) and give it back afterwards, also on failure.

    The module compares the release first without it and takes it only for a release that must change; the
    comparison made again under it finds what another run did meanwhile.
    """
    # Imported here: the lease seam imports the kubernetes client (about 0.3 s of CPU), which a release that
    # already matches, or a check-mode comparison, never needs.
    from ansible_collections.gpufleet.mig.plugins.module_utils._lease import hold_lease, release_lease

    held = hold_lease(client, lock["name"], lock["namespace"], lock["holder"], lock["timeout"], lock["timeout"],
                      poll_interval=lock["poll_interval"], controller=lock.get("controller"))
    try:
        yield held
    finally:
        release_lease(client, lock["name"], lock["namespace"], lock["holder"])
