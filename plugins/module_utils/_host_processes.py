# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Host facts about the processes NVML reports on a GPU: whose are they, a Kubernetes pod's or the host's?

NVML gives pids only (_gpu.py). Whether draining the node ends a process depends on who started it: a container
of a pod runs in a cgroup below the kubelet's ``kubepods`` cgroup, so evicting the pod ends it; anything else (a
job started over SSH, a systemd service) survives the drain and keeps its GPU instance in use, so destroying
that instance fails after the node was cordoned and drained (docs/host-processes.md).

The one place that reads ``/proc``: ``<proc_root>/<pid>/cgroup``. ``proc_root`` is ``/proc`` on a node; a
module that runs in a container sees the host's processes where the host's ``/proc`` is mounted (``/host/proc``).
"""

from __future__ import annotations

import os
from typing import Iterable, List, Optional

DEFAULT_PROC_ROOT = "/proc"

# The kubelet puts every pod below this cgroup: "/kubepods/burstable/pod<uid>/<container>" with the cgroupfs
# driver, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/..." with the systemd
# driver (kubernetes pkg/kubelet/cm/cgroup_manager_linux.go, qos_container_manager_linux.go).
_KUBEPODS = "kubepods"

OWNER_POD = "pod"
OWNER_HOST = "host"
OWNER_GONE = "gone"
OWNER_UNKNOWN = "unknown"


def cgroup_paths(text: str) -> List[str]:
    """The cgroup paths of ``/proc/<pid>/cgroup`` lines ``hierarchy-id:controllers:path`` (v1 and v2)."""
    paths = []
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) == 3 and parts[2]:
            paths.append(parts[2])
    return paths


def owner_of_cgroups(paths: Iterable[str]) -> str:
    """``pod`` when any path lies below the kubelet's kubepods cgroup, else ``host``. Pure."""
    for path in paths:
        if any(part.startswith(_KUBEPODS) for part in path.split("/")):
            return OWNER_POD
    return OWNER_HOST


def read_process_owner(pid: int, proc_root: str = DEFAULT_PROC_ROOT) -> dict:
    """``{owner, cgroup}`` of one pid: ``pod`` / ``host`` from its cgroup, ``gone`` when the process has ended
    (no ``<proc_root>/<pid>``), ``unknown`` when its cgroup cannot be read."""
    directory = os.path.join(proc_root, str(int(pid)))
    try:
        with open(os.path.join(directory, "cgroup"), encoding="utf-8", errors="replace") as stream:
            text = stream.read()
    except OSError:
        return {"owner": OWNER_UNKNOWN if os.path.isdir(directory) else OWNER_GONE, "cgroup": None}
    paths = cgroup_paths(text)
    return {"owner": owner_of_cgroups(paths), "cgroup": paths[0] if paths else None}


def annotate_process_owners(facts: dict, proc_root: Optional[str] = DEFAULT_PROC_ROOT) -> dict:
    """Add ``owner`` and ``cgroup`` to every process record of ``facts`` (``gpu.read_node_facts()``), in place.

    ``proc_root`` None leaves the records as they are (``owner`` absent: not known).
    """
    if proc_root is None:
        return facts
    for gpu in facts.get("gpus") or ():
        for process in gpu.get("processes") or ():
            process.update(read_process_owner(process["pid"], proc_root))
    return facts
