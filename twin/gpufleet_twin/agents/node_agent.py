"""One fleet node's agents: kubelet, the device plugin and GFD, driven by the node's NVML state.

``NodeAgent`` reacts to the pods bound to its node (called from the cluster's settle loop, so a pod
created through the API is started, admitted or rejected within that same request) and to its
clocks (``tick``, from the agents' timer thread). Both run under the cluster's lock.

Kubelet
  Pods start when bound. A pod asking for ``nvidia.com/*`` goes through kubelet's admission:
  the device manager first (a resource some plugin registered: enough healthy, unallocated devices,
  else ``UnexpectedAdmissionError``), then the resource predicate (a resource no plugin ever
  registered, or one dropped after its grace period: ``OutOf<resource>``). Admitted pods get distinct
  devices, in enumeration order; a running pod holds a simulated compute process on each of its MIG
  devices and MIG-disabled GPUs (a MIG-enabled whole GPU cannot run compute work, so the pod holds it
  open as a client instead); deletion or eviction releases them. A device that vanished since the
  plugin enumerated it makes the container fail to start (``StartError``), as nvidia-container-cli
  does with an unknown UUID.
Device plugin
  Exists while a device-plugin pod runs on the node. It enumerates at container start only (pod
  creation, crash-loop retry, node reboot); a fatal start crash-loops the pod with kubelet's back-off
  and every retry enumerates again. While it serves devices it holds their GPUs open as an NVML
  client (its health checker keeps NVML event sets on them), so a MIG mode change or a GPU reset is
  refused until the plugin leaves the node, as on real nodes where it is a GPU client to stop first. When its endpoints stop (pod deleted, crash), kubelet zeroes the
  resources' allocatable at once and drops them from capacity after ``device_plugin_grace``.
GFD
  Labels the node when its pod starts and every sleep interval (it opens NVML only during a pass, so
  it holds no GPU). Where NFD's NodeFeature CRD is served (NVIDIA's chart with its NFD subchart) and
  the pod does not set GFD_USE_NODE_FEATURE_API=false, it writes the labels into the NodeFeature object
  ``nvidia-features-for-<node>`` in its namespace, owned by its DaemonSet and pod, and nfd-master
  (``nfd_master.py``) labels the node. Without the CRD (the stand-in chart has no NFD) it labels the
  node itself, with the same outcome: the labels outlive its pod and go only when the DaemonSet that
  wrote them is deleted (its NodeFeature object is garbage-collected), or are replaced by the next pass
  of another GFD.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import nvml
from ..nvml.spec import hold_gpu_in_state
from ..nvml.state import locked_state
from ..kube.timestamps import now_rfc3339
from ..kube.errors import ApiError
from ..kube.workloads import is_terminating
from . import pods as podlib
from .config import AgentTiming, NodeAgentSpec
from .device_plugin import start_device_plugin
from .gfd import PREFIX as GFD_PREFIX
from .gfd import GfdError, gfd_labels
from .inventory import NodeGpus, read_node_gpus
from .nfd_master import NODE_FEATURES, NODE_NAME_LABEL, serves_node_features

# GFD's NodeFeature object is named <prefix>-<node> (internal/lm/output.go nodeFeatureVendorPrefix).
NODE_FEATURE_PREFIX = "nvidia-features-for"

if TYPE_CHECKING:
    from ..kube.cluster import Cluster

FIRST_PID = 40000


@dataclass
class Workload:
    namespace: str
    name: str
    uid: str
    devices: dict[str, tuple[str, ...]]
    pids: list[tuple[int, int]] = field(default_factory=list)  # (gpu index, pid)
    clients: list[tuple[int, str]] = field(default_factory=list)  # (gpu index, client name)


def _container_cgroup(workload: Workload, device_id: str) -> str:
    """The cgroup of the pod's container that runs on ``device_id``: the node's /proc shows it as a pod's process."""
    container_id = hashlib.sha256(f"{workload.uid}/{device_id}".encode()).hexdigest()  # 64 hex digits, as containerd's
    return nvml.pod_cgroup(workload.uid, container_id)


