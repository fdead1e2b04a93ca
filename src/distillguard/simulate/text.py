"""Text for the traffic simulator: prompts, system prompts and short replies.

All wording lives in reviewed YAML files under ``phrasebook/`` so that people
can read and fix it without reading code; this module is only the small
grammar engine that expands it, plus an optional loader for real public
prompts (a folder laid out like ``/work/shared/corpora``) that are mixed in.

The grammar, in one paragraph. Each phrasebook file has ``slots`` per language
(``en``, ``zh``, ``ru``, ``es``) and ``any`` for language-neutral text such as
code; a language sees its own slots and then ``any``. A slot is

* a list: pick one item uniformly. Items are templates, or records (mappings
  of plain strings, for facts whose parts must agree, read as ``{{name.field}}``);
* a string: one template;
* a mapping with exactly one kind key: ``one_of`` (with optional ``weights``
  and ``noise``), ``int: [lo, hi]``, ``decimal: [lo, hi, places]``,
  ``repeat: <slot>`` (with ``times: [lo, hi]`` and ``sep``), or
  ``corpus: human|distillation|airoboros`` (with ``else: <slot>``): real text
  with probability ``corpora_share`` for English rows when corpora are loaded.

Templates refer to slots as ``{{name}}``; everything else is literal, so code
and JSON need no escaping. A slot name used twice in one template is drawn
once, so the two places agree.

Speed matters (the simulator asks for millions of rows), so expansion is by
column, not by row: a slot draws all its choices with one ``rng`` call, groups
the rows by the template chosen, expands each referenced slot once for the
whole group and fills the group with the template's compiled f-string. Ask
for many rows per call: a call costs ~0.1-1 ms however small. Everything is a
pure function of the ``rng`` passed in; fixed sets (benchmarks, assignments,
pools) use generators seeded from a stable hash of their name.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import operator
import re
import zlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

FAMILIES: tuple[str, ...] = (
    # legitimate use
    "chat",
    "chat_followup",
    "coding",
    "agent_step",
    "homework",
    "eval_mcq",
    "eval_math",
    "research_reasoning",
    "enterprise_ticket_summary",
    "enterprise_review_sentiment",
    "enterprise_invoice_extraction",
    "enterprise_product_description",
    "enterprise_catalog_translation",
    "saas_passthrough",
    # distillation campaigns
    "reasoning_elicitation",
    "rubric_grading",
    "pairwise_judging",
    "safety_rewrite",
    "synthetic_data",
    "capability_sweep",
    "agentic_trace",
    "paraphrased_reasoning",
)
LANGUAGES = ("en", "zh", "ru", "es")

# A benchmark-sized bank (GSM8K's test split is 1.3k, MMLU's 14k): eval
# accounts draw from it, so unrelated harnesses replay the same questions.
_BANK_SIZE = 3000
_BLOCK = 256  # fixed sets grow in seeded blocks, so item i never depends on k
_CORPUS_KINDS = ("human", "distillation", "airoboros")
_MAX_CORPUS_CHARS = 4000  # a few shared "act as" prompts run to 100k chars
_REF = re.compile(r"\{\{(\w+)(?:\.(\w+))?\}\}")


# --------------------------------------------------------------------- grammar


class _Template:
    """A string with ``{{slot}}`` references, compiled to a function of the slots.

    ``fn(*values)`` returns the filled text; it is an f-string lambda built
    once here, because f-strings join their pieces without re-parsing the
    template per row, which is 2-5x faster than ``str.format`` on long text.
    ``fn`` is None for plain text.
    """

    __slots__ = ("text", "fn", "refs")

    def __init__(self, text: str):
        refs: list[str] = []
        body: list[str] = []
        consts: dict[str, str] = {}
        pos = 0
        for m in _REF.finditer(text):
            if m.start() > pos:
                consts[f"L{len(consts)}"] = text[pos : m.start()]
                body.append(f"{{L{len(consts) - 1}}}")
            name, field = m.groups()
            if name not in refs:
                refs.append(name)
            arg = f"a{refs.index(name)}"
            body.append(f"{{{arg}[{field!r}]}}" if field else f"{{{arg}}}")
            pos = m.end()
        if pos < len(text):
            consts[f"L{len(consts)}"] = text[pos:]
            body.append(f"{{L{len(consts) - 1}}}")
        self.text = text
        self.refs = tuple(refs)
        self.fn = None
        if refs:
            # Literal text is passed in as default arguments, never pasted into
            # the source, so nothing in a phrasebook can change the code.
            params = [f"a{i}" for i in range(len(refs))] + [f"{k}={k}" for k in consts]
            self.fn = eval(f'lambda {", ".join(params)}: f"""{"".join(body)}"""', dict(consts))


class _Ctx:
    """What one expansion needs: the caller's rng, a language's slots, the share."""

    __slots__ = ("rng", "slots", "share", "english")

    def __init__(self, rng, slots, share, english):
        self.rng, self.slots, self.share, self.english = rng, slots, share, english

    def draw(self, name: str, n: int) -> list:
        return self.slots[name].draw(n, self)


def _below(rng, k: int, n: int) -> np.ndarray:
    """n uniform integers in [0, k): from floats, because ``rng.integers``
    costs ~7 us a call in argument checks and most draws here are tiny."""
    return (rng.random(n) * k).astype(np.int64)


def _objects(values: list) -> np.ndarray:
    # np.array(list_of_str) would build a fixed-width unicode copy; keep objects.
    return np.fromiter(values, dtype=object, count=len(values))


class _Choice:
    __slots__ = ("items", "values", "literal", "p", "noise")

    def __init__(self, items: list, weights=None, noise=None):
        if not items:
            raise ValueError("empty choice")
        kinds = {type(x) for x in items}
        if kinds == {dict}:
            keys = {tuple(sorted(x)) for x in items}
            if len(keys) != 1 or not all(isinstance(v, str) for x in items for v in x.values()):
                raise ValueError(f"records must share keys and hold strings: {items[0]}")
            self.items = None
        elif kinds == {str}:
            self.items = [_Template(x) for x in items]
        else:  # usually an unquoted "Word: text" that YAML read as a mapping
            raise ValueError(f"mixed strings and mappings in a choice near {items[0]!r}")
        self.values = _objects(items)
        self.literal = self.items is None or all(t.fn is None for t in self.items)
        self.p = None
        if weights is not None:
            w = np.asarray(weights, dtype=float)
            if len(w) != len(items):
                raise ValueError(f"{len(w)} weights for {len(items)} items near {items[0]!r}")
            self.p = np.cumsum(w / w.sum())
            self.p[-1] = 1.0  # no row may fall past the end through rounding
        self.noise = noise

    def refs(self):
        return {r for t in self.items or () for r in t.refs}

    def draw(self, n, ctx):
        k = len(self.values)
        if k == 1:  # a single template: nothing to choose, nothing to group
            t = self.items[0] if self.items else None
            out = list(map(t.fn, *[ctx.draw(r, n) for r in t.refs])) if t and t.fn else [self.values[0]] * n
        elif self.literal:
            out = self.values[self._pick(n, ctx.rng)].tolist()
        elif n <= 64:
            out = self._fill_small(self._pick(n, ctx.rng).tolist(), ctx)
        else:
            out = self._fill(self._pick(n, ctx.rng), ctx)
        if self.noise:
            _add_noise(out, self.noise, ctx.rng)
        return out

    def _pick(self, n, rng):
        if self.p is None:
            return _below(rng, len(self.values), n)
        return np.searchsorted(self.p, rng.random(n), side="right")  # p is cumulative

    def _fill(self, idx, ctx) -> list:
        """Group rows by template, expand each group's slots once, scatter back."""
        # Small integer keys get numpy's linear-time radix sort.
        order = np.argsort(idx.astype(np.int16), kind="stable")
        done: list[str] = []
        for t, c in zip(self.items, np.bincount(idx, minlength=len(self.items)).tolist()):
            if c == 0:
                continue
            if t.fn is None:
                done.extend([t.text] * c)
            else:
                done.extend(map(t.fn, *[ctx.draw(r, c) for r in t.refs]))
        out = np.empty(len(idx), dtype=object)
        out[order] = _objects(done)
        return out.tolist()

    def _fill_small(self, idx: list, ctx) -> list:
        """:meth:`_fill` without numpy, for the many tiny nested draws of small
        calls; same groups in the same order, so the same result."""
        rows: dict[int, list[int]] = {}
        for i, j in enumerate(idx):
            rows.setdefault(j, []).append(i)
        out = [None] * len(idx)
        for j in sorted(rows):
            t, pos = self.items[j], rows[j]
            if t.fn is None:
                vals = [t.text] * len(pos)
            else:
                vals = map(t.fn, *[ctx.draw(r, len(pos)) for r in t.refs])
            for i, v in zip(pos, vals):
                out[i] = v
        return out


