"""Langfuse exports (ingest/formats/langfuse.py) on sample files written from Langfuse's
export field reference and public API: generations joined with the traces that name
their user, every field of a record known by construction, skipped spans, quarantine."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from log_helpers import FIXTURES, rows, by_id, balanced

from distillguard.ingest import Workspace, ingest
from distillguard.ingest.formats import detect
from distillguard.ingest.formats.langfuse import detect as is_langfuse

LOGS = FIXTURES / "langfuse"
TRACES, OBSERVATIONS = LOGS / "traces.jsonl", LOGS / "observations.jsonl"
UTC = dt.timezone.utc
# The Anthropic thinking block's signature issued in observations.jsonl line 4 and sent back on line 6.
SIGNATURE = "EqQBCkYIBRgCKkBv3N2oXkq7cL0m1sZ4fT9uHj8aYwPqR5eVdCxGbN6tKsIh0MnZ2oUlE4rWyJ7vB1cF9pDgA3sQmT"


def quarantined(ws: Path) -> dict[tuple[str, int], tuple[str, str]]:
    return {(Path(r["source_file"]).name, r["source_line"]): (r["reason"], r["detail"])
            for r in rows(Workspace(ws).quarantine_sql())}


def test_a_generation_takes_the_user_and_session_of_its_trace_from_another_file(ws):
    report = ingest(events=[TRACES, OBSERVATIONS], workspace=ws, log_format="langfuse")
    e = by_id(ws)["b7ad6b7169203331"]
    assert e["ts"] == dt.datetime(2025, 3, 11, 9, 14, 2, 381000, tzinfo=UTC)  # start_time, naive UTC
    assert (e["account_id"], e["conversation_id"]) == ("acct-7f3a9c", "sess-20250311-a1")  # from traces.jsonl
    assert e["model"] == "o4-mini-2025-04-16"  # provided_model_name
    assert e["prompt"].startswith("Think step by step and show your full reasoning")
    assert e["system"] == "You are a meticulous math tutor."
    assert e["response"].endswith("So 142 - 12 = 130 integers.")
    # Exclusive buckets summed: input 38 + input_cached_tokens 24; output 214 + output_reasoning_tokens 1536.
    assert (e["input_tokens"], e["output_tokens"], e["reasoning_tokens"]) == (62, 1750, 1536)
    # model_parameters is a string of JSON whose values are strings.
    assert (e["max_tokens"], e["temperature"], e["n"], e["logprobs"], e["thinking"]) == (8192, None, None, None, True)
    assert (e["tools"], e["status"], e["turn"]) == (0, "ok", None)  # tool_definitions {}
    assert (e["client_ip"], e["user_agent"], e["api_key_id"]) == ("203.0.113.24", "OpenAI/Python 1.66.3", "key_7f3a_live")
    assert {f.format for f in report.events.file_reports} == {"langfuse/jsonl"}


def test_anthropic_bodies_cache_reads_thinking_and_a_rate_limited_generation(ws):
    ingest(events=[TRACES, OBSERVATIONS], workspace=ws, log_format="langfuse")
    events = by_id(ws)
    bike = events["53995c3f42cd8ad8"]
    assert (bike["account_id"], bike["conversation_id"]) == ("acct-19be04", "sess-20250311-b7")
    assert bike["system"] == "You are a helpful support agent for a bicycle shop."  # `system` of the input body
    assert bike["prompt"] == "My rear derailleur skips gears after I replaced the chain. What should I check?"
    assert bike["response"].startswith("Check the cable tension first")  # the text block, not the thinking
    assert (bike["input_tokens"], bike["output_tokens"], bike["reasoning_tokens"]) == (57 + 1200, 180, None)
    assert (bike["max_tokens"], bike["temperature"], bike["thinking"]) == (2048, 0.3, True)
    limited = events["c1f9e2d4b8a70615"]  # level ERROR, a 429 in status_message
    assert (limited["status"], limited["response"], limited["input_tokens"]) == ("rate_limited", None, None)
    follow_up = events["9d2c5b7e1a4f8036"]
    assert follow_up["prompt"] == "It still skips on the two smallest cogs."  # the last user turn
    assert (follow_up["account_id"], follow_up["conversation_id"]) == ("acct-55d1e2", None)  # a trace with no session


def test_spans_are_skipped_and_broken_records_quarantined_with_reasons(ws):
    report = ingest(events=[TRACES, OBSERVATIONS], workspace=ws, log_format="langfuse")
    traces, observations = report.events.file_reports
    assert (traces.rows_read, traces.rows_ingested, traces.skipped_records) == (3, 0, {"context_record": 3})
    assert observations.skipped_records == {"not_a_generation": 2}  # a SPAN and an EVENT
    assert (observations.rows_read, observations.rows_ingested, observations.quarantined) == (12, 4, 6)
    q = quarantined(ws)
    assert q[("observations.jsonl", 7)] == ("missing_required", "account_id: required but missing or empty")
    assert q[("observations.jsonl", 8)][0] == "malformed_json"  # a line cut short
    assert q[("observations.jsonl", 9)] == ("missing_required", "ts: required but missing or empty")
    assert q[("observations.jsonl", 10)][0] == "wrong_type" and 'output_tokens: expected an integer, got "lots"' in \
        q[("observations.jsonl", 10)][1]
    assert q[("observations.jsonl", 11)][0] == "unrecognized_record" and "not a Langfuse trace or observation" in \
        q[("observations.jsonl", 11)][1]
    assert q[("observations.jsonl", 12)] == (
        "unrecognized_record", "a Langfuse observation with no type: cannot tell a GENERATION from a span")
    assert len(q) == 6 and balanced(report)


def test_a_generation_whose_trace_is_missing_has_no_account_unless_filled(ws, tmp_path):
    alone = ingest(events=[OBSERVATIONS], workspace=ws, log_format="langfuse")  # no traces file: no users at all
    assert alone.events.rows_ingested == 0
    # Every one of its 7 generations lacks an account (the broken and unrecognized lines stay as they were).
    assert alone.events.quarantine_reasons == {"missing_required": 7, "unrecognized_record": 2, "malformed_json": 1}
    filled = tmp_path / "filled"
    ingest(events=[TRACES, OBSERVATIONS], workspace=filled, log_format="langfuse", fills={"account_id": "acct-fill"})
    events = by_id(filled)
    orphan = events["6e0d1a2b3c4d5e6f"]  # its trace e457b5a2... is in no file
    assert (orphan["account_id"], orphan["conversation_id"]) == ("acct-fill", None)
    assert orphan["prompt"] == "Suggest a name for a neighbourhood book club."
    assert (orphan["input_tokens"], orphan["output_tokens"], orphan["temperature"]) == (14, 9, 0.7)
    assert events["b7ad6b7169203331"]["account_id"] == "acct-7f3a9c"  # the trace's user still wins over a fill


def test_a_thinking_signature_issued_to_one_account_and_replayed_by_another(ws):
    ingest(events=[TRACES, OBSERVATIONS], workspace=ws, log_format="langfuse")
    blobs = rows(f"SELECT request_id, account_id, direction, blob FROM ({Workspace(ws).reasoning_sql()}) ORDER BY ALL")
    shared = hashlib.sha256(SIGNATURE.encode()).hexdigest()
    assert blobs == [
        {"request_id": "53995c3f42cd8ad8", "account_id": "acct-19be04", "direction": "issued", "blob": shared},
        {"request_id": "9d2c5b7e1a4f8036", "account_id": "acct-55d1e2", "direction": "replayed", "blob": shared},
    ]


def test_enriched_observations_csv_carry_the_user_on_every_row(ws):
    report = ingest(events=[LOGS / "observations_v2.csv"], workspace=ws, log_format="langfuse")
    events = by_id(ws)
    grader = events["3f2a9c1e7b6d4058"]
    assert grader["ts"] == dt.datetime(2025, 3, 12, 16, 40, 11, 512000, tzinfo=UTC)
    assert (grader["account_id"], grader["conversation_id"], grader["api_key_id"]) == \
        ("acct-c04d11", "grading-run-42", "key_c04d_batch")
    assert grader["prompt"].startswith("Grade the answer below against the rubric.")
    assert (grader["system"], grader["model"]) == ("You are a strict grader.", "gpt-4.1-2025-04-14")
    assert grader["response"] == '{"accuracy": 4, "completeness": 3, "clarity": 5}'
    assert (grader["input_tokens"], grader["output_tokens"], grader["reasoning_tokens"]) == (412, 58, None)
    assert (grader["max_tokens"], grader["temperature"], grader["n"], grader["logprobs"]) == (512, 0.0, 3, True)
    plain = events["4a3b0d2f8c7e5169"]  # input and output stored as JSON strings of plain text
    assert (plain["prompt"], plain["response"]) == ("Translate to French: The library opens at nine.",
                                                    "La bibliothèque ouvre à neuf heures.")
    assert (plain["account_id"], plain["conversation_id"], plain["status"]) == ("acct-88e0a7", None, "ok")
    e = report.events
    assert (e.rows_read, e.rows_ingested, e.skipped_records, e.quarantine_reasons) == \
        (4, 2, {"not_a_generation": 1}, {"missing_required": 1})  # the last row has an empty user_id
    assert quarantined(ws)[("observations_v2.csv", 5)] == ("missing_required", "account_id: required but missing or empty")
    assert e.file_reports[0].format == "langfuse/csv" and balanced(report)


def write_parquet_export(path: Path) -> Path:
    """An enriched observations Parquet export: typed timestamps and maps, JSON as strings."""
    schema = pa.schema([
        ("id", pa.string()), ("trace_id", pa.string()), ("type", pa.string()),
        ("start_time", pa.timestamp("us", tz="UTC")), ("end_time", pa.timestamp("us", tz="UTC")),
        ("name", pa.string()), ("metadata", pa.map_(pa.string(), pa.string())), ("level", pa.string()),
        ("status_message", pa.string()), ("input", pa.string()), ("output", pa.string()),
        ("provided_model_name", pa.string()), ("model_parameters", pa.string()),
        ("usage_details", pa.map_(pa.string(), pa.uint64())), ("cost_details", pa.map_(pa.string(), pa.float64())),
        ("user_id", pa.string()), ("session_id", pa.string()), ("tags", pa.list_(pa.string())),
        ("tool_definitions", pa.map_(pa.string(), pa.string()))])
    trace = "a87ff679a2f3e71d9181a67b7542122c"
    common = {"trace_id": trace, "level": "DEFAULT", "status_message": "", "user_id": "acct-4e2a61",
              "session_id": "sess-0314-x9", "tags": ["agent"]}
    at = lambda s: dt.datetime.fromisoformat(s).replace(tzinfo=UTC)  # noqa: E731
    generation = {
        **common, "id": "7d8e9fa0b1c2d3e4", "type": "GENERATION", "name": "agent-step",
        "start_time": at("2025-03-14T07:05:31.250"), "end_time": at("2025-03-14T07:05:39.020"),
        "metadata": [("client_timezone", "Europe/Berlin")],
        "input": json.dumps([{"role": "user", "content": "Book a table for two tomorrow at 7pm near the station."}]),
        "output": json.dumps({"role": "assistant", "content": "I found two options near the station."}),
        "provided_model_name": "gpt-4.1-mini-2025-04-14",
        "model_parameters": json.dumps({"temperature": "0.5", "max_tokens": "700"}),
        "usage_details": [("input", 1830), ("input_cached_tokens", 1024), ("output", 77), ("total", 2931)],
        "cost_details": [("total", 0.00093)],
        "tool_definitions": [("search_restaurants", '{"type":"object"}'), ("book_table", '{"type":"object"}')]}
    tool = {
        **common, "id": "8e9fa0b1c2d3e4f5", "type": "TOOL", "name": "search_restaurants",
        "start_time": at("2025-03-14T07:05:39.100"), "end_time": at("2025-03-14T07:05:39.800"), "metadata": [],
        "input": '{"near":"station"}', "output": '{"results":2}', "provided_model_name": "", "model_parameters": "",
        "usage_details": [], "cost_details": [], "tool_definitions": []}
    pq.write_table(pa.Table.from_pylist([generation, tool], schema=schema), path)
    return path


def test_a_parquet_export_with_typed_columns(ws, tmp_path):
    path = write_parquet_export(tmp_path / "observations_v2.parquet")
    first = pq.ParquetFile(path).read().to_pylist()[0]
    assert is_langfuse(first) and detect(first) == "langfuse"  # what auto-detection is given for Parquet
    report = ingest(events=[path], workspace=ws, log_format="auto")
    e = by_id(ws)["7d8e9fa0b1c2d3e4"]
    assert e["ts"] == dt.datetime(2025, 3, 14, 7, 5, 31, 250000, tzinfo=UTC)
    assert (e["account_id"], e["conversation_id"], e["model"]) == ("acct-4e2a61", "sess-0314-x9", "gpt-4.1-mini-2025-04-14")
    assert (e["prompt"], e["response"]) == ("Book a table for two tomorrow at 7pm near the station.",
                                            "I found two options near the station.")
    assert (e["input_tokens"], e["output_tokens"]) == (1830 + 1024, 77)
    assert (e["max_tokens"], e["temperature"], e["tools"], e["client_timezone"]) == (700, 0.5, 2, "Europe/Berlin")
    f = report.events.file_reports[0]
    assert (f.format, f.rows_read, f.rows_ingested, f.skipped_records) == ("langfuse/parquet", 2, 1, {"not_a_generation": 1})


def test_public_api_objects_in_camel_case_with_the_trace_in_the_same_file(ws):
    report = ingest(events=[LOGS / "api_observations.jsonl"], workspace=ws, log_format="langfuse")
    events = by_id(ws)
    answer = events["d3d9446802a44259"]
    assert answer["ts"] == dt.datetime(2025, 3, 13, 8, 30, 0, 412000, tzinfo=UTC)  # startTime
    assert (answer["account_id"], answer["conversation_id"]) == ("acct-2b7f90", "chat-5512")  # userId, sessionId
    assert (answer["model"], answer["system"]) == ("gpt-4o-2024-08-06", "Answer from the policy excerpts only.")
    assert answer["prompt"] == "Can I return shoes after 30 days if they are unworn?"  # input {messages: [...]}
    assert answer["response"] == "Unworn shoes can be returned within 60 days with the receipt."
    assert (answer["input_tokens"], answer["output_tokens"]) == (820, 96)  # usageDetails, not usage's inputCost
    assert (answer["max_tokens"], answer["temperature"], answer["tools"], answer["status"]) == (1024, 0.2, 1, "ok")
    refused = events["c20ad4d76fe97759"]
    assert (refused["status"], refused["response"]) == ("refused", None)  # output.refusal
    assert (refused["input_tokens"], refused["output_tokens"]) == (15, 9)  # promptTokens / completionTokens
    e = report.events
    assert (e.rows_read, e.rows_ingested, e.quarantined) == (4, 2, 0)
    assert e.skipped_records == {"context_record": 1, "not_a_generation": 1} and balanced(report)


def test_auto_detection_reads_every_export_as_langfuse(ws, tmp_path):
    files = [TRACES, OBSERVATIONS, LOGS / "observations_v2.csv", LOGS / "api_observations.jsonl"]
    report = ingest(events=files, workspace=ws, log_format="auto")
    assert [f.format for f in report.events.file_reports] == \
        ["langfuse/jsonl", "langfuse/jsonl", "langfuse/csv", "langfuse/jsonl"]
    explicit = tmp_path / "explicit"
    ingest(events=files, workspace=explicit, log_format="langfuse")
    assert by_id(ws).keys() == by_id(explicit).keys() and len(by_id(ws)) == 8


def test_ingesting_the_same_exports_again_stores_nothing(ws, tmp_path):
    first = ingest(events=[TRACES, OBSERVATIONS], workspace=ws, log_format="langfuse")
    assert first.events.rows_ingested == 4
    again = ingest(events=[TRACES, OBSERVATIONS], workspace=ws, log_format="langfuse")
    assert (again.events.rows_ingested, again.events.skipped_files) == (0, 2)
    # The same records in files with other bytes (another export run): read again, all duplicates.
    copies = []
    for src in (TRACES, OBSERVATIONS):
        copies.append(tmp_path / f"rerun-{src.name}")
        shutil.copyfile(src, copies[-1])
        with copies[-1].open("a") as f:
            f.write("\n")
    rerun = ingest(events=copies, workspace=ws, log_format="langfuse")
    assert (rerun.events.rows_ingested, rerun.events.duplicates) == (0, 4) and balanced(rerun)
    assert len(by_id(ws)) == 4


def test_detect_is_specific():
    first = lambda p: json.loads(p.read_text().splitlines()[0])  # noqa: E731
    assert is_langfuse(first(TRACES)) and is_langfuse(first(OBSERVATIONS)) and is_langfuse(first(LOGS / "api_observations.jsonl"))
    csv_row = {"id": "x", "trace_id": "t", "type": "GENERATION", "start_time": "2025-03-12 16:40:11.512000"}
    assert is_langfuse(csv_row)
    assert not is_langfuse({"id": "x", "trace_id": "t", "call_type": "acompletion", "startTime": 1.0})  # LiteLLM payload
    assert not is_langfuse({"id": "x", "trace_id": "t", "type": "message", "start_time": "2025-01-01"})
    assert not is_langfuse({"request": {"model": "gpt-4o"}, "response": {"object": "chat.completion"}})
    assert not is_langfuse({"id": "x", "timestamp": "2025-01-01T00:00:00Z", "name": "n"})  # no user, no trace keys
