"""SQL builders for reading LLM log records, shared by every log format.

Each returns a DuckDB SQL expression over JSON values, so a format's mapping runs
vectorized in the engine (no Python per record). A JSON value here is the engine's
JSON type: the text of an object, an array, a string, a number. Logs often hold a
nested object as a string of JSON (a CSV or database export, an OTLP string
attribute), so `doc()` reads either form.

Reading a document is a parse of all of it, and records carry long conversation
histories: a path read from a named column (`_j`, or a format's layer such as `_req`)
is therefore written as a placeholder, and mapped_sql() (base.py) reads every path a
mapping needs from that column in one parse (`hoist`).

Messages are read the same way whatever API wrote them: OpenAI Chat (`content` a
string or a list of parts), OpenAI Responses (`input` items), Anthropic Messages
(content blocks) and the OpenTelemetry GenAI message schema (`parts`).
"""

from __future__ import annotations

import re

from distillguard.engine import ident, literal

# Parts and blocks whose text is the message's text (not images, tool calls or reasoning).
TEXT_PARTS = ("text", "input_text", "output_text")
NEWLINE = "chr(10)"


# ⟦column|json or str|path⟧: a path of a named column, read with the column's other paths in one parse.
PLACEHOLDER = re.compile(r"⟦(\w+)\|(json|str)\|([^⟧]*)⟧")
_COLUMN = re.compile(r"_\w+")
_DIRECT = re.compile(r"json_extract(_string)?\((_\w+), '(\$[^'*]*)'\)")


def _read(x: str, kind: str, path: str) -> str:
    if _COLUMN.fullmatch(x) and "*" not in path:
        return f"⟦{x}|{kind}|{path}⟧"
    return f"json_extract{'_string' if kind == 'str' else ''}({x}, {literal(path)})"


_STEP = re.compile(r'\.(?:"([^"]+)"|([A-Za-z_][\w-]*))|\[(\d+)\]')


def _steps(path: str) -> list[str | int] | None:
    """"$.a.b[0]" -> ["a", "b", 0]; None for a path hoisting does not read (wildcards)."""
    if not path.startswith("$"):
        return None
    steps, at_ = [], 1
    for m in _STEP.finditer(path, 1):
        if m.start() != at_:
            return None
        steps.append(int(m[3]) if m[3] is not None else (m[1] or m[2]))
        at_ = m.end()
    return steps if at_ == len(path) and steps else None


