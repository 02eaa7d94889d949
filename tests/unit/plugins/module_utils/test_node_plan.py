"""Node plan: one pure function from GPU facts + desired layout to the rollout plan of a node."""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, StrategyError
from ansible_collections.gpufleet.mig.plugins.module_utils._layout import resolve_layout
from ansible_collections.gpufleet.mig.plugins.module_utils._node_plan import config_id, plan_node
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import build_catalog

A100 = "NVIDIA A100-SXM4-40GB"
A100_PCI = "0x20B010DE"
T4_PCI = "0x1EB810DE"
BALANCED = ["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"]


def _gpu(index, mode="disabled", pending=None, instances=(), name=A100, pci=A100_PCI, mig_capable=True, processes=()):
    return {
        "index": index, "uuid": "GPU-%04d" % index, "name": name, "pci_bus_id": "00000000:%02X:00.0" % (7 + index),
        "pci_device_id": pci, "mig_capable": mig_capable,
        "mig_mode": {"current": mode, "pending": pending or mode} if mig_capable else None,
        "gpu_instances": list(instances), "processes": list(processes),
    }


def _t4(index):
    return _gpu(index, name="Tesla T4", pci=T4_PCI, mig_capable=False)


def _plan(gpus, source, strategy="mixed", catalogs=None, **options):
    facts = {"gpus": gpus}
    desired = resolve_layout(source, gpus)
    return plan_node(facts, desired, catalogs if catalogs is not None else {}, strategy, source=source, **options)


def _instances_after(plan_entry):
    """The facts a GPU reports once the planned GPU instances exist (each with its compute instances)."""
    instances = []
    for number, gi in enumerate(plan_entry["plan"]["create"]):
        instances.append({
            "id": number + 1, "profile_id": gi["profile_id"], "profile_name": gi["profile_name"],
            "placement": gi["placement"],
            "compute_instances": [
                {"id": ci_number, "profile_id": ci["profile_id"], "profile_name": ci["profile_name"], "placement": ci["placement"]}
                for ci_number, ci in enumerate(gi["compute_instances"])
            ],
        })
    return instances


# ------------------------------------------------------------------------------------------ mixed strategy


def test_a100_with_mig_off_gets_enabled_and_the_balanced_devices_planned(a100_40gb):
    plan = _plan([_gpu(0), _gpu(1)], {"mig_config": "all-balanced"}, catalogs={0: a100_40gb, 1: a100_40gb})

    assert plan["converged"] is False
    assert plan["mode_enable"] == [0, 1]
    assert plan["mode_disable"] == []
    assert plan["layout"] == {"0": {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}, "1": {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}}
    assert plan["layout_change"] is True
    assert plan["config_id"] == "all-balanced"
    gpu0 = plan["gpus"][0]
    assert gpu0["desired_devices"] == BALANCED
    assert sorted(gi["profile_name"] for gi in gpu0["plan"]["create"]) == ["1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"]
    assert plan["summary"][0] == ("GPU 0 NVIDIA A100-SXM4-40GB: MIG disabled -> enabled; "
                                  "devices none -> 3g.20gb, 2g.10gb, 2 x 1g.5gb")


def test_a_gpu_that_already_has_the_planned_devices_is_converged(a100_40gb):
    first = _plan([_gpu(0)], {"mig_config": "all-balanced"}, catalogs={0: a100_40gb})
    applied = _gpu(0, mode="enabled", instances=_instances_after(first["gpus"][0]))

    again = _plan([applied], {"mig_config": "all-balanced"}, catalogs={0: a100_40gb})

    assert again["converged"] is True
    assert again["mode_enable"] == [] and again["layout_change"] is False
    assert again["gpus"][0]["plan"]["destroy"] == [] and again["gpus"][0]["plan"]["create"] == []
    assert again["summary"] == ["GPU 0 NVIDIA A100-SXM4-40GB: MIG enabled; devices 3g.20gb, 2g.10gb, 2 x 1g.5gb (converged)"]


