# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Facts about one GPU node, read through NVML, that survive a node without a usable NVIDIA driver.

``gpu.read_node_facts`` assumes NVML initialises. A fleet has nodes where it does not: no driver installed
(``nvmlInit`` answers LIBRARY_NOT_FOUND, the libnvidia-ml shared library is missing), a driver whose kernel
module is not loaded (DRIVER_NOT_LOADED), or a half-upgraded one (LIB_RM_VERSION_MISMATCH). Those come back
here as ``driver_loaded: false`` with the NVML error, so ``gpu_info`` can report them and ``driver_check``
can say "no NVIDIA driver" instead of crashing. Any NVML failure after a successful initialisation is a
real error and propagates as ``NvmlCallError``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu as gpu
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import NvmlCallError

NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
# nvmlInit codes that mean "there is no NVIDIA driver here" rather than "the driver is broken".
NO_DRIVER_CODES = (NVML_ERROR_DRIVER_NOT_LOADED, NVML_ERROR_LIBRARY_NOT_FOUND)

_INIT_CALLS = ("nvmlInit", "nvmlInitWithFlags", "nvmlInit_v2")


def _json_safe(value: Any) -> Any:
    """Decode any bytes left in NVML data (older pynvml returns bytes for strings) so results serialise."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return dict((_json_safe(key), _json_safe(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def driver_absent_facts(error: NvmlCallError) -> Dict[str, Any]:
    """The facts of a node whose NVML did not initialise."""
    return {
        "driver_loaded": False,
        "driver_version": None,
        "cuda_driver_version": None,
        "nvml_version": None,
        "gpus": [],
        "driver_error": {"call": error.call, "code": error.code, "text": error.text,
                         "no_driver": error.code in NO_DRIVER_CODES},
    }


def read_node(read_facts: Optional[Callable[[], Dict[str, Any]]] = None) -> Dict[str, Any]:
    """``gpu.read_node_facts()`` plus ``driver_loaded``, inside one NVML session.

    ``read_facts`` defaults to ``gpu.read_node_facts``. When ``nvmlInit`` itself fails the result is
    ``driver_absent_facts(error)`` (``driver_error.no_driver`` tells "not installed / not loaded" from other
    initialisation failures).
    """
    read_facts = read_facts or gpu.read_node_facts
    try:
        with gpu.NvmlSession():
            facts = read_facts()
    except NvmlCallError as error:
        if error.call in _INIT_CALLS:
            return driver_absent_facts(error)
        raise
    result = {"driver_loaded": True}
    result.update(_json_safe(facts))
    return result


def driver_failure_message(node: Dict[str, Any], require_driver: bool) -> Optional[str]:
    """Why a read-only task must fail on this node, or None.

    A node without a driver (``no_driver``) fails only when the driver is required; any other
    initialisation failure (a driver present but unusable) always fails, because reporting such a node as
    driverless would hide a fault the operator has to fix.
    """
    if node.get("driver_loaded"):
        return None
    error = node["driver_error"]
    if error["no_driver"] and not require_driver:
        return None
    advice = "; install and load the NVIDIA driver, or set require_driver: false" if error["no_driver"] else ""
    return "NVML cannot be initialised on this node: %s failed with %s (NVML error %s)%s" % (
        error["call"], error["text"], error["code"], advice)
