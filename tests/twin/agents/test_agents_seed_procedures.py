"""The seed document's three test procedures at the cluster level ("MIG Support in Kubernetes",
shared/seed/mig-support-in-kubernetes.txt), with ``gpufleet-sim up``, the real helm and kubectl, the
stand-in chart and the nodes' nvidia-smi stand-in. Labels are today's GFD's (see agents_seed.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gpufleet_twin import nvidia_chart

from agents_seed import MIXED_LABELS, NONE_LABELS, NONE_LABELS_MIG_ENABLED, SEED_GPU_UUID, SINGLE_LABELS, mig_line
from conftest import FAST_TIMING, Twin, pod_overrides, wait_for

pytestmark = pytest.mark.slow

# NVIDIA's chart when provided (tests/charts/README.md), else the stand-in.
CHART = nvidia_chart.device_plugin_chart()
NODE = "gpu-node-1"
NS = "nvidia-device-plugin"
PLUGIN_PODS = "app.kubernetes.io/name=nvidia-device-plugin"  # the device plugin's and GFD's pods, in both charts


def seed_fleet(uuid: str, bus: str, mig_mode: str, mig_devices: list[str] | None = None) -> dict:
    gpu = {"model": "A100-SXM4-40GB", "uuid": uuid, "pci_bus_id": bus, "mig_mode": mig_mode}
    if mig_devices:
        gpu["mig_devices"] = mig_devices
    return {
        "cluster": {"timing": FAST_TIMING},
        # Bare (no host GPU clients): the seed's "requires stopping all GPU clients first" is taken as done here;
        # tests/integration/test_seed_* stop and restart a default DGX-like node's clients with the product.
        "nodes": [{"name": NODE, "driver_version": "450.80.02", "machine": "NVIDIA DGX", "host_services": "none",
                   "gpus": [gpu]}],
    }


def without_timestamp(labels: dict[str, str]) -> dict[str, str]:
    stamp = labels.pop("nvidia.com/gfd.timestamp", "")
    assert re.fullmatch(r"[0-9]{10}", stamp), stamp
    return labels


def restart_plugins(twin: Twin) -> None:
    """The seed's "restart the plugin": delete the pods, their DaemonSets recreate them."""
    twin.kubectl("delete", "pod", "-n", NS, "-l", PLUGIN_PODS, "--wait=false")


def nvidia_daemonsets(twin: Twin) -> list[str]:
    """The DaemonSets running the device plugin or GFD (NVIDIA's chart also deploys NFD's worker and an MPS
    control daemon)."""
    def runs(ds: dict, command: str) -> bool:
        return any(c.get("command", [""])[0] == command for c in ds["spec"]["template"]["spec"]["containers"])

    return sorted(
        ds["metadata"]["name"] for ds in twin.get("daemonsets", "-n", NS)["items"]
        if runs(ds, "nvidia-device-plugin") or runs(ds, "gpu-feature-discovery")
    )


def run_pod(twin: Twin, name: str, args: list[str], resource: str = "nvidia.com/gpu") -> None:
    twin.kubectl("run", name, "--image=nvidia/cuda:11.0-base", "--restart=Never", f"--overrides={pod_overrides(args, resource)}")


def pod_log(twin: Twin, name: str) -> str:
    wait_for(lambda: twin.get("pod", name)["status"]["phase"] in ("Running", "Succeeded"), what=f"pod {name} to run")
    return twin.kubectl("logs", name).stdout


