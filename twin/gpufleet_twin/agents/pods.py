"""Reading pod specs the way kubelet and the NVIDIA containers would, and the statuses kubelet writes.

Pragmatic rules where a real container would simply run its command:

- a pod's role: a container whose command is ``nvidia-device-plugin`` makes the pod a device plugin,
  ``gpu-feature-discovery`` a GFD (what NVIDIA's chart 0.20.0 runs in its ``-ctr`` containers, beside
  ``config-manager`` init containers and sidecars when ``config.map`` is set); anything else is a workload;
- a workload with ``restartPolicy`` Never or OnFailure whose command line mentions no long-running
  command (``sleep``, ``tail -f``, ``infinity``, ``wait``) is a one-shot: it completes (Succeeded, exit 0)
  right after it starts; everything else keeps running until deleted or evicted;
- a workload whose command line mentions ``nvidia-smi`` logs the ``nvidia-smi -L`` listing of the
  devices it was given (nothing else is emulated).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ..kube.controllers import InstantKubelet
from ..kube.scheduler import EXTENDED_PREFIX, creation_order, extended_requests  # noqa: F401 - node agents read them here
from ..kube.timestamps import now_rfc3339

DEVICE_PLUGIN = "device-plugin"
GFD = "gfd"
WORKLOAD = "workload"
_LONG_RUNNING = re.compile(r"\bsleep\b|\btail\s+-f\b|\binfinity\b|\bwait\b")


def containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((pod.get("spec") or {}).get("containers") or [])


def _command_name(container: Mapping[str, Any]) -> str:
    command = container.get("command") or []
    return os.path.basename(str(command[0])) if command else ""


def pod_role(pod: Mapping[str, Any]) -> str:
    """By the command a container runs, as NVIDIA's chart (and the stand-in) deploy them; the chart's
    ``config-manager`` init containers and sidecars and the MPS control daemon are not a role."""
    for container in containers(pod):
        command = _command_name(container)
        if command == "nvidia-device-plugin":
            return DEVICE_PLUGIN
        if command == "gpu-feature-discovery":
            return GFD
    return WORKLOAD


def role_container(pod: Mapping[str, Any], role: str) -> Mapping[str, Any]:
    """The container playing ``role`` (the main container of a plugin or GFD pod)."""
    wanted = {DEVICE_PLUGIN: "nvidia-device-plugin", GFD: "gpu-feature-discovery"}.get(role)
    for container in containers(pod):
        if wanted and _command_name(container) == wanted:
            return container
    found = containers(pod)
    return found[0] if found else {}


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """Literal env values (valueFrom entries are resolved by kubelet from the API; none matter here)."""
    return {str(e["name"]): str(e.get("value", "")) for e in container.get("env") or [] if "name" in e and "valueFrom" not in e}


def env_flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "t", "true", "yes", "y", "on")


def command_line(pod: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for container in containers(pod):
        parts += [str(p) for p in (container.get("command") or [])] + [str(p) for p in (container.get("args") or [])]
    return " ".join(parts)


def is_one_shot(pod: Mapping[str, Any]) -> bool:
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    return policy != "Always" and bool(command_line(pod)) and not _LONG_RUNNING.search(command_line(pod))


def runs_nvidia_smi(pod: Mapping[str, Any]) -> bool:
    return "nvidia-smi" in command_line(pod)


def controller_uid(pod: Mapping[str, Any], kind: str = "DaemonSet") -> str | None:
    for reference in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if reference.get("controller") and reference.get("kind") == kind:
            return reference.get("uid")
    return None


def parse_go_duration(text: str) -> float | None:
    """GFD_SLEEP_INTERVAL: a Go duration ("60s", "1m30s", "500ms"), bare seconds, or "infinite" (None)."""
    text = text.strip()
    if text.lower() == "infinite":
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    total, position = 0.0, 0
    for match in re.finditer(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", text):
        if match.start() != position:
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * units[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}")
    return total


# ------------------------------------------------------------------ statuses kubelet writes
def running_status(pod: Mapping[str, Any], restart_count: int = 0) -> dict[str, Any]:
    status = InstantKubelet.running_status(pod)
    for container_status in status["containerStatuses"]:
        container_status["restartCount"] = restart_count
    return status


def _not_ready_conditions(stamp: str, reason: str | None = None) -> list[dict[str, Any]]:
    conditions = []
    for condition in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"):
        ready = condition not in ("Ready", "ContainersReady")
        entry: dict[str, Any] = {"type": condition, "status": "True" if ready else "False", "lastTransitionTime": stamp}
        if not ready and reason:
            entry["reason"] = reason
        conditions.append(entry)
    return conditions


def succeeded_status(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The cluster's completed status, with the pod IP and the condition set a real kubelet reports."""
    status = InstantKubelet.succeeded_status(pod)
    status["podIP"] = "10.244.0.1"
    status["conditions"] = _not_ready_conditions(status["startTime"], "PodCompleted")
    return status


def rejected_status(reason: str, message: str) -> dict[str, Any]:
    """Kubelet's admission rejection (``rejectPod``): Failed with the handler's reason."""
    return {"phase": "Failed", "reason": reason, "message": f"Pod was rejected: {message}", "startTime": now_rfc3339()}


def container_failure_status(pod: Mapping[str, Any], restart_count: int, reason: str, message: str, exit_code: int) -> dict[str, Any]:
    """A container that exits (or cannot start) again and again: CrashLoopBackOff as kubectl shows it,
    or Failed for a pod that is not restarted."""
    stamp = now_rfc3339()
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    terminated = {"exitCode": exit_code, "reason": reason, "message": message, "startedAt": stamp, "finishedAt": stamp}
    statuses = []
    for container in containers(pod):
        entry: dict[str, Any] = {
            "name": container.get("name", ""),
            "image": container.get("image", ""),
            "imageID": "",
            "ready": False,
            "started": False,
            "restartCount": restart_count,
        }
        if policy == "Never":
            entry["state"] = {"terminated": terminated}
        else:
            entry["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off restarting failed container {container.get('name', '')}"}}
            entry["lastState"] = {"terminated": terminated}
        statuses.append(entry)
    return {
        "phase": "Failed" if policy == "Never" else "Running",
        "startTime": stamp,
        "hostIP": "10.0.0.1",
        "podIP": "10.244.0.1",
        "conditions": _not_ready_conditions(stamp, "ContainersNotReady"),
        "containerStatuses": statuses,
    }


def pod_phase_pending(pod: Mapping[str, Any]) -> bool:
    return ((pod.get("status") or {}).get("phase") or "Pending") == "Pending"
