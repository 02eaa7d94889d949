"""The agents as a controller of the emulated cluster, plus the timer thread that drives their clocks.

``AgentController.reconcile`` runs in the cluster's settle loop (under its lock) after every write,
so pods are scheduled (``scheduler.py``), started, admitted or rejected synchronously with the
request that created them. Only the agents of nodes an event concerns look at their pods (the
controller subscribes to the cluster's events), so a write costs the same in an 8- and a 1,000-node
fleet. Pods on nodes no agent plays (nodes a test adds through the API) start at once, as
``InstantKubelet`` does. ``AgentClock`` is one thread for the whole fleet: it sleeps until the earliest
clock of any node runs out (one timer heap) or a node's NVML state file is replaced (inotify), and
runs under the same lock, taken first as the settle loop takes it, so agent state is only ever
touched by one thread at a time. ``tick`` runs every node's clocks and NVML check at once (tests
with a fake clock call it).

An agent that raises never fails the API request that triggered it: the error is logged and kept
in ``errors`` (tests assert it stays empty).
"""
from __future__ import annotations

import ctypes
import heapq
import logging
import math
import os
import select
import struct
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..kube.cluster import NODE_STATUS_DIRTY
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
        # Nodes whose pods (or Node object) changed since the last reconcile, from the cluster's events
        # (``observe``); None until subscribed, meaning every agent looks at its pods.
        self._touched: set[str] | None = None
        # (due, node) per agent clock (heartbeat, plugin grace, crash-loop retry, GFD pass); stale entries are harmless.
        self._timers: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}
        self.wake: Callable[[], None] | None = None  # the clock thread's, to sleep less when a clock moves earlier

    def subscribe(self, cluster: Cluster) -> None:
        """React to events instead of looking at every node after every write."""
        self._touched = set()
        cluster.subscribe(self.observe)

    def observe(self, event: Any) -> None:
        """A cluster event (under the store lock): remember which agents' nodes it concerns."""
        if self._touched is None:
            return
        qualified = event.resource.qualified
        if qualified == "pods":
            for obj in (event.object, event.previous):
                node = ((obj or {}).get("spec") or {}).get("nodeName")
                if node in self.agents:
                    self._touched.add(node)
        elif qualified == "nodes" and event.type in ("ADDED", "DELETED"):
            name = event.object["metadata"]["name"]
            if name in self.agents:
                self._touched.add(name)

    def _agents_to_sync(self) -> list[NodeAgent]:
        if self._touched is None:
            return list(self.agents.values())
        names, self._touched = self._touched, set()
        return [self.agents[name] for name in sorted(names)]

    # ------------------------------------------------------------------ clocks
    def schedule(self, agent: NodeAgent) -> None:
        """Put the agent's next clock on the timer heap (if earlier than what is there)."""
        due = agent.next_due()
        if due < self._scheduled.get(agent.name, math.inf):
            earliest = self.next_due()
            self._scheduled[agent.name] = due
            heapq.heappush(self._timers, (due, agent.name))
            if due < earliest and self.wake is not None:
                self.wake()

    def next_due(self) -> float:
        return self._timers[0][0] if self._timers else math.inf

    def run_due(self, cluster: Cluster, now: float, limit: int | None = None) -> int:
        """Tick the agents whose clocks are due at ``now`` (at most ``limit``); returns how many ran."""
        ran = 0
        while self._timers and self._timers[0][0] <= now and (limit is None or ran < limit):
            due, name = heapq.heappop(self._timers)
            if self._scheduled.get(name) != due:
                continue  # superseded by an earlier entry that already ran
            del self._scheduled[name]
            agent = self.agents[name]
            if cluster.exists("nodes", name):
                self._guarded(f"{name}: tick", lambda agent=agent: agent.tick(cluster, check_state=False))
            self.schedule(agent)
            ran += 1
        return ran

    def check_states(self, cluster: Cluster, names: Iterable[str] | None = None) -> None:
        """Look at the NVML state of the given nodes (default all): a reboot restarts the node's pods."""
        for name in self.agents if names is None else names:
            agent = self.agents.get(name)
            if agent is not None and cluster.exists("nodes", name):
                self._guarded(f"{name}: NVML state", lambda agent=agent: agent.check_state(cluster))
                self.schedule(agent)

    def _guarded(self, what: str, action) -> None:  # type: ignore[no-untyped-def]
        try:
            action()
        except Exception:  # noqa: BLE001 - see the module docstring
            detail = f"{what}: {traceback.format_exc()}"
            LOG.error("node agent failed: %s", detail)
            self.errors.append(detail)

    def reconcile(self, cluster: Cluster, dirty: set[tuple[str, str]]) -> None:
        resources = {resource for resource, _ in dirty}
        if resources & {"pods", "nodes", NODE_STATUS_DIRTY}:
            self._guarded("scheduler", lambda: schedule_pending_pods(cluster))
            for agent in self._agents_to_sync():
                if cluster.exists("nodes", agent.name):
                    self._guarded(f"{agent.name}: pods", lambda agent=agent: agent.sync_pods(cluster))
                    self.schedule(agent)
            self._start_unmanaged_pods(cluster)
        if "daemonsets.apps" in resources:
            live = {ds["metadata"]["uid"] for ds in cluster.list("daemonsets")}
            for agent in self.agents.values():
                self._guarded(
                    f"{agent.name}: GFD labels",
                    lambda agent=agent: agent.forget_gfd_labels_of_deleted_daemonsets(cluster, live),
                )

    def _start_unmanaged_pods(self, cluster: Cluster) -> None:
        nodes = {node["metadata"]["name"] for node in cluster._iter(cluster.resource("nodes"), None)} - set(self.agents)
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
        """Everything at once: every node's NVML state, then every clock due now (tests with a fake clock)."""
        self.check_states(cluster)
        for agent in self.agents.values():
            if cluster.exists("nodes", agent.name):
                self._guarded(f"{agent.name}: tick", lambda agent=agent: agent.tick(cluster, check_state=False))
                self.schedule(agent)

    def release_all(self) -> None:
        """Stop every pod's GPU work in the NVML state (the cluster is going away)."""
        for agent in self.agents.values():
            self._guarded(f"{agent.name}: release", agent.release_all)


