"""Ingest: read traffic files, validate every row against the contract, and store
what is new in a workspace, atomically and idempotently. Nothing is lost: rows
that cannot be stored go to the quarantine table with a reason code.

    report = ingest(events=["logs/"], accounts=["accounts.csv"], workspace=".distillguard")
    ws = Workspace(".distillguard")   # later stages read ws.events_sql(), ws.accounts_sql()
"""

from distillguard.ingest.report import FileReport, IngestReport, TableReport
from distillguard.ingest.run import ingest
from distillguard.ingest.sources import IngestError
from distillguard.ingest.workspace import Workspace

__all__ = ["FileReport", "IngestError", "IngestReport", "TableReport", "Workspace", "ingest"]
