"""What the log-format tests read back from a workspace."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from distillguard.ingest import Workspace
from distillguard.schema.contract import EVENTS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "logs"


def rows(sql: str) -> list[dict]:
    rel = duckdb.sql(sql)
    return [dict(zip(rel.columns, r)) for r in rel.fetchall()]


def by_id(ws: Path) -> dict[str, dict]:
    """The stored events by request_id, their contract fields only."""
    return {r["request_id"]: {f: r[f] for f in EVENTS.names} for r in rows(Workspace(ws).events_sql())}


def sha(text: str) -> str:
    """A reasoning blob as the workspace keeps it."""
    return hashlib.sha256(text.encode()).hexdigest()


def balanced(report) -> bool:
    """Every record read is ingested, a duplicate, quarantined or skipped, file by file."""
    return all(f.rows_read == f.rows_ingested + f.duplicates + f.quarantined + sum(f.skipped_records.values())
               for f in report.events.file_reports)