def test_none_strategy(twin_up):
    uuid = "GPU-15f0798d-c807-231d-6525-a7827081f0f1"
    twin = twin_up(seed_fleet(uuid, "00000000:36:00.0", "disabled"))
    # Device plugin and GFD as two releases, like the seed's two charts (the GFD one GFD-only).
    twin.helm("install", "nvdp", str(CHART), "-n", NS, "--create-namespace", "--set", "migStrategy=none", "--wait", "--timeout", "60s")
    twin.helm("install", "gfd", str(CHART), "-n", NS, "--set", "migStrategy=none",
              "--set", "devicePlugin.enabled=false", "--set", "gfd.enabled=true", "--wait", "--timeout", "60s")
    assert nvidia_daemonsets(twin) == ["gfd-nvidia-device-plugin-gpu-feature-discovery", "nvdp-nvidia-device-plugin"]

    assert twin.extended(NODE) == ({"nvidia.com/gpu": "1"},) * 2
    assert without_timestamp(twin.gfd_labels(NODE)) == NONE_LABELS
    run_pod(twin, "mig-none-example", ["nvidia-smi", "-L"])
    assert pod_log(twin, "mig-none-example") == f"GPU 0: A100-SXM4-40GB (UUID: {uuid})\n"
    twin.kubectl("delete", "pod", "mig-none-example")

    # "Enable MIG on the GPU (requires stopping all GPU clients first)": the running plugin holds the GPU.
    assert "In use by another client" in twin.nvidia_smi(NODE, "-mig", "1")
    twin.kubectl("label", "node", NODE, "nvidia.com/gpu.present-")  # the DaemonSets leave the node
    wait_for(lambda: twin.get("pods", "-n", NS, "-l", PLUGIN_PODS)["items"] == [], what="the plugin pods to go")
    twin.nvidia_smi(NODE, "-r")  # apply the pending mode now that nothing holds the GPU
    assert twin.nvidia_smi(NODE, "--query-gpu=mig.mode.current", "--format=csv,noheader") == "Enabled\n"
    # "Restart the kubelet and the plugins"
    twin.kubectl("label", "node", NODE, "nvidia.com/gpu.present=true")
    wait_for(lambda: without_timestamp(twin.gfd_labels(NODE)) == NONE_LABELS_MIG_ENABLED, what="GFD labels with MIG on")
    assert twin.extended(NODE) == ({"nvidia.com/gpu": "1"},) * 2
    run_pod(twin, "mig-none-example", ["nvidia-smi", "-L"])
    assert pod_log(twin, "mig-none-example") == f"GPU 0: A100-SXM4-40GB (UUID: {uuid})\n"


