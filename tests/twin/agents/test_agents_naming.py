"""go-nvlib profile strings and resource names, computed from the twin's hardware tables."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from gpufleet_twin.agents import mig_memory_size_gb, mig_profile, mixed_resource_name, read_node_gpus


@pytest.mark.parametrize(
    ("model", "driver", "devices", "expected"),
    [
        # A100-40GB, R450 memory set B (4864/9984/20096/20096/40448 MiB of 40537): audit B.
        ("A100-SXM4-40GB", "450.80.02", ["1g.5gb"], ["1g.5gb"]),
        ("A100-SXM4-40GB", "450.80.02", ["2g.10gb", "3g.20gb"], ["2g.10gb", "3g.20gb"]),
        ("A100-SXM4-40GB", "450.80.02", ["4g.20gb"], ["4g.20gb"]),
        ("A100-SXM4-40GB", "450.80.02", ["7g.40gb"], ["7g.40gb"]),
        # +me keeps its attribute; R470 adds the profile (hw 3.1).
        ("A100-SXM4-40GB", "470.57.02", ["1g.5gb+me"], ["1g.5gb+me"]),
        ("A100-SXM4-80GB", "525.85.12", ["1g.10gb", "1g.20gb", "3g.40gb"], ["3g.40gb", "1g.10gb", "1g.20gb"]),
        ("H100-SXM5-80GB", "550.54.15", ["7g.80gb"], ["7g.80gb"]),
        # H200 3g: 0.5 x 141 = 70.5 rounds half away from zero to 71 (audit B).
        ("H200-141GB", "550.90.07", ["3g.71gb", "2g.35gb"], ["3g.71gb", "2g.35gb"]),
    ],
)
def test_profile_strings_match_the_driver_names(make_node: Callable[..., Path], model, driver, devices, expected):
    state = make_node([{"model": model, "mig_mode": "enabled", "mig_devices": devices}], driver_version=driver)
    gpu = read_node_gpus(state).gpus[0]
    # Devices come in MIG device order (GI id), not creation order.
    assert sorted(str(device.profile) for device in gpu.mig_devices) == sorted(expected)
    assert [str(device.profile) for device in gpu.mig_devices] == [device.nvidia_smi_name for device in gpu.mig_devices]


def test_resource_names_replace_plus_with_dot_and_keep_minus():
    assert mixed_resource_name(mig_profile(0x7, 1, 1, 4864, 40537)) == "nvidia.com/mig-1g.5gb.me"
    assert mixed_resource_name(mig_profile(0xF, 1, 1, 24576, 196608)) == "nvidia.com/mig-1g.24gb.me.all"
    assert mixed_resource_name(mig_profile(0xD, 1, 1, 24576, 196608)) == "nvidia.com/mig-1g.24gb-me"
    assert mixed_resource_name(mig_profile(0xA, 1, 1, 24576, 196608)) == "nvidia.com/mig-1g.24gb.gfx"
    assert mixed_resource_name(mig_profile(0x2, 3, 3, 20096, 40537)) == "nvidia.com/mig-3g.20gb"


def test_partial_compute_instance_names_carry_the_compute_slices():
    profile = mig_profile(0x2, 3, 1, 20096, 40537)
    assert (str(profile), profile.full_compute) == ("1c.3g.20gb", False)


@pytest.mark.parametrize(
    ("total_mib", "mig_mib", "gb"),
    [
        (40537, 20096, 20),  # not the 21 of GFD < 0.4.0's MiB/1000 rounding (k8s-mig 2.4)
        (40960, 19968, 20),
        (81920, 40192, 40),
        (143771, 71424, 71),
        (24576, 5952, 6),
    ],
)
def test_memory_size_is_eighths_rounded_up_times_whole_gib(total_mib, mig_mib, gb):
    assert mig_memory_size_gb(total_mib * 1024 * 1024, mig_mib) == gb
