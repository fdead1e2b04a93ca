"""Campaigns -> what an analyst needs to act on and share them:

  verdict_indicators  per campaign: the values its members share (indicators.yaml), how
                      many members and how many other accounts use each
  verdict_timeline    exchanges per hour and model, per campaign and for all traffic
  verdict_models      each model's first appearance in the traffic (its release, as seen)
  verdict_samples     a few exchanges per campaign and reason, with the start of the prompt

and the keyed hashes: values that point at customers are replaced by keyed hashes in
the indicators and in the evidence, before anything is written (verdicts/keyed.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import pyarrow as pa
import yaml

from distillguard.engine import Engine, literal
from distillguard.verdicts.keyed import keyed_hash

SAMPLES_PER_REASON = 5
SAMPLE_CHARS = 1000
KEYED_POLICIES = ("always", "unless_raw_ips", "never")


@dataclass(frozen=True)
class IndicatorKind:
    kind: str
    column: str
    source: str  # events | accounts
    keyed: str  # always | unless_raw_ips | never
    about: str
    namespace: str | None = None

    def is_keyed(self, raw_ips: bool) -> bool:
        return self.keyed == "always" or (self.keyed == "unless_raw_ips" and not raw_ips)


@dataclass(frozen=True)
class IndicatorPolicy:
    max_values: int
    kinds: tuple[IndicatorKind, ...]

    def keyed_kinds(self, raw_ips: bool) -> dict[str, str]:
        """kind -> namespace of the kinds whose values leave only as keyed hashes."""
        return {k.kind: k.namespace or k.kind for k in self.kinds if k.is_keyed(raw_ips)}


@functools.cache  # the shipped file, read once (the result is immutable)
def default_policy() -> IndicatorPolicy:
    raw = yaml.safe_load(resources.files("distillguard.verdicts").joinpath("indicators.yaml").read_text())
    kinds = tuple(IndicatorKind(kind=k, **v) for k, v in raw["kinds"].items())
    for k in kinds:
        if k.keyed not in KEYED_POLICIES or k.source not in ("events", "accounts"):
            raise ValueError(f"indicators.yaml: {k.kind}: keyed must be one of {KEYED_POLICIES}, "
                             f"source events or accounts")
        if k.keyed != "never" and not k.namespace:
            raise ValueError(f"indicators.yaml: {k.kind} is keyed and needs a namespace")
    return IndicatorPolicy(int(raw["max_values"]), kinds)


def build_indicators(engine: Engine, accounts_sql: str, policy: IndicatorPolicy) -> None:
    engine.execute("""
CREATE OR REPLACE TABLE verdict_indicators (campaign_id VARCHAR, kind VARCHAR, value VARCHAR, keyed BOOLEAN,
  accounts BIGINT, exchanges BIGINT, outside_accounts BIGINT, first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ)""",
                   step="indicators: table")
    for k in policy.kinds:
        if k.source == "events":
            uses = f"""SELECT account_id, ({k.column})::VARCHAR AS value, count(*) AS exchanges,
  min(ts) AS first_seen, max(ts) AS last_seen FROM scan_events
  WHERE ({k.column}) IS NOT NULL AND ({k.column})::VARCHAR <> '' GROUP BY ALL"""
        else:
            uses = f"""SELECT DISTINCT account_id, ({k.column})::VARCHAR AS value, NULL::BIGINT AS exchanges,
  NULL::TIMESTAMPTZ AS first_seen, NULL::TIMESTAMPTZ AS last_seen
  FROM ({accounts_sql}) WHERE ({k.column}) IS NOT NULL AND ({k.column})::VARCHAR <> ''
  AND account_id IN (SELECT account_id FROM profiles)"""
        engine.execute(f"""
INSERT INTO verdict_indicators
WITH uses AS ({uses}),
per_campaign AS (
  SELECT m.campaign_id, u.value, count(*) AS accounts, sum(u.exchanges)::BIGINT AS exchanges,
    min(u.first_seen) AS first_seen, max(u.last_seen) AS last_seen
  FROM uses u JOIN campaign_members m USING (account_id) GROUP BY m.campaign_id, u.value
  QUALIFY row_number() OVER (PARTITION BY m.campaign_id
                             ORDER BY count(*) DESC, sum(u.exchanges) DESC NULLS LAST, u.value) <= {policy.max_values}
), users AS (
  SELECT value, count(DISTINCT account_id) AS users FROM uses
  WHERE value IN (SELECT value FROM per_campaign) GROUP BY value
)
SELECT campaign_id, {literal(k.kind)}, value, false, accounts, exchanges, users - accounts, first_seen, last_seen
FROM per_campaign JOIN users USING (value)""", step=f"indicators: {k.kind}")


def key_identifiers(engine: Engine, policy: IndicatorPolicy, key: bytes, *, raw_ips: bool) -> None:
    """Replace every value of a keyed kind, in the indicators and the evidence, by its keyed hash.

    The hashes are computed here in Python (the standard hmac module) over the distinct
    values only: a campaign's shared values are few, whatever the traffic's size."""
    keyed = policy.keyed_kinds(raw_ips)
    if not keyed:
        return
    kinds = ", ".join(literal(k) for k in keyed)
    links = ", ".join(literal("link." + k) for k in keyed)
    values = engine.rows(f"""