class _Int:
    """A uniform integer, as text (small ranges come from a table of strings)."""

    __slots__ = ("lo", "hi", "table")

    def __init__(self, lo, hi):
        self.lo, self.hi = int(lo), int(hi)
        # Formatting ints one by one costs more than everything else in a short
        # template; a lookup table of the strings makes it a numpy gather.
        small = self.hi - self.lo <= 100_000
        self.table = _objects([str(i) for i in range(self.lo, self.hi + 1)]) if small else None

    def refs(self):
        return set()

    def draw(self, n, ctx):
        values = _below(ctx.rng, self.hi - self.lo + 1, n)
        if self.table is not None:
            return self.table[values].tolist()
        return list(map(str, (values + self.lo).tolist()))


class _Decimal:
    __slots__ = ("lo", "hi", "fmt")

    def __init__(self, lo, hi, places=2):
        self.lo, self.hi = float(lo), float(hi)
        self.fmt = f"{{:.{int(places)}f}}".format

    def refs(self):
        return set()

    def draw(self, n, ctx):
        return list(map(self.fmt, (self.lo + ctx.rng.random(n) * (self.hi - self.lo)).tolist()))


class _Repeat:
    """``times`` independent draws of a slot, joined: variable-length lists."""

    __slots__ = ("inner", "lo", "hi", "sep")

    def __init__(self, inner, lo, hi, sep):
        self.inner, self.lo, self.hi, self.sep = inner, int(lo), int(hi), sep

    def refs(self):
        return self.inner.refs()

    def draw(self, n, ctx):
        k = self.lo + _below(ctx.rng, self.hi - self.lo + 1, n)
        ends = np.cumsum(k)
        items = self.inner.draw(int(ends[-1]) if n else 0, ctx)
        join = self.sep.join
        return [join(items[a:b]) for a, b in zip((ends - k).tolist(), ends.tolist())]


