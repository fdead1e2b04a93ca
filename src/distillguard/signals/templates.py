"""Template signatures: SQL keys that prompts built from one template share.

A distillation campaign sends millions of prompts made from a few templates with a
variable slot ("Solve the following problem... show every step.\\n\\n{question}").
Honest users rarely share a long identical skeleton (evaluation harnesses and a
class with one assignment do; the scorer deals with them). This module only makes
the keys, as engine SQL expressions over a prompt column, so millions of prompts are
keyed inside the engine with no per-row Python:

* `normalize_sql`: lower-case, variable parts masked, one space between tokens.
* `template_keys_sql`: ``template_head``, a hash of the first `KEY_TOKENS` tokens
  (matches templates whose slot is at the end), and ``template_tail``, a hash of the
  last `KEY_TOKENS` (slot at the start); NULL below `2 * KEY_TOKENS` tokens.
* `minhash_bands_sql`: a near-duplicate sketch, a list of `BANDS` UBIGINT band keys;
  two prompts that share any key are near-duplicate candidates (LSH).
* `signatures_sql`: the same three columns as a table, one row per distinct prompt
  of a scan: the faster way to key millions of prompts (see Cost).

Put the expressions in one SELECT over the same prompt expression: they share the
tokenisation text, and DuckDB computes a repeated sub-expression once (not inside a
CASE, which is why the SQL below selects with list indexing where a CASE would do).

Tokens. A token is a run of non-space characters after normalisation, punctuation
included; each CJK character (Han, kana, CJK punctuation) is a token of its own, as
Chinese and Japanese do not separate words by spaces. Cyrillic and other spaced
scripts tokenise like English. Masked: URLs -> ``<url>``, e-mail addresses ->
``<email>``, and every ASCII word that holds a digit -> ``0`` (numbers, dates, times,
versions, ids, hex and UUIDs with digits). Quoted strings are not masked: the quoted
text is as often the template's own wording ("under the heading 'Reasoning:'").

Only the first `SKETCH_CHARS` characters are read (and the last `TAIL_CHARS` for the
tail key of a longer prompt): a template shows in its opening and closing words, and
near-duplicates in their first thousand characters; a few-KB pasted document would
cost time and add nothing.

Cost. Every step is a vectorized engine function, none is Python; the masking regexes
and the sketch's 70 min-hashes dominate (the min-hash needs one pass over a prompt's
shingles per pair of min-hashes). On 2 threads, per million prompts of the simulated
world (benchmarks/signals_speed.py; figures in docs/signals.md): keys ~4 s, keys and
sketch as expressions ~11 s, `signatures_sql` ~6 s.
"""

from __future__ import annotations

import random

from distillguard.engine import ident, literal

__all__ = [
    "SKETCH_CHARS", "TAIL_CHARS", "KEY_TOKENS", "SHINGLE_TOKENS", "MAX_SHINGLES", "BANDS", "ROWS",
    "PHRASE_SAMPLE", "normalize_sql", "tokens_sql", "template_keys_sql", "shingles_sql", "minhash_bands_sql",
    "signatures_sql", "collision_probability",
]

