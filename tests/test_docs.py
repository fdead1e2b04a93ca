"""Docs that are generated or enumerate data must stay in step with the code."""

from pathlib import Path

from distillguard.schema.docs import render
from distillguard.simulate.catalog import personas

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_schema_doc_is_generated_from_the_contract():
    assert (DOCS / "schema.md").read_text(encoding="utf-8").strip() == render().strip(), \
        "docs/schema.md is stale: run `make docs`"


def test_formats_doc_is_generated_from_the_log_formats():
    from distillguard.ingest.formats.docs import render as render_formats

    assert (DOCS / "formats.md").read_text(encoding="utf-8") == render_formats(), \
        "docs/formats.md is stale: run `make docs`"


def test_every_persona_and_campaign_is_documented():
    text = (DOCS / "simulator.md").read_text(encoding="utf-8")
    missing = [name for name in personas() if f"| {name} |" not in text]
    assert not missing, f"docs/simulator.md does not describe {missing}"


def test_every_benchmark_method_is_documented_and_cited():
    from distillguard.bench.run import METHODS, parameters

    text = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    params = parameters()
    undocumented = [m for m in METHODS if f"| {m} |" not in text]
    assert not undocumented, f"docs/benchmarks.md's method table lacks {undocumented}"
    uncited = [m for m in METHODS if m != "scanner" and not params[m].get("cite")]
    assert not uncited, f"baselines.yaml gives no source for {uncited}"
    assert all("placeholder" not in params[m]["about"] for m in METHODS)
