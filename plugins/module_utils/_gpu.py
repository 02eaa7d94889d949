# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The NVML seam: the only file of the collection that imports pynvml (package nvidia-ml-py).

A thin layer over the real pynvml API. Reads return JSON-able dicts, writes return what NVML reports
afterwards, and every NVML failure becomes ``NvmlCallError`` carrying the call name, NVML's return code
and NVML's own text. Everything except ``NvmlSession`` expects to run inside ``with NvmlSession():``;
sessions nest (NVML is initialised once by the outermost one).

Driver differences handled here (docs/hardware.md, "Driver-branch differences"):

* ``nvmlDeviceGetGpuInstanceProfileInfoV`` (with the profile ``name``) exists from R510; older drivers get
  the v1 call, and names are computed from the numbers anyway (_profiles.py);
* ``nvmlDeviceGetGpuInstancePossiblePlacements_v2`` exists from R470; older drivers get the v1 C symbol;
* pynvml 13 only calls ``nvmlComputeInstanceGetInfo_v2`` (R460+) and the ``_v3``/``_v2`` process queries
  (R510+/R455+). Older drivers export only the unversioned symbols, whose structs are shorter: the v1
  compute-instance info has no ``placement`` (reported as None) and the v1 process info has no instance
  ids (a MIG device's processes take that device's ids). Those are called through pynvml's own
  function-pointer lookup with structs declared here (``_ProcessInfoV1``, ``_ComputeInstanceInfoV1``);
* compute-instance placements (``...CreateComputeInstanceWithPlacement``) exist from R525; _apply.py falls
  back to automatic placement before that;
* Hopper's double-memory 1g GPU instances (H100 ``1g.20gb``, H200 ``1g.35gb``) offer compute profile
  1_SLICE_REV1 (index 7) beside 1_SLICE (0), and ``nvidia-smi mig -cgi 15 -C`` creates index 7: a
  driver-placed compute instance takes the latest revision of the requested slice count the GPU
  instance offers (``_revised_compute_profile``);
* GPU instance ids are opaque: from R580 they do not follow placement, so placements are always read
  from ``nvmlGpuInstanceGetInfo``, never derived from an id;
* GPU instance profile indices a driver does not know answer INVALID_ARGUMENT, profiles a GPU lacks
  NOT_SUPPORTED: both are skipped, as go-nvlib does. Drivers before ~R550 list no profile at all while
  MIG mode is off (the catalog is then empty, and the planner says so);
