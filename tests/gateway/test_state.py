"""The shared state: windows count what they should, in memory and in Redis alike, and a
Redis that stops mid-run fails the way the operator chose, then recovers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from distillguard.gateway.decide import Gateway
from distillguard.gateway.policy import Window, parse_policy
from distillguard.gateway.request import DecisionRequest
from distillguard.gateway.state import MemoryState, RedisState, StateUnavailable
from distillguard.gateway.verdicts import AccountVerdict, VerdictTable

KEY = b"gateway-test-key-not-a-secret"
WINDOWS = (Window("account_requests_1m", "account", 60, 6), Window("campaign_requests_1m", "campaign", 60, 6),
           Window("ip_accounts_1h", "client_ip", 3600, 12, distinct="account"))
T0 = 1_800_000_000.0  # a multiple of every bucket's length
TABLE = VerdictTable(version="v1", key_id="k", identifiers={"payment:card-hash": "campaign-a"}, accounts={
    "member": AccountVerdict("challenge", "campaign-a", "action.challenge.core", ("intent.reasoning",))})


def _keys(account, ip=None):
    return {"account": account, "api_key": None, "client_ip": ip, "asn": None, "payment": None}


def _publish_table(client, prefix):
    """TABLE, as gateway/verdicts.py publish_redis lays it out."""
    base = f"{prefix}verdicts:{TABLE.version}"
    client.hset(f"{base}:accounts", mapping={a: v.packed() for a, v in TABLE.accounts.items()})
    client.hset(f"{base}:identifiers", mapping=TABLE.identifiers)
    client.set(f"{prefix}verdicts:current", TABLE.version)


@pytest.fixture(params=["memory", "redis"])
def state(request):
    if request.param == "memory":
        s = MemoryState(WINDOWS)
        s.use(TABLE)
        return s
    client, prefix = request.getfixturevalue("redis_client"), request.getfixturevalue("prefix")
    _publish_table(client, prefix)
    return RedisState(client, WINDOWS, key=KEY, prefix=prefix)


def test_requests_are_counted_within_the_window_and_slide_out_after_it(state):
    counts = [state.observe(T0 + i, _keys("a"), []).counts["account_requests_1m"] for i in range(5)]
    assert counts == [1, 2, 3, 4, 5]
    # 10 s buckets: at T0+59 all five are in the window; at T0+60 the bucket [T0, T0+10) is out.
    assert state.observe(T0 + 59, _keys("a"), []).counts["account_requests_1m"] == 6
    assert state.observe(T0 + 60, _keys("a"), []).counts["account_requests_1m"] == 2
    assert state.observe(T0 + 60, _keys("b"), []).counts["account_requests_1m"] == 1


def test_distinct_accounts_behind_one_address_are_counted_once_each(state):
    for i in range(30):
        seen = state.observe(T0 + i, _keys(f"user-{i % 7}", ip="10.0.0.1"), [])
    assert seen.counts["ip_accounts_1h"] == 7
    assert state.observe(T0 + 31, _keys("other", ip="10.0.0.2"), []).counts["ip_accounts_1h"] == 1
    # An hour later (12 buckets of 300 s) only the accounts seen again count.
    assert state.observe(T0 + 3600 + 29, _keys("user-1", ip="10.0.0.1"), []).counts["ip_accounts_1h"] == 1


def test_the_verdict_and_the_campaign_window_come_with_the_same_call(state):
    member = state.observe(T0, _keys("member"), [])
    assert (member.version, member.verdict.action, member.campaign) == ("v1", "challenge", "campaign-a")
    linked = state.observe(T0 + 1, _keys("newcomer"), ["email:unknown", "payment:card-hash"])
    assert (linked.verdict.action, linked.linked_campaign, linked.campaign) == ("none", "campaign-a", "campaign-a")
    assert linked.counts["campaign_requests_1m"] == 2  # the member's request and the newcomer's
    stranger = state.observe(T0 + 2, _keys("stranger"), [])
    assert (stranger.campaign, stranger.counts["campaign_requests_1m"]) == (None, 0)


def test_memory_stays_bounded_by_one_window_of_traffic():
    s = MemoryState(WINDOWS)
    for i in range(5_000):  # a new account and address every request, for 5,000 s
        s.observe(T0 + i, _keys(f"acct-{i}", ip=f"10.{i // 250}.{i % 250}.1"), [])
    # What is held is what the windows still see (a bucket more at most): the last minute's
    # accounts, the last hour's addresses with their one account each; not 5,000 s of them.
    assert s.size() <= (60 + 10) + 2 * (3600 + 300)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_redis():
    """A Redis server of this test's own, which it may stop and start."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()

    def start():
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return proc
            time.sleep(0.01)
        proc.kill()
        raise RuntimeError("redis-server did not start")

    servers = [start()]
    yield f"redis://127.0.0.1:{port}/0", servers, start
    for proc in servers:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("fail, refused_as", [("open", "allow"), ("closed", "throttle")])
def test_a_redis_stopped_mid_run_fails_as_configured_and_recovers(private_redis, fail, refused_as, monkeypatch):
    url, servers, start = private_redis
    policy = parse_policy(b"""
windows:
  account_requests_1m: {per: account, seconds: 60, buckets: 6}
rules:
  - {code: gate.block.suspended, decision: block, when: "action == 'suspend'", about: x}
""", "test")
    state = RedisState.connect(url, policy.windows, key=KEY, prefix="{dg}:")
    state.retry_after = 0.2
    gateway = Gateway(policy, state, key=KEY, fail=fail)
    _publish_suspended(state.client)
    ask = lambda: gateway.decide(DecisionRequest(account_id="suspended", prompt="hello"))  # noqa: E731
    assert ask().decision == "block"

    servers[0].kill()
    servers[0].wait()
    down = [ask() for _ in range(20)]
    assert {(d.decision, d.reasons, d.state) for d in down} == \
        {(refused_as, (f"gate.{refused_as}.state_unavailable",), "unavailable")}
    assert gateway.state_failures == 20
    # After a failure Redis is left alone for retry_after: no request waits on a timeout.
    with pytest.raises(StateUnavailable, match="not asked again"):
        state.observe(T0, _keys("x"), [])

    servers.append(start())  # back, empty (it keeps nothing on disk): verdicts are published again
    _publish_suspended(state.client)
    time.sleep(state.retry_after)
    assert ask().decision == "block"


def _publish_suspended(client):
    client.hset("{dg}:verdicts:v1:accounts", "suspended",
                AccountVerdict("suspend", "campaign-a", "action.suspend.core_anchored", ()).packed())
    client.set("{dg}:verdicts:current", "v1")
