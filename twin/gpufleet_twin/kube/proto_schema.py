"""Generate ``protobuf_schemas.json``, the field tables the protobuf decoder reads, from Kubernetes .proto files.

    python -m gpufleet_twin.kube.proto_schema API_DIR APIMACHINERY_DIR > protobuf_schemas.json

API_DIR is a checkout of k8s.io/api (``core/v1/generated.proto`` ...), APIMACHINERY_DIR one of
k8s.io/apimachinery (``pkg/apis/meta/v1/generated.proto`` ...). Only messages reachable from the kinds
the emulated API server serves (plus Eviction and DeleteOptions) are kept, as
``{message: [[number, jsonName, type, label], ...]}``; go-to-protobuf names each proto field after the
field's JSON name, so the names carry over unchanged. The committed table was generated from
k8s.io/api v0.35.7 (d4365024cf) and k8s.io/apimachinery v0.35.7 (1fc77693f5), the release kubectl
1.35 is built from.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from .resources import BUILTIN_RESOURCES

API_PACKAGES = {
    "": "core/v1",
    "apps": "apps/v1",
    "batch": "batch/v1",
    "policy": "policy/v1",
    "rbac.authorization.k8s.io": "rbac/v1",
    "coordination.k8s.io": "coordination/v1",
    "scheduling.k8s.io": "scheduling/v1",
    "events.k8s.io": "events/v1",
}
APIMACHINERY_PACKAGES = ("pkg/apis/meta/v1", "pkg/runtime", "pkg/api/resource", "pkg/util/intstr")
SCALARS = {"string", "bytes", "bool", "int32", "int64"}
EXTRA_ROOTS = (
    ("policy/v1", "k8s.io.api.policy.v1.Eviction"),
    ("meta/v1", "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
    ("runtime", "k8s.io.apimachinery.pkg.runtime.Unknown"),
)

_PACKAGE_RE = re.compile(r"^package\s+([\w.]+)\s*;", re.M)
_MESSAGE_RE = re.compile(r"^message\s+(\w+)\s*\{(.*?)^\}", re.M | re.S)
_FIELD_RE = re.compile(r"^\s*(optional|repeated)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;", re.M)
_MAP_RE = re.compile(r"^\s*map<\s*(\w+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;", re.M)


def _qualify(type_name: str, package: str) -> str:
    if type_name in SCALARS:
        return type_name
    if type_name.startswith("."):
        return type_name[1:]
    return f"{package}.{type_name}"


def parse_proto(text: str) -> dict[str, list[list[Any]]]:
    package = _PACKAGE_RE.search(text)
    if package is None:
        raise ValueError("no package statement")
    messages: dict[str, list[list[Any]]] = {}
    for name, body in _MESSAGE_RE.findall(text):
        body = re.sub(r"//[^\n]*", "", body)
        fields = [[int(n), field, _qualify(kind, package[1]), label] for label, kind, field, n in _FIELD_RE.findall(body)]
        fields += [[int(n), field, f"map:{key}:{_qualify(value, package[1])}", "map"] for key, value, field, n in _MAP_RE.findall(body)]
        messages[f"{package[1]}.{name}"] = sorted(fields)
    return messages


def generate(api_dir: Path, apimachinery_dir: Path) -> dict[str, Any]:
    messages: dict[str, list[list[Any]]] = {}
    for relative in API_PACKAGES.values():
        messages.update(parse_proto((api_dir / relative / "generated.proto").read_text()))
    for relative in APIMACHINERY_PACKAGES:
        messages.update(parse_proto((apimachinery_dir / relative / "generated.proto").read_text()))

    kinds: dict[str, str] = {}
    for resource in BUILTIN_RESOURCES:
        package = API_PACKAGES[resource.group].replace("/", ".")
        kinds[f"{resource.api_version}/{resource.kind}"] = f"k8s.io.api.{package}.{resource.kind}"
    for api_version, message in EXTRA_ROOTS:
        kinds[f"{api_version}/{message.rsplit('.', 1)[1]}"] = message

    reachable: set[str] = set()
    pending = list(kinds.values())
    while pending:
        name = pending.pop()
        if name in reachable:
            continue
        if name not in messages:
            raise KeyError(f"message {name} is referenced but not defined in the given .proto files")
        reachable.add(name)
        for _, _, kind, _ in messages[name]:
            target = kind.rsplit(":", 1)[1] if kind.startswith("map:") else kind
            if target not in SCALARS:
                pending.append(target)
    return {"kinds": dict(sorted(kinds.items())), "messages": {name: messages[name] for name in sorted(reachable)}}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    json.dump(generate(Path(args[0]), Path(args[1])), sys.stdout, separators=(",", ":"), sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
