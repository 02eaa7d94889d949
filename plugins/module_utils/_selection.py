# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which GPUs of a node a task addresses: the ``gpus`` option shared by the node modules.

``gpus`` is ``all`` or a list whose items are GPU indices or GPU UUIDs (``GPU-…``).  Selection is
resolved against the facts ``gpu.read_node_facts`` returns, so an index or UUID that the node does
not have fails before anything changes.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Union

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError

ALL_GPUS = "all"


class GpuSelectionError(MigError):
    """The ``gpus`` option names a GPU the node does not have, or is malformed."""


def _as_index(item: Any) -> Optional[int]:
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item
    text = str(item).strip()
    if text.isdigit():
        return int(text)
    return None


def normalize_selection(gpus: Any, option: str = "gpus") -> Union[str, List[Union[int, str]]]:
    """``all`` (or ``["all"]``) → ``"all"``; otherwise a list of ints and UUID strings, order kept.

    ``option`` is what messages call the selection (the playbook variable a role sets it from).
    """
    if gpus is None:
        return ALL_GPUS
    if isinstance(gpus, (str, int)) and not isinstance(gpus, bool):
        gpus = [gpus]
    items = list(gpus)
    if len(items) == 1 and str(items[0]).strip().lower() == ALL_GPUS:
        return ALL_GPUS
    normalized = []
    for item in items:
        index = _as_index(item)
        if index is not None:
            normalized.append(index)
            continue
        text = str(item).strip()
        if not text.upper().startswith("GPU-"):
            raise GpuSelectionError(
                "%s: %r is neither a GPU index nor a GPU UUID (GPU-…); use 'all', indices such as 0, "
                "or UUIDs as nvidia-smi -L prints them" % (option, item))
        normalized.append(text)
    if not normalized:
        raise GpuSelectionError("%s: the list is empty; use 'all' or name at least one GPU" % option)
    return normalized


def select_gpus(gpu_facts: Iterable[Dict[str, Any]], gpus: Any, option: str = "gpus") -> List[Dict[str, Any]]:
    """Return the facts of the selected GPUs, in node index order, without duplicates."""
    selection = normalize_selection(gpus, option)
    if selection == ALL_GPUS:
        return list(gpu_facts)
    by_index = dict((gpu["index"], gpu) for gpu in gpu_facts)
    by_uuid = dict((gpu["uuid"].lower(), gpu) for gpu in gpu_facts)
    chosen = {}
    for item in selection:
        gpu = by_index.get(item) if isinstance(item, int) else by_uuid.get(item.lower())
        if gpu is None:
            known = ", ".join("%d (%s)" % (g["index"], g["uuid"]) for g in gpu_facts) or "none"
            raise GpuSelectionError("%s: this node has no GPU %s; it has: %s" % (option, item, known))
        chosen[gpu["index"]] = gpu
    return [chosen[index] for index in sorted(chosen)]
