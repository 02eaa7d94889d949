"""node_validate.py against the fleet twin's emulated API server, through the real kubernetes client.

The device plugin, GFD and the kubelet's pod runtime are played here only at the cluster boundary: node
status and labels are written, and pods get their log and phase, through the emulator's Cluster API.
"""
from __future__ import annotations

import copy
import threading
import time

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, TaskError
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeApiError, KubeClient, build_api_client
from ansible_collections.gpufleet.mig.plugins.module_utils._node_validate import (
    compare_node,
    describe_diff,
    node_expectation,
    parse_device_listing,
    pod_selector,
    validate_node,
    validation_pod,
)
from test_mig_strategy import MIXED_3_2_1, SEED_GPU_UUID, SEVEN_1G, seed_facts

kube = pytest.importorskip("gpufleet_twin.kube", reason="the fleet twin's API emulator is not installed")

NODE = "gpu-node-1"
SEED_SINGLE_LOG = (
    "GPU 0: A100-SXM4-40GB (UUID: GPU-4200ccc0-2667-d4cb-9137-f932c716232a) MIG 1g.5gb Device 0: "
    "(UUID: MIG-GPU-4200ccc0-2667-d4cb-9137-f932c716232a/7/0)")


@pytest.fixture
def api(tmp_path):
    server = kube.ApiServer(state_dir=tmp_path / "apiserver").start()
    server.cluster.add_node(NODE)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(api):
    with KubeClient(build_api_client(kubeconfig=str(api.kubeconfig_path))) as kube_client:
        yield kube_client


def show(api, expectation, labels=None):
    """What a healthy device plugin and GFD make the node show for ``expectation``."""
    api.cluster.set_extended_resources(NODE, expectation.resources)
    api.cluster.set_node_labels(NODE, dict(expectation.labels.labels, **(labels or {})))


class FakeKubelet(object):
    """Runs validation pods: gives each the next free device of its resource and writes its listing."""

    def __init__(self, cluster, expectation, reuse_first_device=False, phase="Succeeded"):
        self.cluster = cluster
        self.expectation = expectation
        self.reuse_first_device = reuse_first_device
        self.phase = phase
        self.handled = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        self.thread.join()

    def _listing(self, ref):
        if ref.kind == "gpu":
            return "GPU %d: %s (UUID: %s)\n" % (ref.gpu_index, ref.gpu_name, ref.uuid)
        return "GPU %d: %s (UUID: %s)\n  MIG %s Device 0: (UUID: %s)\n" % (
            ref.gpu_index, ref.gpu_name, ref.gpu_uuid, ref.profile, ref.uuid)

    def _loop(self):
        given = {}
        while not self.stop.wait(0.02):
            for pod in self.cluster.list("pods", "default"):
                name = pod["metadata"]["name"]
                if name in self.handled or pod["status"].get("phase") != "Running":
                    continue
                resource = next(iter(pod["spec"]["containers"][0]["resources"]["limits"]))
                refs = self.expectation.devices[resource]
                position = 0 if self.reuse_first_device else given.get(resource, 0)
                given[resource] = position + 1
                self.cluster.set_pod_log("default", name, self._listing(refs[position]))
                self.cluster.set_pod_status("default", name, phase=self.phase)
                self.handled.add(name)


def test_seed_listing_flattened_on_one_line_parses():
    assert parse_device_listing(SEED_SINGLE_LOG) == [
        {"kind": "gpu", "index": 0, "name": "A100-SXM4-40GB", "uuid": SEED_GPU_UUID},
        {"kind": "mig", "index": 0, "profile": "1g.5gb", "uuid": "MIG-GPU-4200ccc0-2667-d4cb-9137-f932c716232a/7/0",
         "gpu_uuid": SEED_GPU_UUID},
    ]


