"""Turn a node spec (the YAML a fleet file holds per node) into a fresh node state.

Minimal spec::

    name: gpu-node-1
    driver_version: "550.54.15"
    gpus:
      - {model: A100-SXM4-40GB, count: 1, mig_mode: disabled}

Optional node keys: ``cuda_version`` (12040 or "12.4"), ``driver_loaded`` (false: nvmlInit
answers DRIVER_NOT_LOADED), ``nvml_library`` (false: LIBRARY_NOT_FOUND), ``passthrough_vm``
(true: GPU reset not exposed), ``processes``, ``clients``, ``faults``, ``hostvars`` (used by the
CLI's inventory only), ``container_toolkit`` (``{version: "1.17.8"}``, the default; ``null``: no
NVIDIA Container Toolkit; see ``toolkit.py``), ``host_services`` (``default``, ``dgx``, ``none`` or a
list; what holds the GPUs besides processes, see ``host.py``; absent here: none, absent in a fleet
file: ``default``) and ``kernel_modules`` (e.g. ``[nvidia_drm]``).  ``driver_version: null`` is a node without a driver.
Optional GPU keys: ``uuid`` / ``pci_bus_id`` (only with count 1), ``mig_mode`` (``enabled``,
``disabled`` or ``{current: .., pending: ..}``) and ``mig_devices`` (profiles created in order,
each with its full-size compute instance, like ``nvidia-smi mig -cgi ... -C``; ``name:start``
asks for a placement), ``persistence_mode`` (true: legacy persistence mode is on, so the
nvidia-smi stand-in prints no persistence warning; a ``nvidia-persistenced`` client does the same).
"""

from __future__ import annotations

import hashlib
from typing import Any

from . import host
from .core import MIG_DISABLE, MIG_ENABLE, Node
from .errors import NvmlCallError, error_code
from .hardware import canonical_model_name, default_ci_profile, parse_driver_version
from .procfs import HOST_SESSION_CGROUP
from .state import SCHEMA_VERSION
from .toolkit import DEFAULT_CONTAINER_TOOLKIT, toolkit_from_spec

NODE_KEYS = {
    "name",
    "driver_version",
    "cuda_version",
    "driver_loaded",
    "nvml_library",
    "passthrough_vm",
    "gpus",
    "processes",
    "clients",
    "faults",
    "hostvars",
    "container_toolkit",
    "host_services",
    "kernel_modules",
}
GPU_KEYS = {"model", "count", "mig_mode", "uuid", "pci_bus_id", "mig_devices", "persistence_mode"}

# Bus numbers of the eight GPUs of a DGX A100; nodes of one kind share a bus layout.
_DGX_BUS_NUMBERS = (0x07, 0x0F, 0x47, 0x4E, 0x87, 0x90, 0xB7, 0xBD)


class NodeSpecError(ValueError):
    pass


def gpu_uuid_for(node_name: str, index: int) -> str:
    digest = hashlib.sha256(f"gpufleet-sim/{node_name}/{index}".encode()).hexdigest()
    return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def pci_bus_id_for(index: int) -> str:
    bus = _DGX_BUS_NUMBERS[index] if index < len(_DGX_BUS_NUMBERS) else 0xC0 + index
    return f"00000000:{bus:02X}:00.0"


def parse_cuda_version(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    major, _, minor = text.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise NodeSpecError(f"cuda_version {value!r}: use 12040 or '12.4'")
    return int(major) * 1000 + int(minor) * 10


def _mig_modes(value: Any) -> tuple[int, int]:
    words = {"enabled": MIG_ENABLE, "disabled": MIG_DISABLE, True: MIG_ENABLE, False: MIG_DISABLE}
    if isinstance(value, dict):
        try:
            return words[value["current"]], words[value.get("pending", value["current"])]
        except KeyError as missing:
            raise NodeSpecError(f"mig_mode {value!r}: expected enabled/disabled") from missing
    if value not in words:
        raise NodeSpecError(f"mig_mode {value!r}: expected enabled, disabled or {{current, pending}}")
    return words[value], words[value]


def build_node_state(spec: dict[str, Any]) -> dict[str, Any]:
    unknown = set(spec) - NODE_KEYS
    if unknown:
        raise NodeSpecError(f"unknown node keys: {', '.join(sorted(unknown))}")
    name = spec.get("name")
    if not name:
        raise NodeSpecError("a node needs a name")
    driver_version = spec.get("driver_version")
    if driver_version is not None:
        driver_version = str(driver_version)
        try:
            parse_driver_version(driver_version)
        except ValueError as bad:
            raise NodeSpecError(f"node {name}: {bad}") from None
    state: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "node": str(name),
        "driver_version": driver_version,
        "cuda_version": parse_cuda_version(spec.get("cuda_version")),
        "driver_loaded": bool(spec.get("driver_loaded", True)),
        "nvml_library": bool(spec.get("nvml_library", True)),
        "passthrough_vm": bool(spec.get("passthrough_vm", False)),
        "boot_count": 0,
        "gpus": [],
        "processes": [],
        "clients": [],
        "faults": [],
        "container_toolkit": toolkit_from_spec(spec.get("container_toolkit", DEFAULT_CONTAINER_TOOLKIT)),
    }
    layouts: list[tuple[int, list[Any]]] = []
    for entry in spec.get("gpus") or []:
        unknown = set(entry) - GPU_KEYS
        if unknown:
            raise NodeSpecError(f"node {name}: unknown GPU keys: {', '.join(sorted(unknown))}")
        count = int(entry.get("count", 1))
        if count > 1 and ("uuid" in entry or "pci_bus_id" in entry):
            raise NodeSpecError(f"node {name}: uuid/pci_bus_id need count 1")
        current, pending = _mig_modes(entry.get("mig_mode", "disabled"))
        for _ in range(count):
            index = len(state["gpus"])
            state["gpus"].append(
                {
                    "index": index,
                    "model": canonical_model_name(entry["model"]),
                    "uuid": entry.get("uuid") or gpu_uuid_for(str(name), index),
                    "pci_bus_id": entry.get("pci_bus_id") or pci_bus_id_for(index),
                    "mig_current": current,
                    "mig_pending": pending,
                    "persistence_mode": bool(entry.get("persistence_mode", False)),
                    "gpu_instances": [],
                }
            )
            if entry.get("mig_devices"):
                layouts.append((index, list(entry["mig_devices"])))
    if driver_version is not None:
        node = Node(state)
        for index, gpu in enumerate(state["gpus"]):
            model = node.model(index)
            if (gpu["mig_current"] or gpu["mig_pending"]) and not model.mig_hardware:
                raise NodeSpecError(f"node {name}: {model.model} has no MIG mode")
        for index, profiles in layouts:
            _create_layout(node, index, profiles)
    elif layouts:
        raise NodeSpecError(f"node {name}: mig_devices need a driver")
    try:
        host_services = host.services_from_spec(
            spec.get("host_services"), [gpu["model"] for gpu in state["gpus"]], has_driver=driver_version is not None
        )
        kernel_modules = host.modules_from_spec(spec.get("kernel_modules"))
    except host.HostSpecError as bad:
        raise NodeSpecError(f"node {name}: {bad}") from None
    # The holders come last: the node's initial MIG devices were made before they started.
    state["host_services"] = host_services
    state["kernel_modules"] = kernel_modules
    for process in spec.get("processes") or []:
        add_process_to_state(state, **process)
    for client in spec.get("clients") or []:
        hold_gpu_in_state(state, int(client["gpu"]), str(client["name"]))
    for fault in spec.get("faults") or []:
        add_fault_to_state(state, **fault)
    return state


