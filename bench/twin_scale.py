"""How does the fleet twin scale in nodes? Ratios measured in one run (issue 10 item 5).

For each fleet size N (default 8, 32, 128, 1000; 8 GPUs per node, A100/H100/A30 nodes in turn), this
brings a twin up with `gpufleet-sim up` (the CLI users and the integration tests run) and measures:

- `up`: wall time of `gpufleet-sim up` (node state files, the emulated API server, one agent per node,
  every Node registered and answering);
- idle: CPU seconds per wall second the twin's server process (API server and all node agents) spends
  while nothing happens, read from /proc/<pid>/stat (utime + stime) over `--idle-seconds`;
- with the NVIDIA device plugin and GFD DaemonSets (shaped like the chart's, created through the API):
  the time until every node's plugin and GFD pods run and every GPU node advertises `nvidia.com/gpu`,
  then idle CPU again (GFD relabels each node every `gfd_sleep_interval`);
- `down`: wall time of `gpufleet-sim down`.

Per-node costs (up per node, idle CPU per node) are printed with their ratio to the smallest fleet's,
so growth in N reads directly: 1.0 is linear in N, N2/N1 would be quadratic.

Clocks: `--clocks real` (default) are kubelet's, the device plugin's and GFD's own (heartbeat 10 s,
GFD every 60 s; the idle cost of a twin left running); `--clocks fast` are the integration tests'
(`tests/integration/test_site.py` FAST_CLUSTER: heartbeat 0.5 s, GFD every 1 s).

Run: .venv/bin/python bench/twin_scale.py [--nodes 8,32,128,1000] [--idle-seconds 10] [--clocks real|fast]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MODELS = ("A100-SXM4-40GB", "H100-SXM5-80GB", "A30-24GB")
DRIVER = "550.54.15"  # at or above every model's minimum MIG driver (twin README)
CLOCKS = {
    "real": {},  # AgentTiming defaults
    "fast": {"heartbeat": 0.5, "gfd_sleep_interval": 1, "crash_backoff": 1, "crash_backoff_max": 2, "tick": 0.2},
}
NAMESPACE = "nvidia-device-plugin"


def fleet_spec(nodes: int, clocks: str) -> dict[str, Any]:
    return {
        "cluster": {"timing": CLOCKS[clocks]},
        "nodes": [
            {"name": f"gpu-{index:04d}", "driver_version": DRIVER,
             "gpus": [{"model": MODELS[index % len(MODELS)], "count": 8, "mig_mode": "disabled"}]}
            for index in range(nodes)
        ],
    }


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid: int, seconds: float) -> float:
    """CPU seconds per wall second over ``seconds``."""
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


def daemonset(name: str, command: str) -> dict[str, Any]:
    """A DaemonSet shaped like NVIDIA's chart renders it (selector, GPU-node affinity, toleration, MIG_STRATEGY)."""
    labels = {"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/instance": name}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}
                    ]}}},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{"name": command, "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.0", "command": [command],
                                    "env": [{"name": "MIG_STRATEGY", "value": "single"}]}],
                },
            },
        },
    }


