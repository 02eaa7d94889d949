"""Desired layouts: mig-parted config validation and semantics, built-in configs, inline layouts."""
from __future__ import annotations

import copy

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import ConfigError, LayoutError
from ansible_collections.gpufleet.mig.plugins.module_utils._layout import (
    DesiredGpuLayout,
    builtin_mig_configs,
    layout_source_from_params,
    parse_mig_parted_config,
    resolve_inline,
    resolve_layout,
    resolve_mig_parted,
    select_mig_config,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._planner import plan_gpu_layout
from mig_catalog_fixtures import CATALOG_NAMES, catalog_from_fixture, read_catalog_fixture


def _gpu(index, pci_device_id="0x20B010DE", mig_capable=True, **extra):
    gpu = {"index": index, "pci_device_id": pci_device_id, "mig_capable": mig_capable}
    gpu.update(extra)
    return gpu


DGX_A100 = [_gpu(index) for index in range(4)]
MIXED_HOST = [_gpu(0), _gpu(1, "0x233010DE"), _gpu(2, "0x1EB810DE", mig_capable=False)]  # A100, H100, T4

OFF = DesiredGpuLayout(mig_enabled=False)
BALANCED_A100 = DesiredGpuLayout(True, ("3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"))


def _spec(*entries, name="custom"):
    return {"version": "v1", "mig-configs": {name: list(entries)}}


# ---------------------------------------------------------------------------------------------- built-ins

BUILTIN_NAMES = [
    "all-disabled", "all-enabled", "all-1g.5gb", "all-1g.5gb.me", "all-1g.10gb", "all-1g.10gb.me", "all-1g.20gb",
    "all-2g.10gb", "all-2g.20gb", "all-3g.20gb", "all-3g.40gb", "all-4g.20gb", "all-4g.40gb", "all-7g.40gb",
    "all-7g.80gb", "all-1g.6gb", "all-1g.6gb.me", "all-2g.12gb", "all-2g.12gb.me", "all-4g.24gb", "all-1g.12gb",
    "all-1g.12gb.me", "all-1g.24gb", "all-2g.24gb", "all-3g.47gb", "all-4g.47gb", "all-7g.94gb", "all-1g.18gb",
    "all-1g.18gb.me", "all-1g.35gb", "all-2g.35gb", "all-3g.71gb", "all-4g.71gb", "all-7g.141gb", "all-balanced",
]


def test_builtin_configs_validate_and_cover_the_published_names():
    configs = builtin_mig_configs()
    assert set(BUILTIN_NAMES) <= set(configs)


@pytest.mark.parametrize(
    "pci_device_id, expected",
    [
        ("0x20B010DE", ("3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb")),  # A100-SXM4-40GB
        ("0x20F110DE", ("3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb")),  # A100-PCIE-40GB
        ("0x20B210DE", ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb")),  # A100-SXM4-80GB
        ("0x233010DE", ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb")),  # H100 SXM5
        ("0x232110DE", ("3g.47gb", "2g.24gb", "1g.12gb", "1g.12gb")),  # H100 NVL
        ("0x233510DE", ("3g.71gb", "2g.35gb", "1g.18gb", "1g.18gb")),  # H200
        ("0x233B10DE", ("3g.71gb", "2g.35gb", "1g.18gb", "1g.18gb")),  # H200 NVL
        ("0x20B710DE", ("2g.12gb", "1g.6gb", "1g.6gb")),  # A30
    ],
)
def test_all_balanced_picks_the_layout_by_pci_device_id(pci_device_id, expected):
    result = resolve_layout({"mig_config": "all-balanced"}, [_gpu(0, pci_device_id)])
    assert result == {0: DesiredGpuLayout(True, expected)}


def test_all_balanced_leaves_unknown_models_untouched():
    assert resolve_layout({"mig_config": "all-balanced"}, [_gpu(0, "0x12345678")]) == {0: None}


def test_all_1g10gb_depends_on_the_memory_size():
    result = resolve_layout({"mig_config": "all-1g.10gb"}, [_gpu(0), _gpu(1, "0x233010DE")])
    assert result[0].devices == ("1g.10gb",) * 4 and result[1].devices == ("1g.10gb",) * 7


def _fixture_gpus():
    for name in CATALOG_NAMES:
        data, _ = read_catalog_fixture(name)
        yield name, data["pci_device_id"]


@pytest.mark.parametrize("config_name", BUILTIN_NAMES)
def test_builtin_layouts_fit_every_gpu_that_offers_their_profiles(config_name):
    # Cross-check of the built-in counts against the hardware tables: whatever a config asks of a GPU
    # that has those profiles must be plannable on it.
    checked = 0
    for fixture_name, pci_device_id in _fixture_gpus():
        desired = resolve_layout({"mig_config": config_name}, [_gpu(0, pci_device_id)])[0]
        if desired is None or not desired.mig_enabled:
            continue
        catalog = catalog_from_fixture(fixture_name)
        if not set(desired.devices) <= set(catalog.device_names()):
            continue
        plan_gpu_layout(catalog, [], desired.devices)
        checked += 1
    if config_name not in ("all-disabled", "all-1g.24gb.me"):
        assert checked, "no reference GPU offers the profiles of %s" % config_name


# ------------------------------------------------------------------------------- mig-parted semantics


def test_entries_are_walked_in_order_and_later_ones_win():
    spec = _spec(
        {"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 7}},
        {"devices": [1], "mig-enabled": False},
        {"devices": [3], "mig-enabled": True, "mig-devices": {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}},
    )
    result = resolve_layout({"mig_config": "custom", "mig_config_file": spec}, DGX_A100)
    assert result == {
        0: DesiredGpuLayout(True, ("1g.5gb",) * 7),
        1: OFF,
        2: DesiredGpuLayout(True, ("1g.5gb",) * 7),
        3: BALANCED_A100,
    }


def test_gpus_no_entry_matches_are_left_untouched():
    spec = _spec({"devices": [0, 2], "mig-enabled": True, "mig-devices": {"7g.40gb": 1}})
    result = resolve_layout({"mig_config": "custom", "mig_config_file": spec}, DGX_A100)
    assert result[1] is None and result[3] is None and result[2].devices == ("7g.40gb",)


def test_devices_all_skips_gpus_that_are_not_mig_capable():
    result = resolve_layout({"mig_config": "all-1g.5gb"}, MIXED_HOST)
    assert result[2] is None and result[0].devices == ("1g.5gb",) * 7


def test_naming_a_non_mig_gpu_with_mig_on_is_an_error():
    spec = _spec({"devices": [2], "mig-enabled": True, "mig-devices": {}},
                 name="t4-too")
    with pytest.raises(ConfigError) as raised:
        resolve_layout({"mig_config": "t4-too", "mig_config_file": spec}, MIXED_HOST)
    assert "mig-parted config 't4-too', entry #1: cannot set MIG config on non MIG-capable GPU 2" in str(raised.value)
    assert (raised.value.config, raised.value.entry) == ("t4-too", 0)


def test_naming_a_non_mig_gpu_with_mig_off_is_fine():
    spec = _spec({"devices": [2], "mig-enabled": False})
    assert resolve_layout({"mig_config": "custom", "mig_config_file": spec}, MIXED_HOST)[2] is None


def test_device_filter_is_case_insensitive_and_accepts_a_list():
    spec = _spec(
        {"device-filter": "0x20b010de", "devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 7}},
        {"device-filter": ["0x233110DE", "0x233010DE"], "devices": "all", "mig-enabled": True,
         "mig-devices": {"7g.80gb": 1}},
    )
    result = resolve_layout({"mig_config": "custom", "mig_config_file": spec}, MIXED_HOST)
    assert result[0].devices == ("1g.5gb",) * 7
    assert result[1].devices == ("7g.80gb",)


def test_device_filter_with_subsystem_matches_only_that_subsystem():
    spec = _spec({"device-filter": "0x20B010DE:0x147F10DE", "devices": "all", "mig-enabled": True,
                  "mig-devices": {"7g.40gb": 1}})
    gpus = [_gpu(0, pci_subsystem_id="0x147F10DE"), _gpu(1, pci_subsystem_id="0x134F10DE"), _gpu(2)]
    result = resolve_layout({"mig_config": "custom", "mig_config_file": spec}, gpus)
    assert result[0].devices == ("7g.40gb",) and result[1] is None and result[2] is None


def test_null_mig_devices_means_mig_on_without_devices():
    configs = parse_mig_parted_config(_spec({"devices": "all", "mig-enabled": True, "mig-devices": None}))
    assert resolve_mig_parted(configs["custom"], DGX_A100[:1]) == {0: DesiredGpuLayout(True, ())}


def test_zero_counts_are_dropped_when_another_count_is_positive():
    configs = parse_mig_parted_config(
        _spec({"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 0, "7g.40gb": 1}}))
    assert resolve_mig_parted(configs["custom"], DGX_A100[:1])[0].devices == ("7g.40gb",)


def test_yaml_text_is_accepted():
    text = """
version: v1
mig-configs:
  half:
    - devices: [0, 1]
      mig-enabled: true
      mig-devices:
        "3g.20gb": 2
"""
    result = resolve_layout({"mig_config": "half", "mig_config_file": text}, DGX_A100)
    assert result[0].devices == ("3g.20gb", "3g.20gb") and result[3] is None


def test_selecting_a_missing_config_lists_the_available_ones():
    with pytest.raises(ConfigError, match="selected mig-config not present: all-2g.40gb; available: .*all-balanced"):
        resolve_layout({"mig_config": "all-2g.40gb"}, DGX_A100)


def test_a_single_config_needs_no_name_but_several_do():
    configs = parse_mig_parted_config(_spec({"devices": "all", "mig-enabled": False}))
    assert select_mig_config(configs) == configs["custom"]
    only_file = {"mig_config_file": _spec({"devices": "all", "mig-enabled": True, "mig-devices": {"7g.40gb": 1}})}
    assert resolve_layout(only_file, DGX_A100[:1]) == {0: DesiredGpuLayout(True, ("7g.40gb",))}
    with pytest.raises(ConfigError, match="config name is required"):
        select_mig_config(builtin_mig_configs())


# ------------------------------------------------------------------------------ mig-parted validation

GOOD_ENTRY = {"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 7}}


def _with(**changes):
    entry = copy.deepcopy(GOOD_ENTRY)
    for key, value in changes.items():
        key = key.replace("_", "-")
        if value is KeyError:
            entry.pop(key)
        else:
            entry[key] = value
    return entry


@pytest.mark.parametrize(
    "document, message",
    [
        ({"mig-configs": {"a": [GOOD_ENTRY]}}, "missing 'version' field"),
        ({"version": "v2", "mig-configs": {"a": [GOOD_ENTRY]}}, "unknown version: v2"),
        ({"version": "v1", "mig-configs": {"a": [GOOD_ENTRY]}, "hooks": {}}, "unexpected field: hooks"),
        ({"version": "v1", "mig-configs": {}}, "at least one entry in 'mig-configs' is required"),
        ({"version": "v1", "mig-configs": {"a": []}}, "config 'a': at least one entry in 'a' is required"),
        ([GOOD_ENTRY], "must be a mapping"),
    ],
)
def test_file_level_errors(document, message):
    with pytest.raises(ConfigError, match=message):
        parse_mig_parted_config(document)


@pytest.mark.parametrize(
    "entry, message",
    [
        (_with(devices=KeyError), "missing required field: devices"),
        (_with(mig_enabled=KeyError), "missing required field: mig-enabled"),
        (_with(mig_devices=KeyError), "missing required field 'mig-devices' when 'mig-enabled' is true"),
        (dict(GOOD_ENTRY, **{"mig-device": {}}), "unexpected field: mig-device"),
        (_with(devices="some"), "invalid string input for 'devices': some"),
        (_with(devices=[0, "1"]), "'devices' must be 'all' or a list of GPU indices"),
        (_with(devices=[True]), "'devices' must be 'all' or a list of GPU indices"),
        (_with(mig_enabled="yes"), "'mig-enabled' must be true or false"),
        (_with(mig_enabled=False), "MIG devices included when 'mig-enabled' is false"),
        (_with(mig_devices={"1g.5gb.me": 1}), "missing 'c'.*spell media extensions '\\+me'"),
        (_with(mig_devices={"MIG 1g.5gb": 1}), "invalid MIG profile 'MIG 1g.5gb'"),
        (_with(mig_devices={"1g.5gb": -1}), "invalid count for '1g.5gb': -1"),
        (_with(mig_devices={"1g.5gb": "7"}), "count for '1g.5gb' must be an integer"),
        (_with(mig_devices={"1g.5gb": 0, "2g.10gb": 0}), "all counts for all MigProfiles are 0"),
        (_with(mig_devices=["1g.5gb"]), "'mig-devices' must map MIG profiles to counts"),
        (_with(device_filter="0xZZ"), "invalid PCI device id '0xZZ'"),
        (_with(device_filter=[0x20B010DE]), "'device-filter' must be a PCI device id string or a list"),
        (_with(device_filter="0x20B010DE:0x1:0x2"), "expected '<devicevendor>' or '<devicevendor>:<subdevicevendor>'"),
        ("all", "each entry must be a mapping"),
    ],
)
def test_entry_errors_name_the_config_and_the_entry(entry, message):
    document = {"version": "v1", "mig-configs": {"fine": [GOOD_ENTRY], "broken": [GOOD_ENTRY, entry]}}
    with pytest.raises(ConfigError, match=message) as raised:
        parse_mig_parted_config(document)
    assert str(raised.value).startswith("mig-parted config 'broken', entry #2: ")
    assert (raised.value.config, raised.value.entry) == ("broken", 1)


def test_invalid_yaml_text_is_reported():
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_mig_parted_config("version: v1\nmig-configs: [unclosed")


# ------------------------------------------------------------------------------------------ inline


def test_inline_profile_counts_apply_to_every_mig_capable_gpu():
    result = resolve_inline({"1g.5gb": 7}, MIXED_HOST)
    assert result == {0: DesiredGpuLayout(True, ("1g.5gb",) * 7), 1: DesiredGpuLayout(True, ("1g.5gb",) * 7),
                      2: None}


def test_inline_per_index_mappings():
    layout = {0: {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}, "1": "disabled", 2: None, 3: {}}
    assert resolve_inline(layout, DGX_A100) == {
        0: BALANCED_A100, 1: OFF, 2: OFF, 3: DesiredGpuLayout(True, ()),
    }


def test_inline_unlisted_gpus_are_untouched():
    assert resolve_inline({1: {"7g.40gb": 1}}, DGX_A100) == {
        0: None, 1: DesiredGpuLayout(True, ("7g.40gb",)), 2: None, 3: None}


@pytest.mark.parametrize("layout, expected", [("disabled", OFF), ({}, DesiredGpuLayout(True, ()))])
def test_inline_shorthands_for_every_gpu(layout, expected):
    assert resolve_inline(layout, MIXED_HOST) == {0: expected, 1: expected, 2: None}


def test_inline_profile_spellings_are_normalised():
    result = resolve_inline({"MIG 1g.5gb.me": 1, "nvidia.com/mig-1g.5gb": 6}, DGX_A100[:1])
    assert result[0].devices == ("1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb+me")


@pytest.mark.parametrize(
    "layout, message",
    [
        ({0: {"1g.5gb": 7}, "1g.5gb": 7}, "mixes GPU indices and MIG profiles"),
        ({7: {"1g.5gb": 7}}, "names GPU 7, but this host has GPUs 0, 1, 2"),
        ({2: {"1g.5gb": 7}}, "enables MIG on GPU 2, which is not MIG-capable"),
        ({0: {"one-gee": 7}}, "mig_layout for GPU 0: invalid MIG profile 'one-gee'"),
        ({0: 7}, "mig_layout for GPU 0: expected a mapping"),
        ({"1g.5gb": -1}, "for every GPU: invalid count"),
        ("enabled", "a string layout can only be 'disabled'"),
        ([{"1g.5gb": 7}], "must be a mapping or 'disabled'"),
    ],
)
def test_inline_errors(layout, message):
    with pytest.raises(ConfigError, match=message):
        resolve_inline(layout, MIXED_HOST)


def test_inline_mig_off_on_a_non_mig_gpu_is_fine():
    assert resolve_inline({2: "disabled", 0: "off"}, MIXED_HOST) == {0: OFF, 1: None, 2: None}


# ------------------------------------------------------------------------------------ source choice


@pytest.mark.parametrize(
    "source",
    [{}, {"mig_config": "all-1g.5gb", "mig_layout": {"1g.5gb": 7}}, {"mig_config": None}, "all-1g.5gb"],
)
def test_exactly_one_source_is_required(source):
    with pytest.raises(ConfigError, match="mig_config|layout source"):
        resolve_layout(source, DGX_A100)


def test_inline_source_resolves_through_resolve_layout():
    assert resolve_layout({"mig_layout": {"7g.40gb": 1}}, DGX_A100[:2]) == {
        0: DesiredGpuLayout(True, ("7g.40gb",)), 1: DesiredGpuLayout(True, ("7g.40gb",))}


def test_desired_layout_serialises():
    assert BALANCED_A100.to_dict() == {"mig_enabled": True, "devices": ["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"]}


def test_layout_devices_compare_with_planned_devices(a100_40gb):
    desired = resolve_layout({"mig_config": "all-balanced"}, DGX_A100[:1])[0]
    plan = plan_gpu_layout(a100_40gb, [], desired.devices)
    assert plan.desired_devices == desired.devices


def test_an_unplaceable_inline_layout_fails_in_the_planner_not_here(a100_40gb):
    desired = resolve_inline({"4g.20gb": 1, "3g.20gb": 1, "1g.5gb": 1}, DGX_A100[:1])[0]
    with pytest.raises(LayoutError):
        plan_gpu_layout(a100_40gb, [], desired.devices)


def test_the_layout_source_options_become_one_source(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("version: v1\nmig-configs:\n  mine:\n    - devices: all\n      mig-enabled: true\n      mig-devices: {}\n")
    none = {"layout": None, "config": None, "config_file": None, "config_data": None}
    assert layout_source_from_params(none) is None
    assert layout_source_from_params(dict(none, layout={"1g.5gb": 7})) == {"mig_layout": {"1g.5gb": 7}}
    assert layout_source_from_params(dict(none, config="all-1g.5gb")) == {"mig_config": "all-1g.5gb"}
    assert layout_source_from_params(dict(none, config_file=str(config))) == {
        "mig_config": None, "mig_config_file": config.read_text()}
    with pytest.raises(ConfigError, match="config_file /nonexistent does not exist on this node or is not a file"):
        layout_source_from_params(dict(none, config_file="/nonexistent"))
