"""Integration harness: real ansible-playbook runs against nodes of the fleet twin.

Imported by name (`from fleet_harness import ...`): pytest puts this directory on sys.path for the tests in
it, whereas `conftest` names whichever conftest.py was imported first.

`sim_fleet(spec)` brings simulated nodes up with `gpufleet-sim up` (the same CLI users run) and
returns a `SimFleet`; `SimFleet.play(tasks, ...)` writes a one-play playbook, runs
`.venv/bin/ansible-playbook` on the fleet's inventory and returns a `PlaybookRun` with every task
result, recorded by the test-only callback in callback_plugins/.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from gpufleet_twin import nvml

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CALLBACK_DIR = Path(__file__).resolve().parent / "callback_plugins"


@dataclass
class TaskResult:
    host: str
    task: str
    action: str
    status: str
    result: dict[str, Any]

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def msg(self) -> str:
        return str(self.result.get("msg", ""))


@dataclass
class PlaybookRun:
    returncode: int
    stdout: str
    stderr: str
    results: list[TaskResult] = field(default_factory=list)

    def task(self, name: str, host: str | None = None) -> TaskResult:
        matches = [r for r in self.results if r.task == name and (host is None or r.host == host)]
        assert matches, f"task {name!r} has no result; ran: {[r.task for r in self.results]}\n{self.stdout}\n{self.stderr}"
        return matches[-1]

    @property
    def changed_count(self) -> int:
        return sum(1 for r in self.results if r.changed)


@dataclass
class SimFleet:
    workdir: Path
    spec: dict[str, Any]

    @property
    def inventory(self) -> Path:
        return self.workdir / "inventory.yml"

    def state_path(self, node: str) -> Path:
        return self.workdir / "nodes" / node / "state.json"

    def status(self, node: str) -> dict[str, Any]:
        return nvml.node_status(self.state_path(node))

    def play(
        self,
        tasks: list[dict[str, Any]],
        *,
        hosts: str = "gpu_nodes",
        check: bool = False,
        diff: bool = False,
        extra_vars: dict[str, Any] | None = None,
        gather_facts: bool = False,
    ) -> PlaybookRun:
        run_dir = self.workdir / "runs"
        run_dir.mkdir(exist_ok=True)
        number = len(list(run_dir.glob("play-*.yml")))
        playbook = run_dir / f"play-{number}.yml"
        results_file = run_dir / f"results-{number}.jsonl"
        playbook.write_text(
            yaml.safe_dump([{"name": "Integration play", "hosts": hosts, "gather_facts": gather_facts, "tasks": tasks}], sort_keys=False)
        )
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(playbook)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        env = dict(os.environ)
        env.update(
            ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
            ANSIBLE_CALLBACK_PLUGINS=str(CALLBACK_DIR),
            ANSIBLE_CALLBACKS_ENABLED="gpufleet_results",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCAL_TEMP=str(run_dir / "tmp"),
            GPUFLEET_RESULTS_FILE=str(results_file),
        )
        completed = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        results = []
        if results_file.exists():
            for line in results_file.read_text().splitlines():
                results.append(TaskResult(**json.loads(line)))
        return PlaybookRun(completed.returncode, completed.stdout, completed.stderr, results)


@pytest.fixture
def sim_fleet(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], SimFleet]]:
    started: list[Path] = []

    def start(spec: dict[str, Any]) -> SimFleet:
        workdir = tmp_path / f"fleet-{len(started)}"
        fleet_file = tmp_path / f"fleet-{len(started)}.yml"
        fleet_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        subprocess.run(
            [str(VENV_BIN / "gpufleet-sim"), "up", "--fleet", str(fleet_file), "--workdir", str(workdir)],
            check=True, capture_output=True, text=True,
        )
        started.append(workdir)
        return SimFleet(workdir, spec)

    yield start
    for workdir in reversed(started):
        subprocess.run([str(VENV_BIN / "gpufleet-sim"), "down", "--workdir", str(workdir)], capture_output=True, check=False)


# A fleet's ``node_defaults`` for bare nodes. Fleet nodes are DGX/HGX-like by default: their host GPU clients
# (nvidia-persistenced, DCGM, ...) hold the GPUs, keep an Ampere mode change pending and make GPU instance creation
# answer IN_USE until stopped (twin/README.md, "Host services"). Tests of one module, which on a real node runs after
# the rollout (or the operator) stopped them, opt out with this; site.yml tests keep the default.
BARE_NODES: dict[str, Any] = {"host_services": "none"}


def one_node_spec(model: str = "A100-SXM4-40GB", *, driver: str = "550.54.15", count: int = 1,
                  mig_mode: str = "disabled", name: str = "gpu-node-1", cluster: Any = False,
                  **node_extra: Any) -> dict[str, Any]:
    """A one-node fleet; without an emulated cluster unless asked, since node-side tests don't need one.

    The node has the default host GPU clients of its kind unless ``host_services`` says otherwise (``"none"``: bare).
    """
    node = {"name": name, "driver_version": driver, "gpus": [{"model": model, "count": count, "mig_mode": mig_mode}]}
    node.update(node_extra)
    return {"cluster": cluster, "nodes": [node]}
