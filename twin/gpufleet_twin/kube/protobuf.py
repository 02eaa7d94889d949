"""Decode Kubernetes protobuf request bodies into the JSON-shaped dicts the store keeps.

client-go sends typed objects as ``application/vnd.kubernetes.protobuf`` when a client asks for it, and
helm does (its release Secrets, in helm 3.17 and 4.1). Such a body is the 4-byte magic ``k8s\\0``
followed by a ``runtime.Unknown`` message: ``typeMeta`` (apiVersion, kind) and ``raw``, the object's own
message. Only the types clients are seen to send this way are described here; anything else raises
``UnsupportedProtobuf`` so the server can answer 415 and name the type.

Field numbers come from the ``generated.proto`` files of k8s.io/api (core/v1, policy/v1) and
k8s.io/apimachinery (pkg/runtime, pkg/apis/meta/v1). Zero values are dropped the way the JSON
encoding's ``omitempty`` drops them, except for fields that are pointers in Go (their presence on the
wire means the client set them: ``gracePeriodSeconds: 0`` must survive).
"""
from __future__ import annotations

import base64
import datetime
import json
from dataclasses import dataclass
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """The body is not a well-formed Kubernetes protobuf envelope."""


class UnsupportedProtobuf(ValueError):
    """A well-formed envelope for a type this decoder does not describe."""

    def __init__(self, api_version: str, kind: str) -> None:
        super().__init__(f"protobuf decoding of {api_version}/{kind} is not supported by the emulated API server")
        self.api_version = api_version
        self.kind = kind


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # string, bytes, int, bool, time, microtime, json, message:<Name>, map:<value kind>
    repeated: bool = False
    # Go pointer fields: present on the wire only when set, so zero values are meaningful.
    keep_zero: bool = False


_TIME = "time"
_MICROTIME = "microtime"

SCHEMAS: dict[str, dict[int, Field]] = {
    "Unknown": {
        1: Field("typeMeta", "message:TypeMeta"),
        2: Field("raw", "rawbytes"),
        3: Field("contentEncoding", "string"),
        4: Field("contentType", "string"),
    },
    "TypeMeta": {1: Field("apiVersion", "string"), 2: Field("kind", "string")},
    "ObjectMeta": {
        1: Field("name", "string"),
        2: Field("generateName", "string"),
        3: Field("namespace", "string"),
        4: Field("selfLink", "string"),
        5: Field("uid", "string"),
        6: Field("resourceVersion", "string"),
        7: Field("generation", "int"),
        8: Field("creationTimestamp", _TIME),
        9: Field("deletionTimestamp", _TIME, keep_zero=True),
        10: Field("deletionGracePeriodSeconds", "int", keep_zero=True),
        11: Field("labels", "map:string"),
        12: Field("annotations", "map:string"),
        13: Field("ownerReferences", "message:OwnerReference", repeated=True),
        14: Field("finalizers", "string", repeated=True),
        17: Field("managedFields", "message:ManagedFieldsEntry", repeated=True),
    },
    "OwnerReference": {
        1: Field("kind", "string"),
        3: Field("name", "string"),
        4: Field("uid", "string"),
        5: Field("apiVersion", "string"),
        6: Field("controller", "bool", keep_zero=True),
        7: Field("blockOwnerDeletion", "bool", keep_zero=True),
    },
    "ManagedFieldsEntry": {
        1: Field("manager", "string"),
        2: Field("operation", "string"),
        3: Field("apiVersion", "string"),
        4: Field("time", _TIME, keep_zero=True),
        6: Field("fieldsType", "string"),
        7: Field("fieldsV1", "message:FieldsV1"),
        8: Field("subresource", "string"),
    },
    "FieldsV1": {1: Field("Raw", "json")},
    "ObjectReference": {
        1: Field("kind", "string"),
        2: Field("namespace", "string"),
        3: Field("name", "string"),
        4: Field("uid", "string"),
        5: Field("apiVersion", "string"),
        6: Field("resourceVersion", "string"),
        7: Field("fieldPath", "string"),
    },
    "LocalObjectReference": {1: Field("name", "string")},
    "Secret": {
        1: Field("metadata", "message:ObjectMeta"),
        2: Field("data", "map:bytes"),
        3: Field("type", "string"),
        4: Field("stringData", "map:string"),
        5: Field("immutable", "bool", keep_zero=True),
    },
    "ConfigMap": {
        1: Field("metadata", "message:ObjectMeta"),
        2: Field("data", "map:string"),
        3: Field("binaryData", "map:bytes"),
        4: Field("immutable", "bool", keep_zero=True),
    },
    "ServiceAccount": {
        1: Field("metadata", "message:ObjectMeta"),
        2: Field("secrets", "message:ObjectReference", repeated=True),
        3: Field("imagePullSecrets", "message:LocalObjectReference", repeated=True),
        4: Field("automountServiceAccountToken", "bool", keep_zero=True),
    },
    "Namespace": {
        1: Field("metadata", "message:ObjectMeta"),
        2: Field("spec", "message:NamespaceSpec"),
    },
    "NamespaceSpec": {1: Field("finalizers", "string", repeated=True)},
    "Preconditions": {1: Field("uid", "string", keep_zero=True), 2: Field("resourceVersion", "string", keep_zero=True)},
    "DeleteOptions": {
        1: Field("gracePeriodSeconds", "int", keep_zero=True),
        2: Field("preconditions", "message:Preconditions"),
        3: Field("orphanDependents", "bool", keep_zero=True),
        4: Field("propagationPolicy", "string", keep_zero=True),
        5: Field("dryRun", "string", repeated=True),
        6: Field("ignoreStoreReadErrorWithClusterBreakingPotential", "bool", keep_zero=True),
    },
    "Eviction": {
        1: Field("metadata", "message:ObjectMeta"),
        2: Field("deleteOptions", "message:DeleteOptions"),
    },
    "EventSource": {1: Field("component", "string"), 2: Field("host", "string")},
    "EventSeries": {1: Field("count", "int"), 2: Field("lastObservedTime", _MICROTIME)},
    "Event": {
        1: Field("metadata", "message:ObjectMeta"),
        2: Field("involvedObject", "message:ObjectReference"),
        3: Field("reason", "string"),
        4: Field("message", "string"),
        5: Field("source", "message:EventSource"),
        6: Field("firstTimestamp", _TIME),
        7: Field("lastTimestamp", _TIME),
        8: Field("count", "int"),
        9: Field("type", "string"),
        10: Field("eventTime", _MICROTIME),
        11: Field("series", "message:EventSeries"),
        12: Field("action", "string"),
        13: Field("related", "message:ObjectReference"),
        14: Field("reportingComponent", "string"),
        15: Field("reportingInstance", "string"),
    },
}

