"""Fixtures for the emulated Kubernetes API server: a bare Cluster, a running server, clients, binaries."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gpufleet_twin.kube import ApiServer, Cluster
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

REPO_ROOT = Path(__file__).resolve().parents[3]
TOOLS_DIR = REPO_ROOT / ".tools" / "bin"


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[ApiServer]:
    api = ApiServer(state_dir=tmp_path / "apiserver").start()
    try:
        yield api
        internal_errors = list(api.handler.errors)
        assert not internal_errors, f"the emulated API server failed internally: {internal_errors!r}"
    finally:
        api.stop()


@pytest.fixture
def kube_client(apiserver: ApiServer) -> Iterator[k8s_client.ApiClient]:
    api_client = k8s_config.new_client_from_config(config_file=str(apiserver.kubeconfig_path))
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def core_v1(kube_client: k8s_client.ApiClient) -> k8s_client.CoreV1Api:
    return k8s_client.CoreV1Api(kube_client)


def tool_path(name: str) -> Path:
    path = TOOLS_DIR / name
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is missing: run `scripts/install-k8s-tools .tools/bin` to fetch kubectl and helm")
    return path


@dataclass
class CommandLine:
    """Runs a real binary against the emulated server with a private HOME, caches and kubeconfig."""

    executable: Path
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(self.executable), *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.executable.name} {' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result


def _tool_env(apiserver: ApiServer, home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C",
        "KUBECONFIG": str(apiserver.kubeconfig_path),
        "KUBECACHEDIR": str(home / "kube-cache"),
        "HELM_CACHE_HOME": str(home / "helm-cache"),
        "HELM_CONFIG_HOME": str(home / "helm-config"),
        "HELM_DATA_HOME": str(home / "helm-data"),
    }


@pytest.fixture
def kubectl(apiserver: ApiServer, tmp_path: Path) -> CommandLine:
    return CommandLine(tool_path("kubectl"), _tool_env(apiserver, tmp_path / "home"))


@pytest.fixture
def helm4(apiserver: ApiServer, tmp_path: Path) -> CommandLine:
    return CommandLine(tool_path("helm"), _tool_env(apiserver, tmp_path / "home"))


@pytest.fixture
def helm3(apiserver: ApiServer, tmp_path: Path) -> CommandLine:
    return CommandLine(tool_path("helm3"), _tool_env(apiserver, tmp_path / "home"))
