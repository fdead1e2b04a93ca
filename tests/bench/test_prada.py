"""PRADA baseline: its pieces against direct implementations, and verdicts on streams
whose answer is known by construction."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from scipy import stats

from distillguard.bench.methods import open_view, prada
from distillguard.bench.run import parameters

from prompt_worlds import write_prompt_world

# A small vocabulary: random prompts over it overlap by chance in many words, so their
# distances spread smoothly around a middle value (approximately normal minimum distances).
WORDS = ("river mountain garden window coffee letter market winter summer engine bridge forest island "
         "kitchen music pencil doctor teacher silver golden planet rocket candle basket blanket button "
         "camera castle circle cloud corner desert dragon feather flower guitar hammer harbor helmet "
         "jacket ladder lemon magnet mirror monkey needle orange palace pepper pillow pocket").split()


def natural_stream(n: int, rng: np.random.Generator) -> list[str]:
    """Independent prompts of 20-30 random words: benign-like, D close to normal."""
    return [" ".join(rng.choice(WORDS, rng.integers(20, 31))) for _ in range(n)]


def perturbation_stream(n: int, rng: np.random.Generator, seeds: int = 3) -> list[str]:
    """An extraction-style sweep: a few seed prompts, each query one with a single word
    replaced. Most distances are tiny, a few (new seeds) large: far from normal."""
    bases = [list(rng.choice(WORDS, 25)) for _ in range(seeds)]
    out = []
    for _ in range(n):
        words = list(bases[rng.integers(seeds)])
        words[rng.integers(len(words))] = str(rng.choice(WORDS))
        out.append(" ".join(words))
    return out


def run_prada(tmp_path, streams, params=None, **view_args) -> dict[str, dict]:
    events, accounts = write_prompt_world(tmp_path, streams, every=timedelta(minutes=1), shuffle=True)
    with open_view(events, accounts, tmp_path / "work", tmp_path / "cache", **view_args) as view:
        table = prada.run(view, {**parameters()["prada"], **(params or {})})
    return {r["account_id"]: r for r in table.to_pylist()}


# --- the pieces ---------------------------------------------------------------------

@pytest.mark.parametrize("n", [3, 4, 5, 6, 11, 50, 120, 299])
@pytest.mark.parametrize("shape", ["normal", "exponential", "discrete"])
def test_shapiro_w_matches_scipy(n, shape):
    rng = np.random.default_rng(n)
    x = {"normal": rng.normal(size=n), "exponential": rng.exponential(size=n),
         "discrete": rng.integers(0, 4, n).astype(float)}[shape]
    if np.ptp(x) == 0:
        x[0] += 1.0
    w = prada.shapiro_w_prefixes(x, n, outlier_sd=np.inf)
    assert w == pytest.approx([stats.shapiro(x).statistic], abs=1e-6)


def test_shapiro_w_prefixes_set_outliers_aside_like_the_paper():
    rng = np.random.default_rng(1)
    d = rng.normal(1.0, 0.1, 160)
    d[[3, 50, 120]] += 2.0  # far outliers, set aside while within 3 sd of the prefix mean they are not
    expected = []
    for k in range(100, 161):
        prefix = d[:k]
        kept = prefix[np.abs(prefix - prefix.mean()) <= 3 * prefix.std()]
        expected.append(stats.shapiro(kept).statistic)
    assert prada.shapiro_w_prefixes(d, 100) == pytest.approx(expected, abs=1e-6)


def test_constant_distances_give_w_one_as_scipy_does():
    assert prada.shapiro_w_prefixes(np.zeros(150), 100) == pytest.approx(np.ones(51))


def algorithm_1(dist: np.ndarray) -> np.ndarray:
    """PRADA's Algorithm 1 (one class) written out query by query, for comparison."""
    grown, joined, d_out, threshold = [0], [], [], 0.0
    for i in range(1, len(dist)):
        d = min(dist[i, j] for j in grown)
        d_out.append(d)
        if d > threshold:
            grown.append(i)
            joined.append(d)
            threshold = max(threshold, float(np.mean(joined) - np.std(joined)))
    return np.array(d_out)


