"""policy.yaml: the shipped file loads, conditions cannot run code, the strongest decision wins."""

from __future__ import annotations

import pytest

from distillguard.gateway.policy import DECISIONS, PolicyError, default_policy, parse_policy

RULES = b"""
windows:
  account_requests_1m: {per: account, seconds: 60, buckets: 6}
rules:
  - {code: gate.mark.watch, decision: mark, when: "action == 'monitor'", about: watched}
  - {code: gate.block.suspended, decision: block, when: "action == 'suspend'", about: suspended}
  - {code: gate.throttle.fast, decision: throttle, when: "account_requests_1m > 10", about: fast}
"""


def _facts(**kw):
    return {"action": "none", "campaign": None, "linked_campaign": None, "account_requests_1m": 0, **kw}


def test_the_shipped_policy_loads_and_every_rule_names_its_decision():
    policy = default_policy()
    assert policy.rules and all(r.code.startswith(f"gate.{r.decision}.") for r in policy.rules)
    assert {r.decision for r in policy.rules} <= set(DECISIONS)
    assert set(policy.link_identifiers) == {"payment", "phone", "email"}


def test_the_strongest_decision_wins_and_every_rule_that_held_is_a_reason():
    policy = parse_policy(RULES, "test")
    assert policy.decide(_facts()) == ("allow", ())
    assert policy.decide(_facts(action="monitor")) == ("mark", ("gate.mark.watch",))
    assert policy.decide(_facts(action="suspend", account_requests_1m=11)) == \
        ("block", ("gate.block.suspended", "gate.throttle.fast"))
    assert policy.decide(_facts(account_requests_1m=10)) == ("allow", ())


@pytest.mark.parametrize("when, complaint", [
    ("__import__('os').system('true')", "not Call"),
    ("action.__class__", "not Attribute"),
    ("unknown_fact > 1", "unknown fact 'unknown_fact'"),
    ("action ==", "not an expression"),
    ("[x for x in campaign]", "not ListComp"),
])
def test_a_condition_can_compare_facts_but_never_run_code(when, complaint):
    text = RULES.replace(b"action == 'monitor'", when.encode().replace(b'"', b'\\"'))
    with pytest.raises(PolicyError, match="rule gate.mark.watch") as e:
        parse_policy(text, "test")
    assert complaint in str(e.value)


@pytest.mark.parametrize("change, complaint", [
    ((b"decision: mark", b"decision: ban"), "decision must be one of"),
    ((b"code: gate.mark.watch", b"code: mark.watch"), "gate.<decision>.<name>"),
    ((b"per: account", b"per: cookie"), "per and distinct must be one of"),
    ((b"seconds: 60, buckets: 6", b"seconds: 60, buckets: 7"), "multiple of buckets"),
    ((b"account_requests_1m: {", b"Account-Rate: {"), "lower-case letters"),
])
def test_a_malformed_policy_is_refused_with_the_reason(change, complaint):
    with pytest.raises(PolicyError, match=complaint):
        parse_policy(RULES.replace(*change), "test")


def test_the_prompt_is_scored_only_when_a_rule_reads_an_intent_fact(monkeypatch):
    from distillguard.gateway import request as request_module
    from distillguard.gateway.request import DecisionRequest, request_facts

    scored = []
    real = request_module.request_scores
    monkeypatch.setattr(request_module, "request_scores", lambda *a: scored.append(a) or real(*a))
    policy = parse_policy(RULES.replace(b'"account_requests_1m > 10"',
                                        b'"account_requests_1m > 10 and intent_reasoning > 0.5"'), "test")
    elicit = DecisionRequest(account_id="a", prompt="Show your full chain of thought, every step, before answering.")
    # the rule stops at its first condition: the prompt is never scored
    facts = request_facts(elicit, 0.0)
    facts.update(_facts())
    assert policy.decide(facts) == ("allow", ()) and scored == []
    # it reads the score: the prompt is scored once, and the rule holds
    facts = request_facts(elicit, 0.0)
    facts.update(_facts(account_requests_1m=11))
    assert policy.decide(facts) == ("throttle", ("gate.throttle.fast",))
    assert len(scored) == 1 and facts["intent_top"] == "reasoning"
