"""gpufleet-sim's cluster component: the background API server with its agents, inventory, status, down."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from conftest import wait_for
from gpufleet_twin import cli

pytestmark = pytest.mark.slow

FLEET = {
    "cluster": {"timing": {"tick": 0.05, "heartbeat": 0.5}},
    "nodes": [
        {
            "name": "gpu-a",
            "driver_version": "550.54.15",
            "machine": "DGX A100",
            "labels": {"topology.kubernetes.io/zone": "lab-1"},
            "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
            "capacity": {"cpu": "128", "memory": "1Ti", "pods": "250"},
            "gpus": [{"model": "A100-SXM4-40GB", "count": 2}],
        },
        {"name": "cpu-b", "driver_version": None, "labels": {"nvidia.com/gpu.present": None}},
    ],
}


def alive(pid: int) -> bool:
    return cli._process_alive(pid)


@pytest.fixture
def fleet_up(tmp_path: Path):
    workdirs: list[Path] = []

    def up(fleet: dict) -> Path:
        fleet_file = tmp_path / f"fleet{len(workdirs)}.yml"
        fleet_file.write_text(yaml.safe_dump(fleet))
        workdir = tmp_path / f"twin{len(workdirs)}"
        workdirs.append(workdir)
        assert cli.main(["up", "--fleet", str(fleet_file), "--workdir", str(workdir)]) == 0
        return workdir

    yield up
    for workdir in workdirs:
        if (workdir / "twin.json").exists():
            cli.main(["down", "--workdir", str(workdir)])


def test_up_serves_the_fleet_nodes_and_down_stops_it(fleet_up, capsys):
    workdir = fleet_up(FLEET)
    manifest = json.loads((workdir / "twin.json").read_text())
    cluster = manifest["components"]["cluster"]
    assert list(manifest["components"]) == ["nodes", "cluster"] and alive(cluster["pid"])

    inventory = yaml.safe_load((workdir / "inventory.yml").read_text())["all"]
    kubeconfig = str(workdir / "kubeconfig")
    assert inventory["vars"] == {"gpufleet_kubeconfig": kubeconfig, "k8s_kubeconfig": kubeconfig}
    assert {name: host["k8s_node_name"] for name, host in inventory["children"]["gpu_nodes"]["hosts"].items()} == {
        "gpu-a": "gpu-a", "cpu-b": "cpu-b"
    }
    assert inventory["children"]["gpu_nodes"]["hosts"]["gpu-a"]["gpufleet_sim_state"].endswith("gpu-a/state.json")

    api = k8s_client.CoreV1Api(k8s_config.new_client_from_config(config_file=kubeconfig))
    nodes = {node.metadata.name: node for node in api.list_node().items}
    assert nodes["gpu-a"].metadata.labels["nvidia.com/gpu.present"] == "true"
    assert nodes["gpu-a"].metadata.labels["topology.kubernetes.io/zone"] == "lab-1"
    assert "nvidia.com/gpu.present" not in nodes["cpu-b"].metadata.labels
    assert [(t.key, t.effect) for t in nodes["gpu-a"].spec.taints] == [("nvidia.com/gpu", "NoSchedule")]
    assert nodes["gpu-a"].status.capacity == {"cpu": "128", "memory": "1Ti", "pods": "250"}
    # lastHeartbeatTime has one-second resolution (RFC 3339 as kubelet writes it): with a 0.5 s heartbeat a later
    # stamp shows within about 1.5 s; the deadline leaves room for a loaded CI machine.
    heartbeat = nodes["gpu-a"].status.conditions[0].last_heartbeat_time
    deadline = time.monotonic() + 10
    while api.read_node("gpu-a").status.conditions[0].last_heartbeat_time <= heartbeat:
        assert time.monotonic() < deadline, "the node's heartbeat did not move in 10 s"
        time.sleep(0.2)

    capsys.readouterr()
    assert cli.main(["status", "--workdir", str(workdir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["cluster"]
    assert set(report["nodes"]["gpu-a"]) == {"capacity", "allocatable", "labels", "taints", "unschedulable", "conditions", "pods"}
    assert report["nodes"]["gpu-a"]["unschedulable"] is False and report["nodes"]["gpu-a"]["pods"] == []
    assert cli.main(["status", "--workdir", str(workdir)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split() for line in table[-2:]] == [["cpu-b", "True", "no", "0", "-"], ["gpu-a", "True", "no", "0", "-"]]

    assert cli.main(["down", "--workdir", str(workdir)]) == 0
    assert not alive(cluster["pid"])
    assert list(workdir.iterdir()) == []


def test_cluster_false_starts_nvml_only(fleet_up):
    workdir = fleet_up({"cluster": False, "nodes": FLEET["nodes"][:1]})
    assert list(json.loads((workdir / "twin.json").read_text())["components"]) == ["nodes"]
    assert not (workdir / "kubeconfig").exists()
    assert "vars" not in yaml.safe_load((workdir / "inventory.yml").read_text())["all"]


def test_bad_cluster_settings_leave_nothing_behind(tmp_path: Path, capsys):
    fleet = tmp_path / "fleet.yml"
    fleet.write_text(yaml.safe_dump({"cluster": {"timing": {"heartbeet": 1}}, "nodes": FLEET["nodes"][:1]}))
    workdir = tmp_path / "twin"
    assert cli.main(["up", "--fleet", str(fleet), "--workdir", str(workdir)]) == 1
    assert "unknown agent timing keys: heartbeet" in capsys.readouterr().err
    assert sorted(p.name for p in workdir.iterdir()) == []


def test_server_stops_itself_when_its_workdir_is_deleted(fleet_up):
    workdir = fleet_up({"cluster": {"timing": {"tick": 0.05}}, "nodes": FLEET["nodes"][:1]})
    pid = json.loads((workdir / "twin.json").read_text())["components"]["cluster"]["pid"]
    os.unlink(workdir / "cluster" / "agents.json")
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)


def test_pod_termination_keeps_an_evicted_pod_terminating_for_the_lesser_of_it_and_its_grace(fleet_up):
    """What a drain waits for on a real node: the evicted pod's process ending, up to its grace period."""
    workdir = fleet_up({"cluster": {"timing": {"tick": 0.05, "pod_termination": 1.5}}, "nodes": FLEET["nodes"][:1]})
    api = k8s_client.CoreV1Api(k8s_config.new_client_from_config(config_file=str(workdir / "kubeconfig")))
    tolerate = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

    def start_pod(name: str, grace: int) -> None:
        api.create_namespaced_pod("default", {
            "metadata": {"name": name},
            "spec": {"nodeName": "gpu-a", "terminationGracePeriodSeconds": grace, "tolerations": tolerate,
                     "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "infinity"]}]},
        })
        wait_for(lambda: api.read_namespaced_pod(name, "default").status.phase == "Running", 10, f"{name} to run")

    def listed(name: str) -> bool:
        return any(pod.metadata.name == name for pod in api.list_namespaced_pod("default").items)

    start_pod("graceful", grace=30)
    started = time.monotonic()
    api.delete_namespaced_pod("graceful", "default")
    assert api.read_namespaced_pod("graceful", "default").metadata.deletion_timestamp is not None
    wait_for(lambda: not listed("graceful"), 10, "the evicted pod to go")
    assert 1.4 <= time.monotonic() - started < 5

    start_pod("quick", grace=0)  # the lesser of the two: a zero grace period ends the pod at once
    api.delete_namespaced_pod("quick", "default")
    assert not listed("quick")


def test_pod_termination_may_be_zero_but_not_negative() -> None:
    from gpufleet_twin.agents.config import AgentTiming

    assert AgentTiming.from_mapping({"pod_termination": 0}).pod_termination == 0
    with pytest.raises(ValueError, match="pod_termination must be >= 0"):
        AgentTiming.from_mapping({"pod_termination": -1})
    with pytest.raises(ValueError, match="heartbeat must be > 0"):
        AgentTiming.from_mapping({"heartbeat": 0})
