"""MIG devices, compute instances, UUIDs and processes (hw 5, 6, 8, 10)."""

from __future__ import annotations

import re

import pynvml
import pytest

from gpufleet_twin import nvml as sim
from nvml_sim_helpers import SEED_GPU_UUID, create_with_default_ci

NEW_MIG_UUID = re.compile(r"^MIG-[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
def a100_r550(make_node):
    return make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "uuid": SEED_GPU_UUID}])


def test_mig_uuids_use_the_new_form_from_r470_and_are_stable(a100_r550, nvml_on):
    nvml = nvml_on(a100_r550)
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    gi, _ = create_with_default_ci(gpu, 9)
    first = nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, 0))
    assert NEW_MIG_UUID.match(first)
    nvml.nvmlComputeInstanceDestroy(nvml.nvmlGpuInstanceGetComputeInstanceById(gi, 0))
    nvml.nvmlGpuInstanceDestroy(gi)
    create_with_default_ci(gpu, 9)
    assert nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, 0)) == first


def test_handle_by_uuid_accepts_gpu_and_both_mig_forms_from_r470(a100_r550, nvml_on):
    nvml = nvml_on(a100_r550)
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    create_with_default_ci(gpu, 14)  # GI 5
    new_form = nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, 0))
    for text in (new_form, f"MIG-{SEED_GPU_UUID}/5/0"):
        mig = nvml.nvmlDeviceGetHandleByUUID(text)
        assert nvml.nvmlDeviceIsMigDeviceHandle(mig)
        assert (nvml.nvmlDeviceGetGpuInstanceId(mig), nvml.nvmlDeviceGetComputeInstanceId(mig)) == (5, 0)
    parent = nvml.nvmlDeviceGetHandleByUUID(SEED_GPU_UUID)
    assert not nvml.nvmlDeviceIsMigDeviceHandle(parent)
    assert nvml.nvmlDeviceGetIndex(parent) == 0
    for unknown in ("GPU-00000000-0000-0000-0000-000000000000", "MIG-00000000-0000-5000-8000-000000000000", "foo"):
        with pytest.raises(pynvml.NVMLError_NotFound):
            nvml.nvmlDeviceGetHandleByUUID(unknown)


def test_r450_has_no_mig_uuid_lookup(a100_seed_node, nvml_on):
    nvml = nvml_on(a100_seed_node)
    create_with_default_ci(nvml.nvmlDeviceGetHandleByIndex(0), 19)
    with pytest.raises(pynvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetHandleByUUID(f"MIG-{SEED_GPU_UUID}/13/0")


def test_mig_device_attributes_and_memory(a100_r550, nvml_on):
    nvml = nvml_on(a100_r550)
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    gi = nvml.nvmlDeviceCreateGpuInstance(gpu, 9)
    nvml.nvmlGpuInstanceCreateComputeInstance(gi, 0)  # 1c.3g.20gb
    mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, 0)
    attributes = nvml.nvmlDeviceGetAttributes(mig)
    assert (
        attributes.multiprocessorCount,
        attributes.sharedCopyEngineCount,
        attributes.sharedDecoderCount,
        attributes.sharedJpegCount,
        attributes.sharedOfaCount,
        attributes.gpuInstanceSliceCount,
        attributes.computeInstanceSliceCount,
        attributes.memorySizeMB,
    ) == (14, 3, 2, 0, 0, 3, 1, 19968)
    assert nvml.nvmlDeviceGetName(mig) == "NVIDIA A100-SXM4-40GB MIG 1c.3g.20gb"
    assert nvml.nvmlDeviceGetMemoryInfo(mig).total == 19968 * 1024 * 1024
    assert nvml.nvmlDeviceGetMemoryInfo(mig, version=pynvml.nvmlMemory_v2).total == 19968 * 1024 * 1024
    parent = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)
    assert nvml.nvmlDeviceGetUUID(parent) == SEED_GPU_UUID
    # As an H200 on 580.159.04 answers for a GPU handle:
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetAttributes(gpu)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetGpuInstanceId(gpu)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetComputeInstanceId(gpu)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(gpu)


