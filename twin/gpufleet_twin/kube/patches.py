"""The four patch types clients send, applied to plain dicts.

- JSON merge patch (RFC 7386): exact.
- JSON patch (RFC 6902): exact, including ``test``, ``move`` and ``copy``.
- Strategic merge patch: pragmatic. The real server reads merge keys from Go struct tags; here a table of
  the fields that matter to pods, nodes, workloads and metadata stands in for them, and any other list
  whose items are all objects with a ``name`` merges by name. Other lists are replaced. Directives
  ``$patch: replace|delete``, ``$retainKeys``, ``$deleteFromPrimitiveList/<f>`` are honoured,
  ``$setElementOrder/<f>`` is accepted and ignored.
- Server-side apply: the applied configuration is strategically merged into the live object, and the
  fields this same field manager applied last time but no longer applies are removed. Field ownership
  across managers is not tracked, so there are never apply conflicts (``force`` is accepted and moot).
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

# field name -> candidate merge keys, first one present in every item wins
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "env": ("name",),
    "ports": ("containerPort", "port"),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "conditions": ("type",),
    "addresses": ("type",),
    "ownerReferences": ("uid",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
    "resourceClaims": ("name",),
}
# lists of scalars whose patch strategy is "merge" (set union) rather than replace
PRIMITIVE_MERGE_FIELDS = frozenset({"finalizers"})


class PatchError(ValueError):
    """The patch does not apply to this object (HTTP 422)."""


class _Delete:
    pass


_DELETE = _Delete()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(field: str | None, items: list[Any]) -> str | None:
    dict_items = [item for item in items if isinstance(item, Mapping)]
    if not dict_items or len(dict_items) != len(items):
        return None
    candidates = MERGE_KEYS.get(field or "", ()) + ("name",)
    for key in candidates:
        if all(key in item or item.get("$patch") for item in dict_items):
            return key
    return None


def _strip_directives(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if not k.startswith("$") and v is not None
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _merge_list(original: Any, patch: list[Any], field: str | None) -> list[Any]:
    if field in PRIMITIVE_MERGE_FIELDS and all(not isinstance(item, (Mapping, list)) for item in patch):
        result = list(original) if isinstance(original, list) else []
        result.extend(item for item in patch if item not in result)
        return result
    if any(isinstance(item, Mapping) and item.get("$patch") == "replace" and len(item) == 1 for item in patch):
        return [_strip_directives(item) for item in patch if not (isinstance(item, Mapping) and item.get("$patch") == "replace")]
    original_items = list(original) if isinstance(original, list) else []
    key = _merge_key(field, original_items + patch) if patch else None
    if key is None:
        return _strip_directives(patch)
    result = copy.deepcopy(original_items)
    for item in patch:
        position = next((i for i, existing in enumerate(result) if existing.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if position is not None:
                del result[position]
            continue
        if position is None:
            result.append(_strip_directives(item))
        else:
            result[position] = strategic_merge_patch(result[position], item)
    return result


def strategic_merge_patch(original: Any, patch: Any, field: str | None = None) -> Any:
    """Pragmatic strategic merge patch (see the module docstring for what is covered)."""
    del field  # the field name only matters for lists, handled in _merge_list
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if directive == "delete":
        return _DELETE
    result = copy.deepcopy(dict(original)) if isinstance(original, Mapping) else {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            target = key.split("/", 1)[1]
            if isinstance(result.get(target), list):
                result[target] = [item for item in result[target] if item not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, key)
        elif isinstance(value, Mapping):
            merged = strategic_merge_patch(result.get(key), value, key)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [_unescape(token) for token in path[1:].split("/")]


def _list_index(container: list[Any], token: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise PatchError(f"array index {index} out of bounds")
    return index


def _parent(document: Any, tokens: list[str], path: str) -> Any:
    current = document
    for token in tokens[:-1]:
        if isinstance(current, Mapping):
            if token not in current:
                raise PatchError(f"path {path!r} does not exist")
            current = current[token]
        elif isinstance(current, list):
            current = current[_list_index(current, token, for_add=False)]
        else:
            raise PatchError(f"path {path!r} does not exist")
    return current


def _get(document: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return document
    parent = _parent(document, tokens, path)
    last = tokens[-1]
    if isinstance(parent, Mapping):
        if last not in parent:
            raise PatchError(f"path {path!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_list_index(parent, last, for_add=False)]
    raise PatchError(f"path {path!r} does not exist")


def _add(document: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return copy.deepcopy(value)
    parent = _parent(document, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, for_add=True), copy.deepcopy(value))
    else:
        raise PatchError(f"cannot add at {path!r}")
    return document


def _remove(document: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(document, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"unable to remove nonexistent key: {last}: missing value")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_list_index(parent, last, for_add=False)]
    else:
        raise PatchError(f"cannot remove {path!r}")
    return document


def _replace(document: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return copy.deepcopy(value)
    _get(document, path)  # replace requires the target to exist
    parent = _parent(document, tokens, path)
    if isinstance(parent, list):
        parent[_list_index(parent, tokens[-1], for_add=False)] = copy.deepcopy(value)
    else:
        parent[tokens[-1]] = copy.deepcopy(value)
    return document


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch."""
    if not isinstance(operations, list):
        raise TypeError("a JSON patch must be a list of operations")
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, Mapping) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid JSON patch operation {operation!r}")
        op, path = operation["op"], operation["path"]
        if op == "add":
            result = _add(result, path, operation.get("value"))
        elif op == "remove":
            result = _remove(result, path)
        elif op == "replace":
            result = _replace(result, path, operation.get("value"))
        elif op == "move":
            value = _get(result, operation["from"])
            result = _add(_remove(result, operation["from"]), path, value)
        elif op == "copy":
            result = _add(result, path, _get(result, operation["from"]))
        elif op == "test":
            if _get(result, path) != operation.get("value"):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"unexpected kind: {op}")
    return result


