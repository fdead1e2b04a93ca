"""The workspace: Parquet parts plus a small DuckDB catalog that says which parts count.

    .distillguard/
      catalog.duckdb   manifest: batches, parts, sources (ingested file fingerprints); views
      events/          <batch_id>-<n>.parquet   contract columns + lineage columns
      accounts/        <batch_id>-<n>.parquet   every version of an account row
      quarantine/      <batch_id>-<n>.parquet   rejected records (schema/quarantine.py)
      reasoning/       <batch_id>-<n>.parquet   reasoning blobs issued and sent back, per exchange
      decisions/       <batch_id>-<n>.parquet   the gateway's decisions (schema/decisions.py)
      tmp/             staging and spill files of an ingest in progress

Readers only ever read the parts listed in the manifest, never a folder listing:
an ingest stages its parts under tmp/, fsyncs them, renames them into place and
only then commits their manifest rows in one transaction. A crash at any point
leaves either the old manifest (the new files are orphans, ignored by readers and
deleted by the next ingest) or the new one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa

from distillguard.engine import Engine, EngineLocked, ident, literal
from distillguard.ingest.sources import IngestError
from distillguard.ingest.validate import SQL_TYPES
from distillguard.schema import quarantine
from distillguard.schema.contract import ACCOUNTS, CONTRACT_VERSION, EVENTS, Table
from distillguard.schema.decisions import DECISIONS

CATALOG = "catalog.duckdb"
DATA_TABLES = ("events", "accounts", "quarantine", "reasoning", "decisions")
# Added to stored events and accounts rows: which ingest stored the row, and from where.
LINEAGE = {"_batch_id": "VARCHAR", "_source_file": "VARCHAR", "_source_line": "BIGINT"}

MANIFEST_DDL = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id VARCHAR PRIMARY KEY, committed_at TIMESTAMPTZ, contract_version VARCHAR, report JSON);
CREATE TABLE IF NOT EXISTS parts (
    batch_id VARCHAR, table_name VARCHAR, path VARCHAR, rows BIGINT, bytes BIGINT);
CREATE TABLE IF NOT EXISTS sources (
    batch_id VARCHAR, table_name VARCHAR, path VARCHAR, fingerprint VARCHAR, bytes BIGINT,
    rows_read BIGINT, rows_ingested BIGINT, duplicates BIGINT, quarantined BIGINT);
"""

# The reasoning blobs (sha256) each stored exchange was issued or sent back (ingest/formats/jsonsql.py).
REASONING_COLUMNS = {"request_id": "VARCHAR", "account_id": "VARCHAR", "ts": "TIMESTAMPTZ", "direction": "VARCHAR",
                     "blob": "VARCHAR", **LINEAGE}

_ARROW_SQL = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.binary(): "BLOB", pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ"}
QUARANTINE_COLUMNS = {f.name: _ARROW_SQL[f.type] for f in quarantine.SCHEMA}


def stored_columns(table: Table) -> dict[str, str]:
    """Column -> SQL type of a stored events, accounts or decisions part."""
    return {**{f.name: SQL_TYPES[f.kind] for f in table.fields}, **LINEAGE}


def parts_sql(paths: list[str], columns: dict[str, str]) -> str:
    """A relation over Parquet parts; an empty one with the right columns when there are none."""
    if not paths:
        cols = ", ".join(f"CAST(NULL AS {t}) AS {ident(c)}" for c, t in columns.items())
        return f"SELECT {cols} WHERE FALSE"
    names = ", ".join(ident(c) for c in columns)
    # union_by_name: parts written under an older contract simply lack its newer columns.
    return f"SELECT {names} FROM read_parquet([{', '.join(literal(p) for p in paths)}], union_by_name = true)"


def current_accounts_sql(versions_sql: str) -> str:
    """One row per account: its latest version (batch ids sort by time)."""
    return (f"SELECT * FROM ({versions_sql}) "
            f"QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY _batch_id DESC) = 1")


