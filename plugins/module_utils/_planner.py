# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Plan one GPU's MIG layout: from what NVML reports and what the inventory asks, to keep/destroy/create.

Pure functions only; the same plan drives preflight, ``--check --diff`` and the real run.

Model (docs/hardware.md, "Slices, placements, compute instances"):

* A MIG device is a compute instance (CI). A full-size device (``3g.20gb``) is a GPU instance (GI) with
  one CI spanning it; partial devices (``1c.3g.20gb``) share GIs of their profile, packed first-fit
  decreasing into as few GIs as the CI placements allow.
* GIs sit on fixed placements ``(start, size)`` in memory slices, must not overlap, and a profile allows at
  most ``instance_count`` GIs (this is what limits ``+me`` to one per GPU). The GPU's media engines
  (decoders, encoders, JPEG, OFA) are one pool the size of the full-GPU profile's; no captured layout
  exceeds it, and it is what makes A30's ``1g.6gb+me`` and ``2g.12gb+me`` mutually exclusive.
* Placements are searched exhaustively (a GPU holds at most 7-8 GIs), so whenever any non-overlapping
  placement exists the planner finds one. Every GI is created with an explicit placement, which makes the
  creation order irrelevant to success (unlike automatic placement, where ``19,19,14,9`` fails).
* Existing GIs whose profile and CI set equal a desired GI are kept; the planner keeps as many as it can
  while the rest still fits, and destroys only the others. Empty GIs (left by a failed run) are destroyed.

Not modelled: R450-R505 drivers refuse a 4g next to a 3g (fixed in R510); the catalog carries no driver
branch, so such a plan fails at create time with the driver's own error.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any, Counter as CounterType, Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import LayoutError, ProfileError
from ansible_collections.gpufleet.mig.plugins.module_utils._node_report import describe_devices, placement, placement_pair
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import (
    MEDIA_ENGINE_FIELDS,
    ComputeInstanceProfile,
    GpuCatalog,
    GpuInstanceProfile,
    canonical_devices,
    normalize_profile,
)

_ENGINE_WORDS = {"decoders": "decoder", "encoders": "encoder", "jpegs": "JPEG", "ofas": "OFA"}


def _slice_mask(placement: Tuple[int, int]) -> int:
    start, size = placement
    return ((1 << size) - 1) << start


@dataclass(frozen=True)
class ExistingComputeInstance:
    id: int
    profile_id: int
    name: Optional[str]  # MIG device name; None when the catalog does not know the CI profile
    placement: Optional[Tuple[int, int]]  # (start, size) in compute slices

    def to_dict(self) -> Dict[str, Any]:
        return {"id": self.id, "profile_id": self.profile_id, "profile_name": self.name,
                "placement": placement(self.placement)}


@dataclass(frozen=True)
class ExistingGpuInstance:
    id: int
    profile_id: int
    name: Optional[str]  # GI profile name; None when the catalog does not know the profile
    placement: Tuple[int, int]
    compute_instances: Tuple[ExistingComputeInstance, ...]

    def to_dict(self) -> Dict[str, Any]:
        return {"id": self.id, "profile_id": self.profile_id, "profile_name": self.name,
                "placement": placement(self.placement),
                "compute_instances": [ci.to_dict() for ci in self.compute_instances]}


@dataclass(frozen=True)
class PlannedComputeInstance:
    name: str
    profile_index: int
    profile_id: int
    slice_count: int
    placement: Tuple[int, int]

    def to_dict(self) -> Dict[str, Any]:
        return {"profile_name": self.name, "profile_index": self.profile_index, "profile_id": self.profile_id,
                "placement": placement(self.placement)}


@dataclass(frozen=True)
class PlannedGpuInstance:
    name: str
    profile_id: int
    profile_index: int
    placement: Tuple[int, int]
    compute_instances: Tuple[PlannedComputeInstance, ...]

    def to_dict(self) -> Dict[str, Any]:
        return {"profile_name": self.name, "profile_id": self.profile_id, "profile_index": self.profile_index,
                "placement": placement(self.placement),
                "compute_instances": [ci.to_dict() for ci in self.compute_instances]}


