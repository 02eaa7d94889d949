"""gpufleet.mig.k8s_node_info through ansible-playbook against the emulated API server: reads, never writes."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest
from kube_harness import KubeControl, start_kube_control
from test_k8s_node import NODE, add_device_plugin_daemonset, add_gpu_node, add_pod, node_of, pod_names, replica_set

pytestmark = pytest.mark.slow

MODULE = "gpufleet.mig.k8s_node_info"
DEVICE_PLUGIN = "app.kubernetes.io/name=nvidia-device-plugin"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeControl]:
    yield from start_kube_control(tmp_path)


def test_reads_the_node_and_the_selected_pods_and_waits_for_them(kube: KubeControl) -> None:
    cluster = kube.cluster
    add_gpu_node(cluster)
    add_device_plugin_daemonset(cluster)
    add_pod(cluster, "trainer", owner=replica_set(cluster, "trainer"), limits={"nvidia.com/gpu": "1"})
    daemon_pod = [name for name in pod_names(cluster) if name.startswith("nvidia-device-plugin/")][0].split("/")[1]
    before = node_of(cluster)["metadata"]["resourceVersion"]

    run = kube.play([
        kube.task(MODULE, "Read", name=NODE),
        kube.task(MODULE, "Read the device plugin", name=NODE, pod_selector=DEVICE_PLUGIN),
        kube.task(MODULE, "Wait for it", name=NODE, pod_selector=DEVICE_PLUGIN, wait_for="pods_present", wait_timeout=5),
        kube.task(MODULE, "Wait for it to leave", name=NODE, pod_selector=DEVICE_PLUGIN, wait_for="pods_absent",
                  wait_timeout=2, wait_sleep=1, _ignore_errors=True),
        kube.task(MODULE, "Read a node that is not there", name="gpu-node-9", _ignore_errors=True),
    ], check=True)

    read = run.task("Read")
    assert not read.changed and read.result["pods"] == []
    assert read.result["node"]["name"] == NODE and read.result["node"]["unschedulable"] is False
    assert read.result["node"]["labels"]["nvidia.com/gpu.present"] == "true"
    pods = run.task("Read the device plugin").result["pods"]
    assert [(pod["namespace"], pod["name"], pod["controller_kind"]) for pod in pods] == [
        ("nvidia-device-plugin", daemon_pod, "DaemonSet")]
    assert not run.task("Wait for it").failed
    left = run.task("Wait for it to leave")
    assert left.failed and left.result["msg"] == (
        "Pods matching %s are still on node %s after 2 s: nvidia-device-plugin/%s; raise wait_timeout if they need longer"
        % (DEVICE_PLUGIN, NODE, daemon_pod))
    missing = run.task("Read a node that is not there")
    assert missing.failed and missing.result["api_status"] == 404
    assert node_of(cluster)["metadata"]["resourceVersion"] == before
    assert [path for path in kube.api_requests("PATCH", "") + kube.api_requests("POST", "")] == []


def test_waits_until_the_selected_pods_have_left(kube: KubeControl) -> None:
    cluster = kube.cluster
    add_gpu_node(cluster)
    add_pod(cluster, "gpu-client", owner=replica_set(cluster, "gpu-client"), labels={"app": "gpu-client"})
    timer = threading.Timer(2.0, lambda: cluster.delete("pods", "gpu-client", "default"))
    timer.start()
    try:
        run = kube.play([kube.task(MODULE, "Wait", name=NODE, pod_selector="app=gpu-client", wait_for="pods_absent",
                                   wait_timeout=60, wait_sleep=1)])
    finally:
        timer.cancel()
    assert not run.task("Wait").failed and run.task("Wait").result["pods"] == []
