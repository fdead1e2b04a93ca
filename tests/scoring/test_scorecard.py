"""The scorecard: profiles -> account scores, on profiles whose right score is known."""

from __future__ import annotations

import pyarrow as pa
import pytest

from distillguard.engine import Engine
from distillguard.scoring.scorecard import (PRIOR_EXCHANGES, ScorecardError, build_account_scores,
                                            default_scorecard, load_scorecard)

CAP_ONLY = """
terms:
  params.max_tokens_at_cap:
    {feature: at_cap_share, per: exchanges, ramp: [0.3, 0.9], weight: 1.5, about: at the cap}
  account.new:
    {feature: age_days_at_first_use, ramp: [60, 7], weight: 1.0, about: new}
"""


def _scores(tmp_path, profiles: dict, text: str = CAP_ONLY) -> dict[str, float]:
    path = tmp_path / "scorecard.yaml"
    path.write_text(text)
    with Engine.open() as engine:
        engine.register("p", pa.table(profiles))
        engine.execute("CREATE TABLE profiles AS SELECT * FROM p")
        build_account_scores(engine, load_scorecard(path))
        return dict(engine.rows("SELECT account_id, score FROM account_scores"))


def test_a_share_counts_as_evidence_in_proportion_to_the_exchanges_behind_it(tmp_path):
    # Three requests all at the cap are little evidence; 300 at 90% are the ramp's top.
    scores = _scores(tmp_path, {
        "account_id": ["three", "many", "none"],
        "at_cap_share": [1.0, 0.9, 0.0],
        "exchanges": [3, 300, 300],
        "age_days_at_first_use": [400.0, 400.0, 400.0],
    })
    smoothed = 3 / (3 + PRIOR_EXCHANGES)  # 0.375 of a share of 1.0: 0.125 up the ramp
    assert scores["three"] == pytest.approx(1.5 * (smoothed - 0.3) / 0.6)
    assert scores["many"] == pytest.approx(1.5 * (0.9 * 300 / 305 - 0.3) / 0.6)
    assert scores["none"] == 0.0
    assert scores["three"] < 0.2 < 1.4 < scores["many"]


def test_a_term_without_a_count_ramps_on_its_value(tmp_path):
    scores = _scores(tmp_path, {
        "account_id": ["old", "week", "new"],
        "at_cap_share": [0.0, 0.0, 0.0],
        "exchanges": [10, 10, 10],
        "age_days_at_first_use": [60.0, 33.5, 2.0],  # the ramp runs downwards, 60 -> 7 days
    })
    assert scores == pytest.approx({"old": 0.0, "week": 0.5, "new": 1.0})


def test_a_scorecard_reading_a_missing_column_is_refused(tmp_path):
    with pytest.raises(ScorecardError, match="exchanges"):
        _scores(tmp_path, {"account_id": ["a"], "at_cap_share": [1.0], "age_days_at_first_use": [1.0]})


def test_every_share_in_the_shipped_scorecard_names_what_it_is_a_share_of():
    terms = default_scorecard()
    for term in terms:
        if term.feature.endswith("_share"):
            expected = "content_reads" if term.code.startswith("content.") else "exchanges"
            assert term.per == expected, term.code
    assert {t.per for t in terms if not t.feature.endswith(("_share", "_mean"))} == {None}


def test_every_reason_meaning_is_read_whole():
    # An unquoted comma inside a YAML flow mapping silently cuts the text short.
    from distillguard.verdicts.read import reason_texts

    for code, text in reason_texts().items():
        assert text.count("(") == text.count(")") and not text.endswith(","), code
