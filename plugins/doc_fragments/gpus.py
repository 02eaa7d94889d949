# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  gpus:
    description:
      - The GPUs of the node the task applies to.
      - V(all), or a list of GPU indices (as C(nvidia-smi) numbers them) and GPU UUIDs (C(GPU-...)).
      - An index or UUID the node does not have fails the task before anything changes.
    type: list
    elements: str
    default: [all]
"""
