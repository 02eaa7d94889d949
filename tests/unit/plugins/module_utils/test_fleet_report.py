"""Fleet report: node records from the facts the roles set, totals, and the Markdown rendering."""
from __future__ import annotations

from ansible_collections.gpufleet.mig.plugins.module_utils._fleet_report import (
    fleet_report,
    gpu_view,
    node_record,
    render_markdown,
)


def _gpu(index=0, mode="disabled", pending=None, devices=()):
    instances = [{"id": 10 + number, "profile_name": name,
                  "compute_instances": [{"id": 0, "profile_name": name, "mig_device_index": number}]}
                 for number, name in enumerate(devices)]
    return {"index": index, "name": "NVIDIA A100-SXM4-40GB", "mig_capable": True,
            "mig_mode": {"current": mode, "pending": pending or mode}, "gpu_instances": instances}


def _preflight(converged=False, **extra):
    record = {"k8s_node_name": "gpu-1", "strategy": "mixed", "config_id": "all-balanced", "driver_version": "550.54.15",
              "converged": converged, "mig_converged": converged, "gpus_before": [_gpu()],
              "plan": {"summary": ["GPU 0 NVIDIA A100-SXM4-40GB: MIG disabled -> enabled"]}, "warnings_found": []}
    record.update(extra)
    return record


BALANCED = ["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"]
SUCCESS_FACTS = {
    "preflight_node": _preflight(),
    "drain_result": {"drained": True, "evicted_pods": ["ml/train-0"]},
    "reconfigure_result": {"gpus_after": [_gpu(mode="enabled", devices=BALANCED)], "rebooted": False},
    "validate_result": {"resources": {"nvidia.com/gpu": "0", "nvidia.com/mig-1g.5gb": "2", "nvidia.com/mig-3g.20gb": "1"},
                        "labels": {"nvidia.com/mig.strategy": "mixed", "nvidia.com/mig-1g.5gb.count": "2",
                                   "nvidia.com/mig-1g.5gb.memory": "4864"},
                        "pods": [{"resource": "nvidia.com/mig-1g.5gb", "assigned": {"uuid": "MIG-abc", "profile": "1g.5gb"}}]},
    "rollout_state_result": {"state": "success", "started": "t0", "finished": "t1", "duration_s": 12.5},
}


def test_gpu_view_lists_devices_in_nvidia_smi_order_and_shows_a_pending_mode():
    gpu = _gpu(mode="enabled", pending="disabled", devices=["3g.20gb", "1g.5gb"])

    assert gpu_view(gpu) == {"index": 0, "name": "NVIDIA A100-SXM4-40GB", "mig": "enabled (pending disabled)",
                             "devices": ["3g.20gb", "1g.5gb"]}
    assert gpu_view({"index": 1, "name": "Tesla T4", "mig_capable": False})["mig"] == "not supported"


def test_a_successful_node_has_before_after_evictions_resources_and_timing():
    record = node_record("gpu-1", SUCCESS_FACTS)

    assert record["result"] == "success"
    assert record["before"][0]["devices"] == [] and record["after"][0]["devices"] == BALANCED
    assert record["evicted_pods"] == ["ml/train-0"] and record["drained"] is True
    assert record["duration_s"] == 12.5
    assert record["validation_pods"] == ["nvidia.com/mig-1g.5gb: MIG 1g.5gb MIG-abc"]


def test_results_follow_what_the_roles_recorded():
    assert node_record("a", {"preflight_node": _preflight(converged=True)})["result"] == "unchanged"
    assert node_record("b", {"preflight_node": _preflight()})["result"] == "not reached"
    assert node_record("c", {"preflight_node": _preflight(), "rollout_state_result": {"state": "pending"}})["result"] == "interrupted"
    failed = node_record("d", {"preflight_node": _preflight(), "rollout_state_result": {
        "state": "failed", "failed_task": "Set the MIG mode", "message": "reset refused",
        "gpus_after": [_gpu(mode="disabled", pending="enabled")]}})
    assert (failed["result"], failed["message"]) == ("failed", "reset refused")
    assert failed["after"][0]["mig"] == "disabled (pending enabled)"


