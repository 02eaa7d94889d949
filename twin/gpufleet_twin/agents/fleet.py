"""The emulated cluster with one agent per fleet node, in-process or as the ``serve`` process.

    with FleetAgents(nodes, timing, state_dir=tmp) as fleet:   # API server + agents + clock
        fleet.api.kubeconfig_path; fleet.cluster; fleet.controller.errors

``python -m gpufleet_twin.agents serve --state-dir DIR --config FILE`` runs the same thing in the
foreground until SIGTERM (``gpufleet-sim up`` starts it in the background).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..kube.cluster import Cluster
from ..kube.controllers import DisruptionController, workload_controllers
from ..kube.server import ApiServer
from .config import AgentTiming, NodeAgentSpec
from .controller import AgentClock, AgentController
from .nfd_master import NfdMaster
from .node_agent import NodeAgent


def build_cluster(
    nodes: Iterable[NodeAgentSpec], timing: AgentTiming, clock: Callable[[], float] = time.monotonic
) -> tuple[Cluster, AgentController]:
    """A cluster whose fleet nodes are registered and played by agents (kubelet replaced).

    Nothing ticks the agents' clocks here: ``FleetAgents`` runs an ``AgentClock``; tests may call
    ``controller.tick(cluster)`` themselves with a fake ``clock``."""
    controller = AgentController(NodeAgent(spec, timing, clock) for spec in nodes)
    cluster = Cluster(controllers=[*workload_controllers(), controller, NfdMaster(), DisruptionController()],
                      pod_termination_seconds=timing.pod_termination)
    controller.subscribe(cluster)
    for agent in controller.agents.values():
        agent.register(cluster)
        controller.schedule(agent)
    return cluster, controller


class FleetAgents:
    def __init__(
        self,
        nodes: Iterable[NodeAgentSpec],
        timing: AgentTiming | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        port_file: str | os.PathLike[str] | None = None,
        port: int = 0,
        keepalive: str | os.PathLike[str] | None = None,
    ) -> None:
        self.timing = timing or AgentTiming()
        self.cluster, self.controller = build_cluster(list(nodes), self.timing)
        self.api = ApiServer(self.cluster, state_dir=state_dir, port_file=port_file, port=port)
        self.clock = AgentClock(
            self.cluster, self.controller, self.timing.tick, Path(keepalive) if keepalive is not None else None
        )

    def start(self) -> FleetAgents:
        self.api.start()
        self.clock.start()
        return self

    def stop(self) -> None:
        self.clock.stop()
        self.api.stop()
        with self.cluster._lock:
            self.controller.release_all()

    def serve_forever(self) -> None:
        """Serve in the calling thread until SIGINT/SIGTERM, then release the pods' GPU work."""
        self.clock.start()
        try:
            self.api.serve_forever()
        finally:
            self.clock.stop()
            with self.cluster._lock:
                self.controller.release_all()

    def __enter__(self) -> FleetAgents:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def load_config(path: str | os.PathLike[str]) -> tuple[list[NodeAgentSpec], AgentTiming]:
    import json

    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return [NodeAgentSpec.from_mapping(node) for node in raw.get("nodes", [])], AgentTiming.from_mapping(raw.get("timing"))
