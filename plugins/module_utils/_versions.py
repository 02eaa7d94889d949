# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Driver and container-toolkit versions: reading them from tool output, and comparing them.

Pure functions: nothing here runs a command or talks to NVML. The parsers take the text the tools print
(formats in docs/hardware.md) and return the version string, or None when the text does not
carry one.

Comparison rules, chosen to fit every version string NVIDIA ships:

* the release part is dot-separated numbers compared as numbers, so ``450.80.02`` equals ``450.80.2``
  and ``1.17`` equals ``1.17.0``;
* a pre-release suffix (``1.17.0-rc.1``, or Debian's ``1.17.0~rc.1``) sorts before the release it
  precedes; its dot-separated parts compare numerically where both are numbers, as in SemVer;
* a leading ``v`` and ``+build`` metadata are ignored.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Tuple, Union

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError

_VERSION_PATTERN = re.compile(
    r"^[vV]?(?P<release>\d+(?:\.\d+)*)(?:[-~](?P<prerelease>[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*))?(?:\+[0-9A-Za-z.-]*)?$")

# urfave/cli prints "<Name> version <Version>"; nvidia-ctk's name is "NVIDIA Container Toolkit CLI".
_NVIDIA_CTK_PATTERN = re.compile(r"^NVIDIA Container Toolkit CLI version\s+(\S+)\s*$", re.MULTILINE)
_NVIDIA_CONTAINER_CLI_PATTERN = re.compile(r"^cli-version:\s*(\S+)\s*$", re.MULTILINE)


class VersionError(MigError):
    """A version string (from an option or from a tool) cannot be read."""


class Version(object):
    """A parsed version; compares as described in the module docstring. ``str()`` gives the input back."""

    __slots__ = ("text", "release", "prerelease")

    def __init__(self, text: str, release: Tuple[int, ...], prerelease: Tuple[str, ...]) -> None:
        self.text = text
        self.release = release
        self.prerelease = prerelease

    def _key(self) -> tuple:
        release = list(self.release)
        while len(release) > 1 and release[-1] == 0:
            release.pop()
        if not self.prerelease:
            return (tuple(release), 1, ())
        parts = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.prerelease)
        return (tuple(release), 0, parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __le__(self, other: Version) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: Version) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: Version) -> bool:
        return self._key() >= other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Version(%r)" % self.text

    def __str__(self) -> str:
        return self.text


def parse_version(text: Union[str, Version, None], what: str = "version") -> Version:
    """``"450.80.02"`` -> Version. ``what`` names the value in the error (an option name, a tool)."""
    if isinstance(text, Version):
        return text
    candidate = str(text).strip() if text is not None else ""
    match = _VERSION_PATTERN.match(candidate)
    if not match:
        raise VersionError("%s: %r is not a version; expected dot-separated numbers such as 450.80.02 or 1.17.8"
                           % (what, text))
    release = tuple(int(part) for part in match.group("release").split("."))
    prerelease = tuple(match.group("prerelease").split(".")) if match.group("prerelease") else ()
    return Version(candidate, release, prerelease)


def is_version(text: Union[str, Version, None]) -> bool:
    """True if ``text`` parses as a version (tools print e.g. ``unknown`` when built without one)."""
    try:
        parse_version(text)
    except VersionError:
        return False
    return True


def _first_group(pattern: re.Pattern, output: Optional[str]) -> Optional[str]:
    match = pattern.search(output or "")
    return match.group(1) if match else None


def parse_nvidia_ctk_version(output: Optional[str]) -> Optional[str]:
    """Version from ``nvidia-ctk --version`` (``NVIDIA Container Toolkit CLI version 1.17.8`` + commit line)."""
    return _first_group(_NVIDIA_CTK_PATTERN, output)


def parse_nvidia_container_cli_version(output: Optional[str]) -> Optional[str]:
    """Version from ``nvidia-container-cli --version`` (its ``cli-version: 1.17.3`` line)."""
    return _first_group(_NVIDIA_CONTAINER_CLI_PATTERN, output)


def upstream_version(package_version: Optional[str]) -> str:
    """The upstream part of a Debian or RPM package version: ``1:1.17.4-1`` -> ``1.17.4``.

    Debian puts an optional ``epoch:`` first and the packaging revision after the last hyphen; RPM's
    ``%{VERSION}`` has neither, so the same rule is harmless there.
    """
    text = (package_version or "").strip()
    if ":" in text:
        text = text.split(":", 1)[1]
    if "-" in text:
        text = text.rsplit("-", 1)[0]
    return text


def parse_dpkg_query_output(output: Optional[str]) -> Dict[str, str]:
    """``{package: upstream version}`` of the installed rows of ``dpkg-query -W`` output.

    Expects the format ``${Package}\\t${Status}\\t${Version}``; rows whose status is not
    ``… installed`` (removed packages whose configuration remains, half-installed ones) are left out.
    """
    installed = {}
    for line in (output or "").splitlines():
        fields = line.split("\t")
        if len(fields) != 3:
            continue
        package, status, version = (field.strip() for field in fields)
        if status.split()[-1:] == ["installed"] and version:
            installed[package] = upstream_version(version)
    return installed


def parse_rpm_query_output(output: Optional[str]) -> Dict[str, str]:
    """``{package: version}`` from ``rpm -q --qf '%{NAME}\\t%{VERSION}\\n' …`` output.

    rpm prints ``package X is not installed`` for a missing package; those lines have no tab and are skipped.
    """
    installed = {}
    for line in (output or "").splitlines():
        fields = line.split("\t")
        if len(fields) == 2 and fields[0].strip() and fields[1].strip():
            installed[fields[0].strip()] = fields[1].strip()
    return installed
