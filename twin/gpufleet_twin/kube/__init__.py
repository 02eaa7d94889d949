"""Emulated Kubernetes API server of the fleet twin.

- ``Cluster``: the state and the in-process API node agents use (get/list/create/patch/delete, evict,
  add_node, set_node_status, set_node_labels, pods_on_node, set_pod_status, set_pod_log, subscribe).
- ``ApiServer``: serves a ``Cluster`` over HTTP on loopback for the kubernetes client, kubectl and helm.
- ``python -m gpufleet_twin.kube serve --state-dir DIR``: the same as a process.
"""
from __future__ import annotations

from .cluster import Cluster, WatchEvent
from .errors import ApiError
from .resources import ResourceRegistry, ResourceType, Subresource
from .server import ApiServer, kubeconfig_document

__all__ = [
    "ApiError",
    "ApiServer",
    "Cluster",
    "ResourceRegistry",
    "ResourceType",
    "Subresource",
    "WatchEvent",
    "kubeconfig_document",
]
