"""Settings of the node agents: which nodes they play, and their clocks.

Every interval of the real components is a knob, so tests can run the same behaviour in
fractions of a second. The defaults are the real values.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

DEFAULT_NODE_CAPACITY = {"cpu": "64", "memory": "512Gi", "pods": "110"}
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"


# Clocks where 0 means "at once" rather than a busy loop.
_MAY_BE_ZERO = frozenset({"pod_termination"})


@dataclass(frozen=True)
class AgentTiming:
    """Clocks of the emulated kubelet, device plugin and GFD, in seconds.

    - ``heartbeat``: kubelet's node status update (``nodeStatusUpdateFrequency``, 10 s).
    - ``device_plugin_grace``: how long kubelet keeps a resource whose plugin endpoint stopped in
      capacity (allocatable 0 at once) before dropping it (``endpointStopGracePeriod``, 5 min).
    - ``gfd_sleep_interval``: GFD's relabelling interval when its pod sets no GFD_SLEEP_INTERVAL (60 s).
    - ``crash_backoff`` / ``crash_backoff_max``: kubelet's restart back-off for a crashed container:
      doubles from the first to the cap (10 s, 5 min).
    - ``tick``: how often the agents look at their clocks and at the node's NVML state (reboots).
    - ``pod_termination``: how long a running pod that is deleted or evicted stays Terminating before it is gone:
      the lesser of this and its grace period (``terminationGracePeriodSeconds``, 30 s unless set). 0, the
      default, ends it at once, as for a workload that exits on SIGTERM; a real one takes what its process takes,
      up to the grace period, which the twin cannot know.
    """

    heartbeat: float = 10.0
    device_plugin_grace: float = 300.0
    gfd_sleep_interval: float = 60.0
    crash_backoff: float = 10.0
    crash_backoff_max: float = 300.0
    tick: float = 0.5
    pod_termination: float = 0.0

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | None) -> AgentTiming:
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown agent timing keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = {}
        for key, value in raw.items():
            number = float(value)
            may_be_zero = key in _MAY_BE_ZERO
            if number < 0 or (number == 0 and not may_be_zero):
                raise ValueError(f"agent timing {key} must be {'>= 0' if may_be_zero else '> 0'}, not {value!r}")
            values[key] = number
        return cls(**values)

    def to_mapping(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class NodeAgentSpec:
    """One node the agents play: its NVML state file and what its Node object starts with."""

    name: str
    state_path: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, Any]] = field(default_factory=list)
    capacity: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_NODE_CAPACITY))
    # DMI product name GFD reads for gpu.machine (/sys/class/dmi/id/product_name).
    machine: str = "unknown"

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> NodeAgentSpec:
        return cls(
            name=str(raw["name"]),
            state_path=str(raw["state_path"]),
            labels={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
            taints=[dict(t) for t in raw.get("taints") or []],
            capacity={str(k): str(v) for k, v in (raw.get("capacity") or DEFAULT_NODE_CAPACITY).items()},
            machine=str(raw.get("machine") or "unknown"),
        )

    def to_mapping(self) -> dict[str, Any]:
        return asdict(self)
