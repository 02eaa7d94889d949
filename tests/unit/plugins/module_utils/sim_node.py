"""An in-process simulated GPU node for module_utils tests.

The fleet twin's fake libnvidia-ml sits under the real pynvml (the hardware boundary); nothing of the
product is mocked. ``SimNode.nvidia_smi`` runs the twin's nvidia-smi stand-in in-process and has the
``run_command(argv) -> (rc, stdout, stderr)`` shape of ``AnsibleModule.run_command``, recording each argv.
"""
from __future__ import annotations

import io
from contextlib import contextmanager

import pytest

sim = pytest.importorskip("gpufleet_twin.nvml", reason="the fleet twin's NVML simulator is not installed")
from gpufleet_twin.nvml import smi  # noqa: E402  (after the importorskip above)


class SimNode(object):
    def __init__(self, path):
        self.path = path
        self.commands = []

    def status(self):
        return sim.node_status(self.path)

    def gpu(self, index):
        return self.status()["gpus"][index]

    def modes(self):
        return [(gpu["mig"]["current"], gpu["mig"]["pending"]) for gpu in self.status()["gpus"]]

    def lines(self, index):
        """GPU instances as ``<profile> at <start>:<size>: <compute instance profiles>``, by placement."""
        found = []
        for gi in self.gpu(index).get("gpu_instances", []):
            computes = ", ".join(sorted(ci["profile_name"] for ci in gi["compute_instances"])) or "no compute instance"
            found.append((gi["placement"]["start"], "%s at %d:%d: %s" % (
                gi["profile_name"], gi["placement"]["start"], gi["placement"]["size"], computes)))
        return [line for _, line in sorted(found)]

    def nvidia_smi(self, argv):
        self.commands.append(list(argv))
        out = io.StringIO()
        rc = smi.run(list(argv[1:]), str(self.path), out)
        return rc, out.getvalue(), ""


@contextmanager
def simulated_node(path, driver_version="580.126.09", gpus=None, **extra):
    """Write a node state from a spec and point pynvml at it for the duration of the block."""
    spec = {"name": "unit-node", "driver_version": driver_version,
            "gpus": gpus or [{"model": "A100-SXM4-40GB", "count": 1, "mig_mode": "enabled"}]}
    spec.update(extra)
    sim.create_node_state(path, spec)
    with sim.simulated(path):
        yield SimNode(path)
