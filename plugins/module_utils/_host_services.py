# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Host services that hold a node's GPUs: stop those running before the GPUs change, start exactly those again.

Why (docs/host-services.md): nvidia-persistenced, DCGM (nv-hostengine), dcgm-exporter, NVSM, nv_peer_mem and, on
NVSwitch systems, nvidia-fabricmanager keep the GPUs open, so a MIG mode change stays pending and ``nvidia-smi -r``
is refused (NVIDIA/gpu-operator#118), and creating GPU instances can answer IN_USE. NVIDIA's mig-parted stops such
clients in its systemd hooks and starts them again on exit (deployments/systemd/hooks.sh), mig-manager does the same
for the ``default-gpu-clients`` list.

Never lose a service: before a service is stopped its name is added to a record file on the node, and it leaves the
record only when the start step started it again. A run interrupted between the two leaves the record behind, and
the next run's start step (``state=started``) starts what it names. ``state=started`` starts only recorded services
(plus any named explicitly), never one that an operator had stopped before the rollout.

Only ``systemctl show`` (LoadState, ActiveState), ``systemctl stop`` and ``systemctl start`` are called, through one
command runner ``run_command(argv) -> (rc, stdout, stderr)`` (AnsibleModule.run_command).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Iterable, List, Tuple

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import TaskError

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import CommandRunner

SERVICE_SUFFIX = ".service"
RECORD_VERSION = 1


class HostServiceError(TaskError):
    """A service could not be read, stopped or started; ``details`` name the command."""


def unit_of(name: str) -> str:
    """``nvsm`` and ``nvsm.service`` are one unit; other unit types keep their suffix."""
    name = name.strip()
    if "." in name.rsplit("/", 1)[-1]:
        return name
    return name + SERVICE_SUFFIX


def parse_show(text: str) -> dict:
    """``systemctl show -p LoadState,ActiveState`` output of one unit -> dict."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def start_order(names: Iterable[str]) -> List[str]:
    """Units in the order given, duplicates dropped (``nvsm`` and ``nvsm.service`` are one)."""
    seen = []
    for name in names:
        unit = unit_of(name)
        if unit not in seen:
            seen.append(unit)
    return seen


def stop_order(names: Iterable[str]) -> List[str]:
    """Stop the later clients first (as mig-parted's hooks.sh stops its service lists in reverse)."""
    return list(reversed(start_order(names)))


class Systemctl(object):
    def __init__(self, systemctl: str, run_command: CommandRunner) -> None:
        self.systemctl = systemctl
        self.run_command = run_command

    def state(self, unit: str) -> Tuple[bool, bool]:
        """(loaded, active) of one unit; a unit that does not exist is (False, False)."""
        argv = [self.systemctl, "show", "--property=LoadState,ActiveState", unit]
        rc, stdout, stderr = self.run_command(argv)
        if rc != 0:
            output = (stderr or stdout).strip()
            raise HostServiceError("cannot read the state of %s: %s exited %d: %s" % (unit, " ".join(argv), rc, output),
                                   cmd=argv, rc=rc, stdout=stdout, stderr=stderr)
        values = parse_show(stdout)
        loaded = values.get("LoadState", "not-found") not in ("not-found", "")
        return loaded, values.get("ActiveState") in ("active", "activating", "reloading")

    def change(self, verb: str, unit: str) -> None:
        argv = [self.systemctl, verb, unit]
        rc, stdout, stderr = self.run_command(argv)
        if rc != 0:
            raise HostServiceError("systemctl %s %s failed (exit %d): %s" % (verb, unit, rc, (stderr or stdout).strip()),
                                   cmd=argv, rc=rc, stdout=stdout, stderr=stderr)


class Record(object):
    """The services this collection stopped on the node and has not started again (JSON, written atomically)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> List[str]:
        try:
            with open(self.path) as handle:
                data = json.load(handle)
        except (IOError, OSError):
            return []
        except ValueError as bad:
            raise HostServiceError("the record of stopped host services %s is not valid JSON (%s); start the services "
                                   "it names by hand and remove it" % (self.path, bad))
        return start_order(data.get("stopped") or [])

    def write(self, units: List[str]) -> None:
        if not units:
            if os.path.exists(self.path):
                os.unlink(self.path)
            return
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".stopped-host-services.")
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": RECORD_VERSION, "stopped": list(units)}, handle)
            handle.write("\n")
        os.rename(temporary, self.path)


def stop_services(systemctl: Systemctl, record: Record, names: Iterable[str], check_mode: bool = False) -> dict:
    """Stop those of ``names`` that run; returns the module result.

    ``stopped``: what this call stopped (would stop, in check mode); ``to_restart``: everything the record names
    afterwards, which the start step will start again.
    """
    names = list(names)
    recorded = record.read()
    stopped, absent, inactive = [], [], []
    for unit in stop_order(names):
        loaded, active = systemctl.state(unit)
        if not loaded:
            absent.append(unit)
            continue
        if not active:
            inactive.append(unit)
            continue
        if not check_mode:
            # Recorded first: an interruption after the stop still leaves the service on the record.
            if unit not in recorded:
                recorded = _in_start_order(names, recorded + [unit])
                record.write(recorded)
            systemctl.change("stop", unit)
        stopped.append(unit)
    to_restart = recorded if not check_mode else start_order(recorded + stopped)
    return {"changed": bool(stopped), "stopped": stopped, "to_restart": _in_start_order(names, to_restart),
            "not_running": inactive, "not_installed": absent}


def start_services(systemctl: Systemctl, record: Record, names: Iterable[str] = (), order: Iterable[str] = (),
                   check_mode: bool = False) -> dict:
    """Start what the record names (and ``names``) in ``order`` (unlisted ones last) and clear the record.

    Returns the module result. A recorded unit that runs already (a reboot started it) just leaves the record.
    """
    wanted = _in_start_order(order, record.read() + list(names))
    started, running = [], []
    for unit in wanted:
        loaded, active = systemctl.state(unit)
        if active:
            running.append(unit)
        elif not loaded:
            raise HostServiceError("cannot start %s again: the unit does not exist any more; it is still on the record "
                                   "%s" % (unit, record.path), unit=unit)
        else:
            if not check_mode:
                systemctl.change("start", unit)
            started.append(unit)
        if not check_mode:
            record.write([u for u in record.read() if u != unit])
    return {"changed": bool(started), "started": started, "already_running": running}


def _in_start_order(names: Iterable[str], units: Iterable[str]) -> List[str]:
    order = start_order(names)
    units = start_order(units)
    known = [u for u in order if u in units]
    return known + [u for u in units if u not in known]
