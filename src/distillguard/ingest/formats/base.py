"""A log format: how records a provider's stack already writes become contract rows.

A format is a mapping written as SQL over one record (`_j`, the record as JSON),
so it runs vectorized in the engine. Ingest reads a file's records (lines of JSON
Lines; CSV and Parquet rows rendered as JSON objects), maps them with `mapped_sql`,
then `combined_sql` joins what belongs together across records (a batch's request
with its result; a trace's user with its generations) before every row is
validated against the contract like any other input.

Each mapped record has a role:

  exchange      one API exchange (the usual case)
  request       the request half of an exchange whose result is another record
  response      the result half; paired with its request by `_key` (a batch's custom_id)
  context       no exchange of its own: gives account_id and conversation_id to the
                exchanges whose `_key` names it (a Langfuse trace)
  skip          not an exchange (a span of another operation): counted, not stored
  unrecognized  not a record of this format: quarantined with `_note` as the reason
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from distillguard.engine import ident, literal
from distillguard.ingest.formats.jsonsql import hoist
from distillguard.ingest.validate import position, shown
from distillguard.schema.contract import EVENTS

# What a context record gives the exchanges that name it.
CONTEXT_FIELDS = ("account_id", "conversation_id")


@dataclass(frozen=True)
class LogFormat:
    name: str
    title: str
    detect: Callable[[Mapping[str, Any]], bool]  # does a file's first record look like this format
    fields: Mapping[str, str]  # contract field -> SQL giving its value as text
    sources: Mapping[str, str]  # contract field -> where it comes from, in words (docs/formats.md)
    layers: tuple[Mapping[str, str], ...] = ()  # named SQL values over `_j` and earlier layers, parsed once
    role: str = "'exchange'"
    key: str = "NULL"
    note: str = "NULL"  # why a record is skipped (a short code) or unrecognized (a message)
    issued: str = "[]"  # sha256 of the reasoning blobs the response issued
    replayed: str = "[]"  # ... and of those the request sent back
    explode: str | None = None  # SQL over {records} (_line, _text) giving (_line, _sub, _text): one record, many exchanges
    containers: tuple[str, ...] = ("jsonl", "csv", "parquet")
    about: str = ""  # what files it reads, for docs/formats.md

    def __post_init__(self) -> None:
        unknown = set(self.fields) - set(EVENTS.names)
        if unknown:
            raise ValueError(f"format {self.name}: {sorted(unknown)} are not contract fields")


def exploded_sql(fmt: LogFormat, records: str) -> str:
    """records -> (_line, _sub, _text): the records that framed well, one row per exchange."""
    valid = f"SELECT _line, _text FROM ({records}) WHERE _frame IS NULL"
    return fmt.explode.format(records=valid) if fmt.explode else f"SELECT _line, 0::BIGINT AS _sub, _text FROM ({valid})"


def mapped_sql(fmt: LogFormat, records: str, exploded: str | None = None) -> str:
    """records (_line, _text, _raw, _frame, _frame_detail; _text a JSON object where
    _frame is NULL) -> one mapped row per record (per exchange, for formats that explode).
    Records that failed framing keep their frame problem and skip the mapping. exploded:
    exploded_sql() already written out (ingest does, for formats that explode: mapping
    rows straight out of an unnest makes the engine hold far more)."""
    exploded = exploded or exploded_sql(fmt, records)
    output = {"_role": fmt.role, "_key": fmt.key, "_note": fmt.note,
              **{f.name: fmt.fields.get(f.name, "NULL") for f in EVENTS.fields},
              "_issued": fmt.issued, "_replayed": fmt.replayed}
    *layers, output = hoist([*fmt.layers, output])
    body = f"SELECT *, json(_text) AS _j FROM ({exploded})"
    for layer in layers:
        body = f"SELECT *, {', '.join(f'{sql} AS {ident(name)}' for name, sql in layer.items())} FROM ({body})"
    fields = ", ".join(f"CAST({output[f.name]} AS VARCHAR) AS {ident(f.name)}" for f in EVENTS.fields)
    return f"""
SELECT _line, _sub, encode(_text) AS _raw, NULL::VARCHAR AS _frame, NULL::VARCHAR AS _frame_detail,
  ({output['_role']})::VARCHAR AS _role, ({output['_key']})::VARCHAR AS _key, ({output['_note']})::VARCHAR AS _note,
  {fields}, ({output['_issued']})::VARCHAR[] AS _issued, ({output['_replayed']})::VARCHAR[] AS _replayed
FROM ({body})
UNION ALL
SELECT _line, 0, coalesce(_raw, encode(_text)), _frame, _frame_detail, 'invalid', NULL, NULL,
  {', '.join('NULL' for _ in EVENTS.fields)}, []::VARCHAR[], []::VARCHAR[]
