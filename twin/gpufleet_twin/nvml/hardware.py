"""Hardware tables of the simulated GPUs, resolved for one driver version.

The numbers live in ``data/*.yaml`` (one file per GPU model, plus ``drivers.yaml``) so they
can be checked line by line against ``shared/reference/mig-hardware.md``; this module only
reads them and derives what the reference states as rules (compute-instance profiles,
driver-branch availability).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"

# NVML_COMPUTE_INSTANCE_PROFILE_<n>_SLICE index for a compute instance of n slices (hw 2).
CI_PROFILE_INDEX_BY_SLICES = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4, 8: 5, 6: 6}
# NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE_REV1 (0x7, nvml.h from 399f8e0 / R525): the compute
# instance `nvidia-smi mig -cgi 15 -C` creates in Hopper's double-memory 1g GPU instances.
CI_PROFILE_1_SLICE_REV1 = 7
CI_ENGINE_PROFILE_SHARED = 0


class UnknownModelError(ValueError):
    pass


def parse_driver_version(version: str) -> tuple[int, ...]:
    """'450.80.02' -> (450, 80, 2); raises ValueError on anything else."""
    parts = str(version).strip().split(".")
    if len(parts) < 2 or not all(part.isdigit() for part in parts):
        raise ValueError(f"not a driver version: {version!r}")
    return tuple(int(part) for part in parts)


def _value_for_branch(table: dict[int, Any], branch: int) -> Any:
    """Value of the greatest key <= branch; tables give a value 'from that branch on'."""
    keys = sorted(table)
    chosen = keys[0]
    for key in keys:
        if key <= branch:
            chosen = key
    return table[chosen]


# Every simulated NVML process loads these tables once; libyaml's loader (when PyYAML has it) parses them about ten
# times faster than the pure-Python one, which cost a tenth of a second per module run.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)  # noqa: S506 - a safe loader


@functools.lru_cache(maxsize=None)
def _driver_table() -> dict[str, Any]:
    return _load_yaml(DATA_DIR / "drivers.yaml")


@dataclass(frozen=True)
class DriverInfo:
    version: str
    branch: int
    cuda_version: int

    def has(self, feature: str) -> bool:
        return self.branch >= _driver_table()["features"][feature]

    @property
    def nvml_version(self) -> str:
        # nvidia-smi/NVML print "<CUDA major>.<driver version>", e.g. 11.450.80.02 (hw 8).
        return f"{self.cuda_version // 1000}.{self.version}"

    @property
    def gi_profile_enum_count(self) -> int:
        return _value_for_branch(_driver_table()["gi_profile_enum_count"], self.branch)

    @property
    def ci_profile_enum_count(self) -> int:
        return _value_for_branch(_driver_table()["ci_profile_enum_count"], self.branch)

    def exports(self, symbol: str) -> bool:
        since = _driver_table()["symbols_since"].get(symbol)
        return since is None or self.branch >= since


def load_driver(version: str, cuda_version: int | None = None) -> DriverInfo:
    parsed = parse_driver_version(version)
    branch = parsed[0]
    if cuda_version is None:
        cuda_version = _value_for_branch(_driver_table()["cuda_driver_version"], branch)
    return DriverInfo(version=str(version), branch=branch, cuda_version=int(cuda_version))


def version_at_least(version: str, minimum: str) -> bool:
    return parse_driver_version(version) >= parse_driver_version(minimum)


@dataclass(frozen=True)
class GpuInstanceProfile:
    index: int
    id: int
    name: str
    slices: int
    instance_count: int
    multiprocessors: int
    copy_engines: int
    decoders: int
    encoders: int
    jpegs: int
    ofas: int
    placements: tuple[tuple[int, int], ...]
    auto_order: tuple[int, ...]
    memory_mib: int
    media_extensions: bool
    # The GI also offers CI profile 1_SLICE_REV1 beside 1_SLICE, and `-C` creates that one.
    full_ci_rev1: bool = False

    @property
    def placement_size(self) -> int:
        return self.placements[0][1]


@dataclass(frozen=True)
class ComputeInstanceProfile:
    index: int
    slices: int
    instance_count: int
    multiprocessors: int | None  # None: no capture shows it (the library reports 0)
    name: str
    placements: tuple[tuple[int, int], ...]

    @property
    def id(self) -> int:
        # hw 2: the ids nvidia-smi -lcip prints equal the CI index constants.
        return self.index


@dataclass(frozen=True)
class MigCapability:
    memory_slices: int
    compute_slices: int
    max_mig_devices: int
    gi_profiles: tuple[GpuInstanceProfile, ...]
    ci_multiprocessors: dict[int, int]
    four_and_three_slice_coexist: bool
    gi_profile_enum_count: int
    ci_profile_enum_count: int = 8

    def profile_by_id(self, profile_id: int) -> GpuInstanceProfile | None:
        return next((p for p in self.gi_profiles if p.id == profile_id), None)

    def profile_by_index(self, index: int) -> GpuInstanceProfile | None:
        return next((p for p in self.gi_profiles if p.index == index), None)

    def profile_by_name(self, name: str) -> GpuInstanceProfile | None:
        wanted = name.strip()
        if wanted.upper().startswith("MIG "):
            wanted = wanted[4:].strip()
        return next((p for p in self.gi_profiles if p.name == wanted), None)

    def ci_profiles(self, gi_profile: GpuInstanceProfile) -> tuple[ComputeInstanceProfile, ...]:
        return compute_instance_profiles(gi_profile, self.ci_multiprocessors, self.ci_profile_enum_count)


def compute_instance_profiles(
    gi_profile: GpuInstanceProfile, ci_multiprocessors: dict[int, int], ci_profile_enum_count: int = 8
) -> tuple[ComputeInstanceProfile, ...]:
    """CI profiles a GI offers (hw 5).

    A partial CI of c slices exists in a g-slice GI only when 2c <= g + 1 (go-nvlib's rule);
    the full-size CI always exists and takes the GI's name and SMs.  CI placements count
    compute slices: 1-slice CIs at every slot, 2-slice on even starts, 3/4-slice on starts
    0 and 4 [choice for 3c in a 7g GI: 0:3 and 4:3, hw 14 leaves it open].

    A GI marked ``full_ci_rev1`` (Hopper's double-memory 1g) offers two full-size CIs: index 0
    and index 7 (1_SLICE_REV1), the one ``-C`` creates.  Index 7 gets the GI's SMs [infer: a
    full CI has its GI's SMs]; the SM count of index 0 there is unknown (None).
    """
    gi_slices = gi_profile.slices
    profiles = []
    for ci_slices, index in sorted(CI_PROFILE_INDEX_BY_SLICES.items()):
        full = ci_slices == gi_slices
        if not full and not (ci_slices < gi_slices and 2 * ci_slices <= gi_slices + 1):
            continue
        if full:
            placements: tuple[tuple[int, int], ...] = ((0, gi_slices),)
            name = gi_profile.name
            multiprocessors: int | None = gi_profile.multiprocessors
            if gi_profile.full_ci_rev1 and ci_profile_enum_count > CI_PROFILE_1_SLICE_REV1:
                multiprocessors = None
        else:
            step = 1 if ci_slices == 1 else 2 if ci_slices == 2 else 4
            placements = tuple(
                (start, ci_slices) for start in range(0, gi_slices, step) if start + ci_slices <= gi_slices
            )
            name = f"{ci_slices}c.{gi_profile.name}"
            multiprocessors = ci_multiprocessors[ci_slices]
        profiles.append(
            ComputeInstanceProfile(
                index=index,
                slices=ci_slices,
                instance_count=len(placements),
                multiprocessors=multiprocessors,
                name=name,
                placements=placements,
            )
        )
        if full and gi_profile.full_ci_rev1 and ci_profile_enum_count > CI_PROFILE_1_SLICE_REV1:
            profiles.append(_rev1_ci_profile(gi_profile))
    return tuple(profiles)


def _rev1_ci_profile(gi_profile: GpuInstanceProfile) -> ComputeInstanceProfile:
    return ComputeInstanceProfile(
        index=CI_PROFILE_1_SLICE_REV1,
        slices=gi_profile.slices,
        instance_count=1,
        multiprocessors=gi_profile.multiprocessors,
        name=gi_profile.name,
        placements=((0, gi_profile.slices),),
    )


def default_ci_profile(gi_profile: GpuInstanceProfile) -> ComputeInstanceProfile:
    """The CI spanning the whole GI: what `-cgi ... -C` and `-cci` without an id create.

    Hopper's double-memory 1g GIs get 1_SLICE_REV1: "Successfully created compute instance ID  0
    on GPU  3 GPU instance ID  5 using profile MIG 1g.20gb (ID  7)" (public H100 capture).
    """
    if gi_profile.full_ci_rev1:
        return _rev1_ci_profile(gi_profile)
    return ComputeInstanceProfile(
        index=CI_PROFILE_INDEX_BY_SLICES[gi_profile.slices],
        slices=gi_profile.slices,
        instance_count=1,
        multiprocessors=gi_profile.multiprocessors,
        name=gi_profile.name,
        placements=((0, gi_profile.slices),),
    )


@dataclass(frozen=True)
class GpuModel:
    """One GPU model as a given driver presents it."""

    model: str
    nvml_name: str
    pci_device_id: int
    compute_capability: tuple[int, int]
    architecture: str
    memory_total_mib: int
    pci_subsystem_id: int
    # Memory the driver keeps on an idle GPU: v1 counts it in `used`, v2 reports it as `reserved`.
    reserved_memory_bytes: int
    mig_hardware: bool
    min_mig_driver: str | None
    # None when the GPU has no MIG or the driver is older than the model's MIG minimum.
    mig: MigCapability | None

    @property
    def resets_to_change_mig_mode(self) -> bool:
        return self.architecture == "ampere"

    @property
    def mig_mode_survives_reboot(self) -> bool:
        return self.architecture == "ampere"


def _parse_placements(text: str) -> tuple[tuple[int, int], ...]:
    pairs = []
    for token in text.split():
        start, size = token.split(":")
        pairs.append((int(start), int(size)))
    return tuple(pairs)


@functools.lru_cache(maxsize=None)
def _model_files() -> dict[str, dict[str, Any]]:
    models: dict[str, dict[str, Any]] = {}
    for path in sorted(DATA_DIR.glob("*.yaml")):
        if path.name == "drivers.yaml":
            continue
        raw = _load_yaml(path)
        for name in [raw["model"], *raw.get("aliases", [])]:
            models[name.lower()] = raw
    return models


def known_models() -> list[str]:
    return sorted({raw["model"] for raw in _model_files().values()})


def canonical_model_name(model: str) -> str:
    raw = _model_files().get(str(model).lower())
    if raw is None:
        raise UnknownModelError(f"unknown GPU model {model!r}; known: {', '.join(known_models())}")
    return raw["model"]


def resolve_model(model: str, driver: DriverInfo) -> GpuModel:
    raw = _model_files().get(str(model).lower())
    if raw is None:
        raise UnknownModelError(f"unknown GPU model {model!r}; known: {', '.join(known_models())}")
    name = raw["nvml_name"]
    if not driver.has("nvidia_name_prefix"):
        name = raw.get("legacy_nvml_name", name.removeprefix("NVIDIA "))
    mig_raw = raw.get("mig")
    mig = None
    min_driver = mig_raw["min_driver"] if mig_raw else None
    if mig_raw and version_at_least(driver.version, min_driver):
        mig = _resolve_mig(mig_raw, driver)
    return GpuModel(
        model=raw["model"],
        nvml_name=name,
        pci_device_id=int(raw["pci_device_id"]),
        compute_capability=tuple(raw["compute_capability"]),
        architecture=raw["architecture"],
        memory_total_mib=_value_for_branch(raw["memory_total_mib"], driver.branch),
        pci_subsystem_id=int(raw.get("pci_subsystem_id", 0)),
        reserved_memory_bytes=int(raw.get("reserved_memory_bytes", 0)),
        mig_hardware=mig_raw is not None,
        min_mig_driver=min_driver,
        mig=mig,
    )


def _resolve_mig(mig_raw: dict[str, Any], driver: DriverInfo) -> MigCapability:
    profiles = []
    for row in mig_raw["gpu_instance_profiles"]:
        if driver.branch < row.get("since", 0):
            continue
        profiles.append(
            GpuInstanceProfile(
                index=row["index"],
                id=row["id"],
                name=row["name"],
                slices=row["slices"],
                instance_count=row["instances"],
                multiprocessors=row["sm"],
                copy_engines=row["ce"],
                decoders=row["dec"],
                encoders=row["enc"],
                jpegs=row["jpeg"],
                ofas=row["ofa"],
                placements=_parse_placements(row["placements"]),
                auto_order=tuple(int(start) for start in str(row["auto_order"]).split()),
                memory_mib=_value_for_branch(row["memory_mib"], driver.branch),
                media_extensions=bool(row.get("media_extensions", False)),
                full_ci_rev1=bool(row.get("full_ci_rev1", False)),
            )
        )
    return MigCapability(
        memory_slices=mig_raw["memory_slices"],
        compute_slices=mig_raw["compute_slices"],
        max_mig_devices=mig_raw["max_mig_devices"],
        gi_profiles=tuple(profiles),
        ci_multiprocessors=dict(mig_raw["ci_multiprocessors"]),
        four_and_three_slice_coexist=driver.has("four_and_three_slice_coexist"),
        gi_profile_enum_count=driver.gi_profile_enum_count,
        ci_profile_enum_count=driver.ci_profile_enum_count,
    )
