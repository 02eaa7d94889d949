"""The stand-in nvidia-device-plugin chart renders the names, values and refusals of chart 0.20.0."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import tool_path

pytestmark = pytest.mark.slow

CHART = Path(__file__).resolve().parents[2] / "charts" / "nvidia-device-plugin"


def render(release: str, *options: str, namespace: str = "nvidia-device-plugin") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool_path("helm")), "template", release, str(CHART), "--namespace", namespace, *options],
        capture_output=True, text=True, timeout=60, check=False,
    )


def objects(release: str, *options: str) -> dict[tuple[str, str], dict]:
    result = render(release, *options)
    assert result.returncode == 0, result.stderr
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(result.stdout) if doc}


def container(daemonset: dict) -> dict:
    (main,) = daemonset["spec"]["template"]["spec"]["containers"]
    return main


def env(daemonset: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container(daemonset).get("env", [])}


def test_chart_metadata_is_the_real_charts():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["name"], chart["version"], chart["appVersion"]) == ("nvidia-device-plugin", "0.20.0", "0.20.0")


def test_default_install_names_and_pod_shape():
    rendered = objects("nvdp")
    assert sorted(rendered) == [
        ("ClusterRole", "nvdp-nvidia-device-plugin-role"),
        ("ClusterRoleBinding", "nvdp-nvidia-device-plugin-role-binding"),
        ("DaemonSet", "nvdp-nvidia-device-plugin"),
        ("ServiceAccount", "nvdp-nvidia-device-plugin-service-account"),
    ]
    plugin = rendered[("DaemonSet", "nvdp-nvidia-device-plugin")]
    pod = plugin["spec"]["template"]
    assert pod["metadata"]["labels"] == {"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/instance": "nvdp"}
    assert pod["spec"]["priorityClassName"] == "system-node-critical"
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert [t["matchExpressions"][0]["key"] for t in terms] == [
        "feature.node.kubernetes.io/pci-10de.present", "feature.node.kubernetes.io/cpu-model.vendor_id", "nvidia.com/gpu.present"
    ]
    assert pod["spec"]["tolerations"] == [
        {"key": "CriticalAddonsOnly", "operator": "Exists"}, {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    main = container(plugin)
    assert (main["name"], main["command"], main["image"]) == (
        "nvidia-device-plugin-ctr", ["nvidia-device-plugin"], "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"
    )
    # Unset values leave the plugin's defaults (none, fail on init error) and no MIG monitoring.
    assert {"MIG_STRATEGY", "FAIL_ON_INIT_ERROR", "NVIDIA_MIG_MONITOR_DEVICES"}.isdisjoint(env(plugin))
    assert main["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_strategy_gfd_and_overrides():
    rendered = objects(
        "gpu-nvidia-device-plugin", "--set", "migStrategy=mixed", "--set", "failOnInitError=false", "--set", "gfd.enabled=true",
        "--set", "sleepInterval=5s", "--set", "image.tag=v0.19.3",
    )
    plugin = rendered[("DaemonSet", "gpu-nvidia-device-plugin")]  # the release name already holds the chart name
    gfd = rendered[("DaemonSet", "gpu-nvidia-device-plugin-gpu-feature-discovery")]
    wanted = {"MIG_STRATEGY": "mixed", "FAIL_ON_INIT_ERROR": "false", "NVIDIA_MIG_MONITOR_DEVICES": "all"}
    for daemonset in (plugin, gfd):
        assert env(daemonset).items() >= wanted.items()
    assert env(gfd)["GFD_SLEEP_INTERVAL"] == "5s" and container(gfd)["command"] == ["gpu-feature-discovery"]
    assert container(plugin)["securityContext"] == {"capabilities": {"add": ["SYS_ADMIN"]}}
    assert container(plugin)["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.19.3"


def test_gfd_only_release_and_fullname_override():
    rendered = objects("gfd", "--set", "devicePlugin.enabled=false", "--set", "gfd.enabled=true", "--set", "fullnameOverride=nv")
    assert [name for kind, name in rendered if kind == "DaemonSet"] == ["nv-gpu-feature-discovery"]


@pytest.mark.parametrize(
    ("namespace", "options", "message"),
    [
        ("default", [], "Running in the 'default' namespace is not recommended."),
        ("gpu", ["--set", "namespace=gpu"], "Setting an explicit 'namespace' in values.yaml or via --set on the command line is no longer supported."),
        ("gpu", ["--set", "config.name=x", "--set-string", "config.map.a=version: v1"], "Only one of 'config.name' or 'config.map'"),
        ("gpu", ["--set-string", "config.map.a=version: v1", "--set-string", "config.map.b=version: v1"], "A default config must be provided"),
    ],
)
def test_refusals(namespace, options, message):
    result = render("nvdp", *options, namespace=namespace)
    assert result.returncode != 0 and message in result.stderr


def test_default_namespace_with_permission():
    result = render("nvdp", "--set", "allowDefaultNamespace=true", namespace="default")
    assert result.returncode == 0, result.stderr
