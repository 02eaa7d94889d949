"""Profile catalogs of real GPUs, built from the reference tables in fixtures/catalogs/."""
from __future__ import annotations

import pytest

from mig_catalog_fixtures import catalog_from_fixture


@pytest.fixture(scope="session")
def a100_40gb():
    """A100-SXM4-40GB on R580: every A100 profile including 1g.5gb+me and 1g.10gb."""
    return catalog_from_fixture("a100-sxm4-40gb-r580")


@pytest.fixture(scope="session")
def h100_80gb():
    return catalog_from_fixture("h100-sxm5-80gb")


@pytest.fixture(scope="session")
def a30_24gb():
    return catalog_from_fixture("a30-24gb")
