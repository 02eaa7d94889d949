"""gpufleet.mig.helm_release through ansible-playbook: the real helm 4 and helm 3 binaries against the emulated API server."""
from __future__ import annotations

import base64
import datetime
import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from kube_harness import KubeControl, start_kube_control

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / ".tools" / "bin"
CHART = REPO_ROOT / "tests" / "charts" / "nvidia-device-plugin"
MODULE = "gpufleet.mig.helm_release"
RELEASE = "nvdp"
NAMESPACE = "nvidia-device-plugin"
DAEMONSET = "nvdp-nvidia-device-plugin"


def helm_binary(name: str) -> Path:
    path = TOOLS / name
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is missing: run `make tools` to fetch the helm binaries")
    return path


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeControl]:
    for control in start_kube_control(tmp_path):
        control.cluster.add_node("gpu-node-1", labels={"nvidia.com/gpu.present": "true"})
        control.cluster.add_node("cpu-node-1")
        yield control


class Releases:
    """helm_release tasks for one helm binary, with helm's caches kept under the test's directory."""

    def __init__(self, kube: KubeControl, binary: Path, home: Path) -> None:
        self.kube = kube
        self.binary = binary
        self.environment = {f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}

    def task(self, name: str, chart: Path | str = CHART, **args: Any) -> dict[str, Any]:
        defaults: dict[str, Any] = {"release_name": RELEASE, "release_namespace": NAMESPACE, "binary_path": str(self.binary), "_environment": self.environment}
        if args.get("state") != "absent":
            defaults["chart_ref"] = str(chart)
        return self.kube.task(MODULE, name, **{**defaults, **args})


def release_secrets(kube: KubeControl) -> list[tuple[str, str]]:
    secrets = kube.cluster.list("secrets", NAMESPACE, label_selector="owner=helm") if kube.cluster.exists("namespaces", NAMESPACE) else []
    return [(s["metadata"]["labels"]["version"], s["metadata"]["labels"]["status"]) for s in secrets]


def daemonset_env(kube: KubeControl) -> dict[str, str]:
    container = kube.cluster.get("daemonsets", DAEMONSET, NAMESPACE)["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value") for item in container.get("env") or []}


