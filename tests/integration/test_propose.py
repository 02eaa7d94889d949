"""playbooks/propose.yml end to end on the fleet twin: pending pods that ask for MIG devices no node has, the
proposal, site.yml with it, then the pods Running. Outcomes are read from the simulator and the API server."""
from __future__ import annotations

import json
import os
import subprocess
import time

import kubernetes
import pytest
import yaml

from test_site import CALLBACK_DIR, CHART, FAST_CLUSTER, REPO_ROOT, TOOLS_BIN, VENV_BIN, a100_node, core_api, devices

pytestmark = pytest.mark.slow


def run_playbook(fleet, playbook, *extra_argv, **extra_vars):
    run_dir = fleet.workdir / "runs"
    run_dir.mkdir(exist_ok=True)
    results_file = run_dir / ("%s-%d.jsonl" % (playbook.stem, len(list(run_dir.glob("*.jsonl")))))
    variables = {"mig_strategy": "mixed", "device_plugin_chart_ref": str(CHART), "device_plugin_chart_repo_url": "",
                 "mig_report_dir": str(fleet.workdir / "report")}
    variables.update(extra_vars)
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(fleet.inventory), *extra_argv, str(playbook), "-e", json.dumps(variables)]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_CALLBACK_PLUGINS=str(CALLBACK_DIR),
               ANSIBLE_CALLBACKS_ENABLED="gpufleet_results", ANSIBLE_NOCOLOR="1", GPUFLEET_RESULTS_FILE=str(results_file),
               ANSIBLE_LOCAL_TEMP=str(run_dir / "tmp"), PATH="%s:%s:%s" % (TOOLS_BIN, VENV_BIN, os.environ.get("PATH", "")))
    completed = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    results = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    return completed.returncode, completed.stdout + completed.stderr, results


def gpu_pod(name, resource, count=1, selector=None):
    return kubernetes.client.V1Pod(
        metadata=kubernetes.client.V1ObjectMeta(name=name, namespace="default"),
        spec=kubernetes.client.V1PodSpec(node_selector=selector, containers=[kubernetes.client.V1Container(
            name="work", image="cuda", command=["sleep", "infinity"],
            resources=kubernetes.client.V1ResourceRequirements(limits={resource: str(count)}))]))


def wait_phase(api, names, phase, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        phases = dict((name, api.read_namespaced_pod(name, "default").status.phase) for name in names)
        if all(value == phase for value in phases.values()) or time.monotonic() > deadline:
            return phases
        time.sleep(0.2)


def test_pending_pods_run_after_the_proposed_rollout(sim_fleet, tmp_path):
    zoned = a100_node("gpu-b")
    zoned["labels"] = {"example.com/zone": "b"}
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [a100_node("gpu-a"), zoned]})
    api = core_api(fleet)
    api.create_namespaced_pod("default", gpu_pod("train", "nvidia.com/mig-3g.20gb"))
    api.create_namespaced_pod("default", gpu_pod("infer", "nvidia.com/mig-1g.5gb", 2))
    api.create_namespaced_pod("default", gpu_pod("zoned", "nvidia.com/mig-1g.5gb", 1, {"example.com/zone": "b"}))
    api.create_namespaced_pod("default", gpu_pod("huge", "nvidia.com/mig-7g.80gb"))
    names = ["train", "infer", "zoned"]
    assert set(wait_phase(api, names, "Pending", timeout=2).values()) == {"Pending"}
    proposal_file = tmp_path / "proposal.yml"

    returncode, output, results = run_playbook(fleet, REPO_ROOT / "playbooks" / "propose.yml",
                                               mig_proposal_file=str(proposal_file))

    assert returncode == 0, output
    proposal = [r for r in results if r["action"] == "gpufleet.mig.mig_demand_info"][0]["result"]
    assert proposal["changed"] is False
    assert proposal["totals"] == {"pending_pods": 4, "served": 3, "served_by_current_layout": 0, "still_pending": 1,
                                  "changed_nodes": 1, "evictions": 0}
    # One node serves all three: the zoned pod decides which.
    assert proposal["host_vars"] == {"gpu-b": {"mig_layout": {"3g.20gb": 1, "1g.5gb": 3}}}
    assert proposal["pending"] == [{"pod": "default/huge", "reason": "asks for nvidia.com/mig-7g.80gb, which no GPU of the known nodes offers"}]
    assert yaml.safe_load(proposal_file.read_text()) == {"all": {"hosts": proposal["host_vars"]}}
    assert devices(fleet.status("gpu-b")) == [] and set(wait_phase(api, names, "Pending", timeout=0).values()) == {"Pending"}

    returncode, output, _ = run_playbook(fleet, REPO_ROOT / "site.yml", "-i", str(proposal_file), "--limit", proposal["limit"])

    assert returncode == 0, output
    assert sorted(devices(fleet.status("gpu-b"))) == ["1g.5gb"] * 3 + ["3g.20gb"]
    assert devices(fleet.status("gpu-a")) == []
    assert wait_phase(api, names, "Running") == {"train": "Running", "infer": "Running", "zoned": "Running"}
    assert set(pod.spec.node_name for pod in (api.read_namespaced_pod(n, "default") for n in names)) == {"gpu-b"}
    assert api.read_namespaced_pod("huge", "default").status.phase == "Pending"
