"""versions.py: tool output (mig-hardware.md section 12) and version ordering."""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._versions import (
    VersionError,
    is_version,
    parse_dpkg_query_output,
    parse_nvidia_container_cli_version,
    parse_nvidia_ctk_version,
    parse_rpm_query_output,
    parse_version,
    upstream_version,
)

NVIDIA_CTK_OUTPUT = "NVIDIA Container Toolkit CLI version 1.17.8\ncommit: f202b80a9b9d0db00d9b1d73c0128c8962c55f4d\n"
NVIDIA_CONTAINER_CLI_OUTPUT = (
    "cli-version: 1.17.3\n"
    "lib-version: 1.17.3\n"
    "build date: 2024-12-04T09:47+00:00\n"
    "build revision: 16f37fcafcbdaf4d1b9bc1c2ddb7bb7d1ab0ab0d\n"
    "build compiler: x86_64-linux-gnu-gcc-7 7.5.0\n"
    "build platform: x86_64\n"
    "build flags: -D_GNU_SOURCE -D_FORTIFY_SOURCE=2 -DNDEBUG -std=gnu11 -O2 -g -fdata-sections\n"
)


@pytest.mark.parametrize("output, expected", [
    (NVIDIA_CTK_OUTPUT, "1.17.8"),
    ("NVIDIA Container Toolkit CLI version 1.10.0-rc.1\n", "1.10.0-rc.1"),
    # Built without -X main.version the toolkit prints "unknown": returned as printed, rejected by is_version.
    ("NVIDIA Container Toolkit CLI version unknown\n", "unknown"),
    ("NVIDIA Container Runtime version 1.17.6\n", None),
    ("", None),
])
def test_nvidia_ctk_version(output, expected):
    assert parse_nvidia_ctk_version(output) == expected


@pytest.mark.parametrize("output, expected", [
    (NVIDIA_CONTAINER_CLI_OUTPUT, "1.17.3"),
    ("cli-version: 1.3.0\nlib-version: 1.3.0\n", "1.3.0"),
    ("nvidia-container-cli: unrecognized option '--version'\n", None),
    (None, None),
])
def test_nvidia_container_cli_version(output, expected):
    assert parse_nvidia_container_cli_version(output) == expected


@pytest.mark.parametrize("smaller, larger", [
    ("450.51.06", "450.80.02"),     # the seed's minimum against the last pre-MIG R450 driver
    ("525.85.12", "525.105.17"),    # numeric, not lexical: 105 > 85
    ("550.54.15", "550.90.07"),     # H200's minimum
    ("1.17.0-rc.1", "1.17.0"),      # a pre-release precedes its release
    ("1.3.0~rc.2", "1.3.0"),        # Debian spelling of the same
    ("1.17.0-rc.2", "1.17.0-rc.10"),
    ("1.2.1", "1.3.0"),
    ("2.4.0", "2.5.0"),
])
def test_ordering(smaller, larger):
    assert parse_version(smaller) < parse_version(larger)
    assert not parse_version(smaller) >= parse_version(larger)
    assert parse_version(larger) >= parse_version(smaller)


@pytest.mark.parametrize("left, right", [("450.80.02", "450.80.2"), ("1.17", "1.17.0"), ("v1.17.8", "1.17.8"),
                                         ("1.17.8+build.3", "1.17.8")])
def test_equal_spellings(left, right):
    assert parse_version(left) == parse_version(right)
    assert hash(parse_version(left)) == hash(parse_version(right))
    assert parse_version(left) >= parse_version(right) and parse_version(right) >= parse_version(left)


def test_str_gives_the_input_back():
    assert str(parse_version(" 450.80.02 ")) == "450.80.02"


@pytest.mark.parametrize("text", ["unknown", "", None, "450.x", "R450", "1..2"])
def test_invalid_versions_name_the_option(text):
    assert not is_version(text)
    with pytest.raises(VersionError) as raised:
        parse_version(text, "min_driver_version")
    assert str(raised.value) == (
        "min_driver_version: %r is not a version; expected dot-separated numbers such as 450.80.02 or 1.17.8" % (text,))


@pytest.mark.parametrize("package_version, expected", [
    ("1.17.4-1", "1.17.4"),
    ("1.3.0~rc.2-1", "1.3.0~rc.2"),
    ("1:2.5.0-1", "2.5.0"),
    ("1.17.4", "1.17.4"),
])
def test_upstream_version(package_version, expected):
    assert upstream_version(package_version) == expected


def test_dpkg_query_output_keeps_installed_rows_only():
    output = ("nvidia-container-toolkit\tinstall ok installed\t1.17.4-1\n"
              "libnvidia-container-tools\tinstall ok installed\t1.17.4-1\n"
              "nvidia-docker2\tdeinstall ok config-files\t2.14.0-1\n")
    assert parse_dpkg_query_output(output) == {"nvidia-container-toolkit": "1.17.4",
                                               "libnvidia-container-tools": "1.17.4"}


def test_rpm_query_output_skips_missing_packages():
    output = ("nvidia-container-toolkit\t1.17.4\n"
              "package nvidia-docker2 is not installed\n")
    assert parse_rpm_query_output(output) == {"nvidia-container-toolkit": "1.17.4"}
