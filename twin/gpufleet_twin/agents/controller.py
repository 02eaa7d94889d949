"""The agents as a controller of the emulated cluster, plus the timer thread that drives their clocks.

``AgentController.reconcile`` runs in the cluster's settle loop (under its lock) after every write,
so pods are scheduled (``scheduler.py``), started, admitted or rejected synchronously with the
request that created them. Pods on
nodes no agent plays (nodes a test adds through the API) start at once, as ``InstantKubelet`` does.
``AgentClock`` calls ``tick`` every ``timing.tick`` seconds under the same lock, taken first as the
settle loop takes it, so agent state is only ever touched by one thread at a time.

An agent that raises never fails the API request that triggered it: the error is logged and kept
in ``errors`` (tests assert it stays empty).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..kube.controllers import InstantKubelet
from ..kube.workloads import is_terminating
from .node_agent import NodeAgent
from ..kube.scheduler import schedule_pending_pods

if TYPE_CHECKING:
    from ..kube.cluster import Cluster

LOG = logging.getLogger(__name__)


class AgentController:
    def __init__(self, agents: Iterable[NodeAgent]) -> None:
        self.agents = {agent.name: agent for agent in agents}
        self.errors: list[str] = []

    def _guarded(self, what: str, action) -> None:  # type: ignore[no-untyped-def]
        try:
            action()
        except Exception:  # noqa: BLE001 - see the module docstring
            detail = f"{what}: {traceback.format_exc()}"
            LOG.error("node agent failed: %s", detail)
            self.errors.append(detail)

    def reconcile(self, cluster: Cluster, dirty: set[tuple[str, str]]) -> None:
        resources = {resource for resource, _ in dirty}
        if "pods" in resources or "nodes" in resources:
            self._guarded("scheduler", lambda: schedule_pending_pods(cluster))
            for agent in self.agents.values():
                if cluster.exists("nodes", agent.name):
                    self._guarded(f"{agent.name}: pods", lambda agent=agent: agent.sync_pods(cluster))
            self._start_unmanaged_pods(cluster)
        if "daemonsets.apps" in resources:
            live = {ds["metadata"]["uid"] for ds in cluster.list("daemonsets")}
            for agent in self.agents.values():
                self._guarded(
                    f"{agent.name}: GFD labels",
                    lambda agent=agent: agent.forget_gfd_labels_of_deleted_daemonsets(cluster, live),
                )

    def _start_unmanaged_pods(self, cluster: Cluster) -> None:
        nodes = {node["metadata"]["name"] for node in cluster.list("nodes")} - set(self.agents)
        if not nodes:
            return
        for pod in cluster.list("pods"):
            node = pod.get("spec", {}).get("nodeName")
            if node in nodes and not is_terminating(pod) and (pod.get("status") or {}).get("phase", "Pending") == "Pending":
                meta = pod["metadata"]
                cluster.patch(
                    "pods", meta["name"], {"status": InstantKubelet.running_status(pod)}, "merge", meta["namespace"], subresource="status"
                )

    def tick(self, cluster: Cluster) -> None:
        for agent in self.agents.values():
            if cluster.exists("nodes", agent.name):
                self._guarded(f"{agent.name}: tick", lambda agent=agent: agent.tick(cluster))

    def release_all(self) -> None:
        """Stop every pod's GPU work in the NVML state (the cluster is going away)."""
        for agent in self.agents.values():
            self._guarded(f"{agent.name}: release", agent.release_all)


class AgentClock:
    """A daemon thread calling ``controller.tick`` every ``interval`` seconds until ``stop``.

    With ``keepalive`` (a file), the process stops itself (SIGTERM to itself) once the file is gone:
    a twin whose work directory was deleted without ``gpufleet-sim down`` does not linger.
    """

    KEEPALIVE_CHECK = 2.0

    def __init__(self, cluster: Cluster, controller: AgentController, interval: float, keepalive: Path | None = None) -> None:
        self.cluster = cluster
        self.controller = controller
        self.interval = interval
        self.keepalive = keepalive
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpufleet-node-agents", daemon=True)

    def start(self) -> AgentClock:
        self._thread.start()
        return self

    def _run(self) -> None:
        next_check = time.monotonic() + self.KEEPALIVE_CHECK
        while not self._stopped.wait(self.interval):
            with self.cluster._lock:  # the settle loop's lock, taken first as it does (no inversion)
                self.controller.tick(self.cluster)
            if self.keepalive is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + self.KEEPALIVE_CHECK
                if not self.keepalive.exists():
                    LOG.warning("%s is gone: stopping", self.keepalive)
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
