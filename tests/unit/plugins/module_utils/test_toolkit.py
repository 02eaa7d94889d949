"""toolkit.py: which commands run (exact argv), which source wins, and the verdict against the minimums.

Only the binary boundary is faked: a node with some commands on PATH and their real output.
"""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._toolkit import (
    check_container_toolkit,
    detect_container_toolkit,
)

CTK = "/usr/bin/nvidia-ctk"
CLI = "/usr/bin/nvidia-container-cli"
DPKG_QUERY = "/usr/bin/dpkg-query"
RPM = "/usr/bin/rpm"
PACKAGES = ["nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools", "nvidia-docker2"]
DPKG_ARGV = [DPKG_QUERY, "-W", "-f=${Package}\\t${Status}\\t${Version}\\n"] + PACKAGES
RPM_ARGV = [RPM, "-q", "--qf", "%{NAME}\\t%{VERSION}\\n"] + PACKAGES


class FakeNode(object):
    """Commands on PATH with what they answer; records every argv run."""

    def __init__(self, answers):
        self.answers = answers  # {path: {tuple(argv): (rc, stdout, stderr)}}
        self.ran = []

    def find_binary(self, name):
        return next((path for path in self.answers if path.rsplit("/", 1)[-1] == name), None)

    def run_command(self, argv):
        self.ran.append(list(argv))
        return self.answers[argv[0]][tuple(argv)]


def detect(answers):
    node = FakeNode(answers)
    return detect_container_toolkit(node.find_binary, node.run_command), node.ran


def test_nvidia_ctk_wins_and_packages_are_not_queried():
    facts, ran = detect({
        CTK: {(CTK, "--version"): (0, "NVIDIA Container Toolkit CLI version 1.17.8\ncommit: f202b80a\n", "")},
        CLI: {(CLI, "--version"): (0, "cli-version: 1.17.8\nlib-version: 1.17.8\n", "")},
        DPKG_QUERY: {},
    })
    assert ran == [[CTK, "--version"], [CLI, "--version"]]
    assert facts == {
        "installed": True, "version": "1.17.8", "source": "nvidia-ctk", "packages": None, "nvidia_docker2_version": None,
        "tools": {"nvidia-ctk": {"path": CTK, "version": "1.17.8"},
                  "nvidia-container-cli": {"path": CLI, "version": "1.17.8"}},
    }


def test_old_toolkit_without_nvidia_ctk_is_read_from_nvidia_container_cli():
    facts, ran = detect({CLI: {(CLI, "--version"): (0, "cli-version: 1.2.0\nlib-version: 1.2.0\n", "")}})
    assert ran == [[CLI, "--version"]]
    assert (facts["installed"], facts["version"], facts["source"]) == (True, "1.2.0", "nvidia-container-cli")


def test_a_command_without_a_usable_version_is_reported_and_packages_decide():
    facts, ran = detect({
        CTK: {(CTK, "--version"): (0, "NVIDIA Container Toolkit CLI version unknown\n", "")},
        DPKG_QUERY: {tuple(DPKG_ARGV): (0, "nvidia-container-toolkit\tinstall ok installed\t1.17.4-1\n", "")},
    })
    assert ran == [[CTK, "--version"], DPKG_ARGV]
    assert facts["tools"] == {"nvidia-ctk": {"path": CTK, "version": None, "rc": 0,
                                             "output": "NVIDIA Container Toolkit CLI version unknown"}}
    assert (facts["version"], facts["source"]) == ("1.17.4", "package nvidia-container-toolkit")


def test_packages_give_the_toolkit_version_and_the_legacy_nvidia_docker2_version():
    dpkg_output = ("nvidia-docker2\tinstall ok installed\t2.5.0-1\n"
                   "libnvidia-container-tools\tinstall ok installed\t1.3.0-1\n")
    facts, ran = detect({DPKG_QUERY: {tuple(DPKG_ARGV): (1, dpkg_output, "dpkg-query: no packages found matching "
                                                                         "nvidia-container-toolkit-base\n")}})
    assert ran == [DPKG_ARGV]
    assert facts == {"installed": True, "version": "1.3.0", "source": "package libnvidia-container-tools",
                     "tools": {}, "packages": {"nvidia-docker2": "2.5.0", "libnvidia-container-tools": "1.3.0"},
                     "nvidia_docker2_version": "2.5.0"}


