"""gpufleet.mig.mig_layout through ansible-playbook on simulated nodes.

Outcomes are checked in what the module returned and, independently, in the simulator's view of the node
(``SimFleet.status``).
The nodes are bare (``BARE_NODES``): on a real node the module runs after the rollout or the operator stopped
the host GPU clients; site.yml tests cover the default nodes that have them.
"""
from __future__ import annotations

import pytest

from fleet_harness import BARE_NODES, one_node_spec
from gpufleet_twin import nvml

pytestmark = pytest.mark.slow

A100 = "NVIDIA A100-SXM4-40GB"
BUS_IDS = ("00000000:07:00.0", "00000000:0F:00.0", "00000000:47:00.0", "00000000:4E:00.0")
SEVEN_1G = ["1g.5gb"] * 7
SEED_MIX = {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 1}
# 7 x 1g.5gb made by the simulator as `nvidia-smi mig -cgi 19,19,19,19,19,19,19 -C` would: GPU instance ids
# 7..13 sit on slots 0..6.
SEVEN_1G_LINES = ["1g.5gb at %d:1: 1g.5gb" % slot for slot in range(7)]


def gpu_label(index, name=A100):
    return "GPU %d (%s, %s)" % (index, name, BUS_IDS[index])


def layout_task(name, ignore_errors=False, **options):
    task = {"name": name, "gpufleet.mig.mig_layout": options}
    if ignore_errors:
        task["ignore_errors"] = True
    return task


def sim_lines(fleet, index, node="gpu-node-1"):
    """The GPU's instances as the simulator sees them, in the module's diff form."""
    lines = []
    for gi in fleet.status(node)["gpus"][index].get("gpu_instances", []):
        computes = ", ".join(sorted(ci["profile_name"] for ci in gi["compute_instances"])) or "no compute instance"
        lines.append((gi["placement"]["start"], "%s at %d:%d: %s" % (
            gi["profile_name"], gi["placement"]["start"], gi["placement"]["size"], computes)))
    return [line for _, line in sorted(lines)]


def sim_devices(fleet, index, node="gpu-node-1"):
    """(profile, GI placement, MIG UUID, memory MiB) per MIG device, in nvidia-smi -L order."""
    devices = []
    for gi in fleet.status(node)["gpus"][index]["gpu_instances"]:
        for ci in gi["compute_instances"]:
            devices.append((ci["mig_device_index"], ci["profile_name"], gi["placement"], ci["mig_uuid"], gi["memory_mib"]))
    return [device[1:] for device in sorted(devices)]


def module_devices(gpu_result):
    return [(d["profile"], d["placement"], d["uuid"], d["memory_mib"]) for d in gpu_result["devices"]]