FROM ({records}) WHERE _frame IS NOT NULL"""


def given(name: str) -> str:
    """The column of combined_sql holding a field's value as the log gave it (as text;
    validation then adds the typed column of the field's own name)."""
    return f"{name}:given"


def combined_sql(mapped: str, fills: Mapping[str, str] | None = None) -> str:
    """Mapped rows of one ingest (with _file and _source_file) -> rows to validate.

    A response is paired with the one request of the same key (a batch result with its
    request line); a request or response with no partner, or with several, is
    quarantined (unpaired_batch_record, ambiguous_batch_record), as is an unrecognized
    record. An exchange takes account_id and conversation_id from the context record its
    key names when it has none itself; then `fills` (field -> value, `ingest --fill`)
    stand in for values still missing. A record with no request_id of its own is named
    by a hash of its bytes. Adds _pos (file, line, exchange within the line: first-wins
    order) and _skip (why a row is not an exchange; NULL for those that are)."""
    fills = dict(fills or {})
    pos = position("_file", "_line", "_sub")

    def value(name: str) -> str:
        v = f"m.{ident(name)}"
        if name == EVENTS.key:  # named by its content, a re-delivered record is a duplicate
            v = f"coalesce({v}, 'sha256:' || left(sha256(m._raw), 32))"
        if name in CONTEXT_FIELDS:
            v = f"coalesce({v}, c.{ident(name)})"
        v = f"coalesce(q.{ident(name)}, {v})"  # a paired request's fields come first (model asked for)
        return f"coalesce({v}, {literal(fills[name])})" if name in fills else v

    fields = ", ".join(f"{value(f.name)} AS {ident(given(f.name))}" for f in EVENTS.fields)
    context = ", ".join(f"arg_min({ident(n)}, _pos) FILTER (WHERE {ident(n)} IS NOT NULL) AS {ident(n)}"
                        for n in CONTEXT_FIELDS)
    paired = "h.requests = 1 AND h.responses = 1"
    where = f"'the ' || m._role || ' line with custom_id ' || coalesce({shown('m._key')}, '(none)') || ' '"
    # The mapped rows are read once per use rather than through one CTE, which the
    # engine could materialize whole: the halves and contexts read few columns of few rows.
    m = f"(SELECT *, {pos} AS _pos FROM ({mapped}))"
    return f"""
WITH halves AS (SELECT _key, count(*) FILTER (WHERE _role = 'request') AS requests,
                  count(*) FILTER (WHERE _role = 'response') AS responses
           FROM {m} WHERE _role IN ('request', 'response') GROUP BY _key),
requests AS (SELECT r.* FROM {m} r JOIN halves h USING (_key) WHERE r._role = 'request' AND {paired}),
contexts AS (SELECT _key, {context} FROM {m} WHERE _role = 'context' GROUP BY _key)
SELECT {fields}, m._file, m._source_file, m._line, m._pos,
  CASE WHEN q._raw IS NULL THEN m._raw ELSE q._raw || '\\x0A'::BLOB || m._raw END AS _raw,
  CASE WHEN m._role = 'invalid' THEN m._frame
       WHEN m._role = 'unrecognized' THEN 'unrecognized_record'
       WHEN m._role IN ('request', 'response') AND (h.requests > 1 OR h.responses > 1) THEN 'ambiguous_batch_record'
       WHEN m._role IN ('request', 'response') AND NOT ({paired}) THEN 'unpaired_batch_record' END AS _frame,
  CASE WHEN m._role = 'invalid' THEN m._frame_detail
       WHEN m._role = 'unrecognized' THEN m._note
       WHEN m._role IN ('request', 'response') AND (h.requests > 1 OR h.responses > 1) THEN {where}
            || 'is one of ' || h.requests || ' requests and ' || h.responses || ' results with that id in this '
            || 'ingest: ingest one batch (its input and its results) at a time'
       WHEN m._role = 'request' AND NOT ({paired}) THEN {where}
            || 'has no result line: ingest the batch''s results file with its input file'
       WHEN m._role = 'response' AND NOT ({paired}) THEN {where}
            || 'has no request line: ingest the batch''s input file with its results file' END AS _frame_detail,
  CASE WHEN m._role = 'skip' THEN coalesce(m._note, 'not_an_exchange')
       WHEN m._role = 'context' THEN 'context_record'
       WHEN m._role = 'request' AND {paired} THEN 'request_paired_with_result' END AS _skip,
  list_distinct(list_concat(m._issued, coalesce(q._issued, []))) AS _issued,
  list_distinct(list_concat(m._replayed, coalesce(q._replayed, []))) AS _replayed
FROM {m} m
LEFT JOIN halves h ON m._role IN ('request', 'response') AND h._key IS NOT DISTINCT FROM m._key
LEFT JOIN requests q ON m._role = 'response' AND q._key = m._key AND {paired}
LEFT JOIN contexts c ON m._role = 'exchange' AND c._key = m._key"""

