"""The seed document's figures (shared/seed/mig-support-in-kubernetes.txt), as today's GFD writes them.

The seed shows GFD v0.2.0 output. The expectations below are the seed's labels translated to the
current GFD (audit.md A4, A5, B): ``gpu.machine`` sanitised, the ``cuda.*-version.*``,
``gpu.replicas``, ``gpu.sharing-strategy``, ``gpu.mode``, ``mig.capable``, ``mps.capable`` and
``vgpu.present`` labels added, the per-profile ``.product/.replicas/.sharing-strategy`` labels added
in mixed, and ``mig-3g.20gb`` instead of the seed's ``mig-3g.21gb`` (GFD < 0.4.0 rounding).
``gfd.timestamp`` is checked apart (it changes every pass).
"""
from __future__ import annotations

SEED_MACHINE = "NVIDIA DGX"
SEED_GPU_UUID = "GPU-4200ccc0-2667-d4cb-9137-f932c716232a"

_DRIVER_450_80_02 = {
    "nvidia.com/cuda.driver.major": "450",
    "nvidia.com/cuda.driver.minor": "80",
    "nvidia.com/cuda.driver.rev": "02",
    "nvidia.com/cuda.runtime.major": "11",
    "nvidia.com/cuda.runtime.minor": "0",
    "nvidia.com/cuda.driver-version.major": "450",
    "nvidia.com/cuda.driver-version.minor": "80",
    "nvidia.com/cuda.driver-version.revision": "02",
    "nvidia.com/cuda.driver-version.full": "450.80.02",
    "nvidia.com/cuda.runtime-version.major": "11",
    "nvidia.com/cuda.runtime-version.minor": "0",
    "nvidia.com/cuda.runtime-version.full": "11.0",
}

# The seed's "none" listing (before and after enabling MIG).
NONE_LABELS = {
    **_DRIVER_450_80_02,
    "nvidia.com/gpu.compute.major": "8",
    "nvidia.com/gpu.compute.minor": "0",
    "nvidia.com/gpu.count": "1",
    "nvidia.com/gpu.family": "ampere",
    "nvidia.com/gpu.machine": "NVIDIA-DGX",
    "nvidia.com/gpu.memory": "40537",
    "nvidia.com/gpu.product": "A100-SXM4-40GB",
    # current GFD only:
    "nvidia.com/gpu.replicas": "1",
    "nvidia.com/gpu.sharing-strategy": "none",
    "nvidia.com/gpu.mode": "compute",
    "nvidia.com/mig.capable": "true",
    "nvidia.com/mps.capable": "false",
    "nvidia.com/vgpu.present": "false",
}
# With MIG enabled under none, today's GFD writes replicas 0 (audit B): the seed's "labels haven't
# changed" holds for every other label.
NONE_LABELS_MIG_ENABLED = {**NONE_LABELS, "nvidia.com/gpu.replicas": "0"}

SINGLE_LABELS = {
    **NONE_LABELS,
    "nvidia.com/gpu.count": "7",
    "nvidia.com/gpu.engines.copy": "1",
    "nvidia.com/gpu.engines.decoder": "0",
    "nvidia.com/gpu.engines.encoder": "0",
    "nvidia.com/gpu.engines.jpeg": "0",
    "nvidia.com/gpu.engines.ofa": "0",
    "nvidia.com/gpu.memory": "4864",
    "nvidia.com/gpu.multiprocessors": "14",
    "nvidia.com/gpu.product": "A100-SXM4-40GB-MIG-1g.5gb",
    "nvidia.com/gpu.slices.ci": "1",
    "nvidia.com/gpu.slices.gi": "1",
    "nvidia.com/mig.strategy": "single",
}


def _mig_profile_labels(profile: str, memory: int, sms: int, slices: int, copy: int, decoders: int) -> dict[str, str]:
    prefix = f"nvidia.com/mig-{profile}"
    return {
        f"{prefix}.count": "1",
        f"{prefix}.engines.copy": str(copy),
        f"{prefix}.engines.decoder": str(decoders),
        f"{prefix}.engines.encoder": "0",
        f"{prefix}.engines.jpeg": "0",
        f"{prefix}.engines.ofa": "0",
        f"{prefix}.memory": str(memory),
        f"{prefix}.multiprocessors": str(sms),
        f"{prefix}.slices.ci": str(slices),
        f"{prefix}.slices.gi": str(slices),
        # current GFD only:
        f"{prefix}.product": f"A100-SXM4-40GB-MIG-{profile}",
        f"{prefix}.replicas": "1",
        f"{prefix}.sharing-strategy": "none",
    }


MIXED_LABELS = {
    **NONE_LABELS_MIG_ENABLED,
    **_mig_profile_labels("1g.5gb", 4864, 14, 1, 1, 0),
    **_mig_profile_labels("2g.10gb", 9984, 28, 2, 2, 1),
    **_mig_profile_labels("3g.20gb", 20096, 42, 3, 3, 2),
    "nvidia.com/mig.strategy": "mixed",
}

# nvidia-smi -L lines of the seed (R450 MIG UUIDs MIG-GPU-<uuid>/<gi>/<ci>).
SEED_GPU_LINE = f"GPU 0: A100-SXM4-40GB (UUID: {SEED_GPU_UUID})"


def mig_line(profile: str, gi: int, device: int = 0) -> str:
    return f"  MIG {profile:<11} Device {device:>2}: (UUID: MIG-{SEED_GPU_UUID}/{gi}/0)"
