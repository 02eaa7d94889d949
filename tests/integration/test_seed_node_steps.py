"""The node-side steps of NVIDIA's "MIG Support in Kubernetes" (shared/seed) on a simulated A100-SXM4-40GB.

The seed ran driver 450.80.02 (R450: no CreateGpuInstanceWithPlacement, so the driver places the GPU
instances; old MIG UUID form). Each step runs the modules through ansible-playbook; the result is read
back independently through the simulator's nvidia-smi stand-in and its node status, and compared with the
seed's ``nvidia-smi -L`` listings.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from gpufleet_twin import nvml

pytestmark = pytest.mark.slow

SEED_GPU_UUID = "GPU-4200ccc0-2667-d4cb-9137-f932c716232a"
SEED_GPU_LINE = "GPU 0: A100-SXM4-40GB (UUID: %s)" % SEED_GPU_UUID
# `nvidia-smi -L` after `nvidia-smi mig -cgi 19,19,19,19,19,19,19 -C` (seed, "The single strategy").
SEED_SINGLE = [SEED_GPU_LINE] + ["MIG 1g.5gb Device %d: (UUID: MIG-%s/%d/0)" % (device, SEED_GPU_UUID, gi)
                                 for device, gi in enumerate(range(7, 14))]
# `nvidia-smi -L` after `nvidia-smi mig -cgi 9,14,19 -C` on a GPU without MIG devices (seed, "The mixed strategy").
SEED_MIXED = [SEED_GPU_LINE,
              "MIG 3g.20gb Device 0: (UUID: MIG-%s/2/0)" % SEED_GPU_UUID,
              "MIG 2g.10gb Device 1: (UUID: MIG-%s/3/0)" % SEED_GPU_UUID,
              "MIG 1g.5gb Device 2: (UUID: MIG-%s/9/0)" % SEED_GPU_UUID]
SEED_MEMORY_MIB = {"1g.5gb": 4864, "2g.10gb": 9984, "3g.20gb": 20096}  # the seed's GFD gpu.memory labels


# Stop / start a DGX's host GPU clients with the product's module, recording what it stopped on the node.
GPU_CLIENTS = ["nvidia-persistenced", "nvidia-fabricmanager", "nvsm", "nv_peer_mem", "nvidia-dcgm", "dcgm-exporter"]


def gpu_clients_task(name, state):
    return {"name": name, "gpufleet.mig.host_services": {
        "state": state, "names": GPU_CLIENTS, "record": "{{ mig_node_state_dir }}/stopped-host-services.json"}}


def nvidia_smi(fleet, *args):
    """Run the node's nvidia-smi stand-in; one line per output line, whitespace collapsed as in the seed text."""
    env = dict(os.environ)
    env.update(nvml.node_env(fleet.state_path("seed-node")))
    completed = subprocess.run(["nvidia-smi"] + list(args), env=env, capture_output=True, text=True, check=True)
    return [" ".join(line.split()) for line in completed.stdout.splitlines() if line.strip()]


def devices_with_memory(fleet):
    gpu = fleet.status("seed-node")["gpus"][0]
    return sorted((ci["mig_device_index"], ci["profile_name"], gi["memory_mib"])
                  for gi in gpu["gpu_instances"] for ci in gi["compute_instances"])


def test_seed_node_steps_reproduce_on_a_simulated_a100_with_driver_450(sim_fleet):
    fleet = sim_fleet({"nodes": [{"name": "seed-node", "driver_version": "450.80.02", "gpus": [
        {"model": "A100-SXM4-40GB", "uuid": SEED_GPU_UUID, "pci_bus_id": "00000000:36:00.0"}]}]})
    assert nvidia_smi(fleet, "--query-gpu=mig.mode.current,memory.total", "--format=csv,noheader") == [
        "Disabled, 40537 MiB"]

    # The node is DGX-like (the twin's default): its host GPU clients hold the GPU until stopped, which the seed's
    # "requires stopping all GPU clients first" asks for. The product's module stops them and records what it stopped.
    clients = [service["name"] for service in fleet.status("seed-node")["host_services"]]
    assert "nvidia-persistenced" in clients
    stop = fleet.play([gpu_clients_task("Stop the host GPU clients", "stopped")])
    assert sorted(stop.task("Stop the host GPU clients").result["stopped"]) == sorted(c + ".service" for c in clients)

    # `sudo nvidia-smi -mig 1`
    enable = fleet.play([{"name": "Enable MIG", "gpufleet.mig.mig_mode": {"state": "enabled", "reset": True}}])
    assert enable.task("Enable MIG").changed, enable.stdout
    assert nvidia_smi(fleet, "--query-gpu=mig.mode.current", "--format=csv,noheader") == ["Enabled"]
    assert nvidia_smi(fleet, "-L") == [SEED_GPU_LINE]

    # `sudo nvidia-smi mig -cgi 19,19,19,19,19,19,19 -C`
    single = fleet.play([{"name": "Seven 1g.5gb", "gpufleet.mig.mig_layout": {"layout": {"1g.5gb": 7}}}])
    devices = single.task("Seven 1g.5gb").result["gpus"][0]["devices"]
    assert nvidia_smi(fleet, "-L") == SEED_SINGLE
    assert devices_with_memory(fleet) == [(index, "1g.5gb", 4864) for index in range(7)]
    assert [device["uuid"] for device in devices] == [line.split("UUID: ")[1][:-1] for line in SEED_SINGLE[1:]]

    # The seed's mixed section starts from "MIG is enabled on the GPU and no MIG devices present", then
    # `sudo nvidia-smi mig -cgi 9,14,19 -C`.
    mixed = fleet.play([{"name": "No MIG devices", "gpufleet.mig.mig_layout": {"layout": {}}},
                        {"name": "3g.20gb, 2g.10gb and 1g.5gb", "gpufleet.mig.mig_layout": {
                            "layout": {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 1}}}])
    assert mixed.task("No MIG devices").changed
    result = mixed.task("3g.20gb, 2g.10gb and 1g.5gb").result["gpus"][0]
    assert nvidia_smi(fleet, "-L") == SEED_MIXED
    assert devices_with_memory(fleet) == [(0, "3g.20gb", 20096), (1, "2g.10gb", 9984), (2, "1g.5gb", 4864)]
    assert [(device["profile"], device["memory_mib"]) for device in result["devices"]] == [
        (name, SEED_MEMORY_MIB[name]) for name in ("3g.20gb", "2g.10gb", "1g.5gb")]
    assert set(step["placement_source"] for step in result["actions"] if step["action"] == "create_gpu_instance") == {
        "driver"}

    # Back to the seed's starting point: MIG disabled.
    disable = fleet.play([{"name": "Disable MIG", "gpufleet.mig.mig_mode": {
        "state": "disabled", "force": True, "reset": True}},
        gpu_clients_task("Start the host GPU clients again", "started")])
    assert disable.task("Disable MIG").changed, disable.stdout
    assert [service["name"] for service in fleet.status("seed-node")["host_services"] if service["active"]] == clients
    assert nvidia_smi(fleet, "--query-gpu=mig.mode.current", "--format=csv,noheader") == ["Disabled"]
    assert nvidia_smi(fleet, "-L") == [SEED_GPU_LINE]