@pytest.mark.parametrize("binary_name", ["helm", "helm3"], ids=["helm4", "helm3"])
def test_install_noop_upgrade_with_diff_and_uninstall(kube: KubeControl, tmp_path: Path, binary_name: str) -> None:
    releases = Releases(kube, helm_binary(binary_name), tmp_path / "helm-home")
    major = "4" if binary_name == "helm" else "3"
    install = {"values": {"migStrategy": "mixed"}, "create_namespace": True, "wait": True, "timeout": "60s"}

    run = kube.play([releases.task("Install in check mode", **install)], check=True, diff=True)
    predicted = run.task("Install in check mode")
    assert predicted.changed and not predicted.failed, predicted.result
    assert predicted.result["command"][1:3] == ["upgrade", RELEASE] and "--create-namespace" in predicted.result["command"]
    assert predicted.result["diff"] == {"before": {}, "after": {"chart": "nvidia-device-plugin-0.20.0", "values": {"migStrategy": "mixed"}}}
    assert predicted.result["helm_version"].startswith(major + ".")
    assert not kube.cluster.exists("namespaces", NAMESPACE), "check mode created the namespace"

    run = kube.play([
        releases.task("Install", **install),
        releases.task("Install again", **install),
        releases.task("Install again, spelling out chart defaults", **{**install, "values": {"migStrategy": "mixed", "allowDefaultNamespace": False,
                                                                                              "failOnInitError": None}}),
    ])
    installed = run.task("Install")
    assert installed.changed and not installed.failed, installed.result
    assert installed.result["status"] == {
        "name": RELEASE, "namespace": NAMESPACE, "revision": 1, "status": "deployed", "chart": "nvidia-device-plugin-0.20.0",
        "app_version": "0.20.0", "updated": installed.result["status"]["updated"], "values": {"migStrategy": "mixed"},
    }
    assert not run.task("Install again").changed and run.task("Install again").result["command"] is None
    assert not run.task("Install again, spelling out chart defaults").changed
    assert release_secrets(kube) == [("1", "deployed")]
    assert daemonset_env(kube)["MIG_STRATEGY"] == "mixed"
    # Values travel in a temp file, removed afterwards; never on the command line.
    upgrade_command = installed.result["command"]
    values_file = upgrade_command[upgrade_command.index("--values") + 1]
    assert not Path(values_file).exists()
    assert not any("mixed" in arg for argv in installed.result["commands"] for arg in argv)
    if major == "3":
        assert "--atomic" not in upgrade_command and ["--timeout", "60s"] == upgrade_command[-2:]

    run = kube.play([releases.task("Upgrade", **{**install, "values": {"migStrategy": "single"}, "atomic": True})], diff=True)
    upgraded = run.task("Upgrade")
    assert upgraded.changed and not upgraded.failed, upgraded.result
    assert upgraded.result["reasons"] == ["values differ"]
    assert upgraded.result["diff"] == {
        "before": {"chart": "nvidia-device-plugin-0.20.0", "values": {"migStrategy": "mixed"}},
        "after": {"chart": "nvidia-device-plugin-0.20.0", "values": {"migStrategy": "single"}},
    }
    assert ("--rollback-on-failure" if major == "4" else "--atomic") in upgraded.result["command"]
    assert upgraded.result["status"]["revision"] == 2 and upgraded.result["status"]["values"] == {"migStrategy": "single"}
    assert daemonset_env(kube)["MIG_STRATEGY"] == "single"
    assert release_secrets(kube) == [("1", "superseded"), ("2", "deployed")]

    run = kube.play([
        releases.task("Uninstall in check mode", state="absent", _check_mode=True),
        releases.task("Uninstall", state="absent", wait=True),
        releases.task("Uninstall again", state="absent"),
    ], diff=True)
    assert run.task("Uninstall in check mode").changed
    uninstalled = run.task("Uninstall")
    assert uninstalled.changed and uninstalled.result["status"] is None
    assert uninstalled.result["diff"] == {"before": {"chart": "nvidia-device-plugin-0.20.0", "values": {"migStrategy": "single"}}, "after": {}}
    assert not run.task("Uninstall again").changed
    assert release_secrets(kube) == []
    assert not kube.cluster.exists("daemonsets", DAEMONSET, NAMESPACE)


def set_release_status(kube: KubeControl, revision: int, status: str) -> None:
    """Rewrite the stored release the way an interrupted or failed helm run leaves it (helm's Secret driver format)."""
    secret_name = f"sh.helm.release.v1.{RELEASE}.v{revision}"
    secret = kube.cluster.get("secrets", secret_name, NAMESPACE)
    document = json.loads(gzip.decompress(base64.b64decode(base64.b64decode(secret["data"]["release"]))))
    document["info"]["status"] = status
    encoded = base64.b64encode(base64.b64encode(gzip.compress(json.dumps(document).encode()))).decode()
    kube.cluster.patch("secrets", secret_name, {"metadata": {"labels": {"status": status}}, "data": {"release": encoded}}, "merge", NAMESPACE)


