"""Load the GPU profile catalogs in fixtures/catalogs/ (one file per model, copied from the reference tables)."""
from __future__ import annotations

from pathlib import Path

import yaml

from ansible_collections.gpufleet.mig.plugins.module_utils._profiles import build_catalog

CATALOG_DIR = Path(__file__).resolve().parent / "fixtures" / "catalogs"
CATALOG_NAMES = sorted(path.stem for path in CATALOG_DIR.glob("*.yaml"))


def _placements(text):
    return [tuple(int(part) for part in item.split(":")) for item in text.split()]


def read_catalog_fixture(name):
    """(fixture data, raw NVML-shaped profile records) for one fixture file."""
    data = yaml.safe_load((CATALOG_DIR / ("%s.yaml" % name)).read_text())
    records = []
    for row in data["profiles"]:
        record = dict(zip(data["columns"], row))
        record["placements"] = _placements(record["placements"])
        records.append(record)
    return data, records


def catalog_from_fixture(name):
    data, records = read_catalog_fixture(name)
    raw = [dict((key, value) for key, value in record.items() if key != "expected_name") for record in records]
    return build_catalog(data["model"], data["memory_total_mib"] * 1024 * 1024, raw)
