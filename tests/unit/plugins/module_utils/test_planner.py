"""Planner: placement search (checked against an independent brute force), minimal disruption, errors."""
from __future__ import annotations

import itertools
import json
from collections import Counter
from functools import lru_cache

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import LayoutError, ProfileError
from ansible_collections.gpufleet.mig.plugins.module_utils._planner import (
    busy_gpu_instance_ids,
    devices_from_instances,
    plan_gpu_layout,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import build_catalog
from mig_catalog_fixtures import catalog_from_fixture, read_catalog_fixture


def _reference_rules(fixture_name):
    """{GI profile name: (instance count, allowed placements)} straight from the fixture table."""
    _, records = read_catalog_fixture(fixture_name)
    return dict(
        (record["expected_name"], (record["instance_count"], tuple(tuple(p) for p in record["placements"])))
        for record in records
    )


def _oracle(rules):
    """Does a multiset of GI profiles fit? Exhaustive search over every allowed placement, no shortcuts."""

    @lru_cache(maxsize=None)
    def fits_from(items, used):
        if not items:
            return True
        _, placements = rules[items[0]]
        for start, size in placements:
            slots = frozenset(range(start, start + size))
            if not slots & used and fits_from(items[1:], used | slots):
                return True
        return False

    def fits(names):
        counts = Counter(names)
        if any(count > rules[name][0] for name, count in counts.items()):
            return False
        # Most constrained profile first only speeds the search up; every placement is still tried.
        return fits_from(tuple(sorted(names, key=lambda name: (len(rules[name][1]), name))), frozenset())

    return fits


def _all_multisets(rules, extra=0):
    names = sorted(rules)
    ranges = [range(rules[name][0] + 1 + extra) for name in names]
    for counts in itertools.product(*ranges):
        yield tuple(name for name, count in zip(names, counts) for _ in range(count))


def _assert_valid_plan(plan, rules, desired):
    assert not plan.destroy and not plan.keep
    assert Counter(gi.name for gi in plan.create) == Counter(desired)
    used = set()
    for gi in plan.create:
        assert gi.placement in rules[gi.name][1], "%s placed at disallowed %s" % (gi.name, gi.placement)
        slots = set(range(gi.placement[0], gi.placement[0] + gi.placement[1]))
        assert not slots & used, "%s at %s overlaps another GI" % (gi.name, gi.placement)
        used |= slots
        assert [ci.name for ci in gi.compute_instances] == [gi.name]
    assert Counter(plan.desired_devices) == Counter(desired)


@pytest.mark.parametrize("fixture_name", ["a100-sxm4-40gb-r580", "h100-sxm5-80gb"])
def test_planner_places_exactly_the_multisets_that_fit(fixture_name):
    catalog = catalog_from_fixture(fixture_name)
    rules = _reference_rules(fixture_name)
    fits = _oracle(rules)
    fitting = rejected = 0
    for desired in _all_multisets(rules):
        if not desired:
            continue
        if fits(desired):
            fitting += 1
            _assert_valid_plan(plan_gpu_layout(catalog, [], list(desired)), rules, desired)
        else:
            rejected += 1
            with pytest.raises(LayoutError) as raised:
                plan_gpu_layout(catalog, [], list(desired))
            hint = raised.value.largest_fitting
            assert hint and not Counter(hint) - Counter(desired), "hint must be part of the request"
            assert fits(hint), "the suggested subset %s must fit" % (hint,)
    # Both outcomes must actually be exercised: the table allows 3839 non-empty multisets per GPU.
    assert fitting > 50 and rejected > 50
    assert fitting + rejected == 3839


@pytest.mark.parametrize("fixture_name", ["a100-sxm4-40gb-r580", "h100-sxm5-80gb"])
def test_planner_rejects_more_instances_than_instance_count(fixture_name):
    catalog = catalog_from_fixture(fixture_name)
    for name, (count, _) in _reference_rules(fixture_name).items():
        with pytest.raises(LayoutError) as raised:
            plan_gpu_layout(catalog, [], {name: count + 1})
        assert raised.value.reason in ("instance_count", "memory_slices", "compute_slices")
        assert "at most %d" % count in str(raised.value) or raised.value.reason != "instance_count"


@pytest.mark.parametrize(
    "desired",
    [["1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"], ["2g.10gb", "2g.10gb", "3g.20gb"]],
    ids=["balanced-3-2-1-1", "3-2-2"],
)
def test_order_sensitive_a100_layouts_are_placed(a100_40gb, desired):
    plan = plan_gpu_layout(a100_40gb, [], desired)
    _assert_valid_plan(plan, _reference_rules("a100-sxm4-40gb-r580"), desired)
    # Both only fit with the 3g instance on the upper half (mig-hardware.md 4.3).
    assert [gi.placement for gi in plan.create if gi.name == "3g.20gb"] == [(4, 4)]
    assert plan.create[0].name == "3g.20gb"  # largest first


def _gi(gi_id, profile_id, start, size, cis):
    return {
        "id": gi_id, "profile_id": profile_id, "placement": {"start": start, "size": size},
        "compute_instances": [
            {"id": ci_id, "profile_id": ci_profile, "placement": {"start": ci_start, "size": ci_size}}
            for ci_id, (ci_profile, ci_start, ci_size) in enumerate(cis)
        ],
    }


def _full(gi_id, profile_id, start, size, compute_slices, ci_profile):
    return _gi(gi_id, profile_id, start, size, [(ci_profile, 0, compute_slices)])


# A100 ids: 1g.5gb 19, 1g.5gb+me 20, 1g.10gb 15, 2g.10gb 14, 3g.20gb 9, 4g.20gb 5, 7g.40gb 0.
SEVEN_1G = [_full(7 + slot, 19, slot, 1, 1, 0) for slot in range(7)]
BALANCED = [_full(2, 9, 4, 4, 3, 2), _full(3, 14, 0, 2, 2, 1), _full(9, 19, 2, 1, 1, 0), _full(10, 19, 3, 1, 1, 0)]


def test_matching_state_is_converged(a100_40gb):
    plan = plan_gpu_layout(a100_40gb, BALANCED, {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2})
    assert plan.converged
    assert [gi.id for gi in plan.keep] == [2, 3, 9, 10]
    assert plan.current_devices == plan.desired_devices == ("3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb")
    assert devices_from_instances(BALANCED, a100_40gb) == plan.desired_devices


def test_extras_are_destroyed_and_the_rest_kept(a100_40gb):
    plan = plan_gpu_layout(a100_40gb, BALANCED, {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 1})
    assert [gi.id for gi in plan.keep] == [2, 3, 9]
    assert [gi.id for gi in plan.destroy] == [10]
    assert plan.create == () and not plan.converged


def test_busy_instances_are_the_ones_kept(a100_40gb):
    # Balanced -> one 1g.5gb fewer: either 1g instance (GI 9 or GI 10) could go; the one a process runs
    # on must be the one kept, whichever of the two it is.
    assert [gi.id for gi in plan_gpu_layout(a100_40gb, BALANCED, {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 1},
                                            busy_gpu_instances={9}).destroy] == [10]
    assert [gi.id for gi in plan_gpu_layout(a100_40gb, BALANCED, {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 1},
                                            busy_gpu_instances={10}).destroy] == [9]


def test_busy_gpu_instance_ids_come_from_the_processes_of_the_facts():
    gpu = {"processes": [{"pid": 1, "gpu_instance_id": 10}, {"pid": 2, "gpu_instance_id": None}]}
    assert busy_gpu_instance_ids(gpu) == {10}


def test_keeps_as_many_instances_as_still_fit(a100_40gb):
    # 7 x 1g.5gb -> 3 x 1g.5gb + 2 x 2g.10gb: the two 2g need two free 2-slice blocks, so three of the
    # seven 1g instances can stay and four must go.
    plan = plan_gpu_layout(a100_40gb, SEVEN_1G, {"1g.5gb": 3, "2g.10gb": 2})
    assert len(plan.keep) == 3 and len(plan.destroy) == 4
    assert [gi.name for gi in plan.create] == ["2g.10gb", "2g.10gb"]
    occupied = [gi.placement for gi in plan.keep] + [gi.placement for gi in plan.create]
    slots = [slot for start, size in occupied for slot in range(start, start + size)]
    assert len(slots) == len(set(slots)) == 7
    assert all(gi.placement in ((0, 2), (2, 2), (4, 2)) for gi in plan.create)


def test_an_instance_in_the_way_is_moved(a100_40gb):
    # A lone 1g at slot 4 blocks every 2g placement next to a 4g, so it cannot be kept.
    plan = plan_gpu_layout(a100_40gb, [_full(11, 19, 4, 1, 1, 0)], {"4g.20gb": 1, "2g.10gb": 1, "1g.5gb": 1})
    assert plan.keep == () and [gi.id for gi in plan.destroy] == [11]
    assert sorted((gi.name, gi.placement) for gi in plan.create) == [
        ("1g.5gb", (6, 1)), ("2g.10gb", (4, 2)), ("4g.20gb", (0, 4))]


def test_empty_gpu_instances_are_cleaned_up(a100_40gb):
    leftovers = BALANCED + [_gi(13, 19, 6, 1, [])]
    plan = plan_gpu_layout(a100_40gb, leftovers, {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2})
    assert devices_from_instances(leftovers, a100_40gb) == plan.desired_devices
    assert [gi.id for gi in plan.destroy] == [13] and not plan.converged


def test_wrong_compute_instances_are_recreated(a100_40gb):
    split_3g = [_gi(1, 9, 4, 4, [(1, 0, 2), (0, 2, 1)])]  # 2c + 1c inside a 3g
    plan = plan_gpu_layout(a100_40gb, split_3g, ["3g.20gb"])
    assert [gi.id for gi in plan.destroy] == [1]
    assert [(gi.name, [ci.name for ci in gi.compute_instances]) for gi in plan.create] == [("3g.20gb", ["3g.20gb"])]


def test_unknown_existing_profiles_are_destroyed(a100_40gb):
    plan = plan_gpu_layout(a100_40gb, [_full(1, 77, 0, 4, 3, 2)], ["3g.20gb"])
    assert [gi.id for gi in plan.destroy] == [1] and len(plan.create) == 1


def test_partial_devices_pack_into_shared_gpu_instances(a100_40gb):
    plan = plan_gpu_layout(a100_40gb, [], {"1c.3g.20gb": 4, "2c.3g.20gb": 1})
    assert [gi.name for gi in plan.create] == ["3g.20gb", "3g.20gb"]
    for gi in plan.create:
        used = 0
        for ci in gi.compute_instances:
            mask = ((1 << ci.placement[1]) - 1) << ci.placement[0]
            assert not used & mask and ci.placement[0] + ci.placement[1] <= 3
            used |= mask
    names = sorted(ci.name for gi in plan.create for ci in gi.compute_instances)
    assert names == ["1c.3g.20gb"] * 4 + ["2c.3g.20gb"]


def test_existing_partial_groups_are_kept_as_they_are(a100_40gb):
    split = [_gi(1, 9, 0, 4, [(0, 0, 1)]), _gi(2, 9, 4, 4, [(0, 0, 1), (0, 1, 1)])]
    plan = plan_gpu_layout(a100_40gb, split, {"1c.3g.20gb": 3})
    assert plan.converged and [gi.id for gi in plan.keep] == [1, 2]
    assert devices_from_instances(split, a100_40gb) == ("1c.3g.20gb",) * 3


def test_too_many_partial_devices_name_the_gpu_instance_limit(a100_40gb):
    with pytest.raises(LayoutError) as raised:
        plan_gpu_layout(a100_40gb, [], {"1c.3g.20gb": 7})
    assert raised.value.reason == "instance_count"
    assert "3 GPU instances of 3g.20gb are needed" in str(raised.value)
    assert raised.value.largest_fitting == ("1c.3g.20gb",) * 6


def test_unknown_profile_lists_what_exists(a100_40gb):
    with pytest.raises(LayoutError) as raised:
        plan_gpu_layout(a100_40gb, [], {"2g.20gb": 1, "1g.5gb": 1})
    assert raised.value.reason == "unknown_profile"
    assert "'2g.20gb' not offered by NVIDIA A100-SXM4-40GB; available: 7g.40gb" in str(raised.value)


def test_malformed_profile_is_a_profile_error(a100_40gb):
    with pytest.raises(ProfileError):
        plan_gpu_layout(a100_40gb, [], ["three-gee"])


def test_memory_overflow_names_the_slices_and_what_fits(a100_40gb):
    with pytest.raises(LayoutError) as raised:
        plan_gpu_layout(a100_40gb, [], ["4g.20gb", "3g.20gb", "1g.5gb"])
    assert raised.value.reason == "memory_slices"
    assert "need 9 memory slices, but NVIDIA A100-SXM4-40GB has 8" in str(raised.value)
    assert raised.value.largest_fitting == ("4g.20gb", "3g.20gb")


def test_no_placement_is_reported_when_the_slices_would_suffice():
    # A made-up 4-slice GPU whose "+me" 2g sits across the middle: slice counts allow both 2g, placements not.
    raw = [
        {"index": 3, "profile_id": 0, "slice_count": 4, "instance_count": 1, "memory_mib": 24000,
         "placements": [(0, 4)]},
        {"index": 1, "profile_id": 5, "slice_count": 2, "instance_count": 2, "memory_mib": 11968,
         "placements": [(0, 2), (2, 2)]},
        {"index": 8, "profile_id": 6, "slice_count": 2, "instance_count": 1, "memory_mib": 11968,
         "placements": [(1, 2)]},
    ]
    catalog = build_catalog("odd GPU", 24576 * 1024 * 1024, raw)
    with pytest.raises(LayoutError) as raised:
        plan_gpu_layout(catalog, [], ["2g.12gb", "2g.12gb+me"])
    assert raised.value.reason == "placement"
    assert "no non-overlapping placement exists for GPU instances 2g.12gb, 2g.12gb+me" in str(raised.value)
    assert len(raised.value.largest_fitting) == 1


def test_a30_media_extension_profiles_exclude_each_other(a30_24gb):
    with pytest.raises(LayoutError) as raised:
        plan_gpu_layout(a30_24gb, [], ["2g.12gb+me", "1g.6gb+me"])
    assert raised.value.reason == "media_engines"
    assert "JPEG" in str(raised.value)
    plan = plan_gpu_layout(a30_24gb, [], ["2g.12gb+me", "1g.6gb", "1g.6gb"])
    assert len(plan.create) == 3


def test_plan_is_json_serialisable_and_ordered_largest_first(a100_40gb):
    plan = plan_gpu_layout(a100_40gb, SEVEN_1G[:1], {"1g.5gb": 1, "3g.20gb": 1, "2g.10gb": 1})
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["converged"] is False
    assert [gi["profile_name"] for gi in data["create"]] == ["3g.20gb", "2g.10gb"]
    assert data["create"][0]["compute_instances"][0] == {
        "profile_name": "3g.20gb", "profile_index": 2, "profile_id": 2, "placement": {"start": 0, "size": 3}}
    assert data["keep"][0]["placement"] == {"start": 0, "size": 1}


def test_desired_nothing_destroys_everything(a100_40gb):
    plan = plan_gpu_layout(a100_40gb, BALANCED, {})
    assert len(plan.destroy) == 4 and plan.create == () and plan.desired_devices == ()


def test_empty_catalog_asks_for_mig_mode_first():
    with pytest.raises(LayoutError) as raised:
        plan_gpu_layout(build_catalog("NVIDIA A100-SXM4-40GB", 40960 * 1024 * 1024, []), [], ["1g.5gb"])
    assert raised.value.reason == "empty_catalog"
    assert "Enable MIG mode first" in str(raised.value)


def test_devices_from_instances_uses_fact_names_without_a_catalog():
    facts = [{"id": 1, "profile_id": 9, "placement": {"start": 4, "size": 4},
              "compute_instances": [{"id": 0, "profile_id": 0, "profile_name": "1c.3g.20gb"},
                                    {"id": 1, "profile_id": 1, "profile_name": "MIG 2c.3g.20gb"}]},
             {"id": 13, "profile_id": 19, "placement": {"start": 6, "size": 1},
              "compute_instances": [{"id": 0, "profile_id": 0, "profile_name": "1g.5gb"}]}]
    assert devices_from_instances(facts) == ("2c.3g.20gb", "1c.3g.20gb", "1g.5gb")