def test_a_matching_node_validates_without_waiting(api, client):
    expectation = node_expectation(seed_facts(SEVEN_1G, mig="enabled"), "single")
    show(api, expectation, {"nvidia.com/gfd.timestamp": "1605657366", "nvidia.com/gpu.machine": "NVIDIA-DGX"})
    result = validate_node(client, NODE, expectation, timeout=5, poll_interval=1)
    assert (result["matched"], result["changed"], result["waited"] < 1) == (True, False, True)
    assert result["seen"]["allocatable"] == {"nvidia.com/gpu": 7}
    assert result["differences"] == {"allocatable": {}, "capacity": {}, "labels": {}}


def test_waits_for_the_device_plugin_and_gfd_to_catch_up(api, client):
    expectation = node_expectation(seed_facts(MIXED_3_2_1, mig="enabled"), "mixed")
    api.cluster.set_extended_resources(NODE, {"nvidia.com/gpu": 1})
    timer = threading.Timer(0.5, show, (api, expectation))
    timer.start()
    try:
        result = validate_node(client, NODE, expectation, timeout=10, poll_interval=0.1)
    finally:
        timer.cancel()
    assert result["matched"] and 0.4 < result["waited"] < 5


def test_timeout_fails_with_a_precise_diff(api, client):
    expectation = node_expectation(seed_facts(SEVEN_1G, mig="enabled"), "single")
    none_labels = node_expectation(seed_facts(mig="enabled"), "none").labels.labels
    api.cluster.set_extended_resources(NODE, {"nvidia.com/gpu": 1})
    api.cluster.set_node_labels(NODE, none_labels)
    started = time.monotonic()
    with pytest.raises(TaskError) as caught:
        validate_node(client, NODE, expectation, timeout=0.5, poll_interval=0.1, names={"timeout": "validate_timeout"})
    assert 0.5 <= time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith(
        "Node gpu-node-1 does not show the resources and labels its MIG state requires under the single strategy "
        "after 0.5 s: allocatable nvidia.com/gpu: expected 7, seen 1; capacity nvidia.com/gpu: expected 7, seen 1; "
        "label nvidia.com/mig.strategy: expected 'single', seen absent; label nvidia.com/gpu.count: expected '7', "
        "seen '1'; label nvidia.com/gpu.product: expected 'A100-SXM4-40GB-MIG-1g.5gb', seen 'A100-SXM4-40GB'; ")
    assert message.endswith("started after the last MIG change, or raise validate_timeout")
    assert caught.value.details["differences"]["labels"]["nvidia.com/mig.strategy"] == {"expected": "single", "seen": None}
    assert caught.value.details["differences"]["labels"]["nvidia.com/gpu.replicas"] == {"expected": "1", "seen": "0"}


def test_check_mode_reads_the_node_once(api, client):
    expectation = node_expectation(seed_facts(SEVEN_1G, mig="enabled"), "single")
    started = time.monotonic()
    with pytest.raises(TaskError, match="under the single strategy: allocatable nvidia.com/gpu: expected 7, seen absent"):
        validate_node(client, NODE, expectation, timeout=30, poll_interval=1, check_mode=True, validation_pods=True)
    assert time.monotonic() - started < 2
    show(api, expectation)
    result = validate_node(client, NODE, expectation, timeout=30, check_mode=True, validation_pods=True)
    assert result["pods"] == [] and api.cluster.list("pods", "default") == []


def test_unknown_node_is_an_api_error(client):
    expectation = node_expectation(seed_facts(), "none")
    with pytest.raises(KubeApiError, match="Cannot read node gpu-node-9: the API server answered 404"):
        validate_node(client, "gpu-node-9", expectation, timeout=1)


