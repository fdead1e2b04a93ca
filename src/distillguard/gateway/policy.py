"""The decision policy (policy.yaml): sliding windows, rules, and what `degrade` takes away.

A rule's condition is an expression over named facts, checked when the file is read:
only comparisons, `and` / `or` / `not`, `in`, `is None` and constants are allowed, and
every name must be a fact the gateway computes. It is compiled once and evaluated with
no builtins, so a policy file can state conditions but never run code.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from distillguard.schema.decisions import DECISION_VALUES
from distillguard.signals.intent import INTENT_KINDS

# Strongest first: a request gets the strongest decision among the rules that hold.
DECISIONS = DECISION_VALUES
# What a window can be kept per: the account, its campaign, or a key the request carries.
WINDOW_KEYS = ("account", "campaign", "api_key", "client_ip", "asn", "payment")
# Strong identifiers a request may carry: indicators.yaml kind -> the request's field.
LINK_IDENTIFIERS = {"payment": "payment_fingerprint", "phone": "phone_hash", "email": "email_hash"}
VERDICT_FACTS = ("action", "campaign", "linked_campaign")
CALLER_FACTS = ("verified", "account_age_hours")
REQUEST_FACTS = ("intent_max", "intent_top", "logprobs", "n", "thinking", "max_tokens", "tools",
                 *(f"intent_{k}" for k in INTENT_KINDS))


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class Window:
    name: str
    per: str  # one of WINDOW_KEYS
    seconds: int
    buckets: int
    distinct: str | None = None  # count distinct values of this key instead of requests

    @property
    def bucket_seconds(self) -> int:
        return self.seconds // self.buckets


@dataclass(frozen=True)
class Rule:
    code: str
    decision: str
    when: str
    about: str


@dataclass(frozen=True)
class Degrade:
    reasoning: str = "summary"  # summary | keep
    logprobs: str = "drop"  # drop | keep
    max_n: int | None = 1


@dataclass(frozen=True)
class Policy:
    link_identifiers: tuple[str, ...]  # indicators.yaml kinds that tie a new account to a campaign
    windows: tuple[Window, ...]
    rules: tuple[Rule, ...]
    degrade: Degrade
    retry_after_seconds: int
    version: str  # sha256 of the file's bytes, first 16 hex digits: named in every decision

    def facts(self) -> frozenset[str]:
        return frozenset((*VERDICT_FACTS, *CALLER_FACTS, *REQUEST_FACTS, *(w.name for w in self.windows)))

    def decide(self, facts: dict) -> tuple[str, tuple[str, ...]]:
        """The decision and its reasons: every rule that holds, strongest decision first."""
        held = [(DECISIONS.index(r.decision), i, r) for i, (r, test) in enumerate(zip(self.rules, self._tests))
                if test(facts)]
        if not held:
            return "allow", ()
        held.sort()
        return held[0][2].decision, tuple(r.code for _, _, r in held)

    @functools.cached_property
    def _tests(self):
        # on the instance: a cache keyed by the policy would hash all its rules per request
        return tuple(_compile(r.when, self.facts(), r.code) for r in self.rules)

    def about(self) -> dict[str, str]:
        return {r.code: r.about for r in self.rules}


_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare, ast.Eq, ast.NotEq,
            ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot, ast.Name, ast.Load,
            ast.Constant, ast.Tuple, ast.List)


def _compile(expression: str, facts: frozenset[str], code: str):
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as e:
        raise PolicyError(f"rule {code}: `when` is not an expression: {e.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise PolicyError(f"rule {code}: `when` may use comparisons, and/or/not, in, is None and "
                              f"constants only, not {type(node).__name__}")
        if isinstance(node, ast.Name) and node.id not in facts:
            raise PolicyError(f"rule {code}: unknown fact {node.id!r}; facts are {', '.join(sorted(facts))}")
    program = compile(tree, f"<rule {code}>", "eval")
    no_builtins = {"__builtins__": {}}
    return lambda facts: bool(eval(program, no_builtins, facts))  # noqa: S307 (checked above)


@functools.cache
def default_policy() -> Policy:
    return parse_policy(resources.files("distillguard.gateway").joinpath("policy.yaml").read_bytes(), "policy.yaml")


def load_policy(path: str | Path | None = None) -> Policy:
    return default_policy() if path is None else parse_policy(Path(path).read_bytes(), str(path))


def parse_policy(data: bytes, source: str) -> Policy:
    raw = yaml.safe_load(data) or {}

    def fail(msg: str):
        raise PolicyError(f"{source}: {msg}")

    windows = []
    for name, w in (raw.get("windows") or {}).items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
            fail(f"window {name!r}: a name is lower-case letters, digits and _ (it is a fact's name)")
        if not isinstance(w, dict) or set(w) - {"per", "seconds", "buckets", "distinct"}:
            fail(f"window {name}: give per, seconds, buckets and optionally distinct")
        window = Window(name=name, per=w.get("per"), seconds=int(w.get("seconds", 0)),
                        buckets=int(w.get("buckets", 0)), distinct=w.get("distinct"))
        if window.per not in WINDOW_KEYS or (window.distinct and window.distinct not in WINDOW_KEYS):
            fail(f"window {name}: per and distinct must be one of {', '.join(WINDOW_KEYS)}")
        if window.buckets < 1 or window.seconds < window.buckets or window.seconds % window.buckets:
            fail(f"window {name}: seconds must be a positive multiple of buckets")
        windows.append(window)
    rules = []
    for r in raw.get("rules") or []:
        if set(r) != {"code", "decision", "when", "about"}:
            fail(f"rule {r.get('code', '?')}: give exactly code, decision, when and about")
        if r["decision"] not in DECISIONS or not r["code"].startswith(f"gate.{r['decision']}."):
            fail(f"rule {r['code']}: decision must be one of {', '.join(DECISIONS)} and the code "
                 "gate.<decision>.<name>")
        rules.append(Rule(**{k: str(v) for k, v in r.items()}))
    codes = [r.code for r in rules]
    if len(set(codes)) != len(codes):
        fail("rule codes must be unique")
    d = raw.get("degrade") or {}
    degrade = Degrade(reasoning=d.get("reasoning", "summary"), logprobs=d.get("logprobs", "drop"),
                      max_n=d.get("max_n", 1))
    if degrade.reasoning not in ("summary", "keep") or degrade.logprobs not in ("drop", "keep"):
        fail("degrade: reasoning is summary or keep, logprobs drop or keep")
    links = tuple(raw.get("link_identifiers") or ())
    if set(links) - set(LINK_IDENTIFIERS):
        fail(f"link_identifiers: each one of {', '.join(LINK_IDENTIFIERS)}")
    policy = Policy(link_identifiers=links, windows=tuple(windows), rules=tuple(rules), degrade=degrade,
                    retry_after_seconds=int(raw.get("retry_after_seconds", 30)),
                    version=hashlib.sha256(data).hexdigest()[:16])
    policy._tests  # every condition checked now, not on the first request
    return policy
