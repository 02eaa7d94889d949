"""Fixtures for the node agents: simulated node state files, and an in-process cluster with agents."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpufleet_twin import nvml as sim
from gpufleet_twin.agents import AgentTiming, NodeAgentSpec, build_cluster

# The seed document's GPU (shared/seed/mig-support-in-kubernetes.txt), an A100-SXM4-40GB on 450.80.02.
SEED_GPU_UUID = "GPU-4200ccc0-2667-d4cb-9137-f932c716232a"
SEED_DRIVER = "450.80.02"


@pytest.fixture
def make_node(tmp_path: Path) -> Callable[..., Path]:
    """Write a node state file; returns its path."""
    counter = {"n": 0}

    def make(gpus: list[dict[str, Any]], driver_version: str | None = SEED_DRIVER, **node: Any) -> Path:
        counter["n"] += 1
        path = tmp_path / f"node{counter['n']}" / "state.json"
        sim.create_node_state(path, {"name": f"node{counter['n']}", "driver_version": driver_version, "gpus": gpus, **node})
        return path

    return make


def seed_gpu(mig_mode: str = "disabled", mig_devices: list[str] | None = None) -> dict[str, Any]:
    gpu: dict[str, Any] = {"model": "A100-SXM4-40GB", "uuid": SEED_GPU_UUID, "mig_mode": mig_mode}
    if mig_devices:
        gpu["mig_devices"] = mig_devices
    return gpu


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class AgentCluster:
    """An in-process cluster whose nodes are played by agents; the test moves the clock and ticks."""

    def __init__(self, state_paths: dict[str, Path], timing: AgentTiming) -> None:
        self.clock = FakeClock()
        self.state_paths = state_paths
        specs = [NodeAgentSpec(name=name, state_path=str(path), labels={"nvidia.com/gpu.present": "true"}) for name, path in state_paths.items()]
        self.cluster, self.controller = build_cluster(specs, timing, self.clock)

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        with self.cluster._lock:
            self.controller.tick(self.cluster)

    def node(self, name: str = "node1") -> dict[str, Any]:
        return self.cluster.get("nodes", name)

    def extended(self, name: str = "node1") -> tuple[dict[str, str], dict[str, str]]:
        status = self.node(name)["status"]
        pick = lambda values: {k: v for k, v in values.items() if k.startswith("nvidia.com/")}  # noqa: E731
        return pick(status["capacity"]), pick(status["allocatable"])

    def nvidia_labels(self, name: str = "node1") -> dict[str, str]:
        labels = self.node(name)["metadata"]["labels"]
        return {k: v for k, v in labels.items() if k.startswith("nvidia.com/") and k != "nvidia.com/gpu.present"}


TIMING = AgentTiming(heartbeat=10, device_plugin_grace=300, gfd_sleep_interval=60, crash_backoff=10, crash_backoff_max=300, tick=0.1)


@pytest.fixture
def agent_cluster() -> Iterator[Callable[..., AgentCluster]]:
    made: list[AgentCluster] = []

    def make(state_paths: dict[str, Path], timing: AgentTiming = TIMING) -> AgentCluster:
        made.append(AgentCluster(state_paths, timing))
        return made[-1]

    yield make
    for cluster in made:
        assert cluster.controller.errors == [], cluster.controller.errors


def daemonset(name: str, command: str, env: dict[str, str] | None = None, namespace: str = "nvidia-device-plugin") -> dict[str, Any]:
    """A DaemonSet shaped like the chart's (same selector, affinity and tolerations)."""
    labels = {"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/instance": name}
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}
                    ]}}},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{
                        "name": f"{command}-ctr",
                        "image": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0",
                        "command": [command],
                        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                    }],
                },
            },
        },
    }


def gpu_pod(name: str, resource: str = "nvidia.com/gpu", amount: int = 1, command: list[str] | None = None,
            restart: str = "Never", node: str | None = "node1") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": restart,
        "containers": [{
            "name": "cuda",
            "image": "nvidia/cuda:11.0-base",
            "args": command or ["bash", "-c", "nvidia-smi -L; sleep infinity"],
            "resources": {"limits": {resource: str(amount)}},
        }],
    }
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name}, "spec": spec}
