"""One live request, as the gateway sees it, and the facts it yields on its own.

The request's content facts come from the batch path's own code: the prompt is cut to
the window a scan reads (signals/request.py read_window) and scored by the same intent
model and formula (signals/intent.py request_scores), so that a request scores online as
it will in the next scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from distillguard.signals.intent import INTENT_KINDS, request_scores
from distillguard.signals.request import read_window

# Above this an intent score counts as the request's intent (signals/request.py intent_top).
INTENT_TOP_MIN = 0.5


class BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class DecisionRequest:
    account_id: str
    prompt: str = ""
    system: str | None = None
    model: str | None = None
    request_id: str | None = None
    ts: float | None = None  # epoch seconds; the gateway's clock when None
    api_key_id: str | None = None
    client_ip: str | None = None
    asn: int | None = None
    # The account's strong identifiers, as the provider's accounts table holds them: they
    # are keyed (verdicts/keyed.py) before they are compared or stored.
    payment_fingerprint: str | None = None
    phone_hash: str | None = None
    email_hash: str | None = None
    account_created_at: float | None = None  # epoch seconds
    verified: bool = False  # passed step-up verification since the account's verdict
    logprobs: bool = False
    n: int = 1
    thinking: bool = False
    max_tokens: int | None = None
    tools: int = 0

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> "DecisionRequest":
        """A request from JSON, checked field by field (the error names the field)."""
        if not isinstance(body, dict):
            raise BadRequest("the request must be a JSON object")
        unknown = sorted(set(body) - _KINDS.keys())
        if unknown:
            raise BadRequest(f"unknown field(s): {', '.join(repr(u)[:60] for u in unknown[:5])}")
        values = {}
        for name, value in body.items():
            if value is None:
                continue
            kind = _KINDS[name]
            if kind is bool and not isinstance(value, bool) or kind is int and (
                    isinstance(value, bool) or not isinstance(value, int)) or kind is float and (
                    isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)) \
                    or kind is str and not isinstance(value, str):
                raise BadRequest(f"field {name!r} must be {_NAMES[kind]}")
            values[name] = value
        if not values.get("account_id"):
            raise BadRequest("field 'account_id' is required")
        if values.get("n", 1) < 1 or values.get("tools", 0) < 0 or values.get("max_tokens", 1) < 0:
            raise BadRequest("n must be at least 1; tools and max_tokens not negative")
        return cls(**values)


_KINDS = {"account_id": str, "prompt": str, "system": str, "model": str, "request_id": str, "ts": float,
          "api_key_id": str, "client_ip": str, "asn": int, "payment_fingerprint": str, "phone_hash": str,
          "email_hash": str, "account_created_at": float, "verified": bool, "logprobs": bool, "n": int,
          "thinking": bool, "max_tokens": int, "tools": int}
_NAMES = {str: "a string", float: "a number", int: "an integer", bool: "true or false"}
assert set(_KINDS) == {f.name for f in fields(DecisionRequest)}


INTENT_FACTS = frozenset((*(f"intent_{k}" for k in INTENT_KINDS), "intent_max", "intent_top"))


class RequestFacts(dict):
    """The facts of policy.yaml that the request gives alone (REQUEST_FACTS, CALLER_FACTS).

    The intent facts are computed when a rule first reads one: scoring the prompt is most of
    a decision's cost, and under the shipped policy most requests never reach a rule that
    reads it (conditions are evaluated left to right and stop early)."""

    def __init__(self, request: DecisionRequest, now: float | None = None):
        now = request.ts if now is None else now
        super().__init__(logprobs=request.logprobs, n=request.n, thinking=request.thinking,
                         max_tokens=request.max_tokens, tools=request.tools, verified=request.verified,
                         account_age_hours=None if request.account_created_at is None or now is None
                         else (now - request.account_created_at) / 3600)
        self.request = request

    def __missing__(self, name: str) -> Any:
        if name not in INTENT_FACTS:
            raise KeyError(name)
        scores = request_scores(read_window(self.request.prompt), self.request.system)
        top_kind = max(INTENT_KINDS, key=lambda k: scores[k])
        self.update({f"intent_{k}": scores[k] for k in INTENT_KINDS})
        self.update(intent_max=scores[top_kind],
                    intent_top=top_kind if scores[top_kind] >= INTENT_TOP_MIN else None)
        return self[name]


def request_facts(request: DecisionRequest, now: float | None = None) -> RequestFacts:
    return RequestFacts(request, now)
