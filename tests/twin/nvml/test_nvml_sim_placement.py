"""GPU-instance placement, ids and capacity, checked against the reference captures (hw 4, 6)."""

from __future__ import annotations

import pynvml
import pytest

from nvml_sim_helpers import SEED_GPU_UUID, create_with_default_ci, gi_layout

A100 = {"model": "A100-SXM4-40GB", "mig_mode": "enabled"}


def _gpu0(nvml):
    return nvml.nvmlDeviceGetHandleByIndex(0)


def test_seed_mixed_geometry_gives_seed_devices_in_seed_order(a100_seed_node, nvml_on):
    """Seed: `nvidia-smi mig -cgi 9,14,19 -C` on 450.80.02 -> GI 2, 3, 9 as MIG devices 0, 1, 2."""
    nvml = nvml_on(a100_seed_node)
    gpu = _gpu0(nvml)
    for profile_id in (9, 14, 19):
        create_with_default_ci(gpu, profile_id)

    devices = []
    for index in range(nvml.nvmlDeviceGetMaxMigDeviceCount(gpu)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, index)
        except pynvml.NVMLError_NotFound:
            continue
        devices.append(
            (
                nvml.nvmlDeviceGetName(mig),
                nvml.nvmlDeviceGetUUID(mig),
                # R450 exports only the v1 GetAttributes (no memorySizeMB); memory info has it.
                nvml.nvmlDeviceGetMemoryInfo(mig).total // (1 << 20),
            )
        )
    assert devices == [
        ("A100-SXM4-40GB MIG 3g.20gb", f"MIG-{SEED_GPU_UUID}/2/0", 20096),
        ("A100-SXM4-40GB MIG 2g.10gb", f"MIG-{SEED_GPU_UUID}/3/0", 9984),
        ("A100-SXM4-40GB MIG 1g.5gb", f"MIG-{SEED_GPU_UUID}/9/0", 4864),
    ]


def test_seed_seven_1g_devices_are_gi_7_to_13(a100_seed_node, nvml_on):
    """Seed: `-cgi 19,19,19,19,19,19,19 -C` -> devices 0..6 = GI 7..13, created 13,11,12,7,8,9,10 (hw 4.1)."""
    nvml = nvml_on(a100_seed_node)
    gpu = _gpu0(nvml)
    created = [nvml.nvmlGpuInstanceGetInfo(create_with_default_ci(gpu, 19)[0]).id for _ in range(7)]
    assert created == [13, 11, 12, 7, 8, 9, 10]
    uuids = [nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, i)) for i in range(7)]
    assert uuids == [f"MIG-{SEED_GPU_UUID}/{gi}/0" for gi in range(7, 14)]
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        nvml.nvmlDeviceCreateGpuInstance(gpu, 19)


@pytest.mark.parametrize(
    "sequence, expected",
    [
        # User Guide example 1: 1g GI 13 at 6:1; 2g GI 5 at 4:2; 4g GI 1 at 0:4
        ((19, 14, 5), [(1, 5, 0, 4), (5, 14, 4, 2), (13, 19, 6, 1)]),
        # Example 2, right order: 3g GI 2 at 4:4; 1g GI 7 at 0:1; 2g GI 4 at 2:2; 1g GI 8 at 1:1
        ((9, 19, 14, 19), [(2, 9, 4, 4), (4, 14, 2, 2), (7, 19, 0, 1), (8, 19, 1, 1)]),
        # Example 3: 2g GI 5 at 4:2; 1g GIs 13, 7, 8, 9, 10 at 6, 0, 1, 2, 3
        (
            (14, 19, 19, 19, 19, 19),
            [(5, 14, 4, 2), (7, 19, 0, 1), (8, 19, 1, 1), (9, 19, 2, 1), (10, 19, 3, 1), (13, 19, 6, 1)],
        ),
    ],
)
def test_user_guide_examples_reproduce_ids_and_placements(make_node, nvml_on, sequence, expected):
    # The guide's examples number GIs by placement, as drivers before R580 do (R580: see
    # test_r580_gpu_instance_ids_do_not_follow_placement).
    nvml = nvml_on(make_node([A100], driver_version="550.54.15"))
    gpu = _gpu0(nvml)
    for profile_id in sequence:
        nvml.nvmlDeviceCreateGpuInstance(gpu, profile_id)
    assert gi_layout(gpu) == expected


