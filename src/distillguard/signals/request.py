"""Request signals: one row per exchange, everything later stages need and no text.

A pure step from the events relation (and the accounts relation, for the billing
country) to the `signals` table. Content is scored once here, in the engine
(vectorized SQL, no per-row Python); the prompt text itself does not travel
further, so every later stage works on small, fixed-width rows.
"""

from __future__ import annotations

from distillguard.engine import Engine, parts_for
from distillguard.signals.intent import INTENT_KINDS, intent_scores_sql
from distillguard.signals.templates import signatures_sql
from distillguard.signals.timezones import country_offsets_table, tz_class_sql, tz_offsets_table

# A model counts as newly released when it first appears this long after the
# traffic begins: earlier, its "first seen" is only the start of the logs.
NEW_MODEL_AFTER = "INTERVAL 1 DAY"
# A max_tokens cap is the largest value at least this many accounts asked for:
# one client's typo must not define the cap.
CAP_MIN_ACCOUNTS = 3
# Intent is read from the start and the end of a prompt, where instructions sit;
# a long pasted document in between costs regex time and says nothing about intent.
INTENT_HEAD, INTENT_TAIL = 1000, 300


def build_signals(engine: Engine, events_sql: str, accounts_sql: str, *, until: str | None = None) -> None:
    """events -> `signals` (per exchange), `models` (per model: cap and release)."""
    window = f"WHERE ts <= {until}" if until else ""
    engine.execute(f"CREATE OR REPLACE TEMP VIEW scan_events AS SELECT * FROM ({events_sql}) {window}",
                   step="signals: window")
    _build_models(engine)
    _build_timezones(engine, accounts_sql)
    # Per-prompt work is split by a hash of the text, so its memory is bounded by the
    # part size, whatever the input size.
    parts = parts_for(engine.rows("SELECT count(*) FROM scan_events", step="signals: count")[0][0])
    engine.create_in_parts("prompt_signatures", lambda part: signatures_sql("scan_events", part=part), parts,
                           step="signals: templates and sketches")
    _build_intents(engine, parts)
    kinds = ", ".join(f"intent_{k}" for k in INTENT_KINDS)
    top = " ".join(f"WHEN intent_{k} = intent_max THEN '{k}'" for k in INTENT_KINDS)
    scores = ", ".join(f"i.intent_{k}" for k in INTENT_KINDS)
    engine.execute(f"""
CREATE OR REPLACE TABLE signals AS
WITH s AS (
  SELECT request_id, account_id, ts, model, conversation_id, turn, status,
    max_tokens, thinking, logprobs, n, tools, temperature,
    client_ip, asn, user_agent, tls_fingerprint, client_timezone,
    hash(prompt) AS text_hash, hash(prompt, system) AS intent_key
  FROM scan_events
)
SELECT s.* EXCLUDE (intent_key), {scores},
  ps.template_head, ps.template_tail, coalesce(ps.sketch, []) AS sketch,
  greatest({kinds}) AS intent_max,
  CASE WHEN greatest({kinds}) >= 0.5 THEN CASE {top} END END AS intent_top,
  coalesce(s.max_tokens >= m.cap, false) AS at_cap,
  coalesce(s.max_tokens >= m.cap / 2, false) AS high_budget,
  m.released_at IS NOT NULL AS new_model,
  coalesce(tz.tz_class, 'unknown') AS tz_class
FROM s
JOIN prompt_intents i USING (intent_key)
LEFT JOIN prompt_signatures ps ON ps.text_hash = s.text_hash
LEFT JOIN models m USING (model)
LEFT JOIN account_billing b USING (account_id)
LEFT JOIN client_tz_class tz ON tz.client_timezone = s.client_timezone AND tz.billing_country = b.billing_country
""", step="signals: score requests")


def _build_intents(engine: Engine, parts: int) -> None:
    """Intent scores once per distinct (prompt, system): retries, fixed evaluation items
    and templated system prompts repeat a lot, and regexes are the costliest step."""
    window_text = (f"CASE WHEN length(prompt) > {INTENT_HEAD + INTENT_TAIL} "
                   f"THEN left(prompt, {INTENT_HEAD}) || chr(10) || right(prompt, {INTENT_TAIL}) ELSE prompt END")

    def part_sql(part: tuple[int, int]) -> str:
        keep = f"WHERE hash(prompt, system) % {part[1]} = {part[0]}" if part[1] > 1 else ""
        distinct = f"""(SELECT hash(prompt, system) AS intent_key, any_value({window_text}) AS intent_text,
  any_value(system) AS system FROM scan_events {keep} GROUP BY 1)"""
        return (f"SELECT * EXCLUDE (intent_text, system) FROM "
                f"({intent_scores_sql(distinct, prompt='intent_text', system='system')})")

    engine.create_in_parts("prompt_intents", part_sql, parts, step="signals: intent")


def _build_models(engine: Engine) -> None:
    engine.execute(f"""
CREATE OR REPLACE TABLE models AS
WITH caps AS (
  SELECT model, max(max_tokens) AS cap FROM (
    SELECT model, max_tokens FROM scan_events WHERE max_tokens IS NOT NULL
    GROUP BY model, max_tokens HAVING count(DISTINCT account_id) >= {CAP_MIN_ACCOUNTS})
  GROUP BY model
), seen AS (
  SELECT model, min(ts) AS first_seen FROM scan_events GROUP BY model
)
SELECT model, cap, first_seen,
  CASE WHEN first_seen > (SELECT min(ts) FROM scan_events) + {NEW_MODEL_AFTER} THEN first_seen END AS released_at
FROM seen LEFT JOIN caps USING (model)
""", step="signals: models")


_PAIRS = """(SELECT DISTINCT e.client_timezone, b.billing_country FROM scan_events e
  JOIN account_billing b USING (account_id) WHERE e.client_timezone IS NOT NULL)"""


def _build_timezones(engine: Engine, accounts_sql: str) -> None:
    """(client tz, billing country) -> tz_class, once per distinct pair, never per row."""
    names = [r[0] for r in engine.rows(
        "SELECT DISTINCT client_timezone FROM scan_events WHERE client_timezone IS NOT NULL",
        step="signals: client time zones")]
    engine.register("client_tz_offsets", tz_offsets_table(names))
    engine.register("country_tz_offsets", country_offsets_table())
    engine.execute(f"CREATE OR REPLACE TEMP TABLE account_billing AS SELECT account_id, billing_country "
                   f"FROM ({accounts_sql})", step="signals: billing countries")
    engine.execute(f"CREATE OR REPLACE TEMP TABLE client_tz_class AS {tz_class_sql(_PAIRS)}",
                   step="signals: time-zone consistency")
