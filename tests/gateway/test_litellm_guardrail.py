"""The LiteLLM proxy guardrail on real LiteLLM objects: refusals as the proxy's HTTP errors,
degraded requests and replies, marked replies, and a request's facts read from LiteLLM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import uuid
from pathlib import Path

import pytest

pytest.importorskip("litellm")
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # LiteLLM's bundled price map: no download

import litellm  # noqa: E402
from fastapi import HTTPException  # noqa: E402
from litellm.caching import DualCache  # noqa: E402
from litellm.proxy._types import UserAPIKeyAuth  # noqa: E402
from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices  # noqa: E402

from distillguard.gateway.decide import Gateway  # noqa: E402
from distillguard.gateway.degrade import summarize_reasoning  # noqa: E402
from distillguard.gateway.litellm_guardrail import NOTE_KEY, DistillGuardrail  # noqa: E402
from distillguard.gateway.log import DecisionLog  # noqa: E402
from distillguard.gateway.marking import MARK_KEY_ENV, TagCanary  # noqa: E402
from distillguard.gateway.policy import load_policy  # noqa: E402
from distillguard.gateway.state import MemoryState, RedisState  # noqa: E402
from distillguard.gateway.verdicts import AccountVerdict, VerdictTable  # noqa: E402
from distillguard.verdicts.keyed import indicator_key  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src" / "distillguard"
MARK_KEY = "litellm-guardrail-test-mark-key-not-a-secret"
SUSPENDED, CHALLENGED, MONITORED = "acct-suspended", "acct-challenged", "acct-monitored"
TRACE = ("First, restate the problem. We need x such that 3x + 4 = 19.\n\n"
         "Subtract four from both sides. That leaves 3x = 15.\n\n"
         "Divide by three! So x = 5.")
# The shipped policy's verdict rules, a degrade rule for monitored accounts and a low rate
# limit, so that every decision is reached by a few requests.
POLICY = """
windows:
  account_requests_1m: {per: account, seconds: 60, buckets: 6}
degrade: {reasoning: summary, logprobs: drop, max_n: 1}
retry_after_seconds: 17
rules:
  - {code: gate.block.suspended, decision: block, when: "action == 'suspend'", about: suspended}
  - {code: gate.step_up.challenged, decision: step_up, when: "action == 'challenge' and not verified",
     about: challenged}
  - {code: gate.mark.challenged_verified, decision: mark, when: "action == 'challenge' and verified",
     about: verified after a challenge}
  - {code: gate.degrade.monitored, decision: degrade, when: "action == 'monitor'", about: monitored}
  - {code: gate.throttle.account_rate, decision: throttle, when: "account_requests_1m > 3", about: busy}
"""


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Any connection off this machine fails the test: LiteLLM's mock responses and its
    bundled price map must need no network."""
    connect = socket.socket.connect

    def guarded(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network connection attempted to {address!r}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return load_policy(path)


@pytest.fixture
def gateway(tmp_path, policy):
    state = MemoryState(policy.windows)
    state.use(VerdictTable(version="20260101T000000Z-litellm", key_id="test", identifiers={}, accounts={
        SUSPENDED: AccountVerdict("suspend", "campaign-a", "suspend.core", ("linked.payment",)),
        CHALLENGED: AccountVerdict("challenge", "campaign-a", "challenge.edge", ("volume",)),
        MONITORED: AccountVerdict("monitor", None, "monitor.volume", ("volume",))}))
    gw = Gateway(policy, state, key=indicator_key(), decision_log=DecisionLog(tmp_path / "log"))
    yield gw
    gw.close()


@pytest.fixture
def guardrail(gateway, monkeypatch):
    monkeypatch.setenv(MARK_KEY_ENV, MARK_KEY)
    return DistillGuardrail(guardrail_name="distillguard", event_hook=["pre_call", "post_call"], default_on=True,
                            gateway=gateway)


def _user(account: str, **metadata) -> UserAPIKeyAuth:
    """A caller as LiteLLM's key auth hands it over: the key (LiteLLM hashes it), its user, and
    the key's metadata, which only the proxy's admin sets."""
    return UserAPIKeyAuth(api_key=f"sk-raw-secret-{account}", user_id=account, metadata=metadata)


def _chat(prompt: str = "Write a short poem about my cat.", **params) -> dict:
    return {"model": "gpt-4o-mini", "litellm_call_id": f"call-{uuid.uuid4().hex[:8]}",
            "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": prompt}],
            "metadata": {"requester_ip_address": "203.0.113.7"}, **params}


def _pre(guardrail, user, data):
    return asyncio.run(guardrail.async_pre_call_hook(user_api_key_dict=user, cache=DualCache(), data=data,
                                                     call_type="acompletion"))


