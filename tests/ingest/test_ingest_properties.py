"""Properties that must hold whatever the input: ingest never raises on bad rows,
every record read is accounted for, every good row is stored exactly once, and
every bad row is in quarantine at its line with the right reason."""

from __future__ import annotations

import gzip
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import event, quarantine, read, write_csv, write_jsonl

from distillguard.ingest import Workspace, ingest

# Ways to break one line, each with the reason it must be quarantined for.
CORRUPTIONS = {
    "bad_encoding": lambda i: json.dumps(event(i)).encode().replace(b"model-large", b"model-\xff\xfe"),
    "malformed_json": lambda i: json.dumps(event(i))[:-5].encode(),
    "not_an_object": lambda i: json.dumps([event(i)]).encode(),
    "missing_required": lambda i: json.dumps(event(i, prompt=...)).encode(),
    "wrong_type": lambda i: json.dumps(event(i, output_tokens="lots")).encode(),
    "bad_timestamp": lambda i: json.dumps(event(i, ts="31/02/2025 25:00")).encode(),
    "out_of_range": lambda i: json.dumps(event(i, ts="1900-01-01T00:00:00Z")).encode(),
    "not_in_vocabulary": lambda i: json.dumps(event(i, status="fine")).encode(),
    "bad_country_code": lambda i: json.dumps(event(i, ip_country="XYZ")).encode(),
    "too_long": lambda i: json.dumps(event(i, request_id="r" * 600)).encode(),
}

# Each example is a whole ingest (a fraction of a second), so examples are few;
# run with --hypothesis-seed=N, or raise max_examples, to explore further.
SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# A line: ("good", id) -- ids repeat, so duplicates happen -- or (reason, id), or a blank line.
lines = st.lists(
    st.one_of(
        st.tuples(st.just("good"), st.integers(0, 30)),
        st.tuples(st.sampled_from(sorted(CORRUPTIONS)), st.integers(0, 30)),
        st.just(("blank", 0)),
    ),
    max_size=40,
)


def render(spec, shuffle_ts: bool = True):
    """Bytes of each line, the expected quarantine {line: reason}, and the expected stored ids in order."""
    out, bad, first = [], {}, {}
    for n, (kind, i) in enumerate(spec, start=1):
        if kind == "blank":
            out.append(b"")
        elif kind == "good":
            ts = f"2025-03-0{1 + i % 9}T{i % 24:02d}:00:00+0{i % 3}:00"  # out of order, with offsets
            out.append(json.dumps(event(i, ts=ts)).encode())
            first.setdefault(f"req-{i:06d}", n)
        else:
            out.append(CORRUPTIONS[kind](i))
            bad[n] = kind
    return out, bad, first


def check_accounting(report):
    for f in (*report.events.file_reports, *report.accounts.file_reports):
        assert f.rows_read == f.rows_ingested + f.duplicates + f.quarantined, f


def stored_lines(ws):
    t = read(f"SELECT request_id, _source_line FROM ({Workspace(ws).events_sql()})")
    return dict(zip(t.column(0).to_pylist(), t.column(1).to_pylist()))


@SETTINGS
@given(spec=lines, gz=st.booleans())
def test_any_mix_of_good_duplicate_and_bad_lines(tmp_path_factory, spec, gz):
    tmp = tmp_path_factory.mktemp("p")
    raw, bad, first = render(spec)
    path = write_jsonl(tmp / ("e.jsonl.gz" if gz else "e.jsonl"), raw)
    report = ingest([path], workspace=tmp / "ws")
    check_accounting(report)
    assert stored_lines(tmp / "ws") == first  # every good id once, from its first line
    assert {q["source_line"]: q["reason"] for q in quarantine(tmp / "ws")} == bad
    assert {q["source_line"]: q["raw"] for q in quarantine(tmp / "ws")} == {n: raw[n - 1] for n in bad}
    again = ingest([path], workspace=tmp / "ws")
    assert not again.committed and len(quarantine(tmp / "ws")) == len(bad)


@settings(SETTINGS, max_examples=6)
@given(values=st.lists(st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.booleans(), st.none()),
                       min_size=4, max_size=4),
       field=st.sampled_from(["turn", "temperature", "logprobs", "ts", "status", "ip_country", "account_id"]))
def test_arbitrary_values_in_any_field_never_raise(tmp_path_factory, values, field):
    tmp = tmp_path_factory.mktemp("v")
    rows = [event(i, **{field: v}) for i, v in enumerate(values)]
    for fmt, write in (("jsonl", write_jsonl), ("csv", write_csv)):
        report = ingest([write(tmp / f"e.{fmt}", rows)], workspace=tmp / f"ws-{fmt}")
        check_accounting(report)
        assert report.events.rows_read == 4
        assert all(q["detail"] and q["reason"] for q in quarantine(tmp / f"ws-{fmt}"))


@settings(SETTINGS, max_examples=8)
@given(cut=st.floats(0.0, 1.0))
def test_a_gzip_file_cut_anywhere(tmp_path_factory, cut):
    tmp = tmp_path_factory.mktemp("g")
    data = gzip.compress(b"".join(json.dumps(event(i)).encode() + b"\n" for i in range(200)))
    path = tmp / "e.jsonl.gz"
    path.write_bytes(data[: int(len(data) * cut)])
    report = ingest([path], workspace=tmp / "ws")
    check_accounting(report)
    kept = sorted(stored_lines(tmp / "ws").values())
    assert kept == list(range(1, len(kept) + 1))  # a prefix of the file
    reasons = [q["reason"] for q in quarantine(tmp / "ws")]
    assert reasons in ([], ["truncated_file"], ["unreadable_file"])
    assert reasons or len(kept) in (0, 200)  # only an empty or a complete file has no quarantine row


def test_ten_megabyte_values_are_quarantined_not_truncated(tmp_path, ws):
    huge = "x" * (10 << 20)
    path = write_jsonl(tmp_path / "e.jsonl", [event(0), event(1, prompt=huge), event(2, api_key_id=huge), event(3)])
    report = ingest([path], workspace=ws)
    assert report.events.rows_ingested == 2
    assert {q["source_line"]: q["reason"] for q in quarantine(ws)} == {2: "too_long", 3: "too_long"}
    assert len(quarantine(ws)[0]["raw"]) > 10 << 20  # kept whole


def test_one_percent_of_lines_corrupted(tmp_path, ws):
    n, kinds = 2000, sorted(CORRUPTIONS)
    corrupt = {7 + 100 * k: kinds[k % len(kinds)] for k in range(n // 100)}  # exactly 1%, every kind
    raw = [CORRUPTIONS[corrupt[line]](line) if line in corrupt else json.dumps(event(line)).encode()
           for line in range(1, n + 1)]
    path = write_jsonl(tmp_path / "e.jsonl", raw)
    report = ingest([path], workspace=ws)
    assert report.events.rows_read == n and report.events.quarantined == len(corrupt)
    assert report.events.rows_ingested == n - len(corrupt) and report.events.duplicates == 0
    assert {q["source_line"]: q["reason"] for q in quarantine(ws)} == corrupt
    assert sorted(stored_lines(ws).values()) == [line for line in range(1, n + 1) if line not in corrupt]
    before = Workspace(ws).counts()
    again = ingest([path], workspace=ws)
    assert not again.committed and Workspace(ws).counts() == before
