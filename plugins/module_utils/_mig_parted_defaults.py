# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Built-in named MIG configs, equivalent to mig-parted's published ``config-default.yaml``.

Private to _layout.py. Kept as Python data (module_utils ship only .py files and target hosts may lack
PyYAML) in the mig-parted v1 file shape, so _layout.py validates it with the very code that validates user
files. Names and contents follow NVIDIA/mig-parted v0.15.0 ``deployments/systemd/config-default.yaml`` for
the GPUs our reference covers (A100 40GB/80GB and their A800 twins, A30, H100 80GB, H100 NVL, H200, H200
NVL). The Blackwell, GB200/GB300, GH200, H100-96GB and H20 entries are left out; a user who needs them
supplies a mig-parted file (``mig_config_file``).

Quirks kept on purpose so a name means what it means to mig-parted: ``all-1g.35gb`` filters on the H200
SXM id only, ``all-1g.24gb.me`` is offered although no GPU here has that profile.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

A100_40GB_DEVICE_IDS = ["0x20B010DE", "0x20B110DE", "0x20F110DE", "0x20F610DE"]
# H100-80GB, H800-80GB, A100-80GB, A800-80GB (the list mig-parted uses for its 80GB entries).
GPU_80GB_DEVICE_IDS = [
    "0x233010DE", "0x233110DE", "0x232210DE", "0x20B210DE",
    "0x20B510DE", "0x20F310DE", "0x20F510DE", "0x232410DE",
]
H100_NVL_DEVICE_IDS = ["0x232110DE", "0x233A10DE"]
H200_DEVICE_IDS = ["0x233510DE", "0x233B10DE"]
A30_DEVICE_ID = "0x20B710DE"


def _on_all(mig_devices: Dict[str, int], device_filter: Optional[Any] = None) -> Dict[str, Any]:
    entry = {"devices": "all", "mig-enabled": True, "mig-devices": mig_devices}
    if device_filter is not None:
        entry["device-filter"] = device_filter
    return entry


def _uniform(profile: str, count: int) -> List[Dict[str, Any]]:
    return [_on_all({profile: count})]


DEFAULT_MIG_CONFIGS = {
    "version": "v1",
    "mig-configs": {
        "all-disabled": [{"devices": "all", "mig-enabled": False}],
        "all-enabled": [_on_all({})],
        # A100-40GB, A800-40GB
        "all-1g.5gb": _uniform("1g.5gb", 7),
        "all-1g.5gb.me": _uniform("1g.5gb+me", 1),
        "all-2g.10gb": _uniform("2g.10gb", 3),
        "all-3g.20gb": _uniform("3g.20gb", 2),
        "all-4g.20gb": _uniform("4g.20gb", 1),
        "all-7g.40gb": _uniform("7g.40gb", 1),
        # 1g.10gb exists on both sizes: 7 per 80GB GPU, 4 (double memory) per 40GB GPU.
        "all-1g.10gb": [
            _on_all({"1g.10gb": 7}, GPU_80GB_DEVICE_IDS),
            _on_all({"1g.10gb": 4}, A100_40GB_DEVICE_IDS),
        ],
        # H100-80GB, H800-80GB, A100-80GB, A800-80GB
        "all-1g.10gb.me": _uniform("1g.10gb+me", 1),
        "all-1g.20gb": _uniform("1g.20gb", 4),
        "all-2g.20gb": _uniform("2g.20gb", 3),
        "all-3g.40gb": _uniform("3g.40gb", 2),
        "all-4g.40gb": _uniform("4g.40gb", 1),
        "all-7g.80gb": _uniform("7g.80gb", 1),
        # A30-24GB
        "all-1g.6gb": _uniform("1g.6gb", 4),
        "all-1g.6gb.me": _uniform("1g.6gb+me", 1),
        "all-2g.12gb": _uniform("2g.12gb", 2),
        "all-2g.12gb.me": _uniform("2g.12gb+me", 1),
        "all-4g.24gb": _uniform("4g.24gb", 1),
        # H100 NVL, H800 NVL
        "all-1g.12gb": _uniform("1g.12gb", 7),
        "all-1g.12gb.me": _uniform("1g.12gb+me", 1),
        "all-1g.24gb": _uniform("1g.24gb", 4),
        "all-1g.24gb.me": _uniform("1g.24gb+me", 1),
        "all-2g.24gb": _uniform("2g.24gb", 3),
        "all-3g.47gb": _uniform("3g.47gb", 2),
        "all-4g.47gb": _uniform("4g.47gb", 1),
        "all-7g.94gb": _uniform("7g.94gb", 1),
        # H200 141GB, H200 NVL
        "all-1g.18gb": _uniform("1g.18gb", 7),
        "all-1g.18gb.me": _uniform("1g.18gb+me", 1),
        "all-1g.35gb": [_on_all({"1g.35gb": 4}, ["0x233510DE"])],
        "all-2g.35gb": _uniform("2g.35gb", 3),
        "all-3g.71gb": _uniform("3g.71gb", 2),
        "all-4g.71gb": _uniform("4g.71gb", 1),
        "all-7g.141gb": _uniform("7g.141gb", 1),
        # One 3g + one 2g + two 1g per GPU (A30: one 2g + two 1g), chosen per model by PCI device id.
        "all-balanced": [
            _on_all({"1g.18gb": 2, "2g.35gb": 1, "3g.71gb": 1}, H200_DEVICE_IDS),
            _on_all({"1g.12gb": 2, "2g.24gb": 1, "3g.47gb": 1}, H100_NVL_DEVICE_IDS),
            _on_all({"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}, GPU_80GB_DEVICE_IDS),
            _on_all({"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}, A100_40GB_DEVICE_IDS),
            _on_all({"1g.6gb": 2, "2g.12gb": 1}, A30_DEVICE_ID),
        ],
    },
}
