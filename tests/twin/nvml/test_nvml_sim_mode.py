"""MIG mode changes, resets, reboots and destroy rules (hw 1, 8; k8s 3.6)."""

from __future__ import annotations

import pynvml
import pytest

from gpufleet_twin import nvml as sim
from nvml_sim_helpers import create_with_default_ci

SUCCESS = pynvml.NVML_SUCCESS


def _mode_change(nvml, gpu_index=0, mode=1):
    gpu = nvml.nvmlDeviceGetHandleByIndex(gpu_index)
    status = nvml.nvmlDeviceSetMigMode(gpu, mode)
    return status, nvml.nvmlDeviceGetMigMode(gpu)


def test_ampere_enables_at_once_when_nothing_holds_the_gpu(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB"}]))
    assert _mode_change(nvml) == (SUCCESS, [1, 1])
    assert _mode_change(nvml, mode=0) == (SUCCESS, [0, 0])


@pytest.mark.parametrize("holder", ["process", "client"])
def test_ampere_stays_pending_while_the_gpu_is_held(make_node, nvml_on, holder):
    path = make_node([{"model": "A100-SXM4-40GB"}])
    if holder == "process":
        sim.add_process(path, 0, 77, "python", 100)
    else:
        sim.hold_gpu(path, 0, "nvidia-persistenced")
    nvml = nvml_on(path)
    assert _mode_change(nvml) == (pynvml.NVML_ERROR_IN_USE, [0, 1])
    # Once released, the reset applies the pending mode and leaves no instances behind.
    sim.remove_process(path, 77) if holder == "process" else sim.release_gpu(path, 0)
    sim.reset_gpu(path, 0)
    assert nvml.nvmlDeviceGetMigMode(nvml.nvmlDeviceGetHandleByIndex(0)) == [1, 1]


def test_passthrough_vm_answers_reset_required_and_stays_pending(make_node, nvml_on):
    path = make_node([{"model": "A100-SXM4-40GB"}], passthrough_vm=True)
    nvml = nvml_on(path)
    assert _mode_change(nvml) == (pynvml.NVML_ERROR_RESET_REQUIRED, [0, 1])
    with pytest.raises(sim.NvmlCallError) as refused:
        sim.reset_gpu(path, 0)
    assert refused.value.code == pynvml.NVML_ERROR_NOT_SUPPORTED
    sim.reboot(path)
    assert nvml.nvmlDeviceGetMigMode(nvml.nvmlDeviceGetHandleByIndex(0)) == [1, 1]


def test_hopper_ignores_clients_but_not_processes(make_node, nvml_on):
    path = make_node([{"model": "H100-SXM5-80GB"}, {"model": "H100-SXM5-80GB"}])
    sim.hold_gpu(path, 0, "nvidia-persistenced")
    sim.add_process(path, 1, 9, "job", 10)
    nvml = nvml_on(path)
    assert _mode_change(nvml, 0) == (SUCCESS, [1, 1])
    assert _mode_change(nvml, 1) == (pynvml.NVML_ERROR_IN_USE, [0, 1])


def test_reboot_keeps_ampere_mode_drops_hopper_mode_and_all_instances(make_node, nvml_on):
    path = make_node(
        [
            {"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["7g.40gb"]},
            {"model": "H100-SXM5-80GB", "mig_mode": "enabled", "mig_devices": ["7g.80gb"]},
            {"model": "A100-SXM4-40GB", "mig_mode": {"current": "disabled", "pending": "enabled"}},
        ]
    )
    sim.add_process(path, 0, 1, "job", 10, gi=0, ci=0)
    sim.hold_gpu(path, 2, "dcgm")
    sim.reboot(path)
    nvml = nvml_on(path)
    modes = [nvml.nvmlDeviceGetMigMode(nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(3)]
    assert modes == [[1, 1], [0, 0], [1, 1]]
    status = sim.node_status(path)
    assert [gpu.get("gpu_instances") for gpu in status["gpus"]] == [[], [], []]
    assert status["processes"] == [] and status["clients"] == [{"gpu": 2, "name": "dcgm"}]
    assert status["boot_count"] == 1


def test_disabling_mig_with_gpu_instances_is_in_use(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["1g.5gb"]}]))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_InUse) as failure:
        nvml.nvmlDeviceSetMigMode(gpu, 0)
    assert str(failure.value) == "In use by another client"
    assert nvml.nvmlDeviceGetMigMode(gpu) == [1, 1]


