"""The simulator's text source: vocabulary, determinism, languages, diversity.

The diversity tests matter most: a campaign whose prompts share one fixed
string would let a detector cheat with a substring match, and the stealth
campaign must not even share a template.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from distillguard.simulate.text import FAMILIES, LANGUAGES, TextSource, estimate_tokens

# The shared corpora sit beside the repository (never inside it); optional everywhere.
CORPORA = Path(os.environ.get("DISTILLGUARD_CORPORA", Path(__file__).resolve().parents[3] / "shared" / "corpora"))
PHRASEBOOK = Path(__file__).resolve().parents[2] / "src" / "distillguard" / "simulate" / "phrasebook"
ENTERPRISE = [f for f in FAMILIES if f.startswith("enterprise_")]
CJK = re.compile(r"[\u4e00-\u9fff]")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")
SLOT = re.compile(r"\{\{\w+(?:\.\w+)?\}\}")


@pytest.fixture(scope="module")
def ts():
    return TextSource()


def rng(seed=0):
    return np.random.default_rng(seed)


def test_vocabulary():
    assert LANGUAGES == ("en", "zh", "ru", "es")
    assert len(FAMILIES) == len(set(FAMILIES)) == 22
    assert {"chat", "paraphrased_reasoning", "agentic_trace", "enterprise_invoice_extraction"} <= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic_given_the_rng(ts, family):
    a = ts.prompts(family, 40, rng(1), "en")
    assert a == ts.prompts(family, 40, rng(1), "en")
    assert a != ts.prompts(family, 40, rng(2), "en")
    assert ts.responses(family, a, rng(3), "zh") == ts.responses(family, a, rng(3), "zh")
    assert ts.system_prompts(family, 40, rng(4), "ru") == ts.system_prompts(family, 40, rng(4), "ru")
    # Another instance reads the same phrasebook: same text.
    assert TextSource().prompts(family, 40, rng(1), "en") == a


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_family_speaks_every_language(ts, family, lang):
    prompts = ts.prompts(family, 60, rng(5), lang)
    assert len(prompts) == 60
    assert all(isinstance(p, str) and 2 <= len(p.strip()) <= 12_000 for p in prompts)
    if lang == "zh":
        assert all(CJK.search(p) for p in prompts)
    if lang == "ru":
        assert all(CYRILLIC.search(p) for p in prompts)
    systems = ts.system_prompts(family, 60, rng(6), lang)
    assert len(systems) == 60 and all(s is None or (isinstance(s, str) and s) for s in systems)
    replies = ts.responses(family, prompts, rng(7), lang)
    assert len(replies) == 60 and all(isinstance(r, str) and 1 <= len(r) <= 2_000 for r in replies)


def test_lengths_fit_the_family(ts):
    med = {f: np.median([len(p) for p in ts.prompts(f, 300, rng(8))]) for f in ("chat", "chat_followup", "agentic_trace")}
    assert med["chat_followup"] < med["chat"] < 300
    long = [len(p) for p in ts.prompts("agentic_trace", 300, rng(8))]
    assert 1_000 <= np.median(long) <= 6_000 and min(long) >= 500


def test_per_row_languages(ts):
    langs = ["en", "zh", "ru", "es"] * 50
    prompts = ts.prompts("chat", len(langs), rng(9), langs)
    for p, lang in zip(prompts, langs):
        assert bool(CJK.search(p)) == (lang == "zh")
        assert bool(CYRILLIC.search(p)) == (lang == "ru")
    assert prompts == ts.prompts("chat", len(langs), rng(9), np.array(langs))
    assert len(ts.responses("chat", prompts, rng(9), langs)) == len(langs)
    with pytest.raises(ValueError):
        ts.prompts("chat", 3, rng(), ["en", "zh"])
    with pytest.raises(ValueError, match="de"):
        ts.prompts("chat", 2, rng(), ["en", "de"])
    with pytest.raises(ValueError, match="fr"):
        ts.prompts("chat", 2, rng(), "fr")


def test_unknown_family_is_named(ts):
    for call in (
        lambda: ts.prompts("chit_chat", 1, rng()),
        lambda: ts.system_prompts("chit_chat", 1, rng()),
        lambda: ts.responses("chit_chat", ["hi"], rng()),
    ):
        with pytest.raises(ValueError, match="chit_chat"):
            call()


def test_empty_request(ts):
    assert ts.prompts("agentic_trace", 0, rng()) == []
    assert ts.responses("chat", [], rng()) == []


def test_stealth_campaign_has_no_template(ts):
    prompts = ts.prompts("paraphrased_reasoning", 1000, rng(10))
    assert len(set(prompts)) >= 990
    masked = Counter(re.sub(r"\d+", "#", p) for p in prompts)
    assert masked.most_common(1)[0][1] <= 5
    # No shared opening or closing either: those are where templates show.
    heads = Counter(p[:40] for p in prompts)
    tails = Counter(p[-40:] for p in prompts)
    assert heads.most_common(1)[0][1] <= 30 and tails.most_common(1)[0][1] <= 30


def test_stealth_reads_like_honest_study_questions(ts):
    """The stealth campaign's words are the words of students and researchers."""
    stealth = " ".join(ts.prompts("paraphrased_reasoning", 400, rng(11))).lower()
    honest = " ".join(ts.prompts("research_reasoning", 400, rng(11)) + ts.prompts("homework", 400, rng(11))).lower()
    for marker in ("chain of thought", "chain-of-thought", "<thinking>", "internal reasoning"):
        assert marker not in stealth
    shared = [w for w in ("could you", "step by step", "walk me through", "i'm studying", "thanks") if w in honest]
    assert sum(w in stealth for w in shared) >= len(shared) - 1


