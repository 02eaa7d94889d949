"""A stand-in for libnvidia-ml underneath the real pynvml.

pynvml looks every C function up with ``getattr(pynvml.nvmlLib, name)`` and calls it with
ctypes arguments.  ``FakeNvmlLibrary`` has one attribute per C symbol: a plain function
(pynvml sets ``restype`` on some, which a bound method would refuse) that decodes the ctypes
arguments, runs the operation on the node state under its lock (``core.Node``), writes the
outputs in place and returns the NVML return code.  pynvml's own wrapper code therefore runs
unchanged and raises its real exception classes.

Symbols an older driver lacks (``data/drivers.yaml`` ``symbols_since``) are simply absent, so
pynvml raises ``NVMLError_FunctionNotFound`` as it would against that libnvidia-ml.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import errors
from .core import NO_INSTANCE_ID, Node
from .errors import NvmlCallError
from .handles import (
    KIND_COMPUTE_INSTANCE,
    KIND_DEVICE,
    KIND_GPU_INSTANCE,
    KIND_MIG_DEVICE,
    HandleRef,
    decode_handle,
    pointer_value,
    store_handle,
)
from .hardware import CI_ENGINE_PROFILE_SHARED, load_driver
from .state import locked_state, read_state, shared_state

GPU_INSTANCE_PROFILE_INFO_V2 = 0x02000098
COMPUTE_INSTANCE_PROFILE_INFO_V2 = 0x02000088
MEMORY_V2 = 0x02000028
_MIB = 1 << 20
_ARCHITECTURE_CODES = {"turing": 6, "ampere": 7, "hopper": 9}

_INVALID = errors.ERROR_CODES["INVALID_ARGUMENT"]
_NOT_SUPPORTED = errors.ERROR_CODES["NOT_SUPPORTED"]
_INSUFFICIENT_SIZE = errors.ERROR_CODES["INSUFFICIENT_SIZE"]

Handler = Callable[..., int]
_HANDLERS: dict[str, Handler] = {}


def _symbol(*names: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for name in names:
            _HANDLERS[name] = handler
        return handler

    return register


SYMBOLS: tuple[str, ...] = ()  # filled in at the end of the module

# pynvml function names that call a differently named C symbol.
_PYNVML_ALIASES = {"nvmlInit": ("nvmlInitWithFlags", "nvmlInit_v2")}


def resolve_call_symbols(call: str) -> list[str]:
    """C symbols a fault on ``call`` (a pynvml function name or a C symbol) applies to.

    ``nvmlDeviceGetGpuInstanceProfileInfo`` covers both its C versions (plain and ``V``), as
    the pynvml function calls either; a versioned C name covers only itself.
    """
    if call in _PYNVML_ALIASES:
        return list(_PYNVML_ALIASES[call])
    variants = (call, call + "_v2", call + "_v3", call + "V")
    symbols = [symbol for symbol in SYMBOLS if symbol in variants]
    if not symbols:
        raise ValueError(f"unknown NVML call {call!r}")
    return symbols


# --------------------------------------------------------------------- ctypes helpers
def _target(argument: Any) -> Any:
    """The ctypes object an output argument points at (byref(x), pointer(x) or x itself)."""
    if argument is None:
        raise NvmlCallError(_INVALID, "NULL output pointer")
    if hasattr(argument, "_obj"):  # ctypes.byref(...)
        return argument._obj
    if isinstance(argument, ctypes._Pointer):
        return argument.contents
    return argument


def _int(argument: Any) -> int:
    value = getattr(argument, "value", argument)
    if not isinstance(value, int):
        raise NvmlCallError(_INVALID, f"not an integer argument: {argument!r}")
    return value


def _set(argument: Any, value: int) -> None:
    _target(argument).value = value


def _write_string(buffer: Any, length: Any, text: str) -> int:
    data = text.encode()
    if buffer is None or _int(length) < len(data) + 1:
        return _INSUFFICIENT_SIZE
    ctypes.memmove(buffer, data + b"\0", len(data) + 1)
    return errors.SUCCESS


def _array(argument: Any) -> Any:
    target = _target(argument)
    if isinstance(target, ctypes.Array):
        return target
    # A single struct (byref(struct) or pointer(struct)) is an array of one.
    return (type(target) * 1).from_address(ctypes.addressof(target))


def _placement_of(argument: Any) -> tuple[int, int]:
    placement = _target(argument)
    return int(placement.start), int(placement.size)


def _field_type(structure: Any, field: str) -> Any:
    return dict(type(structure)._fields_)[field]


# ------------------------------------------------------------------- handle decoding
def _device(node: Node, handle: Any) -> HandleRef:
    """A GPU or MIG device handle that still names something."""
    ref = decode_handle(handle)
    if ref is None or ref.kind not in (KIND_DEVICE, KIND_MIG_DEVICE):
        raise NvmlCallError(_INVALID, "not a device handle")
    node.gpu(ref.gpu)
    if ref.kind == KIND_MIG_DEVICE:
        _existing_compute_instance(node, ref)
    return ref


def _parent_device(node: Node, handle: Any) -> int:
    ref = _device(node, handle)
    if ref.kind != KIND_DEVICE:
        raise NvmlCallError(_INVALID, "a MIG device handle where a GPU handle is needed")
    return ref.gpu


def _gpu_instance(node: Node, handle: Any) -> tuple[int, dict[str, Any]]:
    ref = decode_handle(handle)
    if ref is None or ref.kind != KIND_GPU_INSTANCE:
        raise NvmlCallError(_INVALID, "not a GPU instance handle")
    node.gpu(ref.gpu)
    node.mig_capability(ref.gpu)
    try:
        return ref.gpu, node.find_gpu_instance(ref.gpu, ref.gi)
    except NvmlCallError:
        raise NvmlCallError(_INVALID, "stale GPU instance handle") from None


def _existing_compute_instance(node: Node, ref: HandleRef) -> dict[str, Any]:
    try:
        node.mig_capability(ref.gpu)
        return node.find_compute_instance(ref.gpu, ref.gi, ref.ci)
    except NvmlCallError:
        raise NvmlCallError(_INVALID, "stale compute instance / MIG device handle") from None


def _compute_instance(node: Node, handle: Any) -> tuple[HandleRef, dict[str, Any]]:
    ref = decode_handle(handle)
    if ref is None or ref.kind != KIND_COMPUTE_INSTANCE:
        raise NvmlCallError(_INVALID, "not a compute instance handle")
    node.gpu(ref.gpu)
    return ref, _existing_compute_instance(node, ref)


def _gpu_of_call(symbol: str, args: tuple[Any, ...]) -> int | None:
    """The GPU index a call targets, for faults limited to one GPU."""
    if not args:
        return None
    if symbol == "nvmlDeviceGetHandleByIndex_v2":
        try:
            return _int(args[0])
        except NvmlCallError:
            return None
    ref = decode_handle(args[0])
    return ref.gpu if ref is not None else None


# ------------------------------------------------------------------------ the library
class FakeNvmlLibrary:
    """What ``pynvml.nvmlLib`` points at while a node is simulated."""

    def __init__(self, state_path: str | Path) -> None:
        self.state_path = Path(state_path)
        self._init_count = 0
        self._init_lock = threading.Lock()
        state = read_state(self.state_path)
        version = state.get("driver_version")
        driver = load_driver(version, state.get("cuda_version")) if version else None
        for symbol, handler in _HANDLERS.items():
            if driver is None or driver.exports(symbol):
                setattr(self, symbol, self._c_function(symbol, handler))

    def __repr__(self) -> str:
        return f"FakeNvmlLibrary({str(self.state_path)!r})"

    def _c_function(self, symbol: str, handler: Handler) -> Callable[..., Any]:
        def c_function(*args: Any) -> Any:
            return self._call(symbol, handler, args)

        c_function.__name__ = symbol
        c_function.__qualname__ = f"FakeNvmlLibrary.{symbol}"
        return c_function

    def _call(self, symbol: str, handler: Handler, args: tuple[Any, ...]) -> Any:
        if symbol == "nvmlErrorString":
            return errors.error_string(_int(args[0])).encode()
        if symbol not in ("nvmlInitWithFlags", "nvmlInit_v2") and self._init_count == 0:
            return errors.ERROR_CODES["UNINITIALIZED"]
        if symbol in READ_ONLY_SYMBOLS:
            with shared_state(self.state_path) as state:
                # An injected fault on this call is consumed, which changes the state: that takes the path below.
                if not any(symbol in fault["symbols"] for fault in state["faults"]):
                    try:
                        return handler(self, Node(state), *args)
                    except NvmlCallError as failure:
                        return failure.code
        with locked_state(self.state_path) as state:
            node = Node(state)
            forced = node.take_fault(symbol, _gpu_of_call(symbol, args))
            if forced is not None:
                return forced
            try:
                return handler(self, node, *args)
            except NvmlCallError as failure:
                return failure.code

    # init/shutdown keep a per-process reference count, like the real library.
    def _initialised(self) -> None:
        with self._init_lock:
            self._init_count += 1

    def _shut_down(self) -> int:
        with self._init_lock:
            if self._init_count == 0:
                return errors.ERROR_CODES["UNINITIALIZED"]
            self._init_count -= 1
            return errors.SUCCESS


# ------------------------------------------------------------------- system calls
@_symbol("nvmlInitWithFlags", "nvmlInit_v2")
def _init(lib: FakeNvmlLibrary, node: Node, *flags: Any) -> int:
    node.require_driver()
    lib._initialised()
    return errors.SUCCESS


@_symbol("nvmlShutdown")
def _shutdown(lib: FakeNvmlLibrary, node: Node) -> int:
    return lib._shut_down()


@_symbol("nvmlErrorString")
def _error_string(lib: FakeNvmlLibrary, node: Node, code: Any) -> int:  # answered before dispatch
    raise AssertionError("nvmlErrorString is answered without node state")


@_symbol("nvmlSystemGetDriverVersion")
def _driver_version(lib: FakeNvmlLibrary, node: Node, buffer: Any, length: Any) -> int:
    return _write_string(buffer, length, node.require_driver().version)


@_symbol("nvmlSystemGetNVMLVersion")
def _nvml_version(lib: FakeNvmlLibrary, node: Node, buffer: Any, length: Any) -> int:
    return _write_string(buffer, length, node.require_driver().nvml_version)


@_symbol("nvmlSystemGetCudaDriverVersion", "nvmlSystemGetCudaDriverVersion_v2")
def _cuda_version(lib: FakeNvmlLibrary, node: Node, version: Any) -> int:
    _set(version, node.require_driver().cuda_version)
    return errors.SUCCESS


@_symbol("nvmlSystemGetProcessName")
def _process_name(lib: FakeNvmlLibrary, node: Node, pid: Any, buffer: Any, length: Any) -> int:
    for process in node.state["processes"]:
        if process["pid"] == _int(pid):
            return _write_string(buffer, length, process["name"])
    return errors.ERROR_CODES["NOT_FOUND"]


# ------------------------------------------------------------------- device lookup
@_symbol("nvmlDeviceGetCount_v2")
def _device_count(lib: FakeNvmlLibrary, node: Node, count: Any) -> int:
    _set(count, len(node.gpus))
    return errors.SUCCESS


@_symbol("nvmlDeviceGetHandleByIndex_v2")
def _handle_by_index(lib: FakeNvmlLibrary, node: Node, index: Any, device: Any) -> int:
    gpu = _int(index)
    node.gpu(gpu)
    store_handle(_target(device), HandleRef(KIND_DEVICE, gpu))
    return errors.SUCCESS


@_symbol("nvmlDeviceGetHandleByUUID")
def _handle_by_uuid(lib: FakeNvmlLibrary, node: Node, uuid: Any, device: Any) -> int:
    raw = uuid.value if hasattr(uuid, "value") else uuid
    text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
    gpu, gi_id, ci_id = node.find_by_uuid(text)
    ref = HandleRef(KIND_DEVICE, gpu) if gi_id is None else HandleRef(KIND_MIG_DEVICE, gpu, gi_id, ci_id)
    store_handle(_target(device), ref)
    return errors.SUCCESS


@_symbol("nvmlDeviceGetHandleByPciBusId_v2")
def _handle_by_bus_id(lib: FakeNvmlLibrary, node: Node, bus_id: Any, device: Any) -> int:
    raw = bus_id.value if hasattr(bus_id, "value") else bus_id
    wanted = (raw.decode() if isinstance(raw, bytes) else str(raw or "")).upper()
    for index, gpu in enumerate(node.gpus):
        full = gpu["pci_bus_id"].upper()
        if wanted in (full, full[4:]):  # "00000000:07:00.0" or "0000:07:00.0"
            store_handle(_target(device), HandleRef(KIND_DEVICE, index))
            return errors.SUCCESS
    return errors.ERROR_CODES["NOT_FOUND"]


@_symbol("nvmlDeviceGetIndex")
def _device_index(lib: FakeNvmlLibrary, node: Node, handle: Any, index: Any) -> int:
    _set(index, _parent_device(node, handle))
    return errors.SUCCESS


# ------------------------------------------------------------------- device facts
@_symbol("nvmlDeviceGetName")
def _device_name(lib: FakeNvmlLibrary, node: Node, handle: Any, buffer: Any, length: Any) -> int:
    ref = _device(node, handle)
    name = node.gpu_name(ref.gpu)
    if ref.kind == KIND_MIG_DEVICE:
        name = f"{name} MIG {node.mig_profile_name(ref.gpu, ref.gi, ref.ci)}"
    return _write_string(buffer, length, name)


@_symbol("nvmlDeviceGetUUID")
def _device_uuid(lib: FakeNvmlLibrary, node: Node, handle: Any, buffer: Any, length: Any) -> int:
    ref = _device(node, handle)
    text = node.gpu(ref.gpu)["uuid"] if ref.kind == KIND_DEVICE else node.mig_uuid(ref.gpu, ref.gi, ref.ci)
    return _write_string(buffer, length, text)


@_symbol("nvmlDeviceGetPciInfo_v3")
def _pci_info(lib: FakeNvmlLibrary, node: Node, handle: Any, info: Any) -> int:
    ref = _device(node, handle)  # a MIG device reports its parent's PCI location
    bus_id = node.gpu(ref.gpu)["pci_bus_id"]
    domain, bus, rest = bus_id.split(":")
    device, _function = rest.split(".")
    target = _target(info)
    target.busIdLegacy = bus_id[4:].encode()
    target.busId = bus_id.encode()
    target.domain = int(domain, 16)
    target.bus = int(bus, 16)
    target.device = int(device, 16)
    target.pciDeviceId = node.model(ref.gpu).pci_device_id
    target.pciSubSystemId = node.model(ref.gpu).pci_subsystem_id
    return errors.SUCCESS


def _fill_memory(node: Node, handle: Any, memory: Any, version_two: bool) -> int:
    """audit A3, confirmed on 580.159.04: v1 and v2 give the same total (the nvidia-smi total);
    v1 counts the driver's reserved memory in `used`, v2 reports it as `reserved`."""
    ref = _device(node, handle)
    gi_id = ref.gi if ref.kind == KIND_MIG_DEVICE else None
    total, used = node.memory_mib(ref.gpu, gi_id)
    reserved = node.reserved_memory_bytes(ref.gpu, gi_id)
    target = _target(memory)
    if version_two:
        if target.version != MEMORY_V2:
            return errors.ERROR_CODES["ARGUMENT_VERSION_MISMATCH"]
        target.reserved = reserved
        target.used = used * _MIB
    else:
        target.used = reserved + used * _MIB
    target.total = total * _MIB
    target.free = total * _MIB - reserved - used * _MIB
    return errors.SUCCESS


