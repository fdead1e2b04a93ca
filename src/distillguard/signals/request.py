"""Request signals: one row per exchange, everything later stages need and no text.

A pure step from the events relation (and the accounts relation, for the billing
country) to the `signals` table. Content is scored once here, in the engine
(vectorized SQL, no per-row Python); the prompt text itself does not travel
further, so every later stage works on small, fixed-width rows. Identifiers that
are only compared (client IP, user agent, TLS fingerprint, conversation) stay in the
events, where linking reads them: copying their strings is most of this step's cost.

Content is read through a sample. Metadata (time, parameters, network) is read on
every exchange, but the costly reading of the text (intent, template keys, sketch)
is done on a sample that gives every account at least about READ_EXCHANGES/2 exchanges
and costs the same for an account of a million exchanges as for one of a thousand:
shares are rates, and a rate is known to a few percent from a few hundred draws.
The sample is nested by time: an account with n exchanges is read in the
READ_BUCKET_SECONDS buckets whose hash is 0 modulo 2**level, level = ceil(log2(n /
READ_EXCHANGES)) (0, read in full, for most accounts), lowered until at least
READ_MIN_BUCKETS buckets are read. A heavier account's buckets are a
subset of a lighter one's, so two accounts are both read in a bucket with probability
2**-max(level): co-action keeps its meaning and undoes the sampling by that weight
(Horvitz-Thompson; linking/edges.py). An exchange read for one account is never read
for another that sent the same text unsampled, which would favour shared texts. Set
DISTILLGUARD_SAMPLE_KEY to a secret so that the buckets read cannot be predicted.
"""

from __future__ import annotations

import hashlib
import os

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
# Content is read from the start and the end of a prompt, where instructions sit;
# a long pasted document in between costs regex time and says nothing about intent.
# The window covers what the template keys and sketch read too (SKETCH_CHARS,
# TAIL_CHARS; tests/signals/test_request.py holds it to that).
WINDOW_HEAD, WINDOW_TAIL = 1000, 300
# The content sample (see above): at least about half this many of an account's
# exchanges are read, in time buckets as long as co-action's (links.yaml), so that a
# co-action bucket is read whole or not at all.
READ_EXCHANGES = 256
READ_BUCKET_SECONDS = 600
# ...and in at least this many buckets: a batch of 100,000 requests sent within an hour
# is read in full, as a sample of two of its six buckets could miss it all.
READ_MIN_BUCKETS = 32


def bucket_sql(seconds: int, ts: str = "ts") -> str:
    """The number of the `seconds`-long time bucket a timestamp falls in."""
    return f"floor(epoch({ts}) / {seconds})::BIGINT"


def read_bucket_sql(ts: str = "ts") -> str:
    """The content-sample bucket of a timestamp (the co-action bucket of links.yaml)."""
    return bucket_sql(READ_BUCKET_SECONDS, ts)


# A secret that picks the sample's buckets. Without it the buckets follow a public hash,
# and an operator who knows it could harvest in the buckets a heavy account is not read in.
SAMPLE_KEY_ENV = "DISTILLGUARD_SAMPLE_KEY"


def sample_salt() -> int:
    """The 64-bit salt of the content sample's bucket hash (0 when no key is set)."""
    key = os.environ.get(SAMPLE_KEY_ENV, "")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") if key else 0


def is_read_sql(level: str, ts: str = "ts") -> str:
    """Whether an exchange at ts of an account at this read level is in the content sample."""
    bucket = read_bucket_sql(ts)
    salt = sample_salt()
    keyed = f"hash({bucket}, {salt}::UBIGINT)" if salt else f"hash({bucket})"
    return f"{keyed} % (1::UBIGINT << {level}) = 0"


def read_window_sql(prompt: str) -> str:
    """The part of a prompt that content signals read (WINDOW_HEAD, WINDOW_TAIL)."""
    return (f"CASE WHEN length({prompt}) > {WINDOW_HEAD + WINDOW_TAIL} "
            f"THEN left({prompt}, {WINDOW_HEAD}) || chr(10) || right({prompt}, {WINDOW_TAIL}) ELSE {prompt} END")


def read_window(prompt: str) -> str:
    """read_window_sql for one prompt, on the online path (tests/signals/test_request.py
    holds the two equal)."""
    if len(prompt) > WINDOW_HEAD + WINDOW_TAIL:
        return prompt[:WINDOW_HEAD] + "\n" + prompt[-WINDOW_TAIL:]
    return prompt


