"""The HTTP face of the emulated cluster: Kubernetes REST semantics on top of kmock's request handler.

How kmock is used, and why not all of it:

- ``KubeApiHandler`` is a ``kmock.RawHandler``. It keeps kmock's request log and reaction DSL, so a test
  can inject faults in front of the emulation (``api.handler['post', kmock.subresource('eviction')][:2]
  << 500`` fails the next two evictions) and assert on what clients sent (``list(api.handler)``).
- Everything else is ours. kmock's ``KubernetesEmulator`` only merges dicts (no resourceVersion,
  selectors, kinds, patch types, subresource semantics), its path parser fails on
  ``/api/v1/namespaces``, and its request parser fails on binary (protobuf) bodies. So requests are
  parsed here, and a request no reaction claims is served by ``Cluster`` with raw aiohttp responses.
- The server itself is a plain ``aiohttp.web.Server`` (see ``server.py``): kmock's ``Server`` installs
  a process-wide DNS interceptor, which several servers in one process must not share.

Every request but ``/healthz``, ``/livez`` and ``/readyz`` needs ``Authorization: Bearer <token>``;
without it the answer is 401, as from a real API server with anonymous auth disabled.
"""
from __future__ import annotations

import asyncio
import datetime
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import yaml
from kmock import RawHandler, Request, action, method, resource

from . import discovery, errors
from .cluster import Cluster, WatchEvent
from .errors import ApiError
from .protobuf import ProtobufError, UnsupportedProtobuf, decode_object, is_protobuf
from .resources import ResourceType
from .selectors import SelectorError, fields_match, labels_match, parse_field_selector, parse_label_selector

LOG = logging.getLogger(__name__)

PATCH_CONTENT_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
UNAUTHENTICATED_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
DEFAULT_WATCH_TIMEOUT = 1800.0
JSON = "application/json"


@dataclass(frozen=True)
class Route:
    """What a URL addresses. ``kind`` is one of root, version, api, apis, group, group_version, openapi, resource."""

    kind: str
    group: str = ""
    version: str = ""
    plural: str = ""
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    extra: str = ""


def parse_route(path: str, cluster: Cluster) -> Route | None:
    segments = [s for s in path.split("/") if s]
    if not segments:
        return Route("root")
    head = segments[0]
    if head == "version" and len(segments) == 1:
        return Route("version")
    if head in ("healthz", "livez", "readyz") and len(segments) == 1:
        return Route("health")
    if head == "openapi":
        return Route("openapi", extra="/".join(segments[1:]))
    if head == "api":
        if len(segments) == 1:
            return Route("api")
        group, version, rest = "", segments[1], segments[2:]
    elif head == "apis":
        if len(segments) == 1:
            return Route("apis")
        if len(segments) == 2:
            return Route("group", group=segments[1])
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        return None
    if not rest:
        return Route("group_version", group=group, version=version)
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and cluster.registry.lookup(group, version, rest[2]) is not None:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    return Route(
        "resource",
        group=group,
        version=version,
        plural=rest[0],
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource=rest[2] if len(rest) > 2 else None,
    )


