"""helm.py: parsing real helm 3.17 / 4.1 output, the present/absent decisions, argv and the kubeconfig handed to helm."""
from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._helm import (
    ACTION_INSTALL,
    ACTION_NONE,
    ACTION_UNINSTALL,
    ACTION_UPGRADE,
    HelmCommandError,
    HelmError,
    HelmRunner,
    check_timeout,
    coalesce_values,
    connection_args,
    decide_absent,
    decide_present,
    default_kubeconfig_path,
    effective_values,
    helm_kubeconfig,
    list_argv,
    needs_private_kubeconfig,
    parse_helm_version,
    parse_release_list,
    parse_values,
    parse_yaml_document,
    show_argv,
    uninstall_argv,
    upgrade_argv,
    write_private_file,
)

# Captured from helm 4.1.4 and helm 3.17.3 against the emulated API server.
HELM4_LIST = ('[{"name":"nvdp","namespace":"nvidia-device-plugin","revision":"2","updated":"2026-11-28 16:23:10.957282277 +0000 UTC",'
              '"status":"deployed","chart":"nvidia-device-plugin-0.20.0","app_version":"0.20.0"}]\n')
HELM3_LIST_UNINSTALLED = ('[{"name":"rel","namespace":"ns","revision":"1","updated":"2026-11-28 16:14:05.072195652 +0000 UTC",'
                          '"status":"uninstalled","chart":"tiny-device-plugin-0.1.0","app_version":"0.1.0"}]\n')
SHOW_CHART = """apiVersion: v2
appVersion: 0.20.0
description: Stand-in for the NVIDIA nvidia-device-plugin chart
home: https://github.com/NVIDIA/k8s-device-plugin
kubeVersion: '>= 1.10.0-0'
name: nvidia-device-plugin
type: application
version: 0.20.0
"""
SHOW_VALUES = """# comments survive in helm show values
migStrategy: null
failOnInitError: null
allowDefaultNamespace: false
gfd:
  enabled: false
  sleepInterval: null
image:
  repository: nvcr.io/nvidia/k8s-device-plugin
  tag: ""
"""
CHART = parse_yaml_document(SHOW_CHART, "chart")
DEFAULTS = parse_yaml_document(SHOW_VALUES, "values")


def deployed(status="deployed", chart="nvidia-device-plugin-0.20.0", revision=2):
    return {"name": "nvdp", "namespace": "nvidia-device-plugin", "revision": revision, "status": status, "chart": chart}


# --- parsing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, version", [("v4.1.4", (4, 1, 4)), ("v3.17.3", (3, 17, 3)), ("v3.17.3+ge4da497\n", (3, 17, 3)), ("3.2.0", (3, 2, 0))])
def test_parse_helm_version(text, version):
    assert parse_helm_version(text) == version


def test_helm_2_and_garbage_are_refused():
    with pytest.raises(HelmError, match=r"^helm 2\.17\.0 is too old: helm 3 or 4 is needed\.$"):
        parse_helm_version("v2.17.0")
    with pytest.raises(HelmError, match="Cannot tell the helm version from 'kubectl'"):
        parse_helm_version("kubectl")


def test_parse_release_list_of_helm4_and_helm3():
    assert parse_release_list(HELM4_LIST, "nvdp") == {
        "name": "nvdp", "namespace": "nvidia-device-plugin", "revision": 2, "updated": "2026-11-28 16:23:10.957282277 +0000 UTC",
        "status": "deployed", "chart": "nvidia-device-plugin-0.20.0", "app_version": "0.20.0",
    }
    assert parse_release_list(HELM3_LIST_UNINSTALLED, "rel")["status"] == "uninstalled"
    assert parse_release_list("[]\n", "nvdp") is None


def test_parse_release_list_matches_the_exact_name_and_the_newest_revision():
    text = ('[{"name":"nvdp-2","revision":"9","status":"deployed"},{"name":"nvdp","revision":"3","status":"failed"},'
            '{"name":"nvdp","revision":"10","status":"deployed"}]')
    assert parse_release_list(text, "nvdp")["revision"] == 10
    with pytest.raises(HelmError, match="Cannot parse the output of helm list as JSON"):
        parse_release_list("Error: boom", "nvdp")


