"""The distillation-intent request signal: what a prompt asks the model to produce.

Distillation campaigns ask for things ordinary users rarely do: the model's full
reasoning trace, hundreds of instruction-response pairs, grades of other models'
answers, politically "safe" rewrites, agent trajectories, or the same probe swept
across a numbered benchmark. For each of the six `KINDS` a request gets a score in
[0, 1]:

    score = sigmoid(bias + sum of the weights of the patterns that match)

The patterns, weights and biases are reviewed data (``intents.yaml``), loaded into
frozen objects and validated here. Scoring is plain SQL (``regexp_matches`` on the
lower-cased text), so millions of prompts are scored inside the engine with no
per-row Python.

Speed comes from literals. RE2, DuckDB's regex engine, scans text at a few ns a
byte whatever the pattern, and a union of more than ~16 patterns with gaps overflows
its DFA and falls back to a far slower NFA; 190 patterns run one by one would cost
190 scans a request. So each pattern's *required literals* are derived from its
regex when the file is loaded (every match of ``chain[- ]of[- ]thought`` contains one
of "chain of thought", "chain-of-thought", ...), and `intent_scores_sql` works in
nested steps, each computed once per row: one scan of the text lists the literals
it contains (``regexp_extract_all`` over an alternation of literals, a fast DFA); a
small regex over that short list tells which groups of patterns (a kind in one
language, ~10 patterns) may match; only those groups run the union of their regexes
over the text; and only in a group that matched does each pattern run its own regex.
Most traffic contains few literals and costs little more than the one scan. The
checks never skip a pattern that can match in ordinary text (see `_LiteralIndex`),
so the score is the formula; a test compares it with running every regex.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import ahocorasick
import re2
import yaml

from distillguard.engine import literal

# Python's regex parser, used only to read the structure of reviewed patterns. It is
# private API, stable across 3.11-3.13; the tests exercise it on every pattern.
from re import _constants as sre
from re import _parser as sre_parse

__all__ = [
    "KINDS", "INTENT_KINDS", "LANGS", "APPLIES_TO", "STRENGTHS", "REASON_CODES",
    "Pattern", "KindModel", "IntentModel", "IntentPatternError",
    "load_patterns", "parse_patterns",
    "intent_sql", "intent_scores_sql", "matched_patterns_sql",
    "pattern_match_sql", "top_kind_sql", "score_column",
]

KINDS: tuple[str, ...] = (
    "reasoning",         # chain-of-thought elicitation
    "synthetic_data",    # instruction-response pairs, datasets, many diverse examples
    "judging",           # rubric grading and pairwise preference of model outputs
    "safety_rewrite",    # rewriting sensitive questions/answers into "compliant" ones
    "agentic",           # agent trajectories: tools, ReAct formats, autonomous-agent prompts
    "capability_sweep",  # systematic enumeration: item ids, "question 37 of 500", difficulty fields
)
LANGS: tuple[str, ...] = ("en", "zh", "ru", "es", "any")
APPLIES_TO: tuple[str, ...] = ("prompt", "system", "both")
# A reviewer's grading of how specific a phrasing is. The fit pools patterns of one
# tier, so a pattern seen once in training gets about its tier's weight.
STRENGTHS: tuple[str, ...] = ("strong", "medium", "weak")

INTENT_KINDS = KINDS  # the name signals/request.py imports

# The reason code a flagged request carries per kind; the matched pattern ids are its evidence.
REASON_CODES: dict[str, str] = {kind: f"intent_{kind}" for kind in KINDS}

_ID = re.compile(r"^(?P<kind>[a-z_]+)\.(?P<lang>[a-z]+)\.[a-z0-9_]+$")
# RE2 (DuckDB's regex engine) has no lookarounds, backreferences or possessive/atomic groups.
_NOT_RE2 = re.compile(r"\(\?[=!<>]|\(\?P=|\\[1-9]|[*+?}]\+|\(\?>")
_ESCAPE = re.compile(r"\\.")
_DEFAULT = "intents.yaml"


class IntentPatternError(ValueError):
    """The pattern file is invalid; the message names the file and the pattern id."""


@dataclass(frozen=True)
class Pattern:
    id: str           # stable reason code: <kind>.<lang>.<name>
    kind: str
    lang: str
    regex: str        # RE2, matched against lower-cased text
    weight: float     # log-odds contribution when the pattern matches
    reason: str       # what the pattern means, for an analyst
    applies_to: str   # prompt | system | both
    strength: str     # strong | medium | weak: the reviewer's grading, which the fit pools by
    line: int         # line in the source file, for error messages and review
    # Derived, not reviewed (see _required_literals): every match contains one of these.
    # Empty for a pattern anchored at the start of the text, cheap to run on every row.
    literals: tuple[str, ...] = ()

    @property
    def on_prompt(self) -> bool:
        return self.applies_to in ("prompt", "both")

    @property
    def on_system(self) -> bool:
        return self.applies_to in ("system", "both")

    @property
    def anchored(self) -> bool:
        return not self.literals


@dataclass(frozen=True)
class KindModel:
    kind: str
    bias: float
    patterns: tuple[Pattern, ...]


@dataclass(frozen=True)
class IntentModel:
    source: str                    # the file it came from
    version: int
    sha256: str                    # content hash of the file: verdicts record which model scored them
    kinds: tuple[KindModel, ...]   # in KINDS order

    def kind(self, name: str) -> KindModel:
        for k in self.kinds:
            if k.kind == name:
                return k
        raise KeyError(f"unknown intent kind {name!r}; known: {', '.join(KINDS)}")

    @property
    def patterns(self) -> tuple[Pattern, ...]:
        return tuple(p for k in self.kinds for p in k.patterns)

    @functools.cached_property
    def literal_index(self) -> _LiteralIndex:
        return _LiteralIndex(self.patterns)

    @functools.cached_property
    def online(self) -> "_OnlineModel":
        # kept on the model rather than in a cache keyed by it: hashing a frozen model
        # hashes its ~200 patterns, which cost more than scoring a short prompt
        return _OnlineModel.of(self)


# ------------------------------------------------------------------ loading


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records each mapping's line as ``__line__``."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def load_patterns(path: str | Path | None = None) -> IntentModel:
    """The reviewed patterns: the packaged ``intents.yaml``, or another file."""
    if path is None:
        return _default_model()
    path = Path(path)
    return parse_patterns(path.read_text(encoding="utf-8"), source=str(path))


@functools.lru_cache(maxsize=1)
def _default_model() -> IntentModel:
    ref = resources.files("distillguard.signals").joinpath(_DEFAULT)
    return parse_patterns(ref.read_text(encoding="utf-8"), source=str(ref))


def parse_patterns(text: str, source: str = "<string>") -> IntentModel:
    """Parse and validate pattern YAML; any problem raises IntentPatternError naming source and id."""

    def fail(msg: str, pid: str | None = None, line: int | None = None) -> IntentPatternError:
        where = f"{source}" + (f":{line}" if line else "")
        return IntentPatternError(f"{where}: " + (f"pattern {pid!r}: " if pid else "") + msg)

    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as e:
        raise fail(f"not valid YAML: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("kinds"), dict):
        raise fail("expected a mapping with 'version' and 'kinds'")
    version = doc.get("version")
    if not isinstance(version, int):
        raise fail("'version' must be an integer")
    kinds_doc = {k: v for k, v in doc["kinds"].items() if k != "__line__"}
    unknown = sorted(set(kinds_doc) - set(KINDS))
    if unknown:
        raise fail(f"unknown kind(s) {unknown}; known: {', '.join(KINDS)}")
    missing = [k for k in KINDS if k not in kinds_doc]
    if missing:
        raise fail(f"kind(s) {missing} have no section")

    seen: dict[str, int] = {}
    kinds = []
    for kind in KINDS:
        spec = kinds_doc[kind]
        if not isinstance(spec, dict) or not _is_number(spec.get("bias")) or not isinstance(spec.get("patterns"), list):
            raise fail(f"kind {kind!r} needs a numeric 'bias' and a list of 'patterns'",
                       line=spec.get("__line__") if isinstance(spec, dict) else None)
        patterns = []
        for raw in spec["patterns"]:
            p = _pattern(raw, kind, fail)
            if p.id in seen:
                raise fail(f"duplicate id (first defined on line {seen[p.id]})", p.id, p.line)
            seen[p.id] = p.line
            patterns.append(p)
        if not patterns:
            raise fail(f"kind {kind!r} has no patterns", line=spec.get("__line__"))
        kinds.append(KindModel(kind, float(spec["bias"]), tuple(patterns)))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return IntentModel(source, version, digest, tuple(kinds))


_FIELDS = ("id", "lang", "applies_to", "strength", "weight", "reason", "regex")


def _pattern(raw, kind: str, fail) -> Pattern:
    if not isinstance(raw, dict):
        raise fail(f"kind {kind!r}: each pattern must be a mapping, got {raw!r}")
    line = raw.get("__line__")
    pid = raw.get("id")
    if not isinstance(pid, str) or not pid:
        raise fail(f"kind {kind!r}: a pattern has no 'id'", line=line)
    extra = sorted(set(raw) - set(_FIELDS) - {"__line__"})
    if extra:
        raise fail(f"unknown field(s) {extra}; expected {', '.join(_FIELDS)}", pid, line)
    absent = [f for f in _FIELDS if raw.get(f) in (None, "")]
    if absent:
        raise fail(f"missing field(s) {absent}", pid, line)
    lang, applies_to, regex, reason = raw["lang"], raw["applies_to"], raw["regex"], raw["reason"]
    if lang not in LANGS:
        raise fail(f"unknown lang {lang!r}; known: {', '.join(LANGS)}", pid, line)
    if applies_to not in APPLIES_TO:
        raise fail(f"applies_to must be one of {', '.join(APPLIES_TO)}, got {applies_to!r}", pid, line)
    if raw["strength"] not in STRENGTHS:
        raise fail(f"strength must be one of {', '.join(STRENGTHS)}, got {raw['strength']!r}", pid, line)
    m = _ID.match(pid)
    if not m or m["kind"] != kind or m["lang"] != lang:
        raise fail(f"id must read '{kind}.{lang}.<name>' (lower case, digits, underscores)", pid, line)
    if not _is_number(raw["weight"]) or not math.isfinite(float(raw["weight"])):
        raise fail(f"weight must be a finite number, got {raw['weight']!r}", pid, line)
    if not isinstance(reason, str) or not isinstance(regex, str):
        raise fail("reason and regex must be strings", pid, line)
    problem = _regex_problem(regex)
    if problem:
        raise fail(f"bad regex {regex!r}: {problem}", pid, line)
    literals = _required_literals(regex)
    if literals is None and not _anchored_at_start(regex):
        raise fail("no distinctive literal occurs in every match, so the pattern would have to run on "
                   "every request; rewrite it around a word or phrase (or anchor it with ^)", pid, line)
    return Pattern(pid, kind, lang, regex, float(raw["weight"]), reason.strip(), applies_to, raw["strength"],
                   line or 0, tuple(sorted(literals or ())))


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _regex_problem(regex: str) -> str | None:
    """Why a regex cannot be used, or None. The engine test compiles every one in DuckDB too."""
    if _NOT_RE2.search(regex):
        return "uses a construct RE2 does not support (lookaround, backreference, atomic or possessive)"
    if "(?" in regex:
        return "inline flags are not allowed: text is lower-cased instead of matched with (?i)"
    # Text is lower-cased before matching, so an upper-case letter outside an escape
    # (\S, \W, \D are classes) could never match: almost surely a mistake.
    if any(ch.isupper() for ch in _ESCAPE.sub("", regex)):
        return "contains upper-case letters, but text is lower-cased before matching"
    try:
        compiled = re.compile(regex)
    except re.error as e:
        return str(e)
    if compiled.search("") is not None:
        return "matches the empty string, so it would match every request"
    return None


# ------------------------------------------------------------------ required literals
#
# A small analysis of the parsed regex (Python's own parser; RE2 accepts the same
# syntax for everything the validator lets through) that finds a set of literals
# one of which every match must contain, like RE2's own prefilter. It is sound by
# construction: a concatenation requires each of its parts, an alternation one of
# its branches, a repetition at least once its body; anything optional requires
# nothing. Among the sound choices it picks the one expected to be rarest.

_EXACT_MAX = 256     # strings an exactly-known part may expand to before we stop tracking it
_SMALL_CLASS = 4     # a character class of at most this many plain characters is tracked exactly
_STOPWORDS = frozenset("""
    a an the of to in on at is are be as and or for with your you my our it this that than more not
    then by from if so
    de la el los las y o en un una su sus es que con por para del al lo le se como
    и в на с по не что это ты вы из к от как за до для а но же ли
