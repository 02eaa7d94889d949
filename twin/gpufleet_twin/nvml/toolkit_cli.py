"""The ``nvidia-ctk`` and ``nvidia-container-cli`` stand-ins (bin/<tool>.d/<tool> run this file).

The stand-ins run it by path with ``python -S -E`` and it imports only the standard library: a real
``nvidia-ctk`` (Go) or ``nvidia-container-cli`` (C) answers ``--version`` in milliseconds, and a stand-in
that started the venv's site and the twin package (about 90 ms each, probed twice per driver check)
made the twin's node reads dearer than a real node's. ``toolkit.py`` takes its defaults from here.
Output formats and invented values: see ``toolkit.py``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from typing import Any, TextIO

TOOLS = ("nvidia-ctk", "nvidia-container-cli")
DEFAULT_CONTAINER_TOOLKIT: dict[str, Any] = {"version": "1.17.8"}
# What toolkit.toolkit_from_spec makes of the default (1.17.8 has both commands), for states written without the key.
DEFAULT_TOOLKIT_STATE: dict[str, Any] = {"version": "1.17.8", "tools": list(TOOLS)}

EXIT_COMMAND_NOT_FOUND = 127


def _hash(version: str, salt: str) -> str:
    return hashlib.sha1(f"gpufleet-sim/{salt}/{version}".encode()).hexdigest()


def _nvidia_ctk(version: str, argv: list[str], out: TextIO) -> int:
    if argv[:1] in (["--version"], ["-v"]):
        out.write(f"NVIDIA Container Toolkit CLI version {version}\ncommit: {_hash(version, 'ctk')}\n")
        return 0
    out.write("nvidia-ctk: only --version is simulated by the gpufleet twin\n")
    return 1


def _nvidia_container_cli(version: str, argv: list[str], out: TextIO) -> int:
    if argv[:1] in (["--version"], ["-V"]):
        out.write(
            f"cli-version: {version}\n"
            f"lib-version: {version}\n"
            "build date: 2025-01-01T00:00+00:00\n"
            f"build revision: {_hash(version, 'libnvidia-container')}\n"
            "build compiler: x86_64-linux-gnu-gcc-7 7.5.0\n"
            "build platform: x86_64\n"
            "build flags: -D_GNU_SOURCE -D_FORTIFY_SOURCE=2 -DNDEBUG -std=gnu11 -O2 -g\n"
        )
        return 0
    out.write("nvidia-container-cli: only --version is simulated by the gpufleet twin\n")
    return 1


def _read_state(state_path: str) -> dict[str, Any]:
    # The state module's shared lock on the sibling .lock file, so a read never sees a write half done.
    with open(state_path + ".lock", "a+", encoding="utf-8") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_SH)
        try:
            with open(state_path, encoding="utf-8") as handle:
                return json.load(handle)
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def run(tool: str, argv: list[str], state_path: str | None, out: TextIO, err: TextIO) -> int:
    state = _read_state(state_path) if state_path else {"container_toolkit": None}
    toolkit = state.get("container_toolkit", DEFAULT_TOOLKIT_STATE)
    if not toolkit or tool not in toolkit["tools"]:
        # Only reachable when the stand-in is called by its full path; PATH never offers it then.
        err.write(f"{tool}: command not found\n")
        return EXIT_COMMAND_NOT_FOUND
    if tool == "nvidia-ctk":
        return _nvidia_ctk(toolkit["version"], argv, out)
    return _nvidia_container_cli(toolkit["version"], argv, out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in TOOLS:
        sys.stderr.write(f"usage: python -S -E toolkit_cli.py {{{','.join(TOOLS)}}} ARGS...\n")
        return 2
    return run(args[0], args[1:], os.environ.get("GPUFLEET_SIM_STATE"), sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
