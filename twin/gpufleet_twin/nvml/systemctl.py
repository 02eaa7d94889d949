"""The systemctl stand-in: the verbs the product and an operator use on a node's GPU-holding services.

Supported: ``is-active``, ``start``, ``stop``, ``show`` (``-p/--property``, ``--value``) and
``list-units`` (``--type``, ``--all``, ``--state``, ``--no-legend``, ``--plain``, a glob), with
``--quiet``, ``--no-block`` and ``--no-pager`` accepted.  It changes the simulated node's state
(``host.py``), so a stopped nvidia-persistenced no longer holds the GPUs.  Exit codes and wording as
systemd's: ``is-active`` 3 when a unit is not active; ``start``/``stop`` of an unknown unit 5
("Unit X.service not found." / "not loaded."), an unknown verb 1.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from typing import Any, TextIO

from . import host
from .state import locked_state

EXIT_NOT_ACTIVE = 3  # systemctl is-active (LSB "program is not running")
EXIT_NO_UNIT = 5  # systemctl start/stop of a unit that does not exist
EXIT_USAGE = 1
SHOW_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "UnitFileState")
FLAGS_IGNORED = {"--quiet", "-q", "--no-block", "--no-pager", "--plain", "--no-legend", "--all", "-a", "--full", "-l"}


def _show(service: dict[str, Any] | None, name: str) -> dict[str, str]:
    unit = f"{host.unit_name(name)}{host.SERVICE_SUFFIX}"
    if service is None:
        return {"Id": unit, "LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead", "UnitFileState": ""}
    return {
        "Id": unit,
        "LoadState": "loaded",
        "ActiveState": "active" if service["active"] else "inactive",
        "SubState": "running" if service["active"] else "dead",
        "UnitFileState": "enabled" if service["enabled"] else "disabled",
    }


def run(argv: list[str], state_path: str | None, out: TextIO, err: TextIO) -> int:
    if not state_path:
        err.write("System has not been booted with systemd as init system (PID 1). Can't operate.\n")
        return EXIT_USAGE
    options: dict[str, str] = {}
    words: list[str] = []
    flags: set[str] = set()
    args = iter(argv)
    for arg in args:
        if arg in ("-p", "--property", "-t", "--type", "--state"):
            options[arg.lstrip("-")[:1] if arg in ("-p", "-t") else arg.lstrip("-")] = next(args, "")
        elif arg.startswith(("--property=", "--type=", "--state=")):
            key, _, value = arg[2:].partition("=")
            options[key[:1] if key in ("property", "type") else key] = value
        elif arg.startswith("-"):
            flags.add(arg)
        else:
            words.append(arg)
    unknown_flags = flags - FLAGS_IGNORED - {"--value"}
    if unknown_flags or not words:
        err.write(f"systemctl stand-in: unsupported arguments {' '.join(argv)}\n")
        return EXIT_USAGE
    verb, units = words[0], words[1:]
    quiet = bool(flags & {"--quiet", "-q"})
    with locked_state(state_path) as state:
        if verb == "is-active":
            code = 0
            for name in units:
                service = host.find_service(state, name)
                active = bool(service and service["active"])
                code = code if active else EXIT_NOT_ACTIVE
                if not quiet:
                    out.write(("active" if active else "inactive") + "\n")
            return code
        if verb in ("start", "stop"):
            code = 0
            for name in units:
                service = host.find_service(state, name)
                unit = f"{host.unit_name(name)}{host.SERVICE_SUFFIX}"
                if service is None:
                    err.write(f"Failed to {verb} {unit}: Unit {unit} {'not found' if verb == 'start' else 'not loaded'}.\n")
                    code = EXIT_NO_UNIT
                    continue
                service["active"] = verb == "start"
            return code
        if verb == "show":
            wanted = [p for p in options.get("p", "").split(",") if p] or list(SHOW_PROPERTIES)
            blocks = []
            for name in units:
                shown = _show(host.find_service(state, name), name)
                if "--value" in flags:
                    blocks.append("\n".join(shown.get(p, "") for p in wanted))
                else:
                    blocks.append("\n".join(f"{p}={shown.get(p, '')}" for p in wanted))
            out.write("\n\n".join(blocks) + "\n")
            return 0
        if verb == "list-units":
            type_ok = options.get("t", "service") in ("service", "")
            states = {s for s in options.get("state", "").split(",") if s}
            rows = []
            for service in state.get("host_services") or [] if type_ok else []:
                shown = _show(service, service["name"])
                if units and not any(fnmatch.fnmatch(shown["Id"], pattern) for pattern in units):
                    continue
                if states and not states & {shown["LoadState"], shown["ActiveState"], shown["SubState"]}:
                    continue
                if not states and "--all" not in flags and "-a" not in flags and not service["active"]:
                    continue
                rows.append(f"{shown['Id']} {shown['LoadState']} {shown['ActiveState']} {shown['SubState']} {service['name']}")
            if "--no-legend" not in flags:
                out.write("UNIT LOAD ACTIVE SUB DESCRIPTION\n")
            out.write("".join(row + "\n" for row in rows))
            if "--no-legend" not in flags:
                out.write(f"\n{len(rows)} loaded units listed.\n")
            return 0
    err.write(f'Unknown command verb "{verb}".\n')
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    from . import STATE_ENV_VAR

    return run(list(sys.argv[1:] if argv is None else argv), os.environ.get(STATE_ENV_VAR), sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
