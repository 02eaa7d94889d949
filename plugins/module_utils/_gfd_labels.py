# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``nvidia.com/*`` node labels GPU feature discovery (GFD) writes for a MIG state and strategy.

Pure functions over ``gpu_info`` facts, with today's GFD semantics (docs/gpu-feature-discovery.md has them
and their upstream sources): the 3g A100-40GB device is ``mig-3g.20gb``; ``gpu.replicas`` and
``gpu.sharing-strategy`` exist (replicas 0 for a model whose GPUs all have MIG on, under none and mixed);
``vgpu.present=false``; ``mig.strategy`` is absent under none; product names are sanitised as GFD does. An
invalid single layout gives GFD's ``-MIG-INVALID`` set.

Labels the facts cannot determine are not guessed: they are listed in ``unverified`` (``gfd.timestamp``,
``gpu.machine``, ``gpu.mode``, ``gpu.clique``, ``vgpu.host-driver-*``; ``gpu.family`` / ``gpu.compute.*``
without a ``compute_capability``; a MIG device's ``multiprocessors`` and ``engines.*`` without the catalog
fields; the full-GPU ``gpu.*`` labels when two GPU models compete for them, since GFD's result then depends
on Go's map iteration order). ``mps.capable=false`` and ``vgpu.present=false``: gpufleet.mig configures no
sharing, and MIG cannot be managed from a vGPU guest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ansible_collections.gpufleet.mig.plugins.module_utils._mig_strategy import (
    FULL_GPU_RESOURCE,
    MigDevice,
    MIG_RESOURCE_PREFIX,
    RESOURCE_PREFIX,
    STRATEGY_NONE,
    STRATEGY_SINGLE,
    facts_gpus,
    plugin_devices,
    mig_enabled,
    validate_strategy,
)

MIG_STRATEGY_LABEL = "nvidia.com/mig.strategy"

# Suffixes GFD writes after a resource name (nvidia.com/gpu.<suffix>, nvidia.com/mig-<profile>.<suffix>).
BASE_LABEL_SUFFIXES = ("product", "count", "replicas", "sharing-strategy")
ARCHITECTURE_LABEL_SUFFIXES = ("family", "compute.major", "compute.minor")
MIG_ATTRIBUTE_LABEL_SUFFIXES = (
    "memory", "multiprocessors", "slices.gi", "slices.ci",
    "engines.copy", "engines.decoder", "engines.encoder", "engines.jpeg", "engines.ofa",
)
RESOURCE_LABEL_SUFFIXES = BASE_LABEL_SUFFIXES + ARCHITECTURE_LABEL_SUFFIXES + MIG_ATTRIBUTE_LABEL_SUFFIXES

# Node-level labels GFD writes that no GPU fact determines.
UNDETERMINED_NODE_LABELS = (
    "nvidia.com/gfd.timestamp",
    "nvidia.com/gpu.machine",
    "nvidia.com/gpu.mode",
    "nvidia.com/gpu.clique",
    "nvidia.com/vgpu.host-driver-version",
    "nvidia.com/vgpu.host-driver-branch",
)

_VERSION_LABELS = (
    "nvidia.com/cuda.driver.major", "nvidia.com/cuda.driver.minor", "nvidia.com/cuda.driver.rev",
    "nvidia.com/cuda.runtime.major", "nvidia.com/cuda.runtime.minor",
    "nvidia.com/cuda.driver-version.major", "nvidia.com/cuda.driver-version.minor",
    "nvidia.com/cuda.driver-version.revision", "nvidia.com/cuda.driver-version.full",
    "nvidia.com/cuda.runtime-version.major", "nvidia.com/cuda.runtime-version.minor",
    "nvidia.com/cuda.runtime-version.full",
)
_FIXED_NODE_LABELS = ("nvidia.com/mig.capable", "nvidia.com/mps.capable", "nvidia.com/vgpu.present", MIG_STRATEGY_LABEL)

_RESOURCE_LABEL = re.compile(
    r"^(?P<resource>nvidia\.com/(?:gpu|mig-[^/]+?))\.(?P<suffix>%s)$"
    % "|".join(re.escape(suffix) for suffix in RESOURCE_LABEL_SUFFIXES)
)
_SANITISE_DROP = re.compile(r"[^A-Za-z0-9\-_. ]")


@dataclass(frozen=True)
class LabelExpectation:
    """Labels GFD must have written (``labels``) and the label keys GFD writes that the facts leave open."""

    labels: Dict[str, str]
    unverified: Tuple[str, ...] = ()

    def is_checked(self, key: str) -> bool:
        """Whether ``key`` is a label this expectation speaks for (so, if not expected, it must be absent)."""
        if key in self.labels:
            return True
        if key in self.unverified or not key.startswith(RESOURCE_PREFIX):
            return False
        if key in _VERSION_LABELS or key in _FIXED_NODE_LABELS:
            return True
        return _RESOURCE_LABEL.match(key) is not None


# ------------------------------------------------------------------------------------------- labels


def sanitise(text: str) -> str:
    """GFD's ``sanitise``: drop characters outside ``[A-Za-z0-9-_. ]``, then join the words with ``-``."""
    return "-".join(_SANITISE_DROP.sub("", text).split())


def product_name(*parts: Optional[str]) -> str:
    return "-".join(sanitise(part) for part in parts if part and sanitise(part))


def architecture_family(major: int, minor: int) -> str:
    """GFD's ``getArchFamily`` (internal/lm/resource.go)."""
    families = {1: "tesla", 2: "fermi", 3: "kepler", 5: "maxwell", 6: "pascal", 9: "hopper", 10: "blackwell",
                12: "blackwell", 13: "rubin"}
    if major == 7:
        return "volta" if minor < 5 else "turing"
    if major == 8:
        return "ampere" if minor < 9 else "ada-lovelace"
    return families.get(major, "undefined")


def _compute_capability(gpu: Dict[str, Any]) -> Optional[Tuple[int, int]]:
    value = gpu.get("compute_capability")
    if value is None:
        return None
    if isinstance(value, dict):
        return int(value["major"]), int(value["minor"])
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    major, _dot, minor = str(value).partition(".")
    return int(major), int(minor or 0)


def _version_labels(facts: Dict[str, Any]) -> Dict[str, str]:
    labels = {}
    driver = facts.get("driver_version")
    if driver:
        parts = str(driver).split(".")
        revision = parts[2] if len(parts) > 2 else ""
        labels.update({
            "nvidia.com/cuda.driver.major": parts[0],
            "nvidia.com/cuda.driver.minor": parts[1] if len(parts) > 1 else "",
            "nvidia.com/cuda.driver.rev": revision,
            "nvidia.com/cuda.driver-version.major": parts[0],
            "nvidia.com/cuda.driver-version.minor": parts[1] if len(parts) > 1 else "",
            "nvidia.com/cuda.driver-version.revision": revision,
            "nvidia.com/cuda.driver-version.full": str(driver),
        })
    cuda = facts.get("cuda_driver_version")
    if cuda:
        major, _dot, minor = str(cuda).partition(".")
        minor = minor.split(".")[0] or "0"
        labels.update({
            "nvidia.com/cuda.runtime.major": major,
            "nvidia.com/cuda.runtime.minor": minor,
            "nvidia.com/cuda.runtime-version.major": major,
            "nvidia.com/cuda.runtime-version.minor": minor,
            "nvidia.com/cuda.runtime-version.full": "%s.%s" % (major, minor),
        })
    return labels


def _resource_label_keys(resource: str, suffixes: Sequence[str]) -> List[str]:
    return ["%s.%s" % (resource, suffix) for suffix in suffixes]


def _full_gpu_labels(gpus: Sequence[Dict[str, Any]], labels: Dict[str, str], unverified: Set[str]) -> None:
    """GFD's ``newGPULabelers``: the model's labels; MIG-disabled GPUs override MIG-enabled ones."""
    counts = {}
    for gpu in gpus:
        counts[gpu.get("name") or ""] = counts.get(gpu.get("name") or "", 0) + 1
    full_models = sorted(set(gpu.get("name") or "" for gpu in gpus if not mig_enabled(gpu)))
    mig_models = sorted(set(gpu.get("name") or "" for gpu in gpus if mig_enabled(gpu)))
    winners = full_models or mig_models
    keys = _resource_label_keys(FULL_GPU_RESOURCE, BASE_LABEL_SUFFIXES + ("memory",) + ARCHITECTURE_LABEL_SUFFIXES)
    if len(winners) != 1:
        # Several labelers of the same kind write the same keys; which one lands last depends on Go's map order.
        labels[FULL_GPU_RESOURCE + ".sharing-strategy"] = "none"
        unverified.update(key for key in keys if key != FULL_GPU_RESOURCE + ".sharing-strategy")
        return
    model = winners[0]
    representative = [gpu for gpu in gpus if (gpu.get("name") or "") == model][0]
    labels.update({
        FULL_GPU_RESOURCE + ".product": product_name(model),
        FULL_GPU_RESOURCE + ".count": str(counts[model]),
        FULL_GPU_RESOURCE + ".replicas": "1" if full_models else "0",
        FULL_GPU_RESOURCE + ".sharing-strategy": "none",
    })
    if representative.get("memory_total_mib"):
        labels[FULL_GPU_RESOURCE + ".memory"] = str(representative["memory_total_mib"])
    capability = _compute_capability(representative)
    if capability is None:
        unverified.update(_resource_label_keys(FULL_GPU_RESOURCE, ARCHITECTURE_LABEL_SUFFIXES))
    elif capability[0] != 0:
        labels.update({
            FULL_GPU_RESOURCE + ".family": architecture_family(*capability),
            FULL_GPU_RESOURCE + ".compute.major": str(capability[0]),
            FULL_GPU_RESOURCE + ".compute.minor": str(capability[1]),
        })


def _mig_resource_labels(resource: str, device: MigDevice, count: int, labels: Dict[str, str], unverified: Set[str]) -> None:
    """GFD's ``NewMIGResourceLabeler``: product, count, replicas, sharing and the device's NVML attributes."""
    labels.update({
        resource + ".product": product_name(device.gpu_name, "MIG", device.label_name),
        resource + ".count": str(count),
        resource + ".replicas": "1",
        resource + ".sharing-strategy": "none",
    })
    attributes = device.attribute_map()
    for suffix in MIG_ATTRIBUTE_LABEL_SUFFIXES:
        if suffix in attributes:
            labels["%s.%s" % (resource, suffix)] = str(attributes[suffix])
        else:
            unverified.add("%s.%s" % (resource, suffix))


def _invalid_single_labels(gpus: Sequence[Dict[str, Any]], labels: Dict[str, str]) -> None:
    """GFD's ``newInvalidMigStrategyLabeler`` on the first MIG-enabled GPU."""
    first = [gpu for gpu in gpus if mig_enabled(gpu)][0]
    labels.update({
        FULL_GPU_RESOURCE + ".product": product_name(first.get("name") or "", "MIG", "INVALID"),
        FULL_GPU_RESOURCE + ".count": "0",
        FULL_GPU_RESOURCE + ".replicas": "0",
        FULL_GPU_RESOURCE + ".sharing-strategy": "",
        FULL_GPU_RESOURCE + ".memory": "0",
    })


def _grouped_devices(gpus: Sequence[Dict[str, Any]]) -> Dict[str, List[MigDevice]]:
    """MIG devices grouped by GFD resource name, first device of each group first (GFD's migResource)."""
    groups = {}
    for gpu in gpus:
        for device in plugin_devices(gpu):
            groups.setdefault(device.label_name, []).append(device)
    return groups


def expected_labels(facts: Dict[str, Any], strategy: str) -> LabelExpectation:
    """The ``nvidia.com/*`` labels GFD writes for this MIG state and strategy (``LabelExpectation``).

    It does not depend on the device plugin accepting the layout: GFD keeps running and
    writes its ``-MIG-INVALID`` labels, which is what the node then shows.
    """
    validate_strategy(strategy)
    gpus = facts_gpus(facts)
    labels = {}
    unverified = set(UNDETERMINED_NODE_LABELS)
    if not gpus:
        # Without GPUs GFD's device labelers return nothing; nothing here is worth asserting either.
        unverified.update(_VERSION_LABELS + _FIXED_NODE_LABELS)
        return LabelExpectation(labels={}, unverified=tuple(sorted(unverified)))
    labels.update(_version_labels(facts))
    labels["nvidia.com/mig.capable"] = "true" if any(gpu.get("mig_capable") for gpu in gpus) else "false"
    labels["nvidia.com/mps.capable"] = "false"
    labels["nvidia.com/vgpu.present"] = "false"
    _full_gpu_labels(gpus, labels, unverified)
    if strategy == STRATEGY_NONE:
        return LabelExpectation(labels=labels, unverified=tuple(sorted(unverified)))

    labels[MIG_STRATEGY_LABEL] = strategy
    groups = _grouped_devices(gpus)
    if strategy == STRATEGY_SINGLE:
        enabled = [gpu for gpu in gpus if mig_enabled(gpu)]
        if not enabled:
            return LabelExpectation(labels=labels, unverified=tuple(sorted(unverified)))
        invalid = (any(not plugin_devices(gpu) for gpu in enabled) or len(enabled) != len(gpus) or len(groups) != 1)
        if invalid:
            _invalid_single_labels(gpus, labels)
            return LabelExpectation(labels=labels, unverified=tuple(sorted(unverified)))
        devices = list(groups.values())[0]
        _mig_resource_labels(FULL_GPU_RESOURCE, devices[0], len(devices), labels, unverified)
        return LabelExpectation(labels=labels, unverified=tuple(sorted(unverified)))

    for name, devices in sorted(groups.items()):
        _mig_resource_labels(MIG_RESOURCE_PREFIX + name, devices[0], len(devices), labels, unverified)
    return LabelExpectation(labels=labels, unverified=tuple(sorted(unverified)))
