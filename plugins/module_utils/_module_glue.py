# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The glue between AnsibleModule and module_utils that every module shares.

One command runner (always in the C locale, so tool output never changes with the node's language), one way
to end a task with a result (warnings emitted, the diff kept only under ``--diff``), and one way to turn a
domain error into ``fail_json`` (the same NVML failure keys in every node module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, TypeVar

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import KubeApiError, MigError, NvmlCallError, TaskError

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ansible.module_utils.basic import AnsibleModule

    from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeClient

# The API seam (and with it the kubernetes client, about 0.2 s to import) is imported by the functions that reach
# the API: a node module such as gpu_info, which every read and plan runs on every node, never loads it.

ClientResult = TypeVar("ClientResult")
# ``run(argv) -> (rc, stdout, stderr)``: how module_utils run a host command (see ``command_runner``).
CommandRunner = Callable[[List[str]], Tuple[int, str, str]]

C_LOCALE = {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}


def command_runner(module: AnsibleModule, extra_environ: Optional[Dict[str, str]] = None) -> CommandRunner:
    """``run(argv) -> (rc, stdout, stderr)``: AnsibleModule.run_command (argv as a list, no shell) in the C locale.

    ``extra_environ`` adds what one tool needs besides the locale (systemctl's pager and colours, say).
    """
    environ = dict(C_LOCALE, **(extra_environ or {}))
    return lambda argv: module.run_command(argv, environ_update=environ)


def fail_with(module: AnsibleModule, error: MigError, **extra: Any) -> None:
    """End the task for ``error``: a TaskError's details, NVML's or the API's failure keys, or just the message.

    ``extra`` adds keys the module reports on every failure (helm_release's ``commands``, say).
    """
    if isinstance(error, TaskError):
        module.fail_json(msg=str(error), **dict(extra, **error.details))
    if isinstance(error, NvmlCallError):
        module.fail_json(msg=str(error), **dict(extra, **error.failure_keys()))
    if isinstance(error, KubeApiError):
        module.fail_json(msg=str(error), api_status=error.status, **extra)
    module.fail_json(msg=str(error), **extra)


def exit_with(module: AnsibleModule, result: Dict[str, Any]) -> None:
    """End the task with ``result``: its ``warnings`` become Ansible warnings, its ``diff`` shows under ``--diff``."""
    for warning in result.pop("warnings", None) or ():
        module.warn(warning)
    diff = result.pop("diff", None)
    if module._diff and diff is not None:
        result["diff"] = diff
    module.exit_json(**result)


def require_kubernetes(module: AnsibleModule) -> None:
    """Fail the task at once when the kubernetes Python library is missing on the host that runs the module."""
    from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR

    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)


def with_kube_client(module: AnsibleModule, task: Callable[[KubeClient], ClientResult]) -> ClientResult:
    """``task(client)`` with a client built from the module's API options (``k8s_auth``), closed afterwards.

    The kubernetes library must be there (``require_kubernetes``); a domain error ends the task (``fail_with``).
    """
    from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeClient

    require_kubernetes(module)
    try:
        with KubeClient.from_params(module.params) as client:
            return task(client)
    except MigError as error:
        fail_with(module, error)
        raise  # not reached: fail_json exits; keeps the return type honest for readers and linters