@_symbol("nvmlDeviceGetMemoryInfo")
def _memory_info(lib: FakeNvmlLibrary, node: Node, handle: Any, memory: Any) -> int:
    return _fill_memory(node, handle, memory, version_two=False)


@_symbol("nvmlDeviceGetMemoryInfo_v2")
def _memory_info_v2(lib: FakeNvmlLibrary, node: Node, handle: Any, memory: Any) -> int:
    return _fill_memory(node, handle, memory, version_two=True)


@_symbol("nvmlDeviceGetCudaComputeCapability")
def _compute_capability(lib: FakeNvmlLibrary, node: Node, handle: Any, major: Any, minor: Any) -> int:
    ref = _device(node, handle)  # [choice] a MIG device answers with its parent's capability
    cc_major, cc_minor = node.model(ref.gpu).compute_capability
    _set(major, cc_major)
    _set(minor, cc_minor)
    return errors.SUCCESS


@_symbol("nvmlDeviceGetArchitecture")
def _architecture(lib: FakeNvmlLibrary, node: Node, handle: Any, architecture: Any) -> int:
    ref = _device(node, handle)
    _set(architecture, _ARCHITECTURE_CODES[node.model(ref.gpu).architecture])
    return errors.SUCCESS


# Struct layouts of the older entry points (NVIDIA/go-nvml gen/nvml/nvml.h).  A real driver
# writes these bytes wherever the caller's pointer points, whatever ctypes type the caller
# used, so the twin does the same: a caller that passes pynvml's newer struct to an old symbol
# reads garbage here as it would on the hardware.
class ProcessInfoV1(ctypes.Structure):
    """nvmlProcessInfo_t of R450 (695db45): no instance ids."""

    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong)]


