"""Formats, framing and unreadable files: the same data gives the same tables, and
every record that cannot be stored is quarantined at its exact place."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_helpers import account, event, quarantine, stored, write_csv, write_jsonl, write_parquet

from distillguard.ingest import IngestError, ingest
from distillguard.schema.contract import ACCOUNTS, EVENTS

ROWS = [event(i) for i in range(20)] + [event(20, system="be terse", reasoning_tokens=5, thinking=True, tools=2,
                                              tls_fingerprint="t13d", client_timezone="Europe/Berlin", turn=None)]
ACCOUNT_ROWS = [account(i) for i in range(6)] + [account(6, account_type="edu", verified=True, org_id="org-1")]


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "ndjson", "csv", "csv.gz", "parquet", "parquet-strings"])
def test_every_format_stores_identical_tables(tmp_path, fmt):
    reference = tmp_path / "ref"
    ingest([write_jsonl(tmp_path / "ref.jsonl", ROWS)], [write_jsonl(tmp_path / "ref-acc.jsonl", ACCOUNT_ROWS)],
           workspace=reference)
    ws = tmp_path / fmt
    if fmt.startswith("parquet"):
        typed = fmt == "parquet"
        files = (write_parquet(tmp_path / "e.parquet", ROWS, EVENTS, typed),
                 write_parquet(tmp_path / "a.parquet", ACCOUNT_ROWS, ACCOUNTS, typed))
    elif fmt.startswith("csv"):
        files = (write_csv(tmp_path / f"e.{fmt}", ROWS), write_csv(tmp_path / f"a.{fmt}", ACCOUNT_ROWS))
    else:
        files = (write_jsonl(tmp_path / f"e.{fmt}", ROWS), write_jsonl(tmp_path / f"a.{fmt}", ACCOUNT_ROWS))
    report = ingest([files[0]], [files[1]], workspace=ws)
    assert report.events.quarantined == report.accounts.quarantined == 0
    assert stored(ws, "events").equals(stored(reference, "events"))
    assert stored(ws, "accounts").equals(stored(reference, "accounts"))


def test_stored_parts_have_exactly_the_contract_types(tmp_path, ws):
    ingest([write_jsonl(tmp_path / "e.jsonl", ROWS)], [write_jsonl(tmp_path / "a.jsonl", ACCOUNT_ROWS)], workspace=ws)
    for table in (EVENTS, ACCOUNTS):
        schema = pq.read_schema(next((ws / table.name).glob("*.parquet")))
        assert [(f.name, f.type) for f in schema] == [
            *((f.name, f.arrow_type) for f in table.fields),
            ("_batch_id", pa.string()), ("_source_file", pa.string()), ("_source_line", pa.int64())]


def test_csv_records_with_quoted_newlines_are_located_by_their_first_line(tmp_path, ws):
    path = tmp_path / "e.csv"
    header = "request_id,ts,account_id,model,prompt,turn"
    lines = [
        header,                                                          # 1
        'r1,2025-03-01T12:00:00Z,a,m,"two\nlines",0',                     # 2-3
        'r2,2025-03-01T12:00:00Z,a,m,"a ""quoted""\nthree\nlines",x',     # 4-6: bad turn
        "",                                                              # 7: blank, not a record
        'r3,2025-03-01T12:00:00Z,a,m,short',                             # 8: one field missing
        'r4,2025-03-01T12:00:00Z,a,m,"bad"quote,0',                      # 9
        'r5,2025-03-01T12:00:00Z,a,m,"ok, fine",1',                      # 10
    ]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())  # CRLF records; LF inside quoted fields
    report = ingest([path], workspace=ws)
    assert report.events.rows_read == 5 and report.events.rows_ingested == 2
    bad = {q["source_line"]: q for q in quarantine(ws)}
    assert {n: q["reason"] for n, q in bad.items()} == {4: "wrong_type", 8: "malformed_csv", 9: "malformed_csv"}
    assert bad[4]["raw"] == b'r2,2025-03-01T12:00:00Z,a,m,"a ""quoted""\nthree\nlines",x\r'
    assert "expected 6 fields as in the header, got 5" in bad[8]["detail"]
    good = {r["request_id"]: r for r in stored(ws).to_pylist()}
    assert good["r1"]["prompt"] == "two\nlines" and good["r5"]["prompt"] == "ok, fine"
    lines_of = dict(zip(*[stored_col(ws, c) for c in ("request_id", "_source_line")]))
    assert lines_of == {"r1": 2, "r5": 10}


def stored_col(ws, column):
    from ingest_helpers import read

    from distillguard.ingest import Workspace
    return read(f"SELECT {column} FROM ({Workspace(ws).events_sql()}) ORDER BY request_id").column(0).to_pylist()


def test_jsonl_lines_keep_their_physical_numbers_and_bytes(tmp_path, ws):
    bad_utf8 = json.dumps(event(2)).encode().replace(b"model-large", b"model-\xc3\x28")
    path = write_jsonl(tmp_path / "e.jsonl", [event(0), b"", b"   ", event(1), bad_utf8, b"{oops", b'"str"', event(3)],
                       newline=b"\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a byte order mark, as some editors write
    report = ingest([path], workspace=ws)
    assert report.events.rows_read == 6 and report.events.rows_ingested == 3
    bad = {q["source_line"]: (q["reason"], q["raw"]) for q in quarantine(ws)}
    assert bad == {5: ("bad_encoding", bad_utf8 + b"\r"), 6: ("malformed_json", b"{oops\r"),
                   7: ("not_an_object", b'"str"\r')}
    assert stored_col(ws, "_source_line") == [1, 4, 8]


def test_truncated_gzip_keeps_rows_before_the_cut(tmp_path, ws):
    lines = [json.dumps(event(i)).encode() for i in range(400)]
    data = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    report = ingest([path], workspace=ws)
    kept = stored(ws).column("request_id").to_pylist()
    assert 0 < len(kept) < 400 and kept == [f"req-{i:06d}" for i in range(len(kept))]
    (cut,) = quarantine(ws)
    assert cut["reason"] == "truncated_file" and cut["source_line"] == len(kept) + 1
    assert lines[len(kept)].startswith(cut["raw"])  # the partial line, as far as it got
    assert report.events.rows_read == len(kept) + 1
    again = ingest([path], workspace=ws)  # same content: nothing new, no second quarantine row
    assert again.events.skipped_files == 1 and len(quarantine(ws)) == 1


def test_truncated_parquet_is_one_quarantine_row_and_other_files_continue(tmp_path, ws):
    good = write_parquet(tmp_path / "a.parquet", ROWS[:5])
    broken = write_parquet(tmp_path / "b.parquet", ROWS[5:])
    broken.write_bytes(broken.read_bytes()[:-100])  # the footer is gone
    report = ingest([good, broken], workspace=ws)
    assert report.events.rows_ingested == 5 and report.events.quarantined == 1
    (bad,) = quarantine(ws)
    assert bad["reason"] == "unreadable_file" and bad["source_line"] is None
    assert bad["source_file"] == str(broken) and "Parquet" in bad["detail"]


def test_parquet_rows_are_located_by_row_number_and_rendered_as_json(tmp_path, ws):
    rows = [event(0), event(1, status="bogus"), event(2)]
    ingest([write_parquet(tmp_path / "e.parquet", rows)], workspace=ws)
    (bad,) = quarantine(ws)
    assert bad["source_line"] == 2 and bad["reason"] == "not_in_vocabulary"
    assert json.loads(bad["raw"])["status"] == "bogus"


def test_parquet_columns_of_other_types_are_converted_or_rejected(tmp_path, ws):
    table = pa.table({
        "request_id": ["a", "b", "c"], "account_id": ["x"] * 3, "model": ["m"] * 3, "prompt": ["p"] * 3,
        "ts": ["2025-03-01T12:00:00Z"] * 3,  # text timestamps
        "turn": ["1", "2", "two"],  # text integers
        "asn": pa.array([1.0, 2.0, 2.5]),  # doubles for an integer
        "temperature": pa.array([1, 2, 3], pa.int32()),
        "tools": pa.array([[1], [2], [3]]),  # a list: never an integer
    })
    pq.write_table(table.slice(0, 2).drop_columns(["tools"]), tmp_path / "ok.parquet")
    pq.write_table(table, tmp_path / "mixed.parquet")
    report = ingest([tmp_path / "ok.parquet"], workspace=ws)
    assert report.events.rows_ingested == 2
    rows = stored(ws).to_pylist()
    assert [r["turn"] for r in rows] == [1, 2] and [r["asn"] for r in rows] == [1, 2]
    report = ingest([tmp_path / "mixed.parquet"], workspace=tmp_path / "ws2")
    assert report.events.quarantine_reasons == {"wrong_type": 3}
    assert "tools: expected an integer, got a BIGINT[] value" in quarantine(tmp_path / "ws2")[0]["detail"]


def test_extra_columns_are_ignored_and_listed(tmp_path, ws):
    rows = [event(0, region="eu"), event(1, tenant={"id": 1})]
    for fmt, write in (("jsonl", write_jsonl), ("csv", write_csv)):
        report = ingest([write(tmp_path / f"e.{fmt}", rows)], workspace=tmp_path / fmt)
        assert report.events.ignored_columns == ("region", "tenant") and report.events.rows_ingested == 2
    report = ingest([write_parquet(tmp_path / "e.parquet", [event(0)], typed=False)], workspace=ws)
    assert report.events.ignored_columns == ()


def test_folders_globs_and_bad_paths(tmp_path, ws):
    (tmp_path / "in" / "day=1").mkdir(parents=True)
    write_jsonl(tmp_path / "in" / "day=1" / "a.jsonl", ROWS[:3])
    write_csv(tmp_path / "in" / "b.csv", ROWS[3:6])
    (tmp_path / "in" / "notes.txt").write_text("ignored in a folder")
    (tmp_path / "in" / ".hidden.jsonl").write_text("not data")
    report = ingest([tmp_path / "in"], workspace=ws)
    assert report.events.files == 2 and report.events.rows_ingested == 6
    report = ingest([str(tmp_path / "in" / "**" / "*.jsonl")], workspace=tmp_path / "ws2")
    assert report.events.files == 1
    for bad in (tmp_path / "missing.jsonl", tmp_path / "in" / "notes.txt", str(tmp_path / "nothing*.csv")):
        with pytest.raises(IngestError, match="missing|unsupported|no supported") as e:
            ingest([bad], workspace=tmp_path / "never")
        assert str(bad) in str(e.value)
    assert not (tmp_path / "never").exists()  # checked before anything is written