def test_config_plans_in_check_mode_applies_once_and_then_reports_no_change(sim_fleet, tmp_path):
    fleet = sim_fleet(one_node_spec("A100-SXM4-40GB", host_services="none", count=2, mig_mode="enabled"))
    balanced = ["2g.10gb at 0:2: 2g.10gb", "1g.5gb at 2:1: 1g.5gb", "1g.5gb at 3:1: 1g.5gb", "3g.20gb at 4:4: 3g.20gb"]

    check = fleet.play([layout_task("Plan all-balanced", config="all-balanced")], check=True, diff=True)
    planned = check.task("Plan all-balanced")
    assert planned.changed and not planned.failed
    assert planned.result["diff"] == {"before": {"GPU 0": [], "GPU 1": []},
                                      "after": {"GPU 0": balanced, "GPU 1": balanced}}
    for gpu in planned.result["gpus"]:
        assert gpu["actions"] == [] and gpu["devices"] == [] and not gpu["converged"]
        assert [gi["profile_name"] for gi in gpu["plan"]["create"]] == ["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"]
    assert sim_lines(fleet, 0) == [] and sim_lines(fleet, 1) == []

    config_file = tmp_path / "mig-parted.yaml"
    config_file.write_text(
        "version: v1\n"
        "mig-configs:\n"
        "  custom:\n"
        "    - devices: [0]\n"
        "      mig-enabled: true\n"
        "      mig-devices: {\"1c.3g.20gb\": 2, \"3g.20gb\": 1}\n"
    )
    run = fleet.play([
        layout_task("Apply all-balanced", config="all-balanced"),
        layout_task("Apply all-balanced again", config="all-balanced"),
        layout_task("Apply a custom config from a file", config="custom", config_file=str(config_file)),
        layout_task("Apply the custom config again", config_file=str(config_file)),
        layout_task("Apply the custom config given as data", config="custom", config_data={
            "version": "v1", "mig-configs": {"custom": [
                {"devices": [0], "mig-enabled": True, "mig-devices": {"1c.3g.20gb": 2, "3g.20gb": 1}}]}}),
    ], diff=True)
    applied = run.task("Apply all-balanced")
    assert applied.changed, run.stdout
    assert applied.result["diff"]["after"] == {"GPU 0": balanced, "GPU 1": balanced}
    assert [gpu["index"] for gpu in applied.result["gpus"]] == [0, 1]
    for gpu in applied.result["gpus"]:
        assert gpu["changed"] and [step["placement_source"] for step in gpu["actions"]
                                   if step["action"] == "create_gpu_instance"] == ["explicit"] * 4
        # nvidia-smi -L order follows GPU instance ids: 3g at 4:4 is GI 2, 2g at 0:2 GI 3, the 1g GIs 9 and 10.
        assert [device["profile"] for device in gpu["devices"]] == ["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"]
        assert all(device["uuid"].startswith("MIG-") and len(device["uuid"]) == 40 for device in gpu["devices"])
    # GPU 1 keeps this layout to the end of the play, so the simulator can confirm the reported devices.
    assert module_devices(applied.result["gpus"][1]) == sim_devices(fleet, 1)
    # R525-R575 A100-40GB profile sizes (mig-hardware.md 3.1, set A).
    assert [device[3] for device in sim_devices(fleet, 1)] == [19968, 9856, 4864, 4864]
    again = run.task("Apply all-balanced again")
    assert not again.changed and all(gpu["converged"] and gpu["actions"] == [] for gpu in again.result["gpus"])

    custom = run.task("Apply a custom config from a file")
    assert custom.changed
    assert [gpu["index"] for gpu in custom.result["gpus"]] == [0]
    assert [(gpu["index"], gpu["reason"]) for gpu in custom.result["skipped_gpus"]] == [(1, "not in the layout")]
    plan = custom.result["gpus"][0]["plan"]
    assert [gi["profile_name"] for gi in plan["keep"]] == ["3g.20gb"]
    assert sorted(gi["profile_name"] for gi in plan["destroy"]) == ["1g.5gb", "1g.5gb", "2g.10gb"]
    assert custom.result["diff"]["after"]["GPU 0"] == ["3g.20gb at 0:4: 1c.3g.20gb, 1c.3g.20gb",
                                                       "3g.20gb at 4:4: 3g.20gb"]
    assert not run.task("Apply the custom config again").changed
    assert not run.task("Apply the custom config given as data").changed
    assert module_devices(custom.result["gpus"][0]) == sim_devices(fleet, 0)
    assert sim_lines(fleet, 0) == ["3g.20gb at 0:4: 1c.3g.20gb, 1c.3g.20gb", "3g.20gb at 4:4: 3g.20gb"]
    assert sim_lines(fleet, 1) == balanced


def test_invalid_layouts_and_modes_are_refused_before_anything_changes(sim_fleet):
    fleet = sim_fleet({"node_defaults": BARE_NODES, "nodes": [{"name": "gpu-node-1", "driver_version": "550.54.15", "gpus": [
        {"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled"},
        {"model": "A100-SXM4-40GB", "count": 1, "mig_mode": {"current": "disabled", "pending": "enabled"}},
        {"model": "Tesla-T4", "count": 1}]}]})
    run = fleet.play([
        layout_task("Unknown profile", True, layout={"1g.6gb": 1}, gpus=["0"]),
        layout_task("Layout that does not fit", True, layout={"3g.20gb": 3}, gpus=["0"]),
        layout_task("MIG not enabled", True, layout={"1g.5gb": 1}, gpus=["1"]),
        layout_task("Non-MIG GPU", True, layout={"1g.5gb": 1}, gpus=["2"]),
        layout_task("Config that disables MIG", True, config="all-disabled", gpus=["0"]),
    ])
    assert run.task("Unknown profile").msg == (
        "%s: MIG profile '1g.6gb' not offered by %s; available: 7g.40gb, 4c.7g.40gb, 3c.7g.40gb, 2c.7g.40gb, "
        "1c.7g.40gb, 4g.20gb, 2c.4g.20gb, 1c.4g.20gb, 3g.20gb, 2c.3g.20gb, 1c.3g.20gb, 2g.10gb, 1c.2g.10gb, "
        "1g.10gb, 1g.5gb, 1g.5gb+me; change the layout or config for this GPU" % (gpu_label(0), A100))
    assert run.task("Layout that does not fit").msg == (
        "%s: MIG devices 3 x 3g.20gb do not fit on %s: 3 GPU instances of 3g.20gb are needed, but %s allows at "
        "most 2; the GPU instances need 12 memory slices, but %s has 8; the GPU instances need 9 compute slices, "
        "but %s has 7; 3g.20gb need 6 decoder engines together, but %s has 5; largest part of the request that "
        "fits: 2 x 3g.20gb; change the layout or config for this GPU" % ((gpu_label(0),) + (A100,) * 5))
    assert run.task("MIG not enabled").msg == (
        "MIG mode is disabled on %s (enabled is pending until a GPU reset), but the layout wants MIG devices there; "
        "mig_layout does not change MIG mode: run gpufleet.mig.mig_mode with state=enabled (and reset=true where a "
        "change is pending) first" % gpu_label(1))
    assert run.task("Non-MIG GPU").msg == (
        "GPU 2 (Tesla T4, 00000000:47:00.0) is not MIG-capable (with driver 550.54.15); remove it from gpus "
        "(gpus=all skips such GPUs)")
    assert run.task("Config that disables MIG").msg == (
        "the layout wants MIG mode disabled on %s, where it is enabled; mig_layout does not change MIG mode: run "
        "gpufleet.mig.mig_mode with state=disabled (force=true destroys the GPU instances) first" % gpu_label(0))
    assert all(result.failed and not result.changed for result in run.results)
    assert [sim_lines(fleet, index) for index in (0, 1)] == [[], []]


