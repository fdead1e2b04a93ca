"""The report and export commands, as an analyst runs them."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from distillguard.cli import app


def test_every_export_and_the_report_are_written_from_a_scan_folder(scanned, tmp_path):
    runner = CliRunner()
    for args, name in ((["report"], "report.html"), (["export", "campaigns"], "campaigns.json"),
                       (["export", "actions"], "actions.csv"), (["export", "misp", "--producer", "Test Lab"], "e.json"),
                       (["export", "stix", "--producer", "Test Lab", "--tlp", "green"], "b.json")):
        result = runner.invoke(app, [*args, str(scanned.scan_dir), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert (tmp_path / name).stat().st_size > 0 and name in "".join(result.output.split())
    bundle = json.loads((tmp_path / "b.json").read_text())
    assert any(o["type"] == "marking-definition" and o.get("name", "").upper().endswith("GREEN") for o in bundle["objects"])


def test_a_folder_that_is_not_a_scan_is_refused_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["export", "actions", str(tmp_path), "--out", str(tmp_path / "a.csv")])
    assert result.exit_code == 2 and "not a scan folder" in " ".join(result.output.split())
    assert not (tmp_path / "a.csv").exists()
