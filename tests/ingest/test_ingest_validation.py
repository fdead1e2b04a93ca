"""Each validation rule, each normalization, and each quarantine reason code.

Cases are tables of (value, expected): each test writes one row per case, ingests
them together and checks every row, so a rule is one ingest however many cases.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_helpers import account, event, quarantine, stored, write_csv, write_jsonl

from distillguard.ingest import ingest
from distillguard.schema.contract import MAX_ID_CHARS, MAX_TEXT_CHARS
from distillguard.schema.quarantine import CODES

REJECTED = object()  # an expected value: the row is quarantined


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def run(tmp_path, field, values, table="events", **base):
    """One row per value of `field`; returns per value (stored value, or the quarantine row)."""
    make = event if table == "events" else account
    key = "request_id" if table == "events" else "account_id"
    rows = [make(i, **{**base, field: v, key: f"case-{i}"}) for i, v in enumerate(values)]
    tmp_path.mkdir(parents=True, exist_ok=True)
    ws = tmp_path / "ws"
    report = ingest(**{table: [write_jsonl(tmp_path / f"{table}.jsonl", rows)]}, workspace=ws)
    t = getattr(report, table)
    assert t.rows_read == len(rows) == t.rows_ingested + t.quarantined
    good = {r[key]: r for r in stored(ws, table).to_pylist()}
    bad = {q["source_line"]: q for q in quarantine(ws)}
    return [good[f"case-{i}"][field] if f"case-{i}" in good else bad[i + 1] for i in range(len(rows))]


def check(tmp_path, field, cases, reason="wrong_type", table="events", **base):
    """cases: (value, expected stored value or REJECTED for `reason`)."""
    results = run(tmp_path, field, [v for v, _ in cases], table, **base)
    for (value, expected), got in zip(cases, results):
        if expected is REJECTED:
            assert isinstance(got, dict) and got["reason"] == reason, (value, got)
            assert got["detail"].startswith(f"{field}: "), got["detail"]
        else:
            assert not isinstance(got, dict) and got == expected, (value, got)


# --- required and optional fields --------------------------------------------

def test_required_field_absent_null_or_blank(tmp_path):
    check(tmp_path, "account_id", [(..., REJECTED), (None, REJECTED), ("", REJECTED), ("  \t", REJECTED),
                                   ("acct-1", "acct-1")], reason="missing_required")


def test_optional_empty_values_become_null(tmp_path):
    check(tmp_path, "api_key_id", [(None, None), ("", None), ("  ", None), (..., None)])
    check(tmp_path / "2", "turn", [(None, None), ("", None), (" ", None)])


# --- types ---------------------------------------------------------------------

def test_int_accepts_lossless_values_only(tmp_path):
    check(tmp_path, "input_tokens", [
        (3, 3), ("3", 3), (" 42 ", 42), ("+5", 5), (2.0, 2), ("7.0", 7), (9_007_199_254_740_993, 9_007_199_254_740_993),
        ("1.5", REJECTED), (1.5, REJECTED), ("abc", REJECTED), ("1e3", REJECTED), ("0x10", REJECTED), (True, REJECTED),
        ("99999999999999999999", REJECTED), ({"a": 1}, REJECTED), ([1], REJECTED),
    ])


def test_float_accepts_numbers_only(tmp_path):
    check(tmp_path, "temperature", [
        (0.7, 0.7), ("0.7", 0.7), (1, 1.0), ("1e-1", 0.1), (".5", 0.5),
        ("warm", REJECTED), ("NaN", REJECTED), ("inf", REJECTED), (True, REJECTED), ("1_0", REJECTED),
    ])


def test_bool_accepts_true_false_one_zero(tmp_path):
    check(tmp_path, "logprobs", [
        (True, True), (False, False), ("true", True), ("FALSE", False), (1, True), (0, False), ("1", True),
        (" 0 ", False), ("yes", REJECTED), (2, REJECTED), ("t", REJECTED), (0.5, REJECTED),
    ])


def test_strings_accept_numbers_and_reject_objects(tmp_path):
    check(tmp_path, "api_key_id", [(12345, "12345"), ({"a": 1}, REJECTED), (["x"], REJECTED)])
    details = [r["detail"] for r in run(tmp_path / "2", "prompt", [[{"type": "text", "text": "hi"}]])]
    assert details == ['prompt: expected a string, got a JSON array']


def test_text_that_looks_like_json_is_still_text(tmp_path):
    check(tmp_path, "prompt", [("[INST] {write} [/INST]", "[INST] {write} [/INST]"), ('{"a": 1}', '{"a": 1}')])


# --- timestamps --------------------------------------------------------------

def test_timestamps_are_normalized_to_utc(tmp_path):
    noon = utc(2025, 3, 1, 12)
    check(tmp_path, "ts", [
        ("2025-03-01T12:00:00Z", noon),
        ("2025-03-01T14:30:00+02:30", noon),
        ("2025-03-01T07:00:00-05:00", noon),
        ("2025-03-01 12:00:00", noon),  # no offset: UTC
        ("2025-03-01t12:00:00z", noon),  # RFC 3339 allows lower case
        ("2025-03-01T12:00:00.123456Z", utc(2025, 3, 1, 12, 0, 0, 123456)),
        (" 2025-03-01T12:00:00Z ", noon),
        ("yesterday", REJECTED), ("2025-02-30T00:00:00Z", REJECTED), (1740830400, REJECTED),
    ], reason="bad_timestamp")


def test_timestamps_outside_1970_to_2100_are_rejected(tmp_path):
    check(tmp_path, "ts", [("1969-12-31T23:59:59Z", REJECTED), ("2101-01-01T00:00:00Z", REJECTED),
                           ("1970-01-01T00:00:00Z", utc(1970, 1, 1)), ("2100-12-31T23:59:59Z", utc(2100, 12, 31, 23, 59, 59))],
          reason="out_of_range")


def test_parquet_timestamps_naive_means_utc_and_zones_are_converted(tmp_path, ws):
    def table(ids, ts):
        return pa.table({"request_id": ids, "account_id": ["x", "x"], "model": ["m", "m"], "prompt": ["p", "p"], "ts": ts})
    naive = pa.array([datetime(2025, 3, 1, 12)] * 2, pa.timestamp("ns"))
    zoned = pa.array([datetime(2025, 3, 1, 12)] * 2, pa.timestamp("ms", tz="UTC")).cast(pa.timestamp("ms", tz="+05:00"))
    pq.write_table(table(["a", "b"], naive), tmp_path / "naive.parquet")
    pq.write_table(table(["c", "d"], zoned), tmp_path / "zoned.parquet")
    ingest([tmp_path / "naive.parquet", tmp_path / "zoned.parquet"], workspace=ws)
    assert {r["ts"] for r in stored(ws).to_pylist()} == {utc(2025, 3, 1, 12)}  # the same instant, in UTC


# --- vocabularies, countries, ranges, lengths ----------------------------------

def test_enumerations_are_case_insensitive_and_stored_lower_case(tmp_path):
    check(tmp_path, "status", [(" Rate_Limited ", "rate_limited"), ("OK", "ok"), ("weird", REJECTED)],
          reason="not_in_vocabulary")
    assert run(tmp_path / "2", "status", ["weird"])[0]["detail"] == \
        'status: "weird" is not one of ok, error, rate_limited, refused'


def test_account_vocabulary_and_country(tmp_path):
    check(tmp_path, "account_type", [("Enterprise", "enterprise"), ("vip", REJECTED)], table="accounts",
          reason="not_in_vocabulary")
    check(tmp_path / "2", "billing_country", [(" fr ", "FR"), ("France", REJECTED)], table="accounts",
          reason="bad_country_code")


def test_country_codes_are_two_letters_upper_cased(tmp_path):
    check(tmp_path, "ip_country", [("de", "DE"), ("USA", REJECTED), ("D1", REJECTED), ("D", REJECTED)],
          reason="bad_country_code")


def test_numbers_outside_their_range_are_rejected(tmp_path):
    check(tmp_path, "turn", [(-1, REJECTED), (0, 0)], reason="out_of_range")
    check(tmp_path / "2", "n", [(0, REJECTED), (1, 1)], reason="out_of_range")
    check(tmp_path / "3", "temperature", [(10.5, REJECTED), (-0.1, REJECTED), (10, 10.0)], reason="out_of_range")


def test_identifiers_are_trimmed_text_is_not(tmp_path):
    check(tmp_path, "account_id", [("  acct-9 ", "acct-9"), ("a\tb", "a\tb")])
    check(tmp_path / "2", "prompt", [("  indented prompt\n", "  indented prompt\n")])


def test_too_long_values_are_quarantined_never_truncated(tmp_path):
    check(tmp_path, "account_id", [("a" * (MAX_ID_CHARS + 1), REJECTED), ("a" * MAX_ID_CHARS, "a" * MAX_ID_CHARS)],
          reason="too_long")
    assert run(tmp_path / "2", "account_id", ["a" * 513])[0]["detail"] == \
        f"account_id: {MAX_ID_CHARS + 1} characters, more than the {MAX_ID_CHARS} allowed"
    (prompt,) = run(tmp_path / "3", "prompt", ["é" * MAX_TEXT_CHARS])  # exactly the limit, in characters
    assert prompt == "é" * MAX_TEXT_CHARS


def test_several_problems_one_reason_every_problem_in_detail(tmp_path):
    (bad,) = run(tmp_path, "account_id", [...], ts="soon", turn="x", status="weird")
    assert bad["reason"] == "missing_required"  # the first by the fixed priority
    for part in ("account_id: required", "ts: expected an RFC 3339", "turn: expected an integer", 'status: "weird"'):
        assert part in bad["detail"]


def test_detail_shows_values_short_and_printable(tmp_path):
    (bad,) = run(tmp_path, "ts", ["x\x01y" + "z" * 200])
    shown = bad["detail"].split("got ", 1)[1]
    assert "\x01" not in shown and "\ufffd" in shown
    assert shown.endswith('…"') and len(shown) < 90


# --- every reason code ----------------------------------------------------------

def _make(tmp_path, code):
    """A file whose first record is quarantined for `code`."""
    p = tmp_path / f"{code}.jsonl"
    if code == "unreadable_file":
        p = tmp_path / "in.parquet"
        p.write_bytes(b"PAR1 this is not really parquet")
    elif code == "truncated_file":
        p = tmp_path / "in.jsonl.gz"
        data = gzip.compress(b"".join(json.dumps(event(i)).encode() + b"\n" for i in range(50)))
        p.write_bytes(data[: len(data) // 2])
    elif code == "bad_encoding":
        p.write_bytes(json.dumps(event()).replace("model-large", "model-\xff").encode("latin-1") + b"\n")
    elif code == "malformed_json":
        write_jsonl(p, ['{"request_id": "r1", '])
    elif code == "not_an_object":
        write_jsonl(p, ['["r1"]'])
    elif code == "malformed_csv":
        p = write_csv(tmp_path / "in.csv", [event()])
        p.write_text(p.read_text() + "only,three,fields\n")
    else:
        changes = {"too_long": {"model": "m" * 600}, "missing_required": {"prompt": ...},
                   "wrong_type": {"n": "many"}, "bad_timestamp": {"ts": "noon"}, "out_of_range": {"n": 0},
                   "not_in_vocabulary": {"status": "fine"}, "bad_country_code": {"ip_country": "Germany"}}[code]
        write_jsonl(p, [event(**changes)])
    return p


def _openai_log(tmp_path, name, records):
    """An OpenAI log file (ingest/formats/openai.py) of request/response records and batch lines."""
    return write_jsonl(tmp_path / f"{name}.jsonl", [json.dumps(r) for r in records])


BATCH_REQUEST = {"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions",
                 "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}}
BATCH_RESULT = {"id": "batch_req_1", "custom_id": "c1", "response": {"status_code": 200, "body": {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1767225600, "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]}}}
LOG_CODES = {  # the codes only log formats produce, and a file of each
    "unknown_format": [{"hello": "world"}],
    "unrecognized_record": [BATCH_REQUEST, BATCH_RESULT, {"custom_id": "c2", "note": "neither half"}],
    "ambiguous_batch_record": [BATCH_REQUEST | {"custom_id": "c3"}, BATCH_REQUEST | {"custom_id": "c3"},
                               BATCH_RESULT | {"custom_id": "c3"}],
    "unpaired_batch_record": [BATCH_RESULT | {"custom_id": "c4"}],
}


def test_every_reason_code_is_produced_and_explained(tmp_path, ws):
    report = ingest([_make(tmp_path, code) for code in CODES if code not in LOG_CODES], workspace=ws)
    logs = ingest([_openai_log(tmp_path, code, records) for code, records in LOG_CODES.items()],
                  workspace=ws, log_format="auto")
    assert set(report.events.quarantine_reasons) | set(logs.events.quarantine_reasons) == set(CODES)
    for f in report.events.file_reports + logs.events.file_reports:
        assert f.rows_read == f.rows_ingested + f.duplicates + f.quarantined + sum(f.skipped_records.values())
    assert all(q["detail"] for q in quarantine(ws))


def test_the_quarantine_vocabulary_is_closed():
    from distillguard.schema.quarantine import PRIORITY, REASONS, check
    assert len(set(CODES)) == len(CODES) == len(PRIORITY) and all(r.meaning.endswith(".") for r in REASONS)
    assert check("too_long") == "too_long"
    with pytest.raises(ValueError, match="unknown quarantine reason"):
        check("oops")
