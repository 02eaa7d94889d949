"""execution-environment.yml builds a context with ansible-builder v3, with the collection, its Python needs and helm."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILDER = Path(sys.executable).parent / "ansible-builder"


def test_the_definition_names_the_collection_version_galaxy_yml_builds() -> None:
    version = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())["version"]
    definition = yaml.safe_load((REPO_ROOT / "execution-environment.yml").read_text())
    artifact = "build/gpufleet-mig-%s.tar.gz" % version
    assert definition["version"] == 3
    assert definition["dependencies"]["galaxy"]["collections"][0]["name"] == artifact
    assert definition["additional_build_files"][0]["src"] == artifact
    ee_meta = yaml.safe_load((REPO_ROOT / "meta" / "execution-environment.yml").read_text())
    for path in ee_meta["dependencies"].values():
        assert (REPO_ROOT / path).is_file(), path


@pytest.mark.skipif(not BUILDER.exists(), reason="ansible-builder is not installed (make venv)")
def test_ansible_builder_creates_the_build_context(tmp_path: Path) -> None:
    work = tmp_path / "src"
    work.mkdir()
    shutil.copy(REPO_ROOT / "execution-environment.yml", work)
    version = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())["version"]
    (work / "build").mkdir()
    (work / "build" / ("gpufleet-mig-%s.tar.gz" % version)).write_bytes(b"stand-in for make build")
    context = tmp_path / "context"

    subprocess.run([str(BUILDER), "create", "-f", "execution-environment.yml", "-c", str(context), "--output-filename", "Containerfile"],
                   cwd=work, check=True, capture_output=True, text=True, timeout=120)

    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/ansible/awx-ee:24.6.1"' in containerfile
    assert "sha256sum -c helm-v${HELM_VERSION}-linux-amd64.tar.gz.sha256sum" in containerfile
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements["collections"][0]["name"] == "build/gpufleet-mig-%s.tar.gz" % version
    assert "kubernetes==37.0.2" in (context / "_build" / "requirements.txt").read_text()
    assert (context / "_build" / "build" / ("gpufleet-mig-%s.tar.gz" % version)).exists()
