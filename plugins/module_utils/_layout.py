# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Desired MIG layout: what the inventory asks each GPU of a host to look like.

Three sources, one output (``resolve_layout``: GPU index -> ``DesiredGpuLayout`` or ``None`` = leave the
GPU untouched):

* a mig-parted v1 config file plus a selected config name, validated like mig-parted's ``spec.go`` does,
  with errors that name the config and the entry;
* a built-in config name (``all-balanced``, ``all-1g.5gb``, ...), equivalent to mig-parted's
  ``config-default.yaml``;
* an inline layout: ``{"1g.5gb": 7}`` for every MIG-capable GPU, or ``{0: {"3g.20gb": 2}, 1: "disabled"}``
  per GPU index (``None`` / ``"disabled"`` = MIG off, ``{}`` = MIG on without devices).

Semantics follow mig-parted: entries are walked in order and a later entry overrides an earlier one for
the same GPU; ``devices: all`` skips GPUs that are not MIG-capable; naming a non-capable GPU explicitly with
MIG on is an error; GPUs no entry matches are left untouched.
"""

from __future__ import annotations

import json
import os
import re
import traceback
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from ansible_collections.gpufleet.mig.plugins.module_utils._mig_parted_defaults import DEFAULT_MIG_CONFIGS
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import ConfigError, ProfileError
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import (
    canonical_devices,
    parse_profile_strict,
)

try:
    import yaml

    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the target host
    yaml = None
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

MIG_PARTED_VERSION = "v1"
_ENTRY_FIELDS = ("device-filter", "devices", "mig-enabled", "mig-devices")
_DEVICE_ID = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+)$")
_INDEX_KEY = re.compile(r"^[0-9]+$")
_DISABLED_WORDS = ("disabled", "off")


@dataclass(frozen=True)
class DesiredGpuLayout:
    """What one GPU should look like: MIG mode and the sorted multiset of MIG device profiles.

    ``devices`` is empty when MIG is off and when MIG is on without devices (``mig-devices: {}``).
    """

    mig_enabled: bool
    devices: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        return {"mig_enabled": self.mig_enabled, "devices": list(self.devices)}


@dataclass(frozen=True)
class MigConfigEntry:
    """One validated entry of a mig-parted config (a list item under a config name)."""

    devices: Union[str, Tuple[int, ...]]  # "all" or GPU indices
    device_filter: Tuple[Tuple[int, Optional[int]], ...]  # parsed PCI ids: ((device_vendor, subsystem or None), ...); empty = any GPU
    mig_enabled: bool
    mig_devices: Dict[str, int]  # profile string (as written) -> count

    def matches_index(self, index: int) -> bool:
        return self.devices == "all" or index in self.devices

    def matches_device_id(self, pci_device_id: Optional[int], pci_subsystem_id: Optional[int] = None) -> bool:
        if not self.device_filter:
            return True
        for device_vendor, subsystem in self.device_filter:
            if device_vendor != pci_device_id:
                continue
            if subsystem is None or subsystem == pci_subsystem_id:
                return True
        return False


def _config_error(message: str, config: Optional[str] = None, entry: Optional[int] = None) -> ConfigError:
    """A ConfigError whose message starts with the config name and the 1-based entry number."""
    where = ""
    if config is not None:
        where = "mig-parted config '%s'" % config
        if entry is not None:
            where += ", entry #%d" % (entry + 1)
        where += ": "
    return ConfigError(where + message, config=config, entry=entry)


def parse_pci_id(text: Any, config: Optional[str] = None, entry: Optional[int] = None) -> int:
    """``0x20B010DE`` (device id then vendor id) -> int. Optional ``:0x<subdevice><subvendor>`` handled by caller."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    elif isinstance(text, str) and _DEVICE_ID.match(text.strip()):
        value = int(text.strip(), 0)
    else:
        # mig-parted ignores the parse error and the filter then matches no GPU, hiding typos; we refuse.
        raise _config_error(
            "invalid PCI device id %r in 'device-filter': expected a value like '0x20B010DE' "
            "(device id, then vendor id 10DE)" % (text,),
            config,
            entry,
        )
    if value < 0 or value > 0xFFFFFFFF:
        raise _config_error("PCI device id %r in 'device-filter' does not fit in 32 bits" % (text,), config, entry)
    return value


