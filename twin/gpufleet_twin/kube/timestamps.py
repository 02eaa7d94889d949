"""The one clock format the emulated API server writes (metav1.Time: RFC 3339, seconds, UTC)."""
from __future__ import annotations

import datetime


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
