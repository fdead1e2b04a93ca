"""Helicone request exports (ingest/formats/helicone.py) on sample files written from
Helicone's request API and export tool: every field of a record known by construction,
OpenAI and Anthropic bodies, the account and --fill, skipped requests, reasoning blobs,
quarantine, the export tool's CSV, detection and idempotence."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from log_helpers import FIXTURES, rows, by_id, balanced

from distillguard.ingest import Workspace, ingest
from distillguard.ingest.formats import detect

LOGS = FIXTURES / "helicone"
REQUESTS, EXPORT_CSV = LOGS / "requests.jsonl", LOGS / "export.csv"
SESSION = "c1f0a9b8-7e6d-4c5b-a493-8271605f4e3d"


def quarantined(ws: Path) -> dict[int, tuple[str, str]]:
    return {r["source_line"]: (r["reason"], r["detail"]) for r in rows(Workspace(ws).quarantine_sql())}


def test_an_openai_request_record_maps_every_field(ws):
    report = ingest(events=[REQUESTS], workspace=ws, log_format="helicone")
    assert by_id(ws)["8d4f3a2e-1c6b-4e57-9b0a-3f2d1e7c6a55"] == {
        "request_id": "8d4f3a2e-1c6b-4e57-9b0a-3f2d1e7c6a55",  # Helicone's request id, not the response's
        "ts": datetime(2025, 5, 12, 9, 14, 3, 218000, tzinfo=timezone.utc),  # request_created_at
        "account_id": "cust-4412",  # request_user_id
        "model": "o3-mini",  # request_model, not the snapshot that answered
        "prompt": "Think step by step and show your full reasoning, then give the final answer on its own line. "
                  "Question 42 of 500: how many positive divisors does 360 have?",
        "api_key_id": None,
        "conversation_id": SESSION,  # the Helicone-Session-Id property
        "turn": None,
        "system": "You are a meticulous tutor.",  # a developer message
        "response": "360 = 2^3 * 3^2 * 5, so it has (3+1)(2+1)(1+1) = 24 divisors.\n24",  # the first of n choices
        "input_tokens": 58, "output_tokens": 1240, "reasoning_tokens": 1088,
        "max_tokens": 8000, "temperature": None, "logprobs": None, "n": 2, "thinking": True, "tools": None,
        "status": "ok",
        "client_ip": None, "asn": None, "ip_country": "DE", "user_agent": None,
        "tls_fingerprint": None, "client_timezone": None,
    }
    assert report.events.file_reports[0].format == "helicone/jsonl"


def test_an_anthropic_body_a_rate_limit_and_an_unknown_country(ws):
    ingest(events=[REQUESTS], workspace=ws, log_format="helicone")
    events = by_id(ws)
    bakery = events["2b7c9e1f-4a3d-4f6b-8c2e-9d1a0b3c5e7f"]
    assert bakery["prompt"] == "What's a good name for a bakery that specializes in sourdough?"  # a text block
    assert (bakery["system"], bakery["model"], bakery["account_id"]) == \
        ("You are a friendly branding assistant.", "claude-sonnet-4-20250514", "cust-0907")
    assert bakery["response"] == 'How about "Rise & Crumb"? It hints at the long rise sourdough needs.'
    assert (bakery["input_tokens"], bakery["output_tokens"]) == (31 + 1200, 387)  # cache reads count as input
    assert (bakery["thinking"], bakery["max_tokens"], bakery["temperature"]) == (True, 4096, 1.0)
    assert bakery["ip_country"] is None  # T1 (Tor) is not a country
    limited = events["9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"]  # response_status 429
    assert (limited["status"], limited["response"], limited["conversation_id"]) == ("rate_limited", None, SESSION)


def test_the_anthropic_thinking_signature_is_an_issued_blob(ws):
    ingest(events=[REQUESTS], workspace=ws, log_format="helicone")
    blobs = [(r["request_id"], r["account_id"], r["direction"], r["blob"]) for r in rows(Workspace(ws).reasoning_sql())]
    signature = "EqQBCkgIBhABGAIiQHeliconeAnthropicThinkingSignatureFixture0005"
    assert blobs == [("2b7c9e1f-4a3d-4f6b-8c2e-9d1a0b3c5e7f", "cust-0907", "issued",
                      hashlib.sha256(signature.encode()).hexdigest())]


def test_broken_partial_and_foreign_records_are_quarantined_and_embeddings_skipped(ws):
    report = ingest(events=[REQUESTS], workspace=ws, log_format="helicone")
    q = quarantined(ws)
    assert q[5] == ("missing_required", "account_id: required but missing or empty")  # no request_user_id
    assert q[6] == ("missing_required", "ts: required but missing or empty")  # no request_created_at
    assert q[7][0] == "malformed_json"
    assert q[8][0] == "unrecognized_record" and "not a Helicone request record" in q[8][1]  # an API envelope
    e = report.events
    assert (e.rows_read, e.rows_ingested, e.quarantined, e.skipped_records) == (8, 3, 4, {"not_a_completion": 1})
    assert balanced(report)


def test_a_record_without_a_user_takes_the_filled_account(ws):
    report = ingest(events=[REQUESTS], workspace=ws, log_format="helicone", fills={"account_id": "org-travelco"})
    events = by_id(ws)
    hikes = events["aa11bb22-cc33-4d44-8e55-ff6677889900"]
    assert (hikes["account_id"], hikes["prompt"], hikes["temperature"]) == \
        ("org-travelco", "Suggest three weekend hikes near Lisbon.", 0.7)
    assert hikes["ip_country"] == "PT" and hikes["model"] == "gpt-4.1-mini"
    assert events["8d4f3a2e-1c6b-4e57-9b0a-3f2d1e7c6a55"]["account_id"] == "cust-4412"  # a fill never overrides
    assert report.events.rows_ingested == 4


def test_the_export_tools_csv(ws):
    report = ingest(events=[EXPORT_CSV], workspace=ws, log_format="helicone")
    events = by_id(ws)
    assert list(events) == ["3f2e1d0c-9b8a-4796-a584-736251403f2e"]  # no request_id column: the response id
    ticket = events["3f2e1d0c-9b8a-4796-a584-736251403f2e"]
    # its JSON cells have their quotes doubled twice, as the export tool wrote them
    assert ticket["prompt"] == 'Label this ticket: "My invoice shows the wrong VAT number."'
    assert (ticket["system"], ticket["conversation_id"], ticket["account_id"]) == \
        ("You label support tickets.", "tickets-2025-05-13", "cust-2210")
    assert ticket["ts"] == datetime(2025, 5, 13, 10, 2, 9, 915000, tzinfo=timezone.utc)
    assert (ticket["model"], ticket["input_tokens"], ticket["output_tokens"], ticket["response"]) == ("gpt-4o", 41, 3, None)
    assert (ticket["max_tokens"], ticket["temperature"], ticket["status"]) == (20, 0.0, "ok")
    assert quarantined(ws) == {3: ("wrong_type", 'output_tokens: expected an integer, got "n/a"')}
    assert balanced(report)


def test_auto_detection_reads_both_files_as_helicone(tmp_path):
    assert detect(json.loads(REQUESTS.read_text().splitlines()[0])) == "helicone"
    assert detect(next(csv.DictReader(EXPORT_CSV.open(newline="")))) == "helicone"
    auto = ingest(events=[REQUESTS, EXPORT_CSV], workspace=tmp_path / "auto", log_format="auto")
    ingest(events=[REQUESTS, EXPORT_CSV], workspace=tmp_path / "named", log_format="helicone")
    assert [f.format.split("/")[0] for f in auto.events.file_reports] == ["helicone", "helicone"]
    assert by_id(tmp_path / "auto") == by_id(tmp_path / "named") and len(by_id(tmp_path / "auto")) == 4


def test_other_records_are_not_taken_for_helicone():
    assert detect({"request_id": "r", "call_type": "acompletion", "api_key": "k", "spend": 0.1,
                   "startTime": "2025-01-01 00:00:00"}) != "helicone"  # a LiteLLM spend log row
    assert detect({"request": {"model": "m"}, "response": {"object": "chat.completion", "choices": []}}) != "helicone"
    assert detect({"data": [], "error": None}) is None


def test_ingesting_the_same_records_again_stores_nothing(ws, tmp_path):
    first = ingest(events=[REQUESTS, EXPORT_CSV], workspace=ws, log_format="helicone")
    stored = by_id(ws)
    again = ingest(events=[REQUESTS, EXPORT_CSV], workspace=ws, log_format="helicone")
    assert first.events.rows_ingested == 4 and again.events.rows_ingested == 0
    part = tmp_path / "redelivered.jsonl"  # the same records in another file: duplicates by request id
    part.write_text("\n".join(REQUESTS.read_text().splitlines()[:3]) + "\n")
    redelivered = ingest(events=[part], workspace=ws, log_format="helicone")
    assert (redelivered.events.rows_read, redelivered.events.duplicates, redelivered.events.rows_ingested) == (3, 3, 0)
    assert by_id(ws) == stored
