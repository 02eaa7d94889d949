"""gpufleet.mig.gpu_info through ansible-playbook on simulated nodes.

Each fleet holds several scenarios as nodes, so one playbook run covers them all:

* ``seed``: the seed document's A100-SXM4-40GB on 450.80.02 after ``nvidia-smi mig -cgi 9,14,19 -C``, with a
  process on the 1g.5gb device;
* ``hopper``: two H100s with MIG off and an old toolkit (no nvidia-ctk yet, only nvidia-container-cli);
* ``t4``: a GPU without MIG;
* ``bare``: no NVIDIA driver and no container toolkit.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from gpufleet_twin import nvml as sim

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]

SEED_GPU_UUID = "GPU-4200ccc0-2667-d4cb-9137-f932c716232a"
SEED_NODE = {"name": "seed", "driver_version": "450.80.02",
             "gpus": [{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "uuid": SEED_GPU_UUID,
                       "pci_bus_id": "00000000:36:00.0", "mig_devices": ["3g.20gb", "2g.10gb", "1g.5gb"]}],
             "processes": [{"gpu": 0, "pid": 4242, "name": "python3", "used_memory_mib": 1024, "gi": 9, "ci": 0}]}
HOPPER_NODE = {"name": "hopper", "driver_version": "550.54.15", "container_toolkit": {"version": "1.2.0"},
               "gpus": [{"model": "H100-SXM5-80GB", "count": 2}]}
T4_NODE = {"name": "t4", "driver_version": "550.54.15", "gpus": [{"model": "Tesla-T4"}]}
BARE_NODE = {"name": "bare", "driver_version": None, "container_toolkit": None, "gpus": [{"model": "A100-SXM4-40GB"}]}

READ = {"name": "Read GPU facts", "gpufleet.mig.gpu_info": {}, "register": "facts"}


def _device(gi_id, name, memory_mib, start, size, mig_index):
    return {"id": gi_id, "profile_name": name, "memory_mib": memory_mib, "placement": {"start": start, "size": size},
            "mig_uuid": "MIG-%s/%d/0" % (SEED_GPU_UUID, gi_id), "mig_device_index": mig_index}


def _devices(gpu):
    return [{"id": gi["id"], "profile_name": gi["profile_name"], "memory_mib": gi["memory_mib"],
             "placement": gi["placement"], "mig_uuid": gi["compute_instances"][0]["mig_uuid"],
             "mig_device_index": gi["compute_instances"][0]["mig_device_index"]} for gi in gpu["gpu_instances"]]


def test_facts_of_every_kind_of_node(sim_fleet):
    fleet = sim_fleet({"cluster": False, "nodes": [SEED_NODE, HOPPER_NODE, T4_NODE, BARE_NODE]})
    run = fleet.play([
        READ,
        {"name": "Read one GPU without the toolkit", "gpufleet.mig.gpu_info": {"gpus": ["1"],
                                                                               "detect_container_toolkit": False},
         "when": "inventory_hostname == 'hopper'"},
        {"name": "Require a driver", "gpufleet.mig.gpu_info": {"require_driver": True}},
    ])

    seed = run.task("Read GPU facts", "seed")
    assert (seed.status, seed.changed) == ("ok", False)
    assert "ansible_facts" not in seed.result
    facts = seed.result
    assert (facts["driver_loaded"], facts["driver_version"], facts["cuda_driver_version"], facts["nvml_version"]) == (
        True, "450.80.02", "11.0", "11.450.80.02")
    gpu = facts["gpus"][0]
    assert {key: gpu[key] for key in ("index", "uuid", "name", "pci_bus_id", "pci_device_id", "memory_total_mib",
                                      "mig_capable", "mig_mode", "max_mig_devices")} == {
        "index": 0, "uuid": SEED_GPU_UUID, "name": "A100-SXM4-40GB", "pci_bus_id": "00000000:36:00.0",
        "pci_device_id": "0x20B010DE", "memory_total_mib": 40537, "mig_capable": True,
        "mig_mode": {"current": "enabled", "pending": "enabled"}, "max_mig_devices": 7}
    # The seed's `nvidia-smi -L` after -cgi 9,14,19 -C: 3g.20gb GI 2, 2g.10gb GI 3, 1g.5gb GI 9, devices 0..2;
    # memory as GFD labelled them on 450.80.02 (20096 / 9984 / 4864 MiB).
    assert _devices(gpu) == [_device(2, "3g.20gb", 20096, 4, 4, 0), _device(3, "2g.10gb", 9984, 0, 2, 1),
                             _device(9, "1g.5gb", 4864, 2, 1, 2)]
    assert gpu["processes"] == [{"pid": 4242, "name": "python3", "used_memory_mib": 1024, "gpu_instance_id": 9,
                                 "compute_instance_id": 0}]
    # The same instances, read from the simulator itself rather than through the module.
    assert _devices(gpu) == [
        {key: gi[key] if key not in ("mig_uuid", "mig_device_index") else gi["compute_instances"][0][key]
         for key in ("id", "profile_name", "memory_mib", "placement", "mig_uuid", "mig_device_index")}
        for gi in fleet.status("seed")["gpus"][0]["gpu_instances"]]
    toolkit = facts["container_toolkit"]
    assert (toolkit["installed"], toolkit["version"], toolkit["source"], sorted(toolkit["tools"])) == (
        True, "1.17.8", "nvidia-ctk", ["nvidia-container-cli", "nvidia-ctk"])

    hopper = run.task("Read GPU facts", "hopper").result
    assert [(g["index"], g["name"], g["memory_total_mib"], g["mig_capable"], g["mig_mode"], g["gpu_instances"])
            for g in hopper["gpus"]] == [
        (index, "NVIDIA H100 80GB HBM3", 81559, True, {"current": "disabled", "pending": "disabled"}, [])
        for index in (0, 1)]
    assert (hopper["container_toolkit"]["version"], hopper["container_toolkit"]["source"],
            list(hopper["container_toolkit"]["tools"])) == ("1.2.0", "nvidia-container-cli", ["nvidia-container-cli"])
    one_gpu = run.task("Read one GPU without the toolkit", "hopper").result
    assert ([g["index"] for g in one_gpu["gpus"]], one_gpu["container_toolkit"]) == ([1], None)

    t4 = run.task("Read GPU facts", "t4").result["gpus"][0]
    assert (t4["name"], t4["mig_capable"], t4["mig_mode"], t4["gpu_instances"]) == ("Tesla T4", False, None, [])

    bare = run.task("Read GPU facts", "bare")
    assert (bare.status, bare.changed) == ("ok", False)
    assert {key: bare.result[key] for key in ("driver_loaded", "driver_version", "gpus", "driver_error")} == {
        "driver_loaded": False, "driver_version": None, "gpus": [],
        "driver_error": {"call": "nvmlInit", "code": 9, "text": "Driver Not Loaded", "no_driver": True}}
    assert (bare.result["container_toolkit"]["installed"], bare.result["container_toolkit"]["tools"]) == (False, {})

    required = run.task("Require a driver", "bare")
    assert required.failed
    assert required.msg == ("NVML cannot be initialised on this node: nvmlInit failed with Driver Not Loaded "
                            "(NVML error 9); install and load the NVIDIA driver, or set require_driver: false")
    assert not run.task("Require a driver", "seed").failed


def test_check_mode_changes_nothing_and_nvml_errors_name_the_call(sim_fleet):
    fleet = sim_fleet({"cluster": False, "nodes": [SEED_NODE, HOPPER_NODE]})
    seed_state = fleet.state_path("seed").read_bytes()
    sim.inject_fault(fleet.state_path("hopper"), "nvmlDeviceGetMigMode", "UNKNOWN", gpu=1)
    hopper_state = fleet.state_path("hopper").read_bytes()

    run = fleet.play([READ, {"name": "Selecting a GPU the node lacks", "gpufleet.mig.gpu_info": {"gpus": ["3"]}}],
                     check=True, diff=True)

    seed = run.task("Read GPU facts", "seed")
    assert (seed.status, seed.changed, "diff" in seed.result) == ("ok", False, False)
    assert fleet.state_path("seed").read_bytes() == seed_state
    hopper = run.task("Read GPU facts", "hopper")
    assert hopper.failed
    assert hopper.msg == ("Reading the GPUs of this node failed: nvmlDeviceGetMigMode failed on GPU 1: Unknown Error "
                          "(NVML error 999)")
    assert (hopper.result["nvml_call"], hopper.result["nvml_code"], hopper.result["gpu_index"]) == (
        "nvmlDeviceGetMigMode", 999, 1)
    # Only the fault's own countdown moved in the simulator; no GPU state changed.
    after = json.loads(fleet.state_path("hopper").read_text())
    before = json.loads(hopper_state)
    assert {k: v for k, v in after.items() if k != "faults"} == {k: v for k, v in before.items() if k != "faults"}
    assert run.task("Selecting a GPU the node lacks", "seed").msg == (
        "gpus: this node has no GPU 3; it has: 0 (%s)" % SEED_GPU_UUID)


def test_runs_directly_as_a_python_script(sim_fleet, tmp_path):
    """The way a module is debugged (and how the facts of a real node are captured): python gpu_info.py args.json."""
    fleet = sim_fleet({"cluster": False, "nodes": [SEED_NODE]})
    arguments = tmp_path / "args.json"
    arguments.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"detect_container_toolkit": False}}))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / ".collections"))
    completed = subprocess.run([str(fleet.workdir / "nodes" / "seed" / "python"),
                                str(REPO_ROOT / "plugins" / "modules" / "gpu_info.py"), str(arguments)],
                               capture_output=True, text=True, env=env, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert (result["changed"], result["driver_version"], [g["uuid"] for g in result["gpus"]]) == (
        False, "450.80.02", [SEED_GPU_UUID])


# Issue 8: a fleet with one node per driver branch. What each node's libnvidia-ml exports, read in the
# node's own interpreter, and gpu_info on every branch (R450/R455 only have the unversioned process and
# compute-instance calls with their older structs).
BRANCH_DRIVERS = ("450.80.02", "460.91.03", "470.57.02", "515.86.01", "535.104.05")
VERSIONED_SINCE = {"nvmlDeviceGetComputeRunningProcesses_v2": 455, "nvmlDeviceGetAttributes_v2": 455,
                   "nvmlComputeInstanceGetInfo_v2": 460, "nvmlDeviceGetComputeRunningProcesses_v3": 510,
                   "nvmlGpuInstanceCreateComputeInstanceWithPlacement": 525,
                   "nvmlGpuInstanceGetComputeInstancePossiblePlacements": 525,
                   "nvmlDeviceGetGpuInstanceProfileInfoByIdV": 580}
EXPORTS_PROBE = (
    "import json, pynvml\n"
    "pynvml.nvmlInit()\n"
    "print(json.dumps(sorted(n for n in %r if hasattr(pynvml.nvmlLib, n))))\n" % sorted(VERSIONED_SINCE))


def _branch_node(driver):
    return {"name": "r" + driver.split(".")[0], "driver_version": driver,
            "gpus": [{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["3g.20gb", "2g.10gb"]}],
            "processes": [{"gpu": 0, "pid": 5000, "name": "train", "used_memory_mib": 2048, "gi": 2, "ci": 0}]}


def test_every_driver_branch_exports_its_entry_points_and_reads_facts(sim_fleet):
    fleet = sim_fleet({"cluster": False, "nodes": [_branch_node(driver) for driver in BRANCH_DRIVERS]})
    for driver in BRANCH_DRIVERS:
        node = "r" + driver.split(".")[0]
        completed = subprocess.run([str(fleet.workdir / "nodes" / node / "python"), "-c", EXPORTS_PROBE],
                                   capture_output=True, text=True, timeout=60, check=False)
        assert completed.returncode == 0, completed.stderr
        branch = int(driver.split(".")[0])
        assert json.loads(completed.stdout) == sorted(
            name for name, since in VERSIONED_SINCE.items() if branch >= since), driver

    run = fleet.play([READ])
    for driver in BRANCH_DRIVERS:
        gpu = run.task("Read GPU facts", "r" + driver.split(".")[0]).result["gpus"][0]
        assert [(gi["id"], gi["profile_name"], [ci["profile_name"] for ci in gi["compute_instances"]])
                for gi in gpu["gpu_instances"]] == [(2, "3g.20gb", ["3g.20gb"]), (3, "2g.10gb", ["2g.10gb"])], driver
        assert gpu["processes"] == [{"pid": 5000, "name": "train", "used_memory_mib": 2048, "gpu_instance_id": 2,
                                     "compute_instance_id": 0}], driver