def _parse_device_filter(value: Any, config: Optional[str], entry: Optional[int]) -> Tuple[Tuple[int, Optional[int]], ...]:
    if isinstance(value, str):
        items = [value] if value != "" else []
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = value
    else:
        raise _config_error("'device-filter' must be a PCI device id string or a list of them, got %r" % (value,), config, entry)
    parsed = []
    for item in items:
        parts = item.split(":")
        if len(parts) > 2:
            raise _config_error(
                "invalid 'device-filter' %r: expected '<devicevendor>' or '<devicevendor>:<subdevicevendor>'" % item,
                config,
                entry,
            )
        subsystem = parse_pci_id(parts[1], config, entry) if len(parts) == 2 else None
        parsed.append((parse_pci_id(parts[0], config, entry), subsystem))
    return tuple(parsed)


def _parse_devices(value: Any, config: Optional[str], entry: Optional[int]) -> Union[str, Tuple[int, ...]]:
    if isinstance(value, str):
        if value != "all":
            raise _config_error("invalid string input for 'devices': %s (expected 'all' or a list of GPU indices)"
                                % value, config, entry)
        return "all"
    if isinstance(value, list) and all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return tuple(value)
    raise _config_error("'devices' must be 'all' or a list of GPU indices, got %r" % (value,), config, entry)


def _parse_mig_devices(value: Any, config: Optional[str], entry: Optional[int]) -> Dict[str, int]:
    if value is None:
        # mig-parted unmarshals a null map into an empty one: "mig-devices:" with no value means {}.
        return {}
    if not isinstance(value, dict):
        raise _config_error("'mig-devices' must map MIG profiles to counts, got %r" % (value,), config, entry)
    for profile, count in value.items():
        if not isinstance(profile, str):
            raise _config_error("error validating values in 'mig-devices' field: profile %r is not a string" % (profile,),
                  config, entry)
        try:
            parse_profile_strict(profile)
        except ProfileError as error:
            hint = ""
            if profile.endswith(".me"):
                hint = " (config keys spell media extensions '+me', e.g. '1g.5gb+me'; '.me' is the resource-name form)"
            raise _config_error("error validating values in 'mig-devices' field: %s%s" % (error, hint), config, entry)
        if isinstance(count, bool) or not isinstance(count, int):
            raise _config_error("error validating values in 'mig-devices' field: count for '%s' must be an integer, got %r"
                  % (profile, count), config, entry)
        if count < 0:
            raise _config_error("error validating values in 'mig-devices' field: invalid count for '%s': %d" % (profile, count),
                  config, entry)
    if value and not any(value.values()):
        raise _config_error("error validating values in 'mig-devices' field: all counts for all MigProfiles are 0", config, entry)
    return dict(value)


def _parse_entry(raw: Any, config: Optional[str], entry: Optional[int]) -> MigConfigEntry:
    if not isinstance(raw, dict):
        raise _config_error("each entry must be a mapping with 'devices' and 'mig-enabled', got %r" % (raw,), config, entry)
    for required in ("devices", "mig-enabled"):
        if required not in raw:
            raise _config_error("missing required field: %s" % required, config, entry)
    for key in raw:
        if key not in _ENTRY_FIELDS:
            raise _config_error("unexpected field: %s (allowed: %s)" % (key, ", ".join(_ENTRY_FIELDS)), config, entry)
    mig_enabled = raw["mig-enabled"]
    if not isinstance(mig_enabled, bool):
        raise _config_error("'mig-enabled' must be true or false, got %r" % (mig_enabled,), config, entry)
    device_filter = _parse_device_filter(raw["device-filter"], config, entry) if "device-filter" in raw else ()
    devices = _parse_devices(raw["devices"], config, entry)
    has_mig_devices = "mig-devices" in raw
    mig_devices = _parse_mig_devices(raw.get("mig-devices"), config, entry)
    if mig_enabled and not has_mig_devices:
        raise _config_error("missing required field 'mig-devices' when 'mig-enabled' is true (an empty mapping means MIG on without devices)",
              config, entry)
    if not mig_enabled and mig_devices:
        raise _config_error("MIG devices included when 'mig-enabled' is false", config, entry)
    return MigConfigEntry(devices=devices, device_filter=device_filter, mig_enabled=mig_enabled,
                          mig_devices=mig_devices)


