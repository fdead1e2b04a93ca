"""Verdicts against the truth of a labelled world (labels.parquet): what a scan
found, per campaign and per legitimate persona."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq


def compare(scan_dir: str | Path, labels_path: str | Path) -> dict:
    verdicts = {r["account_id"]: r for r in pq.read_table(
        Path(scan_dir) / "accounts.parquet", columns=["account_id", "flagged", "campaign_id"]).to_pylist()}
    labels = pq.read_table(labels_path, columns=["account_id", "campaign", "persona"]).to_pylist()
    campaigns: dict[str, dict] = defaultdict(lambda: {"accounts": 0, "flagged": 0, "found_as": Counter()})
    personas: dict[str, dict] = defaultdict(lambda: {"accounts": 0, "flagged": 0})
    tp = fp = fn = 0
    for row in labels:
        v = verdicts.get(row["account_id"])
        if v is None:  # no traffic in the scanned window
            continue
        flagged = bool(v["flagged"])
        if row["campaign"] is not None:
            c = campaigns[row["campaign"]]
            c["accounts"] += 1
            c["flagged"] += flagged
            if flagged:
                c["found_as"][v["campaign_id"]] += 1
            tp += flagged
            fn += not flagged
        else:
            p = personas[row["persona"]]
            p["accounts"] += 1
            p["flagged"] += flagged
            fp += flagged
    legit = sum(p["accounts"] for p in personas.values())
    for c in campaigns.values():
        c["recall"] = c["flagged"] / c["accounts"] if c["accounts"] else 0.0
        c["found_as"] = [name for name, _ in c["found_as"].most_common()]
    for p in personas.values():
        p["rate"] = p["flagged"] / p["accounts"] if p["accounts"] else 0.0
    return {
        "accounts": {
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "fpr": fp / legit if legit else 0.0,
            "flagged": tp + fp, "true_positives": tp, "false_positives": fp, "legitimate": legit,
        },
        "campaigns": dict(sorted(campaigns.items())),
        "personas": dict(sorted(personas.items())),
    }