@pytest.mark.parametrize("lang,least", [("en", 12), ("zh", 6), ("ru", 6), ("es", 6)])
def test_reasoning_elicitation_has_many_phrasings_all_used(ts, lang, least):
    templates = [t.text for t in ts._grammar[lang]["re_prompt"].items]
    assert len(set(templates)) >= least
    prompts = "\n\x00".join(ts.prompts("reasoning_elicitation", 3000, rng(12), lang))
    for text in templates:
        longest = max(SLOT.split(text), key=len).strip()
        assert longest in prompts, f"phrasing never used: {text[:60]}"


@pytest.mark.parametrize("family", ENTERPRISE)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_enterprise_fixed_template_varied_content(ts, family, lang):
    prompts = ts.prompts(family, 500, rng(13), lang)
    heads = {p.split("\n", 1)[0] for p in prompts}
    assert len(heads) == 1 and len(heads.pop()) >= 20
    assert len(set(prompts)) >= 0.95 * len(prompts)


def test_pool_is_a_fixed_set(ts):
    a = ts.prompts("synthetic_data", 2000, rng(14), pool=25)
    b = ts.prompts("synthetic_data", 2000, rng(15), pool=25)
    assert 20 <= len(set(a)) <= 25 and set(a) == set(b)
    assert set(TextSource().prompts("synthetic_data", 2000, rng(16), pool=25)) == set(a)
    assert len(set(ts.prompts("chat", 300, rng(17), "zh", pool=7))) <= 7
    with pytest.raises(ValueError):
        ts.prompts("chat", 3, rng(), pool=0)


def test_benchmarks_are_fixed(ts):
    mcq = ts.benchmark_items("mcq", 300)
    assert mcq == TextSource().benchmark_items("mcq", 300) == ts.benchmark_items("mcq", 300)
    assert ts.benchmark_items("mcq", 40) == mcq[:40]
    assert len(set(mcq)) == 300
    assert all("Answer with the letter" in q and "\nD. " in q for q in mcq)
    math = ts.benchmark_items("math", 300)
    assert len(set(math)) == 300 and all(q.endswith("Let's think step by step.") for q in math)
    with pytest.raises(ValueError, match="trivia"):
        ts.benchmark_items("trivia", 3)
    # The eval families replay a bank, so accounts repeat each other's questions.
    runs = [set(ts.prompts("eval_mcq", 3000, rng(s))) for s in (18, 19)]
    assert len(runs[0] & runs[1]) > 300


def test_assignments_are_fixed_per_course(ts):
    a = ts.assignment_items(101, 20)
    assert a == TextSource().assignment_items(101, 20) == ts.assignment_items(101, 20)
    assert ts.assignment_items(101, 5) == a[:5] and len(set(a)) == 20
    # Another course of the same subject (essays, the smallest space) has its own questions.
    assert len(set(a) & set(ts.assignment_items(107, 20))) <= 5


def test_estimate_tokens():
    got = estimate_tokens(["", "hello world", "a" * 400, "数" * 150, "Привет мир" * 10, "abcd" * 10 + "字" * 15])
    assert got.dtype == np.int64
    assert got[0] == 0 and 2 <= got[1] <= 4 and got[2] == 100 and got[3] == 100
    assert 20 <= got[4] <= 30 and got[5] == 20
    assert estimate_tokens([]).shape == (0,)


@pytest.mark.skipif(not CORPORA.is_dir(), reason="no corpora folder")
def test_real_prompts_mix_in_for_english_only():
    ts = TextSource(CORPORA, corpora_share=0.5)
    human = set(ts._corpora["human"])
    assert len(human) > 1000 and len(ts._corpora["distillation"]) > 1000
    en = ts.prompts("chat", 600, rng(20), "en")
    assert 150 <= sum(p in human for p in en) <= 450
    assert not any(p in human for p in ts.prompts("chat", 600, rng(20), "zh"))
    mixed = ts.prompts("chat", 400, rng(21), ["ru", "en"] * 200)
    assert not any(p in human for p in mixed[::2]) and any(p in human for p in mixed[1::2])
    assert not any(p in human for p in TextSource(CORPORA, corpora_share=0.0).prompts("chat", 300, rng(20)))
    seeds = set(ts._corpora["distillation"])
    for family in ("reasoning_elicitation", "research_reasoning", "paraphrased_reasoning", "capability_sweep"):
        assert any(any(s in p for s in seeds) for p in ts.prompts(family, 200, rng(22))), family


@pytest.mark.skipif(not CORPORA.is_dir(), reason="no corpora folder")
def test_no_corpus_text_in_the_repository():
    ts = TextSource(CORPORA)
    book = "\n".join(p.read_text(encoding="utf-8") for p in PHRASEBOOK.glob("*.yaml"))
    own = Path(__file__).read_text(encoding="utf-8")
    for text in ts._corpora["human"] + ts._corpora["distillation"]:
        if len(text) >= 60:
            assert text[:60] not in book and text[:60] not in own
