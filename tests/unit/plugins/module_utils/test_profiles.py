"""Profile naming (go-nvlib rules), profile-string parsing and catalog lookups."""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import ProfileError
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import (
    build_catalog,
    canonical_devices,
    memory_size_gb,
    normalize_profile,
    parse_profile,
    parse_profile_strict,
    resource_name,
)
from mig_catalog_fixtures import CATALOG_NAMES, catalog_from_fixture, read_catalog_fixture

MIB = 1024 * 1024


def _fixture_rows():
    for name in CATALOG_NAMES:
        _, records = read_catalog_fixture(name)
        for record in records:
            yield pytest.param(name, record, id="%s-%s" % (name, record["expected_name"]))


@pytest.mark.parametrize("fixture_name, record", list(_fixture_rows()))
def test_every_reference_profile_is_named_like_the_driver(fixture_name, record):
    catalog = catalog_from_fixture(fixture_name)
    profile = next(profile for profile in catalog.profiles if profile.index == record["index"])
    assert profile.name == record["expected_name"]
    assert profile.profile_id == record["profile_id"]
    assert profile.full_compute_profile.name == record["expected_name"]


def test_naming_needs_no_name_field_from_the_driver():
    # R450 structs have no name; the records below carry none, yet names come out right.
    data, records = read_catalog_fixture("a100-sxm4-40gb-r450")
    assert all("reported_name" not in record for record in records)
    catalog = catalog_from_fixture("a100-sxm4-40gb-r450")
    assert [profile.name for profile in catalog.profiles] == ["7g.40gb", "4g.20gb", "3g.20gb", "2g.10gb", "1g.5gb"]
    assert data["memory_total_mib"] == 40537


@pytest.mark.parametrize(
    "memory_mib, total_mib, expected_gb",
    [
        (71168, 143771, 71),  # H200 3g: 0.5 * 141 = 70.5 rounds away from zero (Python's round() says 70)
        (22144, 95830, 24),  # H100 NVL 1g.24gb: 0.25 * 94 = 23.5
        (16384, 143771, 18),  # H200 1g.18gb: 0.125 * 141 = 17.625
        (20096, 40537, 20),  # A100 3g on R450: 20096/40537 rounds up to 4/8 of 40 GiB
        (4864, 40960, 5),
        (40320, 40960, 40),
    ],
)
def test_memory_size_uses_eighths_of_the_rounded_up_total(memory_mib, total_mib, expected_gb):
    assert memory_size_gb(memory_mib, total_mib * MIB) == expected_gb


def test_memory_size_rejects_a_zero_total():
    with pytest.raises(ProfileError, match="total memory"):
        memory_size_gb(4864, 0)


@pytest.mark.parametrize(
    "gpu_instance, expected_devices",
    [
        ("1g.5gb", ["1g.5gb"]),
        ("2g.10gb", ["2g.10gb", "1c.2g.10gb"]),
        ("3g.20gb", ["3g.20gb", "2c.3g.20gb", "1c.3g.20gb"]),
        ("4g.20gb", ["4g.20gb", "2c.4g.20gb", "1c.4g.20gb"]),
        ("7g.40gb", ["7g.40gb", "4c.7g.40gb", "3c.7g.40gb", "2c.7g.40gb", "1c.7g.40gb"]),
    ],
)
def test_compute_instance_shapes_follow_the_2c_le_g_plus_1_rule(a100_40gb, gpu_instance, expected_devices):
    profile = a100_40gb.resolve_device(gpu_instance)[0]
    assert [compute.name for compute in profile.compute_profiles] == expected_devices


def test_compute_instance_counts_indices_and_sms_match_lcip(a100_40gb):
    three_g = a100_40gb.resolve_device("3g.20gb")[0]
    by_name = dict((compute.name, compute) for compute in three_g.compute_profiles)
    assert (by_name["1c.3g.20gb"].index, by_name["1c.3g.20gb"].instance_count) == (0, 3)
    assert (by_name["2c.3g.20gb"].index, by_name["2c.3g.20gb"].instance_count) == (1, 1)
    assert (by_name["3g.20gb"].index, by_name["3g.20gb"].multiprocessors) == (2, 42)
    assert by_name["1c.3g.20gb"].placements == ((0, 1), (1, 1), (2, 1))
    seven_g = a100_40gb.resolve_device("7g.40gb")[0]
    counts = dict((compute.name, compute.instance_count) for compute in seven_g.compute_profiles)
    assert counts == {"7g.40gb": 1, "4c.7g.40gb": 1, "3c.7g.40gb": 2, "2c.7g.40gb": 3, "1c.7g.40gb": 7}
    assert seven_g.full_compute_profile.index == 4
    assert a100_40gb.resolve_device("4g.20gb")[0].full_compute_profile.index == 3


def test_catalog_geometry_and_lookups(a100_40gb, a30_24gb):
    assert (a100_40gb.memory_slice_count, a100_40gb.compute_slice_count) == (8, 7)
    assert (a30_24gb.memory_slice_count, a30_24gb.compute_slice_count) == (4, 4)
    assert a100_40gb.memory_total_mib == 40960
    assert a100_40gb.by_id(15).name == "1g.10gb"
    assert a100_40gb.by_id(15).memory_slices == 2
    assert a100_40gb.by_id(99) is None
    assert a100_40gb.resolve_device("MIG 1g.5gb.me")[0].profile_id == 20
    gpu_instance, compute = a100_40gb.resolve_device("MIG 1c.3g.20gb")
    assert (gpu_instance.profile_id, compute.slice_count) == (9, 1)
    assert a30_24gb.resolve_device("2g.12gb+me")[0].index == 8


