"""Verdicts -> `verdict_evidence`: every reason of every flagged account, tied to
the exchanges, identifiers or linked accounts behind it.

One row per (campaign, account, reason, ref): `kind` says what `ref` is:
  exchange    a request_id whose content or parameters show the reason
  identifier  a shared value (card or e-mail hash, IP, ...) and how many members share it
  account     another member linked by co-action or synchronized timing
  metric      the profile value behind a behavioural reason
"""

from __future__ import annotations

from distillguard.engine import Engine, literal
from distillguard.linking.edges import identifier_values_sql
from distillguard.linking.rules import PHRASING, LinkRules
from distillguard.scoring.scorecard import Term

# Which exchanges show a scorecard reason (the others are shown by their metric).
EXCHANGE_EVIDENCE = {
    "content.reasoning_elicitation": "intent_reasoning >= 0.5",
    "content.synthetic_data": "intent_synthetic_data >= 0.5",
    "content.judging": "intent_judging >= 0.5",
    "content.safety_rewrite": "intent_safety_rewrite >= 0.5",
    "content.agentic_trace": "intent_agentic >= 0.5",
    "content.capability_sweep": "intent_capability_sweep >= 0.5",
    "content.distillation_share": "intent_max >= 0.5",
    "params.max_tokens_at_cap": "at_cap",
    "params.thinking": "thinking",
    "params.logprobs": "logprobs",
    "network.timezone_mismatch": "tz_class = 'mismatch'",
}


def build_evidence(engine: Engine, accounts_sql: str, terms: tuple[Term, ...], rules: LinkRules) -> None:
    engine.execute("""
CREATE OR REPLACE TABLE verdict_evidence (campaign_id VARCHAR, account_id VARCHAR, reason VARCHAR,
  kind VARCHAR, ref VARCHAR, value DOUBLE)""", step="evidence: table")
    flagged_reasons = """
SELECT campaign_id, account_id, unnest(reasons) AS reason FROM verdict_accounts WHERE flagged"""
    for code, condition in EXCHANGE_EVIDENCE.items():
        engine.execute(f"""
INSERT INTO verdict_evidence
SELECT r.campaign_id, r.account_id, r.reason, 'exchange', s.request_id, s.intent_max
FROM ({flagged_reasons}) r JOIN signals s USING (account_id)
WHERE r.reason = {literal(code)} AND coalesce({condition}, false)""", step=f"evidence: {code}")
    for t in terms:
        if t.code not in EXCHANGE_EVIDENCE:
            engine.execute(f"""
INSERT INTO verdict_evidence
SELECT r.campaign_id, r.account_id, r.reason, 'metric', {literal(t.feature)}, p.{t.feature}::DOUBLE
FROM ({flagged_reasons}) r JOIN profiles p USING (account_id) WHERE r.reason = {literal(t.code)}""",
                           step=f"evidence: {t.code}")
    for ident in rules.identifiers:
        engine.execute(f"""
INSERT INTO verdict_evidence
WITH v AS ({identifier_values_sql(ident, accounts_sql)}),
members AS (SELECT v.*, m.campaign_id FROM v JOIN campaign_members m USING (account_id))
SELECT campaign_id, account_id, {literal('link.' + ident.kind)}, 'identifier', value,
  count(*) OVER (PARTITION BY campaign_id, value)
FROM members QUALIFY count(*) OVER (PARTITION BY campaign_id, value) >= 2""",
                       step=f"evidence: link.{ident.kind}")
    # Links that are not a shared value: the evidence is the linked account itself.
    pair_kinds = ", ".join(literal(k) for k in [f"coaction_{c.kind}" for c in rules.coaction] + ["synchrony", PHRASING])
    engine.execute(f"""
INSERT INTO verdict_evidence
SELECT m.campaign_id, e.src, 'link.' || e.kind, 'account', e.dst, e.weight
FROM link_edges e JOIN campaign_members m ON m.account_id = e.src
JOIN campaign_members n ON n.account_id = e.dst AND n.campaign_id = m.campaign_id
WHERE e.kind IN ({pair_kinds})
UNION ALL
SELECT m.campaign_id, e.dst, 'link.' || e.kind, 'account', e.src, e.weight
FROM link_edges e JOIN campaign_members m ON m.account_id = e.dst
JOIN campaign_members n ON n.account_id = e.src AND n.campaign_id = m.campaign_id
WHERE e.kind IN ({pair_kinds})""", step="evidence: linked accounts")
