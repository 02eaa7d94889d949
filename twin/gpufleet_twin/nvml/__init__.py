"""Simulated NVML for the fleet twin.

The product imports the real ``pynvml``; the simulator replaces the C library beneath it
(``pynvml.nvmlLib``) with ``FakeNvmlLibrary``, backed by one JSON state file per node.

In-process (tests)::

    with simulated(state_path):
        pynvml.nvmlInit()

In a subprocess (Ansible modules, nvidia-smi): run it with ``node_env(state_path)``; the
``shim/pynvml.py`` first on PYTHONPATH loads the real pynvml and installs the fake library.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Light on purpose: the twin's connection plugin runs every command of a simulated node through ``node_env``, in a
# fresh Ansible worker process per host and task. The simulator itself (core, hardware tables, library: about
# 0.05 s of CPU to import with the bytecode cache, several times that without) loads on first use of a name that
# needs it, through ``__getattr__`` below or inside the functions here.
from .procfs import pod_cgroup, proc_root
from .state import create_state_file, locked_state, read_state
from .toolkit import path_dirs as toolkit_path_dirs

if TYPE_CHECKING:  # pragma: no cover
    from .core import Node
    from .errors import NvmlCallError
    from .hardware import known_models
    from .library import FakeNvmlLibrary, resolve_call_symbols
    from .spec import NodeSpecError

# Names this package offers from the simulator's modules, imported when first asked for.
_LAZY_NAMES = {
    "MIG_ENABLE": ".core",
    "Node": ".core",
    "NvmlCallError": ".errors",
    "known_models": ".hardware",
    "FakeNvmlLibrary": ".library",
    "resolve_call_symbols": ".library",
    "NodeSpecError": ".spec",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "FakeNvmlLibrary",
    "NodeSpecError",
    "NvmlCallError",
    "STATE_ENV_VAR",
    "add_process",
    "clear_faults",
    "create_node_state",
    "hold_gpu",
    "inject_fault",
    "install",
    "known_models",
    "node_env",
    "node_env_parts",
    "node_status",
    "pod_cgroup",
    "proc_root",
    "reboot",
    "release_gpu",
    "remove_process",
    "reset_gpu",
    "resolve_call_symbols",
    "simulated",
    "uninstall",
]

STATE_ENV_VAR = "GPUFLEET_SIM_STATE"
PYTHON_ENV_VAR = "GPUFLEET_SIM_PYTHON"
PACKAGE_DIR = Path(__file__).resolve().parent
SHIM_DIR = PACKAGE_DIR / "shim"
BIN_DIR = PACKAGE_DIR / "bin"
TWIN_ROOT = PACKAGE_DIR.parent.parent  # the directory holding the gpufleet_twin package

_previous_libraries: list[Any] = []


# ------------------------------------------------------------------- activation
def install(state_path: str | Path) -> FakeNvmlLibrary:
    """Point the imported pynvml at a fake libnvidia-ml for the node at ``state_path``."""
    import pynvml

    from .library import FakeNvmlLibrary

    library = FakeNvmlLibrary(state_path)
    _previous_libraries.append(pynvml.nvmlLib)
    pynvml.nvmlLib = library
    pynvml._nvmlGetFunctionPointer_cache.clear()
    return library


def uninstall() -> None:
    """Undo the latest ``install``."""
    import pynvml

    pynvml.nvmlLib = _previous_libraries.pop() if _previous_libraries else None
    pynvml._nvmlGetFunctionPointer_cache.clear()


@contextmanager
def simulated(state_path: str | Path) -> Iterator[FakeNvmlLibrary]:
    library = install(state_path)
    try:
        yield library
    finally:
        uninstall()


def node_env_parts(state_path: str | Path) -> tuple[dict[str, str], list[str], list[str]]:
    """(fixed variables, PYTHONPATH prefix, PATH prefix) of a process running on the node.

    PATH gets the nvidia-smi stand-in first, then the container-toolkit stand-ins the node has
    installed (read from its state now; see ``toolkit.py``), then the directory of this
    interpreter, so that ``python`` and console scripts resolve to the environment that has pynvml
    and the twin.
    """
    fixed = {
        STATE_ENV_VAR: str(Path(state_path).resolve()),
        PYTHON_ENV_VAR: sys.executable,
    }
    path = [str(BIN_DIR), *toolkit_path_dirs(state_path), str(Path(sys.executable).parent)]
    return fixed, [str(SHIM_DIR), str(TWIN_ROOT)], path


def node_env(state_path: str | Path) -> dict[str, str]:
    """Environment entries that make a process run "on" the node (merge into os.environ)."""
    fixed, python_path, path = node_env_parts(state_path)
    if os.environ.get("PYTHONPATH"):
        python_path.append(os.environ["PYTHONPATH"])
    if os.environ.get("PATH"):
        path.append(os.environ["PATH"])
    return {**fixed, "PYTHONPATH": os.pathsep.join(python_path), "PATH": os.pathsep.join(path)}


# ------------------------------------------------------------------ node state
def create_node_state(path: str | Path, node_spec: dict[str, Any]) -> dict[str, Any]:
    """Write a fresh state file for ``node_spec`` (see ``spec.py``); returns node_status."""
    from .spec import build_node_state

    create_state_file(path, build_node_state(node_spec))
    return node_status(path)


def inject_fault(
    path: str | Path, call: str, error: str | int, times: int | None = 1, gpu: int | None = None
) -> dict[str, Any]:
    """Make ``call`` (pynvml name or C symbol) fail with ``error`` ``times`` times (None: always)."""
    from .spec import add_fault_to_state

    with locked_state(path) as state:
        return dict(add_fault_to_state(state, call, error, times, gpu))


def clear_faults(path: str | Path) -> None:
    with locked_state(path) as state:
        state["faults"] = []


def add_process(
    path: str | Path,
    gpu: int,
    pid: int,
    name: str,
    used_memory_mib: int = 0,
    gi: int | None = None,
    ci: int | None = None,
    cgroup: str | None = None,
) -> dict[str, Any]:
    from .spec import add_process_to_state

    with locked_state(path) as state:
        return dict(add_process_to_state(state, gpu, pid, name, used_memory_mib, gi, ci, cgroup))


def remove_process(path: str | Path, pid: int) -> None:
    from .spec import NodeSpecError

    with locked_state(path) as state:
        remaining = [p for p in state["processes"] if p["pid"] != pid]
        if len(remaining) == len(state["processes"]):
            raise NodeSpecError(f"no process {pid} on this node")
        state["processes"] = remaining


def hold_gpu(path: str | Path, gpu: int, client_name: str) -> None:
    """Mark a non-compute client (nvidia-persistenced, dcgm, ...) holding the GPU open."""
    from .spec import hold_gpu_in_state

    with locked_state(path) as state:
        hold_gpu_in_state(state, gpu, client_name)


def release_gpu(path: str | Path, gpu: int, client_name: str | None = None) -> None:
    with locked_state(path) as state:
        state["clients"] = [
            c for c in state["clients"] if not (c["gpu"] == gpu and (client_name is None or c["name"] == client_name))
        ]


def reboot(path: str | Path) -> None:
    from .core import Node

    with locked_state(path) as state:
        Node(state).reboot()


def reset_gpu(path: str | Path, gpu: int) -> None:
    """What ``nvidia-smi -r -i <gpu>`` does; raises NvmlCallError (IN_USE, NOT_SUPPORTED)."""
    from .core import Node

    with locked_state(path) as state:
        Node(state).reset_gpu(gpu)


def node_status(path: str | Path) -> dict[str, Any]:
    """A JSON-able picture of the node, as the simulator sees it."""
    return describe_node(read_state(path))


def describe_node(state: dict[str, Any]) -> dict[str, Any]:
    from .core import MIG_ENABLE, Node

    node = Node(state)
    driver = node.driver
    status: dict[str, Any] = {
        "node": state["node"],
        "driver_version": state["driver_version"],
        "cuda_version": driver.cuda_version if driver else None,
        "nvml_version": driver.nvml_version if driver else None,
        "driver_loaded": node.driver_usable and state.get("nvml_library", True),
        "passthrough_vm": state.get("passthrough_vm", False),
        "boot_count": state.get("boot_count", 0),
        "gpus": [],
        "processes": [dict(p) for p in state["processes"]],
        "clients": [dict(c) for c in state["clients"]],
        "host_services": [dict(s) for s in state.get("host_services") or []],
        "kernel_modules": list(state.get("kernel_modules") or []),
        "faults": [dict(f) for f in state["faults"]],
    }
    for index, gpu in enumerate(state["gpus"]):
        entry: dict[str, Any] = {
            "index": index,
            "uuid": gpu["uuid"],
            "model": gpu["model"],
            "pci_bus_id": gpu["pci_bus_id"],
            "mig": {
                "current": "enabled" if gpu["mig_current"] == MIG_ENABLE else "disabled",
                "pending": "enabled" if gpu["mig_pending"] == MIG_ENABLE else "disabled",
            },
        }
        if driver is not None:
            model = node.model(index)
            entry.update(name=model.nvml_name, memory_total_mib=model.memory_total_mib)
            entry["mig"]["supported"] = model.mig is not None
            if model.mig is None:
                status["gpus"].append(entry)
                continue
            entry["gpu_instances"] = [_describe_gi(node, index, gi) for gi in node.gpu_instances(index)]
        status["gpus"].append(entry)
    return status


def _describe_gi(node: Node, index: int, gi: dict[str, Any]) -> dict[str, Any]:
    profile = node.gi_profile_of(index, gi)
    return {
        "id": gi["id"],
        "profile_id": profile.id,
        "profile_name": profile.name,
        "placement": {"start": gi["placement"][0], "size": gi["placement"][1]},
        "memory_mib": profile.memory_mib,
        "compute_instances": [
            {
                "id": ci["id"],
                "profile_id": ci["profile_id"],
                "profile_name": node.ci_profile_of(index, gi["id"], ci).name,
                "placement": {"start": ci["placement"][0], "size": ci["placement"][1]},
                "mig_uuid": node.mig_uuid(index, gi["id"], ci["id"]),
                "mig_device_index": node.mig_device_index(index, gi["id"], ci["id"]),
            }
            for ci in node.compute_instances(index, gi["id"])
        ],
    }