* strings come back as ``str`` from current pynvml; ``bytes`` are decoded too.
"""

from __future__ import annotations

import ctypes
import traceback
from ctypes import byref, c_uint
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, NvmlCallError
from ansible_collections.gpufleet.mig.plugins.module_utils._node_report import placement_pair
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import (
    GpuCatalog,
    GpuInstanceProfile,
    build_catalog,
    mig_profile_name,
    memory_size_gb,
    GPU_INSTANCE_PROFILE_SHAPES,
    profile_resources,
)

try:
    import pynvml

    HAS_PYNVML = True
    PYNVML_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the target host
    pynvml = None
    HAS_PYNVML = False
    PYNVML_IMPORT_ERROR = traceback.format_exc()

# NVML return codes (nvml.h; docs/hardware.md). Numbers, so they exist without pynvml.
NVML_SUCCESS = 0
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_IN_USE = 19
NVML_ERROR_INSUFFICIENT_RESOURCES = 23

_NO_INSTANCE_ID = 0xFFFFFFFF  # NVML_GPU_INSTANCE_ID_ANY / "not a MIG process"
_MIB = 1024 * 1024
_MIG_ENABLE = 1
_MIG_DISABLE = 0
_SKIPPED_PROFILE_CODES = (NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_INVALID_ARGUMENT)

_session_depth = [0]  # module-level counter of nested NvmlSession blocks
# The MIG profile catalogs read in the outermost NvmlSession, by (name, memory, MIG mode): a node's GPUs are mostly
# one model on one driver, whose profiles and placements are the same, so a read of an 8-GPU node reads one catalog
# instead of eight (or sixteen: a MIG-enabled GPU's instances are named from its catalog too). The MIG mode is part
# of the key because drivers before R550 list no profiles while MIG is off. Dropped when the session ends.
_session_catalogs: Dict[Tuple[Any, ...], Any] = {}


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _error_text(error: Exception) -> str:
    try:
        return str(error)
    except Exception:  # pylint: disable=broad-except  # str() of an NVMLError may itself call into NVML
        return "NVML error %s" % getattr(error, "value", "?")


def _nvml_error(call: str, error: Exception, gpu_index: Optional[int] = None, detail: Optional[str] = None) -> NvmlCallError:
    return NvmlCallError(call, getattr(error, "value", None), _error_text(error), gpu_index=gpu_index, detail=detail)


def _call(function: Callable[..., Any], *args: Any, **context: Any) -> Any:
    """Run a pynvml function; NVMLError -> NvmlCallError(call=function name, code, text)."""
    try:
        return function(*args)
    except pynvml.NVMLError as error:
        raise _nvml_error(function.__name__, error, context.get("gpu_index"), context.get("detail"))


def _require_pynvml() -> None:
    if not HAS_PYNVML:
        raise MigError(
            "the Python package nvidia-ml-py (module pynvml) is not installed on this host; install it for "
            "the interpreter Ansible uses here"
        )


class NvmlSession(object):
    """``with NvmlSession():`` initialises NVML (nvmlInit) and shuts it down (nvmlShutdown) at the end."""

    def __enter__(self) -> NvmlSession:
        _require_pynvml()
        if _session_depth[0] == 0:
            _call(pynvml.nvmlInit)
            _session_catalogs.clear()
        _session_depth[0] += 1
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc_value: Optional[BaseException], tb: Any) -> bool:
        _session_depth[0] -= 1
        if _session_depth[0] == 0:
            _session_catalogs.clear()
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError as error:
                if exc_type is None:
                    raise _nvml_error("nvmlShutdown", error)
        return False


def gpu_handle(index: int) -> Any:
    """NVML device handle of the GPU at ``index``."""
    return _call(pynvml.nvmlDeviceGetHandleByIndex, index, gpu_index=index)


def _mode_word(mode: int) -> str:
    return "enabled" if mode == _MIG_ENABLE else "disabled"


def _cuda_version(value: int) -> str:
    """NVML's CUDA driver version int (12040) -> "12.4"."""
    return "%d.%d" % (value // 1000, (value % 1000) // 10)


def _mig_mode(handle: Any, index: Optional[int]) -> Optional[Tuple[int, int]]:
    """(current, pending) ints, or None when the GPU (or driver) has no MIG."""
    try:
        current, pending = pynvml.nvmlDeviceGetMigMode(handle)
    except pynvml.NVMLError as error:
        if error.value in (NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND):
            return None
        raise _nvml_error("nvmlDeviceGetMigMode", error, index)
    return current, pending


class _ProfileInfoReader(object):
    """GetGpuInstanceProfileInfo with the V (v2) struct, falling back to v1 on drivers before R510."""

    def __init__(self, index: Optional[int]) -> None:
        self.version = 2
        self.gpu_index = index

    def read(self, handle: Any, profile_index: int) -> Any:
        try:
            return pynvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, profile_index, self.version)
        except pynvml.NVMLError as error:
            if error.value == NVML_ERROR_FUNCTION_NOT_FOUND and self.version == 2:
                self.version = 1
                return self.read(handle, profile_index)
            if error.value in _SKIPPED_PROFILE_CODES:
                return None
            raise _nvml_error("nvmlDeviceGetGpuInstanceProfileInfo", error, self.gpu_index,
                              "profile index %d" % profile_index)


def _possible_placements(handle: Any, profile_id: int, index: Optional[int]) -> List[Tuple[int, int]]:
    """[(start, size)] for a GPU instance profile id; NULL array first to learn the count."""
    count = c_uint(0)
    try:
        pynvml.nvmlDeviceGetGpuInstancePossiblePlacements(handle, profile_id, None, byref(count))
        function = pynvml.nvmlDeviceGetGpuInstancePossiblePlacements
    except pynvml.NVMLError as error:
        if error.value != NVML_ERROR_FUNCTION_NOT_FOUND:
            raise _nvml_error("nvmlDeviceGetGpuInstancePossiblePlacements", error, index, "profile %d" % profile_id)
        function = _possible_placements_v1
        _call(function, handle, profile_id, None, byref(count), gpu_index=index, detail="profile %d" % profile_id)
    placements = (pynvml.c_nvmlGpuInstancePlacement_t * max(count.value, 1))()
    _call(function, handle, profile_id, placements, byref(count), gpu_index=index, detail="profile %d" % profile_id)
    return [(placements[i].start, placements[i].size) for i in range(count.value)]


