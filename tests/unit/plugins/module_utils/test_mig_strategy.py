"""mig_strategy.py and gfd_labels.py: the resources and GFD labels a node must show, with the seed document's figures.

The seed ("MIG Support in Kubernetes") runs an A100-SXM4-40GB on driver 450.80.02 (CUDA 11.0) through the
none, single and mixed procedures. Its label listings come from GFD v0.2.0; the expected sets here are
today's GFD (audit.md A5, B, D) with the seed's numbers: the 3g device is ``mig-3g.20gb`` (not ``3g.21gb``),
``gpu.replicas``/``sharing-strategy``, ``mig.capable``, ``mps.capable``, ``vgpu.present`` and the
``cuda.*-version.*`` labels exist, and ``gfd.timestamp``/``gpu.machine`` are not determined by GPU state.
"""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import StrategyError
from ansible_collections.gpufleet.mig.plugins.module_utils._gfd_labels import expected_labels, product_name, sanitise
from ansible_collections.gpufleet.mig.plugins.module_utils._mig_strategy import (
    StrategyLayoutError,
    gpu_layouts,
    layout_problem,
    resource_devices,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._node_validate import node_expectation
from mig_catalog_fixtures import catalog_from_fixture

SEED_GPU_UUID = "GPU-4200ccc0-2667-d4cb-9137-f932c716232a"
SEED_NONE_GPU_UUID = "GPU-15f0798d-c807-231d-6525-a7827081f0f1"

# The seed's `kubectl get node` label listings, verbatim.
SEED_NONE_LABELS = {
    "nvidia.com/cuda.driver.major": "450", "nvidia.com/cuda.driver.minor": "80", "nvidia.com/cuda.driver.rev": "02",
    "nvidia.com/cuda.runtime.major": "11", "nvidia.com/cuda.runtime.minor": "0",
    "nvidia.com/gfd.timestamp": "1605312111", "nvidia.com/gpu.compute.major": "8",
    "nvidia.com/gpu.compute.minor": "0", "nvidia.com/gpu.count": "1", "nvidia.com/gpu.family": "ampere",
    "nvidia.com/gpu.machine": "NVIDIA DGX", "nvidia.com/gpu.memory": "40537", "nvidia.com/gpu.product": "A100-SXM4-40GB",
}
SEED_SINGLE_LABELS = {
    "nvidia.com/cuda.driver.major": "450", "nvidia.com/cuda.driver.minor": "80", "nvidia.com/cuda.driver.rev": "02",
    "nvidia.com/cuda.runtime.major": "11", "nvidia.com/cuda.runtime.minor": "0",
    "nvidia.com/gfd.timestamp": "1605657366", "nvidia.com/gpu.compute.major": "8",
    "nvidia.com/gpu.compute.minor": "0", "nvidia.com/gpu.count": "7", "nvidia.com/gpu.engines.copy": "1",
    "nvidia.com/gpu.engines.decoder": "0", "nvidia.com/gpu.engines.encoder": "0", "nvidia.com/gpu.engines.jpeg": "0",
    "nvidia.com/gpu.engines.ofa": "0", "nvidia.com/gpu.family": "ampere", "nvidia.com/gpu.machine": "NVIDIA DGX",
    "nvidia.com/gpu.memory": "4864", "nvidia.com/gpu.multiprocessors": "14",
    "nvidia.com/gpu.product": "A100-SXM4-40GB-MIG-1g.5gb", "nvidia.com/gpu.slices.ci": "1",
    "nvidia.com/gpu.slices.gi": "1", "nvidia.com/mig.strategy": "single",
}
SEED_MIXED_LABELS = {
    "nvidia.com/cuda.driver.major": "450", "nvidia.com/cuda.driver.minor": "80", "nvidia.com/cuda.driver.rev": "02",
    "nvidia.com/cuda.runtime.major": "11", "nvidia.com/cuda.runtime.minor": "0",
    "nvidia.com/gfd.timestamp": "1605658841", "nvidia.com/gpu.compute.major": "8",
    "nvidia.com/gpu.compute.minor": "0", "nvidia.com/gpu.count": "1", "nvidia.com/gpu.family": "ampere",
    "nvidia.com/gpu.machine": "NVIDIA DGX", "nvidia.com/gpu.memory": "40537", "nvidia.com/gpu.product": "A100-SXM4-40GB",
    "nvidia.com/mig-1g.5gb.count": "1", "nvidia.com/mig-1g.5gb.engines.copy": "1",
    "nvidia.com/mig-1g.5gb.engines.decoder": "0", "nvidia.com/mig-1g.5gb.engines.encoder": "0",
    "nvidia.com/mig-1g.5gb.engines.jpeg": "0", "nvidia.com/mig-1g.5gb.engines.ofa": "0",
    "nvidia.com/mig-1g.5gb.memory": "4864", "nvidia.com/mig-1g.5gb.multiprocessors": "14",
    "nvidia.com/mig-1g.5gb.slices.ci": "1", "nvidia.com/mig-1g.5gb.slices.gi": "1",
    "nvidia.com/mig-2g.10gb.count": "1", "nvidia.com/mig-2g.10gb.engines.copy": "2",
    "nvidia.com/mig-2g.10gb.engines.decoder": "1", "nvidia.com/mig-2g.10gb.engines.encoder": "0",
    "nvidia.com/mig-2g.10gb.engines.jpeg": "0", "nvidia.com/mig-2g.10gb.engines.ofa": "0",
    "nvidia.com/mig-2g.10gb.memory": "9984", "nvidia.com/mig-2g.10gb.multiprocessors": "28",
    "nvidia.com/mig-2g.10gb.slices.ci": "2", "nvidia.com/mig-2g.10gb.slices.gi": "2",
    "nvidia.com/mig-3g.21gb.count": "1", "nvidia.com/mig-3g.21gb.engines.copy": "3",
    "nvidia.com/mig-3g.21gb.engines.decoder": "2", "nvidia.com/mig-3g.21gb.engines.encoder": "0",
    "nvidia.com/mig-3g.21gb.engines.jpeg": "0", "nvidia.com/mig-3g.21gb.engines.ofa": "0",
    "nvidia.com/mig-3g.21gb.memory": "20096", "nvidia.com/mig-3g.21gb.multiprocessors": "42",
    "nvidia.com/mig-3g.21gb.slices.ci": "3", "nvidia.com/mig-3g.21gb.slices.gi": "3",
    "nvidia.com/mig.strategy": "mixed",
}

# Labels today's GFD writes that GFD v0.2.0 did not (audit.md D, B rows), for every strategy.
CURRENT_GFD_NODE_LABELS = {
    "nvidia.com/cuda.driver-version.major": "450", "nvidia.com/cuda.driver-version.minor": "80",
    "nvidia.com/cuda.driver-version.revision": "02", "nvidia.com/cuda.driver-version.full": "450.80.02",
    "nvidia.com/cuda.runtime-version.major": "11", "nvidia.com/cuda.runtime-version.minor": "0",
    "nvidia.com/cuda.runtime-version.full": "11.0",
    "nvidia.com/mig.capable": "true", "nvidia.com/mps.capable": "false", "nvidia.com/vgpu.present": "false",
    "nvidia.com/gpu.sharing-strategy": "none",
}
NOT_FROM_GPU_STATE = ("nvidia.com/gfd.timestamp", "nvidia.com/gpu.machine")
R450_CATALOG = catalog_from_fixture("a100-sxm4-40gb-r450")


def _without(labels, *keys):
    return dict((key, value) for key, value in labels.items() if key not in keys)


def _rename(labels, old, new):
    return dict((key.replace(old, new), value) for key, value in labels.items())


def _gpu_instance(gi_id, profile, start, mig_uuid, device_index, with_attributes):
    catalog_profile = R450_CATALOG.resolve_device(profile)[0]
    gpu_instance = {
        "id": gi_id, "profile_id": catalog_profile.profile_id, "profile_name": profile,
        "placement": {"start": start, "size": catalog_profile.memory_slices},
        "memory_mib": catalog_profile.memory_mib,
        "compute_instances": [{
            "id": 0, "profile_id": catalog_profile.full_compute_profile.profile_id, "profile_name": profile,
            "placement": {"start": 0, "size": catalog_profile.slice_count},
            "mig_uuid": mig_uuid, "mig_device_index": device_index,
        }],
    }
    if with_attributes:
        # The NVML numbers GFD labels a MIG device with, as the R450 catalog (reference set B) holds them.
        for key in ("multiprocessors", "copy_engines", "decoders", "encoders", "jpegs", "ofas"):
            gpu_instance[key] = getattr(catalog_profile, key)
    return gpu_instance


def seed_facts(layout=(), mig="disabled", with_attributes=True, gpu_uuid=SEED_GPU_UUID, count=1):
    """gpu_info's result for the seed's node; ``layout`` = [(GI id, profile, placement start)]."""
    gpus = []
    for index in range(count):
        uuid = gpu_uuid if index == 0 else "GPU-0000000%d-2667-d4cb-9137-f932c716232a" % index
        instances = [
            _gpu_instance(gi_id, profile, start, "MIG-%s/%d/0" % (uuid, gi_id), position, with_attributes)
            for position, (gi_id, profile, start) in enumerate(layout)
        ] if mig == "enabled" else []
        gpu = {
            "index": index, "uuid": uuid, "name": "A100-SXM4-40GB", "pci_bus_id": "00000000:36:00.0",
            "pci_device_id": "0x20B010DE", "memory_total_mib": 40537, "mig_capable": True,
            "mig_mode": {"current": mig, "pending": mig}, "max_mig_devices": 7 if mig == "enabled" else 0,
            "gpu_instances": instances, "processes": [],
        }
        if with_attributes:
            gpu["compute_capability"] = "8.0"
        gpus.append(gpu)
    return {"driver_loaded": True, "driver_version": "450.80.02", "cuda_driver_version": "11.0",
            "nvml_version": "11.450.80.02", "gpus": gpus}


SEVEN_1G = [(7 + slot, "1g.5gb", slot) for slot in range(7)]  # `-cgi 19,19,19,19,19,19,19 -C`: GIs 7..13


def expected_resources(facts, strategy):
    """``{resource: count}`` the node advertises, raising the plugin's refusal as the plugin's pod would fail."""
    expectation = node_expectation(facts, strategy)
    if expectation.problem is not None:
        raise expectation.problem
    return expectation.resources


def check_strategy(facts, strategy):
    check_layout(gpu_layouts(facts), strategy)


def check_layout(layouts, strategy):
    problem = layout_problem(layouts, strategy)
    if problem is not None:
        raise problem


MIXED_3_2_1 = [(2, "3g.20gb", 4), (3, "2g.10gb", 0), (9, "1g.5gb", 2)]  # `-cgi 9,14,19 -C`: GIs 2, 3, 9


# ------------------------------------------------------------------------------------------- none


@pytest.mark.parametrize("mig, layout", [("disabled", []), ("enabled", []), ("enabled", SEVEN_1G)])
def test_none_advertises_one_gpu_whatever_the_mig_state(mig, layout):
    facts = seed_facts(layout, mig=mig, gpu_uuid=SEED_NONE_GPU_UUID)
    assert expected_resources(facts, "none") == {"nvidia.com/gpu": 1}
    assert resource_devices(facts, "none")["nvidia.com/gpu"][0].uuid == SEED_NONE_GPU_UUID


def test_none_labels_are_the_seeds_plus_current_gfd_labels():
    labels = expected_labels(seed_facts(), "none")
    assert labels.labels == dict(_without(SEED_NONE_LABELS, *NOT_FROM_GPU_STATE), **CURRENT_GFD_NODE_LABELS,
                                 **{"nvidia.com/gpu.replicas": "1"})
    assert "nvidia.com/mig.strategy" not in labels.labels
    assert set(NOT_FROM_GPU_STATE) <= set(labels.unverified)


def test_none_after_enabling_mig_only_flips_replicas_to_zero():
    # The seed says "the labels haven't changed"; current GFD builds MIG-enabled GPUs' labels without
    # sharing information, so gpu.replicas goes 1 -> 0 (audit.md B, last row).
    before = expected_labels(seed_facts(), "none").labels
    after = expected_labels(seed_facts(mig="enabled"), "none").labels
    assert {key: (before[key], after[key]) for key in before if before[key] != after[key]} == {
        "nvidia.com/gpu.replicas": ("1", "0")}


# ------------------------------------------------------------------------------------------ single


def test_single_with_seven_1g_devices_advertises_seven_gpus():
    facts = seed_facts(SEVEN_1G, mig="enabled")
    assert expected_resources(facts, "single") == {"nvidia.com/gpu": 7}
    refs = resource_devices(facts, "single")["nvidia.com/gpu"]
    assert [ref.uuid for ref in refs] == ["MIG-%s/%d/0" % (SEED_GPU_UUID, gi) for gi in range(7, 14)]
    assert set(ref.profile for ref in refs) == {"1g.5gb"}


def test_single_labels_are_the_seeds_plus_current_gfd_labels():
    labels = expected_labels(seed_facts(SEVEN_1G, mig="enabled"), "single")
    assert labels.labels == dict(_without(SEED_SINGLE_LABELS, *NOT_FROM_GPU_STATE), **CURRENT_GFD_NODE_LABELS,
                                 **{"nvidia.com/gpu.replicas": "1"})


def test_single_without_mig_behaves_like_none_plus_the_strategy_label():
    facts = seed_facts()
    assert expected_resources(facts, "single") == {"nvidia.com/gpu": 1}
    assert expected_labels(facts, "single").labels == dict(
        expected_labels(facts, "none").labels, **{"nvidia.com/mig.strategy": "single"})


def test_single_refuses_a_mig_gpu_without_devices():
    with pytest.raises(StrategyLayoutError) as caught:
        check_strategy(seed_facts(mig="enabled"), "single")
    assert caught.value.reason == "empty_mig_gpu"
    assert caught.value.plugin_error == (
        "invalid MIG configuration: at least one device with migEnabled=true was not configured correctly: "
        "device 0 has no MIG devices configured")
    assert str(caught.value).startswith("MIG strategy 'single' cannot serve this node: GPU 0 has MIG enabled but no MIG devices")


def test_single_refuses_more_than_one_profile():
    with pytest.raises(StrategyLayoutError) as caught:
        expected_resources(seed_facts(MIXED_3_2_1, mig="enabled"), "single")
    assert caught.value.reason == "multiple_profiles"
    assert caught.value.plugin_error == "invalid MIG configuration: more than one MIG device type present on node"
    assert "more than one MIG profile (GPU 0: 1g.5gb, 2g.10gb, 3g.20gb)" in str(caught.value)


def test_single_refuses_mig_enabled_next_to_mig_disabled_gpus():
    facts = seed_facts(SEVEN_1G, mig="enabled", count=2)
    facts["gpus"][1].update(mig_mode={"current": "disabled", "pending": "disabled"}, gpu_instances=[])
    with pytest.raises(StrategyLayoutError) as caught:
        check_strategy(facts, "single")
    assert caught.value.reason == "mixed_mig_modes"
    assert caught.value.plugin_error == "all devices on the node must be configured with the same migEnabled value"
    assert "GPU(s) 0 have MIG enabled and GPU(s) 1 do not" in str(caught.value)


def test_single_checks_empty_gpus_before_profiles_as_the_plugin_does():
    facts = seed_facts(MIXED_3_2_1, mig="enabled", count=2)
    facts["gpus"][1]["gpu_instances"] = []
    with pytest.raises(StrategyLayoutError, match="GPU 1 has MIG enabled but no MIG devices"):
        check_strategy(facts, "single")


def test_invalid_single_layout_gets_gfds_mig_invalid_labels_and_no_resources():
    facts = seed_facts(MIXED_3_2_1, mig="enabled")
    expectation = node_expectation(facts, "single")
    assert expectation.problem.reason == "multiple_profiles"
    assert expectation.resources == {}
    labels = expectation.labels.labels
    assert {key: labels[key] for key in labels if key.startswith("nvidia.com/gpu.") and "compute" not in key
            and key != "nvidia.com/gpu.family"} == {
        "nvidia.com/gpu.product": "A100-SXM4-40GB-MIG-INVALID", "nvidia.com/gpu.count": "0",
        "nvidia.com/gpu.replicas": "0", "nvidia.com/gpu.sharing-strategy": "", "nvidia.com/gpu.memory": "0"}
    assert not any(key.startswith("nvidia.com/mig-") for key in labels)


def test_single_accepts_identical_partial_devices():
    facts = seed_facts([(1, "3g.20gb", 4)], mig="enabled")
    gi = facts["gpus"][0]["gpu_instances"][0]
    gi["compute_instances"] = [dict(gi["compute_instances"][0], id=ci, profile_name="1c.3g.20gb", mig_device_index=ci,
                                    mig_uuid="MIG-%s/1/%d" % (SEED_GPU_UUID, ci)) for ci in range(3)]
    assert expected_resources(facts, "single") == {"nvidia.com/gpu": 3}
    labels = expected_labels(facts, "single")
    assert labels.labels["nvidia.com/gpu.product"] == "A100-SXM4-40GB-MIG-1c.3g.20gb"
    assert (labels.labels["nvidia.com/gpu.slices.gi"], labels.labels["nvidia.com/gpu.slices.ci"]) == ("3", "1")
    # The SM count of a partial compute instance is not in the GPU instance's facts.
    assert "nvidia.com/gpu.multiprocessors" in labels.unverified


# ------------------------------------------------------------------------------------------ mixed


def test_mixed_advertises_one_of_each_profile():
    facts = seed_facts(MIXED_3_2_1, mig="enabled")
    assert expected_resources(facts, "mixed") == {
        "nvidia.com/mig-3g.20gb": 1, "nvidia.com/mig-2g.10gb": 1, "nvidia.com/mig-1g.5gb": 1}
    devices = resource_devices(facts, "mixed")
    assert devices["nvidia.com/mig-1g.5gb"][0].uuid == "MIG-%s/9/0" % SEED_GPU_UUID
    assert devices["nvidia.com/mig-3g.20gb"][0].device_index == 0


def test_mixed_labels_are_the_seeds_with_the_current_3g_name():
    labels = expected_labels(seed_facts(MIXED_3_2_1, mig="enabled"), "mixed")
    per_profile = {}
    for profile in ("1g.5gb", "2g.10gb", "3g.20gb"):
        per_profile.update({
            "nvidia.com/mig-%s.product" % profile: "A100-SXM4-40GB-MIG-%s" % profile,
            "nvidia.com/mig-%s.replicas" % profile: "1",
            "nvidia.com/mig-%s.sharing-strategy" % profile: "none",
        })
    seed = _rename(_without(SEED_MIXED_LABELS, *NOT_FROM_GPU_STATE), "mig-3g.21gb", "mig-3g.20gb")
    # Every GPU of the model has MIG on, so the full-GPU labels carry replicas 0.
    assert labels.labels == dict(seed, **CURRENT_GFD_NODE_LABELS, **per_profile, **{"nvidia.com/gpu.replicas": "0"})


def test_mixed_counts_mig_disabled_gpus_as_full_gpus():
    facts = seed_facts(MIXED_3_2_1, mig="enabled", count=3)
    facts["gpus"][2].update(mig_mode={"current": "disabled", "pending": "disabled"}, gpu_instances=[])
    assert expected_resources(facts, "mixed") == {
        "nvidia.com/gpu": 1, "nvidia.com/mig-3g.20gb": 2, "nvidia.com/mig-2g.10gb": 2, "nvidia.com/mig-1g.5gb": 2}
    labels = expected_labels(facts, "mixed").labels
    assert (labels["nvidia.com/gpu.count"], labels["nvidia.com/gpu.replicas"]) == ("3", "1")
    assert labels["nvidia.com/mig-2g.10gb.count"] == "2"


def test_mixed_names_media_extension_profiles_with_a_dot():
    facts = seed_facts([(13, "1g.5gb", 6)], mig="enabled")
    gi = facts["gpus"][0]["gpu_instances"][0]
    gi["profile_name"] = gi["compute_instances"][0]["profile_name"] = "1g.5gb+me"
    assert expected_resources(facts, "mixed") == {"nvidia.com/mig-1g.5gb.me": 1}
    assert expected_labels(facts, "mixed").labels["nvidia.com/mig-1g.5gb.me.product"] == "A100-SXM4-40GB-MIG-1g.5gb.me"


def test_mixed_refuses_partial_devices():
    facts = seed_facts([(1, "3g.20gb", 4)], mig="enabled")
    facts["gpus"][0]["gpu_instances"][0]["compute_instances"][0]["profile_name"] = "1c.3g.20gb"
    with pytest.raises(StrategyLayoutError) as caught:
        check_strategy(facts, "mixed")
    assert caught.value.reason == "partial_profile"
    assert caught.value.plugin_error == (
        "error building MIG device map: MIG profile '1c.3g.20gb' does not match any resource patterns")


def test_mixed_warns_about_an_empty_mig_gpu_and_skips_it():
    facts = seed_facts(MIXED_3_2_1, mig="enabled", count=2)
    facts["gpus"][1]["gpu_instances"] = []
    expectation = node_expectation(facts, "mixed")
    assert expectation.problem is None
    assert expectation.resources["nvidia.com/mig-1g.5gb"] == 1
    assert expectation.warnings == (
        "GPU 1 has MIG enabled but no MIG devices; under the mixed strategy it contributes no resource (the device "
        "plugin logs 'device 1 has no MIG devices configured')",)


# ------------------------------------------------------------------------------- facts and naming


def test_labels_the_facts_cannot_determine_are_unverified_not_guessed():
    labels = expected_labels(seed_facts(MIXED_3_2_1, mig="enabled", with_attributes=False), "mixed")
    for key in ("nvidia.com/gpu.family", "nvidia.com/gpu.compute.major", "nvidia.com/mig-3g.20gb.multiprocessors",
                "nvidia.com/mig-3g.20gb.engines.decoder"):
        assert key in labels.unverified and key not in labels.labels
    assert labels.labels["nvidia.com/mig-3g.20gb.memory"] == "20096"
    assert labels.labels["nvidia.com/mig-3g.20gb.slices.gi"] == "3"


def test_pending_mode_change_is_a_warning():
    facts = seed_facts()
    facts["gpus"][0]["mig_mode"] = {"current": "disabled", "pending": "enabled"}
    assert node_expectation(facts, "none").warnings == (
        "GPU 0 has a pending MIG mode change (current disabled, pending enabled); the device plugin and GFD act on "
        "the current mode until the GPU is reset",)


def test_two_models_leave_the_full_gpu_labels_undetermined():
    facts = seed_facts(count=2)
    facts["gpus"][1]["name"] = "NVIDIA H100 80GB HBM3"
    labels = expected_labels(facts, "none")
    assert "nvidia.com/gpu.product" in labels.unverified and "nvidia.com/gpu.product" not in labels.labels
    assert expected_resources(facts, "none") == {"nvidia.com/gpu": 2}


@pytest.mark.parametrize("name, product", [
    ("NVIDIA A100-SXM4-40GB", "NVIDIA-A100-SXM4-40GB"),
    ("NVIDIA A100 80GB PCIe", "NVIDIA-A100-80GB-PCIe"),
    ("NVIDIA  H100 (80GB) HBM3", "NVIDIA-H100-80GB-HBM3"),
])
def test_product_names_are_sanitised_as_gfd_does(name, product):
    assert sanitise(name) == product
    assert product_name(name, "MIG", "1g.10gb") == product + "-MIG-1g.10gb"


def test_facts_without_gpus_or_driver_are_refused():
    with pytest.raises(StrategyError, match="pass the whole registered result of gpufleet.mig.gpu_info"):
        expected_resources({"msg": "skipped"}, "none")
    with pytest.raises(StrategyError, match="without a loaded NVIDIA driver"):
        expected_resources({"driver_loaded": False, "gpus": []}, "none")
    with pytest.raises(StrategyError, match="unknown MIG strategy 'all'"):
        expected_resources(seed_facts(), "all")


# ------------------------------------------------------------- facts read through NVML (the twin)


sim = None
try:
    from gpufleet_twin import nvml as sim  # noqa: F811
except ImportError:  # pragma: no cover - the twin is installed in the project's venv
    pass


@pytest.mark.skipif(sim is None, reason="the fleet twin's NVML simulator is not installed")
@pytest.mark.parametrize("devices, strategy, resources", [
    (["1g.5gb"] * 7, "single", {"nvidia.com/gpu": 7}),
    (["3g.20gb", "2g.10gb", "1g.5gb"], "mixed", {"nvidia.com/mig-3g.20gb": 1, "nvidia.com/mig-2g.10gb": 1,
                                                 "nvidia.com/mig-1g.5gb": 1}),
])
def test_facts_read_through_nvml_give_the_seed_resources(tmp_path, devices, strategy, resources):
    from ansible_collections.gpufleet.mig.plugins.module_utils._node_info import read_node

    state = tmp_path / "node.json"
    sim.create_node_state(state, {"name": "n1", "driver_version": "450.80.02", "gpus": [
        {"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled", "mig_devices": devices}]})
    with sim.simulated(state):
        facts = read_node()
    assert expected_resources(facts, strategy) == resources
    labels = expected_labels(facts, strategy).labels
    assert labels["nvidia.com/cuda.driver-version.full"] == "450.80.02"
    assert labels["nvidia.com/gpu.product"] == ("A100-SXM4-40GB-MIG-1g.5gb" if strategy == "single" else "A100-SXM4-40GB")


# ------------------------------------------------------------------- planned layouts (preflight)


@pytest.mark.parametrize("layouts, strategy, reason", [
    ([{"index": 0, "mig_enabled": True, "devices": ["1g.5gb"] * 7},
      {"index": 1, "mig_enabled": True, "devices": []}], "single", "empty_mig_gpu"),
    ([{"index": 0, "mig_enabled": True, "devices": ["3g.20gb", "2g.10gb", "1g.5gb"]}], "single", "multiple_profiles"),
    ([{"index": 0, "mig_enabled": True, "devices": ["1g.5gb"] * 7},
      {"index": 1, "mig_enabled": False, "devices": []}], "single", "mixed_mig_modes"),
    ([{"index": 0, "mig_enabled": True, "devices": ["1c.3g.20gb", "MIG 1c.3g.20gb"]}], "mixed", "partial_profile"),
])
def test_planned_layouts_are_checked_like_facts(layouts, strategy, reason):
    with pytest.raises(StrategyLayoutError) as caught:
        check_layout(layouts, strategy)
    assert caught.value.reason == reason


@pytest.mark.parametrize("layouts, strategy", [
    ([{"index": 0, "mig_enabled": True, "devices": ["1g.5gb"] * 7}] * 2, "single"),
    ([{"index": 0, "mig_enabled": False, "devices": []}, {"index": 1, "mig_enabled": False, "devices": []}], "single"),
    ([{"index": 0, "mig_enabled": True, "devices": []}, {"index": 1, "mig_enabled": False, "devices": []}], "mixed"),
    ([{"index": 0, "mig_enabled": True, "devices": ["1c.3g.20gb"]}], "none"),
])
def test_planned_layouts_the_plugin_serves_pass(layouts, strategy):
    check_layout(layouts, strategy)


def test_planned_layout_with_a_bad_profile_names_the_gpu():
    with pytest.raises(StrategyError, match="GPU 3: invalid MIG profile '1g.5'"):
        check_layout([{"index": 3, "mig_enabled": True, "devices": ["1g.5"]}], "mixed")
