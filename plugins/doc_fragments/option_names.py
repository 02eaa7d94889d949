# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  option_names:
    description:
      - The names failure messages use for this module's options, a mapping of option to name, for example
        C(timeout) to C(drain_timeout). A role that sets an option from a playbook variable passes the variable's
        name, so a message advises what the user sets. Options not listed keep their own name.
      - A key that is not an option of the module fails the task.
    type: dict
    default: {}
"""