def test_rpm_alone_is_queried_with_its_own_format():
    facts, ran = detect({RPM: {tuple(RPM_ARGV): (3, "package nvidia-container-toolkit is not installed\n"
                                                    "package nvidia-container-toolkit-base is not installed\n"
                                                    "package libnvidia-container-tools is not installed\n"
                                                    "nvidia-docker2\t2.4.0\n", "")}})
    assert ran == [RPM_ARGV]
    assert (facts["installed"], facts["version"], facts["nvidia_docker2_version"]) == (True, None, "2.4.0")


def test_nothing_installed():
    facts, ran = detect({DPKG_QUERY: {tuple(DPKG_ARGV): (1, "", "dpkg-query: no packages found matching nvidia-docker2\n")}})
    assert ran == [DPKG_ARGV]
    assert facts == {"installed": False, "version": None, "source": None, "tools": {}, "packages": {},
                     "nvidia_docker2_version": None}


def test_node_without_a_package_manager_reports_packages_as_unknown():
    facts, ran = detect({})
    assert ran == []
    assert (facts["installed"], facts["packages"]) == (False, None)


@pytest.mark.parametrize("toolkit, expected", [
    ({"version": "1.17.8", "source": "nvidia-ctk"},
     (True, "NVIDIA Container Toolkit 1.17.8 (from nvidia-ctk) is at least 1.3.0 (min_container_toolkit_version)")),
    ({"version": "1.3.0", "source": "package nvidia-container-toolkit"},
     (True, "NVIDIA Container Toolkit 1.3.0 (from package nvidia-container-toolkit) is at least 1.3.0 "
            "(min_container_toolkit_version)")),
    ({"version": "1.2.0", "source": "nvidia-container-cli"},
     (False, "NVIDIA Container Toolkit 1.2.0 (from nvidia-container-cli) is older than 1.3.0, the minimum for MIG "
             "(min_container_toolkit_version); upgrade the toolkit")),
    ({"version": "1.3.0~rc.2", "source": "package nvidia-container-toolkit"},
     (False, "NVIDIA Container Toolkit 1.3.0~rc.2 (from package nvidia-container-toolkit) is older than 1.3.0, the "
             "minimum for MIG (min_container_toolkit_version); upgrade the toolkit")),
    ({"version": None, "nvidia_docker2_version": "2.5.0"},
     (True, "nvidia-docker2 2.5.0 (package) is at least 2.5.0 (min_nvidia_docker2_version)")),
    ({"version": None, "nvidia_docker2_version": "2.4.0"},
     (False, "nvidia-docker2 2.4.0 (package) is older than 2.5.0, the minimum for MIG (min_nvidia_docker2_version); "
             "upgrade to the NVIDIA Container Toolkit")),
    ({"version": None, "tools": {"nvidia-ctk": {"path": CTK, "version": None}}},
     (False, "NVIDIA Container Toolkit found (nvidia-ctk) but its version cannot be read; check the installation, "
             "or set check_container_toolkit: false")),
    ({"installed": False, "version": None, "tools": {}},
     (False, "NVIDIA Container Toolkit not found: no nvidia-ctk or nvidia-container-cli command and no "
             "nvidia-container-toolkit / nvidia-container-toolkit-base / libnvidia-container-tools / nvidia-docker2 "
             "package; install the toolkit, or set check_container_toolkit: false")),
])
def test_check_against_the_default_minimums(toolkit, expected):
    assert check_container_toolkit(toolkit) == expected


def test_check_uses_the_minimum_given():
    ok, detail = check_container_toolkit({"version": "1.17.8", "source": "nvidia-ctk"}, "1.18.0")
    assert not ok
    assert detail.startswith("NVIDIA Container Toolkit 1.17.8 (from nvidia-ctk) is older than 1.18.0")
