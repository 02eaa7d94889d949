"""site.yml end to end on the fleet twin: the real playbook, roles and modules against simulated GPU nodes and the
emulated cluster. Outcomes are read back from the simulator and the API server, not from the playbook's output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from gpufleet_twin import nvidia_chart

kubernetes = pytest.importorskip("kubernetes", reason="the kubernetes client is not installed")
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CALLBACK_DIR = Path(__file__).resolve().parent / "callback_plugins"
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
CHART = nvidia_chart.device_plugin_chart(REPO_ROOT)  # NVIDIA's chart when provided, else the stand-in
# The agents' clocks in seconds instead of kubelet's and GFD's real minutes.
FAST_CLUSTER = {"timing": {"heartbeat": 0.5, "gfd_sleep_interval": 1, "crash_backoff": 1, "crash_backoff_max": 2, "tick": 0.2}}
GPU_POD_RESOURCE = "nvidia.com/mig-1g.5gb"

if not (TOOLS_BIN / "helm").exists():
    pytest.skip("helm is not installed in .tools/bin (make tools)", allow_module_level=True)


def a100_node(name, **hostvars):
    return {"name": name, "driver_version": "550.54.15", "gpus": [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "disabled"}],
            "hostvars": hostvars}


def run_site(fleet, *, check=False, diff=False, kill_after_task=None, stop_after_task=None, limit=None, **extra_vars):
    """ansible-playbook site.yml on the fleet; returns (returncode, output, task results as dicts).

    ``kill_after_task``: the controller dies (SIGKILL) right after that task. ``stop_after_task``: ``(task, pid)``, that
    process (the API server) is stopped (SIGSTOP) right after that task; the caller continues it.

    Safe to call from several threads at once (each run records its results in its own file).
    """
    run_dir = fleet.workdir / "runs"
    run_dir.mkdir(exist_ok=True)
    results_file = run_dir / ("site-%s.jsonl" % uuid.uuid4().hex)
    variables = {"mig_strategy": "mixed", "device_plugin_chart_ref": str(CHART), "device_plugin_chart_repo_url": "",
                 "mig_report_dir": str(fleet.workdir / "report")}
    variables.update(extra_vars)
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(fleet.inventory), str(REPO_ROOT / "site.yml"), "-e", json.dumps(variables)]
    argv += ["--check"] if check else []
    argv += ["--diff"] if diff else []
    argv += ["--limit", limit] if limit else []
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_CALLBACK_PLUGINS=str(CALLBACK_DIR),
               ANSIBLE_CALLBACKS_ENABLED="gpufleet_results", ANSIBLE_NOCOLOR="1", GPUFLEET_RESULTS_FILE=str(results_file),
               ANSIBLE_LOCAL_TEMP=str(run_dir / "tmp"), PATH="%s:%s:%s" % (TOOLS_BIN, VENV_BIN, os.environ.get("PATH", "")))
    if kill_after_task:
        env["GPUFLEET_KILL_AFTER_TASK"] = kill_after_task
    if stop_after_task:
        env["GPUFLEET_STOP_AFTER_TASK"], env["GPUFLEET_STOP_PID"] = stop_after_task[0], str(stop_after_task[1])
    completed = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    results = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    return completed.returncode, completed.stdout + completed.stderr, results


def named(results, task):
    """Results of the task called ``task`` (role tasks are recorded as ``<role> : <name>``)."""
    return [r for r in results if r["task"] == task or r["task"].endswith(" : " + task)]


def core_api(fleet):
    return kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(str(fleet.workdir / "kubeconfig")))


def coordination_api(fleet):
    return kubernetes.client.CoordinationV1Api(kubernetes.config.new_client_from_config(str(fleet.workdir / "kubeconfig")))


def node_view(api, name):
    node = api.read_node(name)
    labels = {key: value for key, value in (node.metadata.labels or {}).items() if key.startswith("gpufleet.mig/")}
    return bool(node.spec.unschedulable), labels


def devices(status):
    return [ci["profile_name"] for gpu in status["gpus"] for gi in gpu.get("gpu_instances", []) for ci in gi["compute_instances"]]


def wait_running(api, namespace, name, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = api.read_namespaced_pod(name, namespace)
        if pod.status.phase == "Running":
            return pod
        time.sleep(0.2)
    raise AssertionError("pod %s/%s is not Running: %s" % (namespace, name, pod.status.phase))


def test_a_bad_layout_on_one_node_stops_the_rollout_in_preflight_before_any_node_is_touched(sim_fleet, tmp_path):
    config_file = tmp_path / "mig-config.yaml"
    config_file.write_text("version: v1\nmig-configs:\n  halves:\n    - devices: all\n      mig-enabled: true\n"
                           "      mig-devices: {3g.20gb: 2}\n")
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [
        a100_node("gpu-good", mig_config="halves", mig_config_file=str(config_file)),
        a100_node("gpu-bad", mig_layout={"3g.20gb": 3}),
        dict(a100_node("gpu-operator", mig_config="all-1g.5gb"), labels={"nvidia.com/mig.config": "all-disabled"}),
    ]})

    returncode, output, results = run_site(fleet)

    assert returncode != 0, output
    # One verdict for the play names every refused node, and only those.
    [verdict] = named(results, "Refuse the rollout when a node has a problem")
    assert verdict["status"] == "failed"
    refusals = verdict["result"]["msg"].split(" || ")
    assert len(refusals) == 2 and "gpu-good" not in verdict["result"]["msg"]
    assert refusals[0].startswith(
        "Preflight refused gpu-bad: The MIG layout cannot be rolled out on this node: GPU 0 (NVIDIA A100-SXM4-40GB, "
        "00000000:07:00.0): MIG devices 3 x 3g.20gb do not fit on NVIDIA A100-SXM4-40GB")
    # The GPU Operator's mig-manager would fight the rollout over the node's MIG config.
    assert refusals[1].startswith(
        "Preflight refused gpu-operator: the GPU Operator's mig-manager drives this node (label nvidia.com/mig.config=all-disabled)")
    good_plan = named(results, "Show the fleet plan")[0]["result"]["msg"]["gpu-good"]
    assert good_plan == ("reconfigure: cordon and drain the node, change the GPUs | "
                         "GPU 0 NVIDIA A100-SXM4-40GB: MIG disabled -> enabled; devices none -> 2 x 3g.20gb | evicts no pod | "
                         "layout from the host variable mig_config")
    assert not [r for r in results if r["action"] in ("gpufleet.mig.helm_release", "gpufleet.mig.mig_mode", "gpufleet.mig.mig_layout")]
    api = core_api(fleet)
    for name in ("gpu-good", "gpu-bad", "gpu-operator"):
        assert node_view(api, name) == (False, {})
        status = fleet.status(name)
        assert status["gpus"][0]["mig"]["current"] == "disabled" and devices(status) == []
    assert api.list_namespaced_pod("nvidia-device-plugin").items == []
    # The refused run still leaves a report that says why and that nothing changed.
    report = json.loads((fleet.workdir / "report" / "latest" / "fleet-report.json").read_text())
    assert report["refused"].startswith("Preflight refused gpu-bad:")
    assert {node["host"]: node["result"] for node in report["nodes"]} == {"gpu-good": "not reached", "gpu-bad": "refused",
                                                                         "gpu-operator": "refused"}
    assert "Refused in preflight; nothing was changed on any node." in (fleet.workdir / "report" / "latest" / "fleet-report.md").read_text()


def test_check_mode_prints_the_fleet_plan_and_changes_nothing(sim_fleet):
    # gpu-watched carries the GPU Operator's mig-manager label and lets it pass: a warning, not a refusal.
    watched = dict(a100_node("gpu-watched", mig_config="all-1g.5gb", preflight_gpu_operator_mig_manager="ignore"),
                   labels={"nvidia.com/mig.config": "all-disabled"})
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [a100_node("gpu-1", mig_config="all-balanced"), watched]})

    returncode, output, results = run_site(fleet, check=True, diff=True)

    assert returncode == 0, output
    plans = named(results, "Show the fleet plan")[0]["result"]["msg"]
    assert plans["gpu-1"] == ("reconfigure: cordon and drain the node, change the GPUs | "
                              "GPU 0 NVIDIA A100-SXM4-40GB: MIG disabled -> enabled; devices none -> 3g.20gb, 2g.10gb, 2 x 1g.5gb | "
                              "evicts no pod | layout from the host variable mig_config")
    operator_warning = "the GPU Operator's mig-manager drives this node (label nvidia.com/mig.config=all-disabled)"
    assert plans["gpu-watched"].startswith("reconfigure: ") and (" | warning: " + operator_warning) in plans["gpu-watched"]
    # Shown as the node's task warning too, and kept as plain text in its record.
    judged = {r["host"]: r["result"] for r in named(results, "Read and judge the node, and plan its MIG layout")}
    assert judged["gpu-1"]["warnings_found"] == [] and judged["gpu-watched"]["warnings_found"][0].startswith(operator_warning)
    assert operator_warning in output
    # The plan comes from preflight alone: no node phase step ran, not even in check mode.
    assert not [r for r in results if r["action"] in ("gpufleet.mig.k8s_node", "gpufleet.mig.mig_mode", "gpufleet.mig.mig_layout",
                                                      "gpufleet.mig.host_services", "gpufleet.mig.mig_node_validate")]
    release = [r for r in results if r["action"] == "gpufleet.mig.helm_release"][0]["result"]
    assert release["changed"] is True and '"migStrategy": "mixed"' in json.dumps(release["diff"])
    status = fleet.status("gpu-1")
    assert status["gpus"][0]["mig"] == {"current": "disabled", "pending": "disabled", "supported": True}
    assert devices(status) == []
    api = core_api(fleet)
    assert node_view(api, "gpu-1") == (False, {}) and node_view(api, "gpu-watched") == (False, {})
    assert api.list_namespaced_pod("nvidia-device-plugin").items == []
    assert not (fleet.workdir / "report").exists()


def running_services(status):
    return [s["name"] for s in status["host_services"] if s["active"]]


# What a default fleet node with one A100-SXM4 runs (twin/gpufleet_twin/nvml/host.py, default_services): fewer than
# 8 SXM GPUs is no NVSwitch board, so no fabric manager.
DEFAULT_A100_HOLDERS = ["nvidia-persistenced", "nv_peer_mem", "nvidia-dcgm", "dcgm-exporter", "nvsm"]


def test_a_converged_fleet_rerun_evicts_nothing_and_changes_nothing(sim_fleet):
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [a100_node("gpu-1", mig_config="all-1g.5gb")]})
    # A default fleet node is DGX-like: its host GPU clients hold the GPUs, so the mode change and the GPU instances
    # need them stopped, and the rollout must start exactly those again.
    assert running_services(fleet.status("gpu-1")) == DEFAULT_A100_HOLDERS
    returncode, output, results = run_site(fleet)
    assert returncode == 0, output
    status = fleet.status("gpu-1")
    assert devices(status) == ["1g.5gb"] * 7 and status["boot_count"] == 0
    stopped = [name for r in named(results, "Stop the host services that hold the GPUs") if r["status"] != "skipped"
               for name in r["result"]["stopped"]]
    assert sorted(stopped) == sorted(name + ".service" for name in DEFAULT_A100_HOLDERS)
    assert running_services(status) == DEFAULT_A100_HOLDERS
    api = core_api(fleet)
    assert node_view(api, "gpu-1") == (False, {"gpufleet.mig/state": "success", "gpufleet.mig/config": "all-1g.5gb",
                                               "gpufleet.mig/strategy": "mixed"})
    workload = kubernetes.client.V1Pod(
        metadata=kubernetes.client.V1ObjectMeta(name="train-0", namespace="default"),
        spec=kubernetes.client.V1PodSpec(node_name="gpu-1", containers=[kubernetes.client.V1Container(
            name="train", image="cuda", command=["sleep", "infinity"],
            resources=kubernetes.client.V1ResourceRequirements(limits={GPU_POD_RESOURCE: "1"}))]))
    uid = api.create_namespaced_pod("default", workload).metadata.uid
    wait_running(api, "default", "train-0")

    returncode, output, results = run_site(fleet)

    assert returncode == 0, output
    assert [r["task"] for r in results if r["result"].get("changed")] == []
    assert "changed=0" in output.split("PLAY RECAP", 1)[1]
    # The only cluster call is preflight's read of the node; no drain, no GPU change ran.
    ran = [(r["action"], r["task"].split(" : ")[-1]) for r in results if r["status"] != "skipped"
           and r["action"] in ("gpufleet.mig.k8s_node", "gpufleet.mig.k8s_node_info", "gpufleet.mig.mig_mode",
                               "gpufleet.mig.mig_layout")]
    assert ran == [("gpufleet.mig.k8s_node_info", "Read the GPU nodes of the play in the cluster")]
    # The node phase skipped the converged node whole: no batch, no lease renewal, no host-services step.
    assert not [r for r in results if r["action"] in ("gpufleet.mig.host_services", "gpufleet.mig.mig_node_validate")
                or r["task"].endswith("Renew the rollout lease for this batch")]
    # Nothing to change, so no rollout lease is taken or given back, and the release is compared once and left alone.
    assert not [r for r in results if r["action"] == "gpufleet.mig.k8s_lease" and r["status"] != "skipped"]
    compared = [r for r in results if r["action"] == "gpufleet.mig.helm_release" and r["status"] != "skipped"]
    assert [r["result"]["changed"] for r in compared] == [False]
    pod = api.read_namespaced_pod("train-0", "default")
    assert (pod.metadata.uid, pod.status.phase) == (uid, "Running")
    assert node_view(api, "gpu-1")[0] is False
    report = json.loads((fleet.workdir / "report" / "latest" / "fleet-report.json").read_text())
    assert [(node["host"], node["result"], node["evicted_pods"]) for node in report["nodes"]] == [("gpu-1", "unchanged", [])]
    assert "| gpu-1 | unchanged | GPU 0 NVIDIA A100-SXM4-40GB: MIG enabled; 7 x 1g.5gb |" in (fleet.workdir / "report" / "latest" / "fleet-report.md").read_text()

    # Only the release differs: the run takes the rollout lease, upgrades the release and gives the lease back.
    returncode, output, results = run_site(fleet, device_plugin_values={"podAnnotations": {"example.com/rehearsal": "1"}})

    assert returncode == 0, output
    leases = [(r["task"].split(" : ")[-1], r["result"].get("action")) for r in results
              if r["action"] == "gpufleet.mig.k8s_lease" and r["status"] != "skipped"]
    assert [action for _task, action in leases] in (["create", "release"], ["acquire", "release"])
    assert [r["result"]["changed"] for r in results if r["action"] == "gpufleet.mig.helm_release" and r["status"] != "skipped"] == [True, True]
    assert coordination_api(fleet).read_namespaced_lease("gpufleet-mig-rollout", "kube-system").spec.holder_identity is None
    pod = api.read_namespaced_pod("train-0", "default")
    assert (pod.metadata.uid, pod.status.phase) == (uid, "Running")


def test_a_percentage_mig_serial_batches_only_the_nodes_with_work(sim_fleet):
    converged = {"name": "gpu-done", "driver_version": "550.54.15",
                 "gpus": [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled", "mig_devices": ["1g.5gb"] * 7}],
                 "labels": {"gpufleet.mig/state": "success", "gpufleet.mig/config": "all-1g.5gb", "gpufleet.mig/strategy": "mixed"},
                 "hostvars": {"mig_config": "all-1g.5gb"}}
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [
        converged, a100_node("gpu-1", mig_config="all-1g.5gb"), a100_node("gpu-2", mig_config="all-1g.5gb")]})

    returncode, output, results = run_site(fleet, mig_serial="50%")

    assert returncode == 0, output
    # 50% of the two nodes with work: two batches of one. The converged node is in none of them.
    node_phase = output.split("PLAY [Roll MIG out node by node]", 1)[1].split("PLAY [Report the rollout", 1)[0]
    assert node_phase.count("rollout_lease : Renew the rollout lease for this batch]") == 2
    assert "[gpu-done]" not in node_phase and "[gpu-1]" in node_phase and "[gpu-2]" in node_phase
    for name in ("gpu-1", "gpu-2", "gpu-done"):
        assert devices(fleet.status(name)) == ["1g.5gb"] * 7
        assert node_view(core_api(fleet), name) == (False, {"gpufleet.mig/state": "success", "gpufleet.mig/config": "all-1g.5gb",
                                                            "gpufleet.mig/strategy": "mixed"})
    report = json.loads((fleet.workdir / "report" / "latest" / "fleet-report.json").read_text())
    assert {node["host"]: node["result"] for node in report["nodes"]} == {"gpu-done": "unchanged", "gpu-1": "success",
                                                                         "gpu-2": "success"}
