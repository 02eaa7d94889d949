"""MIG profile strings and extended-resource names as go-nvlib and the device plugin build them.

Written from the reference (shared/reference/k8s-mig.md 1.1, audit B) rather than shared with the
product's ``profiles.py``, so the twin checks the product instead of agreeing with it by
construction.

- The ``<N>gb`` part: fraction = MIG memory / device memory rounded **up** to eighths, times the
  device memory in whole GiB rounded up, rounded half away from zero (Go ``math.Round``; Python's
  ``round`` rounds half to even and would name the H200 3g ``3g.70gb``).
- The string: ``<g>g.<N>gb`` when the compute instance spans its GPU instance, else
  ``<c>c.<g>g.<N>gb``; ``+me`` / ``+me.all`` / ``+gfx`` or ``-me`` from the GPU-instance profile index.
- Resource and label names replace ``+`` with ``.``; a ``-`` stays.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MIB = 1024 * 1024
GIB = 1024 * MIB

# NVML GPU-instance profile indices (hw 2) that carry attributes in go-nvlib's profile string.
_POSITIVE_ATTRIBUTES = {0x7: "me", 0x8: "me", 0xA: "gfx", 0xB: "gfx", 0xC: "gfx", 0xF: "me.all", 0x10: "me.all"}
_NEGATIVE_ATTRIBUTES = {0xD: "me", 0xE: "me"}


def mig_memory_size_gb(device_memory_bytes: int, mig_memory_mib: int) -> int:
    """go-nvlib ``getMigMemorySizeGB``: the marketing size of a MIG device in GB."""
    fraction = (mig_memory_mib * MIB) / device_memory_bytes
    fraction = math.ceil(fraction * 8) / 8
    device_gib = (device_memory_bytes + GIB - 1) // GIB
    return int(math.floor(fraction * device_gib + 0.5))


@dataclass(frozen=True)
class MigProfile:
    compute_slices: int
    gpu_slices: int
    memory_gb: int
    attributes: tuple[str, ...] = ()
    negative_attributes: tuple[str, ...] = ()

    @property
    def full_compute(self) -> bool:
        """True when the compute instance spans the whole GPU instance (C == G)."""
        return self.compute_slices == self.gpu_slices

    def __str__(self) -> str:
        suffix = ""
        if self.attributes:
            suffix = "+" + ",".join(self.attributes)
        if self.negative_attributes:
            suffix = "-" + ",".join(self.negative_attributes)
        base = f"{self.gpu_slices}g.{self.memory_gb}gb"
        if not self.full_compute:
            base = f"{self.compute_slices}c.{base}"
        return base + suffix

    @property
    def resource_suffix(self) -> str:
        """The profile as it appears in resource and label names: ``1g.5gb+me`` -> ``1g.5gb.me``."""
        return str(self).replace("+", ".")


def mig_profile(
    gi_profile_index: int, gi_slices: int, ci_slices: int, mig_memory_mib: int, device_memory_mib: int
) -> MigProfile:
    """The go-nvlib profile of a MIG device from its GI profile index and slices and the memory sizes."""
    positive = _POSITIVE_ATTRIBUTES.get(gi_profile_index)
    negative = _NEGATIVE_ATTRIBUTES.get(gi_profile_index)
    return MigProfile(
        compute_slices=ci_slices,
        gpu_slices=gi_slices,
        memory_gb=mig_memory_size_gb(device_memory_mib * MIB, mig_memory_mib),
        attributes=(positive,) if positive else (),
        negative_attributes=(negative,) if negative else (),
    )


def mixed_resource_name(profile: MigProfile) -> str:
    """``nvidia.com/mig-<profile>`` with ``+`` -> ``.``."""
    return f"nvidia.com/mig-{profile.resource_suffix}"