def test_an_unchanged_node_is_after_as_it_was_before():
    record = node_record("a", {"preflight_node": _preflight(converged=True, gpus_before=[_gpu(mode="enabled", devices=["7g.40gb"])])})

    assert record["after"] == record["before"]


def test_fleet_report_counts_results_over_the_given_hosts():
    hostvars = {"gpu-1": SUCCESS_FACTS, "gpu-2": {"preflight_node": _preflight(converged=True)}, "gpu-3": {}}

    report = fleet_report(["gpu-1", "gpu-2", "gpu-3"], hostvars, generated="2026-01-01T00:00:00Z")

    assert report["totals"] == {"success": 1, "unchanged": 1, "failed": 0, "refused": 0, "interrupted": 0, "not reached": 1, "nodes": 3}
    assert [node["host"] for node in report["nodes"]] == ["gpu-1", "gpu-2", "gpu-3"]
    assert report["strategy"] == "mixed"


def test_markdown_has_a_summary_table_and_a_section_per_node():
    report = fleet_report(["gpu-1", "gpu-2"], {"gpu-1": SUCCESS_FACTS, "gpu-2": {"preflight_node": _preflight(), "rollout_state_result": {
        "state": "failed", "failed_task": "Set the MIG mode", "message": "GPU reset refused"}}}, generated="T")

    text = render_markdown(report)

    assert "Generated T. Strategy: mixed. 2 node(s): 1 success, 1 failed." in text
    assert ("| gpu-1 | success | GPU 0 NVIDIA A100-SXM4-40GB: MIG disabled; no MIG devices | GPU 0 NVIDIA A100-SXM4-40GB: "
            "MIG enabled; 3g.20gb, 2g.10gb, 2 x 1g.5gb | 1 | 12.5 s |") in text
    assert "- Allocatable GPU resources: nvidia.com/mig-1g.5gb: 2, nvidia.com/mig-3g.20gb: 1\n" in text
    assert ("- GFD labels: nvidia.com/mig-1g.5gb.count=2, nvidia.com/mig.strategy=mixed; 1 more in the JSON report\n") in text
    assert "- Failed in task 'Set the MIG mode': GPU reset refused\n" in text
    assert "## gpu-2" in text and "| gpu-2 | failed | " in text


def test_a_refused_run_reports_why_per_node_and_that_nothing_changed():
    hostvars = {"gpu-1": {"preflight_node": _preflight()},
                "gpu-2": {"preflight_node": dict(_preflight(), problems=["3 x 3g.20gb do not fit"])}}

    report = fleet_report(["gpu-1", "gpu-2"], hostvars, generated="T", rollout_id="run-7", refused="Preflight refused gpu-2")

    assert [(node["host"], node["result"], node["message"]) for node in report["nodes"]] == [
        ("gpu-1", "not reached", None), ("gpu-2", "refused", "3 x 3g.20gb do not fit")]
    text = render_markdown(report)
    assert "Rollout run-7." in text
    assert "**Refused in preflight; nothing was changed on any node.** Preflight refused gpu-2" in text
    assert "- Refused in preflight: 3 x 3g.20gb do not fit" in text


def test_a_cordon_someone_else_set_is_reported_as_kept():
    facts = dict(SUCCESS_FACTS, drain_result={"drained": True, "cordon": "kept"},
                 rollout_state_result=dict(SUCCESS_FACTS["rollout_state_result"], cordon="kept"))
    report = fleet_report(["gpu-1"], {"gpu-1": facts})
    assert report["nodes"][0]["cordon"] == "kept"
    assert "- Cordon: stays cordoned: it was cordoned before the rollout" in render_markdown(report)
