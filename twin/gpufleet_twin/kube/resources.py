"""The resource types the emulated API server serves, with what discovery and the store need to know.

Custom resources are registered and unregistered as their CustomResourceDefinitions come and go
(``crds.py``); ``ResourceRegistry.defined_by`` tells which CRD serves a type.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
COMMON_FIELD_SELECTORS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class Subresource:
    name: str
    verbs: tuple[str, ...]
    # The kind a request body or response has, when it is not the parent's (pods/eviction → policy/v1 Eviction).
    kind: str | None = None
    group: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    # Controllers bump metadata.generation on spec changes only for these (workloads, PDBs, pods).
    tracks_generation: bool = False
    # Status is reset on create for these (a pod starts Pending whatever the creator says). Nodes are
    # not among them: a kubelet registers its node with status. Updates of the main resource keep the
    # stored status for every resource that has a status subresource, nodes included.
    status_via_subresource_only: bool = False
    field_selectors: frozenset[str] = field(default=COMMON_FIELD_SELECTORS)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """``pods`` or ``daemonsets.apps``: how the real server names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return self.subresource("status") is not None

    def subresource(self, name: str) -> Subresource | None:
        for subresource in self.subresources:
            if subresource.name == name:
                return subresource
        return None


_STATUS = Subresource("status", ("get", "patch", "update"))


def _fields(*extra: str) -> frozenset[str]:
    return COMMON_FIELD_SELECTORS | frozenset(extra)


CUSTOM_RESOURCE_DEFINITIONS = ResourceType(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False, ("crd", "crds"),
    ("api-extensions",), subresources=(_STATUS,), tracks_generation=True,
)

BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        "", "v1", "namespaces", "Namespace", False, ("ns",),
        subresources=(_STATUS, Subresource("finalize", ("update",))),
        field_selectors=_fields("status.phase"),
    ),
    ResourceType(
        "", "v1", "nodes", "Node", False, ("no",),
        subresources=(_STATUS,),
        field_selectors=_fields("spec.unschedulable"),
    ),
    ResourceType(
        "", "v1", "pods", "Pod", True, ("po",), ("all",),
        subresources=(
            _STATUS,
            Subresource("log", ("get",)),
            Subresource("eviction", ("create",), kind="Eviction", group="policy", version="v1"),
        ),
        tracks_generation=True,
        status_via_subresource_only=True,
        field_selectors=_fields(
            "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
        ),
    ),
    ResourceType("", "v1", "secrets", "Secret", True, field_selectors=_fields("type")),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    ResourceType(
        "", "v1", "services", "Service", True, ("svc",), ("all",),
        subresources=(_STATUS,), status_via_subresource_only=True,
    ),
    ResourceType("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    ResourceType(
        "", "v1", "events", "Event", True, ("ev",),
        field_selectors=_fields(
            "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
            "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
            "reason", "reportingComponent", "source", "type",
        ),
    ),
    ResourceType("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), subresources=(_STATUS,)),
    ResourceType("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), subresources=(_STATUS,)),
    ResourceType(
        "apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("all",),
        subresources=(_STATUS,), tracks_generation=True, status_via_subresource_only=True,
    ),
    ResourceType(
        "apps", "v1", "deployments", "Deployment", True, ("deploy",), ("all",),
        subresources=(_STATUS,), tracks_generation=True, status_via_subresource_only=True,
    ),
    ResourceType(
        "apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("all",),
        subresources=(_STATUS,), tracks_generation=True, status_via_subresource_only=True,
    ),
    ResourceType(
        "apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("all",),
        subresources=(_STATUS,), tracks_generation=True, status_via_subresource_only=True,
    ),
    ResourceType("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    ResourceType(
        "batch", "v1", "jobs", "Job", True, categories=("all",),
        subresources=(_STATUS,), tracks_generation=True, status_via_subresource_only=True,
    ),
    ResourceType(
        "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",),
        subresources=(_STATUS,), tracks_generation=True, status_via_subresource_only=True,
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceType("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    # Stored only (nothing enforces them): NFD's chart renders them when its networkPolicy values are enabled.
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    CUSTOM_RESOURCE_DEFINITIONS,
    ResourceType("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
)


class ResourceRegistry:
    """Lookup of served resources by URL parts and by apiVersion/kind, in registration order."""

    def __init__(self, resources: Iterable[ResourceType] = BUILTIN_RESOURCES) -> None:
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        self._defined_by: dict[tuple[str, str, str], str] = {}
        for resource in resources:
            self.register(resource)

    def register(self, resource: ResourceType, *, crd: str | None = None) -> None:
        """Serve ``resource``; ``crd`` names the CustomResourceDefinition it comes from, if any."""
        key = (resource.group, resource.version, resource.plural)
        self._by_path[key] = resource
        # events.k8s.io/v1 Event and v1 Event share a kind but not an apiVersion, so both stay reachable.
        self._by_kind[(resource.api_version, resource.kind)] = resource
        if crd is not None:
            self._defined_by[key] = crd

    def unregister(self, resource: ResourceType) -> None:
        key = (resource.group, resource.version, resource.plural)
        if self._by_path.get(key) == resource:
            del self._by_path[key]
            self._defined_by.pop(key, None)
        if self._by_kind.get((resource.api_version, resource.kind)) == resource:
            del self._by_kind[(resource.api_version, resource.kind)]

    def defined_by(self, resource: ResourceType) -> str | None:
        """The CustomResourceDefinition serving ``resource``, None for built-in kinds."""
        return self._defined_by.get((resource.group, resource.version, resource.plural))

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._by_path.values())

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((api_version, kind))

    def group_versions(self) -> list[tuple[str, str]]:
        """(group, version) pairs in registration order, the core group first."""
        seen: dict[tuple[str, str], None] = {}
        for resource in self._by_path.values():
            seen.setdefault((resource.group, resource.version), None)
        return list(seen)

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self._by_path.values() if r.group == group and r.version == version]

    def resolve(self, name: str) -> ResourceType:
        """Find a resource by plural, singular, kind, short name or ``plural.group`` (for the in-process API)."""
        wanted = name.lower()
        for resource in self._by_path.values():
            names = {resource.plural, resource.singular, resource.kind.lower(), resource.qualified, *resource.short_names}
            if wanted in names:
                return resource
        raise KeyError(f"unknown resource {name!r}")
