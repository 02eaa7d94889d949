"""The ``nvidia-ctk`` and ``nvidia-container-cli`` stand-ins (bin/<tool>.d/<tool> run this module).

Kept apart from ``toolkit.py``, which the package imports, so ``python -m`` runs it without a
double import. Output formats and invented values: see ``toolkit.py``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import TextIO

from .state import read_state
from .toolkit import DEFAULT_CONTAINER_TOOLKIT, TOOLS, toolkit_from_spec

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


def run(tool: str, argv: list[str], state_path: str | None, out: TextIO, err: TextIO) -> int:
    state = read_state(state_path) if state_path else {"container_toolkit": None}
    toolkit = state.get("container_toolkit", toolkit_from_spec(DEFAULT_CONTAINER_TOOLKIT))
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
        sys.stderr.write(f"usage: python -m gpufleet_twin.nvml.toolkit_cli {{{','.join(TOOLS)}}} ARGS...\n")
        return 2
    return run(args[0], args[1:], os.environ.get("GPUFLEET_SIM_STATE"), sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
