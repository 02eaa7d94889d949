"""The node labels today's gpu-feature-discovery (v0.20.0, part of the device plugin) writes.

Pure: ``gfd_labels(node_gpus, strategy, machine, timestamp)``. Names and values from
shared/reference/k8s-mig.md section 2 as corrected by audit.md A4, A5 and B (code:
``internal/lm/*.go``, ``internal/resource/nvml-mig-device.go``):

- every pass: ``gfd.timestamp`` (unless GFD_NO_TIMESTAMP), ``cuda.driver.*`` and
  ``cuda.driver-version.*``, ``cuda.runtime.*`` and ``cuda.runtime-version.*``, ``gpu.machine``
  (sanitised), ``mig.capable``, ``mps.capable=false``, ``gpu.mode=compute``, ``vgpu.present=false``;
- per GPU model: ``gpu.product`` (sanitised name), ``gpu.count`` (MIG-enabled GPUs included),
  ``gpu.replicas`` (0 when every GPU of the model has MIG on: those labels carry no sharing
  information), ``gpu.sharing-strategy=none``, ``gpu.memory`` (MiB), ``gpu.family``,
  ``gpu.compute.major/minor``;
- ``mig.strategy`` unless the strategy is none;
- single: the ``gpu.*`` keys describe the MIG device (``<product>-MIG-<profile>``, count, memory,
  multiprocessors, slices, engines); an invalid layout writes ``<product>-MIG-INVALID`` with count,
  replicas and memory 0 and an empty sharing strategy (GFD does not crash, unlike the plugin);
- mixed: ``mig-<profile>.*`` per profile present (``+`` -> ``.``).

The profile part of the names is go-nvlib's (``3g.20gb``): the seed document's ``mig-3g.21gb``
labels came from GFD v0.2-v0.3 and are not reproduced (twin/README.md).
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from .device_plugin import STRATEGIES
from .inventory import Gpu, MigDevice, NodeGpus

PREFIX = "nvidia.com/"
_NOT_LABEL_TEXT = re.compile(r"[^A-Za-z0-9\-_. ]")


class GfdError(Exception):
    """A fatal start-up error: GFD exits and its pod crash-loops."""


def sanitise(text: str) -> str:
    """GFD's ``sanitise``: drop characters outside ``[A-Za-z0-9-_. ]``, join the words with ``-``."""
    return "-".join(_NOT_LABEL_TEXT.sub("", text).split())


def arch_family(major: int, minor: int) -> str:
    if major == 7:
        return "volta" if minor < 5 else "turing"
    if major == 8:
        return "ampere" if minor < 9 else "ada-lovelace"
    families = {1: "tesla", 2: "fermi", 3: "kepler", 5: "maxwell", 6: "pascal", 9: "hopper", 10: "blackwell", 12: "blackwell", 13: "rubin"}
    return families.get(major, "undefined")


def gfd_labels(
    node: NodeGpus,
    strategy: str = "none",
    machine: str = "unknown",
    timestamp: int | None = None,
    fail_on_init_error: bool = True,
) -> tuple[dict[str, str], list[str]]:
    """(labels, warnings) of one labelling pass; raises GfdError where GFD exits."""
    if strategy not in STRATEGIES:
        raise GfdError(f"unable to load config: invalid --mig-strategy option: {strategy}")
    labels: dict[str, str] = {}
    warnings: list[str] = []
    if node.init_error is not None:
        if fail_on_init_error:
            raise GfdError(f"error creating NVML labeler: failed to initialize resource manager: {node.init_error}")
        warnings.append(f"nvml init failed: {node.init_error}; no GPU labels")
    elif node.gpus:
        labels[PREFIX + "gpu.machine"] = sanitise(machine) or "unknown"
        labels.update(_version_labels(node))
        labels[PREFIX + "mig.capable"] = str(any(gpu.mig_capable for gpu in node.gpus)).lower()
        labels[PREFIX + "mps.capable"] = "false"
        labels.update(_full_gpu_labels(node.gpus))
        if strategy != "none":
            labels[PREFIX + "mig.strategy"] = strategy
            labels.update(_mig_labels(node.gpus, strategy, warnings))
        labels[PREFIX + "gpu.mode"] = "compute"  # every modelled GPU is a 3D controller (PCI class 0x0302)
    labels[PREFIX + "vgpu.present"] = "false"
    if timestamp is not None:
        labels[PREFIX + "gfd.timestamp"] = str(timestamp)
    return labels, warnings