def test_instances_in_use_are_never_destroyed_and_skip_leaves_their_gpu_alone(sim_fleet):
    spec = one_node_spec("A100-SXM4-40GB", host_services="none", count=2, mig_mode="enabled")
    spec["nodes"][0]["gpus"][0]["mig_devices"] = SEVEN_1G
    fleet = sim_fleet(spec)
    nvml.add_process(fleet.state_path("gpu-node-1"), gpu=0, pid=4242, name="python3", gi=13, ci=0)
    run = fleet.play([
        # 3g.20gb + 1g.5gb fits with the busy 1g.5gb at slot 6 kept and the 3g.20gb at 0:4.
        layout_task("Reshape around the running process", layout={"3g.20gb": 1, "1g.5gb": 1}, gpus=["0"]),
        layout_task("Reshape while a process runs", True, layout={"7g.40gb": 1}, gpus=["0"]),
        layout_task("Reshape the idle GPUs", layout={"7g.40gb": 1}, in_use="skip"),
    ])
    around = run.task("Reshape around the running process")
    assert around.changed and not around.failed, around.msg
    assert sim_lines(fleet, 0) == ["3g.20gb at 0:4: 3g.20gb", "1g.5gb at 6:1: 1g.5gb"]
    assert [gi["id"] for gi in fleet.status("gpu-node-1")["gpus"][0]["gpu_instances"] if gi["placement"]["start"] == 6] == [13]

    refused = run.task("Reshape while a process runs")
    assert refused.failed and not refused.changed
    assert refused.msg == (
        "%s: the layout needs GPU instances 13 (1g.5gb at 6:1: 1g.5gb) destroyed, but processes run on them: "
        "pid 4242 (python3) on GPU instance 13; stop them (drain the node) and re-run, or set in_use=skip to leave "
        "this GPU as it is" % gpu_label(0))
    skipped = run.task("Reshape the idle GPUs")
    assert skipped.changed and [gpu["index"] for gpu in skipped.result["gpus"]] == [1]
    assert [(gpu["index"], gpu["reason"]) for gpu in skipped.result["skipped_gpus"]] == [(0, "in use")]
    assert skipped.result["warnings"] == ["left as it is: " + refused.msg]
    assert sim_lines(fleet, 0) == ["3g.20gb at 0:4: 3g.20gb", "1g.5gb at 6:1: 1g.5gb"]
    assert fleet.status("gpu-node-1")["processes"][0]["pid"] == 4242
    assert [device[0] for device in sim_devices(fleet, 1)] == ["7g.40gb"]


