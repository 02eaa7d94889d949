# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report's files: one directory per run (JSON and Markdown) and ``latest`` pointing at the last one.

Plain Python for the gpufleet.mig.mig_report module and its unit tests. Each file is replaced atomically (a reader
never sees half a report), and ``latest`` is swung to the new run in one rename.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, List

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError
from ansible_collections.gpufleet.mig.plugins.module_utils._fleet_report import render_markdown

LATEST = "latest"
JSON_NAME = "fleet-report.json"
MARKDOWN_NAME = "fleet-report.md"


class ReportFileError(MigError):
    """The report cannot be written where it was asked to go."""


def report_texts(report: Dict[str, Any]) -> Dict[str, str]:
    """The content of each file of a run's report, by file name."""
    return {
        JSON_NAME: json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        MARKDOWN_NAME: render_markdown(report),
    }


def _check_run_name(run_name: str) -> None:
    if not run_name or run_name in (".", "..", LATEST) or "/" in run_name or "\0" in run_name:
        raise ReportFileError("the report's run name must be one directory name other than %r (got %r)" % (LATEST, run_name))


def _read(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _replace_file(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    descriptor, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise


def _point_latest(report_dir: str, run_name: str) -> None:
    temporary = os.path.join(report_dir, ".%s.%d" % (LATEST, os.getpid()))
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(run_name, temporary)
    os.replace(temporary, os.path.join(report_dir, LATEST))


def write_report(report: Dict[str, Any], report_dir: str, run_name: str, point_latest: bool = True,
                 check_mode: bool = False) -> Dict[str, Any]:
    """Write ``report_dir/run_name/`` (JSON and Markdown) and point ``report_dir/latest`` at it.

    Returns ``changed``, ``path`` (the run's directory), ``written`` (the files whose content changed), ``latest``
    and a ``diff`` of what changed (file names and the ``latest`` target). Check mode writes nothing.
    """
    _check_run_name(run_name)
    run_dir = os.path.join(report_dir, run_name)
    latest = os.path.join(report_dir, LATEST)
    if os.path.lexists(latest) and not os.path.islink(latest):
        raise ReportFileError("%s exists and is not a link: the report will not replace it (move it, or set mig_report_dir)" % latest)
    if os.path.lexists(run_dir) and not os.path.isdir(run_dir):
        raise ReportFileError("%s exists and is not a directory (set mig_report_dir)" % run_dir)
    written: List[str] = []
    texts = report_texts(report)
    for name, text in texts.items():
        if _read(os.path.join(run_dir, name)) != text:
            written.append(os.path.join(run_dir, name))
    latest_before = os.readlink(latest) if os.path.islink(latest) else None
    repoint = point_latest and latest_before != run_name
    if not check_mode:
        os.makedirs(run_dir, mode=0o755, exist_ok=True)
        for path in written:
            _replace_file(path, texts[os.path.basename(path)])
        if repoint:
            _point_latest(report_dir, run_name)
    return {
        "changed": bool(written) or repoint,
        "path": run_dir,
        "written": written,
        "latest": latest if point_latest else None,
        "diff": {
            "before": {"latest": latest_before, "written": []},
            "after": {"latest": run_name if point_latest else latest_before, "written": [os.path.basename(path) for path in written]},
        },
    }