SELECT DISTINCT kind, value FROM verdict_indicators WHERE kind IN ({kinds})
UNION SELECT DISTINCT substr(reason, 6), ref FROM verdict_evidence WHERE kind = 'identifier' AND reason IN ({links})""",
                         step="keyed hashes: values")
    engine.register("keyed_values", pa.table({
        "kind": pa.array([k for k, _ in values], pa.string()),
        "value": pa.array([v for _, v in values], pa.string()),
        "hashed": pa.array([keyed_hash(keyed[k], v, key) for k, v in values], pa.string()),
    }))
    engine.execute("""
CREATE OR REPLACE TABLE verdict_indicators AS
SELECT i.* REPLACE (coalesce(h.hashed, i.value) AS value, h.hashed IS NOT NULL AS keyed)
FROM verdict_indicators i LEFT JOIN keyed_values h ON h.kind = i.kind AND h.value = i.value""",
                   step="keyed hashes: indicators")
    # An identifier row's reason is link.<kind>: a plain equi-join on (kind, value).
    engine.execute("""
CREATE OR REPLACE TABLE verdict_evidence AS
SELECT e.* EXCLUDE (link_kind) REPLACE (coalesce(h.hashed, e.ref) AS ref)
FROM (SELECT *, CASE WHEN kind = 'identifier' THEN substr(reason, 6) END AS link_kind FROM verdict_evidence) e
LEFT JOIN keyed_values h ON h.kind = e.link_kind AND h.value = e.ref""", step="keyed hashes: evidence")
    engine.unregister("keyed_values")


def build_timeline(engine: Engine) -> None:
    engine.execute("""
CREATE OR REPLACE TABLE verdict_timeline AS
SELECT m.campaign_id, time_bucket(INTERVAL 1 HOUR, s.ts) AS hour, s.model,
  count(*) AS exchanges, count(DISTINCT s.account_id) AS accounts
FROM signals s JOIN campaign_members m USING (account_id) GROUP BY ALL
UNION ALL
SELECT NULL, time_bucket(INTERVAL 1 HOUR, ts), model, count(*), count(DISTINCT account_id)
FROM signals GROUP BY ALL""", step="timeline")
    engine.execute("""
CREATE OR REPLACE TABLE verdict_models AS
SELECT model, any_value(m.first_seen) AS first_seen, count(*) AS exchanges
FROM signals s JOIN models m USING (model) GROUP BY model""", step="models")


def build_samples(engine: Engine) -> None:
    """Per campaign: the exchanges that show each reason most strongly, and a few of its
    exchanges picked by a hash of their id (what the campaign sends, whatever it is flagged for)."""
    engine.execute(f"""
CREATE OR REPLACE TABLE verdict_samples AS
WITH by_reason AS (
  SELECT campaign_id, account_id, reason, ref AS request_id, value AS intent FROM verdict_evidence
  WHERE kind = 'exchange'
  QUALIFY row_number() OVER (PARTITION BY campaign_id, reason ORDER BY value DESC NULLS LAST, ref)
          <= {SAMPLES_PER_REASON}
), any_exchange AS (
  SELECT m.campaign_id, s.account_id, NULL::VARCHAR AS reason, s.request_id, s.intent_max AS intent
  FROM signals s JOIN campaign_members m USING (account_id)
  QUALIFY row_number() OVER (PARTITION BY m.campaign_id ORDER BY md5(s.request_id)) <= {SAMPLES_PER_REASON}
), picked AS (SELECT * FROM by_reason UNION ALL SELECT * FROM any_exchange)
SELECT p.campaign_id, p.account_id, p.request_id, any_value(e.ts) AS ts, any_value(e.model) AS model, p.reason,
  any_value(p.intent) AS intent, left(any_value(e.prompt), {SAMPLE_CHARS}) AS prompt,
  length(any_value(e.prompt))::BIGINT AS prompt_chars
FROM picked p JOIN scan_events e ON e.request_id = p.request_id AND e.account_id = p.account_id
GROUP BY p.campaign_id, p.account_id, p.request_id, p.reason""", step="samples")
