"""NVIDIA Container Toolkit of a simulated node: which stand-in commands it has (``toolkit_cli.py`` prints).

A node's toolkit is the node-spec key ``container_toolkit``: ``{version: "1.17.8"}`` (the default, so
specs written before the key existed describe a node ready for Kubernetes) or ``null`` (not installed).
An optional ``tools`` list names the commands installed; by default ``nvidia-container-cli`` always
and ``nvidia-ctk`` from toolkit 1.10.0 on (NVIDIA/nvidia-container-toolkit added the ``nvidia-ctk``
CLI in v1.10.0-rc.1).

Not installed means the commands do not exist: ``node_env_parts`` puts a tool's directory on the
node's PATH only when the node has that tool, so ``command -v`` / ``get_bin_path`` find nothing, as
on a real node. Each tool has its own directory (``bin/<tool>.d/``) so a node can have one without the
other.

Output formats are mig-hardware.md section 12. Values the reference leaves out are ours: the
libnvidia-container version (``cli-version``/``lib-version``) equals the toolkit version (true since
the two were renumbered together), commit/revision hashes are derived from the version, and the build
date, compiler and flags lines are fixed placeholders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .state import read_state
from .toolkit_cli import DEFAULT_CONTAINER_TOOLKIT, DEFAULT_TOOLKIT_STATE, TOOLS

__all__ = ["DEFAULT_CONTAINER_TOOLKIT", "DEFAULT_TOOLKIT_STATE", "TOOLS", "installed_tools", "path_dirs", "tool_dir",
           "toolkit_from_spec"]
_FIRST_NVIDIA_CTK = (1, 10, 0)
BIN_DIR = Path(__file__).resolve().parent / "bin"


def tool_dir(tool: str) -> Path:
    return BIN_DIR / f"{tool}.d"


def _release(version: str) -> tuple[int, ...]:
    head = version.split("-", 1)[0].split("~", 1)[0]
    parts = head.split(".")
    if not all(part.isdigit() for part in parts):
        raise ValueError(f"container_toolkit version {version!r}: use dot-separated numbers such as 1.17.8")
    return tuple(int(part) for part in parts)


def toolkit_from_spec(value: Any) -> dict[str, Any] | None:
    """Validate the node-spec value and fill in the installed tools."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value.get("version"):
        raise ValueError(f"container_toolkit {value!r}: expected {{version: '1.17.8'}} or null")
    unknown = set(value) - {"version", "tools"}
    if unknown:
        raise ValueError(f"container_toolkit: unknown keys {', '.join(sorted(unknown))}")
    version = str(value["version"])
    release = _release(version)
    tools = value.get("tools")
    if tools is None:
        tools = [tool for tool in TOOLS if tool != "nvidia-ctk" or release >= _FIRST_NVIDIA_CTK]
    bad = sorted(set(tools) - set(TOOLS))
    if bad:
        raise ValueError(f"container_toolkit tools: unknown {', '.join(bad)}; known: {', '.join(TOOLS)}")
    return {"version": version, "tools": [tool for tool in TOOLS if tool in tools]}


def installed_tools(state: dict[str, Any]) -> list[str]:
    toolkit = state.get("container_toolkit", DEFAULT_TOOLKIT_STATE)
    return list(toolkit["tools"]) if toolkit else []


def path_dirs(state_path: str | Path) -> list[str]:
    """PATH entries for the toolkit commands the node at ``state_path`` has (none if it has no state yet)."""
    try:
        state = read_state(state_path)
    except FileNotFoundError:
        return []
    return [str(tool_dir(tool)) for tool in installed_tools(state)]