def test_chart_version_change_private_kubeconfig_and_stuck_releases(kube: KubeControl, tmp_path: Path) -> None:
    releases = Releases(kube, helm_binary("helm"), tmp_path / "helm-home")
    newer_chart = tmp_path / "charts" / "nvidia-device-plugin"
    shutil.copytree(CHART, newer_chart)
    chart_yaml = yaml.safe_load((newer_chart / "Chart.yaml").read_text())
    (newer_chart / "Chart.yaml").write_text(yaml.safe_dump({**chart_yaml, "version": "0.20.1"}))
    # Credentials as options: the module hands helm a private kubeconfig, never the token on the command line.
    token_auth = {"kubeconfig": None, "host": kube.api.url, "api_key": kube.api.token, "ca_cert": str(kube.api.ca_path)}
    values = {"migStrategy": "mixed"}

    run = kube.play([
        releases.task("Install 0.20.0", values=values, create_namespace=True, **token_auth),
        releases.task("Upgrade to 0.20.1", chart=newer_chart, values=values, **token_auth),
        releases.task("Wrong token", chart=newer_chart, values=values, _ignore_errors=True, **{**token_auth, "api_key": "not-the-token"}),
        releases.task("Install into the default namespace", release_namespace="default", values=values, _ignore_errors=True),
    ], diff=True)
    assert run.task("Install 0.20.0").changed
    upgraded = run.task("Upgrade to 0.20.1")
    assert upgraded.changed and upgraded.result["reasons"] == ["chart nvidia-device-plugin-0.20.0 -> nvidia-device-plugin-0.20.1"]
    assert upgraded.result["status"]["chart"] == "nvidia-device-plugin-0.20.1" and upgraded.result["status"]["revision"] == 2
    for result in (upgraded, run.task("Install 0.20.0")):
        flat = [arg for argv in result.result["commands"] for arg in argv]
        assert kube.api.token not in flat and "--kube-token" not in flat and "--kubeconfig" in flat
    wrong = run.task("Wrong token")
    assert wrong.failed and wrong.msg.startswith("helm list failed (helm exited 1): ")
    assert "Unauthorized" in wrong.result["stderr"] or "credentials" in wrong.result["stderr"], wrong.result["stderr"]
    assert kube.api.token not in run.stdout + run.stderr and "not-the-token" not in run.stdout
    refused = run.task("Install into the default namespace")
    assert refused.failed and refused.msg.startswith("helm upgrade of release nvdp in namespace default failed (helm exited 1): Error: ")
    assert "Running in the 'default' namespace is not recommended." in refused.result["stderr"]
    assert refused.result["cmd"][1:3] == ["upgrade", "nvdp"] and refused.result["rc"] == 1

    set_release_status(kube, 2, "failed")
    run = kube.play([releases.task("Repair a failed release", chart=newer_chart, values=values)])
    repaired = run.task("Repair a failed release")
    assert repaired.changed and repaired.result["reasons"] == ["release status is failed"]
    assert repaired.result["status"]["status"] == "deployed" and repaired.result["status"]["revision"] == 3

    set_release_status(kube, 3, "pending-upgrade")
    run = kube.play([releases.task("Stuck release", chart=newer_chart, values={"migStrategy": "single"}, _ignore_errors=True)])
    stuck = run.task("Stuck release")
    assert stuck.failed
    assert stuck.msg == (
        "Release nvdp in namespace nvidia-device-plugin is stuck in status pending-upgrade (revision 3): another helm operation "
        "is running or was interrupted. If none is running, repair it by hand: helm rollback nvdp <last good revision> "
        "--namespace nvidia-device-plugin, or helm uninstall nvdp --namespace nvidia-device-plugin when it was never deployed; "
        "then run the task again."
    )
    assert [argv[1] for argv in stuck.result["commands"]] == ["version", "list", "get", "show", "show"], "nothing may be written"
    assert release_secrets(kube)[-1] == ("3", "pending-upgrade")


