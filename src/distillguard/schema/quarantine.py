"""The quarantine table and its closed vocabulary of reason codes.

A row that ingest cannot store as-is is kept here, never dropped and never
silently repaired. A row with several problems gets the reason that comes first in
`REASONS` (whole-file and framing problems before field problems), while its
`detail` lists every problem found. Each code is documented in docs/ingest.md with
how to fix the data; a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Reason:
    code: str
    meaning: str


# In priority order: a row's reason is the first of these that applies.
REASONS: tuple[Reason, ...] = (
    Reason("unreadable_file", "The file could not be read at all (not Parquet, a broken footer, not gzip, no permission)."),
    Reason("unknown_format", "`--format auto` cannot tell the file's format, or the format is not read from this kind of file."),
    Reason("truncated_file", "The file breaks off (a gzip stream cut short or damaged); rows before the break were kept."),
    Reason("bad_encoding", "The record is not valid UTF-8."),
    Reason("malformed_json", "The line is not valid JSON."),
    Reason("not_an_object", "The line is valid JSON but not an object."),
    Reason("malformed_csv", "The CSV record has the wrong number of fields or broken quoting."),
    Reason("unrecognized_record", "The record is not one of the shapes its log format has (docs/formats.md)."),
    Reason("ambiguous_batch_record", "A batch request or result whose custom_id occurs more than once on its side in this ingest."),
    Reason("unpaired_batch_record", "A batch request with no result in this ingest, or a result with no request."),
    Reason("too_long", "The record, or a value in it, is longer than the contract allows (values are never truncated)."),
    Reason("missing_required", "A required field is absent, null or empty."),
    Reason("wrong_type", "A value cannot be converted to the field's type without loss."),
    Reason("bad_timestamp", "A timestamp is not an RFC 3339 / ISO 8601 date-time."),
    Reason("out_of_range", "A number is below the field's minimum or above its maximum, or a timestamp is outside 1970-2100."),
    Reason("not_in_vocabulary", "A value is not one of the field's allowed values."),
    Reason("bad_country_code", "A country is not a 2-letter ISO 3166 code."),
)

CODES: tuple[str, ...] = tuple(r.code for r in REASONS)
PRIORITY: dict[str, int] = {code: i for i, code in enumerate(CODES)}

# One row per rejected record. `raw` is binary so that invalid UTF-8 is kept exactly.
SCHEMA = pa.schema(
    [
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("table_name", pa.string(), nullable=False),  # events | accounts
        pa.field("source_file", pa.string(), nullable=False),  # absolute path
        pa.field("source_line", pa.int64()),  # 1-based line (text) or row (Parquet); null for the whole file
        pa.field("reason", pa.string(), nullable=False),  # one of CODES
        pa.field("detail", pa.string(), nullable=False),  # every problem found, for a person
        pa.field("raw", pa.binary()),  # the record as read; a JSON rendering for Parquet rows
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def check(code: str) -> str:
    """Return code if it is in the vocabulary; fail loudly at the call site otherwise."""
    if code not in PRIORITY:
        raise ValueError(f"unknown quarantine reason {code!r}; known: {', '.join(CODES)}")
    return code
