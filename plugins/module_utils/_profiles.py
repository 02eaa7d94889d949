# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""MIG profiles: names, parsing, and the per-GPU profile catalog.

Names are computed from NVML numbers exactly as NVIDIA's go-nvlib does (the library behind
k8s-device-plugin, GFD and mig-parted), so they also work on R450 drivers whose profile structs carry no
name field, and they always agree with the resource names the device plugin advertises:

* ``<g>g.<GB>gb`` for a MIG device whose compute instance spans its GPU instance,
  ``<c>c.<g>g.<GB>gb`` when the compute instance is smaller;
* ``+me`` for the REV1 GPU instance profiles (indices 7 and 8), ``+gfx`` / ``+me.all`` / ``-me`` for the
  Blackwell-only indices;
* ``GB = round_half_away(ceil(memMiB * 2^20 / totalBytes * 8) / 8 * ceil(totalBytes / 2^30))``.
  Go's ``math.Round`` rounds half away from zero (H200 3g: 0.5 * 141 = 70.5 -> ``3g.71gb``); Python's
  ``round()`` would give 70. We compute with integers, which equals go-nvlib's float64 result for every
  realistic input and cannot drift at exact eighths.

Nothing here talks to NVML: ``build_catalog`` turns NVML-shaped numbers (read by ``gpu.read_catalog``, or
test fixtures) into an immutable ``GpuCatalog``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union
from functools import lru_cache

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import ProfileError

_MIB = 1024 * 1024
_GIB = 1024 * 1024 * 1024

ATTRIBUTE_MEDIA_EXTENSIONS = "me"
ATTRIBUTE_MEDIA_EXTENSIONS_ALL = "me.all"
ATTRIBUTE_GRAPHICS = "gfx"

# NVML_GPU_INSTANCE_PROFILE_* index -> (GPU slices, attributes, negative attributes). go-nvlib derives the
# slice count from the index, not from sliceCount; the two agree on every captured GPU.
# 0x11 (3_SLICE_GFX) is unknown to go-nvlib; we read it as a 3-slice "+gfx" profile (Blackwell only).
GPU_INSTANCE_PROFILE_SHAPES = {
    0x0: (1, (), ()),
    0x1: (2, (), ()),
    0x2: (3, (), ()),
    0x3: (4, (), ()),
    0x4: (7, (), ()),
    0x5: (8, (), ()),
    0x6: (6, (), ()),
    0x7: (1, (ATTRIBUTE_MEDIA_EXTENSIONS,), ()),
    0x8: (2, (ATTRIBUTE_MEDIA_EXTENSIONS,), ()),
    0x9: (1, (), ()),
    0xA: (1, (ATTRIBUTE_GRAPHICS,), ()),
    0xB: (2, (ATTRIBUTE_GRAPHICS,), ()),
    0xC: (4, (ATTRIBUTE_GRAPHICS,), ()),
    0xD: (1, (), (ATTRIBUTE_MEDIA_EXTENSIONS,)),
    0xE: (2, (), (ATTRIBUTE_MEDIA_EXTENSIONS,)),
    0xF: (1, (ATTRIBUTE_MEDIA_EXTENSIONS_ALL,), ()),
    0x10: (2, (ATTRIBUTE_MEDIA_EXTENSIONS_ALL,), ()),
    0x11: (3, (ATTRIBUTE_GRAPHICS,), ()),
}

# NVML_COMPUTE_INSTANCE_PROFILE_* index -> compute slices (REV1 = 1 slice, 7_SLICE_NVL = 7 slices).
COMPUTE_INSTANCE_PROFILE_SLICES = {0x0: 1, 0x1: 2, 0x2: 3, 0x3: 4, 0x4: 7, 0x5: 8, 0x6: 6, 0x7: 1, 0x8: 7}

# The plain index for each compute slice count; REV1/NVL variants are never the default choice.
COMPUTE_INSTANCE_INDEX_BY_SLICES = {1: 0x0, 2: 0x1, 3: 0x2, 4: 0x3, 7: 0x4, 8: 0x5, 6: 0x6}

# Media engines are a per-GPU pool: a +me instance takes the GPU's only JPEG/OFA units. The pool size is the
# engine count of the profile that owns the whole GPU (the largest count any profile reports).
MEDIA_ENGINE_FIELDS = ("decoders", "encoders", "jpegs", "ofas")

