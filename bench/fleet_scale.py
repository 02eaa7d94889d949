"""What do the read-only pass, the fleet plan, the rollout and the converged re-run cost as the fleet grows?

Numbers measured in one run, on twin fleets generated here: N nodes of 8 GPUs each, cycling A100-SXM4-40GB,
H100-SXM5-80GB and A30-24GB nodes (driver 550.54.15), MIG disabled, every node asking for `all-balanced` under the
`mixed` strategy. The twin's agent tick and crash back-off are the fast ones of `make demo`; kubelet's status
update and GFD's sleep interval are at their real defaults (see TIMING).

Per size N it prints the wall time of:
  read     `ansible gpu_nodes -m gpufleet.mig.gpu_info` (one NVML read of every node, the yardstick)
  plan     `ansible-playbook site.yml --check --diff` (the fleet plan)
  rollout  `ansible-playbook site.yml -e mig_serial=<batch>`
  read'    the read-only pass again, on the configured fleet (MIG devices make it dearer)
  re-run   `ansible-playbook site.yml` on the converged fleet (must change nothing)
and the ratios the scale issue sets targets for, each beside its target: plan / read and re-run / read' (1.5 or
less from 32 nodes), the 1,000-node plan (goal: under 5 minutes on 2 cores), the per-node
cost of each and how it grows against the smallest size, and for the rollout its wall time over the twin clocks
it has to wait for: each node waits for its device plugin to restart, kubelet to report the new capacity and GFD to
relabel it. These are summed over the nodes; the nodes of one batch wait for them at the same time, so a rollout whose
time is its waits has a wall / waits of 1 / width (plus its own work), and it falls as batches widen. The wall time
over the waits of one node per batch (what the batches wait for one after another) is printed too.

Then, on fresh fleets of the --widths-at size, the rollout alone at each batch width in --widths (mig_serial and
mig_max_unavailable both set to it): the same ratios, which show whether widening the batches buys time. In these
runs every node also runs a workload pod (a single-replica Deployment pinned to it) whose eviction takes
--workload-grace seconds (its termination grace, held by the twin's pod_termination clock), and the drain evicts
every pod (drain_gpu_pods_only=false): the wait a drain has on a real node, which batches overlap.

Run: nice .venv/bin/python bench/fleet_scale.py [--nodes 8,32,128] [--serial 25%] [--widths 2,4,8 --widths-at 16]
     [--workload-grace 10] [--forks 10] [--skip-rollout]
Absolute times depend on the machine and on what else runs on it; the ratios are the result.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from gpufleet_twin.nvidia_chart import device_plugin_chart

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MODELS = ("A100-SXM4-40GB", "H100-SXM5-80GB", "A30-24GB")
# The fast agent tick and crash back-off of demo/fleet.yml, with kubelet's status update and GFD's sleep interval at
# their real defaults (10 s, 60 s): neither is a wait of the rollout (the twin's kubelet publishes capacity when the
# device plugin registers, GFD labels the node when its pod starts), and at demo speed (0.5 s, 1 s) 128 nodes of
# heartbeats and GFD passes kept the twin's cluster process at a full core with the fleet idle.
TIMING = {"heartbeat": 10, "gfd_sleep_interval": 60, "crash_backoff": 1, "crash_backoff_max": 2, "tick": 0.2}
# What one node must wait for on the twin, whatever the rollout does: the device plugin coming back, GFD's first pass
# in its new pod and the validation pods starting (an agent tick each). The fleets of the size runs run no workload
# pods, so they have no drain grace to wait for; the rollout-only runs add --workload-grace to each node's waits.
NODE_WAIT_S = 3 * TIMING["tick"]


def fleet_spec(size: int, pod_termination: float = 0.0) -> dict:
    nodes = []
    for index in range(size):
        model = MODELS[index % len(MODELS)]
        nodes.append({
            "name": f"gpu-{index:04d}",
            "driver_version": "550.54.15",
            "gpus": [{"model": model, "count": 8, "mig_mode": "disabled"}],
            "hostvars": {"mig_config": "all-balanced"},
        })
    return {"cluster": {"timing": dict(TIMING, pod_termination=pod_termination)}, "nodes": nodes}


def workload_manifest(size: int, grace: float) -> str:
    """One single-replica Deployment per node, pinned to it by hostname: the pod a drain must evict and wait for.

    Its termination grace is what the twin's pod_termination holds an evicted pod Terminating for; the replacement
    the ReplicaSet makes waits, Pending, until the node is uncordoned, as on a real cluster.
    """
    documents = []
    for index in range(size):
        name = f"gpu-{index:04d}"
        labels = {"app": "bench-workload", "node": name}
        documents.append({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"workload-{name}", "namespace": "default"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": {"kubernetes.io/hostname": name},
                        "terminationGracePeriodSeconds": int(grace),
                        "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "infinity"]}],
                    },
                },
            },
        })
    return yaml.safe_dump_all(documents, sort_keys=False)


def start_workloads(workdir: Path, env: dict, size: int, grace: float) -> None:
    manifest = workdir / "workloads.yml"
    manifest.write_text(workload_manifest(size, grace))
    kubectl = [str(REPO_ROOT / ".tools" / "bin" / "kubectl"), "--kubeconfig", str(workdir / "twin" / "kubeconfig")]
    subprocess.run(kubectl + ["apply", "-f", str(manifest)], env=env, capture_output=True, check=True, timeout=300)
    deadline = time.monotonic() + 300
    while True:
        listed = subprocess.run(kubectl + ["get", "pods", "-n", "default", "-l", "app=bench-workload", "-o", "json"],
                                env=env, capture_output=True, check=True, text=True, timeout=60)
        running = sum((pod.get("status") or {}).get("phase") == "Running" for pod in json.loads(listed.stdout)["items"])
        if running == size:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"only {running} of {size} workload pods run after 300 s")
        time.sleep(1)


def environment(workdir: Path, forks: int) -> dict:
    env = dict(os.environ)
    # As on a host that caches bytecode (Python's default): with PYTHONDONTWRITEBYTECODE set and no cache yet, every
    # process compiles the twin and the collection's controller-side code again (about 20% more CPU for a read).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
        ANSIBLE_FORKS=str(forks),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-tmp"),
        PATH=f"{REPO_ROOT / '.tools' / 'bin'}:{VENV_BIN}:{env.get('PATH', '')}",
    )
    return env


def timed(argv: list[str], env: dict, log: Path) -> tuple[float, str]:
    started = time.monotonic()
    completed = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    log.write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} ... failed (rc {completed.returncode}); see {log}")
    return elapsed, completed.stdout


def plan_lines(stdout: str) -> int:
    """How many nodes the plan printed a line for (the entries of the fleet plan, one per host)."""
    section = stdout.split("Show the fleet plan]", 1)[-1].split("TASK [", 1)[0]
    return len(re.findall(r"^ +\"?gpu-\d+\"?: ", section, flags=re.MULTILINE))


def recap_changed(stdout: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", stdout))


def measure(size: int, serial: str, forks: int, skip_rollout: bool, keep: bool, only_rollout: bool = False,
            workload_grace: float = 0.0) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"fleet-scale-{size}-"))
    env = environment(workdir, forks)
    (workdir / "fleet.yml").write_text(yaml.safe_dump(fleet_spec(size, workload_grace), sort_keys=False))
    sim = str(VENV_BIN / "gpufleet-sim")
    row: dict = {"nodes": size}
    try:
        row["up"], _ = timed([sim, "up", "--fleet", str(workdir / "fleet.yml"), "--workdir", str(workdir / "twin")], env,
                             workdir / "up.log")
        inventory = str(workdir / "twin" / "inventory.yml")
        read = [str(VENV_BIN / "ansible"), "gpu_nodes", "-i", inventory, "-m", "gpufleet.mig.gpu_info", "-o"]
        # The chart make demo uses: NVIDIA's when provided, else the stand-in in tests/charts.
        chart = {"device_plugin_chart_ref": str(device_plugin_chart(REPO_ROOT)), "device_plugin_chart_repo_url": ""}
        site = [str(VENV_BIN / "ansible-playbook"), "-i", inventory, "site.yml", "-e", "mig_strategy=mixed",
                "-e", f"mig_report_dir={workdir / 'report'}", "-e", json.dumps(chart)]
        if only_rollout:
            width = batch_size(serial, size)
            pacing = ["-e", f"mig_serial={serial}", "-e", f"mig_max_unavailable={width}"]
            if workload_grace:
                start_workloads(workdir, env, size, workload_grace)
                pacing += ["-e", "drain_gpu_pods_only=false"]  # the workload pods request no GPU
            row["rollout"], _ = timed(site + pacing, env, workdir / "rollout.log")
            row["width"], row["batches"], row["grace"] = width, -(-size // width), workload_grace
            return row
        row["read"], _ = timed(read, env, workdir / "read.log")
        row["plan"], plan_out = timed(site + ["--check", "--diff"], env, workdir / "plan.log")
        row["plan_lines"] = plan_lines(plan_out)
        if not skip_rollout:
            width = batch_size(serial, size)
            pacing = ["-e", f"mig_serial={serial}", "-e", f"mig_max_unavailable={width}"]
            row["rollout"], _ = timed(site + pacing, env, workdir / "rollout.log")
            row["batches"] = -(-size // width)
            row["read_configured"], _ = timed(read, env, workdir / "read-configured.log")
            row["rerun"], rerun_out = timed(site + pacing, env, workdir / "rerun.log")
            row["rerun_changed"] = recap_changed(rerun_out)
    except SystemExit:
        # What this size measured before the failing step is still a result.
        print(f"  measured before the failure: {row}", flush=True)
        raise
    finally:
        subprocess.run([sim, "down", "--workdir", str(workdir / "twin")], env=env, capture_output=True, check=False)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"  kept {workdir}", flush=True)
    return row


def batch_size(serial: str, size: int) -> int:
    if serial.endswith("%"):
        return max(1, int(size * float(serial[:-1]) / 100))
    return max(1, int(serial))


# The scale issue's targets, printed beside what was measured.
PLAN_TARGET = 1.5  # plan / read, at 32 nodes and above
RERUN_TARGET = 1.5  # converged re-run / read of the configured fleet
PLAN_GOAL_1000_S = 300.0  # the 1,000-node plan, on 2 cores
TARGETS_FROM = 32


def verdict(ratio: float, target: float, nodes: int) -> str:
    if nodes < TARGETS_FROM:
        return "(target from 32 nodes)"
    return "meets" if ratio <= target else "MISSES"


def report(rows: list[dict]) -> None:
    print()
    print(f"{'nodes':>6} {'up':>7} {'read':>7} {'plan':>7} {'plan/read':>9} {'rollout':>8} {'batches':>7} "
          f"{'wall/waits':>10} {'read_cfg':>8} {'re-run':>7} {'re-run/read_cfg':>15} {'changed':>7}")
    for row in rows:
        print(f"{row['nodes']:>6} {row['up']:>7.1f} {row['read']:>7.1f} {row['plan']:>7.1f} {row['plan'] / row['read']:>9.2f} "
              + (f"{row['rollout']:>8.1f} {row['batches']:>7} {row['rollout'] / (row['nodes'] * NODE_WAIT_S):>10.2f} "
                 f"{row['read_configured']:>8.1f} "
                 f"{row['rerun']:>7.1f} {row['rerun'] / row['read_configured']:>15.2f} {row['rerun_changed']:>7}"
                 if "rollout" in row else ""))
    print()
    print("against the targets")
    for row in rows:
        nodes = row["nodes"]
        plan_ratio = row["plan"] / row["read"]
        print(f"  {nodes:>5} nodes  plan / read {plan_ratio:.2f} (target <= {PLAN_TARGET}) "
              f"{verdict(plan_ratio, PLAN_TARGET, nodes)}")
        if "rerun" in row:
            rerun_ratio = row["rerun"] / row["read_configured"]
            print(f"  {nodes:>5} nodes  re-run / read of the configured fleet {rerun_ratio:.2f} (target <= {RERUN_TARGET}) "
                  f"{verdict(rerun_ratio, RERUN_TARGET, nodes)}; changed={row['rerun_changed']} (target 0) "
                  f"{'meets' if row['rerun_changed'] == 0 else 'MISSES'}")
        if nodes >= 1000:
            print(f"  {nodes:>5} nodes  plan {row['plan'] / 60:.1f} min (goal < {PLAN_GOAL_1000_S / 60:.0f} min on 2 cores) "
                  f"{'meets' if row['plan'] < PLAN_GOAL_1000_S else 'MISSES'}")
    print()
    print("per node (s) and growth against the smallest fleet (per-node cost ratio; 1.0 = linear)")
    for key in ("read", "plan", "rollout", "rerun"):
        measured = [row for row in rows if key in row]  # a size run with --skip-rollout has no rollout
        if not measured:
            continue
        per_node = [row[key] / row["nodes"] for row in measured]
        growth = " ".join(f"{value / per_node[0]:.2f}" for value in per_node)
        sizes = ",".join(str(row["nodes"]) for row in measured)
        print(f"  {key:<8} " + " ".join(f"{value:.3f}" for value in per_node) + f"   growth {growth}   ({sizes} nodes)")
    print(json.dumps(rows))


def report_widths(rows: list[dict]) -> None:
    node_wait = NODE_WAIT_S + rows[0]["grace"]
    print()
    print(f"rollout of {rows[0]['nodes']} nodes by batch width (waits: {node_wait:.1f} s of twin clocks per node: "
          f"{rows[0]['grace']:.0f} s for the evicted workload pod, {NODE_WAIT_S:.1f} s of agent ticks)")
    print(f"{'width':>6} {'batches':>7} {'rollout':>8} {'waits':>6} {'wall/waits':>10} {'batch waits':>11} "
          f"{'wall/batch waits':>16} {'per batch':>9}")
    for row in rows:
        waits = row["nodes"] * node_wait
        batch_waits = row["batches"] * node_wait
        print(f"{row['width']:>6} {row['batches']:>7} {row['rollout']:>8.1f} {waits:>6.1f} {row['rollout'] / waits:>10.2f} "
              f"{batch_waits:>11.1f} {row['rollout'] / batch_waits:>16.1f} {row['rollout'] / row['batches']:>9.1f}")
    print(json.dumps(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="8,32,128", help="comma-separated fleet sizes")
    parser.add_argument("--serial", default="25%", help="mig_serial of the rollout (nodes or a percentage)")
    parser.add_argument("--forks", type=int, default=10, help="ansible forks (ansible.cfg has 10)")
    parser.add_argument("--skip-rollout", action="store_true", help="measure only the read and the plan")
    parser.add_argument("--widths", default="", help="comma-separated batch widths for the rollout-only runs")
    parser.add_argument("--widths-at", type=int, default=16, help="fleet size of the rollout-only runs")
    parser.add_argument("--workload-grace", type=float, default=10.0,
                        help="in the rollout-only runs, every node runs a workload pod that takes this many seconds to "
                             "go when the drain evicts it (0: no workload pods)")
    parser.add_argument("--keep", action="store_true", help="keep the twin work directories")
    args = parser.parse_args()
    rows = []
    for size in (int(n) for n in args.nodes.split(",") if n):
        print(f"fleet of {size} nodes ...", flush=True)
        rows.append(measure(size, args.serial, args.forks, args.skip_rollout, args.keep))
        print(f"  {rows[-1]}", flush=True)
    if rows:
        report(rows)
    width_rows = []
    for width in (int(n) for n in args.widths.split(",") if n):
        print(f"rollout of {args.widths_at} nodes, batches of {width} ...", flush=True)
        width_rows.append(measure(args.widths_at, str(width), args.forks, False, args.keep, only_rollout=True,
                                  workload_grace=args.workload_grace))
        print(f"  {width_rows[-1]}", flush=True)
    if width_rows:
        report_widths(width_rows)


if __name__ == "__main__":
    main()
