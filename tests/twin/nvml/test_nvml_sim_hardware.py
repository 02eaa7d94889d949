"""Hardware numbers as pynvml reads them, checked against shared/reference/mig-hardware.md 1, 3, 5."""

from __future__ import annotations

import math

import pynvml
import pytest

from gpufleet_twin.nvml import hardware

# (index, id, name, slices, instances, SM, CE, DEC, ENC, JPEG, OFA, memory MiB) per hw 3.x.
A100_40GB_R450 = [
    (0, 19, "1g.5gb", 1, 7, 14, 1, 0, 0, 0, 0, 4864),
    (1, 14, "2g.10gb", 2, 3, 28, 2, 1, 0, 0, 0, 9984),
    (2, 9, "3g.20gb", 3, 2, 42, 3, 2, 0, 0, 0, 20096),
    (3, 5, "4g.20gb", 4, 1, 56, 4, 2, 0, 0, 0, 20096),
    (4, 0, "7g.40gb", 7, 1, 98, 7, 5, 0, 1, 1, 40448),
]
A100_40GB_R580 = [
    (0, 19, "1g.5gb", 1, 7, 14, 1, 0, 0, 0, 0, 4864),
    (1, 14, "2g.10gb", 2, 3, 28, 2, 1, 0, 0, 0, 9984),
    (2, 9, "3g.20gb", 3, 2, 42, 3, 2, 0, 0, 0, 20096),
    (3, 5, "4g.20gb", 4, 1, 56, 4, 2, 0, 0, 0, 20096),
    (4, 0, "7g.40gb", 7, 1, 98, 7, 5, 0, 1, 1, 40320),
    (7, 20, "1g.5gb+me", 1, 1, 14, 1, 1, 0, 1, 1, 4864),
    (9, 15, "1g.10gb", 1, 4, 14, 1, 1, 0, 0, 0, 9984),
]
A100_80GB_R535 = [
    (0, 19, "1g.10gb", 1, 7, 14, 1, 0, 0, 0, 0, 9728),
    (1, 14, "2g.20gb", 2, 3, 28, 2, 1, 0, 0, 0, 19968),
    (2, 9, "3g.40gb", 3, 2, 42, 3, 2, 0, 0, 0, 40192),
    (3, 5, "4g.40gb", 4, 1, 56, 4, 2, 0, 0, 0, 40192),
    (4, 0, "7g.80gb", 7, 1, 98, 7, 5, 0, 1, 1, 80640),
    (7, 20, "1g.10gb+me", 1, 1, 14, 1, 1, 0, 1, 1, 9728),
    (9, 15, "1g.20gb", 1, 4, 14, 1, 1, 0, 0, 0, 19968),
]
A30_R535 = [
    (0, 14, "1g.6gb", 1, 4, 14, 1, 1, 0, 0, 0, 5952),
    (1, 5, "2g.12gb", 2, 2, 28, 2, 2, 0, 0, 0, 11968),
    (3, 0, "4g.24gb", 4, 1, 56, 4, 4, 0, 1, 1, 24000),
    (7, 21, "1g.6gb+me", 1, 1, 14, 1, 1, 0, 1, 1, 5952),
    (8, 6, "2g.12gb+me", 2, 1, 28, 2, 2, 0, 1, 1, 11968),
]
H100_R550 = [
    (0, 19, "1g.10gb", 1, 7, 16, 1, 1, 0, 1, 0, 9984),
    (1, 14, "2g.20gb", 2, 3, 32, 2, 2, 0, 2, 0, 20096),
    (2, 9, "3g.40gb", 3, 2, 60, 3, 3, 0, 3, 0, 40448),
    (3, 5, "4g.40gb", 4, 1, 64, 4, 4, 0, 4, 0, 40448),
    (4, 0, "7g.80gb", 7, 1, 132, 8, 7, 0, 7, 1, 81152),
    (7, 20, "1g.10gb+me", 1, 1, 16, 1, 1, 0, 1, 1, 9984),
    (9, 15, "1g.20gb", 1, 4, 26, 1, 1, 0, 1, 0, 20096),
]
H200_R550 = [
    (0, 19, "1g.18gb", 1, 7, 16, 1, 1, 0, 1, 0, 16384),
    (1, 14, "2g.35gb", 2, 3, 32, 2, 2, 0, 2, 0, 33024),
    (2, 9, "3g.71gb", 3, 2, 60, 3, 3, 0, 3, 0, 71168),
    (3, 5, "4g.71gb", 4, 1, 64, 4, 4, 0, 4, 0, 71168),
    (4, 0, "7g.141gb", 7, 1, 132, 8, 7, 0, 7, 1, 143104),
    (7, 20, "1g.18gb+me", 1, 1, 16, 1, 1, 0, 1, 1, 16384),
    (9, 15, "1g.35gb", 1, 4, 26, 1, 1, 0, 1, 0, 33024),
]


