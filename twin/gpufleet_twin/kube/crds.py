"""CustomResourceDefinitions (apiextensions.k8s.io/v1) and the custom resources they serve.

What the real apiextensions-apiserver does and the twin reproduces (k8s.io/apiextensions-apiserver,
``pkg/controller/status/naming_controller.go``, ``pkg/controller/establish``,
``pkg/controller/finalizer/crd_finalizer.go``, ``pkg/registry/customresource/strategy.go``):

- a CRD's name must be ``<spec.names.plural>.<spec.group>``; it is validated on create;
- once created its names are accepted and it is Established (conditions ``NamesAccepted`` and
  ``Established``, ``status.acceptedNames``, ``status.storedVersions``): from then on every served
  version is in discovery and OpenAPI, and the resource answers get/list/watch/create/...;
- a version with ``subresources.status`` gets a status subresource: creates and main-resource writes
  ignore status, ``/status`` writes change only status (as for built-in kinds);
- custom resources carry ``metadata.generation`` and bump it on spec changes;
- deleting a CRD deletes every custom resource of it, then stops serving it (the real server holds the
  CRD with the ``customresourcecleanup.apiextensions.k8s.io`` finalizer meanwhile; the twin does it in
  one step).

Not modelled (marked unknown for the twin): OpenAPI schema validation, pruning and defaulting of
custom resources, conversion between versions (every served version reads the same stored object,
as with ``conversion.strategy: None``), scale subresources, printer columns, name conflicts between CRDs.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import errors
from .resources import CUSTOM_RESOURCE_DEFINITIONS, ResourceRegistry, ResourceType, Subresource
from .timestamps import now_rfc3339

if TYPE_CHECKING:
    from .protocols import ClusterStore

CRD_RESOURCE = CUSTOM_RESOURCE_DEFINITIONS
QUALIFIED = CRD_RESOURCE.qualified
_STATUS = Subresource("status", ("get", "patch", "update"))


def validate_crd(crd: Mapping[str, Any]) -> None:
    """The checks a client meets first: names, scope, versions (apiextensions validation.go, abridged)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    name = (crd.get("metadata") or {}).get("name", "")
    group, plural = spec.get("group") or "", names.get("plural") or ""
    problems = []
    if not group:
        problems.append("spec.group: Required value")
    if not plural or plural != plural.lower():
        problems.append("spec.names.plural: Required value: must be lowercase")
    if not names.get("kind"):
        problems.append("spec.names.kind: Required value")
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        problems.append(f'spec.scope: Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"')
    versions = spec.get("versions") or []
    if not versions:
        problems.append("spec.versions: Invalid value: must have exactly one version marked as storage version")
    elif sum(1 for v in versions if v.get("storage")) != 1:
        problems.append("spec.versions: Invalid value: must have exactly one version marked as storage version")
    if group and plural and name != f"{plural}.{group}":
        problems.append(f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
    if problems:
        raise errors.invalid("CustomResourceDefinition", name, problems[0].split(":")[0], "; ".join(problems))


def served_types(crd: Mapping[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version, the storage version first."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = sorted(spec.get("versions") or [], key=lambda v: not v.get("storage"))
    types = []
    for version in versions:
        if not version.get("served", True):
            continue
        has_status = "status" in ((version.get("subresources") or {}))
        types.append(ResourceType(
            spec["group"], version["name"], names["plural"], names["kind"], spec.get("scope") == "Namespaced",
            tuple(names.get("shortNames") or ()), tuple(names.get("categories") or ()),
            subresources=(_STATUS,) if has_status else (),
            tracks_generation=True,
            status_via_subresource_only=has_status,
        ))
    return types


def established_status(crd: Mapping[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    old_conditions = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    stamp = now_rfc3339()

    def condition(kind: str, reason: str, message: str) -> dict[str, Any]:
        before = old_conditions.get(kind)
        since = before["lastTransitionTime"] if before and before.get("status") == "True" else stamp
        return {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": since}

    stored = list((previous or {}).get("storedVersions") or [])
    storage = next((v["name"] for v in spec.get("versions") or [] if v.get("storage")), None)
    if storage and storage not in stored:
        stored.append(storage)
    return {
        "acceptedNames": names,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    }


def register_served(registry: ResourceRegistry, crd: Mapping[str, Any]) -> None:
    for resource in served_types(crd):
        registry.register(resource, crd=crd["metadata"]["name"])


class CustomResourceDefinitionController:
    """Establishes new and changed CRDs, and cleans up after deleted ones (see the module docstring)."""

    def reconcile(self, cluster: ClusterStore, dirty: set[tuple[str, str]]) -> None:
        if (QUALIFIED, "") not in dirty:
            return
        crds = {crd["metadata"]["name"]: crd for crd in cluster._iter(CRD_RESOURCE, None)}
        wanted = {resource: name for name, crd in crds.items() for resource in served_types(crd)}
        kept_buckets = {resource.qualified for resource in wanted}
        for resource in list(cluster.registry):
            if cluster.registry.defined_by(resource) is None or resource in wanted:
                continue
            if resource.qualified not in kept_buckets:  # the last version of it went: its objects go too
                for obj in list(cluster._iter(resource, None)):
                    cluster.purge(resource, obj["metadata"]["name"], obj["metadata"].get("namespace"))
            cluster.registry.unregister(resource)
        for resource, name in wanted.items():
            cluster.registry.register(resource, crd=name)
        for name, crd in crds.items():
            status = established_status(crd, crd.get("status"))
            if status != crd.get("status"):
                cluster.replace(CRD_RESOURCE, name, {"metadata": {}, "status": status}, subresource="status")