class _Corpus:
    """Real text for English rows when corpora are loaded, else the fallback."""

    __slots__ = ("kind", "fallback")

    def __init__(self, kind, fallback):
        if kind not in _CORPUS_KINDS:
            raise ValueError(f"unknown corpus {kind!r}")
        self.kind, self.fallback = kind, fallback

    def refs(self):
        return self.fallback.refs()

    def draw(self, n, ctx):
        real = ctx.slots.get(f"corpus_{self.kind}") if ctx.english else None
        if real is None or ctx.share <= 0:
            return self.fallback.draw(n, ctx)
        take = ctx.rng.random(n) < ctx.share
        m = int(take.sum())
        out = np.empty(n, dtype=object)
        out[take] = _objects(real.draw(m, ctx))
        out[~take] = _objects(self.fallback.draw(n - m, ctx))
        return out.tolist()


class _Texts:
    """Real text, drawn uniformly and never read as a template."""

    __slots__ = ("values",)

    def __init__(self, texts):
        self.values = _objects(list(texts))

    def refs(self):
        return set()

    def draw(self, n, ctx):
        return self.values[_below(ctx.rng, len(self.values), n)].tolist()


def _parse(spec):
    """One YAML slot definition -> a slot object (see the module docstring)."""
    if isinstance(spec, str):
        return _Choice([spec])
    if isinstance(spec, list):
        return _Choice(spec)
    if not isinstance(spec, dict):
        raise ValueError(f"bad slot {spec!r}")
    if "one_of" in spec:
        return _Choice(spec["one_of"], spec.get("weights"), spec.get("noise"))
    if "int" in spec:
        return _Int(*spec["int"])
    if "decimal" in spec:
        return _Decimal(*spec["decimal"])
    if "repeat" in spec:
        return _Repeat(_parse(spec["repeat"]), *spec["times"], spec.get("sep", "\n"))
    if "corpus" in spec:
        return _Corpus(spec["corpus"], _parse(spec["else"]))
    raise ValueError(f"slot needs one_of/int/decimal/repeat/corpus: {spec!r}")