def test_single_strategy(twin_up):
    twin = twin_up(seed_fleet(SEED_GPU_UUID, "00000000:00:04.0", "enabled"))
    twin.helm("install", "nvdp", str(CHART), "-n", NS, "--create-namespace", "--set", "migStrategy=single", "--set", "gfd.enabled=true")

    # MIG on without devices is fatal under single: the plugin crash-loops, GFD writes -MIG-INVALID.
    def plugin_pod() -> dict:
        pods = twin.get("pods", "-n", NS)["items"]
        return next(p for p in pods if p["metadata"]["name"].startswith("nvdp-nvidia-device-plugin-") and "gpu-feature" not in p["metadata"]["name"])

    waiting = plugin_pod()["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CrashLoopBackOff"
    assert twin.extended(NODE) == ({}, {})
    assert twin.gfd_labels(NODE)["nvidia.com/gpu.product"] == "A100-SXM4-40GB-MIG-INVALID"
    assert "device 0 has no MIG devices configured" in twin.kubectl("logs", "-n", NS, plugin_pod()["metadata"]["name"]).stdout

    twin.nvidia_smi(NODE, "mig", "-cgi", "19,19,19,19,19,19,19", "-C")
    assert twin.nvidia_smi(NODE, "-L") == "".join(
        [f"GPU 0: A100-SXM4-40GB (UUID: {SEED_GPU_UUID})\n"] + [f"{mig_line('1g.5gb', gi, n)}\n" for n, gi in enumerate(range(7, 14))]
    )
    restart_plugins(twin)
    wait_for(lambda: twin.extended(NODE) == ({"nvidia.com/gpu": "7"},) * 2, what="7 nvidia.com/gpu")
    wait_for(lambda: without_timestamp(twin.gfd_labels(NODE)) == SINGLE_LABELS, what="single labels")
    assert plugin_pod()["status"]["containerStatuses"][0]["ready"] is True

    for number in range(1, 8):
        run_pod(twin, f"mig-single-example-{number}", ["bash", "-c", "nvidia-smi -L; sleep infinity"])
    logs = [pod_log(twin, f"mig-single-example-{number}") for number in range(1, 8)]
    gpu_line = f"GPU 0: A100-SXM4-40GB (UUID: {SEED_GPU_UUID})"
    assert all(log.splitlines()[0] == gpu_line and len(log.splitlines()) == 2 for log in logs)
    assert sorted(log.splitlines()[1] for log in logs) == sorted(mig_line("1g.5gb", gi) for gi in range(7, 14)), "distinct devices"
    assert len(twin.state(NODE)["processes"]) == 7

    # Evicting one (kubectl drain uses the Eviction API) ends its GPU process.
    twin.kubectl("drain", NODE, "--ignore-daemonsets", "--pod-selector=run=mig-single-example-1", "--force", "--timeout=30s")
    twin.kubectl("uncordon", NODE)
    assert sorted(p["name"] for p in twin.state(NODE)["processes"]) == [f"default/mig-single-example-{n}" for n in range(2, 8)]
    for number in range(2, 8):
        twin.kubectl("delete", "pod", f"mig-single-example-{number}")
    assert twin.state(NODE)["processes"] == []


def test_mixed_strategy(twin_up):
    twin = twin_up(seed_fleet(SEED_GPU_UUID, "00000000:00:04.0", "enabled", ["7g.40gb"]))
    twin.helm("install", "nvdp", str(CHART), "-n", NS, "--create-namespace", "--set", "migStrategy=mixed",
              "--set", "gfd.enabled=true", "--wait", "--timeout", "60s", major=3)
    assert twin.extended(NODE) == ({"nvidia.com/mig-7g.40gb": "1"},) * 2

    twin.nvidia_smi(NODE, "mig", "-dci")
    twin.nvidia_smi(NODE, "mig", "-dgi")
    assert twin.nvidia_smi(NODE, "-L") == f"GPU 0: A100-SXM4-40GB (UUID: {SEED_GPU_UUID})\n"
    twin.nvidia_smi(NODE, "mig", "-cgi", "9,14,19", "-C")
    assert twin.nvidia_smi(NODE, "-L") == (
        f"GPU 0: A100-SXM4-40GB (UUID: {SEED_GPU_UUID})\n"
        f"{mig_line('3g.20gb', 2, 0)}\n{mig_line('2g.10gb', 3, 1)}\n{mig_line('1g.5gb', 9, 2)}\n"
    )
    assert twin.extended(NODE) == ({"nvidia.com/mig-7g.40gb": "1"},) * 2, "not seen before the plugin restarts"
    restart_plugins(twin)
    seed = {"nvidia.com/mig-1g.5gb": "1", "nvidia.com/mig-2g.10gb": "1", "nvidia.com/mig-3g.20gb": "1"}
    # The vanished profile stays in capacity at 0 allocatable for kubelet's grace period (1.5 s here).
    assert twin.extended(NODE) == ({**seed, "nvidia.com/mig-7g.40gb": "1"}, {**seed, "nvidia.com/mig-7g.40gb": "0"})
    wait_for(lambda: twin.extended(NODE) == (seed, seed), what="the stale resource to go")
    wait_for(lambda: without_timestamp(twin.gfd_labels(NODE)) == MIXED_LABELS, what="mixed labels")

    for profile, gi in (("1g.5gb", 9), ("2g.10gb", 3), ("3g.20gb", 2)):
        name = f"mig-mixed-example-{profile.replace('.', '-')}"
        run_pod(twin, name, ["nvidia-smi", "-L"], resource=f"nvidia.com/mig-{profile}")
        assert pod_log(twin, name) == f"GPU 0: A100-SXM4-40GB (UUID: {SEED_GPU_UUID})\n{mig_line(profile, gi)}\n"
        assert twin.get("pod", name)["status"]["phase"] == "Succeeded"
