# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Can this node run MIG in Kubernetes? Pure checks over node facts (``node_info.read_node``) and toolkit facts
(``toolkit.detect_container_toolkit``).

Each check is ``{name, ok, detail}`` (plus ``gpu``, the GPU index, for per-GPU checks); the details of the
failed ones, joined, make the task's error message, so every detail names the value found, the value wanted
and the option that changes the policy.

Minimum drivers are policy data, not profile tables:

* ``min_driver_version`` 450.80.02: the R450 driver NVIDIA's "MIG Support in Kubernetes" requires;
* per model, from the MIG User Guide "Deployment Considerations" (docs/hardware.md): A100 450.80.02,
  A30 460.73.01, H100 525.85.12, H200 550.90.07, B200 570.133.20. H100 NVL is covered by the H100 entry
  (its NVML name "NVIDIA H100 NVL" contains H100).

A model key matches a GPU when it appears as a whole word in the GPU's NVML name (``H100`` matches
``NVIDIA H100 80GB HBM3``; ``A30`` does not match ``A300``), case-insensitively; when several keys match,
the longest wins, so a user can add ``H100 NVL`` beside ``H100``.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.gpufleet.mig.plugins.module_utils._selection import select_gpus
from ansible_collections.gpufleet.mig.plugins.module_utils._toolkit import (
    DEFAULT_MIN_CONTAINER_TOOLKIT_VERSION,
    DEFAULT_MIN_NVIDIA_DOCKER2_VERSION,
    check_container_toolkit,
)
from ansible_collections.gpufleet.mig.plugins.module_utils._versions import parse_version

DEFAULT_MIN_DRIVER_VERSION = "450.80.02"
DEFAULT_MODEL_MIN_DRIVER_VERSIONS = {
    "A100": "450.80.02",
    "A30": "460.73.01",
    "H100": "525.85.12",
    "H200": "550.90.07",
    "B200": "570.133.20",
}

_CHECKED_GPU_KEYS = ("index", "uuid", "name", "pci_device_id", "mig_capable", "mig_mode")


class DriverPolicy(object):
    """The minimums a node is held to; versions are validated (VersionError names the option) on creation."""

    def __init__(self, min_driver_version: str = DEFAULT_MIN_DRIVER_VERSION, model_min_driver_versions: Optional[Dict[str, str]] = None,
                 check_container_toolkit: bool = True, min_container_toolkit_version: str = DEFAULT_MIN_CONTAINER_TOOLKIT_VERSION,
                 min_nvidia_docker2_version: str = DEFAULT_MIN_NVIDIA_DOCKER2_VERSION) -> None:
        if model_min_driver_versions is None:
            model_min_driver_versions = DEFAULT_MODEL_MIN_DRIVER_VERSIONS
        self.min_driver_version = str(parse_version(min_driver_version, "min_driver_version"))
        self.model_min_driver_versions = dict(
            (str(model), str(parse_version(version, "model_min_driver_versions[%s]" % model)))
            for model, version in model_min_driver_versions.items())
        self.check_container_toolkit = bool(check_container_toolkit)
        self.min_container_toolkit_version = str(
            parse_version(min_container_toolkit_version, "min_container_toolkit_version"))
        self.min_nvidia_docker2_version = str(parse_version(min_nvidia_docker2_version, "min_nvidia_docker2_version"))


def model_minimum(gpu_name: Optional[str], model_min_driver_versions: Dict[str, str]) -> Optional[Tuple[str, str]]:
    """``(model key, minimum driver)`` for a GPU name, or None when no key matches."""
    matches = []
    for model, version in model_min_driver_versions.items():
        pattern = r"(?<![A-Za-z0-9])%s(?![A-Za-z0-9])" % re.escape(model.strip())
        if model.strip() and re.search(pattern, gpu_name or "", re.IGNORECASE):
            matches.append((len(model.strip()), model, version))
    if not matches:
        return None
    _length, model, version = max(matches)
    return model, version


def _check(name: str, ok: bool, detail: str, gpu: Optional[int] = None) -> Dict[str, Any]:
    result = {"name": name, "ok": bool(ok), "detail": detail}
    if gpu is not None:
        result["gpu"] = gpu
    return result


def _driver_absent_check(node: Dict[str, Any]) -> Dict[str, Any]:
    error = node.get("driver_error") or {}
    cause = "%s failed with %s (NVML error %s)" % (error.get("call", "nvmlInit"), error.get("text"), error.get("code"))
    if error.get("no_driver", True):
        return _check("nvidia_driver", False, "no NVIDIA driver on this node: %s; install and load the NVIDIA "
                                              "datacenter driver" % cause)
    return _check("nvidia_driver", False, "the NVIDIA driver on this node is not usable: %s" % cause)


def _gpu_label(gpu: Dict[str, Any]) -> str:
    return "GPU %d (%s)" % (gpu["index"], gpu["name"])


