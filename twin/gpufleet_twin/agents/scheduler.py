"""Moved to ``gpufleet_twin.kube.scheduler`` (the scheduler is the cluster's, not a node agent's); kept for imports."""
from __future__ import annotations

from ..kube.scheduler import PodScheduler, schedule_pending_pods, why_not

__all__ = ["PodScheduler", "schedule_pending_pods", "why_not"]