def _possible_placements_v1(handle: Any, profile_id: int, placements: Any, count: Any) -> None:
    """The pre-R470 C symbol, which pynvml does not wrap (its wrapper always calls ``_v2``)."""
    # pylint: disable-next=protected-access
    function = pynvml._nvmlGetFunctionPointer("nvmlDeviceGetGpuInstancePossiblePlacements")
    pynvml._nvmlCheckReturn(function(handle, profile_id, placements, count))  # pylint: disable=protected-access


_possible_placements_v1.__name__ = "nvmlDeviceGetGpuInstancePossiblePlacements"


class _ComputeInstanceInfoV1(ctypes.Structure):
    """``nvmlComputeInstanceInfo_t`` as R450/R455 write it (nvml.h of NVML 11.0/11.1): no placement."""

    _fields_ = [("device", ctypes.c_void_p), ("gpuInstance", ctypes.c_void_p),
                ("id", ctypes.c_uint), ("profileId", ctypes.c_uint)]


class _ProcessInfoV1(ctypes.Structure):
    """``nvmlProcessInfo_t`` as R450 writes it (nvml.h of NVML 11.0): no GPU/compute instance ids."""

    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong)]


def _compute_instance_info(compute: Any, index: int) -> Dict[str, Any]:
    """{id, profile_id, placement} of a compute instance; placement None where the driver has no v2 info."""
    try:
        info = pynvml.nvmlComputeInstanceGetInfo(compute)
    except pynvml.NVMLError as error:
        if error.value != NVML_ERROR_FUNCTION_NOT_FOUND:
            raise _nvml_error("nvmlComputeInstanceGetInfo", error, index)
        info = _call(_compute_instance_info_v1, compute, gpu_index=index)
        return {"id": info.id, "profile_id": info.profileId, "placement": None}
    return {"id": info.id, "profile_id": info.profileId, "placement": _placement(info.placement)}


def _compute_instance_info_v1(compute: Any) -> _ComputeInstanceInfoV1:
    """The pre-R460 C symbol with its own struct (pynvml's wrapper always calls ``_v2``)."""
    info = _ComputeInstanceInfoV1()
    # pylint: disable-next=protected-access
    function = pynvml._nvmlGetFunctionPointer("nvmlComputeInstanceGetInfo")
    pynvml._nvmlCheckReturn(function(compute, byref(info)))  # pylint: disable=protected-access
    return info


_compute_instance_info_v1.__name__ = "nvmlComputeInstanceGetInfo"


def _processes_v1(kind: str, handle: Any) -> List[_ProcessInfoV1]:
    """The R450 unversioned process query (v1 struct), called as pynvml calls the newer ones."""
    # pylint: disable-next=protected-access
    function = pynvml._nvmlGetFunctionPointer("nvmlDevice%sRunningProcesses" % kind)
    count = c_uint(0)
    status = function(handle, byref(count), None)
    if status == NVML_SUCCESS:
        return []
    if status != NVML_ERROR_INSUFFICIENT_SIZE:
        pynvml._nvmlCheckReturn(status)  # pylint: disable=protected-access
    count.value = count.value * 2 + 5  # room for processes that start between the two calls
    infos = (_ProcessInfoV1 * count.value)()
    pynvml._nvmlCheckReturn(function(handle, byref(count), infos))  # pylint: disable=protected-access
    return [infos[position] for position in range(count.value)]


def read_catalog(handle_or_index: Any) -> GpuCatalog:
    """GpuCatalog of one GPU, read from NVML now (the product never hard-codes profile tables)."""
    index = handle_or_index if isinstance(handle_or_index, int) else None
    handle = gpu_handle(handle_or_index) if index is not None else handle_or_index
    name = _text(_call(pynvml.nvmlDeviceGetName, handle, gpu_index=index))
    total_bytes = _call(pynvml.nvmlDeviceGetMemoryInfo, handle, gpu_index=index).total
    key = (name, total_bytes, _mig_mode(handle, index))
    if _session_depth[0] and key in _session_catalogs:
        return _session_catalogs[key]
    reader = _ProfileInfoReader(index)
    records = []
    seen = set()
    for profile_index in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
        info = reader.read(handle, profile_index)
        if info is None or info.id in seen:
            continue
        seen.add(info.id)
        reported = _text(getattr(info, "name", b"")) or None
        if reported and reported.upper().startswith("MIG "):
            reported = reported[4:]
        records.append({
            "index": profile_index,
            "profile_id": info.id,
            "slice_count": info.sliceCount,
            "instance_count": info.instanceCount,
            "memory_mib": info.memorySizeMB,
            "multiprocessors": info.multiprocessorCount,
            "copy_engines": info.copyEngineCount,
            "decoders": info.decoderCount,
            "encoders": info.encoderCount,
            "jpegs": info.jpegCount,
            "ofas": info.ofaCount,
            "placements": _possible_placements(handle, info.id, index),
            "reported_name": reported,
        })
    catalog = build_catalog(name, total_bytes, records)
    if _session_depth[0]:
        _session_catalogs[key] = catalog
    return catalog


