"""mig_node_validate through ansible-playbook: facts from gpu_info on a simulated node, the node object on
the emulated API server. The device plugin, GFD and kubelet are played at the cluster boundary only
(node status/labels, pod log/phase written through the emulator's Cluster API)."""
from __future__ import annotations

import threading

import pytest

from fleet_harness import one_node_spec

kube = pytest.importorskip("gpufleet_twin.kube", reason="the fleet twin's API emulator is not installed")
pytestmark = pytest.mark.slow

NODE = "gpu-node-1"


@pytest.fixture
def api(tmp_path):
    server = kube.ApiServer(state_dir=tmp_path / "apiserver").start()
    server.cluster.add_node(NODE)
    try:
        yield server
    finally:
        server.stop()


def read_facts_task():
    return {"name": "Read GPU facts", "gpufleet.mig.gpu_info": {"detect_container_toolkit": False}, "register": "node_gpus"}


def validate_task(name, strategy, **options):
    args = {"node_name": "{{ inventory_hostname }}", "gpu_facts": "{{ node_gpus }}", "strategy": strategy,
            "kubeconfig": "{{ kubeconfig }}", "timeout": 2, "poll_interval": 1}
    args.update(options)
    return {"name": name, "gpufleet.mig.mig_node_validate": args, "delegate_to": "localhost", "ignore_errors": True}


class PodRunner(object):
    """Plays kubelet for validation pods: lists the device of the pod's resource (from the node's facts)."""

    def __init__(self, cluster, listings):
        self.cluster, self.listings = cluster, listings
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        self.thread.join()

    def _loop(self):
        while not self.stop.wait(0.05):
            for pod in self.cluster.list("pods", "default"):
                if pod["status"].get("phase") != "Running":
                    continue
                resource = next(iter(pod["spec"]["containers"][0]["resources"]["limits"]))
                self.cluster.set_pod_log("default", pod["metadata"]["name"], self.listings[resource])
                self.cluster.set_pod_status("default", pod["metadata"]["name"], phase="Succeeded")