@dataclass(frozen=True)
class GpuPlan:
    """Actions that turn one GPU's GIs/CIs into the desired MIG devices.

    Apply in this order: destroy (each GI's CIs first, then the GI), then create in list order (each GI
    at its placement, then its CIs largest first). ``keep`` is informational.
    """

    keep: Tuple[ExistingGpuInstance, ...]
    destroy: Tuple[ExistingGpuInstance, ...]
    create: Tuple[PlannedGpuInstance, ...]
    current_devices: Tuple[str, ...]
    desired_devices: Tuple[str, ...]

    @property
    def converged(self) -> bool:
        return not self.destroy and not self.create

    def to_dict(self) -> Dict[str, Any]:
        return {
            "converged": self.converged,
            "keep": [gi.to_dict() for gi in self.keep],
            "destroy": [gi.to_dict() for gi in self.destroy],
            "create": [gi.to_dict() for gi in self.create],
            "current_devices": list(self.current_devices),
            "desired_devices": list(self.desired_devices),
        }


@dataclass(frozen=True)
class _DesiredGpuInstance:
    profile: GpuInstanceProfile
    compute_instances: Tuple[Tuple[ComputeInstanceProfile, Tuple[int, int]], ...]

    @property
    def device_names(self) -> Tuple[str, ...]:
        return tuple(item[0].name for item in self.compute_instances)


@dataclass(frozen=True)
class _Keepable:
    existing: ExistingGpuInstance
    profile: GpuInstanceProfile
    is_full: bool
    compute_counts: Tuple[Tuple[int, int], ...]  # (ci profile index, count) for partial GIs


def _compute_name(gi_profile: Optional[GpuInstanceProfile], ci: Dict[str, Any]) -> Optional[str]:
    """Device name of an existing CI: catalog first (by id), then what NVML facts said."""
    if gi_profile is not None:
        compute_profile = gi_profile.compute_profile_by_id(ci.get("profile_id"))
        if compute_profile is not None:
            return compute_profile.name
    name = ci.get("profile_name")
    if name:
        try:
            return normalize_profile(name)
        except ProfileError:
            return None
    return None


def existing_gpu_instances(catalog: Optional[GpuCatalog],
                           gpu_instances: Optional[Iterable[Union[Dict[str, Any], ExistingGpuInstance]]]) -> Tuple[ExistingGpuInstance, ...]:
    """Facts (``gpu.read_node_facts()['gpus'][i]['gpu_instances']``) -> ExistingGpuInstance tuple."""
    existing = []
    for gi in gpu_instances or ():
        if isinstance(gi, ExistingGpuInstance):
            existing.append(gi)
            continue
        profile = catalog.by_id(gi.get("profile_id")) if catalog is not None else None
        name = profile.name if profile is not None else gi.get("profile_name")
        computes = tuple(
            ExistingComputeInstance(
                id=int(ci["id"]),
                profile_id=ci.get("profile_id"),
                name=_compute_name(profile, ci),
                placement=placement_pair(ci.get("placement")),
            )
            for ci in sorted(gi.get("compute_instances") or (), key=lambda item: item["id"])
        )
        existing.append(ExistingGpuInstance(id=int(gi["id"]), profile_id=gi.get("profile_id"), name=name,
                                            placement=placement_pair(gi.get("placement")),
                                            compute_instances=computes))
    return tuple(sorted(existing, key=lambda gi: gi.id))


def devices_from_instances(gpu_instances: Iterable[Union[Dict[str, Any], ExistingGpuInstance]],
                           catalog: Optional[GpuCatalog] = None) -> Tuple[str, ...]:
    """The MIG devices (one per compute instance) the GPU has now, as a canonical sorted multiset.

    Comparable with ``DesiredGpuLayout.devices``; empty GPU instances contribute nothing.
    """
    names = []
    for gi in existing_gpu_instances(catalog, gpu_instances):
        for ci in gi.compute_instances:
            if ci.name is not None:
                names.append(ci.name)
    return canonical_devices(names)


class _ComputeBin(object):
    """A GPU instance being filled with partial compute instances during packing."""

    def __init__(self) -> None:
        self.used = 0  # compute-slice bit mask
        self.counts = Counter()  # CI profile index -> instances placed
        self.items = []  # [(ComputeInstanceProfile, placement)]

    def free_placement(self, compute: ComputeInstanceProfile) -> Optional[Tuple[int, int]]:
        if self.counts[compute.index] >= compute.instance_count:
            return None
        for placement in compute.placements:
            if not self.used & _slice_mask(placement):
                return placement
        return None

    def add(self, compute: ComputeInstanceProfile, placement: Tuple[int, int]) -> None:
        self.used |= _slice_mask(placement)
        self.counts[compute.index] += 1
        self.items.append((compute, placement))


