"""LiteLLM logs (ingest/formats/litellm.py) on sample files written from LiteLLM's schema and
logging spec: spend log rows (CSV and JSON Lines) and StandardLoggingPayload callbacks.
Every field of a record known by construction, the account fallbacks, skipped calls,
reasoning blobs, quarantine, detection and idempotence."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

from log_helpers import FIXTURES, rows, by_id, sha, balanced

from distillguard.ingest import Workspace, ingest
from distillguard.ingest.formats import detect

LOGS = FIXTURES / "litellm"
SPEND_CSV, SPEND_JSONL = LOGS / "spend_logs.csv", LOGS / "spend_logs.jsonl"
PAYLOADS = LOGS / "standard_logging_payload.jsonl"
KEY1 = "5b7f1c0e9a3d4e2f8c6b1a0d9e8f7c6b5a4d3e2f1c0b9a8d7e6f5c4b3a2d1e0f"
KEY3 = "e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3"
HASH_C = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"


def quarantined(ws: Path) -> dict[int, tuple[str, str]]:
    return {r["source_line"]: (r["reason"], r["detail"]) for r in rows(Workspace(ws).quarantine_sql())}


def test_a_spend_log_row_maps_every_field(ws):
    report = ingest(events=[SPEND_CSV], workspace=ws, log_format="litellm")
    assert by_id(ws)["chatcmpl-5e1c7a2b-93d4-4f6e-8b0a-2c7d9e4f1a36"] == {
        "request_id": "chatcmpl-5e1c7a2b-93d4-4f6e-8b0a-2c7d9e4f1a36",
        "ts": datetime(2025, 6, 3, 14, 22, 7, 412000, tzinfo=timezone.utc),  # startTime, not endTime
        "account_id": "user-7f3a",  # the key's user, not end_user "enduser-00912"
        "model": "claude-sonnet-4",  # what the client asked for, not the deployment that answered
        "prompt": "Think step by step and show your full reasoning before the final answer. Problem 1187: a tank "
                  "is filled by pipe A in 6 hours and emptied by pipe B in 9 hours. Both are opened at noon. "
                  "When is the tank full?",
        "api_key_id": KEY1,
        "conversation_id": "sess-2f1e9c4b-7a8d-4c3e-b5f6-0a9d8c7b6e5f",
        "turn": None,
        "system": "You are a careful math tutor. Never skip steps.",
        "response": "Net rate is 1/6 - 1/9 = 1/18 of the tank per hour, so it is full after 18 hours: at 6 a.m. "
                    "the next day.",
        "input_tokens": 312, "output_tokens": 1562, "reasoning_tokens": 1104,
        "max_tokens": 16000, "temperature": 1.0, "logprobs": None, "n": 1, "thinking": True, "tools": 1,
        "status": "ok",
        "client_ip": "203.0.113.45", "asn": None, "ip_country": None, "user_agent": None,
        "tls_fingerprint": None, "client_timezone": None,
    }
    assert report.events.file_reports[0].format == "litellm/csv"


def test_the_account_is_the_keys_user_else_its_team_else_the_hashed_key(ws):
    ingest(events=[SPEND_CSV, PAYLOADS], workspace=ws, log_format="litellm")
    events = by_id(ws)
    accounts = {rid: e["account_id"] for rid, e in events.items()}
    assert accounts == {
        "chatcmpl-5e1c7a2b-93d4-4f6e-8b0a-2c7d9e4f1a36": "user-7f3a",        # `user`
        "chatcmpl-BX2f9kQmT7vLp3nR8sWz1aYcDe4F": "team-support",             # no user: `team_id`
        "3c9d6a0e-5b1f-4e8a-9a77-0e2d4b6c8f10": KEY3,                        # neither: the hashed key
        "chatcmpl-0b8e4f2a-6c1d-4a9e-b3f7-5d2c8e1a9f64": "user-grader-ops",  # metadata.user_api_key_user_id
        "resp_68402c1f9a7c8190b5e3d2a1f0e9d8c7": "team-marketing",           # metadata.user_api_key_team_id
        "4e2a9c7b-1d3f-4b8e-a6c5-9f0e1d2c3b4a": HASH_C,                      # metadata.user_api_key_hash
    }
    assert "grader-bot" not in accounts.values()  # end_user is the customer's own user
    assert events["3c9d6a0e-5b1f-4e8a-9a77-0e2d4b6c8f10"]["api_key_id"] == KEY3


def test_an_older_row_with_messages_and_a_failed_row(ws):
    ingest(events=[SPEND_CSV], workspace=ws, log_format="litellm")
    events = by_id(ws)
    old = events["chatcmpl-BX2f9kQmT7vLp3nR8sWz1aYcDe4F"]  # `messages` holds the list; no request body
    assert old["prompt"].startswith("Summarize this customer email in two sentences")
    assert (old["model"], old["input_tokens"], old["output_tokens"], old["temperature"]) == ("gpt-4o-mini", 187, 54, None)
    assert old["response"] == "The customer's order #5521 arrived with a cracked lid. They ask for a replacement before Friday."
    failed = events["3c9d6a0e-5b1f-4e8a-9a77-0e2d4b6c8f10"]  # status failure, error_code 429
    assert (failed["status"], failed["response"], failed["client_ip"]) == ("rate_limited", None, "192.0.2.77")
    assert (failed["logprobs"], failed["n"], failed["max_tokens"], failed["temperature"]) == (True, 4, 1024, 0.0)
    assert failed["prompt"].startswith("Grade the answer below on a 1-10 rubric")


def test_standard_logging_payloads(ws):
    ingest(events=[PAYLOADS], workspace=ws, log_format="litellm")
    events = by_id(ws)
    grader = events["chatcmpl-0b8e4f2a-6c1d-4a9e-b3f7-5d2c8e1a9f64"]
    assert grader["ts"] == datetime(2025, 6, 4, 14, 10, 12, 318000, tzinfo=timezone.utc)  # Unix seconds
    assert grader["prompt"].startswith("Now grade Response B")  # the last user turn
    assert grader["system"] == "You are a strict grader. Score answers against the rubric and explain every deduction."
    assert (grader["model"], grader["conversation_id"], grader["user_agent"]) == \
        ("claude-opus-4", "grading-run-44-item-0017", "OpenAI/Python 1.82.0")
    assert (grader["max_tokens"], grader["temperature"], grader["thinking"]) == (8192, 1.0, True)  # model_parameters
    assert (grader["input_tokens"], grader["output_tokens"], grader["reasoning_tokens"]) == (641, 888, 702)
    haiku = events["resp_68402c1f9a7c8190b5e3d2a1f0e9d8c7"]  # a Responses call: `messages` is the input string
    assert haiku["prompt"] == "Write a haiku about autumn rain."
    assert haiku["response"] == "Cold rain on maples\nred leaves loosen, one by one\nthe gutter hums low"
    assert (haiku["max_tokens"], haiku["thinking"], haiku["reasoning_tokens"]) == (400, True, 64)
    failed = events["4e2a9c7b-1d3f-4b8e-a6c5-9f0e1d2c3b4a"]
    assert (failed["status"], failed["temperature"], failed["client_ip"]) == ("error", 0.2, "192.0.2.200")


def test_a_spend_log_exported_as_json_with_an_anthropic_pass_through(ws):
    report = ingest(events=[SPEND_JSONL], workspace=ws, log_format="litellm")
    e = by_id(ws)["msg_01HQx7VfY2kP9mRt3sLw8aBc"]
    assert e["ts"] == datetime(2025, 6, 4, 15, 1, 2, 250000, tzinfo=timezone.utc)
    assert e["prompt"] == "Explain, step by step, why the sky is blue. Include every intermediate step."
    assert (e["system"], e["thinking"], e["max_tokens"]) == ("You write model answers for a training set.", True, 2048)
    assert e["response"] == "Sunlight scatters off air molecules; shorter blue wavelengths scatter most."
    # a pass-through call of a kind not known, with no prompt, is not an exchange
    assert report.events.skipped_records == {"not_a_completion": 1} and report.events.rows_ingested == 1


def test_reasoning_blobs_issued_and_replayed(ws):
    ingest(events=[SPEND_CSV, PAYLOADS, SPEND_JSONL], workspace=ws, log_format="litellm")
    blobs = {(r["request_id"], r["direction"], r["blob"]) for r in rows(Workspace(ws).reasoning_sql())}
    assert blobs == {
        ("chatcmpl-5e1c7a2b-93d4-4f6e-8b0a-2c7d9e4f1a36", "issued",
         sha("EqQBCkgIBhABGAIiQJx2dGsdistillguardfixtureAAAsignatureOne0001")),  # message.thinking_blocks
        ("chatcmpl-0b8e4f2a-6c1d-4a9e-b3f7-5d2c8e1a9f64", "issued",
         sha("EpYBCkgIBhABGAIiQNewTurnSignatureIssuedFixture0000000000000002")),
        ("chatcmpl-0b8e4f2a-6c1d-4a9e-b3f7-5d2c8e1a9f64", "replayed",  # an earlier turn's block sent back
         sha("EpYBCkgIBhABGAIiQOldTurnSignatureForReplayFixture000000000001")),
        ("resp_68402c1f9a7c8190b5e3d2a1f0e9d8c7", "issued",  # Responses encrypted_content
         sha("gAAAAABoFixtureEncryptedReasoningContentForResponsesApi0000003")),
        ("msg_01HQx7VfY2kP9mRt3sLw8aBc", "issued", sha("ErcBCkgIBhABGAIiQSpendLogAnthropicSig0000004")),
    }


def test_broken_and_partial_spend_log_rows_are_quarantined_with_reasons(ws):
    report = ingest(events=[SPEND_CSV], workspace=ws, log_format="litellm")
    assert quarantined(ws) == {  # CSV lines (the header is line 1)
        6: ("missing_required", "ts: required but missing or empty"),  # no startTime
        7: ("wrong_type", 'input_tokens: expected an integer, got "three hundred"'),
        8: ("missing_required", "prompt: required but missing or empty"),  # prompts not stored by the proxy
        9: ("malformed_csv", "expected 32 fields as in the header, got 5"),
    }
    e = report.events
    assert (e.rows_read, e.rows_ingested, e.quarantined, e.skipped_records) == (8, 3, 4, {"not_a_completion": 1})
    assert balanced(report)


def test_broken_and_foreign_payload_lines_are_quarantined_with_reasons(ws):
    report = ingest(events=[PAYLOADS], workspace=ws, log_format="litellm")
    q = quarantined(ws)
    assert set(q) == {5, 6, 7}
    assert q[5][0] == "malformed_json"
    assert q[6][0] == "unrecognized_record" and "not a LiteLLM record" in q[6][1]
    assert q[7] == ("bad_timestamp", 'ts: expected an RFC 3339 timestamp such as 2025-01-31T12:00:00Z, got "last tuesday"')
    e = report.events
    assert (e.rows_read, e.rows_ingested, e.quarantined, e.skipped_records) == (7, 3, 3, {"not_a_completion": 1})
    assert balanced(report)


def test_auto_detection_reads_every_file_as_litellm(tmp_path):
    first_csv = next(csv.DictReader(SPEND_CSV.open(newline="")))
    assert detect(first_csv) == "litellm"
    for path in (PAYLOADS, SPEND_JSONL):
        assert detect(json.loads(path.read_text().splitlines()[0])) == "litellm"
    auto = ingest(events=[SPEND_CSV, PAYLOADS, SPEND_JSONL], workspace=tmp_path / "auto", log_format="auto")
    named = ingest(events=[SPEND_CSV, PAYLOADS, SPEND_JSONL], workspace=tmp_path / "named", log_format="litellm")
    assert [f.format.split("/")[0] for f in auto.events.file_reports] == ["litellm"] * 3
    assert by_id(tmp_path / "auto") == by_id(tmp_path / "named") and len(by_id(tmp_path / "auto")) == 7
    assert auto.events.quarantine_reasons == named.events.quarantine_reasons


def test_other_records_are_not_taken_for_litellm():
    assert detect({"request_id": "x", "request_created_at": "2025-01-01T00:00:00Z", "request_body": {},
                   "response_status": 200, "request_user_id": "u"}) != "litellm"  # a Helicone record
    assert detect({"request": {"model": "m"}, "response": {"object": "chat.completion", "choices": []}}) != "litellm"
    assert detect({"level": "INFO", "message": "LiteLLM: Proxy initialized"}) is None


def test_ingesting_the_same_records_again_stores_nothing(ws, tmp_path):
    files = [SPEND_CSV, PAYLOADS, SPEND_JSONL]
    first = ingest(events=files, workspace=ws, log_format="litellm")
    stored = by_id(ws)
    again = ingest(events=files, workspace=ws, log_format="litellm")
    assert first.events.rows_ingested == 7 and again.events.rows_ingested == 0
    # the same records in another file are read, and are duplicates by their request ids
    part = tmp_path / "redelivered.jsonl"
    part.write_text("\n".join(PAYLOADS.read_text().splitlines()[:2]) + "\n")
    redelivered = ingest(events=[part], workspace=ws, log_format="litellm")
    assert (redelivered.events.rows_read, redelivered.events.duplicates, redelivered.events.rows_ingested) == (2, 2, 0)
    assert by_id(ws) == stored
    assert len(rows(Workspace(ws).quarantine_sql())) == first.events.quarantined == 7
