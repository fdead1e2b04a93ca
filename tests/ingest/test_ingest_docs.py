"""docs/ingest.md must describe every reason code, lineage column and format."""

from __future__ import annotations

from pathlib import Path

from distillguard.ingest.sources import SUPPORTED
from distillguard.ingest.workspace import LINEAGE, QUARANTINE_COLUMNS
from distillguard.schema.quarantine import REASONS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "ingest.md").read_text(encoding="utf-8")


def test_every_reason_code_is_documented_with_its_meaning_and_a_fix():
    for r in REASONS:
        row = next((line for line in DOC.splitlines() if line.startswith(f"| `{r.code}` |")), None)
        assert row, f"docs/ingest.md has no row for {r.code}"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == r.meaning and cells[2], f"{r.code}: meaning differs from schema/quarantine.py or no fix"


def test_lineage_quarantine_columns_and_formats_are_documented():
    for name in (*LINEAGE, *QUARANTINE_COLUMNS):
        assert f"| `{name}` |" in DOC, name
    for ext in SUPPORTED:
        assert f"`{ext}`" in DOC, ext