def _version_labels(node: NodeGpus) -> dict[str, str]:
    version = node.driver_version or ""
    parts = version.split(".")
    major, minor = parts[0], parts[1] if len(parts) > 1 else ""
    revision = parts[2] if len(parts) > 2 else ""
    cuda = node.cuda_driver_version or 0
    cuda_major, cuda_minor = cuda // 1000, (cuda % 1000) // 10
    return {
        PREFIX + "cuda.driver.major": major,
        PREFIX + "cuda.driver.minor": minor,
        PREFIX + "cuda.driver.rev": revision,
        PREFIX + "cuda.runtime.major": str(cuda_major),
        PREFIX + "cuda.runtime.minor": str(cuda_minor),
        PREFIX + "cuda.driver-version.major": major,
        PREFIX + "cuda.driver-version.minor": minor,
        PREFIX + "cuda.driver-version.revision": revision,
        PREFIX + "cuda.driver-version.full": version,
        PREFIX + "cuda.runtime-version.major": str(cuda_major),
        PREFIX + "cuda.runtime-version.minor": str(cuda_minor),
        PREFIX + "cuda.runtime-version.full": f"{cuda_major}.{cuda_minor}",
    }


def _resource_labels(resource: str, product: str, count: int, replicas: int, sharing: str = "none") -> dict[str, str]:
    return {
        f"{resource}.product": product,
        f"{resource}.count": str(count),
        f"{resource}.replicas": str(replicas),
        f"{resource}.sharing-strategy": sharing,
    }


def _full_gpu_labels(gpus: Iterable[Gpu]) -> dict[str, str]:
    """One set of gpu.* labels per model; models with MIG off win over MIG-enabled ones of the same
    name, and with several models the alphabetically last wins (GFD's map order is random)."""
    gpus = list(gpus)
    counts: dict[str, int] = {}
    for gpu in gpus:
        counts[gpu.name] = counts.get(gpu.name, 0) + 1
    mig_enabled = {gpu.name: gpu for gpu in gpus if gpu.mig_enabled}
    full = {gpu.name: gpu for gpu in gpus if not gpu.mig_enabled}
    labels: dict[str, str] = {}
    for group, replicas in ((mig_enabled, 0), (full, 1)):
        for name in sorted(group):
            gpu = group[name]
            resource = PREFIX + "gpu"
            labels.update(_resource_labels(resource, sanitise(name), counts[name], replicas))
            labels[f"{resource}.memory"] = str(gpu.memory_total_mib)
            major, minor = gpu.compute_capability
            labels[f"{resource}.family"] = arch_family(major, minor)
            labels[f"{resource}.compute.major"] = str(major)
            labels[f"{resource}.compute.minor"] = str(minor)
    return labels


def _mig_device_labels(resource: str, parent_name: str, device: MigDevice, count: int) -> dict[str, str]:
    product = "-".join(sanitise(part) for part in (parent_name, "MIG", device.profile.resource_suffix))
    labels = _resource_labels(resource, product, count, 1)
    labels.update({
        f"{resource}.memory": str(device.memory_mib),
        f"{resource}.multiprocessors": str(device.multiprocessors),
        f"{resource}.slices.gi": str(device.gi_slices),
        f"{resource}.slices.ci": str(device.ci_slices),
        f"{resource}.engines.copy": str(device.copy_engines),
        f"{resource}.engines.decoder": str(device.decoders),
        f"{resource}.engines.encoder": str(device.encoders),
        f"{resource}.engines.jpeg": str(device.jpegs),
        f"{resource}.engines.ofa": str(device.ofas),
    })
    return labels


def _grouped_mig_devices(gpus: list[Gpu]) -> dict[str, tuple[Gpu, MigDevice, int]]:
    """Profile name -> (parent of the first device, first device, count), in enumeration order."""
    groups: dict[str, tuple[Gpu, MigDevice, int]] = {}
    for gpu in gpus:
        for device in gpu.mig_devices:
            name = device.profile.resource_suffix
            parent, first, count = groups.get(name, (gpu, device, 0))
            groups[name] = (parent, first, count + 1)
    return groups


def _mig_labels(gpus: tuple[Gpu, ...], strategy: str, warnings: list[str]) -> dict[str, str]:
    enabled = [gpu for gpu in gpus if gpu.mig_enabled]
    if strategy == "mixed":
        labels: dict[str, str] = {}
        for name, (parent, device, count) in _grouped_mig_devices(enabled).items():
            labels.update(_mig_device_labels(f"{PREFIX}mig-{name}", parent.name, device, count))
        return labels
    if not enabled:
        return {}
    groups = _grouped_mig_devices(enabled)
    if any(not gpu.mig_devices for gpu in enabled):
        reason = "at least one MIG device is enabled but empty"
    elif len(enabled) != len(gpus):
        reason = "devices with MIG enabled and disable detected"
    elif len(groups) != 1:
        reason = "more than one MIG device type present on node"
    else:
        ((parent, device, count),) = groups.values()
        return _mig_device_labels(PREFIX + "gpu", parent.name, device, count)
    warnings.append(f"Invalid configuration detected for mig-strategy=single: {reason}")
    resource = PREFIX + "gpu"
    return {
        f"{resource}.product": "-".join((sanitise(enabled[0].name), "MIG", "INVALID")),
        f"{resource}.count": "0",
        f"{resource}.replicas": "0",
        f"{resource}.sharing-strategy": "",
        f"{resource}.memory": "0",
    }
