"""Linking edges on hand-made signals: answers known by construction."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from importlib import resources

import numpy as np
import pyarrow as pa
import pytest

from distillguard.engine import Engine
from distillguard.linking.edges import build_edges
from distillguard.linking.rules import RulesError, default_rules, load_rules

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)


def _signals(rows: list[dict]) -> pa.Table:
    cols = {"account_id": pa.string(), "ts": pa.timestamp("us", tz="UTC"), "text_hash": pa.uint64(),
            "template_head": pa.uint64(),
            "template_tail": pa.uint64(), "client_ip": pa.string(),
            "tls_fingerprint": pa.string(), "user_agent": pa.string(), "conversation_id": pa.string(),
            "read_level": pa.int32(), "content_read": pa.bool_()}
    defaults = {"read_level": 0, "content_read": True}  # content read in full unless a test says otherwise
    table = pa.table({c: pa.array([r.get(c, defaults.get(c)) for r in rows], t) for c, t in cols.items()})
    ix = {a: i for i, a in enumerate(sorted(set(table.column("account_id").to_pylist())))}
    return table.append_column("account_ix", pa.array([ix[a] for a in table.column("account_id").to_pylist()],
                                                       pa.int32()))


def _accounts(rows: list[dict]) -> pa.Table:
    cols = {"account_id": pa.string(), "created_at": pa.timestamp("us", tz="UTC"), "payment_fingerprint": pa.string(),
            "phone_hash": pa.string(), "email_hash": pa.string(), "email_domain": pa.string(),
            "signup_ip": pa.string(), "signup_asn": pa.int64()}
    return pa.table({c: pa.array([r.get(c) for r in rows], t) for c, t in cols.items()})


def _edges(signals: list[dict], accounts: list[dict], reasoning: list[tuple[str, str]] = ()) -> list[tuple]:
    """reasoning: (account_id, blob) of the blobs issued to and sent back by accounts."""
    with Engine.open() as engine:
        engine.register("reasoning_in", pa.table({"account_id": pa.array([a for a, _ in reasoning], pa.string()),
                                                  "blob": pa.array([b for _, b in reasoning], pa.string())}))
        engine.execute("CREATE VIEW scan_reasoning AS SELECT * FROM reasoning_in")
        engine.register("signals_in", _signals(signals))
        engine.execute("CREATE TABLE signals AS SELECT * FROM signals_in")
        engine.execute("CREATE VIEW scan_events AS SELECT * FROM signals_in")  # the events, for their identifiers
        engine.execute("CREATE TABLE profiles AS SELECT account_id, any_value(account_ix) AS account_ix, "
                       "count(*) AS exchanges FROM signals GROUP BY 1")
        # Each prompt's phrases and sketch, keyed by its text_hash (rows give them as
        # "phrases" and "sketch").
        texts = {r["text_hash"]: r for r in signals if r.get("text_hash") is not None}
        engine.register("prompt_signatures", pa.table({
            "text_hash": pa.array(list(texts), pa.uint64()),
            "sketch": pa.array([r.get("sketch", []) for r in texts.values()], pa.list_(pa.uint64())),
            "phrases": pa.array([r.get("phrases", []) for r in texts.values()], pa.list_(pa.uint64()))}))
        engine.register("accounts_in", _accounts(accounts))
        build_edges(engine, "SELECT * FROM accounts_in")
        return engine.rows("SELECT src, dst, kind, weight, shared FROM link_edges ORDER BY kind, src, dst")


def _one_request_each(ids, **extra) -> list[dict]:
    return [{"account_id": a, "ts": T0 + timedelta(days=i % 5, hours=i % 13), **extra} for i, a in enumerate(ids)]


def test_five_accounts_sharing_a_card_are_all_pairwise_linked():
    ids = [f"cell-{i}" for i in range(5)]
    accounts = [{"account_id": a, "payment_fingerprint": "card-x", "created_at": T0 - timedelta(days=30 * i)}
                for i, a in enumerate(ids)]
    edges = [e for e in _edges(_one_request_each(ids), accounts) if e[2] == "payment"]
    assert len(edges) == 10  # 5 choose 2, once each
    assert all(e[3] == pytest.approx(3.0) and e[4] == 1 for e in edges)


def test_a_nat_of_300_students_makes_no_edge_and_a_shared_proxy_ip_a_rarity_weighted_one():
    students = [f"student-{i:03d}" for i in range(300)]
    rows = _one_request_each(students, client_ip="10.1.2.3")
    rows += _one_request_each(["p1", "p2", "p3"], client_ip="203.0.113.9")
    edges = [e for e in _edges(rows, []) if e[2] == "client_ip"]
    assert {(e[0], e[1]) for e in edges} == {("p1", "p2"), ("p1", "p3"), ("p2", "p3")}
    assert all(e[3] == pytest.approx(0.7 * 2 / 3) for e in edges)


def test_a_reasoning_blob_issued_to_one_account_and_sent_back_by_another_links_them():
    ids = ["issuer", "replayer", "loner"] + [f"pool-{i:02d}" for i in range(61)]
    reasoning = [("issuer", "blob-1"), ("replayer", "blob-1"),  # issued to one, sent back by another
                 ("loner", "blob-2"), ("loner", "blob-2"),  # its own blob sent back by itself: no link
                 *((a, "blob-3") for a in ids[3:])]  # one blob in 61 accounts: past max_accounts, no evidence
    edges = [e for e in _edges(_one_request_each(ids), [], reasoning) if e[2] == "reasoning_replay"]
    assert edges == [("issuer", "replayer", "reasoning_replay", pytest.approx(3.0), 1)]
    assert "reasoning_replay" in default_rules().anchors


def test_turns_of_one_conversation_from_different_accounts_link_them():
    rows = [{"account_id": f"pool-{i}", "ts": T0 + timedelta(minutes=i), "conversation_id": "conv-1"}
            for i in range(4)]
    rows += [{"account_id": "solo", "ts": T0, "conversation_id": "conv-2"},
             {"account_id": "solo", "ts": T0 + timedelta(minutes=1), "conversation_id": "conv-2"}]
    edges = [e for e in _edges(rows, []) if e[2] == "conversation"]
    assert len(edges) == 6 and all(e[0].startswith("pool-") for e in edges)


def test_a_load_balanced_pool_acting_in_the_same_seconds_is_linked_and_independent_accounts_are_not():
    rng = np.random.default_rng(1)
    rows = []
    # 50 accounts fed by one dispatcher: each serves 60 of 200 dispatch moments over a week,
    # far below any rate limit (60 requests a week).
    moments = np.sort(rng.uniform(0, 7 * 86400, 200))
    for i in range(50):
        for m in rng.choice(moments, 60, replace=False):
            rows.append({"account_id": f"pool-{i:02d}", "ts": T0 + timedelta(seconds=float(m) + rng.uniform(0, 2))})
    # 50 independent accounts of the same volume.
    for i in range(50):
        for m in rng.uniform(0, 7 * 86400, 60):
            rows.append({"account_id": f"solo-{i:02d}", "ts": T0 + timedelta(seconds=float(m))})
    edges = [e for e in _edges(rows, []) if e[2] == "synchrony"]
    assert not any(e[0].startswith("solo") or e[1].startswith("solo") for e in edges)
    linked = {e[0] for e in edges} | {e[1] for e in edges}
    assert len(linked) >= 45  # nearly every pool member has a significant partner


def test_accounts_busy_in_the_same_hour_but_not_the_same_seconds_are_not_linked():
    rng = np.random.default_rng(2)
    hour = 3600 // 10  # ten-second buckets in an hour
    rows = []
    # An eval harness: one request on the first and the last day of four weeks, and three
    # runs, 18:00-19:00 on days 10-12, busy in 90% of the seconds buckets.
    for day in (0, 27):
        rows.append({"account_id": "harness", "ts": T0 + timedelta(days=day, hours=9)})
    for day in (10, 11, 12):
        for b in rng.choice(hour, int(0.9 * hour), replace=False):
            rows.append({"account_id": "harness", "ts": T0 + timedelta(days=day, hours=18, seconds=10 * int(b) + 1)})
    # Someone with an evening routine: 20 requests between 18:00 and 19:00, every day.
    for day in range(28):
        for b in rng.choice(hour, 20, replace=False):
            rows.append({"account_id": "evening", "ts": T0 + timedelta(days=day, hours=18, seconds=10 * int(b) + 3)})
    # Over their lifetimes the two meet ~20x more often than uniform activity would give
    # (about 54 buckets against 2.3), but within those three hours no more than chance.
    assert not [e for e in _edges(rows, []) if e[2] == "synchrony"]


def test_the_same_template_in_the_same_ten_minutes_is_co_action():
    rows = []
    for day in range(6):
        for i in range(4):  # four accounts, same template, same ten minutes, six days running
            rows.append({"account_id": f"co-{i}", "ts": T0 + timedelta(days=day, minutes=i), "template_head": 42})
        rows.append({"account_id": "other", "ts": T0 + timedelta(days=day, hours=5), "template_head": 42})
    edges = [e for e in _edges(rows, []) if e[2] == "coaction_template"]
    assert {(e[0], e[1]) for e in edges} == {(f"co-{a}", f"co-{b}") for a in range(4) for b in range(a + 1, 4)}
    # six shared buckets of four members: 6 * 0.5 / 3 each
    assert all(e[3] == pytest.approx(6 * 0.5 / 3) and e[4] == 6 for e in edges)


def test_co_action_seen_in_a_content_sample_counts_for_the_buckets_it_stands_for():
    def pair(prefix: str, level: int) -> list[dict]:
        return [{"account_id": f"{prefix}-{i}", "ts": T0 + timedelta(days=day, minutes=i), "template_head": 42 + level,
                 "read_level": level} for day in range(3) for i in range(2)]
    # Two heavy accounts read in 1 bucket of 4 (level 2) share a template in 3 of the
    # buckets read: as much evidence as 12 shared buckets read in full.
    edges = {e[0]: e for e in _edges(pair("full", 0) + pair("sampled", 2), []) if e[2] == "coaction_template"}
    assert edges["full-0"][3] == pytest.approx(3 * 0.5) and edges["full-0"][4] == 3
    assert edges["sampled-0"][3] == pytest.approx(4 * 3 * 0.5) and edges["sampled-0"][4] == 3


def test_near_duplicates_of_prompts_too_short_for_a_template_are_not_co_action():
    rows = []
    for day in range(6):
        for i in range(4):  # the same near-duplicate sketch key, six days running
            rows.append({"account_id": f"long-{i}", "ts": T0 + timedelta(days=day, minutes=i), "sketch": [7],
                         "text_hash": 100 * day + i, "template_head": 100 + i})  # long: a template key each
            rows.append({"account_id": f"short-{i}", "ts": T0 + timedelta(days=day, hours=3, minutes=i),
                         "text_hash": 100 * day + 50 + i, "sketch": [8]})  # "hi, how are you?": no template key
    edges = [e for e in _edges(rows, []) if e[2] == "coaction_sketch"]
    assert {(e[0], e[1]) for e in edges} == {(f"long-{a}", f"long-{b}") for a in range(4) for b in range(a + 1, 4)}


def _wording(account: str, day: int, text: int, phrases: list[int]) -> dict:
    return {"account_id": account, "ts": T0 + timedelta(days=day, hours=text % 20), "text_hash": text,
            "phrases": phrases}


def _operators(rng, rows: list[dict]) -> set[tuple[str, str]]:
    """Four operators of one generator: 30 prompts each, drawn from a pool of 60 rare
    phrases (its frame, recurring across their prompts). Returns their pairs."""
    for a in range(4):
        for t in range(30):
            picked = [int(x) for x in rng.choice(np.arange(500, 560), size=6, replace=False)]
            rows.append(_wording(f"op-{a}", t % 7, 2_000_000 + a * 100 + t, picked + [1, 2]))
    return {(f"op-{a}", f"op-{b}") for a in range(4) for b in range(a + 1, 4)}


def _honest_habits(rng, rows: list[dict], n: int = 300) -> None:
    """n honest accounts, each with its own habits: 12 prompts drawing on 40 phrases of
    a large vocabulary (some shared by chance), plus a little common language (phrases
    1..20, each used by ~75 accounts: above max_accounts)."""
    for a in range(n):
        habits = rng.choice(np.arange(10_000, 15_000), size=40, replace=False)
        for t in range(12):
            own = [int(x) for x in rng.choice(habits, size=10, replace=False)]
            common = [int(x) for x in rng.choice(np.arange(1, 21), size=5, replace=False)]
            rows.append(_wording(f"user-{a:03d}", (a + t) % 7, 1_000_000 + 100 * a + t, own + common))


def test_accounts_sharing_far_more_rare_wording_than_chance_are_linked():
    rng = np.random.default_rng(7)
    rows = []
    _honest_habits(rng, rows)
    operators = _operators(rng, rows)
    # One heavy honest account repeating one prompt: volume alone is not wording.
    rows += [_wording("heavy", d % 7, 3_000_000, [90_000 + j for j in range(40)] + [1, 2]) for d in range(500)]
    edges = [e for e in _edges(rows, []) if e[2] == "phrasing"]
    assert {(e[0], e[1]) for e in edges} == operators
    assert all(e[4] >= default_rules().phrasing.min_shared for e in edges)


def test_people_pasting_the_same_popular_prompts_are_not_linked_by_wording():
    # 48 of the honest accounts also paste one of 12 popular long prompts (each pasted by
    # 4 accounts, so its 40 phrases are rare): a pair that pasted the same one shares 40
    # phrases, once. A habit recurs across an account's prompts; a pasted text does not.
    rng = np.random.default_rng(8)
    rows = []
    _honest_habits(rng, rows)
    for a in range(48):
        p = a % 12
        rows.append(_wording(f"user-{a:03d}", a % 7, 5_000 + p, [50_000 + 100 * p + j for j in range(40)]))
    operators = _operators(rng, rows)
    edges = [e for e in _edges(rows, []) if e[2] == "phrasing"]
    assert {(e[0], e[1]) for e in edges} == operators


def test_rules_file_is_valid_and_every_kind_documented():
    rules = default_rules()
    about = rules.about()
    assert all(text for text in about.values())
    assert "link.payment" in about and "link.synchrony" in about


def test_a_co_action_bucket_that_straddles_content_sample_buckets_is_refused(tmp_path):
    # Co-action weights a bucket by the sample's read probability, which holds only for
    # buckets inside one sample bucket (600 s): 1,200 s ones would be weighted wrongly.
    text = resources.files("distillguard.linking").joinpath("links.yaml").read_text()
    assert "bucket_seconds: 600, weight: 0.5" in text
    path = tmp_path / "links.yaml"
    path.write_text(text.replace("bucket_seconds: 600, weight: 0.5", "bucket_seconds: 1200, weight: 0.5", 1))
    with pytest.raises(RulesError, match="coaction template: bucket_seconds must divide"):
        load_rules(path)
    path.write_text(text.replace("bucket_seconds: 600, weight: 0.5", "bucket_seconds: 300, weight: 0.5", 1))
    assert load_rules(path).coaction[0].bucket_seconds == 300


def test_a_wording_habit_that_needs_no_recurrence_is_refused(tmp_path):
    # min_prompts 0 or 1 would let one pasted prompt count as a habit again.
    text = resources.files("distillguard.linking").joinpath("links.yaml").read_text()
    assert "min_prompts: 2" in text
    path = tmp_path / "links.yaml"
    path.write_text(text.replace("min_prompts: 2", "min_prompts: 0"))
    with pytest.raises(RulesError, match="min_prompts"):
        load_rules(path)
    path.write_text(text.replace("min_prompts: 2", "min_prompts: 61"))
    with pytest.raises(RulesError, match="min_prompts"):
        load_rules(path)
