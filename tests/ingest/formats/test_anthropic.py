"""Anthropic logs (ingest/formats/anthropic.py) on sample files written from the API reference."""

from __future__ import annotations

from datetime import datetime, timezone

from log_helpers import FIXTURES, rows, sha

from distillguard.ingest import Workspace, ingest

LOGS = FIXTURES / "anthropic"
SIG1 = "EqQBCkYIBxgCKkD" + "x7Rk" * 50 + "GAE="
SIG2 = "EuoBCkYIBxgCKkB" + "p2Lm" * 50 + "GAE="
REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4a" + "Zq0v" * 40


def test_a_messages_log_record_maps_every_field(ws):
    ingest(events=[LOGS / "messages_log.jsonl"], workspace=ws, log_format="anthropic")
    events = {r["request_id"]: r for r in rows(Workspace(ws).events_sql())}
    e = events["req_011CQk4xQ2"]
    assert (e["account_id"], e["client_ip"], e["user_agent"]) == ("acct-fin-01", "192.0.2.14", "anthropic-sdk-python/0.52.0")
    assert e["ts"] == datetime(2026, 3, 3, 14, 0, 5, tzinfo=timezone.utc)
    assert e["prompt"] == "What's the weather in Lisbon? Reason step by step about what to pack."
    assert e["system"] == "You are an expert tutor. Always explain your reasoning in full."  # text blocks
    assert e["response"] == "Let me check the weather."  # text blocks only: not the thinking, not the tool call
    assert (e["input_tokens"], e["output_tokens"]) == (420 + 1000 + 24, 310)  # cache reads and writes are input
    assert (e["max_tokens"], e["thinking"], e["tools"], e["status"]) == (16000, True, 1, "ok")
    assert e["model"] == "claude-sonnet-4-5"


def test_a_tool_loop_turn_keeps_the_task_as_its_prompt_and_statuses_follow_the_response(ws):
    report = ingest(events=[LOGS / "messages_log.jsonl"], workspace=ws, log_format="anthropic")
    events = {r["request_id"]: r for r in rows(Workspace(ws).events_sql())}
    # The last user turn holds only a tool_result: the prompt is the task that started the loop.
    assert events["req_011CQk4yR7"]["prompt"].startswith("What's the weather in Lisbon?")
    assert events["req_011CQk4yR7"]["response"] == "It is 18C with light rain: pack a light jacket and an umbrella."
    assert events["req_011CQk5bbb"]["status"] == "refused" and events["req_011CQk5bbb"]["response"] is None
    assert events["req_011CQk5ccc"]["status"] == "error"
    # An image-only prompt has no text and no account: quarantined, with every problem named.
    (q,) = rows(Workspace(ws).quarantine_sql())
    assert q["reason"] == "missing_required" and q["source_line"] == 6
    assert "account_id: required" in q["detail"] and "prompt: required" in q["detail"]
    assert report.events.rows_ingested == 5


def test_thinking_signatures_issued_to_one_account_and_sent_back_by_another(ws):
    ingest(events=[LOGS / "messages_log.jsonl"], workspace=ws, log_format="anthropic")
    blobs = {(r["account_id"], r["direction"], r["blob"])
             for r in rows(f"SELECT * FROM ({Workspace(ws).reasoning_sql()})")}
    assert blobs == {("acct-fin-01", "issued", sha(SIG1)), ("acct-fin-02", "replayed", sha(SIG1)),
                     ("acct-fin-02", "issued", sha(SIG2)), ("acct-fin-02", "issued", sha(REDACTED))}


def test_a_message_batch_is_paired_and_fills_stand_in_for_what_results_lack(ws):
    files = [LOGS / "batch_requests.jsonl", LOGS / "batch_results.jsonl"]
    without_time = ingest(events=files, workspace=ws, log_format="anthropic")
    assert without_time.events.rows_ingested == 0
    assert without_time.events.quarantine_reasons == {"missing_required": 3}  # results carry no time
    report = ingest(events=files, workspace=ws, log_format="anthropic", fills={"ts": "2026-03-04T08:00:00Z"})
    assert report.events.skipped_files == 0  # files whose rows were all quarantined may be given again
    events = sorted(rows(Workspace(ws).events_sql()), key=lambda e: e["prompt"])
    assert [(e["account_id"], e["status"]) for e in events] == \
        [("batch-owner-9", "error"), ("batch-owner-9", "error"), ("batch-owner-9", "ok")]
    ok = next(e for e in events if e["status"] == "ok")
    assert ok["request_id"] == "msg_014VwiXbi91y3JMjcpyGBHX5" and ok["response"].startswith("Sunlight scatters")
    assert ok["ts"] == datetime(2026, 3, 4, 8, tzinfo=timezone.utc) and ok["model"] == "claude-haiku-4-5"
    assert report.events.skipped_records == {"request_paired_with_result": 3}
