"""Ingest throughput on synthetic events (a script, not a test).

    .venv/bin/python benchmarks/ingest_scale.py [ROWS] [--keep DIR] [--memory-limit 1GB]

Writes ROWS events (default 1,000,000) as Parquet and as JSON Lines, ingests each
into a fresh workspace in a child process, and prints rows/s and peak RSS. Each
child is measured alone, so peak RSS is the ingest's own. The engine may use
memory up to its limit (half the machine's by default) as cache, so RSS says
little about what ingest needs: give --memory-limit to see it stay bounded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

WORDS = np.array("the quick brown fox jumps over a lazy dog write explain solve step by proof".split())


def synthetic(n: int, seed: int = 1) -> pa.Table:
    """Events shaped like real traffic: ~220-character prompts, ~550-character responses."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    text = lambda k: [" ".join(r) for r in WORDS[rng.integers(0, len(WORDS), (n, k))]]  # noqa: E731
    ts = np.datetime64("2025-01-01T00:00:00", "us") + (i * 500_000).astype("timedelta64[us]")
    return pa.table({
        "request_id": [f"req-{x:09d}" for x in i],
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "account_id": [f"acct-{x:05d}" for x in i % 5000],
        "model": pa.array(np.where(i % 3 == 0, "model-large", "model-small")),
        "prompt": text(40),
        "api_key_id": [f"key-{x}" for x in i % 7000],
        "conversation_id": [f"conv-{x}" for x in i // 3],
        "turn": i % 3,
        "response": text(100),
        "input_tokens": rng.integers(10, 500, n),
        "output_tokens": rng.integers(10, 2000, n),
        "max_tokens": np.full(n, 4096),
        "temperature": np.round(rng.random(n), 2),
        "logprobs": i % 5 == 0,
        "n": np.ones(n, dtype=np.int64),
        "status": pa.array(np.where(i % 50 == 0, "error", "ok")),
        "client_ip": [f"10.{x % 256}.{x % 200}.{x % 97}" for x in i],
        "asn": np.full(n, 64512),
        "ip_country": pa.array(np.where(i % 2 == 0, "US", "DE")),
        "user_agent": pa.array(np.full(n, "python-httpx/0.27")),
    })


def write_jsonl(table: pa.Table, path: Path) -> None:
    with open(path, "w") as f:
        for batch in table.to_batches(100_000):
            for row in batch.to_pylist():
                row["ts"] = row["ts"].isoformat().replace("+00:00", "Z")
                f.write(json.dumps(row) + "\n")


CHILD = """
import sys, time, json, resource
from distillguard.ingest import ingest

def peak_rss_mib():
    # VmHWM: this process's own peak (ru_maxrss would include the parent's, inherited across exec).
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

t = time.perf_counter()
r = ingest([sys.argv[1]], workspace=sys.argv[2], memory_limit=sys.argv[3] or None)
print(json.dumps({"seconds": time.perf_counter() - t, "ingested": r.events.rows_ingested,
                  "quarantined": r.events.quarantined,
                  "peak_rss_mib": peak_rss_mib()}))
"""


def measure(path: Path, workspace: Path, memory_limit: str) -> dict:
    """Ingest in a child process, so that its peak RSS is the ingest's alone."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(workspace), memory_limit],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 1_000_000
    keep = Path(sys.argv[sys.argv.index("--keep") + 1]) if "--keep" in sys.argv else None
    limit = sys.argv[sys.argv.index("--memory-limit") + 1] if "--memory-limit" in sys.argv else ""
    with tempfile.TemporaryDirectory() as tmp:
        root = keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        files = {"parquet": root / "events.parquet", "jsonl": root / "events.jsonl"}
        if not all(f.exists() for f in files.values()):  # --keep reuses the files of an earlier run
            table = synthetic(n)
            pq.write_table(table, files["parquet"])
            write_jsonl(table, files["jsonl"])
            del table
        print(f"{pq.ParquetFile(files['parquet']).metadata.num_rows:,} events; parquet {files['parquet'].stat().st_size >> 20} MiB, "
              f"jsonl {files['jsonl'].stat().st_size >> 20} MiB")
        for fmt, path in files.items():
            shutil.rmtree(root / f"ws-{fmt}", ignore_errors=True)
            r = measure(path, root / f"ws-{fmt}", limit)
            print(f"{fmt:8s} {r['seconds']:7.1f} s  {n / r['seconds']:10,.0f} rows/s  "
                  f"peak RSS {r['peak_rss_mib']:,} MiB  (ingested {r['ingested']:,}, quarantined {r['quarantined']})")


if __name__ == "__main__":
    main()