class ProcessInfoV2(ctypes.Structure):
    """nvmlProcessInfo_v2_t (7dce688, R455); `_v3` (R510) uses the same layout."""

    _fields_ = [
        ("pid", ctypes.c_uint),
        ("usedGpuMemory", ctypes.c_ulonglong),
        ("gpuInstanceId", ctypes.c_uint),
        ("computeInstanceId", ctypes.c_uint),
    ]


class ComputeInstanceInfoV1(ctypes.Structure):
    """nvmlComputeInstanceInfo_t of R450/R455 (695db45, 7dce688): no placement."""

    _fields_ = [
        ("device", ctypes.c_void_p),
        ("gpuInstance", ctypes.c_void_p),
        ("id", ctypes.c_uint),
        ("profileId", ctypes.c_uint),
    ]


class DeviceAttributesV1(ctypes.Structure):
    """nvmlDeviceAttributes_t of R450 (695db45): engines only, no slice counts or memory."""

    _fields_ = [
        ("multiprocessorCount", ctypes.c_uint),
        ("sharedCopyEngineCount", ctypes.c_uint),
        ("sharedDecoderCount", ctypes.c_uint),
        ("sharedEncoderCount", ctypes.c_uint),
        ("sharedJpegCount", ctypes.c_uint),
        ("sharedOfaCount", ctypes.c_uint),
    ]