def hoist(stages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Layers of named SQL (the last one the output) with every placeholder read from one
    parse of its column: `from_json(column, spec)` into `"<column>:doc"`, a struct of
    the paths read (each leaf as JSON), added right after the layer that defines the
    column (`_j` at the start). A path under another path read whole is read from it."""
    # A direct read of a named column's path, json_extract(_j, '$.a'), is hoisted like a placeholder.
    stages = [{name: _DIRECT.sub(lambda m: f"⟦{m[2]}|{'str' if m[1] else 'json'}|{m[3]}⟧", sql)
               for name, sql in stage.items()} for stage in stages]
    wanted: dict[str, list[str]] = {}
    for stage in stages:
        for sql in stage.values():
            for column, _, path in PLACEHOLDER.findall(sql):
                if _steps(path) is not None and path not in wanted.setdefault(column, []):
                    wanted[column].append(path)
    # Struct keys are matched without case: paths that differ only in case are read directly.
    for column, ps in wanted.items():
        folded: dict[tuple, set[tuple]] = {}
        for p in ps:
            steps = tuple(_steps(p))
            for i in range(1, len(steps) + 1):
                folded.setdefault(tuple(str(x).lower() for x in steps[:i]), set()).add(steps[:i])
        clashing = {k for k, v in folded.items() if len(v) > 1}
        wanted[column] = [p for p in ps if not any(
            tuple(str(x).lower() for x in _steps(p)[:i]) in clashing for i in range(1, len(_steps(p)) + 1))]
    leaves = {c: {tuple(_steps(p)) for p in ps} for c, ps in wanted.items()}
    # A value read both as a list ($.a[0]) and as an object ($.a.b) is read whole, and each path from it.
    for column, paths in leaves.items():
        kinds: dict[tuple, set[type]] = {}
        for steps in paths:
            for i in range(len(steps) - 1):
                kinds.setdefault(steps[:i + 1], set()).add(type(steps[i + 1]))
        paths |= {prefix for prefix, k in kinds.items() if len(k) > 1}

    def leaf_of(column: str, steps: tuple) -> tuple:
        """The shortest path read whole that this path is under (or is)."""
        return next(steps[:i] for i in range(1, len(steps) + 1) if steps[:i] in leaves[column])

    def spec(column: str) -> str:
        tree: dict = {}
        for steps in leaves[column]:
            steps = leaf_of(column, steps)
            node = tree
            for i, step in enumerate(steps):
                last = i == len(steps) - 1
                key = "[]" if isinstance(step, int) else step
                node = node.setdefault(key, "JSON" if last else {})
                if node == "JSON":
                    break

        def render(node) -> str:
            if node == "JSON":
                return '"JSON"'
            if "[]" in node:
                return f"[{render(node['[]'])}]"
            return "{" + ", ".join(f"{json_quote(k)}: {render(v)}" for k, v in node.items()) + "}"
        return render(tree)

    def access(column: str, steps: tuple) -> str:
        leaf = leaf_of(column, steps)
        sql = ident(f"{column}:doc") + "".join(f"[{s + 1}]" if isinstance(s, int) else f".{ident(s)}" for s in leaf)
        if leaf != steps:  # under a path read whole: read from that value
            rest = "$" + "".join(f"[{s}]" if isinstance(s, int) else f".{json_quote(s)}" for s in steps[len(leaf):])
            sql = f"json_extract({sql}, {literal(rest)})"
        return sql

    def resolved(sql: str) -> str:
        def one(m: re.Match) -> str:
            column, kind, path = m[1], m[2], m[3]
            steps = _steps(path)
            if steps is None or path not in wanted.get(column, ()):
                return f"json_extract{'_string' if kind == 'str' else ''}({column}, {literal(path)})"
            value = access(column, tuple(steps))
            return f"json_extract_string({value}, '$')" if kind == "str" else value
        return PLACEHOLDER.sub(one, sql)

    def extraction(columns) -> list[dict[str, str]]:
        reads = {f"{c}:doc": f"from_json({c}, {literal(spec(c))})" for c in wanted if c in columns and leaves[c]}
        return [reads] if reads else []

    out = extraction({"_j"})
    for stage in stages:
        out.append({name: resolved(sql) for name, sql in stage.items()})
        out += extraction(set(stage))
    return out


def json_quote(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def let(value: str, name: str, body: str) -> str:
    """body with `name` bound to value, which is computed once (the engine does not
    share a subexpression that a CASE uses several times)."""
    return f"list_transform([{value}], lambda {name}: {body})[1]"


def doc(x: str) -> str:
    """A JSON value, or the JSON that a JSON string holds ("{...}" or "[...]")."""
    return let(x, "d", "CASE WHEN json_type(d) = 'VARCHAR' AND regexp_matches(json_extract_string(d, '$'), "
                       "'^\\s*[\\[{]') AND json_valid(json_extract_string(d, '$')) "
                       "THEN json(json_extract_string(d, '$')) ELSE d END")


def field(x: str, *paths: str) -> str:
    """The first of several paths that is present, as JSON (a nested document read through doc())."""
    return "coalesce(" + ", ".join(doc(at(x, p)) for p in paths) + ")"


def text(x: str, *paths: str) -> str:
    """The first present path as text: a string unquoted, a number or a boolean as written.
    An empty string counts as absent, so the next path is tried."""
    return "coalesce(" + ", ".join(f"nullif({_read(x, 'str', p)}, '')" for p in paths) + ")"


def scalar(x: str, *paths: str) -> str:
    """Like text(), but only a string, number or boolean: an object or array there is
    something else (an envelope's `response` object is not the response's text)."""
    return "coalesce(" + ", ".join(
        f"CASE WHEN json_type({at(x, p)}) NOT IN ('OBJECT', 'ARRAY') THEN nullif({_read(x, 'str', p)}, '') END"
        for p in paths) + ")"


def items(x: str) -> str:
    """A JSON array's elements as a list of JSON (an empty list for anything else)."""
    return f"coalesce(CASE WHEN json_type({x}) = 'ARRAY' THEN json_extract({x}, '$[*]') END, [])"


def content_text(content: str) -> str:
    """The text of a message's content: a string, or its text parts joined by newlines.
    NULL when it has no text (only images, tool calls or tool results)."""
    kind, text_ = "json_extract_string(p, 'type')", "coalesce(json_extract_string(p, 'text'), json_extract_string(p, 'content'))"
    # Text parts: {"type": "text" | "input_text" | "output_text", "text": ...}; OpenTelemetry's {"type": "text", "content": ...}.
    parts = (f"list_transform(json_extract(c, '$[*]'), lambda p: CASE WHEN json_type(p) = 'VARCHAR' "
             f"THEN json_extract_string(p, '$') WHEN {kind} IN {TEXT_PARTS} THEN {text_} END)")
    return let(content, "c", f"CASE json_type(c) WHEN 'VARCHAR' THEN nullif(json_extract_string(c, '$'), '') "
                             f"WHEN 'ARRAY' THEN nullif(array_to_string(list_filter({parts}, lambda t: t IS NOT NULL), "
                             f"{NEWLINE}), '') END")


def at(x: str, path: str) -> str:
    """The JSON at a path ("$.a.b", "$.a[0]", "$.a[*]" for a list)."""
    return _read(x, "json", path)


def message_text(message: str) -> str:
    """A message's text: its `content` (Chat, Responses, Anthropic) or its `parts` (OpenTelemetry)."""
    return f"coalesce({content_text(at(message, '$.content'))}, {content_text(at(message, '$.parts'))})"


def last_text_of(messages: str, roles: tuple[str, ...]) -> str:
    """The text of the last message with one of `roles` that has text. In a tool loop the
    last user turn may hold only tool results: the prompt is then the task that started it."""
    texts = f"list_transform(list_filter({messages}, lambda m: json_extract_string(m, 'role') IN {roles}), lambda m: {message_text('m')})"
    return f"list_filter({texts}, lambda t: t IS NOT NULL)[-1]"


def texts_of(messages: str, roles: tuple[str, ...]) -> str:
    """The text of every message with one of `roles`, joined by blank lines (NULL if none)."""
    picked = f"list_filter({messages}, lambda m: json_extract_string(m, 'role') IN {roles})"
    return (f"nullif(array_to_string(list_filter(list_transform({picked}, lambda m: {message_text('m')}), "
            f"lambda t: t IS NOT NULL), {NEWLINE} || {NEWLINE}), '')")


def count_items(x: str) -> str:
    """How many elements a JSON array has; NULL when the value is absent."""
    return f"(CASE WHEN json_type({x}) = 'ARRAY' THEN json_array_length({x}) END)::VARCHAR"


# --- reasoning blobs ----------------------------------------------------------

def reasoning_blobs(items_list: str) -> str:
    """sha256 of every opaque reasoning blob in a list of items: OpenAI Responses
    `reasoning` items' `encrypted_content`, Anthropic `thinking` blocks' `signature` and
    `redacted_thinking` blocks' `data`, wherever they sit: as the items themselves, as
    the blocks of a message's `content`, or in LiteLLM's `thinking_blocks`.

    A blob is issued in a response and sent back by the client with the next turn; it
    is opaque and unforgeable, so one issued to an account and sent back by another
    means the two share a conversation (linking/links.yaml, `reasoning_replay`)."""
    nested = (f"flatten(list_transform({items_list}, lambda i: "
              f"list_concat({items(at('i', '$.content'))}, {items(at('i', '$.thinking_blocks'))})))")
    blocks = f"list_concat({items_list}, {nested})"
    blob = ("CASE json_extract_string(b, 'type') WHEN 'reasoning' THEN json_extract_string(b, 'encrypted_content') WHEN 'thinking' THEN json_extract_string(b, 'signature') "
            "WHEN 'redacted_thinking' THEN json_extract_string(b, 'data') END")
    return (f"list_sort(list_distinct(list_transform(list_filter({blocks}, lambda b: nullif({blob}, '') IS NOT NULL), "
            f"lambda b: sha256({blob}))))")


# --- time ---------------------------------------------------------------------

def epoch_text(x: str, unit: str) -> str:
    """A Unix time (seconds, ms, us or ns; a number or a string of one) as UTC timestamp
    text the contract reads; anything else is passed on as written, so that a bad value
    is quarantined with what it was."""
    scale = {"s": "1e6", "ms": "1e3", "us": "1", "ns": "1e-3"}[unit]
    micros = f"TRY_CAST(round(TRY_CAST({x} AS DOUBLE) * {scale}) AS BIGINT)"
    if unit == "ns":  # 19 digits: a DOUBLE would lose the microseconds
        micros = f"coalesce(TRY_CAST({x} AS HUGEINT) // 1000, {micros})::BIGINT"
    return (f"(CASE WHEN regexp_full_match(trim({x}), '[0-9]+(\\.[0-9]*)?') "
            f"THEN strftime(make_timestamp({micros}), '%Y-%m-%dT%H:%M:%S.%fZ') ELSE {x} END)")


def time_text(x: str) -> str:
    """A timestamp written as RFC 3339 text or as Unix seconds (both occur in the same
    log families), as text the contract reads."""
    return f"(CASE WHEN regexp_full_match(trim({x}), '[0-9]+(\\.[0-9]*)?') THEN {epoch_text(x, 's')} ELSE {x} END)"