def _compute_profile_info(gpu_instance: Any, ci_profile_index: int, gpu_index: int) -> Any:
    """Compute-instance profile info (V struct, v1 before R510), or None if the GI lacks that profile."""
    shared = pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
    for version in (2, 1):
        try:
            return pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gpu_instance, ci_profile_index, shared, version)
        except pynvml.NVMLError as error:
            if error.value == NVML_ERROR_FUNCTION_NOT_FOUND and version == 2:
                continue
            if error.value in _SKIPPED_PROFILE_CODES:
                return None
            raise _nvml_error("nvmlGpuInstanceGetComputeInstanceProfileInfo", error, gpu_index,
                              "compute profile index %d" % ci_profile_index)
    return None


def _mig_devices(handle: Any, index: int, max_count: int) -> Dict[Tuple[int, int], Dict[str, Any]]:
    """{(gi id, ci id): {mig_device_index, mig_uuid, handle}} for the MIG devices NVML exposes."""
    devices = {}
    for mig_index in range(max_count):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, mig_index)
        except pynvml.NVMLError as error:
            if error.value in (NVML_ERROR_NOT_FOUND, NVML_ERROR_INVALID_ARGUMENT):
                continue
            raise _nvml_error("nvmlDeviceGetMigDeviceHandleByIndex", error, index, "MIG device %d" % mig_index)
        key = (_call(pynvml.nvmlDeviceGetGpuInstanceId, mig, gpu_index=index),
               _call(pynvml.nvmlDeviceGetComputeInstanceId, mig, gpu_index=index))
        devices[key] = {"mig_device_index": mig_index,
                        "mig_uuid": _text(_call(pynvml.nvmlDeviceGetUUID, mig, gpu_index=index)),
                        "handle": mig}
    return devices


def _placement(struct: Any) -> Dict[str, int]:
    return {"start": struct.start, "size": struct.size}


def _compute_instance_name(gi_profile: GpuInstanceProfile, compute_slices: int, total_bytes: int) -> str:
    known = gi_profile.compute_profile_by_slices(compute_slices)
    if known is not None:
        return known.name
    gpu_slices, attributes, negative = GPU_INSTANCE_PROFILE_SHAPES.get(
        gi_profile.index, (gi_profile.slice_count, (), ()))
    return mig_profile_name(gpu_slices, compute_slices, memory_size_gb(gi_profile.memory_mib, total_bytes),
                            attributes, negative)


