"""``python -m gpufleet_twin.kube serve`` as a separate process: port file, kubeconfig, clean stop, restart."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubernetes import client, config


@contextmanager
def _serve(state_dir: Path, *extra: str) -> Iterator[Path]:
    port_file = state_dir / "apiserver.port"
    process = subprocess.Popen(
        [sys.executable, "-m", "gpufleet_twin.kube", "serve", "--state-dir", str(state_dir), "--port-file", str(port_file), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the server did not write its port file"
            time.sleep(0.05)
        yield port_file
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
        assert not port_file.exists(), "the port file must go with the server"


def _core(state_dir: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(state_dir / "kubeconfig")))


def test_serve_writes_port_file_and_kubeconfig(tmp_path: Path) -> None:
    with _serve(tmp_path) as port_file:
        port = int(port_file.read_text())
        kubeconfig = (tmp_path / "kubeconfig").read_text()
        assert f"https://127.0.0.1:{port}" in kubeconfig
        assert oct((tmp_path / "kubeconfig").stat().st_mode & 0o777) == "0o600"
        assert [ns.metadata.name for ns in _core(tmp_path).list_namespace().items] == [
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
        ]


def test_persisted_state_survives_a_restart(tmp_path: Path) -> None:
    with _serve(tmp_path, "--persist"):
        _core(tmp_path).create_namespaced_config_map("default", {"metadata": {"name": "kept"}, "data": {"k": "v"}})
        token = (tmp_path / "token").read_text()
    with _serve(tmp_path, "--persist"):
        assert (tmp_path / "token").read_text() == token
        assert _core(tmp_path).read_namespaced_config_map("kept", "default").data == {"k": "v"}