def build_signals(engine: Engine, events_sql: str, accounts_sql: str, *, until: str | None = None) -> None:
    """events -> `signals` (per exchange), `models` (per model: cap and release)."""
    cutoff = f"WHERE ts <= {until}" if until else ""
    engine.execute(f"CREATE OR REPLACE TEMP VIEW scan_events AS SELECT * FROM ({events_sql}) {cutoff}",
                   step="signals: window")
    _build_models(engine)
    _build_timezones(engine, accounts_sql)
    # Per account: its content-sample level, and account_ix, a dense integer in
    # account_id order that linking's pair joins use instead of the string.
    engine.execute(f"""
CREATE OR REPLACE TEMP TABLE read_levels AS
SELECT account_id, row_number() OVER (ORDER BY account_id)::INTEGER AS account_ix, count(*) AS exchanges,
  greatest(0, least(ceil(log2(count(*) / {READ_EXCHANGES})),
  floor(log2(approx_count_distinct({read_bucket_sql()}) / {READ_MIN_BUCKETS}))))::INT AS read_level
FROM scan_events GROUP BY account_id""", step="signals: content sample")
    # The texts read, cut to the window any signal reads, in one streaming pass; the
    # per-text work below is split by a hash of the text, so its memory is bounded by
    # the part size, whatever the input size.
    window = read_window_sql("prompt")
    engine.execute(f"""
CREATE OR REPLACE TABLE read_rows AS
SELECT hash(prompt, system) AS intent_key, hash(prompt) AS text_hash, {window} AS text, system
FROM scan_events JOIN read_levels USING (account_id) WHERE {is_read_sql('read_level')}""",
                   step="signals: texts read")
    parts = parts_for(engine.rows("SELECT count(*) FROM read_rows", step="signals: count")[0][0])
    for i in range(parts):
        _read_texts(engine, (i, parts))
    engine.execute("DROP TABLE read_rows; DROP TABLE read_texts", step="signals: clean up")
    kinds = ", ".join(f"intent_{k}" for k in INTENT_KINDS)
    top = " ".join(f"WHEN intent_{k} = intent_max THEN '{k}'" for k in INTENT_KINDS)
    scores = ", ".join(f"i.intent_{k}" for k in INTENT_KINDS)
    engine.execute(f"""
CREATE OR REPLACE TABLE signals AS
WITH s AS (
  SELECT request_id, account_id, ts, model, turn, status,
    max_tokens, thinking, logprobs, n, tools, temperature, asn, client_timezone,
    CASE WHEN client_ip IS NOT NULL THEN hash(client_ip) END AS client_ip_key,
    hash(prompt) AS text_hash, r.account_ix, r.read_level, {is_read_sql('r.read_level')} AS content_read,
    -- Keys of the text read, NULL (joining nothing) where it was not.
    CASE WHEN content_read THEN text_hash END AS read_text,
    CASE WHEN content_read THEN hash(prompt, system) END AS read_intent
  FROM scan_events JOIN read_levels r USING (account_id)
)
SELECT s.* EXCLUDE (client_timezone, read_text, read_intent), {scores},
  ps.template_head, ps.template_tail,
  greatest({kinds}) AS intent_max,
  CASE WHEN greatest({kinds}) >= 0.5 THEN CASE {top} END END AS intent_top,
  coalesce(s.max_tokens >= m.cap, false) AS at_cap,
  coalesce(s.max_tokens >= m.cap / 2, false) AS high_budget,
  m.released_at IS NOT NULL AS new_model,
  coalesce(tz.tz_class, 'unknown') AS tz_class
FROM s
LEFT JOIN prompt_intents i ON i.intent_key = s.read_intent
LEFT JOIN prompt_signatures ps ON ps.text_hash = s.read_text
LEFT JOIN models m USING (model)
LEFT JOIN account_billing b USING (account_id)
LEFT JOIN client_tz_class tz ON tz.client_timezone = s.client_timezone AND tz.billing_country = b.billing_country
""", step="signals: score requests")


def _read_texts(engine: Engine, part: tuple[int, int]) -> None:
    """Keys, sketch and intent of the distinct texts read in one part (by text hash).

    Each distinct (prompt, system) is read once: retries, fixed evaluation items and
    templated system prompts repeat a lot, and the regexes are the costliest step."""
    i, n = part
    label = f" ({i + 1}/{n})" if n > 1 else ""
    keep = f"WHERE text_hash % {n} = {i}" if n > 1 else ""
    engine.execute(f"""
CREATE OR REPLACE TEMP TABLE read_texts AS
SELECT intent_key, text_hash, any_value(text) AS text, any_value(system) AS system
FROM read_rows {keep} GROUP BY 1, 2""", step=f"signals: distinct texts{label}")
    create = "CREATE OR REPLACE TABLE {} AS" if i == 0 else "INSERT INTO {}"
    signatures = signatures_sql("read_texts", text="text", key="text_hash")
    engine.execute(f"{create.format('prompt_signatures')} {signatures}", step=f"signals: templates and sketches{label}")
    intents = intent_scores_sql("read_texts", prompt="text", system="system")
    engine.execute(f"{create.format('prompt_intents')} SELECT * EXCLUDE (text_hash, text, system) FROM ({intents})",
                   step=f"signals: intent{label}")


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