def test_values_files_set_values_and_a_chart_relative_to_the_playbook(kube: KubeControl, tmp_path: Path) -> None:
    releases = Releases(kube, helm_binary("helm"), tmp_path / "helm-home")
    project = tmp_path / "project"
    shutil.copytree(CHART, project / "charts" / "nvidia-device-plugin")
    (project / "values").mkdir()
    (project / "values" / "device-plugin.yml").write_text("migStrategy: single\ngfd:\n  enabled: true\n")
    relative = {"chart": "charts/nvidia-device-plugin", "create_namespace": True, "wait": True, "timeout": "60s",
                "values_files": ["values/device-plugin.yml"], "values": {"failOnInitError": False}}
    wanted = {"migStrategy": "mixed", "gfd": {"enabled": True}, "failOnInitError": False}

    run = kube.play([
        releases.task("Relative chart without playbook_dir", **relative, set_values=[{"value": "migStrategy=mixed"}], _ignore_errors=True),
        releases.task("Install", **relative, playbook_dir=str(project), set_values=[{"value": "migStrategy=mixed"}]),
        releases.task("Install again", **relative, playbook_dir=str(project), set_values=[{"value": "migStrategy=mixed"}]),
        releases.task("Same values as one dict", chart=str(project / "charts" / "nvidia-device-plugin"), values=wanted),
        releases.task("Change through set_values", **relative, playbook_dir=str(project),
                      set_values=[{"value": "migStrategy=none", "value_type": "string"}]),
    ])
    assert run.task("Relative chart without playbook_dir").failed, "the module's temporary working directory has no chart"
    installed = run.task("Install")
    assert installed.changed and not installed.failed, installed.result
    assert installed.result["status"]["values"] == wanted
    assert not any("mixed" in arg or "device-plugin.yml" in arg for argv in installed.result["commands"] for arg in argv)
    assert str(project / "charts" / "nvidia-device-plugin") in installed.result["command"]
    assert not run.task("Install again").changed
    assert not run.task("Same values as one dict").changed
    changed = run.task("Change through set_values")
    assert changed.changed and changed.result["reasons"] == ["values differ"]
    assert daemonset_env(kube)["MIG_STRATEGY"] == "none"


def foreign_lease(kube: KubeControl, name: str, holder: str) -> None:
    """A live Lease another run holds (renewed just now, for an hour)."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kube.cluster.create("leases", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 3600, "acquireTime": now, "renewTime": now},
    }, "kube-system")


def test_a_lock_is_taken_only_to_change_the_release_and_given_back(kube: KubeControl, tmp_path: Path) -> None:
    releases = Releases(kube, helm_binary("helm"), tmp_path / "helm-home")
    lock = {"name": "helm-lock", "holder": "run-a", "timeout": 2, "poll_interval": 0.2}
    install = {"values": {"migStrategy": "mixed"}, "create_namespace": True, "lock": lock}

    run = kube.play([releases.task("Install under the lock", **install)])
    installed = run.task("Install under the lock")
    assert installed.changed and not installed.failed, installed.result
    assert installed.result["status"]["revision"] == 1
    # Taken for the change and given back: no holder now.
    assert kube.cluster.get("leases", "helm-lock", "kube-system")["spec"].get("holderIdentity") is None

    # Another run holds the lock. A release that already matches is compared without it: no wait, no change.
    kube.cluster.delete("leases", "helm-lock", "kube-system")
    foreign_lease(kube, "helm-lock", "run-b")
    run = kube.play([releases.task("Install again while run-b holds the lock", **install)])
    again = run.task("Install again while run-b holds the lock")
    assert not again.changed and not again.failed, again.result
    assert kube.cluster.get("leases", "helm-lock", "kube-system")["spec"]["holderIdentity"] == "run-b"

    # A release that must change waits for the lock, up to lock.timeout, and changes nothing when it stays held.
    run = kube.play([releases.task("Upgrade while run-b holds the lock", **{**install, "values": {"migStrategy": "single"}})])
    refused = run.task("Upgrade while run-b holds the lock")
    assert refused.failed and "Lease kube-system/helm-lock is held by run-b" in refused.result["msg"], refused.result
    assert daemonset_env(kube)["MIG_STRATEGY"] == "mixed"
    assert release_secrets(kube) == [("1", "deployed")]