class BufferOverrunError(RuntimeError):
    """The caller's buffer is smaller than what the driver writes: memory corruption on hardware."""


def _raw_view(argument: Any, layout: Any, count: int = 1) -> Any:
    """``count`` structs of ``layout`` over the memory ``argument`` points at, as a C library sees it."""
    target = _target(argument)
    needed = ctypes.sizeof(layout) * count
    if ctypes.sizeof(target) < needed:
        raise BufferOverrunError(
            f"{type(target).__name__} of {ctypes.sizeof(target)} bytes where the driver writes {needed}"
        )
    return (layout * count).from_address(ctypes.addressof(target))


def _fill_processes(node: Node, handle: Any, count: Any, infos: Any, layout: Any, graphics: bool) -> int:
    ref = _device(node, handle)
    if graphics:
        processes: list[dict[str, Any]] = []  # the twin runs compute work only
    elif ref.kind == KIND_MIG_DEVICE:
        processes = node.processes_on(ref.gpu, gi_id=ref.gi, ci_id=ref.ci)
    else:
        processes = node.processes_on(ref.gpu)
    counter = _target(count)
    if infos is None or counter.value < len(processes):
        counter.value = len(processes)
        return errors.SUCCESS if not processes else _INSUFFICIENT_SIZE
    if processes:
        entries = _raw_view(infos, layout, len(processes))
        for entry, process in zip(entries, processes):
            entry.pid = process["pid"]
            entry.usedGpuMemory = process["used_memory_mib"] * _MIB
            if layout is ProcessInfoV2:
                entry.gpuInstanceId = NO_INSTANCE_ID if process.get("gi") is None else process["gi"]
                entry.computeInstanceId = NO_INSTANCE_ID if process.get("ci") is None else process["ci"]
    counter.value = len(processes)
    return errors.SUCCESS


@_symbol("nvmlDeviceGetComputeRunningProcesses")
def _running_processes_v1(lib: FakeNvmlLibrary, node: Node, handle: Any, count: Any, infos: Any) -> int:
    return _fill_processes(node, handle, count, infos, ProcessInfoV1, graphics=False)