def read_manifest(engine: Engine, root: Path) -> dict[str, list[str]]:
    """Absolute paths of the committed parts of each table."""
    rows = engine.rows("SELECT table_name, path FROM parts ORDER BY batch_id, path", step="read manifest")
    parts: dict[str, list[str]] = {t: [] for t in DATA_TABLES}
    for table, path in rows:
        parts[table].append(str(root / path))
    return parts


class Workspace:
    """A committed workspace, for the stages after ingest.

    The *_sql() methods return plain SQL relations over the committed parts (with
    absolute paths, so any engine that reads Parquet can run them).
    """

    def __init__(self, path: str | Path = ".distillguard"):
        self.path = Path(path).resolve()
        catalog = self.path / CATALOG
        if not catalog.is_file():
            raise IngestError(f"{path}: not a distillguard workspace (no {CATALOG}); run ingest first")
        try:
            with Engine.open(catalog, read_only=True) as engine:
                self.parts = read_manifest(engine, self.path)
                self.rows = dict(engine.rows("SELECT table_name, sum(rows)::BIGINT FROM parts GROUP BY 1"))
                self.batches = [b for (b,) in engine.rows("SELECT batch_id FROM batches ORDER BY batch_id")]
                self.sources = engine.rows("SELECT table_name, fingerprint, rows_ingested FROM sources "
                                           "ORDER BY batch_id, table_name, fingerprint")
        except EngineLocked as e:
            raise IngestError(f"{path}: the workspace is busy (an ingest is running); try again when it ends") from e

    def fingerprint(self) -> str:
        """Names the workspace's content: the files ingested (by content hash), in order.

        The same files ingested in the same order give the same workspace, so a re-run
        of a scan on it is recognisably on the same input (scan.json)."""
        h = hashlib.sha256(f"contract {CONTRACT_VERSION}".encode())
        for table, fingerprint, rows in self.sources:
            h.update(f"\n{table} {fingerprint} {rows}".encode())
        return "workspace:sha256:" + h.hexdigest()

    def events_sql(self) -> str:
        return parts_sql(self.parts["events"], stored_columns(EVENTS))

    def account_versions_sql(self) -> str:
        """Every version of every account row ever ingested."""
        return parts_sql(self.parts["accounts"], stored_columns(ACCOUNTS))

    def accounts_sql(self) -> str:
        """The current version of each account (the latest batch wins)."""
        return current_accounts_sql(self.account_versions_sql())

    def quarantine_sql(self) -> str:
        return parts_sql(self.parts["quarantine"], QUARANTINE_COLUMNS)

    def reasoning_sql(self) -> str:
        """Per stored exchange, the reasoning blobs it was issued (`direction` issued) and
        sent back (replayed), as sha256: read from provider logs (docs/formats.md)."""
        return parts_sql(self.parts["reasoning"], REASONING_COLUMNS)

    def decisions_sql(self) -> str:
        """The gateway's decisions, read back from its decision log (schema/decisions.py)."""
        return parts_sql(self.parts["decisions"], stored_columns(DECISIONS))

    def counts(self) -> dict[str, int]:
        """events, accounts (distinct), quarantined, unknown_accounts, batches."""
        with Engine.open() as engine:
            return workspace_counts(engine, self.events_sql(), self.account_versions_sql(),
                                    self.rows, len(self.batches))


def workspace_counts(engine: Engine, events_sql: str, versions_sql: str, rows: dict, batches: int) -> dict[str, int]:
    accounts, unknown = engine.rows(f"""
        SELECT (SELECT count(DISTINCT account_id) FROM ({versions_sql})),
               (SELECT count(*) FROM (SELECT DISTINCT account_id FROM ({events_sql})) e
                ANTI JOIN ({versions_sql}) a ON e.account_id = a.account_id)""", step="count workspace")[0]
    return {"events": int(rows.get("events") or 0), "accounts": int(accounts),
            "quarantined": int(rows.get("quarantine") or 0), "unknown_accounts": int(unknown), "batches": batches}


def fsync_path(path: Path) -> None:
    """Flush a file or a folder entry to disk (folders: so a rename survives a crash)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() and hasattr(os, "O_DIRECTORY") else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # folders cannot be opened on some platforms (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
