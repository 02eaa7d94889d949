"""drain.py: pod classification (pure) and the eviction loop against the emulated API server (real client, real HTTP)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from gpufleet_twin.kube import ApiServer

from ansible_collections.gpufleet.mig.plugins.module_utils._drain import (
    DrainError,
    gpu_resources,
    plan_drain,
    refusal_message,
    run_evictions,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeClient

RS_OWNER = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "train-7c9f6d", "uid": "u-rs", "controller": True}]
DS_OWNER = [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "nvdp", "uid": "u-ds", "controller": True}]
NODE_OWNER = [{"apiVersion": "v1", "kind": "Node", "name": "gpu-0", "uid": "u-node", "controller": True}]


def pod(name: str, namespace: str = "default", *, owner: list[dict[str, Any]] | None = RS_OWNER, phase: str = "Running",
        limits: dict[str, str] | None = None, requests: dict[str, str] | None = None, init_limits: dict[str, str] | None = None,
        volumes: list[dict[str, Any]] | None = None, annotations: dict[str, str] | None = None, terminating: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": "uid-" + name}
    if owner:
        metadata["ownerReferences"] = owner
    if annotations:
        metadata["annotations"] = annotations
    if terminating:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    resources = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    spec: dict[str, Any] = {"nodeName": "gpu-0", "containers": [{"name": "main", "image": "cuda", "resources": resources}]}
    if init_limits:
        spec["initContainers"] = [{"name": "init", "image": "cuda", "resources": {"limits": init_limits}}]
    if volumes:
        spec["volumes"] = volumes
    return {"metadata": metadata, "spec": spec, "status": {"phase": phase}}


def names(refs: list[dict[str, str]]) -> list[str]:
    return [f"{ref['namespace']}/{ref['name']}" for ref in refs]


# --- classification ---------------------------------------------------------------------------------


def test_daemonset_and_mirror_pods_stay_and_the_rest_is_evicted_in_name_order() -> None:
    plan = plan_drain([
        pod("web", "shop"),
        pod("nvdp-x2k9q", "nvidia-device-plugin", owner=DS_OWNER),
        pod("kube-proxy-gpu-0", "kube-system", owner=NODE_OWNER, annotations={"kubernetes.io/config.mirror": "a1"}),
        pod("train", "ml"),
    ])
    assert names(plan.evict) == ["ml/train", "shop/web"]
    assert plan.skip == [
        {"namespace": "kube-system", "name": "kube-proxy-gpu-0", "reason": "mirror pod"},
        {"namespace": "nvidia-device-plugin", "name": "nvdp-x2k9q", "reason": "DaemonSet pod"},
    ]
    assert plan.refuse == [] and plan.terminating == []


def test_emptydir_and_unmanaged_pods_are_refused_with_every_reason() -> None:
    scratch = [{"name": "cache", "emptyDir": {}}, {"name": "config", "configMap": {"name": "c"}}, {"name": "tmp", "emptyDir": {"medium": "Memory"}}]
    plan = plan_drain([pod("scratch", volumes=scratch), pod("bare", owner=None), pod("both", owner=None, volumes=scratch)])
    assert plan.evict == []
    assert plan.refuse == [
        {"namespace": "default", "name": "bare", "reason": "has no controller to recreate it (set force to evict it anyway)"},
        {"namespace": "default", "name": "both", "reason": "uses emptyDir volume(s) cache, tmp (set delete_emptydir_data to evict it and lose "
                                                           "that data); has no controller to recreate it (set force to evict it anyway)"},
        {"namespace": "default", "name": "scratch", "reason": "uses emptyDir volume(s) cache, tmp (set delete_emptydir_data to evict it and lose that data)"},
    ]
    assert refusal_message("gpu-0", plan).startswith("Cannot drain node gpu-0: 3 pod(s) cannot be evicted safely: default/bare has no controller")


def test_flags_allow_what_they_name_and_nothing_else() -> None:
    scratch = [{"name": "cache", "emptyDir": {}}]
    pods = [pod("scratch", volumes=scratch), pod("bare", owner=None)]
    only_emptydir = plan_drain(pods, delete_emptydir_data=True)
    assert names(only_emptydir.evict) == ["default/scratch"] and names(only_emptydir.refuse) == ["default/bare"]
    only_force = plan_drain(pods, force=True)
    assert names(only_force.evict) == ["default/bare"] and names(only_force.refuse) == ["default/scratch"]
    assert names(plan_drain(pods, delete_emptydir_data=True, force=True).evict) == ["default/bare", "default/scratch"]


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_finished_pods_lose_nothing_and_are_evicted_without_flags(phase: str) -> None:
    plan = plan_drain([pod("job-done", owner=None, phase=phase, volumes=[{"name": "w", "emptyDir": {}}])])
    assert names(plan.evict) == ["default/job-done"] and plan.refuse == []


def test_terminating_pods_are_waited_for_not_evicted_again() -> None:
    plan = plan_drain([pod("leaving", terminating=True, owner=None)])
    assert plan.evict == [] and plan.refuse == [] and names(plan.terminating) == ["default/leaving"]


def test_gpu_pods_only_keeps_pods_without_nvidia_resources() -> None:
    plan = plan_drain(
        [
            pod("full-gpu", limits={"nvidia.com/gpu": "1"}),
            pod("mig", requests={"nvidia.com/mig-3g.20gb": "1", "cpu": "4"}),
            pod("init-only", init_limits={"nvidia.com/mig-1g.5gb": "1"}),
            pod("cpu", limits={"cpu": "2", "memory": "1Gi"}),
            pod("other-vendor", limits={"amd.com/gpu": "1"}),
            pod("bare-cpu", owner=None),
            pod("plugin", owner=DS_OWNER, limits={"nvidia.com/gpu": "1"}),
        ],
        gpu_pods_only=True,
    )
    assert names(plan.evict) == ["default/full-gpu", "default/init-only", "default/mig"]
    assert [(ref["name"], ref["reason"]) for ref in plan.skip] == [
        ("bare-cpu", "requests no nvidia.com/* resource"),
        ("cpu", "requests no nvidia.com/* resource"),
        ("other-vendor", "requests no nvidia.com/* resource"),
        ("plugin", "DaemonSet pod"),
    ]
    assert plan.refuse == [], "an unmanaged CPU pod that stays is no reason to refuse a GPU-only drain"


def test_gpu_resources_reads_limits_requests_and_init_containers() -> None:
    assert gpu_resources(pod("p", limits={"nvidia.com/gpu": "1"}, requests={"nvidia.com/mig-1g.5gb.me": "1"},
                             init_limits={"nvidia.com/gpu": "1"})) == ["nvidia.com/gpu", "nvidia.com/mig-1g.5gb.me"]
    assert gpu_resources({"metadata": {"name": "empty"}}) == []


# --- the eviction loop against the emulated API server -----------------------------------------------


class FakeClock:
    """Monotonic time that only moves when the loop sleeps; `on_sleep` lets a test change the cluster meanwhile."""

    def __init__(self, on_sleep=None) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    server = ApiServer(state_dir=tmp_path / "apiserver").start()
    server.cluster.add_node("gpu-0")
    try:
        yield server
        assert not list(server.handler.errors)
    finally:
        server.stop()


@pytest.fixture
def client(api: ApiServer) -> Iterator[KubeClient]:
    with KubeClient.from_params({"kubeconfig": str(api.kubeconfig_path)}) as kube:
        yield kube


def create_training(api: ApiServer, min_available: int, pods: tuple[str, ...] = ("train-0",)) -> None:
    cluster = api.cluster
    rs = cluster.create("replicasets", {"metadata": {"name": "train"}, "spec": {"replicas": len(pods), "selector": {"matchLabels": {"app": "train"}}}},
                        "default")
    owner = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "train", "uid": rs["metadata"]["uid"], "controller": True}]
    for name in pods:
        cluster.create("pods", {"metadata": {"name": name, "labels": {"app": "train"}, "ownerReferences": owner},
                                "spec": {"nodeName": "gpu-0", "containers": [{"name": "c", "image": "cuda"}]}}, "default")
    cluster.create("poddisruptionbudgets", {"metadata": {"name": "train"},
                                            "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": "train"}}}}, "default")


def test_eviction_is_retried_while_the_budget_refuses_and_succeeds_once_it_allows(api: ApiServer, client: KubeClient) -> None:
    create_training(api, min_available=1)

    def relax_after_three_refusals(sleeps: int) -> None:
        if sleeps == 3:
            api.cluster.patch("poddisruptionbudgets", "train", {"spec": {"minAvailable": 0}}, "merge", "default")

    clock = FakeClock(relax_after_three_refusals)
    plan = plan_drain(client.pods_on_node("gpu-0"))
    evicted = run_evictions(client, "gpu-0", plan, timeout=60, poll_interval=5, clock=clock, sleep=clock.sleep)
    assert names(evicted) == ["default/train-0"]
    assert clock.sleeps == [5, 5, 5], "one retry per poll interval while the budget refused"
    assert api.cluster.pods_on_node("gpu-0") == []


def test_budget_that_never_allows_times_out_and_deletes_nothing(api: ApiServer, client: KubeClient) -> None:
    create_training(api, min_available=1)
    clock = FakeClock()
    plan = plan_drain(client.pods_on_node("gpu-0"))
    with pytest.raises(DrainError) as failure:
        run_evictions(client, "gpu-0", plan, timeout=12, poll_interval=5, clock=clock, sleep=clock.sleep)
    assert failure.value.timed_out and failure.value.evicted == []
    assert failure.value.blocked == [{
        "namespace": "default", "name": "train-0",
        "reason": "Cannot evict pod as it would violate the pod's disruption budget. (The disruption budget train needs 1 healthy pods and has 1 currently)",
    }]
    assert str(failure.value).startswith("Timed out after 12 s draining node gpu-0: 1 pod(s) could not be evicted: default/train-0 (")
    assert str(failure.value).endswith("let the disruption budget allow the eviction or raise timeout, and run again.")
    assert clock.sleeps == [5, 5, 2], "the last wait stops at the deadline"
    assert [p["metadata"]["name"] for p in api.cluster.pods_on_node("gpu-0")] == ["train-0"]


def test_disable_eviction_deletes_past_the_budget(api: ApiServer, client: KubeClient) -> None:
    create_training(api, min_available=1)
    clock = FakeClock()
    evicted = run_evictions(client, "gpu-0", plan_drain(client.pods_on_node("gpu-0")), timeout=5, disable_eviction=True,
                            clock=clock, sleep=clock.sleep)
    assert names(evicted) == ["default/train-0"] and clock.sleeps == []
    assert api.cluster.pods_on_node("gpu-0") == []
    paths = [(r.method.value, r.url.path) for r in api.handler if "/pods/train-0" in r.url.path]
    assert ("DELETE", "/api/v1/namespaces/default/pods/train-0") in paths
    assert not any(path.endswith("/eviction") for _, path in paths)


def test_an_api_error_other_than_429_stops_at_once(api: ApiServer, client: KubeClient) -> None:
    create_training(api, min_available=0)
    # A second budget over the same pod: the eviction subresource answers 500, which retrying cannot fix.
    api.cluster.create("poddisruptionbudgets", {"metadata": {"name": "train-2"},
                                                "spec": {"minAvailable": 0, "selector": {"matchLabels": {"app": "train"}}}}, "default")
    clock = FakeClock()
    with pytest.raises(DrainError) as failure:
        run_evictions(client, "gpu-0", plan_drain(client.pods_on_node("gpu-0")), timeout=60, clock=clock, sleep=clock.sleep)
    assert str(failure.value) == (
        "Cannot drain node gpu-0: Cannot evict pod default/train-0: the API server answered 500 Internal Server Error: "
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support. "
        "Pods evicted so far: none. The node stays cordoned."
    )
    assert clock.sleeps == [] and not failure.value.timed_out


def test_a_pod_that_vanished_meanwhile_counts_as_gone(api: ApiServer, client: KubeClient) -> None:
    create_training(api, min_available=0, pods=("train-0", "train-1"))
    plan = plan_drain(client.pods_on_node("gpu-0"))
    api.cluster.delete("pods", "train-1", "default")
    clock = FakeClock()
    evicted = run_evictions(client, "gpu-0", plan, timeout=10, clock=clock, sleep=clock.sleep)
    assert names(evicted) == ["default/train-0", "default/train-1"]
    assert api.cluster.pods_on_node("gpu-0") == []


def test_messages_name_the_variables_a_role_sets_for_the_options(api: ApiServer, client: KubeClient) -> None:
    create_training(api, min_available=1)
    clock = FakeClock()
    names = {"timeout": "drain_timeout", "force": "drain_force", "delete_emptydir_data": "drain_delete_emptydir_data"}
    with pytest.raises(DrainError) as failure:
        run_evictions(client, "gpu-0", plan_drain(client.pods_on_node("gpu-0")), timeout=1, poll_interval=5, clock=clock,
                      sleep=clock.sleep, names=names)
    assert str(failure.value).endswith("let the disruption budget allow the eviction or raise drain_timeout, and run again.")
    refused = plan_drain([pod("bare", owner=None, volumes=[{"name": "cache", "emptyDir": {}}])], names=names).refuse
    assert refused[0]["reason"] == ("uses emptyDir volume(s) cache (set drain_delete_emptydir_data to evict it and lose that "
                                    "data); has no controller to recreate it (set drain_force to evict it anyway)")