def _profiles(nvml, gpu, version):
    rows = []
    for index in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
        try:
            info = nvml.nvmlDeviceGetGpuInstanceProfileInfo(gpu, index, version=version)
        except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_InvalidArgument):
            continue
        assert info.isP2pSupported == 0
        # pynvml's V structs decode char fields on access, so `name` arrives as str.
        name = info.name.removeprefix("MIG ") if version == 2 else None
        rows.append(
            (
                index,
                info.id,
                name,
                info.sliceCount,
                info.instanceCount,
                info.multiprocessorCount,
                info.copyEngineCount,
                info.decoderCount,
                info.encoderCount,
                info.jpegCount,
                info.ofaCount,
                info.memorySizeMB,
            )
        )
    return rows


@pytest.mark.parametrize(
    "model, driver, expected",
    [
        ("A100-SXM4-40GB", "580.126.09", A100_40GB_R580),
        ("A100-SXM4-80GB", "535.104.05", A100_80GB_R535),
        ("A30-24GB", "535.104.05", A30_R535),
        ("H100-SXM5-80GB", "550.54.15", H100_R550),
        ("H200-141GB", "550.90.07", H200_R550),
    ],
)
def test_profile_tables_match_the_reference(make_node, nvml_on, model, driver, expected):
    nvml = nvml_on(make_node([{"model": model, "mig_mode": "enabled"}], driver_version=driver))
    assert _profiles(nvml, nvml.nvmlDeviceGetHandleByIndex(0), version=2) == expected


def test_a100_r450_profiles_are_set_b_without_me_or_double_1g(a100_seed_node, nvml_on):
    nvml = nvml_on(a100_seed_node)
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    rows = _profiles(nvml, gpu, version=1)
    assert [row[:2] + row[3:] for row in rows] == [row[:2] + row[3:] for row in A100_40GB_R450]
    # R450's nvml.h (go-nvml 695db45) ends the enum at 7_SLICE (COUNT 0x5): later indices answer
    # INVALID_ARGUMENT.
    for index in (pynvml.NVML_GPU_INSTANCE_PROFILE_8_SLICE, pynvml.NVML_GPU_INSTANCE_PROFILE_6_SLICE,
                  pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1):
        with pytest.raises(pynvml.NVMLError_InvalidArgument):
            nvml.nvmlDeviceGetGpuInstanceProfileInfo(gpu, index, version=1)


def test_known_but_absent_profile_index_is_not_supported(make_node, nvml_on):
    """R470 knows 6_SLICE (15056a1, COUNT 0x8); an A100 has no such profile."""
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}], driver_version="470.57.02"))
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetGpuInstanceProfileInfo(
            nvml.nvmlDeviceGetHandleByIndex(0), pynvml.NVML_GPU_INSTANCE_PROFILE_6_SLICE, version=1)


