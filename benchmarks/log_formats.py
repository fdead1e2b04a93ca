"""Ingest throughput and peak memory on provider logs (a script, not a test).

    .venv/bin/python benchmarks/log_formats.py [MIB] [--format openai|anthropic] [--memory-limit 1GB]
        [--repeat 3] [--keep DIR]

Writes about MIB MiB (default 1024) of log records of one format. openai and anthropic:
multi-turn conversations whose history grows turn by turn (about 6 KB per record on
average), a reasoning blob issued with every response and sent back with the next turn.
otel: OTLP/JSON exports of 20 spans a line (16 chat spans, 4 HTTP spans). Then ingests the file with `--format`, each run in a fresh child process into a
fresh workspace, and prints the median time, records/s, MiB/s and peak RSS (VmHWM).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WORDS = np.array(("the a model answer explain step reasoning proof show every detail why how data train "
                  "solve problem grade rubric score translate summary code function test error").split())


def _text(rng: np.random.Generator, words: int) -> str:
    return " ".join(WORDS[rng.integers(0, len(WORDS), words)])


def openai_record(rng, i: int, turn: int, history: list, blob: str | None) -> tuple[dict, str]:
    issued = f"gAAAAAB{i:012d}" + "x" * 600
    items = list(history)
    if blob:
        items.append({"type": "reasoning", "id": f"rs_{i - 1}", "summary": [], "encrypted_content": blob})
    items.append({"role": "user", "content": [{"type": "input_text", "text": _text(rng, 60)}]})
    record = {
        "account_id": f"acct-{i // 7 % 20000:05d}", "client_ip": f"198.51.{i % 256}.{i % 97}",
        "request": {"model": "o4-mini", "input": items, "reasoning": {"effort": "high"},
                    "include": ["reasoning.encrypted_content"], "max_output_tokens": 25000},
        "response": {"id": f"resp_{i:012d}", "object": "response", "created_at": 1772445600 + i, "status": "completed",
                     "model": "o4-mini-2025-04-16",
                     "output": [{"type": "reasoning", "id": f"rs_{i}", "summary": [], "encrypted_content": issued},
                                {"type": "message", "role": "assistant",
                                 "content": [{"type": "output_text", "text": _text(rng, 150)}]}],
                     "usage": {"input_tokens": 100 * (turn + 1), "output_tokens": 900,
                               "output_tokens_details": {"reasoning_tokens": 600}}}}
    return record, issued


def anthropic_record(rng, i: int, turn: int, history: list, blob: str | None) -> tuple[dict, str]:
    issued = "Eq" + f"{i:012d}" + "y" * 400
    messages = list(history)
    messages.append({"role": "user", "content": _text(rng, 60)})
    record = {
        "request_id": f"req_{i:012d}", "ts": f"2026-03-03T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
        "account_id": f"acct-{i // 7 % 20000:05d}",
        "request": {"model": "claude-sonnet-4-5", "max_tokens": 16000, "thinking": {"type": "enabled", "budget_tokens": 8000},
                    "messages": messages},
        "response": {"id": f"msg_{i:012d}", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                     "content": [{"type": "thinking", "thinking": _text(rng, 40), "signature": issued},
                                 {"type": "text", "text": _text(rng, 150)}],
                     "stop_reason": "end_turn", "usage": {"input_tokens": 100 * (turn + 1), "output_tokens": 900}}}
    return record, issued


def otel_line(rng, i: int) -> tuple[str, int]:
    """An OTLP/JSON export of 20 spans: 16 chat spans (GenAI semantic conventions, messages
    as JSON strings) and 4 HTTP spans, under one resource naming the user."""
    def attr(key, value):
        kind = "intValue" if isinstance(value, int) else "stringValue"
        return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}
    spans = []
    for k in range(20):
        n = i * 20 + k
        span = {"traceId": f"{n:032x}", "spanId": f"{n:016x}", "name": "chat o4-mini" if k % 5 else "POST /v1/chat",
                "kind": 3, "startTimeUnixNano": str(1772445600_000_000_000 + n * 1_000_000_000),
                "endTimeUnixNano": str(1772445601_000_000_000 + n * 1_000_000_000), "status": {}}
        if k % 5:
            messages = [{"role": "user", "parts": [{"type": "text", "content": _text(rng, 60)}]}]
            output = [{"role": "assistant", "parts": [{"type": "reasoning", "content": _text(rng, 40)},
                                                      {"type": "text", "content": _text(rng, 150)}],
                       "finish_reason": "stop"}]
            span["attributes"] = [attr("gen_ai.operation.name", "chat"), attr("gen_ai.provider.name", "openai"),
                                  attr("gen_ai.request.model", "o4-mini"), attr("gen_ai.response.id", f"chatcmpl-{n}"),
                                  attr("gen_ai.usage.input_tokens", 120), attr("gen_ai.usage.output_tokens", 900),
                                  attr("gen_ai.input.messages", json.dumps(messages)),
                                  attr("gen_ai.output.messages", json.dumps(output)),
                                  attr("client.address", f"198.51.{n % 256}.{n % 97}")]
        else:
            span["attributes"] = [attr("http.request.method", "POST"), attr("url.path", "/v1/chat")]
        spans.append(span)
    export = {"resourceSpans": [{"resource": {"attributes": [attr("service.name", "app"),
                                                             attr("user.id", f"acct-{i % 20000:05d}")]},
                                 "scopeSpans": [{"scope": {"name": "genai"}, "spans": spans}]}]}
    return json.dumps(export) + "\n", 20


def write(path: Path, fmt: str, mib: int, seed: int = 1) -> int:
    """Conversations of 1 to 6 turns, each turn's request carrying the history so far."""
    rng = np.random.default_rng(seed)
    target, written, i = mib << 20, 0, 0
    if fmt == "otel":  # records are spans
        with open(path, "w") as f:
            while written < target:
                line, spans = otel_line(rng, i // 20)
                f.write(line)
                written += len(line)
                i += spans
        return i
    make = {"openai": openai_record, "anthropic": anthropic_record}[fmt]
    with open(path, "w") as f:
        while written < target:
            history: list = []
            blob = None
            for turn in range(int(rng.integers(1, 7))):
                record, issued = make(rng, i, turn, history, blob)
                line = json.dumps(record) + "\n"
                f.write(line)
                written += len(line)
                i += 1
                last = record["request"].get("input") or record["request"]["messages"]
                history = last + [{"role": "assistant", "content": _text(rng, 150)}]
                blob = issued
    return i


CHILD = """
import sys, time, json
from distillguard.ingest import ingest

t = time.perf_counter()
r = ingest([sys.argv[1]], workspace=sys.argv[2], log_format=sys.argv[3], memory_limit=sys.argv[4] or None)
hwm = next(int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": time.perf_counter() - t, "ingested": r.events.rows_ingested, "read": r.events.rows_read,
                  "quarantined": r.events.quarantined, "peak_rss_mib": hwm}))
"""


def measure(path: Path, workspace: Path, fmt: str, memory_limit: str) -> dict:
    shutil.rmtree(workspace, ignore_errors=True)
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(workspace), fmt, memory_limit],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    args = sys.argv[1:]
    opt = lambda name, default: args[args.index(name) + 1] if name in args else default  # noqa: E731
    mib = int(args[0]) if args and args[0].isdigit() else 1024
    fmt, limit, repeat = opt("--format", "openai"), opt("--memory-limit", ""), int(opt("--repeat", "3"))
    keep = opt("--keep", None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"{fmt}-{mib}.jsonl"
        if not path.exists():
            write(path, fmt, mib)
        size = path.stat().st_size / (1 << 20)
        runs = [measure(path, root / "ws", fmt, limit) for _ in range(repeat)]
        records = runs[0]["read"]
        t = statistics.median(r["seconds"] for r in runs)
        rss = statistics.median(r["peak_rss_mib"] for r in runs)
        each = ", ".join(f"{r['seconds']:.1f} s/{r['peak_rss_mib']} MiB" for r in runs)
        print(f"{fmt}: {records:,} records read, {size:,.0f} MiB; memory_limit {limit or 'default'}; "
              f"median of {repeat}: {t:.1f} s, {records / t:,.0f} records/s, {size / t:.1f} MiB/s, "
              f"peak RSS {rss:,.0f} MiB (runs: {each}); "
              f"ingested {runs[0]['ingested']:,}, quarantined {runs[0]['quarantined']:,}")


if __name__ == "__main__":
    main()
