"""GFD's labels per strategy: the seed's label sets as today's GFD writes them, and the invalid cases."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from gpufleet_twin.agents import gfd_labels, read_node_gpus, sanitise
from gpufleet_twin.agents.gfd import GfdError

from agents_seed import MIXED_LABELS, NONE_LABELS, NONE_LABELS_MIG_ENABLED, SEED_MACHINE, SINGLE_LABELS
from conftest import seed_gpu


def labels_for(state: Path, strategy: str, **options) -> dict[str, str]:
    labels, _ = gfd_labels(read_node_gpus(state), strategy, SEED_MACHINE, **options)
    return labels


def test_seed_none_labels_before_and_after_enabling_mig(make_node: Callable[..., Path]):
    assert labels_for(make_node([seed_gpu()]), "none", timestamp=1605312111) == {
        **NONE_LABELS, "nvidia.com/gfd.timestamp": "1605312111"
    }
    assert labels_for(make_node([seed_gpu("enabled")]), "none") == NONE_LABELS_MIG_ENABLED


def test_seed_single_labels(make_node: Callable[..., Path]):
    assert labels_for(make_node([seed_gpu("enabled", ["1g.5gb"] * 7)]), "single") == SINGLE_LABELS


def test_seed_mixed_labels_use_todays_profile_names(make_node: Callable[..., Path]):
    labels = labels_for(make_node([seed_gpu("enabled", ["3g.20gb", "2g.10gb", "1g.5gb"])]), "mixed")
    assert labels == MIXED_LABELS
    assert not any("3g.21gb" in key for key in labels)


@pytest.mark.parametrize(
    ("gpus", "reason"),
    [
        ([seed_gpu("enabled")], "at least one MIG device is enabled but empty"),
        ([seed_gpu("enabled", ["1g.5gb"]), {"model": "A100-SXM4-40GB"}], "devices with MIG enabled and disable detected"),
        ([seed_gpu("enabled", ["2g.10gb", "1g.5gb"])], "more than one MIG device type present on node"),
    ],
)
def test_single_invalid_layouts_write_mig_invalid(make_node: Callable[..., Path], gpus, reason):
    labels, warnings = gfd_labels(read_node_gpus(make_node(gpus)), "single")
    assert {k: labels[k] for k in ("nvidia.com/gpu.product", "nvidia.com/gpu.count", "nvidia.com/gpu.replicas",
                                   "nvidia.com/gpu.sharing-strategy", "nvidia.com/gpu.memory", "nvidia.com/mig.strategy")} == {
        "nvidia.com/gpu.product": "A100-SXM4-40GB-MIG-INVALID",
        "nvidia.com/gpu.count": "0",
        "nvidia.com/gpu.replicas": "0",
        "nvidia.com/gpu.sharing-strategy": "",
        "nvidia.com/gpu.memory": "0",
        "nvidia.com/mig.strategy": "single",
    }
    assert warnings == [f"Invalid configuration detected for mig-strategy=single: {reason}"]


def test_single_without_mig_is_none_plus_the_strategy_label(make_node: Callable[..., Path]):
    assert labels_for(make_node([seed_gpu()]), "single") == {**NONE_LABELS, "nvidia.com/mig.strategy": "single"}


def test_current_drivers_carry_the_nvidia_prefix_and_hopper_family(make_node: Callable[..., Path]):
    state = make_node([{"model": "H100-SXM5-80GB", "count": 2, "mig_mode": "enabled", "mig_devices": ["1g.10gb+me"]}],
                      driver_version="550.54.15")
    labels = labels_for(state, "mixed")
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["nvidia.com/gpu.count"] == "2"
    assert labels["nvidia.com/gpu.family"] == "hopper"
    assert labels["nvidia.com/mig-1g.10gb.me.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb.me"
    assert labels["nvidia.com/mig-1g.10gb.me.count"] == "2"
    assert labels["nvidia.com/cuda.driver-version.full"] == "550.54.15"
    assert labels["nvidia.com/cuda.runtime-version.full"] == "12.4"


def test_a_gpu_without_mig_is_not_mig_capable(make_node: Callable[..., Path]):
    labels = labels_for(make_node([{"model": "Tesla-T4"}], driver_version="550.54.15"), "none")
    assert (labels["nvidia.com/mig.capable"], labels["nvidia.com/gpu.family"]) == ("false", "turing")


def test_nvml_failure_is_fatal_unless_told_otherwise(make_node: Callable[..., Path]):
    node = read_node_gpus(make_node([seed_gpu()], nvml_library=False))
    with pytest.raises(GfdError, match="failed to initialize"):
        gfd_labels(node, "none")
    assert gfd_labels(node, "none", fail_on_init_error=False)[0] == {"nvidia.com/vgpu.present": "false"}


@pytest.mark.parametrize(("text", "label"), [("NVIDIA DGX", "NVIDIA-DGX"), ("DGXA100 920-23687-2530-000", "DGXA100-920-23687-2530-000"),
                                             ("PowerEdge R750xa (2x)", "PowerEdge-R750xa-2x")])
def test_sanitise(text, label):
    assert sanitise(text) == label
