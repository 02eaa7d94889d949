"""The rollout's cost is linear in nodes for a fixed batch width: site.yml on 8 and on 32 twin nodes, counting the
collection's module calls per node (from the results callback), not wall time."""
from __future__ import annotations

from collections import Counter

import pytest

from fleet_harness import BARE_NODES
from test_site import FAST_CLUSTER, a100_node, devices, run_site

pytestmark = pytest.mark.slow

# The 8-node fleet is one batch, the 32-node fleet four.
BATCH_WIDTH = 8


def _module_calls_per_host(results):
    """The collection's module calls (NVML or API work) that ran, by the host they ran for; a call made once for a
    batch or for the play (run_once, delegated to the control host) counts for the first host of it."""
    calls = Counter()
    for result in results:
        if result["action"].startswith("gpufleet.mig.") and result["status"] != "skipped":
            calls[result["host"]] += 1
    return calls


def _rollout(sim_fleet, size):
    names = ["gpu-%03d" % index for index in range(size)]
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "node_defaults": BARE_NODES,
                       "nodes": [a100_node(name, mig_config="all-balanced") for name in names]})
    returncode, output, results = run_site(fleet, mig_serial=BATCH_WIDTH, mig_max_unavailable=BATCH_WIDTH)
    assert returncode == 0, output[-3000:]
    for name in names[:: size // 4]:
        assert devices(fleet.status(name)) == ["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"]
    calls = _module_calls_per_host(results)
    return names, calls


def test_the_rollout_makes_the_same_module_calls_per_node_at_8_and_at_32_nodes(sim_fleet):
    per_size = {size: _rollout(sim_fleet, size) for size in (8, 32)}

    per_node = {}
    for size, (names, calls) in per_size.items():
        first_of_batch = names[BATCH_WIDTH::BATCH_WIDTH]
        others = [name for name in names[1:] if name not in first_of_batch]
        # Every node that is not the first of its batch makes the same calls, whatever the fleet's size ...
        assert len({calls[name] for name in others}) == 1, calls
        per_node[size] = calls[others[0]]
        # ... and the first node of each later batch adds the same per-batch calls (lease renewal).
        assert len({calls[name] for name in first_of_batch}) <= 1, calls
    assert per_node[32] == per_node[8] > 0

    names_8, calls_8 = per_size[8]
    names_32, calls_32 = per_size[32]
    # The first node of the play carries the play's own calls (lease, Helm release, fleet read, report): the same.
    assert calls_32[names_32[0]] == calls_8[names_8[0]]
    per_batch = calls_32[names_32[BATCH_WIDTH]] - per_node[32]
    assert per_batch > 0
    # So the 32-node rollout makes the 8-node one's calls plus 24 nodes' and 3 more batches': linear in nodes.
    assert sum(calls_32.values()) - sum(calls_8.values()) == 24 * per_node[8] + 3 * per_batch
