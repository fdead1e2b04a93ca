"""Framing text files into Arrow chunks of records, in bounded memory.

Python only cuts bytes into records here (lines for JSON Lines, quote-aware
records for CSV), with numpy doing the scanning; every field rule runs later as
SQL (validate.py). Each chunk carries, per record, its 1-based starting physical
line, its raw bytes, and a framing problem when there is one (bad UTF-8, a line
too long to hold, a file that breaks off), so that nothing read is ever lost.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CHUNK_BYTES = 32 << 20  # records are handed to the engine in chunks of about this size
READ_BYTES = 4 << 20  # bytes read from disk at a time
MAX_RECORD_BYTES = 64 << 20  # a longer record is quarantined (the contract's largest row is far smaller)
RAW_SAMPLE = 64 << 10  # how much of an over-long record the quarantine keeps
BOM = b"\xef\xbb\xbf"

Progress = Callable[[int], None]  # bytes of the file consumed so far

# The chunks handed to the engine (through a Parquet file).
_FRAMING = [("_line", pa.int64()), ("_raw", pa.binary()), ("_frame", pa.string()), ("_frame_detail", pa.string())]
JSONL_SCHEMA = pa.schema([*_FRAMING, ("_text", pa.string())])
CSV_SCHEMA = pa.schema([*_FRAMING, ("_fields", pa.list_(pa.string()))])


class Unreadable(Exception):
    """Nothing could be read from the file (reason: the quarantine code of the whole file)."""

    def __init__(self, detail: str, reason: str = "unreadable_file"):
        super().__init__(detail)
        self.reason = reason


@dataclass
class _Special:
    """A record the framer itself rejects, spanning `lines` physical lines."""

    raw: bytes
    reason: str
    detail: str
    lines: int = 1


# --- bytes -----------------------------------------------------------------

def byte_blocks(path: Path, progress: Progress) -> Iterator[bytes | _Special]:
    """The file's (decompressed) bytes. A .gz that is cut short or damaged ends
    the stream with a truncated_file _Special; what came before is kept."""
    gz = path.name.lower().endswith(".gz")
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, generator-owned
    except OSError as e:
        raise Unreadable(f"cannot open the file: {e.strerror or e}") from e
    with fh:
        if not gz:
            while block := fh.read(READ_BYTES):
                yield block
                progress(fh.tell())
            return
        d, pending, produced = zlib.decompressobj(31), b"", False
        while True:
            if not pending:
                pending = fh.read(READ_BYTES)
                progress(fh.tell())
                if not pending:
                    if not d.eof and fh.tell() > 0:
                        yield _Special(b"", "truncated_file", "the gzip stream ends early: the file was cut short")
                    return
            if d.eof:  # concatenated gzip members are one stream
                d = zlib.decompressobj(31)
            try:
                block = d.decompress(pending, READ_BYTES * 4)  # bounded: data may expand a lot
            except zlib.error as e:
                if not produced:
                    raise Unreadable(f"not a readable gzip file ({e})") from e
                yield _Special(b"", "truncated_file", f"the gzip data is damaged near compressed byte {fh.tell()} ({e})")
                return
            pending = d.unused_data if d.eof else d.unconsumed_tail
            if block:
                produced = True
                yield block


# --- records ---------------------------------------------------------------

def _last_newline(buf: bytearray) -> int:
    """JSON Lines: records end at every newline."""
    return buf.rfind(b"\n") + 1


def _record_ends(data: bytes | bytearray) -> tuple[np.ndarray, np.ndarray]:
    """CSV: positions of the newlines that end a record (an even number of quotes
    before them, so not inside a quoted field) and their index among all newlines."""
    a = np.frombuffer(data, np.uint8)
    nl = np.flatnonzero(a == 10)
    even = np.searchsorted(np.flatnonzero(a == 34), nl) % 2 == 0
    return nl[even], np.flatnonzero(even)


def _last_record_end(buf: bytearray) -> int:
    ends, _ = _record_ends(buf)
    return int(ends[-1]) + 1 if len(ends) else 0


def _runs(blocks: Iterator[bytes | _Special], cut: Callable[[bytearray], int]) -> Iterator[bytes | _Special]:
    """Regroup byte blocks into runs of whole records of about CHUNK_BYTES; each
    run ends with a newline. Records too long to hold and the broken-off end of a
    truncated file come out as _Special in their place."""
    buf, skipping = bytearray(), None
    for block in blocks:
        if isinstance(block, _Special):  # the stream broke off: what is pending is cut short
            k = cut(buf)
            if k:
                yield bytes(buf[:k])
            tail = bytes(buf[k:])
            yield _Special(tail[:MAX_RECORD_BYTES], block.reason, block.detail, tail.count(b"\n") + 1)
            return
        if skipping is not None:  # inside an over-long record: drop bytes up to its end
            j = block.find(b"\n")
            skipping.lines += block.count(b"\n", 0, j if j >= 0 else len(block))
            if j < 0:
                continue
            yield skipping
            skipping, block = None, block[j + 1:]
        buf += block
        if len(buf) >= CHUNK_BYTES:
            k = cut(buf)
            if k:
                yield bytes(buf[:k])
                del buf[:k]
            if len(buf) > MAX_RECORD_BYTES:
                skipping = _Special(
                    bytes(buf[:RAW_SAMPLE]), "too_long",
                    f"the record is longer than {MAX_RECORD_BYTES:,} bytes (or a quoted field is never closed); "
                    f"raw keeps its first {RAW_SAMPLE:,} bytes", buf.count(b"\n") + 1)
                buf.clear()
    if skipping is not None:
        yield skipping
    elif buf:
        yield bytes(buf) if buf.endswith(b"\n") else bytes(buf) + b"\n"


def _special_table(s: _Special, line: int) -> pa.Table:
    return pa.table({"_line": pa.array([line], pa.int64()), "_raw": pa.array([s.raw], pa.binary()),
                     "_frame": [s.reason], "_frame_detail": [s.detail]})


def _utf8(raw: pa.Array) -> tuple[pa.Array, list | None]:
    """raw as text (NULL where not UTF-8) and, when some are not, a message per record."""
    text = raw.view(pa.string())
    try:
        text.validate(full=True)  # vectorized; the rare failure is located record by record
        return text, None
    except pa.ArrowInvalid:
        pass
    ok, details = [], []
    for value in raw.to_pylist():
        try:
            value.decode("utf-8")
            ok.append(True), details.append(None)
        except UnicodeDecodeError as e:
            ok.append(False)
            details.append(f"not valid UTF-8: byte 0x{value[e.start]:02x} at byte {e.start + 1} of the record")
    return pc.if_else(pa.array(ok), text, pa.scalar(None, pa.string())), details


def _frames(details: list | None, n: int, reason: str) -> dict[str, pa.Array]:
    if details is None:
        return {"_frame": pa.nulls(n, pa.string()), "_frame_detail": pa.nulls(n, pa.string())}
    return {"_frame": pa.array([None if d is None else reason for d in details], pa.string()),
            "_frame_detail": pa.array(details, pa.string())}


def jsonl_chunks(path: Path, progress: Progress) -> Iterator[pa.Table]:
    """Chunks of lines: _line, _text (the line without its newline), _raw (the
    bytes, only where there is no _text: not UTF-8, or a framing problem),
    _frame, _frame_detail. Blank lines are included; the SQL skips them."""
    line = 1
    for run in _runs(byte_blocks(path, progress), _last_newline):
        if isinstance(run, _Special):
            yield _special_table(run, line).append_column("_text", pa.nulls(1, pa.string()))
            line += run.lines
            continue
        if line == 1 and run.startswith(BOM):
            run = run[len(BOM):]
        a = np.frombuffer(run, np.uint8)
        newline = a == 10
        nl = np.flatnonzero(newline)
        n = len(nl)
        offsets = np.empty(n + 1, np.int32)  # line i is run[start_i:nl[i]]; the values drop the newlines
        offsets[0], offsets[1:] = 0, nl - np.arange(n)
        raw = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(a[~newline])])
        text, details = _utf8(raw)
        raw = pa.nulls(n, pa.binary()) if details is None else pc.if_else(pc.is_null(text), raw, None)
        yield pa.table({"_line": np.arange(line, line + n, dtype=np.int64), "_raw": raw, "_text": text,
                        **_frames(details, n, "bad_encoding")})
        line += n


def csv_chunks(path: Path, progress: Progress) -> Iterator[tuple[list[str], pa.Table]]:
    """(header, chunk) pairs; chunk has _line (the record's first physical line),
    _raw, _fields (list of strings; NULL when the record is not UTF-8 or its
    quoting is broken), _frame, _frame_detail. Quoted fields may span lines."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))
    line, header = 1, None
    for run in _runs(byte_blocks(path, progress), _last_record_end):
        if isinstance(run, _Special):
            yield header or [], _special_table(run, line).append_column("_fields", pa.nulls(1, pa.list_(pa.string())))
            line += run.lines
            continue
        if line == 1 and run.startswith(BOM):
            run = run[len(BOM):]
        ends, idx = _record_ends(run)
        if not len(ends) or ends[-1] != len(run) - 1:  # a quote never closed runs to the end
            ends, idx = np.append(ends, len(run) - 1), np.append(idx, run.count(b"\n") - 1)
        starts = np.concatenate([[0], ends[:-1] + 1])
        lines = line + np.concatenate([[0], idx[:-1] + 1])
        raws = [run[s:e] for s, e in zip(starts.tolist(), ends.tolist())]
        line += run.count(b"\n")
        if header is None:
            header = [h.strip() for h in next(csv.reader([raws[0].decode("utf-8", "replace")]), [])]
            raws, lines = raws[1:], lines[1:]
        raw = pa.array(raws, pa.binary())
        text, details = _utf8(raw)
        frames = _frames(details, len(raws), "bad_encoding")
        fields, frames = _parse_csv(text, frames)
        yield header, pa.table({"_line": pa.array(lines, pa.int64()), "_raw": raw, "_fields": fields, **frames})


def _parse_csv(text: pa.Array, frames: dict[str, pa.Array]) -> tuple[pa.Array, dict[str, pa.Array]]:
    """Split each record into fields with the csv module (a C loop over the chunk)."""
    records = text.to_pylist()
    try:
        rows = list(csv.reader([r or "" for r in records], strict=True))
        if len(rows) != len(records):  # a record the reader did not see as one
            raise csv.Error("record count changed")
    except csv.Error:  # broken quoting somewhere: find it record by record
        reasons, details = frames["_frame"].to_pylist(), frames["_frame_detail"].to_pylist()
        rows = []
        for i, r in enumerate(records):
            try:
                parsed = list(csv.reader([r or ""], strict=True))
                if len(parsed) > 1:
                    raise csv.Error("a quote inside an unquoted field makes the record run over several lines")
                rows.append(parsed[0] if parsed else [])
            except csv.Error as e:
                rows.append(None)
                if reasons[i] is None:
                    reasons[i], details[i] = "malformed_csv", f"cannot split the record into fields: {e}"
        frames = {"_frame": pa.array(reasons, pa.string()), "_frame_detail": pa.array(details, pa.string())}
    rows = [None if r is None else row for r, row in zip(records, rows)]
    return pa.array(rows, pa.list_(pa.string())), frames
