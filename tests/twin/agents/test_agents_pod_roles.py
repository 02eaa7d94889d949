"""The agents recognise the device plugin and GFD by the commands the charts run, config-manager containers aside."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from gpufleet_twin import nvidia_chart
from gpufleet_twin.agents import pods as podlib

from conftest import tool_path


def _pod(containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"initContainers": init or [], "containers": containers}}


def test_roles_follow_the_command_not_the_container_name() -> None:
    sidecar = {"name": "nvidia-device-plugin-sidecar", "command": ["config-manager"]}
    main = {"name": "anything", "command": ["/usr/bin/nvidia-device-plugin"], "env": [{"name": "MIG_STRATEGY", "value": "single"}]}
    pod = _pod([sidecar, main], init=[{"name": "nvidia-device-plugin-init", "command": ["config-manager"]}])
    assert podlib.pod_role(pod) == podlib.DEVICE_PLUGIN
    assert podlib.container_env(podlib.role_container(pod, podlib.DEVICE_PLUGIN)) == {"MIG_STRATEGY": "single"}
    assert podlib.pod_role(_pod([{"name": "nvidia-device-plugin-ctr", "command": ["sleep", "infinity"]}])) == podlib.WORKLOAD
    assert podlib.pod_role(_pod([{"name": "ctr", "command": ["mps-control-daemon"]}])) == podlib.WORKLOAD


@pytest.mark.slow
def test_nvidia_charts_daemonsets_with_config_manager_are_recognised(tmp_path) -> None:
    chart = nvidia_chart.nvidia_chart()
    if chart is None:
        pytest.skip(nvidia_chart.unavailable_reason())
    rendered = subprocess.run(
        [str(tool_path("helm")), "template", "nvdp", str(chart), "--namespace", "nvidia-device-plugin", "--set", "gfd.enabled=true",
         "--set", "migStrategy=mixed", "--set-string", "config.map.default=version: v1"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    roles = {}
    for doc in yaml.safe_load_all(rendered):
        if doc and doc["kind"] == "DaemonSet":
            template = doc["spec"]["template"]
            role = podlib.pod_role(template)
            env = podlib.container_env(podlib.role_container(template, role))
            roles[doc["metadata"]["name"]] = (role, env.get("MIG_STRATEGY"))
    assert roles == {
        "nvdp-node-feature-discovery-worker": (podlib.WORKLOAD, None),
        "nvdp-nvidia-device-plugin": (podlib.DEVICE_PLUGIN, "mixed"),
        "nvdp-nvidia-device-plugin-gpu-feature-discovery": (podlib.GFD, "mixed"),
        "nvdp-nvidia-device-plugin-mps-control-daemon": (podlib.WORKLOAD, None),
    }
