"""The simulator across process boundaries: the pynvml shim and concurrent writers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from gpufleet_twin import nvml as sim


def _python_on_node(path, code, timeout=60):
    env = {**os.environ, **sim.node_env(path)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process, timeout=60):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out


def test_shim_makes_the_real_pynvml_talk_to_the_node(make_node):
    path = make_node(
        [{"model": "H200-141GB", "mig_mode": "enabled", "mig_devices": ["7g.141gb"]}], driver_version="550.90.07"
    )
    out = _finish(
        _python_on_node(
            path,
            """
        import json, pynvml, inspect
        pynvml.nvmlInit()
        gpu = pynvml.nvmlDeviceGetHandleByIndex(0)
        mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, 0)
        try:
            pynvml.nvmlDeviceCreateGpuInstance(gpu, 19)
            error = None
        except pynvml.NVMLError_InsufficientResources as failure:
            error = [type(failure).__name__, str(failure)]
        print(json.dumps({
            "module": pynvml.__file__,
            "library": type(pynvml.nvmlLib).__name__,
            "name": pynvml.nvmlDeviceGetName(gpu),
            "mig": pynvml.nvmlDeviceGetName(mig),
            "memory": pynvml.nvmlDeviceGetAttributes(mig).memorySizeMB,
            "error": error,
            "source_readable": "def nvmlInit" in inspect.getsource(pynvml),
        }))
    """,
        )
    )
    report = json.loads(out)
    assert report["module"].endswith(os.path.join("site-packages", "pynvml.py"))
    assert report == {
        "module": report["module"],
        "library": "FakeNvmlLibrary",
        "name": "NVIDIA H200",
        "mig": "NVIDIA H200 MIG 7g.141gb",
        "memory": 143104,
        "error": ["NVMLError_InsufficientResources", "Insufficient Resources"],
        "source_readable": True,
    }


def test_changes_made_in_a_subprocess_are_seen_here(make_node, nvml_on):
    path = make_node([{"model": "A100-SXM4-40GB"}])
    _finish(
        _python_on_node(
            path,
            """
        import pynvml
        pynvml.nvmlInit()
        print(pynvml.nvmlDeviceSetMigMode(pynvml.nvmlDeviceGetHandleByIndex(0), 1))
    """,
        )
    )
    nvml = nvml_on(path)
    assert nvml.nvmlDeviceGetMigMode(nvml.nvmlDeviceGetHandleByIndex(0)) == [1, 1]


def test_concurrent_creators_never_share_a_slot(make_node):
    path = make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}])
    code = """
        import pynvml
        pynvml.nvmlInit()
        gpu = pynvml.nvmlDeviceGetHandleByIndex(0)
        try:
            print(pynvml.nvmlGpuInstanceGetInfo(pynvml.nvmlDeviceCreateGpuInstance(gpu, 19)).id)
        except pynvml.NVMLError_InsufficientResources:
            print("full")
    """
    workers = [_python_on_node(path, code) for _ in range(8)]
    answers = sorted(_finish(worker).strip() for worker in workers)
    assert answers == sorted(["7", "8", "9", "10", "11", "12", "13", "full"])
    layout = sim.node_status(path)["gpus"][0]["gpu_instances"]
    assert sorted(gi["placement"]["start"] for gi in layout) == [0, 1, 2, 3, 4, 5, 6]


def test_concurrent_writers_lose_no_update(make_node):
    path = make_node([{"model": "A100-SXM4-40GB"}])
    code = f"""
        from gpufleet_twin import nvml as sim
        for _ in range(25):
            sim.inject_fault({str(path)!r}, "nvmlDeviceGetCount", "UNKNOWN")
    """
    workers = [_python_on_node(path, code) for _ in range(4)]
    for worker in workers:
        _finish(worker)
    assert len(sim.node_status(path)["faults"]) == 100
    assert not list(path.parent.glob("*.tmp"))