def _create_layout(node: Node, index: int, profiles: list[Any]) -> None:
    for item in profiles:
        text = str(item)
        name, _, start = text.partition(":")
        try:
            capability = node.require_mig_enabled(index)
            profile = capability.profile_by_name(name) or (
                capability.profile_by_id(int(name)) if name.isdigit() else None
            )
            if profile is None:
                raise NodeSpecError(f"GPU {index}: no MIG profile {name!r} on this GPU/driver")
            placement = None
            if start:
                placement = next((p for p in profile.placements if p[0] == int(start)), (int(start), -1))
            gi = node.create_gpu_instance(index, profile.id, placement)
            node.create_compute_instance(index, gi["id"], default_ci_profile(profile).index)
        except NvmlCallError as failure:
            raise NodeSpecError(f"GPU {index}: cannot create {text}: {failure}") from None


def add_process_to_state(
    state: dict[str, Any],
    gpu: int,
    pid: int,
    name: str,
    used_memory_mib: int = 0,
    gi: int | None = None,
    ci: int | None = None,
    cgroup: str | None = None,
) -> dict[str, Any]:
    """A compute process on a GPU, or on one MIG device (gi/ci) of a MIG-enabled GPU.

    ``cgroup`` is what the node's /proc shows for it (procfs.py): a pod's container path, or by default a host login
    session's, as a process started by hand has.
    """
    node = Node(state)
    if not 0 <= gpu < len(state["gpus"]):
        raise NodeSpecError(f"no GPU {gpu}")
    if any(p["pid"] == pid for p in state["processes"]):
        raise NodeSpecError(f"pid {pid} already runs on this node")
    mig_on = node.driver is not None and node.mig_enabled(gpu)
    if mig_on:
        if gi is None or ci is None:
            raise NodeSpecError(f"GPU {gpu} has MIG enabled: a process runs on a MIG device (gi and ci)")
        try:
            node.find_compute_instance(gpu, gi, ci)
        except NvmlCallError:
            raise NodeSpecError(f"GPU {gpu} has no MIG device GI {gi} / CI {ci}") from None
    elif gi is not None or ci is not None:
        raise NodeSpecError(f"GPU {gpu} has MIG disabled: gi/ci make no sense")
    process = {
        "pid": int(pid),
        "name": str(name),
        "gpu": int(gpu),
        "used_memory_mib": int(used_memory_mib),
        "gi": gi,
        "ci": ci,
        "cgroup": str(cgroup or HOST_SESSION_CGROUP),
    }
    state["processes"].append(process)
    return process


def hold_gpu_in_state(state: dict[str, Any], gpu: int, client_name: str) -> None:
    if not 0 <= gpu < len(state["gpus"]):
        raise NodeSpecError(f"no GPU {gpu}")
    if not any(c["gpu"] == gpu and c["name"] == client_name for c in state["clients"]):
        state["clients"].append({"gpu": gpu, "name": client_name})


def add_fault_to_state(
    state: dict[str, Any], call: str, error: str | int, times: int | None = 1, gpu: int | None = None
) -> dict[str, Any]:
    from .library import resolve_call_symbols  # library imports ctypes machinery; keep it lazy

    if times is not None and int(times) < 1:
        raise NodeSpecError("times must be >= 1, or None for always")
    fault = {
        "call": call,
        "symbols": resolve_call_symbols(call),
        "error": error_code(error),
        "remaining": None if times is None else int(times),
        "gpu": None if gpu is None else int(gpu),
    }
    state["faults"].append(fault)
    return fault
