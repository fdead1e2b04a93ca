"""Fit the distillation-intent weights and biases, and write them into intents.yaml.

    .venv/bin/python scripts/fit_intent_weights.py            # fit and rewrite the file
    .venv/bin/python scripts/fit_intent_weights.py --dry-run  # only report

One logistic regression per kind (scikit-learn, a dev dependency: the product never
imports it) on the hand-written, labelled prompts in scripts/intent_training.yaml.
The features are the kind's patterns, matched by the engine exactly as in
production (DuckDB regexp_matches on lower-cased text), so the fitted weights are
the weights the SQL will use. A request labelled with another kind, or `none`, is a
negative for this kind.

The weight of a pattern is its strength tier's weight plus its own adjustment, penalized
more (see `_design`): with a few hundred prompts for ~200 patterns, most patterns are
matched once or twice, and this keeps each near what its tier earns. C and the pooling
scale are chosen by 5-fold cross-validation on the training prompts (never on the
held-out set) unless given.

The output is a proposal for review, not a verdict: the script reports patterns no
training prompt matches (they get their tier's weight), tiers whose weights come out of
order, and patterns whose fitted sign contradicts the reviewed sign (set to 0 and
reported: a pattern written as evidence for a kind must not count against it because
of a small training set). Review the diff of intents.yaml and run
tests/signals/test_intent.py before committing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from distillguard.engine import Engine
from distillguard.signals.intent import (
    KINDS, STRENGTHS, IntentModel, KindModel, load_patterns, parse_patterns, pattern_match_sql,
)

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = ROOT / "src" / "distillguard" / "signals" / "intents.yaml"
TRAINING = ROOT / "scripts" / "intent_training.yaml"
# The regularization is chosen from this grid by 5-fold cross-validation on the
# training prompts only (never on the held-out set), unless --C and --pool are given.
GRID_C = (1.0, 3.0, 10.0, 30.0, 100.0)
GRID_POOL = (0.1, 0.3, 0.5, 1.0)


def load_examples(path: Path) -> pa.Table:
    """The training prompts as a table: label (a kind or 'none'), lang, prompt, system."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    unknown = set(doc) - set(KINDS) - {"none"}
    if unknown:
        sys.exit(f"{path}: unknown label(s) {sorted(unknown)}")
    rows = [(label, ex["lang"], ex["prompt"], ex.get("system"))
            for label, examples in doc.items() for ex in examples]
    return pa.table({name: list(col) for name, col in zip(("label", "lang", "prompt", "system"), zip(*rows))})


def features(model: IntentModel, examples: pa.Table) -> np.ndarray:
    """A 0/1 matrix: one row per example, one column per pattern (model.patterns order)."""
    with Engine.open() as engine:
        engine.register("examples", examples)
        cols = [f"({sql})::INTEGER" for _, sql in pattern_match_sql("prompt", "system", model)]
        table = engine.arrow(f"SELECT {', '.join(cols)} FROM examples", step="intent features")
    return np.column_stack([c.to_numpy(zero_copy_only=False) for c in table.columns]).astype(float)


def _design(kind: KindModel, x: np.ndarray, pool: float) -> np.ndarray:
    """Partial pooling in one logistic regression: a pattern's weight is its tier's
    weight plus its own adjustment. The tier columns count the matched patterns of
    each strength; the adjustment columns are the pattern indicators scaled by
    `pool` < 1, which makes the common L2 penalty 1/pool**2 times stronger on the
    adjustments. A pattern seen once in training therefore keeps about its tier's
    weight instead of whatever a single example says."""
    tiers = [x[:, [j for j, p in enumerate(kind.patterns) if p.strength == t]].sum(axis=1) for t in STRENGTHS]
    return np.column_stack([*tiers, pool * x])


def _fit_kind(kind: KindModel, x: np.ndarray, y: np.ndarray, c: float, pool: float):
    lr = LogisticRegression(C=c, max_iter=10_000).fit(_design(kind, x, pool), y)
    tier = dict(zip(STRENGTHS, lr.coef_[0][: len(STRENGTHS)]))
    own = lr.coef_[0][len(STRENGTHS):]
    weights = [float(tier[p.strength] + pool * own[j]) for j, p in enumerate(kind.patterns)]
    return float(lr.intercept_[0]), weights, tier


def cross_validate(model: IntentModel, examples: pa.Table, cs, pools, folds: int = 5) -> dict:
    """Mean held-out log-loss per (C, pool), summed over kinds: for choosing the defaults."""
    x_all = features(model, examples)
    labels = np.array(examples["label"].to_pylist())
    ids = [p.id for p in model.patterns]
    out = {}
    for c in cs:
        for pool in pools:
            total = 0.0
            for kind in model.kinds:
                x = x_all[:, [ids.index(p.id) for p in kind.patterns]]
                y = (labels == kind.kind).astype(int)
                for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y):
                    bias, w, _ = _fit_kind(kind, x[train], y[train], c, pool)
                    z = bias + x[test] @ np.array(w)
                    total += log_loss(y[test], 1 / (1 + np.exp(-z)), labels=[0, 1]) * len(test)
            out[(c, pool)] = total / len(labels)
    return out


