# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Apply a planner ``GpuPlan`` to one GPU through gpu.py, recording exactly what was done.

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

The reporting helpers at the end (``describe_gpu``, ``describe_processes``, ``mig_devices``,
``layout_lines``) turn ``gpu.read_node_facts()`` GPU records into the words and result keys the node
modules share.
"""

from __future__ import annotations

from ansible_collections.gpufleet.mig.plugins.module_utils import gpu as nvml
from ansible_collections.gpufleet.mig.plugins.module_utils.errors import MigError, NvmlCallError

PLACEMENT_EXPLICIT = "explicit"
PLACEMENT_DRIVER = "driver"


class MigTaskError(MigError):
    """A failure a node module reports with structured result keys besides ``msg``.

    ``details`` holds them (for example ``changed``, ``gpus`` with what was done and what each GPU looks
    like now, ``nvml_call`` / ``nvml_code``); a module passes them to ``fail_json`` as they are.
    """

    def __init__(self, message, **details):
        super(MigTaskError, self).__init__(message)
        self.details = details


class ApplyError(MigError):
    """A write step failed. ``done`` lists the step records before it, ``step`` describes the failed one."""

    def __init__(self, gpu_index, step, cause, done):
        self.gpu_index = gpu_index
        self.step = step
        self.cause = cause
        self.done = list(done)
        super(ApplyError, self).__init__("%s failed: %s" % (describe_step(step), cause))


def _placement(pair_or_dict):
    if pair_or_dict is None:
        return None
    if isinstance(pair_or_dict, dict):
        return {"start": int(pair_or_dict["start"]), "size": int(pair_or_dict["size"])}
    start, size = pair_or_dict
    return {"start": int(start), "size": int(size)}


def placement_text(placement):
    """``{"start": 4, "size": 4}`` -> ``4:4`` (nvidia-smi's notation)."""
    placement = _placement(placement)
    return "?" if placement is None else "%d:%d" % (placement["start"], placement["size"])


def describe_step(step):
    """One step record (done or attempted) in words, as error messages and summaries use it."""
    action = step["action"]
    if action == "destroy_compute_instance":
        return "destroy compute instance %d (%s) of GPU instance %d" % (
            step["compute_instance_id"], step.get("profile") or "unknown profile", step["gpu_instance_id"])
    if action == "destroy_gpu_instance":
        return "destroy GPU instance %d (%s at %s)" % (
            step["gpu_instance_id"], step.get("profile") or "unknown profile", placement_text(step.get("placement")))
    if action == "create_gpu_instance":
        where = placement_text(step["placement"]) if step.get("placement") else "a placement the driver picks"
        text = "create GPU instance %s at %s" % (step["profile"], where)
        if step.get("gpu_instance_id") is not None:
            text = "create GPU instance %s at %s (GPU instance %d)" % (step["profile"], where, step["gpu_instance_id"])
        return text
    if action == "create_compute_instance":
        text = "create compute instance %s in GPU instance %d" % (step["profile"], step["gpu_instance_id"])
        if step.get("compute_instance_id") is not None:
            text += " (compute instance %d)" % step["compute_instance_id"]
        return text
    return action


class _StepRunner(object):
    """Runs write steps on one GPU, keeping the records of those that succeeded."""

    def __init__(self, gpu_index):
        self.gpu_index = gpu_index
        self.done = []

    def run(self, step, write):
        """``write()`` performs the step and returns extra record fields; NvmlCallError -> ApplyError."""
        try:
            extra = write() or {}
        except NvmlCallError as error:
            raise ApplyError(self.gpu_index, step, error, self.done)
        record = dict(step)
        record.update(extra)
        self.done.append(record)
        return record


def _field(item, *names):
    """First of ``names`` present on a facts record (dict) or a planner object (attributes)."""
    for name in names:
        if isinstance(item, dict):
            if name in item:
                return item[name]
        elif hasattr(item, name):
            return getattr(item, name)
    return None


def _destroy_gpu_instance(runner, gpu_instance):
    """Compute instances (highest id first), then the GPU instance. ``gpu_instance``: planner or facts form."""
    gi_id = _field(gpu_instance, "id")
    profile = _field(gpu_instance, "name", "profile_name")
    for ci in sorted(_field(gpu_instance, "compute_instances") or (), key=lambda item: -_field(item, "id")):
        ci_id = _field(ci, "id")
        runner.run({"action": "destroy_compute_instance", "gpu_instance_id": gi_id, "compute_instance_id": ci_id,
                    "profile": _field(ci, "name", "profile_name")},
                   lambda ci_id=ci_id: nvml.destroy_compute_instance(runner.gpu_index, gi_id, ci_id))
    runner.run({"action": "destroy_gpu_instance", "gpu_instance_id": gi_id, "profile": profile,
                "placement": _placement(_field(gpu_instance, "placement"))},
               lambda: nvml.destroy_gpu_instance(runner.gpu_index, gi_id))


class _GpuInstanceCreator(object):
    """Creates GPU instances at planned placements, switching to driver placement where NVML lacks it."""

    def __init__(self, runner):
        self.runner = runner
        self.driver_places = False

    def create(self, planned):
        step = {"action": "create_gpu_instance", "profile": planned.name, "profile_id": planned.profile_id,
                "placement": None if self.driver_places else _placement(planned.placement)}

        def write():
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
            return {"gpu_instance_id": created["id"], "placement": _placement(created["placement"]),
                    "planned_placement": _placement(planned.placement), "placement_source": source}

        return self.runner.run(step, write)


def _create_compute_instance(runner, gi_id, gi_slices, planned_ci):
    full_size = planned_ci.slice_count >= gi_slices
    step = {"action": "create_compute_instance", "gpu_instance_id": gi_id, "profile": planned_ci.name,
            "profile_index": planned_ci.profile_index}

    def write():
        placement = None if full_size else planned_ci.placement
        try:
            created = nvml.create_compute_instance(runner.gpu_index, gi_id, planned_ci.profile_index, placement)
        except NvmlCallError as error:
            if placement is None or error.code != nvml.NVML_ERROR_FUNCTION_NOT_FOUND:
                raise
            created = nvml.create_compute_instance(runner.gpu_index, gi_id, planned_ci.profile_index, None)
        return {"compute_instance_id": created["id"], "placement": _placement(created["placement"])}

    runner.run(step, write)


def apply_gpu_plan(gpu_index, plan, catalog):
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


def destroy_gpu_instances(gpu_index, gpu_instances):
    """Destroy GPU instances given as ``read_node_facts`` records (their compute instances first).

    Returns the step records; raises ApplyError like ``apply_gpu_plan``.
    """
    runner = _StepRunner(gpu_index)
    for gpu_instance in sorted(gpu_instances, key=lambda gi: gi["id"]):
        _destroy_gpu_instance(runner, gpu_instance)
    return list(runner.done)


# ----------------------------------------------------------------------------------------- reporting
def describe_gpu(gpu):
    """``GPU 0 (NVIDIA A100-SXM4-40GB, 00000000:07:00.0)`` for messages."""
    return "GPU %d (%s, %s)" % (gpu["index"], gpu.get("name") or "unknown model", gpu.get("pci_bus_id") or gpu.get("uuid"))


def gpu_identity(gpu):
    """The keys every per-GPU result entry starts with."""
    return {"index": gpu["index"], "uuid": gpu.get("uuid"), "name": gpu.get("name"), "pci_bus_id": gpu.get("pci_bus_id")}


def describe_processes(processes):
    """``pid 4242 (python3) on GPU instance 13, pid 77 (trainer)``: who blocks a destroy or a reset."""
    words = []
    for process in sorted(processes, key=lambda item: item["pid"]):
        text = "pid %d" % process["pid"]
        if process.get("name"):
            text += " (%s)" % process["name"]
        if process.get("gpu_instance_id") is not None:
            text += " on GPU instance %d" % process["gpu_instance_id"]
        words.append(text)
    return ", ".join(words)


def processes_on_gpu_instances(gpu, gpu_instance_ids):
    wanted = set(gpu_instance_ids)
    return [process for process in gpu.get("processes") or () if process.get("gpu_instance_id") in wanted]


def mig_devices(gpu):
    """The MIG devices of a ``read_node_facts`` GPU record: one entry per compute instance, in
    nvidia-smi device order, with profile, placement, UUID and memory."""
    devices = []
    for gi in gpu.get("gpu_instances") or ():
        for ci in gi.get("compute_instances") or ():
            devices.append({
                "profile": ci.get("profile_name"),
                "gpu_instance_id": gi["id"],
                "compute_instance_id": ci["id"],
                "gpu_instance_profile": gi.get("profile_name"),
                "placement": _placement(gi.get("placement")),
                "compute_placement": _placement(ci.get("placement")),
                "uuid": ci.get("mig_uuid"),
                "mig_device_index": ci.get("mig_device_index"),
                "memory_mib": gi.get("memory_mib"),
            })
    return sorted(devices, key=lambda device: (device["mig_device_index"] is None, device["mig_device_index"],
                                               device["gpu_instance_id"], device["compute_instance_id"]))


def _layout_line(profile, placement, compute_names):
    return "%s at %s: %s" % (profile, placement_text(placement), ", ".join(compute_names) if compute_names
                             else "no compute instance")


def layout_lines(gpu_instances):
    """One line per GPU instance (``3g.20gb at 4:4: 3g.20gb``), ordered by placement: the diff form.

    Accepts ``read_node_facts`` records and planner ``PlannedGpuInstance`` objects alike, so a check-mode
    prediction and a re-read after the run print the same way. Ids are left out on purpose: a planned
    instance has none yet.
    """
    lines = []
    for gi in gpu_instances:
        if isinstance(gi, dict):
            profile, placement = gi.get("profile_name"), gi.get("placement")
            computes = [ci.get("profile_name") or "?" for ci in gi.get("compute_instances") or ()]
        else:
            profile, placement = gi.name, gi.placement
            computes = [ci.name for ci in getattr(gi, "compute_instances", ())]
        placement = _placement(placement)
        lines.append(((placement or {}).get("start", -1), _layout_line(profile, placement, sorted(computes))))
    return [line for _start, line in sorted(lines)]
