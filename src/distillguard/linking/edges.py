"""signals + accounts -> `link_edges`: one row per (account pair, kind) with its weight.

Four families of evidence that two accounts have one operator (links.yaml):
shared identifiers, weighted by rarity; co-action (the same template or
near-duplicate prompt in the same time bucket); synchronized timing and shared rare
wording, each tested against what chance would give. Pairs are written once,
src < dst. Identifiers of accounts are read from the accounts relation, those of
exchanges (IPs, user agents, conversations) from the scan's events (`scan_events`,
signals/request.py), reasoning blobs from `scan_reasoning` (verdicts/scan.py).
"""

from __future__ import annotations

from distillguard.engine import Engine, exact_sum, literal, parts_for
from distillguard.linking.rules import PHRASING, Coaction, Identifier, LinkRules, Phrasing, Synchrony, default_rules
from distillguard.signals.request import bucket_sql


def build_edges(engine: Engine, accounts_sql: str, rules: LinkRules | None = None) -> None:
    rules = rules or default_rules()
    engine.execute("CREATE OR REPLACE TABLE link_edges (src VARCHAR, dst VARCHAR, kind VARCHAR, "
                   "weight DOUBLE, shared BIGINT)", step="linking: edges")
    for ident in rules.identifiers:
        engine.execute(f"INSERT INTO link_edges {_identifier_sql(ident, accounts_sql)}",
                       step=f"linking: shared {ident.kind}")
    # The pair-finding self-joins are split into parts, so their memory is bounded by
    # the part size, whatever the input size. Co-action's are split by time bucket
    # (its pairs form inside a bucket, counted once per bucket).
    rows, read = engine.rows("SELECT count(*), count(*) FILTER (WHERE content_read) FROM signals",
                             step="linking: count")[0]
    for co in rules.coaction:
        engine.create_in_parts("coaction_together", lambda part, co=co: _coaction_together_sql(co, part),
                               parts_for(read), step=f"linking: co-action {co.kind}")
        engine.execute(f"INSERT INTO link_edges {_coaction_sql(co)}", step=f"linking: co-action {co.kind} pairs")
    # Synchrony's pairs are split by the first account instead: the activity table is
    # small, the pairs are many, and each pair's count is then final in its part.
    sy = rules.synchrony
    engine.execute(f"CREATE OR REPLACE TABLE synchrony_acts AS {_synchrony_acts_sql(sy)}",
                   step="linking: synchrony activity")
    engine.create_in_parts("synchrony_together", lambda part: _synchrony_together_sql(sy, part), parts_for(rows),
                           step="linking: synchrony")
    engine.execute(f"INSERT INTO link_edges {_synchrony_sql(sy)}", step="linking: synchrony pairs")
    engine.execute("DROP TABLE coaction_together; DROP TABLE synchrony_acts; DROP TABLE synchrony_together",
                   step="linking: clean up")
    engine.execute(f"CREATE OR REPLACE TABLE account_phrases AS {_account_phrases_sql(rules.phrasing)}",
                   step="linking: account phrases")
    engine.execute(f"INSERT INTO link_edges {_phrasing_sql(rules.phrasing)}", step="linking: phrasing")
    engine.execute("DROP TABLE account_phrases", step="linking: clean up")


def _named(pairs_sql: str) -> str:
    """Pairs of account_ix (signals' integer surrogate, in account_id order, which pair
    joins and counts run several times faster on) as pairs of account_id."""
    return f"""
SELECT a.account_id AS src, b.account_id AS dst, p.* EXCLUDE (src, dst) FROM ({pairs_sql}) p
JOIN profiles a ON a.account_ix = p.src JOIN profiles b ON b.account_ix = p.dst"""


def identifier_values_sql(ident: Identifier, accounts_sql: str) -> str:
    """(account_id, value) for one identifier kind, restricted to the values that link."""
    source = {"accounts": f"(SELECT * FROM ({accounts_sql}) WHERE account_id IN (SELECT account_id FROM profiles))",
              "events": "scan_events", "reasoning": "scan_reasoning"}[ident.source]
    return f"""
SELECT account_id, value, count(*) OVER (PARTITION BY value) AS n FROM (
  SELECT DISTINCT account_id, ({ident.column})::VARCHAR AS value FROM {source}
  WHERE ({ident.column}) IS NOT NULL AND ({ident.column})::VARCHAR <> '')
QUALIFY n BETWEEN 2 AND {ident.max_accounts}"""


