"""The engine interface that ingest (and later stages) run their SQL through."""

from __future__ import annotations

import ast
from pathlib import Path

import pyarrow as pa
import pytest

from distillguard.engine import Engine, EngineError, ident, literal

SRC = Path(__file__).resolve().parents[2] / "src" / "distillguard"


def test_errors_name_the_step_and_carry_the_sql():
    with Engine.open() as engine, pytest.raises(EngineError) as e:
        engine.execute("SELECT no_such_column FROM range(3)", step="count things")
    assert e.value.step == "count things" and "no_such_column" in e.value.sql
    assert str(e.value).startswith("count things failed:") and "--- SQL ---" in str(e.value)
    assert not e.value.input_error  # a bug in the SQL, not bad data


def test_unreadable_files_are_input_errors(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with Engine.open() as engine, pytest.raises(EngineError) as e:
        engine.rows(f"SELECT * FROM read_parquet({literal(str(tmp_path / 'x.parquet'))})")
    assert e.value.input_error


def test_arrow_in_and_out_and_streaming():
    with Engine.open() as engine:
        engine.register("t", pa.table({"a": [1, 2, 3]}))
        assert engine.arrow("SELECT sum(a) AS s FROM t").column("s").to_pylist() == [6]
        engine.unregister("t")
        reader = pa.RecordBatchReader.from_batches(pa.schema([("a", pa.int64())]),
                                                   (pa.record_batch([pa.array([i])], names=["a"]) for i in range(5)))
        engine.register("s", reader)
        assert engine.rows("SELECT count(*) FROM s") == [(5,)]
        batches = list(engine.batches("SELECT range AS i FROM range(10)", batch_size=4))
        assert sum(b.num_rows for b in batches) == 10 and len(batches) >= 3


def test_session_is_utc():
    with Engine.open() as engine:
        assert engine.rows("SELECT CAST(TIMESTAMPTZ '2025-01-01 12:00:00+02' AS VARCHAR)") == [("2025-01-01 10:00:00+00",)]


def test_transactions_are_all_or_nothing(tmp_path):
    with Engine.open(tmp_path / "db.duckdb") as engine:
        engine.execute("CREATE TABLE t (a INT)")
        with pytest.raises(RuntimeError), engine.transaction():
            engine.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("crash before commit")
        assert engine.rows("SELECT count(*) FROM t") == [(0,)]
        with engine.transaction():
            engine.execute("INSERT INTO t VALUES (1)")
        assert engine.rows("SELECT count(*) FROM t") == [(1,)]


def test_copy_to_parquet_file_and_folder(tmp_path):
    with Engine.open() as engine:
        engine.copy_to_parquet("SELECT range AS i FROM range(100)", tmp_path / "one.parquet")
        engine.copy_to_parquet("SELECT range AS i FROM range(100)", tmp_path / "many", file_size_bytes="1MB")
        assert engine.rows(f"SELECT count(*) FROM read_parquet({literal(str(tmp_path / 'many' / '*.parquet'))})") == [(100,)]
        odd = ident('a"b')
        assert engine.rows(f"SELECT {odd} FROM (SELECT 1 AS {odd})") == [(1,)]


def test_only_the_engine_imports_duckdb():
    """STYLE: everything outside engine/ is engine-neutral SQL, so Spark can follow."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if "engine" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "duckdb"]
    assert not offenders
