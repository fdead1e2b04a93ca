"""signals + accounts -> `link_edges`: one row per (account pair, kind) with its weight.

Three families of evidence that two accounts have one operator (links.yaml):
shared identifiers, weighted by rarity; co-action (the same template or
near-duplicate prompt in the same time bucket); and synchronized timing, tested
against what the two accounts' volumes would give by chance. Pairs are written
once, src < dst.
"""

from __future__ import annotations

from distillguard.engine import Engine, literal, parts_for
from distillguard.linking.rules import Coaction, Identifier, LinkRules, Phrasing, Synchrony, default_rules


def build_edges(engine: Engine, accounts_sql: str, rules: LinkRules | None = None) -> None:
    rules = rules or default_rules()
    engine.execute("CREATE OR REPLACE TABLE link_edges (src VARCHAR, dst VARCHAR, kind VARCHAR, "
                   "weight DOUBLE, shared BIGINT)", step="linking: edges")
    for ident in rules.identifiers:
        engine.execute(f"INSERT INTO link_edges {_identifier_sql(ident, accounts_sql)}",
                       step=f"linking: shared {ident.kind}")
    # The pair-finding self-joins are split by time bucket (pairs only form inside a
    # bucket), so their memory is bounded by the part size, whatever the input size.
    parts = parts_for(engine.rows("SELECT count(*) FROM signals", step="linking: count")[0][0])
    for co in rules.coaction:
        engine.create_in_parts("coaction_together", lambda part, co=co: _coaction_together_sql(co, part), parts,
                               step=f"linking: co-action {co.kind}")
        engine.execute(f"INSERT INTO link_edges {_coaction_sql(co)}", step=f"linking: co-action {co.kind} pairs")
    sy = rules.synchrony
    engine.create_in_parts("synchrony_together", lambda part: _synchrony_together_sql(sy, part), parts,
                           step="linking: synchrony")
    engine.execute(f"INSERT INTO link_edges {_synchrony_sql(sy)}", step="linking: synchrony pairs")
    engine.execute("DROP TABLE coaction_together; DROP TABLE synchrony_together", step="linking: clean up")
    engine.execute(f"CREATE OR REPLACE TABLE account_phrases AS {_account_phrases_sql(rules.phrasing)}",
                   step="linking: account phrases")
    engine.execute(f"INSERT INTO link_edges {_phrasing_sql(rules.phrasing)}", step="linking: phrasing")
    engine.execute("DROP TABLE account_phrases", step="linking: clean up")


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


def _bucket_sql(seconds: int) -> str:
    return f"floor(epoch(ts) / {seconds})::BIGINT"


def _in_part(bucket: str, part: tuple[int, int]) -> str:
    return f"{bucket} % {part[1]} = {part[0]}" if part[1] > 1 else "true"


def coaction_keys_sql(co: Coaction, part: tuple[int, int] = (0, 1)) -> str:
    """(account_id, key, bucket) for one co-action kind, in the buckets of one part."""
    bucket = _bucket_sql(co.bucket_seconds)
    rows = f"FROM signals WHERE {_in_part(bucket, part)}"
    if co.kind == "template":
        keys = (f"SELECT account_id, ts, template_head AS key {rows} AND template_head IS NOT NULL "
                f"UNION ALL SELECT account_id, ts, xor(template_tail, 1::UBIGINT) {rows} AND template_tail IS NOT NULL")
    elif co.kind == "sketch":
        # Prompts too short to hold a template (no template key) are left out: near-
        # duplicates among them are common language ("what is the capital of france").
        keys = f"SELECT account_id, ts, unnest(sketch) AS key {rows} AND len(sketch) > 0 AND template_head IS NOT NULL"
    else:
        raise ValueError(f"unknown co-action kind {co.kind!r}")
    return f"SELECT DISTINCT account_id, key, {bucket} AS bucket FROM ({keys})"


def _coaction_together_sql(co: Coaction, part: tuple[int, int]) -> str:
    # A pair counts each shared bucket once, however many keys (template head and
    # tail, sketch bands) it shares there, and the least crowded key decides how
    # much that bucket says.
    return f"""
WITH acts AS ({coaction_keys_sql(co, part)}),
crowds AS (SELECT key, bucket, count(*) AS m FROM acts GROUP BY ALL HAVING m BETWEEN 2 AND {co.max_accounts}),
members AS (SELECT acts.*, m FROM acts JOIN crowds USING (key, bucket))
SELECT a.account_id AS src, b.account_id AS dst, a.bucket, min(a.m) AS m
FROM members a JOIN members b ON a.key = b.key AND a.bucket = b.bucket AND a.account_id < b.account_id
GROUP BY ALL"""


