"""gpufleet-sim: up / env / status / down and the poke commands, with the minimal fleet spec."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpufleet_twin import cli
from gpufleet_twin import nvml as sim

# The nodes component alone; the cluster component has its own tests in tests/twin/agents/.
MINIMAL_FLEET = """\
cluster: false
nodes:
  - name: gpu-node-1
    driver_version: "550.54.15"
    gpus:
      - {model: A100-SXM4-40GB, count: 1, mig_mode: disabled}
"""

PYNVML_NAME_PROBE = (
    "import pynvml; pynvml.nvmlInit(); " "print(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0)))"
)


@pytest.fixture
def fleet_file(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yml"
    path.write_text(MINIMAL_FLEET, encoding="utf-8")
    return path


@pytest.fixture
def twin(tmp_path: Path, fleet_file: Path) -> Path:
    workdir = tmp_path / "twin"
    assert cli.main(["up", "--fleet", str(fleet_file), "--workdir", str(workdir)]) == 0
    return workdir


def test_up_writes_state_wrapper_inventory_and_manifest(twin: Path):
    node_dir = twin / "nodes" / "gpu-node-1"
    inventory = yaml.safe_load((twin / "inventory.yml").read_text())
    assert inventory == {
        "all": {
            "children": {
                "gpu_nodes": {
                    "hosts": {
                        "gpu-node-1": {
                            "ansible_connection": "gpufleet_sim",
                            "mig_node_state_dir": str(node_dir / "var-lib-gpufleet-mig"),
                            "mig_proc_root": str(node_dir / "proc"),
                            "ansible_python_interpreter": str(node_dir / "python"),
                            "gpufleet_sim_state": str(node_dir / "state.json"),
                        }
                    }
                }
            }
        }
    }
    manifest = json.loads((twin / "twin.json").read_text())
    assert list(manifest["components"]) == ["nodes"]
    assert sim.node_status(node_dir / "state.json")["gpus"][0]["name"] == "NVIDIA A100-SXM4-40GB"


def test_wrapper_interpreter_runs_python_on_the_node(twin: Path):
    wrapper = twin / "nodes" / "gpu-node-1" / "python"
    result = subprocess.run(
        [str(wrapper), "-c", PYNVML_NAME_PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "NVIDIA A100-SXM4-40GB\n", "")


def test_env_lines_make_a_shell_talk_to_the_node(twin: Path):
    gpufleet_sim = Path(sys.executable).with_name("gpufleet-sim")
    script = (
        f'eval "$({shlex.quote(str(gpufleet_sim))} env --workdir {shlex.quote(str(twin))} --node gpu-node-1)"; '
        f"python -c {shlex.quote(PYNVML_NAME_PROBE)}; nvidia-smi --query-gpu=mig.mode.current --format=csv,noheader"
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout) == (0, "NVIDIA A100-SXM4-40GB\nDisabled\n"), result.stderr


def test_env_prints_quoted_exports(twin: Path, capsys):
    assert cli.main(["env", "--workdir", str(twin), "--node", "gpu-node-1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(line.startswith("export ") for line in lines)
    exported = dict(shlex.split(line[len("export ") :])[0].split("=", 1) for line in lines)
    assert exported["GPUFLEET_SIM_STATE"] == str(twin / "nodes" / "gpu-node-1" / "state.json")
    assert exported["PATH"].split(":")[0] == str(sim.BIN_DIR)
    assert exported["PYTHONPATH"].split(":")[0] == str(sim.SHIM_DIR)


def test_status_human_and_json(twin: Path, capsys):
    assert cli.main(["status", "--workdir", str(twin)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["gpu-node-1", "0", "A100-SXM4-40GB", "550.54.15", "disabled", "-"]
    assert cli.main(["status", "--workdir", str(twin), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    gpu = report["nodes"]["gpu-node-1"]["gpus"][0]
    assert (gpu["model"], gpu["mig"]["current"], report["nodes"]["gpu-node-1"]["cuda_version"]) == (
        "A100-SXM4-40GB",
        "disabled",
        12040,
    )


def test_down_removes_what_up_made(twin: Path, capsys):
    assert cli.main(["down", "--workdir", str(twin)]) == 0
    assert list(twin.iterdir()) == []
    assert cli.main(["status", "--workdir", str(twin)]) == 1
    assert "no fleet twin" in capsys.readouterr().err


def test_up_twice_needs_force(twin: Path, fleet_file: Path, capsys):
    assert cli.main(["up", "--fleet", str(fleet_file), "--workdir", str(twin)]) == 1
    assert "already up" in capsys.readouterr().err
    assert cli.main(["up", "--fleet", str(fleet_file), "--workdir", str(twin), "--force"]) == 0


def test_bad_fleet_is_reported_and_leaves_nothing_behind(tmp_path: Path, capsys):
    fleet = tmp_path / "bad.yml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "nodes": [
                    {"name": "ok", "driver_version": "550.54.15", "gpus": [{"model": "H100-SXM5-80GB"}]},
                    {"name": "bad", "driver_version": "550.54.15", "gpus": [{"model": "Z9000"}]},
                ]
            }
        )
    )
    workdir = tmp_path / "twin"
    assert cli.main(["up", "--fleet", str(fleet), "--workdir", str(workdir)]) == 1
    assert "unknown GPU model 'Z9000'" in capsys.readouterr().err
    assert not (workdir / "twin.json").exists() and not (workdir / "nodes").exists()


def test_hostvars_processes_and_clients_from_the_fleet(tmp_path: Path):
    fleet = tmp_path / "fleet.yml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "cluster": False,
                "nodes": [
                    {
                        "name": "n1",
                        "driver_version": "535.104.05",
                        "hostvars": {"mig_layout": "all-balanced"},
                        "gpus": [
                            {"model": "A30", "count": 2, "mig_mode": "enabled", "mig_devices": ["2g.12gb", "1g.6gb"]}
                        ],
                        "processes": [
                            {"gpu": 1, "pid": 900, "name": "serve", "used_memory_mib": 512, "gi": 2, "ci": 0}
                        ],
                        "clients": [{"gpu": 0, "name": "nvidia-persistenced"}],
                    }
                ]
            }
        )
    )
    workdir = tmp_path / "twin"
    assert cli.main(["up", "--fleet", str(fleet), "--workdir", str(workdir)]) == 0
    host = yaml.safe_load((workdir / "inventory.yml").read_text())["all"]["children"]["gpu_nodes"]["hosts"]["n1"]
    assert host["mig_layout"] == "all-balanced"
    status = sim.node_status(host["gpufleet_sim_state"])
    assert [p["pid"] for p in status["processes"]] == [900]
    assert status["clients"] == [{"gpu": 0, "name": "nvidia-persistenced"}]
    assert [gi["profile_name"] for gi in status["gpus"][1]["gpu_instances"]] == ["2g.12gb", "1g.6gb"]


def test_fault_process_client_and_reboot_commands(twin: Path, capsys):
    state = twin / "nodes" / "gpu-node-1" / "state.json"
    base = ["--workdir", str(twin), "--node", "gpu-node-1"]
    assert (
        cli.main(["fault", *base, "--call", "nvmlDeviceSetMigMode", "--error", "IN_USE", "--times", "2", "--gpu", "0"])
        == 0
    )
    assert sim.node_status(state)["faults"][0] | {"symbols": None} == {
        "call": "nvmlDeviceSetMigMode",
        "symbols": None,
        "error": 19,
        "remaining": 2,
        "gpu": 0,
    }
    assert cli.main(["fault", *base, "--call", "nvmlInit", "--error", "DRIVER_NOT_LOADED", "--always"]) == 0
    assert sim.node_status(state)["faults"][1]["remaining"] is None
    assert cli.main(["fault", *base, "--clear"]) == 0
    assert sim.node_status(state)["faults"] == []
    assert cli.main(["fault", *base, "--call", "nvmlNoSuchThing", "--error", "UNKNOWN"]) == 1

    assert cli.main(["process", "add", *base, "--gpu", "0", "--pid", "4711", "--name", "python", "--memory", "64"]) == 0
    assert cli.main(["process", "add", *base, "--gpu", "0", "--pid", "4712", "--name", "job", "--cgroup", "/kubepods/pod1/c1"]) == 0
    assert cli.main(["client", "add", *base, "--gpu", "0", "--name", "dcgm"]) == 0
    status = sim.node_status(state)
    assert (status["processes"][0]["used_memory_mib"], status["clients"]) == (64, [{"gpu": 0, "name": "dcgm"}])
    # The node's /proc shows each process's cgroup: a host login session by default, or the one given.
    proc = state.parent / "proc"
    assert (proc / "4711" / "cgroup").read_text() == "0::/user.slice/user-0.slice/session-1.scope\n"
    assert (proc / "4712" / "cgroup").read_text() == "0::/kubepods/pod1/c1\n"
    assert cli.main(["reboot", *base]) == 0
    assert sim.node_status(state)["processes"] == []
    assert sorted(proc.iterdir()) == []
    assert cli.main(["client", "remove", *base, "--gpu", "0"]) == 0
    assert sim.node_status(state)["clients"] == []
    assert cli.main(["process", "remove", *base, "--pid", "1"]) == 1
    assert cli.main(["env", "--workdir", str(twin), "--node", "nope"]) == 1
    capsys.readouterr()


def test_node_defaults_give_every_node_the_dgx_holders_unless_it_says_otherwise(tmp_path: Path):
    fleet = tmp_path / "dgx.yml"
    fleet.write_text(yaml.safe_dump({"cluster": False, "node_defaults": {"host_services": "dgx", "kernel_modules": ["nvidia_drm"]},
                                     "nodes": [{"name": "dgx-1", "driver_version": "550.54.15", "gpus": [{"model": "A100-SXM4-80GB"}]},
                                               {"name": "bare", "driver_version": "550.54.15", "gpus": [{"model": "A100-SXM4-80GB"}],
                                                "host_services": "none"}]}))
    workdir = tmp_path / "twin"
    assert cli.main(["up", "--fleet", str(fleet), "--workdir", str(workdir)]) == 0
    dgx = sim.node_status(workdir / "nodes" / "dgx-1" / "state.json")
    bare = sim.node_status(workdir / "nodes" / "bare" / "state.json")
    assert [s["name"] for s in dgx["host_services"]][:2] == ["nvidia-persistenced", "nvidia-fabricmanager"]
    assert dgx["kernel_modules"] == ["nvidia_drm"]
    assert bare["host_services"] == [] and bare["kernel_modules"] == ["nvidia_drm"]
    cli.main(["down", "--workdir", str(workdir)])


def test_a_fleet_node_is_dgx_like_by_default_and_host_services_none_makes_it_bare(tmp_path: Path):
    fleet = tmp_path / "fleet.yml"
    gpus = [{"model": "A100-SXM4-40GB", "count": 8}]
    fleet.write_text(yaml.safe_dump({"cluster": False, "nodes": [
        {"name": "dgx-1", "driver_version": "550.54.15", "gpus": gpus},
        {"name": "bare", "driver_version": "550.54.15", "gpus": gpus, "host_services": "none"}]}))
    workdir = tmp_path / "twin"
    assert cli.main(["up", "--fleet", str(fleet), "--workdir", str(workdir)]) == 0
    dgx = sim.node_status(workdir / "nodes" / "dgx-1" / "state.json")
    bare = sim.node_status(workdir / "nodes" / "bare" / "state.json")
    assert [s["name"] for s in dgx["host_services"] if s["active"]] == [
        "nvidia-persistenced", "nvidia-fabricmanager", "nv_peer_mem", "nvidia-dcgm", "dcgm-exporter", "nvsm"]
    assert bare["host_services"] == []
    cli.main(["down", "--workdir", str(workdir)])
