"""Fixtures for the simulated NVML: node state files and the fake library under real pynvml."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pynvml
import pytest

from gpufleet_twin import nvml as sim

from nvml_sim_helpers import SEED_GPU_UUID


@pytest.fixture
def make_node(tmp_path: Path) -> Callable[..., Path]:
    """Write a node state file; returns its path."""
    counter = {"n": 0}

    def make(gpus: list[dict[str, Any]], driver_version: str | None = "550.54.15", **node: Any) -> Path:
        counter["n"] += 1
        path = tmp_path / f"node{counter['n']}" / "state.json"
        sim.create_node_state(
            path, {"name": f"node{counter['n']}", "driver_version": driver_version, "gpus": gpus, **node}
        )
        return path

    return make


@pytest.fixture
def nvml_on() -> Any:
    """Activate the fake libnvidia-ml of a node state under the real pynvml, then nvmlInit.

    Call with ``init=False`` to test nvmlInit itself.  Everything is undone at teardown.
    """
    installed = 0

    def activate(state_path: Path, init: bool = True) -> Any:
        nonlocal installed
        sim.install(state_path)
        installed += 1
        if init:
            pynvml.nvmlInit()
        return pynvml

    yield activate
    for _ in range(installed):
        sim.uninstall()


@pytest.fixture
def a100_seed_node(make_node: Callable[..., Path]) -> Path:
    """The seed document's node: one A100-SXM4-40GB on 450.80.02, MIG enabled and empty."""
    return make_node(
        [{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "uuid": SEED_GPU_UUID, "pci_bus_id": "00000000:00:04.0"}],
        driver_version="450.80.02",
    )
