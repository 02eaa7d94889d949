"""Whose cordon it is, and the fleet-wide cordon budget, against the emulated API server."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from gpufleet_twin.kube import ApiServer

from ansible_collections.gpufleet.mig.plugins.module_utils import _k8s_node as k8s_node
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeClient
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import TaskError
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_node import (
    CORDONED_BY_LABEL,
    owner_label_value,
    plan_cordon_ownership,
    run_k8s_node,
)

NODES = ("gpu-0", "gpu-1", "gpu-2", "gpu-3")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    api = ApiServer(state_dir=tmp_path / "apiserver").start()
    for name in NODES:
        api.cluster.add_node(name)
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def client(server: ApiServer) -> Iterator[KubeClient]:
    with KubeClient.from_params({"kubeconfig": str(server.kubeconfig_path)}) as kube:
        yield kube


def node(unschedulable: bool, labels: dict | None = None) -> dict:
    return {"metadata": {"name": "n", "labels": labels or {}}, "spec": {"unschedulable": unschedulable}}


@pytest.mark.parametrize(
    ("current", "state", "expected"),
    [
        (node(False), "drained", (True, {CORDONED_BY_LABEL: "run-1"}, "cordon")),
        (node(True), "drained", (None, {}, "kept")),
        (node(True, {CORDONED_BY_LABEL: "run-0"}), "cordoned", (None, {}, "ours")),
        (node(True, {CORDONED_BY_LABEL: "run-0"}), "uncordoned", (False, {CORDONED_BY_LABEL: None}, "uncordon")),
        (node(True), "uncordoned", (None, {}, "kept")),
        (node(False, {CORDONED_BY_LABEL: "run-0"}), "uncordoned", (None, {CORDONED_BY_LABEL: None}, "none")),
        (node(False), "uncordoned", (None, {}, "none")),
    ],
)
def test_ownership_plan(current: dict, state: str, expected: tuple) -> None:
    assert plan_cordon_ownership(current, state, "run-1") == expected


def test_owner_becomes_a_valid_label_value() -> None:
    assert owner_label_value("ansible run 2026/12/03 #4") == "ansible-run-2026-12-03-4"
    assert len(owner_label_value("x" * 100)) == 63
    with pytest.raises(TaskError):
        owner_label_value("///")


def test_an_administrators_cordon_is_never_lifted(client: KubeClient) -> None:
    run_k8s_node(client, "gpu-0", state="cordoned")  # kubectl cordon, no owner
    drained = run_k8s_node(client, "gpu-0", state="drained", cordon_owner="run-1")
    assert drained["cordon"] == "kept" and drained["changed"] is False
    assert CORDONED_BY_LABEL not in drained["node"]["labels"]
    finished = run_k8s_node(client, "gpu-0", state="uncordoned", labels={"gpufleet.mig/state": "success"}, cordon_owner="run-1")
    assert finished["cordon"] == "kept"
    assert client.get_node("gpu-0")["spec"]["unschedulable"] is True
    assert client.get_node("gpu-0")["metadata"]["labels"]["gpufleet.mig/state"] == "success"


def test_our_cordon_from_an_interrupted_run_is_lifted_by_the_next(client: KubeClient) -> None:
    first = run_k8s_node(client, "gpu-0", state="drained", cordon_owner="run-1")
    assert first["cordon"] == "cordon" and first["node"]["labels"][CORDONED_BY_LABEL] == "run-1"
    again = run_k8s_node(client, "gpu-0", state="drained", cordon_owner="run-2")
    assert again["cordon"] == "ours" and again["changed"] is False
    lifted = run_k8s_node(client, "gpu-0", state="uncordoned", cordon_owner="run-2")
    assert lifted["cordon"] == "uncordon"
    after = client.get_node("gpu-0")
    assert not after["spec"].get("unschedulable") and CORDONED_BY_LABEL not in after["metadata"].get("labels", {})


def test_a_full_budget_refuses_a_new_cordon_naming_the_variable_and_holders(client: KubeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(k8s_node, "BUDGET_POLL_INTERVAL", 0.1)
    run_k8s_node(client, "gpu-0", state="cordoned", cordon_owner="run-1", max_unavailable=1)
    with pytest.raises(TaskError) as refused:
        run_k8s_node(client, "gpu-1", state="cordoned", cordon_owner="run-1", max_unavailable=1, budget_timeout=0)
    assert "mig_max_unavailable=1" in str(refused.value) and "gpu-0" in str(refused.value)
    assert refused.value.details["budget_holders"] == ["gpu-0"]
    assert not client.get_node("gpu-1")["spec"].get("unschedulable")
    # An administrator's cordon takes no room in the budget, and a lifted one frees it.
    run_k8s_node(client, "gpu-2", state="cordoned")
    run_k8s_node(client, "gpu-0", state="uncordoned", cordon_owner="run-1")
    assert run_k8s_node(client, "gpu-1", state="cordoned", cordon_owner="run-1", max_unavailable=1)["cordon"] == "cordon"


def test_cooperating_runs_never_exceed_the_budget(server: ApiServer, client: KubeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four runs, one node each, budget two: the API's history never shows three rollout cordons at once."""
    monkeypatch.setattr(k8s_node, "BUDGET_POLL_INTERVAL", 0.05)
    peak = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            held = sum(1 for item in client.list_nodes(label_selector=CORDONED_BY_LABEL) if item["spec"].get("unschedulable"))
            peak[0] = max(peak[0], held)
            time.sleep(0.005)

    def rollout(name: str) -> None:
        with KubeClient.from_params({"kubeconfig": str(server.kubeconfig_path)}) as own:
            run_k8s_node(own, name, state="cordoned", cordon_owner="slice-" + name, max_unavailable=2, budget_timeout=30)
            time.sleep(1.0)
            run_k8s_node(own, name, state="uncordoned", cordon_owner="slice-" + name)

    watcher = threading.Thread(target=watch)
    watcher.start()
    runs = [threading.Thread(target=rollout, args=(name,)) for name in NODES]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    stop.set()
    watcher.join()
    assert peak[0] == 2
    assert all(not client.get_node(name)["spec"].get("unschedulable") for name in NODES)


def test_a_budget_full_of_failed_nodes_refuses_at_once(client: KubeClient) -> None:
    run_k8s_node(client, "gpu-0", state="cordoned", labels={"gpufleet.mig/state": "failed"}, cordon_owner="run-1", max_unavailable=1)
    started = time.monotonic()
    with pytest.raises(TaskError) as refused:
        run_k8s_node(client, "gpu-1", state="cordoned", cordon_owner="run-1", max_unavailable=1, budget_timeout=600)
    assert time.monotonic() - started < 5  # not the 600 s a live holder would be waited for
    assert "failed node(s) gpu-0 keep their cordon and fill the fleet-wide budget mig_max_unavailable=1" in str(refused.value)
    assert not client.get_node("gpu-1")["spec"].get("unschedulable")
