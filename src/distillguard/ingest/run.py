"""ingest(): read input files, validate every row, and commit what is new, atomically.

The batch goes through four steps, each a query from tables to a table:

  stage      each input file -> tmp/<batch>/stage/<table>/<file>/*.parquet: every
             record, typed, with _reason NULL (good) or a reason code (bad). Text
             files are first cut into records by Python (readers.py) and written to
             tmp/<batch>/frames/, which the engine then validates.
  dedupe     good staged rows -> new rows: first occurrence of each request_id,
             not already stored (events); latest row per account that differs
             from the stored version (accounts)
  quarantine bad staged rows -> quarantine rows
  commit     parts renamed into place, then the manifest in one transaction

Staging keeps every step bounded in memory: text is handled a chunk at a time,
and Parquet scans and the de-duplication joins are run by the engine, which
spills to tmp/ when the data is larger than its memory limit.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.engine import Engine, EngineError, EngineLocked, ident, literal
from distillguard.ingest import readers
from distillguard.ingest.formats import AUTO, CHOICES, CONTRACT, detect, log_format
from distillguard.ingest.formats.base import LogFormat, combined_sql, exploded_sql, given, mapped_sql
from distillguard.ingest.readers import Unreadable
from distillguard.ingest.records import (csv_columns, csv_records_sql, csv_rows_sql, first_record,
                                         json_records_sql, jsonl_records_sql, parquet_records_sql, parquet_rows_sql)
from distillguard.ingest.report import FileReport, IngestReport, TableReport
from distillguard.ingest.sources import IngestError, Source, expand, fingerprint
from distillguard.ingest.validate import SQL_TYPES, Column, position, validation_sql
from distillguard.ingest.workspace import (
    CATALOG, DATA_TABLES, MANIFEST_DDL, QUARANTINE_COLUMNS, REASONING_COLUMNS, current_accounts_sql, fsync_path, parts_sql,
    read_manifest, stored_columns, workspace_counts,
)
from distillguard.schema.contract import ACCOUNTS, CONTRACT_VERSION, EVENTS, Table
from distillguard.schema.decisions import DECISIONS

ProgressFn = Callable[[str, int, int], None]
TABLES = {"events": EVENTS, "accounts": ACCOUNTS, "decisions": DECISIONS}
PART_SIZE = "512MB"  # stored parts are split at about this size
STAGE_COMPRESSION = "lz4_raw"  # staged files are read once: favour speed over size
FRAME_ROWS = 16_384  # rows per row group of framed text: the unit the engine parallelizes over...
FRAME_BYTES = 4 << 20  # ...and fewer when records are long: a row group is read whole, and a log
# record that carries a conversation's history can be tens of KB


def ingest(
    events: Sequence[str | Path] = (),
    accounts: Sequence[str | Path] = (),
    workspace: str | Path = ".distillguard",
    *,
    decisions: Sequence[str | Path] = (),
    log_format: str = CONTRACT,
    fills: Mapping[str, str] | None = None,
    progress: ProgressFn | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> IngestReport:
    """Ingest events, accounts and gateway decision-log files into the workspace and report
    what happened.

    Sources are files, folders (read recursively) or globs. log_format says what the
    events files are: the contract's own columns (the default), a provider's log format
    (ingest/formats/: otel, litellm, langfuse, helicone, openai, anthropic), or auto
    (each file's first record decides). fills gives values for event fields that log
    records leave empty (say, the account that owns a batch file). Bad rows never
    raise: they are quarantined with a reason. IngestError is raised, before anything
    is written, for a missing path, an unsupported file type or an unknown format or
    field, and when another ingest holds the workspace.
    """
    if log_format not in CHOICES:
        raise IngestError(f"unknown format {log_format!r}; expected one of {', '.join(CHOICES)}")
    fills = dict(fills or {})
    for name, value in fills.items():
        if name not in EVENTS.names:
            raise IngestError(f"--fill {name}: not an events field; fields are {', '.join(EVENTS.names)}")
        if not str(value).strip():
            raise IngestError(f"--fill {name}: give a value")
    plan = {"events": expand(events, "events"), "accounts": expand(accounts, "accounts"),
            "decisions": expand(decisions, "decisions")}
    root = Path(workspace).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise IngestError(f"workspace {workspace} is a file, not a folder")
    for d in (root, root / "tmp", *(root / t for t in DATA_TABLES)):
        d.mkdir(parents=True, exist_ok=True)
    try:
        engine = Engine.open(root / CATALOG, memory_limit=memory_limit or _half_of_memory(),
                             temp_directory=root / "tmp" / "spill", threads=threads)
    except EngineLocked as e:
        raise IngestError(f"workspace {workspace} is busy: another ingest is running") from e
    with engine:
        return _Batch(engine, root, progress or (lambda label, done, total: None), log_format, fills).run(plan)


def _half_of_memory() -> str | None:
    try:
        return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2 // (1 << 20)}MiB"
    except (ValueError, OSError, AttributeError):
        return None


class _Batch:
    def __init__(self, engine: Engine, root: Path, progress: ProgressFn, log_format: str = CONTRACT,
                 fills: Mapping[str, str] | None = None):
        self.engine, self.root, self.progress = engine, root, progress
        self.log_format, self.fills = log_format, dict(fills or {})
        engine.execute(MANIFEST_DDL, step="create manifest")
        self._clean()
        self.batch_id, self.started = self._new_batch_id()
        self.tmp = root / "tmp" / self.batch_id
        self.installed: list[Path] = []

    # --- housekeeping ------------------------------------------------------
    def _clean(self) -> None:
        """Remove what an interrupted ingest left: staging folders and orphan parts."""
        for p in (self.root / "tmp").iterdir():
            if p.name != "spill":
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        committed = {Path(p) for paths in read_manifest(self.engine, self.root).values() for p in paths}
        for table in DATA_TABLES:
            for part in (self.root / table).glob("*.parquet"):
                if part not in committed:
                    part.unlink(missing_ok=True)

    def _new_batch_id(self) -> tuple[str, datetime]:
        """A UTC time stamp; later batches sort later (the accounts view relies on it)."""
        now = datetime.now(timezone.utc)
        (last,) = self.engine.rows("SELECT max(batch_id) FROM batches")[0]
        if last and now.strftime("%Y%m%dT%H%M%S.%fZ") <= last:
            now = datetime.strptime(last, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc) + timedelta(microseconds=1)
        return now.strftime("%Y%m%dT%H%M%S.%fZ"), now

    # --- the batch ---------------------------------------------------------
    def run(self, plan: dict[str, list[Source]]) -> IngestReport:
        try:
            known = {t: {fp for (fp,) in self.engine.rows("SELECT fingerprint FROM sources WHERE table_name = ?", [t])}
                     for t in TABLES}
            fps = self._fingerprints(plan)
            files: dict[str, list[FileReport]] = {}
            ignored: dict[str, set[str]] = {}
            for name, table in TABLES.items():
                files[name], ignored[name] = self._stage_table(table, plan[name], fps, known[name])
            for name in TABLES:
                if staged := self._staged(name):
                    ignored[name] |= {k for (k,) in self.engine.rows(
                        f"SELECT DISTINCT unnest(_extra) FROM ({staged})", step="collect extra keys")}
            parts = self._write_outputs()
            counted = {name: self._file_reports(name, files[name], parts) for name in TABLES}
            reports = {name: TableReport.of(name, counted[name], ignored[name]) for name in TABLES}
            committed = bool(any(not f.skipped for fs in counted.values() for f in fs) or any(parts.values()))
            if committed:
                installed = self._install(parts)
                # A file with batch records still waiting for their other half is not marked as
                # ingested, so that giving it again with its partner file completes them.
                sources = [(name, f) for name, fs in counted.items() for f in fs
                           if not f.skipped and f.fingerprint and "unpaired_batch_record" not in f.quarantine_reasons]
                self.progress("committing", 0, 1)
                commit_manifest(self.engine, self.root, self.batch_id, installed, sources, reports)
                self.progress("committing", 1, 1)
            totals = self._totals()
            return IngestReport(
                batch_id=self.batch_id, workspace=str(self.root), committed=committed,
                events=reports["events"], accounts=reports["accounts"], decisions=reports["decisions"],
                unknown_accounts=totals.pop("unknown_accounts"), totals=totals,
            )
        finally:
            self._abandon()

    def _abandon(self) -> None:
        """Remove this batch's files unless it was committed. (Left behind after a
        hard crash, they are ignored by readers and removed by the next ingest.)"""
        shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            committed = self.engine.rows("SELECT count(*) FROM batches WHERE batch_id = ?", [self.batch_id])[0][0]
        except EngineError:
            return
        if not committed:
            for part in self.installed:  # renamed into place, never committed
                part.unlink(missing_ok=True)

    def _fingerprints(self, plan: dict[str, list[Source]]) -> dict[Path, str | None]:
        total, done, fps = sum(s.size for ss in plan.values() for s in ss), 0, {}
        for sources in plan.values():
            for s in sources:
                def step(n: int) -> None:
                    nonlocal done
                    done += n
                    self.progress("hashing", done, total)
                try:
                    fps[s.path] = fingerprint(s.path, step)
                except OSError:
                    fps[s.path] = None  # reported as unreadable when staged
        return fps

    def _reading(self, table: Table) -> str:
        """How an events file is read, beyond its bytes, as a suffix of its fingerprint: the
        same file read in another format or with other fills is another input."""
        if table is not EVENTS or (self.log_format == CONTRACT and not self.fills):
            return ""
        return f" read as {self.log_format}" + "".join(f", {k}={v}" for k, v in sorted(self.fills.items()))

    # --- stage -------------------------------------------------------------
    def _stage_table(self, table: Table, sources: list[Source], fps: dict, known: set[str]):
        total, done = sum(s.size for s in sources), 0
        reports, ignored, seen = [], set(), set()
        for index, src in enumerate(sources):
            fp = fps[src.path] and fps[src.path] + self._reading(table)
            if fp is not None and (fp in known or fp in seen):
                reports.append(FileReport(str(src.path), src.format, src.size, fp, skipped=True))
            else:
                seen.add(fp)

                def step(pos: int, base: int = done, size: int = src.size) -> None:
                    self.progress(table.name, base + min(pos, size), total)
                out = self.tmp / "stage" / table.name / f"{index:06d}"  # this source's staged files
                out.mkdir(parents=True)
                shown_format = src.format
                try:
                    if fp is None:
                        raise Unreadable("cannot read the file (permission denied or an I/O error)")
                    fmt = self._log_format_of(src) if table is EVENTS else CONTRACT
                    if fmt == CONTRACT:
                        ignored |= getattr(self, f"_stage_{src.format}")(table, src, index, out, step)
                    else:
                        shown_format = f"{fmt.name}/{src.format}"
                        self._map_log(fmt, src, index, step)
                except Unreadable as e:
                    shutil.rmtree(out)  # whatever was written before the failure
                    out.mkdir()
                    self._stage_failure(table, src, index, out, str(e), e.reason)
                reports.append(FileReport(str(src.path), shown_format, src.size, fp))
            done += src.size
            self.progress(table.name, done, total)
        if table is EVENTS and (self.tmp / "mapped").is_dir():
            self._stage_logs(self.tmp / "stage" / table.name / "logs")
        return reports, ignored

    # --- log formats (ingest/formats/) -----------------------------------------
    def _log_format_of(self, src: Source) -> LogFormat | str:
        """The format an events file is read in: CONTRACT or a LogFormat."""
        if self.log_format == CONTRACT:
            return CONTRACT
        if self.log_format != AUTO:
            fmt = log_format(self.log_format)
        else:
            record = first_record(src)
            name = detect(record) if record is not None else None
            if name is None:
                # Keys are the file's text: shown escaped and cut short.
                keys = ", ".join(repr(k)[:40] for k in list(record)[:12]) if record else \
                    "none: the file holds no JSON object or row"
                raise Unreadable(f"--format auto cannot tell what format this file is in (the first record's keys: "
                                 f"{keys}); name it with --format", reason="unknown_format")
            if name == CONTRACT:
                return CONTRACT
            fmt = log_format(name)
        if src.format not in fmt.containers:
            raise Unreadable(f"{fmt.name} logs are not read from {src.format} files "
                             f"(only {', '.join(fmt.containers)})", reason="unknown_format")
        return fmt

    def _map_log(self, fmt: LogFormat, src: Source, index: int, step) -> None:
        """A log file's records -> tmp/mapped/<index>.parquet: one mapped row per record."""
        frames = None
        if src.format == "jsonl":
            frames = self._frame(readers.jsonl_chunks(src.path, step), readers.JSONL_SCHEMA, src, index)
            records = jsonl_records_sql(frames)
        elif src.format == "csv":
            frames, header = self._frame_csv(src, index, step)
            records = csv_records_sql(frames, header)
        else:
            records = parquet_records_sql(src.path, list(self._parquet_types(src)))
        out = self.tmp / "mapped" / f"{index:06d}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        exploded = None
        if fmt.explode:  # one record, many exchanges: written out first (base.mapped_sql says why)
            path = self.tmp / "exploded" / f"{index:06d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.engine.copy_to_parquet(exploded_sql(fmt, records), path, step=f"explode {src.path}",
                                        compression=STAGE_COMPRESSION, row_group_bytes=f"{FRAME_BYTES}B")
            exploded = f"SELECT * FROM read_parquet({literal(str(path))})"
        self.engine.copy_to_parquet(
            f"SELECT {index} AS _file, {literal(str(src.path))} AS _source_file, * "
            f"FROM ({mapped_sql(fmt, records, exploded)})", out, step=f"map {src.path}", compression=STAGE_COMPRESSION)
        if exploded:
            path.unlink()
        if frames is not None:
            frames.unlink()

    def _stage_logs(self, out: Path) -> None:
        """Every mapped log record of this ingest, combined (batch halves paired, contexts
        joined, fills applied) and validated like any other input."""
        mapped = f"SELECT * FROM read_parquet({literal(str(self.tmp / 'mapped' / '*.parquet'))})"
        columns = {f.name: Column(ident(given(f.name))) for f in EVENTS.fields}
        sql = validation_sql(EVENTS, combined_sql(mapped, self.fills), columns, source_file="_source_file",
                             pos="_pos", carry=("_skip", "_issued", "_replayed"))
        # A row that is not an exchange (a span of another operation, a trace) is neither stored nor quarantined.
        skip = "CASE WHEN _skip IS NULL THEN {} END"
        sql = (f"SELECT * REPLACE ({skip.format('_reason')} AS _reason, {skip.format('_detail')} AS _detail, "
               f"{skip.format('_raw')} AS _raw) FROM ({sql})")
        out.mkdir(parents=True)
        self.engine.copy_to_parquet(sql, out, step="validate logs", compression=STAGE_COMPRESSION, per_thread=True)
        shutil.rmtree(self.tmp / "mapped")

    def _parquet_types(self, src: Source) -> dict[str, str]:
        """Column -> type of a Parquet file; Unreadable when it is not one."""
        try:
            described = self.engine.rows(f"DESCRIBE SELECT * FROM read_parquet({literal(str(src.path))})",
                                         step=f"read {src.path}")
        except EngineError as e:
            if not e.input_error:
                raise
            raise Unreadable(f"cannot read the Parquet file: {_first_line(e.cause)}") from e
        return {name: typ for name, typ, *_ in described}

    def _stage_parquet(self, table: Table, src: Source, index: int, out: Path, step) -> set[str]:
        types = self._parquet_types(src)
        try:
            columns = {f.name: Column(f"_src.{ident(f.name)}", types[f.name]) for f in table.fields if f.name in types}
            relation = (f"SELECT _line, NULL::VARCHAR AS _frame, NULL::VARCHAR AS _frame_detail, _src "
                        f"FROM ({parquet_rows_sql(src.path, list(types))})")
            sql = validation_sql(table, relation, columns, raw="encode(to_json(_src))",
                                 source_file=literal(str(src.path)), pos=position(index))
            # One file per thread: a Parquet source is scanned in parallel and so is written.
            self.engine.copy_to_parquet(sql, out, step=f"validate {src.path}", compression=STAGE_COMPRESSION,
                                        per_thread=True)
        except EngineError as e:
            if not e.input_error:
                raise
            raise Unreadable(f"cannot read the Parquet file: {_first_line(e.cause)}") from e
        return set(types) - set(table.names)

    def _stage_jsonl(self, table: Table, src: Source, index: int, out: Path, step) -> set[str]:
        frames = self._frame(readers.jsonl_chunks(src.path, step), readers.JSONL_SCHEMA, src, index)
        # Every value as text (strings unescaped) from one parse of the line.
        spec = literal(json.dumps({f.name: "VARCHAR" for f in table.fields}))
        relation = json_records_sql(frames, f"TRY(from_json(_text, {spec}))")
        columns = {f.name: Column(f"_j.{ident(f.name)}", json_type=f"json_type(_text, {literal('$.' + f.name)})")
                   for f in table.fields}
        # Keys the contract does not know, to list in the report. Listing them is all
        # they are for, and json_keys() parses the line again, so only the first
        # 1,000 lines and then one line in 64 are looked at.
        names = "[" + ", ".join(literal(n) for n in table.names) + "]"
        extra = (f"CASE WHEN _frame IS NULL AND (_line <= 1000 OR _line % 64 = 0) "
                 f"THEN list_filter(json_keys(_text), k -> NOT list_contains({names}, k)) END")
        sql = validation_sql(table, relation, columns, raw="coalesce(_raw, encode(_text))",
                             source_file=literal(str(src.path)), pos=position(index), extra=extra)
        self._validate(sql, out, src, frames)
        return set()  # extra keys vary by line: they are collected from _extra

    def _stage_csv(self, table: Table, src: Source, index: int, out: Path, step) -> set[str]:
        frames, header = self._frame_csv(src, index, step)
        columns = {f.name: Column(f"_fields[{i}]") for f in table.fields if (i := csv_columns(header).get(f.name))}
        sql = validation_sql(table, csv_rows_sql(frames, len(header)), columns,
                             source_file=literal(str(src.path)), pos=position(index))
        self._validate(sql, out, src, frames)
        return set(header) - set(table.names)

    def _frame_csv(self, src: Source, index: int, step) -> tuple[Path, list[str]]:
        """A CSV file framed (_frame) and its header."""
        header: list[str] = []

        def chunks():
            nonlocal header
            for header, chunk in readers.csv_chunks(src.path, step):
                yield chunk
        return self._frame(chunks(), readers.CSV_SCHEMA, src, index), header

    def _frame(self, chunks: Iterator[pa.Table], schema: pa.Schema, src: Source, index: int) -> Path:
        """Write a text file's records, framed, as Parquet for the engine to validate.

        Python frames, the engine validates, and they meet through a file rather
        than a stream: the engine reads it in parallel and never calls back into
        Python, and memory holds one chunk at a time."""
        path = self.tmp / "frames" / f"{src.format}-{index:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(path, schema, compression="lz4", use_dictionary=False, write_statistics=False) as w:
            for chunk in chunks:
                average = max(1, chunk.nbytes // max(1, chunk.num_rows))
                w.write_table(chunk.select(schema.names).cast(schema),
                              row_group_size=max(64, min(FRAME_ROWS, FRAME_BYTES // average)))
        return path

    def _validate(self, sql: str, out: Path, src: Source, frames: Path) -> None:
        self.engine.copy_to_parquet(sql, out, step=f"validate {src.path}", compression=STAGE_COMPRESSION,
                                    per_thread=True)
        frames.unlink()

    def _stage_failure(self, table: Table, src: Source, index: int, out: Path, detail: str,
                       reason: str = "unreadable_file") -> None:
        """One quarantine record standing for a whole file that could not be read."""
        cols = ", ".join(f"CAST(NULL AS {SQL_TYPES[f.kind]}) AS {ident(f.name)}" for f in table.fields)
        self.engine.copy_to_parquet(
            f"SELECT {cols}, {literal(str(src.path))} AS _source_file, CAST(NULL AS BIGINT) AS _source_line, "
            f"{position(index, '0')} AS _pos, {literal(reason)} AS _reason, {literal(detail)} AS _detail, "
            f"CAST(NULL AS BLOB) AS _raw, CAST(NULL AS VARCHAR[]) AS _extra",
            out / "failed.parquet", step="stage unreadable file")

    # --- dedupe and quarantine ---------------------------------------------
    def _staged(self, table: str) -> str | None:
        """Every staged record of a table (each source has a folder of staged files)."""
        folder = self.tmp / "stage" / table
        if not any(folder.glob("*/*.parquet")):
            return None
        return f"SELECT * FROM read_parquet({literal(str(folder / '*' / '*.parquet'))}, union_by_name = true)"

    def _write_outputs(self) -> dict[str, list[Path]]:
        """New events, new account versions and quarantine rows, as Parquet parts under tmp/."""
        manifest = read_manifest(self.engine, self.root)
        batch = literal(self.batch_id)
        queries = {}
        if staged := self._staged("events"):
            fields = ", ".join(ident(f.name) for f in EVENTS.fields)
            existing = parts_sql(manifest["events"], {"request_id": "VARCHAR"})
            logs = (self.tmp / "stage" / "events" / "logs").is_dir()
            good = "_reason IS NULL AND _skip IS NULL" if logs else "_reason IS NULL"
            # The staged rows are scanned twice, narrow then wide, rather than shared
            # through a CTE: the engine would materialize a shared CTE, every column of it.
            fresh = _first_of_each("request_id", staged, existing, good)
            queries["events"] = f"""{fresh}
                SELECT {fields}, {batch} AS _batch_id, _source_file, _source_line
                FROM ({staged}) g SEMI JOIN fresh USING (_pos) WHERE {good}"""
            # Reasoning blobs of the exchanges stored (workspace.REASONING_COLUMNS).
            if logs and self.engine.rows(f"SELECT count(*) FROM ({staged}) WHERE len(_issued) + len(_replayed) > 0",
                                         step="count reasoning blobs")[0][0]:
                blobs = " UNION ALL ".join(f"""
                    SELECT request_id, account_id, ts, '{direction}' AS direction, unnest(_{direction}) AS blob,
                      {batch} AS _batch_id, _source_file, _source_line
                    FROM ({staged}) g SEMI JOIN fresh USING (_pos) WHERE {good} AND len(_{direction}) > 0"""
                                           for direction in ("issued", "replayed"))
                queries["reasoning"] = f"{fresh} {blobs}"
        if staged := self._staged("decisions"):  # append-only, one row per decision_id, as events
            fields = ", ".join(ident(f.name) for f in DECISIONS.fields)
            existing = parts_sql(manifest["decisions"], {"decision_id": "VARCHAR"})
            queries["decisions"] = f"""{_first_of_each("decision_id", staged, existing, "_reason IS NULL")}
                SELECT {fields}, {batch} AS _batch_id, _source_file, _source_line
                FROM ({staged}) g SEMI JOIN fresh USING (_pos) WHERE _reason IS NULL"""
        if staged := self._staged("accounts"):
            fields = ", ".join(ident(f.name) for f in ACCOUNTS.fields)
            current = current_accounts_sql(parts_sql(manifest["accounts"], stored_columns(ACCOUNTS)))
            same = " AND ".join(f"l.{ident(f.name)} IS NOT DISTINCT FROM c.{ident(f.name)}" for f in ACCOUNTS.fields)
            # Within one input the last row of an account wins; a row equal to the
            # stored version is a duplicate; any other is a new version.
            queries["accounts"] = f"""
                WITH latest AS (SELECT * FROM ({staged}) WHERE _reason IS NULL
                                QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY _pos DESC) = 1)
                SELECT {fields}, {batch} AS _batch_id, _source_file, _source_line
                FROM latest l ANTI JOIN ({current}) c ON {same}"""
        bad = [f"""SELECT {batch} AS batch_id, {literal(t)} AS table_name, _source_file AS source_file,
                          _source_line AS source_line, _reason AS reason, _detail AS detail, _raw AS raw,
                          {literal(self.started.isoformat())}::TIMESTAMPTZ AS ingested_at
                   FROM ({staged}) WHERE _reason IS NOT NULL""" for t in TABLES if (staged := self._staged(t))]
        if bad:
            cols = ", ".join(f"CAST({ident(c)} AS {t}) AS {ident(c)}" for c, t in QUARANTINE_COLUMNS.items())
            queries["quarantine"] = f"SELECT {cols} FROM ({' UNION ALL '.join(bad)})"
        parts: dict[str, list[Path]] = {t: [] for t in DATA_TABLES}
        for i, (table, sql) in enumerate(queries.items()):
            self.progress("writing", i, len(queries))
            folder = self.tmp / "out" / table
            folder.parent.mkdir(parents=True, exist_ok=True)
            self.engine.copy_to_parquet(sql, folder, step=f"write {table}", file_size_bytes=PART_SIZE)
            for part in sorted(folder.glob("*.parquet")):
                if pq.ParquetFile(part).metadata.num_rows:
                    parts[table].append(part)
        self.progress("writing", len(queries), len(queries))
        return parts

    def _file_reports(self, table: str, files: list[FileReport], parts: dict[str, list[Path]]) -> list[FileReport]:
        """rows_read, quarantined (by reason) and rows_ingested per file; duplicates are the rest."""
        staged = self._staged(table)
        if staged is None:
            return files
        read = dict(self.engine.rows(f"SELECT _source_file, count(*) FROM ({staged}) GROUP BY 1"))
        reasons: dict[str, dict[str, int]] = {}
        for path, reason, n in self.engine.rows(
                f"SELECT _source_file, _reason, count(*) FROM ({staged}) WHERE _reason IS NOT NULL "
                f"GROUP BY ALL ORDER BY 3 DESC, 2"):
            reasons.setdefault(path, {})[reason] = n
        skips: dict[str, dict[str, int]] = {}
        if table == "events" and (self.tmp / "stage" / "events" / "logs").is_dir():
            for path, why, n in self.engine.rows(
                    f"SELECT _source_file, _skip, count(*) FROM ({staged}) WHERE _skip IS NOT NULL "
                    f"GROUP BY ALL ORDER BY 3 DESC, 2"):
                skips.setdefault(path, {})[why] = n
        stored = {}
        if parts[table]:
            paths = ", ".join(literal(str(p)) for p in parts[table])
            stored = dict(self.engine.rows(f"SELECT _source_file, count(*) FROM read_parquet([{paths}]) GROUP BY 1"))
        out = []
        for f in files:
            if f.skipped:
                out.append(f)
                continue
            n, q, i = read.get(f.path, 0), sum(reasons.get(f.path, {}).values()), stored.get(f.path, 0)
            k = sum(skips.get(f.path, {}).values())
            out.append(FileReport(f.path, f.format, f.bytes, f.fingerprint, rows_read=n, rows_ingested=i,
                                  duplicates=n - q - i - k, quarantined=q, quarantine_reasons=reasons.get(f.path, {}),
                                  skipped_records=skips.get(f.path, {})))
        return out

    # --- commit ------------------------------------------------------------
    def _install(self, parts: dict[str, list[Path]]) -> list[tuple[str, Path]]:
        """fsync the new parts and rename them into place (still invisible: not in the manifest)."""
        installed = []
        for table, paths in parts.items():
            for n, part in enumerate(paths):
                fsync_path(part)
                target = self.root / table / f"{self.batch_id}-{n:04d}.parquet"
                os.replace(part, target)
                self.installed.append(target)
                installed.append((table, target))
            fsync_path(self.root / table)
        return installed

    def _totals(self) -> dict[str, int]:
        manifest = read_manifest(self.engine, self.root)
        rows = dict(self.engine.rows("SELECT table_name, sum(rows)::BIGINT FROM parts GROUP BY 1"))
        (batches,) = self.engine.rows("SELECT count(*) FROM batches")[0]
        return workspace_counts(self.engine, parts_sql(manifest["events"], stored_columns(EVENTS)),
                                parts_sql(manifest["accounts"], stored_columns(ACCOUNTS)), rows, batches)


def commit_manifest(engine: Engine, root: Path, batch_id: str, installed: list[tuple[str, Path]],
                    sources: list[tuple[str, FileReport]], reports: dict[str, TableReport]) -> None:
    """The commit point: the batch, its parts and its sources, and fresh views, in one transaction."""
    with engine.transaction("commit manifest"):
        report = {name: {k: v for k, v in r.__dict__.items() if k != "file_reports"} for name, r in reports.items()}
        engine.execute("INSERT INTO batches VALUES (?, ?, ?, ?)",
                       [batch_id, datetime.now(timezone.utc), CONTRACT_VERSION, json.dumps(report)])
        for table, path in installed:
            engine.execute("INSERT INTO parts VALUES (?, ?, ?, ?, ?)",
                           [batch_id, table, path.relative_to(root).as_posix(),
                            pq.ParquetFile(path).metadata.num_rows, path.stat().st_size])
        for table, f in sources:
            engine.execute("INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [batch_id, table, f.path, f.fingerprint, f.bytes,
                            f.rows_read, f.rows_ingested, f.duplicates, f.quarantined])
        manifest = read_manifest(engine, root)
        views = {"events": parts_sql(manifest["events"], stored_columns(EVENTS)),
                 "account_versions": parts_sql(manifest["accounts"], stored_columns(ACCOUNTS)),
                 "quarantine": parts_sql(manifest["quarantine"], QUARANTINE_COLUMNS),
                 "reasoning": parts_sql(manifest["reasoning"], REASONING_COLUMNS),
                 "decisions": parts_sql(manifest["decisions"], stored_columns(DECISIONS))}
        views["accounts"] = current_accounts_sql("SELECT * FROM account_versions")
        for name, sql in views.items():
            engine.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}", step=f"create view {name}")


def _first_of_each(key: str, staged: str, existing: str, good: str) -> str:
    """`fresh`: the position of the first good staged row of each key not already stored."""
    return f"""
        WITH firsts AS (SELECT {key}, min(_pos) AS _pos FROM ({staged}) WHERE {good} GROUP BY {key}),
        fresh AS (SELECT _pos FROM firsts f ANTI JOIN ({existing}) e ON f.{key} = e.{key})"""


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
