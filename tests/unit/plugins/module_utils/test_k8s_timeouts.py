"""Every API request is bounded: a black-holed API server fails the call within the request timeout."""
from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeApiError, KubeClient


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A listener that accepts TCP connections into its backlog and never answers, as a dead load balancer does."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield "https://127.0.0.1:%d" % listener.getsockname()[1]
    finally:
        listener.close()


def test_a_stalled_api_server_fails_the_request_within_the_bound(black_hole: str) -> None:
    params = {"host": black_hole, "api_key": "t0ken", "validate_certs": False, "request_timeout": {"connect": 0.5, "read": 0.5}}
    started = time.monotonic()
    with KubeClient.from_params(params) as client:
        with pytest.raises(KubeApiError) as failure:
            client.get_node("gpu-0")
    elapsed = time.monotonic() - started
    assert failure.value.status is None
    assert "read node gpu-0" in str(failure.value)
    assert "did not answer within request_timeout (k8s_request_timeout in the playbook)" in str(failure.value)
    # Three connection attempts at most, no re-sent read: far below what an unbounded call would wait.
    assert elapsed < 5, elapsed


def test_nonpositive_timeouts_are_refused_naming_the_variable() -> None:
    with pytest.raises(KubeApiError, match="k8s_request_timeout"):
        KubeClient.from_params({"host": "https://127.0.0.1:1", "request_timeout": {"connect": 0, "read": 5}})


def test_a_missing_kubeconfig_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    with pytest.raises(KubeApiError) as failure:
        KubeClient.from_params({"kubeconfig": str(missing)})
    assert str(missing) in str(failure.value) and "k8s_kubeconfig" in str(failure.value)
