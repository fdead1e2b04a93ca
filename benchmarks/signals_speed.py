"""Speed of the template keys and the near-duplicate sketch (a script, not a test).

    .venv/bin/python benchmarks/signals_speed.py EVENTS.parquet [--rows 1000000] [--threads 2] [--repeat 3]

Loads ROWS prompts from EVENTS (a simulated world's events.parquet, say; repeated if
it holds fewer) into memory, then times each expression over all of them: the
normalised text, the two template keys, the sketch, keys and sketch together as
`signals/request.py` uses them, and the same three columns from `signatures_sql`
(once per distinct prompt, joined back to every row). Prints the median of REPEAT runs, as rows/s on the
wall clock and as rows/s per THREADS of CPU time (process CPU seconds / THREADS):
on a shared, noisy machine the second is the steadier figure of what the SQL costs.
Reading the Parquet file is not timed.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

from distillguard.engine import Engine, literal
from distillguard.signals.templates import minhash_bands_sql, normalize_sql, signatures_sql, template_keys_sql


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _time(engine: Engine, sql: str, repeat: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of `sql` over `repeat` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        c, t = _cpu_seconds(), time.perf_counter()
        engine.rows(sql, step="benchmark")
        walls.append(time.perf_counter() - t)
        cpus.append(_cpu_seconds() - c)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("events", help="a Parquet file with a `prompt` column")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    engine = Engine.open(threads=args.threads)
    src = f"read_parquet({literal(args.events)})"
    have = engine.rows(f"SELECT count(*) FROM {src}")[0][0]
    copies = -(-args.rows // have)
    engine.execute(f"""CREATE TABLE prompts AS
        SELECT prompt FROM (SELECT prompt FROM {src}), range({copies}) LIMIT {args.rows}""")
    n, chars, median_chars = engine.rows(
        "SELECT count(*), sum(length(prompt)), median(length(prompt)) FROM prompts")[0]
    print(f"{n:,} prompts from {args.events} ({copies} cop{'y' if copies == 1 else 'ies'}), "
          f"mean {chars / n:.0f} characters, median {median_chars:.0f}; "
          f"{args.threads} threads, median of {args.repeat}")

    keys = template_keys_sql("prompt")
    sketch = minhash_bands_sql("prompt")
    cases = {
        "normalize_sql": f"SELECT sum(strlen({normalize_sql('prompt')})) FROM prompts",
        "template_keys_sql": f"SELECT bit_xor({keys['template_head']}), bit_xor({keys['template_tail']}) FROM prompts",
        "minhash_bands_sql": f"SELECT bit_xor(hash({sketch})) FROM prompts",
        "keys + sketch": (f"SELECT bit_xor({keys['template_head']}), bit_xor({keys['template_tail']}), "
                          f"bit_xor(hash({sketch})) FROM prompts"),
        # The same three columns for every row, computed once per distinct prompt.
        "signatures_sql": (f"SELECT bit_xor(s.template_head), bit_xor(s.template_tail), bit_xor(hash(s.sketch)) "
                           f"FROM prompts p JOIN ({signatures_sql('prompts')}) s ON s.text_hash = hash(p.prompt)"),
    }
    print(f"{'expression':20s} {'rows/s (wall)':>14s} {'rows/s (CPU)':>13s} {'s / 1M rows':>12s}")
    for name, sql in cases.items():
        wall, cpu = _time(engine, sql, args.repeat)
        per_thread = cpu / args.threads
        print(f"{name:20s} {n / wall:14,.0f} {n / per_thread:13,.0f} {wall * 1e6 / n:12.2f}", flush=True)


if __name__ == "__main__":
    main()