# (apiVersion, kind) of a top-level body -> message name. DeleteOptions travels under whatever group
# version the client talks to, so it is matched by kind alone.
TOP_LEVEL: dict[tuple[str, str], str] = {
    ("v1", "Secret"): "Secret",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Namespace"): "Namespace",
    ("v1", "Event"): "Event",
    ("policy/v1", "Eviction"): "Eviction",
    ("policy/v1beta1", "Eviction"): "Eviction",
}


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if position >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """Split a message into (field number, wire type, raw value) triples."""
    fields, position = [], 0
    while position < len(data):
        tag, position = _varint(data, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type == 1:
            value, position = data[position:position + 8], position + 8
        elif wire_type == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ProtobufError("truncated length-delimited field")
            value, position = data[position:position + length], position + length
        elif wire_type == 5:
            value, position = data[position:position + 4], position + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire_type}")
        fields.append((number, wire_type, value))
    return fields


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _timestamp(data: bytes, micro: bool) -> str | None:
    seconds, nanos = 0, 0
    for number, _, value in _fields(data):
        if number == 1:
            seconds = _signed64(value)
        elif number == 2:
            nanos = value
    if seconds == 0 and nanos == 0:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    if micro:
        moment = moment.replace(microsecond=nanos // 1000)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(kind: str, value: Any) -> Any:
    if kind == "string":
        return value.decode("utf-8")
    if kind == "bytes":
        return base64.b64encode(value).decode("ascii")
    if kind == "rawbytes":
        return bytes(value)
    if kind == "int":
        return _signed64(value)
    if kind == "bool":
        return bool(value)
    if kind == "json":
        return json.loads(value.decode("utf-8")) if value else {}
    if kind == _TIME:
        return _timestamp(value, micro=False)
    if kind == _MICROTIME:
        return _timestamp(value, micro=True)
    if kind.startswith("message:"):
        return decode_message(kind.split(":", 1)[1], value)
    raise ProtobufError(f"unknown field kind {kind}")


def _is_zero(value: Any) -> bool:
    return value in (None, "", 0, False, b"") or value == {} or value == []


def decode_message(message: str, data: bytes) -> dict[str, Any]:
    schema = SCHEMAS[message]
    result: dict[str, Any] = {}
    for number, _, raw in _fields(data):
        field = schema.get(number)
        if field is None:
            continue  # a newer field this decoder does not know; the JSON form would carry it, we drop it
        if field.kind.startswith("map:"):
            entry = {n: v for n, _, v in _fields(raw)}
            key = entry.get(1, b"").decode("utf-8")
            result.setdefault(field.name, {})[key] = _scalar(field.kind.split(":", 1)[1], entry.get(2, b""))
            continue
        value = _scalar(field.kind, raw)
        if field.repeated:
            result.setdefault(field.name, []).append(value)
        elif field.keep_zero or not _is_zero(value):
            result[field.name] = value
    return result


def is_protobuf(body: bytes) -> bool:
    return body.startswith(MAGIC)


def decode_object(body: bytes) -> dict[str, Any]:
    """Decode one ``k8s\\0``-framed object into its JSON form, apiVersion and kind included."""
    if not is_protobuf(body):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    try:
        envelope = decode_message("Unknown", body[len(MAGIC):])
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"malformed protobuf envelope: {exc}") from exc
    type_meta = envelope.get("typeMeta", {})
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if envelope.get("contentEncoding"):
        raise ProtobufError(f"unsupported content encoding {envelope['contentEncoding']!r}")
    message = "DeleteOptions" if kind == "DeleteOptions" else TOP_LEVEL.get((api_version, kind))
    if message is None:
        raise UnsupportedProtobuf(api_version, kind)
    try:
        obj = decode_message(message, envelope.get("raw", b""))
    except (IndexError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtobufError(f"malformed {kind} message: {exc}") from exc
    return {"apiVersion": api_version, "kind": kind, **obj}