class StateWatch:
    """inotify on the directories of the nodes' state files (Linux): which nodes' NVML state was replaced.

    State files are replaced by rename (``nvml.state``), which inotify reports as IN_MOVED_TO on the directory.
    ``available`` is False where inotify is missing or a watch cannot be added; the clock then polls."""

    IN_MOVED_TO = 0x00000080
    IN_CLOSE_WRITE = 0x00000008
    IN_NONBLOCK = 0o4000
    IN_CLOEXEC = 0o2000000
    HEADER = struct.Struct("iIII")  # wd, mask, cookie, len

    def __init__(self, state_paths: dict[str, str]) -> None:
        self.fd = -1
        self._nodes: dict[int, list[tuple[str, str]]] = {}  # wd -> (file name, node)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self.fd = libc.inotify_init1(self.IN_NONBLOCK | self.IN_CLOEXEC)
            if self.fd < 0:
                return
            for node, state_path in state_paths.items():
                directory, name = os.path.split(os.path.abspath(state_path))
                wd = libc.inotify_add_watch(self.fd, directory.encode(), self.IN_MOVED_TO | self.IN_CLOSE_WRITE)
                if wd < 0:
                    raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
                self._nodes.setdefault(wd, []).append((name, node))
        except (OSError, AttributeError) as unavailable:
            LOG.info("no inotify (%s): the agents poll the NVML state every tick", unavailable)
            self.close()

    @property
    def available(self) -> bool:
        return self.fd >= 0

    def changed(self) -> set[str]:
        """Nodes whose state file was written since the last call (does not block)."""
        nodes: set[str] = set()
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return nodes
            offset = 0
            while offset < len(data):
                wd, _, _, length = self.HEADER.unpack_from(data, offset)
                name = data[offset + self.HEADER.size: offset + self.HEADER.size + length].rstrip(b"\0").decode(errors="replace")
                offset += self.HEADER.size + length
                nodes.update(node for file_name, node in self._nodes.get(wd, []) if file_name == name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


class AgentClock:
    """The agents' one thread: runs each node's clocks when they fall due (one timer heap for the fleet) and
    reacts to NVML state changes (inotify; a poll every ``interval`` seconds where inotify is missing).
    An idle fleet wakes only for the clocks that run out (heartbeats, GFD passes), not per node and tick.

    With ``keepalive`` (a file), the process stops itself (SIGTERM to itself) once the file is gone:
    a twin whose work directory was deleted without ``gpufleet-sim down`` does not linger.
    """

    KEEPALIVE_CHECK = 2.0
    # Agents ticked per hold of the cluster lock, so API requests interleave with a burst of due clocks.
    BATCH = 50

    def __init__(self, cluster: Cluster, controller: AgentController, interval: float, keepalive: Path | None = None) -> None:
        self.cluster = cluster
        self.controller = controller
        self.interval = interval
        self.keepalive = keepalive
        self._stopped = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._thread = threading.Thread(target=self._run, name="gpufleet-node-agents", daemon=True)

    def start(self) -> AgentClock:
        self.controller.wake = self._wake
        self._thread.start()
        return self

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"x")
        except (BlockingIOError, OSError):
            pass  # already awake (pipe full) or closing

    def _run(self) -> None:
        watch = StateWatch({name: agent.spec.state_path for name, agent in self.controller.agents.items()})
        try:
            self._loop(watch)
        finally:
            watch.close()

    def _loop(self, watch: StateWatch) -> None:
        with self.cluster._lock:  # changes between registration and now
            self.controller.check_states(self.cluster)
        now = time.monotonic()
        next_check = now + self.KEEPALIVE_CHECK
        next_poll = now + self.interval
        while not self._stopped.is_set():
            now = time.monotonic()
            wait = min(self.controller.next_due(), next_check, math.inf if watch.available else next_poll) - now
            sources = [self._wake_read] + ([watch.fd] if watch.available else [])
            readable, _, _ = select.select(sources, [], [], max(wait, 0.0))
            if self._stopped.is_set():
                return
            if self._wake_read in readable:
                os.read(self._wake_read, 4096)
            if watch.available and watch.fd in readable:
                changed = watch.changed()
                with self.cluster._lock:  # the settle loop's lock, taken first as it does (no inversion)
                    self.controller.check_states(self.cluster, sorted(changed))
            now = time.monotonic()
            if not watch.available and now >= next_poll:
                next_poll = now + self.interval
                with self.cluster._lock:
                    self.controller.check_states(self.cluster)
            while self.controller.next_due() <= time.monotonic() and not self._stopped.is_set():
                with self.cluster._lock:
                    self.controller.run_due(self.cluster, time.monotonic(), self.BATCH)
            if self.keepalive is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + self.KEEPALIVE_CHECK
                if not self.keepalive.exists():
                    LOG.warning("%s is gone: stopping", self.keepalive)
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

    def stop(self) -> None:
        self._stopped.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.controller.wake = None
        for fd in (self._wake_read, self._wake_write):
            try:
                os.close(fd)
            except OSError:
                pass
