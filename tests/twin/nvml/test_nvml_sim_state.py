"""The node state file: a simulated NVML call reuses its parse of the file only while the file's text is unchanged."""
from __future__ import annotations

import json

from gpufleet_twin.nvml.state import create_state_file, locked_state, read_state, write_state_atomically

STATE = {"schema": 1, "driver_version": "550.54.15", "gpus": [{"index": 0, "mig": {"current": "disabled"}}], "processes": []}


def test_a_write_by_another_process_is_seen_even_when_the_text_keeps_its_size(tmp_path):
    path = tmp_path / "node.json"
    create_state_file(path, STATE)
    with locked_state(path) as state:
        assert state["gpus"][0]["mig"]["current"] == "disabled"
    # Same length, other content, as another process (an agent, a module) would write it.
    changed = json.loads(json.dumps(STATE))
    changed["gpus"][0]["mig"]["current"] = "enabled!"
    write_state_atomically(path, changed)
    with locked_state(path) as state:
        assert state["gpus"][0]["mig"]["current"] == "enabled!"


def test_a_change_made_in_the_block_is_written_and_the_cached_parse_is_not_changed(tmp_path):
    path = tmp_path / "node.json"
    create_state_file(path, STATE)
    with locked_state(path) as state:
        state["gpus"][0]["mig"]["current"] = "enabled"
    assert read_state(path)["gpus"][0]["mig"]["current"] == "enabled"
    text = path.read_text()
    with locked_state(path) as state:
        state["gpus"][0]["mig"]["pending"] = "x"
        del state["gpus"][0]["mig"]["pending"]
    # Nothing changed in the end: the file is not rewritten.
    assert path.read_text() == text
    # Changing what read_state returned does not change what the next call sees.
    read_state(path)["gpus"][0]["mig"]["current"] = "tampered"
    with locked_state(path) as state:
        assert state["gpus"][0]["mig"]["current"] == "enabled"


def test_every_getter_leaves_the_node_state_as_it_was(make_node, nvml_on, monkeypatch):
    """Getters run on the process's cached parse without a copy (library.READ_ONLY_SYMBOLS): one that changed it
    would change what every later call of the process sees without writing it. A full read of a node with MIG
    devices, processes and a pending fault on another call goes through each getter it uses, and each is checked."""
    import copy
    from contextlib import contextmanager

    from ansible_collections.gpufleet.mig.plugins.module_utils import _gpu
    from gpufleet_twin import nvml as sim
    from gpufleet_twin.nvml import library

    path = make_node([
        {"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"]},
        {"model": "H100-SXM5-80GB", "mig_mode": "disabled"},
    ])
    sim.add_process(path, gpu=0, pid=4242, name="python3", used_memory_mib=1024, gi=2, ci=0)
    sim.add_process(path, gpu=1, pid=4343, name="python3", used_memory_mib=2048)
    sim.inject_fault(path, "nvmlDeviceSetMigMode", "IN_USE")
    checked = []
    real_shared_state = library.shared_state

    @contextmanager
    def checking_shared_state(state_path):
        with real_shared_state(state_path) as state:
            before = copy.deepcopy(state)
            yield state
            assert state == before, "a getter changed the node state"
            checked.append(1)

    monkeypatch.setattr(library, "shared_state", checking_shared_state)
    used = set()
    real_call = library.FakeNvmlLibrary._call

    def recording_call(self, symbol, handler, args):
        used.add(symbol)
        return real_call(self, symbol, handler, args)

    monkeypatch.setattr(library.FakeNvmlLibrary, "_call", recording_call)
    nvml_on(path)
    facts = _gpu.read_node_facts()
    catalogs = [_gpu.read_catalog(0), _gpu.read_catalog(1)]

    assert [gpu["mig_mode"]["current"] for gpu in facts["gpus"]] == ["enabled", "disabled"]
    assert catalogs[0] and catalogs[1]
    getters_used = used & library.READ_ONLY_SYMBOLS
    assert len(getters_used) >= 25 and len(checked) > 100
    assert used - library.READ_ONLY_SYMBOLS <= {"nvmlInit_v2", "nvmlInitWithFlags", "nvmlErrorString"}
    # The fault is still there for the call it names: getters leave it alone.
    from gpufleet_twin.nvml.state import read_state
    assert [fault["symbols"] for fault in read_state(path)["faults"]] == [["nvmlDeviceSetMigMode"]]
