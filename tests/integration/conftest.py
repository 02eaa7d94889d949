"""Fixtures of the integration tests; the harness itself lives in fleet_harness.py."""
from __future__ import annotations

from fleet_harness import sim_fleet  # noqa: F401  (re-exported as a pytest fixture)