def _coaction_sql(co: Coaction) -> str:
    # One coincidence is not co-action: a pair needs min_buckets separate buckets
    # (SynchroTrap's repeated similarity).
    return f"""
SELECT src, dst, {literal('coaction_' + co.kind)} AS kind, sum({co.weight} / (m - 1)) AS weight, count(*) AS shared
FROM coaction_together GROUP BY src, dst HAVING count(*) >= {co.min_buckets}"""


def _synchrony_acts_sql(sy: Synchrony, part: tuple[int, int] = (0, 1)) -> str:
    bucket = _bucket_sql(sy.bucket_seconds)
    return f"""
SELECT DISTINCT account_id, {bucket} AS bucket FROM signals
WHERE {_in_part(bucket, part)}
  AND account_id IN (SELECT account_id FROM profiles WHERE exchanges >= {sy.min_exchanges})"""


def _synchrony_together_sql(sy: Synchrony, part: tuple[int, int]) -> str:
    """(src, dst, n): buckets of one part in which both accounts were active."""
    return f"""
WITH acts AS ({_synchrony_acts_sql(sy, part)}),
crowds AS (SELECT bucket FROM acts GROUP BY bucket HAVING count(*) BETWEEN 2 AND {sy.max_accounts})
SELECT a.account_id AS src, b.account_id AS dst, count(*) AS n
FROM acts a JOIN acts b ON a.bucket = b.bucket AND a.account_id < b.account_id
WHERE a.bucket IN (SELECT bucket FROM crowds)
GROUP BY ALL"""


def _synchrony_sql(sy: Synchrony) -> str:
    # Expected co-active buckets if two accounts acted independently: each is
    # active in a share of the buckets of its own lifetime; they overlap for a
    # while. Only a lift far above chance (and enough buckets) is evidence.
    return f"""
WITH life AS (
  SELECT account_id, count(*) AS active, min(bucket) AS first, max(bucket) AS last
  FROM ({_synchrony_acts_sql(sy)}) GROUP BY account_id
), together AS (
  SELECT src, dst, sum(n) AS n FROM synchrony_together GROUP BY ALL HAVING sum(n) >= {sy.min_together}
)
SELECT t.src, t.dst, 'synchrony' AS kind, {sy.weight} AS weight, t.n AS shared
FROM together t JOIN life x ON x.account_id = t.src JOIN life y ON y.account_id = t.dst
WHERE t.n >= {sy.min_lift} * (x.active / (x.last - x.first + 1.0)) * (y.active / (y.last - y.first + 1.0))
                 * greatest(1, least(x.last, y.last) - greatest(x.first, y.first) + 1)"""


def _account_phrases_sql(ph: Phrasing) -> str:
    """(account_id, phrase, df) for the rare phrases of each account's sampled prompts."""
    return f"""
WITH texts AS (
  SELECT account_id, text_hash FROM (SELECT DISTINCT account_id, text_hash FROM signals)
  QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY text_hash) <= {ph.prompts_per_account}
), used AS (
  SELECT DISTINCT t.account_id, unnest(p.phrases) AS phrase
  FROM texts t JOIN prompt_signatures p USING (text_hash) WHERE len(p.phrases) > 0
), users AS (SELECT count(DISTINCT account_id) AS n FROM used)
SELECT account_id, phrase, df FROM (SELECT *, count(*) OVER (PARTITION BY phrase) AS df FROM used)
WHERE df BETWEEN 2 AND greatest({ph.max_accounts}, {ph.max_share} * (SELECT n FROM users))"""


def _phrasing_sql(ph: Phrasing) -> str:
    # Configuration-model null: account a's strength s_a = sum(df - 1) over its rare
    # phrases; independent accounts a and b share about s_a * s_b / S of them.
    return f"""
WITH strength AS (SELECT account_id, sum(df - 1) AS s FROM account_phrases GROUP BY 1),
total AS (SELECT sum(s)::DOUBLE AS s FROM strength),
shared AS (
  SELECT a.account_id AS src, b.account_id AS dst, count(*) AS n
  FROM account_phrases a JOIN account_phrases b ON a.phrase = b.phrase AND a.account_id < b.account_id
  GROUP BY ALL HAVING count(*) >= {ph.min_shared}
)
SELECT src, dst, 'phrasing' AS kind, {ph.weight} AS weight, n AS shared
FROM shared JOIN strength x ON x.account_id = src JOIN strength y ON y.account_id = dst
WHERE n >= {ph.min_lift} * x.s * y.s / (SELECT s FROM total)"""
