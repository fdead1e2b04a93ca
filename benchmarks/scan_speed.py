"""Scan throughput and peak memory, end to end, in fresh processes (medians).

    .venv/bin/python benchmarks/scan_speed.py --world /tmp/w/large1 --repeat 3 [--memory-limit 3GB]

"End to end" is ingest (validation, de-duplication, a workspace) plus the scan, as
`distillguard scan --events --accounts` runs them; both are also reported apart.
Peak memory is the process's VmHWM (DuckDB's buffer pool included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import json, os, secrets, sys, time
from distillguard.ingest import Workspace, ingest
from distillguard.verdicts import scan
world, work, limit = sys.argv[1], sys.argv[2], sys.argv[3] or None
t0 = time.perf_counter()
ingest(events=[world + "/events.parquet"], accounts=[world + "/accounts.parquet"], workspace=work + "/ws",
       memory_limit=limit)
t1 = time.perf_counter()
ws = Workspace(work + "/ws")
os.environ.setdefault("DISTILLGUARD_INDICATOR_KEY", secrets.token_hex(32))  # a benchmark's outputs are thrown away
s = scan(ws.events_sql(), ws.accounts_sql(), work + "/scan", input_fingerprint=ws.fingerprint(), memory_limit=limit)
t2 = time.perf_counter()
print(json.dumps({"ingest_seconds": t1 - t0, "scan_seconds": t2 - t1, "exchanges": s.exchanges,
                  "stages": s.seconds, "campaigns": s.campaigns,
                  "peak_rss_mib": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, required=True, help="a simulated world folder (distillguard simulate)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--memory-limit", default="")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as work:
            run = subprocess.run([sys.executable, "-c", _CHILD, str(args.world), work, args.memory_limit],
                                 capture_output=True, text=True)
            if run.returncode:
                sys.exit(f"scan failed:\n{run.stderr[-3000:]}")
            out = run.stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
    med = lambda key: statistics.median(r[key] for r in runs)
    total = med("ingest_seconds") + med("scan_seconds")
    row = {"world": str(args.world), "runs": len(runs), "exchanges": runs[0]["exchanges"],
           "memory_limit": args.memory_limit or None,
           "median_ingest_seconds": round(med("ingest_seconds"), 1), "median_scan_seconds": round(med("scan_seconds"), 1),
           "end_to_end_exchanges_per_second": round(runs[0]["exchanges"] / total),
           "scan_only_exchanges_per_second": round(runs[0]["exchanges"] / med("scan_seconds")),
           "median_peak_rss_mib": round(med("peak_rss_mib")),
           "median_stage_seconds": {k: round(statistics.median(r["stages"][k] for r in runs), 1) for k in runs[0]["stages"]}}
    print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"when": time.strftime("%Y-%m-%d"), "result": row, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
