"""What else runs on a GPU node and holds its GPUs: systemd services and kernel modules.

A real DGX/HGX node runs nvidia-persistenced, DCGM (nv-hostengine, as ``nvidia-dcgm``) or
dcgm-exporter, NVSM, nv_peer_mem and, on NVSwitch systems, nvidia-fabricmanager, and may have
``nvidia_drm`` loaded.  Each keeps the GPU open, so a MIG mode change on an Ampere GPU stays pending
and ``nvidia-smi -r`` is refused while one runs (gpu-operator#118: nvidia-persistenced;
mig-parted#181: nvidia_drm, reset refused, exit 255).  Services can be stopped (the ``systemctl``
stand-in, ``systemctl.py``); a kernel module cannot, only a reboot clears what it holds.

Node spec keys (see ``spec.py``):

* ``host_services``: ``default`` (the holders a node of its GPU kind has, ``default_services``),
  ``dgx`` (the full DGX/HGX preset below), a list of unit names (running, enabled, holding every
  GPU) or mappings ``{name, active, enabled, holds_gpus, blocks_instance_changes}``; ``none`` or
  ``[]``: a bare node.  A node of a fleet file (``gpufleet-sim up``) without the key gets
  ``default`` (``cli.FLEET_NODE_DEFAULTS``); a spec handed to ``build_node_state`` directly (the
  twin's own unit tests) without the key is bare.
* ``kernel_modules``: modules loaded that hold every GPU, e.g. ``[nvidia_drm]``.

State: ``state["host_services"]`` (list of mappings as above, ``name`` without ``.service``) and
``state["kernel_modules"]`` (list of names).  Values and their sources: twin/README.md, "Host".
"""

from __future__ import annotations

from typing import Any

SERVICE_SUFFIX = ".service"

# Kernel modules that hold the GPUs while loaded (mig-parted#181: nvidia_drm makes the reset fail).
GPU_HOLDING_MODULES = frozenset({"nvidia_drm", "nvidia_modeset"})

# The host services of a DGX/HGX-class node.  Names: NVIDIA gpu-operator's default-gpu-clients
# ConfigMap (nvsm*, nv_peer_mem, nvidia-dcgm, dcgm, dcgm-exporter; the doc "GPU Operator with MIG",
# section on preinstalled drivers) plus nvidia-persistenced (installed with every datacenter
# driver) and nvidia-fabricmanager (NVSwitch systems: DGX/HGX A100, H100, H200).
# blocks_instance_changes [choice]: the issue 8 finding says creating a GPU instance "can answer
# IN_USE" while another client holds the GPU without naming the client; the twin lets the
# monitoring agents (DCGM, dcgm-exporter, NVSM) refuse it, which is what stopping
# default-gpu-clients before every reconfiguration (mig-manager) guards against.
DGX_HOST_SERVICES: tuple[dict[str, Any], ...] = (
    {"name": "nvidia-persistenced", "holds_gpus": True, "blocks_instance_changes": False},
    {"name": "nvidia-fabricmanager", "holds_gpus": True, "blocks_instance_changes": False},
    {"name": "nv_peer_mem", "holds_gpus": True, "blocks_instance_changes": False},
    {"name": "nvidia-dcgm", "holds_gpus": True, "blocks_instance_changes": True},
    {"name": "dcgm-exporter", "holds_gpus": True, "blocks_instance_changes": True},
    {"name": "nvsm", "holds_gpus": True, "blocks_instance_changes": True},
)
PRESETS = {"dgx": DGX_HOST_SERVICES, "hgx": DGX_HOST_SERVICES}
# ``host_services: none`` (or ``[]``): a bare node, nothing but processes and clients holds its GPUs.
BARE = "none"
# ``host_services: default``: what a node of its GPU kind has (``default_services``).
BY_GPU_KIND = "default"

# SXM modules sit on an HGX baseboard (DGX A100/H100/H200, HGX A100/H100/H200); the twin's other
# models are PCIe cards (A30, Tesla T4).  Source: NVIDIA's product pages of each model (SXM4/SXM5 form factor).
SXM_MODELS = frozenset({"A100-SXM4-40GB", "A100-SXM4-80GB", "H100-SXM5-80GB", "H200-141GB"})
# 8-GPU (and 16-GPU) HGX boards connect their GPUs through NVSwitch and need nvidia-fabricmanager
# (NVIDIA Fabric Manager User Guide, "supported platforms": DGX A100, HGX A100 8-GPU/16-GPU, DGX H100,
# HGX H100 8-GPU); 4-GPU HGX boards link their GPUs directly with NVLink and are not listed [infer].
# The twin takes a node with at least 8 SXM GPUs for an NVSwitch board.
NVSWITCH_BOARD_GPUS = 8
# Which services a node of each kind runs by default:
# - nvidia-persistenced: installed with every datacenter driver ("Driver Persistence",
#   https://docs.nvidia.com/deploy/driver-persistence/), so every node with a driver; a node without a
#   driver has none of these services.
# - nvidia-fabricmanager: NVSwitch boards only (above).
# - nvidia-dcgm, dcgm-exporter: GPU telemetry, gpu-operator default-gpu-clients; on PCIe nodes too [choice:
#   whether a given PCIe node runs them as host services rather than as pods is unknown].
# - nvsm, nv_peer_mem: DGX OS software (NVSM; GPUDirect RDMA with the DGX's ConnectX NICs), gpu-operator
#   default-gpu-clients; SXM nodes only [choice: an OEM HGX server may lack NVSM; newer drivers ship the
#   nvidia-peermem kernel module instead of the nv_peer_mem service, which one a node has is unknown; whether
#   a PCIe node has an RDMA NIC is unknown, so it gets neither].
PCIE_NODE_SERVICES = ("nvidia-persistenced", "nvidia-dcgm", "dcgm-exporter")
SERVICE_KEYS = {"name", "active", "enabled", "holds_gpus", "blocks_instance_changes"}


