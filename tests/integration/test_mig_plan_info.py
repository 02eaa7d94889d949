"""mig_plan_info through ansible-playbook on simulated nodes: the plan of a node whose MIG is still off, the
refusals (layout that does not fit, strategy the device plugin would crash on), and nothing changes."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def plan_task(name, **args):
    return {"name": name, "gpufleet.mig.mig_plan_info": args, "ignore_errors": True}


def test_plans_refusals_and_a_driver_that_lists_no_profiles_with_mig_off(sim_fleet):
    fleet = sim_fleet({"cluster": False, "nodes": [
        {"name": "gpu-a100", "driver_version": "550.54.15", "gpus": [{"model": "A100-SXM4-40GB", "count": 2, "mig_mode": "disabled"}]},
        {"name": "gpu-a30", "driver_version": "535.129.03", "gpus": [{"model": "A30-24GB", "count": 1, "mig_mode": "disabled"}]},
    ]})
    before = {node: fleet.status(node) for node in ("gpu-a100", "gpu-a30")}

    run = fleet.play([
        plan_task("Plan the balanced config", config="all-balanced", strategy="mixed"),
        plan_task("Plan a layout that does not fit", layout={"0": {"3g.20gb": 2, "4g.20gb": 1}}),
        plan_task("Plan several profiles under single", config="all-balanced", strategy="single"),
        plan_task("Plan from mig-parted data", config_data="version: v1\nmig-configs:\n  half:\n    - devices: [1]\n"
                  "      mig-enabled: true\n      mig-devices: {\"3g.20gb\": 2}\n", strategy="single"),
    ], hosts="gpu-a100")

    balanced = run.task("Plan the balanced config").result
    assert (balanced["changed"], balanced["converged"], balanced["mode_enable"]) == (False, False, [0, 1])
    assert balanced["layout"] == {"0": {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}, "1": {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}}
    assert [gi["placement"] for gi in balanced["gpus"][0]["plan"]["create"]][0] == {"start": 4, "size": 4}

    misfit = run.task("Plan a layout that does not fit")
    assert misfit.failed
    assert misfit.msg == ("The MIG layout cannot be rolled out on this node: GPU 0 (NVIDIA A100-SXM4-40GB, 00000000:07:00.0): "
                          "MIG devices 4g.20gb, 2 x 3g.20gb do not fit on NVIDIA A100-SXM4-40GB: the GPU instances need 12 "
                          "memory slices, but NVIDIA A100-SXM4-40GB has 8; the GPU instances need 10 compute slices, but "
                          "NVIDIA A100-SXM4-40GB has 7; 3g.20gb + 4g.20gb need 6 decoder engines together, but NVIDIA "
                          "A100-SXM4-40GB has 5; largest part of the request that fits: 2 x 3g.20gb")

    single = run.task("Plan several profiles under single")
    assert single.failed and "MIG strategy 'single' cannot serve this node: it has more than one MIG profile" in single.msg

    # GPU 0 is not in the config and keeps MIG off while GPU 1 turns it on: single refuses that node too.
    data = run.task("Plan from mig-parted data")
    assert data.failed and "GPU(s) 1 have MIG enabled and GPU(s) 0 do not" in data.msg

    old_driver = fleet.play([plan_task("Plan the balanced config", config="all-balanced")], hosts="gpu-a30")
    a30 = old_driver.task("Plan the balanced config").result
    assert a30["gpus"][0]["devices_verified"] is False and a30["layout"] == {"0": {"2g.12gb": 1, "1g.6gb": 2}}
    assert a30["warnings"] == ["GPU 0 (NVIDIA A30, 00000000:07:00.0) reports no MIG profiles while MIG is disabled (drivers "
                               "before R550 list them only with MIG on): the fit of 2g.12gb, 2 x 1g.6gb is checked when the "
                               "layout is applied"]

    assert {node: fleet.status(node) for node in ("gpu-a100", "gpu-a30")} == before