def test_changing_the_layout_destroys_only_what_does_not_fit_the_new_one(a100_40gb):
    first = _plan([_gpu(0)], {"mig_config": "all-balanced"}, catalogs={0: a100_40gb})
    applied = _gpu(0, mode="enabled", instances=_instances_after(first["gpus"][0]))

    plan = _plan([applied], {"mig_layout": {"3g.20gb": 2}}, catalogs={0: a100_40gb})

    gpu = plan["gpus"][0]
    assert plan["mode_enable"] == [] and plan["layout"] == {"0": {"3g.20gb": 2}}
    assert [gi["profile_name"] for gi in gpu["plan"]["keep"]] == ["3g.20gb"]
    assert sorted(gi["profile_name"] for gi in gpu["plan"]["destroy"]) == ["1g.5gb", "1g.5gb", "2g.10gb"]
    assert plan["summary"][0].endswith("devices 3g.20gb, 2g.10gb, 2 x 1g.5gb -> 2 x 3g.20gb")


def test_a_layout_that_does_not_fit_fails_the_node_naming_the_gpu(a100_40gb):
    with pytest.raises(StrategyError) as error:
        _plan([_gpu(0)], {"mig_layout": {"3g.20gb": 2, "2g.10gb": 1}}, catalogs={0: a100_40gb})

    assert str(error.value).startswith("GPU 0 (NVIDIA A100-SXM4-40GB, 00000000:07:00.0): MIG devices ")
    assert "do not fit on NVIDIA A100-SXM4-40GB" in str(error.value)


def test_an_unknown_profile_fails_the_node(a100_40gb):
    with pytest.raises(StrategyError, match=r"MIG profile '3g\.40gb' not offered by NVIDIA A100-SXM4-40GB"):
        _plan([_gpu(0)], {"mig_layout": {"3g.40gb": 1}}, catalogs={0: a100_40gb})


def test_every_problem_of_the_node_is_reported_at_once(a100_40gb):
    with pytest.raises(StrategyError) as error:
        _plan([_gpu(0), _gpu(1)], {"mig_layout": {"0": {"7g.40gb": 2}, "1": {"9g.90gb": 1}}},
              catalogs={0: a100_40gb, 1: a100_40gb})

    message = str(error.value)
    assert message.count("GPU 0 (") == 1 and message.count("GPU 1 (") == 1


def test_mixed_refuses_partial_devices_the_plugin_cannot_advertise(a100_40gb):
    with pytest.raises(StrategyError, match=r"MIG strategy 'mixed' cannot serve this node: GPU 0 has the MIG device 1c\.3g\.20gb"):
        _plan([_gpu(0)], {"mig_layout": {"1c.3g.20gb": 3}}, catalogs={0: a100_40gb})


def test_mixed_warns_about_a_mig_gpu_without_devices(a100_40gb):
    plan = _plan([_gpu(0)], {"mig_config": "all-enabled"}, catalogs={0: a100_40gb})

    assert plan["layout"] == {"0": {}}
    assert plan["warnings"] == ["GPU 0 (NVIDIA A100-SXM4-40GB, 00000000:07:00.0) has MIG enabled without MIG devices: "
                                "under mig_strategy mixed it offers no resource"]


def test_mixed_node_with_a_gpu_that_cannot_do_mig_leaves_it_alone(a100_40gb):
    plan = _plan([_gpu(0), _t4(1)], {"mig_config": "all-1g.5gb"}, catalogs={0: a100_40gb})

    t4 = plan["gpus"][1]
    assert (t4["managed"], t4["reason"], t4["desired_devices"]) == (False, "not MIG-capable", None)
    assert plan["layout"] == {"0": {"1g.5gb": 7}}
    assert plan["summary"][1] == "GPU 1 Tesla T4: left as it is (not MIG-capable)"


# ----------------------------------------------------------------------------------------- single strategy


