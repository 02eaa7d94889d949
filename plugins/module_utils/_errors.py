# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Domain errors of gpufleet.mig.

Modules catch ``MigError`` and hand ``str(error)`` to ``fail_json``; every message names the object, the
cause and, where one exists, the option or action that fixes it. Extra context travels in attributes so a
module can return it in its own result keys instead of parsing the message.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional


class MigError(Exception):
    """Base class of every error gpufleet.mig raises on purpose."""


class TaskError(MigError):
    """A failure a module reports with structured result keys besides ``msg``.

    ``details`` holds them (for example ``changed``, what was done and what the target looks like now,
    ``nvml_call`` / ``nvml_code``); a module passes them to ``fail_json`` as they are.
    """

    def __init__(self, message: str, **details: Any) -> None:
        super(TaskError, self).__init__(message)
        self.details = details


class ProfileError(MigError):
    """A MIG profile string is malformed, or a profile catalog cannot answer a lookup."""


class ConfigError(MigError):
    """A desired-layout source (mig-parted config file, built-in config name, inline layout) is invalid.

    ``config`` and ``entry`` locate the problem in a mig-parted file (entry is 0-based), so a module can
    point the user at the exact place.
    """

    def __init__(self, message: str, config: Optional[str] = None, entry: Optional[int] = None) -> None:
        super(ConfigError, self).__init__(message)
        self.config = config
        self.entry = entry


class LayoutError(MigError):
    """A desired set of MIG devices cannot be realised on a GPU.

    ``reason`` is a short machine-friendly cause (``unknown_profile``, ``instance_count``,
    ``memory_slices``, ``compute_slices``, ``media_engines``, ``placement``, ``empty_catalog``);
    ``largest_fitting`` lists MIG devices of the request that would fit together (a hint, not a plan).
    """

    def __init__(self, message: str, reason: Optional[str] = None, largest_fitting: Optional[Iterable[str]] = None) -> None:
        super(LayoutError, self).__init__(message)
        self.reason = reason
        self.largest_fitting = tuple(largest_fitting or ())


class StrategyError(MigError):
    """A layout is incompatible with the device plugin's MIG strategy (none / single / mixed)."""


class NvmlCallError(MigError):
    """An NVML call failed.

    Carries the C-level call name, the NVML return code and NVML's own error text, so callers can
    branch on ``code`` (e.g. 19 IN_USE, 23 INSUFFICIENT_RESOURCES) without parsing strings.
    """

    def __init__(self, call: str, code: int, text: str, gpu_index: Optional[int] = None, detail: Optional[str] = None) -> None:
        self.call = call
        self.code = code
        self.text = text
        self.gpu_index = gpu_index
        self.detail = detail
        where = "" if gpu_index is None else " on GPU %s" % gpu_index
        what = "" if not detail else " (%s)" % detail
        super(NvmlCallError, self).__init__(
            "%s failed%s%s: %s (NVML error %s)" % (call, where, what, text, code)
        )

    def failure_keys(self) -> Dict[str, Any]:
        """The result keys a failed NVML call adds, the same in every node module."""
        return {"nvml_call": self.call, "nvml_code": self.code, "nvml_text": self.text, "gpu_index": self.gpu_index}


HTTP_NOT_FOUND = 404
HTTP_TOO_MANY_REQUESTS = 429  # the Eviction API's answer while a PodDisruptionBudget forbids the disruption


class KubeApiError(MigError):
    """A Kubernetes API call failed, or no client could be configured.

    ``status`` is the HTTP status (``None`` for connection/configuration failures), ``reason`` the Status
    ``reason`` (``NotFound``, ``TooManyRequests``...), ``api_message`` the server's own message and
    ``action`` what was attempted (``evict pod gpu/train-0``).
    """

    def __init__(self, action: str, status: Optional[int] = None, reason: Optional[str] = None, api_message: Optional[str] = None) -> None:
        self.action = action
        self.status = status
        self.reason = reason
        self.api_message = api_message
        if status is None:
            text = "Cannot %s: %s" % (action, api_message)
        else:
            text = "Cannot %s: the API server answered %s %s: %s" % (action, status, reason or "", api_message or "")
        super(KubeApiError, self).__init__(text.rstrip(": "))

    @property
    def not_found(self) -> bool:
        return self.status == HTTP_NOT_FOUND

    @property
    def too_many_requests(self) -> bool:
        return self.status == HTTP_TOO_MANY_REQUESTS