def _identifier_sql(ident: Identifier, accounts_sql: str) -> str:
    return f"""
WITH v AS ({identifier_values_sql(ident, accounts_sql)})
SELECT a.account_id AS src, b.account_id AS dst, {literal(ident.kind)} AS kind,
  {exact_sum(f"{ident.weight} * pow(2.0 / a.n, {ident.decay})")} AS weight, count(*) AS shared
FROM v a JOIN v b ON a.value = b.value AND a.account_id < b.account_id
GROUP BY ALL"""


def _in_part(value: str, part: tuple[int, int]) -> str:
    """Whether an integer value falls in part (i, n) of a split step: value % n = i."""
    return f"{value} % {part[1]} = {part[0]}" if part[1] > 1 else "true"


def coaction_keys_sql(co: Coaction, part: tuple[int, int] = (0, 1)) -> str:
    """(account_ix, key, bucket, read_level) for one co-action kind, in the buckets of one part."""
    bucket = bucket_sql(co.bucket_seconds)
    rows = f"FROM signals WHERE {_in_part(bucket, part)}"
    if co.kind == "template":
        keys = (f"SELECT account_ix, ts, read_level, template_head AS key {rows} AND template_head IS NOT NULL "
                f"UNION ALL SELECT account_ix, ts, read_level, xor(template_tail, 1::UBIGINT) {rows} "
                f"AND template_tail IS NOT NULL")
    elif co.kind == "sketch":
        # Prompts too short to hold a template (no template key) are left out: near-
        # duplicates among them are common language ("what is the capital of france").
        # The sketch stays with the distinct prompt (signals/request.py), joined here.
        keys = (f"SELECT s.account_ix, s.ts, s.read_level, unnest(p.sketch) AS key "
                f"FROM signals s JOIN prompt_signatures p ON p.text_hash = s.text_hash AND s.content_read "
                f"WHERE {_in_part(bucket_sql(co.bucket_seconds, 's.ts'), part)} "
                f"AND s.template_head IS NOT NULL AND len(p.sketch) > 0")
    else:
        raise ValueError(f"unknown co-action kind {co.kind!r}")
    return f"SELECT DISTINCT account_ix, key, {bucket} AS bucket, read_level FROM ({keys})"


def _coaction_together_sql(co: Coaction, part: tuple[int, int]) -> str:
    # A pair counts each shared bucket once, however many keys (template head and
    # tail, sketch bands) it shares there, and the least crowded key decides how
    # much that bucket says. Both accounts' content was read in the bucket with
    # probability 2**-read_level, the larger of their levels (signals/request.py).
    return f"""
WITH acts AS ({coaction_keys_sql(co, part)}),
crowds AS (SELECT key, bucket, count(*) AS m FROM acts GROUP BY ALL HAVING m BETWEEN 2 AND {co.max_accounts}),
members AS (SELECT acts.*, m FROM acts JOIN crowds USING (key, bucket))
SELECT a.account_ix AS src, b.account_ix AS dst, a.bucket, min(a.m) AS m,
  max(greatest(a.read_level, b.read_level)) AS read_level
FROM members a JOIN members b ON a.key = b.key AND a.bucket = b.bucket AND a.account_ix < b.account_ix
GROUP BY ALL"""


def _coaction_sql(co: Coaction) -> str:
    # One coincidence is not co-action: a pair needs min_buckets separate buckets
    # (SynchroTrap's repeated similarity), counted in the buckets read; each read
    # bucket stands for the 2**read_level buckets it was sampled from.
    return _named(f"""
SELECT src, dst, {literal('coaction_' + co.kind)} AS kind, {exact_sum(f"{co.weight} / (m - 1) * pow(2, read_level)")} AS weight,
  count(*) AS shared
FROM coaction_together GROUP BY src, dst HAVING count(*) >= {co.min_buckets}""")


def _synchrony_acts_sql(sy: Synchrony) -> str:
    """(account_ix, bucket, m): the buckets each tested account was active in, and how
    many tested accounts were active in that bucket."""
    return f"""
SELECT account_ix, bucket, count(*) OVER (PARTITION BY bucket) AS m FROM (
  SELECT DISTINCT account_ix, {bucket_sql(sy.bucket_seconds)} AS bucket FROM signals
  WHERE account_ix IN (SELECT account_ix FROM profiles WHERE exchanges >= {sy.min_exchanges}))"""