def test_one_pod_per_mixed_resource_each_gets_its_device(api, client):
    expectation = node_expectation(seed_facts(MIXED_3_2_1, mig="enabled"), "mixed")
    show(api, expectation)
    with FakeKubelet(api.cluster, expectation):
        result = validate_node(client, NODE, expectation, timeout=5, poll_interval=0.05, validation_pods=True,
                               image="nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04", pod_timeout=10)
    assigned = dict((pod["resource"], pod["assigned"]["uuid"]) for pod in result["pods"])
    assert assigned == {
        "nvidia.com/mig-1g.5gb": "MIG-%s/9/0" % SEED_GPU_UUID,
        "nvidia.com/mig-2g.10gb": "MIG-%s/3/0" % SEED_GPU_UUID,
        "nvidia.com/mig-3g.20gb": "MIG-%s/2/0" % SEED_GPU_UUID,
    }
    # A pod counts as done once its log lists its device, which may be just before it ends.
    assert all(pod["problem"] is None and pod["deleted"] and pod["phase"] in ("Running", "Succeeded")
               for pod in result["pods"])
    assert "MIG 1g.5gb Device 0" in [pod for pod in result["pods"] if pod["resource"] == "nvidia.com/mig-1g.5gb"][0]["log"]
    assert result["changed"] is False
    assert api.cluster.list("pods", "default") == []


def test_one_pod_per_device_on_the_seed_single_layout(api, client):
    expectation = node_expectation(seed_facts(SEVEN_1G, mig="enabled"), "single")
    show(api, expectation)
    with FakeKubelet(api.cluster, expectation, phase="Running"):
        result = validate_node(client, NODE, expectation, timeout=5, poll_interval=0.05, validation_pods=True,
                               image="busybox", command=["sh", "-c", "nvidia-smi -L; sleep 3600"],
                               pod_count="one_per_device", pod_timeout=10)
    assert sorted(pod["assigned"]["uuid"] for pod in result["pods"]) == sorted(
        "MIG-%s/%d/0" % (SEED_GPU_UUID, gi) for gi in range(7, 14))
    assert set(pod["phase"] for pod in result["pods"]) == {"Running"}
    assert api.cluster.list("pods", "default") == []


def test_two_pods_on_the_same_device_fail_and_are_kept_on_request(api, client):
    expectation = node_expectation(seed_facts(SEVEN_1G, mig="enabled"), "single")
    show(api, expectation)
    with FakeKubelet(api.cluster, expectation, reuse_first_device=True):
        with pytest.raises(TaskError) as caught:
            validate_node(client, NODE, expectation, timeout=5, poll_interval=0.05, validation_pods=True,
                          pod_count="one_per_device", cleanup="on_success", pod_timeout=10)
    pods = caught.value.details["pods"]
    assert len([pod for pod in pods if pod["problem"]]) == 6
    assert "each validation pod must get a distinct device" in str(caught.value)
    assert caught.value.details["changed"] is True
    assert len(api.cluster.list("pods", "default")) == 7


def test_a_pod_that_never_lists_a_device_times_out_and_is_cleaned_up(api, client):
    expectation = node_expectation(seed_facts(), "none")
    show(api, expectation)
    with pytest.raises(TaskError) as caught:
        validate_node(client, NODE, expectation, timeout=5, poll_interval=0.05, validation_pods=True, pod_timeout=0.5)
    (pod,) = caught.value.details["pods"]
    assert pod["problem"] == "pod %s for nvidia.com/gpu did not list its devices within 0.5 s (phase Running)" % pod["name"]
    assert api.cluster.list("pods", "default") == []


def test_a_device_of_another_node_is_refused(api, client):
    expectation = node_expectation(seed_facts(), "none")
    show(api, expectation)
    other = node_expectation(seed_facts(gpu_uuid="GPU-15f0798d-c807-231d-6525-a7827081f0f1"), "none")
    with FakeKubelet(api.cluster, other):
        with pytest.raises(TaskError, match="got GPU-15f0798d-c807-231d-6525-a7827081f0f1, which is not a "
                                                      "nvidia.com/gpu device of this node"):
            validate_node(client, NODE, expectation, timeout=5, poll_interval=0.05, validation_pods=True, pod_timeout=5)