""".split())
# Function words and words common in ordinary prompts, per language. A literal made only
# of these guards nothing (most prompts contain one), so another literal is preferred.
# This only steers speed: a guard is exact whatever literal it uses.
_COMMON_WORDS = frozenset("""
    about act action after all also answer answers any area assistant available before best better
    call can care case chain code complete correct could create data detailed different do does don't
    each entire entries every example examples explain file fine first focus following form format full
    function give good grade ground help here how important information input interested internal item
    json just key last level like list main make meaning model name need new next number one only output
    plan please point process produce prompt question questions rate rating raw reason records requirement
    respond response result results return review safe show skip some state step steps subject system task
    tasks test text there think thought time tool tools topic train turn two use user using value version
    versions very want way ways what when where which whole who why will with without work would write
    cada crea dame ejemplo ejemplos escribe forma mas más paso pasos pregunta preguntas respuesta
    respuestas sin tema texto
    вопрос вопросы дай каждый напиши ответ ответы пример примеры тема текст шаг шаги
""".split()) | _STOPWORDS
_COMMON_CJK = frozenset("""的 是 了 在 和 与 及 我 你 请 把 对 给 为 个 一 不 要 有 这 下 出 写 题 分 第 问题 回答 答案 例子
    主题 内容 文本 给出 写出 生成 使用 可以 输出 一个 下面 以下 每 步 每一步 什么 如何 怎么""".split())


def _literal_quality(literal: str) -> int:
    """How distinctive a literal is: roughly its letter count; low for common words."""
    core = literal.strip()
    words = [w for w in core.split() if w not in _STOPWORDS]
    if not words:
        return 0
    if core in _COMMON_CJK or all(w in _COMMON_WORDS for w in words):
        return 1 + len(words)  # "step by step" is rarer than "step", but both are everyday words
    letters = sum(2 if ord(ch) >= 0x2E80 else 1 for ch in core if not ch.isspace())
    # A short fragment ("rea" of [aá]rea, "ai") hides inside many ordinary words.
    return letters if letters >= 4 else 1


def _literal_cost(literals: frozenset[str]) -> float:
    """A crude expected share of texts containing one of the literals (each letter makes a
    literal ~4x rarer), plus a charge per literal: one shared index of them must stay small."""
    crowd = 1.0 if len(literals) > _MAX_LITERALS else 0.0  # only when nothing smaller will do
    return sum(4.0 ** -min(_literal_quality(x), 12) for x in literals) + _PER_LITERAL * len(literals) + crowd


# Every literal joins the shared index, whose scan slows as it grows (2,500 literals
# scan 4x slower than 1,100): a small charge per literal, and a soft cap per pattern.
_PER_LITERAL = 0.0005
_MAX_LITERALS = 32


def _distinctive(literal: str) -> bool:
    core = literal.strip()
    return len(core) >= 2 and _literal_quality(core) > 0


def _usable(candidates) -> list[frozenset[str]]:
    # A set holding a single character or a stopword is in almost every text: it guards nothing.
    return [c for c in candidates if c and all(map(_distinctive, c))]


def _cheapest(candidates) -> frozenset[str] | None:
    usable = _usable(candidates)
    # Ties broken by the literals themselves, so that the choice never depends on set order.
    return min(usable, key=lambda c: (_literal_cost(c), sorted(c))) if usable else None


@dataclass
class _Part:
    exact: frozenset[str] | None = None     # every string this part can match, when few and known
    required: frozenset[str] | None = None  # the cheapest set of literals one of which every match contains


def _required(part: _Part) -> frozenset[str] | None:
    return _cheapest([part.exact, part.required]) if part.exact is not None else part.required


def _sequence(items) -> _Part:
    exact, whole, run, candidates = frozenset([""]), True, "", []
    for op, arg in items:
        part = _part(op, arg)
        if part.exact is not None and len(part.exact) == 1:
            run += next(iter(part.exact))
        else:
            candidates += [frozenset([run]), part.required, part.exact]
            run = ""
        if part.exact is not None and len(exact) * len(part.exact) <= _EXACT_MAX:
            exact = frozenset(a + b for a in exact for b in part.exact)
            continue
        whole = False
        candidates.append(exact)
        exact = part.exact if part.exact is not None else frozenset([""])
    candidates += [frozenset([run]), exact]
    return _Part(exact if whole else None, _cheapest(candidates))


def _part(op, arg) -> _Part:
    if op is sre.LITERAL:
        return _Part(frozenset([chr(arg)]))
    if op is sre.AT:
        return _Part(frozenset([""]))
    if op is sre.IN:
        if len(arg) <= _SMALL_CLASS and all(o is sre.LITERAL for o, _ in arg):
            return _Part(frozenset(chr(c) for _, c in arg))
        return _Part()
    if op is sre.SUBPATTERN:
        return _sequence(arg[-1])
    if op is sre.BRANCH:
        parts = [_sequence(branch) for branch in arg[1]]
        each = [_required(p) for p in parts]
        required = None if any(r is None for r in each) else frozenset().union(*each)
        if all(p.exact is not None for p in parts):
            union = frozenset().union(*(p.exact for p in parts))
            if len(union) <= _EXACT_MAX:
                return _Part(union, required)
        return _Part(None, required)
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        low, high, body = arg
        part = _sequence(body)
        if low == 0:
            return _Part(part.exact | {""}) if high == 1 and part.exact is not None else _Part()
        return part if low == high == 1 else _Part(None, _required(part))
    return _Part()  # any character, a class, a category: it requires a character we cannot name


def _required_literals(regex: str) -> frozenset[str] | None:
    """Literals one of which every match of regex contains (the cheapest such set found);
    None if no distinctive set exists."""
    return _required(_sequence(sre_parse.parse(regex)))


def _anchored_at_start(regex: str) -> bool:
    items = list(sre_parse.parse(regex))
    return bool(items) and items[0] == (sre.AT, sre.AT_BEGINNING)


def _escape_literal(text: str) -> str:
    return "".join("\\" + ch if ch in _RE_SPECIAL else ("\\n" if ch == "\n" else ch) for ch in text)


_RE_SPECIAL = frozenset("\\.^$|?*+()[]{}")


class _LiteralIndex:
    """All patterns' literals, which the engine lists for each text in one scan.

    Two scans, in fact: ASCII literals, and the others only on texts that hold a
    non-ASCII character. Mixing scripts in one alternation multiplies RE2's byte
    classes and DFA states until it thrashes (measured: 22 MB/s instead of 130).

    ``regexp_extract_all`` reports non-overlapping, leftmost matches, the longest
    literal first. So a literal x also counts as seen when a literal containing it is
    listed ("rater" for "rate"). And a literal b that starts inside a reported literal
    e and runs past its end is not reported: "[the start of assistant b's answer]"
    reports "[the start of assistant" and hides "assistant b"; "最终答案是" reports
    "最终答案" and hides "答案是". Such an e ends with a prefix of b and counts as a
    sighting of b, which keeps the checks exact, whenever the overlap can occur in
    ordinary writing: it starts at a word boundary, or the script has no spaces (CJK).
    An overlap that splits a word needs two literals fused with shared letters
    ("json" and "sonnet" in "jsonnet"); counting those would open the checks on most
    common words and cost ~10x, so the pattern of b then loses its weight in such a
    text. tests/signals/test_intent.py and benchmarks/intent_eval.py compare the
    scores with running every regex (no difference on 73,000 texts).
    """

    def __init__(self, patterns):
        self.literals = tuple(sorted({x for p in patterns for x in p.literals}))
        self.ascii = tuple(x for x in self.literals if x.isascii())
        self.other = tuple(x for x in self.literals if not x.isascii())
        self._seen_as = {}
        for group in (self.ascii, self.other):
            ending = {}  # each proper suffix of a literal -> the literals that end with it
            for e in group:
                for i in range(1, len(e)):
                    ending.setdefault(e[i:], []).append(e)
            for x in group:
                containing = {y for y in self.literals if x in y}
                hiding = {e for k in range(1, len(x)) for e in ending.get(x[:k], ())
                          if e != x and _can_hide(e, x, k)}
                self._seen_as[x] = tuple(sorted(containing | hiding))

    def sightings(self, literals) -> tuple[str, ...]:
        """Index literals, one of which is listed whenever one of `literals` occurs."""
        return tuple(sorted(set().union(*(self._seen_as[x] for x in literals))))


def _unspaced(text: str) -> bool:
    """Written without spaces between words: Chinese, Japanese, Korean."""
    return any(ord(ch) >= 0x2E80 for ch in text)


def _can_hide(e: str, b: str, k: int) -> bool:
    """e ends with b's first k characters, so a reported e can hide b: does that happen
    in ordinary text, i.e. does the overlap start at a word boundary (or is the script
    one without spaces)?"""
    return _unspaced(b) or not b[0].isalnum() or not e[len(e) - k - 1].isalnum()


def _literal_regex(literals) -> str:
    """An alternation of literals, longest first: where several start at one position
    the scan reports the longest (RE2 prefers earlier alternatives)."""
    return "|".join(_escape_literal(x) for x in sorted(set(literals), key=lambda x: (-len(x), x)))


_SEP = "\x1f"  # joins the listed literals into one short string; no literal contains it


# ------------------------------------------------------------------ one request


@dataclass(frozen=True)
class _OnlineModel:
    """The model made ready for one request at a time: one Aho-Corasick automaton finds
    every required literal in a single pass (a substring test per literal costs ~1,400
    passes), and each literal names the patterns whose regex it lets run. The regexes run
    on RE2, the engine the batch path's SQL uses: the same matches, and linear time
    (Python's backtracking `re` was 3.5x slower at the 99th percentile on agentic prompts)."""

    finder: ahocorasick.Automaton
    by_literal: dict[str, tuple[int, ...]]
    anchored: tuple[int, ...]
    patterns: tuple[tuple[Pattern, re2._Regexp], ...]

    @classmethod
    def of(cls, model: IntentModel) -> "_OnlineModel":
        finder = ahocorasick.Automaton()
        by_literal: dict[str, list[int]] = {}
        for i, p in enumerate(model.patterns):
            for lit in p.literals:
                by_literal.setdefault(lit, []).append(i)
        for lit in by_literal:
            finder.add_word(lit, lit)
        finder.make_automaton()
        return cls(finder=finder, by_literal={k: tuple(v) for k, v in by_literal.items()},
                   anchored=tuple(i for i, p in enumerate(model.patterns) if p.anchored),
                   patterns=tuple((p, re2.compile(p.regex)) for p in model.patterns))

    def candidates(self, text: str) -> set[int]:
        found = set(self.anchored)
        for _, lit in self.finder.iter(text):
            found.update(self.by_literal[lit])
        return found


def request_scores(prompt: str, system: str | None = None, patterns: IntentModel | None = None) -> dict[str, float]:
    """kind -> score of one request: the formula `intent_scores_sql` computes over a table,
    for the online path (the gateway decides on each request as it arrives). The same
    reviewed model, the same formula; a test holds the two equal on every text family.
    As in the SQL, the text is searched once for the patterns' required literals, and a
    pattern's regex runs only when one of its literals is there. The caller cuts the
    prompt to the read window (signals/request.py read_window), as the batch path does."""
    model = patterns or load_patterns()
    online = model.online
    texts = {"prompt": prompt.lower(), "system": (system or "").lower()}
    candidates = {field: online.candidates(text) if text else set() for field, text in texts.items()}
    z = {k.kind: k.bias for k in model.kinds}
    for i in sorted(candidates["prompt"] | candidates["system"]):
        p, regex = online.patterns[i]
        for field, on in (("prompt", p.on_prompt), ("system", p.on_system)):
            if on and i in candidates[field] and regex.search(texts[field]):
                z[p.kind] += p.weight
                break
    return {kind: _sigmoid(v) for kind, v in z.items()}


# ------------------------------------------------------------------ SQL


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _num(x: float) -> str:
    return repr(float(x))

def _gated_score(bias: float, terms: list[str], gates: list[str]) -> str:
    """sigmoid(bias + sum(terms)), or the constant sigmoid(bias) where no gate holds
    (no pattern of the kind can match there, so the sum would be the bias alone)."""
    floor = _num(_sigmoid(bias))
    if not terms:
        return floor
    z = " + ".join([_num(bias), *terms])
    return f"CASE WHEN {' OR '.join(gates)} THEN 1.0 / (1.0 + exp(-({z}))) ELSE {floor} END"



def _groups(model: IntentModel) -> list[tuple[str, str, tuple[Pattern, ...]]]:
    """Patterns grouped by kind and language ("any" joins "en"; start-anchored ones apart),
    each group small enough that the union of its regexes stays a fast DFA."""
    out = []
    for k in model.kinds:
        live = [p for p in k.patterns if p.weight != 0]
        for lang in ("en", "zh", "ru", "es", "anchored"):
            members = tuple(p for p in live if (p.anchored and lang == "anchored") or (
                not p.anchored and (p.lang == lang or (lang == "en" and p.lang == "any"))))
            if members:
                out.append((k.kind, lang, members))
    return out


def _reported_sql(text: str, index: _LiteralIndex) -> str:
    """SQL list of the index literals the scans of text report (leftmost, non-overlapping)."""
    scans = []
    if index.ascii:
        scans.append(f"regexp_extract_all({text}, {literal(_literal_regex(index.ascii))})")
    if index.other:
        # strlen counts bytes, length characters: equal means pure ASCII, no need to scan.
        scans.append(f"CASE WHEN strlen({text}) = length({text}) THEN []::VARCHAR[] "
                     f"ELSE regexp_extract_all({text}, {literal(_literal_regex(index.other))}) END")
    if not scans:
        return "[]::VARCHAR[]"
    return scans[0] if len(scans) == 1 else f"list_concat({', '.join(scans)})"


def _joined_sql(reported: str) -> str:
    """The reported list as one short string, so that a group is checked with one small regex."""
    return f"({literal(_SEP)} || array_to_string({reported}, {literal(_SEP)}) || {literal(_SEP)})"


def _sighted_sql(patterns, joined: str, index: _LiteralIndex) -> str:
    """SQL boolean on the short joined list: is a literal of one of the patterns listed?"""
    seen = sorted({y for p in patterns for y in index.sightings(p.literals)}, key=lambda y: (-len(y), y))
    return f"regexp_matches({joined}, {literal(_SEP + '(?:' + '|'.join(map(_escape_literal, seen)) + ')' + _SEP)})"


def _group_match_sql(members, text: str, joined: str, index: _LiteralIndex) -> str:
    """SQL boolean: does some pattern of the group match text? True only where one does."""
    union = literal("|".join(f"(?:{p.regex})" for p in members))
    if all(p.anchored for p in members):
        return f"regexp_matches({text}, {union})"
    # The check reads the short list; only where it passes is the text scanned again.
    return f"CASE WHEN {_sighted_sql(members, joined, index)} THEN regexp_matches({text}, {union}) ELSE FALSE END"


@dataclass(frozen=True)
class _Field:
    """One lower-cased text, its joined list of reported literals, and for each group
    the SQL (a column or an expression) saying whether some pattern of the group matches."""

    text: str
    joined: str
    group_match: dict[tuple[str, str], str]


def _pattern_match(p: Pattern, f: _Field, index: _LiteralIndex) -> str:
    """SQL boolean for one pattern in a group known to match: its own literals, then its regex."""
    rx = f"regexp_matches({f.text}, {literal(p.regex)})"
    return rx if p.anchored else f"CASE WHEN {_sighted_sql([p], f.joined, index)} THEN {rx} ELSE FALSE END"


def _score_exprs(model: IntentModel, prompt: _Field, system: _Field | None) -> dict[str, str]:
    out = {}
    index = model.literal_index
    groups = _groups(model)
    for k in model.kinds:
        terms, any_group = [], []
        for kind, lang, members in groups:
            if kind != k.kind:
                continue
            for field in (prompt, system):
                if field is not None and (kind, lang) in field.group_match:
                    any_group.append(field.group_match[(kind, lang)])
            for p in members:
                parts = [f"CASE WHEN {f.group_match[(kind, lang)]} THEN {_pattern_match(p, f, index)} ELSE FALSE END"
                         for f, on in ((prompt, p.on_prompt), (system, p.on_system))
                         if on and f is not None and (kind, lang) in f.group_match]
                if parts:
                    terms.append(f"CASE WHEN {' OR '.join(parts)} THEN {_num(p.weight)} ELSE 0.0 END")
        out[k.kind] = _gated_score(k.bias, terms, any_group)
    return out


def intent_sql(prompt_expr: str, system_expr: str | None, patterns: IntentModel | None = None) -> dict[str, str]:
    """kind -> SQL expression for the score in [0, 1] = sigmoid(bias + sum(weight * matched)).

    ``prompt_expr`` and ``system_expr`` are SQL expressions (``system_expr`` None when
    there is no system prompt). Each expression stands alone: lower-casing (a no-op on
    lower-cased text), the literal scan, the group checks and, where a group matches,
    the kind's regexes. The scan is the same expression in all six and DuckDB computes
    it once a row, which makes this as fast as `intent_scores_sql` (measured). It does
    so only when the text is wrapped in a function call such as lower(); on a bare
    column it repeats the scan and runs twice as long, hence no "already lowered" option.
    """
    model = patterns or load_patterns()
    index = model.literal_index
    ptext = f"lower({prompt_expr})"
    stext = None if system_expr is None else f"lower(coalesce({system_expr}, ''))"
    fields = [(t, _joined_sql(_reported_sql(t, index)), on) for t, on in ((ptext, "prompt"), (stext, "system"))
              if t is not None]
    groups = _groups(model)
    out = {}
    for k in model.kinds:
        gates, terms = [], []
        for text, joined, on in fields:
            for kind, _, members in groups:
                mine = [p for p in members if kind == k.kind and (p.on_prompt if on == "prompt" else p.on_system)]
                if mine:
                    gates.append(_group_match_sql(mine, text, joined, index))
        for p in k.patterns:
            parts = [f"regexp_matches({t}, {literal(p.regex)})"
                     for t, on in ((ptext, p.on_prompt), (stext, p.on_system)) if on and t is not None]
            if p.weight != 0 and parts:
                terms.append(f"CASE WHEN {' OR '.join(parts)} THEN {_num(p.weight)} ELSE 0.0 END")
        out[k.kind] = _gated_score(k.bias, terms, gates)
    return out


def score_column(kind: str) -> str:
    """The column `intent_scores_sql` gives a kind's score; also the kind's reason code."""
    if kind not in KINDS:
        raise KeyError(f"unknown intent kind {kind!r}; known: {', '.join(KINDS)}")
    return REASON_CODES[kind]


def intent_scores_sql(source: str, *, prompt: str = "prompt", system: str | None = "system",
                      patterns: IntentModel | None = None) -> str:
    """A query returning every column of ``source`` plus one ``intent_<kind>`` score per kind.

    ``source`` is a table or view name, or a parenthesized query; ``prompt`` and
    ``system`` are its text columns (``system=None`` when it has none). Nested
    subqueries compute each step once per row: lower-case, list the literals, check
    each group, then sum the matching patterns' weights.
    """
    model = patterns or load_patterns()
    index = model.literal_index
    fields = [("_dg_ip", f"lower({prompt})", False)]
    if system:
        fields.append(("_dg_is", f"lower(coalesce({system}, ''))", True))
    lowered, joined, checks, helpers = [], [], [], []
    built: dict[str, _Field] = {}
    for name, expr, is_system in fields:
        lowered.append(f"{expr} AS {name}")
        scan = _reported_sql(name, index)
        if is_system:  # most requests have no system prompt: skip scanning an empty one
            scan = f"CASE WHEN {name} = '' THEN []::VARCHAR[] ELSE {scan} END"
        joined.append(f"{_joined_sql(scan)} AS {name}_j")
        cols = {}
        for i, (kind, lang, members) in enumerate(_groups(model)):
            mine = [p for p in members if (p.on_system if is_system else p.on_prompt)]
            if mine:
                col = f"{name}_g{i}"
                checks.append(f"{_group_match_sql(mine, name, name + '_j', index)} AS {col}")
                cols[(kind, lang)] = col
        built[name] = _Field(name, f"{name}_j", cols)
        helpers += [name, f"{name}_j", *cols.values()]
    scores = _score_exprs(model, built["_dg_ip"], built.get("_dg_is"))
    out = ",\n  ".join(f"{expr} AS {score_column(kind)}" for kind, expr in scores.items())
    return (
        f"SELECT * EXCLUDE ({', '.join(helpers)}),\n  {out}\n"
        f"FROM (SELECT *, {', '.join(checks)}\n"
        f" FROM (SELECT *, {', '.join(joined)}\n"
        f"  FROM (SELECT *, {', '.join(lowered)} FROM {source})))"
    )


def pattern_match_sql(prompt_expr: str, system_expr: str | None, patterns: IntentModel | None = None,
                      *, lowered: bool = False) -> list[tuple[Pattern, str]]:
    """(pattern, SQL boolean) per pattern, each regex run on its own, unguarded: the
    features the weights are fitted on, and the evidence lists."""
    model = patterns or load_patterns()
    ptext = prompt_expr if lowered else f"lower({prompt_expr})"
    stext = None if system_expr is None else (system_expr if lowered else f"lower(coalesce({system_expr}, ''))")
    out = []
    for p in model.patterns:
        parts = [f"regexp_matches({t}, {literal(p.regex)})"
                 for on, t in ((p.on_prompt, ptext), (p.on_system, stext)) if on and t is not None]
        out.append((p, "(" + " OR ".join(parts) + ")" if parts else "FALSE"))
    return out


def matched_patterns_sql(prompt_expr: str, system_expr: str | None, patterns: IntentModel | None = None,
                         *, kind: str | None = None, kind_expr: str | None = None,
                         lowered: bool = False) -> str:
    """SQL list of the ids of the patterns that match (the evidence), strongest weight first.

    ``kind`` (a kind name) limits the list to that kind's patterns; ``kind_expr`` (an
    SQL expression giving a kind name per row, e.g. `top_kind_sql`) keeps only the
    ids of that row's kind. Every regex runs on every row: use it on flagged rows.
    """
    model = patterns or load_patterns()
    if kind is not None:
        model.kind(kind)  # fail loudly on an unknown kind
    matches = [(p, m) for p, m in pattern_match_sql(prompt_expr, system_expr, model, lowered=lowered)
               if (kind is None or p.kind == kind) and m != "FALSE"]
    matches.sort(key=lambda pm: (-abs(pm[0].weight), pm[0].id))
    items = []
    for p, m in matches:
        cond = m if kind_expr is None else f"({kind_expr}) = {literal(p.kind)} AND {m}"
        items.append(f"CASE WHEN {cond} THEN {literal(p.id)} END")
    if not items:
        return "[]::VARCHAR[]"
    return f"list_filter([{', '.join(items)}], x -> x IS NOT NULL)"


def top_kind_sql(score_exprs: dict[str, str]) -> str:
    """SQL: the kind with the highest score (ties go to the earlier kind in KINDS).

    Pass column names (e.g. from `score_column`), not the long score expressions."""
    names = [k for k in KINDS if k in score_exprs]
    if not names:
        raise ValueError("no scores given")
    whens = []
    for k in names[:-1]:
        # Earlier WHENs have already taken any earlier kind that ties for the top.
        conds = [f"{score_exprs[k]} >= {score_exprs[o]}" for o in names if o != k]
        whens.append(f"WHEN {' AND '.join(conds)} THEN {literal(k)}")
    return f"CASE {' '.join(whens)} ELSE {literal(names[-1])} END"