# Characters of a prompt read for the keys and the sketch (a template shows in its
# opening; the median prompt is ~300 characters, so this cuts only the long tail).
SKETCH_CHARS = 1000
# Characters read from the end of a prompt longer than SKETCH_CHARS, for its tail key:
# KEY_TOKENS tokens are 40-80 characters of prose or code, plus the token cut in half.
TAIL_CHARS = 200
# Tokens in a head or tail key. Honest prompts often share an opening of 4-6 tokens
# ("what is the difference between", "can you help me write a"), and the campaign
# templates we know keep 10 or more fixed words before or after the slot; 8 keeps the
# honest openings apart and still fits inside every template. (The simulated worlds
# cannot calibrate it: their honest text comes from a phrasebook, templated itself.)
KEY_TOKENS = 8
# Word 3-grams (CJK: character 3-grams, as each CJK character is a token). One changed
# word in a 40-word prompt changes 3 of 38 shingles: Jaccard 0.85.
SHINGLE_TOKENS = 3
# A cap on shingles per prompt: 1,000 characters of Chinese are 1,000 tokens, six times
# the tokens of 1,000 characters of English, and the sketch's cost grows with them.
MAX_SHINGLES = 256
# LSH: BANDS bands of ROWS min-hashes; a pair collides when all ROWS values of some
# band agree. P(collide) = 1 - (1 - J**ROWS)**BANDS for Jaccard J:
#
#   J     0.1      0.2     0.3     0.4    0.5    0.6    0.7    0.8    0.9
#   P     0.00014  0.0045  0.033   0.134  0.36   0.68   0.924  0.996  1.0
#
# The target is P >= 0.9 at J = 0.7 and P <= 0.05 at J = 0.3. ROWS = 5 meets both
# with the fewest min-hashes: with 4 rows at most 6 bands keep 0.3 under 0.05, and
# they give only 0.81 at 0.7; 6 rows need 19 bands (114 min-hashes). With 5 rows, 13
# to 21 bands work; 14 (70 min-hashes) leave a margin over 0.9 at 0.7 for 8% more
# work than 13. Each min-hash costs a pass over the shingles: this is the sketch's
# price.
BANDS = 14
ROWS = 5
# Phrases: the shingles whose hash is 0 modulo PHRASE_SAMPLE, a fixed sample of every
# prompt's word 3-grams (Broder's mod-m sampling: two texts keep the same share of
# the shingles they share, so overlaps are estimated without keeping them all). They
# let linking compare the wording of whole accounts (links.yaml, phrasing).
PHRASE_SAMPLE = 4

# The min-hash family: h_i(x) = hash(x XOR C_i), C_i fixed 64-bit constants, so a
# sketch is the same in every run (for one DuckDB version: hash() is DuckDB's 64-bit
# mixer, not a published function; compare sketches made by one version). XOR alone
# is not enough: min(x XOR C) for different C pick correlated elements, and the S-curve
# test measured 0.87 instead of 0.92 at Jaccard 0.7. Each h_i gives two min-hashes:
# the minimum and the maximum (the minimum of the reversed order), halving the passes.
_rng = random.Random(20261122)
_SEEDS = tuple(_rng.getrandbits(64) for _ in range(64))
del _rng

# Masks, applied in this order on lower-cased text. RE2 syntax; \w and \d are ASCII.
_URL_RE = r"(https?|ftp)://\S+|www\.\S+"
_EMAIL_RE = r"[\w.+-]+@[\w-]+(\.[\w-]+)+"
# A word holding a digit, with the separators numbers carry (3.14, 1,000, 12:30,
# 2024-11-03, 1/2): numbers, versions, ids, hex and UUIDs with a digit.
_DIGIT_WORD_RE = r"\w*\d[\w.,:/-]*"
# Characters that are tokens on their own: CJK punctuation, kana, Han (incl. ext. A and
# compatibility ideographs), fullwidth forms. Hangul is spaced like English.
_CJK_CHAR_RE = r"([\x{3000}-\x{30ff}\x{3400}-\x{4dbf}\x{4e00}-\x{9fff}\x{f900}-\x{faff}\x{ff00}-\x{ffef}])"


def _masked_sql(text: str, raw: str) -> str:
    """`text` lower-cased, masked, CJK characters spaced apart, line breaks as spaces.

    `raw` is the prompt column that `text` was cut from: the guards of the rare steps
    test it, never the text being built, because DuckDB computes a repeated
    sub-expression once but not inside CASE, where each mention would run the whole
    chain again. (A URL or a CJK character in `text` is one in `raw`.)"""
    s = f"lower({text})"
    # URLs and e-mail addresses are rare: their regexes run only where a memmem finds
    # a fixed part of one.
    has_address = " OR ".join(f"contains({raw}, {literal(x)})" for x in ("://", "www.", "@"))
    s = (f"CASE WHEN {has_address} THEN regexp_replace(regexp_replace({s}, {literal(_URL_RE)}, ' <url> ', 'g'), "
         f"{literal(_EMAIL_RE)}, ' <email> ', 'g') ELSE {s} END")
    s = f"regexp_replace({s}, {literal(_DIGIT_WORD_RE)}, '0', 'g')"
    # Only text with a non-ASCII character (byte length != character length) can hold
    # CJK; most traffic skips this regex.
    s = (f"CASE WHEN strlen({raw}) = length({raw}) THEN {s} "
         f"ELSE regexp_replace({s}, {literal(_CJK_CHAR_RE)}, ' \\1 ', 'g') END")
    # Line breaks and tabs separate tokens too. Three memchr-based replace() calls cost
    # less than one regex, which pays per match.
    for ch in (10, 9, 13):
        s = f"replace({s}, chr({ch}), ' ')"
    return s


