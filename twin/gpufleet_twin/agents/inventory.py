"""What a containerised NVML client (device plugin, GFD, a pod's nvidia-smi) sees on a node.

Read from the node's simulated NVML state through the twin's own core (``nvml.state`` and
``nvml.core.Node``), never through the product. Reading consumes no injected faults: a fault a test
injects is meant for the product's next NVML call, not for the agents polling beside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..nvml.core import Node
from ..nvml.errors import NvmlCallError
from ..nvml.state import read_state
from .naming import MigProfile, mig_profile


@dataclass(frozen=True)
class MigDevice:
    """One MIG device (a compute instance in its GPU instance), with the attributes NVML reports."""

    gpu_index: int
    mig_index: int
    gi_id: int
    ci_id: int
    uuid: str
    nvidia_smi_name: str  # what nvidia-smi -L prints: 1g.5gb, 1c.3g.20gb (driver profile name)
    profile: MigProfile  # go-nvlib's profile, what resource and label names use
    memory_mib: int
    multiprocessors: int
    gi_slices: int
    ci_slices: int
    copy_engines: int
    decoders: int
    encoders: int
    jpegs: int
    ofas: int

    def attributes(self) -> tuple[int, ...]:
        """nvmlDeviceGetAttributes as a comparable value (the single strategy compares all of it)."""
        return (
            self.multiprocessors, self.copy_engines, self.decoders, self.encoders, self.jpegs, self.ofas,
            self.gi_slices, self.ci_slices, self.memory_mib,
        )


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_total_mib: int
    compute_capability: tuple[int, int]
    mig_capable: bool
    mig_enabled: bool
    mig_devices: tuple[MigDevice, ...] = ()


@dataclass(frozen=True)
class NodeGpus:
    """The node as NVML shows it now; ``init_error`` is set when nvmlInit would fail."""

    driver_version: str | None
    cuda_driver_version: int | None
    gpus: tuple[Gpu, ...] = ()
    init_error: str | None = None
    boot_count: int = 0
    compute_pids: tuple[int, ...] = field(default_factory=tuple)

    def gpu(self, index: int) -> Gpu:
        return self.gpus[index]

    def device_by_uuid(self, uuid: str) -> tuple[Gpu, MigDevice | None] | None:
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return gpu, None
            for device in gpu.mig_devices:
                if device.uuid == uuid:
                    return gpu, device
        return None


def read_node_gpus(state_path: str | Path) -> NodeGpus:
    state = read_state(state_path)
    node = Node(state)
    pids = tuple(process["pid"] for process in state["processes"])
    try:
        driver = node.require_driver()
    except NvmlCallError as failure:
        return NodeGpus(
            driver_version=state.get("driver_version"),
            cuda_driver_version=None,
            init_error=str(failure),
            boot_count=state.get("boot_count", 0),
            compute_pids=pids,
        )
    gpus = []
    for index, raw in enumerate(node.gpus):
        model = node.model(index)
        mig_devices = []
        for mig_index, (gi, ci) in enumerate(node.mig_devices(index)):
            gi_profile = node.gi_profile_of(index, gi)
            ci_profile = node.ci_profile_of(index, gi["id"], ci)
            mig_devices.append(
                MigDevice(
                    gpu_index=index,
                    mig_index=mig_index,
                    gi_id=gi["id"],
                    ci_id=ci["id"],
                    uuid=node.mig_uuid(index, gi["id"], ci["id"]),
                    nvidia_smi_name=ci_profile.name,
                    profile=mig_profile(
                        gi_profile.index, gi_profile.slices, ci_profile.slices, gi_profile.memory_mib, model.memory_total_mib
                    ),
                    memory_mib=gi_profile.memory_mib,
                    multiprocessors=ci_profile.multiprocessors,
                    gi_slices=gi_profile.slices,
                    ci_slices=ci_profile.slices,
                    copy_engines=gi_profile.copy_engines,
                    decoders=gi_profile.decoders,
                    encoders=gi_profile.encoders,
                    jpegs=gi_profile.jpegs,
                    ofas=gi_profile.ofas,
                )
            )
        gpus.append(
            Gpu(
                index=index,
                uuid=raw["uuid"],
                name=model.nvml_name,
                memory_total_mib=model.memory_total_mib,
                compute_capability=tuple(model.compute_capability),  # type: ignore[arg-type]
                mig_capable=model.mig is not None,
                mig_enabled=node.mig_enabled(index),
                mig_devices=tuple(mig_devices),
            )
        )
    return NodeGpus(
        driver_version=driver.version,
        cuda_driver_version=driver.cuda_version,
        gpus=tuple(gpus),
        boot_count=state.get("boot_count", 0),
        compute_pids=pids,
    )
