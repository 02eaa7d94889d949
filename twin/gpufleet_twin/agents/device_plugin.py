"""What NVIDIA's k8s-device-plugin (v0.20.0) advertises when its container starts.

Pure: ``start_device_plugin(node_gpus, strategy, fail_on_init_error)`` returns either the resources
with their device ids, or the fatal error that makes the container exit (the pod then crash-loops).
Rules from shared/reference/k8s-mig.md 1.1-1.4 and audit.md B (``internal/rm/device_map.go``):

- every GPU whose MIG mode is off (any GPU under ``none``) is one ``nvidia.com/gpu``;
- ``single``: every MIG device is one ``nvidia.com/gpu``; fatal, in this order: a MIG-enabled GPU
  without MIG devices, MIG devices whose NVML attributes differ, MIG-enabled next to MIG-disabled GPUs;
- ``mixed``: a MIG device is ``nvidia.com/mig-<profile>``; a device whose compute instance is smaller
  than its GPU instance (``1c.3g.20gb``) matches no resource pattern (fatal); an empty MIG GPU only
  logs a warning;
- device ids are UUIDs (``GPU-...``, the MIG UUID in the driver's format);
- only resources with at least one device are registered; none at all: "No devices found.
  Waiting indefinitely." and the container keeps running;
- NVML init failure: fatal with FAIL_ON_INIT_ERROR=true (the default), else the "waiting" case.

Log lines follow the plugin's klog messages; the wrapping of the fatal error is abbreviated.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .inventory import NodeGpus
from .naming import mixed_resource_name

STRATEGIES = ("none", "single", "mixed")
FULL_GPU_RESOURCE = "nvidia.com/gpu"
_DEVICE_MAP_ERROR = (
    "error starting plugins: error getting plugins: failed to construct NVML resource managers: "
    "error building device map: error building device map from config.resources: "
)


@dataclass(frozen=True)
class PluginStart:
    """The outcome of one container start: resources (name -> device ids) or a fatal error."""

    resources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    error: str | None = None
    log: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.error is not None


def socket_name(resource: str) -> str:
    return f"/var/lib/kubelet/device-plugins/nvidia-{resource.split('/', 1)[1]}.sock"


def start_device_plugin(node: NodeGpus, strategy: str, fail_on_init_error: bool = True) -> PluginStart:
    log = ["Starting FS watcher for /var/lib/kubelet/device-plugins", "Starting OS watcher.", "Starting Plugins.",
           "Loading configuration."]
    if strategy not in STRATEGIES:
        error = f"error starting plugins: unable to load config: unable to finalize config: invalid --mig-strategy option: {strategy}"
        return PluginStart(error=error, log=tuple(log + [error]))
    log.append("Updating config with default resource matching patterns.")
    log.append("Retrieving plugins.")
    if node.init_error is not None:
        log.append(f"Failed to initialize NVML: {node.init_error}.")
        if fail_on_init_error:
            error = f"error starting plugins: error getting plugins: failed to construct NVML resource managers: nvml init failed: {node.init_error}"
            return PluginStart(error=error, log=tuple(log + [error]))
        log.append(f"nvml init failed: {node.init_error}")
        log.append("No devices found. Waiting indefinitely.")
        return PluginStart(log=tuple(log))

    resources, problem, warnings = _device_map(node, strategy)
    log.extend(warnings)
    if problem is not None:
        error = _DEVICE_MAP_ERROR + problem
        return PluginStart(error=error, log=tuple(log + [error]))
    for name in resources:
        log.append(f"Starting GRPC server for '{name}'")
        log.append(f"Starting to serve '{name}' on {socket_name(name)}")
        log.append(f"Registered device plugin for '{name}' with Kubelet")
    if not resources:
        log.append("No devices found. Waiting indefinitely.")
    return PluginStart(resources=resources, log=tuple(log))


def _device_map(node: NodeGpus, strategy: str) -> tuple[dict[str, tuple[str, ...]], str | None, list[str]]:
    warnings: list[str] = []
    full_gpus = [gpu.uuid for gpu in node.gpus if not (gpu.mig_enabled and strategy != "none")]
    resources: dict[str, list[str]] = {FULL_GPU_RESOURCE: full_gpus} if full_gpus else {}
    if strategy == "none":
        return _non_empty(resources), None, warnings

    mig_resources: dict[str, list[str]] = {}
    for gpu in node.gpus:
        if not gpu.mig_enabled:
            continue
        for device in gpu.mig_devices:
            if strategy == "single":
                name = FULL_GPU_RESOURCE
            elif device.profile.full_compute:
                name = mixed_resource_name(device.profile)
            else:
                return {}, f"error building MIG device map: MIG profile '{device.profile}' does not match any resource patterns", warnings
            mig_resources.setdefault(name, []).append(device.uuid)

    uniform = strategy == "single"
    for gpu in node.gpus:
        if gpu.mig_enabled and not gpu.mig_devices:
            message = f"device {gpu.index} has no MIG devices configured"
            if uniform:
                return {}, (
                    "invalid MIG configuration: at least one device with migEnabled=true was not configured correctly: " + message
                ), warnings
            warnings.append(message)
    if uniform:
        attributes = {device.attributes() for gpu in node.gpus if gpu.mig_enabled for device in gpu.mig_devices}
        if len(attributes) > 1:
            return {}, "invalid MIG configuration: more than one MIG device type present on node", warnings
        if full_gpus and mig_resources:
            return {}, "all devices on the node must be configured with the same migEnabled value", warnings
    for name, ids in mig_resources.items():
        resources.setdefault(name, []).extend(ids)
    return _non_empty(resources), None, warnings


def _non_empty(resources: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {name: tuple(ids) for name, ids in sorted(resources.items()) if ids}