class HostSpecError(ValueError):
    pass


def unit_name(text: str) -> str:
    """``nvsm.service`` and ``nvsm`` name the same unit."""
    return text[: -len(SERVICE_SUFFIX)] if text.endswith(SERVICE_SUFFIX) else text


def default_services(gpu_models: list[str], has_driver: bool = True) -> tuple[dict[str, Any], ...]:
    """The holders a node of this GPU kind runs (``host_services: default``), in DGX preset order."""
    if not has_driver or not gpu_models:
        return ()
    sxm_count = sum(1 for model in gpu_models if model in SXM_MODELS)
    if sxm_count:
        wanted = {s["name"] for s in DGX_HOST_SERVICES}
        if sxm_count < NVSWITCH_BOARD_GPUS:
            wanted.discard("nvidia-fabricmanager")
    else:
        wanted = set(PCIE_NODE_SERVICES)
    return tuple(dict(s) for s in DGX_HOST_SERVICES if s["name"] in wanted)


def services_from_spec(value: Any, gpu_models: list[str] | None = None, has_driver: bool = True) -> list[dict[str, Any]]:
    """``gpu_models`` (one entry per GPU) and ``has_driver`` choose what ``default`` means for this node."""
    if value is None or value == BARE:
        return []
    if isinstance(value, str):
        if value == BY_GPU_KIND:
            value = default_services(list(gpu_models or []), has_driver)
        elif value in PRESETS:
            value = PRESETS[value]
        else:
            choices = ", ".join(sorted([*PRESETS, BARE, BY_GPU_KIND]))
            raise HostSpecError(f"host_services {value!r}: use a list or one of {choices}")
    if not isinstance(value, (list, tuple)):
        raise HostSpecError("host_services: expected a list of unit names or mappings, or a preset name")
    services: list[dict[str, Any]] = []
    for entry in value:
        raw = {"name": entry} if isinstance(entry, str) else dict(entry)
        unknown = set(raw) - SERVICE_KEYS
        if unknown or not raw.get("name"):
            raise HostSpecError(f"host_services entry {entry!r}: needs a name; known keys {', '.join(sorted(SERVICE_KEYS))}")
        name = unit_name(str(raw["name"]))
        if any(s["name"] == name for s in services):
            raise HostSpecError(f"host_services: {name} listed twice")
        active = bool(raw.get("active", True))
        services.append(
            {
                "name": name,
                "active": active,
                "enabled": bool(raw.get("enabled", active)),
                "holds_gpus": bool(raw.get("holds_gpus", True)),
                "blocks_instance_changes": bool(raw.get("blocks_instance_changes", False)),
            }
        )
    return services


def modules_from_spec(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise HostSpecError("kernel_modules: expected a list of module names")
    return [str(v) for v in value]


def find_service(state: dict[str, Any], name: str) -> dict[str, Any] | None:
    wanted = unit_name(name)
    return next((s for s in state.get("host_services") or [] if s["name"] == wanted), None)


def gpu_holders(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Clients that hold every GPU of the node: running services and loaded modules."""
    holders = [
        {"name": f"{s['name']}{SERVICE_SUFFIX}", "kind": "service"}
        for s in state.get("host_services") or []
        if s["active"] and s["holds_gpus"]
    ]
    holders += [
        {"name": module, "kind": "kernel_module"}
        for module in state.get("kernel_modules") or []
        if module in GPU_HOLDING_MODULES
    ]
    return holders


def instance_change_blockers(state: dict[str, Any]) -> list[str]:
    return [
        f"{s['name']}{SERVICE_SUFFIX}"
        for s in state.get("host_services") or []
        if s["active"] and s["blocks_instance_changes"]
    ]


def boot(state: dict[str, Any]) -> None:
    """After a reboot the enabled services run again and the others do not; modules load again."""
    for service in state.get("host_services") or []:
        service["active"] = bool(service["enabled"])