def test_pods_of_an_earlier_run_are_deleted_first(api, client):
    expectation = node_expectation(seed_facts(), "none")
    show(api, expectation)
    leftover = validation_pod(NODE, "nvidia.com/gpu", "default", "busybox", ["nvidia-smi", "-L"])
    api.cluster.create("pods", leftover, "default")
    (leftover,) = client.list_pods(label_selector=pod_selector(NODE))
    # Generous bounds: they only cost time when the fake kubelet is starved (a loaded CI machine).
    kubelet = FakeKubelet(api.cluster, expectation)
    # The earlier run's pod got its device back then; the fake kubelet hands this run's pod the node's only device,
    # however quickly it sees the leftover running before validate_node deletes it.
    kubelet.handled.add(leftover["metadata"]["name"])
    with kubelet:
        result = validate_node(client, NODE, expectation, timeout=30, poll_interval=0.05, validation_pods=True, pod_timeout=30)
    assert result["changed"] is True and len(result["pods"]) == 1
    assert api.cluster.list("pods", "default") == []


def test_missing_namespace_is_named(api, client):
    expectation = node_expectation(seed_facts(), "none")
    show(api, expectation)
    with pytest.raises(MigError, match="namespace gpu-validation does not exist; create it or set validation_namespace"):
        validate_node(client, NODE, expectation, timeout=5, validation_pods=True, namespace="gpu-validation")


def test_validation_pod_manifest_binds_to_the_node_and_requests_one_unit():
    pod = validation_pod("a" * 70, "nvidia.com/mig-1g.5gb.me", "default", "busybox", ["nvidia-smi", "-L"])
    assert pod["spec"]["nodeName"] == "a" * 70
    assert pod["metadata"]["generateName"] == "gpufleet-validate-mig-1g-5gb-me-"
    assert pod["metadata"]["labels"]["gpufleet.mig/validation-node"].startswith("sha1-")
    assert len(pod["metadata"]["labels"]["gpufleet.mig/validation-node"]) <= 63
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/mig-1g.5gb.me": "1"}
    assert pod["spec"]["restartPolicy"] == "Never"


def test_without_gfd_only_resources_are_checked(api, client):
    expectation = node_expectation(seed_facts(MIXED_3_2_1, mig="enabled"), "mixed")
    api.cluster.set_extended_resources(NODE, expectation.resources)
    api.cluster.set_node_labels(NODE, {"nvidia.com/mig.strategy": "single"})
    result = validate_node(client, NODE, expectation, timeout=1, poll_interval=0.1, check_labels=False)
    assert result["matched"] and result["seen"]["labels"] == {"nvidia.com/mig.strategy": "single"}
    with pytest.raises(TaskError) as caught:
        validate_node(client, NODE, expectation, timeout=0, poll_interval=0.1)
    assert "after 0 s: label nvidia.com/mig.strategy: expected 'mixed', seen 'single'; label nvidia.com/gpu.count: " \
        "expected '1', seen absent;" in str(caught.value)


def test_a_node_without_gfd_labels_is_summed_up():
    expectation = node_expectation(seed_facts(MIXED_3_2_1, mig="enabled"), "mixed")
    diff = compare_node(expectation, {"allocatable": expectation.resources, "capacity": expectation.resources}).diff
    assert describe_diff(diff) == [
        "none of the %d expected labels is present (nvidia.com/mig.strategy, nvidia.com/gpu.count, "
        "nvidia.com/gpu.product, ...), so GPU feature discovery has not labelled the node" % len(expectation.labels.labels)]


# ------------------------------------------------------------------------------------- comparison


def _node(allocatable, capacity=None, labels=None):
    return {"metadata": {"name": "gpu-node-1", "labels": labels or {}},
            "status": {"allocatable": allocatable, "capacity": allocatable if capacity is None else capacity}}


def test_a_node_showing_the_seed_single_state_matches():
    facts = seed_facts(SEVEN_1G, mig="enabled")
    expectation = node_expectation(facts, "single")
    labels = dict(expectation.labels.labels, **{"nvidia.com/gfd.timestamp": "1605657366",
                                                "nvidia.com/gpu.machine": "NVIDIA-DGX",
                                                "nvidia.com/gpu.mode": "compute",
                                                "nvidia.com/gpu.present": "true",
                                                "kubernetes.io/hostname": "gpu-node-1"})
    comparison = compare_node(expectation, _node({"cpu": "8", "nvidia.com/gpu": "7"}, labels=labels))
    assert comparison.matches, comparison.diff
    assert comparison.seen["allocatable"] == {"nvidia.com/gpu": 7}


