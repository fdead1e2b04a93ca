"""OpenAI logs (ingest/formats/openai.py) on sample files written from the API reference:
every field of a record known by construction, batch pairing, reasoning blobs, quarantine."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from log_helpers import FIXTURES, rows, by_id

from distillguard.ingest import Workspace, ingest

LOGS = FIXTURES / "openai"


def quarantined(ws: Path) -> dict[int, tuple[str, str]]:
    return {r["source_line"]: (r["reason"], r["detail"]) for r in rows(Workspace(ws).quarantine_sql())}


def test_a_chat_completions_log_record_maps_every_field(ws):
    report = ingest(events=[LOGS / "chat_log.jsonl"], workspace=ws, log_format="openai")
    e = by_id(ws)["req_8f2a61c0d4"]
    assert e["ts"] == datetime(2026, 3, 2, 9, 15, 2, 117000, tzinfo=timezone.utc)
    assert (e["account_id"], e["api_key_id"], e["client_ip"], e["user_agent"]) == \
        ("org-7QhX2", "key-a91", "198.51.100.23", "OpenAI/Python 1.68.2")  # the envelope's fields win
    assert e["model"] == "gpt-5-mini"  # the model asked for, not the snapshot that answered
    assert e["prompt"].startswith("Solve the following problem. Think step by step")
    assert e["system"] == "You are a careful math tutor."  # a developer message
    assert e["response"] == "Let x be hours after 4pm... (0)"  # the first of n choices
    assert (e["input_tokens"], e["output_tokens"], e["reasoning_tokens"]) == (61, 5120, 4096)
    assert (e["max_tokens"], e["temperature"], e["n"], e["logprobs"], e["thinking"]) == (16000, 1.0, 4, True, True)
    assert e["status"] == "ok" and e["tools"] is None
    assert report.events.file_reports[0].format == "openai/jsonl"


def test_parts_tools_refusals_and_rate_limits(ws):
    ingest(events=[LOGS / "chat_log.jsonl"], workspace=ws, log_format="openai")
    events = by_id(ws)
    shop = events["req_1b77e0a9c2"]
    assert shop["prompt"] == "Where is my parcel? Order 5521."  # the text part; the image is not text
    assert (shop["tools"], shop["response"], shop["thinking"]) == (2, None, None)
    assert events["req_c40e19d7aa"]["status"] == "refused"  # message.refusal
    limited = events["req_7d0d3b2e11"]
    assert limited["status"] == "rate_limited" and limited["response"] is None


def test_broken_and_partial_records_are_quarantined_with_reasons(ws):
    report = ingest(events=[LOGS / "chat_log.jsonl"], workspace=ws, log_format="openai")
    q = quarantined(ws)
    assert q[5][0] == "malformed_json"
    assert q[6] == ("missing_required", "ts: required but missing or empty")  # no envelope ts, no `created`
    assert q[7][0] == "wrong_type" and 'input_tokens: expected an integer, got "twelve"' in q[7][1]
    assert q[8][0] == "unrecognized_record" and "not an OpenAI log record" in q[8][1]
    assert (report.events.rows_read, report.events.rows_ingested, report.events.quarantined) == (8, 4, 4)


def test_responses_reasoning_blobs_are_kept_and_a_replay_across_accounts_is_visible(ws):
    ingest(events=[LOGS / "responses_log.jsonl"], workspace=ws, log_format="openai")
    events = by_id(ws)
    first, second = events["resp_68a1f0c2e5"], events["resp_68a1f2d9b7"]
    assert first["prompt"].startswith("Prove that the square root of 2")
    assert second["prompt"] == "Now do the same for the cube root of 3, in full detail."  # the last user turn
    assert (first["reasoning_tokens"], first["max_tokens"], first["thinking"]) == (2600, 25000, True)
    assert second["logprobs"] is True and first["ts"] == datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
    blobs = rows(f"SELECT account_id, direction, blob FROM ({Workspace(ws).reasoning_sql()}) ORDER BY ALL")
    enc1 = "gAAAAABo1x" + "Qk3v" * 60 + "=="
    shared = hashlib.sha256(enc1.encode()).hexdigest()
    assert {"account_id": "acct-pool-01", "direction": "issued", "blob": shared} in blobs
    assert {"account_id": "acct-pool-02", "direction": "replayed", "blob": shared} in blobs
    assert len(blobs) == 3  # and the second response's own blob, issued


def test_a_batch_is_paired_by_custom_id_and_what_does_not_pair_is_quarantined(ws):
    files = [LOGS / "batch_input.jsonl", LOGS / "batch_output.jsonl", LOGS / "batch_errors.jsonl"]
    report = ingest(events=files, workspace=ws, log_format="openai", fills={"ts": "2026-03-02T12:00:00Z"})
    events = by_id(ws)
    graded = events["chatcmpl-BTq2x"]
    assert graded["prompt"].endswith("'Water boils at 90C at sea level.'")
    assert (graded["system"], graded["account_id"], graded["max_tokens"]) == \
        ("You are a strict grader.", "grader-batch-3", 1000)
    assert graded["response"].startswith("Correctness 2") and graded["output_tokens"] == 120
    assert graded["ts"] == datetime.fromtimestamp(1772449201, timezone.utc)
    expired = [e for e in events.values() if e["prompt"].endswith("'Two plus two is five.'")]
    assert [(e["status"], e["ts"]) for e in expired] == [("error", datetime(2026, 3, 2, 12, tzinfo=timezone.utc))]
    assert len(events) == 4
    assert report.events.quarantine_reasons == {"unpaired_batch_record": 1}  # task-9999 has no request
    assert report.events.skipped_records == {"request_paired_with_result": 4}
    for f in report.events.file_reports:
        assert f.rows_read == f.rows_ingested + f.duplicates + f.quarantined + sum(f.skipped_records.values())


def test_a_batch_file_given_alone_waits_for_its_partner(ws):
    first = ingest(events=[LOGS / "batch_output.jsonl"], workspace=ws, log_format="openai")
    assert first.events.quarantine_reasons == {"unpaired_batch_record": 4} and first.events.rows_ingested == 0
    # Not marked as ingested: given again with its input file, its results are paired.
    second = ingest(events=[LOGS / "batch_input.jsonl", LOGS / "batch_output.jsonl"], workspace=ws,
                    log_format="openai")
    assert second.events.rows_ingested == 3 and second.events.skipped_files == 0


def test_auto_detects_openai_files_and_a_second_ingest_stores_nothing(ws):
    files = [LOGS / "chat_log.jsonl", LOGS / "responses_log.jsonl"]
    first = ingest(events=files, workspace=ws, log_format="auto")
    assert [f.format for f in first.events.file_reports] == ["openai/jsonl", "openai/jsonl"]
    assert first.events.rows_ingested == 6
    again = ingest(events=files, workspace=ws, log_format="auto")
    assert again.events.skipped_files == 2 and again.events.rows_ingested == 0


@pytest.mark.parametrize("name", ["chat_log.jsonl"])
def test_the_same_records_renamed_are_duplicates_by_request_id(ws, tmp_path, name):
    ingest(events=[LOGS / name], workspace=ws, log_format="openai")
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes((LOGS / name).read_bytes() + b"\n")  # other bytes, same records
    again = ingest(events=[copy], workspace=ws, log_format="openai")
    assert again.events.rows_ingested == 0 and again.events.duplicates == 4
