"""What a scan writes for acting on and sharing campaigns: keyed identifiers, indicators,
actions, timeline and samples, checked against the hand-made world (tests/conftest.py)."""

from __future__ import annotations

import os

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from distillguard.verdicts.keyed import KEY_ENV, PREFIX, MissingKey, keyed_hash
from distillguard.verdicts.read import ScanDir


def _strings(scan: ScanDir) -> set[str]:
    """Every string value anywhere in the scan's tables (lists flattened)."""
    out: set[str] = set()
    for name in ("accounts", "campaigns", "evidence", "indicators", "timeline", "models", "samples"):
        for column in scan.table(name).itercolumns():
            values = column.to_pylist()
            for v in values:
                for x in (v if isinstance(v, list) else [v]):
                    if isinstance(x, str):
                        out.add(x)
    return out


def _campaign_of(scan: ScanDir, account: str) -> str:
    row = scan.table("accounts").filter(pc.field("account_id") == account).to_pylist()[0]
    return row["campaign_id"]


def test_customer_identifiers_leave_only_as_keyed_hashes(scanned):
    scan = ScanDir(scanned.scan_dir)
    accounts = pq.read_table(scanned.accounts).to_pylist()
    events = pq.read_table(scanned.events, columns=["client_ip"]).column("client_ip").to_pylist()
    raw = {a[c] for a in accounts for c in ("payment_fingerprint", "email_hash", "phone_hash", "signup_ip") if a.get(c)}
    raw |= {ip for ip in events if ip}
    written = _strings(scan)
    assert not raw & written
    assert not any(r in w for r in ("card-cell", "203.0.", "100.64.") for w in written)
    # A partner holding the same key computes the same value from its own record of the card.
    key = os.environ[KEY_ENV].encode()
    cell = _campaign_of(scan, scanned.groups["cell"][1])
    cards = scan.table("indicators").filter((pc.field("campaign_id") == cell) & (pc.field("kind") == "payment"))
    assert cards.column("value").to_pylist() == [keyed_hash("payment", "card-cell", key)]
    assert cards.column("keyed").to_pylist() == [True] and cards.column("accounts").to_pylist() == [5]
    card_evidence = {e["ref"] for e in scan.table("evidence").to_pylist() if e["reason"] == "link.payment"}
    assert card_evidence and all(r.startswith(PREFIX) for r in card_evidence)


def test_raw_ips_are_written_only_when_asked_and_cards_stay_keyed(scanned, scanned_raw_ips):
    keyed, raw = ScanDir(scanned.scan_dir), ScanDir(scanned_raw_ips.scan_dir)
    pool = _campaign_of(raw, scanned.groups["pool"][0])
    ips = raw.table("indicators").filter((pc.field("campaign_id") == pool) & (pc.field("kind") == "client_ip"))
    assert ips.num_rows > 0 and all(v.startswith("100.64.") for v in ips.column("value").to_pylist())
    assert not any(ips.column("keyed").to_pylist())
    payments = raw.table("indicators").filter(pc.field("kind") == "payment").column("value").to_pylist()
    assert payments and all(v.startswith(PREFIX) for v in payments)
    assert raw.meta["raw_ips"] and not keyed.meta["raw_ips"]
    assert raw.meta["config_hash"] != keyed.meta["config_hash"] and raw.meta["scan_id"] != keyed.meta["scan_id"]


def test_an_indicator_says_how_many_accounts_outside_the_campaign_use_it(scanned):
    scan = ScanDir(scanned.scan_dir)
    events = pq.read_table(scanned.events, columns=["account_id", "user_agent"]).to_pylist()
    users: dict[str, set[str]] = {}
    for e in events:
        users.setdefault(e["user_agent"], set()).add(e["account_id"])
    members = {a["account_id"] for a in scan.table("accounts").to_pylist() if a["flagged"]}
    by_campaign: dict[str, set[str]] = {}
    for a in scan.table("accounts").to_pylist():
        if a["flagged"]:
            by_campaign.setdefault(a["campaign_id"], set()).add(a["account_id"])
    rows = scan.table("indicators").filter(pc.field("kind") == "user_agent").to_pylist()
    assert rows and members
    for r in rows:
        inside = users[r["value"]] & by_campaign[r["campaign_id"]]
        assert r["accounts"] == len(inside)
        assert r["outside_accounts"] == len(users[r["value"]] - by_campaign[r["campaign_id"]])
    # The hostile cell's own user agent is specific to it; the reseller's browser string is everyone's.
    agent = [r for r in rows if r["value"] == scanned.hostile_agent]
    assert len(agent) == 1 and agent[0]["outside_accounts"] == 0 and agent[0]["accounts"] == 5


