"""Container-toolkit stand-ins: on a node's PATH only when installed, printing the real tools' formats."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from gpufleet_twin import nvml as sim

A100 = [{"model": "A100-SXM4-40GB"}]


def _on_node(path, argv):
    env = {**os.environ, **sim.node_env(path)}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def _which(path, tool):
    return shutil.which(tool, path=sim.node_env(path)["PATH"])


def test_default_node_has_toolkit_1_17_8_with_both_commands(make_node):
    path = make_node(A100)
    ctk = _on_node(path, ["nvidia-ctk", "--version"])
    assert ctk.returncode == 0
    assert re.fullmatch(r"NVIDIA Container Toolkit CLI version 1\.17\.8\ncommit: [0-9a-f]{40}\n", ctk.stdout)
    cli = _on_node(path, ["nvidia-container-cli", "--version"])
    assert cli.returncode == 0
    lines = cli.stdout.splitlines()
    assert lines[:2] == ["cli-version: 1.17.8", "lib-version: 1.17.8"]
    assert [line.split(":", 1)[0] for line in lines[2:]] == [
        "build date", "build revision", "build compiler", "build platform", "build flags"]


def test_toolkit_before_1_10_has_no_nvidia_ctk(make_node):
    path = make_node(A100, container_toolkit={"version": "1.2.0"})
    assert _which(path, "nvidia-ctk") is None
    assert _on_node(path, ["nvidia-container-cli", "--version"]).stdout.startswith("cli-version: 1.2.0\n")


def test_node_without_toolkit_has_neither_command(make_node):
    path = make_node(A100, container_toolkit=None)
    assert (_which(path, "nvidia-ctk"), _which(path, "nvidia-container-cli")) == (None, None)
    # Called by full path anyway, the stand-in behaves like a missing command.
    stand_in = str(sim.toolkit.tool_dir("nvidia-ctk") / "nvidia-ctk")
    missing = _on_node(path, [stand_in, "--version"])
    assert (missing.returncode, missing.stdout, missing.stderr) == (127, "", "nvidia-ctk: command not found\n")


def test_tools_can_be_chosen(make_node):
    path = make_node(A100, container_toolkit={"version": "1.17.8", "tools": ["nvidia-ctk"]})
    assert _which(path, "nvidia-container-cli") is None
    assert _which(path, "nvidia-ctk") == str(sim.toolkit.tool_dir("nvidia-ctk") / "nvidia-ctk")


@pytest.mark.parametrize("value, message", [
    ("1.17.8", "container_toolkit '1.17.8': expected {version: '1.17.8'} or null"),
    ({"version": "new"}, "container_toolkit version 'new': use dot-separated numbers such as 1.17.8"),
    ({"version": "1.17.8", "tools": ["docker"]}, "container_toolkit tools: unknown docker"),
    ({"version": "1.17.8", "edition": "x"}, "container_toolkit: unknown keys edition"),
])
def test_bad_specs_are_rejected(make_node, value, message):
    with pytest.raises(ValueError) as raised:
        make_node(A100, container_toolkit=value)
    assert str(raised.value).startswith(message)


def test_the_stand_ins_default_is_what_the_spec_default_makes():
    # toolkit_cli.py runs without the twin package (standard library only), so it keeps its own copy of the default.
    from gpufleet_twin.nvml.toolkit import DEFAULT_CONTAINER_TOOLKIT, DEFAULT_TOOLKIT_STATE, toolkit_from_spec

    assert toolkit_from_spec(DEFAULT_CONTAINER_TOOLKIT) == DEFAULT_TOOLKIT_STATE
