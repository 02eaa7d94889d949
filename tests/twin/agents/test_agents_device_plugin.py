"""What the emulated device plugin advertises per strategy, and when it refuses to start
(shared/reference/k8s-mig.md 1.1-1.2, audit.md B)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from gpufleet_twin.agents import read_node_gpus, start_device_plugin

from conftest import SEED_GPU_UUID, seed_gpu

SEED_MIG = "MIG-" + SEED_GPU_UUID


def counts(outcome) -> dict[str, int]:
    return {name: len(ids) for name, ids in outcome.resources.items()}


def test_none_counts_physical_gpus_with_or_without_mig(make_node: Callable[..., Path]):
    off = start_device_plugin(read_node_gpus(make_node([seed_gpu()])), "none")
    on = start_device_plugin(read_node_gpus(make_node([seed_gpu("enabled", ["1g.5gb", "1g.5gb"])])), "none")
    assert off.resources == on.resources == {"nvidia.com/gpu": (SEED_GPU_UUID,)}
    assert "Registered device plugin for 'nvidia.com/gpu' with Kubelet" in off.log


def test_single_advertises_each_mig_device_as_a_gpu(make_node: Callable[..., Path]):
    node = read_node_gpus(make_node([seed_gpu("enabled", ["1g.5gb"] * 7)]))
    outcome = start_device_plugin(node, "single")
    # The seed's R450 MIG UUIDs, GI ids 7..13 (automatic placement 6, 4, 5, 0, 1, 2, 3).
    assert outcome.resources == {"nvidia.com/gpu": tuple(f"{SEED_MIG}/{gi}/0" for gi in range(7, 14))}


def test_single_without_any_mig_gpu_behaves_like_none(make_node: Callable[..., Path]):
    outcome = start_device_plugin(read_node_gpus(make_node([seed_gpu()])), "single")
    assert counts(outcome) == {"nvidia.com/gpu": 1}


@pytest.mark.parametrize(
    ("gpus", "message"),
    [
        (
            [seed_gpu("enabled")],
            "invalid MIG configuration: at least one device with migEnabled=true was not configured correctly: "
            "device 0 has no MIG devices configured",
        ),
        ([seed_gpu("enabled", ["3g.20gb", "2g.10gb", "1g.5gb"])], "invalid MIG configuration: more than one MIG device type present on node"),
        (
            [{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["1g.5gb"]}, {"model": "A100-SXM4-40GB"}],
            "all devices on the node must be configured with the same migEnabled value",
        ),
        # The empty GPU is checked first, before the on/off mix (audit B).
        ([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}, {"model": "A100-SXM4-40GB"}], "device 0 has no MIG devices configured"),
    ],
)
def test_single_fatal_layouts(make_node: Callable[..., Path], gpus, message):
    outcome = start_device_plugin(read_node_gpus(make_node(gpus)), "single")
    assert outcome.failed and outcome.resources == {}
    assert outcome.error.startswith("error starting plugins: ") and outcome.error.endswith(message)
    assert outcome.log[-1] == outcome.error


def test_mixed_names_each_profile_and_keeps_mig_off_gpus(make_node: Callable[..., Path]):
    node = read_node_gpus(make_node([
        seed_gpu("enabled", ["3g.20gb", "2g.10gb", "1g.5gb"]),
        {"model": "A100-SXM4-40GB"},
        {"model": "A100-SXM4-40GB", "mig_mode": "enabled"},
    ]))
    outcome = start_device_plugin(node, "mixed")
    # The seed's -cgi 9,14,19 -C: GI 2 (3g), 3 (2g), 9 (1g).
    assert outcome.resources == {
        "nvidia.com/gpu": (node.gpus[1].uuid,),
        "nvidia.com/mig-1g.5gb": (f"{SEED_MIG}/9/0",),
        "nvidia.com/mig-2g.10gb": (f"{SEED_MIG}/3/0",),
        "nvidia.com/mig-3g.20gb": (f"{SEED_MIG}/2/0",),
    }
    assert "device 2 has no MIG devices configured" in outcome.log


def test_mixed_refuses_a_partial_compute_instance(make_node: Callable[..., Path]):
    state = make_node([seed_gpu("enabled", ["3g.20gb"])])
    from gpufleet_twin import nvml as sim
    from gpufleet_twin.nvml.core import Node
    from gpufleet_twin.nvml.state import locked_state

    with locked_state(state) as raw:  # replace the full CI by a 1-slice one: device 1c.3g.20gb
        node = Node(raw)
        gi = node.gpu_instances(0)[0]
        node.destroy_compute_instance(0, gi["id"], 0)
        node.create_compute_instance(0, gi["id"], 0)
    assert sim.node_status(state)["gpus"][0]["gpu_instances"][0]["compute_instances"][0]["profile_name"] == "1c.3g.20gb"
    outcome = start_device_plugin(read_node_gpus(state), "mixed")
    assert outcome.error.endswith("MIG profile '1c.3g.20gb' does not match any resource patterns")
    # single takes any device, as long as all are alike (audit B).
    assert counts(start_device_plugin(read_node_gpus(state), "single")) == {"nvidia.com/gpu": 1}


def test_nvml_init_failure_is_fatal_unless_fail_on_init_error_is_false(make_node: Callable[..., Path]):
    node = read_node_gpus(make_node([seed_gpu()], driver_loaded=False))
    fatal = start_device_plugin(node, "none")
    assert fatal.failed and "nvml init failed" in fatal.error
    waiting = start_device_plugin(node, "none", fail_on_init_error=False)
    assert (waiting.failed, waiting.resources, waiting.log[-1]) == (False, {}, "No devices found. Waiting indefinitely.")


def test_unknown_strategy_is_fatal(make_node: Callable[..., Path]):
    outcome = start_device_plugin(read_node_gpus(make_node([seed_gpu()])), "bogus")
    assert outcome.failed and outcome.error.endswith("invalid --mig-strategy option: bogus")


def test_a_node_without_gpus_waits(make_node: Callable[..., Path]):
    outcome = start_device_plugin(read_node_gpus(make_node([])), "mixed")
    assert (outcome.resources, outcome.log[-1]) == ({}, "No devices found. Waiting indefinitely.")
