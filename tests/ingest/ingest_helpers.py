"""Small factories for valid rows and input files, and readers for what was stored.

Tests write their own data so that ingest is tested on exactly the bytes it must
handle (and does not depend on the simulator). A module of its own, not
conftest.py, so that `from ingest_helpers import ...` cannot pick up another
folder's conftest.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.engine import Engine
from distillguard.ingest import Workspace
from distillguard.schema.contract import ACCOUNTS, EVENTS

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def event(i: int = 0, **changes) -> dict:
    """A valid events row (JSON-ready: ts is an RFC 3339 string)."""
    row = {
        "request_id": f"req-{i:06d}",
        "ts": (T0 + timedelta(seconds=7 * i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "account_id": f"acct-{i % 7}",
        "model": "model-large",
        "prompt": f"Explain step by step how to solve problem {i}.",
        "api_key_id": f"key-{i % 5}",
        "conversation_id": f"conv-{i // 2}",
        "turn": i % 2,
        "response": f"Answer {i}",
        "input_tokens": 10 + i,
        "output_tokens": 200 + i,
        "max_tokens": 4096,
        "temperature": 0.5,
        "logprobs": i % 3 == 0,
        "n": 1,
        "status": "ok",
        "client_ip": f"203.0.113.{i % 250}",
        "asn": 64500 + i % 3,
        "ip_country": "DE",
        "user_agent": "client/1.0",
    }
    row.update(changes)
    return {k: v for k, v in row.items() if v is not ...}  # `field=...` drops a field


def account(i: int = 0, **changes) -> dict:
    row = {
        "account_id": f"acct-{i}",
        "created_at": (T0 - timedelta(days=30 - i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "account_type": "free",
        "email_domain": "example.org",
        "billing_country": "DE",
        "signup_asn": 64500,
        "verified": False,
    }
    row.update(changes)
    return {k: v for k, v in row.items() if v is not ...}


def _open(path: Path, mode: str):
    return gzip.open(path, mode) if path.name.endswith(".gz") else open(path, mode)


def write_jsonl(path: Path, rows: list, newline: bytes = b"\n") -> Path:
    """rows: dicts (dumped as JSON), or str/bytes written as the line itself."""
    lines = []
    for r in rows:
        if isinstance(r, dict):
            r = json.dumps(r)
        lines.append(r.encode() if isinstance(r, str) else r)
    with _open(path, "wb") as f:
        f.write(b"".join(line + newline for line in lines))
    return path


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else _csv_value(r[c]) for c in columns])
    with _open(path, "wb") as f:
        f.write(buf.getvalue().encode())
    return path


def _csv_value(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def write_parquet(path: Path, rows: list[dict], table=EVENTS, typed: bool = True) -> Path:
    """Rows as Parquet with the contract's types (typed) or as the JSON-ready values."""
    if not typed:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        pq.write_table(pa.table({k: [r.get(k) for r in rows] for k in keys}), path)
        return path
    schema = pa.schema([(f.name, f.arrow_type) for f in table.fields if any(f.name in r for r in rows)])
    cols = {}
    for field in schema:
        values = [r.get(field.name) for r in rows]
        if pa.types.is_timestamp(field.type):
            values = [None if v is None else datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values]
        cols[field.name] = pa.array(values, field.type)
    pq.write_table(pa.table(cols, schema=schema), path)
    return path


def read(sql: str) -> pa.Table:
    with Engine.open() as engine:
        return engine.arrow(sql)


def stored(ws: Path, table: str = "events") -> pa.Table:
    """A stored table sorted by its key, contract columns only."""
    w = Workspace(ws)
    contract = {"events": EVENTS, "accounts": ACCOUNTS}[table]
    sql = {"events": w.events_sql, "accounts": w.accounts_sql}[table]()
    return read(f"SELECT {', '.join(contract.names)} FROM ({sql}) ORDER BY {contract.key}")


def quarantine(ws: Path) -> list[dict]:
    w = Workspace(ws)
    return read(f"SELECT * FROM ({w.quarantine_sql()}) ORDER BY table_name, source_file, source_line").to_pylist()


def ws_files(ws: Path) -> dict[str, int]:
    """Every data file in the workspace and its size, to prove nothing changed."""
    return {str(p.relative_to(ws)): p.stat().st_size for p in sorted(ws.rglob("*.parquet")) if "tmp" not in p.parts}