def _refusal(guardrail, user, data) -> HTTPException:
    with pytest.raises(HTTPException) as raised:
        _pre(guardrail, user, data)
    return raised.value


def _complete(data: dict, mock_response, **params):
    """A real LiteLLM reply to the request as the hook left it (mock_response: no provider)."""
    messages = data["messages"]
    return asyncio.run(litellm.acompletion(model=data["model"], messages=messages, mock_response=mock_response,
                                           **params))


def _post(guardrail, user, data, response):
    return asyncio.run(guardrail.async_post_call_success_hook(data=data, user_api_key_dict=user, response=response))


def _stream(guardrail, user, data, chunks) -> list:
    async def run():
        async def upstream():
            for chunk in chunks:
                yield chunk
        return [c async for c in guardrail.async_post_call_streaming_iterator_hook(
            user_api_key_dict=user, response=upstream(), request_data=data)]
    return asyncio.run(run())


def _log_rows(gateway) -> list[dict]:
    return [json.loads(line) for line in gateway.decision_log.path.read_text().splitlines()]


def test_a_suspended_account_is_refused_with_403_naming_the_decision_and_its_reason(guardrail, gateway):
    data = _chat()
    refusal = _refusal(guardrail, _user(SUSPENDED), data)
    assert refusal.status_code == 403
    assert refusal.detail["decision"] == "block" and refusal.detail["reasons"] == ["gate.block.suspended"]
    row = _log_rows(gateway)[-1]
    assert (row["decision_id"], row["account_id"], row["request_id"]) == (
        refusal.detail["decision_id"], SUSPENDED, data["litellm_call_id"])


def test_a_challenged_account_must_verify_and_cannot_claim_it_in_its_own_request(guardrail):
    refusal = _refusal(guardrail, _user(CHALLENGED), _chat())
    assert (refusal.status_code, refusal.detail["decision"]) == (403, "step_up")
    assert refusal.detail["reasons"] == ["gate.step_up.challenged"] and "verif" in refusal.detail["error"].lower()
    # The request body's metadata is the client's: it cannot say it passed verification.
    forged = _chat(metadata={"distillguard_verified": True, "requester_ip_address": "203.0.113.7"})
    assert _refusal(guardrail, _user(CHALLENGED), forged).detail["decision"] == "step_up"


def test_a_verified_challenged_account_is_served_with_its_canary_in_the_reply(guardrail):
    user = _user(CHALLENGED, distillguard_verified=True)  # set on the key by the provider after verification
    data = _pre(guardrail, user, _chat())
    assert data["metadata"][NOTE_KEY]["decision"] == "mark"
    reply = _post(guardrail, user, data, _complete(data, "The answer is 5. It follows from the equation."))
    text = reply.choices[0].message.content
    canary = TagCanary(MARK_KEY.encode())
    assert canary.find(text) == [canary.tag(CHALLENGED)]
    assert canary.attribute(text, [SUSPENDED, CHALLENGED, MONITORED]) == [CHALLENGED]
    assert text.encode("ascii", "ignore").decode() == "The answer is 5. It follows from the equation."
    # Streamed, the canary follows the first sentence too, across chunk boundaries.
    stream = asyncio.run(_stream_reply(data, "Hello. World."))
    streamed = "".join(c.choices[0].delta.content or "" for c in _stream(guardrail, user, data, stream))
    assert canary.attribute(streamed, [CHALLENGED]) == [CHALLENGED]
    assert streamed.encode("ascii", "ignore").decode() == "Hello. World."


async def _stream_reply(data, text):
    chunks = await litellm.acompletion(model=data["model"], messages=data["messages"], mock_response=text,
                                       stream=True)
    return [c async for c in chunks]


def test_a_mark_without_a_marking_key_is_served_unmarked_and_said_once(gateway, monkeypatch, caplog):
    monkeypatch.delenv(MARK_KEY_ENV, raising=False)
    guardrail = DistillGuardrail(guardrail_name="distillguard", event_hook=["pre_call", "post_call"],
                                 default_on=True, gateway=gateway)
    user = _user(CHALLENGED, distillguard_verified=True)
    for _ in range(2):
        data = _pre(guardrail, user, _chat())
        reply = _post(guardrail, user, data, _complete(data, "Hello. World."))
        assert reply.choices[0].message.content == "Hello. World."
    assert [r.getMessage() for r in caplog.records if MARK_KEY_ENV in r.getMessage()] == [
        f"distillguard: {MARK_KEY_ENV} is not set, so replies the policy marks are served unmarked"]