@pytest.mark.parametrize(
    "driver, has_me, has_double_1g",
    [("450.80.02", False, False), ("470.57.02", True, False), ("515.86.01", True, False), ("525.85.12", True, True)],
)
def test_profile_availability_by_branch(make_node, nvml_on, driver, has_me, has_double_1g):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}], driver_version=driver))
    ids = {row[1] for row in _profiles(nvml, nvml.nvmlDeviceGetHandleByIndex(0), version=1)}
    assert (20 in ids, 15 in ids) == (has_me, has_double_1g)


def test_a30_2g_me_arrives_with_r525(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A30-24GB", "mig_mode": "enabled"}], driver_version="470.57.02"))
    ids = {row[1] for row in _profiles(nvml, nvml.nvmlDeviceGetHandleByIndex(0), version=1)}
    assert ids == {14, 21, 5, 0}


@pytest.mark.parametrize(
    "model, driver, name, total_mib, pci_id, capability",
    [
        ("A100-SXM4-40GB", "450.80.02", "A100-SXM4-40GB", 40537, 0x20B010DE, (8, 0)),
        ("A100-SXM4-40GB", "460.91.03", "A100-SXM4-40GB", 40536, 0x20B010DE, (8, 0)),
        ("A100-SXM4-40GB", "470.57.02", "NVIDIA A100-SXM4-40GB", 40536, 0x20B010DE, (8, 0)),
        ("A100-SXM4-40GB", "510.47.03", "NVIDIA A100-SXM4-40GB", 40960, 0x20B010DE, (8, 0)),
        ("A100-SXM4-80GB", "550.54.15", "NVIDIA A100-SXM4-80GB", 81920, 0x20B210DE, (8, 0)),
        ("A30-24GB", "550.54.15", "NVIDIA A30", 24576, 0x20B710DE, (8, 0)),
        ("H100-SXM5-80GB", "550.54.15", "NVIDIA H100 80GB HBM3", 81559, 0x233010DE, (9, 0)),
        ("H200-141GB", "550.90.07", "NVIDIA H200", 143771, 0x233510DE, (9, 0)),
        ("Tesla-T4", "550.54.15", "Tesla T4", 15360, 0x1EB810DE, (7, 5)),
    ],
)
def test_device_facts(make_node, nvml_on, model, driver, name, total_mib, pci_id, capability):
    nvml = nvml_on(make_node([{"model": model}], driver_version=driver))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetName(gpu) == name
    assert nvml.nvmlDeviceGetMemoryInfo(gpu).total == total_mib * 1024 * 1024
    assert nvml.nvmlDeviceGetPciInfo(gpu).pciDeviceId == pci_id
    assert nvml.nvmlDeviceGetCudaComputeCapability(gpu) == capability


@pytest.mark.parametrize(
    "driver, cuda, nvml_version",
    [
        ("450.80.02", 11000, "11.450.80.02"),
        ("460.91.03", 11020, "11.460.91.03"),
        ("470.57.02", 11040, "11.470.57.02"),
        ("515.86.01", 11070, "11.515.86.01"),
        ("550.54.15", 12040, "12.550.54.15"),
        ("560.35.03", 12060, "12.560.35.03"),
        ("580.65.06", 13000, "13.580.65.06"),
    ],
)
def test_driver_cuda_and_nvml_versions(make_node, nvml_on, driver, cuda, nvml_version):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB"}], driver_version=driver))
    assert nvml.nvmlSystemGetDriverVersion() == driver
    assert nvml.nvmlSystemGetCudaDriverVersion() == cuda
    assert nvml.nvmlSystemGetCudaDriverVersion_v2() == cuda
    assert nvml.nvmlSystemGetNVMLVersion() == nvml_version


def test_cuda_version_can_be_set_per_node(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB"}], driver_version="550.54.15", cuda_version="12.2"))
    assert nvml.nvmlSystemGetCudaDriverVersion() == 12020
    assert nvml.nvmlSystemGetNVMLVersion() == "12.550.54.15"


def _go_nvlib_profile_gb(memory_mib: int, total_mib: int) -> int:
    """go-nvlib getMigMemorySizeGB with Go's math.Round (half away from zero), hw 11."""
    fraction = math.ceil(memory_mib * 8 / total_mib) / 8
    return math.floor(fraction * math.ceil(total_mib / 1024) + 0.5)


def _mig_models_per_driver():
    drivers = ["450.80.02", "470.57.02", "515.86.01", "535.104.05", "550.90.07", "580.65.06"]
    for model in hardware.known_models():
        for driver in drivers:
            gpu = hardware.resolve_model(model, hardware.load_driver(driver))
            if gpu.mig is not None:
                yield pytest.param(gpu, id=f"{model}-{driver}")


@pytest.mark.parametrize("gpu", list(_mig_models_per_driver()))
def test_profile_names_agree_with_the_memory_go_nvlib_sees(gpu):
    """The name table and the memory table must tell the same story (what the device plugin derives)."""
    for profile in gpu.mig.gi_profiles:
        derived = _go_nvlib_profile_gb(profile.memory_mib, gpu.memory_total_mib)
        assert profile.name.split("+")[0] == f"{profile.name[0]}g.{derived}gb", profile


def test_a30_h100_h200_below_minimum_driver_have_no_mig(make_node, nvml_on):
    nvml = nvml_on(
        make_node(
            [{"model": "A30-24GB"}, {"model": "H100-SXM5-80GB"}, {"model": "H200-141GB"}, {"model": "A100-SXM4-40GB"}],
            driver_version="460.32.03",
        )
    )
    for index in range(3):
        gpu = nvml.nvmlDeviceGetHandleByIndex(index)
        with pytest.raises(pynvml.NVMLError_NotSupported):
            nvml.nvmlDeviceGetMigMode(gpu)
        assert nvml.nvmlDeviceGetMaxMigDeviceCount(gpu) == 0
    assert nvml.nvmlDeviceGetMigMode(nvml.nvmlDeviceGetHandleByIndex(3)) == [0, 0]


def test_old_450_51_driver_is_representable_without_mig(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB"}], driver_version="450.51.06"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlSystemGetDriverVersion() == "450.51.06"
    assert nvml.nvmlDeviceGetName(gpu) == "A100-SXM4-40GB"
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceSetMigMode(gpu, 1)


def test_compute_instance_profiles_follow_the_2c_rule(make_node, nvml_on):
    """hw 5: CI profiles per GI (1c/2c/3c/4c/full), counts, SMs, placements, shared engines."""
    # ...ProfileInfoByIdV: R580 (go-nvml 9da9e13).
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}], driver_version="580.65.06"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    expected = {
        19: [(0, 1, 1, 14, [(0, 1)])],
        14: [(0, 1, 2, 14, [(0, 1), (1, 1)]), (1, 2, 1, 28, [(0, 2)])],
        9: [(0, 1, 3, 14, [(0, 1), (1, 1), (2, 1)]), (1, 2, 1, 28, [(0, 2)]), (2, 3, 1, 42, [(0, 3)])],
        5: [(0, 1, 4, 14, [(0, 1), (1, 1), (2, 1), (3, 1)]), (1, 2, 2, 28, [(0, 2), (2, 2)]), (3, 4, 1, 56, [(0, 4)])],
        0: [
            (0, 1, 7, 14, [(i, 1) for i in range(7)]),
            (1, 2, 3, 28, [(0, 2), (2, 2), (4, 2)]),
            (2, 3, 2, 42, [(0, 3), (4, 3)]),
            (3, 4, 1, 56, [(0, 4)]),
            (4, 7, 1, 98, [(0, 7)]),
        ],
    }
    for gi_profile, ci_rows in expected.items():
        gi = nvml.nvmlDeviceCreateGpuInstance(gpu, gi_profile)
        gi_info = nvml.nvmlDeviceGetGpuInstanceProfileInfoById(gpu, gi_profile)
        found = []
        for ci_index in range(pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
            try:
                ci = nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(
                    gi, ci_index, pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
                )
            except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_InvalidArgument):
                continue  # R580 knows CI indices 0..7 (9da9e13 COUNT 0x8); pynvml's COUNT is 9
            assert (ci.sharedCopyEngineCount, ci.sharedDecoderCount) == (gi_info.copyEngineCount, gi_info.decoderCount)
            array = (pynvml.c_nvmlComputeInstancePlacement_t * ci.instanceCount)()
            count = pynvml.c_uint()
            nvml.nvmlGpuInstanceGetComputeInstancePossiblePlacements(gi, ci.id, array, pynvml.byref(count))
            placements = [(array[i].start, array[i].size) for i in range(count.value)]
            found.append((ci.id, ci.sliceCount, ci.instanceCount, ci.multiprocessorCount, placements))
        assert found == ci_rows, gi_profile
        nvml.nvmlGpuInstanceDestroy(gi)


def test_compute_instance_profile_names_and_enum_limits(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}]))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    gi = nvml.nvmlDeviceCreateGpuInstance(gpu, 9)
    shared = pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
    assert nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, 0, shared).name == "MIG 1c.3g.20gb"
    assert nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, 2, shared).name == "MIG 3g.20gb"
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE_REV1, shared)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT, shared)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, 0, 1)


