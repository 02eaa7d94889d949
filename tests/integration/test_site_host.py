"""site.yml on nodes whose GPUs are held by host services and kernel modules (issue 8 items 4 and 5).

The holders live in the simulated node (twin/gpufleet_twin/nvml/host.py): while nvidia-persistenced or DCGM runs,
an A100's MIG mode change stays pending and nvidia-smi -r is refused, and DCGM makes GPU instance creation answer
IN_USE. The rollout stops them through the node's systemctl stand-in and must start exactly those again. Nodes are
reached through the twin's gpufleet_sim connection, under which ansible.builtin.reboot reboots the simulated node.
Every default fleet node has such holders (host_services: default); these tests spell theirs out, and test_site.py's
converged-fleet test checks the default node's.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from test_site import FAST_CLUSTER, core_api, devices, named, node_view, run_site
from gpufleet_twin import nvml

pytestmark = pytest.mark.slow

HELD_BY = ["nvidia-persistenced", "nvidia-dcgm"]
RECORD = "var-lib-gpufleet-mig/stopped-host-services.json"


def node_spec(name, **extra):
    return {"name": name, "driver_version": "550.54.15",
            "gpus": [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "disabled"}], "hostvars": {"mig_config": "all-1g.5gb"},
            **extra}


def services(fleet, name):
    return {s["name"]: s["active"] for s in fleet.status(name)["host_services"]}


def systemctl(fleet, name, *argv):
    env = dict(os.environ, **nvml.node_env(fleet.state_path(name)))
    return subprocess.run(["systemctl", *argv], env=env, capture_output=True, text=True, timeout=60, check=True)


def changed_tasks(results):
    return [r["task"] for r in results if r["result"].get("changed")]


def test_a_node_held_by_persistenced_and_dcgm_is_reconfigured_and_its_services_run_again(sim_fleet):
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [node_spec("gpu-1", host_services=HELD_BY + [{"name": "nvsm", "active": False}])]})
    record = fleet.state_path("gpu-1").parent / RECORD

    returncode, output, results = run_site(fleet)

    assert returncode == 0, output
    status = fleet.status("gpu-1")
    assert status["gpus"][0]["mig"]["current"] == "enabled" and devices(status) == ["1g.5gb"] * 7
    # Exactly the running holders were stopped (persistenced only for the mode change), and run again afterwards;
    # nvsm, stopped before the rollout, stays stopped.
    stopped = [r for r in named(results, "Stop the host services that hold the GPUs") if r["status"] != "skipped"]
    assert [r["result"]["stopped"] for r in stopped] == [["nvidia-dcgm.service", "nvidia-persistenced.service"]]
    started = named(results, "Start the host services stopped for the change")[-1]["result"]
    assert started["started"] == ["nvidia-persistenced.service", "nvidia-dcgm.service"]
    assert services(fleet, "gpu-1") == {"nvidia-persistenced": True, "nvidia-dcgm": True, "nvsm": False}
    assert not record.exists()
    assert status["boot_count"] == 0  # no reboot: the reset worked with the holders stopped
    assert node_view(core_api(fleet), "gpu-1")[1]["gpufleet.mig/state"] == "success"

    returncode, output, results = run_site(fleet)

    assert returncode == 0, output
    assert changed_tasks(results) == []
    assert services(fleet, "gpu-1") == {"nvidia-persistenced": True, "nvidia-dcgm": True, "nvsm": False}

    # A run killed after stopping DCGM left it stopped and on the record: the next run starts it, even though the
    # node needs no change.
    systemctl(fleet, "gpu-1", "stop", "nvidia-dcgm")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"version": 1, "stopped": ["nvidia-dcgm.service"]}))

    returncode, output, results = run_site(fleet)

    assert returncode == 0, output
    assert named(results, "Start the host services stopped for the change")[0]["result"]["started"] == ["nvidia-dcgm.service"]
    assert services(fleet, "gpu-1") == {"nvidia-persistenced": True, "nvidia-dcgm": True, "nvsm": False}
    assert not record.exists()


@pytest.mark.parametrize("holder", [{"passthrough_vm": True}, {"kernel_modules": ["nvidia_drm"]}], ids=["passthrough", "nvidia_drm"])
def test_a_node_that_cannot_reset_its_gpus_converges_with_one_reboot(sim_fleet, holder):
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [node_spec("gpu-1", host_services="dgx", **holder)]})

    returncode, output, results = run_site(fleet, reconfigure_reboot=True)

    assert returncode == 0, output
    status = fleet.status("gpu-1")
    assert status["boot_count"] == 1
    assert status["gpus"][0]["mig"]["current"] == "enabled" and devices(status) == ["1g.5gb"] * 7
    assert [r["status"] for r in named(results, "Reboot the node")] == ["changed"]
    assert all(services(fleet, "gpu-1").values())  # the DGX services run again
    report = json.loads((fleet.workdir / "report" / "latest" / "fleet-report.json").read_text())
    assert [(node["host"], node["rebooted"]) for node in report["nodes"]] == [("gpu-1", True)]
    assert node_view(core_api(fleet), "gpu-1") == (False, {"gpufleet.mig/state": "success", "gpufleet.mig/config": "all-1g.5gb",
                                                        "gpufleet.mig/strategy": "mixed"})

    returncode, output, results = run_site(fleet, reconfigure_reboot=True)

    assert returncode == 0, output
    assert changed_tasks(results) == []
    assert fleet.status("gpu-1")["boot_count"] == 1


def test_without_reconfigure_reboot_a_node_that_needs_one_fails_and_its_services_run_again(sim_fleet):
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [node_spec("gpu-1", host_services=HELD_BY, passthrough_vm=True)]})

    returncode, output, results = run_site(fleet)

    assert returncode != 0
    assert "set reconfigure_reboot to true" in output
    assert fleet.status("gpu-1")["boot_count"] == 0
    assert services(fleet, "gpu-1") == {"nvidia-persistenced": True, "nvidia-dcgm": True}


def test_a_node_phase_failure_still_starts_the_services_it_stopped(sim_fleet):
    # Every GPU instance creation fails: the node phase fails after the holders were stopped and the mode changed.
    fault = {"call": "nvmlDeviceCreateGpuInstanceWithPlacement", "error": "UNKNOWN", "times": None}
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [node_spec("gpu-1", host_services=HELD_BY, faults=[fault])]})

    returncode, output, results = run_site(fleet)

    assert returncode != 0
    failed = [r for r in results if r["status"] == "failed" and r["action"] == "gpufleet.mig.mig_layout"]
    assert failed, output
    assert services(fleet, "gpu-1") == {"nvidia-persistenced": True, "nvidia-dcgm": True}
    assert not (fleet.state_path("gpu-1").parent / RECORD).exists()
    cordoned, labels = node_view(core_api(fleet), "gpu-1")
    assert cordoned and labels["gpufleet.mig/state"] == "failed"
    report = json.loads((fleet.workdir / "report" / "latest" / "fleet-report.json").read_text())
    assert report["nodes"][0]["failed_task"].endswith("Create and destroy MIG devices as planned")