def test_single_accepts_one_profile_on_every_gpu(a100_40gb):
    plan = _plan([_gpu(0), _gpu(1)], {"mig_config": "all-1g.5gb"}, strategy="single", catalogs={0: a100_40gb, 1: a100_40gb})

    assert plan["strategy"] == "single" and plan["mode_enable"] == [0, 1]


def test_single_refuses_more_than_one_profile_on_the_node(a100_40gb):
    with pytest.raises(StrategyError, match="more than one MIG profile") as error:
        _plan([_gpu(0)], {"mig_config": "all-balanced"}, strategy="single", catalogs={0: a100_40gb})
    assert "more than one MIG device type present on node" in str(error.value)


def test_single_refuses_mig_on_next_to_a_gpu_with_mig_off(a100_40gb):
    with pytest.raises(StrategyError, match=r"GPU\(s\) 0 have MIG enabled and GPU\(s\) 1 do not"):
        _plan([_gpu(0), _t4(1)], {"mig_config": "all-1g.5gb"}, strategy="single", catalogs={0: a100_40gb})


def test_single_checks_the_gpus_the_layout_leaves_alone_as_they_are(a100_40gb):
    # GPU 1 is not in the layout and keeps MIG off, so single would see MIG on next to MIG off.
    with pytest.raises(StrategyError, match="same migEnabled value"):
        _plan([_gpu(0), _gpu(1)], {"mig_layout": {"0": {"1g.5gb": 7}}}, strategy="single", catalogs={0: a100_40gb})


def test_single_refuses_a_mig_gpu_without_devices(a100_40gb):
    with pytest.raises(StrategyError, match="GPU 0 has MIG enabled but no MIG devices"):
        _plan([_gpu(0)], {"mig_config": "all-enabled"}, strategy="single", catalogs={0: a100_40gb})


def test_single_accepts_mig_off_everywhere():
    plan = _plan([_gpu(0, mode="enabled"), _gpu(1)], {"mig_config": "all-disabled"}, strategy="single")

    assert plan["mode_disable"] == [0] and plan["mode_enable"] == [] and plan["layout"] == {}


# ------------------------------------------------------------------------------------------- none strategy


def test_none_sets_the_mode_but_leaves_devices_alone(a100_40gb):
    plan = _plan([_gpu(0)], {"mig_config": "all-1g.5gb"}, strategy="none", catalogs={0: a100_40gb})

    gpu = plan["gpus"][0]
    assert plan["mode_enable"] == [0] and plan["layout"] == {}
    assert (gpu["desired_devices"], gpu["plan"], gpu["devices_after"]) == (None, None, [])
    assert plan["warnings"] == ["GPU 0 (NVIDIA A100-SXM4-40GB, 00000000:07:00.0): mig_strategy none ignores MIG layouts, "
                                "so its MIG devices (7 x 1g.5gb) are neither created nor destroyed; only MIG mode is set"]


def test_none_is_converged_once_the_mode_matches(a100_40gb):
    plan = _plan([_gpu(0, mode="enabled")], {"mig_config": "all-1g.5gb"}, strategy="none", catalogs={0: a100_40gb})

    assert plan["converged"] is True
    assert plan["summary"] == ["GPU 0 NVIDIA A100-SXM4-40GB: MIG enabled; devices none (unmanaged under mig_strategy none) (converged)"]


# ----------------------------------------------------------------------------------------------- MIG mode


def test_a_pending_mode_change_the_layout_does_not_want_is_undone(a100_40gb):
    plan = _plan([_gpu(0, mode="enabled", pending="disabled")], {"mig_layout": {}}, catalogs={0: a100_40gb})

    assert plan["mode_enable"] == [0] and plan["gpus"][0]["mode_change"] is True
    assert plan["summary"][0].startswith("GPU 0 NVIDIA A100-SXM4-40GB: MIG enabled (pending disabled) -> enabled")


