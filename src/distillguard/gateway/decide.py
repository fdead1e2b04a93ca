"""The decision core: one live request -> one decision with its reasons.

    request facts (signals/ code)  +  state (verdict in force, sliding windows)
        -> policy.yaml rules -> decision, reasons -> decision log

Used in the process by the LiteLLM guardrail (gateway/litellm_guardrail.py) and over
HTTP by `distillguard serve gateway` (gateway/service.py).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

from distillguard.gateway.log import DecisionLog
from distillguard.gateway.policy import DECISIONS, LINK_IDENTIFIERS, Degrade, Policy, load_policy
from distillguard.gateway.request import DecisionRequest, request_facts
from distillguard.gateway.state import MemoryState, RedisState, Seen, StateUnavailable
from distillguard.verdicts.indicators import default_policy as indicator_policy
from distillguard.verdicts.keyed import indicator_key, keyed_hash

log = logging.getLogger("distillguard.gateway")

FAIL_MODES = ("open", "closed")
# Reasons a decision carries when the shared state cannot be reached.
STATE_UNAVAILABLE = {"open": "gate.allow.state_unavailable", "closed": "gate.throttle.state_unavailable"}
# A state outage is logged at most this often (seconds); every one is counted.
ALERT_EVERY = 10.0


@dataclass(frozen=True)
class Decision:
    decision: str
    reasons: tuple[str, ...]
    decision_id: str
    request_id: str | None
    account_id: str
    ts: float
    campaign: str | None
    policy_version: str
    verdict_version: str | None
    state: str  # ok | unavailable
    degrade: Degrade | None = None
    retry_after: int | None = None

    def to_dict(self) -> dict:
        # by hand: dataclasses.asdict deep-copies, a third of a decision's cost
        d = {f: getattr(self, f) for f in _DECISION_FIELDS}
        d["reasons"] = list(self.reasons)
        if self.degrade is not None:
            d["degrade"] = {f: getattr(self.degrade, f) for f in _DEGRADE_FIELDS}
        return d

    def log_record(self) -> dict:
        """The decision as a line of the decision log (schema/decisions.py)."""
        return {"decision_id": self.decision_id, "ts": datetime.fromtimestamp(self.ts, timezone.utc).isoformat(),
                "account_id": self.account_id, "decision": self.decision, "reasons": " ".join(self.reasons),
                "request_id": self.request_id, "campaign": self.campaign, "policy_version": self.policy_version,
                "verdict_version": self.verdict_version, "state": self.state}


_DECISION_FIELDS = tuple(f.name for f in fields(Decision))
_DEGRADE_FIELDS = tuple(f.name for f in fields(Degrade))


class Gateway:
    def __init__(self, policy: Policy, state, *, key: bytes, fail: str = "open",
                 decision_log: DecisionLog | None = None):
        if fail not in FAIL_MODES:
            raise ValueError(f"fail must be one of {FAIL_MODES}")
        self.policy = policy
        self.state = state
        self.key = key
        self.fail = fail
        self.decision_log = decision_log
        namespaces = {k.kind: k.namespace or k.kind for k in indicator_policy().kinds}
        self._links = tuple((kind, namespaces[kind], LINK_IDENTIFIERS[kind]) for kind in policy.link_identifiers)
        self.counts = {d: 0 for d in DECISIONS}
        self.state_failures = 0
        self._alerted = 0.0
        self._lock = threading.Lock()

    @classmethod
    def open(cls, *, verdicts: str | Path | None = None, redis_url: str | None = None,
             policy: str | Path | None = None, fail: str = "open", log_dir: str | Path | None = None,
             prefix: str = "{dg}:", sync_every: float = RedisState.SYNC_EVERY) -> "Gateway":
        """A gateway as configured: the verdicts from a folder store (in-process state) or
        from Redis (shared state; `distillguard publish --redis` puts them there; the
        replica syncs with it every `sync_every` seconds, 0 for a round trip per request).
        The indicator key comes from the environment (verdicts/keyed.py)."""
        key = indicator_key()
        rules = load_policy(policy)
        if redis_url:
            state = RedisState.connect(redis_url, rules.windows, key=key, prefix=prefix, sync_every=sync_every)
        else:
            state = MemoryState(rules.windows, verdicts, link_kinds=rules.link_identifiers)
        return cls(rules, state, key=key, fail=fail, decision_log=DecisionLog(log_dir) if log_dir else None)

    def warm(self) -> None:
        """Ready for traffic: the intent model compiled (~0.4 s, which the first caller would
        otherwise wait) and the verdicts loaded, then the process's long-lived objects
        (patterns, verdicts) frozen out of the garbage collector's generations, so that a
        full collection does not scan them (measured: pauses of ~100 ms at 2,000
        decisions/s without it)."""
        request_facts(DecisionRequest(account_id="warm-up", prompt="warm up"), 0.0)["intent_max"]
        self.state.prepare()
        gc.freeze()

    def close(self) -> None:
        self.state.close()
        if self.decision_log is not None:
            self.decision_log.close()

    def identifiers(self, request: DecisionRequest) -> dict[str, str]:
        """kind -> the request's strong identifier of that kind, as the verdict table holds
        it: kind:keyed hash."""
        return {kind: f"{kind}:{keyed_hash(namespace, value, self.key)}" for kind, namespace, field in self._links
                if (value := getattr(request, field))}

    def decide(self, request: DecisionRequest) -> Decision:
        now = time.time() if request.ts is None else request.ts
        facts = request_facts(request, now)
        identifiers = self.identifiers(request)
        keys = {"account": request.account_id, "api_key": request.api_key_id, "client_ip": request.client_ip,
                "asn": None if request.asn is None else str(request.asn),
                "payment": identifiers.get("payment")}
        try:
            seen = self.state.observe(now, keys, list(identifiers.values()))
            state = "ok"
        except StateUnavailable as e:
            seen = None
            state = "unavailable"
            self._alert(e)
        if seen is None:
            decision = "allow" if self.fail == "open" else "throttle"
            reasons = (STATE_UNAVAILABLE[self.fail],)
            campaign, version = None, None
        else:
            facts.update(_state_facts(seen))
            decision, reasons = self.policy.decide(facts)
            campaign, version = seen.campaign, seen.version
        result = Decision(
            decision=decision, reasons=reasons, decision_id=uuid.uuid4().hex, request_id=request.request_id,
            account_id=request.account_id, ts=now, campaign=campaign, policy_version=self.policy.version,
            verdict_version=version, state=state,
            degrade=self.policy.degrade if decision == "degrade" else None,
            retry_after=self.policy.retry_after_seconds if decision == "throttle" else None)
        if self.decision_log is not None:
            self.decision_log.write(result.log_record())
        with self._lock:
            self.counts[decision] += 1
        return result

    def _alert(self, error: Exception) -> None:
        with self._lock:
            self.state_failures += 1
            now = time.monotonic()
            if now - self._alerted < ALERT_EVERY:
                return
            self._alerted = now
        log.error("gateway state unavailable (%s); failing %s: %s", type(error).__name__, self.fail,
                  "requests are allowed on their own facts" if self.fail == "open" else "requests are throttled")


def _state_facts(seen: Seen) -> dict:
    return {"action": seen.verdict.action, "campaign": seen.verdict.campaign,
            "linked_campaign": seen.linked_campaign, **seen.counts}
