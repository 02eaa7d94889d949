# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Apply a planner ``GpuPlan`` to one GPU through _gpu.py, recording exactly what was done.

Every NVML write is one *step*. Steps that succeed are returned as records (JSON-able dicts); the first
step that fails raises ``ApplyError`` carrying the records of the steps done before it, the step that
failed and NVML's error. Nothing is rolled back: after a failure the caller re-reads the GPU and reports
its layout as it is, and the next run plans from there (the planner keeps what matches and destroys
empty GPU instances). Writing more to a GPU whose driver just refused a write is the riskier choice.

Order (planner.GpuPlan): destroy each GPU instance's compute instances, then the GPU instance; then create
GPU instances in plan order (largest first), each followed by its compute instances (largest first).

Placement: GPU instances are created at the plan's placement with
``nvmlDeviceCreateGpuInstanceWithPlacement``. Drivers before R460 do not export it (FUNCTION_NOT_FOUND,
docs/hardware.md); then this GPU instance and every later one of the plan is created with
automatic placement (``nvmlDeviceCreateGpuInstance``), in the plan's largest-first order, which is the
order mig-parted relies on. The driver then picks the placement; the step records it as
``placement_source: driver`` and the caller verifies the resulting devices. A full-size compute instance
is created without a placement (it has only one, as ``nvidia-smi mig -cgi ... -C`` does); partial ones
at the planned placement, with the same fallback.

The words and result keys the node modules report with are in _node_report.py (pure, no NVML).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Union

from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu as nvml
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, NvmlCallError
from ansible_collections.gpufleet.mig.plugins.module_utils._node_report import describe_step, placement

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ansible_collections.gpufleet.mig.plugins.module_utils._planner import ExistingGpuInstance, GpuPlan, PlannedComputeInstance, PlannedGpuInstance
    from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import GpuCatalog

PLACEMENT_EXPLICIT = "explicit"
PLACEMENT_DRIVER = "driver"


class ApplyError(MigError):
    """A write step failed. ``done`` lists the step records before it, ``step`` describes the failed one."""

    def __init__(self, gpu_index: int, step: Dict[str, Any], cause: Exception, done: Iterable[Dict[str, Any]]) -> None:
        self.gpu_index = gpu_index
        self.step = step
        self.cause = cause
        self.done = list(done)
        super(ApplyError, self).__init__("%s failed: %s" % (describe_step(step), cause))


class _StepRunner(object):
    """Runs write steps on one GPU, keeping the records of those that succeeded."""

    def __init__(self, gpu_index: int) -> None:
        self.gpu_index = gpu_index
        self.done = []

    def run(self, step: Dict[str, Any], write: Callable[[], Optional[Dict[str, Any]]]) -> Dict[str, Any]:
        """``write()`` performs the step and returns extra record fields; NvmlCallError -> ApplyError."""
        try:
            extra = write() or {}
        except NvmlCallError as error:
            raise ApplyError(self.gpu_index, step, error, self.done)
        record = dict(step)
        record.update(extra)
        self.done.append(record)
        return record


def _field(item: Any, *names: str) -> Any:
    """First of ``names`` present on a facts record (dict) or a planner object (attributes)."""
    for name in names:
        if isinstance(item, dict):
            if name in item:
                return item[name]
        elif hasattr(item, name):
            return getattr(item, name)
    return None


def _destroy_gpu_instance(runner: _StepRunner, gpu_instance: Union[Dict[str, Any], ExistingGpuInstance]) -> None:
    """Compute instances (highest id first), then the GPU instance. ``gpu_instance``: planner or facts form."""
    gi_id = _field(gpu_instance, "id")
    profile = _field(gpu_instance, "name", "profile_name")
    for ci in sorted(_field(gpu_instance, "compute_instances") or (), key=lambda item: -_field(item, "id")):
        ci_id = _field(ci, "id")
        runner.run({"action": "destroy_compute_instance", "gpu_instance_id": gi_id, "compute_instance_id": ci_id,
                    "profile": _field(ci, "name", "profile_name")},
                   lambda ci_id=ci_id: nvml.destroy_compute_instance(runner.gpu_index, gi_id, ci_id))
    runner.run({"action": "destroy_gpu_instance", "gpu_instance_id": gi_id, "profile": profile,
                "placement": placement(_field(gpu_instance, "placement"))},
               lambda: nvml.destroy_gpu_instance(runner.gpu_index, gi_id))


