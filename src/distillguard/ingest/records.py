"""A log file's records as JSON objects, whatever holds them (ingest --format).

Log formats are mappings over one JSON object per record (ingest/formats/). JSON
Lines give one a line; a CSV row becomes an object of its header's columns (values
as strings; a column holding JSON stays a string of JSON, which the mappings read
through); a Parquet row becomes the object its columns render to. Each relation
has _line, _raw, _text and the framing problem of records that are not objects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from distillguard.engine import ident, literal
from distillguard.ingest import readers
from distillguard.ingest.readers import Unreadable
from distillguard.ingest.sources import Source
from distillguard.ingest.validate import WS, blank, shown

SNIFF_LINES = 100  # auto-detection looks for the first object among this many lines


def json_records_sql(frames: Path, parse: str) -> str:
    """The lines of a framed JSON Lines file: _line, _raw, _text, _j (`parse` of _text,
    NULL when it is not JSON), and _frame / _frame_detail saying why a line is not a
    JSON object. Blank lines are not records."""
    opens = f"starts_with(_text, '{{') OR starts_with(ltrim(_text, {WS}), '{{')"
    return f"""
        SELECT _line, _raw, _text, _j,
          CASE WHEN _frame0 IS NOT NULL THEN _frame0
               WHEN NOT ({opens}) THEN CASE WHEN json_valid(_text) THEN 'not_an_object' ELSE 'malformed_json' END
               WHEN _j IS NULL THEN 'malformed_json' END AS _frame,
          CASE WHEN _frame0 IS NOT NULL THEN _detail0
               WHEN NOT ({opens}) AND json_valid(_text) THEN 'a JSON value that is not an object: ' || {shown('_text')}
               WHEN _j IS NULL OR NOT ({opens}) THEN 'not valid JSON: ' || {shown('_text')} END AS _frame_detail
        FROM (SELECT _line, _raw, _text, _frame AS _frame0, _frame_detail AS _detail0, {parse} AS _j
              FROM read_parquet({literal(str(frames))}) WHERE _text IS NULL OR NOT {blank('_text')})"""


def jsonl_records_sql(frames: Path) -> str:
    return json_records_sql(frames, "CASE WHEN json_valid(_text) THEN TRUE END")


def csv_columns(header: list[str]) -> dict[str, int]:
    """Column name -> its 1-based position (the first of a repeated name wins)."""
    position: dict[str, int] = {}
    for i, name in enumerate(header):
        position.setdefault(name, i + 1)
    return position


def csv_rows_sql(frames: Path, n: int) -> str:
    """The records of a framed CSV file: _line, _raw, _fields, and _frame / _frame_detail
    for those without the header's n fields. Empty records are not records."""
    return f"""
        SELECT _line, _raw, _fields,
          CASE WHEN _frame0 IS NOT NULL THEN _frame0 WHEN len(_fields) <> {n} THEN 'malformed_csv' END AS _frame,
          CASE WHEN _frame0 IS NOT NULL THEN _detail0
               WHEN len(_fields) <> {n} THEN 'expected {n} fields as in the header, got ' || len(_fields)
          END AS _frame_detail
        FROM (SELECT _line, _raw, _fields, _frame AS _frame0, _frame_detail AS _detail0
              FROM read_parquet({literal(str(frames))}) WHERE _fields IS NULL OR len(_fields) > 0)"""


def csv_records_sql(frames: Path, header: list[str]) -> str:
    """CSV records as JSON objects of the header's columns."""
    pairs = ", ".join(f"{literal(name)}, _fields[{i}]" for name, i in csv_columns(header).items())
    return f"""
        SELECT _line, _raw, CASE WHEN _frame IS NULL THEN json_object({pairs})::VARCHAR END AS _text,
          _frame, _frame_detail
        FROM ({csv_rows_sql(frames, len(header))})"""


def parquet_rows_sql(path: Path, columns: list[str]) -> str:
    """A Parquet file's rows: _line (the row number, from 1) and _src, a struct of its columns."""
    row = ", ".join(f"{ident(c)} := {ident(c)}" for c in columns)
    return (f"SELECT file_row_number + 1 AS _line, struct_pack({row}) AS _src "
            f"FROM read_parquet({literal(str(path))}, file_row_number = true)")


def parquet_records_sql(path: Path, columns: list[str]) -> str:
    """Parquet rows as the JSON objects their columns render to."""
    return f"""
        SELECT _line, NULL::BLOB AS _raw, to_json(_src)::VARCHAR AS _text,
          NULL::VARCHAR AS _frame, NULL::VARCHAR AS _frame_detail
        FROM ({parquet_rows_sql(path, columns)})"""


def first_record(src: Source) -> dict[str, Any] | None:
    """The file's first record as a dict, for auto-detection; None when it has none."""
    noop = lambda pos: None  # noqa: E731
    if src.format == "parquet":
        try:
            for batch in pq.ParquetFile(src.path).iter_batches(batch_size=1):
                rows = batch.to_pylist()
                if rows:
                    return rows[0]
        except Exception as e:  # pyarrow raises several kinds for a file that is not Parquet
            raise Unreadable(f"cannot read the Parquet file: {e}") from e
        return None
    if src.format == "csv":
        for header, chunk in readers.csv_chunks(src.path, noop):
            for fields in chunk.column("_fields").to_pylist():
                if fields and len(fields) == len(header):
                    return dict(zip(header, fields))
        return None
    seen = 0
    for chunk in readers.jsonl_chunks(src.path, noop):
        for text in chunk.column("_text").to_pylist():
            seen += 1
            if seen > SNIFF_LINES:
                return None
            try:
                value = json.loads(text) if text and text.strip() else None
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None