_FIELD_NUMBER = re.compile(r"^[+-]?[0-9]+$")
_LENIENT_PROFILE = re.compile(
    r"^(?:(?P<c>[0-9]+)c\.)?(?P<g>[0-9]+)g\.(?P<gb>[0-9]+)gb(?:(?P<sep>[+.-])(?P<attrs>.+))?$"
)


@dataclass(frozen=True)
class ParsedProfile:
    """A MIG profile string split into its parts (go-nvlib's MigProfileInfo without the NVML ids)."""

    compute_slices: int
    gpu_slices: int
    memory_gb: int
    attributes: Tuple[str, ...] = ()
    negative_attributes: Tuple[str, ...] = ()

    @property
    def is_partial(self) -> bool:
        """True for ``<c>c.<g>g.<GB>gb`` devices whose compute instance is smaller than the GPU instance."""
        return self.compute_slices < self.gpu_slices

    @property
    def name(self) -> str:
        return mig_profile_name(
            self.gpu_slices, self.compute_slices, self.memory_gb, self.attributes, self.negative_attributes
        )

    @property
    def gpu_instance_name(self) -> str:
        """Name of the GPU instance profile that hosts this device (``1c.3g.20gb`` -> ``3g.20gb``)."""
        return mig_profile_name(
            self.gpu_slices, self.gpu_slices, self.memory_gb, self.attributes, self.negative_attributes
        )


