"""`make demo`: a MIG rollout on a simulated fleet, start to finish.

Brings the fleet in demo/fleet.yml up with `gpufleet-sim up`, runs the rollout playbook against the
inventory the twin writes, prints what changed on every node (read back from the simulator, not from
the playbook's own output), then takes the fleet down.  The work directory stays in demo-out/ so the
inventory, the per-node state files and the playbook log can be inspected afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
OUT_DIR = REPO_ROOT / "demo-out"
FLEET_DIR = OUT_DIR / "fleet"
PLAYBOOK = REPO_ROOT / "demo" / "rollout.yml"


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("$ " + " ".join(str(a) for a in argv), flush=True)
    return subprocess.run([str(a) for a in argv], cwd=REPO_ROOT, check=False, **kwargs)


def fleet_status() -> dict:
    completed = run([VENV_BIN / "gpufleet-sim", "status", "--workdir", FLEET_DIR, "--json"], capture_output=True, text=True)
    completed.check_returncode()
    return json.loads(completed.stdout)


def describe(status: dict) -> list[str]:
    lines = []
    for node in status.get("nodes", []):
        name = node.get("name")
        lines.append(f"{name} (driver {node.get('driver_version')})")
        for gpu in node.get("gpus", []):
            mig = gpu.get("mig_mode", {})
            devices = []
            for gi in gpu.get("gpu_instances", []):
                for ci in gi.get("compute_instances", []):
                    devices.append(ci.get("profile_name") or gi.get("profile_name"))
            layout = ", ".join(devices) if devices else "no MIG devices"
            lines.append(f"  GPU {gpu.get('index')} {gpu.get('name')}: MIG {mig.get('current')}"
                         f"{' (pending ' + mig.get('pending') + ')' if mig.get('pending') != mig.get('current') else ''}; {layout}")
    return lines


def main() -> int:
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    OUT_DIR.mkdir()
    up = run([VENV_BIN / "gpufleet-sim", "up", "--fleet", REPO_ROOT / "demo" / "fleet.yml", "--workdir", FLEET_DIR])
    if up.returncode:
        return up.returncode
    try:
        before = describe(fleet_status())
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"))
        with open(OUT_DIR / "ansible-playbook.log", "w", encoding="utf-8") as log:
            rollout = subprocess.Popen(
                [str(VENV_BIN / "ansible-playbook"), "-i", str(FLEET_DIR / "inventory.yml"), str(PLAYBOOK)],
                cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in rollout.stdout:
                sys.stdout.write(line)
                log.write(line)
            rollout.wait()
        after = describe(fleet_status())
        print("\n=== Fleet before the rollout ===")
        print("\n".join(before))
        print("\n=== Fleet after the rollout (read back from the simulated GPUs) ===")
        print("\n".join(after))
        print(f"\nInventory, node state files and the playbook log are in {OUT_DIR.relative_to(REPO_ROOT)}/")
        return rollout.returncode
    finally:
        run([VENV_BIN / "gpufleet-sim", "down", "--workdir", FLEET_DIR])


if __name__ == "__main__":
    sys.exit(main())