@pytest.mark.parametrize("text, values", [('{"migStrategy":"single"}\n', {"migStrategy": "single"}), ("null\n", {}), ("", {})])
def test_parse_values(text, values):
    assert parse_values(text) == values


def test_parse_yaml_document_reads_chart_metadata_and_rejects_non_mappings():
    assert (CHART["name"], CHART["version"], CHART["appVersion"]) == ("nvidia-device-plugin", "0.20.0", "0.20.0")
    assert parse_yaml_document("", "values") == {}
    with pytest.raises(HelmError, match="expected a mapping, got list"):
        parse_yaml_document("- a\n", "values")


@pytest.mark.parametrize("timeout", ["5m0s", "300s", "1h30m", "1.5h", "90s"])
def test_go_durations_pass(timeout):
    assert check_timeout(timeout) == timeout


@pytest.mark.parametrize("timeout", ["300", "5 minutes", "", "m5"])
def test_other_timeouts_are_refused(timeout):
    with pytest.raises(HelmError, match="is not a duration helm understands"):
        check_timeout(timeout)


# --- values -------------------------------------------------------------------------------------------


def test_coalesce_merges_maps_replaces_scalars_and_null_deletes():
    defaults = {"gfd": {"enabled": False, "sleepInterval": "60s"}, "image": {"tag": ""}, "tolerations": [{"key": "a"}]}
    user = {"gfd": {"enabled": True, "sleepInterval": None}, "image": "custom", "tolerations": [], "migStrategy": "mixed"}
    assert coalesce_values(defaults, user) == {"gfd": {"enabled": True}, "image": "custom", "tolerations": [], "migStrategy": "mixed"}
    assert defaults["gfd"] == {"enabled": False, "sleepInterval": "60s"}, "coalescing must not change its inputs"


def test_effective_values_ignore_spelled_out_defaults_and_nulls():
    assert effective_values(DEFAULTS, {"migStrategy": "mixed"}) == effective_values(
        DEFAULTS, {"migStrategy": "mixed", "allowDefaultNamespace": False, "failOnInitError": None, "gfd": {"enabled": False}})
    assert effective_values(DEFAULTS, {"migStrategy": "mixed"}) != effective_values(DEFAULTS, {"migStrategy": "single"})


# --- decisions ----------------------------------------------------------------------------------------


def test_missing_or_uninstalled_release_is_installed():
    assert decide_present(None, None, CHART, DEFAULTS, {}, "ns") == (ACTION_INSTALL, ["release not installed"])
    assert decide_present(deployed("uninstalled"), None, CHART, DEFAULTS, {}, "ns")[0] == ACTION_INSTALL


def test_deployed_release_with_same_chart_and_effective_values_is_left_alone():
    assert decide_present(deployed(), {"migStrategy": "mixed"}, CHART, DEFAULTS, {"migStrategy": "mixed", "gfd": {"enabled": False}}, "ns") == (
        ACTION_NONE, [])


def test_chart_version_and_values_differences_upgrade_and_say_why():
    action, reasons = decide_present(deployed(chart="nvidia-device-plugin-0.19.3"), {"migStrategy": "mixed"}, CHART, DEFAULTS,
                                     {"migStrategy": "single"}, "ns")
    assert action == ACTION_UPGRADE
    assert reasons == ["chart nvidia-device-plugin-0.19.3 -> nvidia-device-plugin-0.20.0", "values differ"]


def test_failed_release_is_upgraded_even_when_nothing_else_differs():
    assert decide_present(deployed("failed"), {}, CHART, DEFAULTS, {}, "ns") == (ACTION_UPGRADE, ["release status is failed"])


