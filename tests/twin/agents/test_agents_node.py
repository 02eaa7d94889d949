"""The node agents in-process: kubelet admission and devices, plugin lifecycle, GFD passes, clocks.

The cluster runs without HTTP and with a fake clock the test advances; NVML changes go through the
twin's nvidia-smi stand-in and NVML API, as an operator's commands would.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import pytest

from gpufleet_twin import nvml as sim
from gpufleet_twin.kube import ApiError
from gpufleet_twin.nvml import smi

from agents_seed import SEED_GPU_LINE, mig_line
from conftest import AgentCluster, daemonset, gpu_pod, seed_gpu

NS = "nvidia-device-plugin"


def nvidia_smi(state: Path, *argv: str) -> str:
    out = io.StringIO()
    code = smi.run(list(argv), str(state), out)
    assert code == 0, out.getvalue()
    return out.getvalue()


def install(env: AgentCluster, strategy: str | None = None, gfd: bool = False, release: str = "nvdp", **extra: str) -> None:
    values = {"MIG_STRATEGY": strategy} if strategy else {}
    values.update(extra)
    env.cluster.create("namespaces", {"metadata": {"name": NS}}) if not env.cluster.exists("namespaces", NS) else None
    env.cluster.create("daemonsets", daemonset(f"{release}-nvidia-device-plugin", "nvidia-device-plugin", values), NS)
    if gfd:
        env.cluster.create("daemonsets", daemonset(f"{release}-nvidia-device-plugin-gpu-feature-discovery", "gpu-feature-discovery", values), NS)


def pod_of(env: AgentCluster, daemonset_name: str) -> dict:
    (pod,) = [p for p in env.cluster.list("pods", NS) if p["metadata"]["ownerReferences"][0]["name"] == daemonset_name]
    return pod


def restart_plugin(env: AgentCluster) -> None:
    env.cluster.delete("pods", pod_of(env, "nvdp-nvidia-device-plugin")["metadata"]["name"], NS)


def phase(env: AgentCluster, name: str, namespace: str = "default") -> str:
    return env.cluster.get("pods", name, namespace)["status"]["phase"]


def test_plugin_advertises_per_strategy_and_only_after_a_restart(make_node: Callable[..., Path], agent_cluster):
    state = make_node([seed_gpu("enabled")])
    env = agent_cluster({"node1": state})
    install(env, "mixed")
    assert env.extended() == ({}, {})
    assert pod_of(env, "nvdp-nvidia-device-plugin")["status"]["phase"] == "Running"

    nvidia_smi(state, "mig", "-cgi", "0", "-C")  # 7g.40gb
    assert env.extended() == ({}, {}), "the plugin enumerates at container start only"
    restart_plugin(env)
    assert env.extended() == ({"nvidia.com/mig-7g.40gb": "1"},) * 2

    nvidia_smi(state, "mig", "-dci")
    nvidia_smi(state, "mig", "-dgi")
    nvidia_smi(state, "mig", "-cgi", "9,14,19", "-C")
    restart_plugin(env)
    fresh = {"nvidia.com/mig-1g.5gb": "1", "nvidia.com/mig-2g.10gb": "1", "nvidia.com/mig-3g.20gb": "1"}
    # kubelet keeps the vanished resource in capacity, at 0 allocatable, for its grace period
    assert env.extended() == ({**fresh, "nvidia.com/mig-7g.40gb": "1"}, {**fresh, "nvidia.com/mig-7g.40gb": "0"})
    env.advance(299)
    assert env.extended()[0]["nvidia.com/mig-7g.40gb"] == "1"
    env.advance(2)
    assert env.extended() == (fresh, fresh)


def test_deleting_the_daemonset_stops_the_endpoints(make_node: Callable[..., Path], agent_cluster):
    env = agent_cluster({"node1": make_node([seed_gpu()])})
    install(env)
    assert env.extended() == ({"nvidia.com/gpu": "1"},) * 2
    env.cluster.delete("daemonsets", "nvdp-nvidia-device-plugin", NS)
    assert env.cluster.list("pods", NS) == []
    assert env.extended() == ({"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "0"})
    env.advance(301)
    assert env.extended() == ({}, {})


def test_plugin_targets_only_nodes_its_affinity_matches(make_node: Callable[..., Path], agent_cluster):
    env = agent_cluster({"node1": make_node([seed_gpu()]), "node2": make_node([seed_gpu()])})
    env.cluster.set_node_labels("node2", {"nvidia.com/gpu.present": None})
    install(env)
    assert (env.extended("node1")[1], env.extended("node2")[1]) == ({"nvidia.com/gpu": "1"}, {})
    env.cluster.set_node_labels("node2", {"nvidia.com/gpu.present": "true"})
    assert env.extended("node2")[1] == {"nvidia.com/gpu": "1"}


def test_single_pods_get_distinct_devices_and_the_seed_listing(make_node: Callable[..., Path], agent_cluster):
    state = make_node([seed_gpu("enabled", ["1g.5gb"] * 7)])
    env = agent_cluster({"node1": state})
    install(env, "single")
    assert env.extended() == ({"nvidia.com/gpu": "7"},) * 2
    for number in range(1, 8):
        env.cluster.create("pods", gpu_pod(f"mig-single-example-{number}"), "default")
    logs = [env.cluster.pod_log("default", f"mig-single-example-{n}") for n in range(1, 8)]
    # One device each, in GI order 7..13; each container sees its device as MIG device 0 of GPU 0.
    assert logs == [f"{SEED_GPU_LINE}\n{mig_line('1g.5gb', gi)}\n" for gi in range(7, 14)]
    processes = sim.node_status(state)["processes"]
    assert sorted((p["gi"], p["ci"], p["name"]) for p in processes) == [
        (gi, 0, f"default/mig-single-example-{gi - 6}") for gi in range(7, 14)
    ]
    # The node's /proc shows each as a process of a pod's container, which is how a rollout tells it from a host's.
    cgroups = {(state.parent / "proc" / str(p["pid"]) / "cgroup").read_text() for p in processes}
    assert len(cgroups) == 7 and all(text.startswith("0::/kubepods.slice/kubepods-besteffort.slice/") for text in cgroups)

    env.cluster.create("pods", gpu_pod("one-too-many"), "default")
    rejected = env.cluster.get("pods", "one-too-many", "default")["status"]
    assert (rejected["phase"], rejected["reason"], rejected["message"]) == (
        "Failed",
        "UnexpectedAdmissionError",
        "Pod was rejected: Allocate failed due to requested number of devices unavailable for nvidia.com/gpu. "
        "Requested: 1, Available: 0, which is unexpected",
    )

    env.cluster.delete("pods", "mig-single-example-1", "default")
    env.cluster.evict("default", "mig-single-example-2")
    assert sorted(p["gi"] for p in sim.node_status(state)["processes"]) == [9, 10, 11, 12, 13]
    env.cluster.create("pods", gpu_pod("two", amount=2), "default")
    assert env.cluster.pod_log("default", "two") == f"{SEED_GPU_LINE}\n{mig_line('1g.5gb', 7, 0)}\n{mig_line('1g.5gb', 8, 1)}\n"


def test_a_resource_no_plugin_serves_is_out_of_resource(make_node: Callable[..., Path], agent_cluster):
    env = agent_cluster({"node1": make_node([seed_gpu()])})
    install(env)
    env.cluster.create("pods", gpu_pod("wants-mig", "nvidia.com/mig-1g.5gb"), "default")
    status = env.cluster.get("pods", "wants-mig", "default")["status"]
    assert (status["phase"], status["reason"], status["message"]) == (
        "Failed",
        "OutOfnvidia.com/mig-1g.5gb",
        "Pod was rejected: Node didn't have enough resource: nvidia.com/mig-1g.5gb, requested: 1, used: 0, capacity: 0",
    )


def test_one_shot_pods_complete_and_long_ones_run(make_node: Callable[..., Path], agent_cluster):
    state = make_node([seed_gpu()])
    env = agent_cluster({"node1": state})
    install(env)
    env.cluster.create("pods", gpu_pod("mig-none-example", command=["nvidia-smi", "-L"]), "default")
    assert phase(env, "mig-none-example") == "Succeeded"
    assert env.cluster.pod_log("default", "mig-none-example") == f"{SEED_GPU_LINE}\n"
    assert sim.node_status(state)["processes"] == []
    env.cluster.create("pods", gpu_pod("server", command=["python", "serve.py"], restart="Always"), "default")
    assert phase(env, "server") == "Running"
    assert [p["name"] for p in sim.node_status(state)["processes"]] == ["default/server"]
    with pytest.raises(Exception, match="in use"):
        sim.reset_gpu(state, 0)


def test_a_whole_mig_enabled_gpu_is_held_open_not_computed_on(make_node: Callable[..., Path], agent_cluster):
    state = make_node([seed_gpu("enabled")])
    env = agent_cluster({"node1": state})
    install(env)  # none: the MIG-enabled GPU is still one nvidia.com/gpu
    plugin = pod_of(env, "nvdp-nvidia-device-plugin")["metadata"]["name"]
    env.cluster.create("pods", gpu_pod("holder"), "default")
    assert env.cluster.pod_log("default", "holder") == f"{SEED_GPU_LINE}\n"
    assert sim.node_status(state)["clients"] == [{"gpu": 0, "name": f"{NS}/{plugin}"}, {"gpu": 0, "name": "default/holder"}]
    assert sim.node_status(state)["processes"] == []
    env.cluster.delete("pods", "holder", "default")
    assert sim.node_status(state)["clients"] == [{"gpu": 0, "name": f"{NS}/{plugin}"}]


def test_the_running_plugin_is_a_gpu_client_to_stop_before_a_mode_change(make_node: Callable[..., Path], agent_cluster):
    state = make_node([seed_gpu(), {"model": "A100-SXM4-40GB"}])
    env = agent_cluster({"node1": state})
    install(env)
    assert [c["gpu"] for c in sim.node_status(state)["clients"]] == [0, 1]
    out = io.StringIO()
    smi.run(["-i", "0", "-mig", "1"], str(state), out)
    assert "pending enable state" in out.getvalue() and "In use by another client" in out.getvalue()
    # Taking the plugin off the node (its affinity no longer matches) releases the GPUs.
    env.cluster.set_node_labels("node1", {"nvidia.com/gpu.present": None})
    assert sim.node_status(state)["clients"] == []
    sim.reset_gpu(state, 0)
    assert sim.node_status(state)["gpus"][0]["mig"]["current"] == "enabled"
    env.cluster.set_node_labels("node1", {"nvidia.com/gpu.present": "true"})
    assert env.extended() == ({"nvidia.com/gpu": "2"}, {"nvidia.com/gpu": "2"})


def test_single_fatal_layout_crash_loops_until_fixed(make_node: Callable[..., Path], agent_cluster):
    state = make_node([seed_gpu("enabled", ["1g.5gb"] * 2)])
    env = agent_cluster({"node1": state})
    install(env, "single")
    assert env.extended() == ({"nvidia.com/gpu": "2"},) * 2
    nvidia_smi(state, "mig", "-cgi", "14", "-C")  # a second profile on the node
    restart_plugin(env)
    pod = pod_of(env, "nvdp-nvidia-device-plugin")
    container = pod["status"]["containerStatuses"][0]
    assert (pod["status"]["phase"], container["ready"], container["restartCount"]) == ("Running", False, 1)
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert container["lastState"]["terminated"]["exitCode"] == 1
    assert container["lastState"]["terminated"]["message"].endswith("more than one MIG device type present on node")
    assert env.extended() == ({"nvidia.com/gpu": "2"}, {"nvidia.com/gpu": "0"})
    assert env.cluster.pod_log(NS, pod["metadata"]["name"]).splitlines()[-1].endswith("more than one MIG device type present on node")

    env.advance(10)  # first retry after the back-off: still broken
    assert pod_of(env, "nvdp-nvidia-device-plugin")["status"]["containerStatuses"][0]["restartCount"] == 2
    nvidia_smi(state, "mig", "-dci", "-gi", "3")
    nvidia_smi(state, "mig", "-dgi", "-gi", "3")
    env.advance(19)
    assert pod_of(env, "nvdp-nvidia-device-plugin")["status"]["containerStatuses"][0]["restartCount"] == 2
    env.advance(1)  # second back-off is 20 s: this retry enumerates the fixed layout
    status = pod_of(env, "nvdp-nvidia-device-plugin")["status"]
    assert (status["containerStatuses"][0]["ready"], status["containerStatuses"][0]["restartCount"]) == (True, 2)
    assert env.extended() == ({"nvidia.com/gpu": "2"},) * 2


def test_gfd_relabels_every_sleep_interval_and_keeps_labels_until_its_daemonset_goes(make_node: Callable[..., Path], agent_cluster):
    state = make_node([seed_gpu("enabled")])
    env = agent_cluster({"node1": state})
    install(env, "mixed", gfd=True, GFD_SLEEP_INTERVAL="30s")
    assert env.nvidia_labels()["nvidia.com/mig.strategy"] == "mixed"
    assert "nvidia.com/mig-1g.5gb.count" not in env.nvidia_labels()
    nvidia_smi(state, "mig", "-cgi", "19", "-C")
    env.advance(29)
    assert "nvidia.com/mig-1g.5gb.count" not in env.nvidia_labels()
    env.advance(1)
    assert env.nvidia_labels()["nvidia.com/mig-1g.5gb.count"] == "1"
    assert env.nvidia_labels()["nvidia.com/gpu.replicas"] == "0"

    gfd_pod = pod_of(env, "nvdp-nvidia-device-plugin-gpu-feature-discovery")
    env.cluster.delete("pods", gfd_pod["metadata"]["name"], NS)  # restart: labels stay, a new pass runs
    assert env.nvidia_labels()["nvidia.com/mig-1g.5gb.count"] == "1"
    env.cluster.set_node_labels("node1", {"nvidia.com/mig.config": "all-1g.5gb"})
    env.cluster.delete("daemonsets", "nvdp-nvidia-device-plugin-gpu-feature-discovery", NS)
    assert env.nvidia_labels() == {"nvidia.com/mig.config": "all-1g.5gb"}, "only GFD's own labels go"
    assert env.node()["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"


def test_heartbeat_and_reboot(make_node: Callable[..., Path], agent_cluster):
    state = make_node([seed_gpu("enabled", ["3g.20gb", "3g.20gb"])])
    env = agent_cluster({"node1": state})
    install(env, "mixed")
    env.cluster.create("pods", gpu_pod("worker", "nvidia.com/mig-3g.20gb"), "default")
    before = env.node()["status"]["conditions"][0]
    env.advance(10)
    after = env.node()["status"]["conditions"][0]
    assert after["status"] == "True" and after["lastTransitionTime"] == before["lastTransitionTime"]

    assert len(sim.node_status(state)["processes"]) == 1
    sim.reboot(state)  # processes end and GIs vanish (hw 1): the worker's device is gone
    env.advance(0.1)
    worker = env.cluster.get("pods", "worker", "default")["status"]
    assert (worker["phase"], worker["containerStatuses"][0]["state"]["terminated"]["reason"]) == ("Failed", "StartError")
    assert sim.node_status(state)["processes"] == []
    # the plugin restarted with the node and finds no MIG device to serve
    assert env.extended() == ({"nvidia.com/mig-3g.20gb": "2"}, {"nvidia.com/mig-3g.20gb": "0"})


def test_scheduler_places_unbound_pods_by_resources_and_cordons(make_node: Callable[..., Path], agent_cluster):
    env = agent_cluster({"node1": make_node([seed_gpu()]), "node2": make_node([{"model": "A100-SXM4-40GB", "count": 2}])})
    install(env)
    env.cluster.patch("nodes", "node1", {"spec": {"unschedulable": True}})
    env.cluster.create("pods", gpu_pod("a", node=None), "default")
    env.cluster.create("pods", gpu_pod("b", node=None), "default")
    env.cluster.create("pods", gpu_pod("c", node=None), "default")
    placed = {name: env.cluster.get("pods", name, "default")["spec"].get("nodeName") for name in "abc"}
    assert placed == {"a": "node2", "b": "node2", "c": None}
    condition = env.cluster.get("pods", "c", "default")["status"]["conditions"][0]
    assert (condition["reason"], condition["message"]) == (
        "Unschedulable", "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) were unschedulable."
    )
    env.cluster.patch("nodes", "node1", {"spec": {"unschedulable": None}})
    assert env.cluster.get("pods", "c", "default")["spec"]["nodeName"] == "node1"
    assert phase(env, "c") == "Running"


def test_pods_on_nodes_without_agents_start_at_once(make_node: Callable[..., Path], agent_cluster):
    env = agent_cluster({"node1": make_node([seed_gpu()])})
    env.cluster.add_node("cpu-0")
    env.cluster.create("pods", {"metadata": {"name": "web"}, "spec": {"nodeName": "cpu-0", "containers": [{"name": "c", "image": "c"}]}}, "default")
    assert phase(env, "web") == "Running"
    with pytest.raises(ApiError):
        env.cluster.pod_log("default", "missing")


def test_a_new_strategy_rolls_the_plugin_pod_and_renames_the_resources(make_node: Callable[..., Path], agent_cluster):
    env = agent_cluster({"node1": make_node([seed_gpu("enabled", ["3g.20gb", "3g.20gb"])])})
    install(env, "single")
    assert env.extended() == ({"nvidia.com/gpu": "2"},) * 2
    template = env.cluster.get("daemonsets", "nvdp-nvidia-device-plugin", NS)["spec"]["template"]
    template["spec"]["containers"][0]["env"] = [{"name": "MIG_STRATEGY", "value": "mixed"}]
    env.cluster.patch("daemonsets", "nvdp-nvidia-device-plugin", {"spec": {"template": template}}, "merge", NS)
    assert env.extended() == (
        {"nvidia.com/gpu": "2", "nvidia.com/mig-3g.20gb": "2"},
        {"nvidia.com/gpu": "0", "nvidia.com/mig-3g.20gb": "2"},
    )


def test_only_the_agent_of_the_node_a_pod_lands_on_looks_at_its_pods(make_node: Callable[..., Path], agent_cluster):
    env = agent_cluster({"node1": make_node([seed_gpu()]), "node2": make_node([seed_gpu()])})
    synced: list[str] = []
    for agent in env.controller.agents.values():
        original = agent.sync_pods
        agent.sync_pods = lambda cluster, agent=agent, original=original: (synced.append(agent.name), original(cluster))  # type: ignore[method-assign]
    env.cluster.create("pods", gpu_pod("w", node="node2", resource="cpu"), "default")
    assert phase(env, "w") == "Running"
    assert set(synced) == {"node2"}, "a 1,000-node fleet must not walk every agent per write"
    synced.clear()
    env.advance(10)  # heartbeats: no pod work anywhere
    assert synced == []
