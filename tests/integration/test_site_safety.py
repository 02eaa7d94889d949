"""site.yml's safety rules end to end on the fleet twin: whose cordon it is, and one rollout at a time per cluster.
Outcomes are read back from the simulator and the API server."""
from __future__ import annotations

import datetime
import json
import os
import signal
import threading
import time

import pytest
from test_site import FAST_CLUSTER, a100_node, core_api, devices, named, node_view, run_site

kubernetes = pytest.importorskip("kubernetes", reason="the kubernetes client is not installed")
pytestmark = pytest.mark.slow

CORDONED_BY = "gpufleet.mig/cordoned-by"


def coordination_api(fleet):
    return kubernetes.client.CoordinationV1Api(kubernetes.config.new_client_from_config(str(fleet.workdir / "kubeconfig")))


def put_lease(fleet, holder, renewed, duration=3600):
    stamp = renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    coordination_api(fleet).create_namespaced_lease("kube-system", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "gpufleet-mig-rollout"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, "acquireTime": stamp, "renewTime": stamp}})


def test_an_administrators_cordon_is_kept_and_reported(sim_fleet):
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [a100_node("gpu-1", mig_config="all-1g.5gb")]})
    api = core_api(fleet)
    api.patch_node("gpu-1", {"spec": {"unschedulable": True}})  # kubectl cordon gpu-1

    returncode, output, _ = run_site(fleet)

    assert returncode == 0, output
    assert devices(fleet.status("gpu-1")) == ["1g.5gb"] * 7
    unschedulable, labels = node_view(api, "gpu-1")
    assert unschedulable is True
    assert labels == {"gpufleet.mig/state": "success", "gpufleet.mig/config": "all-1g.5gb", "gpufleet.mig/strategy": "mixed"}
    report = json.loads((fleet.workdir / "report" / "latest" / "fleet-report.json").read_text())
    assert [(node["host"], node["result"], node["cordon"]) for node in report["nodes"]] == [("gpu-1", "success", "kept")]
    assert "stays cordoned: it was cordoned before the rollout" in (fleet.workdir / "report" / "latest" / "fleet-report.md").read_text()


def test_a_live_rollout_lease_refuses_a_second_run_and_an_expired_one_is_taken_over(sim_fleet):
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [a100_node("gpu-1", mig_config="all-1g.5gb")]})
    now = datetime.datetime.now(datetime.timezone.utc)
    put_lease(fleet, "rollout-of-someone-else", now)

    returncode, output, results = run_site(fleet)

    assert returncode != 0, output
    refused = [r for r in named(results, "Hold the lease for this rollout (another live rollout is waited for, then refused)")
               if r["status"] == "failed"]
    assert refused and refused[0]["result"]["holder"] == "rollout-of-someone-else"
    assert "is held by rollout-of-someone-else since %s" % now.strftime("%Y-%m-%dT%H:%M") in refused[0]["result"]["msg"]
    assert not [r for r in results if r["action"] in ("gpufleet.mig.helm_release", "gpufleet.mig.mig_mode", "gpufleet.mig.mig_layout")]
    assert node_view(core_api(fleet), "gpu-1") == (False, {})
    assert devices(fleet.status("gpu-1")) == []

    # The holder died: its lease ran out an hour ago. The next run takes it over, says from whom, and converges.
    coordination_api(fleet).delete_namespaced_lease("gpufleet-mig-rollout", "kube-system")
    put_lease(fleet, "rollout-that-died", now - datetime.timedelta(hours=2))

    returncode, output, results = run_site(fleet)

    assert returncode == 0, output
    takeover = named(results, "Report a lease taken over from a rollout that stopped renewing it")
    assert takeover and "Took the rollout lease over from rollout-that-died" in takeover[0]["result"]["msg"]
    assert devices(fleet.status("gpu-1")) == ["1g.5gb"] * 7
    lease = coordination_api(fleet).read_namespaced_lease("gpufleet-mig-rollout", "kube-system")
    assert lease.spec.holder_identity is None  # released at the end of the run
    assert node_view(core_api(fleet), "gpu-1")[0] is False


# Each boundary leaves the node in a different interrupted state: cordoned and pending; device plugin paused; MIG mode
# changed without instances; instances at the target with the plugin still paused; plugin back but not validated;
# validated but still cordoned.
NODE_PHASE_BOUNDARIES = [
    "Cordon the node and evict its pods",
    "Pause the device plugin and GPU feature discovery on the node",
    "Enable MIG mode where the plan enables it",
    "Create and destroy MIG devices as planned",
    "Let the device plugin and GPU feature discovery back onto the node",
    "Wait until the node advertises its MIG devices and GFD labels",
]


