"""Decision latency at a fixed arrival rate, in the process and over HTTP.

    .venv/bin/python benchmarks/gateway_latency.py --world /tmp/gw/medium --scan /tmp/gw/medscan \
        --rate 2000 --seconds 30 --mode floor --mode memory --mode redis --mode http

Requests are the world's exchanges (prompts, parameters, addresses, the account's card),
sent open-loop: request i is due at start + i/rate whatever happened to the ones before,
and its latency is counted from when it was due, so a gateway that falls behind pays for
its queue (no coordinated omission). Modes:

  floor   the same loop deciding nothing: what the machine's scheduling costs alone (a
          shared virtual machine wakes a sleeping process late now and then)
  memory  Gateway in this process, in-process state (the embedded default)
  redis   Gateway in this process, state shared through the machine's Redis on loopback
  http    `distillguard serve gateway --redis ...` (--http-workers processes) and a client
          in this process that keeps --connections keep-alive connections busy

In-process modes run --workers processes, each taking every workers-th request (a proxy's
workers); all share Redis in the redis mode. Everything, the client included, runs on the
same machine. Figures: median, p99, p99.9 in ms, and the rate achieved, each the median
of --repeat runs; written to OUT/latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import secrets
import socket
import subprocess
import sys
import time
from collections import deque
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
    decide = (lambda r: None) if mode == "floor" else gateway.decide
    latency = np.empty(len(requests))
    while time.time() < start:
        time.sleep(0.001)
    t0 = time.perf_counter()
    for i, r in enumerate(requests):
        due = t0 + i / rate
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)  # idle as a server is between requests: no spinning on a shared core
        decide(r)
        latency[i] = time.perf_counter() - due
    q.put((latency, time.perf_counter() - t0))
    gateway.close()


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
        gc.collect()
        gc.freeze()  # the client's own collections would count as the gateway's latency
        latency = asyncio.run(_http_load(port, token, payloads, rate, connections))
        return _summary(latency[0], len(payloads) / latency[1])
    finally:
        server.terminate()
        server.wait(timeout=30)


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the load generator: one request at a time, the
    reply read by its Content-Length. Hand-written rather than an HTTP client library,
    whose per-request cost (~0.3 ms of CPU in httpx) would take the server's cores."""

    def __init__(self, done, lost):
        self.done = done  # called with (the status, the body) when a reply is whole
        self.lost = lost  # called if the server closes the connection
        self.buffer = b""
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.lost(exc)

    def data_received(self, data):
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end].decode("latin-1").split("\r\n")
        length = next(int(h.split(":", 1)[1]) for h in head if h.lower().startswith("content-length:"))
        if len(self.buffer) < head_end + 4 + length:
            return
        body, self.buffer = self.buffer[head_end + 4:head_end + 4 + length], self.buffer[head_end + 4 + length:]
        self.done(int(head[0].split()[1]), body)


async def _http_load(port, token, payloads, rate, connections):
    """Open loop: request i is due at t0 + i/rate and waits for a free connection if every
    one is busy; its latency runs from when it was due to its whole reply."""
    loop = asyncio.get_running_loop()
    requests = [(f"POST /decide HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(p)}\r\n\r\n").encode() + p
                for p in payloads]
    latency = np.full(len(payloads), np.nan)
    waiting: deque[int] = deque()  # due requests without a connection yet
    idle: deque = deque()  # used in turn, so that none sits idle long enough to be closed
    finished = loop.create_future()
    t0 = 0.0
    count = {"done": 0}

    def make(conn_state):
        def done(status, body):
            i = conn_state["i"]
            if status != 200:
                if not finished.done():
                    finished.set_exception(RuntimeError(f"/decide answered {status}: {body[:200]!r}"))
                return
            if i >= 0:
                latency[i] = loop.time() - (t0 + i / rate)
                count["done"] += 1
                if count["done"] == len(payloads) and not finished.done():
                    finished.set_result(None)
            send(conn_state)
        return done

    def send(conn_state):
        if waiting:
            conn_state["i"] = i = waiting.popleft()
            conn_state["proto"].transport.write(requests[i])
        else:
            idle.append(conn_state)

    def lost(exc):
        if not finished.done():
            finished.set_exception(RuntimeError(f"the gateway closed a connection: {exc}"))

    conns = []
    for _ in range(connections):
        state = {"i": -1}
        _, proto = await loop.create_connection(lambda st=state: _Connection(make(st), lost), "127.0.0.1", port)
        state["proto"] = proto
        conns.append(state)
    for state in conns:  # warm: each connection answers once
        warm = loop.create_future()
        state["proto"].done = lambda status, body, w=warm: w.set_result(status)
        state["proto"].transport.write(requests[0])
        if await warm != 200:
            raise RuntimeError("the gateway refused the warm-up request")
        state["proto"].done = make(state)
        idle.append(state)
    t0 = loop.time()
    for i in range(len(payloads)):
        if (wait := t0 + i / rate - loop.time()) > 0:
            await asyncio.sleep(wait)
        waiting.append(i)
        if idle:
            send(idle.popleft())
    await finished
    for state in conns:
        state["proto"].lost = lambda exc: None
        state["proto"].transport.close()
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
    ap.add_argument("--workers", type=int, default=1, help="processes deciding, in the in-process modes")
    ap.add_argument("--http-workers", type=int, default=2, help="server processes, in the http mode")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--mode", action="append", choices=["floor", "memory", "redis", "http"])
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
    for mode in args.mode or ["floor", "memory", "redis", "http"]:
        runs = []
        for _ in range(args.repeat):
            for key in client.scan_iter(match=PREFIX.replace("{", "\\{").replace("}", "\\}") + "[wd]:*", count=10000):
                client.delete(key)  # each run starts with empty windows
            runs.append(run_http(store, bodies, args.rate, args.http_workers, args.connections) if mode == "http"
                        else run_inprocess(mode, store, bodies, args.rate, args.workers))
            print(mode, runs[-1], flush=True)
        results[mode] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        results[mode]["runs"] = runs
    report = {"rate": args.rate, "seconds": args.seconds, "workers": args.workers, "http_workers": args.http_workers,
              "connections": args.connections, "cores": os.cpu_count(), "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({m: {k: v for k, v in r.items() if k != "runs"} for m, r in results.items()}, indent=2))


if __name__ == "__main__":
    main()
