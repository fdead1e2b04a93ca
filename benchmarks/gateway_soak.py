"""A long run of the gateway at a steady rate: does its memory grow, does its log lose rows?

    .venv/bin/python benchmarks/gateway_soak.py --world /tmp/gw/medium --scan /tmp/gw/replay2/scan \
        --rate 2000 --minutes 10 --state redis --out /tmp/gw/soak

One process decides the world's exchanges in a loop at --rate per second on the live
clock (so the sliding windows fill, slide and expire as in production), with the decision
log on. Every 10 s it records its resident memory (VmRSS) and, in memory mode, the
entries the state holds. At the end the log is read back: every decision id must be
there exactly once. Figures: RSS after the first minute and at the end, the largest
RSS of the last half against that of the first half, and log rows against decisions.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import time
from pathlib import Path

from distillguard.gateway.decide import Gateway
from distillguard.gateway.request import DecisionRequest
from distillguard.verdicts.keyed import KEY_ENV

REDIS_URL = "redis://127.0.0.1:6379/0"
PREFIX = "{dgsoak}:"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", required=True, type=Path)
    ap.add_argument("--scan", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--state", choices=["memory", "redis"], default="redis")
    ap.add_argument("--requests", type=int, default=200_000, help="distinct requests cycled through")
    args = ap.parse_args()
    os.environ.setdefault(KEY_ENV, secrets.token_hex(32))
    import redis

    from gateway_latency import load_requests  # the sibling script's request reader

    from distillguard.gateway.verdicts import publish, publish_redis

    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = args.out / "log"
    for old in log_dir.glob("*.jsonl"):
        old.unlink()
    if args.state == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match="\\{dgsoak\\}:*", count=10_000):
            client.delete(key)
        publish_redis(args.scan, client, PREFIX)
        gateway = Gateway.open(redis_url=REDIS_URL, prefix=PREFIX, log_dir=log_dir)
    else:
        publish(args.scan, args.out / "verdicts")
        gateway = Gateway.open(verdicts=args.out / "verdicts", log_dir=log_dir)
    requests = [DecisionRequest.from_dict(b) for b in load_requests(args.world, args.requests)]
    gateway.warm()
    samples, decided, behind = [], 0, 0.0
    t0 = time.perf_counter()
    end = t0 + args.minutes * 60
    next_sample = t0
    while (now := time.perf_counter()) < end:
        due = t0 + decided / args.rate
        if due > now:
            time.sleep(min(due - now, 0.002))
            continue
        behind = max(behind, now - due)
        gateway.decide(requests[decided % len(requests)])
        decided += 1
        if now >= next_sample:
            size = gateway.state.size()
            samples.append({"s": round(now - t0, 1), "rss_mib": round(rss_mib(), 1), "decided": decided,
                            "state_entries": size})
            print(samples[-1], flush=True)
            next_sample += 10
    gateway.close()
    ids = [json.loads(line)["decision_id"] for f in sorted(log_dir.glob("*.jsonl")) for line in f.open()]
    half = len(samples) // 2
    after_minute = next((s for s in samples if s["s"] >= 60), samples[-1])
    result = {
        "state": args.state, "minutes": args.minutes, "rate": args.rate, "decisions": decided,
        "rate_achieved": round(decided / (time.perf_counter() - t0)), "max_behind_s": round(behind, 3),
        "rss_after_1min_mib": after_minute["rss_mib"], "rss_end_mib": samples[-1]["rss_mib"],
        "rss_max_first_half_mib": max(s["rss_mib"] for s in samples[:half]),
        "rss_max_second_half_mib": max(s["rss_mib"] for s in samples[half:]),
        "log_rows": len(ids), "log_unique_ids": len(set(ids)), "lost_rows": decided - len(set(ids)),
        "samples": samples,
    }
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))

if __name__ == "__main__":
    main()
