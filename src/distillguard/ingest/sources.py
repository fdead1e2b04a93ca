"""Turning the paths a user gives into an ordered list of input files.

Everything here is checked before anything is written, so a typo in a path fails
fast with a message naming it instead of half-ingesting a batch.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Extension -> format. Text formats may also be gzip-compressed (.gz).
FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
SUPPORTED = sorted([*FORMATS, *(f"{ext}.gz" for ext, fmt in FORMATS.items() if fmt != "parquet")])


class IngestError(ValueError):
    """The request itself is wrong (a missing path, an unknown format, a busy
    workspace). Bad rows are never an error: they go to quarantine."""


@dataclass(frozen=True)
class Source:
    path: Path  # absolute
    format: str  # parquet | jsonl | csv
    size: int  # bytes on disk


def format_of(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".gz"):
        fmt = FORMATS.get(Path(name[:-3]).suffix)
        return fmt if fmt != "parquet" else None
    return FORMATS.get(path.suffix.lower())


def _in_folder(folder: Path) -> list[Path]:
    # Hidden files and folders (.DS_Store, .git, Spark's .crc files) are not data.
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and format_of(p) and not any(s.startswith(".") for s in p.relative_to(folder).parts))


def expand(specs: Sequence[str | Path], table: str) -> list[Source]:
    """Files for each spec (a file, a folder read recursively, or a glob), in the
    order given; folders and globs in name order. A file named twice is read once."""
    files: list[Path] = []
    for spec in specs:
        p = Path(spec).expanduser()
        if p.is_dir():
            found = _in_folder(p)
            if not found:
                raise IngestError(f"{table}: folder {spec} holds no supported files ({', '.join(SUPPORTED)})")
        elif p.is_file():
            if format_of(p) is None:
                raise IngestError(f"{table}: {spec}: unsupported file type; expected one of {', '.join(SUPPORTED)}")
            found = [p]
        elif glob.has_magic(str(spec)):
            matches = [Path(m) for m in sorted(glob.glob(str(p), recursive=True))]
            found = [f for m in matches for f in (_in_folder(m) if m.is_dir() else [m]) if format_of(f)]
            if not found:
                raise IngestError(f"{table}: no supported files match {spec}")
        else:
            raise IngestError(f"{table}: {spec}: no such file or folder")
        files.extend(found)
    seen: set[Path] = set()
    sources = []
    for f in files:
        f = f.resolve()
        if f not in seen:
            seen.add(f)
            sources.append(Source(f, format_of(f), f.stat().st_size))  # type: ignore[arg-type]
    return sources


def fingerprint(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """Content hash: a file already ingested (under any name) is skipped."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
            if progress:
                progress(len(block))
    return "sha256:" + h.hexdigest()
