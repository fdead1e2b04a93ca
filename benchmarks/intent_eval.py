"""Quality and speed of the distillation-intent signal (src/distillguard/signals/intent.py).

    .venv/bin/python benchmarks/intent_eval.py                       # everything
    .venv/bin/python benchmarks/intent_eval.py --corpora ../shared/corpora --rows 1000000
    .venv/bin/python benchmarks/intent_eval.py --skip-throughput

Reports, as Markdown tables for docs/signals.md:

1. precision and recall per kind on the held-out prompts (tests/fixtures/intent_heldout.yaml),
   which were never used to fit the weights;
2. the same on prompts from the traffic simulator's phrasebook, reported separately:
   it is our own synthetic text, and the patterns were written without reading it;
3. when the public corpora folder is present: false-positive rates on real human prompts
   and the detection rate on real data-generator prompt templates (airoboros);
4. throughput: requests scored per second on 2 threads, on a 1M-row table of realistic
   prompts (each made unique by a random number) and, when given, on a simulated world.

Corpus text is only read here, never written anywhere.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from distillguard.engine import Engine
from distillguard.signals.intent import KINDS, intent_scores_sql, load_patterns, pattern_match_sql, score_column

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "tests" / "fixtures" / "intent_heldout.yaml"
DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
THRESHOLD = 0.5

# Simulator families whose prompts carry a distillation intent, and which kind.
CAMPAIGN_FAMILIES = {
    "reasoning_elicitation": "reasoning",
    "paraphrased_reasoning": "reasoning",
    "rubric_grading": "judging",
    "pairwise_judging": "judging",
    "safety_rewrite": "safety_rewrite",
    "synthetic_data": "synthetic_data",
    "capability_sweep": "capability_sweep",
    "agentic_trace": "agentic",
}


# ------------------------------------------------------------------ scoring


def score(texts: list[str], systems: list[str | None] | None = None, *, threads: int | None = None) -> np.ndarray:
    """Scores, one row per text and one column per kind (KINDS order)."""
    systems = systems if systems is not None else [None] * len(texts)
    table = pa.table({"i": np.arange(len(texts)), "prompt": pa.array(texts, pa.string()),
                      "system": pa.array(systems, pa.string())})
    with Engine.open(threads=threads) as engine:
        engine.register("texts", table)
        cols = ", ".join(score_column(k) for k in KINDS)
        out = engine.arrow(f"SELECT {cols} FROM ({intent_scores_sql('texts')}) ORDER BY i", step="intent eval")
    return np.column_stack([c.to_numpy() for c in out.columns]) if len(texts) else np.zeros((0, len(KINDS)))


def precision_recall(labels: list[str], scores: np.ndarray) -> list[tuple[str, int, int, int, float, float]]:
    """Per kind: positives, true positives, false positives, precision, recall at THRESHOLD."""
    labels_arr = np.array(labels)
    rows = []
    for j, kind in enumerate(KINDS):
        flagged = scores[:, j] >= THRESHOLD
        pos = labels_arr == kind
        tp, fp = int((flagged & pos).sum()), int((flagged & ~pos).sum())
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / int(pos.sum()) if pos.any() else float("nan")
        rows.append((kind, int(pos.sum()), tp, fp, precision, recall))
    return rows


def _print_pr(title: str, labels: list[str], scores: np.ndarray, negatives: int) -> None:
    print(f"\n### {title}\n")
    print(f"{len(labels)} prompts, of which {negatives} carry no distillation intent.\n")
    print("| kind | positives | recall | false positives | precision |")
    print("|---|---|---|---|---|")
    for kind, pos, tp, fp, precision, recall in precision_recall(labels, scores):
        print(f"| {kind} | {pos} | {recall:.0%} ({tp}/{pos}) | {fp} | {precision:.0%} |")


# ------------------------------------------------------------------ held-out set


def heldout() -> tuple[list[str], list[str], list[str | None], list[str]]:
    doc = yaml.safe_load(HELDOUT.read_text(encoding="utf-8"))
    labels, texts, systems, langs = [], [], [], []
    for kind, items in doc["positives"].items():
        for it in items:
            labels.append(kind), texts.append(it["prompt"]), systems.append(it.get("system")), langs.append(it["lang"])
    for it in doc["negatives"]:
        labels.append("none"), texts.append(it["prompt"]), systems.append(it.get("system")), langs.append(it["lang"])
    return labels, texts, systems, langs


def eval_heldout() -> None:
    labels, texts, systems, langs = heldout()
    scores = score(texts, systems)
    _print_pr("Held-out prompts (tests/fixtures/intent_heldout.yaml)", labels, scores, labels.count("none"))
    print("\n| language | positives detected (own kind) | hard negatives below 0.5 on every kind |")
    print("|---|---|---|")
    kind_index = {k: j for j, k in enumerate(KINDS)}
    for lang in ("en", "zh", "ru", "es"):
        pos = [i for i, (lab, lg) in enumerate(zip(labels, langs)) if lg == lang and lab != "none"]
        neg = [i for i, (lab, lg) in enumerate(zip(labels, langs)) if lg == lang and lab == "none"]
        hit = sum(scores[i, kind_index[labels[i]]] >= THRESHOLD for i in pos)
        clean = sum((scores[i] < THRESHOLD).all() for i in neg)
        print(f"| {lang} | {hit}/{len(pos)} | {clean}/{len(neg)} |")


# ------------------------------------------------------------------ simulator


def eval_simulator(n: int = 200) -> None:
    from distillguard.simulate.text import FAMILIES, LANGUAGES, TextSource

    source = TextSource()
    labels, texts, systems, families = [], [], [], []
    for family in FAMILIES:
        for lang in LANGUAGES:
            rng = np.random.default_rng([len(family), LANGUAGES.index(lang), 7])
            prompts = source.prompts(family, n, rng, lang)
            sys_prompts = source.system_prompts(family, n, rng, lang)
            labels += [CAMPAIGN_FAMILIES.get(family, "none")] * n
            texts += prompts
            systems += sys_prompts
            families += [family] * n
    scores = score(texts, systems)
    _print_pr(f"Simulator phrasebook ({n} prompts per family and language, no corpora)", labels, scores,
              labels.count("none"))
    print("\n| family | expected kind | flagged as expected kind | flagged as any kind |")
    print("|---|---|---|---|")
    fam = np.array(families)
    for family in FAMILIES:
        rows = fam == family
        expected = CAMPAIGN_FAMILIES.get(family)
        own = f"{(scores[rows, KINDS.index(expected)] >= THRESHOLD).mean():.0%}" if expected else "-"
        anyk = (scores[rows] >= THRESHOLD).any(axis=1)
        top = Counter(KINDS[j] for j in scores[rows][anyk].argmax(axis=1))
        detail = ", ".join(f"{k} {c / rows.sum():.0%}" for k, c in top.most_common(2))
        print(f"| {family} | {expected or 'none'} | {own} | {anyk.mean():.0%}{' (' + detail + ')' if detail else ''} |")


# ------------------------------------------------------------------ real corpora


def _jsonl(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def human_corpora(root: Path) -> dict[str, list[str]]:
    """Real prompts people wrote, per source (absent files are skipped)."""
    human = root / "human"
    out: dict[str, list[str]] = {}
    if (human / "koala_test_set.jsonl").exists():
        out["koala"] = [o["prompt"] for o in _jsonl(human / "koala_test_set.jsonl") if isinstance(o, dict)]
    if (human / "oasst_prompt_lottery.jsonl").exists():
        out["oasst prompt lottery"] = [o for o in _jsonl(human / "oasst_prompt_lottery.jsonl") if isinstance(o, str)]
    if (human / "selfinstruct_user_oriented.jsonl").exists():
        out["self-instruct user-oriented"] = [
            o["instruction"] + ("\n\n" + o["instances"][0].get("input", "") if o.get("instances") else "")
            for o in _jsonl(human / "selfinstruct_user_oriented.jsonl") if isinstance(o, dict)]
    if (human / "awesome_chatgpt_prompts.csv").exists():
        csv.field_size_limit(1 << 24)
        text = (human / "awesome_chatgpt_prompts.csv").read_text(encoding="utf-8", errors="replace")
        out["awesome-chatgpt-prompts"] = [r["prompt"] for r in csv.DictReader(io.StringIO(text)) if r.get("prompt")]
    if (human / "hh_rlhf_harmless_test.jsonl.gz").exists():
        turns = []
        for o in _jsonl(human / "hh_rlhf_harmless_test.jsonl.gz"):
            for part in o.get("chosen", "").split("\n\nHuman:")[1:]:
                turns.append(part.split("\n\nAssistant:", 1)[0].strip())
        out["hh-rlhf Human: turns"] = turns
    return {name: [t for t in dict.fromkeys(texts) if t and t.strip()] for name, texts in out.items()}


def eval_corpora(root: Path) -> None:
    sources = human_corpora(root)
    if sources:
        print(f"\n### Real human prompts ({root})\n")
        print("False-positive rate: share of prompts scoring >= 0.5 on a kind.\n")
        print("| source | prompts | any kind | " + " | ".join(KINDS) + " |")
        print("|---|---|---|" + "---|" * len(KINDS))
        total, total_any = 0, 0
        for name, texts in sources.items():
            s = score(texts) >= THRESHOLD
            total, total_any = total + len(texts), total_any + int(s.any(axis=1).sum())
            per_kind = " | ".join(f"{s[:, j].mean():.1%}" for j in range(len(KINDS)))
            print(f"| {name} | {len(texts):,} | {s.any(axis=1).mean():.1%} | {per_kind} |")
        print(f"| **all** | {total:,} | {total_any / total:.1%} |" + " |" * len(KINDS))

    airoboros = root / "generator-templates" / "airoboros"
    files = sorted(airoboros.glob("*.txt")) if airoboros.is_dir() else []
    if files:
        names = [f.stem for f in files]
        raw = [f.read_text(encoding="utf-8", errors="replace") for f in files]
        # As a generator sends them: counts become numbers, every other placeholder a plain word.
        filled = [re.sub(r"\{(\w+)\}", lambda m: "20" if re.search(r"count|size|threshold", m[1]) else
                         "English" if m[1].startswith("language") else "history", t) for t in raw]
        want = [KINDS.index("synthetic_data"), KINDS.index("reasoning")]
        first = np.array([not n.endswith("_response") for n in names])
        print(f"\n### Real generator prompt templates ({airoboros.relative_to(root.parent)})\n")
        results = {}
        for label, texts in (("as stored, with {placeholders}", raw), ("placeholders filled", filled)):
            s = score(texts)
            hit = s[:, want].max(axis=1) >= THRESHOLD
            results[label] = s
            print(f"- {label}: synthetic_data or reasoning >= 0.5 on {hit.sum()}/{len(files)} templates "
                  f"({hit[first].sum()}/{first.sum()} of the first-stage ones, not *_response); "
                  f"any kind >= 0.5 on {(s >= THRESHOLD).any(axis=1).sum()}/{len(files)}.")
        s = results["placeholders filled"]
        print("\n| template (placeholders filled) | synthetic_data | reasoning | top kind |")
        print("|---|---|---|---|")
        for name, row in zip(names, s):
            print(f"| {name} | {row[want[0]]:.2f} | {row[want[1]]:.2f} | {KINDS[row.argmax()]} {row.max():.2f} |")


# ------------------------------------------------------------------ throughput


def _timed_scan(engine: Engine, source: str, repeat: int) -> float:
    cols = ", ".join(f"sum({score_column(k)})" for k in KINDS)
    sql = f"SELECT count(*), {cols} FROM ({intent_scores_sql(source)})"
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        engine.rows(sql, step="intent throughput")
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def eval_throughput(rows: int, threads: int, corpora: Path | None, world: Path | None, repeat: int) -> None:
    labels, texts, systems, _ = heldout()
    ordinary = [t for t, label in zip(texts, labels) if label == "none"]
    if corpora:
        ordinary += [t for source in human_corpora(corpora).values() for t in source]
    asks = [t for t, label in zip(texts, labels) if label != "none"]
    # Mostly ordinary requests, 1 in 20 a held-out distillation ask; a random number makes
    # every prompt unique, so nothing is computed once and reused.
    rng = np.random.default_rng(0)
    is_ask = rng.random(rows) < 0.05
    pick_o, pick_a = rng.integers(0, len(ordinary), rows), rng.integers(0, len(asks), rows)
    prompts = [(asks[a] if ask else ordinary[o]) + f" #{n}"
               for ask, o, a, n in zip(is_ask, pick_o, pick_a, rng.integers(0, 10**9, rows))]
    with_system = [s for s in systems if s]
    system = [with_system[i % len(with_system)] if i % 5 == 0 else None for i in range(rows)]
    table = pa.table({"prompt": pa.array(prompts, pa.string()), "system": pa.array(system, pa.string())})
    print(f"\n### Throughput ({threads} threads, median of {repeat} runs)\n")
    print("| input | rows | median / mean prompt chars | seconds | rows/s | 5.6M rows would take |")
    print("|---|---|---|---|---|---|")
    with Engine.open(threads=threads) as engine:
        engine.register("bench_arrow", table)
        engine.execute("CREATE TABLE bench AS SELECT * FROM bench_arrow", step="load")
        engine.unregister("bench_arrow")
        inputs = [(f"realistic prompts{' (held-out + human corpora)' if corpora else ' (held-out)'}, "
                   "5% distillation asks, 20% with a system prompt", "bench")]
        if world is not None and world.exists():
            engine.execute(f"CREATE TABLE world AS SELECT prompt, system FROM read_parquet('{world}')", step="load")
            inputs.append((f"simulated world {world.parent.name} (events.parquet)", "world"))
        for label, name in inputs:
            n, med, mean = engine.rows(f"SELECT count(*), median(length(prompt)), avg(length(prompt)) FROM {name}")[0]
            secs = _timed_scan(engine, name, repeat)
            print(f"| {label} | {n:,} | {int(med)} / {int(mean)} | {secs:.1f} | {n / secs:,.0f} | "
                  f"{5.6e6 / (n / secs):.0f} s |")


def eval_equivalence(corpora: Path | None, n: int = 60) -> None:
    """The literal prefilters must never change a score: compare with running every regex."""
    from distillguard.simulate.text import FAMILIES, LANGUAGES, TextSource

    model = load_patterns()
    _, texts, systems, _ = heldout()
    source = TextSource()
    for family in FAMILIES:
        for lang in LANGUAGES:
            rng = np.random.default_rng([len(family), LANGUAGES.index(lang), 3])
            texts += source.prompts(family, n, rng, lang)
            systems += source.system_prompts(family, n, rng, lang)
    if corpora:
        for t in human_corpora(corpora).values():
            texts += t
            systems += [None] * len(t)
    fast = score(texts, systems)
    matches = pattern_match_sql("prompt", "system", model)
    cols = []
    for k in model.kinds:
        terms = " + ".join(f"CASE WHEN {m} THEN {p.weight!r} ELSE 0 END" for p, m in matches if p.kind == k.kind)
        cols.append(f"1 / (1 + exp(-({k.bias!r} + {terms})))")
    table = pa.table({"i": np.arange(len(texts)), "prompt": pa.array(texts, pa.string()),
                      "system": pa.array(systems, pa.string())})
    with Engine.open() as engine:
        engine.register("texts", table)
        out = engine.arrow(f"SELECT {', '.join(cols)} FROM texts ORDER BY i", step="plain scores")
    plain = np.column_stack([c.to_numpy() for c in out.columns])
    differing = int((np.abs(fast - plain) > 1e-9).any(axis=1).sum())
    sources = "held-out, simulator" + (", human corpora" if corpora else "")
    print(f"\n### Prefilters vs every regex\n\n{len(texts):,} texts ({sources}): "
          f"{differing} score differently with the literal prefilters than with every regex run.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows in the throughput table")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--world", type=Path, default=None, help="a simulated world's events.parquet, for throughput")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    corpora = args.corpora if args.corpora.is_dir() else None

    model = load_patterns()
    print(f"intents.yaml sha256 {model.sha256[:12]}, {len(model.patterns)} patterns, threshold {THRESHOLD}")
    eval_heldout()
    eval_simulator()
    if corpora:
        eval_corpora(corpora)
    else:
        print(f"\n(no corpora at {args.corpora}: real-prompt figures skipped)")
    eval_equivalence(corpora)
    if not args.skip_throughput:
        eval_throughput(args.rows, args.threads, corpora, args.world, args.repeat)


if __name__ == "__main__":
    main()