def test_an_account_over_its_rate_is_throttled_with_429_and_retry_after(guardrail):
    user = _user("acct-busy")
    for _ in range(3):
        _pre(guardrail, user, _chat())
    refusal = _refusal(guardrail, user, _chat())
    assert refusal.status_code == 429 and refusal.headers == {"Retry-After": "17"}
    assert refusal.detail["decision"] == "throttle" and refusal.detail["reasons"] == ["gate.throttle.account_rate"]


def test_a_degraded_request_loses_logprobs_and_samples_and_its_reply_the_full_reasoning(guardrail):
    user = _user(MONITORED)
    data = _chat(logprobs=True, top_logprobs=5, n=4, reasoning_effort="high")
    served = _pre(guardrail, user, data)
    assert served is data  # changed in place: LiteLLM's SDK path keeps its own reference
    assert "logprobs" not in data and "top_logprobs" not in data and data["n"] == 1
    assert data["reasoning_effort"] == "high" and data["metadata"][NOTE_KEY]["decision"] == "degrade"

    choice = {"message": {"role": "assistant", "content": "x = 5", "reasoning_content": TRACE,
                          "thinking_blocks": [{"type": "thinking", "thinking": TRACE, "signature": "sig-replay"}]},
              "logprobs": {"content": [{"token": "x", "logprob": -0.1, "bytes": None, "top_logprobs": []}]}}
    upstream = _complete(data, {"choices": [{**choice, "index": i} for i in range(3)]})
    assert len(upstream.choices) == 3 and upstream.choices[0].logprobs is not None
    reply = _post(guardrail, user, data, upstream)
    assert isinstance(reply, litellm.ModelResponse) and len(reply.choices) == 1
    served_json = reply.model_dump_json()
    message = json.loads(served_json)["choices"][0]
    assert "logprobs" not in message or message["logprobs"] is None
    assert message["message"]["content"] == "x = 5"
    assert message["message"]["reasoning_content"] == summarize_reasoning(TRACE)
    assert "Subtract four from both sides. That leaves" not in served_json and "sig-replay" not in served_json


def test_a_degraded_stream_carries_the_reasoning_summary_and_no_logprobs(guardrail):
    user = _user(MONITORED)
    data = _pre(guardrail, user, _chat(stream=True, logprobs=True))
    paragraphs = TRACE.split("\n\n")

    def chunk(index=0, finish=None, **delta):
        return ModelResponseStream(choices=[StreamingChoices(index=index, finish_reason=finish, delta=Delta(**delta),
                                                             logprobs={"content": []})])

    upstream = [chunk(reasoning_content=paragraphs[0] + "\n\n"), chunk(reasoning_content="\n\n".join(paragraphs[1:])),
                chunk(index=1, content="a second sample"), chunk(content="x = 5"), chunk(finish="stop")]
    served = _stream(guardrail, user, data, upstream)
    dumped = [c.model_dump() for c in served]
    assert [c["choices"][0]["index"] for c in dumped if c["choices"]] == [0, 0, 0, 0]
    assert all(ch.get("logprobs") is None for c in dumped for ch in c["choices"])
    reasoning = [ch["delta"].get("reasoning_content") for c in dumped for ch in c["choices"]]
    assert reasoning == [None, None, summarize_reasoning(TRACE), None]
    assert [ch["delta"].get("content") for c in dumped for ch in c["choices"]][2] == "x = 5"


def test_an_allowed_request_and_its_reply_pass_unchanged(guardrail):
    user = _user("acct-honest")
    data = _chat(logprobs=True, n=2)
    before = json.loads(json.dumps(data))
    assert _pre(guardrail, user, data) == before
    upstream = _complete(data, "Hello. World.", n=2)
    reply = _post(guardrail, user, data, upstream)
    assert [c.message.content for c in reply.choices] == ["Hello. World.", "Hello. World."]


def test_a_forged_note_in_the_request_does_not_mark_or_degrade(guardrail):
    """A client cannot have another account's canary put in its replies by writing the note."""
    user = _user("acct-honest")
    data = _chat(metadata={NOTE_KEY: {"decision": "mark", "decision_id": "x", "account_id": CHALLENGED,
                                      "seal": "0" * 64}})
    data = _pre(guardrail, user, data)
    assert NOTE_KEY not in data["metadata"]
    data["metadata"][NOTE_KEY] = {"decision": "mark", "decision_id": "x", "account_id": CHALLENGED, "seal": "0" * 64}
    reply = _post(guardrail, user, data, _complete(data, "Hello. World."))
    assert reply.choices[0].message.content == "Hello. World."