def test_disabling_mig_is_planned_as_a_mode_change_only(a100_40gb):
    first = _plan([_gpu(0)], {"mig_config": "all-1g.5gb"}, catalogs={0: a100_40gb})
    applied = _gpu(0, mode="enabled", instances=_instances_after(first["gpus"][0]))

    plan = _plan([applied], {"mig_config": "all-disabled"})

    gpu = plan["gpus"][0]
    assert plan["mode_disable"] == [0] and plan["layout"] == {}
    assert gpu["current_devices"] == ["1g.5gb"] * 7 and gpu["devices_after"] == []


def test_a_driver_that_lists_no_profiles_with_mig_off_defers_the_fit_check():
    empty = build_catalog(A100, 40960 * 1024 * 1024, [])

    plan = _plan([_gpu(0)], {"mig_config": "all-balanced"}, catalogs={0: empty})

    gpu = plan["gpus"][0]
    assert gpu["devices_verified"] is False and gpu["plan"] is None and gpu["layout_change"] is True
    assert plan["layout"] == {"0": {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}}
    assert "reports no MIG profiles while MIG is disabled" in plan["warnings"][0]
    assert plan["summary"][0].endswith("fit checked once MIG is on")


def test_gpus_outside_the_layout_are_left_as_they_are(a100_40gb):
    plan = _plan([_gpu(0), _gpu(1, mode="enabled")], {"mig_layout": {"0": {"7g.40gb": 1}}}, catalogs={0: a100_40gb})

    gpu1 = plan["gpus"][1]
    assert (gpu1["managed"], gpu1["reason"], gpu1["mode_change"], gpu1["converged"]) == (False, "not in the layout", False, True)
    assert plan["mode_enable"] == [0]


def test_processes_on_instances_to_destroy_are_a_warning_for_the_drain(a100_40gb):
    first = _plan([_gpu(0)], {"mig_layout": {"7g.40gb": 1}}, catalogs={0: a100_40gb})
    busy = _gpu(0, mode="enabled", instances=_instances_after(first["gpus"][0]),
                processes=[{"pid": 42, "name": "train", "gpu_instance_id": 1, "compute_instance_id": 0}])

    plan = _plan([busy], {"mig_config": "all-1g.5gb"}, catalogs={0: a100_40gb})

    assert plan["warnings"] == ["GPU 0 (NVIDIA A100-SXM4-40GB, 00000000:07:00.0) has processes (pid 42 (train) on GPU "
                                "instance 1) and GPU instances to destroy: draining the node must end them"]


def _busy_full_gpu(a100_40gb, *processes):
    """GPU 0 with one 7g.40gb instance (id 1) that the processes run on; all-1g.5gb destroys it."""
    first = _plan([_gpu(0)], {"mig_layout": {"7g.40gb": 1}}, catalogs={0: a100_40gb})
    return _gpu(0, mode="enabled", instances=_instances_after(first["gpus"][0]), processes=list(processes))


HOST_PROCESS = {"pid": 4242, "name": "python3", "gpu_instance_id": 1, "compute_instance_id": 0, "owner": "host",
                "cgroup": "/user.slice/user-0.slice/session-1.scope"}
POD_PROCESS = {"pid": 42, "name": "train", "gpu_instance_id": 1, "compute_instance_id": 0, "owner": "pod",
               "cgroup": "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podab.slice/cri-containerd-cd.scope"}


def test_a_host_process_on_an_instance_the_plan_destroys_refuses_the_node_naming_pid_instance_and_variables(a100_40gb):
    busy = _busy_full_gpu(a100_40gb, HOST_PROCESS, POD_PROCESS)

    with pytest.raises(StrategyError) as refused:
        _plan([busy], {"mig_config": "all-1g.5gb"}, catalogs={0: a100_40gb},
              names={"in_use": "mig_in_use", "gpus": "mig_gpus"})

    assert str(refused.value) == (
        "GPU 0 (NVIDIA A100-SXM4-40GB, 00000000:07:00.0): the layout destroys GPU instance 1 (7g.40gb at 0:8: 7g.40gb), "
        "but a process runs there outside any Kubernetes pod, which draining the node does not end: pid 4242 "
        "(python3) on GPU instance 1 (cgroup /user.slice/user-0.slice/session-1.scope); stop it and re-run, set "
        "mig_in_use=skip to leave this GPU as it is, or leave the GPU out with mig_gpus")


