"""A per-node stand-in for the host's /proc, as far as the product reads it: ``<node dir>/proc/<pid>/cgroup``.

The product tells a Kubernetes pod's GPU process from a host process by its cgroup (plugins/module_utils/
host_processes.py, option ``proc_root`` of mig_plan_info, which the twin's inventory points here through the host
variable ``mig_proc_root``). Every simulated process carries a ``cgroup`` path; the tree is rewritten from the state
whenever the processes change, so it always lists exactly the simulated node's processes.

File format: cgroup v2's single line ``0::<path>`` (Linux Documentation/admin-guide/cgroup-v2.rst, "Processes").
Paths: a pod's container below the kubelet's systemd-driver cgroup
``/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope``
(kubernetes pkg/kubelet/cm/cgroup_manager_linux.go, containerd's systemd cgroup naming); a host process in a login
session ``/user.slice/user-0.slice/session-1.scope`` (systemd's user.slice, systemd.special(7)) unless given.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

PROC_DIR = "proc"
# A process started by hand on the host (over SSH, in a root login session): what `process add` gives by default.
HOST_SESSION_CGROUP = "/user.slice/user-0.slice/session-1.scope"


def pod_cgroup(pod_uid: str, container_id: str, qos: str = "besteffort") -> str:
    """The cgroup of a pod's container under the kubelet's systemd cgroup driver."""
    uid = pod_uid.replace("-", "_")  # systemd slice names cannot carry '-' inside a component
    return (f"/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{uid}.slice/"
            f"cri-containerd-{container_id}.scope")


def proc_root(state_path: Path | str) -> Path:
    return Path(state_path).parent / PROC_DIR


def sync_proc(state_path: Path | str, processes: list[dict[str, Any]]) -> None:
    """Make ``<node dir>/proc`` hold one ``<pid>/cgroup`` per simulated process, and nothing else."""
    root = proc_root(state_path)
    root.mkdir(exist_ok=True)
    wanted = {str(process["pid"]): process for process in processes}
    for entry in root.iterdir():
        if entry.name not in wanted:
            shutil.rmtree(entry, ignore_errors=True)
    for pid, process in wanted.items():
        directory = root / pid
        directory.mkdir(exist_ok=True)
        (directory / "cgroup").write_text(f"0::{process.get('cgroup') or HOST_SESSION_CGROUP}\n", encoding="utf-8")
        (directory / "comm").write_text(f"{process.get('name', '')[:15]}\n", encoding="utf-8")