def _add_noise(out: list, spec: dict, rng) -> None:
    """Human sloppiness, in place: a typo, no final punctuation, all lowercase."""
    n = len(out)
    if p := spec.get("typo"):
        hit = np.flatnonzero(rng.random(n) < p).tolist()
        for i, u in zip(hit, rng.random(len(hit)).tolist()):
            s = out[i]
            j = int(u * (len(s) - 2))
            if len(s) > 3 and s[j].isalpha() and s[j + 1].isalpha():
                out[i] = s[:j] + s[j + 1] + s[j] + s[j + 2 :]
    if p := spec.get("nopunct"):
        for i in np.flatnonzero(rng.random(n) < p).tolist():
            out[i] = out[i].rstrip(".?!。？！")
    if p := spec.get("lower"):
        for i in np.flatnonzero(rng.random(n) < p).tolist():
            out[i] = out[i].lower()


# ------------------------------------------------------------------ phrasebook


@functools.cache
def _phrasebook() -> dict:
    """Parse every phrasebook file once per process; merge, refusing clashes."""
    book: dict = {"families": {}, "benchmarks": {}, "assignments": [], "slots": {}}
    folder = resources.files(__package__) / "phrasebook"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        doc = yaml.load(entry.read_text(encoding="utf-8"), Loader=loader) or {}
        for key in ("families", "benchmarks"):
            for name, value in (doc.get(key) or {}).items():
                if name in book[key]:
                    raise ValueError(f"{entry.name}: {key} entry {name!r} defined twice")
                book[key][name] = value
        book["assignments"] += doc.get("assignments") or []
        for lang, slots in (doc.get("slots") or {}).items():
            if lang not in (*LANGUAGES, "any"):
                raise ValueError(f"{entry.name}: unknown language section {lang!r}")
            merged = book["slots"].setdefault(lang, {})
            for name, spec in slots.items():
                if name in merged:
                    raise ValueError(f"{entry.name}: slot {lang}.{name} defined twice")
                try:
                    merged[name] = _parse(spec)
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{entry.name}: slot {lang}.{name}: {exc}") from None
    if set(book["families"]) != set(FAMILIES):
        raise ValueError(f"phrasebook families differ: {set(book['families']) ^ set(FAMILIES)}")
    return book


def _grammars(book: dict) -> dict[str, dict]:
    """Per language: its own slots over the shared ``any`` ones, checked closed."""
    out = {}
    for lang in LANGUAGES:
        slots = {**book["slots"].get("any", {}), **book["slots"].get(lang, {})}
        roots = [v for f in book["families"].values() for k, v in f.items() if k != "bank"]
        roots += list(book["benchmarks"].values())
        if lang == "en":
            roots += book["assignments"]
        missing = {r for r in roots if r not in slots}
        missing |= {f"{r} (in {name})" for name, s in slots.items() for r in s.refs() if r not in slots}
        if missing:
            raise ValueError(f"phrasebook {lang}: undefined slots {sorted(missing)}")
        out[lang] = slots
    return out


