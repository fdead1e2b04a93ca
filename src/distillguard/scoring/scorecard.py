"""The scorecard (scorecard.yaml) and the step profiles -> `account_scores`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from distillguard.engine import Engine, ident, literal

# A term at or above this share of its weight is one of the account's reasons.
REASON_AT = 0.5
# A share measured over n exchanges counts as if the account had also sent this many
# ordinary ones: n * share / (n + PRIOR_EXCHANGES). Three requests that all ask for
# maximum output say little; three hundred say a lot. Without it, the population's
# edge is made of accounts with one to four exchanges, and a campaign whose members
# each behave consistently over dozens ranks below them (additive smoothing).
PRIOR_EXCHANGES = 5


@dataclass(frozen=True)
class Term:
    code: str          # the reason code
    feature: str       # a column of `profiles`
    ramp: tuple[float, float]
    weight: float
    about: str
    per: str | None = None  # the profile column counting what `feature` is a share of

    def sql(self) -> str:
        """weight * ramp(feature), 0 when the feature is unknown."""
        lo, hi = self.ramp
        x = ident(self.feature)
        if self.per:
            n = ident(self.per)
            x = f"({x} * {n} / ({n} + {PRIOR_EXCHANGES}))"
        return f"{self.weight} * coalesce(least(1.0, greatest(0.0, ({x} - ({lo})) / ({hi - lo}))), 0.0)"


class ScorecardError(ValueError):
    pass


def load_scorecard(path: str | Path | None = None) -> tuple[Term, ...]:
    where = str(path or "scoring/scorecard.yaml")
    text = Path(path).read_text() if path else resources.files(__package__).joinpath("scorecard.yaml").read_text()
    terms = []
    for code, spec in (yaml.safe_load(text).get("terms") or {}).items():
        try:
            lo, hi = (float(v) for v in spec["ramp"])
            term = Term(code, str(spec["feature"]), (lo, hi), float(spec["weight"]), str(spec["about"]),
                        str(spec["per"]) if spec.get("per") else None)
        except (KeyError, TypeError, ValueError) as e:
            raise ScorecardError(f"{where}: term {code}: {e}") from None
        if lo == hi or term.weight <= 0:
            raise ScorecardError(f"{where}: term {code}: the ramp needs two different ends and the weight must be > 0")
        terms.append(term)
    if not terms:
        raise ScorecardError(f"{where}: no terms")
    return tuple(terms)


@cache
def default_scorecard() -> tuple[Term, ...]:
    return load_scorecard()


def build_account_scores(engine: Engine, terms: tuple[Term, ...] | None = None) -> None:
    """profiles -> account_scores(account_id, score, <code> per term, reasons)."""
    terms = terms or default_scorecard()
    missing = {c for t in terms for c in (t.feature, t.per) if c} - {r[0] for r in engine.rows("DESCRIBE profiles")}
    if missing:
        raise ScorecardError(f"scorecard reads profile columns that do not exist: {', '.join(sorted(missing))}")
    parts = ",\n  ".join(f"{t.sql()} AS {ident(t.code)}" for t in terms)
    total = " + ".join(ident(t.code) for t in terms)
    # Reasons, strongest first: structs sort by their first field, the contribution.
    candidates = ", ".join(
        f"CASE WHEN {ident(t.code)} >= {REASON_AT * t.weight} THEN {{'value': {ident(t.code)}, "
        f"'code': {literal(t.code)}}} END" for t in terms)
    engine.execute(f"""
CREATE OR REPLACE TABLE account_scores AS
WITH parts AS (SELECT account_id, {parts} FROM profiles)
SELECT account_id, {total} AS score,
  list_transform(list_sort(list_filter([{candidates}], x -> x IS NOT NULL),
                           'DESC'), x -> x.code) AS reasons,
  * EXCLUDE (account_id)
FROM parts""", step="scoring: scorecard")
