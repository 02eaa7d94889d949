"""The emulated cluster's state: objects, resourceVersions, watch events and the in-process API.

``Cluster`` is what the HTTP layer serves and what node agents (kubelet, device plugin, GFD stand-ins)
drive directly from Python. Every public method is thread-safe and works on deep copies, so callers
never share dicts with the store.

Writes follow the real API server: a global resourceVersion that grows by one per write, ``uid`` and
``creationTimestamp`` set on create, ``generation`` bumped on spec changes for workloads, status kept
apart from the main resource where a status subresource exists, no-op updates that write nothing,
finalizers that hold deletion, owner references that cascade deletion.

Controllers run synchronously after each write until nothing changes (see ``controllers.py``), so a
caller that creates a DaemonSet gets its pods in the same call, deterministically.

Choices made where the real behaviour needs machinery the twin lacks:
- Pod deletion is immediate by default: the emulated kubelet confirms termination at once. Set
  ``pod_termination_seconds`` to keep deleted pods Terminating (``deletionTimestamp`` set) for
  min(grace period, that many seconds), to exercise clients that wait for pods to go.
- Namespace deletion is immediate and removes everything in the namespace (no Terminating phase).
- Server-side apply does not track field ownership (see ``patches.py``).
"""
from __future__ import annotations

import copy
import re
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import crds, errors
from .controllers import default_controllers
from .defaults import apply_defaults, default_spec
from .errors import ApiError
from .patches import PatchError, apply_patch, json_patch, merge_patch, strategic_merge_patch
from .resources import ResourceRegistry, ResourceType
from .selectors import (
    SelectorError,
    fields_match,
    labels_match,
    object_selector_matches,
    parse_field_selector,
    parse_label_selector,
)
from .timestamps import now_rfc3339
from .workloads import (
    PDB_VIOLATION_MESSAGE,
    eviction_ignores_pdb,
    is_terminating,
    pod_ready,
)

PATCH_TYPES = ("json", "merge", "strategic", "apply")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
WATCH_HISTORY = 20000

_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_PATH_SEGMENT_GROUPS = frozenset({"rbac.authorization.k8s.io"})
# Metadata only the server writes: an update cannot change it.
_SERVER_OWNED_METADATA = (
    "name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "resourceVersion",
)


def _generate_suffix() -> str:
    return "".join(secrets.choice(_GENERATE_CHARS) for _ in range(5))


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED
    resource: ResourceType
    object: dict[str, Any]
    revision: int
    # The object as it was before a MODIFIED write (read-only; shared, not copied), so a watch with a
    # selector can tell objects entering or leaving the selection, as the real watch cache does.
    previous: dict[str, Any] | None = None

    @property
    def namespace(self) -> str:
        return self.object.get("metadata", {}).get("namespace", "")


ObjectKey = tuple[str, str, str]  # (qualified resource, namespace or "", name)
Bucket = dict[tuple[str, str], dict[str, Any]]  # one resource's objects by (namespace or "", name)
Subscriber = Callable[[WatchEvent], None]


def _spec_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Everything that bumps generation: the object minus metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _without_revision(obj: Mapping[str, Any]) -> dict[str, Any]:
    view = copy.deepcopy(dict(obj))
    view.get("metadata", {}).pop("resourceVersion", None)
    return view


# A dirty key for Node updates that changed only status (capacity, allocatable, conditions): the scheduler
# and the node agents act on it; controllers that place pods by labels and taints (DaemonSets, NFD) do not.
NODE_STATUS_DIRTY = "nodes/status"


def _without(mapping: Mapping[str, Any] | None, key: str) -> dict[str, Any]:
    return {k: v for k, v in (mapping or {}).items() if k != key}


def node_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> str | None:
    """How a Node update matters to controllers: ``"nodes"`` (metadata or spec changed), ``NODE_STATUS_DIRTY``
    (status only), or None when only the Ready heartbeat moved (``lastHeartbeatTime``), as kubelet posts it every
    ``nodeStatusUpdateFrequency``; kube's DaemonSet controller skips such updates (``shouldIgnoreNodeUpdate``)."""
    if before.get("spec") != after.get("spec") or _without(before.get("metadata"), "resourceVersion") != _without(
        after.get("metadata"), "resourceVersion"
    ) or set(before) != set(after):
        return "nodes"
    status_before, status_after = before.get("status") or {}, after.get("status") or {}
    if _without(status_before, "conditions") != _without(status_after, "conditions"):
        return NODE_STATUS_DIRTY
    conditions_before = [_without(c, "lastHeartbeatTime") for c in status_before.get("conditions") or []]
    conditions_after = [_without(c, "lastHeartbeatTime") for c in status_after.get("conditions") or []]
    return None if conditions_before == conditions_after else NODE_STATUS_DIRTY


