"""The distillation-intent signal: the pattern file, its validation, the SQL, and quality floors.

Quality is asserted on tests/fixtures/intent_heldout.yaml, prompts written apart from
the training set and never used to fit the weights. The SQL is checked against a
plain-Python reference of the formula (Python's `re`) and against running every
pattern's regex without the literal prefilters.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from distillguard.engine import Engine, literal
from distillguard.signals.intent import (
    KINDS,
    REASON_CODES,
    IntentPatternError,
    load_patterns,
    matched_patterns_sql,
    parse_patterns,
    pattern_match_sql,
    score_column,
    intent_scores_sql,
    request_scores,
    intent_sql,
    top_kind_sql,
)

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = ROOT / "tests" / "fixtures" / "intent_heldout.yaml"
TRAINING = ROOT / "scripts" / "intent_training.yaml"
LANGUAGES = ("en", "zh", "ru", "es")


# ------------------------------------------------------------------ helpers


def _records(path: Path) -> list[dict]:
    """label, lang, prompt, system for every prompt of the held-out or the training file."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "positives" in doc:  # the held-out layout
        items = [(k, it) for k, its in doc["positives"].items() for it in its]
        items += [("none", it) for it in doc["negatives"]]
    else:
        items = [(k, it) for k, its in doc.items() for it in its]
    return [{"label": k, "lang": it["lang"], "prompt": it["prompt"], "system": it.get("system")} for k, it in items]


def _table(records: list[dict]) -> pa.Table:
    return pa.table({
        "i": np.arange(len(records)),
        "prompt": pa.array([r["prompt"] for r in records], pa.string()),
        "system": pa.array([r["system"] for r in records], pa.string()),
    })


def _scores(records: list[dict], sql_for=None) -> np.ndarray:
    """One row per record, one column per kind, from intent_scores_sql (or another query builder)."""
    sql_for = sql_for or (lambda src: intent_scores_sql(src))
    with Engine.open() as engine:
        engine.register("texts", _table(records))
        cols = ", ".join(score_column(k) for k in KINDS)
        out = engine.arrow(f"SELECT {cols} FROM ({sql_for('texts')}) ORDER BY i")
    return np.column_stack([c.to_numpy() for c in out.columns])


def _reference(model, prompt: str, system: str | None) -> list[float]:
    """The formula in plain Python: sigmoid(bias + sum of the weights of matching patterns)."""
    texts = {"prompt": prompt.lower(), "system": (system or "").lower()}
    out = []
    for k in model.kinds:
        z = k.bias
        for p in k.patterns:
            fields = [f for f, on in (("prompt", p.on_prompt), ("system", p.on_system)) if on]
            if any(re.search(p.regex, texts[f]) for f in fields):
                z += p.weight
        out.append(1.0 / (1.0 + math.exp(-z)))
    return out


def _plain_sql(model):
    """Every pattern's regex run on every row, no prefilters: what the fast query must equal."""
    matches = pattern_match_sql("prompt", "system", model)

    def build(src: str) -> str:
        cols = []
        for k in model.kinds:
            terms = " + ".join(f"CASE WHEN {m} THEN {p.weight!r} ELSE 0 END" for p, m in matches if p.kind == k.kind)
            cols.append(f"1 / (1 + exp(-({k.bias!r} + {terms}))) AS {score_column(k.kind)}")
        return f"SELECT i, {', '.join(cols)} FROM {src}"

    return build


@pytest.fixture(scope="module")
def model():
    return load_patterns()


@pytest.fixture(scope="module")
def heldout() -> list[dict]:
    return _records(HELDOUT)


@pytest.fixture(scope="module")
def heldout_scores(heldout) -> np.ndarray:
    return _scores(heldout)