def _pack_compute_instances(gi_profile: GpuInstanceProfile, compute_profiles: Iterable[ComputeInstanceProfile]) -> List[_DesiredGpuInstance]:
    """Partial CIs of one GI profile -> GIs, first-fit decreasing over the CI placements."""
    bins = []
    for compute in sorted(compute_profiles, key=lambda item: (-item.slice_count, item.index)):
        for candidate in bins:
            placement = candidate.free_placement(compute)
            if placement is not None:
                candidate.add(compute, placement)
                break
        else:
            fresh = _ComputeBin()
            placement = fresh.free_placement(compute)
            if placement is None:  # a CI profile without placements cannot be planned
                raise LayoutError("compute instance profile %s has no placement in %s"
                                  % (compute.name, gi_profile.name), reason="placement")
            fresh.add(compute, placement)
            bins.append(fresh)
    return [_DesiredGpuInstance(gi_profile, tuple(sorted(packed.items, key=lambda item: (-item[0].slice_count, item[1]))))
            for packed in bins]


def _group_into_gpu_instances(full_counts: Dict[int, int], partial_demand: Dict[int, CounterType[int]],
                              profiles_by_id: Dict[int, GpuInstanceProfile]) -> List[_DesiredGpuInstance]:
    """Desired GIs for a demand: one GI per full device, partial devices packed per GI profile."""
    wanted = []
    for profile_id, count in sorted(full_counts.items()):
        profile = profiles_by_id[profile_id]
        full = profile.full_compute_profile
        wanted.extend([_DesiredGpuInstance(profile, ((full, (0, full.slice_count)),))] * count)
    for profile_id, computes in sorted(partial_demand.items()):
        profile = profiles_by_id[profile_id]
        by_index = dict((compute.index, compute) for compute in profile.compute_profiles)
        items = [by_index[index] for index in computes.elements()]
        if items:
            wanted.extend(_pack_compute_instances(profile, items))
    return wanted


def _static_problems(catalog: GpuCatalog, profiles: Sequence[GpuInstanceProfile]) -> List[Tuple[str, str]]:
    """Placement-independent reasons a set of GI profiles cannot coexist: [(reason, message), ...]."""
    problems = []
    counts = Counter(profile.profile_id for profile in profiles)
    for profile_id, count in sorted(counts.items()):
        profile = catalog.by_id(profile_id)
        if count > profile.instance_count:
            problems.append(("instance_count", "%d GPU instances of %s are needed, but %s allows at most %d"
                             % (count, profile.name, catalog.model, profile.instance_count)))
    memory = sum(profile.memory_slices for profile in profiles)
    if memory > catalog.memory_slice_count:
        problems.append(("memory_slices", "the GPU instances need %d memory slices, but %s has %d"
                         % (memory, catalog.model, catalog.memory_slice_count)))
    compute = sum(profile.slice_count for profile in profiles)
    if compute > catalog.compute_slice_count:
        problems.append(("compute_slices", "the GPU instances need %d compute slices, but %s has %d"
                         % (compute, catalog.model, catalog.compute_slice_count)))
    budget = catalog.media_engine_budget()
    for engine in MEDIA_ENGINE_FIELDS:
        needed = sum(getattr(profile, engine) for profile in profiles)
        if needed > budget[engine]:
            users = sorted(set(profile.name for profile in profiles if getattr(profile, engine)))
            problems.append(("media_engines", "%s need %d %s engines together, but %s has %d"
                             % (" + ".join(users), needed, _ENGINE_WORDS[engine], catalog.model, budget[engine])))
    return problems


def _find_placements(profiles: Sequence[GpuInstanceProfile], occupied: int) -> Optional[List[Tuple[int, int]]]:
    """Non-overlapping placements for GI profiles around ``occupied`` (bit mask), or None.

    Backtracking, most constrained profile first; equal profiles take placements in increasing order so
    permutations of identical GIs are tried once.
    """
    order = sorted(range(len(profiles)),
                   key=lambda i: (len(profiles[i].placements), -profiles[i].memory_slices, profiles[i].profile_id))
    chosen = [None] * len(profiles)

    def place(position: int, used: int, previous_choice: int) -> bool:
        if position == len(order):
            return True
        index = order[position]
        profile = profiles[index]
        first = 0
        if position and profiles[order[position - 1]].profile_id == profile.profile_id:
            first = previous_choice + 1
        for choice in range(first, len(profile.placements)):
            mask = _slice_mask(profile.placements[choice])
            if used & mask:
                continue
            chosen[index] = profile.placements[choice]
            if place(position + 1, used | mask, choice):
                return True
        return False

    return list(chosen) if place(0, occupied, -1) else None


