# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a Kubernetes node must show for its MIG state under a device-plugin MIG strategy.

Pure functions over the facts ``gpu_info`` returns (the whole result: ``driver_version``,
``cuda_driver_version``, ``gpus``). They reproduce, for the NVIDIA k8s-device-plugin and GPU feature
discovery (GFD) v0.20.0 (k8s-mig.md sections 1.1-1.4 and 2; audit.md rows B and D win where they differ):

* ``expected_resources``: the ``nvidia.com/*`` extended resources (name -> count) the device plugin
  advertises. ``none``: one ``nvidia.com/gpu`` per physical GPU, MIG ignored. ``single``: one
  ``nvidia.com/gpu`` per MIG device (per GPU when no GPU has MIG on). ``mixed``: ``nvidia.com/gpu`` per
  MIG-disabled GPU plus ``nvidia.com/mig-<profile>`` per MIG device (``+`` becomes ``.``).
* ``check_strategy`` (facts) and ``check_layout`` (planned layouts, for the preflight): the layouts the plugin
  refuses, as ``StrategyLayoutError`` (a ``StrategyError``). ``single``: a MIG-enabled GPU without MIG devices, more than one MIG device type, or
  MIG-enabled next to MIG-disabled GPUs, checked in the plugin's order; the plugin exits whatever
  ``failOnInitError`` says and its pod crash-loops. ``mixed``: a MIG device whose compute instance is
  smaller than its GPU instance (``1c.3g.20gb``) matches no resource pattern and stops the plugin.
* ``expected_labels``: the ``nvidia.com/*`` labels GFD writes that the facts determine, with today's GFD
  semantics (not the seed document's GFD v0.2.0): the 3g A100-40GB device is ``mig-3g.20gb``;
  ``gpu.replicas`` and ``gpu.sharing-strategy`` exist (replicas 0 for a model whose GPUs all have MIG on,
  under none and mixed); ``vgpu.present=false``; ``mig.strategy`` is absent under none; product names are
  sanitised as GFD does. An invalid single layout gives GFD's ``-MIG-INVALID`` set.
* ``compare_node``: expected vs what the Node object shows, on allocatable (resources at 0 count as
  absent: kubelet keeps a vanished resource in capacity with 0 allocatable for its grace period), on
  capacity for the expected resources, and on the labels.

Choices where the reference leaves a gap (documented, not invented numbers):

* Labels the facts cannot determine are not compared and are listed in ``unverified``:
  ``gfd.timestamp``, ``gpu.machine`` (DMI data), ``gpu.mode`` (PCI class), ``gpu.clique`` (fabric),
  ``vgpu.host-driver-*``; ``gpu.family`` / ``gpu.compute.*`` unless a GPU carries ``compute_capability``
  (``"8.0"``); a MIG device's ``multiprocessors`` and ``engines.*`` unless its GPU instance carries
  ``multiprocessors``, ``copy_engines``, ``decoders``, ``encoders``, ``jpegs``, ``ofas`` (the catalog
  fields of profiles.py; a partial compute instance may carry its own ``multiprocessors``); and the
  full-GPU ``gpu.*`` labels when two GPU models compete for them (GFD's result then depends on Go's map
  iteration order).
* ``mps.capable=false`` and ``vgpu.present=false``: gpufleet.mig configures no sharing, and MIG cannot be
  managed from a vGPU guest (GPU instance creation answers NOT_SUPPORTED there), so a node it manages is
  bare metal or passthrough.
* The single-strategy uniformity check compares the profile name, the memory and the engine/SM numbers the
  facts carry; the plugin compares the full NVML attribute struct, which the same numbers make up.
* The facts must cover every GPU of the node (run ``gpu_info`` without ``gpus``): the plugin sees them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ansible_collections.gpufleet.mig.plugins.module_utils.errors import ProfileError, StrategyError
from ansible_collections.gpufleet.mig.plugins.module_utils.profiles import parse_profile, resource_name

STRATEGIES = ("none", "single", "mixed")
STRATEGY_NONE, STRATEGY_SINGLE, STRATEGY_MIXED = STRATEGIES

RESOURCE_PREFIX = "nvidia.com/"
FULL_GPU_RESOURCE = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
MIG_STRATEGY_LABEL = "nvidia.com/mig.strategy"

# Suffixes GFD writes after a resource name (nvidia.com/gpu.<suffix>, nvidia.com/mig-<profile>.<suffix>).
BASE_LABEL_SUFFIXES = ("product", "count", "replicas", "sharing-strategy")
ARCHITECTURE_LABEL_SUFFIXES = ("family", "compute.major", "compute.minor")
MIG_ATTRIBUTE_LABEL_SUFFIXES = (
    "memory", "multiprocessors", "slices.gi", "slices.ci",
    "engines.copy", "engines.decoder", "engines.encoder", "engines.jpeg", "engines.ofa",
)
RESOURCE_LABEL_SUFFIXES = BASE_LABEL_SUFFIXES + ARCHITECTURE_LABEL_SUFFIXES + MIG_ATTRIBUTE_LABEL_SUFFIXES

# GPU instance fact keys -> MIG attribute label suffix (engine counts of a CI are its GI's, hw section 5).
_ENGINE_FACTS = (
    ("copy_engines", "engines.copy"),
    ("decoders", "engines.decoder"),
    ("encoders", "engines.encoder"),
    ("jpegs", "engines.jpeg"),
    ("ofas", "engines.ofa"),
)

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

# The plugin's own texts (internal/rm/device_map.go), so users can match them with the pod's log.
_PLUGIN_EMPTY = ("invalid MIG configuration: at least one device with migEnabled=true was not configured correctly: "
                 "device %d has no MIG devices configured")
_PLUGIN_NOT_UNIFORM = "invalid MIG configuration: more than one MIG device type present on node"
_PLUGIN_MODES = "all devices on the node must be configured with the same migEnabled value"
_PLUGIN_NO_PATTERN = "error building MIG device map: MIG profile '%s' does not match any resource patterns"

REASON_EMPTY_MIG_GPU = "empty_mig_gpu"
REASON_MULTIPLE_PROFILES = "multiple_profiles"
REASON_MIXED_MIG_MODES = "mixed_mig_modes"
REASON_PARTIAL_PROFILE = "partial_profile"


class StrategyLayoutError(StrategyError):
    """A node's MIG layout the device plugin refuses under a strategy.

    ``reason`` is one of ``empty_mig_gpu``, ``multiple_profiles``, ``mixed_mig_modes`` (single) or
    ``partial_profile`` (mixed); ``plugin_error`` the error text the plugin's pod would log before exiting;
    ``gpus`` the GPU indices concerned.
    """

    def __init__(self, message, strategy, reason, plugin_error, gpus=()):
        super(StrategyLayoutError, self).__init__(message)
        self.strategy = strategy
        self.reason = reason
        self.plugin_error = plugin_error
        self.gpus = tuple(gpus)

    def to_dict(self):
        return {"strategy": self.strategy, "reason": self.reason, "plugin_error": self.plugin_error,
                "gpus": list(self.gpus), "message": str(self)}


@dataclass(frozen=True)
class MigDevice:
    """One MIG device (a compute instance) as the device plugin and GFD see it."""

    gpu_index: int
    gpu_uuid: str
    gpu_name: str
    gpu_instance_id: int
    compute_instance_id: int
    profile: str  # canonical go-nvlib name, ``1g.5gb+me``
    uuid: object  # Optional[str]
    device_index: object  # Optional[int]: the index nvidia-smi -L prints
    attributes: tuple  # ((label suffix, value), ...): the MIG attribute labels the facts determine

    @property
    def resource(self):
        """The mixed-strategy resource (``nvidia.com/mig-1g.5gb.me``)."""
        return resource_name(self.profile)

    @property
    def label_name(self):
        """The profile as GFD and the plugin spell it in names (``+`` -> ``.``)."""
        return self.profile.replace("+", ".")

    def attribute_map(self):
        return dict(self.attributes)


@dataclass(frozen=True)
class DeviceRef:
    """A device a validation pod may receive for a resource: a full GPU or a MIG device."""

    kind: str  # "gpu" or "mig"
    uuid: object  # Optional[str]
    gpu_index: int
    gpu_uuid: str
    gpu_name: str
    profile: object = None  # Optional[str], MIG devices only
    device_index: object = None  # Optional[int], MIG devices only

    def to_dict(self):
        return {"kind": self.kind, "uuid": self.uuid, "gpu_index": self.gpu_index, "gpu_uuid": self.gpu_uuid,
                "gpu_name": self.gpu_name, "profile": self.profile, "mig_device_index": self.device_index}


@dataclass(frozen=True)
class LabelExpectation:
    """Labels GFD must have written (``labels``) and the label keys GFD writes that the facts leave open."""

    labels: dict
    unverified: tuple = ()

    def is_checked(self, key):
        """Whether ``key`` is a label this expectation speaks for (so, if not expected, it must be absent)."""
        if key in self.labels:
            return True
        if key in self.unverified or not key.startswith(RESOURCE_PREFIX):
            return False
        if key in _VERSION_LABELS or key in _FIXED_NODE_LABELS:
            return True
        return _RESOURCE_LABEL.match(key) is not None


@dataclass(frozen=True)
class NodeExpectation:
    """Everything a node must show for one MIG state and strategy."""

    strategy: str
    resources: dict
    labels: LabelExpectation
    devices: dict  # resource name -> tuple of DeviceRef
    warnings: tuple = ()
    problem: object = None  # Optional[StrategyLayoutError]

    def to_dict(self):
        return {
            "strategy": self.strategy,
            "resources": dict(self.resources),
            "labels": dict(self.labels.labels),
            "unverified_labels": list(self.labels.unverified),
            "devices": dict((name, [ref.to_dict() for ref in refs]) for name, refs in sorted(self.devices.items())),
            "warnings": list(self.warnings),
            "problem": None if self.problem is None else self.problem.to_dict(),
        }


@dataclass(frozen=True)
class NodeComparison:
    """Result of comparing a node with its expectation; ``diff`` is empty when the node matches."""

    seen: dict
    diff: dict
    lingering: dict = field(default_factory=dict)  # capacity left by vanished resources (allocatable 0)

    @property
    def matches(self):
        return not any(self.diff.values())

    def to_dict(self):
        return {"seen": self.seen, "diff": self.diff, "lingering": self.lingering, "matches": self.matches}


# --------------------------------------------------------------------------------------------- facts


def validate_strategy(strategy):
    if strategy not in STRATEGIES:
        raise StrategyError("unknown MIG strategy %r: expected one of %s" % (strategy, ", ".join(STRATEGIES)))
    return strategy


def _gpus(facts):
    gpus = facts.get("gpus") if isinstance(facts, dict) else None
    if gpus is None:
        raise StrategyError(
            "the GPU facts have no 'gpus' list; pass the whole registered result of gpufleet.mig.gpu_info"
        )
    if facts.get("driver_loaded") is False:
        raise StrategyError(
            "the GPU facts come from a node without a loaded NVIDIA driver, so no device plugin can serve it"
        )
    return sorted(gpus, key=lambda gpu: gpu["index"])


def mig_enabled(gpu):
    """The mode the device plugin and GFD act on: NVML's current mode (a pending one is not in effect yet)."""
    mode = gpu.get("mig_mode")
    return bool(mode) and mode.get("current") == "enabled"


def _number(value):
    return None if value is None else int(value)


def _device_attributes(gpu_instance, compute_instance, parsed):
    attributes = [
        ("memory", _number(gpu_instance.get("memory_mib"))),
        ("slices.gi", parsed.gpu_slices),
        ("slices.ci", parsed.compute_slices),
    ]
    multiprocessors = compute_instance.get("multiprocessors")
    if multiprocessors is None and not parsed.is_partial:
        multiprocessors = gpu_instance.get("multiprocessors")
    attributes.append(("multiprocessors", _number(multiprocessors)))
    for fact, suffix in _ENGINE_FACTS:
        attributes.append((suffix, _number(gpu_instance.get(fact))))
    return tuple((suffix, value) for suffix, value in attributes if value is not None)


def _compute_instance_profile(gpu, gpu_instance, compute_instance):
    name = compute_instance.get("profile_name") or gpu_instance.get("profile_name")
    if not name:
        raise StrategyError(
            "GPU %s, GPU instance %s, compute instance %s has no profile name in the facts; gather them with "
            "gpufleet.mig.gpu_info" % (gpu["index"], gpu_instance.get("id"), compute_instance.get("id"))
        )
    try:
        return parse_profile(name)
    except ProfileError as error:
        raise StrategyError("GPU %s: %s" % (gpu["index"], error))


def mig_devices(gpu):
    """The MIG devices of one GPU, in nvidia-smi order (GPU instance id, compute instance id)."""
    if not mig_enabled(gpu):
        return []
    devices = []
    for gpu_instance in gpu.get("gpu_instances") or ():
        for compute_instance in gpu_instance.get("compute_instances") or ():
            parsed = _compute_instance_profile(gpu, gpu_instance, compute_instance)
            devices.append(MigDevice(
                gpu_index=gpu["index"],
                gpu_uuid=gpu.get("uuid"),
                gpu_name=gpu.get("name") or "",
                gpu_instance_id=gpu_instance.get("id"),
                compute_instance_id=compute_instance.get("id"),
                profile=parsed.name,
                uuid=compute_instance.get("mig_uuid"),
                device_index=compute_instance.get("mig_device_index"),
                attributes=_device_attributes(gpu_instance, compute_instance, parsed),
            ))
    return sorted(devices, key=lambda device: (device.gpu_instance_id, device.compute_instance_id))


def _gpu_ref(gpu):
    return DeviceRef(kind="gpu", uuid=gpu.get("uuid"), gpu_index=gpu["index"], gpu_uuid=gpu.get("uuid"),
                     gpu_name=gpu.get("name") or "")


def _mig_ref(device):
    return DeviceRef(kind="mig", uuid=device.uuid, gpu_index=device.gpu_index, gpu_uuid=device.gpu_uuid,
                     gpu_name=device.gpu_name, profile=device.profile, device_index=device.device_index)


# ------------------------------------------------------------------------------------ strategy check


@dataclass(frozen=True)
class GpuLayout:
    """What the device plugin's checks look at on one GPU: its MIG mode and its MIG devices.

    ``devices`` holds ``(profile, attributes)`` pairs: the canonical profile name and the NVML attribute
    numbers known for it (may be empty), which the single-strategy uniformity check compares.
    """

    index: int
    mig_enabled: bool
    devices: tuple = ()

    @classmethod
    def coerce(cls, value):
        """A GpuLayout from itself or ``{"index", "mig_enabled", "devices": [profile names]}``."""
        if isinstance(value, cls):
            return value
        try:
            devices = tuple((parse_profile(name).name, ()) for name in value.get("devices") or ())
            return cls(index=int(value["index"]), mig_enabled=bool(value["mig_enabled"]), devices=devices)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StrategyError("invalid GPU layout %r: expected index, mig_enabled and devices (%s)" % (value, error))
        except ProfileError as error:
            raise StrategyError("GPU %s: %s" % (value.get("index"), error))


def gpu_layouts(facts):
    """The ``GpuLayout`` of every GPU in ``gpu_info`` facts."""
    return [GpuLayout(index=gpu["index"], mig_enabled=mig_enabled(gpu),
                      devices=tuple((device.profile, device.attributes) for device in mig_devices(gpu)))
            for gpu in _gpus(facts)]


def _indices(layouts):
    return ", ".join(str(layout.index) for layout in layouts)


def _single_problem(layouts):
    """The single-strategy refusal, in the plugin's check order (internal/rm/device_map.go), or None."""
    enabled = [layout for layout in layouts if layout.mig_enabled]
    if not enabled:
        return None
    for layout in enabled:
        if not layout.devices:
            plugin_error = _PLUGIN_EMPTY % layout.index
            return StrategyLayoutError(
                "MIG strategy 'single' cannot serve this node: GPU %d has MIG enabled but no MIG devices, and the "
                "NVIDIA device plugin would exit with '%s' and crash-loop. Give GPU %d MIG devices of the node's one "
                "profile, disable MIG on it, or use the mixed strategy" % (layout.index, plugin_error, layout.index),
                STRATEGY_SINGLE, REASON_EMPTY_MIG_GPU, plugin_error, [layout.index],
            )
    kinds = set(device for layout in enabled for device in layout.devices)
    if len(kinds) > 1:
        profiles = sorted(set(profile for profile, _attributes in kinds))
        if len(profiles) > 1:
            cause = "more than one MIG profile (%s)" % "; ".join(
                "GPU %d: %s" % (layout.index, ", ".join(sorted(set(profile for profile, _a in layout.devices))))
                for layout in enabled)
        else:
            cause = "MIG devices of profile %s whose NVML attributes differ" % profiles[0]
        return StrategyLayoutError(
            "MIG strategy 'single' cannot serve this node: it has %s, and the NVIDIA device plugin would exit with "
            "'%s' and crash-loop. Use one profile on every MIG-enabled GPU of the node, or the mixed strategy"
            % (cause, _PLUGIN_NOT_UNIFORM),
            STRATEGY_SINGLE, REASON_MULTIPLE_PROFILES, _PLUGIN_NOT_UNIFORM, [layout.index for layout in enabled],
        )
    disabled = [layout for layout in layouts if not layout.mig_enabled]
    if disabled:
        return StrategyLayoutError(
            "MIG strategy 'single' cannot serve this node: GPU(s) %s have MIG enabled and GPU(s) %s do not, and the "
            "NVIDIA device plugin would exit with '%s' and crash-loop. Enable MIG with the same profile on every "
            "GPU of the node, disable it on all of them, or use the mixed strategy"
            % (_indices(enabled), _indices(disabled), _PLUGIN_MODES),
            STRATEGY_SINGLE, REASON_MIXED_MIG_MODES, _PLUGIN_MODES, [layout.index for layout in layouts],
        )
    return None


def _mixed_problem(layouts):
    for layout in layouts:
        if not layout.mig_enabled:
            continue
        for profile, _attributes in layout.devices:
            parsed = parse_profile(profile)
            if parsed.is_partial:
                plugin_error = _PLUGIN_NO_PATTERN % profile
                return StrategyLayoutError(
                    "MIG strategy 'mixed' cannot serve this node: GPU %d has the MIG device %s, whose compute "
                    "instance is smaller than its GPU instance, and the NVIDIA device plugin would exit with '%s'. "
                    "Use MIG devices that span their GPU instance (%s), or the single strategy with one profile"
                    % (layout.index, profile, plugin_error, parsed.gpu_instance_name),
                    STRATEGY_MIXED, REASON_PARTIAL_PROFILE, plugin_error, [layout.index],
                )
    return None


def layout_problem(layouts, strategy):
    """The ``StrategyLayoutError`` the device plugin would hit with these GPU layouts, or None.

    ``layouts`` lists every GPU of the node as ``GpuLayout`` or ``{"index", "mig_enabled", "devices"}``
    (profile names), so a preflight can check the layout a plan will leave before applying it.
    """
    validate_strategy(strategy)
    layouts = sorted((GpuLayout.coerce(layout) for layout in layouts), key=lambda layout: layout.index)
    if strategy == STRATEGY_SINGLE:
        return _single_problem(layouts)
    if strategy == STRATEGY_MIXED:
        return _mixed_problem(layouts)
    return None


def check_layout(layouts, strategy):
    """Raise ``StrategyLayoutError`` when the device plugin cannot serve these GPU layouts under ``strategy``."""
    problem = layout_problem(layouts, strategy)
    if problem is not None:
        raise problem


def strategy_problem(facts, strategy):
    """The ``StrategyLayoutError`` the device plugin would hit on the node of these facts, or None."""
    validate_strategy(strategy)
    return layout_problem(gpu_layouts(facts), strategy)


def check_strategy(facts, strategy):
    """Raise ``StrategyLayoutError`` when the device plugin cannot serve this node's layout under ``strategy``."""
    problem = strategy_problem(facts, strategy)
    if problem is not None:
        raise problem


def strategy_warnings(facts, strategy):
    """Conditions that do not stop the plugin but that an operator should see."""
    validate_strategy(strategy)
    warnings = []
    for gpu in _gpus(facts):
        mode = gpu.get("mig_mode") or {}
        if mode and mode.get("current") != mode.get("pending"):
            warnings.append(
                "GPU %d has a pending MIG mode change (current %s, pending %s); the device plugin and GFD act on the "
                "current mode until the GPU is reset" % (gpu["index"], mode.get("current"), mode.get("pending"))
            )
        if strategy == STRATEGY_MIXED and mig_enabled(gpu) and not mig_devices(gpu):
            warnings.append(
                "GPU %d has MIG enabled but no MIG devices; under the mixed strategy it contributes no resource "
                "(the device plugin logs 'device %d has no MIG devices configured')" % (gpu["index"], gpu["index"])
            )
    return tuple(warnings)


# ------------------------------------------------------------------------------------------ resources


def resource_devices(facts, strategy):
    """Resource name -> the devices (``DeviceRef``) the plugin serves under it; raises on a refused layout."""
    check_strategy(facts, strategy)
    gpus = _gpus(facts)
    devices = {}
    any_enabled = any(mig_enabled(gpu) for gpu in gpus)
    for gpu in gpus:
        if strategy == STRATEGY_NONE or not mig_enabled(gpu):
            devices.setdefault(FULL_GPU_RESOURCE, []).append(_gpu_ref(gpu))
            continue
        for device in mig_devices(gpu):
            name = FULL_GPU_RESOURCE if strategy == STRATEGY_SINGLE else device.resource
            devices.setdefault(name, []).append(_mig_ref(device))
    if strategy == STRATEGY_SINGLE and not any_enabled:
        devices = {FULL_GPU_RESOURCE: [_gpu_ref(gpu) for gpu in gpus]} if gpus else {}
    return dict((name, tuple(refs)) for name, refs in devices.items())


def expected_resources(facts, strategy):
    """``{resource: count}`` the device plugin advertises (allocatable); raises ``StrategyLayoutError``."""
    return dict((name, len(refs)) for name, refs in resource_devices(facts, strategy).items())


# ------------------------------------------------------------------------------------------- labels


def sanitise(text):
    """GFD's ``sanitise``: drop characters outside ``[A-Za-z0-9-_. ]``, then join the words with ``-``."""
    return "-".join(_SANITISE_DROP.sub("", text).split())


def product_name(*parts):
    return "-".join(sanitise(part) for part in parts if part and sanitise(part))


def architecture_family(major, minor):
    """GFD's ``getArchFamily`` (internal/lm/resource.go)."""
    families = {1: "tesla", 2: "fermi", 3: "kepler", 5: "maxwell", 6: "pascal", 9: "hopper", 10: "blackwell",
                12: "blackwell", 13: "rubin"}
    if major == 7:
        return "volta" if minor < 5 else "turing"
    if major == 8:
        return "ampere" if minor < 9 else "ada-lovelace"
    return families.get(major, "undefined")


def _compute_capability(gpu):
    value = gpu.get("compute_capability")
    if value is None:
        return None
    if isinstance(value, dict):
        return int(value["major"]), int(value["minor"])
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    major, _dot, minor = str(value).partition(".")
    return int(major), int(minor or 0)


def _version_labels(facts):
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


def _resource_label_keys(resource, suffixes):
    return ["%s.%s" % (resource, suffix) for suffix in suffixes]


def _full_gpu_labels(gpus, labels, unverified):
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


def _mig_resource_labels(resource, device, count, labels, unverified):
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


def _invalid_single_labels(gpus, labels):
    """GFD's ``newInvalidMigStrategyLabeler`` on the first MIG-enabled GPU."""
    first = [gpu for gpu in gpus if mig_enabled(gpu)][0]
    labels.update({
        FULL_GPU_RESOURCE + ".product": product_name(first.get("name") or "", "MIG", "INVALID"),
        FULL_GPU_RESOURCE + ".count": "0",
        FULL_GPU_RESOURCE + ".replicas": "0",
        FULL_GPU_RESOURCE + ".sharing-strategy": "",
        FULL_GPU_RESOURCE + ".memory": "0",
    })


def _grouped_devices(gpus):
    """MIG devices grouped by GFD resource name, first device of each group first (GFD's migResource)."""
    groups = {}
    for gpu in gpus:
        for device in mig_devices(gpu):
            groups.setdefault(device.label_name, []).append(device)
    return groups


def expected_labels(facts, strategy):
    """The ``nvidia.com/*`` labels GFD writes for this MIG state and strategy (``LabelExpectation``).

    Unlike ``expected_resources`` this does not raise for a refused single layout: GFD keeps running and
    writes its ``-MIG-INVALID`` labels, which is what the node then shows.
    """
    validate_strategy(strategy)
    gpus = _gpus(facts)
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
        invalid = (any(not mig_devices(gpu) for gpu in enabled) or len(enabled) != len(gpus) or len(groups) != 1)
        if invalid:
            _invalid_single_labels(gpus, labels)
            return LabelExpectation(labels=labels, unverified=tuple(sorted(unverified)))
        devices = list(groups.values())[0]
        _mig_resource_labels(FULL_GPU_RESOURCE, devices[0], len(devices), labels, unverified)
        return LabelExpectation(labels=labels, unverified=tuple(sorted(unverified)))

    for name, devices in sorted(groups.items()):
        _mig_resource_labels(MIG_RESOURCE_PREFIX + name, devices[0], len(devices), labels, unverified)
    return LabelExpectation(labels=labels, unverified=tuple(sorted(unverified)))


# -------------------------------------------------------------------------------------- expectation


def node_expectation(facts, strategy):
    """Resources, labels, devices per resource, warnings and the plugin-refusal problem of one node.

    With a refused layout, ``resources`` and ``devices`` are empty (the plugin's pod crash-loops, so kubelet
    drops the allocatable of everything it served) and ``problem`` carries the error.
    """
    validate_strategy(strategy)
    problem = strategy_problem(facts, strategy)
    devices = {} if problem is not None else resource_devices(facts, strategy)
    return NodeExpectation(
        strategy=strategy,
        resources=dict((name, len(refs)) for name, refs in devices.items()),
        labels=expected_labels(facts, strategy),
        devices=devices,
        warnings=strategy_warnings(facts, strategy),
        problem=problem,
    )


# ---------------------------------------------------------------------------------------- comparison


def _quantity(value):
    """An extended-resource quantity as an int (they are whole numbers); anything else stays as given."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    return int(text) if re.match(r"^[0-9]+$", text) else text


def _nvidia_resources(resources):
    return dict((name, _quantity(value)) for name, value in sorted((resources or {}).items())
                if name.startswith(RESOURCE_PREFIX))


def _present(quantity):
    return quantity is not None and quantity != 0


def compare_node(expectation, node, check_labels=True):
    """Compare a node (API JSON of a Node, or ``{capacity, allocatable, labels}``) with ``expectation``.

    * allocatable: every expected resource at its count, and no other ``nvidia.com/*`` resource above 0;
    * capacity: every expected resource at its count; other names with 0 allocatable are ``lingering``
      (kubelet keeps them until its grace period ends), not a mismatch;
    * labels: every expected label at its value, and no other label the expectation speaks for
      (``LabelExpectation.is_checked``), so stale ``mig-*`` labels or ``mig.strategy`` under none show up;
      skipped with ``check_labels=False`` (a cluster without GFD).

    ``diff`` maps ``allocatable`` / ``capacity`` / ``labels`` to ``{key: {"expected": x, "seen": y}}`` with
    ``None`` for absent.
    """
    status = node.get("status") if "status" in node else node
    metadata = node.get("metadata") if "metadata" in node else node
    allocatable = _nvidia_resources((status or {}).get("allocatable"))
    capacity = _nvidia_resources((status or {}).get("capacity"))
    all_labels = (metadata or {}).get("labels") or {}
    labels = dict((key, value) for key, value in sorted(all_labels.items()) if key.startswith(RESOURCE_PREFIX))

    diff = {"allocatable": {}, "capacity": {}, "labels": {}}
    for name in sorted(set(expectation.resources) | set(allocatable)):
        wanted = expectation.resources.get(name)
        have = allocatable.get(name)
        if not _present(wanted) and not _present(have):
            continue
        if wanted != have:
            diff["allocatable"][name] = {"expected": wanted, "seen": have}
    for name, wanted in sorted(expectation.resources.items()):
        if capacity.get(name) != wanted:
            diff["capacity"][name] = {"expected": wanted, "seen": capacity.get(name)}
    lingering = dict((name, value) for name, value in capacity.items()
                     if name not in expectation.resources and _present(value) and not _present(allocatable.get(name)))

    expected = expectation.labels.labels if check_labels else {}
    for key in sorted(set(expected) | set(labels)) if check_labels else ():
        if not expectation.labels.is_checked(key):
            continue
        if expected.get(key) != labels.get(key):
            diff["labels"][key] = {"expected": expected.get(key), "seen": labels.get(key)}

    seen = {"allocatable": allocatable, "capacity": capacity, "labels": labels}
    return NodeComparison(seen=seen, diff=diff, lingering=lingering)


def _label_priority(key):
    """Labels that tell the most first: the strategy, then counts and products, then the rest."""
    if key == MIG_STRATEGY_LABEL:
        return 0
    if key.endswith(".count") or key.endswith(".product"):
        return 1
    return 2


def describe_diff(diff, limit=12):
    """One line per difference, for failure messages (``limit`` lines, then a count of the rest).

    Resources come first, then labels by importance. When every expected label is missing, which is what a
    node without a (running) GFD looks like, the labels are summed up in one line.
    """
    lines = []
    for section in ("allocatable", "capacity"):
        for key, values in sorted(diff.get(section, {}).items()):
            lines.append("%s %s: expected %s, seen %s" % (
                section, key, _shown(values.get("expected")), _shown(values.get("seen"))))
    labels = diff.get("labels", {})
    missing = [key for key, values in labels.items() if values.get("seen") is None]
    if len(missing) > 1 and len(missing) == len(labels):
        lines.append("none of the %d expected labels is present (%s, ...), so GPU feature discovery has not labelled the node"
                     % (len(missing), ", ".join(sorted(missing, key=lambda key: (_label_priority(key), key))[:3])))
    else:
        for key in sorted(labels, key=lambda key: (_label_priority(key), key)):
            lines.append("label %s: expected %s, seen %s" % (
                key, _shown(labels[key].get("expected")), _shown(labels[key].get("seen"))))
    if len(lines) > limit:
        lines = lines[:limit] + ["... and %d more differences" % (len(lines) - limit)]
    return lines


def _shown(value):
    if value is None:
        return "absent"
    if isinstance(value, str):
        return "'%s'" % value
    return str(value)
