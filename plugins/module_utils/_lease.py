# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Holding a ``coordination.k8s.io/v1`` Lease, as client-go's leader election does.

``decide_lease(lease, holder, now)`` is pure: the Lease as the API server returned it (or ``None``) and
who asks -> what to do (``create``, ``renew``, ``acquire`` a released lease, ``takeover`` an expired one,
or ``wait`` for a live holder). ``hold_lease`` runs that decision against the API under one deadline,
with optimistic concurrency: every write carries the ``resourceVersion`` it decided on, so of two runs
that decide at once exactly one wins and the other decides again on what the winner wrote.
``release_lease`` gives a lease back (holder cleared, as client-go's ``ReleaseOnCancel`` does) only if
the caller holds it.

Lease fields and their meaning: https://kubernetes.io/docs/concepts/architecture/leases/ and
https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/lease-v1/.
"""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError, TaskError
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeApiError, KubeClient

CREATE = "create"
RENEW = "renew"
ACQUIRE = "acquire"
TAKEOVER = "takeover"
WAIT = "wait"

DEFAULT_POLL_INTERVAL = 2.0
_MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class LeaseHeldError(TaskError):
    """Another holder has the lease and kept it past the wait; ``holder`` / ``since`` / ``expires`` say who and when."""

    def __init__(self, message: str, holder: str | None, since: str | None, expires: str | None) -> None:
        super().__init__(message, changed=False, holder=holder, since=since)
        self.holder = holder
        self.since = since
        self.expires = expires


def format_microtime(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime(_MICROTIME)


def parse_time(text: str | None) -> datetime.datetime | None:
    """A MicroTime or Time string from the API (``...Z``, with or without fractions), as an aware datetime."""
    if not text:
        return None
    normalised = text.replace("Z", "+00:00")
    try:
        return datetime.datetime.fromisoformat(normalised)
    except ValueError:
        return None


@dataclass(frozen=True)
class LeaseView:
    """What a Lease says about its holder, at ``now``."""

    holder: str | None
    since: datetime.datetime | None
    renewed: datetime.datetime | None
    duration: int | None
    expires: datetime.datetime | None
    expired: bool
    transitions: int
    resource_version: str | None

    def as_result(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "since": format_microtime(self.since) if self.since else None,
            "renewed": format_microtime(self.renewed) if self.renewed else None,
            "duration_seconds": self.duration,
            "expires": format_microtime(self.expires) if self.expires else None,
            "expired": self.expired,
            "transitions": self.transitions,
        }


def view_lease(lease: dict[str, Any] | None, now: datetime.datetime) -> LeaseView | None:
    if lease is None:
        return None
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or None
    since = parse_time(spec.get("acquireTime"))
    renewed = parse_time(spec.get("renewTime")) or since
    duration = spec.get("leaseDurationSeconds")
    expires = renewed + datetime.timedelta(seconds=duration) if renewed is not None and duration else None
    # A lease with a holder but no renew time or duration cannot expire by itself: only its holder frees it.
    expired = holder is None or (expires is not None and now >= expires)
    return LeaseView(
        holder=holder,
        since=since,
        renewed=renewed,
        duration=duration,
        expires=expires,
        expired=expired,
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
    )


CONTROLLER_ANNOTATION = "gpufleet.mig/controller"


def lease_controller(lease: dict[str, Any] | None) -> tuple[str, int] | None:
    """``(hostname, pid)`` of the process that last wrote the lease, from its annotation, if it recorded one."""
    text = ((lease or {}).get("metadata") or {}).get("annotations", {}).get(CONTROLLER_ANNOTATION) or ""
    host, _separator, pid = text.rpartition(":")
    if not host or not pid.isdigit():
        return None
    return host, int(pid)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_gone(lease: dict[str, Any] | None, this_host: str | None, alive: Callable[[int], bool] = process_alive) -> bool:
    """Whether the lease's last writer ran on this host and its process no longer exists (a killed run).

    Only a process on this host can be checked; a holder elsewhere is presumed alive until its lease expires.
    """
    controller = lease_controller(lease)
    return bool(this_host and controller and controller[0] == this_host and not alive(controller[1]))


def decide_lease(lease: dict[str, Any] | None, holder: str, now: datetime.datetime, gone: bool = False) -> str:
    """``gone``: the holder's process is known to be dead (see ``holder_gone``), so its lease is free now."""
    view = view_lease(lease, now)
    if view is None:
        return CREATE
    if view.holder == holder:
        return RENEW
    if view.holder is None:
        return ACQUIRE
    if view.expired or gone:
        return TAKEOVER
    return WAIT


def lease_body(name: str, namespace: str, holder: str, duration: int, now: datetime.datetime,
               previous: dict[str, Any] | None, action: str, controller: str | None = None) -> dict[str, Any]:
    """The Lease to write for ``action``; keeps the acquire time on a renewal and counts transitions.

    ``controller`` (``hostname:pid`` of the writing run) is recorded so a later run on that host can tell a
    killed holder from a live one.
    """
    view = view_lease(previous, now)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if previous is not None:
        metadata = dict(previous.get("metadata") or {}, name=name, namespace=namespace)
    if controller:
        metadata["annotations"] = dict(metadata.get("annotations") or {}, **{CONTROLLER_ANNOTATION: controller})
    stamp = format_microtime(now)
    transitions = view.transitions if view else 0
    if action in (ACQUIRE, TAKEOVER):
        transitions += 1
    acquire_time = stamp
    if action == RENEW and view is not None and view.since is not None:
        acquire_time = format_microtime(view.since)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": int(duration),
            "acquireTime": acquire_time,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        },
    }


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def hold_lease(client: KubeClient, name: str, namespace: str, holder: str, duration: int, wait_timeout: float,
               check_mode: bool = False, poll_interval: float = DEFAULT_POLL_INTERVAL,
               controller: str | None = None, alive: Callable[[int], bool] = process_alive,
               now: Callable[[], datetime.datetime] = _utcnow, monotonic: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Create, renew, acquire or take over the lease for ``holder``; wait up to ``wait_timeout`` for a live holder.

    Returns ``{"action", "changed", "previous", "lease"}``: ``previous`` is the view of the lease before
    (``None`` when it did not exist), so a takeover from a dead run can be reported with its holder.
    ``controller`` (``hostname:pid`` of this run) is recorded on the lease; a lease last written by a process of
    this host that no longer exists is taken over at once instead of after its expiry.
    Raises ``LeaseHeldError`` when another holder keeps it past the wait (``wait_timeout`` 0: refuse at once).
    """
    if duration < 1:
        raise MigError("Cannot hold lease %s/%s: its duration must be at least 1 second." % (namespace, name))
    deadline = monotonic() + max(0.0, wait_timeout)
    while True:
        moment = now()
        current = client.get_lease(namespace, name)
        gone = holder_gone(current, controller.rpartition(":")[0] if controller else None, alive)
        action = decide_lease(current, holder, moment, gone)
        previous = view_lease(current, moment)
        if action == WAIT:
            if monotonic() >= deadline and previous is not None:
                since = format_microtime(previous.since) if previous.since else "an unknown time"
                expires = format_microtime(previous.expires) if previous.expires else None
                raise LeaseHeldError(
                    "Lease %s/%s is held by %s since %s%s." % (
                        namespace, name, previous.holder, since,
                        " (it expires at %s unless renewed)" % expires if expires else ""),
                    holder=previous.holder,
                    since=format_microtime(previous.since) if previous.since else None,
                    expires=expires,
                )
            sleep(min(poll_interval, max(0.0, deadline - monotonic())) or poll_interval / 10)
            continue
        body = lease_body(name, namespace, holder, duration, moment, current, action, controller)
        previous_result = previous.as_result() if previous else None
        if previous_result is not None:
            previous_result["controller_gone"] = gone
        if check_mode:
            return {"action": action, "changed": True, "previous": previous_result, "lease": body}
        try:
            if action == CREATE:
                written = client.create_lease(namespace, body)
            else:
                written = client.replace_lease(namespace, name, body)
        except KubeApiError as error:
            # Someone else wrote between our read and our write (409), or created it first: decide again.
            if error.status == 409:
                continue
            raise
        return {"action": action, "changed": True, "previous": previous_result, "lease": written}


def release_lease(client: KubeClient, name: str, namespace: str, holder: str, check_mode: bool = False,
                  now: Callable[[], datetime.datetime] = _utcnow) -> dict[str, Any]:
    """Clear the holder of a lease that ``holder`` holds; leave anyone else's lease alone."""
    current = client.get_lease(namespace, name)
    moment = now()
    view = view_lease(current, moment)
    if view is None or view.holder != holder:
        return {"action": "none", "changed": False, "previous": view.as_result() if view else None, "lease": current}
    body = lease_body(name, namespace, holder, 1, moment, current, RENEW)
    body["spec"]["holderIdentity"] = None
    body["spec"]["leaseDurationSeconds"] = 1
    if check_mode:
        return {"action": "release", "changed": True, "previous": view.as_result(), "lease": body}
    try:
        written = client.replace_lease(namespace, name, body)
    except KubeApiError as error:
        if error.status == 409:
            # Written meanwhile: released or taken over by someone who found it expired; either way not ours now.
            return release_lease(client, name, namespace, holder, check_mode=check_mode, now=now)
        raise
    return {"action": "release", "changed": True, "previous": view.as_result(), "lease": written}
