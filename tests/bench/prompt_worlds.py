"""A world of prompts only, for the baselines that read nothing else (PRADA, MMD)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.engine import literal

START = datetime(2026, 3, 2, tzinfo=timezone.utc)


def write_prompt_world(folder: Path, prompts: dict[str, list[str]], *, every: timedelta,
                       shuffle: bool = False) -> tuple[str, str]:
    """Each account's prompts `every` apart; returns (events SQL, accounts SQL).
    shuffle: rows out of time order on disk, so a method's own ordering is what is tested."""
    rows: dict[str, list] = {"request_id": [], "ts": [], "account_id": [], "prompt": []}
    for account, texts in prompts.items():
        for i, text in enumerate(texts):
            rows["request_id"].append(f"{account}-{i:05d}")
            rows["ts"].append(START + i * every)
            rows["account_id"].append(account)
            rows["prompt"].append(text)
    events = pa.table({**rows, "ts": pa.array(rows["ts"], pa.timestamp("us", tz="UTC"))})
    if shuffle:
        events = events.take(np.random.default_rng(0).permutation(events.num_rows))
    pq.write_table(events, folder / "events.parquet")
    pq.write_table(pa.table({"account_id": sorted(prompts)}), folder / "accounts.parquet")
    return (f"SELECT * FROM read_parquet({literal(str(folder / 'events.parquet'))})",
            f"SELECT * FROM read_parquet({literal(str(folder / 'accounts.parquet'))})")
