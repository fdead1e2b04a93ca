"""Scores -> calibrated p-values, risks and flags, for campaigns and accounts.

The question asked of a candidate campaign (a community of the account graph)
is: could its members be ordinary accounts that happen to be linked? Under that
null hypothesis they are a random draw from the legitimate population, so the
chance that at least half of k members score at or above the campaign's median
score t is  P(Binomial(k, q) >= ceil(k / 2)),  q being the share of the
reference population scoring >= t (an empirical tail, with the +1 of a
conformal p-value). Campaigns are tested together, so p-values are
Bonferroni-adjusted over the communities tested; risk = 1 - adjusted p.

The reference population must be legitimate, and nobody labels it. It starts
as the accounts outside any community of `REFERENCE_MAX_COMMUNITY` or more
(campaigns live in communities; most customers do not), and is then
re-estimated without the campaigns flagged, a few times (trimmed estimation):
an undetected campaign left in it only makes the test more conservative.

A campaign is flagged when its adjusted p-value is at most ALPHA and its
typical member is itself unusual (median in the top MIN_EFFECT of the
population): a large honest group (a campus NAT, an org) can be shifted a
little from the population without being a campaign. A single account is
never flagged on its own behaviour: no single account need look abnormal, and
one account in ten thousand at the population's edge is exactly what a
legitimate population produces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

ALPHA = 0.001          # family-wise error over the campaigns tested
MIN_EFFECT = 0.02      # the campaign's median member must be in the top 2% of the population
REFERENCE_MAX_COMMUNITY = 3
ROUNDS = 3


@dataclass(frozen=True)
class Calibration:
    account_q: np.ndarray        # per account: share of the reference scoring >= it
    community_p: dict[str, float]   # adjusted p-value per community
    community_q: dict[str, float]   # tail share of each community's median score
    flagged: set[str]
    reference_size: int


def tail_share(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(1 + #reference >= v) / (1 + #reference), for each v."""
    ref = np.sort(reference)
    above = len(ref) - np.searchsorted(ref, values, side="left")
    return (1.0 + above) / (1.0 + len(ref))


def calibrate(scores: np.ndarray, community: np.ndarray) -> Calibration:
    """scores: per account; community: per account, a community id or None."""
    has = np.array([c is not None for c in community], dtype=bool)
    names, inverse = np.unique(np.where(has, community, "").astype(str), return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(names))
    # Group members once: medians and sizes per community, in `names` order.
    order = np.argsort(inverse, kind="stable")
    groups = np.split(scores[order], np.cumsum(sizes)[:-1])
    tested = np.array([n != "" for n in names], dtype=bool)
    medians = np.array([float(np.median(g)) if len(g) else 0.0 for g in groups])
    reference = ~(has & (sizes[inverse] >= REFERENCE_MAX_COMMUNITY))
    n_tested = int(tested.sum())
    flagged = np.zeros(len(names), dtype=bool)
    p_adj = np.ones(len(names))
    q = np.ones(len(names))
    for _ in range(ROUNDS):
        q = tail_share(scores[reference], medians)
        p = binom.sf(np.ceil(sizes / 2) - 1, sizes, q)
        p_adj = np.minimum(1.0, p * max(n_tested, 1))
        new = tested & (p_adj <= ALPHA) & (q <= MIN_EFFECT)
        next_reference = ~new[inverse]
        if np.array_equal(new, flagged) and np.array_equal(next_reference, reference):
            break
        flagged, reference = new, next_reference
    keep = np.flatnonzero(tested)
    return Calibration(
        account_q=tail_share(scores[reference], scores),
        community_p={names[i]: float(p_adj[i]) for i in keep},
        community_q={names[i]: float(q[i]) for i in keep},
        flagged={names[i] for i in keep if flagged[i]},
        reference_size=int(reference.sum()),
    )