def _load_text(text: str) -> Any:
    if HAS_YAML:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError("mig-parted config file is not valid YAML: %s" % error)
    try:
        return json.loads(text)
    except ValueError:
        raise ConfigError(
            "mig-parted config file is not JSON and PyYAML is not installed on this host to read YAML; "
            "install PyYAML or pass the config as a mapping"
        )


def parse_mig_parted_config(data: Any) -> Dict[str, Tuple[MigConfigEntry, ...]]:
    """Validate a mig-parted v1 config (mapping, or YAML/JSON text); return ``{name: (MigConfigEntry, ...)}``.

    Every config in the file is validated, as mig-parted does when it loads a file.
    """
    if isinstance(data, (str, bytes)):
        data = _load_text(data.decode("utf-8") if isinstance(data, bytes) else data)
    if not isinstance(data, dict):
        raise ConfigError("mig-parted config must be a mapping with 'version' and 'mig-configs', got %r" % (data,))
    if "version" not in data and data:
        raise ConfigError("mig-parted config: unable to parse with missing 'version' field")
    if data.get("version") != MIG_PARTED_VERSION:
        raise ConfigError("mig-parted config: unknown version: %s (expected %s)"
                          % (data.get("version"), MIG_PARTED_VERSION))
    for key in data:
        if key not in ("version", "mig-configs"):
            raise ConfigError("mig-parted config: unexpected field: %s" % key)
    configs = data.get("mig-configs", {})
    if "mig-configs" in data and (not isinstance(configs, dict) or not configs):
        raise ConfigError("mig-parted config: at least one entry in 'mig-configs' is required")
    parsed = {}
    for name, entries in configs.items():
        if not isinstance(entries, list) or not entries:
            raise ConfigError("mig-parted config '%s': at least one entry in '%s' is required" % (name, name),
                              config=name)
        parsed[str(name)] = tuple(_parse_entry(raw, name, number) for number, raw in enumerate(entries))
    return parsed


def builtin_mig_configs() -> Dict[str, Tuple[MigConfigEntry, ...]]:
    """The built-in named configs (mig-parted's config-default.yaml for the GPUs we cover), validated."""
    return parse_mig_parted_config(DEFAULT_MIG_CONFIGS)


def select_mig_config(configs: Dict[str, Tuple[MigConfigEntry, ...]], name: Optional[str] = None) -> Tuple[MigConfigEntry, ...]:
    """Entries of the selected config; like mig-parted, the only config of a file needs no name."""
    if name is None:
        if len(configs) == 1:
            return next(iter(configs.values()))
        raise ConfigError("a config name is required when the mig-parted config holds %d configs: %s"
                          % (len(configs), ", ".join(sorted(configs))))
    if name not in configs:
        raise ConfigError("selected mig-config not present: %s; available: %s"
                          % (name, ", ".join(sorted(configs)) or "none"), config=name)
    return configs[name]


