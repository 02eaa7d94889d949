"""What does a layout proposal from pod demand cost, and how good is it? Numbers measured in one run.

Fleets are generated with a fixed seed: nodes of 8 GPUs (A100-SXM4-40GB and H100-SXM5-80GB catalogs, the test
fixtures), each GPU MIG-disabled, all-1g or balanced; about a third of each node's devices busy with running pods;
two pending pods per node asking for 1-2 MIG devices of a random profile, a fifth of them pinned to a zone.

1. Quality: on small random fleets (1-3 one-GPU nodes, 1-5 pending pods) the greedy alone against the exhaustive
   optimum: the share it matches exactly and the share of the optimum's served pods it serves.
2. Cost: the proposal (greedy, as it runs for fleets beyond the exhaustive search) on doubling fleet sizes until one
   takes more than --limit CPU seconds; prints per size the CPU and wall time, the planner checks and what it serves,
   then the largest fleet proposed within the limit. The proposal runs on one core; CPU time is what it costs on an
   idle machine, wall time also counts whatever else the machine runs.
Run: nice .venv/bin/python bench/demand_proposal.py [--limit 60] [--quality 200]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))
import conftest  # noqa: E402,F401  (links the checkout as ansible_collections.gpufleet.mig)

sys.path.append(str(REPO_ROOT / "tests" / "unit" / "plugins" / "module_utils"))

from ansible_collections.gpufleet.mig.plugins.module_utils._demand import (  # noqa: E402
    GpuNode,
    GpuPod,
    GpuSlot,
    layout_resources,
    propose,
    render,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import canonical_devices, resource_name  # noqa: E402
from mig_catalog_fixtures import catalog_from_fixture  # noqa: E402

LAYOUTS = {
    "a100": [(False, ()), (True, ("1g.5gb",) * 7), (True, ("3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"))],
    "h100": [(False, ()), (True, ("1g.10gb",) * 7), (True, ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"))],
}
PROFILES = {
    "a100": ["1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"],
    "h100": ["1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"],
}


def fleet(size, rng, catalogs):
    nodes, pods = [], []
    for i in range(size):
        family = rng.choice(["a100", "h100"])
        catalog = catalogs[family]
        gpus = []
        for index in range(8):
            enabled, devices = rng.choice(LAYOUTS[family])
            gpus.append(GpuSlot(index=index, model=catalog.model, mig_capable=True, mig_enabled=enabled,
                                devices=canonical_devices(devices) if enabled else (), catalog=catalog))
        allocatable = layout_resources([gpu.state for gpu in gpus], "mixed")
        name = "gpu-%04d" % i
        nodes.append(GpuNode(name=name, host=name, labels={"zone": rng.choice("abcd")}, allocatable=dict(allocatable),
                             gpus=gpus))
        busy = list(allocatable.elements())
        rng.shuffle(busy)
        for j, resource in enumerate(busy[: len(busy) // 3]):
            pods.append(GpuPod(key="run/%s-%d" % (name, j), requests={resource: 1}, node_name=name))
        for j in range(2):
            pick = rng.choice(["a100", "h100"])
            selector = {"zone": rng.choice("abcd")} if rng.random() < 0.2 else {}
            pods.append(GpuPod(key="want/%s-%d" % (name, j), requests={resource_name(rng.choice(PROFILES[pick])): rng.choice([1, 2])},
                               node_selector=selector, created="%06d" % len(pods)))
    return nodes, pods


def cost(limit, catalogs):
    print("2. cost of a proposal (greedy), one process on %d core(s) available" % (os.cpu_count() or 1))
    print("%8s %8s %10s %10s %12s %9s %9s %9s" % ("nodes", "pending", "cpu s", "wall s", "plan checks", "served", "changed",
                                                   "evicts"))
    reached = 0
    size = 8
    while True:
        nodes, pods = fleet(size, random.Random(size), catalogs)
        started, started_cpu = time.perf_counter(), time.process_time()
        result = propose(nodes, pods, "mixed", exhaustive_budget=0)
        wall, elapsed = time.perf_counter() - started, time.process_time() - started_cpu
        totals = render(result)["totals"]
        print("%8d %8d %10.2f %10.2f %12d %9d %9d %9d" % (size, totals["pending_pods"], elapsed, wall, result["placeable_calls"],
                                                         totals["served"], totals["changed_nodes"], totals["evictions"]))
        if elapsed > limit:
            break
        reached = size
        size *= 2
    print("largest fleet proposed within %d CPU seconds: %d nodes (%d GPUs); the next size took %.0f" % (
        limit, reached, reached * 8, elapsed))


def quality(count, catalogs):
    import test_demand  # the exhaustive optimum of the unit tests

    matched = 0
    served = optimum_served = 0
    for seed in range(count):
        nodes, pods = test_demand.random_fleet(random.Random(seed), catalogs["a100"])
        totals = render(propose(nodes, pods, "mixed", exhaustive_budget=0))["totals"]
        optimum = test_demand.brute_force(nodes, pods)
        matched += (totals["served"], totals["evictions"], totals["changed_nodes"]) == optimum
        served += totals["served"]
        optimum_served += optimum[0]
    print("1. greedy against the exhaustive optimum on %d small fleets: matches it exactly in %.1f%%, serves %.1f%% of "
          "the pods the optimum serves" % (count, 100.0 * matched / count, 100.0 * served / max(optimum_served, 1)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=60.0, help="seconds one proposal may take (default 60)")
    parser.add_argument("--quality", type=int, default=200, help="small fleets to compare with the optimum (default 200)")
    args = parser.parse_args()
    catalogs = {"a100": catalog_from_fixture("a100-sxm4-40gb-r580"), "h100": catalog_from_fixture("h100-sxm5-80gb")}
    quality(args.quality, catalogs)
    cost(args.limit, catalogs)


if __name__ == "__main__":
    main()
