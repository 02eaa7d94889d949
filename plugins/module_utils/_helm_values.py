# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The user values of a release from ``values_files``, ``values`` and ``set_values``, as kubernetes.core.helm takes them.

kubernetes.core.helm passes ``values_files`` as ``--values`` in order, then ``values`` (``release_values``) as one
more ``--values`` file, then ``set_values`` as ``--set``/``--set-string``/``--set-json``/``--set-file``. Helm merges
them in that order (later wins, maps merge key by key; helm ``pkg/cli/values/options.go`` MergeValues). This
module computes the same merged document in Python, so the helm_release module still hands helm a single
values file (nothing on the command line) and compares it with the deployed release for no-op detection.

``set_values`` entries follow helm's ``--set`` syntax (``pkg/strvals``) for what users write in playbooks:
``a.b=c``, several pairs separated by commas, list indexes ``a[0]=x``, list literals ``a={x,y}``, and
backslash escapes of ``.``, ``,``, ``=`` and ``[``. ``value_type`` ``raw`` infers ``true``/``false``/``null`` and
integers as ``--set`` does; ``string`` keeps text; ``json`` parses the value as JSON; ``file`` reads the file
named by the value (relative paths against the base directory) as a string.

Relative paths (``values_files``, a local ``chart_ref``, ``file`` values) are resolved against a base directory
(the playbook directory, which the roles pass), not the module's temporary working directory.
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any, Callable, Dict, Iterable, List, Optional

from ansible_collections.gpufleet.mig.plugins.module_utils._helm import HelmError

VALUE_TYPES = ("raw", "string", "json", "file")
_INTEGER = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_INDEXED = re.compile(r"^(.*?)((?:\[\d+\])+)$")


class HelmValuesError(HelmError):
    """A values file or set value that cannot be read; the message names the option."""


def merge_user_values(layers: Iterable[Any]) -> Dict[str, Any]:
    """Merge user value documents in order: later wins, maps merge key by key, ``null`` is kept (it deletes
    the chart default when helm coalesces)."""
    result = {}
    for layer in layers:
        result = _merge(result, layer or {})
    return result


def _merge(base: Dict[str, Any], override: Dict[str, Any]) -> Dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_path(path: str, base_dir: Optional[str]) -> str:
    """``path`` made absolute against ``base_dir`` (``~`` expanded); absolute paths stay as they are."""
    expanded = os.path.expanduser(path)
    if os.path.isabs(expanded) or not base_dir:
        return expanded
    return os.path.normpath(os.path.join(base_dir, expanded))


def resolve_chart_ref(chart_ref: Optional[str], chart_repo_url: Optional[str], base_dir: Optional[str]) -> Optional[str]:
    """A relative local chart path resolved against ``base_dir``; repository, OCI and URL references unchanged.

    A reference is local when no repository URL is given and a file or directory of that name exists under
    ``base_dir`` (``repo/chart`` names of added repositories then stay what they are)."""
    if chart_repo_url or not chart_ref or not base_dir or "://" in chart_ref or os.path.isabs(chart_ref):
        return chart_ref
    candidate = resolve_path(chart_ref, base_dir)
    return candidate if os.path.exists(candidate) else chart_ref


def read_values_files(paths: Iterable[str], base_dir: Optional[str], load_yaml: Callable[[str, str], Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The documents of ``values_files``, in order; ``load_yaml(text, what)`` parses one document."""
    documents = []
    for path in paths or []:
        resolved = resolve_path(path, base_dir)
        try:
            with open(resolved) as stream:
                text = stream.read()
        except (IOError, OSError) as error:
            raise HelmValuesError("values_files: cannot read %s: %s" % (resolved, error))
        document = load_yaml(text, "values file %s" % resolved) or {}
        if not isinstance(document, dict):
            raise HelmValuesError("values_files: %s does not hold a mapping of values" % resolved)
        documents.append(document)
    return documents


def _split_unescaped(text: str, separator: str) -> List[str]:
    parts, current, escaped, depth = [], [], False, 0
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "{":
            depth += 1
            current.append(char)
        elif char == "}":
            depth = max(0, depth - 1)
            current.append(char)
        elif char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _typed(text: str, value_type: str) -> Any:
    if value_type == "string":
        return text
    if text == "true":
        return True
    if text == "false":
        return False
    if text == "null":
        return None
    if _INTEGER.match(text):
        return int(text)
    return text


def _scalar_or_list(text: str, value_type: str) -> Any:
    if text.startswith("{") and text.endswith("}"):
        return [_typed(_unescape(item), value_type) for item in _split_unescaped(text[1:-1], ",") if item != ""]
    return _typed(_unescape(text), value_type)


def _assign(document: Dict[str, Any], key_path: str, value: Any, option: str) -> None:
    segments = [_unescape(part) for part in _split_unescaped(key_path, ".")]
    if not key_path or any(segment == "" for segment in segments):
        raise HelmValuesError("set_values: %r has an empty key" % option)
    node = document
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        match = _INDEXED.match(segment)
        name, indexes = (match.group(1), [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]) if match else (segment, [])
        if not indexes:
            if last:
                node[name] = value
            else:
                child = node.get(name)
                node[name] = child if isinstance(child, dict) else {}
                node = node[name]
            continue
        container = node.get(name)
        if not isinstance(container, list):
            container = node[name] = []
        for depth, index in enumerate(indexes):
            while len(container) <= index:
                container.append(None)
            final_index = depth == len(indexes) - 1
            if final_index and last:
                container[index] = value
            elif final_index:
                if not isinstance(container[index], dict):
                    container[index] = {}
                node = container[index]
            else:
                if not isinstance(container[index], list):
                    container[index] = []
                container = container[index]


def set_values_document(set_values: Optional[Iterable[Dict[str, Any]]], base_dir: Optional[str] = None) -> Dict[str, Any]:
    """One document from ``set_values`` entries ``{"value": "a.b=c", "value_type": "raw"}``, applied in order."""
    document = {}
    for entry in set_values or []:
        text = entry.get("value")
        value_type = entry.get("value_type") or "raw"
        if value_type not in VALUE_TYPES:
            raise HelmValuesError("set_values: value_type must be one of %s, not %r" % (", ".join(VALUE_TYPES), value_type))
        if not isinstance(text, str) or "=" not in text:
            raise HelmValuesError("set_values: %r is not of the form key=value" % (text,))
        if value_type in ("json", "file"):
            key, raw = text.split("=", 1)
            if value_type == "json":
                try:
                    value = json.loads(raw)
                except ValueError as error:
                    raise HelmValuesError("set_values: %s is not JSON: %s" % (key, error))
            else:
                path = resolve_path(raw, base_dir)
                try:
                    with open(path) as stream:
                        value = stream.read()
                except (IOError, OSError) as error:
                    raise HelmValuesError("set_values: cannot read %s for %s: %s" % (path, key, error))
            _assign(document, key, value, text)
            continue
        for pair in _split_unescaped(text, ","):
            key, separator, raw = pair.partition("=")
            if not separator:
                raise HelmValuesError("set_values: %r is not of the form key=value" % (pair,))
            _assign(document, key, _scalar_or_list(raw, value_type), text)
    return document


def user_values(values_files_documents: Iterable[Dict[str, Any]], values: Optional[Dict[str, Any]],
                set_values_doc: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The release's user values: values files in order, then ``values``, then ``set_values`` (kubernetes.core order)."""
    return merge_user_values(list(values_files_documents) + [values or {}, set_values_doc or {}])
