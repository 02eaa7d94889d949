# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The options that say how to reach the Kubernetes API server, without the ``kubernetes`` client.

A module that takes these options but reaches the API only on some runs (``helm_release`` takes its cluster lock
only for a release that must change) imports them from here, so the runs that never reach the API do not pay for
importing the client (about 0.3 s of CPU). ``_k8s.py`` builds the client from them.
"""

from __future__ import annotations

from typing import Any, Dict

from ansible.module_utils.basic import env_fallback

# Environment variables kubernetes.core reads for the same options (doc fragment k8s_auth_options).
AUTH_ENVIRONMENT = {
    "kubeconfig": "K8S_AUTH_KUBECONFIG",
    "context": "K8S_AUTH_CONTEXT",
    "host": "K8S_AUTH_HOST",
    "api_key": "K8S_AUTH_API_KEY",
    "validate_certs": "K8S_AUTH_VERIFY_SSL",
    "ca_cert": "K8S_AUTH_SSL_CA_CERT",
}


# Every request is bounded: a stalled or black-holed API server fails the call instead of hanging the task.
# The read bound is per socket read, so it also bounds a response that stops half way.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0


def k8s_auth_argument_spec() -> Dict[str, Dict[str, Any]]:
    """Argument spec of the shared auth options; a fresh dict on every call, so callers may extend it."""
    return {
        "kubeconfig": {"type": "raw", "fallback": (env_fallback, [AUTH_ENVIRONMENT["kubeconfig"]])},
        "context": {"type": "str", "fallback": (env_fallback, [AUTH_ENVIRONMENT["context"]])},
        "host": {"type": "str", "fallback": (env_fallback, [AUTH_ENVIRONMENT["host"]])},
        "api_key": {"type": "str", "no_log": True, "fallback": (env_fallback, [AUTH_ENVIRONMENT["api_key"]])},
        "validate_certs": {
            "type": "bool",
            "default": True,
            "aliases": ["verify_ssl"],
            "fallback": (env_fallback, [AUTH_ENVIRONMENT["validate_certs"]]),
        },
        "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"], "fallback": (env_fallback, [AUTH_ENVIRONMENT["ca_cert"]])},
        "request_timeout": {
            "type": "dict",
            "default": {"connect": DEFAULT_CONNECT_TIMEOUT, "read": DEFAULT_READ_TIMEOUT},
            "options": {
                "connect": {"type": "float", "default": DEFAULT_CONNECT_TIMEOUT},
                "read": {"type": "float", "default": DEFAULT_READ_TIMEOUT},
            },
        },
    }
