"""The rollout's cost is linear in nodes for a fixed batch width: site.yml on 8 and on 32 twin nodes, counting the
collection's module calls per node (from the results callback), not wall time."""
from __future__ import annotations

from collections import Counter

import pytest

from fleet_harness import BARE_NODES
from test_site import FAST_CLUSTER, a100_node, devices, run_site

pytestmark = pytest.mark.slow

BATCH_WIDTH = 4


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

    shapes = {}
    for size, (names, calls) in per_size.items():
        first_of_batch = names[BATCH_WIDTH::BATCH_WIDTH]
        others = [name for name in names[1:] if name not in first_of_batch]
        # Every node that is not the first of its batch makes the same calls, whatever the fleet's size ...
        assert len({calls[name] for name in others}) == 1, calls
        # ... and the first node of each batch adds the same per-batch calls (lease renewal, budget).
        assert len({calls[name] for name in first_of_batch}) == 1, calls
        shapes[size] = (calls[others[0]], calls[first_of_batch[0]], calls[names[0]])
        assert sum(calls.values()) == calls[names[0]] + sum(calls[name] for name in names[1:])

    per_node, per_batch_node, first_node = shapes[8]
    assert shapes[32] == shapes[8]
    # So the calls of the 32-node rollout are those of the 8-node one plus 24 nodes in 6 more batches: linear.
    total = {size: sum(calls.values()) for size, (_, calls) in per_size.items()}
    assert total[32] - total[8] == 24 * per_node + 6 * (per_batch_node - per_node)
    assert per_batch_node > per_node and per_node > 0
