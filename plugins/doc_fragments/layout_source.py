# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Where a desired MIG layout comes from: the options mig_layout and mig_plan_info share.

    The argument spec is ``layout.layout_source_argument_spec``; the rules between the options are
    ``layout.LAYOUT_SOURCE_MUTUALLY_EXCLUSIVE``.
    """

    DOCUMENTATION = r"""
options:
  config:
    description:
      - Name of the mig-parted config, such as V(all-1g.5gb), V(all-balanced) or a name from O(config_file) or
        O(config_data).
      - Without O(config_file) and O(config_data), the built-in configs are used (mig-parted's
        C(config-default.yaml) for A100, A30, H100 and H200).
      - May be omitted when O(config_file) or O(config_data) holds a single config.
    type: str
  config_data:
    description:
      - A mig-parted v1 config (C(version) and C(mig-configs)), as a mapping or as YAML or JSON text, for example
        read on the control host with C(lookup('ansible.builtin.file', 'mig-config.yaml')).
    type: raw
  config_file:
    description:
      - Path, on the GPU node, of a mig-parted v1 config file (C(version) and C(mig-configs)), in YAML or JSON.
      - Entries follow mig-parted. C(devices) is V(all) or a list of GPU indices, C(device-filter) limits an entry
        to PCI device ids, C(mig-enabled) and C(mig-devices) give the mode and the profile counts. GPUs no entry
        matches are left as they are.
    type: path
  layout:
    description:
      - Inline layout, instead of a config.
      - 'A mapping of MIG device profile to count applies to every MIG-capable GPU, for example
        V({"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 1}); an empty mapping means MIG enabled without devices.'
      - 'A mapping of GPU index to such a mapping sets GPUs one by one, for example
        V({"0": {"1g.5gb": 7}, "1": "disabled"}); V(disabled) means MIG should be off. GPUs not listed are
        left as they are.'
    type: raw
"""
