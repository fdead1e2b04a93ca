"""campaigns.json: the whole evidence of every campaign, as data."""

from __future__ import annotations

import json

from distillguard.exports.campaigns_json import FORMAT, write_campaigns_json
from distillguard.verdicts.read import ScanDir


def test_every_campaign_member_and_evidence_row_is_in_the_document(scanned, tmp_path):
    out = tmp_path / "campaigns.json"
    n = write_campaigns_json(scanned.scan_dir, out)
    doc = json.loads(out.read_text())
    scan = ScanDir(scanned.scan_dir)
    assert doc["format"] == FORMAT and doc["scan"] == scan.meta and n == len(doc["campaigns"]) == scan.meta["campaigns"]
    assert [c["rank"] for c in doc["campaigns"]] == list(range(1, n + 1))
    risks = [(c["risk"], c["accounts"]) for c in doc["campaigns"]]
    assert risks == sorted(risks, reverse=True)
    members = {(m["account_id"], c["campaign_id"]) for c in doc["campaigns"] for m in c["members"]}
    flagged = {(a["account_id"], a["campaign_id"]) for a in scan.table("accounts").to_pylist() if a["flagged"]}
    assert members == flagged
    rows = {(e["account_id"], e["reason"], e["kind"], e["ref"]) for e in scan.table("evidence").to_pylist()}
    written = {(m["account_id"], ev["reason"], ev["kind"], r["ref"])
               for c in doc["campaigns"] for m in c["members"] for ev in m["evidence"] for r in ev["refs"]}
    assert written == rows
    assert all(code in doc["reason_codes"] for c in doc["campaigns"] for code in c["reasons"])


def test_hostile_text_is_carried_exactly_as_data(scanned, tmp_path):
    out = tmp_path / "campaigns.json"
    write_campaigns_json(scanned.scan_dir, out)
    doc = json.loads(out.read_text())
    prompts = " ".join(s["prompt"] for c in doc["campaigns"] for s in c["samples"])
    assert all(h in prompts for h in scanned.hostile)
    agents = {i["value"] for c in doc["campaigns"] for i in c["indicators"] if i["kind"] == "user_agent"}
    assert scanned.hostile_agent in agents
    assert scanned.hostile_account in {m["account_id"] for c in doc["campaigns"] for m in c["members"]}
