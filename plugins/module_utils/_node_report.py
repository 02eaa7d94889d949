# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How the node modules report GPUs: words for messages and the result keys they share. Pure, no NVML.

They take ``gpu.read_node_facts()`` GPU records (and planner objects, where said) and return text or
JSON-able data, so mig_layout, mig_mode, mig_plan_info and the fleet report describe a GPU the same way.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import ProfileError
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import device_sort_key, normalize_profile

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ansible_collections.gpufleet.mig.plugins.module_utils._planner import ExistingGpuInstance, PlannedGpuInstance


def placement(value: Union[Dict[str, int], Sequence[int], None]) -> Optional[Dict[str, int]]:
    """The one placement form results use, ``{"start", "size"}``, from a dict or a ``(start, size)`` pair."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {"start": int(value["start"]), "size": int(value["size"])}
    start, size = value
    return {"start": int(start), "size": int(size)}


def placement_pair(value: Union[Dict[str, int], Sequence[int], None]) -> Optional[Tuple[int, int]]:
    """The same placement as the ``(start, size)`` pair the planner computes with."""
    value = placement(value)
    return None if value is None else (value["start"], value["size"])


def placement_text(value: Union[Dict[str, int], Sequence[int], None]) -> str:
    """``{"start": 4, "size": 4}`` -> ``4:4`` (nvidia-smi's notation)."""
    value = placement(value)
    return "?" if value is None else "%d:%d" % (value["start"], value["size"])


def _largest_first(name: str) -> Tuple[int, tuple, str]:
    try:
        return (0, device_sort_key(normalize_profile(name)), name)
    except ProfileError:  # a name no driver would report: keep it readable rather than fail a report
        return (1, (), name)


def describe_devices(devices: Optional[Iterable[str]], empty: str = "none") -> str:
    """``["1g.5gb", "3g.20gb", "1g.5gb"]`` -> ``3g.20gb, 2 x 1g.5gb``: counted, largest first.

    ``unmanaged`` for None; ``empty`` for no device.
    """
    if devices is None:
        return "unmanaged"
    counts = Counter(devices)
    if not counts:
        return empty
    order = sorted(counts, key=_largest_first)
    return ", ".join(("%d x %s" % (counts[name], name)) if counts[name] > 1 else name for name in order)


def describe_step(step: Dict[str, Any]) -> str:
    """One step record (done or attempted) in words, as error messages and summaries use it."""
    action = step["action"]
    if action == "destroy_compute_instance":
        return "destroy compute instance %d (%s) of GPU instance %d" % (
            step["compute_instance_id"], step.get("profile") or "unknown profile", step["gpu_instance_id"])
    if action == "destroy_gpu_instance":
        return "destroy GPU instance %d (%s at %s)" % (
            step["gpu_instance_id"], step.get("profile") or "unknown profile", placement_text(step.get("placement")))
    if action == "create_gpu_instance":
        where = placement_text(step["placement"]) if step.get("placement") else "a placement the driver picks"
        text = "create GPU instance %s at %s" % (step["profile"], where)
        if step.get("gpu_instance_id") is not None:
            text = "create GPU instance %s at %s (GPU instance %d)" % (step["profile"], where, step["gpu_instance_id"])
        return text
    if action == "create_compute_instance":
        text = "create compute instance %s in GPU instance %d" % (step["profile"], step["gpu_instance_id"])
        if step.get("compute_instance_id") is not None:
            text += " (compute instance %d)" % step["compute_instance_id"]
        return text
    return action


def describe_gpu(gpu: Dict[str, Any]) -> str:
    """``GPU 0 (NVIDIA A100-SXM4-40GB, 00000000:07:00.0)`` for messages."""
    return "GPU %d (%s, %s)" % (gpu["index"], gpu.get("name") or "unknown model", gpu.get("pci_bus_id") or gpu.get("uuid"))


def gpu_identity(gpu: Dict[str, Any]) -> Dict[str, Any]:
    """The keys every per-GPU result entry starts with."""
    return {"index": gpu["index"], "uuid": gpu.get("uuid"), "name": gpu.get("name"), "pci_bus_id": gpu.get("pci_bus_id")}


def describe_processes(processes: Iterable[Dict[str, Any]]) -> str:
    """``pid 4242 (python3) on GPU instance 13, pid 77 (trainer)``: who blocks a destroy or a reset."""
    words = []
    for process in sorted(processes, key=lambda item: item["pid"]):
        text = "pid %d" % process["pid"]
        if process.get("name"):
            text += " (%s)" % process["name"]
        if process.get("gpu_instance_id") is not None:
            text += " on GPU instance %d" % process["gpu_instance_id"]
        words.append(text)
    return ", ".join(words)


def processes_on_gpu_instances(gpu: Dict[str, Any], gpu_instance_ids: Iterable[int]) -> List[Dict[str, Any]]:
    wanted = set(gpu_instance_ids)
    return [process for process in gpu.get("processes") or () if process.get("gpu_instance_id") in wanted]


def mig_device_instances(gpu: Dict[str, Any]) -> List[Tuple[Dict[str, Any], Dict[str, Any]]]:
    """The one projection of a GPU's MIG devices: ``(gpu instance, compute instance)`` facts records, one per
    MIG device (a MIG device is a compute instance), in ``nvidia-smi -L`` order."""
    pairs = [(gi, ci) for gi in gpu.get("gpu_instances") or () for ci in gi.get("compute_instances") or ()]
    return sorted(pairs, key=lambda pair: (pair[1].get("mig_device_index") is None, pair[1].get("mig_device_index"),
                                           pair[0]["id"], pair[1]["id"]))


def mig_devices(gpu: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The MIG devices of a ``read_node_facts`` GPU record as results report them: profile, placement, UUID
    and memory of each, in nvidia-smi device order."""
    devices = []
    for gi, ci in mig_device_instances(gpu):
        devices.append({
            "profile": ci.get("profile_name"),
            "gpu_instance_id": gi["id"],
            "compute_instance_id": ci["id"],
            "gpu_instance_profile": gi.get("profile_name"),
            "placement": placement(gi.get("placement")),
            "compute_placement": placement(ci.get("placement")),
            "uuid": ci.get("mig_uuid"),
            "mig_device_index": ci.get("mig_device_index"),
            "memory_mib": gi.get("memory_mib"),
        })
    return devices


def _layout_line(profile: Optional[str], where: Optional[Dict[str, int]], compute_names: Sequence[str]) -> str:
    return "%s at %s: %s" % (profile, placement_text(where), ", ".join(compute_names) if compute_names
                             else "no compute instance")


def layout_lines(gpu_instances: Iterable[Union[Dict[str, Any], PlannedGpuInstance, ExistingGpuInstance]]) -> List[str]:
    """One line per GPU instance (``3g.20gb at 4:4: 3g.20gb``), ordered by placement: the diff form.

    Accepts ``read_node_facts`` records and planner ``PlannedGpuInstance`` objects alike, so a check-mode
    prediction and a re-read after the run print the same way. Ids are left out on purpose: a planned
    instance has none yet.
    """
    lines = []
    for gi in gpu_instances:
        if isinstance(gi, dict):
            profile, where = gi.get("profile_name"), gi.get("placement")
            computes = [ci.get("profile_name") or "?" for ci in gi.get("compute_instances") or ()]
        else:
            profile, where = gi.name, gi.placement
            computes = [ci.name for ci in getattr(gi, "compute_instances", ())]
        where = placement(where)
        lines.append(((where or {}).get("start", -1), _layout_line(profile, where, sorted(computes))))
    return [line for _start, line in sorted(lines)]
