"""How often does a MIG layout get created, by creation strategy? Ratios measured in one run.

For every multiset of GPU instance profiles that fits the GPU (the planner decides; its brute-force check
lives in tests/unit), the layout is created on a fresh simulated GPU three ways:

- as written: the profiles in the order a user typed them (smallest first here), automatic placement,
  like `nvidia-smi mig -cgi 19,19,14,9`;
- largest first: automatic placement, profiles sorted largest first (mig-parted's first ordering);
- planned: the gpufleet.mig planner's explicit placements (`nvmlDeviceCreateGpuInstanceWithPlacement`).

Prints, per GPU model, the share of layouts each strategy creates and the mean wall time per layout.
Then, for reshapes from one such layout to another (a fixed random sample of pairs), the GPU instances
the planner destroys against mig-parted's clear-everything-then-create: work that keeps running.
Run: .venv/bin/python bench/placement_orders.py [--models A100-SXM4-40GB H100-SXM5-80GB]
"""
from __future__ import annotations

import argparse
import itertools
import random
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))
import conftest  # noqa: E402,F401  (links the checkout as ansible_collections.gpufleet.mig)

from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu as gpu  # noqa: E402
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import LayoutError, NvmlCallError  # noqa: E402
from ansible_collections.gpufleet.mig.plugins.module_utils._planner import plan_gpu_layout  # noqa: E402
from gpufleet_twin import nvml  # noqa: E402


def fresh_gpu(state_path: Path, model: str) -> None:
    nvml.create_node_state(state_path, {"name": "bench", "driver_version": "550.54.15",
                                        "gpus": [{"model": model, "count": 1, "mig_mode": "enabled"}]})


def create_automatic(profile_ids: list[int]) -> bool:
    try:
        for profile_id in profile_ids:
            gpu.create_gpu_instance(0, profile_id)
    except NvmlCallError:
        return False
    return True


def create_planned(catalog, names: tuple[str, ...]) -> bool:
    plan = plan_gpu_layout(catalog, (), list(names))
    for instance in plan.create:
        gpu.create_gpu_instance(0, instance.profile_id, instance.placement)
    return True


def layouts(catalog):
    """Every multiset of full-GPU MIG devices that fits, as profile names (the planner is the judge)."""
    profiles = [p for p in catalog.profiles]
    ranges = [range(p.instance_count + 1) for p in profiles]
    for counts in itertools.product(*ranges):
        names = tuple(p.name for p, count in zip(profiles, counts) for _ in range(count))
        if not names:
            continue
        try:
            plan_gpu_layout(catalog, (), list(names))
        except LayoutError:
            continue
        yield names


def existing_from_plan(plan) -> list[dict]:
    """The GPU instances a plan leaves, in the facts shape the planner reads back."""
    return [{"id": index, "profile_id": gi.profile_id, "profile_name": gi.name,
             "placement": {"start": gi.placement[0], "size": gi.placement[1]},
             "compute_instances": [{"id": 0, "profile_name": gi.name}]}
            for index, gi in enumerate(plan.create)]


def measure_reshapes(catalog, all_layouts: list[tuple[str, ...]], pairs: int) -> tuple[int, int, int]:
    """(reshapes, instances the planner destroys, instances mig-parted destroys) over a random sample."""
    rng = random.Random(20261128)
    planner_destroys = parted_destroys = 0
    for _ in range(pairs):
        before, after = rng.sample(all_layouts, 2)
        current = existing_from_plan(plan_gpu_layout(catalog, (), list(before)))
        planner_destroys += len(plan_gpu_layout(catalog, current, list(after)).destroy)
        parted_destroys += len(before)
    return pairs, planner_destroys, parted_destroys


def measure(model: str, workdir: Path, pairs: int) -> dict:
    state = workdir / (model + ".json")
    fresh_gpu(state, model)
    with nvml.simulated(state), gpu.NvmlSession():
        catalog = gpu.read_catalog(0)
        by_name = {p.name: p for p in catalog.profiles}
        results = {"as written": [0, 0.0], "largest first": [0, 0.0], "planned": [0, 0.0]}
        total = 0
        for names in layouts(catalog):
            total += 1
            smallest_first = sorted(names, key=lambda n: (by_name[n].memory_slices, n))
            largest_first = list(reversed(smallest_first))
            for label, attempt in (
                ("as written", lambda: create_automatic([by_name[n].profile_id for n in smallest_first])),
                ("largest first", lambda: create_automatic([by_name[n].profile_id for n in largest_first])),
                ("planned", lambda: create_planned(catalog, names)),
            ):
                fresh_gpu(state, model)
                started = time.perf_counter()
                created = attempt()
                results[label][1] += time.perf_counter() - started
                results[label][0] += int(created)
        reshapes = measure_reshapes(catalog, list(layouts(catalog)), pairs) if total > 1 else (0, 0, 0)
    return {"layouts": total, "results": results, "reshapes": reshapes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["A100-SXM4-40GB", "H100-SXM5-80GB", "A30-24GB"])
    parser.add_argument("--pairs", type=int, default=500, help="reshapes sampled per model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for model in args.models:
            measured = measure(model, Path(workdir), args.pairs)
            total = measured["layouts"]
            print("%s: %d layouts that fit" % (model, total))
            for label, (created, seconds) in measured["results"].items():
                print("  %-14s created %4d/%d = %.3f   %.2f ms per layout"
                      % (label, created, total, created / total, 1000 * seconds / total))
            reshapes, planner_destroys, parted_destroys = measured["reshapes"]
            if reshapes:
                print("  reshapes: %d; GPU instances destroyed, planner / clear-and-recreate = %d / %d = %.3f"
                      % (reshapes, planner_destroys, parted_destroys, planner_destroys / parted_destroys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
