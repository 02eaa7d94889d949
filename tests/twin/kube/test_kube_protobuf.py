"""Protobuf bodies: real ones captured from helm 4.1.4 and 3.17.3, and hand-built ones for the other shapes."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest
from gpufleet_twin.kube.protobuf import MAGIC, ProtobufError, UnsupportedProtobuf, decode_object

DATA_DIR = Path(__file__).resolve().parent / "data"


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(number: int, payload: bytes | str) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _map_entry(number: int, key: str, value: bytes | str) -> bytes:
    return _bytes_field(number, _bytes_field(1, key) + _bytes_field(2, value))


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _bytes_field(1, api_version) + _bytes_field(2, kind)
    return MAGIC + _bytes_field(1, type_meta) + _bytes_field(2, raw)


@pytest.mark.parametrize("helm", ["helm4", "helm3"])
def test_real_helm_release_secret(helm: str) -> None:
    secret = decode_object((DATA_DIR / f"{helm}-release-secret.pb").read_bytes())
    assert secret["apiVersion"] == "v1"
    assert secret["kind"] == "Secret"
    assert secret["type"] == "helm.sh/release.v1"
    assert secret["metadata"]["name"] == "sh.helm.release.v1.tiny.v1"
    assert secret["metadata"]["labels"]["owner"] == "helm"
    assert secret["metadata"]["labels"]["status"] == "pending-install"
    # helm stores base64(gzip(json)) in data.release; the wire carries raw bytes, JSON carries base64.
    stored = base64.b64decode(secret["data"]["release"])
    release = json.loads(gzip.decompress(base64.b64decode(stored)))
    assert release["name"] == "tiny"
    assert release["namespace"] == "gpu"
    assert release["chart"]["metadata"]["name"] == "tiny"


@pytest.mark.parametrize("helm", ["helm4", "helm3"])
def test_real_helm_delete_options(helm: str) -> None:
    assert decode_object((DATA_DIR / f"{helm}-delete-options.pb").read_bytes()) == {"apiVersion": "v1", "kind": "DeleteOptions"}


def test_configmap_with_binary_data_and_owner() -> None:
    owner = _bytes_field(1, "DaemonSet") + _bytes_field(3, "dp") + _bytes_field(4, "uid-1") + _bytes_field(5, "apps/v1") + _int_field(6, 1)
    meta = (
        _bytes_field(1, "cfg")
        + _bytes_field(3, "gpu")
        + _bytes_field(8, b"")  # zero creationTimestamp, as Go sends it
        + _map_entry(11, "app", "plugin")
        + _map_entry(12, "note", "x")
        + _bytes_field(13, owner)
        + _bytes_field(14, "keep")
    )
    raw = _bytes_field(1, meta) + _map_entry(2, "config.yaml", "version: v1\n") + _map_entry(3, "blob", b"\x00\xff") + _int_field(4, 1)
    assert decode_object(_envelope("v1", "ConfigMap", raw)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cfg",
            "namespace": "gpu",
            "labels": {"app": "plugin"},
            "annotations": {"note": "x"},
            "ownerReferences": [{"kind": "DaemonSet", "name": "dp", "uid": "uid-1", "apiVersion": "apps/v1", "controller": True}],
            "finalizers": ["keep"],
        },
        "data": {"config.yaml": "version: v1\n"},
        "binaryData": {"blob": base64.b64encode(b"\x00\xff").decode()},
        "immutable": True,
    }


def test_eviction_keeps_meaningful_zero_grace_period() -> None:
    preconditions = _bytes_field(2, "42")
    delete_options = _int_field(1, 0) + _bytes_field(2, preconditions) + _bytes_field(4, "Background")
    raw = _bytes_field(1, _bytes_field(1, "web-0") + _bytes_field(3, "default")) + _bytes_field(2, delete_options)
    eviction = decode_object(_envelope("policy/v1", "Eviction", raw))
    assert eviction["metadata"] == {"name": "web-0", "namespace": "default"}
    assert eviction["deleteOptions"] == {
        "gracePeriodSeconds": 0,
        "preconditions": {"resourceVersion": "42"},
        "propagationPolicy": "Background",
    }


def test_negative_int64_and_timestamps() -> None:
    time = _int_field(1, 1767225600) + _int_field(2, 5)
    meta = _bytes_field(1, "n") + _bytes_field(9, time) + _int_field(10, -1 & ((1 << 64) - 1))
    secret = decode_object(_envelope("v1", "Secret", _bytes_field(1, meta)))
    assert secret["metadata"]["deletionTimestamp"] == "2026-01-01T00:00:00Z"
    assert secret["metadata"]["deletionGracePeriodSeconds"] == -1


def test_real_kubectl_create_deployment_keeps_pointer_zeros() -> None:
    deployment = decode_object((DATA_DIR / "kubectl-create-deployment.pb").read_bytes())
    assert (deployment["apiVersion"], deployment["kind"], deployment["metadata"]["name"]) == ("apps/v1", "Deployment", "web")
    assert deployment["spec"]["replicas"] == 0, "kubectl create deployment --replicas=0 must not become the default 1"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert (container["name"], container["image"], container["ports"][0]["containerPort"]) == ("nginx", "nginx:1.27", 8080)
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}


def test_real_kubectl_create_pdb_int_or_string() -> None:
    pdb = decode_object((DATA_DIR / "kubectl-create-pdb.pb").read_bytes())
    assert pdb["spec"] == {"minAvailable": 0, "selector": {"matchLabels": {"app": "web"}}}


def test_special_json_forms() -> None:
    quantity = _bytes_field(1, "8")
    resources = _bytes_field(1, _bytes_field(1, "nvidia.com/mig-1g.5gb") + _bytes_field(2, quantity))  # limits map entry
    container = _bytes_field(1, "plugin") + _bytes_field(8, resources)
    percent = _int_field(1, 1) + _bytes_field(3, "25%")
    strategy = _bytes_field(1, "RollingUpdate") + _bytes_field(2, _bytes_field(1, percent))
    pod_spec = _bytes_field(2, container)
    template = _bytes_field(2, pod_spec)
    spec = _bytes_field(2, template) + _bytes_field(3, strategy)
    daemonset = decode_object(_envelope("apps/v1", "DaemonSet", _bytes_field(2, spec)))
    assert daemonset["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}}
    assert daemonset["spec"]["template"]["spec"]["containers"] == [
        {"name": "plugin", "resources": {"limits": {"nvidia.com/mig-1g.5gb": "8"}}}
    ]


def test_unsupported_kind_is_named() -> None:
    with pytest.raises(UnsupportedProtobuf, match="autoscaling/v1/Scale"):
        decode_object(_envelope("autoscaling/v1", "Scale", b""))


@pytest.mark.parametrize("body", [b"{}", MAGIC + b"\x0a\xff", MAGIC + b"\x0b"])
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(ProtobufError):
        decode_object(body)
