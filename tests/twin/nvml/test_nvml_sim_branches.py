"""What each driver branch exports, with which struct layouts, and Hopper/R580 instance facts.

Sources: NVIDIA/go-nvml gen/nvml/nvml.h at 695db45 (R450), 7dce688 (R455), d6ce019 (R460),
15056a1 (R470), 522ec68/b09a8f3 (R510), 399f8e0 (R525), 62ce1e3 (R575), 9da9e13 (R580); public
nvidia-smi captures named in twin/README.md.
"""

from __future__ import annotations

import ctypes

import pynvml
import pytest

from gpufleet_twin import nvml as sim
from gpufleet_twin.nvml.library import FakeNvmlLibrary

from nvml_sim_helpers import gi_layout

# symbol -> first branch that exports it (issue 8 table, checked against the header history).
VERSIONED_SINCE = {
    "nvmlDeviceGetComputeRunningProcesses_v2": 455,
    "nvmlDeviceGetAttributes_v2": 455,
    "nvmlComputeInstanceGetInfo_v2": 460,
    "nvmlDeviceGetComputeRunningProcesses_v3": 510,
    "nvmlGpuInstanceCreateComputeInstanceWithPlacement": 525,
    "nvmlGpuInstanceGetComputeInstancePossiblePlacements": 525,
    "nvmlDeviceGetGpuInstanceProfileInfoByIdV": 580,
}
UNVERSIONED = (
    "nvmlComputeInstanceGetInfo",
    "nvmlDeviceGetComputeRunningProcesses",
    "nvmlDeviceGetGraphicsRunningProcesses",
    "nvmlDeviceGetAttributes",
)
MIB = 1 << 20


class ProcessInfoV1(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong)]


class ComputeInstanceInfoV1(ctypes.Structure):
    _fields_ = [("device", ctypes.c_void_p), ("gpuInstance", ctypes.c_void_p),
                ("id", ctypes.c_uint), ("profileId", ctypes.c_uint)]


@pytest.mark.parametrize(
    "driver", ["450.80.02", "455.23.05", "460.91.03", "470.57.02", "515.86.01", "535.104.05", "580.65.06"]
)
def test_each_branch_exports_exactly_the_table(make_node, driver):
    library = FakeNvmlLibrary(make_node([{"model": "A100-SXM4-40GB"}], driver_version=driver))
    branch = int(driver.split(".")[0])
    exported = {symbol for symbol in VERSIONED_SINCE if hasattr(library, symbol)}
    assert exported == {symbol for symbol, since in VERSIONED_SINCE.items() if branch >= since}
    assert all(hasattr(library, symbol) for symbol in UNVERSIONED)


def test_r450_pynvml_13_wrappers_find_no_versioned_symbols(make_node, nvml_on):
    """Why gpu_info failed on a real 450.80.02 node: pynvml 13 calls the _v2/_v3 names."""
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["7g.40gb"]}],
                             driver_version="450.80.02"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    for call in (nvml.nvmlDeviceGetComputeRunningProcesses_v3, nvml.nvmlDeviceGetComputeRunningProcesses_v2):
        with pytest.raises(pynvml.NVMLError_FunctionNotFound):
            call(gpu)
    gi = nvml.nvmlDeviceGetGpuInstanceById(gpu, 0)
    ci = nvml.nvmlGpuInstanceGetComputeInstanceById(gi, 0)
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        nvml.nvmlComputeInstanceGetInfo(ci)


def test_r450_unversioned_process_query_writes_the_v1_layout(make_node, nvml_on):
    path = make_node([{"model": "A100-SXM4-40GB"}], driver_version="450.80.02")
    sim.add_process(path, 0, 4242, "trainer", used_memory_mib=300)
    sim.add_process(path, 0, 4343, "eval", used_memory_mib=500)
    nvml = nvml_on(path)
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    function = pynvml._nvmlGetFunctionPointer("nvmlDeviceGetComputeRunningProcesses")
    count = ctypes.c_uint(0)
    assert function(gpu, ctypes.byref(count), None) == pynvml.NVML_ERROR_INSUFFICIENT_SIZE
    assert count.value == 2
    infos = (ProcessInfoV1 * 2)()
    assert function(gpu, ctypes.byref(count), infos) == pynvml.NVML_SUCCESS
    assert [(info.pid, info.usedGpuMemory // MIB) for info in infos] == [(4242, 300), (4343, 500)]
    # pynvml's v2 struct over the same call reads the second record from the wrong offsets.
    wrong = (pynvml.c_nvmlProcessInfo_v2_t * 2)()
    count = ctypes.c_uint(2)
    assert function(gpu, ctypes.byref(count), wrong) == pynvml.NVML_SUCCESS
    assert wrong[1].pid != 4343


def test_r450_unversioned_compute_instance_info_has_no_placement(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["3g.20gb"]}],
                             driver_version="450.80.02"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    gi = nvml.nvmlDeviceGetGpuInstanceById(gpu, 2)
    ci = nvml.nvmlGpuInstanceGetComputeInstanceById(gi, 0)
    info = ComputeInstanceInfoV1()
    function = pynvml._nvmlGetFunctionPointer("nvmlComputeInstanceGetInfo")
    assert function(ci, ctypes.byref(info)) == pynvml.NVML_SUCCESS
    assert (info.id, info.profileId) == (0, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE)
    assert ctypes.sizeof(ComputeInstanceInfoV1) < ctypes.sizeof(pynvml.c_nvmlComputeInstanceInfo_t)


def test_r455_has_the_v2_process_struct_but_not_ci_info_v2(make_node, nvml_on):
    path = make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["7g.40gb"]}],
                     driver_version="455.23.05")
    sim.add_process(path, 0, 77, "job", used_memory_mib=10, gi=0, ci=0)
    nvml = nvml_on(path)
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    [process] = nvml.nvmlDeviceGetComputeRunningProcesses_v2(gpu)
    assert (process.pid, process.gpuInstanceId, process.computeInstanceId) == (77, 0, 0)
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        nvml.nvmlDeviceGetComputeRunningProcesses_v3(gpu)