def test_stale_names_with_zero_allocatable_linger_without_failing():
    expectation = node_expectation(seed_facts(MIXED_3_2_1, mig="enabled"), "mixed")
    allocatable = {"nvidia.com/mig-1g.5gb": "1", "nvidia.com/mig-2g.10gb": "1", "nvidia.com/mig-3g.20gb": "1",
                   "nvidia.com/mig-7g.40gb": "0"}
    capacity = dict(allocatable, **{"nvidia.com/mig-7g.40gb": "1"})
    comparison = compare_node(expectation, _node(allocatable, capacity, expectation.labels.labels))
    assert comparison.matches, comparison.diff
    assert comparison.lingering == {"nvidia.com/mig-7g.40gb": 1}


def test_diff_names_each_wrong_resource_and_label():
    expectation = node_expectation(seed_facts(SEVEN_1G, mig="enabled"), "single")
    labels = dict(expectation.labels.labels)
    labels["nvidia.com/gpu.count"] = "1"
    labels["nvidia.com/mig-7g.40gb.count"] = "1"  # left over from an earlier mixed labelling
    del labels["nvidia.com/gpu.multiprocessors"]
    comparison = compare_node(expectation, _node({"nvidia.com/gpu": "1", "nvidia.com/mig-7g.40gb": "1"}, labels=labels))
    assert not comparison.matches
    assert comparison.diff == {
        "allocatable": {"nvidia.com/gpu": {"expected": 7, "seen": 1},
                        "nvidia.com/mig-7g.40gb": {"expected": None, "seen": 1}},
        "capacity": {"nvidia.com/gpu": {"expected": 7, "seen": 1}},
        "labels": {"nvidia.com/gpu.count": {"expected": "7", "seen": "1"},
                   "nvidia.com/gpu.multiprocessors": {"expected": "14", "seen": None},
                   "nvidia.com/mig-7g.40gb.count": {"expected": None, "seen": "1"}},
    }
    assert describe_diff(comparison.diff) == [
        "allocatable nvidia.com/gpu: expected 7, seen 1",
        "allocatable nvidia.com/mig-7g.40gb: expected absent, seen 1",
        "capacity nvidia.com/gpu: expected 7, seen 1",
        "label nvidia.com/gpu.count: expected '7', seen '1'",
        "label nvidia.com/mig-7g.40gb.count: expected absent, seen '1'",
        "label nvidia.com/gpu.multiprocessors: expected '14', seen absent",
    ]


def test_mig_strategy_label_under_none_is_a_difference_but_foreign_labels_are_not():
    expectation = node_expectation(seed_facts(), "none")
    labels = dict(expectation.labels.labels, **{"nvidia.com/mig.strategy": "single", "nvidia.com/mig.config": "all-1g.5gb",
                                                "nvidia.com/gpu.deploy.device-plugin": "true"})
    comparison = compare_node(expectation, _node({"nvidia.com/gpu": "1"}, labels=labels))
    assert comparison.diff["labels"] == {"nvidia.com/mig.strategy": {"expected": None, "seen": "single"}}


def test_expectation_round_trips_to_plain_data():
    expectation = node_expectation(seed_facts(MIXED_3_2_1, mig="enabled"), "mixed")
    data = expectation.to_dict()
    assert data["resources"] == {"nvidia.com/mig-3g.20gb": 1, "nvidia.com/mig-2g.10gb": 1, "nvidia.com/mig-1g.5gb": 1}
    assert data["devices"]["nvidia.com/mig-2g.10gb"][0]["uuid"] == "MIG-%s/3/0" % SEED_GPU_UUID
    assert copy.deepcopy(data) == data and data["problem"] is None