class Cluster:
    """In-memory Kubernetes state with the semantics clients rely on (see the module docstring)."""

    def __init__(
        self,
        registry: ResourceRegistry | None = None,
        *,
        instant_pod_start: bool = True,
        pod_termination_seconds: float = 0.0,
        controllers: Iterable[Any] | None = None,
        schedule_pods: bool = False,
    ) -> None:

        self.registry = registry or ResourceRegistry()
        self.pod_termination_seconds = pod_termination_seconds
        self._lock = threading.RLock()
        self._objects: dict[str, Bucket] = {}  # by qualified resource, so a list never scans other kinds
        self._revision = 0
        self._history: deque[WatchEvent] = deque(maxlen=WATCH_HISTORY)
        self._subscribers: dict[int, Subscriber] = {}
        self._next_subscriber = 0
        self._pod_logs: dict[tuple[str, str], str] = {}
        self._applied: dict[tuple[ObjectKey, str], dict[str, Any]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._removed_uids: set[str] = set()
        self._orphaned_uids: set[str] = set()
        self._settling = False
        self.controllers = list(controllers) if controllers is not None else default_controllers(instant_pod_start, schedule_pods)
        for name in DEFAULT_NAMESPACES:
            self.create("namespaces", {"metadata": {"name": name}})

    # ------------------------------------------------------------------ lookups

    def resource(self, resource: ResourceType | str) -> ResourceType:
        return resource if isinstance(resource, ResourceType) else self.registry.resolve(resource)

    @property
    def revision(self) -> int:
        with self._lock:
            return self._revision

    def _key(self, resource: ResourceType, namespace: str | None, name: str) -> ObjectKey:
        return (resource.qualified, (namespace or "") if resource.namespaced else "", name)

    def _bucket(self, qualified: str) -> Bucket:
        return self._objects.setdefault(qualified, {})

    def _lookup(self, resource: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        qualified, namespace_key, name = self._key(resource, namespace, name)
        return self._bucket(qualified).get((namespace_key, name))

    def _all_objects(self) -> Iterable[tuple[str, dict[str, Any]]]:
        """(qualified resource, live object) for everything stored; for controllers, under the lock."""
        for qualified, bucket in list(self._objects.items()):
            for obj in list(bucket.values()):
                yield qualified, obj

    def _require(self, resource: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self._lookup(resource, namespace, name)
        if obj is None:
            raise errors.not_found(resource.plural, resource.group, name)
        return obj

    def get(self, resource: ResourceType | str, name: str, namespace: str | None = None) -> dict[str, Any]:
        resource = self.resource(resource)
        with self._lock:
            return copy.deepcopy(self._require(resource, namespace, name))

    def exists(self, resource: ResourceType | str, name: str, namespace: str | None = None) -> bool:
        resource = self.resource(resource)
        with self._lock:
            return self._lookup(resource, namespace, name) is not None

    def _iter(self, resource: ResourceType, namespace: str | None) -> Iterable[dict[str, Any]]:
        for (obj_namespace, _), obj in sorted(self._bucket(resource.qualified).items()):
            if not namespace or not resource.namespaced or obj_namespace == namespace:
                yield obj

    def list_with_revision(
        self,
        resource: ResourceType | str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Matching objects sorted by namespace and name, and the revision they were read at."""
        resource = self.resource(resource)
        try:
            labels = parse_label_selector(label_selector)
            fields = parse_field_selector(field_selector, resource.field_selectors)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for obj in self._iter(resource, namespace)
                if labels_match(labels, obj.get("metadata", {}).get("labels")) and fields_match(fields, obj)
            ]
            return items, self._revision

    def list(
        self,
        resource: ResourceType | str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        return self.list_with_revision(resource, namespace, label_selector, field_selector)[0]

    # ------------------------------------------------------------------ watch

    def subscribe(self, callback: Subscriber) -> int:
        """Call ``callback`` with every WatchEvent from now on, under the store lock; returns a handle
        for ``unsubscribe``.

        The callback must not block and must not call back into the store; hand the event to a
        queue or an event loop instead. An agent thread typically does
        ``events = queue.SimpleQueue(); cluster.subscribe(events.put)`` and reacts to ``events.get()``;
        the HTTP watch uses ``loop.call_soon_threadsafe``.
        """
        with self._lock:
            self._next_subscriber += 1
            self._subscribers[self._next_subscriber] = callback
            return self._next_subscriber

    def unsubscribe(self, handle: int) -> None:
        with self._lock:
            self._subscribers.pop(handle, None)

    def events_since(self, revision: int, resource: ResourceType | None = None) -> list[WatchEvent]:
        """Events after ``revision``; 410 Expired when the history no longer reaches back that far."""
        with self._lock:
            if revision > self._revision:
                return []
            oldest = self._history[0].revision if self._history else self._revision + 1
            if revision + 1 < oldest and revision < self._revision:
                raise errors.expired(f"too old resource version: {revision} ({oldest - 1})")
            return [e for e in self._history if e.revision > revision and (resource is None or e.resource == resource)]

    # ------------------------------------------------------------------ writes: plumbing

    def _emit(self, event_type: str, resource: ResourceType, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
        event = WatchEvent(event_type, resource, copy.deepcopy(obj), self._revision, previous)
        self._history.append(event)
        for callback in list(self._subscribers.values()):
            callback(event)
        qualified = resource.qualified
        if qualified == "nodes" and event_type == "MODIFIED" and previous is not None:
            change = node_change(previous, obj)
            if change is None:
                return  # a heartbeat: no controller acts on it (kube's DaemonSet controller ignores these too)
            qualified = change
        self._dirty.add((qualified, obj.get("metadata", {}).get("namespace", "")))

    def _store(self, resource: ResourceType, obj: dict[str, Any], event_type: str) -> dict[str, Any]:
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        qualified, namespace_key, name = self._key(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        bucket = self._bucket(qualified)
        previous = bucket.get((namespace_key, name))
        bucket[(namespace_key, name)] = obj
        self._emit(event_type, resource, obj, previous)
        return copy.deepcopy(obj)

    def _purge(self, resource: ResourceType, obj: dict[str, Any], *, orphan: bool) -> dict[str, Any]:
        key = self._key(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        del self._bucket(key[0])[key[1:]]
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        for applied_key in [k for k in self._applied if k[0] == key]:
            del self._applied[applied_key]
        if resource.qualified == "pods":
            self._pod_logs.pop((obj["metadata"]["namespace"], obj["metadata"]["name"]), None)
        uid = obj["metadata"].get("uid")
        if uid:
            (self._orphaned_uids if orphan else self._removed_uids).add(uid)
        self._emit("DELETED", resource, obj)
        return copy.deepcopy(obj)

    def _settle(self) -> None:
        """Run the controllers until they stop writing (bounded, in case two of them disagree)."""
        if self._settling:
            return
        self._settling = True
        try:
            for _ in range(100):
                if not (self._dirty or self._removed_uids or self._orphaned_uids):
                    return
                dirty, self._dirty = self._dirty, set()
                for controller in self.controllers:
                    controller.reconcile(self, dirty)
        finally:
            self._settling = False

    def take_removed_uids(self) -> tuple[set[str], set[str]]:
        """For the garbage collector: uids deleted since the last call, (cascading, orphaning)."""
        removed, orphaned = self._removed_uids, self._orphaned_uids
        self._removed_uids, self._orphaned_uids = set(), set()
        return removed, orphaned

    # ------------------------------------------------------------------ writes: validation

    def _namespace_for(self, resource: ResourceType, namespace: str | None, obj: Mapping[str, Any]) -> str | None:
        body_namespace = obj.get("metadata", {}).get("namespace")
        if not resource.namespaced:
            return None
        if namespace and body_namespace and namespace != body_namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        chosen = namespace or body_namespace
        if not chosen:
            raise errors.bad_request(f"a namespace is required to create {resource.plural}")
        return chosen

    def _check_namespace_open(self, resource: ResourceType, namespace: str | None, name: str) -> None:
        if not resource.namespaced:
            return
        ns = self._bucket("namespaces").get(("", namespace or ""))
        if ns is None:
            raise errors.not_found("namespaces", "", namespace or "")
        if is_terminating(ns):
            raise errors.forbidden(
                f'{resource.plural} "{name}" is forbidden: unable to create new content in namespace {namespace} '
                "because it is being terminated"
            )

    def _validate(self, resource: ResourceType, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata", {})
        name = meta.get("name", "")
        if resource.group in _PATH_SEGMENT_GROUPS:
            valid = name not in (".", "..") and "/" not in name and "%" not in name
            rule = "may not contain '/' or '%'"
        elif resource.qualified == "namespaces":
            valid = len(name) <= 63 and bool(_DNS_LABEL_RE.match(name))
            rule = (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            )
        else:
            valid = len(name) <= 253 and bool(_SUBDOMAIN_RE.match(name))
            rule = (
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            )
        if not valid:
            raise errors.invalid(resource.kind, name, "metadata.name", f'Invalid value: "{name}": {rule}')
        if resource.qualified == crds.QUALIFIED:
            crds.validate_crd(obj)
        from .selectors import _LABEL_KEY_RE, _LABEL_VALUE_RE  # shared syntax rules

        for key, value in (meta.get("labels") or {}).items():
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE_RE.match(value):
                raise errors.invalid(
                    resource.kind, name, "metadata.labels",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist of alphanumeric '
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                )
            if not _LABEL_KEY_RE.match(key):
                raise errors.invalid(
                    resource.kind, name, "metadata.labels",
                    f'Invalid value: "{key}": name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\'',
                )
        for key, value in (meta.get("annotations") or {}).items():
            if not isinstance(value, str):
                raise errors.bad_request(f"annotation {key!r} must be a string")

    def _prepare_new(self, resource: ResourceType, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(resource.kind, "", "metadata.name", "Required value: name or generateName is required")
            meta["name"] = meta["generateName"] + _generate_suffix()
        if namespace:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        for system_field in ("resourceVersion", "selfLink", "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(system_field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if resource.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        apply_defaults(resource, obj)
        return obj

    # ------------------------------------------------------------------ writes: public API

    def create(
        self,
        resource: ResourceType | str,
        obj: Mapping[str, Any],
        namespace: str | None = None,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        resource = self.resource(resource)
        body = copy.deepcopy(dict(obj))
        with self._lock:
            ns = self._namespace_for(resource, namespace, body)
            body = self._prepare_new(resource, body, ns)
            name = body["metadata"]["name"]
            self._validate(resource, body)
            self._check_namespace_open(resource, ns, name)
            if self._lookup(resource, ns, name) is not None:
                raise errors.already_exists(resource.plural, resource.group, name)
            if dry_run:
                return body
            created = self._store(resource, body, "ADDED")
            self._settle()
            return created

    def replace(
        self,
        resource: ResourceType | str,
        name: str,
        obj: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT: the whole object (or its status with ``subresource='status'``), optimistic on resourceVersion."""
        resource = self.resource(resource)
        body = copy.deepcopy(dict(obj))
        with self._lock:
            existing = self._require(resource, namespace, name)
            body_meta = body.setdefault("metadata", {})
            if body_meta.get("name") and body_meta["name"] != name:
                raise errors.bad_request(f"the name of the object ({body_meta['name']}) does not match the name on the URL ({name})")
            if resource.namespaced and body_meta.get("namespace") and body_meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            wanted_revision = body_meta.get("resourceVersion")
            if wanted_revision and wanted_revision != existing["metadata"]["resourceVersion"]:
                raise errors.stale_resource_version(resource.plural, resource.group, name)
            return self._commit_update(resource, existing, body, subresource, dry_run)

    def patch(
        self,
        resource: ResourceType | str,
        name: str,
        patch: Any,
        patch_type: str = "merge",
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PATCH with ``patch_type`` one of json, merge, strategic, apply; apply creates missing objects."""
        resource = self.resource(resource)
        if patch_type not in PATCH_TYPES:
            raise ValueError(f"patch_type must be one of {PATCH_TYPES}, not {patch_type!r}")
        with self._lock:
            existing = self._lookup(resource, namespace, name)
            if patch_type == "apply":
                return self._apply(resource, name, patch, namespace, existing, subresource, field_manager, dry_run)
            if existing is None:
                raise errors.not_found(resource.plural, resource.group, name)
            try:
                if patch_type == "json":
                    patched = json_patch(existing, patch)
                elif patch_type == "merge":
                    patched = merge_patch(existing, patch)
                else:
                    patched = strategic_merge_patch(existing, patch)
            except TypeError as exc:
                raise errors.bad_request(str(exc)) from exc
            except PatchError as exc:
                raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}") from exc
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch produced something that is not an object")
            if isinstance(patch, Mapping):
                wanted_revision = (patch.get("metadata") or {}).get("resourceVersion")
                if wanted_revision and wanted_revision != existing["metadata"]["resourceVersion"]:
                    raise errors.stale_resource_version(resource.plural, resource.group, name)
            patched.setdefault("metadata", {})["resourceVersion"] = existing["metadata"]["resourceVersion"]
            return self._commit_update(resource, existing, patched, subresource, dry_run)

    def _apply(
        self,
        resource: ResourceType,
        name: str,
        applied: Any,
        namespace: str | None,
        existing: dict[str, Any] | None,
        subresource: str | None,
        field_manager: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        if not field_manager:
            raise errors.bad_request("PATCH, application/apply-patch+yaml: fieldManager is required for apply requests")
        if not isinstance(applied, Mapping):
            raise errors.bad_request("an apply patch must be an object")
        if applied.get("kind") != resource.kind or applied.get("apiVersion") != resource.api_version:
            raise errors.bad_request(
                f"apply patch for {resource.api_version}, Kind={resource.kind} has apiVersion "
                f"{applied.get('apiVersion')!r} and kind {applied.get('kind')!r}"
            )
        applied_name = (applied.get("metadata") or {}).get("name")
        if applied_name and applied_name != name:
            raise errors.bad_request(f"the name of the object ({applied_name}) does not match the name on the URL ({name})")
        key = self._key(resource, namespace, name)
        previous = self._applied.get((key, field_manager))
        if existing is None:
            new = apply_patch({}, applied, None)
            new.setdefault("metadata", {})["name"] = name
            created = self.create(resource, new, namespace, dry_run=dry_run)
            if not dry_run:
                self._applied[(key, field_manager)] = copy.deepcopy(dict(applied))
            return created
        merged = apply_patch(existing, applied, previous)
        merged.setdefault("metadata", {})["resourceVersion"] = existing["metadata"]["resourceVersion"]
        result = self._commit_update(resource, existing, merged, subresource, dry_run)
        if not dry_run:
            self._applied[(key, field_manager)] = copy.deepcopy(dict(applied))
        return result

    def _commit_update(
        self,
        resource: ResourceType,
        existing: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        if subresource == "status":
            candidate = copy.deepcopy(existing)
            candidate["status"] = copy.deepcopy(new.get("status") or {})
        elif subresource:
            raise errors.method_not_allowed()
        else:
            candidate = copy.deepcopy(new)
            if resource.has_status:
                if "status" in existing:
                    candidate["status"] = copy.deepcopy(existing["status"])
                else:
                    candidate.pop("status", None)
        candidate["apiVersion"], candidate["kind"] = resource.api_version, resource.kind
        meta = candidate.setdefault("metadata", {})
        old_meta = existing["metadata"]
        for system_field in _SERVER_OWNED_METADATA:
            if system_field in old_meta:
                meta[system_field] = old_meta[system_field]
            else:
                meta.pop(system_field, None)
        meta.pop("managedFields", None)
        meta.pop("selfLink", None)
        if resource.qualified == "secrets":
            apply_defaults(resource, candidate)
        default_spec(resource, candidate)
        if resource.tracks_generation and _spec_view(candidate) != _spec_view(existing):
            meta["generation"] = old_meta.get("generation", 1) + 1
        self._validate(resource, candidate)
        if _without_revision(candidate) == _without_revision(existing):
            return copy.deepcopy(existing)  # the real server writes nothing for a no-op update
        if dry_run:
            return candidate
        if is_terminating(candidate) and not meta.get("finalizers") and not self._graceful_pod(resource, candidate):
            purged = self._purge(resource, self._require(resource, meta.get("namespace"), meta["name"]), orphan=False)
            self._settle()
            return purged
        stored = self._store(resource, candidate, "MODIFIED")
        self._settle()
        return stored

    def _graceful_pod(self, resource: ResourceType, pod: Mapping[str, Any]) -> bool:
        return resource.qualified == "pods" and pod.get("metadata", {}).get("deletionGracePeriodSeconds", 0) > 0 and self.pod_termination_seconds > 0

    def delete(
        self,
        resource: ResourceType | str,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Delete an object; returns (object, deleted_now). ``deleted_now`` is False while finalizers or a
        grace period hold it (it then carries ``deletionTimestamp``)."""
        resource = self.resource(resource)
        with self._lock:
            existing = self._require(resource, namespace, name)
            meta = existing["metadata"]
            if preconditions:
                if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                    raise errors.conflict(
                        resource.plural, resource.group, name,
                        f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {meta.get('uid')}",
                    )
                if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta.get("resourceVersion"):
                    raise errors.conflict(
                        resource.plural, resource.group, name,
                        f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']}, "
                        f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
                    )
            if dry_run:
                return copy.deepcopy(existing), False
            orphan = propagation_policy == "Orphan"
            if resource.qualified == "namespaces" and name in ("default", "kube-system", "kube-public"):
                raise errors.forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
            if resource.qualified == "namespaces":
                self._delete_namespace_contents(name)
            if meta.get("finalizers"):
                if not meta.get("deletionTimestamp"):
                    updated = copy.deepcopy(existing)
                    updated["metadata"]["deletionTimestamp"] = now_rfc3339()
                    updated["metadata"]["deletionGracePeriodSeconds"] = 0
                    stored = self._store(resource, updated, "MODIFIED")
                    self._settle()
                    return stored, False
                return copy.deepcopy(existing), False
            grace = self._pod_grace(resource, existing, grace_period_seconds)
            if grace > 0:
                if not meta.get("deletionTimestamp"):
                    updated = copy.deepcopy(existing)
                    updated["metadata"]["deletionTimestamp"] = now_rfc3339()
                    updated["metadata"]["deletionGracePeriodSeconds"] = int(grace)
                    stored = self._store(resource, updated, "MODIFIED")
                    self._schedule_pod_removal(resource, updated, min(grace, self.pod_termination_seconds))
                    self._settle()
                    return stored, False
                return copy.deepcopy(existing), False
            purged = self._purge(resource, existing, orphan=orphan)
            self._settle()
            return purged, True

    def purge(self, resource: ResourceType | str, name: str, namespace: str | None = None) -> None:
        """Remove an object at once, finalizers or not (for controllers that own a whole kind's storage,
        such as the CRD cleanup); owner references cascade as after a deletion."""
        resource = self.resource(resource)
        with self._lock:
            existing = self._lookup(resource, namespace, name)
            if existing is not None:
                self._purge(resource, existing, orphan=False)
                self._settle()

    def _pod_grace(self, resource: ResourceType, pod: Mapping[str, Any], requested: int | None) -> float:
        if resource.qualified != "pods" or self.pod_termination_seconds <= 0:
            return 0
        if not pod.get("spec", {}).get("nodeName") or pod.get("status", {}).get("phase") in ("Succeeded", "Failed", "Pending"):
            return 0  # the real server also deletes unbound and never-started pods at once
        grace = requested if requested is not None and requested >= 0 else pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)
        return grace

    def _schedule_pod_removal(self, resource: ResourceType, pod: Mapping[str, Any], delay: float) -> None:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        uid = pod["metadata"]["uid"]

        def finish() -> None:
            with self._lock:
                current = self._lookup(resource, namespace, name)
                if current is not None and current["metadata"].get("uid") == uid:
                    self._purge(resource, current, orphan=False)
                    self._settle()

        timer = threading.Timer(delay, finish)
        timer.daemon = True
        timer.start()

    def _delete_namespace_contents(self, namespace: str) -> None:
        for resource in self.registry:
            if resource.namespaced:
                for obj in list(self._iter(resource, namespace)):
                    self._purge(resource, obj, orphan=False)

    def delete_collection(
        self,
        resource: ResourceType | str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        **options: Any,
    ) -> list[dict[str, Any]]:
        resource = self.resource(resource)
        with self._lock:
            victims = self.list(resource, namespace, label_selector, field_selector)
            results = []
            for victim in victims:
                if self._lookup(resource, victim["metadata"].get("namespace"), victim["metadata"]["name"]) is None:
                    continue  # gone through a cascade in the meantime
                results.append(self.delete(resource, victim["metadata"]["name"], victim["metadata"].get("namespace"), **options)[0])
            return results

    # ------------------------------------------------------------------ eviction

    def evict(self, namespace: str, name: str, delete_options: Mapping[str, Any] | None = None, *, dry_run: bool = False) -> None:
        """POST pods/<name>/eviction: delete the pod unless a PodDisruptionBudget forbids it (429)."""
        pods = self.resource("pods")
        options = dict(delete_options or {})
        dry_run = dry_run or bool(options.get("dryRun"))
        with self._lock:
            pod = self._require(pods, namespace, name)
            if eviction_ignores_pdb(pod):
                self._delete_evicted(pod, options, dry_run)
                return
            budgets = self._budgets_for(pod)
            if len(budgets) > 1:
                raise ApiError(500, "", "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")
            if not budgets:
                self._delete_evicted(pod, options, dry_run)
                return
            budget = budgets[0]
            status = budget.get("status") or {}
            if not pod_ready(pod):
                policy = budget.get("spec", {}).get("unhealthyPodEvictionPolicy")
                if policy == "AlwaysAllow" or (
                    status.get("currentHealthy", 0) >= status.get("desiredHealthy", 0) and status.get("desiredHealthy", 0) > 0
                ):
                    self._delete_evicted(pod, options, dry_run)
                    return
            self._check_and_decrement(budget, name, dry_run)
            self._delete_evicted(pod, options, dry_run)

    def _budgets_for(self, pod: Mapping[str, Any]) -> list[dict[str, Any]]:
        pdbs = self.resource("poddisruptionbudgets")
        labels = pod.get("metadata", {}).get("labels")
        return [
            budget
            for budget in self._iter(pdbs, pod["metadata"]["namespace"])
            if object_selector_matches(budget.get("spec", {}).get("selector"), labels, empty_matches=False)
        ]

    def _check_and_decrement(self, budget: dict[str, Any], pod_name: str, dry_run: bool) -> None:
        status = budget.get("status") or {}
        budget_name = budget["metadata"]["name"]
        if status.get("observedGeneration", 0) < budget["metadata"].get("generation", 1):
            raise errors.too_many_requests(
                PDB_VIOLATION_MESSAGE,
                [{"reason": "DisruptionBudget", "message": f"The disruption budget {budget_name} is still being processed by the server."}],
                retry_after_seconds=10,
            )
        allowed = status.get("disruptionsAllowed", 0)
        if allowed < 0:
            raise errors.forbidden(f'poddisruptionbudgets.policy "{budget_name}" is forbidden: pdb disruptions allowed is negative')
        if allowed == 0:
            raise errors.too_many_requests(
                PDB_VIOLATION_MESSAGE,
                [{
                    "reason": "DisruptionBudget",
                    "message": (
                        f"The disruption budget {budget_name} needs {status.get('desiredHealthy', 0)} healthy pods "
                        f"and has {status.get('currentHealthy', 0)} currently"
                    ),
                }],
            )
        if dry_run:
            return
        updated = copy.deepcopy(budget)
        new_status = updated.setdefault("status", {})
        new_status["disruptionsAllowed"] = allowed - 1
        new_status.setdefault("disruptedPods", {})[pod_name] = now_rfc3339()
        self._store(self.resource("poddisruptionbudgets"), updated, "MODIFIED")

    def _delete_evicted(self, pod: Mapping[str, Any], options: Mapping[str, Any], dry_run: bool) -> None:
        if dry_run:
            return
        meta = pod["metadata"]
        preconditions = options.get("preconditions")
        self.delete(
            "pods",
            meta["name"],
            meta["namespace"],
            grace_period_seconds=options.get("gracePeriodSeconds"),
            propagation_policy=options.get("propagationPolicy"),
            preconditions=preconditions,
        )

    # ------------------------------------------------------------------ pod logs

    def set_pod_log(self, namespace: str, name: str, text: str) -> None:
        """What ``GET pods/<name>/log`` returns from now on (agents set it)."""
        with self._lock:
            self._require(self.resource("pods"), namespace, name)
            self._pod_logs[(namespace, name)] = text

    def append_pod_log(self, namespace: str, name: str, text: str) -> None:
        with self._lock:
            self._require(self.resource("pods"), namespace, name)
            self._pod_logs[(namespace, name)] = self._pod_logs.get((namespace, name), "") + text

    def pod_log(self, namespace: str, name: str, tail_lines: int | None = None) -> str:
        with self._lock:
            self._require(self.resource("pods"), namespace, name)
            text = self._pod_logs.get((namespace, name), "")
        if tail_lines is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail_lines:]) if tail_lines > 0 else ""
        return text

    # ------------------------------------------------------------------ helpers for node agents and tests

    def add_node(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        capacity: Mapping[str, str] | None = None,
        allocatable: Mapping[str, str] | None = None,
        taints: list[Mapping[str, Any]] | None = None,
        ready: bool = True,
    ) -> dict[str, Any]:
        """Register a node the way a kubelet does: labels, capacity/allocatable and a Ready condition."""
        node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        node_labels.update(labels or {})
        capacity = dict(capacity or {"cpu": "64", "memory": "512Gi", "pods": "110"})
        return self.create(
            "nodes",
            {
                "metadata": {"name": name, "labels": node_labels},
                "spec": {"taints": [dict(t) for t in taints]} if taints else {},
                "status": {
                    "capacity": capacity,
                    "allocatable": dict(allocatable or capacity),
                    "conditions": [self._ready_condition(ready)],
                    "addresses": [{"type": "Hostname", "address": name}],
                    "nodeInfo": self._node_info(name),
                },
            },
        )

    @staticmethod
    def _node_info(name: str) -> dict[str, str]:
        # Every field is required by the API schema (the kubernetes client rejects a node without them).
        machine = uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.gpufleet-twin")
        return {
            "machineID": machine.hex,
            "systemUUID": str(machine),
            "bootID": str(uuid.uuid4()),
            "kernelVersion": "6.8.0-gpufleet-twin",
            "osImage": "Ubuntu 24.04 LTS (gpufleet twin)",
            "containerRuntimeVersion": "containerd://2.0.0",
            "kubeletVersion": "v1.35.0",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        }

    @staticmethod
    def _ready_condition(ready: bool) -> dict[str, str]:
        stamp = now_rfc3339()
        return {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": "kubelet is posting ready status" if ready else "kubelet stopped posting node status",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }

    def set_node_status(self, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Report node status as kubelet does: each given field (capacity, allocatable, ...) replaces the
        stored one whole, except ``conditions``, which merge by type. A None value removes the field."""
        with self._lock:
            current = self.get("nodes", name)
            new_status = dict(current.get("status") or {})
            for key, value in status.items():
                if value is None:
                    new_status.pop(key, None)
                elif key == "conditions":
                    new_status[key] = strategic_merge_patch({"conditions": new_status.get(key) or []}, {"conditions": value})["conditions"]
                else:
                    new_status[key] = copy.deepcopy(value)
            return self.replace("nodes", name, {"metadata": {}, "status": new_status}, subresource="status")

    def set_extended_resources(
        self,
        name: str,
        capacity: Mapping[str, int | str],
        allocatable: Mapping[str, int | str] | None = None,
        *,
        prefix: str = "nvidia.com/",
    ) -> dict[str, Any]:
        """Advertise device-plugin resources the way kubelet does: every capacity/allocatable entry under
        ``prefix`` is replaced by the given ones (allocatable defaults to capacity); cpu, memory and pods
        stay. Kubelet zeroes allocatable at once when a plugin stops but keeps capacity for a grace period;
        an agent reproduces that by passing different capacity and allocatable."""
        with self._lock:
            status = self.get("nodes", name).get("status") or {}

            def merged(current: Mapping[str, str] | None, wanted: Mapping[str, int | str]) -> dict[str, str]:
                kept = {k: v for k, v in (current or {}).items() if not k.startswith(prefix)}
                kept.update({k: str(v) for k, v in wanted.items()})
                return kept

            return self.set_node_status(name, {
                "capacity": merged(status.get("capacity"), capacity),
                "allocatable": merged(status.get("allocatable"), capacity if allocatable is None else allocatable),
            })

    def set_node_labels(self, name: str, labels: Mapping[str, str | None]) -> dict[str, Any]:
        """Set labels on a node; a None value removes the label."""
        return self.patch("nodes", name, {"metadata": {"labels": dict(labels)}}, "merge")

    def pods_on_node(self, node_name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """``list("pods", namespace, field_selector="spec.nodeName=<node>")``, without parsing a selector and
        sorting every pod of the cluster first (a node agent asks after each change of its pods)."""
        with self._lock:
            found = [
                (key, obj) for key, obj in self._bucket("pods").items()
                if (obj.get("spec") or {}).get("nodeName") == node_name and (not namespace or key[0] == namespace)
            ]
            return [copy.deepcopy(obj) for _, obj in sorted(found, key=lambda item: item[0])]

    def set_pod_status(
        self,
        namespace: str,
        name: str,
        *,
        phase: str | None = None,
        ready: bool | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Set a pod's phase and/or Ready condition (what kubelet reports)."""
        status: dict[str, Any] = dict(extra or {})
        if phase is not None:
            status["phase"] = phase
        if ready is not None:
            state = "True" if ready else "False"
            stamp = now_rfc3339()
            status["conditions"] = [
                {"type": "Ready", "status": state, "lastTransitionTime": stamp},
                {"type": "ContainersReady", "status": state, "lastTransitionTime": stamp},
            ]
        return self.patch("pods", name, {"status": status}, "strategic", namespace, subresource="status")

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to restore the cluster in a new process (watch history excepted)."""
        with self._lock:
            return {
                "revision": self._revision,
                "objects": [copy.deepcopy(obj) for _, obj in self._all_objects()],
                "pod_logs": [[ns, name, text] for (ns, name), text in self._pod_logs.items()],
                "applied": [[*key, manager, copy.deepcopy(config)] for (key, manager), config in self._applied.items()],
            }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the state with a snapshot; objects keep their uids and resourceVersions."""
        with self._lock:
            self._objects.clear()
            self._pod_logs.clear()
            self._applied.clear()
            self._history.clear()
            for obj in snapshot.get("objects", []):
                if obj.get("kind") == crds.CRD_RESOURCE.kind and obj.get("apiVersion") == crds.CRD_RESOURCE.api_version:
                    crds.register_served(self.registry, obj)  # before the objects they serve
            for obj in snapshot.get("objects", []):
                resource = self.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
                if resource is None:
                    continue
                qualified, namespace_key, name = self._key(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
                self._bucket(qualified)[(namespace_key, name)] = copy.deepcopy(obj)
            for namespace, name, text in snapshot.get("pod_logs", []):
                self._pod_logs[(namespace, name)] = text
            for qualified, namespace, name, manager, config in snapshot.get("applied", []):
                self._applied[((qualified, namespace, name), manager)] = copy.deepcopy(config)
            self._revision = int(snapshot.get("revision", 0))
