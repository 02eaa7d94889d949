"""k8s.py: auth options as kubernetes.core names them, client construction and API errors, against the emulated API server."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from gpufleet_twin.kube import ApiServer

from ansible_collections.gpufleet.mig.plugins.module_utils._k8s import KubeApiError, KubeClient, build_api_client
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_auth import k8s_auth_argument_spec


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    server = ApiServer(state_dir=tmp_path / "apiserver").start()
    server.cluster.add_node("gpu-0")
    try:
        yield server
    finally:
        server.stop()


def validated(parameters: dict) -> dict:
    result = ArgumentSpecValidator(k8s_auth_argument_spec()).validate(parameters)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def test_auth_options_fall_back_to_the_kubernetes_core_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", "/etc/kubeconfig")
    monkeypatch.setenv("K8S_AUTH_CONTEXT", "prod")
    monkeypatch.setenv("K8S_AUTH_API_KEY", "t0ken")
    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "false")
    params = validated({"ssl_ca_cert": "/etc/ca.pem"})
    assert (params["kubeconfig"], params["context"], params["api_key"], params["validate_certs"], params["ca_cert"]) == (
        "/etc/kubeconfig", "prod", "t0ken", False, "/etc/ca.pem")
    assert validated({"kubeconfig": "/other", "verify_ssl": True})["kubeconfig"] == "/other"


def test_api_key_is_no_log() -> None:
    assert k8s_auth_argument_spec()["api_key"]["no_log"] is True
    assert validated({})["validate_certs"] is True


def test_kubeconfig_file_dict_and_host_token_all_reach_the_server(api: ApiServer) -> None:
    import yaml

    document = yaml.safe_load(Path(api.kubeconfig_path).read_text())
    for params in ({"kubeconfig": str(api.kubeconfig_path)}, {"kubeconfig": document},
                   {"host": api.url, "api_key": api.token, "ca_cert": str(api.ca_path)}):
        with KubeClient.from_params(params) as client:
            assert client.get_node("gpu-0")["metadata"]["name"] == "gpu-0"


def test_api_errors_carry_status_reason_and_the_servers_message(api: ApiServer) -> None:
    with KubeClient.from_params({"kubeconfig": str(api.kubeconfig_path)}) as client:
        with pytest.raises(KubeApiError) as failure:
            client.get_node("gpu-9")
        assert client.get_pod("default", "nothing") is None
        assert client.evict_pod("default", "nothing") is False
    assert str(failure.value) == 'Cannot read node gpu-9: the API server answered 404 NotFound: nodes "gpu-9" not found'
    assert failure.value.not_found and failure.value.reason == "NotFound"


def test_unreachable_server_and_bad_kubeconfig_are_kube_api_errors(tmp_path: Path) -> None:
    with KubeClient(build_api_client(host="https://127.0.0.1:1", api_key="x", validate_certs=False)) as client:
        client.api_client.configuration.retries = 0
        with pytest.raises(KubeApiError, match=r"^Cannot read node gpu-0: .*Connection refused") as failure:
            client.get_node("gpu-0")
    assert failure.value.status is None
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\ncontexts: []\n")
    with pytest.raises(KubeApiError, match="^Cannot load the Kubernetes client configuration: "):
        build_api_client(kubeconfig=str(broken), context="missing")


def test_no_kubeconfig_and_no_cluster_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes.config import kube_config

    if not kube_config.KUBE_CONFIG_DEFAULT_LOCATION.startswith("~"):
        pytest.skip("KUBECONFIG was set when the kubernetes client was imported")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeApiError) as failure:
        build_api_client()
    assert str(failure.value).startswith("Cannot load the Kubernetes client configuration: no usable default kubeconfig (")
    assert str(failure.value).endswith("; set kubeconfig, or host and api_key")
