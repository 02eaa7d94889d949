"""report_files.py: a run's report directory, its two files and the latest link, written in one step."""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._report_files import ReportFileError, write_report

REPORT = {"generated": "2026-12-04T09:00:00Z", "strategy": "mixed", "check_mode": False, "rollout_id": "run-1",
          "totals": {"nodes": 1, "unchanged": 1}, "nodes": []}


def test_a_run_writes_both_files_and_points_latest_at_its_directory(tmp_path):
    result = write_report(REPORT, str(tmp_path / "reports"), "run-1")
    run_dir = tmp_path / "reports" / "run-1"
    assert result["changed"] and result["path"] == str(run_dir)
    assert json.loads((run_dir / "fleet-report.json").read_text()) == REPORT
    assert (run_dir / "fleet-report.md").read_text().startswith("# MIG fleet report")
    assert os.readlink(tmp_path / "reports" / "latest") == "run-1"
    assert (run_dir / "fleet-report.json").stat().st_mode & 0o777 == 0o644
    # The same report again changes nothing; a second run moves latest and leaves the first run's files.
    assert write_report(REPORT, str(tmp_path / "reports"), "run-1")["changed"] is False
    second = write_report(dict(REPORT, rollout_id="run-2"), str(tmp_path / "reports"), "run-2")
    assert second["diff"] == {"before": {"latest": "run-1", "written": []},
                              "after": {"latest": "run-2", "written": ["fleet-report.json", "fleet-report.md"]}}
    assert os.readlink(tmp_path / "reports" / "latest") == "run-2"
    assert json.loads((run_dir / "fleet-report.json").read_text())["rollout_id"] == "run-1"
    assert sorted(os.listdir(tmp_path / "reports")) == ["latest", "run-1", "run-2"]


def test_check_mode_says_what_it_would_write_and_writes_nothing(tmp_path):
    result = write_report(REPORT, str(tmp_path / "reports"), "run-1", check_mode=True)
    assert result["changed"] and len(result["written"]) == 2
    assert not (tmp_path / "reports").exists()


def test_a_latest_that_is_not_a_link_and_a_bad_run_name_are_refused_before_writing(tmp_path):
    (tmp_path / "latest").mkdir()
    with pytest.raises(ReportFileError, match="is not a link"):
        write_report(REPORT, str(tmp_path), "run-1")
    assert not (tmp_path / "run-1").exists()
    for name in ("latest", "../elsewhere", "", ".."):
        with pytest.raises(ReportFileError, match="run name"):
            write_report(REPORT, str(tmp_path / "other"), name)
    assert not (tmp_path / "other").exists()


def test_latest_false_leaves_the_link_alone(tmp_path):
    write_report(REPORT, str(tmp_path), "run-1")
    result = write_report(REPORT, str(tmp_path), "rehearsal", point_latest=False)
    assert result["latest"] is None and os.readlink(tmp_path / "latest") == "run-1"
