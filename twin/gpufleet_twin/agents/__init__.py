"""Simulated node agents of the fleet twin: kubelet, NVIDIA device plugin and GFD per fleet node.

Driven by each node's simulated NVML state (``gpufleet_twin.nvml``) and the emulated API server
(``gpufleet_twin.kube``). Pure parts, usable alone:

- ``start_device_plugin(node_gpus, strategy, fail_on_init_error)``: resources or the fatal error;
- ``gfd_labels(node_gpus, strategy, machine, timestamp)``: GFD's node labels;
- ``mig_profile`` / ``mixed_resource_name``: go-nvlib naming;
- ``read_node_gpus(state_path)``: what NVML shows on a node.

Running: ``FleetAgents(nodes, timing, state_dir=...)`` in-process, or ``python -m
gpufleet_twin.agents serve`` (what ``gpufleet-sim up`` starts). ``AgentTiming`` holds every clock.
"""
from __future__ import annotations

from .config import AgentTiming, NodeAgentSpec
from .device_plugin import PluginStart, start_device_plugin
from .fleet import FleetAgents, build_cluster
from .gfd import GfdError, gfd_labels, sanitise
from .inventory import NodeGpus, read_node_gpus
from .naming import MigProfile, mig_memory_size_gb, mig_profile, mixed_resource_name
from .node_agent import NodeAgent, nvidia_smi_listing

__all__ = [
    "AgentTiming",
    "FleetAgents",
    "GfdError",
    "MigProfile",
    "NodeAgent",
    "NodeAgentSpec",
    "NodeGpus",
    "PluginStart",
    "build_cluster",
    "gfd_labels",
    "mig_memory_size_gb",
    "mig_profile",
    "mixed_resource_name",
    "nvidia_smi_listing",
    "read_node_gpus",
    "sanitise",
    "start_device_plugin",
]
