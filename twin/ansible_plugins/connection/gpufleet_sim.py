# Test-only connection plugin of the gpufleet fleet twin; never shipped (galaxy.yml build_ignore: twin).
from __future__ import annotations

DOCUMENTATION = """
    name: gpufleet_sim
    short_description: run tasks on a simulated GPU node of the gpufleet fleet twin
    description:
        - Runs a simulated node's commands on the controller, in the node's own environment (its NVML state file, the
          nvidia-smi and systemctl stand-ins first on PATH), as if the node were a remote host.
        - Unlike the local connection, ansible.builtin.reboot works with it. The reboot command
          (shutdown -r, systemctl reboot, reboot) never reaches the controller; it reboots the simulated node as
          C(gpufleet-sim reboot) does (Hopper GPUs lose MIG mode, Ampere keeps it, the node's pods restart, enabled
          host services run again). The boot id changes with each such reboot.
        - Any other command that would shut down, halt or reboot is refused, so a mistake never reaches the controller.
    author: gpufleet.mig contributors
    options:
        state:
            description: The simulated node's NVML state file (written by gpufleet-sim up).
            type: str
            required: true
            vars:
                - name: gpufleet_sim_state
        become_success_timeout:
            type: int
            default: 10
            description: As for the local connection.
            vars:
                - name: ansible_local_become_success_timeout
        become_strip_preamble:
            type: bool
            default: true
            description: As for the local connection.
            vars:
                - name: ansible_local_become_strip_preamble
    extends_documentation_fragment:
        - connection_pipelining
"""

import os
import re
import uuid
from contextlib import contextmanager
from typing import Iterator

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.utils.display import Display

display = Display()

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"  # what ansible.builtin.reboot reads on Linux
_REBOOT = re.compile(r"(?:^|[\s'\"/;&|])(?:shutdown\s+(?:-\S*\s+)*-r\b|systemctl\s+(?:--\S+\s+)*reboot\b|reboot(?:\s|'|\"|$))")
_POWER = re.compile(r"(?:^|[\s'\"/;&|])(?:shutdown|poweroff|halt|init\s+[06]|systemctl\s+(?:--\S+\s+)*(?:poweroff|halt|kexec))\b")
_BOOT_ID_NAMESPACE = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


class Connection(LocalConnection):
    """The local connection, with the simulated node's environment and a simulated reboot."""

    transport = "gpufleet_sim"

    def _state_path(self) -> str:
        return str(self.get_option("state"))

    def _boot_id(self) -> bytes:
        from gpufleet_twin.nvml.state import read_state

        state = read_state(self._state_path())
        boot = "%s/%d" % (state["node"], state.get("boot_count", 0))
        return ("%s\n" % uuid.uuid5(_BOOT_ID_NAMESPACE, boot)).encode()

    @contextmanager
    def _node_environment(self) -> Iterator[None]:
        from gpufleet_twin import nvml

        saved = dict(os.environ)
        os.environ.update(nvml.node_env(self._state_path()))
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        text = to_text(cmd)
        if BOOT_ID_FILE in text:
            return 0, self._boot_id(), b""
        if _REBOOT.search(text):
            from gpufleet_twin import nvml

            display.vvv(f"gpufleet_sim: rebooting the simulated node ({self._state_path()}) instead of: {text}")
            nvml.reboot(self._state_path())
            return 0, b"", b""
        if _POWER.search(text):
            raise AnsibleConnectionFailure(f"gpufleet_sim refuses to run a power command on the controller: {text}")
        with self._node_environment():
            return super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