@pytest.mark.parametrize("boundary", NODE_PHASE_BOUNDARIES)
def test_a_run_killed_at_a_node_phase_boundary_converges_on_a_plain_rerun(sim_fleet, boundary):
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [a100_node("gpu-1", mig_config="all-1g.5gb")]})

    returncode, output, results = run_site(fleet, kill_after_task=boundary)
    assert returncode == -9, output
    assert named(results, boundary), "the run never reached %r" % boundary
    assert node_view(core_api(fleet), "gpu-1")[0] is True  # left cordoned by the dead run

    # The dead run's lease names a process of this host that is gone: the re-run takes it over at once.
    returncode, output, results = run_site(fleet)

    assert returncode == 0, output
    assert devices(fleet.status("gpu-1")) == ["1g.5gb"] * 7
    assert node_view(core_api(fleet), "gpu-1") == (False, {
        "gpufleet.mig/state": "success", "gpufleet.mig/config": "all-1g.5gb", "gpufleet.mig/strategy": "mixed"})
    assert named(results, "Report a lease taken over from a rollout that stopped renewing it")


def test_a_bad_strategy_is_refused_naming_the_playbook_variable(sim_fleet):
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [a100_node("gpu-1", mig_config="all-1g.5gb")]})

    returncode, output, results = run_site(fleet, mig_strategy="bogus")

    assert returncode != 0, output
    refused = [r for r in named(results, "Check the rollout's variables") if r["status"] == "failed"]
    message = refused[0]["result"]["msg"]
    assert "mig_strategy must be none, single or mixed (got bogus)" in message
    assert "preflight_mig_strategy" not in output and "argument_spec" not in output
    assert node_view(core_api(fleet), "gpu-1") == (False, {})
    assert json.loads((fleet.workdir / "report" / "latest" / "fleet-report.json").read_text())["refused"].startswith("Invalid rollout variables")


def test_job_slices_share_one_budget_and_every_node_converges(sim_fleet):
    """Two ansible-playbook processes, disjoint --limit slices of one rollout, two nodes per batch each: four nodes
    want a cordon at once, the budget allows two. A watch on the API's nodes sees every cordon."""
    nodes = ["gpu-%d" % index for index in range(1, 5)]
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [a100_node(name, mig_config="all-1g.5gb") for name in nodes]})
    api = core_api(fleet)
    peak = [0]
    stop = threading.Event()

    def watch_cordons():
        cordoned = set()
        watcher = kubernetes.watch.Watch()
        for event in watcher.stream(api.list_node, timeout_seconds=900):
            node = event["object"]
            if node.spec.unschedulable and CORDONED_BY in (node.metadata.labels or {}):
                cordoned.add(node.metadata.name)
            else:
                cordoned.discard(node.metadata.name)
            peak[0] = max(peak[0], len(cordoned))
            if stop.is_set():
                watcher.stop()

    watch = threading.Thread(target=watch_cordons, daemon=True)
    watch.start()
    outcomes = {}

    def run_slice(hosts):
        outcomes[hosts] = run_site(fleet, limit=hosts, mig_rollout_id="rollout-sliced", mig_max_unavailable=2, mig_serial=2)

    slices = [threading.Thread(target=run_slice, args=(hosts,)) for hosts in ("gpu-1,gpu-2", "gpu-3,gpu-4")]
    for thread in slices:
        thread.start()
    for thread in slices:
        thread.join()
    stop.set()
    api.patch_node("gpu-1", {"metadata": {"labels": {"example.com/nudge": "1"}}})  # one more event ends the watch
    watch.join(timeout=30)

    for hosts, (returncode, output, _) in outcomes.items():
        assert returncode == 0, (hosts, output)
    assert peak[0] == 2
    for name in nodes:
        assert devices(fleet.status(name)) == ["1g.5gb"] * 7
        assert node_view(api, name) == (False, {"gpufleet.mig/state": "success", "gpufleet.mig/config": "all-1g.5gb",
                                                "gpufleet.mig/strategy": "mixed"})



def test_a_host_process_on_an_instance_the_plan_destroys_is_refused_in_preflight_before_any_cordon(sim_fleet):
    # A job started by hand on the host (a login session's cgroup, not a pod's) runs on the GPU instance that the
    # layout destroys: a drain cannot end it, so the node is refused before anything is touched.
    node = a100_node("gpu-1", mig_layout={"1g.5gb": 7})
    node["gpus"][0].update(mig_mode="enabled", mig_devices=["7g.40gb"])
    node["processes"] = [{"gpu": 0, "pid": 4242, "name": "python3", "gi": 0, "ci": 0}]
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [node]})

    returncode, output, results = run_site(fleet)

    assert returncode != 0, output
    refused = [r for r in named(results, "Refuse the rollout when a node has a problem") if r["status"] == "failed"]
    assert ("the layout destroys GPU instance 0 (7g.40gb at 0:8: 7g.40gb), but a process runs there outside any Kubernetes "
            "pod, which draining the node does not end: pid 4242 (python3) on GPU instance 0 (cgroup "
            "/user.slice/user-0.slice/session-1.scope); stop it and re-run, set mig_in_use=skip to leave this GPU as it is, "
            "or leave the GPU out with mig_gpus") in refused[0]["result"]["msg"]
    assert not [r for r in results if r["action"] in ("gpufleet.mig.k8s_node", "gpufleet.mig.helm_release", "gpufleet.mig.mig_mode",
                                                      "gpufleet.mig.mig_layout")]
    assert node_view(core_api(fleet), "gpu-1") == (False, {})
    assert devices(fleet.status("gpu-1")) == ["7g.40gb"]
    report = json.loads((fleet.workdir / "report" / "latest" / "fleet-report.json").read_text())
    assert report["refused"].startswith("Preflight refused gpu-1:") and "pid 4242 (python3)" in report["refused"]
    assert [(node["host"], node["result"]) for node in report["nodes"]] == [("gpu-1", "refused")]


