# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The helm seam: argv lists for the ``helm`` binary, parsers of its output, and the decisions on them.

Everything here is pure except ``HelmRunner`` (which calls a ``run_command`` function it is given, such as
``AnsibleModule.run_command``) and ``write_private_file``. No AnsibleModule import.

* Helm 3 and 4 are both supported; ``parse_helm_version`` tells them apart. Differences handled: helm 4
  renamed ``--atomic`` to ``--rollback-on-failure``; ``helm list`` shows every status by default in helm 4
  but needs ``--all`` in helm 3. Helm 4's server-side apply default is kept (``--server-side`` is not passed).
* Values never travel on the command line: they are written to a private temp file passed with ``-f``.
  Credentials never do either: helm gets ``--kubeconfig`` (a temp kubeconfig when the token or server
  were given as options, see ``helm_kubeconfig``).
* ``changed`` (``decide_present``) compares the deployed chart (``<name>-<version>``, as ``helm list``
  shows it) with the chart that would be installed (``helm show chart``), and the *effective* values:
  the chart's defaults (``helm show values``) coalesced with the deployed user values versus the same
  defaults coalesced with the wanted values. Comparing against the same defaults means that spelling out a
  default value, or dropping it, is no change; the --diff output shows the user-supplied values.
* Release states (as ``helm status`` names them, https://helm.sh/docs/helm/helm_status/): ``failed`` is upgraded (the release needs repair, and after a
  good upgrade it is ``deployed`` and the next run is a no-op); ``pending-*`` / ``uninstalling`` mean another
  helm operation is running or died halfway, so the task fails naming the way out instead of hitting helm's
  "another operation is in progress"; ``uninstalled`` (kept history) counts as absent.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
import traceback
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import TaskError

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import CommandRunner

try:
    import yaml

    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the host that runs the module
    yaml = None
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

MIN_HELM_VERSION = (3, 0, 0)

STATUS_DEPLOYED = "deployed"
STATUS_FAILED = "failed"
STATUS_UNINSTALLED = "uninstalled"
STUCK_STATUSES = ("pending-install", "pending-upgrade", "pending-rollback", "uninstalling")

ACTION_INSTALL = "install"
ACTION_UPGRADE = "upgrade"
ACTION_UNINSTALL = "uninstall"
ACTION_NONE = "none"

# A Go duration as helm's --timeout parses it (time.ParseDuration): one or more number+unit pairs.
_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|\u00b5s|ms|s|m|h))+$")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


class HelmError(TaskError):
    """Helm output that cannot be understood, an unusable option, or a release in a state we must not touch."""


class HelmCommandError(TaskError):
    """A helm command exited non-zero. ``cmd`` is the argv (no secrets in it), with ``rc``/``stdout``/``stderr``.

    They are also the task's failure keys (``details``).
    """

    def __init__(self, what: str, cmd: Sequence[str], rc: int, stdout: str, stderr: str) -> None:
        self.cmd = list(cmd)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        detail = (stderr or stdout or "").strip()
        super(HelmCommandError, self).__init__("%s failed (helm exited %s): %s" % (what, rc, detail or "no output"),
                                               cmd=self.cmd, rc=rc, stdout=stdout, stderr=stderr)


# --- parsing ------------------------------------------------------------------------------------------


def parse_helm_version(text: Optional[str]) -> Tuple[int, ...]:
    """``(major, minor, patch)`` from ``helm version --template '{{.Version}}'`` (``v4.1.4``, ``v3.17.3+g...``)."""
    match = _VERSION.match((text or "").strip())
    if not match:
        raise HelmError("Cannot tell the helm version from %r; is binary_path a helm binary?" % (text or "").strip())
    version = tuple(int(part) for part in match.groups())
    if version < MIN_HELM_VERSION:
        raise HelmError("helm %s is too old: helm 3 or 4 is needed." % ".".join(str(p) for p in version))
    return version


def parse_release_list(text: Optional[str], release_name: str) -> Optional[Dict[str, Any]]:
    """The entry of ``release_name`` in ``helm list -o json``, or ``None``; ``revision`` becomes an int."""
    try:
        releases = json.loads(text or "[]") or []
    except ValueError:
        raise HelmError("Cannot parse the output of helm list as JSON: %r" % (text or "")[:200])
    matches = [release for release in releases if isinstance(release, dict) and release.get("name") == release_name]
    if not matches:
        return None
    for release in matches:
        release["revision"] = int(release.get("revision") or 0)
    return max(matches, key=lambda release: release["revision"])