def test_mig_device_indices_follow_gi_then_ci_order_with_not_found_beyond(a100_r550, nvml_on):
    nvml = nvml_on(a100_r550)
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    big = nvml.nvmlDeviceCreateGpuInstance(gpu, 9)  # GI 2
    small = nvml.nvmlDeviceCreateGpuInstance(gpu, 14)  # GI 3
    nvml.nvmlGpuInstanceCreateComputeInstance(small, 1)
    for _ in range(3):
        nvml.nvmlGpuInstanceCreateComputeInstance(big, 0)
    assert nvml.nvmlDeviceGetMaxMigDeviceCount(gpu) == 7
    ids = [
        (nvml.nvmlDeviceGetGpuInstanceId(m), nvml.nvmlDeviceGetComputeInstanceId(m))
        for m in (nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, i) for i in range(4))
    ]
    assert ids == [(2, 0), (2, 1), (2, 2), (3, 0)]
    for empty_index in (4, 7):
        with pytest.raises(pynvml.NVMLError_NotFound):
            nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, empty_index)


def test_max_mig_device_count_is_zero_with_mig_off_and_four_on_a30(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB"}, {"model": "A30-24GB", "mig_mode": "enabled"}]))
    assert nvml.nvmlDeviceGetMaxMigDeviceCount(nvml.nvmlDeviceGetHandleByIndex(0)) == 0
    assert nvml.nvmlDeviceGetMaxMigDeviceCount(nvml.nvmlDeviceGetHandleByIndex(1)) == 4


def test_compute_instance_ids_and_placements_in_creation_order(a100_r550, nvml_on):
    nvml = nvml_on(a100_r550)
    gi = nvml.nvmlDeviceCreateGpuInstance(nvml.nvmlDeviceGetHandleByIndex(0), 9)
    created = [nvml.nvmlComputeInstanceGetInfo(nvml.nvmlGpuInstanceCreateComputeInstance(gi, 0)) for _ in range(3)]
    assert [(ci.id, ci.placement.start, ci.placement.size) for ci in created] == [(0, 0, 1), (1, 1, 1), (2, 2, 1)]
    assert nvml.nvmlGpuInstanceGetInfo(created[0].gpuInstance).id == 2
    assert nvml.nvmlDeviceGetIndex(created[0].device) == 0
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        nvml.nvmlGpuInstanceCreateComputeInstance(gi, 0)
    assert nvml.nvmlGpuInstanceGetComputeInstanceRemainingCapacity(gi, 1) == 0


def test_a_2c_compute_instance_must_come_first_in_a_3g(a100_r550, nvml_on):
    """hw 4.3: a 2-slice CI in a 3g GI only fits at 0:2."""
    nvml = nvml_on(a100_r550)
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    gi = nvml.nvmlDeviceCreateGpuInstance(gpu, 9)
    nvml.nvmlGpuInstanceCreateComputeInstance(gi, 0)
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        nvml.nvmlGpuInstanceCreateComputeInstance(gi, 1)
    placement = pynvml.c_nvmlComputeInstancePlacement_t
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlGpuInstanceCreateComputeInstanceWithPlacement(gi, 1, pynvml.byref(placement(1, 2)))
    ci = nvml.nvmlGpuInstanceCreateComputeInstanceWithPlacement(gi, 0, pynvml.byref(placement(2, 1)))
    assert nvml.nvmlComputeInstanceGetInfo(ci).placement.start == 2


def test_get_compute_instances_lists_one_profile(a100_r550, nvml_on):
    nvml = nvml_on(a100_r550)
    gi = nvml.nvmlDeviceCreateGpuInstance(nvml.nvmlDeviceGetHandleByIndex(0), 0)
    nvml.nvmlGpuInstanceCreateComputeInstance(gi, 3)  # 4c
    nvml.nvmlGpuInstanceCreateComputeInstance(gi, 0)  # 1c at 4
    nvml.nvmlGpuInstanceCreateComputeInstance(gi, 0)  # 1c at 5
    array = (pynvml.c_nvmlComputeInstance_t * 7)()
    count = pynvml.c_uint()
    nvml.nvmlGpuInstanceGetComputeInstances(gi, 0, array, pynvml.byref(count))
    infos = [nvml.nvmlComputeInstanceGetInfo(array[i]) for i in range(count.value)]
    assert [(i.id, i.placement.start) for i in infos] == [(1, 4), (2, 5)]
    by_id = nvml.nvmlGpuInstanceGetComputeInstanceById(gi, 0)
    assert nvml.nvmlComputeInstanceGetInfo(by_id).profileId == 3
    with pytest.raises(pynvml.NVMLError_NotFound):
        nvml.nvmlGpuInstanceGetComputeInstanceById(gi, 5)


def test_running_processes_per_gpu_and_per_mig_device(make_node, nvml_on):
    path = make_node(
        [
            {"model": "A100-SXM4-40GB"},
            {"model": "H100-SXM5-80GB", "mig_mode": "enabled", "mig_devices": ["3g.40gb", "3g.40gb"]},
        ]
    )
    sim.add_process(path, 0, 4242, "python", 1000)
    sim.add_process(path, 1, 5000, "train", 300, gi=1, ci=0)
    sim.add_process(path, 1, 5001, "serve", 200, gi=2, ci=0)
    nvml = nvml_on(path)
    full = nvml.nvmlDeviceGetComputeRunningProcesses(nvml.nvmlDeviceGetHandleByIndex(0))
    assert [(p.pid, p.usedGpuMemory, p.gpuInstanceId, p.computeInstanceId) for p in full] == [
        (4242, 1000 * 1024 * 1024, 0xFFFFFFFF, 0xFFFFFFFF)
    ]
    mig_gpu = nvml.nvmlDeviceGetHandleByIndex(1)
    assert {p.pid for p in nvml.nvmlDeviceGetComputeRunningProcesses(mig_gpu)} == {5000, 5001}
    second = nvml.nvmlDeviceGetMigDeviceHandleByIndex(mig_gpu, 1)
    on_second = nvml.nvmlDeviceGetComputeRunningProcesses(second)
    assert [(p.pid, p.gpuInstanceId, p.computeInstanceId) for p in on_second] == [(5001, 2, 0)]
    memory = nvml.nvmlDeviceGetMemoryInfo(second)
    assert (memory.used, memory.free) == (200 * 2**20, (40448 - 200) * 2**20)
    assert nvml.nvmlSystemGetProcessName(5000) == "train"
    sim.remove_process(path, 4242)
    assert nvml.nvmlDeviceGetComputeRunningProcesses(nvml.nvmlDeviceGetHandleByIndex(0)) == []


def test_processes_must_match_the_gpu_mig_mode(make_node):
    path = make_node(
        [{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["7g.40gb"]}, {"model": "A100-SXM4-40GB"}]
    )
    with pytest.raises(sim.NodeSpecError, match="MIG device"):
        sim.add_process(path, 0, 1, "job", 10)
    with pytest.raises(sim.NodeSpecError, match="no MIG device"):
        sim.add_process(path, 0, 1, "job", 10, gi=3, ci=0)
    with pytest.raises(sim.NodeSpecError, match="MIG disabled"):
        sim.add_process(path, 1, 1, "job", 10, gi=0, ci=0)
    sim.add_process(path, 0, 1, "job", 10, gi=0, ci=0)
    with pytest.raises(sim.NodeSpecError, match="already"):
        sim.add_process(path, 1, 1, "other", 10)


def test_stale_instance_handles_are_rejected(a100_r550, nvml_on):
    nvml = nvml_on(a100_r550)
    gi = nvml.nvmlDeviceCreateGpuInstance(nvml.nvmlDeviceGetHandleByIndex(0), 19)
    nvml.nvmlGpuInstanceDestroy(gi)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlGpuInstanceGetInfo(gi)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetHandleByIndex(1)


def test_node_status_describes_the_layout(make_node):
    path = make_node(
        [{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["3g.20gb", "1g.5gb"]}],
        driver_version="450.80.02",
    )
    status = sim.node_status(path)
    gpu = status["gpus"][0]
    assert (status["cuda_version"], status["nvml_version"]) == (11000, "11.450.80.02")
    assert (gpu["name"], gpu["memory_total_mib"], gpu["mig"]) == (
        "A100-SXM4-40GB",
        40537,
        {"current": "enabled", "pending": "enabled", "supported": True},
    )
    assert [(gi["id"], gi["profile_name"], gi["placement"], gi["memory_mib"]) for gi in gpu["gpu_instances"]] == [
        (2, "3g.20gb", {"start": 4, "size": 4}, 20096),
        (7, "1g.5gb", {"start": 0, "size": 1}, 4864),
    ]
    assert gpu["gpu_instances"][1]["compute_instances"][0]["mig_uuid"] == f"MIG-{gpu['uuid']}/7/0"
    assert gpu["gpu_instances"][1]["compute_instances"][0]["mig_device_index"] == 1
