"""The HTTP service (`distillguard serve gateway`) and `distillguard publish`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from distillguard.cli import app as cli
from distillguard.gateway.decide import Gateway
from distillguard.gateway.log import DecisionLog
from distillguard.gateway.policy import default_policy
from distillguard.gateway.service import TOKEN_ENV, create_app
from distillguard.gateway.state import MemoryState, RedisState
from distillguard.gateway.verdicts import AccountVerdict, VerdictTable, current_version, publish, publish_redis
from distillguard.verdicts.keyed import indicator_key

TOKEN = "service-test-token-not-a-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VERSION = "20260101T000000Z-servicetest"
SUSPENDED = "acct-suspended"
CLOSED_PORT = "redis://127.0.0.1:1/0"  # nothing listens there: the state is unavailable


def _gateway(tmp_path, state=None, fail="open") -> Gateway:
    policy = default_policy()
    if state is None:
        state = MemoryState(policy.windows, link_kinds=policy.link_identifiers)
        state.use(VerdictTable(version=VERSION, key_id="test", identifiers={}, accounts={
            SUSPENDED: AccountVerdict("suspend", "campaign-a", "suspend.core", ("linked.payment",))}))
    return Gateway(policy, state, key=indicator_key(), fail=fail, decision_log=DecisionLog(tmp_path / "log"))


@pytest.fixture
def gateway(tmp_path):
    return _gateway(tmp_path)


@pytest.fixture
def client(gateway):
    with TestClient(create_app(gateway, token=TOKEN)) as c:
        yield c


def _unreachable(tmp_path, fail):
    policy = default_policy()
    state = RedisState.connect(CLOSED_PORT, policy.windows, key=indicator_key(),
                               prefix=f"{{dgtest-{uuid.uuid4().hex[:12]}}}:")
    return _gateway(tmp_path, state, fail)


def _counts(text: str, metric: str, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == metric}


def test_a_suspended_account_is_blocked_and_an_unknown_one_allowed(client, gateway):
    blocked = client.post("/decide", json={"account_id": SUSPENDED, "prompt": "hello", "request_id": "r1"},
                          headers=AUTH)
    assert blocked.status_code == 200
    body = blocked.json()
    assert (body["decision"], body["reasons"], body["campaign"]) == ("block", ["gate.block.suspended"], "campaign-a")
    assert (body["verdict_version"], body["request_id"], body["state"]) == (VERSION, "r1", "ok")
    allowed = client.post("/decide", json={"account_id": "acct-unknown", "prompt": "hello"}, headers=AUTH).json()
    assert (allowed["decision"], allowed["reasons"], allowed["degrade"]) == ("allow", [], None)
    assert gateway.decision_log.rows == 2


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-of-some-length"},
                                     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}])
def test_decide_and_health_need_the_token(client, gateway, headers):
    assert client.post("/decide", json={"account_id": SUSPENDED}, headers=headers).status_code == 401
    assert client.get("/health", headers=headers).status_code == 401
    assert gateway.decision_log.rows == 0 and sum(gateway.counts.values()) == 0


def test_metrics_count_decisions_and_reasons_without_a_token(client):
    for account in (SUSPENDED, SUSPENDED, "a1", "a2", "a3"):
        client.post("/decide", json={"account_id": account}, headers=AUTH)
    text = client.get("/metrics").text
    decisions = _counts(text, "distillguard_gateway_decisions_total", "decision")
    assert decisions == {"block": 2, "step_up": 0, "throttle": 0, "degrade": 0, "mark": 0, "allow": 3}
    reasons = _counts(text, "distillguard_gateway_reasons_total", "reason")
    assert reasons["gate.block.suspended"] == 2 and sum(reasons.values()) == 2
    assert set(reasons) == {r.code for r in default_policy().rules} | {
        "gate.allow.state_unavailable", "gate.throttle.state_unavailable"}
    assert _counts(text, "distillguard_gateway_verdict_info", "verdict_version") == {VERSION: 1}
    seconds = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert seconds["distillguard_gateway_decision_seconds_count"] == 5
    assert "a1" not in text and SUSPENDED not in text  # no label from request data


@pytest.mark.parametrize("body, field", [
    ({"account_id": "a", "n": "three"}, "'n'"),
    ({"account_id": "a", "prompt": "x", "secret_field<script>": 1}, "unknown field"),
    ({"prompt": "no account"}, "'account_id'"),
    (["account_id"], "JSON object"),
])
def test_a_malformed_request_is_refused_naming_the_field_and_never_decided(client, gateway, body, field):
    response = client.post("/decide", json=body, headers=AUTH)
    assert response.status_code == 422
    assert field in response.json()["error"]
    assert "no account" not in response.text  # request text is not echoed
    assert gateway.decision_log.rows == 0 and sum(gateway.counts.values()) == 0


def test_a_body_that_is_not_json_is_refused_without_echoing_it(client, gateway):
    response = client.post("/decide", content=b'{"account_id": "a", "prompt": "leaked text', headers=AUTH)
    assert response.status_code == 422 and "leaked" not in response.text
    assert gateway.decision_log.rows == 0


def test_health_reports_the_versions(client):
    health = client.get("/health", headers=AUTH)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "verdict_version": VERSION, "policy_version": default_policy().version,
                             "state": "ok", "fail": "open"}


def test_without_its_state_a_closed_gateway_throttles_and_reports_unhealthy(tmp_path):
    gateway = _unreachable(tmp_path, "closed")
    with TestClient(create_app(gateway, token=TOKEN)) as client:
        decision = client.post("/decide", json={"account_id": "a1"}, headers=AUTH).json()
        assert (decision["decision"], decision["reasons"]) == ("throttle", ["gate.throttle.state_unavailable"])
        assert decision["state"] == "unavailable" and decision["retry_after"] == default_policy().retry_after_seconds
        health = client.get("/health", headers=AUTH)
        assert health.status_code == 503 and health.json()["state"] == "unavailable"
        text = client.get("/metrics").text
    assert _counts(text, "distillguard_gateway_reasons_total", "reason")["gate.throttle.state_unavailable"] == 1
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["distillguard_gateway_state_failures_total"] == 1 and samples["distillguard_gateway_state_up"] == 0


def test_without_its_state_an_open_gateway_allows_and_stays_in_service(tmp_path):
    gateway = _unreachable(tmp_path, "open")
    with TestClient(create_app(gateway, token=TOKEN)) as client:
        decision = client.post("/decide", json={"account_id": "a1"}, headers=AUTH).json()
        assert (decision["decision"], decision["reasons"]) == ("allow", ["gate.allow.state_unavailable"])
        health = client.get("/health", headers=AUTH)
        assert health.status_code == 200
        assert (health.json()["status"], health.json()["state"]) == ("ok", "unavailable")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_gateway_serves_published_verdicts_over_http_and_stops_cleanly(scanned, tmp_path):
    store = tmp_path / "verdicts"
    version = publish(scanned.scan_dir, store)
    actions = pq.read_table(scanned.scan_dir / "accounts.parquet", columns=["account_id", "action"]).to_pydict()
    suspended = next(a for a, act in zip(actions["account_id"], actions["action"]) if act == "suspend")
    port = _free_port()
    env = {**os.environ, TOKEN_ENV: TOKEN}
    server = subprocess.Popen(
        [sys.executable, "-m", "distillguard.cli", "serve", "gateway", "--verdicts", str(store),
         "--log-dir", str(tmp_path / "log"), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{url}/health", headers=AUTH, timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read().decode()
                time.sleep(0.1)
        assert health.status_code == 200 and health.json()["verdict_version"] == version
        decision = httpx.post(f"{url}/decide", json={"account_id": suspended}, headers=AUTH, timeout=5).json()
        assert (decision["decision"], decision["account_id"]) == ("block", suspended)
        assert httpx.post(f"{url}/decide", json={"account_id": "x"}, timeout=5).status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=10)[0].decode()
    # uvicorn shuts down gracefully, then re-raises the signal: the status says SIGTERM
    assert server.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in output, output
    logged = b"".join(p.read_bytes() for p in (tmp_path / "log").iterdir()).splitlines()
    assert len(logged) == 1 and decision["decision_id"].encode() in logged[0]


def test_serve_gateway_refuses_to_start_without_a_token(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    result = CliRunner().invoke(cli, ["serve", "gateway"])
    assert result.exit_code == 2 and TOKEN_ENV in result.output
    monkeypatch.setenv(TOKEN_ENV, "short")
    assert CliRunner().invoke(cli, ["serve", "gateway"]).exit_code == 2


def _url(client) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}"


def test_publish_puts_one_version_in_a_folder_and_in_redis(scanned, tmp_path, redis_client, prefix):
    result = CliRunner().invoke(cli, ["publish", str(scanned.scan_dir), "--to", str(tmp_path / "store"),
                                      "--redis", _url(redis_client), "--prefix", prefix])
    assert result.exit_code == 0, result.output
    version = current_version(tmp_path / "store")
    assert version and version in result.output
    assert redis_client.get(f"{prefix}verdicts:current").decode() == version


@pytest.mark.parametrize("scan, args, complaint", [
    ("scan", [], "give --to"),
    ("empty", ["--to", "STORE"], "not a scan folder"),
    ("scan", ["--redis", CLOSED_PORT], "connecting to 127.0.0.1:1"),
])
def test_publish_refuses_in_one_line(scanned, tmp_path, scan, args, complaint):
    (tmp_path / "empty").mkdir()
    folder = scanned.scan_dir if scan == "scan" else tmp_path / "empty"
    args = [str(tmp_path / "store") if a == "STORE" else a for a in args]
    result = CliRunner().invoke(cli, ["publish", str(folder), *args])
    assert result.exit_code == 2 and complaint in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output and not (tmp_path / "store").exists()


def test_workers_share_the_connections_and_redis_and_log_every_decision(scanned, tmp_path, redis_client, prefix):
    """--workers 2: each worker listens on its own SO_REUSEPORT socket, so separate
    connections reach both; both read the verdicts from Redis; a SIGTERM stops them all."""
    publish_redis(scanned.scan_dir, redis_client, prefix)
    actions = pq.read_table(scanned.scan_dir / "accounts.parquet", columns=["account_id", "action"]).to_pydict()
    suspended = next(a for a, act in zip(actions["account_id"], actions["action"]) if act == "suspend")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "distillguard.cli", "serve", "gateway", "--redis", _url(redis_client), "--prefix", prefix,
         "--log-dir", str(tmp_path / "log"), "--port", str(port), "--workers", "2"],
        env={**os.environ, TOKEN_ENV: TOKEN}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/health", headers=AUTH, timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read().decode()
                time.sleep(0.2)
        decisions = []
        for _ in range(40):  # a connection each: 40 chances for the kernel to pick either worker
            with httpx.Client(headers=AUTH, timeout=10) as c:
                decisions.append(c.post(f"{url}/decide", json={"account_id": suspended}).json())
        assert {d["decision"] for d in decisions} == {"block"}
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()
    assert server.returncode == 0, output
    logs = list((tmp_path / "log").iterdir())
    assert len({p.name.rsplit("-", 3)[1] for p in logs}) == 2  # decisions-<host>-<pid>-<start>-<n>: both served
    logged = {json.loads(line)["decision_id"] for p in logs for line in p.read_text().splitlines()}
    assert logged == {d["decision_id"] for d in decisions}
