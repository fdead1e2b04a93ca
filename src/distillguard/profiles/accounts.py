"""signals + accounts -> `profiles`: one row per account seen in the events.

Every column is a rate, a share or a duration, so that accounts of very different
volume compare (an account with 30 exchanges and one with 30,000 both have an
intent share). Content shares are taken over the exchanges whose text was read
(`content_read`, signals/request.py): SQL averages skip the NULLs of the others.
The scorecard (scoring/scorecard.yaml) reads these columns by name.
"""

from __future__ import annotations

from distillguard.engine import Engine, exact_sum
from distillguard.signals.intent import INTENT_KINDS

# Gaps longer than this end a session: inter-arrival regularity is measured within sessions.
SESSION_GAP_S = 6 * 3600
# A template shared by at least this many accounts counts as reused.
SHARED_TEMPLATE_ACCOUNTS = 3


def build_profiles(engine: Engine, accounts_sql: str) -> None:
    intent_shares = ",\n  ".join(f"avg((intent_{k} >= 0.5)::INT) AS intent_{k}_share" for k in INTENT_KINDS)
    engine.execute(f"""
CREATE OR REPLACE TABLE profiles AS
WITH templates AS (
  SELECT key, count(DISTINCT account_id) AS n_accounts FROM (
    SELECT template_head AS key, account_id FROM signals WHERE template_head IS NOT NULL
    UNION ALL SELECT template_tail, account_id FROM signals WHERE template_tail IS NOT NULL)
  GROUP BY key
), s AS (
  SELECT s.*,
    CASE WHEN s.content_read THEN coalesce(h.n_accounts, 0) >= {SHARED_TEMPLATE_ACCOUNTS}
      OR coalesce(t.n_accounts, 0) >= {SHARED_TEMPLATE_ACCOUNTS} END AS shared_template
  FROM signals s
  LEFT JOIN templates h ON h.key = s.template_head
  LEFT JOIN templates t ON t.key = s.template_tail
), gaps AS (  -- the window sorts only what it needs: a narrow row, an integer partition
  -- The sample standard deviation from exact integer sums of microseconds (the same
  -- bits on every run; a parallel float aggregate is not).
  SELECT account_ix, sqrt(greatest(0, (sum(g * g)::DOUBLE - sum(g)::DOUBLE * sum(g) / count(*)) / (count(*) - 1)))
    / nullif(sum(g)::DOUBLE / count(*), 0) AS gap_cv FROM (
    SELECT account_ix, (epoch_us(ts) - epoch_us(lag(ts) OVER (PARTITION BY account_ix ORDER BY ts)))::HUGEINT AS g
    FROM signals)
  WHERE g < {SESSION_GAP_S * 1_000_000} GROUP BY account_ix HAVING count(*) >= 2
), hours AS (
  SELECT account_id, hour(ts) AS h, count(*) AS n FROM signals GROUP BY ALL
), diurnal AS (
  SELECT account_id, -{exact_sum('p * ln(p)')} / ln(24) AS diurnal_entropy FROM (
    SELECT account_id, n / sum(n) OVER (PARTITION BY account_id) AS p FROM hours) GROUP BY account_id
), days AS (
  SELECT account_id, ts::DATE AS d, count(*) AS n FROM signals GROUP BY ALL
), daily AS (
  SELECT account_id, median(n) AS daily_median, max(n) AS daily_max,
    sqrt(greatest(0, sum(n * n)::DOUBLE / count(*) - pow(sum(n)::DOUBLE / count(*), 2)))
      / (sum(n)::DOUBLE / count(*)) AS daily_cv FROM days GROUP BY account_id
), pivots AS (
  SELECT s.account_id,
    (epoch(min(s.ts) FILTER (WHERE s.new_model)) - epoch(any_value(m.released_at))) / 3600 AS pivot_hours,
    avg(s.new_model::INT) FILTER (WHERE s.ts >= (SELECT min(released_at) FROM models)) AS new_model_share
  FROM signals s LEFT JOIN models m ON m.model = s.model AND s.new_model
  GROUP BY s.account_id
), base AS (
  SELECT account_id, any_value(account_ix) AS account_ix,
    count(*) AS exchanges,
    count(DISTINCT ts::DATE) AS active_days,
    min(ts) AS first_seen, max(ts) AS last_seen,
    avg((intent_max >= 0.5)::INT) AS intent_share,
    {intent_shares},
    avg(at_cap::INT) AS at_cap_share,
    avg(high_budget::INT) AS high_budget_share,
    avg(coalesce(thinking, false)::INT) AS thinking_share,
    avg((coalesce(tools, 0) > 0)::INT) AS tools_share,
    avg(coalesce(tools, 0)) AS tools_mean,
    avg(coalesce(logprobs, false)::INT) AS logprobs_share,
    avg((coalesce(n, 1) > 1)::INT) AS multi_n_share,
    avg((temperature = 0)::INT) AS temperature_zero_share,
    avg((tz_class = 'mismatch')::INT) AS tz_mismatch_share,
    avg((tz_class = 'server_utc')::INT) AS tz_server_share,
    avg(coalesce(turn, 0)) AS turn_mean,
    avg((coalesce(turn, 0) = 0)::INT) AS single_turn_share,
    avg(shared_template::INT) AS template_reuse_share,
    approx_count_distinct(coalesce(template_head, template_tail)) / count(*) FILTER (WHERE content_read)
      AS template_variety,
    count(*) FILTER (WHERE content_read) AS content_reads,
    count(DISTINCT client_ip_key) AS client_ips,
    count(DISTINCT asn) AS asns
  FROM s GROUP BY account_id
)
SELECT b.*, coalesce(g.gap_cv, 1) AS gap_cv, d.diurnal_entropy, dl.daily_median, dl.daily_max, dl.daily_cv,
  p.pivot_hours, p.new_model_share,
  (epoch(b.first_seen) - epoch(a.created_at)) / 86400 AS age_days_at_first_use,
  a.account_type, a.verified, a.org_id, a.billing_country, a.created_at,
  a.account_id IS NULL AS unknown_account
FROM base b
JOIN diurnal d USING (account_id)
JOIN daily dl USING (account_id)
JOIN pivots p USING (account_id)
LEFT JOIN gaps g ON g.account_ix = b.account_ix
LEFT JOIN ({accounts_sql}) a ON a.account_id = b.account_id
""", step="profiles: accounts")
