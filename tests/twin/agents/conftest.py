"""Fixtures for the node agents: simulated node state files, and an in-process cluster with agents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpufleet_twin import nvml as sim
from gpufleet_twin.agents import AgentTiming, NodeAgentSpec, build_cluster

from agents_seed import SEED_GPU_UUID

# The seed document's driver (shared/seed/mig-support-in-kubernetes.txt); its GPU is SEED_GPU_UUID.
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


# ---------------------------------------------------------------- gpufleet-sim up + real binaries
REPO_ROOT = Path(__file__).resolve().parents[3]
TOOLS_DIR = REPO_ROOT / ".tools" / "bin"
VENV_BIN = Path(sys.executable).parent
# Short clocks, so periodic behaviour shows within a test (AgentTiming; seconds).
FAST_TIMING = {"tick": 0.05, "heartbeat": 1, "device_plugin_grace": 1.5, "gfd_sleep_interval": 0.5, "crash_backoff": 0.5}


def tool_path(name: str) -> Path:
    path = TOOLS_DIR / name
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is missing: run `make tools` (scripts/install-k8s-tools .tools/bin) to fetch kubectl and helm")
    return path


@dataclass
class Twin:
    """A fleet twin brought up by ``gpufleet-sim up``, with kubectl, helm 4, helm 3 and nvidia-smi."""

    workdir: Path
    home: Path

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def _env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C",
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.home / "kube-cache"),
            "HELM_CACHE_HOME": str(self.home / "helm-cache"),
            "HELM_CONFIG_HOME": str(self.home / "helm-config"),
            "HELM_DATA_HOME": str(self.home / "helm-data"),
        }

    def run(self, argv: list[str], check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, env=env or self._env(), capture_output=True, text=True, timeout=120, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([str(tool_path("kubectl")), *args], check)

    def helm(self, *args: str, major: int = 4, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([str(tool_path("helm" if major == 4 else "helm3")), *args], check)

    def nvidia_smi(self, node: str, *args: str) -> str:
        """The node's nvidia-smi stand-in, run as an operator would on the node."""
        state = self.workdir / "nodes" / node / "state.json"
        env = {**self._env(), **sim.node_env(state)}
        return self.run(["nvidia-smi", *args], env=env).stdout

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def extended(self, node: str) -> tuple[dict[str, str], dict[str, str]]:
        status = self.get("node", node)["status"]
        pick = lambda values: {k: v for k, v in values.items() if k.startswith("nvidia.com/")}  # noqa: E731
        return pick(status["capacity"]), pick(status["allocatable"])

    def gfd_labels(self, node: str) -> dict[str, str]:
        labels = self.get("node", node)["metadata"]["labels"]
        return {k: v for k, v in labels.items() if k.startswith("nvidia.com/") and k != "nvidia.com/gpu.present"}

    def state(self, node: str) -> dict[str, Any]:
        return sim.node_status(self.workdir / "nodes" / node / "state.json")


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except AssertionError as failed:
            last = failed
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
def twin_up(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Twin]]:
    started: list[Path] = []

    def up(fleet: dict[str, Any]) -> Twin:
        workdir = tmp_path / f"twin-{len(started)}"
        fleet_file = tmp_path / f"fleet-{len(started)}.yml"
        fleet_file.write_text(yaml.safe_dump(fleet, sort_keys=False))
        subprocess.run([str(VENV_BIN / "gpufleet-sim"), "up", "--fleet", str(fleet_file), "--workdir", str(workdir)],
                       check=True, capture_output=True, text=True, timeout=120)
        started.append(workdir)
        home = tmp_path / f"home-{len(started)}"
        home.mkdir()
        return Twin(workdir, home)

    yield up
    for workdir in reversed(started):
        subprocess.run([str(VENV_BIN / "gpufleet-sim"), "down", "--workdir", str(workdir)], capture_output=True, check=False, timeout=60)


def pod_overrides(args: list[str], resource: str = "nvidia.com/gpu", amount: int = 1) -> str:
    """kubectl 1.35 has no --limits: the container comes in through --overrides."""
    return json.dumps({"spec": {"containers": [{
        "name": "cuda", "image": "nvidia/cuda:11.0-base", "args": args, "resources": {"limits": {resource: str(amount)}},
    }]}})