def gpu_min_driver_version(gpu: Dict[str, Any], policy: DriverPolicy) -> str:
    """The oldest driver accepted for one GPU: min_driver_version, raised by a matching model minimum."""
    matched = model_minimum(gpu.get("name"), policy.model_min_driver_versions)
    if matched is not None and parse_version(matched[1]) > parse_version(policy.min_driver_version):
        return matched[1]
    return policy.min_driver_version


def _gpu_checks(gpu: Dict[str, Any], driver: str, policy: DriverPolicy) -> List[Dict[str, Any]]:
    checks = []
    matched = model_minimum(gpu["name"], policy.model_min_driver_versions)
    # A model minimum at or below min_driver_version would only repeat the driver_version check.
    if matched is not None and gpu_min_driver_version(gpu, policy) != policy.min_driver_version:
        model, minimum = matched
        if parse_version(driver) >= parse_version(minimum):
            detail = "%s: driver %s is at least %s, the %s minimum (model_min_driver_versions)" % (
                _gpu_label(gpu), driver, minimum, model)
            checks.append(_check("model_driver_version", True, detail, gpu["index"]))
        else:
            detail = "%s needs NVIDIA driver %s or newer for MIG, the %s minimum (model_min_driver_versions); " \
                     "the node runs %s" % (_gpu_label(gpu), minimum, model, driver)
            checks.append(_check("model_driver_version", False, detail, gpu["index"]))
    if gpu.get("mig_capable"):
        mode = gpu.get("mig_mode") or {}
        detail = "%s supports MIG (mode: current %s, pending %s)" % (
            _gpu_label(gpu), mode.get("current"), mode.get("pending"))
        checks.append(_check("mig_capable", True, detail, gpu["index"]))
    else:
        detail = "%s does not support MIG with driver %s (NVML reports no MIG mode); leave it out with the gpus " \
                 "option if it is not meant for MIG" % (_gpu_label(gpu), driver)
        checks.append(_check("mig_capable", False, detail, gpu["index"]))
    return checks


def evaluate_node(node: Dict[str, Any], toolkit: Optional[Dict[str, Any]], policy: DriverPolicy, gpus: Any = "all") -> List[Dict[str, Any]]:
    """Every check for one node, in a stable order: driver, GPUs, container toolkit.

    ``node`` is ``node_info.read_node()``; ``toolkit`` is ``detect_container_toolkit()`` or None when the
    toolkit is not checked. ``gpus`` selects the GPUs the per-GPU checks cover (GpuSelectionError if it
    names a GPU the node lacks).
    """
    checks = []
    if not node.get("driver_loaded"):
        checks.append(_driver_absent_check(node))
    else:
        driver = node["driver_version"]
        parse_version(driver, "the driver version NVML reports")
        checks.append(_check("nvidia_driver", True, "NVIDIA driver %s is loaded (CUDA %s, NVML %s)" % (
            driver, node.get("cuda_driver_version"), node.get("nvml_version"))))
        if parse_version(driver) >= parse_version(policy.min_driver_version):
            checks.append(_check("driver_version", True, "NVIDIA driver %s is at least %s (min_driver_version)" % (
                driver, policy.min_driver_version)))
        else:
            checks.append(_check("driver_version", False, "NVIDIA driver %s is older than %s, the minimum for MIG "
                                                          "(min_driver_version); upgrade the driver" % (
                                                              driver, policy.min_driver_version)))
        if not node.get("gpus"):
            checks.append(_check("gpus_present", False, "no NVIDIA GPU on this node (NVML lists none)"))
        for gpu in select_gpus(node.get("gpus") or [], gpus):
            checks.extend(_gpu_checks(gpu, driver, policy))
    if policy.check_container_toolkit and toolkit is not None:
        ok, detail = check_container_toolkit(toolkit, policy.min_container_toolkit_version,
                                             policy.min_nvidia_docker2_version)
        checks.append(_check("container_toolkit", ok, detail))
    return checks


def checked_facts(node: Dict[str, Any], toolkit: Optional[Dict[str, Any]], policy: DriverPolicy, gpus: Any = "all") -> Dict[str, Any]:
    """The facts the checks looked at, for the task result (returned also when a check fails)."""
    facts = dict((key, node.get(key)) for key in ("driver_loaded", "driver_version", "cuda_driver_version",
                                                  "nvml_version"))
    if not node.get("driver_loaded"):
        facts["driver_error"] = node.get("driver_error")
    facts["gpus"] = []
    for gpu in select_gpus(node.get("gpus") or [], gpus):
        entry = dict((key, gpu.get(key)) for key in _CHECKED_GPU_KEYS)
        entry["min_driver_version"] = gpu_min_driver_version(gpu, policy)
        facts["gpus"].append(entry)
    facts["container_toolkit"] = toolkit
    return facts


def failure_message(checks: List[Dict[str, Any]]) -> Optional[str]:
    """The task's error message, or None when every check passed."""
    failed = [check["detail"] for check in checks if not check["ok"]]
    if not failed:
        return None
    return "This node cannot run MIG in Kubernetes: %s" % "; ".join(failed)
