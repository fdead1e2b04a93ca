"""The gateway as a LiteLLM proxy guardrail (docs/litellm.md).

    guardrails:
      - guardrail_name: distillguard
        litellm_params:
          guardrail: distillguard.gateway.litellm_guardrail.DistillGuardrail
          mode: [pre_call, post_call]
          default_on: true

Before the call (`async_pre_call_hook`) each request is decided (gateway/decide.py):
block and step_up are refused with 403, throttle with 429 and Retry-After; degrade
strips the request (gateway/degrade.py); degrade and mark are noted in the request's
metadata, sealed, so that after the call (`async_post_call_success_hook`, and the
streaming iterator hook) the reply is degraded or carries the account's canary
(gateway/marking.py).

Caller facts come from the key's and the team's metadata, which only the proxy's admin
sets (distillguard_* keys, METADATA_FIELDS); the request body's own metadata is the
client's and is read only with `trust_request_metadata: true`. This is the one module
that imports litellm: core code never imports it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
from datetime import datetime
from typing import Any

from fastapi import HTTPException
from litellm import ModelResponse, ModelResponseStream
from litellm.integrations.custom_guardrail import CustomGuardrail
from litellm.types.guardrails import GuardrailEventHooks
from litellm.types.llms.openai import ResponsesAPIResponse
from litellm.types.utils import Choices

from distillguard.gateway.decide import Decision, Gateway
from distillguard.gateway.degrade import degrade_request, degrade_response, summarize_reasoning
from distillguard.gateway.marking import MARK_KEY_ENV, TagCanary
from distillguard.gateway.policy import Degrade
from distillguard.gateway.request import DecisionRequest
from distillguard.gateway.service import ENV
from distillguard.schema.decisions import REFUSING

log = logging.getLogger("distillguard.gateway.litellm")

# Where the pre-call hook leaves its decision for the post-call hooks, in the request's metadata.
NOTE_KEY = "distillguard"
# Caller facts read from key / team metadata: metadata key -> DecisionRequest field.
METADATA_FIELDS = {
    "distillguard_account_id": "account_id",
    "distillguard_client_ip": "client_ip",
    "distillguard_asn": "asn",
    "distillguard_payment_fingerprint": "payment_fingerprint",
    "distillguard_phone_hash": "phone_hash",
    "distillguard_email_hash": "email_hash",
    "distillguard_account_created_at": "account_created_at",
    "distillguard_verified": "verified",
}
# Provider fields that carry reasoning a client could replay or train on (LiteLLM keeps
# some providers' raw reasoning there): dropped when the reasoning is summarized.
REASONING_FIELDS = ("reasoning_content", "thinking_blocks", "reasoning_details", "reasoning", "reasoning_items")
MESSAGES = {
    "block": "This account's access is suspended.",
    "step_up": "Verification is required before this account can make further requests.",
    "throttle": "Too many requests: retry later.",
}
_KEY_HASH = re.compile(r"[0-9a-f]{64}|hashed-jwt-.+")
_MAX_ID_CHARS = 256
# A sentence ends in a chunk where the next chunk may begin with the space.
_CHUNK_SENTENCE_END = re.compile(r"[.!?。！？](?=\s|$)|\n")


class DistillGuardrail(CustomGuardrail):
    def __init__(self, *, verdicts: str | None = None, redis_url: str | None = None, prefix: str | None = None,
                 policy: str | None = None, fail: str | None = None, log_dir: str | None = None,
                 trust_request_metadata: bool = False, gateway: Gateway | None = None,
                 marker: TagCanary | None = None, **kwargs):
        """Options from the guardrail's litellm_params, else from the DISTILLGUARD_GATEWAY_*
        environment (gateway/service.py ENV); `gateway` and `marker` are for tests."""
        kwargs.setdefault("supported_event_hooks", [GuardrailEventHooks.pre_call, GuardrailEventHooks.post_call])
        super().__init__(**kwargs)
        env = {name: os.environ.get(var) or None for name, var in ENV.items()}
        self.gateway = gateway or Gateway.open(
            verdicts=verdicts or env["verdicts"], redis_url=redis_url or env["redis"],
            policy=policy or env["policy"], fail=fail or env["fail"] or "open",
            log_dir=log_dir or env["log_dir"], prefix=prefix or env["prefix"] or "{dg}:")
        self.gateway.warm()
        mark_key = os.environ.get(MARK_KEY_ENV)
        self.marker = marker or (TagCanary(mark_key.encode()) if mark_key else None)
        self.trust_request_metadata = trust_request_metadata is True or str(trust_request_metadata).lower() == "true"
        self._seal_key = secrets.token_bytes(32)  # per process: a client cannot forge a note
        self._warned: set[str] = set()
        if not self.default_on:
            log.warning("distillguard guardrail %r is not default_on: only requests that name it are decided, "
                        "and a distiller will not name it", self.guardrail_name)
        if self.event_hook is not None and not self._event_hook_is_event_type(GuardrailEventHooks.post_call):
            log.warning("distillguard guardrail %r has no post_call mode: degraded replies keep their reasoning "
                        "and marked replies carry no canary", self.guardrail_name)

    # -- before the call ----------------------------------------------------------------

    async def async_pre_call_hook(self, user_api_key_dict, cache, data: dict, call_type) -> dict:
        for bucket in _buckets(data):  # a note is only ever ours
            bucket.pop(NOTE_KEY, None)
        try:
            request = self.decision_request(user_api_key_dict, data)
            decision = await asyncio.to_thread(self.gateway.decide, request)
        except Exception as e:  # noqa: BLE001 -- the type only: a message may quote the request
            log.error("distillguard could not decide (%s); failing %s", type(e).__name__, self.gateway.fail)
            if self.gateway.fail == "closed":
                raise HTTPException(
                    status_code=503, headers={"Retry-After": str(self.gateway.policy.retry_after_seconds)},
                    detail={"error": "The request could not be checked: retry later.", "decision": "unavailable"},
                ) from None
            return data
        if decision.decision in REFUSING:
            raise _refusal(decision)
        if decision.decision == "degrade":
            degraded = degrade_request(data, decision.degrade or self.gateway.policy.degrade)
            for k in set(data) - set(degraded):  # in place: LiteLLM's SDK path keeps its own dict
                del data[k]
            data.update(degraded)
        if decision.decision in ("degrade", "mark"):
            bucket = _bucket(data)
            bucket[NOTE_KEY] = self._note(decision)
        return data

    def decision_request(self, user_api_key_dict, data: dict) -> DecisionRequest:
        """The gateway's view of a LiteLLM request."""
        facts = self._caller_facts(user_api_key_dict, data)
        key_id = _key_id(getattr(user_api_key_dict, "token", None) or getattr(user_api_key_dict, "api_key", None))
        account = (facts.pop("account_id", None) or getattr(user_api_key_dict, "user_id", None)
                   or getattr(user_api_key_dict, "team_id", None) or (f"key:{key_id}" if key_id else "anonymous"))
        if "client_ip" not in facts:
            facts["client_ip"] = _client_ip(_bucket(data, create=False).get("requester_ip_address"))
        call_id = data.get("litellm_call_id")
        n = data.get("n")
        top = data.get("top_logprobs")
        return DecisionRequest(
            account_id=str(account)[:_MAX_ID_CHARS], api_key_id=key_id,
            prompt=_prompt(data), system=_system(data),
            model=data["model"] if isinstance(data.get("model"), str) else None,
            request_id=call_id[:_MAX_ID_CHARS] if isinstance(call_id, str) else None,
            logprobs=data.get("logprobs") not in (None, False, 0) or (isinstance(top, int) and top > 0),
            n=n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1,
            thinking=_wants_reasoning(data), max_tokens=_max_tokens(data), tools=_tool_count(data),
            **{k: v for k, v in facts.items() if v is not None})

    def _caller_facts(self, user_api_key_dict, data: dict) -> dict[str, Any]:
        """distillguard_* metadata: team's, then key's (the key wins), then, when trusted,
        the request's own."""
        sources = [getattr(user_api_key_dict, "team_metadata", None)]
        sources += [b.get("user_api_key_team_metadata") for b in _buckets(data)]
        sources += [getattr(user_api_key_dict, "metadata", None)]
        sources += [b.get("user_api_key_metadata") for b in _buckets(data)]
        if self.trust_request_metadata:
            sources += _buckets(data)
        facts: dict[str, Any] = {}
        for source in sources:
            if not isinstance(source, dict):
                continue
            for meta_key, field in METADATA_FIELDS.items():
                if meta_key in source:
                    value = _fact(field, source[meta_key])
                    if value is None:
                        self._warn_once(meta_key, f"distillguard: metadata {meta_key} is not a valid {field}; "
                                                  "ignored")
                    else:
                        facts[field] = value
        return facts

    # -- after the call -----------------------------------------------------------------

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict, response):
        note = self._read_note(data)
        if note is None:
            return response
        try:
            if note["decision"] == "degrade":
                return _degrade_reply(response, self.gateway.policy.degrade)
            if note["decision"] == "mark" and self._can_mark():
                return _mark_reply(response, self.marker, note["account_id"])
        except Exception as e:  # noqa: BLE001 -- the type only: a message may quote the reply
            log.error("distillguard could not %s a reply (%s)", note["decision"], type(e).__name__)
            if note["decision"] == "degrade":  # never serve in full what was to be degraded
                raise HTTPException(status_code=500, detail={"error": "The reply could not be served.",
                                                             "decision_id": note["decision_id"]}) from None
        return response

    async def async_post_call_streaming_iterator_hook(self, user_api_key_dict, response, request_data: dict):
        note = self._read_note(request_data)
        if note is not None and note["decision"] == "degrade":
            stream = _degrade_stream(response, self.gateway.policy.degrade)
        elif note is not None and note["decision"] == "mark" and self._can_mark():
            stream = _mark_stream(response, self.marker, note["account_id"])
        else:
            stream = response
        async for chunk in stream:
            yield chunk

    # -- the note from one hook to the next ---------------------------------------------

    def _note(self, decision: Decision) -> dict:
        note = {"decision": decision.decision, "decision_id": decision.decision_id, "account_id": decision.account_id}
        return {**note, "seal": self._seal(note)}

    def _seal(self, note: dict) -> str:
        text = "\x00".join(str(note.get(k)) for k in ("decision", "decision_id", "account_id"))
        return hmac.new(self._seal_key, text.encode(), hashlib.sha256).hexdigest()

    def _read_note(self, data: dict) -> dict | None:
        for bucket in _buckets(data):
            note = bucket.get(NOTE_KEY)
            if isinstance(note, dict) and isinstance(note.get("seal"), str) \
                    and hmac.compare_digest(note["seal"], self._seal(note)):
                return note
        return None

    def _can_mark(self) -> bool:
        if self.marker is None:
            self._warn_once("mark", f"distillguard: {MARK_KEY_ENV} is not set, so replies the policy marks are "
                                    "served unmarked")
        return self.marker is not None

    def _warn_once(self, topic: str, message: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            log.warning(message)


def _refusal(decision: Decision) -> HTTPException:
    detail = {"error": MESSAGES[decision.decision], "decision": decision.decision,
              "reasons": list(decision.reasons), "decision_id": decision.decision_id}
    if decision.decision == "throttle":
        retry = decision.retry_after or 1
        return HTTPException(status_code=429, detail={**detail, "retry_after": retry},
                             headers={"Retry-After": str(retry)})
    return HTTPException(status_code=403, detail=detail)


# -- reading a LiteLLM request --------------------------------------------------------------

def _bucket(data: dict, create: bool = True) -> dict:
    """The metadata dict the proxy writes to for this request (LiteLLM's own rule:
    `litellm_metadata` where the request has one, else `metadata`)."""
    name = "litellm_metadata" if "litellm_metadata" in data else "metadata"
    bucket = data.get(name)
    if not isinstance(bucket, dict):
        if not create:
            return {}
        bucket = data[name] = {}
    return bucket


def _buckets(data: dict) -> list[dict]:
    return [b for b in (data.get("metadata"), data.get("litellm_metadata")) if isinstance(b, dict)]


def _key_id(value) -> str | None:
    """The API key as LiteLLM identifies it: its hash (UserAPIKeyAuth.token). A key that
    LiteLLM left unhashed (not sk-..., not a JWT) is hashed here: a raw key goes nowhere."""
    if not isinstance(value, str) or not value:
        return None
    return value if _KEY_HASH.fullmatch(value) else hashlib.sha256(value.encode()).hexdigest()


def _client_ip(value) -> str | None:
    """The requester's address as the proxy saw it; the first of an X-Forwarded-For list."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return str(ipaddress.ip_address(value.split(",")[0].strip()))
    except ValueError:
        return None


def _fact(field: str, value):
    """A metadata value as the DecisionRequest field wants it, or None when it is not one."""
    if field == "verified":
        if isinstance(value, bool):
            return value
        return {"true": True, "false": False}.get(str(value).strip().lower())
    if field == "asn":
        if isinstance(value, str) and value.upper().startswith("AS"):
            value = value[2:]
        try:
            asn = int(value)
        except (TypeError, ValueError):
            return None
        return asn if not isinstance(value, bool) and 0 <= asn < 2 ** 32 else None
    if field == "account_created_at":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    if field == "client_ip":
        return _client_ip(value)
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
        return str(value)[:_MAX_ID_CHARS]
    return None


def _text(content) -> str:
    """A message's text: its string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _prompt(data: dict) -> str:
    """The last user message (Chat Completions, Anthropic messages, Responses input, or a
    completion prompt)."""
    messages = data.get("messages")
    if isinstance(messages, list):
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "user":
                return _text(m.get("content"))
        return ""
    items = data.get("input", data.get("prompt"))
    if isinstance(items, str):
        return items
    if isinstance(items, list):
        for item in reversed(items):
            if isinstance(item, str):
                return item
            if isinstance(item, dict) and item.get("role") == "user":
                return _text(item.get("content"))
    return ""


def _system(data: dict) -> str | None:
    parts = [_text(m.get("content")) for m in data.get("messages") or []
             if isinstance(m, dict) and m.get("role") in ("system", "developer")]
    parts += [_text(data.get(k)) for k in ("system", "instructions") if data.get(k)]  # Anthropic, Responses
    text = "\n".join(p for p in parts if p)
    return text or None


def _wants_reasoning(data: dict) -> bool:
    thinking = data.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled") \
            or thinking and not isinstance(thinking, dict):
        return True
    effort = data.get("reasoning_effort")
    if isinstance(effort, dict):
        effort = effort.get("effort")
    if effort not in (None, "", "none"):
        return True
    reasoning = data.get("reasoning")
    return isinstance(reasoning, dict) and reasoning.get("effort") not in (None, "none")


def _max_tokens(data: dict) -> int | None:
    for k in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        v = data.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return v
    return None


def _tool_count(data: dict) -> int:
    return sum(len(data[k]) for k in ("tools", "functions") if isinstance(data.get(k), list))


# -- changing a reply -----------------------------------------------------------------------

def _degrade_reply(response, spec: Degrade):
    """The reply as degrade_response makes it, on LiteLLM's own objects."""
    if isinstance(response, ModelResponse):
        choices = degrade_response({"choices": [c.model_dump() for c in response.choices]}, spec)["choices"]
        if spec.reasoning == "summary":
            for c in choices:
                _scrub_provider_fields(c.get("message") or {})
        response.choices = [Choices(**c) for c in choices]
    elif isinstance(response, ResponsesAPIResponse):
        output = [i.model_dump() if hasattr(i, "model_dump") else i for i in response.output or []]
        response.output = degrade_response({"output": output}, spec)["output"]
    return response


def _scrub_provider_fields(message: dict) -> None:
    message.pop("reasoning_items", None)  # OpenAI's encrypted reasoning, replayable
    extra = message.get("provider_specific_fields")
    if isinstance(extra, dict):
        message["provider_specific_fields"] = {k: v for k, v in extra.items() if k not in REASONING_FIELDS} or None


def _mark_reply(response, marker: TagCanary, account_id: str):
    if isinstance(response, ModelResponse):
        for choice in response.choices:
            message = getattr(choice, "message", None)
            if message is not None and isinstance(message.content, str) and message.content:
                message.content = marker.mark(message.content, account_id)
    elif isinstance(response, ResponsesAPIResponse):
        output = [i.model_dump() if hasattr(i, "model_dump") else i for i in response.output or []]
        for item in output:
            parts = item.get("content") if isinstance(item, dict) and item.get("type") == "message" else None
            part = next((p for p in parts or [] if isinstance(p, dict) and p.get("type") == "output_text"
                         and isinstance(p.get("text"), str) and p["text"]), None)
            if part is not None:
                part["text"] = marker.mark(part["text"], account_id)
        response.output = output
    return response


async def _degrade_stream(stream, spec: Degrade):
    """Chat chunks without log-probabilities or extra samples; the reasoning held back and
    sent as its summary with the first chunk of the answer."""
    held: dict[int, list[str]] = {}
    async for chunk in stream:
        if isinstance(chunk, ModelResponseStream):
            if spec.max_n is not None:
                chunk.choices = [c for c in chunk.choices if c.index < spec.max_n]
            for choice in chunk.choices:
                if spec.logprobs == "drop":
                    choice.logprobs = None
                if spec.reasoning == "summary":
                    _hold_reasoning(choice, held.setdefault(choice.index, []))
        yield chunk


def _hold_reasoning(choice, held: list[str]) -> None:
    delta = choice.delta
    text = getattr(delta, "reasoning_content", None)
    if isinstance(text, str):
        held.append(text)
    else:  # some providers stream the same text in both: read one
        held.extend(b.get("thinking") or "" for b in getattr(delta, "thinking_blocks", None) or []
                    if isinstance(b, dict) and b.get("type") == "thinking")
    for field in ("reasoning_content", "thinking_blocks", "reasoning_items"):
        if getattr(delta, field, None) is not None:
            delattr(delta, field)
    extra = getattr(delta, "provider_specific_fields", None)
    if isinstance(extra, dict):
        delta.provider_specific_fields = {k: v for k, v in extra.items() if k not in REASONING_FIELDS} or None
    if held and (getattr(delta, "content", None) or choice.finish_reason):
        delta.reasoning_content = summarize_reasoning("".join(held))
        held.clear()


async def _mark_stream(stream, marker: TagCanary, account_id: str):
    """Chat chunks, each choice's canary after the first sentence of its answer (at its
    end if none), as TagCanary.mark places it in a whole reply."""
    canary = marker.mark("", account_id)
    marked: set[int] = set()
    async for chunk in stream:
        if isinstance(chunk, ModelResponseStream):
            for choice in chunk.choices:
                if choice.index in marked:
                    continue
                content = getattr(choice.delta, "content", None)
                end = _CHUNK_SENTENCE_END.search(content) if isinstance(content, str) else None
                if end is not None:
                    choice.delta.content = content[:end.end()] + canary + content[end.end():]
                elif choice.finish_reason:
                    choice.delta.content = (content or "") + canary
                else:
                    continue
                marked.add(choice.index)
        yield chunk
