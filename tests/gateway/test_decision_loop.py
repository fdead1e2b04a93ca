"""The loop closed: the gateway's decision log is ingested like any other input (bad lines
quarantined, a re-run idempotent) and the next scan says what the gateway refused."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from distillguard.gateway.decide import Gateway
from distillguard.gateway.log import DecisionLog
from distillguard.gateway.policy import default_policy
from distillguard.gateway.request import DecisionRequest
from distillguard.gateway.state import MemoryState
from distillguard.gateway.verdicts import publish
from distillguard.ingest import Workspace, ingest
from distillguard.verdicts import scan
from distillguard.verdicts.keyed import indicator_key


def test_the_next_scan_counts_what_the_gateway_refused(scanned, tmp_path):
    policy = default_policy()
    publish(scanned.scan_dir, tmp_path / "verdicts")
    log = DecisionLog(tmp_path / "log")
    gateway = Gateway(policy, MemoryState(policy.windows, tmp_path / "verdicts", link_kinds=policy.link_identifiers),
                      key=indicator_key(), decision_log=log)
    cell, people = scanned.groups["cell"], scanned.groups["people"][:10]
    for account in cell * 3 + people * 2:
        gateway.decide(DecisionRequest(account_id=account, prompt="hello", ts=1772755200.0))  # 2026-03-06
    gateway.close()
    # A damaged line (a crash mid-write elsewhere, an edit) and a line delivered twice.
    lines = log.path.read_text().splitlines()
    extra = tmp_path / "log" / "decisions-other.jsonl"
    extra.write_text(lines[0] + "\n" + json.dumps({**json.loads(lines[1]), "decision": "nuke"}) + "\n")

    ws = tmp_path / "ws"
    first = ingest(events=[scanned.events], accounts=[scanned.accounts], decisions=[tmp_path / "log"], workspace=ws)
    assert first.decisions.rows_read == len(lines) + 2
    assert (first.decisions.rows_ingested, first.decisions.duplicates) == (len(lines), 1)
    assert first.decisions.quarantine_reasons == {"not_in_vocabulary": 1}
    again = ingest(decisions=[tmp_path / "log"], workspace=ws)
    assert again.decisions.skipped_files == 2 and not again.committed

    w = Workspace(ws)
    scan(w.events_sql(), w.accounts_sql(), tmp_path / "scan", input_fingerprint=w.fingerprint(),
         decisions_sql=w.decisions_sql())
    accounts = pq.read_table(tmp_path / "scan" / "accounts.parquet").to_pylist()
    by_id = {a["account_id"]: a for a in accounts}
    for a in cell:
        assert (by_id[a]["gateway_decisions"], by_id[a]["gateway_refused"]) == (3, 3)
    for a in people:
        assert (by_id[a]["gateway_decisions"], by_id[a]["gateway_refused"]) == (2, 0)
    campaigns = pq.read_table(tmp_path / "scan" / "campaigns.parquet").to_pylist()
    cell_campaign = by_id[cell[0]]["campaign_id"]
    members = [a for a in accounts if a["campaign_id"] == cell_campaign]
    assert next(c for c in campaigns if c["campaign_id"] == cell_campaign)["gateway_refused"] == \
        sum(a["gateway_refused"] for a in members)
