"""Calibration of campaign p-values against the population: known by construction."""

from __future__ import annotations

import numpy as np

from distillguard.scoring.calibrate import ALPHA, calibrate, tail_share


def _population(n: int, seed: int = 0) -> np.ndarray:
    # Skewed like real evidence scores: most accounts near 0, a long tail.
    return np.random.default_rng(seed).gamma(1.2, 1.0, n)


def test_tail_share_is_a_conformal_p_value():
    ref = np.arange(99, dtype=float)  # 0..98
    assert tail_share(ref, np.array([98.0]))[0] == 2 / 100
    assert tail_share(ref, np.array([1000.0]))[0] == 1 / 100
    assert tail_share(ref, np.array([-1.0]))[0] == 1.0


def test_a_high_scoring_cell_is_flagged_and_random_groups_of_ordinary_accounts_are_not():
    scores = _population(10_000)
    community = np.array([None] * len(scores), dtype=object)
    community[:300] = "nat"                    # an honest campus NAT: ordinary members
    community[300:305] = "family"              # a family sharing a card
    for g in range(20):                        # twenty honest orgs of 10
        community[400 + 10 * g: 410 + 10 * g] = f"org-{g}"
    cell = np.arange(9_000, 9_030)
    scores[cell] = 12 + np.random.default_rng(1).normal(0, 1, len(cell))
    community[cell] = "cell"
    result = calibrate(scores, community)
    assert result.flagged == {"cell"}
    assert result.community_p["cell"] <= ALPHA
    assert result.community_p["nat"] > 0.5


def test_a_large_group_only_slightly_above_the_population_is_not_a_campaign():
    rng = np.random.default_rng(2)
    scores = _population(20_000, seed=2)
    community = np.array([None] * len(scores), dtype=object)
    shifted = np.arange(1000, 1600)  # 600 students whose typical score is in the top 30%, not the top 2%
    scores[shifted] = np.quantile(scores, 0.7) + rng.gamma(1.0, 0.3, len(shifted))
    community[shifted] = "students"
    result = calibrate(scores, community)
    assert result.community_p["students"] <= ALPHA  # statistically different...
    assert "students" not in result.flagged          # ...but not a campaign


def test_many_campaigns_contaminating_the_population_are_all_found():
    rng = np.random.default_rng(3)
    scores = _population(18_000, seed=3)
    community = np.array([None] * (18_000 + 2_000), dtype=object)
    campaign_scores = rng.normal(9, 1.5, 2_000)  # 10% of all accounts, in 40 cells of 50
    scores = np.concatenate([scores, campaign_scores])
    for g in range(40):
        community[18_000 + 50 * g: 18_050 + 50 * g] = f"cell-{g:02d}"
    result = calibrate(scores, community)
    assert result.flagged == {f"cell-{g:02d}" for g in range(40)}
    assert result.reference_size == 18_000


def test_a_single_account_is_never_flagged_however_extreme():
    scores = _population(5_000)
    scores[0] = 1e6
    community = np.array([None] * len(scores), dtype=object)
    assert calibrate(scores, community).flagged == set()
