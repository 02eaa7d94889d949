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