def test_the_decision_request_reads_litellm_s_request_and_never_the_raw_key(guardrail, gateway):
    user = UserAPIKeyAuth(api_key="sk-raw-secret-team-key", team_id="team-9", metadata={
        "distillguard_payment_fingerprint": "card-1", "distillguard_asn": "AS64500",
        "distillguard_account_created_at": "2026-01-01T00:00:00Z", "distillguard_verified": "true"})
    data = _chat(thinking={"type": "enabled", "budget_tokens": 2048}, max_completion_tokens=300,
                 tools=[{"type": "function", "function": {"name": "f"}}] * 2)
    data["messages"] += [{"role": "assistant", "content": "Earlier answer."},
                         {"role": "user", "content": [{"type": "text", "text": "Part one."},
                                                      {"type": "image_url", "image_url": {"url": "data:,"}},
                                                      {"type": "text", "text": "Part two."}]}]
    request = guardrail.decision_request(user, data)
    assert request.account_id == "team-9" and request.api_key_id == user.token
    assert re.fullmatch(r"[0-9a-f]{64}", request.api_key_id) and "secret" not in request.api_key_id
    assert (request.prompt, request.system) == ("Part one.\nPart two.", "You are terse.")
    assert (request.thinking, request.max_tokens, request.tools, request.n, request.logprobs) == (
        True, 300, 2, 1, False)
    assert (request.client_ip, request.asn, request.payment_fingerprint, request.verified) == (
        "203.0.113.7", 64500, "card-1", True)
    assert request.account_created_at == 1767225600.0 and request.request_id == data["litellm_call_id"]
    # A key with neither user nor team is its account, by its hash.
    keyed = guardrail.decision_request(UserAPIKeyAuth(api_key="sk-raw-secret-lone"), _chat())
    assert keyed.account_id == f"key:{keyed.api_key_id}"
    _pre(guardrail, user, data)
    assert "sk-raw-secret" not in gateway.decision_log.path.read_text()


def test_an_unreachable_state_failing_closed_throttles(tmp_path, policy, monkeypatch):
    state = RedisState.connect("redis://127.0.0.1:1/0", policy.windows, key=indicator_key(),
                               prefix=f"{{dgtest-{uuid.uuid4().hex[:12]}}}:")
    gw = Gateway(policy, state, key=indicator_key(), fail="closed")
    guardrail = DistillGuardrail(guardrail_name="distillguard", event_hook=["pre_call", "post_call"],
                                 default_on=True, gateway=gw)
    refusal = _refusal(guardrail, _user("acct-honest"), _chat())
    assert refusal.status_code == 429 and refusal.detail["reasons"] == ["gate.throttle.state_unavailable"]


def test_the_guardrail_loads_as_the_proxy_loads_a_config_s_custom_guardrail(tmp_path, monkeypatch):
    """As litellm/proxy/guardrails/guardrail_registry.py initialize_custom_guardrail does it:
    the class from its dotted path, given every litellm_params value LiteLLM passes on."""
    from litellm.proxy.types_utils.utils import get_instance_fn
    from litellm.types.guardrails import GuardrailEventHooks, LitellmParams

    (tmp_path / "policy.yaml").write_text(POLICY)
    monkeypatch.setenv("DISTILLGUARD_GATEWAY_LOG_DIR", str(tmp_path / "log"))
    params = LitellmParams(guardrail="distillguard.gateway.litellm_guardrail.DistillGuardrail",
                           mode=["pre_call", "post_call"], default_on=True, policy=str(tmp_path / "policy.yaml"))
    extra = {k: v for k, v in params.model_dump(exclude_none=True).items()
             if k not in ("guardrail", "mode", "default_on", "stream_scope")}
    cls = get_instance_fn(params.guardrail)
    guardrail = cls(guardrail_name="distillguard", event_hook=params.mode, default_on=True, **extra)
    data = _chat()
    assert guardrail.should_run_guardrail(data, GuardrailEventHooks.pre_call) is True
    assert guardrail.should_run_guardrail(data, GuardrailEventHooks.post_call) is True
    for _ in range(3):
        _pre(guardrail, _user("acct-config"), _chat())
    assert _refusal(guardrail, _user("acct-config"), data).detail["reasons"] == ["gate.throttle.account_rate"]
    guardrail.gateway.close()
    rows = [json.loads(line) for f in (tmp_path / "log").iterdir() for line in f.read_text().splitlines()]
    assert [r["decision"] for r in rows] == ["allow"] * 3 + ["throttle"]
    with pytest.raises(ValueError, match="not in the supported event hooks"):
        cls(guardrail_name="distillguard", event_hook="during_call", default_on=True, **extra)


def test_the_guardrail_is_the_only_module_that_imports_litellm():
    importing = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                       if re.search(r"^\s*(import litellm|from litellm)\b", p.read_text(), re.M))
    assert importing == ["gateway/litellm_guardrail.py"]
    # ...and nothing imports it: the proxy loads it by its dotted path.
    assert not [p for p in SRC.rglob("*.py") if re.search(r"^\s*(from|import) \S*litellm_guardrail", p.read_text(), re.M)]
