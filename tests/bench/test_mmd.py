"""The MMD window detector: its statistic against a direct computation, and verdicts on
a small world whose answer is known by construction (benign accounts ask everyday
questions like the reference; attackers ask about a topic the reference never does)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from distillguard.bench.methods import mmd, open_view
from distillguard.bench.run import parameters

from prompt_worlds import write_prompt_world

EVERYDAY = {
    "cooking": ["How long should I bake {x} in the oven?", "What can I cook tonight with {x}?",
                "Is it safe to freeze leftover {x}?", "Give me a quick recipe that uses {x}."],
    "travel": ["What should I pack for a week in {x}?", "Is {x} worth visiting in the winter?",
               "How many days do I need to see {x}?", "What is the cheapest way to get around {x}?"],
    "garden": ["When should I plant {x} in my garden?", "Why are the leaves on my {x} turning yellow?",
               "How often should I water {x}?", "Can {x} grow in a pot on a balcony?"],
}
FILLERS = {
    "cooking": ["salmon", "sweet potatoes", "chicken thighs", "lentils", "banana bread", "tofu", "rice", "spinach"],
    "travel": ["Lisbon", "Kyoto", "Iceland", "Mexico City", "Vienna", "Morocco", "Scotland", "Vancouver"],
    "garden": ["tomatoes", "roses", "basil", "a lemon tree", "lavender", "strawberries", "tulips", "peppers"],
}
# The attackers' topic, absent from everyday traffic: formal mathematics to be solved step by step.
PROOFS = ["Prove that the sum of the first {n} odd numbers is a perfect square, step by step.",
          "Solve the recurrence T(n) = {n} T(n/2) + n log n and justify each step.",
          "Show that every group of order {n} is abelian, with a rigorous proof.",
          "Compute the eigenvalues of the {n}x{n} matrix with ones off the diagonal and prove it."]


def everyday_prompts(rng: np.random.Generator, n: int) -> list[str]:
    topics = list(EVERYDAY)
    return [rng.choice(EVERYDAY[t]).format(x=rng.choice(FILLERS[t]))
            for t in (topics[i] for i in rng.integers(len(topics), size=n))]


def proof_prompts(rng: np.random.Generator, n: int) -> list[str]:
    return [rng.choice(PROOFS).format(n=int(rng.integers(3, 60))) for _ in range(n)]


# The shipped section, scaled down to a world of a few dozen accounts.
PARAMS = {**parameters()["mmd"], "window": 6, "min_window": 4, "reference_size": 90, "reference_per_account": 3,
          "null_windows": 40, "percentile": 95.0}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """70 known-benign accounts, 8 benign and 4 attacking accounts to score, 2 too small to test."""
    rng = np.random.default_rng(0)
    prompts = {f"benign{i:02d}": everyday_prompts(rng, 10) for i in range(70)}
    prompts |= {f"user{i}": everyday_prompts(rng, 10) for i in range(8)}
    prompts |= {f"attacker{i}": everyday_prompts(rng, 4) + proof_prompts(rng, 8) for i in range(4)}
    prompts |= {"tiny": everyday_prompts(rng, 2), "small_attacker": proof_prompts(rng, 3)}
    folder = tmp_path_factory.mktemp("mmd_world")
    return {"sql": write_prompt_world(folder, prompts, every=timedelta(hours=1)), "cache": folder / "cache", "folder": folder,
            "benign": frozenset(a for a in prompts if a.startswith("benign")),
            "evaluate": frozenset(a for a in prompts if not a.startswith("benign"))}


def run_mmd(world, seed=0, params=PARAMS, **overrides) -> dict[str, dict]:
    args = {"seed": seed, "evaluate": world["evaluate"], "benign_reference": world["benign"], **overrides}
    with open_view(*world["sql"], world["folder"] / "work", world["cache"], **args) as view:
        table = mmd.run(view, params)
    return {r["account_id"]: r for r in table.to_pylist()}


def test_attackers_flagged_benign_accounts_mostly_not(world):
    out = run_mmd(world)
    assert set(out) == world["evaluate"]
    for i in range(4):  # their 6 most recent prompts are all proofs
        assert out[f"attacker{i}"]["flagged"], out[f"attacker{i}"]
    assert sum(out[f"user{i}"]["flagged"] for i in range(8)) <= 1  # a 95th percentile allows a few
    assert min(out[f"attacker{i}"]["score"] for i in range(4)) > max(out[f"user{i}"]["score"] for i in range(8))
    assert all(r["group"] is None for r in out.values())


def test_accounts_below_min_window_get_zero(world):
    out = run_mmd(world)
    for account in ("tiny", "small_attacker"):
        assert out[account] == {"account_id": account, "score": 0.0, "flagged": False, "group": None}


def test_deterministic_for_a_seed(world):
    assert run_mmd(world, seed=3) == run_mmd(world, seed=3)


def test_scores_every_account_without_an_evaluate_sample(world):
    out = run_mmd(world, evaluate=None)
    assert len(out) == 70 + 8 + 4 + 2
    assert all(out[f"attacker{i}"]["flagged"] for i in range(4))


def test_needs_benign_history(world):
    with pytest.raises(ValueError, match="benign"):
        run_mmd(world, benign_reference=frozenset())
    with pytest.raises(ValueError, match="benign_reference"):  # reference filled, too few left for the null
        run_mmd(world, benign_reference=frozenset(sorted(world["benign"])[:40]))


def unbiased_mmd2(x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    """Gretton et al. (2012), eq. 3, written out."""
    k = lambda a, b: np.exp(-gamma * ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))  # noqa: E731
    m, n = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * k(x, y).mean())


def test_mmd2_of_every_prefix_matches_the_definition():
    rng = np.random.default_rng(4)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    reference = mmd.Reference.of(unit(rng.normal(size=(50, 8))))
    window = unit(rng.normal(size=(9, 8)) + 1.5)
    got = reference.mmd2_prefixes(window)
    expected = [unbiased_mmd2(window[:s], reference.vectors, reference.gamma) for s in range(2, 10)]
    assert got == pytest.approx(expected, abs=1e-12)
    # the median heuristic: sigma is the median distance between reference points
    distances = np.linalg.norm(reference.vectors[:, None] - reference.vectors[None], axis=2)
    sigma = np.median(distances[np.triu_indices(50, 1)])
    assert reference.gamma == pytest.approx(1 / (2 * sigma ** 2))


def test_same_distribution_mmd2_is_near_zero_shifted_is_not():
    rng = np.random.default_rng(5)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    reference = mmd.Reference.of(unit(rng.normal(size=(400, 8))))
    same = [reference.mmd2_prefixes(unit(rng.normal(size=(16, 8))))[-1] for _ in range(200)]
    shifted = [reference.mmd2_prefixes(unit(rng.normal(size=(16, 8)) + 1.0))[-1] for _ in range(20)]
    assert abs(np.mean(same)) < 0.01  # unbiased: centred on zero under the null
    assert min(shifted) > np.percentile(same, 99)
