"""The audit trail: every verdict names the scan that reached it, and the same input,
configuration and key give the same bytes."""

from __future__ import annotations

import hashlib
import json

import pyarrow.parquet as pq

from distillguard.ingest import Workspace, ingest
from distillguard.verdicts import scan
from distillguard.verdicts.read import ScanDir

SCAN_FILES = ("accounts.parquet", "campaigns.parquet", "evidence.parquet", "indicators.parquet",
              "timeline.parquet", "models.parquet", "samples.parquet", "scan.json")


def _rescan(scanned, out):
    ws = Workspace(scanned.scan_dir.parent / "workspace")
    scan(ws.events_sql(), ws.accounts_sql(), out, input_fingerprint=ws.fingerprint())
    return out


def test_a_rerun_on_the_same_input_writes_the_same_bytes(scanned, tmp_path):
    again = _rescan(scanned, tmp_path / "again")
    for name in SCAN_FILES:
        assert (again / name).read_bytes() == (scanned.scan_dir / name).read_bytes(), name


def test_every_verdict_names_its_scan_and_scan_json_pins_every_output(scanned):
    d = ScanDir(scanned.scan_dir)
    meta = d.meta
    for key in ("version", "scan_id", "config_hash", "input_fingerprint", "key_id", "as_of"):
        assert meta[key], key
    for name in ("accounts", "campaigns"):
        assert set(d.table(name).column("scan_id").to_pylist()) == {meta["scan_id"]}
    for name, digest in meta["outputs"].items():
        assert digest == "sha256:" + hashlib.sha256((scanned.scan_dir / name).read_bytes()).hexdigest()
    assert "seconds" not in meta and json.loads((scanned.scan_dir / "timings.json").read_text())


def test_every_flag_is_backed_by_evidence_rows_that_point_at_its_own_exchanges(scanned):
    d = ScanDir(scanned.scan_dir)
    events = {e["request_id"]: e["account_id"] for e in pq.read_table(scanned.events, columns=["request_id", "account_id"]).to_pylist()}
    evidence = d.table("evidence").to_pylist()
    for e in evidence:
        if e["kind"] == "exchange":
            assert events[e["ref"]] == e["account_id"]
    backed = {(e["account_id"], e["reason"]) for e in evidence}
    for a in d.table("accounts").to_pylist():
        if a["flagged"]:
            assert all((a["account_id"], r) in backed for r in a["reasons"]), a["account_id"]


def test_the_workspace_fingerprint_names_the_files_ingested(hand_made_world, tmp_path):
    folder, _ = hand_made_world
    events, accounts = str(folder / "events.parquet"), str(folder / "accounts.parquet")
    for name in ("a", "b"):
        ingest(events=[events], accounts=[accounts], workspace=tmp_path / name)
    ingest(events=[events], workspace=tmp_path / "events-only")
    a, b, c = (Workspace(tmp_path / n).fingerprint() for n in ("a", "b", "events-only"))
    assert a == b and a != c
