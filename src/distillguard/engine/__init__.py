"""The engine: the one place that talks to a SQL database (DuckDB today).

Everything else in distillguard writes plain SQL and hands it to an `Engine`, so a
later Spark engine only has to implement these few methods. Errors are re-raised as
`EngineError` naming the step and carrying the SQL, because "Binder Error" on its
own does not say which of fifty generated statements failed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

__all__ = ["Engine", "EngineError", "EngineLocked", "ident", "literal", "parts_for"]

# Rows one statement of a partitioned step reads (see Engine.create_in_parts): the
# memory a hash table over them needs stays far below a bounded buffer pool.
ROWS_PER_PART = 1_000_000


def parts_for(rows: int, rows_per_part: int = ROWS_PER_PART) -> int:
    """How many parts to split a step over `rows` input rows into (at least one)."""
    return max(1, math.ceil(rows / rows_per_part))


class EngineError(RuntimeError):
    """A statement failed; `step` says what we were doing, `sql` what we ran."""

    def __init__(self, step: str, sql: str, cause: BaseException):
        self.step, self.sql, self.cause = step, sql, cause
        # The data could not be read (a corrupt file), as opposed to a bug in the SQL.
        self.input_error = isinstance(cause, (duckdb.IOException, duckdb.InvalidInputException))
        shown = sql.strip() if len(sql) <= 4000 else sql.strip()[:4000] + f"\n... ({len(sql):,} characters; see .sql)"
        super().__init__(f"{step} failed: {cause}\n--- SQL ---\n{shown}")


class EngineLocked(EngineError):
    """The database file is held by another process (one writer at a time)."""


def literal(value: Any) -> str:
    """A SQL literal for a Python str/int/float/bool/None (for DDL and COPY, which take no parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def exact_sum(expr: str) -> str:
    """sum() of a DOUBLE expression that gives the same bits whatever order the rows arrive in.

    A parallel float sum differs in its last bits from run to run; a scan must be
    reproducible to the byte, so the terms are summed as integers in units of 1e-9."""
    return f"(sum(CAST(round(({expr}) * 1e9) AS HUGEINT)) / 1e9)"


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


class Engine:
    """A DuckDB connection with the session settings distillguard relies on."""

    name = "duckdb"

    def __init__(self, connection: duckdb.DuckDBPyConnection):
        self._con = connection

    @classmethod
    def open(
        cls,
        database_path: str | Path | None = None,
        *,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_directory: str | Path | None = None,
        read_only: bool = False,
    ) -> Engine:
        """Open an in-memory database, or a file (created if missing).

        memory_limit (e.g. "2GB") and temp_directory make large joins and sorts
        spill to disk instead of failing; the session time zone is UTC so that
        timestamps without an offset mean UTC everywhere.
        """
        config: dict[str, Any] = {}
        if threads:
            config["threads"] = threads
        if memory_limit:
            config["memory_limit"] = memory_limit
        if temp_directory:
            config["temp_directory"] = str(temp_directory)
        target = str(database_path) if database_path is not None else ":memory:"
        try:
            con = duckdb.connect(target, read_only=read_only, config=config)
        except duckdb.Error as e:
            kind = EngineLocked if "lock" in str(e).lower() else EngineError
            raise kind("open database", f"-- {target}", e) from e
        # Parallel writers need not keep input order (every order we need is explicit),
        # and a library must not draw progress bars on the user's terminal.
        con.execute("SET TimeZone = 'UTC'; SET preserve_insertion_order = false; SET enable_progress_bar = false")
        return cls(con)

    def _run(self, step: str, sql: str, params: Sequence[Any] | None):
        try:
            return self._con.execute(sql, params) if params is not None else self._con.execute(sql)
        except duckdb.Error as e:
            raise EngineError(step, sql, e) from e

    def execute(self, sql: str, params: Sequence[Any] | None = None, *, step: str = "execute") -> None:
        self._run(step, sql, params)

    def rows(self, sql: str, params: Sequence[Any] | None = None, *, step: str = "query") -> list[tuple]:
        """Small results (counts, manifests) as Python tuples."""
        try:
            return self._run(step, sql, params).fetchall()
        except duckdb.Error as e:  # some errors surface only while fetching
            raise EngineError(step, sql, e) from e

    def arrow(self, sql: str, params: Sequence[Any] | None = None, *, step: str = "query") -> pa.Table:
        try:
            return _reader(self._run(step, sql, params)).read_all()
        except duckdb.Error as e:
            raise EngineError(step, sql, e) from e

    def batches(
        self, sql: str, params: Sequence[Any] | None = None, *, step: str = "query", batch_size: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        """Stream a result without holding it all in memory."""
        reader = _reader(self._run(step, sql, params), batch_size)
        try:
            yield from reader
        except duckdb.Error as e:
            raise EngineError(step, sql, e) from e

    def register(self, name: str, data: pa.Table | pa.RecordBatch | pa.RecordBatchReader) -> None:
        """Expose Arrow data as a view `name` (a RecordBatchReader is streamed, read once).

        Avoid readers fed by a Python generator for large work: the engine's threads
        call back into Python for every batch, and if the query fails the interpreter
        can abort at exit. Hand the engine a file instead (see ingest's framing)."""
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        self._con.register(name, data)

    def unregister(self, name: str) -> None:
        self._con.unregister(name)

    def copy_to_parquet(
        self, sql: str, path: str | Path, *, step: str = "write parquet",
        compression: str = "zstd", file_size_bytes: str | None = None, per_thread: bool = False,
        row_group_bytes: str = "32MB",
    ) -> None:
        """Write a query to one Parquet file, or to a folder: of files of about
        file_size_bytes each, or of one file per thread (written in parallel)."""
        # Row groups are cut by bytes too: a row group is held in memory until written,
        # and 122,880 rows of long prompts would not fit a small memory limit.
        options = ["FORMAT parquet", f"COMPRESSION {compression}", f"ROW_GROUP_SIZE_BYTES {literal(row_group_bytes)}"]
        if file_size_bytes:
            options.append(f"FILE_SIZE_BYTES {literal(file_size_bytes)}")
        if per_thread:
            options.append("PER_THREAD_OUTPUT, OVERWRITE_OR_IGNORE")
        self.execute(f"COPY ({sql}) TO {literal(str(path))} ({', '.join(options)})", step=step)

    def create_in_parts(self, table: str, sql_for: Callable[[tuple[int, int]], str], parts: int, *,
                        step: str) -> None:
        """CREATE table from `parts` statements, sql_for((i, parts)) for each part i.

        A large aggregation split by a hash of its key into disjoint parts: each
        statement's hash table holds a 1/parts share of the groups, so the peak memory
        is bounded by the part size and not by the input (spilling whole aggregates of
        lists and wide rows is what runs DuckDB out of memory)."""
        for i in range(parts):
            head = f"CREATE OR REPLACE TABLE {table} AS" if i == 0 else f"INSERT INTO {table}"
            self.execute(f"{head} {sql_for((i, parts))}", step=step if parts == 1 else f"{step} ({i + 1}/{parts})")

    @contextlib.contextmanager
    def transaction(self, step: str = "transaction") -> Iterator[Engine]:
        """All or nothing: commit when the block ends, roll back if it raises."""
        self.execute("BEGIN TRANSACTION", step=step)
        try:
            yield self
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self.execute("COMMIT", step=step)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reader(cursor: duckdb.DuckDBPyConnection, batch_size: int = 1_000_000) -> pa.RecordBatchReader:
    # to_arrow_reader() replaces fetch_record_batch() in DuckDB 1.5; keep working on 1.4.
    fetch = getattr(cursor, "to_arrow_reader", None) or cursor.fetch_record_batch
    return fetch(batch_size)