def _realise(catalog: GpuCatalog, kept: Sequence[_Keepable], full_counts: Dict[int, int], partial_demand: Dict[int, CounterType[int]],
             profiles_by_id: Dict[int, GpuInstanceProfile]) -> Optional[List[Tuple[_DesiredGpuInstance, Tuple[int, int]]]]:
    """New GIs (with placements) that complete ``kept`` to the demand, or None if they cannot fit."""
    full_left = Counter(full_counts)
    partial_left = dict((profile_id, Counter(computes)) for profile_id, computes in partial_demand.items())
    for keepable in kept:
        profile_id = keepable.profile.profile_id
        if keepable.is_full:
            if full_left[profile_id] < 1:
                return None
            full_left[profile_id] -= 1
            continue
        computes = partial_left.get(profile_id, Counter())
        for compute_index, count in keepable.compute_counts:
            if computes[compute_index] < count:
                return None
            computes[compute_index] -= count
    wanted = _group_into_gpu_instances(+full_left, dict((k, +v) for k, v in partial_left.items()), profiles_by_id)
    all_profiles = [keepable.profile for keepable in kept] + [gi.profile for gi in wanted]
    if _static_problems(catalog, all_profiles):
        return None
    occupied = 0
    for keepable in kept:
        occupied |= _slice_mask(keepable.existing.placement)
    placements = _find_placements([gi.profile for gi in wanted], occupied)
    if placements is None:
        return None
    return list(zip(wanted, placements))


def _keepable(catalog: GpuCatalog, existing: ExistingGpuInstance, desired_full: Dict[int, int],
              desired_partial: Dict[int, CounterType[int]]) -> Optional[_Keepable]:
    """Existing GI as a keep candidate, or None when it matches no desired GI."""
    profile = catalog.by_id(existing.profile_id)
    if profile is None or existing.placement is None or not existing.compute_instances:
        return None
    names = [ci.name for ci in existing.compute_instances]
    if any(name is None for name in names):
        return None
    if names == [profile.name]:
        return _Keepable(existing, profile, True, ()) if desired_full[profile.profile_id] else None
    counts = Counter()
    for ci in existing.compute_instances:
        compute = next((item for item in profile.compute_profiles if item.name == ci.name), None)
        if compute is None or compute.slice_count >= profile.slice_count:
            return None
        counts[compute.index] += 1
    wanted = desired_partial.get(profile.profile_id, Counter())
    if any(wanted[index] < count for index, count in counts.items()):
        return None
    return _Keepable(existing, profile, False, tuple(sorted(counts.items())))


def _largest_fitting(catalog: GpuCatalog, wanted: Sequence[_DesiredGpuInstance]) -> Tuple[str, ...]:
    """MIG devices of the largest sub-multiset of the wanted GIs that fits on an empty GPU."""
    groups = {}
    for gi in wanted:
        key = (gi.profile.profile_id, gi.device_names)
        groups.setdefault(key, []).append(gi)
    keys = sorted(groups)
    limits = [(groups[key][0].profile.memory_slices, groups[key][0].profile.slice_count,
               min(len(groups[key]), groups[key][0].profile.instance_count)) for key in keys]

    def counts_within_slices(position: int, memory: int, compute: int) -> Iterator[Tuple[int, ...]]:
        # Sub-multisets that pass the slice budgets; pruning here keeps the error path fast.
        if position == len(limits):
            yield ()
            return
        memory_slices, compute_slices, most = limits[position]
        for count in range(most + 1):
            if (memory + count * memory_slices > catalog.memory_slice_count
                    or compute + count * compute_slices > catalog.compute_slice_count):
                break
            for rest in counts_within_slices(position + 1, memory + count * memory_slices,
                                             compute + count * compute_slices):
                yield (count,) + rest

    candidates = []
    for counts in counts_within_slices(0, 0, 0):
        chosen = [gi for key, count in zip(keys, counts) for gi in groups[key][:count]]
        if not chosen:
            continue
        devices = sum(len(gi.compute_instances) for gi in chosen)
        memory = sum(gi.profile.memory_slices for gi in chosen)
        candidates.append((-devices, -memory, counts, chosen))
    for candidate in sorted(candidates, key=lambda item: item[:3]):
        chosen = candidate[3]
        profiles = [gi.profile for gi in chosen]
        if not _static_problems(catalog, profiles) and _find_placements(profiles, 0) is not None:
            return tuple(name for gi in chosen for name in gi.device_names)
    return ()


def _explain_misfit(catalog: GpuCatalog, wanted: Sequence[_DesiredGpuInstance], desired: Sequence[str]) -> LayoutError:
    profiles = [gi.profile for gi in wanted]
    problems = _static_problems(catalog, profiles)
    if problems:
        reason = problems[0][0]
        cause = "; ".join(problem[1] for problem in problems)
    else:
        reason = "placement"
        cause = "no non-overlapping placement exists for GPU instances %s" % describe_devices(
            [profile.name for profile in profiles])
    fitting = canonical_devices(_largest_fitting(catalog, wanted))
    hint = ("largest part of the request that fits: %s" % describe_devices(fitting)) if fitting else "nothing of it fits"
    return LayoutError("MIG devices %s do not fit on %s: %s; %s"
                       % (describe_devices(desired), catalog.model, cause, hint),
                       reason=reason, largest_fitting=fitting)


