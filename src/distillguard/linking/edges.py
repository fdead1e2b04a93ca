"""signals + accounts -> `link_edges`: one row per (account pair, kind) with its weight.

Three families of evidence that two accounts have one operator (links.yaml):
shared identifiers, weighted by rarity; co-action (the same template or
near-duplicate prompt in the same time bucket); and synchronized timing, tested
against what the two accounts' volumes would give by chance. Pairs are written
once, src < dst.
"""

from __future__ import annotations

from distillguard.engine import Engine, literal
from distillguard.linking.rules import Coaction, Identifier, LinkRules, Synchrony, default_rules


def build_edges(engine: Engine, accounts_sql: str, rules: LinkRules | None = None) -> None:
    rules = rules or default_rules()
    engine.execute("CREATE OR REPLACE TABLE link_edges (src VARCHAR, dst VARCHAR, kind VARCHAR, "
                   "weight DOUBLE, shared BIGINT)", step="linking: edges")
    for ident in rules.identifiers:
        engine.execute(f"INSERT INTO link_edges {_identifier_sql(ident, accounts_sql)}",
                       step=f"linking: shared {ident.kind}")
    for co in rules.coaction:
        engine.execute(f"INSERT INTO link_edges {_coaction_sql(co)}", step=f"linking: co-action {co.kind}")
    engine.execute(f"INSERT INTO link_edges {_synchrony_sql(rules.synchrony)}", step="linking: synchrony")


def identifier_values_sql(ident: Identifier, accounts_sql: str) -> str:
    """(account_id, value) for one identifier kind, restricted to the values that link."""
    source = (f"(SELECT * FROM ({accounts_sql}) WHERE account_id IN (SELECT account_id FROM profiles))"
              if ident.source == "accounts" else "signals")
    return f"""
SELECT account_id, value, count(*) OVER (PARTITION BY value) AS n FROM (
  SELECT DISTINCT account_id, ({ident.column})::VARCHAR AS value FROM {source}
  WHERE ({ident.column}) IS NOT NULL AND ({ident.column})::VARCHAR <> '')
QUALIFY n BETWEEN 2 AND {ident.max_accounts}"""


def _identifier_sql(ident: Identifier, accounts_sql: str) -> str:
    return f"""
WITH v AS ({identifier_values_sql(ident, accounts_sql)})
SELECT a.account_id AS src, b.account_id AS dst, {literal(ident.kind)} AS kind,
  sum({ident.weight} * pow(2.0 / a.n, {ident.decay})) AS weight, count(*) AS shared
FROM v a JOIN v b ON a.value = b.value AND a.account_id < b.account_id
GROUP BY ALL"""


def coaction_keys_sql(co: Coaction) -> str:
    """(account_id, key, bucket) for one co-action kind."""
    if co.kind == "template":
        keys = ("SELECT account_id, ts, template_head AS key FROM signals WHERE template_head IS NOT NULL "
                "UNION ALL SELECT account_id, ts, xor(template_tail, 1::UBIGINT) FROM signals WHERE template_tail IS NOT NULL")
    elif co.kind == "sketch":
        keys = "SELECT account_id, ts, unnest(sketch) AS key FROM signals WHERE len(sketch) > 0"
    else:
        raise ValueError(f"unknown co-action kind {co.kind!r}")
    return f"SELECT DISTINCT account_id, key, floor(epoch(ts) / {co.bucket_seconds})::BIGINT AS bucket FROM ({keys})"


def _coaction_sql(co: Coaction) -> str:
    # A pair counts each shared bucket once, however many keys (template head and
    # tail, sketch bands) it shares there, and the least crowded key decides how
    # much that bucket says. One coincidence is not co-action: a pair needs
    # min_buckets separate buckets (SynchroTrap's repeated similarity).
    return f"""
WITH acts AS ({coaction_keys_sql(co)}),
crowds AS (SELECT key, bucket, count(*) AS m FROM acts GROUP BY ALL HAVING m BETWEEN 2 AND {co.max_accounts}),
members AS (SELECT acts.*, m FROM acts JOIN crowds USING (key, bucket)),
together AS (
  SELECT a.account_id AS src, b.account_id AS dst, a.bucket, min(a.m) AS m
  FROM members a JOIN members b ON a.key = b.key AND a.bucket = b.bucket AND a.account_id < b.account_id
  GROUP BY ALL
)
SELECT src, dst, {literal('coaction_' + co.kind)} AS kind, sum({co.weight} / (m - 1)) AS weight, count(*) AS shared
FROM together GROUP BY src, dst HAVING count(*) >= {co.min_buckets}"""


def _synchrony_sql(sy: Synchrony) -> str:
    # Expected co-active buckets if two accounts acted independently: each is
    # active in a share of the buckets of its own lifetime; they overlap for a
    # while. Only a lift far above chance (and enough buckets) is evidence.
    return f"""
WITH acts AS (
  SELECT DISTINCT account_id, floor(epoch(ts) / {sy.bucket_seconds})::BIGINT AS bucket FROM signals
  WHERE account_id IN (SELECT account_id FROM profiles WHERE exchanges >= {sy.min_exchanges})
), life AS (
  SELECT account_id, count(*) AS active, min(bucket) AS first, max(bucket) AS last FROM acts GROUP BY account_id
), crowds AS (
  SELECT bucket FROM acts GROUP BY bucket HAVING count(*) BETWEEN 2 AND {sy.max_accounts}
), together AS (
  SELECT a.account_id AS src, b.account_id AS dst, count(*) AS n
  FROM acts a JOIN acts b ON a.bucket = b.bucket AND a.account_id < b.account_id
  WHERE a.bucket IN (SELECT bucket FROM crowds)
  GROUP BY ALL HAVING n >= {sy.min_together}
)
SELECT t.src, t.dst, 'synchrony' AS kind, {sy.weight} AS weight, t.n AS shared
FROM together t JOIN life x ON x.account_id = t.src JOIN life y ON y.account_id = t.dst
WHERE t.n >= {sy.min_lift} * (x.active / (x.last - x.first + 1.0)) * (y.active / (y.last - y.first + 1.0))
                 * greatest(1, least(x.last, y.last) - greatest(x.first, y.first) + 1)"""
