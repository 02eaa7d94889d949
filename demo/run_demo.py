"""`make demo`: the MIG rollout on a simulated fleet, start to finish.

1. Brings the fleet in demo/fleet.yml up with `gpufleet-sim up` (simulated GPU nodes plus the emulated
   Kubernetes cluster) and shows it.
2. Runs `ansible-playbook site.yml -e mig_strategy=mixed` against the inventory the twin wrote, exactly as a
   user runs it against a real inventory. The only demo-specific variables point the device plugin release at a
   local chart and the report at demo-out/. The chart is NVIDIA's nvidia-device-plugin 0.20.0 when it is provided
   (GPUFLEET_NVIDIA_CHART or ../shared/charts/, see tests/charts/README.md; it cannot be downloaded here), else
   the stand-in in tests/charts.
3. Starts a GPU workload on the converged fleet and runs site.yml again: nothing changes and the workload keeps
   running (no node is cordoned, no pod evicted).
4. Prints the fleet report the playbook wrote and the fleet as the simulator and the API server see it, then
   takes the fleet down.

Everything stays in demo-out/ (inventory, playbook logs, report) for a look afterwards. Exit status: non-zero
when a rollout fails or the second run changes anything.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
OUT_DIR = REPO_ROOT / "demo-out"
FLEET_DIR = OUT_DIR / "fleet"
# Each run writes REPORT_DIR/<run id>/ and points REPORT_DIR/latest at it.
REPORT_DIR = OUT_DIR / "report"
sys.path.insert(0, str(REPO_ROOT / "twin"))
from gpufleet_twin.nvidia_chart import device_plugin_chart  # noqa: E402 - the twin is the demo's test bed

CHART = device_plugin_chart(REPO_ROOT)
WORKLOAD_NODE = "gpu-a100-1"
WORKLOAD_RESOURCE = "nvidia.com/mig-1g.5gb"


def display_path(path: Path) -> str:
    """Relative to the repository when inside it (the role resolves relative chart paths against the playbook dir)."""
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def environment() -> dict[str, str]:
    # helm and kubectl come from `make tools`; the playbook finds them on PATH.
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                PATH=f"{TOOLS_BIN}:{VENV_BIN}:{os.environ.get('PATH', '')}")


def sim(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    argv = [str(VENV_BIN / "gpufleet-sim"), *args]
    if not capture:
        print("$ " + " ".join(["gpufleet-sim", *args]), flush=True)
    return subprocess.run(argv, cwd=REPO_ROOT, env=environment(), check=True, text=True, capture_output=capture)


def rollout(log_name: str, report_dir: Path) -> tuple[int, str]:
    """ansible-playbook site.yml -e mig_strategy=mixed, streamed to the terminal and to demo-out/<log_name>."""
    extra_vars = {"device_plugin_chart_ref": str(CHART), "device_plugin_chart_repo_url": "",
                  "mig_report_dir": str(report_dir)}
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(FLEET_DIR / "inventory.yml"), "site.yml",
            "-e", "mig_strategy=mixed", "-e", json.dumps(extra_vars)]
    print("$ ansible-playbook -i demo-out/fleet/inventory.yml site.yml -e mig_strategy=mixed "
          f"-e '{{\"device_plugin_chart_ref\": \"{display_path(CHART)}\", ...}}'", flush=True)
    lines = []
    with open(OUT_DIR / log_name, "w", encoding="utf-8") as log:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=environment(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
            lines.append(line)
        process.wait()
    return process.returncode, "".join(lines)


def changed_total(output: str) -> int:
    recap = output.split("PLAY RECAP", 1)[-1]
    return sum(int(count) for count in re.findall(r"changed=(\d+)", recap))


def core_api():
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(FLEET_DIR / "kubeconfig")))


def start_workload():
    """A pod holding one MIG device on WORKLOAD_NODE, Running before the second rollout."""
    from kubernetes import client

    api = core_api()
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="training-0", namespace="default"),
        spec=client.V1PodSpec(node_name=WORKLOAD_NODE, containers=[client.V1Container(
            name="train", image="nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04", command=["sleep", "infinity"],
            resources=client.V1ResourceRequirements(limits={WORKLOAD_RESOURCE: "1"}))]))
    uid = api.create_namespaced_pod("default", pod).metadata.uid
    deadline = time.monotonic() + 60
    while api.read_namespaced_pod("training-0", "default").status.phase != "Running":
        if time.monotonic() > deadline:
            raise RuntimeError("the demo workload did not start")
        time.sleep(0.2)
    print(f"pod default/training-0 Running on {WORKLOAD_NODE} with one {WORKLOAD_RESOURCE}", flush=True)
    return uid


def workload_state(uid: str) -> str:
    pod = core_api().read_namespaced_pod("training-0", "default")
    same = "the same pod" if pod.metadata.uid == uid else "a NEW pod (the old one was evicted)"
    return f"{same}, {pod.status.phase}"


def main() -> int:
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    OUT_DIR.mkdir()
    banner("The fleet before the rollout")
    sim("up", "--fleet", "demo/fleet.yml", "--workdir", str(FLEET_DIR))
    try:
        sim("status", "--workdir", str(FLEET_DIR))

        banner("Rollout")
        returncode, _ = rollout("site-1.log", REPORT_DIR)
        first_report = (REPORT_DIR / "latest").resolve()
        if returncode:
            print(f"\nthe rollout failed (ansible-playbook exit {returncode}); see demo-out/site-1.log", flush=True)
            return returncode

        banner("A GPU workload on the converged fleet, then site.yml again")
        uid = start_workload()
        returncode, output = rollout("site-2.log", REPORT_DIR)
        rerun_report = (REPORT_DIR / "latest").resolve()
        changed = changed_total(output)
        workload = workload_state(uid)
        rerun = json.loads((rerun_report / "fleet-report.json").read_text(encoding="utf-8"))["totals"]

        banner(f"Fleet report of the rollout (demo-out/report/{first_report.name}/fleet-report.md, .json)")
        print((first_report / "fleet-report.md").read_text(encoding="utf-8"), flush=True)

        banner("The fleet after the rollout (read back from the simulated GPUs and the API server)")
        sim("status", "--workdir", str(FLEET_DIR))

        banner("Summary")
        print(f"second run of site.yml: exit {returncode}, changed={changed}, {rerun['unchanged']} of {rerun['nodes']} nodes "
              f"unchanged (demo-out/report/{rerun_report.name}/); workload training-0: {workload}")
        print("inventory, playbook logs and the report are in demo-out/")
        if returncode or changed or rerun["unchanged"] != rerun["nodes"] or not workload.startswith("the same pod, Running"):
            print("the converged fleet was not left alone on the second run", flush=True)
            return 1
        return 0
    finally:
        sim("down", "--workdir", str(FLEET_DIR))


if __name__ == "__main__":
    sys.exit(main())
