"""What acting on and sharing a scan costs: the scan's evidence steps, then the report and
every export of its folder (medians over repeats; sizes of what is written).

    .venv/bin/python benchmarks/evidence_outputs.py --workspace /tmp/w/med1-scan/workspace --repeat 3

The scan runs once (its timings.json splits the evidence steps from the rest); each
consumer of the scan folder runs --repeat times in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from distillguard.exports.actions_csv import write_actions_csv
from distillguard.exports.campaigns_json import write_campaigns_json
from distillguard.exports.misp import write_misp
from distillguard.exports.stix import write_stix
from distillguard.ingest import Workspace
from distillguard.reports import write_report
from distillguard.verdicts import scan
from distillguard.verdicts.keyed import KEY_ENV

CONSUMERS = {
    "report.html": lambda d, out: write_report(d, out),
    "campaigns.json": write_campaigns_json,
    "actions.csv": write_actions_csv,
    "campaigns.stix.json": lambda d, out: write_stix(d, out, producer="Benchmark Lab"),
    "campaigns.misp.json": lambda d, out: write_misp(d, out, producer="Benchmark Lab"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workspace", required=True, type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault(KEY_ENV, secrets.token_hex(32))  # a benchmark's outputs are thrown away
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "scan"
        ws = Workspace(args.workspace)
        summary = scan(ws.events_sql(), ws.accounts_sql(), folder, input_fingerprint=ws.fingerprint())
        total = sum(summary.seconds.values())
        result = {"exchanges": summary.exchanges, "campaigns": summary.campaigns,
                  "flagged_accounts": summary.flagged_accounts, "scan_seconds": round(total, 1),
                  "indicators_step_seconds": summary.seconds["indicators"],
                  "indicators_step_share": round(summary.seconds["indicators"] / total, 3),
                  "scan_folder_mib": round(sum(p.stat().st_size for p in folder.glob("*.*")) / 2**20, 1),
                  "consumers": {}}
        for name, write in CONSUMERS.items():
            seconds = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                write(folder, Path(work) / name)
                seconds.append(time.perf_counter() - t0)
            result["consumers"][name] = {"median_seconds": round(statistics.median(seconds), 2),
                                         "mib": round((Path(work) / name).stat().st_size / 2**20, 2)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