@pytest.mark.parametrize("status", ["pending-install", "pending-upgrade", "pending-rollback", "uninstalling"])
def test_stuck_release_fails_naming_the_repair(status):
    with pytest.raises(HelmError) as failure:
        decide_present(deployed(status, revision=4), {}, CHART, DEFAULTS, {}, "nvidia-device-plugin")
    assert str(failure.value).startswith(
        "Release nvdp in namespace nvidia-device-plugin is stuck in status %s (revision 4): another helm operation is running" % status)
    assert "helm rollback nvdp <last good revision> --namespace nvidia-device-plugin" in str(failure.value)


@pytest.mark.parametrize("release, action", [(None, ACTION_NONE), (deployed("uninstalled"), ACTION_NONE), (deployed(), ACTION_UNINSTALL),
                                             (deployed("failed"), ACTION_UNINSTALL), (deployed("pending-install"), ACTION_UNINSTALL)])
def test_decide_absent(release, action):
    assert decide_absent(release)[0] == action


# --- argv ---------------------------------------------------------------------------------------------


CONNECTION = connection_args("nvidia-device-plugin", "/etc/gpufleet/kubeconfig", "prod")


def test_connection_args():
    assert CONNECTION == ["--kubeconfig", "/etc/gpufleet/kubeconfig", "--kube-context", "prod", "--namespace", "nvidia-device-plugin"]
    assert connection_args("ns") == ["--namespace", "ns"]


def test_list_needs_all_on_helm3_only():
    assert list_argv("helm", 4, "nvdp", CONNECTION) == ["helm", "list", *CONNECTION, "--filter", "^nvdp$", "--output", "json"]
    assert list_argv("helm3", 3, "nvdp", CONNECTION)[-1] == "--all"
    assert list_argv("helm", 4, "my.release", CONNECTION)[-3] == r"^my\.release$"


def test_upgrade_argv_for_helm4_and_helm3():
    common = dict(chart_version="0.20.0", chart_repo_url="https://nvidia.github.io/k8s-device-plugin", create_namespace=True, wait=True,
                  timeout="5m0s", atomic=True)
    assert upgrade_argv("helm", 4, "nvdp", "nvidia-device-plugin", "/tmp/v.yaml", CONNECTION, **common) == [
        "helm", "upgrade", "nvdp", "nvidia-device-plugin", "--repo", "https://nvidia.github.io/k8s-device-plugin", "--version", "0.20.0",
        "--install", "--reset-values", "--values", "/tmp/v.yaml", *CONNECTION, "--create-namespace", "--rollback-on-failure", "--wait",
        "--timeout", "5m0s",
    ]
    helm3 = upgrade_argv("helm3", 3, "nvdp", "nvidia-device-plugin", "/tmp/v.yaml", CONNECTION, **common)
    assert "--atomic" in helm3 and "--rollback-on-failure" not in helm3
    assert upgrade_argv("helm", 4, "nvdp", "./chart", "/tmp/v.yaml", ["--namespace", "ns"]) == [
        "helm", "upgrade", "nvdp", "./chart", "--install", "--reset-values", "--values", "/tmp/v.yaml", "--namespace", "ns"]


def test_show_and_uninstall_argv():
    assert show_argv("helm", "values", "nvdp/nvidia-device-plugin", "0.20.0") == ["helm", "show", "values", "nvdp/nvidia-device-plugin",
                                                                                "--version", "0.20.0"]
    assert uninstall_argv("helm", "nvdp", ["--namespace", "ns"], wait=True, timeout="60s") == [
        "helm", "uninstall", "nvdp", "--namespace", "ns", "--wait", "--timeout", "60s"]


# --- kubeconfig for helm --------------------------------------------------------------------------------

BASE_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "dev",
    "clusters": [{"name": "dev-cluster", "cluster": {"server": "https://dev:6443", "certificate-authority": "ca/dev.crt"}},
                 {"name": "prod-cluster", "cluster": {"server": "https://prod:6443", "certificate-authority-data": "UFJPRA=="}}],
    "users": [{"name": "dev-user", "user": {"client-certificate": "/abs/dev.crt", "client-key": "dev.key"}},
              {"name": "prod-user", "user": {"token": "prod-token"}}],
    "contexts": [{"name": "dev", "context": {"cluster": "dev-cluster", "user": "dev-user", "namespace": "ml"}},
                 {"name": "prod", "context": {"cluster": "prod-cluster", "user": "prod-user"}}],
}


