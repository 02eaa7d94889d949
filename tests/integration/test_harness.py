"""The harness itself: a playbook on a simulated node reaches that node's GPUs through pynvml."""
from __future__ import annotations

from fleet_harness import one_node_spec


def test_modules_on_a_simulated_node_see_its_gpus_through_pynvml(sim_fleet):
    fleet = sim_fleet(one_node_spec("H100-SXM5-80GB", count=2))
    run = fleet.play([
        {"name": "Read GPU names with the node's interpreter", "ansible.builtin.command": {
            "argv": ["{{ ansible_python_interpreter }}", "-c",
                     "import pynvml; pynvml.nvmlInit(); "
                     "print([pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(pynvml.nvmlDeviceGetCount())])"]},
         "changed_when": False},
    ])
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.task("Read GPU names with the node's interpreter").result["stdout"] == "['NVIDIA H100 80GB HBM3', 'NVIDIA H100 80GB HBM3']"
