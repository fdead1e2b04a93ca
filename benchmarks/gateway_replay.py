"""Replay a labelled world through the gateway in time order, as if it ran live.

    .venv/bin/python benchmarks/gateway_replay.py --world /tmp/gw/medium --workspace /tmp/gw/medium-ws \
        --out /tmp/gw/replay

Every day a scan of the traffic so far (`scan --until` midnight) publishes its verdicts,
which come into force --publish-delay later (the scan's own running time). Each exchange
is decided by the shipped policy at its own moment, with the account's identifiers as the
provider's accounts table holds them. An exchange counts as served unless the decision
refuses it (block, step_up, throttle): a degraded or marked reply is still served.

Measured: the share of each campaign's exchanges the gateway kept from being served (the
issue's target: >= 90% overall), and the share of legitimate accounts' requests that got
anything but allow (target: <= 0.1%), per persona.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from distillguard.gateway.decide import Gateway
from distillguard.gateway.policy import default_policy
from distillguard.gateway.request import DecisionRequest
from distillguard.gateway.state import MemoryState
from distillguard.gateway.verdicts import load, publish
from distillguard.ingest import Workspace
from distillguard.schema.decisions import REFUSING
from distillguard.verdicts import scan
from distillguard.verdicts.keyed import KEY_ENV, indicator_key

COLUMNS = ("request_id", "ts", "account_id", "model", "prompt", "system", "api_key_id", "client_ip", "asn",
           "logprobs", "n", "thinking", "max_tokens", "tools")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", required=True, help="a simulated world (events, accounts, labels)")
    ap.add_argument("--workspace", required=True, help="the world ingested")
    ap.add_argument("--out", required=True)
    ap.add_argument("--publish-delay-hours", type=float, default=1.0)
    ap.add_argument("--days", type=int, default=None, help="replay only the first N days")
    args = ap.parse_args()
    os.environ.setdefault(KEY_ENV, secrets.token_hex(32))
    out, world = Path(args.out), Path(args.world)
    out.mkdir(parents=True, exist_ok=True)
    ws = Workspace(args.workspace)
    labels = {r["account_id"]: r for r in pq.read_table(world / "labels.parquet").to_pylist()}
    accounts = {r["account_id"]: r for r in pq.read_table(
        world / "accounts.parquet", columns=["account_id", "created_at", "payment_fingerprint", "phone_hash",
                                             "email_hash"]).to_pylist()}
    con = duckdb.connect()
    first, last = con.execute(f"SELECT min(ts), max(ts) FROM read_parquet('{world / 'events.parquet'}')").fetchone()
    start = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
    days = (last - start).days + 1 if args.days is None else args.days

    policy = default_policy()
    state = MemoryState(policy.windows, link_kinds=policy.link_identifiers)
    gateway = Gateway(policy, state, key=indicator_key())
    served, total = Counter(), Counter()
    legit_decisions, legit_other = Counter(), Counter()
    other_reasons = Counter()
    scan_seconds, decide_seconds, decided = [], 0.0, 0
    for day in range(days):
        day_start = start + timedelta(days=day)
        if day > 0:  # the scan of everything before this midnight
            t = time.perf_counter()
            summary = scan(ws.events_sql(), ws.accounts_sql(), out / "scan", input_fingerprint=ws.fingerprint(),
                           until=day_start.isoformat())
            version = publish(out / "scan", out / "verdicts")
            scan_seconds.append(time.perf_counter() - t)
            in_force = day_start + timedelta(hours=args.publish_delay_hours)
            print(f"day {day}: scan {scan_seconds[-1]:.1f} s, {summary.flagged_accounts:,} accounts flagged, "
                  f"in force from {in_force:%H:%M}", flush=True)
        else:
            version, in_force = None, None
        reader = con.execute(f"""
            SELECT {', '.join(COLUMNS)} FROM read_parquet('{world / 'events.parquet'}')
            WHERE ts >= TIMESTAMPTZ '{day_start.isoformat()}' AND ts < TIMESTAMPTZ '{(day_start + timedelta(days=1)).isoformat()}'
            ORDER BY ts, request_id""").to_arrow_reader(50_000)
        for batch in reader:
            for e in batch.to_pylist():
                if version is not None and e["ts"] >= in_force:
                    state.use(load(out / "verdicts", version, link_kinds=policy.link_identifiers))
                    version = None
                a = accounts.get(e["account_id"]) or {}
                request = DecisionRequest(
                    account_id=e["account_id"], prompt=e["prompt"], system=e["system"], model=e["model"],
                    request_id=e["request_id"], ts=e["ts"].timestamp(), api_key_id=e["api_key_id"],
                    client_ip=e["client_ip"], asn=e["asn"], payment_fingerprint=a.get("payment_fingerprint"),
                    phone_hash=a.get("phone_hash"), email_hash=a.get("email_hash"),
                    account_created_at=a["created_at"].timestamp() if a.get("created_at") else None,
                    logprobs=bool(e["logprobs"]), n=e["n"] or 1, thinking=bool(e["thinking"]),
                    max_tokens=e["max_tokens"], tools=e["tools"] or 0)
                t = time.perf_counter()
                d = gateway.decide(request)
                decide_seconds += time.perf_counter() - t
                decided += 1
                label = labels.get(e["account_id"], {})
                if label.get("campaign"):
                    total[label["campaign"]] += 1
                    served[label["campaign"]] += d.decision not in REFUSING
                else:
                    persona = label.get("persona", "unknown")
                    legit_decisions[persona] += 1
                    if d.decision != "allow":
                        legit_other[persona] += 1
                        other_reasons.update(d.reasons)
        print(f"day {day}: {decided:,} decided; campaigns served {sum(served.values()):,} of "
              f"{sum(total.values()):,}; legitimate non-allow {sum(legit_other.values()):,} of "
              f"{sum(legit_decisions.values()):,}", flush=True)
    result = {
        "days": days, "decisions": decided, "decide_us_mean": round(decide_seconds / max(decided, 1) * 1e6, 1),
        "scan_seconds_median": sorted(scan_seconds)[len(scan_seconds) // 2] if scan_seconds else None,
        "campaigns": {c: {"exchanges": total[c], "served": served[c], "cut": 1 - served[c] / total[c]}
                      for c in sorted(total)},
        "campaign_cut": 1 - sum(served.values()) / max(sum(total.values()), 1),
        "legitimate": {p: {"decisions": legit_decisions[p], "non_allow": legit_other[p]}
                       for p in sorted(legit_decisions)},
        "legitimate_non_allow_share": sum(legit_other.values()) / max(sum(legit_decisions.values()), 1),
        "legitimate_non_allow_reasons": dict(other_reasons.most_common()),
    }
    (out / "replay.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("legitimate",)}, indent=2))


if __name__ == "__main__":
    main()
