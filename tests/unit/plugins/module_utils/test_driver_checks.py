"""node_info.read_node and driver_checks on facts read from simulated nodes (real pynvml over the fleet twin)
and from a real H200 captured read-only."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils import _driver_checks as driver_checks, _node_info as node_info
from ansible_collections.gpufleet.mig.plugins.module_utils._driver_checks import (
    DriverPolicy,
    checked_facts,
    evaluate_node,
    failure_message,
    model_minimum,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import NvmlCallError
from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import build_catalog
from ansible_collections.gpufleet.mig.plugins.module_utils._selection import GpuSelectionError
from ansible_collections.gpufleet.mig.plugins.module_utils._versions import VersionError

sim = pytest.importorskip("gpufleet_twin.nvml", reason="the fleet twin's NVML simulator is not installed")

TOOLKIT_1_17_8 = {"installed": True, "version": "1.17.8", "source": "nvidia-ctk", "tools": {}, "packages": None,
                  "nvidia_docker2_version": None}


@pytest.fixture
def read_simulated_node(tmp_path):
    """Write a node from a spec, then read it through node_info.read_node as a module would."""

    def read(driver_version="550.54.15", gpus=None, **extra):
        spec = {"name": "n1", "driver_version": driver_version,
                "gpus": gpus or [{"model": "A100-SXM4-40GB", "count": 1}]}
        spec.update(extra)
        path = tmp_path / "node.json"
        sim.create_node_state(path, spec)
        with sim.simulated(path):
            return node_info.read_node()

    return read


def test_a_node_with_a_driver_reads_as_loaded(read_simulated_node):
    node = read_simulated_node()
    assert node["driver_loaded"] is True
    assert (node["driver_version"], node["cuda_driver_version"], node["nvml_version"]) == (
        "550.54.15", "12.4", "12.550.54.15")
    assert [gpu["name"] for gpu in node["gpus"]] == ["NVIDIA A100-SXM4-40GB"]


@pytest.mark.parametrize("extra, code, text", [
    ({"driver_loaded": False}, 9, "Driver Not Loaded"),
    ({"nvml_library": False}, 12, "NVML Shared Library Not Found"),
])
def test_a_node_without_a_driver_reads_as_absent(read_simulated_node, extra, code, text):
    node = read_simulated_node(**extra)
    assert node == {"driver_loaded": False, "driver_version": None, "cuda_driver_version": None, "nvml_version": None,
                    "gpus": [], "driver_error": {"call": "nvmlInit", "code": code, "text": text, "no_driver": True}}


def test_nvml_failures_after_init_propagate(tmp_path):
    path = tmp_path / "node.json"
    sim.create_node_state(path, {"name": "n1", "driver_version": "550.54.15",
                                 "gpus": [{"model": "A100-SXM4-40GB", "count": 1}]})
    sim.inject_fault(path, "nvmlDeviceGetCount", "UNKNOWN")
    with sim.simulated(path), pytest.raises(NvmlCallError) as raised:
        node_info.read_node()
    assert (raised.value.call, raised.value.code) == ("nvmlDeviceGetCount", 999)


def test_bytes_from_older_pynvml_are_decoded(tmp_path):
    path = tmp_path / "node.json"
    sim.create_node_state(path, {"name": "n1", "driver_version": "450.80.02"})
    with sim.simulated(path):
        node = node_info.read_node(read_facts=lambda: {"driver_version": b"450.80.02",
                                                       "gpus": [{"name": b"A100-SXM4-40GB"}]})
    assert node["driver_version"] == "450.80.02" and node["gpus"][0]["name"] == "A100-SXM4-40GB"


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA A100-SXM4-40GB", ("A100", "450.80.02")),
    ("A100-SXM4-40GB", ("A100", "450.80.02")),            # R450/R460 names lack the NVIDIA prefix
    ("NVIDIA A100 80GB PCIe", ("A100", "450.80.02")),
    ("NVIDIA A30", ("A30", "460.73.01")),
    ("NVIDIA H100 80GB HBM3", ("H100", "525.85.12")),
    ("NVIDIA H100 NVL", ("H100", "525.85.12")),
    ("NVIDIA H200", ("H200", "550.90.07")),
    ("NVIDIA H200 NVL", ("H200", "550.90.07")),
    ("Tesla T4", None),
    ("NVIDIA A300X", None),                               # whole words only
])
def test_model_minimum_from_the_default_table(name, expected):
    assert model_minimum(name, driver_checks.DEFAULT_MODEL_MIN_DRIVER_VERSIONS) == expected


def test_the_longest_matching_model_key_wins():
    table = {"H100": "525.85.12", "h100 nvl": "535.54.03"}
    assert model_minimum("NVIDIA H100 NVL", table) == ("h100 nvl", "535.54.03")
    assert model_minimum("NVIDIA H100 80GB HBM3", table) == ("H100", "525.85.12")


def test_a_ready_node_passes_every_check(read_simulated_node):
    node = read_simulated_node(gpus=[{"model": "H100-SXM5-80GB", "count": 2, "mig_mode": "enabled"}])
    checks = evaluate_node(node, TOOLKIT_1_17_8, DriverPolicy())
    assert [(c["name"], c.get("gpu"), c["ok"]) for c in checks] == [
        ("nvidia_driver", None, True), ("driver_version", None, True),
        ("model_driver_version", 0, True), ("mig_capable", 0, True),
        ("model_driver_version", 1, True), ("mig_capable", 1, True),
        ("container_toolkit", None, True)]
    assert checks[2]["detail"] == ("GPU 0 (NVIDIA H100 80GB HBM3): driver 550.54.15 is at least 525.85.12, "
                                   "the H100 minimum (model_min_driver_versions)")
    assert checks[3]["detail"] == "GPU 0 (NVIDIA H100 80GB HBM3) supports MIG (mode: current enabled, pending enabled)"
    assert failure_message(checks) is None


def test_a100_on_450_51_06_fails_on_the_driver_and_on_mig(read_simulated_node):
    node = read_simulated_node(driver_version="450.51.06")
    checks = evaluate_node(node, None, DriverPolicy(check_container_toolkit=False))
    assert failure_message(checks) == (
        "This node cannot run MIG in Kubernetes: NVIDIA driver 450.51.06 is older than 450.80.02, the minimum for MIG "
        "(min_driver_version); upgrade the driver; GPU 0 (A100-SXM4-40GB) does not support MIG with driver 450.51.06 "
        "(NVML reports no MIG mode); leave it out with the gpus option if it is not meant for MIG")


def test_h200_below_its_model_minimum(read_simulated_node):
    node = read_simulated_node(gpus=[{"model": "H200-141GB", "count": 1}])
    checks = evaluate_node(node, TOOLKIT_1_17_8, DriverPolicy())
    failed = [c for c in checks if not c["ok"]]
    assert failed[0] == {"name": "model_driver_version", "ok": False, "gpu": 0, "detail": (
        "GPU 0 (NVIDIA H200) needs NVIDIA driver 550.90.07 or newer for MIG, the H200 minimum "
        "(model_min_driver_versions); the node runs 550.54.15")}
    assert checked_facts(node, TOOLKIT_1_17_8, DriverPolicy())["gpus"][0]["min_driver_version"] == "550.90.07"
    relaxed = DriverPolicy(model_min_driver_versions={})
    assert [c["name"] for c in evaluate_node(node, TOOLKIT_1_17_8, relaxed)] == [
        "nvidia_driver", "driver_version", "mig_capable", "container_toolkit"]


def test_gpu_selection_limits_the_per_gpu_checks(read_simulated_node):
    node = read_simulated_node(gpus=[{"model": "Tesla-T4", "count": 1}, {"model": "A100-SXM4-40GB", "count": 1}])
    all_checks = evaluate_node(node, None, DriverPolicy(check_container_toolkit=False))
    assert [c["gpu"] for c in all_checks if not c["ok"]] == [0]
    assert failure_message(evaluate_node(node, None, DriverPolicy(check_container_toolkit=False), gpus=["1"])) is None
    with pytest.raises(GpuSelectionError):
        evaluate_node(node, None, DriverPolicy(), gpus=["7"])


def test_no_driver_is_one_failed_check(read_simulated_node):
    node = read_simulated_node(driver_version=None)
    checks = evaluate_node(node, TOOLKIT_1_17_8, DriverPolicy())
    assert checks == [
        {"name": "nvidia_driver", "ok": False, "detail": "no NVIDIA driver on this node: nvmlInit failed with Driver "
                                                         "Not Loaded (NVML error 9); install and load the NVIDIA "
                                                         "datacenter driver"},
        {"name": "container_toolkit", "ok": True, "detail": "NVIDIA Container Toolkit 1.17.8 (from nvidia-ctk) is at "
                                                            "least 1.3.0 (min_container_toolkit_version)"}]


def test_a_broken_driver_is_not_called_missing():
    node = node_info.driver_absent_facts(NvmlCallError("nvmlInit", 18, "RM has detected an NVML/RM version mismatch."))
    assert evaluate_node(node, None, DriverPolicy(check_container_toolkit=False))[0]["detail"] == (
        "the NVIDIA driver on this node is not usable: nvmlInit failed with RM has detected an NVML/RM version "
        "mismatch. (NVML error 18)")


def test_a_node_without_gpus_fails():
    node = {"driver_loaded": True, "driver_version": "550.54.15", "cuda_driver_version": "12.4",
            "nvml_version": "12.550.54.15", "gpus": []}
    assert failure_message(evaluate_node(node, None, DriverPolicy(check_container_toolkit=False))) == (
        "This node cannot run MIG in Kubernetes: no NVIDIA GPU on this node (NVML lists none)")


@pytest.mark.parametrize("options, message", [
    ({"min_driver_version": "R450"}, "min_driver_version: 'R450' is not a version"),
    ({"model_min_driver_versions": {"H100": "new"}}, "model_min_driver_versions[H100]: 'new' is not a version"),
    ({"min_container_toolkit_version": ""}, "min_container_toolkit_version: '' is not a version"),
])
def test_policy_rejects_bad_versions_naming_the_option(options, message):
    with pytest.raises(VersionError) as raised:
        DriverPolicy(**options)
    assert str(raised.value).startswith(message)


def test_gpu_info_fails_on_a_broken_driver_always_and_on_a_missing_one_only_when_required(read_simulated_node):
    missing = read_simulated_node(driver_loaded=False)
    assert node_info.driver_failure_message(missing, require_driver=False) is None
    assert node_info.driver_failure_message(missing, require_driver=True) == (
        "NVML cannot be initialised on this node: nvmlInit failed with Driver Not Loaded (NVML error 9); install and "
        "load the NVIDIA driver, or set require_driver: false")
    broken = node_info.driver_absent_facts(NvmlCallError("nvmlInit", 18, "RM has detected an NVML/RM version mismatch."))
    assert node_info.driver_failure_message(broken, require_driver=False) == (
        "NVML cannot be initialised on this node: nvmlInit failed with RM has detected an NVML/RM version mismatch. "
        "(NVML error 18)")
    assert node_info.driver_failure_message(read_simulated_node(), require_driver=True) is None


# --- A real node: NVIDIA H200 on driver 580.159.04, captured read-only (fixtures/captures/h200-580.159.04/).

def _capture(name):
    return json.loads((Path(__file__).parent / "fixtures" / "captures" / "h200-580.159.04" / name).read_text())


def test_real_h200_passes_every_check_but_the_missing_toolkit():
    node = _capture("gpu_info.json")
    checks = evaluate_node(node, node["container_toolkit"], DriverPolicy())
    assert [(c["name"], c["ok"]) for c in checks] == [
        ("nvidia_driver", True), ("driver_version", True), ("model_driver_version", True), ("mig_capable", True),
        ("container_toolkit", False)]
    # What the module itself answered on that machine.
    assert checks == _capture("driver_check.json")["checks"]
    assert failure_message(evaluate_node(node, None, DriverPolicy(check_container_toolkit=False))) is None


def test_real_h200_profile_names_computed_from_nvml_numbers_match_the_names_nvml_reports():
    probe = _capture("nvml_probe.json")
    placements = dict((row["profile_id"], row["placements"]) for row in probe["catalog"]["profiles"])
    records = []
    for index, row in probe["gi_profile_info_v2"].items():
        if "error" in row:
            continue
        records.append({"index": int(index), "profile_id": row["id"], "slice_count": row["sliceCount"],
                        "instance_count": row["instanceCount"], "memory_mib": row["memorySizeMB"],
                        "multiprocessors": row["multiprocessorCount"], "copy_engines": row["copyEngineCount"],
                        "decoders": row["decoderCount"], "encoders": row["encoderCount"], "jpegs": row["jpegCount"],
                        "ofas": row["ofaCount"], "placements": placements[row["id"]], "reported_name": None})
    catalog = build_catalog(probe["name"], probe["catalog"]["memory_total_bytes"], records)
    reported = sorted(row["name"] for row in probe["gi_profile_info_v2"].values() if "name" in row)
    assert sorted("MIG " + profile.name for profile in catalog.profiles) == reported == [
        "MIG 1g.18gb", "MIG 1g.18gb+me", "MIG 1g.35gb", "MIG 2g.35gb", "MIG 3g.71gb", "MIG 4g.71gb", "MIG 7g.141gb"]