def deploy_plugin_and_gfd(kubeconfig: Path, nodes: int, timeout: float) -> float:
    """Create the two DaemonSets; seconds until every pod runs and every node advertises nvidia.com/gpu."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    start = time.monotonic()
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    # The raw answer: the emulated server returns a new DaemonSet's status without its zero counters, which the
    # client's model rejects (kube-apiserver writes them).
    apps.create_namespaced_daemon_set(NAMESPACE, daemonset("nvdp", "nvidia-device-plugin"), _preload_content=False)
    apps.create_namespaced_daemon_set(NAMESPACE, daemonset("gfd", "gpu-feature-discovery"), _preload_content=False)
    while time.monotonic() - start < timeout:
        pods = core.list_namespaced_pod(NAMESPACE).items
        running = sum(1 for pod in pods if pod.status and pod.status.phase == "Running")
        advertised = sum(1 for node in core.list_node().items if (node.status.allocatable or {}).get("nvidia.com/gpu", "0") != "0")
        if running == 2 * nodes and advertised == nodes:
            return time.monotonic() - start
        time.sleep(0.2)
    raise SystemExit(f"the device plugin and GFD did not come up on {nodes} nodes within {timeout:.0f} s")


def measure(nodes: int, clocks: str, idle_seconds: float, with_daemons: bool, root: Path) -> dict[str, float]:
    fleet_file = root / f"fleet-{nodes}.yml"
    workdir = root / f"twin-{nodes}"
    fleet_file.write_text(yaml.safe_dump(fleet_spec(nodes, clocks), sort_keys=False))
    sim = str(VENV_BIN / "gpufleet-sim")
    start = time.monotonic()
    subprocess.run([sim, "up", "--fleet", str(fleet_file), "--workdir", str(workdir)], check=True, capture_output=True, text=True)
    result = {"nodes": nodes, "up_s": time.monotonic() - start}
    try:
        pid = json.loads((workdir / "twin.json").read_text())["components"]["cluster"]["pid"]
        time.sleep(1.0)  # let the first heartbeats after registration pass
        result["idle_cpu"] = idle_cpu(pid, idle_seconds)
        if with_daemons:
            result["daemons_s"] = deploy_plugin_and_gfd(workdir / "kubeconfig", nodes, timeout=max(120.0, nodes * 0.5))
            time.sleep(1.0)
            result["daemons_idle_cpu"] = idle_cpu(pid, idle_seconds)
        result["server_cpu_s"] = cpu_seconds(pid)
    finally:
        start = time.monotonic()
        subprocess.run([sim, "down", "--workdir", str(workdir)], check=False, capture_output=True, text=True)
        result["down_s"] = time.monotonic() - start
    return result


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{os.cpu_count()} x {model}; Python {platform.python_version()}; load average at start {load}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="8,32,128,1000", help="comma-separated fleet sizes (default 8,32,128,1000)")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--clocks", choices=sorted(CLOCKS), default="real")
    parser.add_argument("--no-daemons", action="store_true", help="skip the device plugin / GFD phase")
    args = parser.parse_args(argv)
    sizes = [int(part) for part in args.nodes.split(",") if part.strip()]
    print(f"machine: {machine()}")
    print(f"clocks: {args.clocks} {CLOCKS[args.clocks] or '(AgentTiming defaults)'}; idle window {args.idle_seconds:.0f} s; "
          f"8 GPUs per node ({', '.join(MODELS)} in turn)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="twin-scale-") as tmp:
        for size in sizes:
            rows.append(measure(size, args.clocks, args.idle_seconds, not args.no_daemons, Path(tmp)))
            row = rows[-1]
            print(f"  measured {size} nodes: up {row['up_s']:.1f} s, idle {row['idle_cpu']:.3f} CPU s/s", flush=True)
    base = rows[0]
    header = f"{'nodes':>6} {'up s':>7} {'up ms/node':>10} {'x':>5} {'idle CPU s/s':>12} {'idle ms/s/node':>14} {'x':>5}"
    if not args.no_daemons:
        header += f" {'plugin+GFD up s':>15} {'idle with them CPU s/s':>22} {'ms/s/node':>9} {'x':>5}"
    header += f" {'down s':>6}"
    print(header)
    for row in rows:
        n, n0 = row["nodes"], base["nodes"]
        up_per_node, up_base = row["up_s"] / n, base["up_s"] / n0
        idle_per_node, idle_base = row["idle_cpu"] / n, base["idle_cpu"] / n0
        line = (f"{n:>6} {row['up_s']:>7.1f} {1000 * up_per_node:>10.1f} {up_per_node / up_base:>5.2f} "
                f"{row['idle_cpu']:>12.3f} {1000 * idle_per_node:>14.3f} {idle_per_node / idle_base if idle_base else float('nan'):>5.2f}")
        if not args.no_daemons:
            daemon_per_node, daemon_base = row["daemons_idle_cpu"] / n, base["daemons_idle_cpu"] / n0
            line += (f" {row['daemons_s']:>15.1f} {row['daemons_idle_cpu']:>22.3f} {1000 * daemon_per_node:>9.3f}"
                     f" {daemon_per_node / daemon_base if daemon_base else float('nan'):>5.2f}")
        line += f" {row['down_s']:>6.1f}"
        print(line)
    print("x: per-node cost over the first fleet's (1.0 = linear in nodes). Targets (issue 10 item 5): up of 1,000 nodes "
          "< 60 s; an idle 1,000-node twin costs little CPU.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