@_symbol("nvmlDeviceGetComputeRunningProcesses_v2", "nvmlDeviceGetComputeRunningProcesses_v3")
def _running_processes(lib: FakeNvmlLibrary, node: Node, handle: Any, count: Any, infos: Any) -> int:
    return _fill_processes(node, handle, count, infos, ProcessInfoV2, graphics=False)


@_symbol("nvmlDeviceGetGraphicsRunningProcesses")
def _graphics_processes_v1(lib: FakeNvmlLibrary, node: Node, handle: Any, count: Any, infos: Any) -> int:
    return _fill_processes(node, handle, count, infos, ProcessInfoV1, graphics=True)


@_symbol("nvmlDeviceGetGraphicsRunningProcesses_v2", "nvmlDeviceGetGraphicsRunningProcesses_v3")
def _graphics_processes(lib: FakeNvmlLibrary, node: Node, handle: Any, count: Any, infos: Any) -> int:
    return _fill_processes(node, handle, count, infos, ProcessInfoV2, graphics=True)


# ----------------------------------------------------------------------- MIG mode
@_symbol("nvmlDeviceGetMigMode")
def _get_mig_mode(lib: FakeNvmlLibrary, node: Node, handle: Any, current: Any, pending: Any) -> int:
    gpu = _parent_device(node, handle)
    current_mode, pending_mode = node.mig_mode(gpu)
    _set(current, current_mode)
    _set(pending, pending_mode)
    return errors.SUCCESS


@_symbol("nvmlDeviceSetMigMode")
def _set_mig_mode(lib: FakeNvmlLibrary, node: Node, handle: Any, mode: Any, activation: Any) -> int:
    gpu = _parent_device(node, handle)
    status = node.set_mig_mode(gpu, _int(mode))
    _set(activation, status)
    return errors.SUCCESS


@_symbol("nvmlDeviceGetMaxMigDeviceCount")
def _max_mig_devices(lib: FakeNvmlLibrary, node: Node, handle: Any, count: Any) -> int:
    _set(count, node.max_mig_device_count(_parent_device(node, handle)))
    return errors.SUCCESS


@_symbol("nvmlDeviceIsMigDeviceHandle")
def _is_mig_device(lib: FakeNvmlLibrary, node: Node, handle: Any, is_mig: Any) -> int:
    _set(is_mig, 1 if _device(node, handle).kind == KIND_MIG_DEVICE else 0)
    return errors.SUCCESS


def _mig_device(node: Node, handle: Any, code_for_parent: int = _NOT_SUPPORTED) -> HandleRef:
    ref = _device(node, handle)
    if ref.kind != KIND_MIG_DEVICE:
        raise NvmlCallError(code_for_parent, "not a MIG device")
    return ref


# Observed on 580.159.04: the instance-id getters answer INVALID_ARGUMENT for a GPU handle,
# GetAttributes NOT_SUPPORTED.
@_symbol("nvmlDeviceGetGpuInstanceId")
def _mig_gi_id(lib: FakeNvmlLibrary, node: Node, handle: Any, gi_id: Any) -> int:
    _set(gi_id, _mig_device(node, handle, _INVALID).gi)
    return errors.SUCCESS


@_symbol("nvmlDeviceGetComputeInstanceId")
def _mig_ci_id(lib: FakeNvmlLibrary, node: Node, handle: Any, ci_id: Any) -> int:
    _set(ci_id, _mig_device(node, handle, _INVALID).ci)
    return errors.SUCCESS


@_symbol("nvmlDeviceGetMigDeviceHandleByIndex")
def _mig_handle_by_index(lib: FakeNvmlLibrary, node: Node, handle: Any, index: Any, mig_device: Any) -> int:
    gpu = _parent_device(node, handle)
    gi, ci = node.mig_device_by_index(gpu, _int(index))
    store_handle(_target(mig_device), HandleRef(KIND_MIG_DEVICE, gpu, gi["id"], ci["id"]))
    return errors.SUCCESS


@_symbol("nvmlDeviceGetDeviceHandleFromMigDeviceHandle")
def _parent_of_mig(lib: FakeNvmlLibrary, node: Node, handle: Any, device: Any) -> int:
    ref = _device(node, handle)
    if ref.kind != KIND_MIG_DEVICE:
        raise NvmlCallError(_INVALID, "not a MIG device")
    store_handle(_target(device), HandleRef(KIND_DEVICE, ref.gpu))
    return errors.SUCCESS


def _fill_attributes(node: Node, handle: Any, target: Any, version_two: bool) -> int:
    ref = _mig_device(node, handle)
    gi = node.find_gpu_instance(ref.gpu, ref.gi)
    gi_profile = node.gi_profile_of(ref.gpu, gi)
    ci_profile = node.ci_profile_of(ref.gpu, ref.gi, node.find_compute_instance(ref.gpu, ref.gi, ref.ci))
    target.multiprocessorCount = ci_profile.multiprocessors or 0  # unknown SM counts read 0
    target.sharedCopyEngineCount = gi_profile.copy_engines
    target.sharedDecoderCount = gi_profile.decoders
    target.sharedEncoderCount = gi_profile.encoders
    target.sharedJpegCount = gi_profile.jpegs
    target.sharedOfaCount = gi_profile.ofas
    if version_two:
        target.gpuInstanceSliceCount = gi_profile.slices
        target.computeInstanceSliceCount = ci_profile.slices
        target.memorySizeMB = gi_profile.memory_mib
    return errors.SUCCESS


