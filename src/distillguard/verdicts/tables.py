"""Scores, calibration and communities -> `verdict_accounts` and `verdict_campaigns`
(the output contract of a scan, with extra columns analysts need)."""

from __future__ import annotations

from distillguard.engine import Engine, exact_sum, ident, literal
from distillguard.linking.rules import LinkRules
from distillguard.scoring.calibrate import Calibration
from distillguard.schema.decisions import REFUSING
from distillguard.scoring.scorecard import Term

# A scorecard reason is a campaign's reason when at least this share of its members have it.
CAMPAIGN_REASON_SHARE = 0.5
# The core of a flagged community is its members whose own behaviour is unusual
# (this percentile of the population or above); a member is flagged when it is core
# or tied to the core by an anchor link (a card, a phone, a conversation...).
# Co-action alone does not sweep in ordinary customers: resold genuine traffic
# shares common prompts with them.
MEMBER_MIN_PERCENTILE = 0.99


def build_verdict_tables(engine: Engine, calibration: Calibration, terms: tuple[Term, ...], rules: LinkRules) -> None:
    # Campaign ids are derived from community ids (deterministic for the same input).
    anchors = ", ".join(literal(k) for k in rules.anchors)
    engine.execute(f"""
CREATE OR REPLACE TABLE campaign_members AS
WITH candidates AS (
  SELECT c.account_id, c.community_id, 1 - a.own_tail >= {MEMBER_MIN_PERCENTILE} AS core
  FROM communities c JOIN community_calibration k USING (community_id)
  JOIN account_calibration a USING (account_id) WHERE k.flagged
), anchor_links AS (  -- both directions, so that the joins below are equi-joins
  SELECT src AS account_id, dst AS other FROM link_edges WHERE kind IN ({anchors})
  UNION ALL SELECT dst, src FROM link_edges WHERE kind IN ({anchors})
), anchored AS (
  SELECT DISTINCT x.account_id FROM anchor_links e
  JOIN candidates x ON x.account_id = e.account_id
  JOIN candidates y ON y.account_id = e.other AND y.community_id = x.community_id AND y.core
)
SELECT account_id, community_id, 'campaign-' || substr(community_id, 2) AS campaign_id, core,
  account_id IN (SELECT account_id FROM anchored) AS anchored
FROM candidates WHERE core OR account_id IN (SELECT account_id FROM anchored)""",
                   step="verdicts: members")
    # Links inside a campaign, per account and kind: the link reasons.
    engine.execute(f"""
CREATE OR REPLACE TABLE campaign_links AS
WITH e AS (
  SELECT e.*, m.campaign_id FROM link_edges e
  JOIN campaign_members m ON m.account_id = e.src
  JOIN campaign_members n ON n.account_id = e.dst AND n.campaign_id = m.campaign_id
)
SELECT campaign_id, account_id, 'link.' || kind AS code, {exact_sum('weight')} AS weight, sum(shared) AS shared,
  count(*) AS pairs
FROM (SELECT campaign_id, src AS account_id, kind, weight, shared FROM e
      UNION ALL SELECT campaign_id, dst, kind, weight, shared FROM e)
GROUP BY ALL""", step="verdicts: links")
    n_reference = max(calibration.reference_size, 1)
    # What the gateway did with each account's requests (its decision log, read back).
    refusing = ", ".join(literal(d) for d in REFUSING)
    engine.execute(f"""
CREATE OR REPLACE TEMP TABLE gateway_counts AS
SELECT account_id, count(*) AS gateway_decisions, count(*) FILTER (WHERE decision IN ({refusing})) AS gateway_refused
FROM scan_decisions GROUP BY account_id""", step="verdicts: gateway decisions")
    engine.execute(f"""
CREATE OR REPLACE TABLE verdict_accounts AS
WITH link_reasons AS (
  SELECT account_id, list(code ORDER BY weight DESC, code) AS codes FROM campaign_links GROUP BY account_id
)
SELECT p.account_id,
  CASE WHEN k.p_value IS NOT NULL THEN 1 - k.p_value
       ELSE 1 - least(1.0, a.own_tail * {n_reference}) END AS risk,
  m.campaign_id IS NOT NULL AS flagged,
  m.campaign_id,
  CASE WHEN m.campaign_id IS NULL THEN s.reasons
       ELSE list_concat(s.reasons, coalesce(l.codes, [])) END AS reasons,
  s.score,
  1 - a.own_tail AS percentile,
  c.community_id,
  p.exchanges, p.first_seen, p.last_seen, p.unknown_account,
  coalesce(g.gateway_decisions, 0) AS gateway_decisions, coalesce(g.gateway_refused, 0) AS gateway_refused
FROM profiles p
JOIN account_scores s USING (account_id)
LEFT JOIN gateway_counts g USING (account_id)
JOIN account_calibration a USING (account_id)
LEFT JOIN communities c USING (account_id)
LEFT JOIN community_calibration k USING (community_id)
LEFT JOIN campaign_members m USING (account_id)
LEFT JOIN link_reasons l USING (account_id)""", step="verdicts: accounts")
    term_shares = ", ".join(
        f"{{'code': {literal(t.code)}, 'held': avg(({ident(t.code)} >= {t.weight / 2})::INT), "
        f"'mean': {exact_sum(ident(t.code))} / count({ident(t.code)})}}" for t in terms)
    engine.execute(f"""
CREATE OR REPLACE TABLE verdict_campaigns AS
WITH members AS (
  SELECT m.campaign_id, m.community_id, p.*, s.* EXCLUDE (account_id, score, reasons), s.score,
    coalesce(g.gateway_refused, 0) AS gateway_refused
  FROM campaign_members m JOIN profiles p USING (account_id) JOIN account_scores s USING (account_id)
  LEFT JOIN gateway_counts g USING (account_id)
), terms AS (
  SELECT campaign_id, unnest([{term_shares}]) AS t FROM members GROUP BY campaign_id
), term_reasons AS (
  SELECT campaign_id, list(t.code ORDER BY t.mean DESC) AS codes FROM terms
  WHERE t.held >= {CAMPAIGN_REASON_SHARE} GROUP BY campaign_id
), links AS (
  SELECT campaign_id, code, {exact_sum('weight')} / 2 AS weight, sum(pairs) / 2 AS pairs FROM campaign_links GROUP BY ALL
), link_reasons AS (
  SELECT campaign_id, list(code ORDER BY weight DESC, code) AS codes,
    list({{'code': code, 'pairs': pairs::BIGINT}} ORDER BY weight DESC, code) AS link_pairs
  FROM links GROUP BY campaign_id
)
SELECT m.campaign_id, count(*) AS accounts, sum(m.exchanges)::BIGINT AS exchanges,
  1 - any_value(k.p_value) AS risk,
  min(m.first_seen) AS first_seen, max(m.last_seen) AS last_seen,
  list_concat(coalesce(any_value(t.codes), []), coalesce(any_value(l.codes), [])) AS reasons,
  any_value(k.p_value) AS p_value, median(m.score) AS median_score, any_value(k.median_tail) AS median_tail,
  any_value(l.link_pairs) AS link_pairs, any_value(m.community_id) AS community_id,
  sum(m.gateway_refused)::BIGINT AS gateway_refused
FROM members m
JOIN community_calibration k USING (community_id)
LEFT JOIN term_reasons t USING (campaign_id)
LEFT JOIN link_reasons l USING (campaign_id)
GROUP BY m.campaign_id""", step="verdicts: campaigns")