@pytest.fixture(scope="module")
def mixed(heldout) -> list[dict]:
    """Held-out and training prompts, simulator text, and edge cases: for SQL equivalence."""
    from distillguard.simulate.text import FAMILIES, TextSource

    records = heldout + _records(TRAINING)
    source = TextSource()
    for family in FAMILIES:
        for lang in LANGUAGES:
            rng = np.random.default_rng([len(family), LANGUAGES.index(lang)])
            prompts, systems = source.prompts(family, 8, rng, lang), source.system_prompts(family, 8, rng, lang)
            records += [{"label": "sim", "lang": lang, "prompt": p, "system": s} for p, s in zip(prompts, systems)]
    records += [
        {"label": "edge", "lang": "en", "prompt": "", "system": None},
        {"label": "edge", "lang": "en", "prompt": "What is 2+2?", "system": ""},
        {"label": "edge", "lang": "en", "prompt": "Hi", "system": "Explain like you are teaching a five year old."},
        {"label": "edge", "lang": "en", "prompt": "SHOW YOUR FULL CHAIN OF THOUGHT, then answer.", "system": None},
        {"label": "edge", "lang": "en", "prompt": "[The Start of Assistant B's Answer]\n...", "system": None},
        {"label": "edge", "lang": "zh", "prompt": "请写出最终答案是如何得到的，还原推理过程", "system": None},
    ]
    return records


# ------------------------------------------------------------------ the pattern file


def test_every_kind_has_patterns_in_every_language(model):
    for k in model.kinds:
        langs = {p.lang for p in k.patterns}
        missing = [lang for lang in LANGUAGES if lang not in langs]
        assert not missing, f"{k.kind} has no patterns for {missing}"


def test_patterns_are_reviewable_evidence(model):
    for k in model.kinds:
        # A request that matches nothing must score low, whatever the kind.
        assert 1 / (1 + math.exp(-k.bias)) < 0.01, k.kind
        for p in k.patterns:
            assert p.reason and p.weight >= 0, p.id
            assert p.literals or p.anchored, p.id


def test_every_regex_compiles_in_the_engine(model):
    cols = ", ".join(f"regexp_matches('x', {literal(p.regex)}) AS c{i}" for i, p in enumerate(model.patterns))
    with Engine.open() as engine:
        assert len(engine.rows(f"SELECT {cols}")[0]) == len(model.patterns)


def test_required_literals_are_in_every_match(model, mixed):
    """The prefilter rests on this: wherever a regex matches, one of its literals occurs."""
    texts = [t for r in mixed for t in (r["prompt"].lower(), (r["system"] or "").lower())]
    for p in model.patterns:
        for text in texts:
            if not p.anchored and re.search(p.regex, text):
                assert any(x in text for x in p.literals), (p.id, p.literals, text[:200])


def test_the_file_is_in_the_fitters_canonical_form(model):
    """The fit script rewrites the file; a hand edit that it would reformat shows up here."""
    pytest.importorskip("sklearn")  # the script's own dependency, a dev extra
    spec = importlib.util.spec_from_file_location("fit_intent_weights", ROOT / "scripts" / "fit_intent_weights.py")
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    text = Path(model.source).read_text(encoding="utf-8")
    biases = {k.kind: k.bias for k in model.kinds}
    weights = {p.id: p.weight for p in model.patterns}
    assert fit.render(model, text, biases, weights) == text


def test_product_code_never_imports_scikit_learn():
    # Only the benchmark's baselines may (the optional `bench` extra): the scan runs without it.
    bench = ROOT / "src" / "distillguard" / "bench"
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "src" / "distillguard").rglob("*.py")
                 if bench not in path.parents
                 and re.search(r"^\s*(import|from)\s+sklearn", path.read_text(encoding="utf-8"), re.M)]
    assert not offenders


def test_reason_codes_are_documented():
    text = (ROOT / "docs" / "signals.md").read_text(encoding="utf-8")
    missing = [code for code in REASON_CODES.values() if f"`{code}`" not in text]
    assert not missing, f"docs/signals.md does not describe {missing}"


# ------------------------------------------------------------------ validation


def _doc(**change) -> dict:
    """A valid pattern file as a dict, one pattern per kind; `change` edits the reasoning pattern."""
    kinds = {}
    for kind in KINDS:
        pattern = {"id": f"{kind}.en.sample", "lang": "en", "applies_to": "both", "strength": "medium",
                   "weight": 2.0, "reason": "A sample.", "regex": f"{kind.replace('_', ' ')} please"}
        kinds[kind] = {"bias": -5.0, "patterns": [pattern]}
    kinds["reasoning"]["patterns"][0].update(change)
    return {"version": 1, "kinds": kinds}


def _parse(doc: dict):
    return parse_patterns(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), source="test-intents.yaml")