Path = tuple[Any, ...]


def _field_paths(value: Any, prefix: Path = (), field: str | None = None) -> set[Path]:
    """Every field an applied configuration sets: containers included, keyed list items by their merge key."""
    paths: set[Path] = set()
    if isinstance(value, Mapping):
        for key, child in value.items():
            paths.add(prefix + (key,))
            paths |= _field_paths(child, prefix + (key,), key)
    elif isinstance(value, list):
        key = _merge_key(field, value)
        if key is not None:
            for item in value:
                item_path = prefix + (("$key", key, item.get(key)),)
                paths.add(item_path)
                paths |= _field_paths(item, item_path)
    return paths


def _remove_path(document: Any, path: Path) -> None:
    current = document
    for segment in path[:-1]:
        if isinstance(segment, tuple):
            _, key, value = segment
            current = next((item for item in current if isinstance(item, Mapping) and item.get(key) == value), None) if isinstance(current, list) else None
        else:
            current = current.get(segment) if isinstance(current, Mapping) else None
        if current is None:
            return
    last = path[-1]
    if isinstance(last, tuple) and isinstance(current, list):
        _, key, value = last
        current[:] = [item for item in current if not (isinstance(item, Mapping) and item.get(key) == value)]
    elif isinstance(current, dict):
        current.pop(last, None)


def apply_patch(live: Mapping[str, Any] | None, applied: Mapping[str, Any], previously_applied: Mapping[str, Any] | None) -> dict[str, Any]:
    """Server-side apply, without ownership tracking (see the module docstring)."""
    merged = strategic_merge_patch(live or {}, _strip_directives(applied))
    if previously_applied:
        dropped = _field_paths(previously_applied) - _field_paths(applied)
        removed: list[Path] = []
        for path in sorted(dropped, key=len):
            if any(path[: len(done)] == done for done in removed):
                continue
            if path[:1] in (("apiVersion",), ("kind",)) or path[:2] in (("metadata", "name"), ("metadata", "namespace")):
                continue
            _remove_path(merged, path)
            removed.append(path)
    return merged
