"""Modules that reach the Kubernetes API only on some runs, or never, do not pay for importing its client.

Importing the client costs about 0.3 s of CPU a run: on every node for `gpu_info` (every read and plan), and once
per run for the Helm comparison of a converged re-run, which reaches the API only to take its lock.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

COLLECTIONS_ROOT = Path(__file__).resolve().parents[4] / ".collections"
PACKAGE = "ansible_collections.gpufleet.mig.plugins"


def client_loaded_by(module: str) -> bool:
    """Whether importing ``module`` in a fresh interpreter loads the kubernetes client."""
    probe = (
        "import importlib, sys; sys.path.insert(0, %r); importlib.import_module(%r); "
        "print('kubernetes' in sys.modules)" % (str(COLLECTIONS_ROOT), module)
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return completed.stdout.strip() == "True"


@pytest.mark.parametrize("module", [
    "modules.gpu_info",
    "modules.helm_release",
    "module_utils._helm_release",
    "module_utils._k8s_auth",
])
def test_a_module_that_may_not_reach_the_api_does_not_import_the_client(module: str) -> None:
    assert not client_loaded_by("%s.%s" % (PACKAGE, module))


def test_the_api_seam_imports_the_client() -> None:
    assert client_loaded_by(PACKAGE + ".module_utils._k8s")
