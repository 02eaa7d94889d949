"""The defaults the emulated API server fills in on writes (pkg/apis/*/v1/defaults.go, abridged to what clients read back).

``apply_defaults`` runs on create (and on secret updates, for ``stringData``); ``default_spec`` on every write.
"""
from __future__ import annotations

import base64
from typing import Any

from .resources import ResourceType
from .workload_controllers import job_defaults

POD_TEMPLATE_OWNERS = frozenset({"daemonsets.apps", "deployments.apps", "replicasets.apps", "statefulsets.apps", "jobs.batch"})


def _set_default(obj: dict[str, Any], key: str, value: Any) -> Any:
    """``setdefault`` that also fills a null (protobuf bodies decode absent optional fields as None)."""
    if obj.get(key) is None:
        obj[key] = value
    return obj[key]


def default_pod_spec(spec: dict[str, Any]) -> None:
    _set_default(spec, "restartPolicy", "Always")
    _set_default(spec, "terminationGracePeriodSeconds", 30)
    _set_default(spec, "dnsPolicy", "ClusterFirst")
    _set_default(spec, "schedulerName", "default-scheduler")
    _set_default(spec, "securityContext", {})


def default_spec(resource: ResourceType, obj: dict[str, Any]) -> None:
    """The defaults the real API server fills in on every write, where clients read them back
    (``kubectl rollout status`` refuses a DaemonSet without an update strategy)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    template_spec = (spec.get("template") or {}).get("spec")
    if resource.qualified in POD_TEMPLATE_OWNERS and isinstance(template_spec, dict):
        default_pod_spec(template_spec)
    if resource.qualified == "daemonsets.apps":
        strategy = spec.get("updateStrategy") or {}
        if not strategy.get("type"):  # protobuf bodies carry an empty strategy object
            strategy["type"] = "RollingUpdate"
        if strategy["type"] == "RollingUpdate":
            _set_default(strategy, "rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})
        spec["updateStrategy"] = strategy
        _set_default(spec, "revisionHistoryLimit", 10)
    elif resource.qualified == "deployments.apps":
        _set_default(spec, "replicas", 1)
        strategy = spec.get("strategy") or {}
        if not strategy.get("type"):
            strategy["type"] = "RollingUpdate"
        if strategy["type"] == "RollingUpdate":
            _set_default(strategy, "rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
        spec["strategy"] = strategy
        _set_default(spec, "revisionHistoryLimit", 10)
        _set_default(spec, "progressDeadlineSeconds", 600)
    elif resource.qualified in ("replicasets.apps", "statefulsets.apps"):
        _set_default(spec, "replicas", 1)

def apply_defaults(resource: ResourceType, obj: dict[str, Any]) -> None:
    default_spec(resource, obj)
    if resource.status_via_subresource_only:
        obj["status"] = {}
    if resource.qualified == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif resource.qualified == "pods":
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif resource.qualified == "jobs.batch":
        job_defaults(obj)
    elif resource.qualified == "secrets":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
