"""Test-only callback: records every task result as one JSON line.

Integration tests read what modules returned (changed, failed, msg, diff, facts) from this file
instead of scraping the human-readable output of ansible-playbook.
"""
from __future__ import annotations

import json
import os
import signal
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: gpufleet_results
type: aggregate
short_description: write task results as JSON lines to $GPUFLEET_RESULTS_FILE
description: Test harness callback of the gpufleet.mig integration tests.
requirements:
  - enabled in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "gpufleet_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("GPUFLEET_RESULTS_FILE")

    def _record(self, result, status):
        if not self._path:
            return
        payload = dict(result._result)
        payload.pop("invocation", None)
        record = {
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "action": result._task.action,
            "status": status,
            "result": payload,
        }
        with open(self._path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record, default=str) + "\n")
        # GPUFLEET_KILL_AFTER_TASK: the controller dies (SIGKILL, no cleanup) right after that task finished on a host,
        # as when an operator's laptop or the AWX pod is lost mid-rollout.
        kill_after = os.environ.get("GPUFLEET_KILL_AFTER_TASK")
        if kill_after and status != "skipped" and (record["task"] == kill_after or record["task"].endswith(" : " + kill_after)):
            os.kill(os.getpid(), signal.SIGKILL)
        # GPUFLEET_STOP_AFTER_TASK + GPUFLEET_STOP_PID: that process (the API server) is stopped (SIGSTOP) once, right
        # after the task finished, as when the API server hangs or a load balancer black-holes it; the test continues it.
        stop_after = os.environ.get("GPUFLEET_STOP_AFTER_TASK")
        if stop_after and status != "skipped" and (record["task"] == stop_after or record["task"].endswith(" : " + stop_after)):
            del os.environ["GPUFLEET_STOP_AFTER_TASK"]
            os.kill(int(os.environ["GPUFLEET_STOP_PID"]), signal.SIGSTOP)
            with open(self._path, "a", encoding="utf-8") as stream:
                stream.write(json.dumps({"host": record["host"], "task": "(API server stopped)", "action": "", "status": "stopped",
                                         "result": {"at": time.time()}}) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")
