"""A re-delivered log: what real pipelines do to data on its way to us.

Log shippers retry (so rows arrive twice) and occasionally damage a line (a cut
write, a field typed by hand, bytes in the wrong encoding). The demo ingests one
such file after the world itself, to show de-duplication and quarantine at work.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

# How each damaged line is broken, and the quarantine reason it must earn.
DAMAGE = ("truncated", "bad_timestamp", "wrong_type", "missing_prompt", "bad_utf8")


def _damage(line: str, how: str) -> bytes:
    row = json.loads(line)
    if how == "truncated":
        return line[: len(line) // 2].encode()
    if how == "bad_timestamp":
        row["ts"] = "yesterday at noon"
    elif how == "wrong_type":
        row["output_tokens"] = "lots"
    elif how == "missing_prompt":
        del row["prompt"]
    elif how == "bad_utf8":
        return json.dumps(row, ensure_ascii=False).encode().replace(b'"prompt": "', b'"prompt": "\xff\xfe', 1)
    return json.dumps(row, ensure_ascii=False).encode()


def write_redelivery(events: Path, out_dir: Path, seed: int = 0, rows: int = 2_000, damaged: float = 0.01) -> Path:
    """Write `rows` already-delivered events as JSON Lines, `damaged` of them broken."""
    rng = np.random.default_rng([seed, 404])
    first = next(pq.ParquetFile(events).iter_batches(batch_size=rows))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "events-redelivered.jsonl"
    n = first.num_rows
    picked = np.sort(rng.choice(n, max(1, int(n * damaged)), replace=False))
    broken = {int(i): DAMAGE[k % len(DAMAGE)] for k, i in enumerate(picked)}  # each kind equally often
    with path.open("wb") as f:
        for i, row in enumerate(first.to_pylist()):
            row["ts"] = row["ts"].isoformat()
            line = json.dumps(row, ensure_ascii=False)
            f.write(_damage(line, broken[i]) if i in broken else line.encode())
            f.write(b"\n")
    return path
