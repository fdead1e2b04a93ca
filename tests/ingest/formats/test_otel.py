"""OpenTelemetry GenAI spans in OTLP/JSON (ingest/formats/otel.py) on sample exports written
from the semantic conventions (GenAI, OpenLLMetry, OpenInference): one row per LLM span,
every field known by construction, other spans skipped, broken spans quarantined."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from log_helpers import FIXTURES, rows, by_id, balanced

from distillguard.ingest import Workspace, ingest
from distillguard.ingest.formats import detect
from distillguard.ingest.formats.otel import FORMAT

LOGS = FIXTURES / "otel"


def quarantined(ws: Path) -> list[tuple[int, str, str]]:
    return sorted((int(r["source_line"]), r["reason"], r["detail"]) for r in rows(Workspace(ws).quarantine_sql()))


def test_a_genai_chat_span_maps_every_field(ws):
    report = ingest(events=[LOGS / "genai_semconv.jsonl"], workspace=ws, log_format="otel")
    e = by_id(ws)["chatcmpl-BfQ2x7Lk9aZr0tYv3N1pWm8sQ4e"]  # gen_ai.response.id
    assert e["ts"] == datetime(2026, 3, 2, 14, 5, 11, 250000, tzinfo=timezone.utc)  # startTimeUnixNano
    assert e["account_id"] == "acct-4471"  # user.id on the resource: every span under it
    assert e["model"] == "gpt-4.1"  # the model asked for, not the snapshot that answered
    assert e["prompt"].startswith("You are grading answers for a training set.")
    assert "Think step by step and show your full reasoning" in e["prompt"]
    assert e["prompt"].endswith("Answer: Because ice is lighter than water.")
    assert e["system"] == "You are a meticulous grader. Explain every deduction."  # gen_ai.system_instructions
    assert e["response"].startswith("Step 1: correctness.") and e["response"].endswith("Score: 6/10")  # not the reasoning part
    assert (e["input_tokens"], e["output_tokens"], e["reasoning_tokens"]) == (812, 2950, 1536)
    assert (e["max_tokens"], e["temperature"], e["n"], e["tools"]) == (4096, 0.0, 4, 2)
    assert e["thinking"] is True and e["status"] == "ok" and e["logprobs"] is None
    assert (e["conversation_id"], e["client_ip"], e["user_agent"]) == (None, None, None)  # the HTTP span's client is not the LLM span's
    assert report.events.file_reports[0].format == "otel/jsonl"


def test_structured_attributes_and_the_span_winning_over_its_resource(ws):
    ingest(events=[LOGS / "genai_semconv.jsonl"], workspace=ws, log_format="otel")
    e = by_id(ws)["msg_01XkTq8bWm3RfN7vJp2aLc9d"]
    assert e["account_id"] == "acct-2210"  # the span's user.id, not its resource's acct-gateway-default
    assert e["prompt"] == "A replacement please. Can it ship before Friday?"  # the last user turn of an arrayValue of kvlists
    assert e["system"] == "You are the support assistant of Example Shop."
    assert e["response"] == "Yes: I have ordered a replacement with express shipping, arriving Thursday."
    assert (e["model"], e["conversation_id"]) == ("claude-sonnet-4-5", "conv-7d1e0c52")
    assert (e["client_ip"], e["user_agent"]) == ("198.51.100.23", "shop-support/1.8.2 anthropic-python/0.69.0")
    assert (e["input_tokens"], e["output_tokens"], e["max_tokens"], e["temperature"]) == (1843, 61, 1024, 0.7)  # ints as numbers
    assert (e["thinking"], e["tools"], e["n"], e["status"]) == (None, None, None, "ok")


def test_refusals_errors_and_rate_limits(ws):
    ingest(events=[LOGS / "genai_semconv.jsonl"], workspace=ws, log_format="otel")
    events = by_id(ws)
    refused = events["chatcmpl-BfQ5Kc2rT0aVn8uYe4LmZx1pHj7"]
    assert refused["status"] == "refused" and refused["response"] is None  # finish_reasons content_filter
    failed = events["4bf92f3577b34da6a3ce929d0e0e4736-d75597dee50b0cac"]  # no response id: traceId-spanId
    assert (failed["status"], failed["account_id"]) == ("error", "acct-4471")  # status code 2, error.type timeout
    limited = events["4bf92f3577b34da6a3ce929d0e0e4736-9c1d2e3f4a5b6c7d"]
    assert limited["status"] == "rate_limited"  # STATUS_CODE_ERROR with error.type 429
    assert limited["prompt"] == "Translate 'good morning' into Japanese."


def test_spans_that_are_not_llm_calls_are_skipped(ws):
    report = ingest(events=[LOGS / "genai_semconv.jsonl"], workspace=ws, log_format="otel")
    # the HTTP server span, the embeddings span and the execute_tool span
    assert report.events.skipped_records == {"not_an_llm_span": 3}
    assert (report.events.rows_read, report.events.rows_ingested, report.events.quarantined) == (8, 5, 0)
    assert balanced(report)
    assert not any(e["model"] == "text-embedding-3-small" for e in by_id(ws).values())


def test_openllmetry_indexed_attributes_in_snake_case(ws):
    report = ingest(events=[LOGS / "openllmetry.jsonl"], workspace=ws, log_format="otel")
    assert report.events.skipped_records == {"not_an_llm_span": 1}  # the workflow span
    (e,) = by_id(ws).values()
    assert e["request_id"] == "a3f1c2d4e5b60718293a4b5c6d7e8f90-1b2c3d4e5f607182"  # trace_id-span_id
    assert e["ts"] == datetime(2026, 3, 3, 9, 15, 27, 800000, tzinfo=timezone.utc)  # start_time_unix_nano
    assert (e["account_id"], e["model"]) == ("acct-9053", "gpt-4o-mini")  # enduser.id
    assert e["prompt"] == "Now write one about the Calvin cycle."  # gen_ai.prompt.3: the highest-index user turn
    assert e["system"] == "You write multiple-choice quiz questions for high-school biology."
    assert e["response"].startswith("Where does the Calvin cycle take place?")
    assert (e["input_tokens"], e["output_tokens"], e["max_tokens"], e["temperature"]) == (96, 41, 512, 0.3)
    assert (e["tools"], e["status"], e["reasoning_tokens"]) == (2, "ok", None)  # llm.request.functions.{0,1}


def test_openinference_messages_parameters_and_bodies(ws):
    report = ingest(events=[LOGS / "openinference.jsonl"], workspace=ws, log_format="otel")
    assert report.events.skipped_records == {"not_an_llm_span": 1}  # the CHAIN span
    (e,) = by_id(ws).values()
    assert e["request_id"] == "chatcmpl-BfQ9a1Zx0cVb2Nm3Lk4Jh5Gf6Ds"  # the id of the body in output.value
    assert e["account_id"] == "acct-3318"  # resource user.id, before the request body's `user`
    assert e["conversation_id"] == "sess-5f0e2b7a"  # session.id
    assert e["model"] == "gpt-4o-2024-08-06"  # llm.model_name
    assert e["prompt"] == "How do I reset my router?\nDocuments: [1] Hold the reset button for 10 seconds."  # contents joined
    assert e["system"] == "Answer from the provided documents only."
    assert e["response"] == "Hold the reset button for 10 seconds, then wait for the lights to blink [1]."
    assert (e["input_tokens"], e["output_tokens"]) == (420, 96)
    assert (e["max_tokens"], e["temperature"], e["logprobs"], e["tools"]) == (800, 0.1, True, 1)  # llm.invocation_parameters
    assert e["status"] == "ok"


def test_broken_and_partial_spans_are_quarantined_with_reasons(ws):
    report = ingest(events=[LOGS / "malformed.jsonl"], workspace=ws, log_format="otel")
    q = quarantined(ws)
    assert (1, "missing_required", "ts: required but missing or empty") in q  # a span with no startTimeUnixNano
    assert (1, "wrong_type", 'output_tokens: expected an integer, got "n/a"') in q
    assert [r[:2] for r in q if r[0] == 2] == [(2, "malformed_json")]
    assert any(r[0] == 3 and r[1] == "unrecognized_record" and "not an OTLP/JSON trace export" in r[2] for r in q)  # logs
    assert any(r[0] == 5 and r[1] == "unrecognized_record" and "a span is a JSON object" in r[2] for r in q)
    assert (6, "missing_required", "prompt: required but missing or empty") in q  # content capture off
    assert (6, "missing_required", "account_id: required but missing or empty") in q  # no user.id anywhere
    # the good span of line 1 is stored although its neighbours are not
    assert list(by_id(ws)) == ["chatcmpl-BfQAgood00000000000000001"]
    assert report.events.skipped_records == {"no_spans": 1}
    assert (report.events.rows_read, report.events.rows_ingested, report.events.quarantined) == (9, 1, 7)
    assert balanced(report)


def test_a_fill_names_the_account_traces_leave_out(ws):
    report = ingest(events=[LOGS / "malformed.jsonl"], workspace=ws, log_format="otel", fills={"account_id": "acct-filled"})
    e = by_id(ws)["6e6f74696d65000000000000000000aa-0000000000000a05"]
    assert (e["account_id"], e["prompt"]) == ("acct-filled", "How many legs does a spider have?")
    assert by_id(ws)["chatcmpl-BfQAgood00000000000000001"]["account_id"] == "acct-7001"  # a span's own account wins
    assert report.events.rows_ingested == 2


@pytest.mark.parametrize("name", ["genai_semconv", "openllmetry", "openinference", "malformed"])
def test_auto_detection_reads_every_export_as_otel(ws, name):
    report = ingest(events=[LOGS / f"{name}.jsonl"], workspace=ws, log_format="auto")
    assert report.events.file_reports[0].format == "otel/jsonl"
    assert report.events.rows_ingested >= 1 and "unknown_format" not in report.events.quarantine_reasons


def test_detect_is_specific():
    assert FORMAT.detect({"resourceSpans": [{"resource": {}, "scopeSpans": []}]})
    assert FORMAT.detect({"resource_spans": [{"scope_spans": []}]})
    assert detect({"resourceSpans": []}) == "otel"
    assert not FORMAT.detect({"resourceLogs": [{"resource": {}, "scopeLogs": []}]})
    assert not FORMAT.detect({"resourceSpans": "nope"})
    assert not FORMAT.detect({"request": {"model": "gpt-4o"}, "response": {"object": "chat.completion", "choices": []}})


def test_ingesting_the_same_spans_twice_stores_nothing_new(ws, tmp_path):
    first = ingest(events=[LOGS / "genai_semconv.jsonl"], workspace=ws, log_format="otel")
    again = ingest(events=[LOGS / "genai_semconv.jsonl"], workspace=ws, log_format="otel")
    assert first.events.rows_ingested == 5 and again.events.rows_ingested == 0
    # the same spans exported again in another file (lines in another order) are duplicates
    lines = (LOGS / "genai_semconv.jsonl").read_text().splitlines()
    copy = tmp_path / "reexport.jsonl"
    copy.write_text("\n".join(reversed(lines)) + "\n")
    third = ingest(events=[copy], workspace=ws, log_format="otel")
    assert (third.events.rows_ingested, third.events.duplicates) == (0, 5)
    assert len(by_id(ws)) == 5
