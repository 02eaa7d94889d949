"""Synthetic NVML handles.

pynvml's handles are ctypes POINTERs to opaque structs.  The simulator stores in them an
address that only encodes what the handle names (GPU index, GI id, CI id), so a handle means
the same thing in every process and is never dereferenced.  The high 16 bits hold a marker
that makes the value a non-canonical x86-64 address: an accidental dereference faults at
once instead of reading memory.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

_MARKER = 0x6E76  # "nv"
KIND_DEVICE = 1
KIND_GPU_INSTANCE = 2
KIND_COMPUTE_INSTANCE = 3
KIND_MIG_DEVICE = 4


@dataclass(frozen=True)
class HandleRef:
    kind: int
    gpu: int
    gi: int = 0
    ci: int = 0

    @property
    def address(self) -> int:
        return (
            (_MARKER << 48)
            | (self.kind << 44)
            | ((self.gpu & 0xFFF) << 32)
            | ((self.gi & 0xFF) << 24)
            | ((self.ci & 0xFF) << 16)
            | 0x10
        )


def decode_address(address: int | None) -> HandleRef | None:
    if not address or (address >> 48) != _MARKER:
        return None
    return HandleRef(
        kind=(address >> 44) & 0xF,
        gpu=(address >> 32) & 0xFFF,
        gi=(address >> 24) & 0xFF,
        ci=(address >> 16) & 0xFF,
    )


def address_of(handle: Any) -> int | None:
    """The address a ctypes pointer (or a plain int) holds; None for NULL."""
    if handle is None:
        return None
    if isinstance(handle, int):
        return handle
    if isinstance(handle, ctypes._Pointer) or isinstance(handle, ctypes.c_void_p):
        return ctypes.cast(handle, ctypes.c_void_p).value
    return None


def decode_handle(handle: Any) -> HandleRef | None:
    return decode_address(address_of(handle))


def store_handle(pointer_object: Any, ref: HandleRef) -> None:
    """Make a ctypes pointer instance (the object behind ``byref(handle)``) hold ``ref``."""
    ctypes.c_void_p.from_address(ctypes.addressof(pointer_object)).value = ref.address


def pointer_value(pointer_type: Any, ref: HandleRef) -> Any:
    """A new instance of ``pointer_type`` holding ``ref`` (for arrays and struct fields)."""
    return ctypes.cast(ctypes.c_void_p(ref.address), pointer_type)
