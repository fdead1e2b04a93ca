"""The workspace: idempotent re-ingest, appends, de-duplication, account versions,
atomic commits, crash recovery, and the reader API for later stages."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_helpers import T0, account, event, quarantine, read, stored, write_jsonl, write_parquet, ws_files

import distillguard.ingest.run as run
from distillguard.engine import Engine
from distillguard.ingest import IngestError, Workspace, ingest
from distillguard.ingest.workspace import CATALOG


def counts(ws):
    return Workspace(ws).counts()


def test_reingesting_the_same_data_changes_nothing(tmp_path, ws):
    events = write_jsonl(tmp_path / "e.jsonl", [event(i) for i in range(30)] + ["not json", event(3)])
    accounts = write_jsonl(tmp_path / "a.jsonl", [account(i) for i in range(5)])
    first = ingest([events], [accounts], workspace=ws)
    assert first.committed and first.events.rows_ingested == 30 and first.events.duplicates == 1
    before, before_counts = ws_files(ws), counts(ws)
    copy = shutil.copy(events, tmp_path / "renamed.jsonl")  # same content under another name
    again = ingest([events, copy], [accounts], workspace=ws)
    assert not again.committed
    assert again.events.skipped_files == 2 and again.events.rows_ingested == again.events.quarantined == 0
    assert ws_files(ws) == before and counts(ws) == before_counts
    assert again.totals == first.totals


def test_new_data_is_appended_and_known_ids_are_duplicates(tmp_path, ws):
    ingest([write_jsonl(tmp_path / "day1.jsonl", [event(i) for i in range(10)])], workspace=ws)
    report = ingest([write_jsonl(tmp_path / "day2.jsonl", [event(i) for i in range(5, 15)])], workspace=ws)
    assert report.events.rows_ingested == 5 and report.events.duplicates == 5
    assert report.totals["events"] == 15 and report.totals["batches"] == 2
    assert stored(ws).column("request_id").to_pylist() == [f"req-{i:06d}" for i in range(15)]


def test_within_an_input_the_first_row_by_file_then_line_wins(tmp_path, ws):
    a = write_jsonl(tmp_path / "a.jsonl", [event(1, prompt="a1"), event(1, prompt="a2")])
    b = write_jsonl(tmp_path / "b.jsonl", [event(2, prompt="b1"), event(1, prompt="b2")])
    c = write_parquet(tmp_path / "c.parquet", [event(2, prompt="c1")])
    report = ingest([b, a, c], workspace=ws)  # file order is the order given
    assert {r["request_id"]: r["prompt"] for r in stored(ws).to_pylist()} == {"req-000001": "b2", "req-000002": "b1"}
    assert report.events.duplicates == 3
    per_file = {f.path.rsplit("/", 1)[1]: (f.rows_read, f.rows_ingested, f.duplicates) for f in report.events.file_reports}
    assert per_file == {"b.jsonl": (2, 2, 0), "a.jsonl": (2, 0, 2), "c.parquet": (1, 0, 1)}


def test_account_rows_are_versioned_and_the_latest_wins(tmp_path, ws):
    ingest(accounts=[write_jsonl(tmp_path / "a1.jsonl", [account(1), account(2)])], workspace=ws)
    same = ingest(accounts=[write_jsonl(tmp_path / "a2.jsonl", [account(1), account(2, account_type="PAID")])],
                  workspace=ws)
    assert same.accounts.duplicates == 1 and same.accounts.rows_ingested == 1  # only account 2 changed
    rows = {r["account_id"]: r["account_type"] for r in stored(ws, "accounts").to_pylist()}
    assert rows == {"acct-1": "free", "acct-2": "paid"}
    w = Workspace(ws)
    assert read(f"SELECT count(*) AS n FROM ({w.account_versions_sql()})").column(0)[0].as_py() == 3
    last = ingest(accounts=[write_jsonl(tmp_path / "a3.jsonl", [account(3, account_type="edu"),
                                                                 account(3, account_type="research")])], workspace=ws)
    assert last.accounts.duplicates == 1  # within one input the last row of an account wins
    assert stored(ws, "accounts").to_pylist()[-1]["account_type"] == "research"
    assert last.totals["accounts"] == 3


def test_accounts_missing_from_the_accounts_table_are_kept_and_counted(tmp_path, ws):
    events = write_jsonl(tmp_path / "e.jsonl", [event(i) for i in range(14)])  # accounts acct-0..acct-6
    report = ingest([events], [write_jsonl(tmp_path / "a.jsonl", [account(i) for i in range(4)])], workspace=ws)
    assert report.unknown_accounts == 3 and report.events.rows_ingested == 14
    report = ingest(accounts=[write_jsonl(tmp_path / "a2.jsonl", [account(4), account(5)])], workspace=ws)
    assert report.unknown_accounts == 1 and counts(ws)["unknown_accounts"] == 1


def test_a_failed_commit_leaves_the_workspace_as_it_was_and_a_rerun_succeeds(tmp_path, ws, monkeypatch):
    ingest([write_jsonl(tmp_path / "day1.jsonl", [event(i) for i in range(10)])], workspace=ws)
    before, before_counts = ws_files(ws), counts(ws)
    day2 = write_jsonl(tmp_path / "day2.jsonl", [event(i) for i in range(10, 20)] + ["bad line"])

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C between staging and commit

    monkeypatch.setattr(run, "commit_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest([day2], workspace=ws)
    assert ws_files(ws) == before and counts(ws) == before_counts
    assert not any((ws / "tmp").glob("2*"))  # staging removed
    monkeypatch.undo()
    report = ingest([day2], workspace=ws)
    assert report.events.rows_ingested == 10 and report.events.quarantined == 1 and report.totals["events"] == 20


def test_a_hard_crash_leaves_orphans_that_readers_ignore_and_the_next_ingest_removes(tmp_path, ws):
    ingest([write_jsonl(tmp_path / "day1.jsonl", [event(i) for i in range(10)])], workspace=ws)
    # What a kill -9 between rename and commit leaves: a part nobody committed, and staging.
    orphan = ws / "events" / "29990101T000000.000000Z-0000.parquet"
    write_parquet(orphan, [event(99)])
    (ws / "tmp" / "29990101T000000.000000Z" / "stage").mkdir(parents=True)
    assert stored(ws).num_rows == 10  # readers only see parts in the manifest
    report = ingest([write_jsonl(tmp_path / "day2.jsonl", [event(10)])], workspace=ws)
    assert not orphan.exists() and not (ws / "tmp" / "29990101T000000.000000Z").exists()
    assert report.totals["events"] == 11


def test_workspace_api_and_catalog_views(tmp_path, ws):
    with pytest.raises(IngestError, match="not a distillguard workspace"):
        Workspace(tmp_path / "nothing")
    ingest([write_jsonl(tmp_path / "e.jsonl", [event(i) for i in range(5)] + ["{"])],
           [write_jsonl(tmp_path / "a.jsonl", [account(0)])], workspace=ws)
    w = Workspace(ws)
    assert w.counts() == {"events": 5, "accounts": 1, "quarantined": 1, "unknown_accounts": 4, "batches": 1}
    assert read(f"SELECT count(*) FROM ({w.quarantine_sql()})").column(0)[0].as_py() == 1
    with Engine.open(ws / CATALOG, read_only=True) as engine:  # the catalog's own views, for ad hoc SQL
        assert engine.rows("SELECT count(*) FROM events")[0][0] == 5
        assert engine.rows("SELECT count(*) FROM accounts")[0][0] == 1
        assert engine.rows("SELECT count(*) FROM quarantine")[0][0] == 1


def test_progress_is_reported(tmp_path, ws):
    calls = []
    ingest([write_jsonl(tmp_path / "e.jsonl", [event(i) for i in range(50)])], workspace=ws,
           progress=lambda label, done, total: calls.append((label, done, total)))
    labels = [c[0] for c in calls]
    assert {"hashing", "events", "writing", "committing"} <= set(labels)
    assert all(0 <= done <= total for _, done, total in calls)
    assert calls[-1] == ("committing", 1, 1)


def test_a_second_ingest_waits_for_no_one_it_fails_clearly(tmp_path, ws):
    ingest([write_jsonl(tmp_path / "e.jsonl", [event(0)])], workspace=ws)
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import duckdb, time; c = duckdb.connect({str(ws / CATALOG)!r}); "
                               f"print('ready', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(IngestError, match="busy"):
            ingest([write_jsonl(tmp_path / "e2.jsonl", [event(1)])], workspace=ws)
    finally:
        holder.kill()
        holder.wait()


def test_dedupe_against_stored_data_larger_than_the_memory_limit(tmp_path, ws):
    """The anti-join against stored ids and the writes spill to tmp/ instead of failing."""
    pad = "".join(chr(97 + i % 26) for i in range(2000))

    def rows(lo, hi):  # ~2 KB each, all different (no dictionary can shrink them)
        ids = range(lo, hi)
        return pa.table({"request_id": [f"req-{i:06d}" for i in ids], "account_id": [f"acct-{i % 7}" for i in ids],
                         "model": ["m"] * len(ids), "prompt": [f"{i} {pad[i % 50:]}" for i in ids],
                         "ts": pa.array([T0] * len(ids), pa.timestamp("us", tz="UTC"))})

    limits = {"memory_limit": "160MB", "threads": 1}
    pq.write_table(rows(0, 80_000), tmp_path / "old.parquet")  # ~170 MB of text in memory
    pq.write_table(rows(75_000, 85_000), tmp_path / "new.parquet")
    ingest([tmp_path / "old.parquet"], workspace=ws, **limits)
    report = ingest([tmp_path / "new.parquet"], workspace=ws, **limits)
    assert report.events.rows_ingested == 5_000 and report.events.duplicates == 5_000
    assert report.totals["events"] == 85_000 and quarantine(ws) == []