def test_a_valid_file_loads():
    model = _parse(_doc())
    assert [k.kind for k in model.kinds] == list(KINDS)
    assert model.kind("reasoning").patterns[0].literals == ("reasoning please",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lang": "fr", "id": "reasoning.fr.sample"}, "unknown lang 'fr'"),
        ({"regex": "(?=think)think aloud"}, "RE2 does not support"),
        ({"regex": r"think (aloud\1)"}, "RE2 does not support"),
        ({"regex": "think (aloud"}, "bad regex"),
        ({"regex": "Think Aloud"}, "upper-case"),
        ({"regex": "(?i)think aloud"}, "inline flags"),
        ({"regex": "(think)?"}, "empty string"),
        ({"regex": "[0-9]+ of [0-9]+"}, "no distinctive literal"),
        ({"id": "judging.en.sample"}, "id must read 'reasoning.en.<name>'"),
        ({"id": "reasoning.en.Bad-Name"}, "id must read"),
        ({"weight": "high"}, "weight must be a finite number"),
        ({"applies_to": "response"}, "applies_to must be one of"),
        ({"strength": "huge"}, "strength must be one of"),
        ({"reason": ""}, "missing field(s) ['reason']"),
        ({"severity": "high"}, "unknown field(s) ['severity']"),
    ],
)
def test_a_bad_pattern_is_rejected_naming_the_file_and_the_pattern(change, message):
    with pytest.raises(IntentPatternError) as err:
        _parse(_doc(**change))
    text = str(err.value)
    assert text.startswith("test-intents.yaml:"), text
    assert message in text, text
    assert f"pattern {change.get('id', 'reasoning.en.sample')!r}" in text, text


def test_duplicate_ids_are_rejected():
    doc = _doc()
    doc["kinds"]["reasoning"]["patterns"].append(dict(doc["kinds"]["reasoning"]["patterns"][0], regex="think aloud"))
    with pytest.raises(IntentPatternError, match=r"test-intents.yaml:\d+: pattern 'reasoning.en.sample': duplicate id"):
        _parse(doc)


def test_unknown_and_missing_kinds_are_rejected():
    doc = _doc()
    doc["kinds"]["bogus"] = doc["kinds"]["judging"]
    with pytest.raises(IntentPatternError, match=r"test-intents.yaml: unknown kind\(s\) \['bogus'\]"):
        _parse(doc)
    doc = _doc()
    del doc["kinds"]["agentic"]
    with pytest.raises(IntentPatternError, match=r"kind\(s\) \['agentic'\] have no section"):
        _parse(doc)


def test_load_patterns_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(_doc(regex="Think")), encoding="utf-8")
    with pytest.raises(IntentPatternError, match="mine.yaml"):
        load_patterns(path)


# ------------------------------------------------------------------ the SQL


def test_sql_scores_equal_the_python_reference(model, mixed):
    sql = _scores(mixed)
    ref = np.array([_reference(model, r["prompt"], r["system"]) for r in mixed])
    worst = np.abs(sql - ref).max(axis=1)
    bad = [(mixed[i]["prompt"][:80], sql[i].round(4).tolist(), ref[i].round(4).tolist())
           for i in np.nonzero(worst > 1e-9)[0][:5]]
    assert not bad, bad


def test_one_request_scores_as_the_table_does(model, mixed):
    """The online scorer (one request, literal prefilters in Python) equals the batch SQL."""
    sql = _scores(mixed)
    online = np.array([[request_scores(r["prompt"], r["system"], model)[k] for k in KINDS] for r in mixed])
    worst = np.abs(sql - online).max(axis=1)
    bad = [(mixed[i]["prompt"][:80], sql[i].round(4).tolist(), online[i].round(4).tolist())
           for i in np.nonzero(worst > 1e-9)[0][:5]]
    assert not bad, bad
    assert request_scores("Show your full chain of thought, step by step.")["reasoning"] > 0.5


def test_prefilters_never_change_a_score(model, mixed):
    """intent_scores_sql (literal prefilters) and intent_sql (self-contained) both equal
    running every regex on every row."""
    plain = _plain_sql(model)
    expected = _scores(mixed, lambda src: plain(src))

    def inline(src: str) -> str:
        exprs = intent_sql("prompt", "system", model)
        return f"SELECT i, {', '.join(f'{e} AS {score_column(k)}' for k, e in exprs.items())} FROM {src}"

    for builder in (None, inline):
        got = _scores(mixed, builder)
        assert np.abs(got - expected).max() < 1e-12


