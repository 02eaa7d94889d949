"""The three test procedures of NVIDIA's "MIG Support in Kubernetes" (shared/seed), run with the product.

Each procedure runs against ``gpufleet-sim up`` with its emulated cluster and node agents (kubelet, device
plugin, GFD) and drives only product modules through ansible-playbook: ``mig_mode`` / ``mig_layout`` for the
seed's ``nvidia-smi -mig 1`` and ``nvidia-smi mig -cgi ... -C``, ``helm_release`` (the real helm binary, the
stand-in chart) to start the device plugin and GFD with the seed's strategy, ``gpu_info`` to read the GPUs,
and ``mig_node_validate`` for the seed's ``kubectl describe node`` / ``kubectl get node`` checks and its
``kubectl run ... nvidia-smi -L`` pods.

The node is the seed's: an A100-SXM4-40GB on driver 450.80.02 (CUDA 11.0), GPU UUID as printed in the seed, a
DGX as machine. Expected figures are the seed's; label sets are today's GFD (audit.md A5, B, D): the seed shows
GFD v0.2.0, whose 3g label prefix ``mig-3g.21gb`` became ``mig-3g.20gb``, and which lacked ``gpu.replicas``,
``vgpu.present``, ``cuda.*-version.*`` and friends. The modules' results are checked against the seed, and the
node is read back independently through the API.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from gpufleet_twin import nvidia_chart

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
HELM = REPO_ROOT / ".tools" / "bin" / "helm"
KUBECTL = REPO_ROOT / ".tools" / "bin" / "kubectl"
CHART = nvidia_chart.device_plugin_chart(REPO_ROOT)  # NVIDIA's chart when provided, else the stand-in
NODE = "seed-node"
RELEASE = "nvdp"
NAMESPACE = "nvidia-device-plugin"

SEED_GPU_UUID = "GPU-4200ccc0-2667-d4cb-9137-f932c716232a"  # single and mixed sections
SEED_NONE_GPU_UUID = "GPU-15f0798d-c807-231d-6525-a7827081f0f1"  # none section
# Fast clocks for the agents (seconds): GFD relabels every half second, a stopped plugin's resources
# leave capacity after 1.5 s.
FAST_CLUSTER = {"timing": {"tick": 0.05, "heartbeat": 1, "device_plugin_grace": 1.5, "gfd_sleep_interval": 0.5,
                           "crash_backoff": 0.5}}

_DRIVER_450_80_02 = {
    "nvidia.com/cuda.driver.major": "450", "nvidia.com/cuda.driver.minor": "80", "nvidia.com/cuda.driver.rev": "02",
    "nvidia.com/cuda.runtime.major": "11", "nvidia.com/cuda.runtime.minor": "0",
}
# The seed's none listing without gfd.timestamp and gpu.machine (not GPU state), plus today's additions.
CURRENT_GFD_ADDITIONS = {
    "nvidia.com/cuda.driver-version.major": "450", "nvidia.com/cuda.driver-version.minor": "80",
    "nvidia.com/cuda.driver-version.revision": "02", "nvidia.com/cuda.driver-version.full": "450.80.02",
    "nvidia.com/cuda.runtime-version.major": "11", "nvidia.com/cuda.runtime-version.minor": "0",
    "nvidia.com/cuda.runtime-version.full": "11.0",
    "nvidia.com/gpu.sharing-strategy": "none", "nvidia.com/mig.capable": "true", "nvidia.com/mps.capable": "false",
    "nvidia.com/vgpu.present": "false",
}
SEED_NONE_LABELS = dict(_DRIVER_450_80_02, **{
    "nvidia.com/gpu.count": "1", "nvidia.com/gpu.memory": "40537", "nvidia.com/gpu.product": "A100-SXM4-40GB",
})
SEED_ARCHITECTURE = {"nvidia.com/gpu.compute.major": "8", "nvidia.com/gpu.compute.minor": "0",
                     "nvidia.com/gpu.family": "ampere"}
SEED_SINGLE_MIG_LABELS = {
    "nvidia.com/gpu.count": "7", "nvidia.com/gpu.memory": "4864", "nvidia.com/gpu.product": "A100-SXM4-40GB-MIG-1g.5gb",
    "nvidia.com/gpu.slices.ci": "1", "nvidia.com/gpu.slices.gi": "1", "nvidia.com/mig.strategy": "single",
}
SEED_SINGLE_ATTRIBUTES = {
    "nvidia.com/gpu.engines.copy": "1", "nvidia.com/gpu.engines.decoder": "0", "nvidia.com/gpu.engines.encoder": "0",
    "nvidia.com/gpu.engines.jpeg": "0", "nvidia.com/gpu.engines.ofa": "0", "nvidia.com/gpu.multiprocessors": "14",
}
# name, memory, SMs, slices, copy engines, decoders (the seed's mixed listing).
SEED_MIXED_PROFILES = [("1g.5gb", 4864, 14, 1, 1, 0), ("2g.10gb", 9984, 28, 2, 2, 1), ("3g.20gb", 20096, 42, 3, 3, 2)]
SEED_GPU_LINE = "GPU 0: A100-SXM4-40GB (UUID: %s)" % SEED_GPU_UUID


def mixed_labels():
    labels = {}
    for profile, memory, sms, slices, copies, decoders in SEED_MIXED_PROFILES:
        prefix = "nvidia.com/mig-%s." % profile
        labels.update({prefix + "count": "1", prefix + "memory": str(memory), prefix + "slices.ci": str(slices),
                       prefix + "slices.gi": str(slices),
                       # today's GFD only:
                       prefix + "product": "A100-SXM4-40GB-MIG-" + profile, prefix + "replicas": "1",
                       prefix + "sharing-strategy": "none",
                       prefix + "multiprocessors": str(sms), prefix + "engines.copy": str(copies),
                       prefix + "engines.decoder": str(decoders), prefix + "engines.encoder": "0",
                       prefix + "engines.jpeg": "0", prefix + "engines.ofa": "0"})
    return labels


@pytest.fixture
def seed_cluster(sim_fleet):
    if not os.access(HELM, os.X_OK):
        pytest.skip("%s is missing: run `make tools` to fetch kubectl and helm" % HELM)

    def up(gpu_uuid, mig_mode):
        return sim_fleet({"cluster": FAST_CLUSTER, "nodes": [{
            "name": NODE, "driver_version": "450.80.02", "machine": "NVIDIA DGX",
            "gpus": [{"model": "A100-SXM4-40GB", "uuid": gpu_uuid, "pci_bus_id": "00000000:36:00.0",
                      "mig_mode": mig_mode}]}]})

    return up


# The seed's node is a DGX, whose host GPU clients (the twin's default node) hold the GPU; the seed says "requires
# stopping all GPU clients first". These tasks do that with the product's module, in start order, and start exactly
# what they stopped again.
GPU_CLIENTS = ["nvidia-persistenced", "nvidia-fabricmanager", "nvsm", "nv_peer_mem", "nvidia-dcgm", "dcgm-exporter"]


def gpu_clients_task(name, state):
    return {"name": name, "gpufleet.mig.host_services": {
        "state": state, "names": GPU_CLIENTS, "record": "{{ mig_node_state_dir }}/stopped-host-services.json"}}


def running_gpu_clients(fleet):
    return [service["name"] for service in fleet.status(NODE)["host_services"] if service["active"]]


def helm_task(name, strategy, state="present", workdir=None):
    args = {"release_name": RELEASE, "release_namespace": NAMESPACE, "state": state, "binary_path": str(HELM),
            "kubeconfig": "{{ gpufleet_kubeconfig }}"}
    if state == "present":
        # The seed installs the plugin and GFD with --set migStrategy; the chart runs GFD since v0.15.0.
        args.update(chart_ref=str(CHART), create_namespace=True, values={"migStrategy": strategy, "gfd": {"enabled": True}})
    else:
        args.update(wait=True)
    home = "{{ gpufleet_helm_home }}"
    return {"name": name, "gpufleet.mig.helm_release": args, "delegate_to": "localhost",
            "environment": {"HELM_CACHE_HOME": home + "/cache", "HELM_CONFIG_HOME": home + "/config",
                            "HELM_DATA_HOME": home + "/data"}}


def facts_task(name):
    return {"name": name, "gpufleet.mig.gpu_info": {"detect_container_toolkit": False}, "register": "node_gpus"}


def validate_task(name, strategy, **options):
    args = {"node_name": "{{ k8s_node_name }}", "gpu_facts": "{{ node_gpus }}", "strategy": strategy,
            "kubeconfig": "{{ gpufleet_kubeconfig }}", "timeout": 60, "poll_interval": 1, "validation_pods": True,
            "validation_pod_timeout": 60}
    args.update(options)
    return {"name": name, "gpufleet.mig.mig_node_validate": args, "delegate_to": "localhost"}


def play(fleet, tasks):
    run = fleet.play(tasks, extra_vars={"gpufleet_helm_home": str(fleet.workdir / "helm-home")})
    failed = [result for result in run.results if result.failed]
    assert run.returncode == 0 and not failed, "%s\n%s\n%s" % (
        [(result.task, result.msg) for result in failed], run.stdout[-3000:], run.stderr[-3000:])
    return run


def node_object(fleet):
    """The node as kubectl shows it (read independently of the module)."""
    completed = subprocess.run([str(KUBECTL), "--kubeconfig", str(fleet.workdir / "kubeconfig"), "get", "node", NODE,
                                "-o", "json"], capture_output=True, text=True, check=True, timeout=60)
    node = json.loads(completed.stdout)
    pick = lambda values: dict((k, v) for k, v in values.items() if k.startswith("nvidia.com/"))  # noqa: E731
    return pick(node["status"]["allocatable"]), pick(node["status"]["capacity"]), pick(node["metadata"]["labels"])


def assert_expected_is_the_seeds(result, resources, labels):
    """The module expected the seed's figures, and the node it saw showed them.

    Every label of the seed's set is either expected with the seed's value or reported as not determined by
    the GPU facts (``unverified_labels``: SMs, engines and architecture while gpu_info does not return them);
    none is expected with another value or silently left out.
    """
    assert result["expected"]["resources"] == resources
    expected, unverified = result["expected"]["labels"], set(result["expected"]["unverified_labels"])
    wrong = dict((key, (value, expected.get(key))) for key, value in labels.items()
                 if expected.get(key) != value and not (key not in expected and key in unverified))
    assert wrong == {}, "label: (seed, expected by the module)"
    assert result["matched"] and result["differences"] == {"allocatable": {}, "capacity": {}, "labels": {}}
    assert result["seen"]["allocatable"] == resources
    seen = result["seen"]["labels"]
    assert dict((key, seen.get(key)) for key in labels) == labels


def test_seed_none_strategy_one_gpu_before_and_after_enabling_mig(seed_cluster):
    fleet = seed_cluster(SEED_NONE_GPU_UUID, "disabled")
    before = play(fleet, [
        facts_task("Verify that MIG is disabled on the GPU"),
        helm_task("Start the device plugin and GFD with the none strategy", "none"),
        validate_task("Observe 1 nvidia.com/gpu and the none labels, run nvidia-smi -L in a pod", "none"),
    ])
    assert before.task("Verify that MIG is disabled on the GPU").result["gpus"][0]["mig_mode"]["current"] == "disabled"
    result = before.task("Observe 1 nvidia.com/gpu and the none labels, run nvidia-smi -L in a pod").result
    assert_expected_is_the_seeds(result, {"nvidia.com/gpu": 1}, dict(
        SEED_NONE_LABELS, **SEED_ARCHITECTURE, **CURRENT_GFD_ADDITIONS, **{"nvidia.com/gpu.replicas": "1"}))
    assert "nvidia.com/mig.strategy" not in result["seen"]["labels"]
    (pod,) = result["pods"]
    assert pod["log"].splitlines() == ["GPU 0: A100-SXM4-40GB (UUID: %s)" % SEED_NONE_GPU_UUID]
    assert pod["assigned"]["uuid"] == SEED_NONE_GPU_UUID and pod["deleted"]

    # "Enable MIG on the GPU (requires stopping all GPU clients first)", then "Restart the kubelet and the plugins".
    after = play(fleet, [
        helm_task("Stop the device plugin and GFD", "none", state="absent"),
        gpu_clients_task("Stop the host GPU clients", "stopped"),
        {"name": "Enable MIG", "gpufleet.mig.mig_mode": {"state": "enabled", "reset": True}},
        gpu_clients_task("Start the host GPU clients again", "started"),
        helm_task("Start the device plugin and GFD again", "none"),
        facts_task("Read the GPU with MIG enabled"),
        validate_task("Observe 1 nvidia.com/gpu again, run nvidia-smi -L in a pod", "none"),
    ])
    assert after.task("Enable MIG").changed
    clients = running_gpu_clients(fleet)
    assert "nvidia-persistenced" in clients and after.task("Stop the host GPU clients").result["stopped"]
    assert sorted(after.task("Start the host GPU clients again").result["started"]) == sorted(c + ".service" for c in clients)
    assert after.task("Read the GPU with MIG enabled").result["gpus"][0]["mig_mode"]["current"] == "enabled"
    result = after.task("Observe 1 nvidia.com/gpu again, run nvidia-smi -L in a pod").result
    # "Observe that the labels haven't changed": today's GFD only flips gpu.replicas to 0 (audit.md B).
    assert_expected_is_the_seeds(result, {"nvidia.com/gpu": 1}, dict(
        SEED_NONE_LABELS, **SEED_ARCHITECTURE, **CURRENT_GFD_ADDITIONS, **{"nvidia.com/gpu.replicas": "0"}))
    (pod,) = result["pods"]
    assert pod["log"].splitlines() == ["GPU 0: A100-SXM4-40GB (UUID: %s)" % SEED_NONE_GPU_UUID]
    allocatable, capacity, labels = node_object(fleet)
    assert (allocatable, capacity) == ({"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "1"})
    assert labels["nvidia.com/gpu.machine"] == "NVIDIA-DGX" and "nvidia.com/mig.strategy" not in labels


def test_seed_single_strategy_seven_1g_devices(seed_cluster):
    fleet = seed_cluster(SEED_GPU_UUID, "enabled")
    run = play(fleet, [
        facts_task("Verify that MIG is enabled on the GPU and no MIG devices present"),
        gpu_clients_task("Stop the host GPU clients", "stopped"),
        {"name": "Create 7 single-slice MIG devices", "gpufleet.mig.mig_layout": {"layout": {"1g.5gb": 7}}},
        gpu_clients_task("Start the host GPU clients again", "started"),
        facts_task("Read the MIG devices"),
        helm_task("Start the device plugin and GFD with the single strategy", "single"),
        validate_task("Observe 7 nvidia.com/gpu and the single labels, deploy 7 pods", "single",
                      validation_pod_count="one_per_device",
                      validation_command=["bash", "-c", "nvidia-smi -L; sleep infinity"]),
    ])
    empty = run.task("Verify that MIG is enabled on the GPU and no MIG devices present").result["gpus"][0]
    assert (empty["mig_mode"]["current"], empty["gpu_instances"]) == ("enabled", [])
    result = run.task("Observe 7 nvidia.com/gpu and the single labels, deploy 7 pods").result
    labels = dict(SEED_NONE_LABELS, **SEED_ARCHITECTURE, **CURRENT_GFD_ADDITIONS, **SEED_SINGLE_MIG_LABELS,
                  **SEED_SINGLE_ATTRIBUTES, **{"nvidia.com/gpu.replicas": "1"})
    assert_expected_is_the_seeds(result, {"nvidia.com/gpu": 7}, labels)

    # The seed's seven pods: each lists the GPU and one distinct 1g.5gb device (GIs 7..13 on R450).
    mig_uuids = ["MIG-%s/%d/0" % (SEED_GPU_UUID, gi) for gi in range(7, 14)]
    assert len(result["pods"]) == 7
    assert sorted(pod["assigned"]["uuid"] for pod in result["pods"]) == sorted(mig_uuids)
    for pod in result["pods"]:
        assert [" ".join(line.split()) for line in pod["log"].splitlines()] == [
            SEED_GPU_LINE, "MIG 1g.5gb Device 0: (UUID: %s)" % pod["assigned"]["uuid"]]
        assert pod["deleted"]

    assert running_gpu_clients(fleet) == [service["name"] for service in fleet.status(NODE)["host_services"]]
    allocatable, capacity, node_labels = node_object(fleet)
    assert (allocatable, capacity) == ({"nvidia.com/gpu": "7"}, {"nvidia.com/gpu": "7"})
    assert dict((key, node_labels.get(key)) for key in labels) == labels


def test_seed_mixed_strategy_three_profiles(seed_cluster):
    fleet = seed_cluster(SEED_GPU_UUID, "enabled")
    run = play(fleet, [
        gpu_clients_task("Stop the host GPU clients", "stopped"),
        {"name": "Create 3 MIG devices of different sizes", "gpufleet.mig.mig_layout": {
            "layout": {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 1}}},
        gpu_clients_task("Start the host GPU clients again", "started"),
        facts_task("Read the MIG devices"),
        helm_task("Start the device plugin and GFD with the mixed strategy", "mixed"),
        validate_task("Observe one of each MIG resource and the mixed labels, deploy a pod per resource", "mixed"),
    ])
    result = run.task("Observe one of each MIG resource and the mixed labels, deploy a pod per resource").result
    resources = {"nvidia.com/mig-1g.5gb": 1, "nvidia.com/mig-2g.10gb": 1, "nvidia.com/mig-3g.20gb": 1}
    labels = dict(SEED_NONE_LABELS, **SEED_ARCHITECTURE, **CURRENT_GFD_ADDITIONS, **mixed_labels(),
                  **{"nvidia.com/gpu.replicas": "0", "nvidia.com/mig.strategy": "mixed"})
    assert_expected_is_the_seeds(result, resources, labels)
    assert not any("3g.21gb" in key for key in result["seen"]["labels"])

    # `-cgi 9,14,19 -C` on R450 gives GIs 2, 3 and 9; the seed's 1g.5gb pod printed .../9/0 as Device 0.
    logs = dict((pod["resource"], [" ".join(line.split()) for line in pod["log"].splitlines()]) for pod in result["pods"])
    assert logs == dict(
        ("nvidia.com/mig-" + profile, [SEED_GPU_LINE, "MIG %s Device 0: (UUID: MIG-%s/%d/0)" % (profile, SEED_GPU_UUID, gi)])
        for profile, gi in (("3g.20gb", 2), ("2g.10gb", 3), ("1g.5gb", 9)))
    assert all(pod["deleted"] and pod["problem"] is None for pod in result["pods"])

    assert running_gpu_clients(fleet) == [service["name"] for service in fleet.status(NODE)["host_services"]]
    allocatable, capacity, node_labels = node_object(fleet)
    assert allocatable == capacity == dict((name, str(count)) for name, count in resources.items())
    assert dict((key, node_labels.get(key)) for key in labels) == labels