def test_an_api_server_stopped_longer_than_the_request_timeout_fails_the_node_in_bound_and_a_rerun_converges(sim_fleet):
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [a100_node("gpu-1", mig_config="all-1g.5gb")]})
    server = json.loads((fleet.workdir / "twin.json").read_text())["components"]["cluster"]["pid"]
    bound = {"k8s_request_timeout": {"connect": 2, "read": 3}}

    # The API server hangs right after the node was cordoned: the next call (pausing the device plugin) gets no answer.
    try:
        returncode, output, results = run_site(fleet, stop_after_task=("Cordon the node and evict its pods", server), **bound)
        finished = time.time()
    finally:
        os.kill(server, signal.SIGCONT)

    assert returncode != 0, output
    [stopped] = [r["result"]["at"] for r in results if r["status"] == "stopped"]
    # Each request is bounded (3 x connect + read); what is left of the run (the failed call, the failed label call, the
    # report) ends well within a minute, where the client's default read timeout alone is one.
    assert finished - stopped < 45, output
    failed = [r for r in named(results, "Pause the device plugin and GPU feature discovery on the node") if r["status"] == "failed"]
    assert failed and "timed out" in failed[0]["result"]["msg"] and "k8s_request_timeout" in failed[0]["result"]["msg"], output
    report = json.loads((fleet.workdir / "report" / "latest" / "fleet-report.json").read_text())
    [node] = report["nodes"]
    assert node["result"] == "failed" and "labelling the node failed too" in json.dumps(node), node

    # The API is back: a plain re-run finishes the node.
    returncode, output, _ = run_site(fleet, **bound)

    assert returncode == 0, output
    assert devices(fleet.status("gpu-1")) == ["1g.5gb"] * 7
    assert node_view(core_api(fleet), "gpu-1") == (False, {
        "gpufleet.mig/state": "success", "gpufleet.mig/config": "all-1g.5gb", "gpufleet.mig/strategy": "mixed"})


@pytest.mark.parametrize("variables, named_in_message", [
    ({"drain_timeout": "soon"}, "Preflight refused gpu-1: invalid variables: argument 'drain_timeout' is of type str and we were unable to convert to int"),
    ({"validate_timeout": [1]}, "Preflight refused gpu-1: invalid variables: argument 'validate_timeout' is of type list"),
    ({"mig_in_use": "sometimes"}, "mig_in_use must be fail or skip (got sometimes)"),
    ({"k8s_request_timeout": {"read": 0}}, "k8s_request_timeout a mapping with connect and read, seconds above 0"),
    # The preflight role's own variables, whose role check site.yml turns off. This one feeds an argument of preflight's
    # task, whose own check would name that argument: the variable is named instead.
    ({"preflight_host_mig_manager": "sometimes"},
     "Preflight refused gpu-1: invalid variables: value of preflight_host_mig_manager must be one of: fail, ignore, got: sometimes"),
    # Not an argument of the task: refused as the node's problem.
    ({"preflight_check_driver": "maybe"},
     "Preflight refused gpu-1: invalid variables: argument 'preflight_check_driver' is of type str and we were unable to convert to bool"),
])
def test_a_bad_variable_is_refused_before_anything_is_touched_naming_it_without_the_argument_spec(sim_fleet, variables, named_in_message):
    fleet = sim_fleet({"cluster": FAST_CLUSTER, "nodes": [a100_node("gpu-1", mig_config="all-1g.5gb")]})

    returncode, output, results = run_site(fleet, **variables)

    assert returncode != 0, output
    refused = [r for r in results if r["status"] == "failed"]
    assert refused and named_in_message in refused[0]["result"]["msg"], output
    # A role's internal variable is named only when the user set that variable itself.
    set_internal = sum(name.startswith("preflight_") for name in variables)
    assert "argument_spec" not in output and refused[0]["result"]["msg"].count("preflight_") == set_internal
    assert refused[0]["result"]["msg"].count("argument '") <= 1, "only the bad variable is named"
    assert not [r for r in results if r["action"] in ("gpufleet.mig.k8s_node", "gpufleet.mig.helm_release", "gpufleet.mig.mig_layout")]
    assert node_view(core_api(fleet), "gpu-1") == (False, {})