def fit(model: IntentModel, examples: pa.Table, c: float, pool: float):
    """Fitted biases per kind and weights per pattern id, and notes for the reviewer."""
    x_all = features(model, examples)
    labels = np.array(examples["label"].to_pylist())
    ids = [p.id for p in model.patterns]
    biases, weights, notes = {}, {}, []
    for kind in model.kinds:
        x = x_all[:, [ids.index(p.id) for p in kind.patterns]]
        y = (labels == kind.kind).astype(int)
        bias, fitted, tier = _fit_kind(kind, x, y, c, pool)
        biases[kind.kind] = bias
        if not tier["strong"] >= tier["medium"] >= tier["weak"]:
            notes.append(f"{kind.kind}: tier weights out of order {', '.join(f'{t} {w:+.2f}' for t, w in tier.items())}")
        for j, p in enumerate(kind.patterns):
            w = fitted[j]
            if x[:, j].sum() == 0:
                notes.append(f"no training prompt matches {p.id}: it gets its tier's weight {w:.2f}")
            if p.weight >= 0 and w <= 0 or p.weight < 0 and w >= 0:
                notes.append(f"sign contradicts review: {p.id} fitted {w:+.2f}, set to 0 "
                             f"(matches {int(x[y == 1, j].sum())} positives, {int(x[y == 0, j].sum())} negatives)")
                w = 0.0
            weights[p.id] = w
    return biases, weights, notes


def _quote(text: str) -> str:
    """A YAML single-quoted scalar: backslashes stay literal, which keeps regexes readable."""
    return "'" + text.replace("'", "''") + "'"


def render(model: IntentModel, original: str, biases: dict[str, float], weights: dict[str, float]) -> str:
    """The pattern file with new weights: same header comment, same order, fixed field order."""
    header = []
    for line in original.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    out = [*header, f"version: {model.version}", "kinds:"]
    for kind in model.kinds:
        out += [f"  {kind.kind}:", f"    bias: {biases[kind.kind]:.2f}", "    patterns:"]
        for p in kind.patterns:
            out += [
                f"    - id: {p.id}",
                f"      lang: {p.lang}",
                f"      applies_to: {p.applies_to}",
                f"      strength: {p.strength}",
                f"      weight: {weights[p.id]:.2f}",
                f"      reason: {_quote(p.reason)}",
                f"      regex: {_quote(p.regex)}",
            ]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patterns", type=Path, default=PATTERNS)
    ap.add_argument("--training", type=Path, default=TRAINING)
    ap.add_argument("--C", type=float, help="inverse L2 strength (smaller: weights shrink toward 0); default: by CV")
    ap.add_argument("--pool", type=float,
                    help="scale of the per-pattern adjustments (smaller: closer to the tier weight); default: by CV")
    ap.add_argument("--cv", action="store_true", help="print the cross-validated log-loss of the whole grid and stop")
    ap.add_argument("--dry-run", action="store_true", help="report only; do not rewrite the pattern file")
    args = ap.parse_args()

    original = args.patterns.read_text(encoding="utf-8")
    model = load_patterns(args.patterns)
    examples = load_examples(args.training)
    if args.cv or args.C is None or args.pool is None:
        grid = cross_validate(model, examples, cs=(args.C,) if args.C else GRID_C,
                              pools=(args.pool,) if args.pool else GRID_POOL)
        ranked = sorted(grid.items(), key=lambda kv: kv[1])
        if args.cv:
            for (c, pool), loss in ranked:
                print(f"C={c:<5} pool={pool:<4} cross-validated log-loss {loss:.4f}")
            return
        (args.C, args.pool), loss = ranked[0]
        print(f"chose C={args.C}, pool={args.pool} by 5-fold cross-validation (log-loss {loss:.4f})")
    biases, weights, notes = fit(model, examples, args.C, args.pool)
    counts = {label: examples["label"].to_pylist().count(label) for label in (*KINDS, "none")}
    print(f"fitted on {examples.num_rows} prompts {counts}, C={args.C}, pool={args.pool}")
    for kind in model.kinds:
        print(f"  {kind.kind:17s} bias {kind.bias:+.2f} -> {biases[kind.kind]:+.2f}")
    for note in notes:
        print("  note:", note)
    text = render(model, original, biases, weights)
    parse_patterns(text, source=str(args.patterns))  # never write a file that would not load
    if args.dry_run:
        return
    args.patterns.write_text(text, encoding="utf-8")
    print(f"wrote {args.patterns}")


if __name__ == "__main__":
    main()