def busy_gpu_instance_ids(gpu_facts: Dict[str, Any]) -> FrozenSet[int]:
    """Ids of the GPU instances that processes run on, from a ``gpu.read_node_facts`` GPU record."""
    return frozenset(process["gpu_instance_id"] for process in gpu_facts.get("processes") or ()
                     if process.get("gpu_instance_id") is not None)


def plan_gpu_layout(catalog: GpuCatalog, current_gpu_instances: Iterable[Union[Dict[str, Any], ExistingGpuInstance]],
                    desired_devices: Any, busy_gpu_instances: Iterable[int] = ()) -> GpuPlan:
    """Plan one GPU: ``catalog`` (GpuCatalog), its current GIs (facts records or ExistingGpuInstance) and
    the desired MIG devices (names or ``{name: count}``) -> GpuPlan. Raises LayoutError when the desired
    devices cannot exist together on this GPU, ProfileError for malformed profile strings.

    ``busy_gpu_instances`` are ids of GIs that processes run on: among equally good plans, the one that
    keeps the most of them wins, so a layout that can leave running work alone never plans to destroy it.
    """
    if not catalog.profiles:
        raise LayoutError(
            "%s reports no MIG profiles; NVML lists them only while MIG mode is enabled on some drivers. "
            "Enable MIG mode first, then plan the layout" % catalog.model, reason="empty_catalog")
    desired = canonical_devices(desired_devices)
    existing = existing_gpu_instances(catalog, current_gpu_instances)
    current = canonical_devices([ci.name for gi in existing for ci in gi.compute_instances if ci.name])

    profiles_by_id = dict((profile.profile_id, profile) for profile in catalog.profiles)
    full_counts = Counter()
    partial_demand = {}
    unknown = []
    for name in desired:
        try:
            gi_profile, compute = catalog.resolve_device(name)
        except ProfileError:
            unknown.append(name)
            continue
        if compute.slice_count == gi_profile.slice_count:
            full_counts[gi_profile.profile_id] += 1
        else:
            partial_demand.setdefault(gi_profile.profile_id, Counter())[compute.index] += 1
    if unknown:
        raise LayoutError("MIG profile %s not offered by %s; available: %s"
                          % (", ".join("'%s'" % name for name in sorted(set(unknown))), catalog.model,
                             ", ".join(catalog.device_names())),
                          reason="unknown_profile")

    from_scratch = _realise(catalog, [], full_counts, partial_demand, profiles_by_id)
    if from_scratch is None:
        raise _explain_misfit(catalog, _group_into_gpu_instances(full_counts, partial_demand, profiles_by_id),
                              desired)

    candidates = [keepable for keepable in
                  (_keepable(catalog, gi, full_counts, partial_demand) for gi in existing) if keepable]
    kept, created = [], from_scratch
    for size in range(len(candidates), 0, -1):
        options = []
        for combination in itertools.combinations(candidates, size):
            realised = _realise(catalog, list(combination), full_counts, partial_demand, profiles_by_id)
            if realised is not None:
                busy_kept = sum(1 for k in combination if k.existing.id in busy_gpu_instances)
                options.append((-busy_kept, len(realised), [k.existing.id for k in combination],
                                list(combination), realised))
        if options:
            kept, created = min(options, key=lambda option: option[:3])[3:]
            break

    kept_ids = set(keepable.existing.id for keepable in kept)
    create = tuple(
        PlannedGpuInstance(
            name=gi.profile.name,
            profile_id=gi.profile.profile_id,
            profile_index=gi.profile.index,
            placement=placement,
            compute_instances=tuple(
                PlannedComputeInstance(name=compute.name, profile_index=compute.index, profile_id=compute.profile_id,
                                       slice_count=compute.slice_count, placement=ci_placement)
                for compute, ci_placement in gi.compute_instances
            ),
        )
        for gi, placement in sorted(created, key=lambda item: (-item[0].profile.memory_slices, item[1]))
    )
    return GpuPlan(
        keep=tuple(gi for gi in existing if gi.id in kept_ids),
        destroy=tuple(gi for gi in existing if gi.id not in kept_ids),
        create=create,
        current_devices=current,
        desired_devices=desired,
    )