@dataclass
class Daemon:
    """A running (or crash-looping) device-plugin or GFD container."""

    namespace: str
    name: str
    uid: str
    owner_uid: str | None
    strategy: str
    fail_on_init_error: bool
    restarts: int = 0
    crashed: bool = False
    next_run: float = math.inf  # crash-loop retry (both) or next labelling pass (GFD)
    sleep_interval: float | None = None
    no_timestamp: bool = False
    use_node_feature_api: bool = True


def nvidia_smi_listing(node: NodeGpus, device_ids: list[str]) -> str:
    """``nvidia-smi -L`` inside a container given ``device_ids``: GPUs renumbered from 0 in host order;
    a whole GPU shows all its MIG devices, a MIG device alone shows as device 0, 1, ... of its GPU.
    Line format as the twin's nvidia-smi stand-in prints it."""
    whole: set[int] = set()
    mig_by_gpu: dict[int, list[Any]] = {}
    for device_id in device_ids:
        found = node.device_by_uuid(device_id)
        if found is None:
            continue
        gpu, mig = found
        if mig is None:
            whole.add(gpu.index)
        else:
            mig_by_gpu.setdefault(gpu.index, []).append(mig)
    lines = []
    for container_index, gpu_index in enumerate(sorted(whole | set(mig_by_gpu))):
        gpu = node.gpu(gpu_index)
        lines.append(f"GPU {container_index}: {gpu.name} (UUID: {gpu.uuid})")
        visible = list(gpu.mig_devices) if gpu_index in whole else sorted(mig_by_gpu[gpu_index], key=lambda d: d.mig_index)
        for number, mig in enumerate(visible):
            lines.append(f"  MIG {mig.nvidia_smi_name:<11} Device {number:>2}: (UUID: {mig.uuid})")
    return "\n".join(lines) + "\n" if lines else "No devices found.\n"