def _compute_instances(gpu_instance: Any, gi_id: int, gi_profile: GpuInstanceProfile, total_bytes: int,
                       mig_devices: Dict[Tuple[int, int], Dict[str, Any]], index: int) -> List[Dict[str, Any]]:
    computes = []
    seen = set()
    for ci_profile_index in range(pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
        info = _compute_profile_info(gpu_instance, ci_profile_index, index)
        if info is None or info.id in seen:
            continue
        seen.add(info.id)
        handles = (pynvml.c_nvmlComputeInstance_t * max(info.instanceCount, 1))()
        count = c_uint(0)
        _call(pynvml.nvmlGpuInstanceGetComputeInstances, gpu_instance, info.id, handles, byref(count),
              gpu_index=index, detail="GPU instance %d" % gi_id)
        name = _compute_instance_name(gi_profile, info.sliceCount, total_bytes)
        for position in range(count.value):
            ci = _compute_instance_info(handles[position], index)
            device = mig_devices.get((gi_id, ci["id"]), {})
            computes.append({
                "id": ci["id"],
                "profile_id": ci["profile_id"],
                "profile_name": name,
                "placement": ci["placement"],
                "mig_uuid": device.get("mig_uuid"),
                "mig_device_index": device.get("mig_device_index"),
                "multiprocessors": info.multiprocessorCount,
            })
    return sorted(computes, key=lambda ci: ci["id"])


def _gpu_instances(handle: Any, index: int, catalog: GpuCatalog,
                   mig_devices: Dict[Tuple[int, int], Dict[str, Any]]) -> List[Dict[str, Any]]:
    instances = []
    for profile in catalog.profiles:
        handles = (pynvml.c_nvmlGpuInstance_t * max(profile.instance_count, 1))()
        count = c_uint(0)
        _call(pynvml.nvmlDeviceGetGpuInstances, handle, profile.profile_id, handles, byref(count),
              gpu_index=index, detail="profile %d" % profile.profile_id)
        for position in range(count.value):
            info = _call(pynvml.nvmlGpuInstanceGetInfo, handles[position], gpu_index=index)
            record = {
                "id": info.id,
                "profile_id": info.profileId,
                "profile_name": profile.name,
                "placement": _placement(info.placement),
                "memory_mib": profile.memory_mib,
                "compute_instances": _compute_instances(handles[position], info.id, profile,
                                                        catalog.memory_total_bytes, mig_devices, index),
            }
            record.update(profile_resources(profile))
            instances.append(record)
    return sorted(instances, key=lambda gi: gi["id"])


def _versioned_processes(kind: str, handle: Any, index: int, required: bool) -> List[Any]:
    """Running processes of one kind through the newest call the driver exports.

    The unversioned pynvml wrappers turn FUNCTION_NOT_FOUND into a non-NVML exception, so call the
    versions directly: _v3 (R510+), then _v2 (R455+, same struct), then the R450 unversioned symbol
    with the v1 struct (no instance ids).
    """
    last_error = None
    for suffix in ("_v3", "_v2", ""):
        if suffix:
            function = getattr(pynvml, "nvmlDevice%sRunningProcesses%s" % (kind, suffix))
            arguments = (handle,)
        else:
            function = _processes_v1
            arguments = (kind, handle)
        try:
            return list(function(*arguments))
        except pynvml.NVMLError as error:
            if error.value != NVML_ERROR_FUNCTION_NOT_FOUND and not (
                    not required and error.value == NVML_ERROR_NOT_SUPPORTED):
                raise _nvml_error(function.__name__, error, index)
            last_error = ("nvmlDevice%sRunningProcesses%s" % (kind, suffix), error)
    if required:
        raise _nvml_error(last_error[0], last_error[1], index)
    return []


def _running_processes(handle: Any, index: int) -> List[Any]:
    """Compute processes, plus graphics processes where the driver reports them."""
    return (_versioned_processes("GetCompute", handle, index, True)
            + _versioned_processes("GetGraphics", handle, index, False))


def _instance_id(value: Optional[int]) -> Optional[int]:
    return None if value is None or value == _NO_INSTANCE_ID else value


def _processes(handle: Any, index: int, mig_devices: Dict[Tuple[int, int], Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Processes on the GPU and its MIG devices, one record per (pid, GPU instance, compute instance)."""
    found = {}
    sources = [(handle, None, None)]
    for (gi_id, ci_id), device in sorted(mig_devices.items()):
        sources.append((device["handle"], gi_id, ci_id))
    for source, gi_id, ci_id in sources:
        for process in _running_processes(source, index):
            gpu_instance = _instance_id(getattr(process, "gpuInstanceId", None))
            compute_instance = _instance_id(getattr(process, "computeInstanceId", None))
            if gpu_instance is None and gi_id is not None:
                gpu_instance, compute_instance = gi_id, ci_id
            used = getattr(process, "usedGpuMemory", None)
            found[(process.pid, gpu_instance, compute_instance)] = {
                "pid": process.pid,
                "used_memory_mib": None if used is None else used // _MIB,
                "gpu_instance_id": gpu_instance,
                "compute_instance_id": compute_instance,
            }
    # A parent-handle record without instance ids duplicates the same pid's record from its MIG device.
    placed = set(key[0] for key in found if key[1] is not None)
    records = [record for key, record in sorted(found.items(), key=lambda item: str(item[0]))
               if key[1] is not None or key[0] not in placed]
    for record in records:
        try:
            record["name"] = _text(pynvml.nvmlSystemGetProcessName(record["pid"]))
        except pynvml.NVMLError:
            pass  # the name is a courtesy for reports; a process may exit between the two calls
    return sorted(records, key=lambda record: (record["pid"], str(record["gpu_instance_id"])))


def _gpu_facts(index: int) -> Dict[str, Any]:
    handle = gpu_handle(index)
    pci = _call(pynvml.nvmlDeviceGetPciInfo, handle, gpu_index=index)
    memory = _call(pynvml.nvmlDeviceGetMemoryInfo, handle, gpu_index=index)
    mode = _mig_mode(handle, index)
    facts = {
        "index": index,
        "uuid": _text(_call(pynvml.nvmlDeviceGetUUID, handle, gpu_index=index)),
        "name": _text(_call(pynvml.nvmlDeviceGetName, handle, gpu_index=index)),
        "pci_bus_id": _text(pci.busId),
        "pci_device_id": "0x%08X" % pci.pciDeviceId,
        "pci_subsystem_id": "0x%08X" % pci.pciSubSystemId,
        "memory_total_mib": memory.total // _MIB,
        "compute_capability": "%d.%d" % tuple(_call(pynvml.nvmlDeviceGetCudaComputeCapability, handle, gpu_index=index)),
        "mig_capable": mode is not None,
        "mig_mode": None if mode is None else {"current": _mode_word(mode[0]), "pending": _mode_word(mode[1])},
        "max_mig_devices": 0,
        "gpu_instances": [],
        "processes": [],
    }
    mig_devices = {}
    if mode is not None and mode[0] == _MIG_ENABLE:
        facts["max_mig_devices"] = _call(pynvml.nvmlDeviceGetMaxMigDeviceCount, handle, gpu_index=index)
        mig_devices = _mig_devices(handle, index, facts["max_mig_devices"])
        facts["gpu_instances"] = _gpu_instances(handle, index, read_catalog(handle), mig_devices)
    facts["processes"] = _processes(handle, index, mig_devices)
    return facts


def read_node_facts() -> Dict[str, Any]:
    """Driver, CUDA and NVML versions and every GPU: identity, MIG mode, GPU/compute instances, processes.

    MIG devices carry their UUID and nvidia-smi device index; ``profile_name`` fields use go-nvlib names
    (``3g.20gb``, ``1c.3g.20gb``), so ``planner.devices_from_instances`` works on them directly.
    """
    return {
        "driver_version": _text(_call(pynvml.nvmlSystemGetDriverVersion)),
        "cuda_driver_version": _cuda_version(_call(pynvml.nvmlSystemGetCudaDriverVersion)),
        "nvml_version": _text(_call(pynvml.nvmlSystemGetNVMLVersion)),
        "gpus": [_gpu_facts(index) for index in range(_call(pynvml.nvmlDeviceGetCount))],
    }


def _status_text(status: int) -> str:
    if status == NVML_SUCCESS:
        return "Success"
    return _error_text(pynvml.NVMLError(status))


def set_mig_mode(index: int, enabled: bool) -> Dict[str, Any]:
    """Request MIG mode on/off for one GPU.

    NVML sets the *pending* mode at once; ``activation_status`` is NVML's own verdict on activating it
    (0 = done; IN_USE = clients hold the GPU; RESET_REQUIRED = a reset or reboot must follow). Like
    mig-parted, callers should decide from ``current`` vs ``pending``, which are read back afterwards.
    """
    handle = gpu_handle(index)
    mode = _MIG_ENABLE if enabled else _MIG_DISABLE
    status = _call(pynvml.nvmlDeviceSetMigMode, handle, mode, gpu_index=index,
                   detail="enable" if enabled else "disable")
    current, pending = _call(pynvml.nvmlDeviceGetMigMode, handle, gpu_index=index)
    return {"activation_status": status, "activation_status_text": _status_text(status),
            "current": _mode_word(current), "pending": _mode_word(pending)}


def create_gpu_instance(index: int, profile_id: int, placement: Union[Dict[str, int], Sequence[int], None] = None) -> Dict[str, Any]:
    """Create a GPU instance of ``profile_id`` (the nvidia-smi id), at ``placement`` (start, size) if given.

    Returns ``{id, profile_id, placement}`` as NVML reports the new instance. Explicit placement needs
    R460+ (FUNCTION_NOT_FOUND before).
    """
    handle = gpu_handle(index)
    if placement is None:
        instance = _call(pynvml.nvmlDeviceCreateGpuInstance, handle, profile_id, gpu_index=index,
                         detail="profile %d" % profile_id)
    else:
        start, size = placement_pair(placement)
        where = pynvml.c_nvmlGpuInstancePlacement_t(start, size)
        instance = _call(pynvml.nvmlDeviceCreateGpuInstanceWithPlacement, handle, profile_id, byref(where),
                         gpu_index=index, detail="profile %d at %d:%d" % (profile_id, start, size))
    info = _call(pynvml.nvmlGpuInstanceGetInfo, instance, gpu_index=index)
    return {"id": info.id, "profile_id": info.profileId, "placement": _placement(info.placement)}


def _gpu_instance_by_id(handle: Any, index: int, gi_id: int) -> Any:
    return _call(pynvml.nvmlDeviceGetGpuInstanceById, handle, gi_id, gpu_index=index,
                 detail="GPU instance %d" % gi_id)


def create_compute_instance(index: int, gi_id: int, ci_profile_index: int,
                            placement: Union[Dict[str, int], Sequence[int], None] = None) -> Dict[str, Any]:
    """Create a compute instance in GPU instance ``gi_id``.

    ``ci_profile_index`` is the NVML_COMPUTE_INSTANCE_PROFILE_* index (the planner's ``profile_index``);
    the profile id NVML wants is read from the GPU instance first, as mig-parted does.
    """
    handle = gpu_handle(index)
    instance = _gpu_instance_by_id(handle, index, gi_id)
    info = _compute_profile_info(instance, ci_profile_index, index)
    if info is not None and placement is None:
        info = _revised_compute_profile(instance, ci_profile_index, info, index)
    if info is None:
        raise NvmlCallError("nvmlGpuInstanceGetComputeInstanceProfileInfo", NVML_ERROR_NOT_SUPPORTED,
                            "Not Supported", gpu_index=index,
                            detail="compute profile index %d in GPU instance %d" % (ci_profile_index, gi_id))
    detail = "compute profile %d in GPU instance %d" % (info.id, gi_id)
    if placement is None:
        compute = _call(pynvml.nvmlGpuInstanceCreateComputeInstance, instance, info.id, gpu_index=index, detail=detail)
    else:
        start, size = placement_pair(placement)
        where = pynvml.c_nvmlComputeInstancePlacement_t(start, size)
        compute = _call(pynvml.nvmlGpuInstanceCreateComputeInstanceWithPlacement, instance, info.id, byref(where),
                        gpu_index=index, detail="%s at %d:%d" % (detail, start, size))
    return _compute_instance_info(compute, index)


def _revised_compute_profile(gpu_instance: Any, requested_index: int, info: Any, gpu_index: int) -> Any:
    """The latest revision of a compute profile of ``info``'s slice count that the GPU instance offers.

    Hopper's double-memory 1g GPU instances offer 1_SLICE (index 0) and 1_SLICE_REV1 (index 7), and
    ``nvidia-smi mig -cgi 15 -C`` creates index 7 ("... using profile MIG 1g.20gb (ID  7)"), so a
    driver-placed compute instance is created as the revision the driver's own tool picks.
    """
    chosen = info
    for ci_profile_index in range(requested_index + 1, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
        other = _compute_profile_info(gpu_instance, ci_profile_index, gpu_index)
        if other is not None and other.sliceCount == info.sliceCount and other.id != info.id:
            chosen = other
    return chosen


def destroy_compute_instance(index: int, gi_id: int, ci_id: int) -> None:
    """Destroy one compute instance (NVML answers IN_USE while a process runs on it)."""
    handle = gpu_handle(index)
    instance = _gpu_instance_by_id(handle, index, gi_id)
    compute = _call(pynvml.nvmlGpuInstanceGetComputeInstanceById, instance, ci_id, gpu_index=index,
                    detail="compute instance %d in GPU instance %d" % (ci_id, gi_id))
    _call(pynvml.nvmlComputeInstanceDestroy, compute, gpu_index=index,
          detail="compute instance %d in GPU instance %d" % (ci_id, gi_id))


def destroy_gpu_instance(index: int, gi_id: int) -> None:
    """Destroy one GPU instance (NVML answers IN_USE while it still has compute instances or processes)."""
    handle = gpu_handle(index)
    instance = _gpu_instance_by_id(handle, index, gi_id)
    _call(pynvml.nvmlGpuInstanceDestroy, instance, gpu_index=index, detail="GPU instance %d" % gi_id)
