"""Shared test setup: make the checkout importable as ansible_collections.gpufleet.mig."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_ROOT = REPO_ROOT / ".collections"


def _link_checkout_as_collection() -> None:
    namespace_dir = COLLECTIONS_ROOT / "ansible_collections" / "gpufleet"
    link = namespace_dir / "mig"
    if not link.exists():
        namespace_dir.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(REPO_ROOT, namespace_dir), link)


_link_checkout_as_collection()
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))
