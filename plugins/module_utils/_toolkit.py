# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Detect the NVIDIA Container Toolkit on a node, and decide whether it is new enough for MIG.

Where the version comes from, best source first (docs/hardware.md, "Container toolkit versions"):

1. ``nvidia-ctk --version`` (the toolkit's own CLI, shipped since toolkit 1.10.0);
2. ``nvidia-container-cli --version`` (libnvidia-container, which every toolkit install pulls in);
3. only when neither command reports a version: the package database (``dpkg-query`` or ``rpm``), for
   ``nvidia-container-toolkit``, ``nvidia-container-toolkit-base``, ``libnvidia-container-tools`` and the
   legacy meta-package ``nvidia-docker2``.

``nvidia-docker2`` numbers its versions differently (2.x). It decides only when no toolkit version is known
at all, and then against its own minimum.

Minimums: NVIDIA's "MIG Support in Kubernetes" asks for nvidia-docker2 2.5.0, which corresponds to toolkit
1.3.0 (docs/hardware.md says how); libnvidia-container and the toolkit both reached 1.3.0 together, so the
same minimum holds for either command.

Commands run through two callables the module supplies (``AnsibleModule.get_bin_path`` and a
``run_command`` wrapper that forces the C locale), so everything here is testable without a node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Optional, Tuple

from ansible_collections.gpufleet.mig.plugins.module_utils._module_glue import CommandRunner, command_runner
from ansible_collections.gpufleet.mig.plugins.module_utils._versions import (
    is_version,
    parse_dpkg_query_output,
    parse_nvidia_container_cli_version,
    parse_nvidia_ctk_version,
    parse_rpm_query_output,
    parse_version,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ansible.module_utils.basic import AnsibleModule

DEFAULT_MIN_CONTAINER_TOOLKIT_VERSION = "1.3.0"
DEFAULT_MIN_NVIDIA_DOCKER2_VERSION = "2.5.0"

NVIDIA_DOCKER2_PACKAGE = "nvidia-docker2"
# Packages whose version is the toolkit's (or libnvidia-container's) version, best first.
TOOLKIT_PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools")
QUERIED_PACKAGES = TOOLKIT_PACKAGES + (NVIDIA_DOCKER2_PACKAGE,)

_TOOLS = (
    ("nvidia-ctk", ("--version",), parse_nvidia_ctk_version),
    ("nvidia-container-cli", ("--version",), parse_nvidia_container_cli_version),
)
_DPKG_QUERY_FORMAT = "-f=${Package}\\t${Status}\\t${Version}\\n"
_RPM_QUERY_FORMAT = "%{NAME}\\t%{VERSION}\\n"


def _probe_tool(name: str, arguments: Iterable[str], parse: Callable[[str], Optional[str]],
                find_binary: Callable[[str], Optional[str]], run_command: CommandRunner) -> Optional[Dict[str, Any]]:
    path = find_binary(name)
    if not path:
        return None
    rc, stdout, stderr = run_command([path] + list(arguments))
    version = parse(stdout) if rc == 0 else None
    probe = {"path": path, "version": version if is_version(version) else None}
    if probe["version"] is None:
        # Kept for the report: a tool that is present but says nothing usable is worth seeing.
        probe["rc"] = rc
        probe["output"] = (stdout or stderr or "").strip()[:500]
    return probe


def _query_packages(find_binary: Callable[[str], Optional[str]], run_command: CommandRunner) -> Optional[Dict[str, str]]:
    """``{package: version}`` from dpkg-query and/or rpm, whichever the node has; None when it has neither."""
    found = None
    dpkg_query = find_binary("dpkg-query")
    if dpkg_query:
        # dpkg-query exits 1 when some of the packages are unknown but still prints the known ones.
        _rc, stdout, _stderr = run_command([dpkg_query, "-W", _DPKG_QUERY_FORMAT] + list(QUERIED_PACKAGES))
        found = parse_dpkg_query_output(stdout)
    rpm = find_binary("rpm")
    if rpm:
        _rc, stdout, _stderr = run_command([rpm, "-q", "--qf", _RPM_QUERY_FORMAT] + list(QUERIED_PACKAGES))
        found = dict(found or {}, **parse_rpm_query_output(stdout))
    if found is None:
        return None
    return dict((package, version) for package, version in found.items() if package in QUERIED_PACKAGES)


def detect_container_toolkit(find_binary: Callable[[str], Optional[str]], run_command: CommandRunner) -> Dict[str, Any]:
    """What the node has of the NVIDIA Container Toolkit.

    ``find_binary(name)`` returns a path or None; ``run_command(argv)`` returns ``(rc, stdout, stderr)``.
    Returns ``{installed, version, source, tools, packages, nvidia_docker2_version}``: ``version`` is the
    toolkit version (1.x numbering) and ``source`` the command or package it came from; ``tools`` lists
    the toolkit commands found; ``packages`` is None unless the package database was consulted (only when
    no command reported a version) or when the node has neither dpkg-query nor rpm.
    """
    facts = {"installed": False, "version": None, "source": None, "tools": {}, "packages": None,
             "nvidia_docker2_version": None}
    for name, arguments, parse in _TOOLS:
        probe = _probe_tool(name, arguments, parse, find_binary, run_command)
        if probe is None:
            continue
        facts["tools"][name] = probe
        if facts["version"] is None and probe["version"]:
            facts["version"], facts["source"] = probe["version"], name
    if facts["version"] is None:
        packages = _query_packages(find_binary, run_command)
        facts["packages"] = packages
        for package in TOOLKIT_PACKAGES:
            if packages and is_version(packages.get(package)):
                facts["version"], facts["source"] = packages[package], "package %s" % package
                break
        if packages and is_version(packages.get(NVIDIA_DOCKER2_PACKAGE)):
            facts["nvidia_docker2_version"] = packages[NVIDIA_DOCKER2_PACKAGE]
    facts["installed"] = bool(facts["tools"] or facts["version"] or facts["nvidia_docker2_version"])
    return facts


def detect_with_module(module: AnsibleModule) -> Dict[str, Any]:
    """``detect_container_toolkit`` through an AnsibleModule: its PATH lookup, and run_command in the C locale
    so tool output never changes with the node's language."""
    return detect_container_toolkit(
        module.get_bin_path,
        command_runner(module),
    )


def check_container_toolkit(toolkit: Dict[str, Any], min_toolkit_version: str = DEFAULT_MIN_CONTAINER_TOOLKIT_VERSION,
                            min_nvidia_docker2_version: str = DEFAULT_MIN_NVIDIA_DOCKER2_VERSION) -> Tuple[bool, str]:
    """``(ok, detail)`` for the facts ``detect_container_toolkit`` returned; the detail names the fixing option."""
    version = toolkit.get("version")
    if version:
        if parse_version(version) >= parse_version(min_toolkit_version, "min_container_toolkit_version"):
            return True, "NVIDIA Container Toolkit %s (from %s) is at least %s (min_container_toolkit_version)" % (
                version, toolkit.get("source"), min_toolkit_version)
        return False, ("NVIDIA Container Toolkit %s (from %s) is older than %s, the minimum for MIG "
                       "(min_container_toolkit_version); upgrade the toolkit" % (
                           version, toolkit.get("source"), min_toolkit_version))
    docker2 = toolkit.get("nvidia_docker2_version")
    if docker2:
        if parse_version(docker2) >= parse_version(min_nvidia_docker2_version, "min_nvidia_docker2_version"):
            return True, "nvidia-docker2 %s (package) is at least %s (min_nvidia_docker2_version)" % (
                docker2, min_nvidia_docker2_version)
        return False, ("nvidia-docker2 %s (package) is older than %s, the minimum for MIG "
                       "(min_nvidia_docker2_version); upgrade to the NVIDIA Container Toolkit" % (
                           docker2, min_nvidia_docker2_version))
    if toolkit.get("tools"):
        names = ", ".join(sorted(toolkit["tools"]))
        return False, ("NVIDIA Container Toolkit found (%s) but its version cannot be read; "
                       "check the installation, or set check_container_toolkit: false" % names)
    return False, ("NVIDIA Container Toolkit not found: no nvidia-ctk or nvidia-container-cli command and no %s "
                   "package; install the toolkit, or set check_container_toolkit: false"
                   % " / ".join(QUERIED_PACKAGES))
