"""What the emulated cluster's controllers may use of it, so they depend on this and not on ``cluster.py``.

``cluster.Cluster`` implements it and runs the controllers; the controllers (``controllers.py``, ``crds.py``,
``workload_controllers.py``, ``scheduler.py``) only see this interface, which keeps the import graph one-way:
cluster → controllers → protocols. The underscore methods read the live store under the cluster's lock (the
settle loop holds it while controllers run) without copying.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .resources import ResourceRegistry, ResourceType


class ClusterStore(Protocol):
    registry: ResourceRegistry

    def resource(self, resource: ResourceType | str) -> ResourceType: ...

    def _iter(self, resource: ResourceType, namespace: str | None) -> Iterable[dict[str, Any]]: ...

    def _lookup(self, resource: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    def _all_objects(self) -> Iterable[tuple[str, dict[str, Any]]]: ...

    def take_removed_uids(self) -> tuple[set[str], set[str]]: ...

    def get(self, resource: ResourceType | str, name: str, namespace: str | None = None) -> dict[str, Any]: ...

    def list(
        self, resource: ResourceType | str, namespace: str | None = None, label_selector: str | None = None, field_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    def create(self, resource: ResourceType | str, obj: Mapping[str, Any], namespace: str | None = None, *, dry_run: bool = False) -> dict[str, Any]: ...

    def replace(
        self, resource: ResourceType | str, name: str, obj: Mapping[str, Any], namespace: str | None = None, *,
        subresource: str | None = None, dry_run: bool = False,
    ) -> dict[str, Any]: ...

    def patch(
        self, resource: ResourceType | str, name: str, patch: Any, patch_type: str = "merge", namespace: str | None = None, *,
        subresource: str | None = None, field_manager: str | None = None, dry_run: bool = False,
    ) -> dict[str, Any]: ...

    def delete(self, resource: ResourceType | str, name: str, namespace: str | None = None, **options: Any) -> tuple[dict[str, Any], bool]: ...

    def purge(self, resource: ResourceType | str, name: str, namespace: str | None = None) -> None: ...