def test_unknown_device_lists_what_the_gpu_offers(a100_40gb):
    with pytest.raises(ProfileError) as raised:
        a100_40gb.resolve_device("2g.20gb")
    message = str(raised.value)
    assert "'2g.20gb' is not offered by NVIDIA A100-SXM4-40GB" in message
    assert "1g.5gb+me" in message and "1c.7g.40gb" in message


def test_r450_catalog_has_neither_plus_me_nor_1g10gb():
    names = catalog_from_fixture("a100-sxm4-40gb-r450").device_names()
    assert "1g.5gb+me" not in names and "1g.10gb" not in names
    assert names[:2] == ("7g.40gb", "4c.7g.40gb")


def test_media_engine_pool_is_the_full_gpu_profile(a100_40gb, h100_80gb, a30_24gb):
    assert a100_40gb.media_engine_budget() == {"decoders": 5, "encoders": 0, "jpegs": 1, "ofas": 1}
    assert h100_80gb.media_engine_budget() == {"decoders": 7, "encoders": 0, "jpegs": 7, "ofas": 1}
    assert a30_24gb.media_engine_budget() == {"decoders": 4, "encoders": 0, "jpegs": 1, "ofas": 1}


def test_placements_of_one_profile_must_share_a_size():
    raw = {
        "index": 0, "profile_id": 19, "slice_count": 1, "instance_count": 2, "memory_mib": 4864,
        "placements": [(0, 1), (1, 2)],
    }
    with pytest.raises(ProfileError, match="different sizes"):
        build_catalog("odd", 40960 * MIB, [raw])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1g.5gb", "1g.5gb"),
        ("MIG 1g.5gb", "1g.5gb"),
        ("  mig 1G.5GB ", "1g.5gb"),
        ("1g.5gb+me", "1g.5gb+me"),
        ("1g.5gb.me", "1g.5gb+me"),
        ("MIG 1g.5gb+me", "1g.5gb+me"),
        ("1c.3g.20gb", "1c.3g.20gb"),
        ("1c.1g.5gb", "1g.5gb"),
        ("nvidia.com/mig-1g.5gb.me", "1g.5gb+me"),
        ("mig-3g.20gb", "3g.20gb"),
        ("1g.24gb.me.all", "1g.24gb+me.all"),
        ("1g.24gb-me", "1g.24gb-me"),
    ],
)
def test_lenient_parsing_normalises(text, expected):
    assert normalize_profile(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "1g", "g.5gb", "1g.5", "1g.5gb+", "1g.5gb+me,me", "1g.5gb+1me", "4c.3g.20gb", "0g.5gb",
     "1x.3g.20gb", "1g.5gb+m e", 5, None, ["1g.5gb"]],
)
def test_lenient_parsing_rejects_garbage(text):
    with pytest.raises(ProfileError, match="invalid MIG profile"):
        parse_profile(text)


@pytest.mark.parametrize(
    "text, parts",
    [
        ("1g.5gb", (1, 1, 5, (), ())),
        ("1c.3g.20gb", (1, 3, 20, (), ())),
        ("1g.5gb+me", (1, 1, 5, ("me",), ())),
        ("1g.24gb+me.all", (1, 1, 24, ("me.all",), ())),
        ("1g.24gb-me", (1, 1, 24, (), ("me",))),
    ],
)
def test_strict_parsing_matches_mig_parted_grammar(text, parts):
    parsed = parse_profile_strict(text)
    assert (parsed.compute_slices, parsed.gpu_slices, parsed.memory_gb, parsed.attributes,
            parsed.negative_attributes) == parts


@pytest.mark.parametrize(
    "text, problem",
    [
        ("1g.5gb.me", "missing 'c'"),
        ("MIG 1g.5gb", "leading or trailing spaces|missing 'g'|malformed"),
        (" 1g.5gb", "leading or trailing spaces"),
        ("1g.5gb+me-x", "both '\\+' and '-'"),
        ("1g.5gb+.me", "begins/ends with a dot"),
        ("1g", "expected"),
        ("1g.5gb+", "empty attribute"),
    ],
)
def test_strict_parsing_rejects_what_mig_parted_rejects(text, problem):
    with pytest.raises(ProfileError, match=problem):
        parse_profile_strict(text)


@pytest.mark.parametrize(
    "profile, resource",
    [
        ("1g.5gb", "nvidia.com/mig-1g.5gb"),
        ("1g.5gb+me", "nvidia.com/mig-1g.5gb.me"),
        ("3g.20gb", "nvidia.com/mig-3g.20gb"),
        ("1g.24gb+me.all", "nvidia.com/mig-1g.24gb.me.all"),
        ("1g.24gb-me", "nvidia.com/mig-1g.24gb-me"),
    ],
)
def test_resource_name_replaces_plus_with_dot(profile, resource):
    assert resource_name(profile) == resource


def test_resource_name_accepts_a_profile_object(a100_40gb):
    assert resource_name(a100_40gb.by_id(20)) == "nvidia.com/mig-1g.5gb.me"


def test_canonical_devices_sorts_largest_first_and_expands_counts():
    assert canonical_devices(["1g.5gb", "MIG 3g.20gb", "1c.3g.20gb", "2g.10gb", "1g.5gb+me"]) == (
        "3g.20gb", "1c.3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb+me",
    )
    assert canonical_devices({"1g.5gb": 2, "3g.20gb": 1, "2g.10gb": 0}) == ("3g.20gb", "1g.5gb", "1g.5gb")


@pytest.mark.parametrize("count", [-1, "2", True, 1.5])
def test_canonical_devices_rejects_bad_counts(count):
    with pytest.raises(ProfileError, match="invalid count"):
        canonical_devices({"1g.5gb": count})
