"""Fleet policies: JMESPath matches over gpu_info + labels + inventory_hostname, first match wins."""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._policy import (
    fleet_problem,
    jmespath_truthy,
    node_document,
    policy_problems,
    resolve_policy,
)


def _gpu_info(names, driver="550.54.15"):
    return {"changed": False, "invocation": {"module_args": {}}, "driver_version": driver,
            "gpus": [{"index": i, "name": name, "mig_capable": True} for i, name in enumerate(names)]}


H100_NODE = node_document(_gpu_info(["NVIDIA H100 80GB HBM3"] * 8), {"rack": "3"}, "h100-a")
A100_NODE = node_document(_gpu_info(["NVIDIA A100-SXM4-40GB"] * 2, driver="535.104.05"), {"rack": "7"}, "a100-a")
SINGLE_A100 = node_document(_gpu_info(["NVIDIA A100-SXM4-40GB"], driver="580.65.06"), {"rack": "1"}, "a100-b")

POLICIES = [
    {"match": "gpus[?contains(name, 'H100')]", "mig_config": "all-1g.10gb"},
    {"match": "labels.rack == '7'", "mig_layout": "disabled"},
    {"match": "gpus[?contains(name, 'A100')] | length(@) > `1`", "mig_layout": {"3g.20gb": 2}},
    {"match": "starts_with(driver_version, '580.')", "mig_layout": {"1g.5gb": 7}},
]


def test_truthiness_follows_jmespath():
    assert [jmespath_truthy(v) for v in (None, False, [], {}, "", 0, "x", [0], {"a": None}, True)] == \
        [False, False, False, False, False, True, True, True, True, True]


def test_document_is_gpu_info_plus_labels_and_hostname_without_result_noise():
    assert set(H100_NODE) == {"driver_version", "gpus", "labels", "inventory_hostname"}
    assert H100_NODE["labels"] == {"rack": "3"} and H100_NODE["inventory_hostname"] == "h100-a"


def test_by_gpu_model():
    resolved = resolve_policy(POLICIES, H100_NODE)
    assert (resolved["source"], resolved["policy_index"], resolved["mig_config"], resolved["problem"]) == \
        ("policy", 0, "all-1g.10gb", None)
    assert resolved["description"] == "layout from mig_policies[0] (match: gpus[?contains(name, 'H100')])"


def test_first_match_wins_over_later_matches():
    # The two-A100 node in rack 7 matches entries 1 and 2; entry 1 comes first.
    resolved = resolve_policy(POLICIES, A100_NODE)
    assert (resolved["policy_index"], resolved["mig_layout"]) == (1, "disabled")
    moved = node_document(_gpu_info(["NVIDIA A100-SXM4-40GB"] * 2), {"rack": "2"}, "a100-a")
    assert resolve_policy(POLICIES, moved)["policy_index"] == 2


def test_by_gpu_count_and_by_driver_branch():
    # One A100 fails the count expression of entry 2 and falls through to the driver branch.
    resolved = resolve_policy(POLICIES, SINGLE_A100)
    assert (resolved["policy_index"], resolved["mig_layout"]) == (3, {"1g.5gb": 7})


def test_by_inventory_hostname():
    resolved = resolve_policy([{"match": "inventory_hostname == 'a100-b'", "mig_config": "all-balanced"}], SINGLE_A100)
    assert resolved["mig_config"] == "all-balanced"


def test_host_value_wins_over_a_matching_policy():
    resolved = resolve_policy(POLICIES, H100_NODE, host_layout={"7g.80gb": 1})
    assert (resolved["source"], resolved["mig_layout"], resolved["mig_config"]) == ("host", {"7g.80gb": 1}, None)
    assert resolved["description"] == "layout from the host variable mig_layout"
    assert resolve_policy(POLICIES, H100_NODE, host_config="all-disabled")["mig_config"] == "all-disabled"


def test_no_match_is_an_error_by_default_and_names_the_expressions():
    resolved = resolve_policy(POLICIES[:2], SINGLE_A100)
    assert resolved["source"] == "none"
    assert "none of the 2 mig_policies matches" in resolved["problem"]
    assert "[1] labels.rack == '7'" in resolved["problem"] and "mig_policy_default: skip" in resolved["problem"]


def test_no_match_with_skip_default_skips_the_node():
    resolved = resolve_policy(POLICIES[:2], SINGLE_A100, default="skip")
    assert (resolved["source"], resolved["problem"], resolved["mig_layout"], resolved["mig_config"]) == ("skip", None, None, None)


def test_bad_default_is_refused():
    assert "mig_policy_default" in resolve_policy(POLICIES, H100_NODE, default="ignore")["problem"]


def test_malformed_expression_is_refused_with_the_expression_and_reason():
    policies = [{"match": "gpus[?name == 'x'", "mig_config": "all-disabled"}]
    problems = policy_problems(policies)
    assert len(problems) == 1
    assert problems[0].startswith("mig_policies[0] (match: gpus[?name == 'x'): not a valid JMESPath expression:")
    # Refused even where the host's own value would win: the typo is in the fleet's variables.
    assert resolve_policy(policies, H100_NODE, host_config="all-disabled")["problem"] == problems[0]


def test_expression_failing_at_search_time_names_the_policy():
    resolved = resolve_policy([{"match": "length(driver_version_missing)", "mig_config": "x"}], H100_NODE)
    assert resolved["source"] == "none"
    assert resolved["problem"].startswith("mig_policies[0] (match: length(driver_version_missing)) cannot be evaluated")


@pytest.mark.parametrize("entry, expected", [
    ({"match": "gpus", "mig_config": "a", "mig_layout": "disabled"}, "got mig_config and mig_layout"),
    ({"match": "gpus"}, "got neither"),
    ({"mig_config": "a"}, "match must be a non-empty JMESPath expression"),
    ({"match": "gpus", "mig_config": ""}, "mig_config must be a config name"),
    ({"match": "gpus", "mig_layout": 7}, "mig_layout must be a mapping or 'disabled'"),
    ({"match": "gpus", "mig_config": "a", "config": "b"}, "unknown key(s) config"),
    ("gpus", "must be a mapping"),
])
def test_entry_shape_problems(entry, expected):
    problems = policy_problems([entry])
    assert problems and expected in problems[0]


def test_policies_must_be_a_list():
    assert "must be a list" in policy_problems({"match": "gpus"})[0]


def test_no_policies_and_no_host_value_is_the_old_error():
    assert "set mig_config" in resolve_policy([], H100_NODE)["problem"]


def test_fleet_problem_when_no_node_gets_a_layout_from_the_policies():
    skipped = resolve_policy(POLICIES[:1], SINGLE_A100, default="skip")
    pinned = resolve_policy(POLICIES[:1], A100_NODE, host_config="all-disabled")
    problem = fleet_problem(POLICIES[:1], [skipped, pinned])
    assert problem.startswith("mig_policies give no node a layout: none of [0] gpus[?contains(name, 'H100')] matches")
    # A play of pinned hosts only (say --limit to one) needs no policy; a matching node clears the refusal.
    assert fleet_problem(POLICIES[:1], [pinned]) is None
    assert fleet_problem(POLICIES[:1], [skipped, resolve_policy(POLICIES, H100_NODE)]) is None
    assert fleet_problem([], [skipped]) is None