def _json_response(payload: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(
        body=json.dumps(payload, separators=(",", ":")).encode(), status=status, content_type=JSON
    )


def _error_response(error: ApiError) -> aiohttp.web.Response:
    response = _json_response(error.to_status(), error.code)
    retry_after = (error.details or {}).get("retryAfterSeconds")
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _decode_body(body: bytes, content_type: str) -> Any:
    """The request body as JSON-shaped data; raises ApiError for what the server cannot read."""
    if not body:
        return None
    if content_type == "application/vnd.kubernetes.protobuf" or is_protobuf(body):
        try:
            return decode_object(body)
        except UnsupportedProtobuf as exc:
            raise ApiError(415, "UnsupportedMediaType", str(exc)) from exc
        except ProtobufError as exc:
            raise errors.bad_request(f"unable to decode protobuf body: {exc}") from exc
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.unsupported_media_type(content_type) from exc
    try:
        if content_type in ("application/apply-patch+yaml", "application/yaml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"the body of the request could not be decoded: {exc}") from exc


def _lenient_data(body: bytes, content_type: str) -> Any:
    try:
        return _decode_body(body, content_type)
    except ApiError:
        return None


def _kmock_action(http_method: str, route: Route | None, query: Mapping[str, str]) -> action | None:
    if route is None or route.kind != "resource":
        return None
    if http_method == "GET":
        if _truthy(query.get("watch")):
            return action.WATCH
        return action.FETCH if route.name else action.LIST
    if http_method == "POST":
        return action.CREATE
    if http_method in ("PUT", "PATCH"):
        return action.UPDATE
    if http_method == "DELETE":
        return action.DELETE
    return None


@attrs.define(kw_only=True)
class KubeApiHandler(RawHandler):
    """kmock handler that serves ``cluster`` over the Kubernetes REST API (see the module docstring)."""

    cluster: Cluster
    token: str | None = None
    # How many requests kmock remembers; a long-running ``serve`` would otherwise grow without bound.
    keep_requests: int | None = 5000

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw_request.read()
        route = parse_route(raw_request.path, self.cluster)
        query = dict(raw_request.query)
        request = Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=method(raw_request.method),
            params=query,
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            body=body,
            text=body.decode("utf-8", errors="replace"),
            data=_lenient_data(body, raw_request.content_type),
            action=_kmock_action(raw_request.method, route, query),
            resource=resource(group=route.group, version=route.version, plural=route.plural) if route and route.kind == "resource" else None,
            namespace=route.namespace if route else None,
            name=route.name if route else None,
            subresource=route.subresource if route else None,
        )
        self._requests.append(request)
        if self.keep_requests is not None and len(self._requests) > self.keep_requests:
            del self._requests[: len(self._requests) - self.keep_requests]
        if not self._authenticated(raw_request):
            return _error_response(errors.unauthorized())
        try:
            try:
                return await self._handle(request)  # reactions a test added in front of the emulation
            except NotImplementedError:
                return await self._serve(raw_request, route, query, body)
        except ApiError as exc:
            return _error_response(exc)
        except Exception as exc:  # a bug in the emulator: answer like the real server, and keep it for the test
            LOG.exception("emulated API server failed on %s %s", raw_request.method, raw_request.path_qs)
            if self._errors:
                self._errors[-1].append(exc)
            return _error_response(ApiError(500, "InternalError", f"Internal error occurred: {exc!r}"))

    def _authenticated(self, raw_request: aiohttp.web.BaseRequest) -> bool:
        if self.token is None or raw_request.path in UNAUTHENTICATED_PATHS:
            return True
        header = raw_request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(presented.strip().encode(), self.token.encode())

    # ------------------------------------------------------------------ dispatch

    async def _serve(
        self, raw_request: aiohttp.web.BaseRequest, route: Route | None, query: dict[str, str], body: bytes
    ) -> aiohttp.web.StreamResponse:
        registry = self.cluster.registry
        if route is None:
            return aiohttp.web.Response(status=404, text="404 page not found", content_type="text/plain")
        if route.kind != "resource" and raw_request.method != "GET":
            raise errors.method_not_allowed()
        if route.kind == "health":
            return aiohttp.web.Response(text="ok", content_type="text/plain")
        if route.kind == "version":
            return _json_response(discovery.KUBERNETES_VERSION)
        if route.kind == "root":
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3", "/readyz", "/version"]
            paths += [f"/apis/{g}" for g, v in registry.group_versions() if g]
            paths += [f"/apis/{g}/{v}" for g, v in registry.group_versions() if g]
            return _json_response({"paths": sorted(set(paths))})
        if route.kind == "api":
            return _json_response(discovery.api_versions())
        if route.kind == "apis":
            return _json_response(discovery.api_group_list(registry))
        if route.kind == "group":
            document = discovery.api_group(registry, route.group)
            if document is None:
                raise errors.resource_not_found()
            return _json_response(document)
        if route.kind == "group_version":
            document = discovery.api_resource_list(registry, route.group, route.version)
            if document is None:
                raise errors.resource_not_found()
            return _json_response(document)
        if route.kind == "openapi":
            return self._serve_openapi(route.extra)
        return await self._serve_resource(raw_request, route, query, body)

    def _serve_openapi(self, path: str) -> aiohttp.web.Response:
        registry = self.cluster.registry
        if path == "v3":
            return _json_response(discovery.openapi_v3_root(registry))
        parts = path.split("/")
        if parts[:2] == ["v3", "api"] and len(parts) == 3:
            return _json_response(discovery.openapi_v3_document(registry, "", parts[2]))
        if parts[:2] == ["v3", "apis"] and len(parts) == 4 and registry.in_group_version(parts[2], parts[3]):
            return _json_response(discovery.openapi_v3_document(registry, parts[2], parts[3]))
        raise errors.resource_not_found()

    async def _serve_resource(
        self, raw_request: aiohttp.web.BaseRequest, route: Route, query: dict[str, str], body: bytes
    ) -> aiohttp.web.StreamResponse:
        resource_type = self.cluster.registry.lookup(route.group, route.version, route.plural)
        if resource_type is None:
            raise errors.resource_not_found()
        if route.subresource is not None and resource_type.subresource(route.subresource) is None:
            raise errors.resource_not_found()
        if resource_type.namespaced and route.name is not None and route.namespace is None:
            raise errors.resource_not_found()
        if not resource_type.namespaced and route.namespace is not None:
            raise errors.resource_not_found()
        http_method = raw_request.method
        dry_run = query.get("dryRun") == "All"
        content_type = raw_request.content_type

        if http_method == "GET":
            if _truthy(query.get("watch")):
                return await self._watch(raw_request, resource_type, route, query)
            if route.name is None:
                return self._list(raw_request, resource_type, route, query)
            if route.subresource == "log":
                return self._log(route, query)
            obj = self.cluster.get(resource_type, route.name, route.namespace)
            if _wants_table(raw_request):
                return _json_response(_table(resource_type, [obj], int(obj["metadata"]["resourceVersion"]), query.get("includeObject")))
            return _json_response(obj)

        if http_method == "POST":
            data = _decode_body(body, content_type)
            if route.subresource == "eviction":
                return self._evict(route, data, dry_run)
            if route.name is not None:
                raise errors.method_not_allowed()
            if not isinstance(data, Mapping):
                raise errors.bad_request("the body of a create request must be an object")
            created = self.cluster.create(resource_type, data, route.namespace, dry_run=dry_run)
            return _json_response(created, 201)

        if http_method == "PUT":
            if route.name is None or route.subresource not in (None, "status"):
                raise errors.method_not_allowed()
            data = _decode_body(body, content_type)
            if not isinstance(data, Mapping):
                raise errors.bad_request("the body of an update request must be an object")
            updated = self.cluster.replace(resource_type, route.name, data, route.namespace, subresource=route.subresource, dry_run=dry_run)
            return _json_response(updated)

        if http_method == "PATCH":
            if route.name is None or route.subresource not in (None, "status"):
                raise errors.method_not_allowed()
            patch_type = PATCH_CONTENT_TYPES.get(content_type)
            if patch_type is None:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f'the body of the request was in an unknown format - accepted media types include: {", ".join(PATCH_CONTENT_TYPES)}',
                )
            data = _decode_body(body, content_type)
            patched = self.cluster.patch(
                resource_type,
                route.name,
                data,
                patch_type,
                route.namespace,
                subresource=route.subresource,
                field_manager=query.get("fieldManager"),
                dry_run=dry_run,
            )
            return _json_response(patched)

        if http_method == "DELETE":
            options = self._delete_options(query, _decode_body(body, content_type))
            if route.name is None:
                deleted = self.cluster.delete_collection(
                    resource_type, route.namespace, query.get("labelSelector"), query.get("fieldSelector"), **options
                )
                return _json_response({
                    "kind": resource_type.list_kind,
                    "apiVersion": resource_type.api_version,
                    "metadata": {"resourceVersion": str(self.cluster.revision)},
                    "items": deleted,
                })
            obj, deleted_now = self.cluster.delete(resource_type, route.name, route.namespace, **options)
            if deleted_now and resource_type.qualified != "pods":
                details: dict[str, Any] = {"name": route.name, "kind": resource_type.plural, "uid": obj["metadata"].get("uid")}
                if resource_type.group:
                    details["group"] = resource_type.group
                return _json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
            return _json_response(obj)

        raise errors.method_not_allowed()

    @staticmethod
    def _delete_options(query: Mapping[str, str], body: Any) -> dict[str, Any]:
        options: dict[str, Any] = {}
        source = dict(body) if isinstance(body, Mapping) else {}
        grace = source.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        if grace is not None:
            options["grace_period_seconds"] = int(grace)
        policy = source.get("propagationPolicy", query.get("propagationPolicy"))
        orphan = source.get("orphanDependents", query.get("orphanDependents"))
        if policy is None and orphan is not None and (orphan is True or _truthy(str(orphan))):
            policy = "Orphan"
        if policy is not None:
            options["propagation_policy"] = policy
        if source.get("preconditions"):
            options["preconditions"] = source["preconditions"]
        dry_run = source.get("dryRun") or ([query["dryRun"]] if "dryRun" in query else [])
        if "All" in dry_run:
            options["dry_run"] = True
        return options

    def _evict(self, route: Route, data: Any, dry_run: bool) -> aiohttp.web.Response:
        if route.name is None or route.namespace is None:
            raise errors.method_not_allowed()
        eviction = data if isinstance(data, Mapping) else {}
        evicted_name = (eviction.get("metadata") or {}).get("name")
        if evicted_name and evicted_name != route.name:
            raise errors.bad_request("name in URL does not match name in Eviction object")
        self.cluster.evict(route.namespace, route.name, eviction.get("deleteOptions"), dry_run=dry_run)
        return _json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}, 201)

    def _log(self, route: Route, query: Mapping[str, str]) -> aiohttp.web.Response:
        tail = query.get("tailLines")
        text = self.cluster.pod_log(route.namespace or "", route.name or "", int(tail) if tail else None)
        limit = query.get("limitBytes")
        encoded = text.encode()
        if limit:
            encoded = encoded[: int(limit)]
        return aiohttp.web.Response(body=encoded, content_type="text/plain", charset="utf-8")

    # ------------------------------------------------------------------ list and watch

    def _list(self, raw_request: aiohttp.web.BaseRequest, resource_type: ResourceType, route: Route, query: Mapping[str, str]) -> aiohttp.web.Response:
        items, revision = self.cluster.list_with_revision(
            resource_type, route.namespace, query.get("labelSelector"), query.get("fieldSelector")
        )
        if _wants_table(raw_request):
            return _json_response(_table(resource_type, items, revision, query.get("includeObject")))
        return _json_response({
            "kind": resource_type.list_kind,
            "apiVersion": resource_type.api_version,
            "metadata": {"resourceVersion": str(revision)},
            "items": items,
        })

    async def _watch(
        self, raw_request: aiohttp.web.BaseRequest, resource_type: ResourceType, route: Route, query: Mapping[str, str]
    ) -> aiohttp.web.StreamResponse:
        field_selector = query.get("fieldSelector")
        if route.name:
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={route.name}"]))
        try:
            labels = parse_label_selector(query.get("labelSelector"))
            fields = parse_field_selector(field_selector, resource_type.field_selectors)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc

        def selected(obj: Mapping[str, Any]) -> bool:
            namespace_ok = not route.namespace or obj.get("metadata", {}).get("namespace") == route.namespace
            return namespace_ok and labels_match(labels, obj.get("metadata", {}).get("labels")) and fields_match(fields, obj)

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()

        def enqueue(event: WatchEvent) -> None:
            if event.resource != resource_type:
                return
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # the server's loop is gone; a writer must never fail because of a stale watch
                self.cluster.unsubscribe(handle)

        send_initial = _truthy(query.get("sendInitialEvents"))
        requested = query.get("resourceVersion") or ""
        with self.cluster._lock:  # snapshot and subscription must not miss a write in between
            handle = self.cluster.subscribe(enqueue)
            try:
                if send_initial or requested in ("", "0"):
                    items, revision = self.cluster.list_with_revision(resource_type, route.namespace)
                    backlog = [("ADDED", item, None) for item in items]
                else:
                    revision = self.cluster.revision
                    if not requested.isdigit():
                        raise errors.bad_request(f"invalid resource version: {requested!r}")
                    backlog = [(e.type, e.object, e.previous) for e in self.cluster.events_since(int(requested), resource_type)]
            except Exception:
                self.cluster.unsubscribe(handle)
                raise

        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": JSON})
        timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)

        def frame(event_type: str, obj: Mapping[str, Any]) -> bytes:
            return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"

        def translate(event_type: str, obj: Mapping[str, Any], previous: Mapping[str, Any] | None) -> bytes | None:
            """Events as a selector sees them: objects entering or leaving the selection are ADDED or DELETED."""
            now = selected(obj)
            if event_type != "MODIFIED" or previous is None:
                return frame(event_type, obj) if now else None
            before = selected(previous)
            if now:
                return frame("MODIFIED" if before else "ADDED", obj)
            return frame("DELETED", obj) if before else None

        try:
            await response.prepare(raw_request)
            for event_type, obj, previous in backlog:
                chunk = translate(event_type, obj, previous)
                if chunk:
                    await response.write(chunk)
            if send_initial:
                await response.write(frame("BOOKMARK", {
                    "kind": resource_type.kind,
                    "apiVersion": resource_type.api_version,
                    "metadata": {"resourceVersion": str(revision), "annotations": {"k8s.io/initial-events-end": "true"}},
                }))
            deadline = loop.time() + timeout
            while (remaining := deadline - loop.time()) > 0:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=min(remaining, 5.0))
                except TimeoutError:
                    if raw_request.transport is None or raw_request.transport.is_closing():
                        break
                    continue
                if event.revision <= revision:
                    continue  # already part of the backlog
                chunk = translate(event.type, event.object, event.previous)
                if chunk:
                    await response.write(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away; cancellation (also a client going away) propagates
        finally:
            self.cluster.unsubscribe(handle)
        return response


def _wants_table(raw_request: aiohttp.web.BaseRequest) -> bool:
    """kubectl's human-readable output asks for server-side printing (``as=Table``), with plain JSON as fallback."""
    return "as=Table" in raw_request.headers.get("Accept", "")


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        created = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "<unknown>"
    seconds = int((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _table_columns(resource_type: ResourceType) -> list[tuple[str, str]]:
    if resource_type.qualified == "nodes":
        return [("Name", "name"), ("Status", "string"), ("Roles", "string"), ("Age", "string"), ("Version", "string")]
    if resource_type.qualified == "pods":
        return [("Name", "name"), ("Ready", "string"), ("Status", "string"), ("Restarts", "string"), ("Age", "string"), ("Node", "string")]
    return [("Name", "name"), ("Age", "string")]


def _table_cells(resource_type: ResourceType, obj: Mapping[str, Any]) -> list[Any]:
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    age = _age(meta.get("creationTimestamp"))
    if resource_type.qualified == "nodes":
        ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), "Unknown")
        state = "Ready" if ready == "True" else "NotReady"
        if (obj.get("spec") or {}).get("unschedulable"):
            state += ",SchedulingDisabled"
        roles = ",".join(sorted(k.split("/", 1)[1] for k in (meta.get("labels") or {}) if k.startswith("node-role.kubernetes.io/"))) or "<none>"
        return [meta.get("name"), state, roles, age, (status.get("nodeInfo") or {}).get("kubeletVersion", "")]
    if resource_type.qualified == "pods":
        containers = status.get("containerStatuses") or []
        total = len((obj.get("spec") or {}).get("containers") or []) or len(containers)
        ready = sum(1 for c in containers if c.get("ready"))
        state = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "Pending")
        restarts = sum(c.get("restartCount", 0) for c in containers)
        return [meta.get("name"), f"{ready}/{total}", state, str(restarts), age, (obj.get("spec") or {}).get("nodeName", "<none>")]
    return [meta.get("name"), age]


def _table(resource_type: ResourceType, items: list[dict[str, Any]], revision: int, include_object: str | None) -> dict[str, Any]:
    def row_object(obj: dict[str, Any]) -> dict[str, Any]:
        if include_object == "Object":
            return obj
        if include_object == "None":
            return {}
        return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}

    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(revision)},
        "columnDefinitions": [
            {"name": name, "type": "string", "format": fmt if fmt == "name" else "", "description": name, "priority": 0}
            for name, fmt in _table_columns(resource_type)
        ],
        "rows": [{"cells": _table_cells(resource_type, item), "object": row_object(item)} for item in items],
    }