class NodeAgent:
    def __init__(self, spec: NodeAgentSpec, timing: AgentTiming, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.timing = timing
        self.clock = clock
        self.workloads: dict[str, Workload] = {}
        self.plugin: Daemon | None = None
        self.gfd: Daemon | None = None
        self.registered: dict[str, tuple[str, ...]] = {}  # resource -> devices of running endpoints
        self.plugin_clients: list[tuple[int, str]] = []  # GPUs the running plugin holds open
        self.stale: dict[str, tuple[int, float]] = {}  # resource -> (capacity kept, dropped at)
        self.gfd_labels: set[str] = set()
        self.gfd_owner: str | None = None
        self.next_heartbeat = 0.0
        self.boot_count: int | None = None
        self.next_pid = FIRST_PID
        self.state_signature: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def inventory(self) -> NodeGpus:
        return read_node_gpus(self.spec.state_path)

    # ------------------------------------------------------------------ node object
    def register(self, cluster: Cluster) -> None:
        """Create the Node object the way kubelet registers itself."""
        cluster.add_node(self.name, labels=self.spec.labels, capacity=self.spec.capacity, taints=self.spec.taints or None)
        self.boot_count = self._read_boot_count()
        self._state_changed()  # the state as registered is the baseline for reboots
        # Kubelets of a fleet do not beat in step: a fixed phase per node spreads a 1,000-node twin's
        # heartbeats over the period instead of writing them all at once.
        phase = (zlib.crc32(self.name.encode()) % 1000) / 1000
        self.next_heartbeat = self.clock() + self.timing.heartbeat * (0.5 + phase / 2)

    def _heartbeat(self, cluster: Cluster) -> None:
        node = cluster.get("nodes", self.name)
        ready = next((c for c in node.get("status", {}).get("conditions") or [] if c.get("type") == "Ready"), {})
        stamp = now_rfc3339()
        condition = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": ready.get("lastTransitionTime", stamp) if ready.get("status") == "True" else stamp,
        }
        cluster.set_node_status(self.name, {"conditions": [condition]})

    def _publish_resources(self, cluster: Cluster) -> None:
        capacity = {name: len(ids) for name, ids in self.registered.items()}
        allocatable = dict(capacity)
        for name, (kept, _) in self.stale.items():
            if name not in self.registered:
                capacity[name], allocatable[name] = kept, 0
        status = cluster.get("nodes", self.name).get("status") or {}

        def current(field_name: str) -> dict[str, str]:
            return {k: v for k, v in (status.get(field_name) or {}).items() if k.startswith(podlib.EXTENDED_PREFIX)}

        wanted_capacity = {k: str(v) for k, v in capacity.items()}
        wanted_allocatable = {k: str(v) for k, v in allocatable.items()}
        if current("capacity") != wanted_capacity or current("allocatable") != wanted_allocatable:
            cluster.set_extended_resources(self.name, wanted_capacity, wanted_allocatable)

    # ------------------------------------------------------------------ pods
    def sync_pods(self, cluster: Cluster) -> None:
        """Start new pods, notice deleted ones; called after every write that touched pods or nodes."""
        current = {pod["metadata"]["uid"]: pod for pod in cluster.pods_on_node(self.name)}
        live = {uid for uid, pod in current.items() if not is_terminating(pod)}
        for uid in [uid for uid in self.workloads if uid not in live]:
            self._release(self.workloads.pop(uid))
        if self.plugin is not None and self.plugin.uid not in live:
            self._stop_plugin(cluster)
        if self.gfd is not None and self.gfd.uid not in live:
            self.gfd = None  # its labels stay (NodeFeature API mode)
        for uid in sorted(live, key=lambda u: podlib.creation_order(current[u])):
            pod = current[uid]
            if podlib.pod_phase_pending(pod) and not self._knows(uid):
                role = podlib.pod_role(pod)
                if role == podlib.DEVICE_PLUGIN:
                    self._start_plugin(cluster, pod)
                elif role == podlib.GFD:
                    self._start_gfd(cluster, pod)
                else:
                    self._start_workload(cluster, pod)

    def _knows(self, uid: str) -> bool:
        return uid in self.workloads or any(d is not None and d.uid == uid for d in (self.plugin, self.gfd))

    @staticmethod
    def _set_status(cluster: Cluster, pod: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            cluster.patch("pods", meta["name"], {"status": dict(status)}, "merge", meta["namespace"], subresource="status")
        except ApiError as gone:
            if gone.code != 404:
                raise

    def _allocated(self, resource: str) -> set[str]:
        return {device for workload in self.workloads.values() for device in workload.devices.get(resource, ())}

    def _admit(self, requests: Mapping[str, int]) -> tuple[dict[str, tuple[str, ...]], str | None, str | None]:
        """(devices per resource, rejection reason, message) as kubelet's admit handlers decide."""
        chosen: dict[str, tuple[str, ...]] = {}
        for resource, amount in requests.items():
            if resource not in self.registered and resource not in self.stale:
                continue  # not a device-plugin resource for the device manager
            in_use = self._allocated(resource)
            available = [device for device in self.registered.get(resource, ()) if device not in in_use]
            if len(available) < amount:
                return {}, "UnexpectedAdmissionError", (
                    f"Allocate failed due to requested number of devices unavailable for {resource}. "
                    f"Requested: {amount}, Available: {len(available)}, which is unexpected"
                )
            chosen[resource] = tuple(available[:amount])
        for resource, amount in requests.items():
            if resource not in chosen:
                return {}, f"OutOf{resource}", (
                    f"Node didn't have enough resource: {resource}, requested: {amount}, used: 0, capacity: 0"
                )
        return chosen, None, None

    def _start_workload(self, cluster: Cluster, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        devices, reason, message = self._admit(podlib.extended_requests(pod))
        if reason is not None:
            self._set_status(cluster, pod, podlib.rejected_status(reason, message or ""))
            return
        node = self.inventory()
        device_ids = [device for ids in devices.values() for device in ids]
        missing = [device for device in device_ids if node.device_by_uuid(device) is None]
        if missing:
            detail = (
                "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
                f"nvidia-container-cli: device error: {missing[0]}: unknown device"
            )
            self._set_status(cluster, pod, podlib.container_failure_status(pod, 0, "StartError", detail, 128))
            return
        if podlib.runs_nvidia_smi(pod):
            cluster.set_pod_log(meta["namespace"], meta["name"], nvidia_smi_listing(node, device_ids))
        if podlib.is_one_shot(pod):
            self._set_status(cluster, pod, podlib.succeeded_status(pod))
            return
        workload = Workload(meta["namespace"], meta["name"], meta["uid"], devices)
        self._hold(workload, node)
        self.workloads[workload.uid] = workload
        self._set_status(cluster, pod, podlib.running_status(pod))

    def _hold(self, workload: Workload, node: NodeGpus) -> None:
        """Start the pod's GPU work: a compute process per device (a client on a MIG-enabled whole GPU)."""
        owner = f"{workload.namespace}/{workload.name}"
        state = self.spec.state_path
        for ids in workload.devices.values():
            for device_id in ids:
                found = node.device_by_uuid(device_id)
                if found is None:
                    continue
                gpu, mig = found
                if mig is None and gpu.mig_enabled:
                    nvml.hold_gpu(state, gpu.index, owner)
                    workload.clients.append((gpu.index, owner))
                    continue
                pid = self._add_process(gpu.index, owner, mig, _container_cgroup(workload, device_id))
                workload.pids.append((gpu.index, pid))

    def _add_process(self, gpu: int, owner: str, mig: Any, cgroup: str) -> int:
        while True:
            pid, self.next_pid = self.next_pid, self.next_pid + 1
            try:
                nvml.add_process(
                    self.spec.state_path, gpu, pid, owner, 0, None if mig is None else mig.gi_id, None if mig is None else mig.ci_id,
                    cgroup=cgroup,
                )
                return pid
            except nvml.NodeSpecError as clash:
                if "already runs" not in str(clash):
                    raise

    def _release(self, workload: Workload) -> None:
        state = self.spec.state_path
        for _, pid in workload.pids:
            try:
                nvml.remove_process(state, pid)
            except nvml.NodeSpecError:
                pass  # gone with a reboot
        for gpu, client in workload.clients:
            nvml.release_gpu(state, gpu, client)
        workload.pids.clear()
        workload.clients.clear()

    def release_all(self) -> None:
        for workload in self.workloads.values():
            self._release(workload)
        self._release_plugin_clients()

    def _hold_plugin_clients(self, node: NodeGpus) -> None:
        plugin = self.plugin
        assert plugin is not None
        client = f"{plugin.namespace}/{plugin.name}"
        gpus = set()
        for ids in self.registered.values():
            for device_id in ids:
                found = node.device_by_uuid(device_id)
                if found is not None:
                    gpus.add(found[0].index)
        if not gpus:
            return
        with locked_state(self.spec.state_path) as state:  # one state write for all GPUs, not one per GPU
            for gpu in sorted(gpus):
                hold_gpu_in_state(state, gpu, client)
                self.plugin_clients.append((gpu, client))

    def _release_plugin_clients(self) -> None:
        if not self.plugin_clients:
            return
        held = set(self.plugin_clients)
        with locked_state(self.spec.state_path) as state:
            state["clients"] = [c for c in state["clients"] if (c["gpu"], c["name"]) not in held]
        self.plugin_clients.clear()

    # ------------------------------------------------------------------ device plugin
    def _daemon_for(self, pod: Mapping[str, Any], role: str) -> Daemon:
        env = podlib.container_env(podlib.role_container(pod, role))
        meta = pod["metadata"]
        strategy = env.get("GFD_MIG_STRATEGY") if role == podlib.GFD and env.get("GFD_MIG_STRATEGY") else env.get("MIG_STRATEGY")
        fail_key = "GFD_FAIL_ON_INIT_ERROR" if role == podlib.GFD and "GFD_FAIL_ON_INIT_ERROR" in env else "FAIL_ON_INIT_ERROR"
        return Daemon(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            owner_uid=podlib.controller_uid(pod),
            strategy=(strategy or "none").strip(),
            fail_on_init_error=podlib.env_flag(env.get(fail_key), True),
            no_timestamp=podlib.env_flag(env.get("GFD_NO_TIMESTAMP"), False),
            sleep_interval=self._sleep_interval(env),
            use_node_feature_api=podlib.env_flag(env.get("GFD_USE_NODE_FEATURE_API", env.get("USE_NODE_FEATURE_API")), True),
        )

    def _sleep_interval(self, env: Mapping[str, str]) -> float | None:
        text = env.get("GFD_SLEEP_INTERVAL")
        if not text:
            return self.timing.gfd_sleep_interval
        try:
            return podlib.parse_go_duration(text)
        except ValueError:
            return self.timing.gfd_sleep_interval

    def _backoff(self, restarts: int) -> float:
        return min(self.timing.crash_backoff * (2 ** max(restarts - 1, 0)), self.timing.crash_backoff_max)

    def _start_plugin(self, cluster: Cluster, pod: Mapping[str, Any]) -> None:
        if self.plugin is not None:
            self._stop_plugin(cluster)  # a second plugin pod replaces the endpoints of the first
        self.plugin = self._daemon_for(pod, podlib.DEVICE_PLUGIN)
        self._run_plugin(cluster, pod)

    def _run_plugin(self, cluster: Cluster, pod: Mapping[str, Any]) -> None:
        plugin = self.plugin
        assert plugin is not None
        node = self.inventory()
        outcome = start_device_plugin(node, plugin.strategy, plugin.fail_on_init_error)
        log = "".join(f"{line}\n" for line in outcome.log)
        if plugin.restarts:
            cluster.append_pod_log(plugin.namespace, plugin.name, log)
        else:
            cluster.set_pod_log(plugin.namespace, plugin.name, log)
        if outcome.failed:
            plugin.crashed = True
            plugin.restarts += 1
            plugin.next_run = self.clock() + self._backoff(plugin.restarts)
            self._set_status(cluster, pod, podlib.container_failure_status(pod, plugin.restarts, "Error", outcome.error or "", 1))
        else:
            plugin.crashed = False
            plugin.next_run = math.inf
            self.registered = dict(outcome.resources)
            for name in self.registered:
                self.stale.pop(name, None)
            self._hold_plugin_clients(node)
            self._set_status(cluster, pod, podlib.running_status(pod, plugin.restarts))
        self._publish_resources(cluster)

    def _stop_plugin(self, cluster: Cluster) -> None:
        dropped_at = self.clock() + self.timing.device_plugin_grace
        for name, ids in self.registered.items():
            self.stale[name] = (len(ids), dropped_at)
        self.registered = {}
        self._release_plugin_clients()
        self.plugin = None
        self._publish_resources(cluster)

    def restart_plugin(self, cluster: Cluster) -> None:
        """The plugin container starts again (node reboot): endpoints stop, devices are enumerated anew."""
        plugin = self.plugin
        if plugin is None:
            return
        pod = self._pod(cluster, plugin)
        if pod is None:
            return
        self._stop_plugin(cluster)
        self.plugin = plugin
        plugin.restarts += 1
        self._run_plugin(cluster, pod)

    @staticmethod
    def _pod(cluster: Cluster, daemon: Daemon) -> dict[str, Any] | None:
        try:
            pod = cluster.get("pods", daemon.name, daemon.namespace)
        except ApiError:
            return None
        return pod if pod["metadata"]["uid"] == daemon.uid else None

    # ------------------------------------------------------------------ GFD
    def _start_gfd(self, cluster: Cluster, pod: Mapping[str, Any]) -> None:
        self.gfd = self._daemon_for(pod, podlib.GFD)
        self._run_gfd(cluster, pod)

    def _run_gfd(self, cluster: Cluster, pod: Mapping[str, Any]) -> None:
        gfd = self.gfd
        assert gfd is not None
        timestamp = None if gfd.no_timestamp else int(time.time())
        try:
            labels, warnings = gfd_labels(self.inventory(), gfd.strategy, self.spec.machine, timestamp, gfd.fail_on_init_error)
        except GfdError as fatal:
            cluster.append_pod_log(gfd.namespace, gfd.name, f"Error: {fatal}\n")
            gfd.crashed = True
            gfd.restarts += 1
            gfd.next_run = self.clock() + self._backoff(gfd.restarts)
            self._set_status(cluster, pod, podlib.container_failure_status(pod, gfd.restarts, "Error", str(fatal), 1))
            return
        if gfd.crashed or pod.get("status", {}).get("phase", "Pending") == "Pending":
            self._set_status(cluster, pod, podlib.running_status(pod, gfd.restarts))
        gfd.crashed = False
        gfd.next_run = math.inf if gfd.sleep_interval is None else self.clock() + gfd.sleep_interval
        log = "".join(f"Warning: {line}\n" for line in warnings) + f"Writing {len(labels)} labels to node {self.name}\n"
        cluster.append_pod_log(gfd.namespace, gfd.name, log)
        if gfd.use_node_feature_api and serves_node_features(cluster):
            self._write_node_feature(cluster, labels, pod)
        else:
            self._write_labels(cluster, labels, gfd.owner_uid)

    def _write_node_feature(self, cluster: Cluster, labels: Mapping[str, str], pod: Mapping[str, Any]) -> None:
        """GFD's NodeFeature output (k8s-device-plugin internal/lm/output.go, v0.20.0): one object per node in
        the pod's namespace, owned by the DaemonSet (controller) and the pod; nfd-master labels the node."""
        meta = pod["metadata"]
        owners = [
            {k: ref[k] for k in ("apiVersion", "kind", "name", "uid")} | {"controller": True}
            for ref in meta.get("ownerReferences") or [] if ref.get("kind") == "DaemonSet"
        ][:1]
        if owners:  # GFD resolves owners only for a pod a DaemonSet owns
            owners.append({"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]})
        name = f"{NODE_FEATURE_PREFIX}-{self.name}"
        wanted = {
            "labels": {NODE_NAME_LABEL: self.name},
            "ownerReferences": owners or None,
            "spec": {"features": {"flags": {}, "attributes": {}, "instances": {}}, "labels": dict(labels)},
        }
        self.gfd_labels, self.gfd_owner = set(), None  # nfd-master owns the node labels now
        try:
            current = cluster.get(NODE_FEATURES, name, meta["namespace"])
        except ApiError:
            body = {"metadata": {"name": name, "labels": wanted["labels"], "ownerReferences": owners}, "spec": wanted["spec"]}
            cluster.create(NODE_FEATURES, body, meta["namespace"])
            return
        same = (
            current["metadata"].get("labels") == wanted["labels"]
            and (current["metadata"].get("ownerReferences") or None) == wanted["ownerReferences"]
            and current.get("spec") == wanted["spec"]
        )
        if not same:
            current["metadata"]["labels"] = wanted["labels"]
            current["metadata"]["ownerReferences"] = owners
            current["spec"] = wanted["spec"]
            cluster.replace(NODE_FEATURES, name, current, meta["namespace"])

    def _write_labels(self, cluster: Cluster, labels: Mapping[str, str], owner: str | None) -> None:
        existing = cluster.get("nodes", self.name)["metadata"].get("labels") or {}
        change: dict[str, str | None] = {key: None for key in self.gfd_labels - set(labels) if key in existing}
        change.update({key: value for key, value in labels.items() if existing.get(key) != value})
        self.gfd_labels = set(labels)
        self.gfd_owner = owner
        if change:
            cluster.set_node_labels(self.name, change)

    def forget_gfd_labels_of_deleted_daemonsets(self, cluster: Cluster, live_daemonsets: set[str]) -> None:
        """NodeFeature API mode: GFD's labels go when the DaemonSet owning its NodeFeature object goes."""
        if not self.gfd_labels or self.gfd_owner is None or self.gfd_owner in live_daemonsets:
            return
        existing = cluster.get("nodes", self.name)["metadata"].get("labels") or {}
        removed = {key: None for key in self.gfd_labels if key in existing and key.startswith(GFD_PREFIX)}
        self.gfd_labels, self.gfd_owner = set(), None
        if removed:
            cluster.set_node_labels(self.name, removed)

    # ------------------------------------------------------------------ clocks
    def _state_changed(self) -> bool:
        """Cheap check before parsing the state file: writes replace it, so its inode/mtime change."""
        try:
            stat = os.stat(self.spec.state_path)
        except FileNotFoundError:
            return False
        signature = (stat.st_ino, stat.st_mtime_ns)
        changed, self.state_signature = signature != self.state_signature, signature
        return changed

    def _read_boot_count(self) -> int:
        """The boot count alone, without building the inventory (registration of 1,000 nodes reads it 1,000 times).
        State files are replaced whole (temp file + rename), so an unlocked read sees one version."""
        with open(self.spec.state_path, encoding="utf-8") as state:
            return int(json.load(state).get("boot_count", 0))

    def next_due(self) -> float:
        """When a clock of this node next runs out: heartbeat, a stopped plugin's grace, a daemon's next run."""
        due = self.next_heartbeat
        for _, dropped_at in self.stale.values():
            due = min(due, dropped_at)
        for daemon in (self.plugin, self.gfd):
            if daemon is not None:
                due = min(due, daemon.next_run)
        return due

    def check_state(self, cluster: Cluster) -> None:
        """React to the node's NVML state: a reboot (boot count moved) restarts the node's containers."""
        if self._state_changed():
            node = self.inventory()
            if self.boot_count is not None and node.boot_count != self.boot_count:
                self._after_reboot(cluster, node)
            self.boot_count = node.boot_count

    def tick(self, cluster: Cluster, check_state: bool = True) -> None:
        now = self.clock()
        if check_state:
            self.check_state(cluster)
        if now >= self.next_heartbeat:
            self._heartbeat(cluster)
            self.next_heartbeat = now + self.timing.heartbeat
        expired = [name for name, (_, dropped_at) in self.stale.items() if dropped_at <= now]
        for name in expired:
            del self.stale[name]
        if expired:
            self._publish_resources(cluster)
        for daemon, run in ((self.plugin, self._run_plugin), (self.gfd, self._run_gfd)):
            if daemon is not None and daemon.next_run <= now:
                pod = self._pod(cluster, daemon)
                if pod is not None:
                    run(cluster, pod)

    def _after_reboot(self, cluster: Cluster, node: NodeGpus) -> None:
        """Kubelet comes back: containers restart, so GPU pods re-open their devices (those whose
        devices vanished fail to start) and the plugin and GFD enumerate again."""
        for uid, workload in list(self.workloads.items()):
            workload.pids.clear()
            workload.clients.clear()
            pod = self._pod(cluster, Daemon(workload.namespace, workload.name, uid, None, "", True))
            missing = [d for ids in workload.devices.values() for d in ids if node.device_by_uuid(d) is None]
            if pod is None:
                del self.workloads[uid]
            elif missing:
                del self.workloads[uid]
                detail = f"nvidia-container-cli: device error: {missing[0]}: unknown device"
                self._set_status(cluster, pod, podlib.container_failure_status(pod, 1, "StartError", detail, 128))
            else:
                self._hold(workload, node)
        self.restart_plugin(cluster)
        if self.gfd is not None:
            self.gfd.next_run = self.clock()
