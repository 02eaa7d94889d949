"""pynvml sequences the simulator tests share (imported by the test modules)."""

from __future__ import annotations

from typing import Any

import pynvml

SEED_GPU_UUID = "GPU-4200ccc0-2667-d4cb-9137-f932c716232a"


def create_with_default_ci(handle: Any, profile_id: int) -> tuple[Any, Any]:
    """What `nvidia-smi mig -cgi <id> -C` does for one entry, through pynvml."""
    gi = pynvml.nvmlDeviceCreateGpuInstance(handle, profile_id)
    slices = None
    # The full-size CI index follows the GI's slice count (hw 2 / 5).
    info = pynvml.nvmlGpuInstanceGetInfo(gi)
    for index in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
        try:
            profile = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, index, version=1)
        except pynvml.NVMLError:
            continue
        if profile.id == info.profileId:
            slices = profile.sliceCount
            break
    ci_index = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4}[slices]
    return gi, pynvml.nvmlGpuInstanceCreateComputeInstance(gi, ci_index)


def gi_layout(handle: Any) -> list[tuple[int, int, int, int]]:
    """(GI id, profile id, placement start, size) of every GI, sorted by GI id."""
    layout = []
    for index in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
        try:
            profile = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, index, version=1)
        except pynvml.NVMLError:
            continue
        instances = (pynvml.c_nvmlGpuInstance_t * profile.instanceCount)()
        count = pynvml.c_uint()
        pynvml.nvmlDeviceGetGpuInstances(handle, profile.id, instances, pynvml.byref(count))
        for position in range(count.value):
            info = pynvml.nvmlGpuInstanceGetInfo(instances[position])
            layout.append((info.id, info.profileId, info.placement.start, info.placement.size))
    return sorted(layout)