def test_module_validates_the_seed_mixed_node_and_runs_its_pods(sim_fleet, api):
    fleet = sim_fleet(one_node_spec(driver="450.80.02", mig_mode="enabled",
                                    gpus=[{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled",
                                           "mig_devices": ["3g.20gb", "2g.10gb", "1g.5gb"]}]))
    gpu = fleet.status(NODE)["gpus"][0]
    uuids = dict((gi["profile_name"], gi["compute_instances"][0]["mig_uuid"]) for gi in gpu["gpu_instances"])
    api.cluster.set_extended_resources(NODE, {"nvidia.com/mig-1g.5gb": 1, "nvidia.com/mig-2g.10gb": 1,
                                              "nvidia.com/mig-3g.20gb": 1, "nvidia.com/mig-7g.40gb": 0})
    labels = {"nvidia.com/cuda.driver.major": "450", "nvidia.com/cuda.driver.minor": "80",
              "nvidia.com/cuda.driver.rev": "02", "nvidia.com/cuda.runtime.major": "11",
              "nvidia.com/cuda.runtime.minor": "0", "nvidia.com/cuda.driver-version.major": "450",
              "nvidia.com/cuda.driver-version.minor": "80", "nvidia.com/cuda.driver-version.revision": "02",
              "nvidia.com/cuda.driver-version.full": "450.80.02", "nvidia.com/cuda.runtime-version.major": "11",
              "nvidia.com/cuda.runtime-version.minor": "0", "nvidia.com/cuda.runtime-version.full": "11.0",
              "nvidia.com/gpu.count": "1", "nvidia.com/gpu.memory": "40537", "nvidia.com/gpu.product": "A100-SXM4-40GB",
              "nvidia.com/gpu.replicas": "0", "nvidia.com/gpu.sharing-strategy": "none", "nvidia.com/mig.capable": "true",
              "nvidia.com/mps.capable": "false", "nvidia.com/vgpu.present": "false", "nvidia.com/mig.strategy": "mixed",
              "nvidia.com/gpu.machine": "NVIDIA-DGX", "nvidia.com/gfd.timestamp": "1605658841",
              "nvidia.com/gpu.compute.major": "8", "nvidia.com/gpu.compute.minor": "0", "nvidia.com/gpu.family": "ampere"}
    # The seed's GFD figures per profile: memory, SMs, slices, copy engines, decoders.
    for profile, memory, sms, slices, copy_engines, decoders in (("1g.5gb", 4864, 14, 1, 1, 0),
                                                                  ("2g.10gb", 9984, 28, 2, 2, 1),
                                                                  ("3g.20gb", 20096, 42, 3, 3, 2)):
        prefix = "nvidia.com/mig-%s." % profile
        labels.update({prefix + "count": "1", prefix + "product": "A100-SXM4-40GB-MIG-" + profile,
                       prefix + "replicas": "1", prefix + "sharing-strategy": "none", prefix + "memory": str(memory),
                       prefix + "multiprocessors": str(sms), prefix + "slices.gi": str(slices),
                       prefix + "slices.ci": str(slices), prefix + "engines.copy": str(copy_engines),
                       prefix + "engines.decoder": str(decoders), prefix + "engines.encoder": "0",
                       prefix + "engines.jpeg": "0", prefix + "engines.ofa": "0"})
    api.cluster.set_node_labels(NODE, labels)
    listings = dict(("nvidia.com/mig-" + profile, "GPU 0: A100-SXM4-40GB (UUID: %s)\n  MIG %s Device 0: (UUID: %s)\n"
                     % (gpu["uuid"], profile, uuid)) for profile, uuid in uuids.items())

    with PodRunner(api.cluster, listings):
        run = fleet.play([
            read_facts_task(),
            validate_task("Validate in check mode", "mixed", validation_pods=True),
            validate_task("Validate with pods", "mixed", validation_pods=True, validation_pod_timeout=20),
            validate_task("Validate under single", "single"),
        ], extra_vars={"kubeconfig": str(api.kubeconfig_path)})

    checked = run.task("Validate in check mode")
    assert not checked.failed, checked.msg
    validated = run.task("Validate with pods")
    assert (validated.failed, validated.changed, validated.result["matched"]) == (False, False, True), validated.msg
    assert validated.result["lingering"] == {}
    assert validated.result["expected"]["resources"] == {
        "nvidia.com/mig-1g.5gb": 1, "nvidia.com/mig-2g.10gb": 1, "nvidia.com/mig-3g.20gb": 1}
    # With SM, engine and compute-capability facts from gpu_info, only host-derived labels stay unverified.
    assert sorted(validated.result["expected"]["unverified_labels"])[:3] == [
        "nvidia.com/gfd.timestamp", "nvidia.com/gpu.clique", "nvidia.com/gpu.machine"]
    assigned = dict((pod["resource"], pod["assigned"]["uuid"]) for pod in validated.result["pods"])
    assert assigned == dict(("nvidia.com/mig-" + profile, uuid) for profile, uuid in uuids.items())
    assert all(pod["deleted"] for pod in validated.result["pods"])
    assert api.cluster.list("pods", "default") == []

    refused = run.task("Validate under single")
    assert refused.failed
    assert refused.msg == (
        "Node gpu-node-1 cannot be validated: MIG strategy 'single' cannot serve this node: it has more than one MIG "
        "profile (GPU 0: 1g.5gb, 2g.10gb, 3g.20gb), and the NVIDIA device plugin would exit with 'invalid MIG "
        "configuration: more than one MIG device type present on node' and crash-loop. Use one profile on every "
        "MIG-enabled GPU of the node, or the mixed strategy")
    assert refused.result["expected"]["problem"]["reason"] == "multiple_profiles"


def test_module_times_out_with_the_difference_and_check_mode_does_not_wait(sim_fleet, api):
    fleet = sim_fleet(one_node_spec(driver="450.80.02"))
    api.cluster.set_extended_resources(NODE, {"nvidia.com/gpu": 2})
    vars_ = {"kubeconfig": str(api.kubeconfig_path)}
    run = fleet.play([read_facts_task(), validate_task("Validate", "none")], extra_vars=vars_)
    failed = run.task("Validate")
    assert failed.failed
    assert failed.msg.startswith(
        "Node gpu-node-1 does not show the resources and labels its MIG state requires under the none strategy after "
        "2 s: allocatable nvidia.com/gpu: expected 1, seen 2; capacity nvidia.com/gpu: expected 1, seen 2; none of the "
        "23 expected labels is present (nvidia.com/gpu.count, nvidia.com/gpu.product, nvidia.com/cuda.driver-version.full, "
        "...), so GPU feature discovery has not labelled the node")
    assert failed.result["differences"]["allocatable"] == {"nvidia.com/gpu": {"expected": 1, "seen": 2}}
    assert failed.result["waited"] >= 2

    checked = fleet.play([read_facts_task(), validate_task("Validate", "none", timeout=600)], check=True, extra_vars=vars_)
    assert checked.task("Validate").failed
    assert checked.task("Validate").result["waited"] < 2
    assert "under the none strategy: allocatable nvidia.com/gpu" in checked.task("Validate").msg
