"""Fleet policies in site.yml on the twin: preflight resolves each node's layout from the host value or the first
matching JMESPath policy, says where it came from, and refuses bad policies before any node is touched."""
from __future__ import annotations

import pytest

from test_site import FAST_CLUSTER, a100_node, core_api, devices, named, node_view, run_site

pytestmark = pytest.mark.slow

POLICIES = [
    {"match": "labels.\"example.com/rack\" == '7'", "mig_layout": "disabled"},
    {"match": "gpus[?contains(name, 'A100')] | length(@) > `1`", "mig_layout": {"3g.20gb": 2}},
    {"match": "gpus[?contains(name, 'A100-SXM4-40GB')]", "mig_config": "all-1g.5gb"},
]


def _plans(results):
    return named(results, "Show the fleet plan")[0]["result"]["msg"]


def test_check_diff_shows_per_node_the_policy_that_matched_and_the_host_value_that_won(sim_fleet):
    rack7 = a100_node("gpu-rack7")
    rack7["labels"] = {"example.com/rack": "7"}
    two_gpus = a100_node("gpu-two")
    two_gpus["gpus"][0]["count"] = 2
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [
        rack7, two_gpus, a100_node("gpu-one"), a100_node("gpu-pinned", mig_config="all-balanced")]})

    returncode, output, results = run_site(fleet, check=True, diff=True, mig_policies=POLICIES)

    assert returncode == 0, output
    plans = _plans(results)
    # One line per node: what changes, the pods a drain would evict, where the layout came from.
    # MIG is already off there: nothing to drain, so no eviction part.
    assert plans["gpu-rack7"].startswith("MIG layout already matches; validate and record the config, no drain | GPU 0 ")
    assert plans["gpu-rack7"].endswith(" | layout from mig_policies[0] (match: labels.\"example.com/rack\" == '7')")
    assert plans["gpu-two"].endswith(": MIG disabled -> enabled; devices none -> 2 x 3g.20gb | evicts no pod | "
                                      "layout from mig_policies[1] (match: gpus[?contains(name, 'A100')] | length(@) > `1`)")
    assert plans["gpu-two"].startswith("reconfigure: cordon and drain the node, change the GPUs | GPUs 0-1 NVIDIA A100")
    assert plans["gpu-one"].endswith("devices none -> 7 x 1g.5gb | evicts no pod | "
                                      "layout from mig_policies[2] (match: gpus[?contains(name, 'A100-SXM4-40GB')])")
    assert plans["gpu-pinned"].endswith("devices none -> 3g.20gb, 2g.10gb, 2 x 1g.5gb | evicts no pod | "
                                         "layout from the host variable mig_config")
    for name in ("gpu-rack7", "gpu-two", "gpu-one", "gpu-pinned"):
        assert devices(fleet.status(name)) == []


def test_bad_policies_are_refused_in_preflight_and_nothing_is_touched(sim_fleet):
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [a100_node("gpu-1"), a100_node("gpu-2", mig_config="all-1g.5gb")]})

    returncode, output, results = run_site(fleet, mig_policies=[{"match": "gpus[?name == 'x'", "mig_config": "all-1g.5gb"}])

    assert returncode != 0, output
    [verdict] = named(results, "Refuse the rollout when a node has a problem")
    refusals = verdict["result"]["msg"].split(" || ")
    # The list gives no node a layout (said once for the play), and every node is refused for the bad expression.
    assert [refusal.split(":")[0] for refusal in refusals] == [
        "Preflight refused the rollout", "Preflight refused gpu-1", "Preflight refused gpu-2"], refusals
    assert "mig_policies[0] (match: gpus[?name == 'x'): not a valid JMESPath expression" in refusals[1]
    assert not [r for r in results if r["action"] in ("gpufleet.mig.helm_release", "gpufleet.mig.mig_mode", "gpufleet.mig.mig_layout")]
    api = core_api(fleet)
    for name in ("gpu-1", "gpu-2"):
        assert node_view(api, name) == (False, {}) and devices(fleet.status(name)) == []


def test_policies_matching_no_node_are_refused_unless_skip_leaves_the_nodes_alone(sim_fleet):
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [a100_node("gpu-1")]})
    h100_only = [{"match": "gpus[?contains(name, 'H100')]", "mig_config": "all-1g.10gb"}]

    returncode, output, results = run_site(fleet, check=True, mig_policies=h100_only)
    assert returncode != 0, output
    message = [r for r in named(results, "Refuse the rollout when a node has a problem") if r["status"] == "failed"][0]["result"]["msg"]
    assert "none of the 1 mig_policies matches this node" in message
    assert "mig_policies give no node a layout: none of [0] gpus[?contains(name, 'H100')] matches" in message

    returncode, output, results = run_site(fleet, check=True, mig_policies=h100_only, mig_policy_default="skip")
    assert returncode != 0, output  # still no node gets a layout: the list is refused
    message = [r for r in named(results, "Refuse the rollout when a node has a problem") if r["status"] == "failed"][0]["result"]["msg"]
    assert "none of the 1 mig_policies matches" not in message and "mig_policies give no node a layout" in message


def test_skip_default_leaves_an_unmatched_node_alone(sim_fleet):
    rack7 = a100_node("gpu-rack7")
    rack7["labels"] = {"example.com/rack": "7"}
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [rack7, a100_node("gpu-other")]})

    returncode, output, results = run_site(fleet, check=True, mig_policy_default="skip",
                                           mig_policies=[{"match": "labels.\"example.com/rack\" == '7'", "mig_config": "all-1g.5gb"}])

    assert returncode == 0, output
    plans = _plans(results)
    assert plans["gpu-other"] == ("skipped: no fleet policy matches and the host sets no layout | "
                                  "no policy of 1 matches and the host sets no layout: skipped (mig_policy_default: skip)")
    assert "devices none -> 7 x 1g.5gb | evicts no pod" in plans["gpu-rack7"]
    assert not [r for r in named(results, "Cordon the node, label it pending and drain it") if r["host"] == "gpu-other"
                and r["status"] != "skipped"]
