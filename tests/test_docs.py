"""Docs that are generated or enumerate data must stay in step with the code."""

from pathlib import Path

from distillguard.schema.docs import render
from distillguard.simulate.catalog import personas

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_schema_doc_is_generated_from_the_contract():
    assert (DOCS / "schema.md").read_text(encoding="utf-8").strip() == render().strip(), \
        "docs/schema.md is stale: run `make docs`"


def test_every_persona_and_campaign_is_documented():
    text = (DOCS / "simulator.md").read_text(encoding="utf-8")
    missing = [name for name in personas() if f"| {name} |" not in text]
    assert not missing, f"docs/simulator.md does not describe {missing}"
