"""Decode Kubernetes protobuf request bodies into the JSON-shaped dicts the store keeps.

client-go sends typed objects as ``application/vnd.kubernetes.protobuf`` when a client asks for it:
helm does for its release Secrets and DeleteOptions (helm 3.17 and 4.1), kubectl does for its
imperative ``create`` commands (``create deployment``, ``create pdb`` ...) and for evictions. Such a
body is the 4-byte magic ``k8s\\0`` followed by a ``runtime.Unknown`` message: ``typeMeta``
(apiVersion, kind) and ``raw``, the object's own message.

The field tables come from ``protobuf_schemas.json``, generated from the Kubernetes ``generated.proto``
files by ``proto_schema.py``; they cover every kind the server serves, plus Eviction and DeleteOptions.
A few apimachinery types have a JSON form of their own and are converted here: Time and MicroTime
(RFC 3339), Quantity (a string), IntOrString (an int or a string), RawExtension and FieldsV1
(embedded JSON). Bytes become base64, as in JSON.

Zero values: go-to-protobuf writes non-pointer fields even when zero, so the wire cannot tell
``replicas: 0`` from an unset ``replicas`` of a non-pointer field. Empty strings and zero timestamps
are dropped (their JSON ``omitempty`` drops them and no pointer string carries meaning when empty);
numbers and booleans are kept, because a pointer field set to 0 or false means something
(``replicas: 0``, ``runAsUser: 0``, ``automountServiceAccountToken: false``) and a non-pointer one
at its zero value means the same as leaving it out.
"""
from __future__ import annotations

import base64
import datetime
import functools
import json
from importlib import resources as importlib_resources
from typing import Any

MAGIC = b"k8s\x00"
_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
TIME = _META + "Time"
MICRO_TIME = _META + "MicroTime"
FIELDS_V1 = _META + "FieldsV1"
QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"
UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
DELETE_OPTIONS = _META + "DeleteOptions"


class ProtobufError(ValueError):
    """The body is not a well-formed Kubernetes protobuf envelope."""


class UnsupportedProtobuf(ValueError):
    """A well-formed envelope for a type this decoder does not describe."""

    def __init__(self, api_version: str, kind: str) -> None:
        super().__init__(f"protobuf decoding of {api_version}/{kind} is not supported by the emulated API server")
        self.api_version = api_version
        self.kind = kind


@functools.cache
def _schemas() -> dict[str, Any]:
    text = importlib_resources.files(__package__).joinpath("protobuf_schemas.json").read_text()
    document = json.loads(text)
    document["fields"] = {
        name: {number: (field, kind, label) for number, field, kind, label in fields}
        for name, fields in document["messages"].items()
    }
    return document


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


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    if bits == 32:
        value &= (1 << 32) - 1
        return value - (1 << 32) if value >= 1 << 31 else value
    return value - (1 << 64) if value >= 1 << 63 else value


def _timestamp(data: bytes, micro: bool) -> str | None:
    seconds, nanos = 0, 0
    for number, _, value in _fields(data):
        if number == 1:
            seconds = _signed(value, 64)
        elif number == 2:
            nanos = _signed(value, 32)
    if seconds == 0 and nanos == 0:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    if micro:
        return moment.replace(microsecond=nanos // 1000).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _special(message: str, data: bytes) -> tuple[bool, Any]:
    """Types whose JSON form is not an object; (handled, value)."""
    if message in (TIME, MICRO_TIME):
        return True, _timestamp(data, micro=message == MICRO_TIME)
    if message == QUANTITY:
        values = {n: v for n, _, v in _fields(data)}
        return True, values.get(1, b"").decode("utf-8") or None
    if message == INT_OR_STRING:
        values = {n: v for n, _, v in _fields(data)}
        if values.get(1, 0) == 1:
            return True, values.get(3, b"").decode("utf-8")
        return True, _signed(values.get(2, 0), 32)
    if message in (RAW_EXTENSION, FIELDS_V1):
        raw = {n: v for n, _, v in _fields(data)}.get(1, b"")
        return True, json.loads(raw.decode("utf-8")) if raw else None
    return False, None


def _scalar(kind: str, value: Any) -> Any:
    if kind == "string":
        return value.decode("utf-8")
    if kind == "bytes":
        return base64.b64encode(value).decode("ascii")
    if kind == "bool":
        return bool(value)
    if kind == "int32":
        return _signed(value, 32)
    if kind == "int64":
        return _signed(value, 64)
    return decode_message(kind, value)


def decode_message(message: str, data: bytes) -> Any:
    handled, value = _special(message, data)
    if handled:
        return value
    schema = _schemas()["fields"].get(message)
    if schema is None:
        raise ProtobufError(f"no schema for message {message}")
    result: dict[str, Any] = {}
    for number, wire_type, raw in _fields(data):
        field = schema.get(number)
        if field is None:
            continue  # a field newer than the schema; the JSON form would carry it, we drop it
        name, kind, label = field
        if label == "map":
            _, _, value_kind = kind.split(":", 2)
            entry = {n: v for n, _, v in _fields(raw)}
            key = entry.get(1, b"").decode("utf-8")
            result.setdefault(name, {})[key] = _scalar(value_kind, entry.get(2, b"" if value_kind != "bool" and not value_kind.startswith("int") else 0))
            continue
        if label == "repeated" and wire_type == 2 and kind in ("int32", "int64", "bool"):
            position, packed = 0, []
            while position < len(raw):  # packed repeated numbers
                item, position = _varint(raw, position)
                packed.append(_scalar(kind, item))
            result.setdefault(name, []).extend(packed)
            continue
        value = _scalar(kind, raw)
        if label == "repeated":
            result.setdefault(name, []).append(value)
        elif value is not None and value != "":
            result[name] = value
    return result


def is_protobuf(body: bytes) -> bool:
    return body.startswith(MAGIC)


def decode_object(body: bytes) -> dict[str, Any]:
    """Decode one ``k8s\\0``-framed object into its JSON form, apiVersion and kind included."""
    if not is_protobuf(body):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    try:
        envelope = decode_message(UNKNOWN, body[len(MAGIC):])
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"malformed protobuf envelope: {exc}") from exc
    type_meta = envelope.get("typeMeta", {})
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if envelope.get("contentEncoding"):
        raise ProtobufError(f"unsupported content encoding {envelope['contentEncoding']!r}")
    kinds = _schemas()["kinds"]
    if kind == "DeleteOptions":
        message = DELETE_OPTIONS  # registered in every group version
    elif kind == "Eviction" and api_version.startswith("policy/"):
        message = kinds["policy/v1/Eviction"]  # v1beta1 has the same shape
    else:
        message = kinds.get(f"{api_version}/{kind}")
    if message is None:
        raise UnsupportedProtobuf(api_version, kind)
    raw = base64.b64decode(envelope.get("raw", ""))
    try:
        obj = decode_message(message, raw)
    except (IndexError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtobufError(f"malformed {kind} message: {exc}") from exc
    return {"apiVersion": api_version, "kind": kind, **obj}