def _synchrony_together_sql(sy: Synchrony, part: tuple[int, int]) -> str:
    """(src, dst, n): pairs whose src falls in one part, and the uncrowded buckets in
    which both were active. A pair lives in one part, so its count is final here."""
    crowd = f"BETWEEN 2 AND {sy.max_accounts}"
    return f"""
SELECT a.account_ix AS src, b.account_ix AS dst, count(*) AS n
FROM synchrony_acts a JOIN synchrony_acts b ON a.bucket = b.bucket AND a.account_ix < b.account_ix
WHERE a.m {crowd} AND b.m {crowd} AND {_in_part("a.account_ix", part)}
GROUP BY ALL HAVING count(*) >= {sy.min_together}"""


def _synchrony_sql(sy: Synchrony) -> str:
    # Chance co-activity, tested twice. Over the lifetime: each account active in a
    # share of the buckets of its own lifetime, the two overlapping for a while (a
    # quick screen). Hour by hour: within each hour both were active in, a_x and a_y of
    # its buckets, so a_x * a_y / buckets-per-hour in common by chance. The second
    # removes what bursts and daily routines share: an eval harness busy for a few
    # hours is co-active with everyone awake then, at no particular second.
    per_hour = 3600.0 / sy.bucket_seconds
    return _named(f"""
WITH life AS (
  SELECT account_ix, count(*) AS active, min(bucket) AS first, max(bucket) AS last
  FROM synchrony_acts GROUP BY account_ix
), screened AS (
  SELECT t.* FROM synchrony_together t JOIN life x ON x.account_ix = t.src JOIN life y ON y.account_ix = t.dst
  WHERE t.n >= {sy.min_lift} * (x.active / (x.last - x.first + 1.0)) * (y.active / (y.last - y.first + 1.0))
                   * greatest(1, least(x.last, y.last) - greatest(x.first, y.first) + 1)
), hourly AS (
  SELECT account_ix, bucket * {sy.bucket_seconds} // 3600 AS hour, count(*) AS a FROM synchrony_acts
  WHERE m <= {sy.max_accounts} AND account_ix IN (SELECT src FROM screened UNION SELECT dst FROM screened)
  GROUP BY ALL
), expected AS (
  SELECT s.src, s.dst, sum(x.a * y.a) / {per_hour} AS n
  FROM screened s JOIN hourly x ON x.account_ix = s.src JOIN hourly y ON y.account_ix = s.dst AND y.hour = x.hour
  GROUP BY ALL
)
SELECT s.src, s.dst, 'synchrony' AS kind, {sy.weight} AS weight, s.n AS shared
FROM screened s JOIN expected e USING (src, dst) WHERE s.n >= {sy.min_lift} * e.n""")


def _account_phrases_sql(ph: Phrasing) -> str:
    """(account_ix, phrase, df) for the rare phrases each account uses habitually: in at
    least min_prompts of its sampled distinct prompts."""
    return f"""
WITH texts AS (
  SELECT account_ix, text_hash FROM (SELECT DISTINCT account_ix, text_hash FROM signals WHERE content_read)
  QUALIFY row_number() OVER (PARTITION BY account_ix ORDER BY text_hash) <= {ph.prompts_per_account}
), used AS (
  SELECT account_ix, phrase FROM (
    SELECT DISTINCT t.account_ix, t.text_hash, unnest(p.phrases) AS phrase
    FROM texts t JOIN prompt_signatures p USING (text_hash) WHERE len(p.phrases) > 0)
  GROUP BY ALL HAVING count(*) >= {ph.min_prompts}
), users AS (SELECT count(DISTINCT account_ix) AS n FROM used)
SELECT account_ix, phrase, df FROM (SELECT *, count(*) OVER (PARTITION BY phrase) AS df FROM used)
WHERE df BETWEEN 2 AND greatest({ph.max_accounts}, {ph.max_share} * (SELECT n FROM users))"""


def _phrasing_sql(ph: Phrasing) -> str:
    # Configuration-model null: account a's strength s_a = sum(df - 1) over its rare
    # phrases; independent accounts a and b share about s_a * s_b / S of them.
    return _named(f"""
WITH strength AS (SELECT account_ix, sum(df - 1) AS s FROM account_phrases GROUP BY 1),
total AS (SELECT sum(s)::DOUBLE AS s FROM strength),
shared AS (
  SELECT a.account_ix AS src, b.account_ix AS dst, count(*) AS n
  FROM account_phrases a JOIN account_phrases b ON a.phrase = b.phrase AND a.account_ix < b.account_ix
  GROUP BY ALL HAVING count(*) >= {ph.min_shared}
)
SELECT src, dst, {literal(PHRASING)} AS kind, {ph.weight} AS weight, n AS shared
FROM shared JOIN strength x ON x.account_ix = src JOIN strength y ON y.account_ix = dst
WHERE n >= {ph.min_lift} * x.s * y.s / (SELECT s FROM total)""")
