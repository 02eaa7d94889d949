"""lease.py: the decision is pure; holding, waiting, takeover and release run against the emulated API server."""
from __future__ import annotations

import datetime
import threading
from pathlib import Path
from typing import Iterator

import pytest
from gpufleet_twin.kube import ApiServer

from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeClient
from ansible_collections.gpufleet.mig.plugins.module_utils._lease import (
    ACQUIRE,
    CREATE,
    RENEW,
    TAKEOVER,
    WAIT,
    LeaseHeldError,
    decide_lease,
    format_microtime,
    hold_lease,
    release_lease,
)

T0 = datetime.datetime(2026, 12, 3, 12, 0, 0, tzinfo=datetime.timezone.utc)


def lease(holder: str | None, renewed: datetime.datetime = T0, duration: int = 60) -> dict:
    return {"metadata": {"name": "l", "namespace": "kube-system", "resourceVersion": "7"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                     "acquireTime": format_microtime(renewed), "renewTime": format_microtime(renewed)}}


@pytest.mark.parametrize(
    ("existing", "now", "action"),
    [
        (None, T0, CREATE),
        (lease("run-a"), T0 + datetime.timedelta(seconds=59), RENEW),
        (lease(None), T0, ACQUIRE),
        (lease("run-b"), T0 + datetime.timedelta(seconds=59), WAIT),
        (lease("run-b"), T0 + datetime.timedelta(seconds=60), TAKEOVER),
    ],
)
def test_decision(existing: dict | None, now: datetime.datetime, action: str) -> None:
    assert decide_lease(existing, "run-a", now) == action


@pytest.fixture
def client(tmp_path: Path) -> Iterator[KubeClient]:
    server = ApiServer(state_dir=tmp_path / "apiserver").start()
    try:
        with KubeClient.from_params({"kubeconfig": str(server.kubeconfig_path)}) as kube:
            yield kube
    finally:
        server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self.ticks = 0.0

    def utc(self) -> datetime.datetime:
        return self.now

    def monotonic(self) -> float:
        return self.ticks

    def sleep(self, seconds: float) -> None:
        self.ticks += seconds
        self.now += datetime.timedelta(seconds=seconds)


def test_create_renew_refuse_takeover_and_release(client: KubeClient) -> None:
    clock = Clock()
    kwargs = {"now": clock.utc, "monotonic": clock.monotonic, "sleep": clock.sleep}
    first = hold_lease(client, "rollout", "kube-system", "run-a", 60, 0, **kwargs)
    assert first["action"] == CREATE and first["previous"] is None
    assert first["lease"]["spec"]["holderIdentity"] == "run-a"

    clock.sleep(30)
    renewed = hold_lease(client, "rollout", "kube-system", "run-a", 60, 0, **kwargs)
    assert renewed["action"] == RENEW
    assert renewed["lease"]["spec"]["acquireTime"] == first["lease"]["spec"]["acquireTime"]

    # A second run refuses at once, naming the holder and since when.
    with pytest.raises(LeaseHeldError) as refused:
        hold_lease(client, "rollout", "kube-system", "run-b", 60, 0, **kwargs)
    assert refused.value.holder == "run-a"
    assert "held by run-a since 2026-12-03T12:00:00" in str(refused.value)

    # Waiting long enough for a dead holder's lease to expire takes it over, and says from whom.
    taken = hold_lease(client, "rollout", "kube-system", "run-b", 60, 120, poll_interval=10, **kwargs)
    assert taken["action"] == TAKEOVER
    assert taken["previous"]["holder"] == "run-a" and taken["previous"]["expired"] is True
    assert taken["lease"]["spec"]["leaseTransitions"] == 1

    # Only the holder releases; the old holder's release changes nothing.
    assert release_lease(client, "rollout", "kube-system", "run-a", now=clock.utc)["changed"] is False
    assert release_lease(client, "rollout", "kube-system", "run-b", now=clock.utc)["changed"] is True
    assert client.get_lease("kube-system", "rollout")["spec"].get("holderIdentity") is None
    acquired = hold_lease(client, "rollout", "kube-system", "run-c", 60, 0, **kwargs)
    assert acquired["action"] == ACQUIRE


def test_check_mode_writes_nothing(client: KubeClient) -> None:
    result = hold_lease(client, "rollout", "kube-system", "run-a", 60, 0, check_mode=True)
    assert result["changed"] is True and result["action"] == CREATE
    assert client.get_lease("kube-system", "rollout") is None


def test_of_runs_racing_for_one_lease_exactly_one_wins(client: KubeClient, tmp_path: Path) -> None:
    winners: list[str] = []
    losers: list[str] = []

    def run(holder: str) -> None:
        try:
            hold_lease(client, "race", "kube-system", holder, 60, 0)
        except LeaseHeldError:
            losers.append(holder)
        else:
            winners.append(holder)

    threads = [threading.Thread(target=run, args=("run-%d" % index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and len(losers) == 5
    assert client.get_lease("kube-system", "race")["spec"]["holderIdentity"] == winners[0]


def test_a_killed_holder_on_this_host_is_taken_over_at_once_one_elsewhere_is_waited_for(client: KubeClient) -> None:
    hold_lease(client, "rollout", "kube-system", "run-a", 3600, 0, controller="ctl-1:4242")
    dead = {4242}

    def alive(pid: int) -> bool:
        return pid not in dead

    with pytest.raises(LeaseHeldError):
        hold_lease(client, "rollout", "kube-system", "run-b", 3600, 0, controller="ctl-2:99", alive=alive)
    taken = hold_lease(client, "rollout", "kube-system", "run-b", 3600, 0, controller="ctl-1:77", alive=alive)
    assert taken["action"] == TAKEOVER and taken["previous"]["controller_gone"] is True
    assert taken["lease"]["metadata"]["annotations"]["gpufleet.mig/controller"] == "ctl-1:77"
    # A live process of this host keeps its lease.
    with pytest.raises(LeaseHeldError):
        hold_lease(client, "rollout", "kube-system", "run-c", 3600, 0, controller="ctl-1:78", alive=alive)
