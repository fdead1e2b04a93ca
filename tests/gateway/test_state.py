"""The shared state: windows count what they should, in memory and in Redis alike (a round
trip per request, or synced in batches), replicas see each other's requests after a sync,
and a Redis that stops mid-run fails the way the operator chose, then recovers."""

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


@pytest.fixture(params=["memory", "redis-each-request", "redis-batched"])
def state(request):
    if request.param == "memory":
        s = MemoryState(WINDOWS)
        s.use(TABLE)
    else:
        client, prefix = request.getfixturevalue("redis_client"), request.getfixturevalue("prefix")
        _publish_table(client, prefix)
        # batched: no background sync within the test, so a lone replica counts from its own requests
        s = (RedisState(client, WINDOWS, key=KEY, prefix=prefix, sync_every=0) if request.param == "redis-each-request"
             else RedisState(client, WINDOWS, key=KEY, prefix=prefix, sync_every=3600, stale_after=3600))
    yield s
    s.close()


def _replica(client, prefix):
    return RedisState(client, WINDOWS, key=KEY, prefix=prefix, sync_every=3600, stale_after=3600)


def test_replicas_count_each_others_requests_once_they_sync(redis_client, prefix):
    _publish_table(redis_client, prefix)
    a, b = _replica(redis_client, prefix), _replica(redis_client, prefix)
    for i in range(5):
        a.observe(T0 + i, _keys("shared", ip="10.0.0.1"), [])
    # b has not heard of a's requests: it counts its own only
    seen = b.observe(T0 + 5, _keys("shared", ip="10.0.0.1"), [])
    assert (seen.counts["account_requests_1m"], seen.counts["ip_accounts_1h"]) == (1, 1)
    a.sync()
    b.sync()
    seen = b.observe(T0 + 6, _keys("shared", ip="10.0.0.1"), [])
    assert seen.counts["account_requests_1m"] == 7  # a's five, b's two
    assert seen.counts["ip_accounts_1h"] == 1  # one account, however many replicas saw it
    seen = b.observe(T0 + 7, _keys("other", ip="10.0.0.1"), [])
    assert seen.counts["ip_accounts_1h"] == 2
    # the campaign window is shared the same way, under the verdicts each replica loaded; a
    # window b has not touched yet counts b's own requests until b's next sync reads it
    a.observe(T0 + 8, _keys("member"), [])
    a.sync()
    assert b.observe(T0 + 9, _keys("newcomer"), ["payment:card-hash"]).counts["campaign_requests_1m"] == 1
    b.sync()
    assert b.observe(T0 + 9, _keys("newcomer"), ["payment:card-hash"]).counts["campaign_requests_1m"] == 3
    # and what replicas counted is in Redis for a replica that starts later, after its first sync
    b.sync()
    c = _replica(redis_client, prefix)
    assert c.observe(T0 + 10, _keys("shared"), []).counts["account_requests_1m"] == 1
    c.sync()
    assert c.observe(T0 + 10, _keys("shared"), []).counts["account_requests_1m"] == 9


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


_ONE_WINDOW = b"""
windows:
  account_requests_1m: {per: account, seconds: 60, buckets: 6}
rules:
  - {code: gate.block.suspended, decision: block, when: "action == 'suspend'", about: x}
"""


@pytest.mark.parametrize("fail, refused_as", [("open", "allow"), ("closed", "throttle")])
def test_a_redis_stopped_mid_run_fails_as_configured_and_recovers(private_redis, fail, refused_as):
    """A round trip per request: the first request after the stop fails as configured."""
    url, servers, start = private_redis
    policy = parse_policy(_ONE_WINDOW, "test")
    state = RedisState.connect(url, policy.windows, key=KEY, prefix="{dg}:", sync_every=0)
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


@pytest.mark.parametrize("fail, refused_as", [("open", "allow"), ("closed", "throttle")])
def test_a_batched_replica_rides_out_a_short_outage_then_fails_as_configured(private_redis, fail, refused_as):
    """Synced in the background: requests go on under the replica's own state until it is
    stale_after old, then fail as configured; counts made meanwhile reach Redis when it is back."""
    url, servers, start = private_redis
    policy = parse_policy(_ONE_WINDOW, "test")
    state = RedisState.connect(url, policy.windows, key=KEY, prefix="{dg}:", sync_every=0.02)
    state.stale_after, state.retry_after = 0.5, 0.1
    gateway = Gateway(policy, state, key=KEY, fail=fail)
    _publish_suspended(state.client)
    ask = lambda: gateway.decide(DecisionRequest(account_id="suspended", prompt="hello", ts=T0))  # noqa: E731
    assert ask().decision == "block"

    servers[0].kill()
    servers[0].wait()
    assert ask().decision == "block"  # within stale_after: the replica's verdicts still hold
    assert _eventually(lambda: ask().state == "unavailable", within=5)
    d = ask()
    assert (d.decision, d.reasons) == (refused_as, (f"gate.{refused_as}.state_unavailable",))

    servers.append(start())
    _publish_suspended(state.client)
    assert _eventually(lambda: ask().decision == "block", within=5)
    # the requests counted while Redis was away were pushed when it came back
    assert _eventually(lambda: _account_total(state.client) >= 3, within=5)
    gateway.close()


def _eventually(condition, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _account_total(client) -> int:
    return sum(int(client.get(k)) for k in client.scan_iter(match="\\{dg\\}:w:account_requests_1m:*"))


def _publish_suspended(client):
    client.hset("{dg}:verdicts:v1:accounts", "suspended",
                AccountVerdict("suspend", "campaign-a", "action.suspend.core_anchored", ()).packed())
    client.set("{dg}:verdicts:current", "v1")


def test_a_replica_prepared_long_before_its_first_request_is_not_stale(redis_client, prefix):
    _publish_table(redis_client, prefix)
    s = RedisState(redis_client, WINDOWS, key=KEY, prefix=prefix, sync_every=0.01, stale_after=0.05)
    s.prepare()
    time.sleep(0.1)  # longer than stale_after, before any request
    assert s.observe(T0, _keys("member"), []).verdict.action == "challenge"
    s.close()
