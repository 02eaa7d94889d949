# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Options that tell a module how to reach the Kubernetes API server.

    Named as kubernetes.core names them, with the same C(K8S_AUTH_*) environment variables, so a play that
    already drives kubernetes.core modules needs no new variables. The spec lives in
    C(plugins/module_utils/_k8s_auth.py) (C(k8s_auth_argument_spec)).
    """

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
      - When neither O(kubeconfig) nor O(host) is given, the client reads the default kubeconfig
        (C(KUBECONFIG), then C(~/.kube/config)) and falls back to the in-cluster service account.
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable.
    type: raw
  context:
    description:
      - The name of a context found in the kubeconfig. The current context when not set.
      - Can also be set with the E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the API server, for example V(https://10.0.0.1:6443). Overrides the server of the kubeconfig.
      - Can also be set with the E(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - Bearer token used to authenticate with the API server. Overrides the credentials of the kubeconfig.
      - Can also be set with the E(K8S_AUTH_API_KEY) environment variable.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - Can also be set with the E(K8S_AUTH_VERIFY_SSL) environment variable.
    type: bool
    default: true
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to the CA certificate (full chain) that signed the API server's certificate. Overrides the CA of the kubeconfig.
      - Can also be set with the E(K8S_AUTH_SSL_CA_CERT) environment variable.
    type: path
    aliases: [ssl_ca_cert]
  request_timeout:
    description:
      - Bounds, in seconds, of every request to the API server. A request whose connection is not made within
        O(request_timeout.connect) (tried up to three times) or that waits longer than O(request_timeout.read)
        for data fails the task, so a stalled or unreachable API server cannot hang a rollout.
      - The collection's playbooks set it for every cluster module from the variable C(k8s_request_timeout).
    type: dict
    default: {connect: 10, read: 60}
    suboptions:
      connect:
        description: Seconds to establish the connection.
        type: float
        default: 10
      read:
        description: Seconds to wait for each read of the response.
        type: float
        default: 60
notes:
  - To avoid certificate validation errors when O(validate_certs=true), provide the full certificate chain of the
    API server through O(ca_cert) or the kubeconfig.
"""
