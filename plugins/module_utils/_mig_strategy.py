# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The NVIDIA device plugin's MIG strategies: the layouts it refuses and the resources it advertises.

Pure functions over the facts ``gpu_info`` returns (the whole result: ``driver_version``, ``gpus``), for
k8s-device-plugin v0.17 and later (docs/device-plugin.md has the semantics and their upstream sources):

* ``layout_problem``: the one rule for the layouts the plugin refuses, as ``StrategyLayoutError``. ``single``:
  a MIG-enabled GPU without MIG devices, more than one MIG device type, or MIG-enabled next to MIG-disabled
  GPUs, in the plugin's order. ``mixed``: a MIG device whose compute instance is smaller than its GPU
  instance (``1c.3g.20gb``). It takes ``GpuLayout`` records, so a preflight checks the layout a plan leaves
  (``node_plan``) and the validator the layout the facts show (``gpu_layouts``) through the same function.
* ``resource_devices``: the ``nvidia.com/*`` extended resources and the devices behind each. ``none``: one
  ``nvidia.com/gpu`` per GPU; ``single``: one ``nvidia.com/gpu`` per MIG device (per GPU when no GPU has MIG
  on); ``mixed``: ``nvidia.com/gpu`` per MIG-disabled GPU plus ``nvidia.com/mig-<profile>`` per MIG device.
* ``plugin_devices``: the MIG devices of a GPU as the plugin and GPU feature discovery see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import ProfileError, StrategyError
from ansible_collections.gpufleet.mig.plugins.module_utils._node_report import mig_device_instances
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import ParsedProfile, parse_profile, resource_name

STRATEGIES = ("none", "single", "mixed")
STRATEGY_NONE, STRATEGY_SINGLE, STRATEGY_MIXED = STRATEGIES

RESOURCE_PREFIX = "nvidia.com/"
FULL_GPU_RESOURCE = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"

# GPU instance fact keys -> MIG attribute label suffix (engine counts of a CI are its GI's).
_ENGINE_FACTS = (
    ("copy_engines", "engines.copy"),
    ("decoders", "engines.decoder"),
    ("encoders", "engines.encoder"),
    ("jpegs", "engines.jpeg"),
    ("ofas", "engines.ofa"),
)

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

    def __init__(self, message: str, strategy: str, reason: str, plugin_error: str, gpus: Iterable[int] = ()) -> None:
        super(StrategyLayoutError, self).__init__(message)
        self.strategy = strategy
        self.reason = reason
        self.plugin_error = plugin_error
        self.gpus = tuple(gpus)

    def to_dict(self) -> Dict[str, Any]:
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
    uuid: Optional[str]
    device_index: Optional[int]  # the index nvidia-smi -L prints
    attributes: Tuple[Tuple[str, int], ...]  # ((label suffix, value), ...): the MIG attribute labels the facts determine

    @property
    def resource(self) -> str:
        """The mixed-strategy resource (``nvidia.com/mig-1g.5gb.me``)."""
        return resource_name(self.profile)

    @property
    def label_name(self) -> str:
        """The profile as GFD and the plugin spell it in names (``+`` -> ``.``)."""
        return self.profile.replace("+", ".")

    def attribute_map(self) -> Dict[str, int]:
        return dict(self.attributes)


@dataclass(frozen=True)
class DeviceRef:
    """A device a validation pod may receive for a resource: a full GPU or a MIG device."""

    kind: str  # "gpu" or "mig"
    uuid: Optional[str]
    gpu_index: int
    gpu_uuid: str
    gpu_name: str
    profile: Optional[str] = None  # MIG devices only
    device_index: Optional[int] = None  # MIG devices only

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "uuid": self.uuid, "gpu_index": self.gpu_index, "gpu_uuid": self.gpu_uuid,
                "gpu_name": self.gpu_name, "profile": self.profile, "mig_device_index": self.device_index}


# --------------------------------------------------------------------------------------------- facts


def validate_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise StrategyError("unknown MIG strategy %r: expected one of %s" % (strategy, ", ".join(STRATEGIES)))
    return strategy


def facts_gpus(facts: Dict[str, Any]) -> List[Dict[str, Any]]:
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


def mig_enabled(gpu: Dict[str, Any]) -> bool:
    """The mode the device plugin and GFD act on: NVML's current mode (a pending one is not in effect yet)."""
    mode = gpu.get("mig_mode")
    return bool(mode) and mode.get("current") == "enabled"


def _number(value: Any) -> Optional[int]:
    return None if value is None else int(value)


def _device_attributes(gpu_instance: Dict[str, Any], compute_instance: Dict[str, Any], parsed: ParsedProfile) -> Tuple[Tuple[str, int], ...]:
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


def _compute_instance_profile(gpu: Dict[str, Any], gpu_instance: Dict[str, Any], compute_instance: Dict[str, Any]) -> ParsedProfile:
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


def plugin_devices(gpu: Dict[str, Any]) -> List[MigDevice]:
    """The MIG devices of one GPU as the device plugin and GFD see them (none while MIG is off), ordered by
    GPU instance id and compute instance id as the plugin enumerates them."""
    if not mig_enabled(gpu):
        return []
    devices = []
    for gpu_instance, compute_instance in mig_device_instances(gpu):
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


def _gpu_ref(gpu: Dict[str, Any]) -> DeviceRef:
    return DeviceRef(kind="gpu", uuid=gpu.get("uuid"), gpu_index=gpu["index"], gpu_uuid=gpu.get("uuid"),
                     gpu_name=gpu.get("name") or "")


def _mig_ref(device: MigDevice) -> DeviceRef:
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
    devices: Tuple[Tuple[str, Tuple[Tuple[str, int], ...]], ...] = ()

    @classmethod
    def coerce(cls, value: Union[GpuLayout, Dict[str, Any]]) -> GpuLayout:
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


def gpu_layouts(facts: Dict[str, Any]) -> List[GpuLayout]:
    """The ``GpuLayout`` of every GPU in ``gpu_info`` facts."""
    return [GpuLayout(index=gpu["index"], mig_enabled=mig_enabled(gpu),
                      devices=tuple((device.profile, device.attributes) for device in plugin_devices(gpu)))
            for gpu in facts_gpus(facts)]


def _indices(layouts: Iterable[GpuLayout]) -> str:
    return ", ".join(str(layout.index) for layout in layouts)


def _single_problem(layouts: Sequence[GpuLayout]) -> Optional[StrategyLayoutError]:
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


def _mixed_problem(layouts: Sequence[GpuLayout]) -> Optional[StrategyLayoutError]:
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


def layout_problem(layouts: Iterable[Union[GpuLayout, Dict[str, Any]]], strategy: str) -> Optional[StrategyLayoutError]:
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


def strategy_warnings(facts: Dict[str, Any], strategy: str) -> Tuple[str, ...]:
    """Conditions that do not stop the plugin but that an operator should see."""
    validate_strategy(strategy)
    warnings = []
    for gpu in facts_gpus(facts):
        mode = gpu.get("mig_mode") or {}
        if mode and mode.get("current") != mode.get("pending"):
            warnings.append(
                "GPU %d has a pending MIG mode change (current %s, pending %s); the device plugin and GFD act on the "
                "current mode until the GPU is reset" % (gpu["index"], mode.get("current"), mode.get("pending"))
            )
        if strategy == STRATEGY_MIXED and mig_enabled(gpu) and not plugin_devices(gpu):
            warnings.append(
                "GPU %d has MIG enabled but no MIG devices; under the mixed strategy it contributes no resource "
                "(the device plugin logs 'device %d has no MIG devices configured')" % (gpu["index"], gpu["index"])
            )
    return tuple(warnings)


# ------------------------------------------------------------------------------------------ resources


def resource_devices(facts: Dict[str, Any], strategy: str) -> Dict[str, Tuple[DeviceRef, ...]]:
    """Resource name -> the devices (``DeviceRef``) the plugin serves under it.

    Only meaningful for a layout the plugin serves: the caller checks ``layout_problem`` first (once).
    """
    validate_strategy(strategy)
    gpus = facts_gpus(facts)
    devices = {}
    any_enabled = any(mig_enabled(gpu) for gpu in gpus)
    for gpu in gpus:
        if strategy == STRATEGY_NONE or not mig_enabled(gpu):
            devices.setdefault(FULL_GPU_RESOURCE, []).append(_gpu_ref(gpu))
            continue
        for device in plugin_devices(gpu):
            name = FULL_GPU_RESOURCE if strategy == STRATEGY_SINGLE else device.resource
            devices.setdefault(name, []).append(_mig_ref(device))
    if strategy == STRATEGY_SINGLE and not any_enabled:
        devices = {FULL_GPU_RESOURCE: [_gpu_ref(gpu) for gpu in gpus]} if gpus else {}
    return dict((name, tuple(refs)) for name, refs in devices.items())
