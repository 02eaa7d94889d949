"""The device_plugin role's values rendered by the chart (``helm template``): NVIDIA's chart when provided
(gpufleet_twin.nvidia_chart), else the stand-in, whose values schema matches NVIDIA's for these keys.

The values are the ones the role hands helm_release (its check-mode diff), so the test follows the role."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from gpufleet_twin import nvidia_chart
from kube_harness import KubeControl, start_kube_control

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
HELM = REPO_ROOT / ".tools" / "bin" / "helm"
STAND_IN = REPO_ROOT / nvidia_chart.STAND_IN
ROLE_TASK = "gpufleet.mig.device_plugin : Install or upgrade the NVIDIA device plugin and GPU feature discovery"
CHART_TERMS = [
    ("feature.node.kubernetes.io/pci-10de.present", "In", ["true"]),
    ("feature.node.kubernetes.io/cpu-model.vendor_id", "In", ["NVIDIA"]),
    ("nvidia.com/gpu.present", "In", ["true"]),
]
PAUSE = ("gpufleet.mig/gpu-clients", "NotIn", ["paused"])


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeControl]:
    yield from start_kube_control(tmp_path)


def charts() -> list[Any]:
    provided = nvidia_chart.nvidia_chart()
    real = pytest.param(provided, id="nvidia") if provided else pytest.param(
        None, id="nvidia", marks=pytest.mark.skip(reason=nvidia_chart.unavailable_reason())
    )
    return [real, pytest.param(STAND_IN, id="stand-in")]


def role_values(kube: KubeControl, chart: Path, **role_vars: Any) -> dict[str, Any]:
    task = {
        "name": "device_plugin role",
        "ansible.builtin.include_role": {"name": "gpufleet.mig.device_plugin"},
        "vars": {"device_plugin_chart_ref": str(chart), "device_plugin_chart_repo_url": "",
                 "device_plugin_helm_binary": str(HELM), **role_vars},
    }
    # API access as site.yml gives it: module_defaults for the collection's k8s action group.
    block = {"name": "with the cluster's kubeconfig", "module_defaults": {"group/gpufleet.mig.k8s": {"kubeconfig": kube.kubeconfig}},
             "block": [task]}
    run = kube.play([block], check=True, diff=True)
    result = run.task(ROLE_TASK)
    assert not result.failed, result.result
    return result.result["diff"]["after"]["values"]


def render(chart: Path, values: dict[str, Any], tmp_path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = subprocess.run(
        [str(HELM), "template", "nvidia-device-plugin", str(chart), "--namespace", "nvidia-device-plugin", "-f", str(values_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout) if d}


def _main_container(daemonset: dict[str, Any], command: str) -> dict[str, Any]:
    (container,) = [c for c in daemonset["spec"]["template"]["spec"]["containers"] if c.get("command", [""])[0] == command]
    return container


@pytest.mark.parametrize("chart", charts())
@pytest.mark.parametrize("strategy", ["single", "mixed"])
def test_role_values_keep_the_charts_node_selection_and_add_the_pause_rule(kube: KubeControl, tmp_path: Path, chart: Path, strategy: str) -> None:
    if not os.access(HELM, os.X_OK):
        pytest.skip("run `make tools` for helm")
    values = role_values(kube, chart, device_plugin_mig_strategy=strategy)
    assert values["migStrategy"] == strategy and values["gfd"] == {"enabled": True} and values["nfd"] == {"enabled": True}
    rendered = render(chart, values, tmp_path)
    daemonsets = {name: obj for (kind, name), obj in rendered.items() if kind == "DaemonSet"}
    plugin = daemonsets["nvidia-device-plugin"]
    gfd = daemonsets["nvidia-device-plugin-gpu-feature-discovery"]
    for daemonset, command in ((plugin, "nvidia-device-plugin"), (gfd, "gpu-feature-discovery")):
        spec = daemonset["spec"]["template"]["spec"]
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert [[(e["key"], e["operator"], e["values"]) for e in t["matchExpressions"]] for t in terms] == [[term, PAUSE] for term in CHART_TERMS]
        container = _main_container(daemonset, command)
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env["MIG_STRATEGY"] == strategy and env["NVIDIA_MIG_MONITOR_DEVICES"] == "all"
        assert not container.get("args"), "the strategy travels in the environment, not as arguments"
    if chart != STAND_IN:  # NVIDIA's chart: its NFD subchart follows nfd.enabled, with its own scheduling
        assert "nvidia-device-plugin-node-feature-discovery-worker" in daemonsets
        assert ("Deployment", "nvidia-device-plugin-node-feature-discovery-master") in rendered
        without_nfd = render(chart, {**values, "nfd": {"enabled": False}}, tmp_path)
        assert not any("node-feature-discovery" in name for _, name in without_nfd)
