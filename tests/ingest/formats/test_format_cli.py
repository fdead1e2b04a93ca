"""`distillguard ingest --format ... --fill ...` from the command line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.ingest import Workspace

LOGS = Path(__file__).resolve().parents[2] / "fixtures" / "logs"


def test_ingest_reads_provider_logs_by_format_and_fills_what_they_lack(tmp_path):
    ws = tmp_path / "ws"
    args = ["ingest", "--workspace", str(ws), "--format", "auto",
            "--events", str(LOGS / "openai" / "batch_input.jsonl"), "--events", str(LOGS / "openai" / "batch_output.jsonl"),
            "--fill", "account_id=org-batch-7"]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "openai/jsonl" in result.output and "request_paired_with_result 3" in result.output
    assert Workspace(ws).counts()["events"] == 3


def test_a_bad_format_or_fill_is_refused_in_one_line_before_anything_is_written(tmp_path):
    ws = tmp_path / "ws"
    events = str(LOGS / "openai" / "chat_log.jsonl")
    for extra, says in ((["--format", "splunk"], "unknown format 'splunk'"),
                        (["--fill", "colour=blue"], "--fill colour: not an events field"),
                        (["--fill", "account_id"], "expected FIELD=VALUE")):
        result = CliRunner().invoke(app, ["ingest", "--workspace", str(ws), "--events", events, *extra],
                                    terminal_width=200)
        assert result.exit_code != 0 and says in result.output, result.output
        assert not ws.exists()