def test_3g_after_1g_1g_2g_fails_and_keeps_the_first_three(make_node, nvml_on):
    """User Guide example 2, wrong order: `-cgi 19,19,14,9` -> 13, 11, 3, then Insufficient Resources."""
    nvml = nvml_on(make_node([A100]))
    gpu = _gpu0(nvml)
    ids = [nvml.nvmlGpuInstanceGetInfo(nvml.nvmlDeviceCreateGpuInstance(gpu, p)).id for p in (19, 19, 14)]
    assert ids == [13, 11, 3]
    with pytest.raises(pynvml.NVMLError_InsufficientResources) as failure:
        nvml.nvmlDeviceCreateGpuInstance(gpu, 9)
    assert str(failure.value) == "Insufficient Resources"
    assert [row[0] for row in gi_layout(gpu)] == [3, 11, 13]


def test_two_3g_take_4_4_then_0_4(make_node, nvml_on):
    """audit A7 / H100 capture: the first 3g goes to 4:4 (GI 2), the second to 0:4 (GI 1)."""
    nvml = nvml_on(make_node([{"model": "H100-SXM5-80GB", "mig_mode": "enabled"}]))
    gpu = _gpu0(nvml)
    first = nvml.nvmlGpuInstanceGetInfo(nvml.nvmlDeviceCreateGpuInstance(gpu, 9))
    second = nvml.nvmlGpuInstanceGetInfo(nvml.nvmlDeviceCreateGpuInstance(gpu, 9))
    assert (first.id, first.placement.start, second.id, second.placement.start) == (2, 4, 1, 0)


def test_remaining_capacity_follows_the_580_capture(make_node, nvml_on):
    """hw 4: Free/Total on an A100-SXM4-40GB (580.126.09) as GIs are added."""
    nvml = nvml_on(make_node([A100], driver_version="580.126.09"))
    gpu = _gpu0(nvml)
    profile_ids = (19, 20, 15, 14, 9, 5, 0)

    def free() -> list[int]:
        return [nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, p) for p in profile_ids]

    placement = pynvml.c_nvmlGpuInstancePlacement_t
    assert free() == [7, 1, 4, 3, 2, 1, 1]
    nvml.nvmlDeviceCreateGpuInstanceWithPlacement(gpu, 5, pynvml.byref(placement(0, 4)))
    assert free() == [3, 1, 2, 1, 1, 0, 0]
    nvml.nvmlDeviceCreateGpuInstanceWithPlacement(gpu, 14, pynvml.byref(placement(4, 2)))
    assert free() == [1, 1, 1, 0, 0, 0, 0]
    nvml.nvmlDeviceCreateGpuInstanceWithPlacement(gpu, 19, pynvml.byref(placement(6, 1)))
    assert free() == [0, 0, 0, 0, 0, 0, 0]


def test_with_placement_rejects_unknown_and_overlapping_placements(make_node, nvml_on):
    nvml = nvml_on(make_node([A100]))
    gpu = _gpu0(nvml)
    placement = pynvml.c_nvmlGpuInstancePlacement_t
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceCreateGpuInstanceWithPlacement(gpu, 14, pynvml.byref(placement(1, 2)))
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceCreateGpuInstanceWithPlacement(gpu, 9, pynvml.byref(placement(0, 3)))
    gi = nvml.nvmlDeviceCreateGpuInstanceWithPlacement(gpu, 9, pynvml.byref(placement(0, 4)))
    assert nvml.nvmlGpuInstanceGetInfo(gi).id == 1
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        nvml.nvmlDeviceCreateGpuInstanceWithPlacement(gpu, 14, pynvml.byref(placement(2, 2)))