@_symbol("nvmlDeviceGetAttributes")
def _attributes_v1(lib: FakeNvmlLibrary, node: Node, handle: Any, attributes: Any) -> int:
    return _fill_attributes(node, handle, _raw_view(attributes, DeviceAttributesV1)[0], version_two=False)


@_symbol("nvmlDeviceGetAttributes_v2")
def _attributes(lib: FakeNvmlLibrary, node: Node, handle: Any, attributes: Any) -> int:
    return _fill_attributes(node, handle, _target(attributes), version_two=True)


# ------------------------------------------------------------ GPU instance profiles
def _fill_gi_profile(target: Any, profile: Any, with_name: bool) -> None:
    target.id = profile.id
    target.isP2pSupported = 0  # hw 1: no MIG profile on these GPUs supports P2P
    target.sliceCount = profile.slices
    target.instanceCount = profile.instance_count
    target.multiprocessorCount = profile.multiprocessors
    target.copyEngineCount = profile.copy_engines
    target.decoderCount = profile.decoders
    target.encoderCount = profile.encoders
    target.jpegCount = profile.jpegs
    target.ofaCount = profile.ofas
    target.memorySizeMB = profile.memory_mib
    if with_name:
        # hw 14 left it open; an H200 on 580.159.04 answered "MIG 1g.18gb".
        target.name = f"MIG {profile.name}".encode()
        # The same driver hands the struct back with `version` 0.
        target.version = 0


@_symbol("nvmlDeviceGetGpuInstanceProfileInfo")
def _gi_profile_info(lib: FakeNvmlLibrary, node: Node, handle: Any, index: Any, info: Any) -> int:
    profile = node.gi_profile_by_index(_parent_device(node, handle), _int(index))
    _fill_gi_profile(_target(info), profile, with_name=False)
    return errors.SUCCESS


@_symbol("nvmlDeviceGetGpuInstanceProfileInfoV")
def _gi_profile_info_v(lib: FakeNvmlLibrary, node: Node, handle: Any, index: Any, info: Any) -> int:
    target = _target(info)
    if target.version != GPU_INSTANCE_PROFILE_INFO_V2:
        return errors.ERROR_CODES["ARGUMENT_VERSION_MISMATCH"]
    profile = node.gi_profile_by_index(_parent_device(node, handle), _int(index))
    _fill_gi_profile(target, profile, with_name=True)
    return errors.SUCCESS


@_symbol("nvmlDeviceGetGpuInstanceProfileInfoByIdV")
def _gi_profile_info_by_id(lib: FakeNvmlLibrary, node: Node, handle: Any, profile_id: Any, info: Any) -> int:
    target = _target(info)
    if target.version != GPU_INSTANCE_PROFILE_INFO_V2:
        return errors.ERROR_CODES["ARGUMENT_VERSION_MISMATCH"]
    gpu = _parent_device(node, handle)
    node.require_gi_queries(gpu)
    profile = node.gi_profile_by_id(gpu, _int(profile_id), unknown_code="NOT_FOUND")
    _fill_gi_profile(target, profile, with_name=True)
    return errors.SUCCESS


def _fill_placements(placements: tuple[tuple[int, int], ...], array_argument: Any, count: Any) -> int:
    counter = _target(count)
    if array_argument is None:
        counter.value = len(placements)
        return errors.SUCCESS
    entries = _array(array_argument)
    if len(entries) < len(placements):
        counter.value = len(placements)
        return _INSUFFICIENT_SIZE
    for entry, (start, size) in zip(entries, placements):
        entry.start = start
        entry.size = size
    counter.value = len(placements)
    return errors.SUCCESS


@_symbol("nvmlDeviceGetGpuInstancePossiblePlacements", "nvmlDeviceGetGpuInstancePossiblePlacements_v2")
def _gi_placements(lib: FakeNvmlLibrary, node: Node, handle: Any, profile_id: Any, placements: Any, count: Any) -> int:
    gpu = _parent_device(node, handle)
    return _fill_placements(node.gi_possible_placements(gpu, _int(profile_id)), placements, count)


@_symbol("nvmlDeviceGetGpuInstanceRemainingCapacity")
def _gi_remaining(lib: FakeNvmlLibrary, node: Node, handle: Any, profile_id: Any, count: Any) -> int:
    _set(count, node.gi_remaining_capacity(_parent_device(node, handle), _int(profile_id)))
    return errors.SUCCESS


# ------------------------------------------------------------------ GPU instances
def _gi_ref(gpu: int, gi: dict[str, Any]) -> HandleRef:
    return HandleRef(KIND_GPU_INSTANCE, gpu, gi["id"])


@_symbol("nvmlDeviceCreateGpuInstance")
def _create_gi(lib: FakeNvmlLibrary, node: Node, handle: Any, profile_id: Any, instance: Any) -> int:
    gpu = _parent_device(node, handle)
    target = _target(instance)
    gi = node.create_gpu_instance(gpu, _int(profile_id))
    store_handle(target, _gi_ref(gpu, gi))
    return errors.SUCCESS


