"""The gateway over HTTP: `distillguard serve gateway`.

  POST /decide   a request (gateway/request.py fields) as a JSON object -> its decision
                 (Decision.to_dict()); 422 {"error": ...} naming the field when malformed
  GET  /health   200 while the gateway decides; 503 when its state is unavailable and it
                 fails closed (every request would be throttled: take the replica out)
  GET  /metrics  Prometheus text

/decide and /health need `Authorization: Bearer <token>`. /metrics does not, so that a
Prometheus scraper needs no secret: it shows counts per decision and per policy reason
code, latencies and the verdict version, never a request's content or an account.
The service speaks plain HTTP and listens on loopback by default: put TLS in front of it.

`--workers N` starts N processes, each building its app with `app_from_env` from these
environment variables (the CLI sets them; the indicator key is DISTILLGUARD_INDICATOR_KEY).
Each worker has its own /metrics counts, and a scrape reaches one of them: to count every
decision, run one worker per container behind a load balancer and scrape each.

  DISTILLGUARD_GATEWAY_TOKEN     the bearer token (at least 16 characters)
  DISTILLGUARD_GATEWAY_VERDICTS  a folder store of published verdicts (in-process state)
  DISTILLGUARD_GATEWAY_REDIS     a Redis URL (shared state; wins over the folder store)
  DISTILLGUARD_GATEWAY_PREFIX    the Redis key prefix ({dg}: by default)
  DISTILLGUARD_GATEWAY_POLICY    a policy file (the shipped policy.yaml by default)
  DISTILLGUARD_GATEWAY_FAIL      open or closed: what to decide while the state is unavailable
  DISTILLGUARD_GATEWAY_LOG_DIR   the decision log's folder (no log when unset)
"""

from __future__ import annotations

import contextlib
import hmac
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool

from distillguard.gateway.decide import STATE_UNAVAILABLE, Gateway
from distillguard.gateway.policy import DECISIONS
from distillguard.gateway.request import BadRequest, DecisionRequest

TOKEN_ENV = "DISTILLGUARD_GATEWAY_TOKEN"
MIN_TOKEN_CHARS = 16
ENV = {name: f"DISTILLGUARD_GATEWAY_{name.upper()}" for name in ("verdicts", "redis", "prefix", "policy", "fail",
                                                                   "log_dir")}
# A request body larger than this is refused unread (a prompt is cut to a scan's window anyway).
MAX_BODY_BYTES = 4 << 20
# A decision takes tens of microseconds in the process, milliseconds with Redis.
LATENCY_BUCKETS = (50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3)


class MissingToken(ValueError):
    pass


def gateway_token() -> str:
    """The bearer token, from the environment; refuses a missing or short one."""
    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < MIN_TOKEN_CHARS:
        raise MissingToken(f"set {TOKEN_ENV} to a secret of at least {MIN_TOKEN_CHARS} characters (callers send "
                           f"it as Authorization: Bearer ...); e.g. export {TOKEN_ENV}=$(python3 -c "
                           "'import secrets; print(secrets.token_hex(32))')")
    return token


class _Metrics:
    def __init__(self, gateway: Gateway):
        self.registry = CollectorRegistry(auto_describe=True)
        decisions = Counter("distillguard_gateway_decisions", "Decisions made, by decision.", ["decision"],
                            registry=self.registry)
        reasons = Counter("distillguard_gateway_reasons", "Reasons given, by policy reason code.", ["reason"],
                          registry=self.registry)
        # Labelled only with values known in advance (DECISIONS, the policy's codes): a label
        # from request data would let any caller grow the scrape without bound.
        self.decisions = {d: decisions.labels(d) for d in DECISIONS}
        self.reasons = {code: reasons.labels(code) for code in
                        (*(r.code for r in gateway.policy.rules), *STATE_UNAVAILABLE.values())}
        self.seconds = Histogram("distillguard_gateway_decision_seconds", "Time to decide one request.",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.state_failures = Counter("distillguard_gateway_state_failures",
                                      "Decisions made without the shared state (it was unavailable).",
                                      registry=self.registry)
        self.state_up = Gauge("distillguard_gateway_state_up", "1 when the shared state answered the scrape's probe.",
                              registry=self.registry)
        self.verdict_info = Gauge("distillguard_gateway_verdict_info", "The verdict and policy versions in force.",
                                  ["verdict_version", "policy_version"], registry=self.registry)

    def count(self, decision, seconds: float) -> None:
        self.seconds.observe(seconds)
        self.decisions[decision.decision].inc()
        for code in decision.reasons:
            if code in self.reasons:
                self.reasons[code].inc()
        if decision.state != "ok":
            self.state_failures.inc()


def create_app(gateway: Gateway, *, token: str):
    """The HTTP service around a gateway (an ASGI app); the gateway is closed when the
    server stops. FastAPI serves /health and /metrics; /decide, the hot path, is a bare
    ASGI endpoint in front of it (_Decide)."""
    expected = token.encode()
    metrics = _Metrics(gateway)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # The intent model loads on first use (~0.4 s): here, not in the first caller's latency.
        await run_in_threadpool(gateway.warm)
        yield
        gateway.close()

    api = FastAPI(title="distillguard gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    def unauthorized(request: Request) -> JSONResponse | None:
        if _authorized(request.headers.get("authorization", "").encode("latin-1"), expected):
            return None
        return JSONResponse(*_UNAUTHORIZED)

    @api.get("/health")
    def health(request: Request):
        if (refused := unauthorized(request)) is not None:
            return refused
        state, version = gateway.state.probe()
        refusing = state != "ok" and gateway.fail == "closed"
        return JSONResponse({"status": "unavailable" if refusing else "ok", "verdict_version": version,
                             "policy_version": gateway.policy.version, "state": state, "fail": gateway.fail},
                            status_code=503 if refusing else 200)

    @api.get("/metrics")
    def prometheus():
        state, version = gateway.state.probe()
        metrics.state_up.set(1 if state == "ok" else 0)
        metrics.verdict_info.clear()
        metrics.verdict_info.labels(version or "", gateway.policy.version).set(1)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return _Decide(gateway, metrics, expected, api)


_UNAUTHORIZED = ({"error": "missing or wrong bearer token"}, 401, {"WWW-Authenticate": "Bearer"})


def _authorized(header: bytes, expected: bytes) -> bool:
    scheme, _, given = header.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), expected)