def test_in_use_skip_leaves_a_gpu_with_a_host_process_as_it_is_and_plans_the_others(a100_40gb):
    busy = _busy_full_gpu(a100_40gb, HOST_PROCESS)

    plan = _plan([busy, _gpu(1)], {"mig_config": "all-1g.5gb"}, catalogs={0: a100_40gb, 1: a100_40gb}, in_use="skip")

    assert [(gpu["managed"], gpu["reason"]) for gpu in plan["gpus"]] == [(False, "in use by host processes"), (True, None)]
    assert plan["mode_enable"] == [1] and list(plan["layout"]) == ["1"]
    assert plan["warnings"][0].startswith("GPU 0 (NVIDIA A100-SXM4-40GB, 00000000:07:00.0) left as it is: host processes "
                                          "outside any Kubernetes pod use it: pid 4242 (python3)")


@pytest.mark.parametrize("owner", ["pod", "gone", None])
def test_a_pods_process_or_one_that_ended_or_one_of_unknown_owner_is_left_to_the_drain(a100_40gb, owner):
    process = dict(HOST_PROCESS, owner=owner) if owner else {k: v for k, v in HOST_PROCESS.items() if k != "owner"}
    plan = _plan([_busy_full_gpu(a100_40gb, process)], {"mig_config": "all-1g.5gb"}, catalogs={0: a100_40gb})

    assert plan["layout"] == {"0": {"1g.5gb": 7}}


def test_a_host_process_anywhere_on_a_gpu_whose_mig_mode_changes_refuses_it(a100_40gb):
    busy = _busy_full_gpu(a100_40gb, dict(HOST_PROCESS, owner="unknown", cgroup=None))

    with pytest.raises(StrategyError, match=r"the MIG mode change to disabled needs the GPU idle, .* pid 4242 \(python3\) "
                                            r"on GPU instance 1 \(cgroup unreadable\); stop it and re-run, set in_use=skip"):
        _plan([busy], {"mig_layout": {"0": "disabled"}}, catalogs={0: a100_40gb})


def test_an_unknown_strategy_is_refused():
    with pytest.raises(MigError, match="mig_strategy must be one of none, single, mixed, got 'both'"):
        plan_node({"gpus": []}, {}, {}, "both")


# ---------------------------------------------------------------------------------------------- config id


def test_config_id_is_the_config_name_when_it_is_a_valid_label_value():
    desired = resolve_layout({"mig_config": "all-balanced"}, [_gpu(0)])
    assert config_id({"mig_config": "all-balanced"}, desired) == "all-balanced"


def test_config_id_hashes_inline_layouts_and_names_that_are_no_label_value():
    gpus = [_gpu(0)]
    seven = resolve_layout({"mig_layout": {"1g.5gb": 7}}, gpus)
    two = resolve_layout({"mig_layout": {"3g.20gb": 2}}, gpus)

    first = config_id({"mig_layout": {"1g.5gb": 7}}, seven)
    assert first.startswith("layout-") and len(first) == len("layout-") + 12
    assert first == config_id({"mig_layout": {"1g.5gb": 7}}, seven)
    assert first != config_id({"mig_layout": {"3g.20gb": 2}}, two)
    assert config_id({"mig_config": "my config/with spaces"}, seven).startswith("config-")


def test_a_layout_that_only_gpus_without_mig_could_take_is_refused():
    with pytest.raises(StrategyError, match=r"the layout covers no MIG-capable GPU of this node: GPU 0 \(Tesla T4"):
        _plan([_t4(0)], {"mig_layout": {"1g.5gb": 7}})
