# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Shared attribute descriptions for every gpufleet.mig module.

    Use C(gpufleet.mig.attributes) in every module and state the support level
    (and details where support is partial) in the module's own C(attributes)
    block; the descriptions come from here so they read the same everywhere.
    Read-only modules add C(gpufleet.mig.attributes.info_module), which also
    fills in the support levels.
    """

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description:
      - Can run in check mode and return the changed status it predicts without modifying the target.
  diff_mode:
    description:
      - Returns details on what has changed (or would change in check mode) when run in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second run reports no change.
      - This assumes that nothing else changed the GPU node or the cluster in a relevant way between the runs.
"""

    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
    details:
      - This action does not modify state.
"""