def only(document, section):
    (entry,) = document[section]
    return entry[section[:-1]]


def test_kubeconfig_keeps_the_current_context_and_makes_relative_paths_absolute():
    document = helm_kubeconfig(BASE_KUBECONFIG, base_dir="/home/ops/.kube")
    assert document["current-context"] == "gpufleet"
    assert only(document, "clusters") == {"server": "https://dev:6443", "certificate-authority": "/home/ops/.kube/ca/dev.crt"}
    assert only(document, "users") == {"client-certificate": "/abs/dev.crt", "client-key": "/home/ops/.kube/dev.key"}
    assert only(document, "contexts") == {"cluster": "gpufleet", "user": "gpufleet", "namespace": "ml"}


def test_kubeconfig_options_override_the_chosen_context():
    document = helm_kubeconfig(BASE_KUBECONFIG, context="prod", api_key="t0ken", ca_cert="/etc/ca.pem")
    assert only(document, "clusters") == {"server": "https://prod:6443", "certificate-authority": "/etc/ca.pem"}
    assert only(document, "users") == {"token": "t0ken"}
    insecure = helm_kubeconfig(BASE_KUBECONFIG, context="prod", validate_certs=False)
    assert only(insecure, "clusters") == {"server": "https://prod:6443", "insecure-skip-tls-verify": True}


def test_kubeconfig_from_host_and_token_alone():
    document = helm_kubeconfig(None, host="https://10.0.0.1:6443", api_key="t0ken")
    assert only(document, "clusters") == {"server": "https://10.0.0.1:6443"} and only(document, "users") == {"token": "t0ken"}


def test_kubeconfig_errors_name_the_problem():
    with pytest.raises(HelmError, match="^Cannot use context staging: the kubeconfig has no such context.$"):
        helm_kubeconfig(BASE_KUBECONFIG, context="staging")
    with pytest.raises(HelmError, match="set host, or a kubeconfig with a server"):
        helm_kubeconfig(None, api_key="t0ken")


def test_when_helm_needs_a_private_kubeconfig():
    assert not needs_private_kubeconfig("/etc/kubeconfig")
    assert not needs_private_kubeconfig(None)
    assert needs_private_kubeconfig({"clusters": []})
    assert needs_private_kubeconfig(None, api_key="t")
    assert needs_private_kubeconfig("/etc/kubeconfig", validate_certs=False)


def test_default_kubeconfig_path_follows_client_go():
    assert default_kubeconfig_path({"KUBECONFIG": os.pathsep.join(["/a/config", "/b/config"])}) == "/a/config"
    assert default_kubeconfig_path({}) == os.path.expanduser("~/.kube/config")


# --- running --------------------------------------------------------------------------------------------


def test_private_files_are_readable_by_the_owner_only(tmp_path):
    path = write_private_file(str(tmp_path), "helm-values-", '{"migStrategy": "mixed"}')
    assert open(path).read() == '{"migStrategy": "mixed"}'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_runner_records_every_command_and_raises_with_helms_words():
    answers = iter([(0, "v4.1.4", ""), (1, "", "Error: INSTALLATION FAILED: namespaces \"x\" not found\n")])
    runner = HelmRunner(lambda argv: next(answers))
    assert runner.run(["helm", "version"], "helm version") == (0, "v4.1.4", "")
    with pytest.raises(HelmCommandError) as failure:
        runner.run(["helm", "upgrade", "nvdp"], "helm upgrade of release nvdp")
    assert str(failure.value) == 'helm upgrade of release nvdp failed (helm exited 1): Error: INSTALLATION FAILED: namespaces "x" not found'
    assert failure.value.cmd == ["helm", "upgrade", "nvdp"] and failure.value.rc == 1
    assert runner.commands == [["helm", "version"], ["helm", "upgrade", "nvdp"]]
