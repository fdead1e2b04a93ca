"""What an ingest did, for the CLI to print and for tests to check.

For every file and every table:
rows_read == rows_ingested + duplicates + quarantined + sum(skipped_records.values()),
skipped records being log records that hold no exchange of their own (a span of
another operation, a trace that names the user of its generations).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class FileReport:
    path: str
    format: str
    bytes: int  # size on disk
    fingerprint: str | None  # content hash; None when the file could not be read
    skipped: bool = False  # already ingested (same content): not read again
    rows_read: int = 0  # records found; a file that cannot be read at all counts as one
    rows_ingested: int = 0  # new rows appended
    duplicates: int = 0  # ids repeated in this input or already stored (accounts: unchanged rows)
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    skipped_records: dict[str, int] = field(default_factory=dict)  # why -> how many


@dataclass(frozen=True)
class TableReport:
    table: str
    files: int = 0  # files read (not counting skipped ones)
    skipped_files: int = 0  # files whose content was already ingested
    rows_read: int = 0
    rows_ingested: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    skipped_records: dict[str, int] = field(default_factory=dict)
    ignored_columns: tuple[str, ...] = ()  # input columns the contract does not know
    file_reports: tuple[FileReport, ...] = ()

    @classmethod
    def of(cls, table: str, files: list[FileReport], ignored: set[str]) -> TableReport:
        reasons: Counter[str] = Counter()
        skips: Counter[str] = Counter()
        for f in files:
            reasons.update(f.quarantine_reasons)
            skips.update(f.skipped_records)
        read = [f for f in files if not f.skipped]
        return cls(
            table=table, files=len(read), skipped_files=len(files) - len(read),
            rows_read=sum(f.rows_read for f in files), rows_ingested=sum(f.rows_ingested for f in files),
            duplicates=sum(f.duplicates for f in files), quarantined=sum(f.quarantined for f in files),
            quarantine_reasons=dict(reasons.most_common()), skipped_records=dict(skips.most_common()),
            ignored_columns=tuple(sorted(ignored)),
            file_reports=tuple(files),
        )


@dataclass(frozen=True)
class IngestReport:
    batch_id: str
    workspace: str
    committed: bool  # False when there was nothing new to store
    events: TableReport
    accounts: TableReport
    decisions: TableReport  # the gateway's decision log read back
    unknown_accounts: int  # accounts in the workspace's events with no accounts row (kept, and counted)
    totals: dict[str, int]  # workspace after the ingest: events, accounts, quarantined, batches

    def to_dict(self) -> dict:
        return asdict(self)
