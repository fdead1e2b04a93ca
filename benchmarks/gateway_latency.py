"""Decision latency at a fixed arrival rate, in the process and over HTTP.

    .venv/bin/python benchmarks/gateway_latency.py --world /tmp/gw/medium --scan /tmp/gw/replay/scan \
        --rate 2000 --seconds 30 --mode memory --mode redis --mode http

Requests are the world's exchanges (prompts, parameters, addresses, the account's card),
sent open-loop: request i is due at start + i/rate whatever happened to the ones before,
and its latency is counted from when it was due, so a gateway that falls behind pays for
its queue (no coordinated omission). Modes:

  memory  Gateway in this process, in-process state (the embedded default)
  redis   Gateway in this process, state in the machine's Redis on loopback
  http    `distillguard serve gateway --redis ...` (--workers processes) and a client in
          this process that keeps --connections keep-alive connections busy

In-process modes run --workers processes, each taking every workers-th request (a proxy's
workers); all share Redis in the redis mode. Figures: median, p99, p99.9 in ms, and the
rate achieved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from distillguard.verdicts.keyed import KEY_ENV

REDIS_URL = "redis://127.0.0.1:6379/0"
PREFIX = "{dgbench}:"


def load_requests(world: Path, n: int) -> list[dict]:
    accounts = {r["account_id"]: r for r in pq.read_table(
        world / "accounts.parquet", columns=["account_id", "payment_fingerprint", "created_at"]).to_pylist()}
    rows = pq.ParquetFile(world / "events.parquet").iter_batches(
        batch_size=n, columns=["request_id", "account_id", "model", "prompt", "system", "client_ip", "asn",
                               "logprobs", "n", "thinking", "max_tokens", "tools"])
    out = []
    for e in next(rows).to_pylist():
        a = accounts.get(e["account_id"], {})
        body = {k: v for k, v in e.items() if v is not None}
        body["logprobs"], body["thinking"] = bool(e["logprobs"]), bool(e["thinking"])
        if a.get("payment_fingerprint"):
            body["payment_fingerprint"] = a["payment_fingerprint"]
        if a.get("created_at"):
            body["account_created_at"] = a["created_at"].timestamp()
        out.append(body)
    return out


def _inprocess_worker(mode: str, store: str, bodies: list[dict], rate: float, start: float, q) -> None:
    from distillguard.gateway.decide import Gateway
    from distillguard.gateway.request import DecisionRequest

    gateway = (Gateway.open(redis_url=REDIS_URL, prefix=PREFIX) if mode == "redis"
               else Gateway.open(verdicts=store))
    requests = [DecisionRequest.from_dict(b) for b in bodies]
    for r in requests[:200]:  # warm: connections, caches
        gateway.decide(r)
    gateway.warm()
    latency = np.empty(len(requests))
    while time.time() < start:
        time.sleep(0.001)
    t0 = time.perf_counter()
    for i, r in enumerate(requests):
        due = t0 + i / rate
        while (now := time.perf_counter()) < due:
            if due - now > 0.0005:
                time.sleep(due - now - 0.0003)
        gateway.decide(r)
        latency[i] = time.perf_counter() - due
    q.put((latency, time.perf_counter() - t0))


def run_inprocess(mode: str, store: str, bodies: list[dict], rate: float, workers: int) -> dict:
    q = mp.get_context("fork").Queue()
    start = time.time() + 3
    procs = [mp.get_context("fork").Process(target=_inprocess_worker,
                                            args=(mode, store, bodies[w::workers], rate / workers, start, q))
             for w in range(workers)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    latency = np.concatenate([r[0] for r in results])
    return _summary(latency, len(latency) / max(r[1] for r in results))


def run_http(store: str, bodies: list[dict], rate: float, workers: int, connections: int) -> dict:
    import httpx

    port = _free_port()
    token = secrets.token_hex(16)
    env = {**os.environ, "DISTILLGUARD_GATEWAY_TOKEN": token}
    server = subprocess.Popen([str(Path(sys.executable).parent / "distillguard"), "serve", "gateway", "--redis", REDIS_URL,
                               "--prefix", PREFIX, "--port", str(port), "--workers", str(workers)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", headers=headers).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        payloads = [json.dumps(b).encode() for b in bodies]
        latency = asyncio.run(_http_load(url, {**headers, "Content-Type": "application/json"}, payloads, rate,
                                         connections))
        return _summary(latency[0], len(payloads) / latency[1])
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _http_load(url, headers, payloads, rate, connections):
    import httpx

    latency = np.empty(len(payloads))
    queue: asyncio.Queue = asyncio.Queue()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        for p in payloads[:200]:
            (await client.post("/decide", content=p)).raise_for_status()
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def worker():
            while (item := await queue.get()) is not None:
                i, due = item
                r = await client.post("/decide", content=payloads[i])
                r.raise_for_status()
                latency[i] = loop.time() - due

        tasks = [asyncio.create_task(worker()) for _ in range(connections)]
        for i in range(len(payloads)):
            due = t0 + i / rate
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            queue.put_nowait((i, due))
        for _ in tasks:
            queue.put_nowait(None)
        await asyncio.gather(*tasks)
        return latency, loop.time() - t0


def _summary(latency: np.ndarray, achieved: float) -> dict:
    ms = latency * 1e3
    return {"requests": len(ms), "rate_achieved": round(achieved), "median_ms": round(float(np.median(ms)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "p999_ms": round(float(np.percentile(ms, 99.9)), 3)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", required=True, type=Path)
    ap.add_argument("--scan", required=True, type=Path, help="a scan of the world, whose verdicts are published")
    ap.add_argument("--out", type=Path, default=Path("/tmp/gateway-latency"))
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--mode", action="append", choices=["memory", "redis", "http"])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault(KEY_ENV, secrets.token_hex(32))
    import redis

    from distillguard.gateway.verdicts import publish, publish_redis

    store = str(args.out / "verdicts")
    publish(args.scan, store)
    client = redis.Redis.from_url(REDIS_URL)
    publish_redis(args.scan, client, PREFIX)
    bodies = load_requests(args.world, int(args.rate * args.seconds))
    results = {}
    for mode in args.mode or ["memory", "redis", "http"]:
        runs = []
        for _ in range(args.repeat):
            for key in client.scan_iter(match=PREFIX.replace("{", "\\{").replace("}", "\\}") + "[wd]:*", count=10000):
                client.delete(key)  # each run starts with empty windows
            runs.append(run_http(store, bodies, args.rate, args.workers, args.connections) if mode == "http"
                        else run_inprocess(mode, store, bodies, args.rate, args.workers))
            print(mode, runs[-1], flush=True)
        results[mode] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