def test_actions_follow_the_ladder(scanned):
    scan = ScanDir(scanned.scan_dir)
    accounts = {a["account_id"]: a for a in scan.table("accounts").to_pylist()}
    for a in scanned.groups["cell"]:  # one card, unusual traffic: both kinds of evidence agree
        assert (accounts[a]["action"], accounts[a]["action_rule"]) == ("suspend", "action.suspend.core_anchored")
    for a in scanned.groups["people"] + scanned.groups["enterprise"]:
        if a in accounts:
            assert accounts[a]["action"] in ("none", "monitor"), a
    for a in accounts.values():
        assert (a["action"] in ("suspend", "challenge")) == a["flagged"]
        assert (a["action_rule"] is None) == (a["action"] == "none")


def test_timeline_adds_up_to_the_campaigns_and_the_traffic(scanned):
    scan = ScanDir(scanned.scan_dir)
    timeline = scan.table("timeline").to_pylist()
    assert sum(r["exchanges"] for r in timeline if r["campaign_id"] is None) == scan.meta["exchanges"]
    for c in scan.table("campaigns").to_pylist():
        assert sum(r["exchanges"] for r in timeline if r["campaign_id"] == c["campaign_id"]) == c["exchanges"]
    models = scan.table("models").to_pylist()
    assert sum(m["exchanges"] for m in models) == scan.meta["exchanges"]


def test_samples_are_the_campaigns_own_exchanges_cut_short(scanned):
    scan = ScanDir(scanned.scan_dir)
    events = {e["request_id"]: e for e in pq.read_table(scanned.events).to_pylist()}
    members = {a["account_id"]: a["campaign_id"] for a in scan.table("accounts").to_pylist() if a["flagged"]}
    samples = scan.table("samples").to_pylist()
    assert {s["campaign_id"] for s in samples} == set(scan.table("campaigns").column("campaign_id").to_pylist())
    for s in samples:
        e = events[s["request_id"]]
        assert e["account_id"] == s["account_id"] and members[s["account_id"]] == s["campaign_id"]
        assert e["prompt"].startswith(s["prompt"]) and len(s["prompt"]) <= 1000
        assert s["prompt_chars"] == len(e["prompt"])
    cell = _campaign_of(scan, scanned.groups["cell"][1])
    assert any(h in s["prompt"] for s in samples if s["campaign_id"] == cell for h in scanned.hostile)


def test_a_scan_without_a_key_refuses_to_start(hand_made_world, tmp_path, monkeypatch):
    from distillguard.engine import literal
    from distillguard.verdicts import scan

    folder, _ = hand_made_world
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(MissingKey, match=KEY_ENV):
        scan(f"SELECT * FROM read_parquet({literal(str(folder / 'events.parquet'))})",
             f"SELECT * FROM read_parquet({literal(str(folder / 'accounts.parquet'))})", tmp_path / "out",
             input_fingerprint="test")
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(MissingKey, match="at least"):
        scan("SELECT 1", "SELECT 1", tmp_path / "out", input_fingerprint="test")


def test_a_partner_hashing_the_same_identifier_gets_the_same_value():
    key = b"a shared key of sufficient length"
    assert keyed_hash("ip", "2001:DB8:0:0::7", key) == keyed_hash("ip", " 2001:db8::7", key)
    assert keyed_hash("ip", "203.0.113.7", key) == keyed_hash("ip", "203.0.113.7 ", key)
    assert keyed_hash("ip", "203.0.113.7", key) != keyed_hash("ip", "203.0.113.7", key + b"!")
    # A card and an address that happen to be the same text are different indicators.
    assert keyed_hash("payment", "203.0.113.7", key) != keyed_hash("ip", "203.0.113.7", key)
    assert keyed_hash("email", "Mail-1", key) != keyed_hash("email", "mail-1", key)