class _GpuInstanceCreator(object):
    """Creates GPU instances at planned placements, switching to driver placement where NVML lacks it."""

    def __init__(self, runner: _StepRunner) -> None:
        self.runner = runner
        self.driver_places = False

    def create(self, planned: PlannedGpuInstance) -> Dict[str, Any]:
        step = {"action": "create_gpu_instance", "profile": planned.name, "profile_id": planned.profile_id,
                "placement": None if self.driver_places else placement(planned.placement)}

        def write() -> Dict[str, Any]:
            try:
                created = nvml.create_gpu_instance(self.runner.gpu_index, planned.profile_id,
                                                   None if self.driver_places else planned.placement)
                source = PLACEMENT_DRIVER if self.driver_places else PLACEMENT_EXPLICIT
            except NvmlCallError as error:
                if self.driver_places or error.code != nvml.NVML_ERROR_FUNCTION_NOT_FOUND:
                    raise
                self.driver_places = True
                step["placement"] = None
                created = nvml.create_gpu_instance(self.runner.gpu_index, planned.profile_id, None)
                source = PLACEMENT_DRIVER
            return {"gpu_instance_id": created["id"], "placement": placement(created["placement"]),
                    "planned_placement": placement(planned.placement), "placement_source": source}

        return self.runner.run(step, write)


def _create_compute_instance(runner: _StepRunner, gi_id: int, gi_slices: int, planned_ci: PlannedComputeInstance) -> None:
    full_size = planned_ci.slice_count >= gi_slices
    step = {"action": "create_compute_instance", "gpu_instance_id": gi_id, "profile": planned_ci.name,
            "profile_index": planned_ci.profile_index}

    def write() -> Dict[str, Any]:
        where = None if full_size else planned_ci.placement
        try:
            created = nvml.create_compute_instance(runner.gpu_index, gi_id, planned_ci.profile_index, where)
        except NvmlCallError as error:
            if where is None or error.code != nvml.NVML_ERROR_FUNCTION_NOT_FOUND:
                raise
            created = nvml.create_compute_instance(runner.gpu_index, gi_id, planned_ci.profile_index, None)
        return {"compute_instance_id": created["id"], "placement": placement(created["placement"])}

    runner.run(step, write)


def apply_gpu_plan(gpu_index: int, plan: GpuPlan, catalog: GpuCatalog) -> List[Dict[str, Any]]:
    """Carry out ``plan`` (planner.GpuPlan) on GPU ``gpu_index``; returns the step records, in order.

    Must run inside ``gpu.NvmlSession()``. ``catalog`` (the GPU's GpuCatalog) gives each GI profile's
    compute-slice count, to tell full-size compute instances from partial ones. Raises ApplyError.
    """
    runner = _StepRunner(gpu_index)
    for gpu_instance in plan.destroy:
        _destroy_gpu_instance(runner, gpu_instance)
    creator = _GpuInstanceCreator(runner)
    for planned in plan.create:
        record = creator.create(planned)
        gi_slices = catalog.by_id(planned.profile_id).slice_count
        for planned_ci in sorted(planned.compute_instances, key=lambda ci: (-ci.slice_count, ci.placement)):
            _create_compute_instance(runner, record["gpu_instance_id"], gi_slices, planned_ci)
    return list(runner.done)


def destroy_gpu_instances(gpu_index: int, gpu_instances: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Destroy GPU instances given as ``read_node_facts`` records (their compute instances first).

    Returns the step records; raises ApplyError like ``apply_gpu_plan``.
    """
    runner = _StepRunner(gpu_index)
    for gpu_instance in sorted(gpu_instances, key=lambda gi: gi["id"]):
        _destroy_gpu_instance(runner, gpu_instance)
    return list(runner.done)