def test_h200_on_580_answers_like_the_probed_device(make_node, nvml_on):
    """Values an H200 on 580.159.04 returned to a read-only NVML probe (MIG disabled)."""
    nvml = nvml_on(make_node([{"model": "H200-141GB"}], driver_version="580.159.04"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    memory = {row[1]: row[11] for row in _profiles(nvml, gpu, version=2)}
    assert memory == {19: 16384, 14: 33280, 9: 71424, 5: 71424, 0: 143360, 20: 16384, 15: 33280}
    v1 = nvml.nvmlDeviceGetMemoryInfo(gpu)
    v2 = nvml.nvmlDeviceGetMemoryInfo(gpu, version=pynvml.nvmlMemory_v2)
    assert (v1.total, v1.used, v1.free) == (150754820096, 644939776, 150109880320)
    assert (v2.total, v2.reserved, v2.used, v2.free) == (150754820096, 644939776, 0, 150109880320)
    assert nvml.nvmlDeviceGetPciInfo(gpu).pciSubSystemId == 0x18BF10DE
    info = nvml.nvmlDeviceGetGpuInstanceProfileInfo(gpu, pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE)
    assert (info.version, info.name) == (0, "MIG 1g.18gb")
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetGpuInstanceProfileInfo(gpu, pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE_GFX)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetGpuInstanceProfileInfo(gpu, pynvml.NVML_GPU_INSTANCE_PROFILE_2_SLICE_ALL_ME)


def test_profile_ids_the_gpu_lacks_versus_ids_out_of_range(make_node, nvml_on):
    """580.159.04: an A30 id on an H200 is NOT_FOUND / NOT_SUPPORTED / no instances; 42 is invalid."""
    nvml = nvml_on(make_node([{"model": "H200-141GB", "mig_mode": "enabled"}], driver_version="580.159.04"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    count = pynvml.c_uint()
    with pytest.raises(pynvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetGpuInstanceProfileInfoById(gpu, 21)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetGpuInstancePossiblePlacements(gpu, 21, None, pynvml.byref(count))
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, 21)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceCreateGpuInstance(gpu, 21)
    instances = (pynvml.c_nvmlGpuInstance_t * 4)()
    nvml.nvmlDeviceGetGpuInstances(gpu, 21, instances, pynvml.byref(count))
    assert count.value == 0
    for call in (
        nvml.nvmlDeviceGetGpuInstanceProfileInfoById,
        nvml.nvmlDeviceGetGpuInstanceRemainingCapacity,
        nvml.nvmlDeviceCreateGpuInstance,
    ):
        with pytest.raises(pynvml.NVMLError_InvalidArgument):
            call(gpu, 42)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetGpuInstances(gpu, 42, instances, pynvml.byref(count))