def _gpu_identity(gpu: Dict[str, Any]) -> Tuple[int, Optional[int], Optional[int], bool]:
    try:
        index = int(gpu["index"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError("GPU description %r has no integer 'index'" % (gpu,))
    ids = []
    for key in ("pci_device_id", "pci_subsystem_id"):
        value = gpu.get(key)
        try:
            ids.append(parse_pci_id(value) if value is not None else None)
        except ConfigError:
            raise ConfigError("GPU %d reports an unreadable %s %r" % (index, key, value))
    return (index, ids[0], ids[1], bool(gpu.get("mig_capable")))


def _gpu_identities(gpus: Iterable[Dict[str, Any]]) -> List[Tuple[int, Optional[int], Optional[int], bool]]:
    return sorted((_gpu_identity(gpu) for gpu in gpus), key=lambda identity: identity[0])


def resolve_mig_parted(entries: Iterable[MigConfigEntry], gpus: Iterable[Dict[str, Any]],
                       config_name: Optional[str] = None) -> Dict[int, Optional[DesiredGpuLayout]]:
    """Apply mig-parted entries to the host's GPUs: ``{index: DesiredGpuLayout or None}``.

    ``gpus`` are mappings with ``index``, ``pci_device_id`` (``"0x20B010DE"``), optional
    ``pci_subsystem_id`` and ``mig_capable`` -- the GPU records ``gpu.read_node_facts`` returns fit.
    """
    identities = _gpu_identities(gpus)
    result = dict((identity[0], None) for identity in identities)
    for number, entry in enumerate(entries):
        for index, device_id, subsystem_id, mig_capable in identities:
            if not entry.matches_device_id(device_id, subsystem_id) or not entry.matches_index(index):
                continue
            if not mig_capable:
                if entry.devices == "all" or not entry.mig_enabled:
                    continue
                raise _config_error("cannot set MIG config on non MIG-capable GPU %d; remove it from 'devices'"
                                    % index, config_name, number)
            devices = canonical_devices(entry.mig_devices) if entry.mig_enabled else ()
            result[index] = DesiredGpuLayout(mig_enabled=entry.mig_enabled, devices=devices)
    return result


def _inline_devices(value: Any, where: str) -> DesiredGpuLayout:
    """One GPU's inline value -> DesiredGpuLayout."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in _DISABLED_WORDS):
        return DesiredGpuLayout(mig_enabled=False)
    if isinstance(value, dict):
        for profile in value:
            if not isinstance(profile, str):
                raise ConfigError("mig_layout %s: profile %r is not a string" % (where, profile))
        try:
            return DesiredGpuLayout(mig_enabled=True, devices=canonical_devices(value))
        except ProfileError as error:
            raise ConfigError("mig_layout %s: %s" % (where, error))
    raise ConfigError(
        "mig_layout %s: expected a mapping of MIG profile to count (e.g. {'1g.5gb': 7}), {} for MIG on "
        "without devices, or 'disabled'; got %r" % (where, value)
    )


def _is_index_key(key: Any) -> Any:
    return (isinstance(key, int) and not isinstance(key, bool)) or (isinstance(key, str) and _INDEX_KEY.match(key))


def resolve_inline(layout: Any, gpus: Iterable[Dict[str, Any]]) -> Dict[int, Optional[DesiredGpuLayout]]:
    """Resolve an inline layout (see module docstring) to ``{index: DesiredGpuLayout or None}``."""
    identities = _gpu_identities(gpus)
    capable = dict((identity[0], identity[3]) for identity in identities)
    result = dict((index, None) for index in capable)
    if isinstance(layout, str):
        if layout.strip().lower() not in _DISABLED_WORDS:
            raise ConfigError("mig_layout %r: a string layout can only be 'disabled'" % layout)
        uniform = DesiredGpuLayout(mig_enabled=False)
    elif isinstance(layout, dict):
        index_keys = [key for key in layout if _is_index_key(key)]
        if index_keys and len(index_keys) != len(layout):
            raise ConfigError(
                "mig_layout mixes GPU indices and MIG profiles as keys (%s); use either {'1g.5gb': 7} for "
                "every GPU or {0: {'1g.5gb': 7}, 1: 'disabled'} per GPU" % ", ".join(str(key) for key in layout)
            )
        if index_keys:
            for key, value in layout.items():
                index = int(key)
                if index not in capable:
                    raise ConfigError("mig_layout names GPU %d, but this host has GPUs %s"
                                      % (index, ", ".join(str(i) for i in sorted(capable)) or "none"))
                desired = _inline_devices(value, "for GPU %d" % index)
                if not capable[index]:
                    if desired.mig_enabled:
                        raise ConfigError("mig_layout enables MIG on GPU %d, which is not MIG-capable" % index)
                    continue
                result[index] = desired
            return result
        uniform = _inline_devices(layout, "for every GPU")
    else:
        raise ConfigError("mig_layout must be a mapping or 'disabled', got %r" % (layout,))
    for index, mig_capable in capable.items():
        if mig_capable:
            result[index] = uniform
    return result


def resolve_layout(source: Dict[str, Any], gpus: Iterable[Dict[str, Any]]) -> Dict[int, Optional[DesiredGpuLayout]]:
    """Desired layout of every GPU of a host.

    ``source`` is a mapping with exactly one of:

    * ``mig_config``: a config name, resolved in ``mig_config_file`` (a mig-parted v1 mapping or YAML/JSON
      text) when given, else in the built-in configs. Like mig-parted, a file holding a single config needs
      no name;
    * ``mig_layout``: an inline layout.

    Returns ``{gpu index: DesiredGpuLayout or None}`` where None means "leave this GPU as it is".
    """
    if not isinstance(source, dict):
        raise ConfigError("layout source must be a mapping with 'mig_config' or 'mig_layout', got %r" % (source,))
    has_config = source.get("mig_config") is not None or source.get("mig_config_file") is not None
    has_layout = "mig_layout" in source
    if has_config == has_layout:
        raise ConfigError("set exactly one of mig_config (a named config) or mig_layout (an inline layout)")
    if has_layout:
        return resolve_inline(source["mig_layout"], gpus)
    if source.get("mig_config_file") is not None:
        configs = parse_mig_parted_config(source["mig_config_file"])
    else:
        configs = builtin_mig_configs()
    name = source.get("mig_config")
    return resolve_mig_parted(select_mig_config(configs, name), gpus, config_name=name)


# ------------------------------------------------------------------------------- the modules' layout options

# The options of doc fragment gpufleet.mig.layout_source, which mig_layout and mig_plan_info share.
LAYOUT_SOURCE_MUTUALLY_EXCLUSIVE = [("layout", "config"), ("layout", "config_file"), ("layout", "config_data"),
                                    ("config_file", "config_data")]
LAYOUT_SOURCE_OPTIONS = ("layout", "config", "config_file", "config_data")


def layout_source_argument_spec() -> Dict[str, Dict[str, Any]]:
    return dict(
        config=dict(type="str"),
        config_file=dict(type="path"),
        config_data=dict(type="raw"),
        layout=dict(type="raw"),
        gpus=dict(type="list", elements="str", default=["all"]),
    )


def layout_source_from_params(params: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The ``resolve_layout`` source for the layout_source options; reads ``config_file`` on this host.

    Returns None when none of them is set. Raises ConfigError when ``config_file`` cannot be read.
    """
    if params.get("layout") is not None:
        return {"mig_layout": params["layout"]}
    if all(params.get(name) is None for name in LAYOUT_SOURCE_OPTIONS):
        return None
    source = {"mig_config": params.get("config")}
    if params.get("config_data") is not None:
        source["mig_config_file"] = params["config_data"]
    if params.get("config_file") is not None:
        path = params["config_file"]
        if not os.path.isfile(path):
            raise ConfigError("config_file %s does not exist on this node or is not a file" % path)
        try:
            with open(path, "rb") as stream:
                source["mig_config_file"] = stream.read().decode("utf-8")
        except (IOError, OSError, UnicodeDecodeError) as error:
            raise ConfigError("cannot read config_file %s: %s" % (path, error))
    return source