def _split_sql(masked: str) -> str:
    return f"list_filter(string_split({masked}, ' '), lambda t: t <> '')"


def tokens_sql(expr: str, max_chars: int = SKETCH_CHARS) -> str:
    """LIST(VARCHAR) of normalised tokens of the first max_chars characters of expr.

    NULL for NULL; an empty list for empty or blank text."""
    return _split_sql(_masked_sql(f"left({expr}, {max_chars})", expr))


def normalize_sql(expr: str, max_chars: int = SKETCH_CHARS) -> str:
    """VARCHAR: expr lower-cased, masked, CJK characters split, one space between
    tokens (the text the keys are hashes of, for showing and testing)."""
    return f"array_to_string({tokens_sql(expr, max_chars)}, ' ')"


def template_keys_sql(expr: str) -> dict[str, str]:
    """{'template_head': UBIGINT SQL, 'template_tail': UBIGINT SQL} for a prompt expr.

    Both are NULL when the prompt has fewer than 2 * KEY_TOKENS tokens: a shorter one
    cannot hold a template of KEY_TOKENS fixed tokens and a slot. Head and tail keys
    are hashed apart (one prompt's opening never equals another's closing)."""
    k = KEY_TOKENS
    tokens = tokens_sql(expr)
    # A prompt longer than SKETCH_CHARS: its tail is read from its last TAIL_CHARS
    # characters, less the first token, which may be cut in half. The CASE tokenises
    # that window only on those rows.
    is_long = f"length({expr}) > {SKETCH_CHARS}"
    window = _split_sql(_masked_sql(f"right({expr}, {TAIL_CHARS})", expr))
    long_tail = f"CASE WHEN {is_long} THEN ({window})[2:][-{k}:] END"
    # No CASE may wrap the shared tokens: DuckDB computes a repeated sub-expression
    # once, but not inside CASE. `[x][i]` picks x (i = 1) or NULL (i = 0) instead.
    tail = f"[list_slice({tokens}, -{k}, -1), {long_tail}][1 + ({is_long})::INT]"
    enough = f"(len({tokens}) >= {2 * k})::INT"
    return {
        "template_head": f"[hash(list_slice({tokens}, 1, {k}), 'head')][{enough}]",
        "template_tail": f"[hash({tail}, 'tail')][{enough}]",
    }


def shingles_sql(expr: str) -> str:
    """LIST(UBIGINT): hashes of the token SHINGLE_TOKENS-grams of expr, at most
    MAX_SHINGLES, in order; empty when expr has fewer than SHINGLE_TOKENS tokens."""
    hashes = f"list_transform({tokens_sql(expr)}, lambda t: hash(t))"
    # n shifted copies zipped (truncated to the shortest) give the n-grams without a
    # lambda that indexes the list: an expression inside a lambda runs per element.
    shifted = ", ".join(f"({hashes})[{1 + j}:{MAX_SHINGLES + j}]" for j in range(SHINGLE_TOKENS))
    fields = ", ".join(f"g[{1 + j}]" for j in range(SHINGLE_TOKENS))
    return f"list_transform(list_zip({shifted}, true), lambda g: hash({fields}))"


def _check_bands(bands: int, rows: int) -> None:
    if bands < 1 or rows < 1:
        raise ValueError(f"bands and rows must be positive, got {bands} x {rows}")
    if bands * rows > 2 * len(_SEEDS):
        raise ValueError(f"at most {2 * len(_SEEDS)} min-hashes, asked for {bands} x {rows}")


def _permuted(x: str, i: int) -> str:
    """The i-th min-hash function of a shingle hash x."""
    return f"hash(xor({x}, {_SEEDS[i]}::UBIGINT))"


