"""The gateway on a real scan's published verdicts: campaign members are stopped, a new
account on a campaign's card is challenged at its first request, everyone else is served,
and every decision is in the log with its reasons."""

from __future__ import annotations

import json
import threading

import pyarrow.parquet as pq
import pytest

from distillguard.gateway.decide import Gateway
from distillguard.gateway.log import DecisionLog
from distillguard.gateway.policy import default_policy
from distillguard.gateway.request import BadRequest, DecisionRequest
from distillguard.gateway.state import MemoryState, RedisState
from distillguard.gateway.verdicts import current_version, load, publish, publish_redis, verdict_tables
from distillguard.schema.decisions import DECISIONS
from distillguard.verdicts.keyed import indicator_key
from distillguard.verdicts.read import ScanDir

ELICIT = "Before answering, write out your complete internal chain of thought, every step."


@pytest.fixture(scope="module")
def store(scanned, tmp_path_factory):
    folder = tmp_path_factory.mktemp("verdicts")
    publish(scanned.scan_dir, folder)
    return folder


def _actions(scanned) -> dict[str, str]:
    t = pq.read_table(scanned.scan_dir / "accounts.parquet", columns=["account_id", "action"]).to_pydict()
    return dict(zip(t["account_id"], t["action"]))


def _requests(scanned):
    cell, people = scanned.groups["cell"], scanned.groups["people"][:20]
    return ([DecisionRequest(account_id=a, prompt=ELICIT, request_id=f"r-{a}") for a in cell]
            + [DecisionRequest(account_id=a, prompt="Write a short poem about my cat.") for a in people]
            + [DecisionRequest(account_id="cell-newcomer", prompt=ELICIT, payment_fingerprint="card-cell"),
               DecisionRequest(account_id="cell-newcomer-verified", prompt=ELICIT, payment_fingerprint="card-cell",
                               verified=True)])


def _check(decisions, scanned):
    actions = _actions(scanned)
    by_account = {d.account_id: d for d in decisions}
    expected = {"suspend": "block", "challenge": "step_up"}
    for a in scanned.groups["cell"]:
        assert by_account[a].decision == expected[actions[a]], a
        assert by_account[a].campaign is not None
    for a in scanned.groups["people"][:20]:
        assert (by_account[a].decision, by_account[a].reasons) == ("allow", ()), a
    newcomer = by_account["cell-newcomer"]
    assert (newcomer.decision, newcomer.reasons) == ("step_up", ("gate.step_up.campaign_identifier",))
    assert newcomer.campaign == by_account[scanned.groups["cell"][0]].campaign
    assert by_account["cell-newcomer-verified"].decision == "allow"


def test_published_verdicts_stop_the_campaign_and_its_new_accounts_only(scanned, store, tmp_path):
    assert {_actions(scanned)[a] for a in scanned.groups["cell"]} <= {"suspend", "challenge"}
    policy = default_policy()
    gateway = Gateway(policy, MemoryState(policy.windows, store, link_kinds=policy.link_identifiers),
                      key=indicator_key(), decision_log=DecisionLog(tmp_path / "log"))
    decisions = [gateway.decide(r) for r in _requests(scanned)]
    gateway.close()
    _check(decisions, scanned)
    assert {d.verdict_version for d in decisions} == {current_version(store)}

    lines = [json.loads(x) for f in sorted((tmp_path / "log").glob("*.jsonl")) for x in f.read_text().splitlines()]
    assert [x["decision_id"] for x in lines] == [d.decision_id for d in decisions]
    assert all(x["reasons"] == " ".join(d.reasons) and x["decision"] == d.decision for x, d in zip(lines, decisions))
    assert set(lines[0]) == {"v", *DECISIONS.names}
    assert not any(ELICIT in json.dumps(x) for x in lines)  # the log holds decisions, not prompts


def test_redis_holds_the_same_verdicts_and_decides_the_same(scanned, redis_client, prefix):
    assert publish_redis(scanned.scan_dir, redis_client, prefix) == verdict_tables(ScanDir(scanned.scan_dir))[0]
    policy = default_policy()
    gateway = Gateway(policy, RedisState(redis_client, policy.windows, key=indicator_key(), prefix=prefix),
                      key=indicator_key())
    _check([gateway.decide(r) for r in _requests(scanned)], scanned)


def test_a_version_is_published_once_and_the_pointer_moves_atomically(scanned, tmp_path):
    v1 = publish(scanned.scan_dir, tmp_path)
    assert publish(scanned.scan_dir, tmp_path) == v1 == current_version(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["CURRENT", v1])
    table = load(tmp_path, link_kinds=("payment",))
    assert table.version == v1 and all(k.startswith("payment:hmac-sha256:") for k in table.identifiers)


def test_the_decision_log_loses_nothing_under_concurrent_writers_and_rotation(tmp_path):
    log = DecisionLog(tmp_path, max_bytes=20_000)
    threads = [threading.Thread(target=lambda t=t: [log.write({"decision_id": f"{t}-{i}", "note": "\u00e9\u2028<x>"})
                                                    for i in range(500)]) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    log.close()
    files = sorted(tmp_path.glob("decisions-*.jsonl"))
    assert len(files) > 1 and all(f.stat().st_size <= 20_000 for f in files)
    rows = [json.loads(line) for f in files for line in f.read_bytes().decode("ascii").splitlines()]
    assert sorted(r["decision_id"] for r in rows) == sorted(f"{t}-{i}" for t in range(8) for i in range(500))
    assert log.rows == 4000


@pytest.mark.parametrize("body, complaint", [
    ({"prompt": "x"}, "'account_id' is required"),
    ({"account_id": "a", "n": "three"}, "'n' must be an integer"),
    ({"account_id": "a", "logprobs": 1}, "'logprobs' must be true or false"),
    ({"account_id": "a", "ts": float("nan")}, "'ts' must be a number"),
    ({"account_id": "a", "<script>": 1}, "unknown field"),
    ({"account_id": "a", "n": 0}, "n must be at least 1"),
])
def test_a_malformed_request_is_refused_naming_the_field(body, complaint):
    with pytest.raises(BadRequest, match=complaint):
        DecisionRequest.from_dict(body)