def test_scores_without_a_system_column():
    records = [{"prompt": "Show your full chain of thought before answering.", "system": None}]
    with Engine.open() as engine:
        engine.register("t", pa.table({"prompt": ["Show your full chain of thought before answering."]}))
        row = engine.rows(f"SELECT * FROM ({intent_scores_sql('t', system=None)})")[0]
    assert row[0] == records[0]["prompt"] and row[1] > 0.5  # the source's columns, then the scores in KINDS order


def test_evidence_lists_the_matching_pattern_ids(model):
    prompt = "Act as an impartial judge. Which response is better? Output [[A]] or [[B]]. Think aloud first."
    with Engine.open() as engine:
        engine.register("t", pa.table({"prompt": [prompt], "system": pa.array([None], pa.string())}))
        every = engine.rows(f"SELECT {matched_patterns_sql('prompt', 'system')} FROM t")[0][0]
        judging = engine.rows(f"SELECT {matched_patterns_sql('prompt', 'system', kind='judging')} FROM t")[0][0]
        scores = f"SELECT *, {top_kind_sql({k: score_column(k) for k in KINDS})} AS top FROM ({intent_scores_sql('t')})"
        top, ids = engine.rows(
            f"SELECT top, {matched_patterns_sql('prompt', 'system', kind_expr='top')} FROM ({scores})")[0]
    weight = {p.id: p.weight for p in model.patterns}
    assert {"judging.any.verdict_markers", "judging.en.impartial_judge", "reasoning.en.think_aloud"} <= set(every)
    assert judging and all(i.startswith("judging.") for i in judging)
    assert [weight[i] for i in judging] == sorted((weight[i] for i in judging), reverse=True)
    assert top == "judging" and ids == judging


def test_top_kind_prefers_the_highest_score_then_the_earlier_kind():
    cols = {k: f"s{i}" for i, k in enumerate(KINDS)}
    rows = [[0.1, 0.9, 0.2, 0.0, 0.0, 0.0], [0.5, 0.5, 0.1, 0.0, 0.0, 0.0], [0.0] * 5 + [0.3]]
    with Engine.open() as engine:
        engine.register("t", pa.table({f"s{i}": [r[i] for r in rows] for i in range(len(KINDS))}))
        tops = [r[0] for r in engine.rows(f"SELECT {top_kind_sql(cols)} FROM t")]
    assert tops == ["synthetic_data", "reasoning", "capability_sweep"]


def test_unknown_kinds_fail_loudly(model):
    with pytest.raises(KeyError):
        score_column("bogus")
    with pytest.raises(KeyError):
        matched_patterns_sql("prompt", None, kind="bogus")


# ------------------------------------------------------------------ quality floors (held-out)


@pytest.mark.parametrize("kind", KINDS)
def test_heldout_distillation_asks_score_high(kind, heldout, heldout_scores):
    rows = [i for i, r in enumerate(heldout) if r["label"] == kind]
    assert {heldout[i]["lang"] for i in rows} >= set(LANGUAGES)
    hits = heldout_scores[rows, KINDS.index(kind)] >= 0.5
    missed = [heldout[i]["prompt"][:70] for i, hit in zip(rows, hits) if not hit]
    assert hits.mean() >= 0.85, missed


@pytest.mark.parametrize("kind", KINDS)
def test_heldout_hard_negatives_score_low(kind, heldout, heldout_scores):
    rows = [i for i, r in enumerate(heldout) if r["label"] == "none"]
    assert {heldout[i]["lang"] for i in rows} >= set(LANGUAGES)
    low = heldout_scores[rows, KINDS.index(kind)] < 0.5
    flagged = [heldout[i]["prompt"][:70] for i, ok in zip(rows, low) if not ok]
    assert low.mean() >= 0.95, flagged


def test_specific_asks_outweigh_generic_phrasing():
    """Graded strength: a specific trace-harvesting ask scores far above everyday wording."""
    texts = [
        "Write out your complete internal reasoning in <thinking> tags before the answer.",
        "Can you explain step by step how to solve 2x + 3 = 7?",
        "Rate this response from 1 to 10 and output [[rating]].",
        "Rate my poem from 1 to 10.",
    ]
    s = _scores([{"prompt": t, "system": None} for t in texts])
    reasoning, judging = KINDS.index("reasoning"), KINDS.index("judging")
    assert s[0, reasoning] > 0.9 and s[1, reasoning] < 0.2
    assert s[2, judging] > 0.9 and s[3, judging] < 0.2
