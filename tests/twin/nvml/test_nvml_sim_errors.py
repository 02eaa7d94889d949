"""Error codes, driver states and fault injection, seen through pynvml's exception classes."""

from __future__ import annotations

import pynvml
import pytest

from gpufleet_twin import nvml as sim


def test_error_strings_are_the_drivers(make_node, nvml_on):
    """As nvmlErrorString answered on 580.159.04; 19 and 23 are missing from pynvml's own table."""
    nvml_on(make_node([{"model": "A100-SXM4-40GB"}]))
    assert pynvml.nvmlErrorString(pynvml.NVML_ERROR_IN_USE) == "In use by another client"
    assert pynvml.nvmlErrorString(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES) == "Insufficient Resources"
    assert pynvml.nvmlErrorString(pynvml.NVML_ERROR_RESET_REQUIRED) == "GPU requires reset"
    assert pynvml.nvmlErrorString(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH) == "Argument version mismatch"
    assert pynvml.nvmlErrorString(pynvml.NVML_ERROR_UNKNOWN) == "Unknown Error"


def test_no_driver_and_unloaded_driver_fail_init(make_node, nvml_on):
    for path in (
        make_node([{"model": "A100-SXM4-40GB"}], driver_version=None),
        make_node([{"model": "A100-SXM4-40GB"}], driver_loaded=False),
    ):
        nvml = nvml_on(path, init=False)
        with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
            nvml.nvmlInit()
        with pytest.raises(pynvml.NVMLError_Uninitialized):
            nvml.nvmlDeviceGetCount()


def test_missing_library_fails_init_with_library_not_found(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB"}], nvml_library=False), init=False)
    with pytest.raises(pynvml.NVMLError_LibraryNotFound):
        nvml.nvmlInit()


def test_calls_before_init_and_after_shutdown_are_uninitialized(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB"}]), init=False)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    nvml.nvmlInit()
    nvml.nvmlShutdown()
    assert nvml.nvmlDeviceGetCount() == 1
    nvml.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()


@pytest.mark.parametrize(
    "driver, call",
    [
        (
            "450.80.02",
            lambda n, gpu: n.nvmlDeviceCreateGpuInstanceWithPlacement(
                gpu, 19, pynvml.byref(pynvml.c_nvmlGpuInstancePlacement_t(0, 1))
            ),
        ),
        (
            "460.91.03",
            lambda n, gpu: n.nvmlDeviceGetGpuInstancePossiblePlacements(gpu, 19, None, pynvml.byref(pynvml.c_uint())),
        ),
        ("470.57.02", lambda n, gpu: n.nvmlDeviceGetGpuInstanceProfileInfo(gpu, 0)),
        ("470.57.02", lambda n, gpu: n.nvmlDeviceGetMemoryInfo(gpu, version=pynvml.nvmlMemory_v2)),
    ],
)
def test_older_drivers_lack_newer_symbols(make_node, nvml_on, driver, call):
    """hw 12: WithPlacement from R460, PossiblePlacements_v2 from R470, the V structs and Memory v2 from R510."""
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}], driver_version=driver))
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        call(nvml, nvml.nvmlDeviceGetHandleByIndex(0))


def test_invalid_gpu_index_and_handles(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB"}]))
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetHandleByIndex(3)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetName(pynvml.c_nvmlDevice_t())
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceSetMigMode(nvml.nvmlDeviceGetHandleByIndex(0), 2)


def test_fault_once_then_the_call_works(make_node, nvml_on):
    path = make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}])
    sim.inject_fault(path, "nvmlDeviceCreateGpuInstance", "INSUFFICIENT_RESOURCES")
    nvml = nvml_on(path)
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        nvml.nvmlDeviceCreateGpuInstance(gpu, 19)
    nvml.nvmlDeviceCreateGpuInstance(gpu, 19)
    assert sim.node_status(path)["faults"] == []


def test_fault_n_times_by_c_symbol_and_code(make_node, nvml_on):
    path = make_node([{"model": "A100-SXM4-40GB"}])
    sim.inject_fault(path, "nvmlDeviceGetHandleByIndex_v2", 15, times=2)
    nvml = nvml_on(path)
    for _ in range(2):
        with pytest.raises(pynvml.NVMLError_GpuIsLost):
            nvml.nvmlDeviceGetHandleByIndex(0)
    nvml.nvmlDeviceGetHandleByIndex(0)


def test_fault_always_on_one_gpu_only(make_node, nvml_on):
    path = make_node([{"model": "A100-SXM4-40GB"}, {"model": "A100-SXM4-40GB"}])
    sim.inject_fault(path, "nvmlDeviceGetMigMode", "NVML_ERROR_UNKNOWN", times=None, gpu=1)
    nvml = nvml_on(path)
    for _ in range(3):
        with pytest.raises(pynvml.NVMLError_Unknown):
            nvml.nvmlDeviceGetMigMode(nvml.nvmlDeviceGetHandleByIndex(1))
    assert nvml.nvmlDeviceGetMigMode(nvml.nvmlDeviceGetHandleByIndex(0)) == [0, 0]
    sim.clear_faults(path)
    assert nvml.nvmlDeviceGetMigMode(nvml.nvmlDeviceGetHandleByIndex(1)) == [0, 0]


def test_fault_on_a_pynvml_name_covers_every_c_version(make_node, nvml_on):
    path = make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}])
    sim.inject_fault(path, "nvmlDeviceGetGpuInstanceProfileInfo", "NOT_SUPPORTED", times=2)
    sim.inject_fault(path, "nvmlInit", "DRIVER_NOT_LOADED")
    nvml = nvml_on(path, init=False)
    with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
        nvml.nvmlInit()
    nvml.nvmlInit()
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    for version in (1, 2):
        with pytest.raises(pynvml.NVMLError_NotSupported):
            nvml.nvmlDeviceGetGpuInstanceProfileInfo(gpu, 0, version=version)
    assert nvml.nvmlDeviceGetGpuInstanceProfileInfo(gpu, 0).id == 19


def test_fault_arguments_are_validated(make_node):
    path = make_node([{"model": "A100-SXM4-40GB"}])
    with pytest.raises(ValueError, match="unknown NVML call"):
        sim.inject_fault(path, "nvmlDeviceFlyToTheMoon", "UNKNOWN")
    with pytest.raises(ValueError, match="unknown NVML error"):
        sim.inject_fault(path, "nvmlInit", "BAD_LUCK")
    assert sim.resolve_call_symbols("nvmlDeviceGetMemoryInfo") == [
        "nvmlDeviceGetMemoryInfo",
        "nvmlDeviceGetMemoryInfo_v2",
    ]


def test_faults_from_the_node_spec(make_node, nvml_on):
    path = make_node(
        [{"model": "A100-SXM4-40GB"}], faults=[{"call": "nvmlDeviceGetCount", "error": "NO_PERMISSION", "times": None}]
    )
    nvml = nvml_on(path)
    with pytest.raises(pynvml.NVMLError_NoPermission):
        nvml.nvmlDeviceGetCount()