class _Decide:
    """POST /decide as a bare ASGI endpoint; every other path goes to the FastAPI app.

    Measured on 2 cores: FastAPI's middleware, request and response objects cost ~200 us
    a request, more than deciding does (~100 us), and cut the rate one worker sustains
    from ~2,800 to ~1,800 a second (docs/benchmarks.md). The endpoint does only what
    /decide needs: the token, a bounded body, the decision, the metrics."""

    def __init__(self, gateway: Gateway, metrics: _Metrics, expected: bytes, api: FastAPI):
        self.gateway, self.metrics, self.expected, self.api = gateway, metrics, expected, api

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/decide":
            return await self.api(scope, receive, send)
        if scope["method"] != "POST":
            return await _respond(send, {"error": "use POST"}, 405, {"Allow": "POST"})
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        if not _authorized(auth, self.expected):
            return await _respond(send, *_UNAUTHORIZED)
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY_BYTES:
                return await _respond(send, {"error": f"the body is over {MAX_BODY_BYTES} bytes"}, 413)
        try:
            parsed = DecisionRequest.from_dict(json.loads(body))
        except (ValueError, RecursionError) as e:  # BadRequest names the field; bad JSON is not echoed
            return await _respond(send, {"error": str(e) if isinstance(e, BadRequest)
                                         else "the body is not valid JSON"}, 422)
        started = time.perf_counter()
        # Deciding is a fraction of a millisecond of CPU, on the loop: a thread would only add
        # a hand-off and GIL contention (RE2 releases the GIL on every search). A state that
        # waits on Redis for each request goes to a thread, so the loop keeps serving meanwhile.
        decision = (await run_in_threadpool(self.gateway.decide, parsed) if self.gateway.state.blocking
                    else self.gateway.decide(parsed))
        self.metrics.count(decision, time.perf_counter() - started)
        await _respond(send, decision.to_dict())


async def _respond(send, payload: dict, status: int = 200, headers: dict | None = None) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def gateway_from_env() -> Gateway:
    """The gateway the DISTILLGUARD_GATEWAY_* variables describe."""
    get = {name: os.environ.get(var) or None for name, var in ENV.items()}
    return Gateway.open(verdicts=get["verdicts"], redis_url=get["redis"], policy=get["policy"],
                        fail=get["fail"] or "open", log_dir=get["log_dir"], prefix=get["prefix"] or "{dg}:")


def app_from_env():
    """The app of one worker process (uvicorn's factory for `--workers N`)."""
    token = gateway_token()
    return create_app(gateway_from_env(), token=token)


def serve_workers(host: str, port: int, workers: int) -> int:
    """Run `workers` processes of app_from_env until a signal stops them; the exit status.

    Each worker listens on a socket of its own bound with SO_REUSEPORT, so the kernel
    spreads connections evenly over them. uvicorn's own --workers share one socket, and the
    worker that wakes first accepts a whole burst: measured, all 64 keep-alive connections
    of a client went to one of two workers, which then did all the work."""
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_worker, args=(host, port), name=f"distillguard-gateway-{i}", daemon=False)
             for i in range(workers)]
    for proc in procs:
        proc.start()

    def stop(signum, frame):
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn shuts down gracefully, closing the gateway

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # One worker ending stops them all: a supervisor (systemd, Kubernetes) restarts the
    # service whole rather than run it short of a worker.
    multiprocessing.connection.wait([proc.sentinel for proc in procs])
    stop(None, None)
    for proc in procs:
        proc.join()
    stopped = (0, -signal.SIGTERM, -signal.SIGINT)  # a worker that a signal stopped ended well
    return 0 if all(proc.exitcode in stopped for proc in procs) else 1


def _worker(host: str, port: int) -> None:
    import uvicorn

    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    # No access log: the decision log records every decision, and a line per request costs
    # more than the decision at thousands a second.
    config = uvicorn.Config("distillguard.gateway.service:app_from_env", factory=True, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