def memory_size_gb(memory_mib: int, total_memory_bytes: int) -> int:
    """go-nvlib ``getMigMemorySizeGB``: the ``<GB>`` part of a profile name."""
    if total_memory_bytes <= 0:
        raise ProfileError("cannot name a MIG profile: the GPU reports a total memory of %s bytes" % total_memory_bytes)
    eighths = -(-(int(memory_mib) * _MIB * 8) // int(total_memory_bytes))
    total_gib = -(-int(total_memory_bytes) // _GIB)
    # floor(eighths * total_gib / 8 + 1/2): Go's math.Round for a positive value.
    return (eighths * total_gib + 4) // 8


def mig_profile_name(gpu_slices: int, compute_slices: int, memory_gb: int, attributes: Sequence[str] = (),
                     negative_attributes: Sequence[str] = ()) -> str:
    """Format a profile the way go-nvlib's ``MigProfileInfo.String`` does."""
    suffix = ""
    if attributes:
        suffix = "+" + ",".join(attributes)
    if negative_attributes:
        suffix = "-" + ",".join(negative_attributes)
    if compute_slices == gpu_slices:
        return "%dg.%dgb%s" % (gpu_slices, memory_gb, suffix)
    return "%dc.%dg.%dgb%s" % (compute_slices, gpu_slices, memory_gb, suffix)


def _parse_field(text: str, suffix: str, profile: str) -> int:
    if text.strip() != text:
        raise ProfileError("invalid MIG profile '%s': leading or trailing spaces on '%%d%s'" % (profile, suffix))
    if not text.endswith(suffix):
        raise ProfileError("invalid MIG profile '%s': missing '%s' from '%%d%s'" % (profile, suffix, suffix))
    number = text[: -len(suffix)]
    if not _FIELD_NUMBER.match(number):
        raise ProfileError("invalid MIG profile '%s': malformed number in '%%d%s'" % (profile, suffix))
    return int(number)


def _parse_attributes(text: str, profile: str) -> Tuple[str, ...]:
    attributes = text.split(",")
    seen = set()
    for attribute in attributes:
        problem = None
        if attribute in seen:
            problem = "non unique attribute in list"
        elif attribute == "":
            problem = "empty attribute in list"
        elif attribute.strip() != attribute:
            problem = "leading or trailing spaces in attribute"
        elif attribute[0].isdigit():
            problem = "attribute begins with a number"
        elif attribute[0] == "." or attribute[-1] == ".":
            problem = "attribute begins/ends with a dot"
        elif not all((ch.isascii() and ch.isalnum()) or ch == "." for ch in attribute):
            problem = "non alpha-numeric character in attribute"
        if problem:
            raise ProfileError("invalid MIG profile '%s': %s" % (profile, problem))
        seen.add(attribute)
    return tuple(sorted(attributes))


def _check_shape(parsed: ParsedProfile, profile: str) -> ParsedProfile:
    # mig-parted's format check accepts "0g.0gb" and "4c.3g.20gb"; no GPU offers them, so reject them here
    # where the message can still name the config entry instead of failing later at apply time.
    if parsed.gpu_slices < 1 or parsed.compute_slices < 1 or parsed.memory_gb < 1:
        raise ProfileError("invalid MIG profile '%s': slice and memory counts must be positive" % profile)
    if parsed.compute_slices > parsed.gpu_slices:
        raise ProfileError(
            "invalid MIG profile '%s': %d compute slices cannot fit in a %d-slice GPU instance"
            % (profile, parsed.compute_slices, parsed.gpu_slices)
        )
    return parsed


def parse_profile_strict(profile: Any) -> ParsedProfile:
    """Parse a profile string with the grammar mig-parted config files use (go-nvlib ``parseMigProfile``).

    Accepts ``1g.5gb``, ``1c.3g.20gb``, ``1g.5gb+me``, ``1g.24gb-me``; rejects the resource-name spelling
    ``1g.5gb.me`` and the ``MIG `` prefix, as mig-parted does.
    """
    if not isinstance(profile, str) or profile == "":
        raise ProfileError("invalid MIG profile %r: expected a non-empty string such as '1g.5gb'" % (profile,))
    positive = profile.split("+", 1)
    negative = profile.split("-", 1)
    if len(positive) == 2 and len(negative) == 2:
        raise ProfileError("invalid MIG profile '%s': contains both '+' and '-' attributes" % profile)
    parts = positive if len(positive) == 2 else negative
    fields = parts[0].split(".", 2)
    if len(fields) == 3:
        compute = _parse_field(fields[0], "c", profile)
        gpu = _parse_field(fields[1], "g", profile)
        memory = _parse_field(fields[2], "gb", profile)
    elif len(fields) == 2:
        gpu = _parse_field(fields[0], "g", profile)
        compute = gpu
        memory = _parse_field(fields[1], "gb", profile)
    else:
        raise ProfileError(
            "invalid MIG profile '%s': expected '<g>g.<mem>gb' or '<c>c.<g>g.<mem>gb'" % profile
        )
    attributes = ()
    negative_attributes = ()
    if len(parts) == 2:
        parsed_attributes = _parse_attributes(parts[1], profile)
        if len(negative) == 2:
            negative_attributes = parsed_attributes
        else:
            attributes = parsed_attributes
    return _check_shape(ParsedProfile(compute, gpu, memory, attributes, negative_attributes), profile)


def parse_profile(profile: Any) -> ParsedProfile:
    """Parse a profile string leniently, for inventory input and NVML/nvidia-smi output.

    On top of the strict grammar it accepts the ``MIG `` prefix nvidia-smi prints (``MIG 1g.5gb``),
    device-plugin resource names (``nvidia.com/mig-1g.5gb.me``, ``mig-3g.20gb``), the resource-name
    attribute spelling ``1g.5gb.me`` (= ``1g.5gb+me``) and any letter case.
    """
    if not isinstance(profile, str) or not profile.strip():
        raise ProfileError("invalid MIG profile %r: expected a non-empty string such as '1g.5gb'" % (profile,))
    return _parse_profile_text(profile)


@lru_cache(maxsize=1024)  # pure and hot: the planner compares names many times per plan
def _parse_profile_text(profile: str) -> ParsedProfile:
    text = profile.strip().lower()
    if text.startswith("nvidia.com/"):
        text = text[len("nvidia.com/"):]
    if text.startswith("mig-"):
        text = text[len("mig-"):]
    elif text.startswith("mig "):
        text = text[len("mig "):].strip()
    match = _LENIENT_PROFILE.match(text)
    if not match:
        raise ProfileError(
            "invalid MIG profile '%s': expected '<g>g.<mem>gb' or '<c>c.<g>g.<mem>gb', optionally with "
            "'+me' (e.g. '1g.5gb', '1c.3g.20gb', '1g.5gb+me')" % profile
        )
    gpu = int(match.group("g"))
    compute = int(match.group("c")) if match.group("c") is not None else gpu
    memory = int(match.group("gb"))
    attributes = ()
    negative_attributes = ()
    if match.group("sep"):
        parsed_attributes = _parse_attributes(match.group("attrs"), profile)
        if match.group("sep") == "-":
            negative_attributes = parsed_attributes
        else:
            attributes = parsed_attributes
    return _check_shape(ParsedProfile(compute, gpu, memory, attributes, negative_attributes), profile)


def normalize_profile(profile: str) -> str:
    """Canonical spelling of a profile string (``MIG 1g.5gb.me`` -> ``1g.5gb+me``, ``1c.1g.5gb`` -> ``1g.5gb``)."""
    return parse_profile(profile).name


def resource_name(profile: Union[str, ParsedProfile]) -> str:
    """Extended resource the device plugin's mixed strategy advertises for a MIG device profile."""
    name = profile if isinstance(profile, str) else profile.name
    return "nvidia.com/mig-" + normalize_profile(name).replace("+", ".")


def device_sort_key(profile: str) -> Tuple[int, int, int, Tuple[str, ...], Tuple[str, ...]]:
    """Order MIG devices largest first, the order mig-parted flattens and creates them in."""
    parsed = parse_profile(profile)
    return (
        -parsed.gpu_slices,
        -parsed.compute_slices,
        -parsed.memory_gb,
        parsed.attributes,
        parsed.negative_attributes,
    )


def canonical_devices(profiles: Union[Iterable[str], Mapping[str, int]]) -> Tuple[str, ...]:
    """A sorted multiset (tuple) of canonical MIG device names, from names or a ``{name: count}`` mapping."""
    names = []
    if hasattr(profiles, "items"):
        for profile, count in profiles.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ProfileError(
                    "invalid count %r for MIG profile '%s': expected a non-negative integer" % (count, profile)
                )
            names.extend([normalize_profile(profile)] * count)
    else:
        names = [normalize_profile(profile) for profile in profiles]
    return tuple(sorted(names, key=lambda name: (device_sort_key(name), name)))


@dataclass(frozen=True)
class ComputeInstanceProfile:
    """A compute-instance shape inside one GPU instance profile; ``name`` is the MIG device name."""

    index: int
    profile_id: int
    name: str
    slice_count: int
    instance_count: int
    multiprocessors: Optional[int]  # unknown for partial CIs on most GPUs
    placements: Tuple[Tuple[int, int], ...]


@dataclass(frozen=True)
class GpuInstanceProfile:
    """One NVML GPU instance profile of one GPU model and driver branch.

    ``index`` is the NVML_GPU_INSTANCE_PROFILE_* constant, ``profile_id`` the id nvidia-smi prints and every
    create/list call takes. ``placements`` are ``(start, size)`` in memory slices; ``memory_slices`` is the
    size every placement of the profile occupies.
    """

    index: int
    profile_id: int
    name: str
    slice_count: int
    memory_slices: int
    instance_count: int
    memory_mib: int
    multiprocessors: int
    copy_engines: int
    decoders: int
    encoders: int
    jpegs: int
    ofas: int
    placements: Tuple[Tuple[int, int], ...]
    compute_profiles: Tuple[ComputeInstanceProfile, ...]
    reported_name: Optional[str] = field(default=None, compare=False)  # NVML v2 name, diagnostics only

    @property
    def full_compute_profile(self) -> Optional[ComputeInstanceProfile]:
        """The compute instance that spans the whole GPU instance (nvidia-smi's default CI)."""
        for compute_profile in self.compute_profiles:
            if compute_profile.name == self.name:
                return compute_profile
        return None

    def compute_profile_by_id(self, profile_id: Optional[int]) -> Optional[ComputeInstanceProfile]:
        for compute_profile in self.compute_profiles:
            if compute_profile.profile_id == profile_id:
                return compute_profile
        return None

    def compute_profile_by_slices(self, slice_count: int) -> Optional[ComputeInstanceProfile]:
        for compute_profile in self.compute_profiles:
            if compute_profile.slice_count == slice_count:
                return compute_profile
        return None

    def media_engines(self) -> Dict[str, int]:
        return dict((name, getattr(self, name)) for name in MEDIA_ENGINE_FIELDS)


@dataclass(frozen=True)
class GpuCatalog:
    """Every MIG profile one GPU offers, as read from NVML at run time (never from a hard-coded table)."""

    model: str
    memory_total_bytes: int
    memory_slice_count: int
    compute_slice_count: int
    profiles: Tuple[GpuInstanceProfile, ...]

    @property
    def memory_total_mib(self) -> int:
        return self.memory_total_bytes // _MIB

    def by_id(self, profile_id: Optional[int]) -> Optional[GpuInstanceProfile]:
        for profile in self.profiles:
            if profile.profile_id == profile_id:
                return profile
        return None

    def device_names(self) -> Tuple[str, ...]:
        """Every MIG device name this GPU can host, full devices first (``3g.20gb`` before ``1c.3g.20gb``)."""
        names = []
        for profile in self.profiles:
            for compute_profile in profile.compute_profiles:
                names.append(compute_profile.name)
        return canonical_devices(sorted(set(names)))

    def resolve_device(self, device: str) -> Tuple[GpuInstanceProfile, ComputeInstanceProfile]:
        """``(GpuInstanceProfile, ComputeInstanceProfile)`` for a MIG device name; ProfileError if absent."""
        wanted = parse_profile(device)
        for profile in self.profiles:
            for compute_profile in profile.compute_profiles:
                if parse_profile(compute_profile.name) == wanted:
                    return profile, compute_profile
        raise ProfileError(
            "MIG profile '%s' is not offered by %s; available: %s"
            % (device, self.model, ", ".join(self.device_names()) or "none")
        )

    def media_engine_budget(self) -> Dict[str, int]:
        """Per-GPU pool of each media engine type (see MEDIA_ENGINE_FIELDS)."""
        budget = dict((name, 0) for name in MEDIA_ENGINE_FIELDS)
        for profile in self.profiles:
            for name in MEDIA_ENGINE_FIELDS:
                budget[name] = max(budget[name], getattr(profile, name))
        return budget


def _derive_compute_profiles(gpu_slices: int, memory_gb: int, attributes: Sequence[str], negative_attributes: Sequence[str],
                             multiprocessors: int) -> Tuple[ComputeInstanceProfile, ...]:
    """Compute-instance shapes of a GPU instance profile.

    NVML can only list CI profiles on an existing GPU instance, so, like go-nvlib, we derive them: a CI of
    c slices exists when c == g, or when c < g and 2c <= g + 1. Assumptions (inferred, docs/hardware.md):
    CI profile id == CI profile index (true in every ``-lcip`` capture; _gpu.py still
    resolves the real id before creating), ``g // c`` partial CIs at aligned starts ``0, c, 2c, ...``, and
    SM counts known only for the full CI.
    """
    shapes = []
    for index in sorted(COMPUTE_INSTANCE_INDEX_BY_SLICES.values()):
        compute_slices = COMPUTE_INSTANCE_PROFILE_SLICES[index]
        if compute_slices > gpu_slices:
            continue
        if compute_slices < gpu_slices and compute_slices * 2 > gpu_slices + 1:
            continue
        full = compute_slices == gpu_slices
        count = 1 if full else gpu_slices // compute_slices
        shapes.append(
            ComputeInstanceProfile(
                index=index,
                profile_id=index,
                name=mig_profile_name(gpu_slices, compute_slices, memory_gb, attributes, negative_attributes),
                slice_count=compute_slices,
                instance_count=count,
                multiprocessors=multiprocessors if full else None,
                placements=tuple((slot * compute_slices, compute_slices) for slot in range(count)),
            )
        )
    return tuple(sorted(shapes, key=lambda shape: -shape.slice_count))


def build_gpu_instance_profile(raw: Dict[str, Any], memory_total_bytes: int) -> GpuInstanceProfile:
    """One GpuInstanceProfile from NVML-shaped numbers (keys as in ``build_catalog``)."""
    index = int(raw["index"])
    shape = GPU_INSTANCE_PROFILE_SHAPES.get(index)
    if shape is None:
        gpu_slices, attributes, negative_attributes = int(raw["slice_count"]), (), ()
    else:
        gpu_slices, attributes, negative_attributes = shape
    memory_gb = memory_size_gb(raw["memory_mib"], memory_total_bytes)
    placements = tuple(sorted((int(start), int(size)) for start, size in raw.get("placements", ())))
    sizes = set(placement[1] for placement in placements)
    if len(sizes) > 1:
        raise ProfileError(
            "GPU instance profile %s reports placements of different sizes %s; cannot model it"
            % (raw["profile_id"], sorted(sizes))
        )
    multiprocessors = int(raw.get("multiprocessors", 0))
    return GpuInstanceProfile(
        index=index,
        profile_id=int(raw["profile_id"]),
        name=mig_profile_name(gpu_slices, gpu_slices, memory_gb, attributes, negative_attributes),
        slice_count=int(raw.get("slice_count", gpu_slices)),
        memory_slices=sizes.pop() if sizes else 0,
        instance_count=int(raw["instance_count"]),
        memory_mib=int(raw["memory_mib"]),
        multiprocessors=multiprocessors,
        copy_engines=int(raw.get("copy_engines", 0)),
        decoders=int(raw.get("decoders", 0)),
        encoders=int(raw.get("encoders", 0)),
        jpegs=int(raw.get("jpegs", 0)),
        ofas=int(raw.get("ofas", 0)),
        placements=placements,
        compute_profiles=_derive_compute_profiles(
            gpu_slices, memory_gb, attributes, negative_attributes, multiprocessors
        ),
        reported_name=raw.get("reported_name"),
    )


def build_catalog(model: str, memory_total_bytes: int, raw_profiles: Iterable[Dict[str, Any]]) -> GpuCatalog:
    """Build a GpuCatalog from NVML-shaped GPU instance profile records.

    Each record is a mapping with ``index``, ``profile_id``, ``slice_count``, ``instance_count``,
    ``memory_mib``, ``multiprocessors``, ``copy_engines``, ``decoders``, ``encoders``, ``jpegs``, ``ofas``,
    ``placements`` (iterable of ``(start, size)``) and optionally ``reported_name``.
    ``memory_total_bytes`` is the parent GPU's ``nvmlDeviceGetMemoryInfo().total``, the value go-nvlib names
    profiles against.
    """
    profiles = tuple(
        sorted(
            (build_gpu_instance_profile(raw, memory_total_bytes) for raw in raw_profiles),
            key=lambda profile: (-profile.slice_count, -profile.memory_mib, profile.index),
        )
    )
    memory_slice_count = max([start + size for profile in profiles for start, size in profile.placements] or [0])
    compute_slice_count = max([profile.slice_count for profile in profiles] or [0])
    return GpuCatalog(
        model=model,
        memory_total_bytes=int(memory_total_bytes),
        memory_slice_count=memory_slice_count,
        compute_slice_count=compute_slice_count,
        profiles=profiles,
    )


def profile_resources(profile: GpuInstanceProfile) -> Dict[str, int]:
    """What a GPU instance of ``profile`` owns: compute slices, SMs and engines, as NVML reports them."""
    return {
        "slice_count": profile.slice_count,
        "multiprocessors": profile.multiprocessors,
        "copy_engines": profile.copy_engines,
        "decoders": profile.decoders,
        "encoders": profile.encoders,
        "jpegs": profile.jpegs,
        "ofas": profile.ofas,
    }


def catalog_to_dict(catalog: GpuCatalog) -> Dict[str, Any]:
    """JSON-able form of a GpuCatalog (NVML numbers only; names and CI shapes are re-derived on load)."""
    return {
        "model": catalog.model,
        "memory_total_bytes": catalog.memory_total_bytes,
        "profiles": [
            dict(profile_resources(profile),
                 index=profile.index,
                 profile_id=profile.profile_id,
                 name=profile.name,
                 instance_count=profile.instance_count,
                 memory_mib=profile.memory_mib,
                 placements=[[start, size] for start, size in profile.placements],
                 reported_name=profile.reported_name)
            for profile in catalog.profiles
        ],
    }


def catalog_from_dict(data: Dict[str, Any]) -> GpuCatalog:
    """Inverse of ``catalog_to_dict`` (e.g. a catalog a gpu_info module returned to the controller)."""
    try:
        return build_catalog(data["model"], data["memory_total_bytes"], data["profiles"])
    except (KeyError, TypeError, ValueError) as error:
        raise ProfileError("invalid MIG profile catalog data: %s" % error)
