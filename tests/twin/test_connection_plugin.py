"""The twin's gpufleet_sim connection: the node's environment, a simulated reboot, nothing powers off the controller."""
from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader

from gpufleet_twin import nvml

PLUGIN = Path(__file__).resolve().parents[2] / "twin" / "ansible_plugins" / "connection" / "gpufleet_sim.py"


@pytest.fixture
def connection(tmp_path: Path):
    connection_loader.add_directory(str(PLUGIN.parent))
    state = tmp_path / "n1" / "state.json"
    nvml.create_node_state(state, {"name": "n1", "driver_version": "550.54.15",
                                   "gpus": [{"model": "H100-SXM5-80GB", "mig_mode": "enabled"}, {"model": "A100-SXM4-40GB", "mig_mode": "enabled"}],
                                   "host_services": [{"name": "nvidia-persistenced", "active": False}]})
    conn = connection_loader.get("gpufleet_sim", PlayContext(), None)
    conn.set_options(var_options={"gpufleet_sim_state": str(state)})
    conn._connect()
    return conn, state


def test_commands_run_in_the_node_environment(connection):
    conn, state = connection
    rc, out, _ = conn.exec_command("/bin/sh -c 'systemctl is-active nvidia-persistenced; echo $GPUFLEET_SIM_STATE'")
    assert out.decode().splitlines() == ["inactive", str(state.resolve())]


def test_the_reboot_command_reboots_the_simulated_node_and_changes_the_boot_id(connection):
    conn, state = connection
    boot_id = conn.exec_command("/bin/sh -c 'cat /proc/sys/kernel/random/boot_id && sleep 0'")[1]
    assert conn.exec_command("/bin/sh -c '/sbin/shutdown -r 0 \"Reboot by gpufleet.mig\" && sleep 0'")[0] == 0
    status = nvml.node_status(state)
    assert status["boot_count"] == 1
    assert [gpu["mig"]["current"] for gpu in status["gpus"]] == ["disabled", "enabled"]  # Hopper loses MIG, A100 keeps it
    assert conn.exec_command("cat /proc/sys/kernel/random/boot_id")[1] != boot_id


@pytest.mark.parametrize("command", ["/bin/sh -c 'shutdown -h now'", "poweroff", "/bin/sh -c 'systemctl halt'"])
def test_other_power_commands_never_reach_the_controller(connection, command):
    conn, state = connection
    with pytest.raises(AnsibleConnectionFailure, match="refuses"):
        conn.exec_command(command)
    assert nvml.node_status(state)["boot_count"] == 0


def test_a_command_on_a_node_does_not_load_the_simulator(tmp_path: Path) -> None:
    """Ansible forks a worker per host and task, and the connection runs each command in the node's environment:
    that must cost what a connection costs, not the simulator's import (about 0.05 s of CPU per host and task)."""
    import subprocess
    import sys

    state = tmp_path / "n1" / "state.json"
    nvml.create_node_state(state, {"name": "n1", "driver_version": "550.54.15", "gpus": [{"model": "A30-24GB"}]})
    probe = (
        "import sys; from gpufleet_twin import nvml; nvml.node_env(%r); nvml.read_state(%r); "
        "print(sorted(m for m in ('gpufleet_twin.nvml.core', 'gpufleet_twin.nvml.hardware', 'gpufleet_twin.nvml.library', 'yaml') if m in sys.modules))"
        % (str(state), str(state))
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60).stdout
    assert loaded.strip() == "[]"
    # The names the package offers from the simulator still resolve, on first use.
    assert nvml.NodeSpecError.__module__ == "gpufleet_twin.nvml.spec"
    assert "A30-24GB" in nvml.known_models()
