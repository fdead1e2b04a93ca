"""End to end: hand-made traffic through every stage, verdicts known by construction."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distillguard.engine import literal
from distillguard.verdicts import scan

from traffic import Traffic


def _relations(events: Path, accounts: Path) -> tuple[str, str]:
    return f"SELECT * FROM read_parquet({literal(str(events))})", f"SELECT * FROM read_parquet({literal(str(accounts))})"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    t = Traffic(seed=7)
    groups = {
        "people": t.ordinary_people(700),
        "students": t.campus_nat(300),
        "enterprise": t.enterprise_batch(4),
        "cell": t.card_cell(5),
        "pool": t.load_balanced_pool(50),
        "reseller": t.reseller(20),
    }
    folder = tmp_path_factory.mktemp("world")
    events, accounts = t.write(folder)
    out = folder / "scan"
    summary = scan(*_relations(events, accounts), out, input_fingerprint="test:hand-made")
    verdicts = {r["account_id"]: r for r in pq.read_table(out / "accounts.parquet").to_pylist()}
    return groups, verdicts, out, summary


def _flagged(verdicts, ids):
    # An account with no exchange in the window has no verdict (and is not flagged).
    return [a for a in ids if a in verdicts and verdicts[a]["flagged"]]


def test_the_card_cell_is_one_campaign_of_exactly_its_five_accounts(world):
    groups, verdicts, _, _ = world
    assert _flagged(verdicts, groups["cell"]) == groups["cell"]
    campaign = {verdicts[a]["campaign_id"] for a in groups["cell"]}
    assert len(campaign) == 1
    members = [a for a, v in verdicts.items() if v["campaign_id"] in campaign]
    assert sorted(members) == sorted(groups["cell"])
    reasons = verdicts[groups["cell"][0]]["reasons"]
    assert "content.reasoning_elicitation" in reasons and "link.payment" in reasons


def test_the_load_balanced_pool_below_any_rate_limit_is_found(world):
    groups, verdicts, _, _ = world
    assert len(_flagged(verdicts, groups["pool"])) >= 48
    assert any("link.synchrony" in verdicts[a]["reasons"] for a in groups["pool"])


def test_a_reseller_mixing_genuine_traffic_is_found_as_one_campaign(world):
    groups, verdicts, _, _ = world
    flagged = _flagged(verdicts, groups["reseller"])
    assert len(flagged) == len(groups["reseller"])
    assert len({verdicts[a]["campaign_id"] for a in flagged}) == 1


def test_no_student_behind_the_nat_no_enterprise_job_and_no_ordinary_person_is_flagged(world):
    groups, verdicts, _, _ = world
    for name in ("people", "students", "enterprise"):
        assert _flagged(verdicts, groups[name]) == [], name


def test_outputs_follow_the_contract_and_every_flag_has_reasons_and_evidence(world):
    groups, verdicts, out, summary = world
    accounts = pq.read_table(out / "accounts.parquet")
    for column in ("account_id", "risk", "flagged", "campaign_id", "reasons"):
        assert column in accounts.column_names
    assert all(0.0 <= v["risk"] <= 1.0 for v in verdicts.values())
    campaigns = pq.read_table(out / "campaigns.parquet").to_pylist()
    assert len(campaigns) == summary.campaigns == 3
    for c in campaigns:
        assert c["reasons"] and 0 <= c["risk"] <= 1 and c["first_seen"] <= c["last_seen"]
    evidence = pq.read_table(out / "evidence.parquet").to_pylist()
    flagged = [v for v in verdicts.values() if v["flagged"]]
    for v in flagged:
        assert v["reasons"], v["account_id"]
        backed = {e["reason"] for e in evidence if e["account_id"] == v["account_id"]}
        assert set(v["reasons"]) <= backed, (v["account_id"], set(v["reasons"]) - backed)
    meta = json.loads((out / "scan.json").read_text())
    assert meta["exchanges"] == summary.exchanges and meta["config_hash"]


def test_until_scans_only_the_past(world, tmp_path):
    groups, verdicts, out, summary = world
    events, accounts = out.parent / "events.parquet", out.parent / "accounts.parquet"
    early = scan(*_relations(events, accounts), tmp_path / "early", input_fingerprint="test:hand-made", until="2026-03-03T00:00:00+00:00")
    assert 0 < early.exchanges < summary.exchanges
    last = pq.read_table(tmp_path / "early" / "accounts.parquet").column("last_seen").to_pylist()
    assert max(last).isoformat() <= "2026-03-03T00:00:00+00:00"
