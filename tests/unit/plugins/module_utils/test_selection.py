from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._selection import GpuSelectionError, select_gpus

GPUS = [
    {"index": 0, "uuid": "GPU-4200ccc0-2667-d4cb-9137-f932c716232a"},
    {"index": 1, "uuid": "GPU-15f0798d-c807-231d-6525-a7827081f0f1"},
]


@pytest.mark.parametrize("selection", ["all", ["all"], ["ALL"], None])
def test_all_selects_every_gpu(selection):
    assert [g["index"] for g in select_gpus(GPUS, selection)] == [0, 1]


def test_indices_and_uuids_select_in_node_order_without_duplicates():
    chosen = select_gpus(GPUS, ["1", "GPU-4200CCC0-2667-d4cb-9137-f932c716232a", 1])
    assert [g["index"] for g in chosen] == [0, 1]


def test_unknown_gpu_is_named_with_what_the_node_has():
    with pytest.raises(GpuSelectionError, match=r"no GPU 7; it has: 0 \(GPU-4200ccc0"):
        select_gpus(GPUS, [7])


def test_garbage_is_rejected():
    with pytest.raises(GpuSelectionError, match="neither a GPU index nor a GPU UUID"):
        select_gpus(GPUS, ["gpu0"])