@_symbol("nvmlDeviceCreateGpuInstanceWithPlacement")
def _create_gi_placed(
    lib: FakeNvmlLibrary, node: Node, handle: Any, profile_id: Any, placement: Any, instance: Any
) -> int:
    gpu = _parent_device(node, handle)
    target = _target(instance)
    gi = node.create_gpu_instance(gpu, _int(profile_id), _placement_of(placement))
    store_handle(target, _gi_ref(gpu, gi))
    return errors.SUCCESS


@_symbol("nvmlDeviceGetGpuInstances")
def _gpu_instances(lib: FakeNvmlLibrary, node: Node, handle: Any, profile_id: Any, instances: Any, count: Any) -> int:
    gpu = _parent_device(node, handle)
    node.require_gi_queries(gpu)
    try:
        wanted = node.gi_profile_by_id(gpu, _int(profile_id)).id
    except NvmlCallError as failure:
        # Observed on 580.159.04: a profile this GPU lacks simply has no instances.
        if failure.code != _NOT_SUPPORTED:
            raise
        wanted = None
    found = [gi for gi in node.gpu_instances(gpu) if gi["profile_id"] == wanted]
    counter = _target(count)
    if instances is None:
        counter.value = len(found)
        return errors.SUCCESS
    entries = _array(instances)
    if len(entries) < len(found):
        counter.value = len(found)
        return _INSUFFICIENT_SIZE
    for position, gi in enumerate(found):
        entries[position] = pointer_value(entries._type_, _gi_ref(gpu, gi))
    counter.value = len(found)
    return errors.SUCCESS


@_symbol("nvmlDeviceGetGpuInstanceById")
def _gpu_instance_by_id(lib: FakeNvmlLibrary, node: Node, handle: Any, gi_id: Any, instance: Any) -> int:
    gpu = _parent_device(node, handle)
    node.require_gi_queries(gpu)
    gi = node.find_gpu_instance(gpu, _int(gi_id))
    store_handle(_target(instance), _gi_ref(gpu, gi))
    return errors.SUCCESS


@_symbol("nvmlGpuInstanceGetInfo")
def _gi_info(lib: FakeNvmlLibrary, node: Node, instance: Any, info: Any) -> int:
    gpu, gi = _gpu_instance(node, instance)
    target = _target(info)
    target.device = pointer_value(_field_type(target, "device"), HandleRef(KIND_DEVICE, gpu))
    target.id = gi["id"]
    target.profileId = gi["profile_id"]
    target.placement.start, target.placement.size = gi["placement"]
    return errors.SUCCESS


@_symbol("nvmlGpuInstanceDestroy")
def _destroy_gi(lib: FakeNvmlLibrary, node: Node, instance: Any) -> int:
    gpu, gi = _gpu_instance(node, instance)
    node.destroy_gpu_instance(gpu, gi["id"])
    return errors.SUCCESS


# ------------------------------------------------------------ compute instances
def _fill_ci_profile(target: Any, gi_profile: Any, profile: Any, with_name: bool) -> None:
    target.id = profile.id
    target.sliceCount = profile.slices
    target.instanceCount = profile.instance_count
    target.multiprocessorCount = profile.multiprocessors or 0  # unknown SM counts read 0
    # hw 5: a CI shares its GI's engines.
    target.sharedCopyEngineCount = gi_profile.copy_engines
    target.sharedDecoderCount = gi_profile.decoders
    target.sharedEncoderCount = gi_profile.encoders
    target.sharedJpegCount = gi_profile.jpegs
    target.sharedOfaCount = gi_profile.ofas
    if with_name:
        target.name = f"MIG {profile.name}".encode()


def _ci_profile_for(node: Node, instance: Any, ci_index: Any, engine_profile: Any) -> tuple[Any, Any]:
    gpu, gi = _gpu_instance(node, instance)
    if _int(engine_profile) != CI_ENGINE_PROFILE_SHARED:
        raise NvmlCallError(_INVALID, "engine profile")
    return node.gi_profile_of(gpu, gi), node.ci_profile(gpu, gi["id"], _int(ci_index))


@_symbol("nvmlGpuInstanceGetComputeInstanceProfileInfo")
def _ci_profile_info(lib: FakeNvmlLibrary, node: Node, instance: Any, index: Any, engine: Any, info: Any) -> int:
    gi_profile, profile = _ci_profile_for(node, instance, index, engine)
    _fill_ci_profile(_target(info), gi_profile, profile, with_name=False)
    return errors.SUCCESS


@_symbol("nvmlGpuInstanceGetComputeInstanceProfileInfoV")
def _ci_profile_info_v(lib: FakeNvmlLibrary, node: Node, instance: Any, index: Any, engine: Any, info: Any) -> int:
    target = _target(info)
    if target.version != COMPUTE_INSTANCE_PROFILE_INFO_V2:
        return errors.ERROR_CODES["ARGUMENT_VERSION_MISMATCH"]
    gi_profile, profile = _ci_profile_for(node, instance, index, engine)
    _fill_ci_profile(target, gi_profile, profile, with_name=True)
    return errors.SUCCESS


@_symbol("nvmlGpuInstanceGetComputeInstanceRemainingCapacity")
def _ci_remaining(lib: FakeNvmlLibrary, node: Node, instance: Any, profile_id: Any, count: Any) -> int:
    gpu, gi = _gpu_instance(node, instance)
    _set(count, node.ci_remaining_capacity(gpu, gi["id"], _int(profile_id)))
    return errors.SUCCESS


