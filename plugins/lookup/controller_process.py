# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: controller_process
short_description: The control host and process id of the running ansible-playbook
version_added: 0.2.0
author: gpufleet.mig contributors (@gpufleet)
description:
  - Returns C(<hostname>:<pid>) of the ansible-playbook (or ansible) process that runs the play.
  - The rollout lease records it, so that a run on the same control host can tell that the run holding the lease was
    killed (its process is gone) and take the lease over at once instead of waiting for it to expire.
options: {}
"""

EXAMPLES = r"""
- name: Record which process runs this rollout
  ansible.builtin.set_fact:
    rollout_controller: "{{ lookup('gpufleet.mig.controller_process') }}"
"""

RETURN = r"""
_raw:
  description: One string, C(<hostname>:<pid>).
  type: list
  elements: str
"""

import os
import socket

from ansible.plugins.lookup import LookupBase


def _process(pid):
    """``(argv, parent pid)`` of a process, from /proc; ``None`` where that cannot be read."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
        with open("/proc/%d/stat" % pid, "rb") as handle:
            parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return argv, parent


def _runs_ansible(argv):
    return any(os.path.basename(arg).startswith(b"ansible") for arg in argv[:2])


def _playbook_pid():
    """The outermost ansible process above this one.

    Lookups run in worker processes forked from ansible-playbook, which keep its command line, so the playbook
    process is the last of the ancestors that run ansible. Without /proc, the parent is the best guess.
    """
    found = None
    pid = os.getpid()
    for _depth in range(16):
        info = _process(pid)
        if info is None:
            break
        argv, parent = info
        if _runs_ansible(argv):
            found = pid
        elif found is not None:
            break
        if parent <= 1:
            break
        pid = parent
    return found if found is not None else os.getppid()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return ["%s:%d" % (socket.gethostname(), _playbook_pid())]