def parse_values(text: Optional[str]) -> Dict[str, Any]:
    """User-supplied values from ``helm get values -o json``: a dict (helm prints ``null`` when there are none)."""
    try:
        values = json.loads(text or "null")
    except ValueError:
        raise HelmError("Cannot parse the output of helm get values as JSON: %r" % (text or "")[:200])
    return values if isinstance(values, dict) else {}


def parse_yaml_document(text: Optional[str], what: str) -> Dict[str, Any]:
    """A YAML mapping printed by ``helm show chart`` / ``helm show values``; empty output is ``{}``."""
    if not HAS_YAML:
        raise HelmError("Cannot read %s: the Python library PyYAML is not installed." % what)
    try:
        document = yaml.safe_load(text or "")
    except yaml.YAMLError as error:
        raise HelmError("Cannot parse %s as YAML: %s" % (what, error))
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise HelmError("Cannot read %s: expected a mapping, got %s." % (what, type(document).__name__))
    return normalise(document)


def normalise(value: Any) -> Any:
    """Plain JSON types (YAML dates and the like become strings), so values compare as helm would store them."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def chart_label(chart_metadata: Dict[str, Any]) -> str:
    """``<name>-<version>``, the form ``helm list`` shows in its ``chart`` column."""
    return "%s-%s" % (chart_metadata.get("name"), chart_metadata.get("version"))


def check_timeout(timeout: Optional[str]) -> Optional[str]:
    if not _GO_DURATION.match(timeout or ""):
        raise HelmError("timeout %r is not a duration helm understands; write it like 300s, 5m or 1h30m." % timeout)
    return timeout


# --- values -------------------------------------------------------------------------------------------


def coalesce_values(defaults: Any, overrides: Any) -> Any:
    """Helm's coalescing of user values over chart defaults: maps merge key by key, anything else replaces,
    and a ``null`` user value deletes the key. Returns a new dict."""
    result = copy.deepcopy(defaults) if isinstance(defaults, dict) else {}
    for key, value in (overrides or {}).items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = coalesce_values(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def effective_values(chart_defaults: Optional[Dict[str, Any]], user_values: Optional[Dict[str, Any]]) -> Any:
    """The values templates see, for comparison: defaults coalesced with user values, ``null`` entries dropped
    (a template cannot tell a ``null`` value from a missing key, so neither can this comparison)."""
    return _without_nulls(coalesce_values(normalise(chart_defaults or {}), normalise(user_values or {})))


# --- decisions ----------------------------------------------------------------------------------------


def stuck_release_message(release: Dict[str, Any], namespace: str) -> str:
    name = release.get("name")
    return (
        "Release %s in namespace %s is stuck in status %s (revision %s): another helm operation is running or was "
        "interrupted. If none is running, repair it by hand: helm rollback %s <last good revision> --namespace %s, "
        "or helm uninstall %s --namespace %s when it was never deployed; then run the task again."
        % (name, namespace, release.get("status"), release.get("revision"), name, namespace, name, namespace)
    )


def decide_present(release: Optional[Dict[str, Any]], deployed_values: Optional[Dict[str, Any]], chart_metadata: Dict[str, Any],
                   chart_defaults: Optional[Dict[str, Any]], wanted_values: Optional[Dict[str, Any]], namespace: str) -> Tuple[str, List[str]]:
    """``(action, reasons)`` for ``state=present``.

    ``release`` is the ``parse_release_list`` entry or ``None``; ``deployed_values`` the user values of its
    latest revision; ``chart_metadata`` / ``chart_defaults`` describe the chart that would be installed.
    """
    if release is None or release.get("status") == STATUS_UNINSTALLED:
        return ACTION_INSTALL, ["release not installed"]
    status = release.get("status")
    if status in STUCK_STATUSES:
        raise HelmError(stuck_release_message(release, namespace))
    reasons = []
    if status != STATUS_DEPLOYED:
        reasons.append("release status is %s" % status)
    wanted_chart = chart_label(chart_metadata)
    if release.get("chart") != wanted_chart:
        reasons.append("chart %s -> %s" % (release.get("chart"), wanted_chart))
    if effective_values(chart_defaults, deployed_values) != effective_values(chart_defaults, wanted_values):
        reasons.append("values differ")
    return (ACTION_UPGRADE if reasons else ACTION_NONE), reasons


def decide_absent(release: Optional[Dict[str, Any]]) -> Tuple[str, List[str]]:
    """``(action, reasons)`` for ``state=absent``: uninstall anything that is not gone already."""
    if release is None or release.get("status") == STATUS_UNINSTALLED:
        return ACTION_NONE, []
    return ACTION_UNINSTALL, ["release status is %s" % release.get("status")]


def release_view(release: Optional[Dict[str, Any]], values: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """What the module returns about a release."""
    if release is None:
        return None
    return {
        "name": release.get("name"),
        "namespace": release.get("namespace"),
        "revision": release.get("revision"),
        "status": release.get("status"),
        "chart": release.get("chart"),
        "app_version": release.get("app_version"),
        "updated": release.get("updated"),
        "values": values,
    }


# --- argv ---------------------------------------------------------------------------------------------


def connection_args(namespace: str, kubeconfig_path: Optional[str] = None, context: Optional[str] = None) -> List[str]:
    """Flags every cluster-facing helm command gets."""
    argv = []
    if kubeconfig_path:
        argv += ["--kubeconfig", str(kubeconfig_path)]
    if context:
        argv += ["--kube-context", context]
    return argv + ["--namespace", namespace]


def version_argv(binary: str) -> List[str]:
    return [binary, "version", "--template", "{{.Version}}"]


def list_argv(binary: str, helm_major: int, release_name: str, connection: Sequence[str]) -> List[str]:
    argv = [binary, "list"] + list(connection) + ["--filter", "^%s$" % re.escape(release_name), "--output", "json"]
    if helm_major < 4:
        argv.append("--all")  # helm 3 lists only deployed and failed releases without it
    return argv


def get_values_argv(binary: str, release_name: str, connection: Sequence[str]) -> List[str]:
    return [binary, "get", "values", release_name] + list(connection) + ["--output", "json"]


def chart_source_args(chart_ref: str, chart_version: Optional[str] = None, chart_repo_url: Optional[str] = None) -> List[str]:
    argv = [chart_ref]
    if chart_repo_url:
        argv += ["--repo", chart_repo_url]
    if chart_version:
        argv += ["--version", chart_version]
    return argv


def show_argv(binary: str, what: str, chart_ref: str, chart_version: Optional[str] = None, chart_repo_url: Optional[str] = None) -> List[str]:
    """``helm show chart|values``: reads the chart only, no cluster access."""
    return [binary, "show", what] + chart_source_args(chart_ref, chart_version, chart_repo_url)


def upgrade_argv(binary: str, helm_major: int, release_name: str, chart_ref: str, values_file: str, connection: Sequence[str],
                 chart_version: Optional[str] = None, chart_repo_url: Optional[str] = None,
                 create_namespace: bool = False, wait: bool = False, timeout: Optional[str] = None, atomic: bool = False) -> List[str]:
    """``helm upgrade --install``: installs when absent, upgrades otherwise. ``--reset-values`` so the release
    carries exactly the values given (never values left over from an earlier revision)."""
    argv = [binary, "upgrade", release_name] + chart_source_args(chart_ref, chart_version, chart_repo_url)
    argv += ["--install", "--reset-values", "--values", str(values_file)] + list(connection)
    if create_namespace:
        argv.append("--create-namespace")
    if atomic:
        argv.append("--rollback-on-failure" if helm_major >= 4 else "--atomic")
    if wait:
        argv.append("--wait")
    if timeout:
        argv += ["--timeout", timeout]
    return argv


def uninstall_argv(binary: str, release_name: str, connection: Sequence[str], wait: bool = False, timeout: Optional[str] = None) -> List[str]:
    argv = [binary, "uninstall", release_name] + list(connection)
    if wait:
        argv.append("--wait")
    if timeout:
        argv += ["--timeout", timeout]
    return argv


# --- kubeconfig for helm --------------------------------------------------------------------------------

_PATH_KEYS = {"cluster": ("certificate-authority",), "user": ("client-certificate", "client-key", "tokenFile")}


def _named(entries: Any, name: Optional[str]) -> Dict[str, Any]:
    for entry in entries or []:
        if entry.get("name") == name:
            return copy.deepcopy(entry.get(entry_kind(entry)) or {})
    return {}


def entry_kind(entry: Dict[str, Any]) -> str:
    for kind in ("context", "cluster", "user"):
        if kind in entry:
            return kind
    return "context"


def helm_kubeconfig(base: Optional[Dict[str, Any]], context: Optional[str] = None, host: Optional[str] = None, api_key: Optional[str] = None,
                    ca_cert: Optional[str] = None, validate_certs: bool = True, base_dir: Optional[str] = None) -> Dict[str, Any]:
    """A one-context kubeconfig for helm: the ``context`` (or current context) of ``base`` with ``host``,
    ``api_key``, ``ca_cert`` and ``validate_certs=False`` applied on top. Pure.

    Used when credentials come from module options, so that helm reads the token from a private file
    instead of a ``--kube-token`` argument. Relative file paths of ``base`` are made absolute against
    ``base_dir`` (the directory of the kubeconfig file), since the result is written elsewhere.
    """
    base = base or {}
    context_name = context or base.get("current-context")
    context_entry = _named(base.get("contexts"), context_name) if context_name else {}
    if context and not context_entry:
        raise HelmError("Cannot use context %s: the kubeconfig has no such context." % context)
    cluster = _named(base.get("clusters"), context_entry.get("cluster"))
    user = _named(base.get("users"), context_entry.get("user"))
    for section, keys in (("cluster", cluster), ("user", user)):
        for key in _PATH_KEYS[section]:
            if keys.get(key) and base_dir and not os.path.isabs(keys[key]):
                keys[key] = os.path.join(base_dir, keys[key])
    if host:
        cluster["server"] = host
    if not cluster.get("server"):
        raise HelmError("Cannot reach the cluster with helm: set host, or a kubeconfig with a server.")
    if ca_cert:
        cluster.pop("certificate-authority-data", None)
        cluster["certificate-authority"] = ca_cert
    if not validate_certs:
        # helm (client-go) refuses a CA together with insecure-skip-tls-verify.
        cluster.pop("certificate-authority-data", None)
        cluster.pop("certificate-authority", None)
        cluster["insecure-skip-tls-verify"] = True
    if api_key:
        user = {"token": api_key}
    context_body = {"cluster": "gpufleet", "user": "gpufleet"}
    if context_entry.get("namespace"):
        context_body["namespace"] = context_entry["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gpufleet", "cluster": cluster}],
        "users": [{"name": "gpufleet", "user": user}],
        "contexts": [{"name": "gpufleet", "context": context_body}],
        "current-context": "gpufleet",
    }


def needs_private_kubeconfig(kubeconfig: Any, host: Optional[str] = None, api_key: Optional[str] = None, ca_cert: Optional[str] = None,
                             validate_certs: bool = True) -> bool:
    """Whether helm needs a generated kubeconfig (options override the file, or the kubeconfig is a mapping)."""
    return isinstance(kubeconfig, dict) or bool(host or api_key or ca_cert) or not validate_certs


def default_kubeconfig_path(environ: Optional[Mapping[str, str]] = None) -> str:
    """Where client-go looks without --kubeconfig: the first entry of KUBECONFIG, else ~/.kube/config."""
    environ = os.environ if environ is None else environ
    paths = [path for path in (environ.get("KUBECONFIG") or "").split(os.pathsep) if path]
    return paths[0] if paths else os.path.expanduser("~/.kube/config")


# --- running --------------------------------------------------------------------------------------------


def write_private_file(directory: Optional[str], prefix: str, text: str) -> str:
    """Write ``text`` to a new file only the current user can read (mode 0600); return its path."""
    handle, path = tempfile.mkstemp(prefix=prefix, suffix=".yaml", dir=directory)
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    return path


class HelmRunner:
    """Runs helm argv lists through ``run_command(argv) -> (rc, stdout, stderr)`` and records every argv."""

    def __init__(self, run_command: CommandRunner) -> None:
        self._run_command = run_command
        self.commands = []

    def run(self, argv: Sequence[str], what: str, allowed_rcs: Sequence[int] = (0,)) -> Tuple[int, str, str]:
        self.commands.append(list(argv))
        rc, stdout, stderr = self._run_command(list(argv))
        if rc not in allowed_rcs:
            raise HelmCommandError(what, argv, rc, stdout, stderr)
        return rc, stdout, stderr

    def output(self, argv: Sequence[str], what: str) -> str:
        """Run and return stdout."""
        return self.run(argv, what)[1]