@_symbol("nvmlGpuInstanceGetComputeInstancePossiblePlacements")
def _ci_placements(
    lib: FakeNvmlLibrary, node: Node, instance: Any, profile_id: Any, placements: Any, count: Any
) -> int:
    gpu, gi = _gpu_instance(node, instance)
    profile = node.ci_profile(gpu, gi["id"], _int(profile_id))
    return _fill_placements(profile.placements, placements, count)


def _ci_ref(gpu: int, gi_id: int, ci: dict[str, Any]) -> HandleRef:
    return HandleRef(KIND_COMPUTE_INSTANCE, gpu, gi_id, ci["id"])


@_symbol("nvmlGpuInstanceCreateComputeInstance")
def _create_ci(lib: FakeNvmlLibrary, node: Node, instance: Any, profile_id: Any, compute: Any) -> int:
    gpu, gi = _gpu_instance(node, instance)
    target = _target(compute)
    ci = node.create_compute_instance(gpu, gi["id"], _int(profile_id))
    store_handle(target, _ci_ref(gpu, gi["id"], ci))
    return errors.SUCCESS


@_symbol("nvmlGpuInstanceCreateComputeInstanceWithPlacement")
def _create_ci_placed(
    lib: FakeNvmlLibrary, node: Node, instance: Any, profile_id: Any, placement: Any, compute: Any
) -> int:
    gpu, gi = _gpu_instance(node, instance)
    target = _target(compute)
    ci = node.create_compute_instance(gpu, gi["id"], _int(profile_id), _placement_of(placement))
    store_handle(target, _ci_ref(gpu, gi["id"], ci))
    return errors.SUCCESS


@_symbol("nvmlGpuInstanceGetComputeInstances")
def _compute_instances(
    lib: FakeNvmlLibrary, node: Node, instance: Any, profile_id: Any, instances: Any, count: Any
) -> int:
    gpu, gi = _gpu_instance(node, instance)
    profile = node.ci_profile(gpu, gi["id"], _int(profile_id))
    found = [ci for ci in node.compute_instances(gpu, gi["id"]) if ci["profile_id"] == profile.index]
    counter = _target(count)
    if instances is None:
        counter.value = len(found)
        return errors.SUCCESS
    entries = _array(instances)
    if len(entries) < len(found):
        counter.value = len(found)
        return _INSUFFICIENT_SIZE
    for position, ci in enumerate(found):
        entries[position] = pointer_value(entries._type_, _ci_ref(gpu, gi["id"], ci))
    counter.value = len(found)
    return errors.SUCCESS


@_symbol("nvmlGpuInstanceGetComputeInstanceById")
def _compute_instance_by_id(lib: FakeNvmlLibrary, node: Node, instance: Any, ci_id: Any, compute: Any) -> int:
    gpu, gi = _gpu_instance(node, instance)
    ci = node.find_compute_instance(gpu, gi["id"], _int(ci_id))
    store_handle(_target(compute), _ci_ref(gpu, gi["id"], ci))
    return errors.SUCCESS


@_symbol("nvmlComputeInstanceGetInfo")
def _ci_info_v1(lib: FakeNvmlLibrary, node: Node, compute: Any, info: Any) -> int:
    ref, ci = _compute_instance(node, compute)
    target = _raw_view(info, ComputeInstanceInfoV1)[0]
    target.device = HandleRef(KIND_DEVICE, ref.gpu).address
    target.gpuInstance = HandleRef(KIND_GPU_INSTANCE, ref.gpu, ref.gi).address
    target.id = ci["id"]
    target.profileId = ci["profile_id"]
    return errors.SUCCESS


@_symbol("nvmlComputeInstanceGetInfo_v2")
def _ci_info(lib: FakeNvmlLibrary, node: Node, compute: Any, info: Any) -> int:
    ref, ci = _compute_instance(node, compute)
    target = _target(info)
    # nvml.h: `device` is the parent device (hw 8 calls it the MIG device; the header wins).
    target.device = pointer_value(_field_type(target, "device"), HandleRef(KIND_DEVICE, ref.gpu))
    target.gpuInstance = pointer_value(
        _field_type(target, "gpuInstance"), HandleRef(KIND_GPU_INSTANCE, ref.gpu, ref.gi)
    )
    target.id = ci["id"]
    target.profileId = ci["profile_id"]
    target.placement.start, target.placement.size = ci["placement"]
    return errors.SUCCESS


@_symbol("nvmlComputeInstanceDestroy")
def _destroy_ci(lib: FakeNvmlLibrary, node: Node, compute: Any) -> int:
    ref, ci = _compute_instance(node, compute)
    node.destroy_compute_instance(ref.gpu, ref.gi, ci["id"])
    return errors.SUCCESS


SYMBOLS = tuple(sorted(_HANDLERS))


# The getters read the node and change nothing, so a call takes a shared lock on the cached state instead of copying,
# comparing and perhaps rewriting it (a sixth of a read's time on an 8-GPU node).
# tests/twin/nvml/test_nvml_sim_state.py checks that each leaves the state as it was.
READ_ONLY_SYMBOLS = frozenset(symbol for symbol in _HANDLERS if re.match(r"nvml(System|Device|GpuInstance|ComputeInstance)(Get|Is)", symbol))
