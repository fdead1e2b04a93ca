"""The simulated world: contract, determinism, ground truth, and realism.

Realism tests state what a careless detector would lean on and check that the
world does not allow it: the tells a campaign has are shared by some honest
persona, so only their combination (and the network) separates them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from distillguard.schema import ACCOUNTS, EVENTS, LABELS
from distillguard.simulate import simulate


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    info = simulate("small", 7, out)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for t in ("events", "accounts", "labels"):
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{out / (t + '.parquet')}')")
    return out, info, con


def q(con, sql):
    return con.execute(sql).fetchall()


def test_files_follow_the_contract_exactly(world):
    out, _, _ = world
    for name, table in (("events", EVENTS), ("accounts", ACCOUNTS), ("labels", LABELS)):
        assert pq.read_schema(out / f"{name}.parquet").remove_metadata() == table.arrow_schema(), name
    assert sorted(p.name for p in out.iterdir()) == ["accounts.parquet", "events.parquet", "labels.parquet", "world.json"]


def test_every_optional_field_is_filled_plausibly(world):
    _, _, con = world
    for f in EVENTS.fields:
        filled = q(con, f"SELECT avg(({f.name} IS NOT NULL)::INT) FROM events")[0][0]
        assert filled > 0.02, f"events.{f.name} is almost never filled ({filled:.3f})"
    for f in ACCOUNTS.fields:
        filled = q(con, f"SELECT avg(({f.name} IS NOT NULL)::INT) FROM accounts")[0][0]
        assert filled > 0.02, f"accounts.{f.name} is almost never filled ({filled:.3f})"
    statuses = {s for (s,) in q(con, "SELECT DISTINCT status FROM events")}
    assert statuses <= {"ok", "error", "rate_limited", "refused"} and "ok" in statuses
    assert q(con, "SELECT count(*) FROM events WHERE status <> 'ok' AND response IS NOT NULL")[0][0] == 0
    assert q(con, "SELECT count(*) FROM events WHERE output_tokens > max_tokens")[0][0] == 0


def test_ids_are_unique_and_every_account_is_labelled(world):
    _, _, con = world
    n, distinct = q(con, "SELECT count(*), count(DISTINCT request_id) FROM events")[0]
    assert n == distinct
    assert q(con, "SELECT count(*) FROM events e ANTI JOIN labels l USING (account_id)")[0][0] == 0
    assert q(con, "SELECT count(*) FROM accounts a ANTI JOIN labels l USING (account_id)")[0][0] == 0
    # Some deleted accounts appear in events only, as the contract allows.
    assert q(con, "SELECT count(DISTINCT account_id) FROM events ANTI JOIN accounts USING (account_id)")[0][0] > 0


def test_events_are_in_time_order_inside_the_window(world):
    out, info, con = world
    ts = pq.read_table(out / "events.parquet", columns=["ts"])["ts"].cast("int64").to_numpy()
    assert np.all(np.diff(ts) >= 0)
    start, end = info["window"]["start"], info["window"]["end"]
    outside = q(con, f"SELECT count(*) FROM events WHERE ts < '{start}'::TIMESTAMPTZ OR ts >= '{end}'::TIMESTAMPTZ")
    assert outside[0][0] == 0
    assert q(con, "SELECT count(*) FROM events JOIN accounts USING (account_id) WHERE ts < created_at")[0][0] == 0


def test_world_json_matches_the_files(world):
    out, info, con = world
    assert json.loads((out / "world.json").read_text()) == info
    assert info["totals"]["exchanges"] == q(con, "SELECT count(*) FROM events")[0][0]
    truth = dict(q(con, "SELECT campaign, count(*) FROM labels WHERE campaign IS NOT NULL GROUP BY 1"))
    assert truth == {name: c["accounts"] for name, c in info["campaigns"].items()}
    assert set(truth) == {"hydra", "reasoning_harvester", "agentic_harvester", "stealth"}
    per_campaign = dict(q(con, "SELECT campaign, count(*) FROM events JOIN labels USING (account_id) "
                               "WHERE campaign IS NOT NULL GROUP BY 1"))
    assert per_campaign == {name: c["exchanges"] for name, c in info["campaigns"].items()}


def test_same_seed_same_world_other_seed_other_world(world, tmp_path):
    out, _, _ = world
    again = tmp_path / "again"
    simulate("small", 7, again)
    for name in ("events", "accounts", "labels"):
        assert pq.read_table(again / f"{name}.parquet").equals(pq.read_table(out / f"{name}.parquet")), name
    other = tmp_path / "other"
    simulate("small", 8, other)
    assert not pq.read_table(other / "labels.parquet").equals(pq.read_table(out / "labels.parquet"))


def test_unknown_preset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown preset"):
        simulate("huge", 0, tmp_path)


# -- realism: no trivial separator -------------------------------------------

def _best_f1(scores: np.ndarray, positive: np.ndarray) -> float:
    """Best F1 any threshold on one per-account number can reach."""
    order = np.argsort(-scores)
    tp = np.cumsum(positive[order])
    k = np.arange(1, len(scores) + 1)
    return float(np.max(2 * tp / (k + positive.sum())))


def test_volume_alone_does_not_separate_campaigns(world):
    _, _, con = world
    rows = q(con, """SELECT count(*) AS n, count(*) / (date_diff('second', min(ts), max(ts)) / 86400 + 1) AS per_day,
                            any_value(l.campaign IS NOT NULL) FROM events JOIN labels l USING (account_id) GROUP BY account_id""")
    n, per_day, attacker = (np.array(c, dtype=float) for c in zip(*rows))
    attacker = attacker.astype(bool)
    assert _best_f1(n, attacker) < 0.65
    assert _best_f1(per_day, attacker) < 0.65


def test_shared_infrastructure_is_common_among_honest_accounts(world):
    _, _, con = world
    # The most shared client IP belongs to honest students behind a campus NAT.
    ip_accounts, honest_share = q(con, """
        SELECT count(DISTINCT account_id), avg((campaign IS NULL)::INT) FROM events JOIN labels USING (account_id)
        GROUP BY client_ip ORDER BY 1 DESC LIMIT 1""")[0]
    assert ip_accounts >= 10 and honest_share > 0.9
    # Honest accounts share cards too (orgs, families), as do some campaign cells.
    honest_shared_cards = q(con, """SELECT count(*) FROM (SELECT payment_fingerprint FROM accounts JOIN labels USING (account_id)
        WHERE campaign IS NULL AND payment_fingerprint IS NOT NULL GROUP BY 1 HAVING count(*) >= 2)""")[0][0]
    assert honest_shared_cards >= 10


def test_no_fixed_string_marks_a_campaign(world):
    _, _, con = world
    # Opening prompts only: "thanks!" as a follow-up is everybody's.
    for campaign, top_share in q(con, """
            SELECT campaign, max(n) / sum(n) FROM (
              SELECT campaign, prompt, count(*) AS n FROM events JOIN labels USING (account_id)
              WHERE campaign IS NOT NULL AND coalesce(turn, 0) = 0 GROUP BY ALL) GROUP BY campaign"""):
        assert top_share < 0.01, f"{campaign}: one prompt is {top_share:.1%} of its exchanges"
    # The user agents campaigns use are also used by honest accounts.
    for campaign, honest_users in q(con, """
            WITH ua AS (SELECT DISTINCT user_agent, campaign FROM events JOIN labels USING (account_id))
            SELECT a.campaign, count(DISTINCT h.user_agent) FROM ua a LEFT JOIN ua h
              ON h.user_agent = a.user_agent AND h.campaign IS NULL
            WHERE a.campaign IN ('hydra', 'reasoning_harvester') GROUP BY 1"""):
        assert honest_users >= 1, f"{campaign}'s user agent is unique to it"


def test_campaigns_pivot_within_a_day_and_honest_users_adopt_over_weeks(world):
    _, info, con = world
    release = info["model_release"]["at"]
    new = info["model_release"]["model"]
    share = dict(q(con, f"""
        SELECT coalesce(campaign, persona), avg((model = '{new}')::INT) FROM events JOIN labels USING (account_id)
        WHERE ts BETWEEN '{release}'::TIMESTAMPTZ + INTERVAL 24 HOUR AND '{release}'::TIMESTAMPTZ + INTERVAL 48 HOUR
        GROUP BY 1"""))
    for campaign in ("hydra", "reasoning_harvester", "stealth"):
        assert share[campaign] > 0.6, (campaign, share[campaign])
    for persona in ("casual_chat", "student_edu", "family_team"):
        assert share[persona] < 0.3, (persona, share[persona])
    assert share["eval_harness"] > 0.6  # harnesses evaluate a release on day one: a hard negative


def test_hydra_has_its_published_tells(world):
    _, _, con = world
    card_sizes = [n for (n,) in q(con, """SELECT count(*) FROM accounts JOIN labels USING (account_id)
        WHERE campaign = 'hydra' GROUP BY payment_fingerprint""")]
    assert 5 <= np.median(card_sizes) <= 20
    asns = q(con, "SELECT count(DISTINCT asn) FROM events JOIN labels USING (account_id) WHERE campaign = 'hydra'")[0][0]
    assert asns >= 20
    spread = q(con, """SELECT count(*) FROM (SELECT conversation_id FROM events JOIN labels USING (account_id)
        WHERE campaign = 'hydra' AND conversation_id IS NOT NULL GROUP BY 1 HAVING count(DISTINCT account_id) > 1)""")[0][0]
    assert spread > 0
    mismatch = q(con, """SELECT avg((client_timezone = 'Asia/Shanghai' AND billing_country <> 'CN')::INT)
        FROM events JOIN accounts USING (account_id) JOIN labels USING (account_id) WHERE campaign = 'hydra'""")[0][0]
    assert mismatch > 0.7


def test_reasoning_harvester_fires_in_sync(world):
    _, _, con = world
    # Share of its exchanges that land in a second when three or more of its accounts fire.
    synced = q(con, """WITH s AS (SELECT date_trunc('second', ts) AS sec, count(DISTINCT account_id) AS k, count(*) AS n
                FROM events JOIN labels USING (account_id) WHERE campaign = 'reasoning_harvester' GROUP BY 1)
                SELECT sum(n) FILTER (WHERE k >= 3) / sum(n) FROM s""")[0][0]
    assert synced > 0.5


def test_hard_negatives_share_a_campaign_tell(world):
    _, _, con = world
    # Students of one course ask the same assignment question: cross-account template reuse.
    shared = q(con, """SELECT max(k) FROM (SELECT prompt, count(DISTINCT account_id) AS k FROM events
        JOIN labels USING (account_id) WHERE persona = 'student_edu' GROUP BY 1)""")[0][0]
    assert shared >= 3
    # Eval harnesses replay the same benchmark items from unrelated accounts.
    replay = q(con, """SELECT max(k) FROM (SELECT prompt, count(DISTINCT account_id) AS k FROM events
        JOIN labels USING (account_id) WHERE persona = 'eval_harness' GROUP BY 1)""")[0][0]
    assert replay >= 2
    # Enterprise orgs: several accounts on one card, from one datacenter range, at high volume.
    org = q(con, """SELECT max(k) FROM (SELECT count(*) AS k FROM accounts JOIN labels USING (account_id)
        WHERE persona = 'enterprise_batch' GROUP BY payment_fingerprint)""")[0][0]
    assert org >= 2


CORPORA = Path(os.environ.get("DISTILLGUARD_CORPORA", Path(__file__).resolve().parents[3] / "shared" / "corpora"))


@pytest.mark.skipif(not CORPORA.is_dir(), reason="no corpora folder beside the repository")
def test_a_world_with_corpora_mixes_real_prompts_on_both_sides(tmp_path):
    from distillguard.simulate.text import TextSource

    info = simulate("small", 3, tmp_path, corpora=CORPORA)
    assert info["corpora"] is True
    corpora = TextSource(CORPORA)._corpora
    real = set(corpora["human"])
    events = pq.read_table(tmp_path / "events.parquet", columns=["account_id", "prompt"]).to_pydict()
    campaign = dict(zip(*pq.read_table(tmp_path / "labels.parquet", columns=["account_id", "campaign"]).to_pydict().values()))
    honest_real = sum(1 for a, p in zip(events["account_id"], events["prompt"]) if campaign[a] is None and p in real)
    assert honest_real > 100
    # Real public instructions appear as seed questions inside campaign prompts too.
    seeds = [s for s in corpora["distillation"] if len(s) > 40][:2000]
    attacker_prompts = [p for a, p in zip(events["account_id"], events["prompt"]) if campaign[a] is not None]
    sample = attacker_prompts[:3000]
    assert any(s in p for p in sample for s in seeds[:300])
