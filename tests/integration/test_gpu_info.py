"""gpufleet.mig.gpu_info through ansible-playbook on simulated nodes.

One fleet holds every scenario as a node, so one playbook run covers them all:

* ``seed``: the seed document's A100-SXM4-40GB on 450.80.02 after ``nvidia-smi mig -cgi 9,14,19 -C``, with a
  process on the 1g.5gb device;
* ``hopper``: two H100s with MIG off and an old toolkit (no nvidia-ctk yet, only nvidia-container-cli);
* ``t4``: a GPU without MIG;
* ``bare``: no NVIDIA driver and no container toolkit.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow

SEED_GPU_UUID = "GPU-4200ccc0-2667-d4cb-9137-f932c716232a"

FLEET = {"nodes": [
    {"name": "seed", "driver_version": "450.80.02",
     "gpus": [{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "uuid": SEED_GPU_UUID,
               "pci_bus_id": "00000000:36:00.0", "mig_devices": ["3g.20gb", "2g.10gb", "1g.5gb"]}],
     "processes": [{"gpu": 0, "pid": 4242, "name": "python3", "used_memory_mib": 1024, "gi": 9, "ci": 0}]},
    {"name": "hopper", "driver_version": "550.54.15", "container_toolkit": {"version": "1.2.0"},
     "gpus": [{"model": "H100-SXM5-80GB", "count": 2}]},
    {"name": "t4", "driver_version": "550.54.15", "gpus": [{"model": "Tesla-T4"}]},
    {"name": "bare", "driver_version": None, "container_toolkit": None, "gpus": [{"model": "A100-SXM4-40GB"}]},
]}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """The fleet and one normal run of the module's scenarios (module-scoped: each run costs seconds)."""
    from conftest import sim_fleet as _unused  # noqa: F401  (documents where SimFleet comes from)
    from conftest import SimFleet
    workdir = tmp_path_factory.mktemp("gpu-info") / "fleet"
    fleet_file = workdir.with_suffix(".yml")
    import yaml
    fleet_file.write_text(yaml.safe_dump(FLEET, sort_keys=False))
    subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "gpufleet-sim"), "up", "--fleet", str(fleet_file),
                    "--workdir", str(workdir)], check=True, capture_output=True, text=True)
    yield SimFleet(workdir, FLEET)
    subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "gpufleet-sim"), "down", "--workdir", str(workdir)],
                   capture_output=True, check=False)