def test_reset_refused_while_held_and_clears_instances_otherwise(make_node):
    path = make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["3g.20gb"]}])
    sim.hold_gpu(path, 0, "nvidia-persistenced")
    with pytest.raises(sim.NvmlCallError) as refused:
        sim.reset_gpu(path, 0)
    assert refused.value.code == pynvml.NVML_ERROR_IN_USE
    assert len(sim.node_status(path)["gpus"][0]["gpu_instances"]) == 1
    sim.release_gpu(path, 0, "nvidia-persistenced")
    sim.reset_gpu(path, 0)
    assert sim.node_status(path)["gpus"][0]["gpu_instances"] == []


def test_destroy_is_refused_while_in_use(make_node, nvml_on):
    path = make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}])
    nvml = nvml_on(path)
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    gi, ci = create_with_default_ci(gpu, 14)
    with pytest.raises(pynvml.NVMLError_InUse):
        nvml.nvmlGpuInstanceDestroy(gi)
    sim.add_process(path, 0, 31, "job", 10, gi=5, ci=0)
    with pytest.raises(pynvml.NVMLError_InUse):
        nvml.nvmlComputeInstanceDestroy(ci)
    sim.remove_process(path, 31)
    nvml.nvmlComputeInstanceDestroy(ci)
    nvml.nvmlGpuInstanceDestroy(gi)
    assert nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, 14) == 3


def test_creating_needs_mig_enabled(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB"}], driver_version="580.65.06"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceCreateGpuInstance(gpu, 19)
    count = pynvml.c_uint()
    nvml.nvmlDeviceGetGpuInstancePossiblePlacements(gpu, 19, None, pynvml.byref(count))
    assert count.value == 7


def test_gpu_instance_queries_with_mig_off_before_r550(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB"}], driver_version="535.104.05"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, 19)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetGpuInstanceById(gpu, 1)


def test_gpu_instance_queries_with_mig_off_from_r550(make_node, nvml_on):
    """As an H200 on 580.159.04 answers with MIG disabled."""
    nvml = nvml_on(make_node([{"model": "H200-141GB"}], driver_version="580.159.04"))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    assert [nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, p) for p in (19, 20, 15, 14, 9, 5, 0)] == [
        7,
        1,
        4,
        3,
        2,
        1,
        1,
    ]
    instances = (pynvml.c_nvmlGpuInstance_t * 7)()
    count = pynvml.c_uint(5)
    nvml.nvmlDeviceGetGpuInstances(gpu, 19, instances, pynvml.byref(count))
    assert count.value == 0
    with pytest.raises(pynvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetGpuInstanceById(gpu, 1)
    with pytest.raises(pynvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, 0)


@pytest.mark.parametrize("driver, listable", [("535.104.05", False), ("550.54.15", True)])
def test_profile_listing_with_mig_off_depends_on_the_driver(make_node, nvml_on, driver, listable):
    nvml = nvml_on(make_node([{"model": "A100-SXM4-40GB"}], driver_version=driver))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    if listable:
        assert nvml.nvmlDeviceGetGpuInstanceProfileInfo(gpu, 0).id == 19
        assert nvml.nvmlDeviceGetGpuInstanceProfileInfo(gpu, pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE).id == 9
    else:
        with pytest.raises(pynvml.NVMLError_NotSupported):
            nvml.nvmlDeviceGetGpuInstanceProfileInfo(gpu, 0)


def test_gpu_without_mig_answers_not_supported(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "Tesla-T4"}]))
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    for call, args in (
        (nvml.nvmlDeviceGetMigMode, ()),
        (nvml.nvmlDeviceSetMigMode, (1,)),
        (nvml.nvmlDeviceGetGpuInstanceProfileInfo, (0,)),
        (nvml.nvmlDeviceCreateGpuInstance, (19,)),
    ):
        with pytest.raises(pynvml.NVMLError_NotSupported):
            call(gpu, *args)
    assert nvml.nvmlDeviceGetMaxMigDeviceCount(gpu) == 0
    assert nvml.nvmlDeviceGetArchitecture(gpu) == pynvml.NVML_DEVICE_ARCH_TURING


def test_spec_rejects_mig_on_a_gpu_without_mig(tmp_path):
    with pytest.raises(sim.NodeSpecError, match="no MIG"):
        sim.create_node_state(
            tmp_path / "s.json",
            {"name": "n", "driver_version": "550.54.15", "gpus": [{"model": "T4", "mig_mode": "enabled"}]},
        )