def test_possible_placements_are_static(make_node, nvml_on):
    nvml = nvml_on(make_node([A100]))
    gpu = _gpu0(nvml)

    def placements(profile_id: int) -> list[tuple[int, int]]:
        array = (pynvml.c_nvmlGpuInstancePlacement_t * 8)()
        count = pynvml.c_uint()
        nvml.nvmlDeviceGetGpuInstancePossiblePlacements(gpu, profile_id, array, pynvml.byref(count))
        return [(array[i].start, array[i].size) for i in range(count.value)]

    before = placements(15)
    nvml.nvmlDeviceCreateGpuInstance(gpu, 0)
    assert before == placements(15) == [(0, 2), (2, 2), (4, 2), (6, 2)]
    assert placements(0) == [(0, 8)]
    assert placements(9) == [(0, 4), (4, 4)]


def test_only_one_media_extension_instance_per_gpu(make_node, nvml_on):
    nvml = nvml_on(make_node([A100]))
    gpu = _gpu0(nvml)
    nvml.nvmlDeviceCreateGpuInstance(gpu, 20)
    assert nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, 20) == 0
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        nvml.nvmlDeviceCreateGpuInstance(gpu, 20)
    assert nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, 19) == 6


def test_a30_media_extension_profiles_exclude_each_other(make_node, nvml_on):
    nvml = nvml_on(make_node([{"model": "A30-24GB", "mig_mode": "enabled"}], driver_version="535.104.05"))
    gpu = _gpu0(nvml)
    assert nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, 6) == 1
    nvml.nvmlDeviceCreateGpuInstance(gpu, 21)
    assert nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, 6) == 0


def test_a30_balanced_layout_fits(make_node, nvml_on):
    """audit B: 1x 2g.12gb + 2x 1g.6gb fits an A30 (mig-parted all-balanced)."""
    nvml = nvml_on(make_node([{"model": "A30-24GB", "mig_mode": "enabled"}], driver_version="535.104.05"))
    gpu = _gpu0(nvml)
    for profile_id in (5, 14, 14):
        nvml.nvmlDeviceCreateGpuInstance(gpu, profile_id)
    assert gi_layout(gpu) == [(2, 5, 2, 2), (3, 14, 0, 1), (4, 14, 1, 1)]
    assert nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, 14) == 0


def test_4g_and_3g_cannot_coexist_before_r510(make_node, nvml_on):
    old = nvml_on(make_node([A100], driver_version="470.57.02"))
    gpu = _gpu0(old)
    old.nvmlDeviceCreateGpuInstance(gpu, 5)
    assert old.nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, 9) == 0
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        old.nvmlDeviceCreateGpuInstance(gpu, 9)


def test_4g_and_3g_coexist_from_r510(make_node, nvml_on):
    new = nvml_on(make_node([A100], driver_version="510.47.03"))
    gpu = _gpu0(new)
    new.nvmlDeviceCreateGpuInstance(gpu, 5)
    new.nvmlDeviceCreateGpuInstance(gpu, 9)
    assert [row[1:] for row in gi_layout(gpu)] == [(5, 0, 4), (9, 4, 4)]


def test_3g_plus_four_1g_only_fits_with_3g_first(make_node, nvml_on):
    """audit A10: 3-1-1-1-1 is order sensitive; largest first works."""
    nvml = nvml_on(make_node([A100]))
    gpu = _gpu0(nvml)
    for profile_id in (9, 19, 19, 19, 19):
        nvml.nvmlDeviceCreateGpuInstance(gpu, profile_id)
    assert nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(gpu, 19) == 0

    other = nvml_on(make_node([A100]))
    gpu = _gpu0(other)
    other.nvmlDeviceCreateGpuInstance(gpu, 19)
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        for profile_id in (19, 19, 19, 9):
            other.nvmlDeviceCreateGpuInstance(gpu, profile_id)


def test_get_gpu_instance_by_id_and_unknown_ids(make_node, nvml_on):
    nvml = nvml_on(make_node([A100]))
    gpu = _gpu0(nvml)
    nvml.nvmlDeviceCreateGpuInstance(gpu, 14)
    handle = nvml.nvmlDeviceGetGpuInstanceById(gpu, 5)
    assert nvml.nvmlGpuInstanceGetInfo(handle).profileId == 14
    with pytest.raises(pynvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetGpuInstanceById(gpu, 3)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceCreateGpuInstance(gpu, 42)
