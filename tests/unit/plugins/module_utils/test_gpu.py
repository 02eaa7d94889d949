"""gpu.py against the fleet twin's simulated libnvidia-ml under the real pynvml (no mocks of our code)."""
from __future__ import annotations

import json

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu as gpu
from ansible_collections.gpufleet.mig.plugins.module_utils._apply import apply_gpu_plan
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import NvmlCallError
from ansible_collections.gpufleet.mig.plugins.module_utils._planner import devices_from_instances, plan_gpu_layout
from mig_catalog_fixtures import catalog_from_fixture

sim = pytest.importorskip("gpufleet_twin.nvml", reason="the fleet twin's NVML simulator is not installed")

BALANCED = ["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"]


@pytest.fixture
def node(tmp_path):
    """Factory: write a simulated node from a spec and point pynvml at it until the test ends."""
    sessions = []

    def start(driver_version="580.126.09", gpus=None, **extra):
        spec = {"name": "n1", "driver_version": driver_version,
                "gpus": gpus or [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled"}]}
        spec.update(extra)
        path = tmp_path / "node.json"
        sim.create_node_state(path, spec)
        context = sim.simulated(path)
        context.__enter__()
        sessions.append(context)
        return path

    yield start
    for context in reversed(sessions):
        context.__exit__(None, None, None)


def test_catalog_read_through_nvml_equals_the_reference_table(node):
    node()
    with gpu.NvmlSession():
        catalog = gpu.read_catalog(0)
    assert catalog == catalog_from_fixture("a100-sxm4-40gb-r580")
    assert catalog.by_id(20).name == "1g.5gb+me"


def test_a_session_reads_one_catalog_per_gpu_model_and_mig_mode(node, monkeypatch):
    """Identical GPUs share one read of their MIG profiles within a session; another model, another MIG mode (drivers
    before R550 list no profiles while MIG is off) or another session reads again."""
    node(driver_version="535.104.05", gpus=[{"model": "A100-SXM4-40GB", "count": 3, "mig_mode": "enabled"},
                                            {"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "disabled"},
                                            {"model": "H100-SXM5-80GB", "count": 1, "mig_mode": "enabled"}])
    built = []
    real_build = gpu.build_catalog
    monkeypatch.setattr(gpu, "build_catalog", lambda name, *args: built.append(name) or real_build(name, *args))
    with gpu.NvmlSession():
        catalogs = [gpu.read_catalog(index) for index in range(5)]
        facts = gpu.read_node_facts()
    assert built == ["NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB", "NVIDIA H100 80GB HBM3"]
    assert catalogs[0] is catalogs[1] is catalogs[2] and catalogs[0] != catalogs[4]
    assert catalogs[3].profiles == () and catalogs[0].profiles
    # The shared catalog is the one each GPU would have read on its own.
    with gpu.NvmlSession():
        alone = gpu.read_catalog(2)
    assert alone == catalogs[2] and alone is not catalogs[2]
    assert [g["mig_mode"]["current"] for g in facts["gpus"]] == ["enabled"] * 3 + ["disabled", "enabled"]


def test_r450_catalog_falls_back_to_v1_calls_and_still_names_profiles(node):
    # 450.80.02 exports neither the V profile-info call (R510) nor PossiblePlacements_v2 (R470).
    node(driver_version="450.80.02")
    with gpu.NvmlSession():
        catalog = gpu.read_catalog(gpu.gpu_handle(0))
    assert catalog == catalog_from_fixture("a100-sxm4-40gb-r450")
    assert all(profile.reported_name is None for profile in catalog.profiles)


def test_node_facts_describe_instances_devices_and_processes(node):
    path = node(driver_version="550.54.15",
                gpus=[{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled", "mig_devices": BALANCED},
                      {"model": "Tesla-T4", "count": 1}])
    three_g = sim.node_status(path)["gpus"][0]["gpu_instances"]
    gi_3g = next(gi for gi in three_g if gi["profile_name"] == "3g.20gb")
    sim.add_process(path, gpu=0, pid=4242, name="python3", used_memory_mib=1024, gi=gi_3g["id"], ci=0)
    with gpu.NvmlSession():
        facts = gpu.read_node_facts()
    json.dumps(facts)
    assert (facts["driver_version"], facts["cuda_driver_version"]) == ("550.54.15", "12.4")
    assert facts["nvml_version"].startswith("12.550")
    a100, t4 = facts["gpus"]
    assert (a100["name"], a100["pci_device_id"], a100["memory_total_mib"]) == ("NVIDIA A100-SXM4-40GB",
                                                                            "0x20B010DE", 40960)
    assert a100["pci_bus_id"] == "00000000:07:00.0" and a100["uuid"].startswith("GPU-")
    assert a100["mig_capable"] and a100["mig_mode"] == {"current": "enabled", "pending": "enabled"}
    assert a100["max_mig_devices"] == 7
    assert devices_from_instances(a100["gpu_instances"]) == tuple(BALANCED)
    assert sorted(gi["profile_name"] for gi in a100["gpu_instances"]) == ["1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"]
    mig_devices = [ci for gi in a100["gpu_instances"] for ci in gi["compute_instances"]]
    assert sorted(ci["mig_device_index"] for ci in mig_devices) == [0, 1, 2, 3]
    assert all(ci["mig_uuid"].startswith("MIG-") for ci in mig_devices)
    assert a100["processes"] == [{"pid": 4242, "name": "python3", "used_memory_mib": 1024,
                                  "gpu_instance_id": gi_3g["id"], "compute_instance_id": 0}]
    assert (t4["mig_capable"], t4["mig_mode"], t4["gpu_instances"], t4["max_mig_devices"]) == (False, None, [], 0)
    assert t4["pci_device_id"] == "0x1EB810DE"


def _apply(index, plan):
    """What the mig_layout module will do with a plan: destroy, then create at the planned placements."""
    for gi in plan.destroy:
        for ci in gi.compute_instances:
            gpu.destroy_compute_instance(index, gi.id, ci.id)
        gpu.destroy_gpu_instance(index, gi.id)
    for planned in plan.create:
        created = gpu.create_gpu_instance(index, planned.profile_id, planned.placement)
        assert created["placement"] == {"start": planned.placement[0], "size": planned.placement[1]}
        for ci in planned.compute_instances:
            gpu.create_compute_instance(index, created["id"], ci.profile_index, ci.placement)


@pytest.mark.parametrize(
    "before, desired",
    [
        ([], BALANCED),
        (["1g.5gb"] * 7, {"1g.5gb": 3, "2g.10gb": 2}),
        (["7g.40gb"], {"1c.3g.20gb": 1, "2c.3g.20gb": 1, "2g.10gb": 1, "1g.10gb": 1}),
        (BALANCED, {}),
    ],
)
def test_a_plan_applied_through_nvml_converges(node, before, desired):
    node(gpus=[{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled", "mig_devices": before}])
    with gpu.NvmlSession():
        catalog = gpu.read_catalog(0)
        plan = plan_gpu_layout(catalog, gpu.read_node_facts()["gpus"][0]["gpu_instances"], desired)
        assert not plan.converged
        _apply(0, plan)
        after = gpu.read_node_facts()["gpus"][0]["gpu_instances"]
    assert plan_gpu_layout(catalog, after, desired).converged
    assert devices_from_instances(after) == plan.desired_devices


def test_overlapping_placement_reports_the_call_and_nvml_text(node):
    node()
    with gpu.NvmlSession():
        gpu.create_gpu_instance(0, 9, (4, 4))
        with pytest.raises(NvmlCallError) as raised:
            gpu.create_gpu_instance(0, 14, {"start": 4, "size": 2})
    error = raised.value
    assert error.call == "nvmlDeviceCreateGpuInstanceWithPlacement"
    assert error.code == gpu.NVML_ERROR_INSUFFICIENT_RESOURCES and error.text == "Insufficient Resources"
    assert error.gpu_index == 0 and "profile 14 at 4:2" in str(error)


def test_destroying_a_gpu_instance_with_compute_instances_is_refused(node):
    node()
    with gpu.NvmlSession():
        created = gpu.create_gpu_instance(0, 19)
        compute = gpu.create_compute_instance(0, created["id"], 0)
        with pytest.raises(NvmlCallError) as raised:
            gpu.destroy_gpu_instance(0, created["id"])
        assert raised.value.code == gpu.NVML_ERROR_IN_USE
        gpu.destroy_compute_instance(0, created["id"], compute["id"])
        gpu.destroy_gpu_instance(0, created["id"])
        assert gpu.read_node_facts()["gpus"][0]["gpu_instances"] == []


def test_a_compute_profile_the_gpu_instance_lacks_is_reported(node):
    node()
    with gpu.NvmlSession():
        created = gpu.create_gpu_instance(0, 19)
        with pytest.raises(NvmlCallError) as raised:
            gpu.create_compute_instance(0, created["id"], 2)  # a 3-slice CI in a 1-slice GI
    assert raised.value.code == gpu.NVML_ERROR_NOT_SUPPORTED
    assert "compute profile index 2" in str(raised.value)


def test_mig_mode_change_reports_activation_status_and_both_modes(node):
    path = node(gpus=[{"model": "A100-SXM4-40GB", "count": 2, "mig_mode": "disabled"}])
    sim.add_process(path, gpu=1, pid=77, name="trainer", used_memory_mib=2048)
    with gpu.NvmlSession():
        free = gpu.set_mig_mode(0, True)
        busy = gpu.set_mig_mode(1, True)
    assert free == {"activation_status": 0, "activation_status_text": "Success",
                    "current": "enabled", "pending": "enabled"}
    assert busy["activation_status"] == gpu.NVML_ERROR_IN_USE
    assert (busy["current"], busy["pending"]) == ("disabled", "enabled")
    assert busy["activation_status_text"] == "In use by another client"


def test_init_failure_is_an_nvml_call_error(node):
    node(driver_loaded=False)
    with pytest.raises(NvmlCallError) as raised:
        with gpu.NvmlSession():
            pass
    assert raised.value.call == "nvmlInit" and raised.value.code == 9


def test_sessions_nest(node):
    node()
    with gpu.NvmlSession():
        with gpu.NvmlSession():
            gpu.read_catalog(0)
        assert gpu.read_catalog(0).model == "NVIDIA A100-SXM4-40GB"  # the inner exit did not shut NVML down


def test_injected_faults_surface_with_their_nvml_code(node):
    path = node()
    sim.inject_fault(path, "nvmlDeviceCreateGpuInstance", "INSUFFICIENT_RESOURCES")
    with gpu.NvmlSession():
        with pytest.raises(NvmlCallError) as raised:
            gpu.create_gpu_instance(0, 9)
    assert (raised.value.call, raised.value.code) == ("nvmlDeviceCreateGpuInstance", 23)


# ------------------------------------------------- driver branches (issue 8: entry points per branch)
SEED_GEOMETRY = [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled",
                  "mig_devices": ["3g.20gb", "2g.10gb", "1g.5gb"]}]


@pytest.mark.parametrize("driver", ["450.80.02", "455.23.05", "460.91.03", "470.57.02", "515.86.01", "535.104.05"])
def test_facts_with_processes_and_compute_instances_on_every_branch(node, driver):
    # R450 exports neither nvmlComputeInstanceGetInfo_v2 (R460) nor the _v2/_v3 process queries (R455/R510);
    # R455 has the v2 process struct but still only the v1 compute-instance info (no placement).
    path = node(driver_version=driver, gpus=SEED_GEOMETRY)
    sim.add_process(path, 0, 4242, "trainer", used_memory_mib=300, gi=2, ci=0)
    sim.add_process(path, 0, 4343, "eval", used_memory_mib=100, gi=9, ci=0)
    with gpu.NvmlSession():
        facts = gpu.read_node_facts()
    gpu0 = facts["gpus"][0]
    assert [(gi["id"], gi["profile_name"], gi["placement"]) for gi in gpu0["gpu_instances"]] == [
        (2, "3g.20gb", {"start": 4, "size": 4}), (3, "2g.10gb", {"start": 0, "size": 2}),
        (9, "1g.5gb", {"start": 2, "size": 1})]
    computes = [gi["compute_instances"] for gi in gpu0["gpu_instances"]]
    assert [[ci["profile_name"] for ci in cis] for cis in computes] == [["3g.20gb"], ["2g.10gb"], ["1g.5gb"]]
    ci_placement = computes[0][0]["placement"]
    assert ci_placement == (None if driver.startswith(("450.", "455.")) else {"start": 0, "size": 3})
    assert [(p["pid"], p["gpu_instance_id"], p["compute_instance_id"], p["used_memory_mib"], p.get("name"))
            for p in gpu0["processes"]] == [(4242, 2, 0, 300, "trainer"), (4343, 9, 0, 100, "eval")]


def test_r450_node_is_reconfigured_through_the_older_entry_points(node):
    node(driver_version="450.80.02", gpus=SEED_GEOMETRY)
    with gpu.NvmlSession():
        catalog = gpu.read_catalog(0)
        facts = gpu.read_node_facts()["gpus"][0]
        plan = plan_gpu_layout(catalog, facts["gpu_instances"], ["1g.5gb"] * 7)
        apply_gpu_plan(0, plan, catalog)
        after = gpu.read_node_facts()["gpus"][0]["gpu_instances"]
    assert [ci["profile_name"] for gi in after for ci in gi["compute_instances"]] == ["1g.5gb"] * 7


@pytest.mark.parametrize("model, name", [("H100-SXM5-80GB", "1g.20gb"), ("H200-141GB", "1g.35gb")])
def test_double_memory_1g_gets_the_compute_instance_nvidia_smi_creates(node, model, name):
    # `nvidia-smi mig -cgi 15 -C` on an H100: "... GPU instance ID  5 using profile MIG 1g.20gb (ID  7)".
    node(driver_version="550.90.07", gpus=[{"model": model, "count": 1, "mig_mode": "enabled"}])
    with gpu.NvmlSession():
        catalog = gpu.read_catalog(0)
        plan = plan_gpu_layout(catalog, [], [name])
        apply_gpu_plan(0, plan, catalog)
        gpu0 = gpu.read_node_facts()["gpus"][0]
        again = plan_gpu_layout(catalog, gpu0["gpu_instances"], [name])
    [gi] = gpu0["gpu_instances"]
    [ci] = gi["compute_instances"]
    assert (gi["profile_id"], ci["profile_id"], ci["profile_name"]) == (15, 7, name)
    assert not again.create and not again.destroy


def test_r580_gpu_instance_ids_are_read_back_never_mapped_to_placements(node):
    # A100 on 580.126.09 numbers 4g at 0:4 GI 2, 2g at 4:2 GI 3, 1g at 6:1 GI 9: under the older
    # numbering GI 2 would sit at 4:4 and GI 3 at 0:2. Facts, plans and the keep decision use the
    # placements NVML reports.
    node(driver_version="580.126.09")
    with gpu.NvmlSession():
        handle = gpu.gpu_handle(0)
        for profile_id in (5, 14, 19):  # automatic placement: 0:4, 4:2, 6:1
            created = gpu.create_gpu_instance(0, profile_id)
            gpu.create_compute_instance(0, created["id"], {5: 3, 14: 1, 19: 0}[profile_id])
        catalog = gpu.read_catalog(handle)
        facts = gpu.read_node_facts()["gpus"][0]
        plan = plan_gpu_layout(catalog, facts["gpu_instances"], ["4g.20gb", "2g.10gb", "1g.5gb"])
    assert [(gi["id"], gi["placement"]) for gi in facts["gpu_instances"]] == [
        (2, {"start": 0, "size": 4}), (3, {"start": 4, "size": 2}), (9, {"start": 6, "size": 1})]
    assert not plan.create and not plan.destroy