def _band_keys(values: list[str], bands: int, rows: int) -> str:
    """[key of band 0, ...]: each band's ROWS min-hash values hashed with its number."""
    return "[" + ", ".join(
        f"hash({b}, {', '.join(values[b * rows:(b + 1) * rows])})" for b in range(bands)) + "]"


def minhash_bands_sql(expr: str, bands: int = BANDS, rows: int = ROWS) -> str:
    """LIST(UBIGINT) of `bands` LSH band keys for the prompt expr (see BANDS, ROWS).

    Two prompts that share any key are near-duplicate candidates. NULL for a NULL
    prompt, an empty list for one with no shingle (fewer than SHINGLE_TOKENS tokens).
    Keys mix in their band number, so keys of different bands never meet."""
    _check_bands(bands, rows)
    sh = shingles_sql(expr)
    values = []
    for i in range((bands * rows + 1) // 2):
        permuted = f"list_transform({sh}, lambda x: {_permuted('x', i)})"
        values += [f"list_min({permuted})", f"list_max({permuted})"]
    # All keys, or none when there is no shingle (slice to 0), or NULL for a NULL
    # prompt (strlen(NULL) is NULL). Not a CASE: it would hide the shingles, repeated
    # in every key, from common sub-expression elimination.
    return f"{_band_keys(values, bands, rows)}[1:{bands} * (len({sh}) > 0)::INT + 0 * strlen({expr})]"


def signatures_sql(source: str, text: str = "prompt", bands: int = BANDS, rows: int = ROWS,
                   key: str | None = None) -> str:
    """SQL of a table with one row per distinct non-NULL `text` of `source` (a table
    name or a parenthesised query): text_hash = hash(text), the template_head,
    template_tail and sketch that `template_keys_sql` and `minhash_bands_sql` give it,
    and its phrases (the shingles sampled by PHRASE_SAMPLE).

    ``key`` names a column to use as text_hash instead, when `text` is a window of the
    text that was hashed: the first SKETCH_CHARS and the last TAIL_CHARS characters
    give the same keys as the whole text (signals/request.py keeps only those).

    The faster way to key a large scan: each distinct prompt is keyed once (repeats
    are common: retries, fixed eval items, "continue"), and the min-hashes are one
    GROUP BY over the unnested shingles, which DuckDB runs faster than 70 list
    passes. Join back on ``hash(events.prompt) = text_hash``."""
    _check_bands(bands, rows)
    col = ident(text)
    text_hash = ident(key) if key else f"hash({col})"
    keys = template_keys_sql(col)
    minmax = []
    for i in range((bands * rows + 1) // 2):
        minmax += [f"min(p{i})", f"max(p{i})"]
    permuted = ", ".join(f"{_permuted('x', i)} AS p{i}" for i in range((bands * rows + 1) // 2))
    names = [f"m{j}" for j in range(len(minmax))]
    return f"""
WITH texts AS (
  SELECT {text_hash} AS text_hash, any_value({col}) AS {col} FROM {source}
  WHERE {col} IS NOT NULL GROUP BY 1
), keyed AS MATERIALIZED (
  SELECT text_hash, {keys['template_head']} AS template_head, {keys['template_tail']} AS template_tail,
    {shingles_sql(col)} AS shingles
  FROM texts
), minhashes AS (
  SELECT text_hash, {', '.join(f'{m} AS {n}' for m, n in zip(minmax, names))}
  FROM (SELECT text_hash, {permuted} FROM (SELECT text_hash, unnest(shingles) AS x FROM keyed))
  GROUP BY text_hash
)
SELECT k.text_hash, k.template_head, k.template_tail,
  CASE WHEN m.text_hash IS NULL THEN []::UBIGINT[] ELSE {_band_keys(names, bands, rows)} END AS sketch,
  list_filter(k.shingles, lambda x: x % {PHRASE_SAMPLE} = 0) AS phrases
FROM keyed k LEFT JOIN minhashes m USING (text_hash)"""


def collision_probability(jaccard: float, bands: int = BANDS, rows: int = ROWS) -> float:
    """P(two prompts with this Jaccard similarity share a band key), ideal min-hashes."""
    if not 0 <= jaccard <= 1:
        raise ValueError(f"jaccard must be in [0, 1], got {jaccard}")
    return 1 - (1 - jaccard ** rows) ** bands
