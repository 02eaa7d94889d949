"""Discovery and OpenAPI documents for the emulated API server.

Legacy discovery (``/api``, ``/apis``, ``/apis/<group>``, ``/<prefix>/<group>/<version>``) is served as
plain JSON; kubectl 1.35 and helm ask for aggregated discovery first and fall back to it when the answer's
content type is ``application/json`` without the ``as=APIGroupDiscoveryList`` parameter.

OpenAPI v3 (``/openapi/v3`` and one document per group-version) describes every served path with the
``x-kubernetes-group-version-kind`` extension and a ``fieldValidation`` query parameter on PATCH. That is
what kubectl and helm look for to decide that the server validates fields itself, so they skip
client-side schema validation and need neither ``--validate=false`` nor ``--disable-openapi-validation``.
The documents carry no schemas: kubectl's client-side apply then computes strategic merge patches from
its compiled-in types, as it does for any server whose OpenAPI lacks a kind. ``/openapi/v2`` is not
served (client-go wants it as protobuf, and nothing needs it once v3 answers).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import ALL_VERBS, ResourceRegistry, ResourceType

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "35",
    # Build metadata rather than a pre-release suffix, so chart kubeVersion ranges such as ">=1.20" match.
    "gitVersion": "v1.35.0+gpufleet.twin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{group}/{version}", "version": version} for version in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def _groups(registry: ResourceRegistry) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for group, version in registry.group_versions():
        if group:
            groups.setdefault(group, []).append(version)
    return groups


def api_group_list(registry: ResourceRegistry) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(group, versions) for group, versions in _groups(registry).items()],
    }


def api_group(registry: ResourceRegistry, group: str) -> dict[str, Any] | None:
    versions = _groups(registry).get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def _resource_entries(resource: ResourceType) -> list[dict[str, Any]]:
    verbs = list(ALL_VERBS) if resource.namespaced or resource.plural != "namespaces" else [v for v in ALL_VERBS if v != "deletecollection"]
    entries = [{
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": verbs,
        **({"shortNames": list(resource.short_names)} if resource.short_names else {}),
        **({"categories": list(resource.categories)} if resource.categories else {}),
        "storageVersionHash": hashlib.sha256(resource.qualified.encode()).hexdigest()[:12],
    }]
    for subresource in resource.subresources:
        entry: dict[str, Any] = {
            "name": f"{resource.plural}/{subresource.name}",
            "singularName": "",
            "namespaced": resource.namespaced,
            "kind": subresource.kind or resource.kind,
            "verbs": list(subresource.verbs),
        }
        if subresource.group is not None:
            entry["group"] = subresource.group
            entry["version"] = subresource.version
        entries.append(entry)
    return entries


def api_resource_list(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any] | None:
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [entry for resource in resources for entry in _resource_entries(resource)],
    }


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _document_hash(document: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:64].upper()


def openapi_v3_root(registry: ResourceRegistry) -> dict[str, Any]:
    paths = {}
    for group, version in registry.group_versions():
        document = openapi_v3_document(registry, group, version)
        paths[_gv_path(group, version)] = {
            "serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}?hash={_document_hash(document)}"
        }
    return {"paths": paths}


_QUERY_PARAMETERS = {
    name: {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for name in ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")
}


def _operation(action: str, resource: ResourceType, parameters: list[str]) -> dict[str, Any]:
    return {
        "operationId": f"{action}{resource.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
        "parameters": [_QUERY_PARAMETERS[name] for name in parameters],
        "responses": {"200": {"description": "OK"}},
    }


def openapi_v3_document(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any]:
    prefix = "/" + _gv_path(group, version)
    paths: dict[str, Any] = {}
    for resource in registry.in_group_version(group, version):
        scope = f"{prefix}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced else f"{prefix}/{resource.plural}"
        paths[scope] = {
            "get": _operation("list", resource, ["pretty"]),
            "post": _operation("post", resource, ["dryRun", "fieldManager", "fieldValidation", "pretty"]),
        }
        item = {
            "get": _operation("get", resource, ["pretty"]),
            "put": _operation("put", resource, ["dryRun", "fieldManager", "fieldValidation", "pretty"]),
            "patch": _operation("patch", resource, ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]),
            "delete": _operation("delete", resource, ["dryRun", "pretty"]),
        }
        paths[f"{scope}/{{name}}"] = item
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