def test_graphics_process_queries_follow_the_same_branches(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB"}], driver_version="470.57.02"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetGraphicsRunningProcesses_v2(gpu) == []
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        nvml.nvmlDeviceGetGraphicsRunningProcesses_v3(gpu)


def test_profile_enums_grow_with_the_headers(make_node, nvml_on):
    """GI COUNT 0x5 (R450) .. 0xA (R525); CI COUNT 0x5 (R450) .. 0x8 (R525, 1_SLICE_REV1)."""
    nvml = nvml_on(make_node([{"model": "H100-SXM5-80GB", "mig_mode": "enabled", "mig_devices": ["1g.20gb"]}],
                             driver_version="535.104.05"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    [(gi_id, _, _, _)] = gi_layout(gpu)
    gi = nvml.nvmlDeviceGetGpuInstanceById(gpu, gi_id)
    shared = pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, 8, shared)


# ------------------------------------------------------------------ Hopper 1g double memory
@pytest.mark.parametrize("model, name, driver", [("H100-SXM5-80GB", "1g.20gb", "535.104.05"),
                                                 ("H200-141GB", "1g.35gb", "550.90.07")])
def test_double_memory_1g_offers_ci_rev1_beside_index_0(make_node, nvml_on, model, name, driver):
    nvml = nvml_on(make_node([{"model": model, "mig_mode": "enabled"}], driver_version=driver))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    gi = nvml.nvmlDeviceCreateGpuInstance(gpu, 15)
    shared = pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
    plain = nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE, shared)
    rev1 = nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(
        gi, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE_REV1, shared)
    assert (plain.id, plain.sliceCount, rev1.id, rev1.sliceCount) == (0, 1, 7, 1)
    assert rev1.multiprocessorCount == 26  # the GI's SMs [infer]
    assert plain.multiprocessorCount == 0  # no capture shows it: unknown, reported as 0
    # Both cover the GI's only compute slice: one CI in all.
    nvml.nvmlGpuInstanceCreateComputeInstance(gi, 7)
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        nvml.nvmlGpuInstanceCreateComputeInstance(gi, 0)
    mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, 0)
    assert nvml.nvmlDeviceGetName(mig).endswith(f"MIG {name}")


def test_smi_cgi_15_with_C_creates_ci_profile_7(make_node):
    from test_nvml_sim_smi import run_smi  # noqa: PLC0415 - the stand-in's runner lives there

    path = make_node([{"model": "H100-SXM5-80GB", "mig_mode": "enabled"}], driver_version="535.104.05")
    code, out = run_smi(path, "mig", "-cgi", "15", "-C")
    assert code == 0
    assert "GPU instance ID  5 " in out
    assert "using profile MIG 1g.20gb (ID  7)" in out


@pytest.mark.parametrize("model", ["H100-SXM5-80GB", "H200-141GB"])
def test_double_memory_1g_automatic_placement_follows_the_captures(make_node, nvml_on, model):
    """H100: first `-cgi 15` -> GI 5; GH200 `-cgi 15,15,15` -> GIs 5, 3, 4 (then 6:2 [infer])."""
    nvml = nvml_on(make_node([{"model": model, "mig_mode": "enabled"}], driver_version="550.90.07"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    ids = [nvml.nvmlGpuInstanceGetInfo(nvml.nvmlDeviceCreateGpuInstance(gpu, 15)).id for _ in range(4)]
    assert ids == [5, 3, 4, 6]


def test_r580_gpu_instance_ids_do_not_follow_placement(make_node, nvml_on):
    """A100-SXM4-40GB on 580.126.09: 4g at 0:4 is GI 2, 2g at 4:2 GI 3, 1g at 6:1 GI 9 (hw 4)."""
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}], driver_version="580.126.09"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    for profile_id in (5, 14, 19):
        nvml.nvmlDeviceCreateGpuInstance(gpu, profile_id)
    assert gi_layout(gpu) == [(2, 5, 0, 4), (3, 14, 4, 2), (9, 19, 6, 1)]


def test_r580_h100_cgi_9_9_numbers_gi_2_then_1(make_node, nvml_on):
    """User Guide MPS example on 580.65.06."""
    nvml = nvml_on(make_node([{"model": "H100-SXM5-80GB", "mig_mode": "enabled"}], driver_version="580.65.06"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    ids = [nvml.nvmlGpuInstanceGetInfo(nvml.nvmlDeviceCreateGpuInstance(gpu, 9)).id for _ in range(2)]
    assert ids == [2, 1]
