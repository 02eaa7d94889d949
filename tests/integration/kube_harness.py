"""Integration harness for the cluster-side modules: ansible-playbook on the control host, the emulated API in-process.

`KubeControl` holds an `ApiServer` of the fleet twin running in the test process (so a test can change the
cluster while a playbook runs, e.g. relax a PodDisruptionBudget) and plays tasks on `localhost` through the
same `SimFleet.play` the node tests use. `task(module, name, **args)` adds the kubeconfig to a module's args.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml
from fleet_harness import PlaybookRun, SimFleet
from gpufleet_twin.kube import ApiServer, Cluster


@dataclass
class KubeControl:
    api: ApiServer
    runner: SimFleet

    @property
    def cluster(self) -> Cluster:
        return self.api.cluster

    @property
    def kubeconfig(self) -> str:
        return str(self.api.kubeconfig_path)

    def task(self, module: str, name: str, /, **args: Any) -> dict[str, Any]:
        """A named task of `module` (FQCN) with the kubeconfig added; keywords starting with `_` are task keywords."""
        keywords = {key[1:]: value for key, value in args.items() if key.startswith("_")}
        module_args = {key: value for key, value in args.items() if not key.startswith("_")}
        module_args.setdefault("kubeconfig", self.kubeconfig)
        return {"name": name, module: module_args, **keywords}

    def play(self, tasks: list[dict[str, Any]], *, check: bool = False, diff: bool = False) -> PlaybookRun:
        return self.runner.play(tasks, hosts="localhost", check=check, diff=diff)

    def api_requests(self, method: str, path_suffix: str) -> list[str]:
        """Paths of the requests the server received with this method whose path ends with `path_suffix`."""
        return [r.url.path for r in self.api.handler if r.method.value == method and r.url.path.endswith(path_suffix)]


def start_kube_control(workdir: Path, cluster: Cluster | None = None) -> Iterator[KubeControl]:
    """Start the API server and a localhost inventory under `workdir`; stop the server afterwards."""
    control_dir = workdir / "control"
    control_dir.mkdir(parents=True)
    inventory = {"all": {"hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    (control_dir / "inventory.yml").write_text(yaml.safe_dump(inventory))
    api = ApiServer(cluster, state_dir=workdir / "apiserver").start()
    try:
        yield KubeControl(api, SimFleet(control_dir, {}))
        internal_errors = list(api.handler.errors)
        assert not internal_errors, f"the emulated API server failed internally: {internal_errors!r}"
    finally:
        api.stop()
