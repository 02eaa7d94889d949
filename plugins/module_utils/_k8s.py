# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Kubernetes API seam: the only file of the collection that imports the ``kubernetes`` client.

* The shared auth options (doc fragment ``gpufleet.mig.k8s_auth``) are specified in ``_k8s_auth.py``, named as
  kubernetes.core names them, with the same ``K8S_AUTH_*`` environment fallbacks; that file imports no client.
* ``build_api_client(...)`` / ``KubeClient.from_params(module.params)`` turn those options into a client.
* ``KubeClient`` wraps the few calls the modules make and speaks plain API JSON (camelCase dicts, exactly
  what the server sent), so the pure logic in ``_drain.py`` and friends never sees client model classes.
  Reading raw JSON (``_preload_content=False``) also keeps the code independent of the client's model
  generator, which changed shape between client majors.
* Every API failure becomes ``KubeApiError`` (a ``MigError``) with the HTTP status, the Status reason and
  message, and the action that failed; connection and configuration problems use status ``None``.

Credentials: the bearer token goes into the client configuration only, never into messages or results.
"""

from __future__ import annotations

import json
import os
import traceback
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

# KubeApiError lives with the other domain errors, so modules that never reach the API need not import this seam.
from ansible_collections.gpufleet.mig.plugins.module_utils._errors import KubeApiError
# The auth options live without the client, for modules that reach the API only on some runs.
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_auth import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    try:
        from kubernetes.client.exceptions import ApiException
    except ImportError:  # pragma: no cover - clients before 12.0 only had the rest module
        from kubernetes.client.rest import ApiException

    # The client's transport; its errors (refused connection, TLS failure after retries) share this base.
    from urllib3.exceptions import HTTPError as TransportError
    from urllib3.util.retry import Retry

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the host that runs the module
    k8s_client = None
    k8s_config = None
    ApiException = None
    TransportError = None
    Retry = None
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

_PATCH_STRATEGIC = "application/strategic-merge-patch+json"


def request_timeout_pair(request_timeout: Optional[Dict[str, Any]] = None) -> Tuple[float, float]:
    """``(connect, read)`` seconds from the ``request_timeout`` option; both must be positive."""
    request_timeout = request_timeout or {}
    connect = request_timeout.get("connect")
    read = request_timeout.get("read")
    connect = DEFAULT_CONNECT_TIMEOUT if connect is None else float(connect)
    read = DEFAULT_READ_TIMEOUT if read is None else float(read)
    if connect <= 0 or read <= 0:
        raise KubeApiError(
            "configure the Kubernetes client",
            api_message="request_timeout.connect and request_timeout.read must be positive numbers of seconds (k8s_request_timeout)",
        )
    return connect, read


def _api_error(action: str, error: Exception) -> KubeApiError:
    """Turn an ApiException into a KubeApiError, using the Status object in the body when there is one."""
    status = getattr(error, "status", None)
    reason = getattr(error, "reason", None)
    message = None
    body = getattr(error, "body", None)
    if body:
        try:
            document = json.loads(body)
        except (TypeError, ValueError):
            message = body if isinstance(body, str) else None
        else:
            if isinstance(document, dict):
                message = document.get("message")
                reason = document.get("reason") or reason
                # A PDB refusal explains itself in details.causes ("The disruption budget X needs 2 healthy pods...").
                causes = [cause.get("message") for cause in (document.get("details") or {}).get("causes") or [] if cause.get("message")]
                if causes and message:
                    message = "%s (%s)" % (message, "; ".join(causes))
    if not status:
        # ApiException without a status wraps a client-side failure (bad URL, TLS, refused connection).
        return KubeApiError(action, None, None, message or str(error))
    return KubeApiError(action, status, reason, message)


def _transport_text(error: Exception) -> str:
    # MaxRetryError's own text repeats the URL and pool; its reason names the real cause.
    cause = getattr(error, "reason", None) or error
    text = "%s: %s" % (type(cause).__name__, cause)
    if isinstance(cause, TimeoutError) or "timed out" in str(cause).lower():
        # urllib3's timeout errors are TimeoutError in urllib3 2 only; the text says it in every version.
        text += ("; the API server did not answer within request_timeout (k8s_request_timeout in the playbook): "
                 "check that it is up and reachable, or raise the timeout for a slow one")
    return text


def _client_configuration(kubeconfig: Any, context: Optional[str], host: Optional[str], api_key: Optional[str],
                          validate_certs: Optional[bool], ca_cert: Optional[str]) -> Any:
    configuration = k8s_client.Configuration()
    if isinstance(kubeconfig, dict):
        k8s_config.load_kube_config_from_dict(kubeconfig, context=context, client_configuration=configuration)
    elif kubeconfig:
        path = os.path.expanduser(str(kubeconfig))
        if not os.path.isfile(path):
            # The client would only say "Invalid kube-config file. No configuration found."
            raise k8s_config.ConfigException("the kubeconfig file %s does not exist or is not a file (set k8s_kubeconfig)" % path)
        k8s_config.load_kube_config(config_file=path, context=context, client_configuration=configuration, persist_config=False)
    elif not host:
        # As kubernetes.core does: the default kubeconfig (KUBECONFIG, ~/.kube/config), else in-cluster.
        try:
            k8s_config.load_kube_config(context=context, client_configuration=configuration, persist_config=False)
        except (k8s_config.ConfigException, OSError) as kubeconfig_error:
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
            except k8s_config.ConfigException as incluster_error:
                raise k8s_config.ConfigException(
                    "no usable default kubeconfig (%s) and no in-cluster service account (%s); set kubeconfig, or host and api_key"
                    % (kubeconfig_error, incluster_error)
                )
    if host:
        configuration.host = host
    if api_key:
        configuration.api_key = {"authorization": "Bearer " + api_key}
    if ca_cert:
        configuration.ssl_ca_cert = ca_cert
    if validate_certs is not None:
        configuration.verify_ssl = bool(validate_certs)
    # A refused or reset connection is worth two more tries; a read that timed out is not re-sent, so one
    # request costs at most 3 x connect + read seconds.
    configuration.retries = Retry(total=2, connect=2, read=0, status=0, other=0, backoff_factor=0.5, raise_on_status=False)
    return configuration


def build_api_client(kubeconfig: Any = None, context: Optional[str] = None, host: Optional[str] = None, api_key: Optional[str] = None,
                     validate_certs: bool = True, ca_cert: Optional[str] = None) -> Any:
    """An ``ApiClient`` from the auth options; explicit host/api_key/ca_cert/validate_certs override the kubeconfig.

    ``kubeconfig`` is a path or an already parsed kubeconfig mapping. Raises ``KubeApiError`` (status None)
    when the kubernetes library is missing or the configuration cannot be loaded.
    """
    if not HAS_KUBERNETES:
        raise KubeApiError("configure the Kubernetes client", api_message="the Python library kubernetes is not installed")
    try:
        configuration = _client_configuration(kubeconfig, context, host, api_key, validate_certs, ca_cert)
    except k8s_config.ConfigException as error:
        raise KubeApiError("load the Kubernetes client configuration", api_message=str(error))
    except (OSError, ValueError, TypeError) as error:
        raise KubeApiError("load the Kubernetes client configuration", api_message="%s: %s" % (type(error).__name__, error))
    return k8s_client.ApiClient(configuration)


def _quoted(segment: str) -> str:
    return quote(str(segment), safe="")


def _pod_path(namespace: str, name: str) -> str:
    return "/api/v1/namespaces/%s/pods/%s" % (_quoted(namespace), _quoted(name))


def _lease_path(namespace: str, name: Optional[str] = None) -> str:
    path = "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % _quoted(namespace)
    return path if name is None else "%s/%s" % (path, _quoted(name))


def _decode(response: Any) -> Any:
    data = response.data
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data) if data else {}


class KubeClient:
    """The calls gpufleet.mig makes to the API server, returning API JSON dicts."""

    def __init__(self, api_client: Any, request_timeout: Optional[Dict[str, Any]] = None) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout_pair(request_timeout)

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> KubeClient:
        """A client from a module's params (the ``k8s_auth_argument_spec()`` options)."""
        return cls(
            build_api_client(
                kubeconfig=params.get("kubeconfig"),
                context=params.get("context"),
                host=params.get("host"),
                api_key=params.get("api_key"),
                validate_certs=params.get("validate_certs", True),
                ca_cert=params.get("ca_cert"),
            ),
            request_timeout=params.get("request_timeout"),
        )

    def close(self) -> None:
        self.api_client.close()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _request(self, action: str, method: str, path: str, query: Optional[Dict[str, Any]] = None,
                 body: Any = None, content_type: str = "application/json") -> Any:
        """One API request through the client's configuration (server, TLS, token, exec credentials), bounded by
        the request timeout; a non-2xx answer raises KubeApiError.

        The typed API classes (``CoreV1Api``...) are not used: since the client's models became pydantic classes
        (kubernetes 35), loading them costs about a second of CPU per process, on every module that reaches the
        API, while the calls here send and read plain JSON.
        """
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        query_params = [(key, value) for key, value in (query or {}).items() if value is not None]
        try:
            if hasattr(self.api_client, "param_serialize"):
                request = self.api_client.param_serialize(method=method, resource_path=path, query_params=query_params,
                                                          header_params=headers, body=body, auth_settings=["BearerToken"])
                response = self.api_client.call_api(*request, _request_timeout=self.request_timeout)
                response.read()
                if not 200 <= response.status <= 299:
                    raise ApiException(http_resp=response)
            else:
                # Clients generated by python-legacy (kubernetes 34 and earlier): the REST layer raises non-2xx answers.
                response = self.api_client.call_api(path, method, query_params=query_params, header_params=headers, body=body,
                                                    auth_settings=["BearerToken"], _preload_content=False,
                                                    _return_http_data_only=True, _request_timeout=self.request_timeout)
        except ApiException as error:
            raise _api_error(action, error)
        except (TransportError, OSError, ValueError) as error:
            raise KubeApiError(action, api_message=_transport_text(error))
        return response

    def _call(self, action: str, method: str, path: str, query: Optional[Dict[str, Any]] = None, body: Any = None,
              content_type: str = "application/json") -> Any:
        """``_request``, its answer decoded from JSON."""
        return _decode(self._request(action, method, path, query, body, content_type))

    # Nodes -------------------------------------------------------------------------------------------

    def get_node(self, name: str) -> Dict[str, Any]:
        return self._call("read node %s" % name, "GET", "/api/v1/nodes/%s" % _quoted(name))

    def list_nodes(self, label_selector: Optional[str] = None) -> List[Dict[str, Any]]:
        return self._call("list nodes", "GET", "/api/v1/nodes", {"labelSelector": label_selector or None}).get("items") or []

    def patch_node(self, name: str, patch: Dict[str, Any]) -> Dict[str, Any]:
        """Strategic merge patch of a node; a ``None`` label/annotation value removes that key."""
        return self._call("patch node %s" % name, "PATCH", "/api/v1/nodes/%s" % _quoted(name), body=patch,
                          content_type=_PATCH_STRATEGIC)

    # Pods --------------------------------------------------------------------------------------------

    def list_pods(self, namespace: Optional[str] = None, label_selector: Optional[str] = None,
                  field_selector: Optional[str] = None) -> List[Dict[str, Any]]:
        query = {"labelSelector": label_selector or None, "fieldSelector": field_selector or None}
        if namespace:
            result = self._call("list pods in namespace %s" % namespace, "GET", "/api/v1/namespaces/%s/pods" % _quoted(namespace), query)
        else:
            result = self._call("list pods", "GET", "/api/v1/pods", query)
        return result.get("items") or []

    def pods_on_node(self, node_name: str, label_selector: Optional[str] = None) -> List[Dict[str, Any]]:
        """Every pod bound to the node, in all namespaces (``spec.nodeName`` field selector, as kubectl drain lists them)."""
        return self.list_pods(label_selector=label_selector, field_selector="spec.nodeName=%s" % node_name)

    def get_pod(self, namespace: str, name: str) -> Optional[Dict[str, Any]]:
        """The pod, or ``None`` when it does not exist."""
        try:
            return self._call("read pod %s/%s" % (namespace, name), "GET", _pod_path(namespace, name))
        except KubeApiError as error:
            if error.not_found:
                return None
            raise

    def create_pod(self, namespace: str, body: Dict[str, Any]) -> Dict[str, Any]:
        return self._call("create pod in namespace %s" % namespace, "POST", "/api/v1/namespaces/%s/pods" % _quoted(namespace), body=body)

    def delete_pod(self, namespace: str, name: str, grace_period_seconds: Optional[int] = None) -> bool:
        """Delete without eviction (bypasses PodDisruptionBudgets); ``False`` when the pod was already gone."""
        try:
            self._call("delete pod %s/%s" % (namespace, name), "DELETE", _pod_path(namespace, name),
                       {"gracePeriodSeconds": grace_period_seconds})
        except KubeApiError as error:
            if error.not_found:
                return False
            raise
        return True

    def evict_pod(self, namespace: str, name: str, grace_period_seconds: Optional[int] = None, dry_run: bool = False) -> bool:
        """POST a policy/v1 Eviction. ``False`` when the pod was already gone; 429 (PDB) raises KubeApiError."""
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
        if grace_period_seconds is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": grace_period_seconds}
        try:
            self._call("evict pod %s/%s" % (namespace, name), "POST", _pod_path(namespace, name) + "/eviction",
                       {"dryRun": "All" if dry_run else None}, body=body)
        except KubeApiError as error:
            if error.not_found:
                return False
            raise
        return True

    def read_pod_log(self, namespace: str, name: str, container: Optional[str] = None, tail_lines: Optional[int] = None) -> str:
        response = self._request("read the log of pod %s/%s" % (namespace, name), "GET", _pod_path(namespace, name) + "/log",
                                 {"container": container or None, "tailLines": tail_lines})
        data = response.data
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")

    # Namespaces --------------------------------------------------------------------------------------

    def get_namespace(self, name: str) -> Optional[Dict[str, Any]]:
        try:
            return self._call("read namespace %s" % name, "GET", "/api/v1/namespaces/%s" % _quoted(name))
        except KubeApiError as error:
            if error.not_found:
                return None
            raise

    # Leases ------------------------------------------------------------------------------------------

    def get_lease(self, namespace: str, name: str) -> Optional[Dict[str, Any]]:
        """The Lease, or ``None`` when it does not exist."""
        try:
            return self._call("read lease %s/%s" % (namespace, name), "GET", _lease_path(namespace, name))
        except KubeApiError as error:
            if error.not_found:
                return None
            raise

    def create_lease(self, namespace: str, body: Dict[str, Any]) -> Dict[str, Any]:
        return self._call("create lease %s/%s" % (namespace, body["metadata"]["name"]), "POST", _lease_path(namespace), body=body)

    def replace_lease(self, namespace: str, name: str, body: Dict[str, Any]) -> Dict[str, Any]:
        """PUT the lease; the body's ``metadata.resourceVersion`` makes a concurrent write answer 409."""
        return self._call("replace lease %s/%s" % (namespace, name), "PUT", _lease_path(namespace, name), body=body)
