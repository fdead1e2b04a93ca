"""Ingest throughput and peak memory on a simulated world, as Parquet and as JSON Lines.

Each ingest runs in a fresh process into a fresh workspace, repeated; we report
medians. A second ingest of the same files measures the idempotent re-run.

    .venv/bin/python benchmarks/ingest_world.py --preset medium --repeat 3
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

import pyarrow.parquet as pq

_CHILD = """
import json, sys, time
from distillguard.ingest import ingest
t = time.perf_counter()
r = ingest(events=[sys.argv[1]], accounts=[sys.argv[2]], workspace=sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - t, "rows": r.events.rows_read,
                  "ingested": r.events.rows_ingested,
                  "peak_rss_mib": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024}))
"""


def _ingest(events: Path, accounts: Path, workspace: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(events), str(accounts), str(workspace)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _to_jsonl(events: Path, out: Path) -> None:
    with out.open("w", encoding="utf-8") as f:
        for batch in pq.ParquetFile(events).iter_batches(batch_size=50_000):
            cols = batch.to_pydict()
            cols["ts"] = [t.isoformat() for t in cols["ts"]]
            names = list(cols)
            for row in zip(*cols.values()):
                f.write(json.dumps(dict(zip(names, row)), ensure_ascii=False))
                f.write("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from distillguard.simulate import simulate

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        simulate(args.preset, 0, tmp / "world")
        events, accounts = tmp / "world" / "events.parquet", tmp / "world" / "accounts.parquet"
        jsonl = tmp / "events.jsonl"
        _to_jsonl(events, jsonl)
        for fmt, path in (("parquet", events), ("jsonl", jsonl)):
            first, again = [], []
            for i in range(args.repeat):
                ws = tmp / f"ws-{fmt}-{i}"
                first.append(_ingest(path, accounts, ws))
                again.append(_ingest(path, accounts, ws))
                assert again[-1]["ingested"] == 0, "a re-run must add nothing"
            row = {
                "preset": args.preset, "format": fmt, "runs": args.repeat, "rows": first[0]["rows"],
                "input_mib": round(path.stat().st_size / 2**20),
                "median_seconds": round(statistics.median(r["seconds"] for r in first), 1),
                "median_rerun_seconds": round(statistics.median(r["seconds"] for r in again), 1),
                "median_peak_rss_mib": round(statistics.median(r["peak_rss_mib"] for r in first)),
            }
            row["rows_per_second"] = round(row["rows"] / row["median_seconds"])
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"when": time.strftime("%Y-%m-%d"), "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
