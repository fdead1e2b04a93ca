"""Generation time and peak memory of each simulator preset.

Each run is a fresh process; peak RSS is its own VmHWM (ru_maxrss would carry the
forked parent's peak across exec), repeated; we report
medians because the machines are shared and noisy.

    .venv/bin/python benchmarks/simulate_presets.py --presets small medium large --repeat 3
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
import json, sys, time
from distillguard.simulate import simulate
t = time.perf_counter()
world = simulate(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_rss_mib": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024,
                  "exchanges": world["totals"]["exchanges"], "accounts": world["totals"]["accounts"]}))
"""


def run(preset: str, seed: int, corpora: str | None) -> dict:
    with tempfile.TemporaryDirectory() as out:
        args = [sys.executable, "-c", _CHILD, preset, str(seed), out] + ([corpora] if corpora else [])
        result = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
        result["events_mib"] = (Path(out) / "events.parquet").stat().st_size / 2**20
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["small", "medium", "large"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--corpora", default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    rows = []
    for preset in args.presets:
        runs = [run(preset, seed, args.corpora) for seed in range(args.repeat)]
        row = {
            "preset": preset,
            "runs": len(runs),
            "accounts": int(statistics.median(r["accounts"] for r in runs)),
            "exchanges": int(statistics.median(r["exchanges"] for r in runs)),
            "median_seconds": round(statistics.median(r["seconds"] for r in runs), 1),
            "median_peak_rss_mib": round(statistics.median(r["peak_rss_mib"] for r in runs)),
            "max_peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs)),
            "events_parquet_mib": round(statistics.median(r["events_mib"] for r in runs)),
            "corpora": bool(args.corpora),
        }
        row["exchanges_per_second"] = round(row["exchanges"] / row["median_seconds"])
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"when": time.strftime("%Y-%m-%d"), "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
