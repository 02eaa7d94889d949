"""NFD's master, played while an nfd-master pod runs: NodeFeature objects become node labels.

NVIDIA's chart (with ``gfd.enabled``) installs node-feature-discovery 0.19.0 as a subchart; GFD v0.20.0
publishes its labels as a NodeFeature object (``nfd.k8s-sigs.io/v1alpha1``) named
``nvidia-features-for-<node>`` and labelled ``nfd.node.kubernetes.io/node-name=<node>``
(k8s-device-plugin ``internal/lm/output.go`` at v0.20.0), and nfd-master writes the node labels.

What this agent reproduces (node-feature-discovery ``pkg/nfd-master/nfd-master.go`` at v0.19.0):

- it acts only while a pod running ``nfd-master`` (not ``nfd-master -prune``) is Running, i.e. while
  the nfd-master Deployment is up; without one, NodeFeature objects change nothing;
- per node, the labels of every NodeFeature object carrying the node-name label are merged (objects in
  the master's namespace first, then by name); a label without a namespace gets
  ``feature.node.kubernetes.io/``; labels in namespaces other than ``feature.node.kubernetes.io``,
  ``profile.node.kubernetes.io`` (and their subdomains) and the config's ``extraLabelNs`` (read from
  the ``nfd-master.conf`` key of the ConfigMap mounted into the master pod; NVIDIA's chart sets
  ``nvidia.com``) are dropped;
- the names of the labels it wrote are kept in the node annotation ``nfd.node.kubernetes.io/feature-labels``
  (``feature.node.kubernetes.io/`` stripped), so labels whose object went away, or that an object no
  longer carries, are removed on the next pass;
- ``nfd-master -prune`` (the chart's post-delete hook Job) removes every label named in that annotation,
  and the annotation.

Not modelled: NodeFeatureRule and NodeFeatureGroup processing, taints and extended resources from
features, ``denyNodeFeatureLabels``, instance annotations, and nfd-worker (its pods run and publish no
features, so nodes get no ``feature.node.kubernetes.io`` labels from it).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from ..kube.errors import ApiError
from ..kube.workloads import is_terminating

if TYPE_CHECKING:
    from ..kube.cluster import Cluster

NODE_FEATURE_GROUP = "nfd.k8s-sigs.io"
NODE_FEATURES = f"nodefeatures.{NODE_FEATURE_GROUP}"
NODE_NAME_LABEL = "nfd.node.kubernetes.io/node-name"
FEATURE_LABELS_ANNOTATION = "nfd.node.kubernetes.io/feature-labels"
FEATURE_LABEL_NS = "feature.node.kubernetes.io"
DEFAULT_LABEL_NS = (FEATURE_LABEL_NS, "profile.node.kubernetes.io")
_MASTER_CONFIG_KEY = "nfd-master.conf"


def serves_node_features(cluster: Cluster) -> bool:
    try:
        cluster.resource(NODE_FEATURES)
    except KeyError:
        return False
    return True


def _command(container: Mapping[str, Any]) -> list[str]:
    return [str(part) for part in (container.get("command") or [])] + [str(part) for part in (container.get("args") or [])]


def _master_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        command = _command(container)
        if command and os.path.basename(command[0]) == "nfd-master":
            return container
    return None


def is_prune(pod: Mapping[str, Any]) -> bool:
    container = _master_container(pod)
    return container is not None and "-prune" in _command(container)


def _running(pod: Mapping[str, Any]) -> bool:
    return not is_terminating(pod) and (pod.get("status") or {}).get("phase") == "Running"


def label_allowed(key: str, extra_namespaces: frozenset[str]) -> bool:
    namespace = key.split("/", 1)[0] if "/" in key else ""
    if namespace in extra_namespaces:
        return True
    return any(namespace == allowed or namespace.endswith("." + allowed) for allowed in DEFAULT_LABEL_NS)


def merged_labels(objects: list[Mapping[str, Any]], master_namespace: str, extra_namespaces: frozenset[str]) -> dict[str, str]:
    """The labels nfd-master wants on one node from its NodeFeature objects (see the module docstring)."""
    ordered = sorted(
        objects,
        key=lambda o: (o["metadata"].get("namespace") != master_namespace, o["metadata"]["name"], o["metadata"].get("namespace", "")),
    )
    labels: dict[str, str] = {}
    for obj in ordered:
        for key, value in ((obj.get("spec") or {}).get("labels") or {}).items():
            full = key if "/" in key else f"{FEATURE_LABEL_NS}/{key}"
            if label_allowed(full, extra_namespaces):
                labels[full] = str(value)
    return labels


def _annotation_value(labels: Mapping[str, str]) -> str:
    return ",".join(sorted(key.removeprefix(FEATURE_LABEL_NS + "/") for key in labels))


def _annotated_labels(node: Mapping[str, Any]) -> set[str]:
    text = ((node.get("metadata") or {}).get("annotations") or {}).get(FEATURE_LABELS_ANNOTATION, "")
    return {name if "/" in name else f"{FEATURE_LABEL_NS}/{name}" for name in text.split(",") if name}


class NfdMaster:
    """A controller of the agents' cluster; see the module docstring."""

    def __init__(self) -> None:
        self._pruned: set[str] = set()  # uids of prune pods already acted on

    def reconcile(self, cluster: Cluster, dirty: set[tuple[str, str]]) -> None:
        touched = {resource for resource, _ in dirty}
        if not touched & {"pods", "nodes", NODE_FEATURES, "configmaps"}:
            return
        pods = list(cluster._iter(cluster.resource("pods"), None))  # read only: no copies of every pod per write
        for pod in pods:
            if is_prune(pod) and not is_terminating(pod) and pod["metadata"]["uid"] not in self._pruned:
                self._pruned.add(pod["metadata"]["uid"])
                self.prune(cluster)
        masters = [pod for pod in pods if _master_container(pod) is not None and not is_prune(pod) and _running(pod)]
        if not masters or not serves_node_features(cluster):
            return
        master = masters[0]
        namespace = master["metadata"]["namespace"]
        extra = self._extra_label_namespaces(cluster, master)
        by_node: dict[str, list[dict[str, Any]]] = {}
        for obj in list(cluster._iter(cluster.resource(NODE_FEATURES), None)):
            if not is_terminating(obj):
                by_node.setdefault((obj["metadata"].get("labels") or {}).get(NODE_NAME_LABEL), []).append(obj)
        for node in list(cluster._iter(cluster.resource("nodes"), None)):
            mine = by_node.get(node["metadata"]["name"], [])
            self._update_node(cluster, node, merged_labels(mine, namespace, extra))

    @staticmethod
    def _extra_label_namespaces(cluster: Cluster, master: Mapping[str, Any]) -> frozenset[str]:
        namespace = master["metadata"]["namespace"]
        for volume in (master.get("spec") or {}).get("volumes") or []:
            config_map = (volume.get("configMap") or {}).get("name")
            if not config_map:
                continue
            try:
                data = cluster.get("configmaps", config_map, namespace).get("data") or {}
            except ApiError:
                continue
            if _MASTER_CONFIG_KEY in data:
                config = yaml.safe_load(data[_MASTER_CONFIG_KEY]) or {}
                return frozenset(str(ns) for ns in config.get("extraLabelNs") or [])
        return frozenset()

    @staticmethod
    def _update_node(cluster: Cluster, node: Mapping[str, Any], wanted: Mapping[str, str]) -> None:
        current = (node.get("metadata") or {}).get("labels") or {}
        change: dict[str, str | None] = {key: None for key in _annotated_labels(node) - set(wanted) if key in current}
        change.update({key: value for key, value in wanted.items() if current.get(key) != value})
        annotations = (node.get("metadata") or {}).get("annotations") or {}
        annotation = _annotation_value(wanted) or None
        patch: dict[str, Any] = {}
        if change:
            patch["labels"] = change
        if annotations.get(FEATURE_LABELS_ANNOTATION) != annotation:
            patch["annotations"] = {FEATURE_LABELS_ANNOTATION: annotation}
        if patch:
            cluster.patch("nodes", node["metadata"]["name"], {"metadata": patch}, "merge")

    @staticmethod
    def prune(cluster: Cluster) -> None:
        """``nfd-master -prune``: remove the labels NFD wrote, and its annotation, from every node."""
        for node in cluster.list("nodes"):
            NfdMaster._update_node(cluster, node, {})