@pytest.mark.parametrize("seed", range(5))
def test_min_distances_follow_the_algorithm(seed):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(120, 3)) * rng.uniform(0.2, 2.0, size=(120, 1))  # varied scales: many joins and skips
    dist = np.linalg.norm(points[:, None] - points[None], axis=2)
    assert prada.min_distances(dist) == pytest.approx(algorithm_1(dist))


def test_pairwise_l2_of_unit_rows():
    from scipy import sparse
    x = sparse.csr_matrix(np.array([[1.0, 0, 0], [0, 1.0, 0], [0.6, 0.8, 0], [1.0, 0, 0]]))
    expected = np.linalg.norm(x.toarray()[:, None] - x.toarray()[None], axis=2)
    assert prada._pairwise_l2(x) == pytest.approx(expected, abs=1e-12)


def test_identical_prompts_are_at_distance_zero_even_without_words():
    texts = ["?", "hello there world", "?", "hello there world"]  # "?" has no word: a zero vector
    vectors = prada._vectorizer(parameters()["prada"]).transform(texts)
    dist = prada._distances(vectors, np.array([0, 1, 0, 1]))
    assert dist[0, 2] == 0 and dist[1, 3] == pytest.approx(0, abs=1e-7)
    assert dist[0, 1] == pytest.approx(1.0)  # zero vector to a unit vector


# --- verdicts -----------------------------------------------------------------------

def test_perturbation_sweeps_flagged_natural_streams_not(tmp_path):
    streams = {f"natural{i}": natural_stream(300, np.random.default_rng(i)) for i in range(3)}
    streams |= {f"sweep{i}": perturbation_stream(300, np.random.default_rng(100 + i)) for i in range(3)}
    out = run_prada(tmp_path, streams)
    for i in range(3):
        assert not out[f"natural{i}"]["flagged"], out[f"natural{i}"]
        assert out[f"natural{i}"]["score"] < 0.05  # min W > 0.95: approximately normal throughout
        assert out[f"sweep{i}"]["flagged"], out[f"sweep{i}"]
        assert out[f"sweep{i}"]["score"] > 0.15
    assert all(r["group"] is None for r in out.values())


def test_accounts_below_min_queries_are_not_tested(tmp_path):
    # 100 queries give 99 distances: one short of min_queries; 101 queries are tested
    rng = np.random.default_rng(5)
    out = run_prada(tmp_path, {"short": perturbation_stream(100, rng), "long": perturbation_stream(101, rng)})
    assert out["short"] == {"account_id": "short", "score": 0.0, "flagged": False, "group": None}
    assert out["long"]["flagged"] and out["long"]["score"] > 0


def test_only_the_first_max_queries_are_read(tmp_path):
    # 150 natural queries, then the first one repeated 150 times: distances of 0 pile up after the cap
    natural = natural_stream(150, np.random.default_rng(6))
    late_repeats = natural + [natural[0]] * 150
    assert not run_prada(tmp_path, {"a": late_repeats}, params={"max_queries": 150})["a"]["flagged"]
    assert run_prada(tmp_path, {"a": late_repeats}, params={"max_queries": 300})["a"]["flagged"]


def test_streaming_batches_split_accounts_without_changing_verdicts(tmp_path, monkeypatch):
    streams = {f"a{i}": (natural_stream if i % 2 else perturbation_stream)(130, np.random.default_rng(i))
               for i in range(5)}
    whole = run_prada(tmp_path, streams)
    monkeypatch.setattr(prada, "ROWS_PER_BATCH", 97)  # batches end in the middle of accounts
    assert run_prada(tmp_path, streams) == whole


def test_evaluate_limits_the_accounts_scored(tmp_path):
    streams = {f"a{i}": natural_stream(20, np.random.default_rng(i)) for i in range(4)}
    out = run_prada(tmp_path, streams, evaluate=frozenset({"a1", "a3", "absent"}))
    assert set(out) == {"a1", "a3"}


def test_rejects_min_queries_not_below_max_queries(tmp_path):
    with pytest.raises(ValueError, match="min_queries"):
        run_prada(tmp_path, {"a": ["x"]}, params={"min_queries": 300, "max_queries": 300})