def test_an_nvml_error_at_each_write_call_is_reported_exactly_and_a_rerun_converges(sim_fleet):
    spec = one_node_spec("A100-SXM4-40GB", host_services="none", count=4, mig_mode="enabled")
    spec["nodes"][0]["gpus"][0]["mig_devices"] = SEVEN_1G
    fleet = sim_fleet(spec)
    state = fleet.state_path("gpu-node-1")
    for gpu, call, error in [(0, "nvmlComputeInstanceDestroy", "IN_USE"), (1, "nvmlGpuInstanceDestroy", "IN_USE"),
                             (2, "nvmlDeviceCreateGpuInstanceWithPlacement", "INSUFFICIENT_RESOURCES"),
                             (3, "nvmlGpuInstanceCreateComputeInstance", "INSUFFICIENT_RESOURCES")]:
        nvml.inject_fault(state, call, error, times=1, gpu=gpu)
    tasks = [layout_task("Reshape GPU %d" % index, True, layout=SEED_MIX, gpus=[str(index)]) for index in range(4)]
    run = fleet.play(tasks + [layout_task("Reshape every GPU", layout=SEED_MIX),
                              layout_task("Reshape every GPU again", layout=SEED_MIX)])

    # The plan keeps the 1g.5gb at slot 0 (GPU instance 7), destroys GPU instances 8..13, then creates the
    # 3g.20gb at 4:4 and the 2g.10gb at 2:2.
    destroyed = []
    for gi_id, slot in zip(range(8, 14), range(1, 7)):
        destroyed += ["destroy compute instance 0 (1g.5gb) of GPU instance %d" % gi_id,
                      "destroy GPU instance %d (1g.5gb at %d:1)" % (gi_id, slot)]
    expected = {
        0: ("destroy compute instance 0 (1g.5gb) of GPU instance 8 failed: nvmlComputeInstanceDestroy failed on "
            "GPU 0 (compute instance 0 in GPU instance 8): In use by another client (NVML error 19)", [],
            SEVEN_1G_LINES),
        1: ("destroy GPU instance 8 (1g.5gb at 1:1) failed: nvmlGpuInstanceDestroy failed on GPU 1 (GPU instance 8): "
            "In use by another client (NVML error 19)", destroyed[:1],
            SEVEN_1G_LINES[:1] + ["1g.5gb at 1:1: no compute instance"] + SEVEN_1G_LINES[2:]),
        2: ("create GPU instance 3g.20gb at 4:4 failed: nvmlDeviceCreateGpuInstanceWithPlacement failed on GPU 2 "
            "(profile 9 at 4:4): Insufficient Resources (NVML error 23)", destroyed, SEVEN_1G_LINES[:1]),
        3: ("create compute instance 3g.20gb in GPU instance 2 failed: nvmlGpuInstanceCreateComputeInstance failed on "
            "GPU 3 (compute profile 2 in GPU instance 2): Insufficient Resources (NVML error 23)",
            destroyed + ["create GPU instance 3g.20gb at 4:4 (GPU instance 2)"],
            SEVEN_1G_LINES[:1] + ["3g.20gb at 4:4: no compute instance"]),
    }
    for index, (failure, done, now) in expected.items():
        result = run.task("Reshape GPU %d" % index)
        assert result.failed
        assert result.msg == ("MIG layout of %s left incomplete: %s; steps done before it: %s; GPU %d now has: %s; "
                              "re-run the task to converge" % (gpu_label(index), failure, ", ".join(done) or "none",
                                                               index, "; ".join(now)))
        assert result.changed == bool(done)
        assert len(result.result["gpus"][0]["actions"]) == len(done)
        assert result.result["nvml_code"] == (19 if index < 2 else 23)
    converge = run.task("Reshape every GPU")
    assert converge.changed and all(gpu["changed"] for gpu in converge.result["gpus"])
    assert not run.task("Reshape every GPU again").changed
    for index in range(4):
        assert sim_lines(fleet, index) == ["1g.5gb at 0:1: 1g.5gb", "2g.10gb at 2:2: 2g.10gb", "3g.20gb at 4:4: 3g.20gb"]
    assert fleet.status("gpu-node-1")["faults"] == []


def test_r450_lets_the_driver_place_instances_and_reports_a_create_error(sim_fleet):
    fleet = sim_fleet(one_node_spec("A100-SXM4-40GB", host_services="none", driver="450.80.02", mig_mode="enabled"))
    nvml.inject_fault(fleet.state_path("gpu-node-1"), "nvmlDeviceCreateGpuInstance", "INSUFFICIENT_RESOURCES", times=1)
    run = fleet.play([layout_task("Create the seed's mix", True, layout=SEED_MIX),
                      layout_task("Create the seed's mix again", layout=SEED_MIX),
                      layout_task("Create the seed's mix once more", layout=SEED_MIX)])
    failed = run.task("Create the seed's mix")
    assert failed.msg == (
        "MIG layout of GPU 0 (A100-SXM4-40GB, 00000000:07:00.0) left incomplete: create GPU instance 3g.20gb at a "
        "placement the driver picks failed: nvmlDeviceCreateGpuInstance failed on GPU 0 (profile 9): Insufficient "
        "Resources (NVML error 23); steps done before it: none; GPU 0 now has: no GPU instances; re-run the task to "
        "converge")
    assert not failed.changed
    applied = run.task("Create the seed's mix again")
    creates = [step for step in applied.result["gpus"][0]["actions"] if step["action"] == "create_gpu_instance"]
    assert [(step["profile"], step["placement_source"], step["placement"]) for step in creates] == [
        ("3g.20gb", "driver", {"start": 4, "size": 4}), ("2g.10gb", "driver", {"start": 0, "size": 2}),
        ("1g.5gb", "driver", {"start": 2, "size": 1})]
    assert not run.task("Create the seed's mix once more").changed
    assert sim_lines(fleet, 0) == ["2g.10gb at 0:2: 2g.10gb", "1g.5gb at 2:1: 1g.5gb", "3g.20gb at 4:4: 3g.20gb"]