# --------------------------------------------------------------------- corpora


def _lines(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        yield from fh


def _jsonl(path: Path):
    for line in _lines(path):
        try:
            yield json.loads(line)
        except ValueError:
            continue


def _with_input(instruction, extra) -> str | None:
    if not isinstance(instruction, str):
        return None
    return f"{instruction}\n\n{extra}" if isinstance(extra, str) and extra.strip() else instruction


def _human(root: Path):
    for obj in _jsonl(root / "oasst_prompt_lottery.jsonl"):
        yield obj
    for obj in _jsonl(root / "koala_test_set.jsonl"):
        yield obj.get("prompt") if isinstance(obj, dict) else None
    for obj in _jsonl(root / "selfinstruct_user_oriented.jsonl"):
        if isinstance(obj, dict):
            inst = (obj.get("instances") or [{}])[0]
            yield _with_input(obj.get("instruction"), inst.get("input") if isinstance(inst, dict) else None)
    csv.field_size_limit(1 << 24)
    text = (root / "awesome_chatgpt_prompts.csv").read_text(encoding="utf-8", errors="replace")
    for row in csv.DictReader(io.StringIO(text)):
        yield row.get("prompt")
    for obj in _jsonl(root / "hh_rlhf_harmless_test.jsonl.gz"):
        chosen = obj.get("chosen") if isinstance(obj, dict) else None
        if isinstance(chosen, str) and "Human:" in chosen:
            yield chosen.split("Human:", 1)[1].split("\n\nAssistant:", 1)[0]


def _distillation(root: Path):
    try:
        data = json.loads((root / "alpaca_5000.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = []
    for obj in data if isinstance(data, list) else []:
        if isinstance(obj, dict):
            yield _with_input(obj.get("instruction"), obj.get("input"))
    for obj in _jsonl(root / "alpaca_seed_tasks.jsonl"):
        if isinstance(obj, dict):
            inst = (obj.get("instances") or [{}])[0]
            yield _with_input(obj.get("instruction"), inst.get("input") if isinstance(inst, dict) else None)
    for obj in _jsonl(root / "wizardlm_testset.jsonl"):
        yield obj.get("Instruction") if isinstance(obj, dict) else None
    try:
        data = json.loads((root / "ultrachat_eval.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = []
    for obj in data if isinstance(data, list) else []:
        yield obj.get("data") if isinstance(obj, dict) else None


def _airoboros(root: Path, slots: dict) -> list[str]:
    """Generator templates as our templates: ``{x}`` -> ``{{airoboros_x}}``.

    Only the templates whose every placeholder has an ``airoboros_*`` slot in
    the English phrasebook are kept; the second-stage ``*_response`` ones are
    not prompts a harvester writes by itself.
    """
    out = []
    for path in sorted(root.glob("*.txt")):
        if path.stem.endswith("_response"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "{{" in text or "}}" in text:
            continue
        names = set(re.findall(r"\{(\w+)\}", text))
        if all(f"airoboros_{x}" in slots for x in names):
            out.append(re.sub(r"\{(\w+)\}", r"{{airoboros_\1}}", text).strip())
    return out


def _read(source, root: Path) -> list[str]:
    """Collect texts from one source, skipping anything malformed or missing."""
    seen, out = set(), []
    try:
        for text in source(root):
            if isinstance(text, str):
                text = text.strip()
                if 0 < len(text) <= _MAX_CORPUS_CHARS and text not in seen:
                    seen.add(text)
                    out.append(text)
    except (OSError, ValueError, csv.Error, EOFError):
        pass  # a broken file contributes what it had so far
    return out


@functools.cache
def _corpora(folder: Path) -> dict[str, list[str]]:
    return {
        "human": _read(_human, folder / "human"),
        "distillation": _read(_distillation, folder / "distillation"),
    }


# ---------------------------------------------------------------- text source


def _seed(*parts) -> int:
    """Stable across processes, unlike ``hash()``."""
    return zlib.crc32("|".join(map(str, parts)).encode())


class TextSource:
    """Prompts, system prompts and replies for every family and language.

    ``corpora``: a folder laid out like ``/work/shared/corpora``; when given,
    English rows of the families whose phrasebook marks a ``corpus`` slot
    (chat, saas_passthrough, and the seed questions inside the campaign,
    research and homework families) use real text with probability
    ``corpora_share``. ``pool`` (in :meth:`prompts`) is honoured by every
    family: the rows come from a fixed set of that many distinct items.
    """

    def __init__(self, corpora: Path | None = None, corpora_share: float = 0.5):
        book = _phrasebook()
        self._families = book["families"]
        self._benchmarks = book["benchmarks"]
        self._assignments = book["assignments"]
        self._grammar = _grammars(book)
        self._share = float(corpora_share)
        self._corpora: dict[str, list[str]] = {}
        if corpora is not None and Path(corpora).is_dir():
            folder = Path(corpora).resolve()
            self._corpora = dict(_corpora(folder))
            en = self._grammar["en"] = dict(self._grammar["en"])
            templates = _airoboros(folder / "generator-templates" / "airoboros", en)
            if templates:
                en["corpus_airoboros"] = _Choice(templates)
            for kind, texts in self._corpora.items():
                if texts:
                    en[f"corpus_{kind}"] = _Texts(texts)
        self._fixed: dict[tuple, dict] = {}  # benchmark banks and assignments, grown on demand
        self._pools: dict[tuple, list[str]] = {}

    # -- public -------------------------------------------------------------

    def prompts(self, family, n, rng, lang="en", *, pool=None) -> list[str]:
        """``n`` first-turn prompts of a family.

        ``lang`` is one code or one code per row. With ``pool``, rows are drawn
        from a fixed set of ``pool`` distinct prompts, the same for every
        caller of that (family, language, pool size): one org's templates.
        The eval families draw from their benchmark bank.
        """
        spec = self._family(family)
        if pool is not None and pool < 1:
            raise ValueError(f"pool must be >= 1, got {pool}")

        def make(code, m):
            if pool is not None:
                return self._pick(self._pool(family, code, int(pool)), m, rng)
            if "bank" in spec:
                return self._pick(self._bank(spec["bank"], code, _BANK_SIZE), m, rng)
            return self._expand(spec["prompt"], code, m, rng)

        return self._by_lang(make, n, lang)

    def system_prompts(self, family, n, rng, lang="en") -> list[str | None]:
        """``n`` system prompts of a family; None where the caller sends none."""
        root = self._family(family)["system"]
        out = self._by_lang(lambda code, m: self._expand(root, code, m, rng), n, lang)
        return [s or None for s in out]  # an empty phrasing means "no system prompt"

    def responses(self, family, prompts: Sequence[str], rng, lang="en") -> list[str]:
        """One short, plausible reply per prompt (its shape, not its content,
        follows the family: a verdict for judges, steps for reasoning, a tool
        call for agents)."""
        root = self._family(family)["reply"]
        return self._by_lang(lambda code, m: self._expand(root, code, m, rng), len(prompts), lang)

    def benchmark_items(self, benchmark: str, k: int) -> list[str]:
        """The first ``k`` questions of a fixed English benchmark (``mcq``, ``math``)."""
        if benchmark not in self._benchmarks:
            raise ValueError(f"unknown benchmark {benchmark!r}; known: {sorted(self._benchmarks)}")
        return list(self._bank(benchmark, "en", k)[:k])

    def assignment_items(self, course: int, k: int) -> list[str]:
        """The canonical text of ``k`` homework questions of one course.

        The course number picks the subject; each course has its own questions.
        """
        root = self._assignments[int(course) % len(self._assignments)]
        return list(self._fixed_set(("assignment", int(course)), root, "en", k)[:k])

    # -- internals ----------------------------------------------------------

    def _family(self, family: str) -> dict:
        try:
            return self._families[family]
        except (KeyError, TypeError):
            raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}") from None

    def _expand(self, root: str, lang: str, n: int, rng) -> list[str]:
        ctx = _Ctx(rng, self._grammar[lang], self._share, lang == "en")
        return ctx.draw(root, n)

    @staticmethod
    def _pick(items: list[str], n: int, rng) -> list[str]:
        return [items[i] for i in _below(rng, len(items), n).tolist()]

    def _by_lang(self, make, n: int, lang) -> list[str]:
        """Rows for one language, or for a per-row sequence of languages."""
        if isinstance(lang, str):
            if lang not in LANGUAGES:
                raise ValueError(f"unknown language {lang!r}; known: {LANGUAGES}")
            return list(make(lang, n))
        codes = np.asarray(lang, dtype=object)
        if codes.shape != (n,):
            raise ValueError(f"lang sequence has {len(codes)} entries for n={n}")
        unknown = set(codes.tolist()) - set(LANGUAGES)
        if unknown:
            raise ValueError(f"unknown language(s) {sorted(map(str, unknown))}; known: {LANGUAGES}")
        out = np.empty(n, dtype=object)
        for code in LANGUAGES:  # fixed order keeps the rng stream deterministic
            mask = codes == code
            m = int(mask.sum())
            if m:
                out[mask] = _objects(list(make(code, m)))
        return out.tolist()

    def _fixed_set(self, key: tuple, root: str, lang: str, k: int) -> list[str]:
        """Distinct items from a generator seeded by ``key``, grown in blocks.

        Blocks make item i independent of k (a longer list extends a shorter
        one), and the seed makes the set identical across instances.
        """
        state = self._fixed.setdefault((*key, lang), {"items": [], "seen": set(), "block": 0})
        items, seen = state["items"], state["seen"]
        stale = 0
        while len(items) < k:
            before = len(items)
            rng = np.random.default_rng([_seed(*key, lang), state["block"]])
            for text in self._expand(root, lang, _BLOCK, rng):
                if text not in seen:
                    seen.add(text)
                    items.append(text)
            state["block"] += 1
            stale = stale + 1 if len(items) - before < _BLOCK // 64 else 0
            if stale >= 8:
                raise ValueError(f"{root} ({lang}) yields only {len(items)} distinct items, {k} asked")
        return items

    def _bank(self, benchmark: str, lang: str, k: int) -> list[str]:
        return self._fixed_set(("bank", benchmark), self._benchmarks[benchmark], lang, k)

    def _pool(self, family: str, lang: str, size: int) -> list[str]:
        key = ("pool", family, lang, size)
        if key not in self._pools:
            rng = np.random.default_rng(_seed(*key))
            seen: dict[str, None] = {}
            for _ in range(20):  # a small grammar may not have `size` distinct items
                for text in self.prompts(family, size, rng, lang):
                    seen.setdefault(text)
                if len(seen) >= size:
                    break
            self._pools[key] = list(seen)[:size]
        return self._pools[key]


def estimate_tokens(texts: Sequence[str]) -> np.ndarray:
    """Rough token counts: ~4 characters a token, ~1.5 for CJK (3-byte UTF-8).

    Counts per string come from three C-level passes (length, UTF-8 length,
    ASCII length), which separate 3-byte characters from 2-byte ones without a
    per-character loop.
    """
    n = len(texts)
    chars = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    utf8 = np.fromiter(
        map(len, map(operator.methodcaller("encode", "utf-8", "surrogatepass"), texts)),
        dtype=np.int64,
        count=n,
    )
    ascii_ = np.fromiter(
        map(len, map(operator.methodcaller("encode", "ascii", "ignore"), texts)),
        dtype=np.int64,
        count=n,
    )
    other = chars - ascii_
    wide = np.clip((utf8 - ascii_) - 2 * other, 0, other)  # 3-byte chars: CJK, kana, hangul
    tokens = np.ceil((chars - wide) / 4.0 + wide / 1.5).astype(np.int64)
    return np.where(chars > 0, np.maximum(tokens, 1), 0)
