"""The per-node state file: one JSON document, changed only under an exclusive lock.

Every Ansible module run is a new process, so the lock is a ``flock`` on a sibling
``.lock`` file (it survives the atomic rename of the state file itself), and every write
goes to a temporary file in the same directory that then replaces the state file.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .procfs import sync_proc

SCHEMA_VERSION = 1


def _lock_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


@contextmanager
def _flock(state_path: Path, mode: int) -> Iterator[None]:
    with open(_lock_path(state_path), "a+", encoding="utf-8") as lock_file:
        fcntl.flock(lock_file.fileno(), mode)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _read(state_path: Path) -> dict[str, Any]:
    return json.loads(_read_text(state_path)[0])


# The last text of each state file this process parsed, with its parsed value. A simulated NVML call whose file still
# has that text skips parsing it (the text is read every time: comparing it is cheap, and file times are too coarse
# to tell two quick writes apart). A real NVML call costs microseconds; without
# this the twin spent about a millisecond a call on an 8-GPU node with MIG devices.
_PARSED: dict[Path, tuple[str, dict[str, Any]]] = {}


def _read_text(state_path: Path) -> tuple[str, dict[str, Any]]:
    """The file's text and the parsed state (not to be changed)."""
    try:
        text = state_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no simulated node state at {state_path}") from None
    cached = _PARSED.get(state_path)
    if cached is not None and cached[0] == text:
        return cached
    state = json.loads(text)
    if state.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"{state_path}: unsupported state schema {state.get('schema')!r}")
    parsed = (text, state)
    _PARSED[state_path] = parsed
    return parsed


def write_state_atomically(state_path: Path | str, state: dict[str, Any]) -> None:
    state_path = Path(state_path)
    fd, tmp_name = tempfile.mkstemp(prefix=state_path.name + ".", suffix=".tmp", dir=state_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            json.dump(state, tmp, indent=1, sort_keys=True)
            tmp.write("\n")
        os.replace(tmp_name, state_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@contextmanager
def locked_state(state_path: Path | str) -> Iterator[dict[str, Any]]:
    """Yield the node state for reading and changing; written back only if it changed.

    An exception inside the block leaves the file untouched, so a failing operation
    never half-applies.
    """
    state_path = Path(state_path)
    with _flock(state_path, fcntl.LOCK_EX):
        text, original = _read_text(state_path)
        # A fresh copy for the caller to change; the cached parse stays as read.
        state = json.loads(text)
        yield state
        # Comparing the parsed values costs a fraction of re-encoding the state, which every read-only call paid.
        if state != original:
            write_state_atomically(state_path, state)
        if state.get("processes") != original.get("processes"):
            sync_proc(state_path, state.get("processes") or [])


@contextmanager
def shared_state(state_path: Path | str) -> Iterator[dict[str, Any]]:
    """The node state for a read that changes nothing, under a shared lock: the process's cached parse itself, not a
    copy, so the caller must not change it (a simulated NVML getter; ``locked_state`` is for everything else)."""
    state_path = Path(state_path)
    with _flock(state_path, fcntl.LOCK_SH):
        yield _read_text(state_path)[1]


def read_state(state_path: Path | str) -> dict[str, Any]:
    """A consistent snapshot of the node state (shared lock)."""
    state_path = Path(state_path)
    with _flock(state_path, fcntl.LOCK_SH):
        return _read(state_path)


def create_state_file(state_path: Path | str, state: dict[str, Any]) -> None:
    state_path = Path(state_path)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    with _flock(state_path, fcntl.LOCK_EX):
        write_state_atomically(state_path, state)
        sync_proc(state_path, state.get("processes") or [])
