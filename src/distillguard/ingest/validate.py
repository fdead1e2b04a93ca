"""Row validation as SQL generated from the contract.

Every rule comes from the `Field` declarations in schema/contract.py (kind,
required, allowed, minimum, maximum, max_chars, identifier), so a field added to
the contract is validated without touching this file. The SQL runs vectorized in
the engine: no Python runs per row or per field.

A source says, per contract field, how to read it (`Column`): as text (CSV, and
JSON values, which the JSON parser renders as text) or as a typed Parquet column.
The query is built in layers, each a plain SELECT over the one below:

  1. the value as it arrived: text, its JSON type if it looks like an object, or the typed column;
  2. the text trimmed, and whether the value is absent (missing, null or blank);
  3. the value converted to the field's type, or NULL when that would lose information;
  4. per field, the first problem found, as a reason code's priority;
  5. per row, the reason: the first by priority (framing problems come first);
  6. for rejected rows only, the detail (every problem, for a person) and the raw record.
"""

from __future__ import annotations

from dataclasses import dataclass

from distillguard.engine import ident, literal
from distillguard.schema.contract import Field, Table
from distillguard.schema.quarantine import CODES, PRIORITY

WS = "E' \\t\\n\\r\\x0b\\x0c'"  # ASCII white space
SHOW_CHARS = 80  # values are shown this long in messages
YEARS = (1970, 2100)  # timestamps outside these years are rejected

SQL_TYPES = {"string": "VARCHAR", "text": "VARCHAR", "int": "BIGINT", "float": "DOUBLE",
             "bool": "BOOLEAN", "timestamp": "TIMESTAMPTZ"}
INT_TEXT = r"[+-]?[0-9]+(\.0*)?"  # "7" and "7.0" are integers; "7.5", "1e3" and "0x7" are not
FLOAT_TEXT = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"  # no NaN, no infinity
EXPECTED = {
    "string": "a string",
    "text": "a string",
    "int": "an integer",
    "float": "a finite number",
    "bool": "true, false, 1 or 0",
    "timestamp": "an RFC 3339 timestamp such as 2025-01-31T12:00:00Z",
}
# Parquet column types that convert to a field's type without going through text.
NATIVE = {
    "int": {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "UHUGEINT"},
    "float": {"FLOAT", "DOUBLE", "DECIMAL", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
              "UINTEGER"},
    "bool": {"BOOLEAN"},
    "timestamp": {"DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE"},
}
# Parquet column types whose text is a faithful rendering of the value.
TEXTUAL = NATIVE["int"] | NATIVE["float"] | NATIVE["bool"] | NATIVE["timestamp"] | {"VARCHAR"}


def position(file_index: str | int, line: str = "_line", sub: str | int = 0) -> str:
    """_pos, the order "first by file, then line, then exchange within the line" (a log
    line may hold several exchanges) that first-wins de-duplication follows."""
    return f"((CAST({file_index} AS HUGEINT) << 64) + (CAST({line} AS HUGEINT) << 32) + {sub})"


def is_country(field: Field) -> bool:
    """ISO 3166 alpha-2 fields, as the contract declares them."""
    return field.country


@dataclass(frozen=True)
class Column:
    """How a source gives one contract field.

    form is "text" (sql is a VARCHAR: CSV, and JSON values rendered as text) or
    the DuckDB type of a typed (Parquet) column. For JSON, json_type is SQL giving
    the value's JSON type; it runs only for values that start like an object or
    an array, which no field accepts.
    """

    sql: str
    form: str = "text"
    json_type: str | None = None


def blank(sql: str) -> str:
    """Empty or only white space. trim() is slow on long text, so only values that
    start with white space (or a control character) are trimmed to find out."""
    return f"(CASE WHEN ascii({sql}) > 32 THEN FALSE ELSE trim({sql}, {WS}) = '' END)"


def trimmed(sql: str) -> str:
    """Without white space at either end (trim() only where there is some)."""
    return f"(CASE WHEN ascii({sql}) > 32 AND ascii(right({sql}, 1)) > 32 THEN {sql} ELSE trim({sql}, {WS}) END)"


def shown(sql: str) -> str:
    """A value as a person should see it in a message: quoted, printable, at most SHOW_CHARS."""
    head = f"regexp_replace(left({sql}, {SHOW_CHARS}), '\\p{{Cc}}', '\ufffd', 'g')"
    return f"('\"' || {head} || CASE WHEN length({sql}) > {SHOW_CHARS} THEN '…\"' ELSE '\"' END)"


class _FieldSQL:
    """The SQL for one field read from one source column."""

    def __init__(self, field: Field, column: Column | None):
        self.f, self.col = field, column
        n = field.name
        self.text, self.tag, self.native = ident(f"{n}:text"), ident(f"{n}:tag"), ident(f"{n}:native")
        self.trim, self.absent, self.value, self.prio = ident(f"{n}:trim"), ident(f"{n}:absent"), ident(n), ident(f"{n}:p")
        form = column.form.split("(")[0] if column else None  # DECIMAL(p, s) -> DECIMAL
        # A typed column is read directly when its type fits, else through its text.
        self.direct = form in NATIVE.get(field.kind, ())
        self.textual = column is not None and not self.direct and (form == "text" or form in TEXTUAL)
        # Text fields keep their white space (it is part of a prompt); all else is trimmed.
        self.trims = self.textual and (field.kind != "text")

    def layer1(self) -> list[str]:
        c = self.col
        if c is None:
            return []
        if self.direct or not self.textual:
            return [f"{c.sql} AS {self.native}"]
        cols = [f"CAST({c.sql} AS VARCHAR) AS {self.text}" if c.form != "text" else f"{c.sql} AS {self.text}"]
        if c.json_type:
            cols.append(f"CASE WHEN ascii({c.sql}) IN (123, 91) THEN nullif({c.json_type}, 'VARCHAR') END AS {self.tag}")
        return cols

    def layer2(self) -> list[str]:
        c, s = self.col, self.text
        if c is None:
            return [f"TRUE AS {self.absent}"]
        if not self.textual:
            return [f"({self.native} IS NULL) AS {self.absent}"]
        if self.trims:
            return [f"{trimmed(s)} AS {self.trim}", f"({s} IS NULL OR {blank(s)}) AS {self.absent}"]
        return [f"({s} IS NULL OR {blank(s)}) AS {self.absent}"]

    def layer3(self) -> list[str]:
        if self.col is None:
            return [f"NULL AS {self.value}"]
        conv = self._convert()
        if self.col.json_type:  # an object or an array converts to nothing
            conv = f"CASE WHEN {self.tag} IS NULL THEN {conv} END"
        return [f"CASE WHEN {self.absent} THEN NULL ELSE {conv} END AS {self.value}"]

    def _convert(self) -> str:
        """Lossless conversion to the field's type; NULL when impossible."""
        f, t, n = self.f, self.trim, self.native
        if not self.textual:
            if not self.direct:
                return "NULL"  # a list, a struct, a blob: not convertible
            return {"int": f"TRY_CAST({n} AS BIGINT)", "float": f"CAST({n} AS DOUBLE)", "bool": n,
                    "timestamp": f"CAST({n} AS TIMESTAMPTZ)"}[f.kind]
        if f.kind == "text":
            return self.text
        if f.kind == "string":
            return f"lower({t})" if f.allowed else f"upper({t})" if is_country(f) else t
        if f.kind == "int":
            return f"CASE WHEN regexp_full_match({t}, '{INT_TEXT}') THEN TRY_CAST(split_part({t}, '.', 1) AS BIGINT) END"
        if f.kind == "float":
            return f"CASE WHEN regexp_full_match({t}, '{FLOAT_TEXT}') THEN TRY_CAST({t} AS DOUBLE) END"
        if f.kind == "bool":
            return (f"CASE lower({t}) WHEN 'true' THEN TRUE WHEN '1' THEN TRUE "
                    f"WHEN 'false' THEN FALSE WHEN '0' THEN FALSE END")
        if f.kind == "timestamp":
            # RFC 3339 allows a lower-case t and z; DuckDB wants them upper-case.
            return f"coalesce(TRY_CAST({t} AS TIMESTAMPTZ), TRY_CAST(upper({t}) AS TIMESTAMPTZ))"
        raise ValueError(f"field {f.name}: unknown kind {f.kind!r}")

    def checks(self) -> list[tuple[str | None, str, str]]:
        """(reason code, condition, message) in the order they are tried; the first that holds wins."""
        f, v, name = self.f, self.value, self.f.name
        say = literal(name + ": ")
        checks: list[tuple[str | None, str, str]] = [
            # An absent optional field is fine: no code, and the checks stop there.
            ("missing_required" if f.required else None, self.absent, literal(f"{name}: required but missing or empty")),
            ("bad_timestamp" if f.kind == "timestamp" else "wrong_type", f"{v} IS NULL",
             f"{literal(f'{name}: expected {EXPECTED[f.kind]}, got ')} || {self._got()}"),
        ]
        if f.kind == "timestamp":
            lo, hi = (f"TIMESTAMPTZ '{y}-01-01 00:00:00+00'" for y in (YEARS[0], YEARS[1] + 1))
            checks.append(("out_of_range", f"({v} < {lo} OR {v} >= {hi})",
                           f"{say} || CAST({v} AS VARCHAR) || {literal(f' is outside the years {YEARS[0]}-{YEARS[1]}')}"))
        if f.minimum is not None:
            checks.append(("out_of_range", f"{v} < {f.minimum!r}",
                           f"{say} || CAST({v} AS VARCHAR) || {literal(f' is below the minimum {f.minimum:g}')}"))
        if f.maximum is not None:
            checks.append(("out_of_range", f"{v} > {f.maximum!r}",
                           f"{say} || CAST({v} AS VARCHAR) || {literal(f' is above the maximum {f.maximum:g}')}"))
        if f.allowed:
            checks.append(("not_in_vocabulary", f"{v} NOT IN ({', '.join(literal(a) for a in f.allowed)})",
                           f"{say} || {self._shown()} || {literal(' is not one of ' + ', '.join(f.allowed))}"))
        if is_country(f):
            checks.append(("bad_country_code", f"NOT regexp_full_match({v}, '[A-Z]{{2}}')",
                           f"{say} || {self._shown()} || {literal(' is not a 2-letter ISO 3166 country code')}"))
        if f.max_chars is not None:
            checks.append(("too_long", f"length({v}) > {f.max_chars}",
                           f"{say} || length({v}) || {literal(f' characters, more than the {f.max_chars} allowed')}"))
        return checks

    def layer4(self) -> list[str]:
        whens = " ".join(f"WHEN {cond} THEN {PRIORITY[code] if code else 'NULL'}" for code, cond, _ in self.checks())
        return [f"CASE {whens} END AS {self.prio}"]

    def message(self) -> str:
        """The field's problem for a person (evaluated for rejected rows only)."""
        return "CASE " + " ".join(f"WHEN {cond} THEN {m if code else 'NULL'}" for code, cond, m in self.checks()) + " END"

    def _shown(self) -> str:
        return shown(self.trim) if self.trims else shown(self.text) if self.textual else "''"

    def _got(self) -> str:
        """What arrived, for a wrong-type message."""
        c = self.col
        if c is None:
            return "'nothing'"
        if not self.textual:
            return f"left(CAST({self.native} AS VARCHAR), {SHOW_CHARS})" if self.direct else literal(f"a {c.form} value")
        got = shown(self.text) if c.form == "text" else f"left({self.text}, {SHOW_CHARS})"
        if c.json_type:
            return f"CASE {self.tag} WHEN 'OBJECT' THEN 'a JSON object' WHEN 'ARRAY' THEN 'a JSON array' ELSE {got} END"
        return got


def validation_sql(
    table: Table,
    relation: str,
    columns: dict[str, Column],
    *,
    raw: str = "_raw",
    source_file: str,
    pos: str,
    extra: str = "NULL",
    carry: tuple[str, ...] = (),
) -> str:
    """A query giving, per record of `relation`, the typed contract columns plus
    _source_file, _source_line, _pos (for first-wins order), _reason (NULL for a
    good row), _detail and _raw (rejected rows only), and _extra (extra keys).
    source_file and pos are SQL (position() gives pos); carry names columns of the
    relation passed through as they are.

    relation must provide _line, and _frame / _frame_detail: a reason code and
    message for problems found while framing the record (bad UTF-8, not JSON...),
    which take precedence over field problems. raw and extra are SQL over the
    relation; raw is evaluated for rejected rows only.
    """
    fields = [_FieldSQL(f, columns.get(f.name)) for f in table.fields]

    def layer(name: str) -> str:
        return "".join(f", {c}" for fs in fields for c in getattr(fs, name)())

    codes = "[" + ", ".join(literal(c) for c in CODES) + "]"
    least = f"least({', '.join(fs.prio for fs in fields)})"
    detail = f"nullif(concat_ws('; ', {', '.join(fs.message() for fs in fields)}), '')"
    out = ", ".join(f"CAST({fs.value} AS {SQL_TYPES[fs.f.kind]}) AS {fs.value}" for fs in fields)
    return f"""
SELECT {out},
    {source_file} AS _source_file, _line AS _source_line, {pos} AS _pos, _reason,{"".join(f" {ident(c)}," for c in carry)}
    CASE WHEN _frame IS NOT NULL THEN _frame_detail WHEN _reason IS NOT NULL THEN {detail} END AS _detail,
    CASE WHEN _reason IS NOT NULL THEN CAST({raw} AS BLOB) END AS _raw,
    CAST({extra} AS VARCHAR[]) AS _extra
FROM (SELECT *, coalesce(_frame, {codes}[{least} + 1]) AS _reason
FROM (SELECT *{layer("layer4")}
FROM (SELECT *{layer("layer3")}
FROM (SELECT *{layer("layer2")}
FROM (SELECT *{layer("layer1")}
FROM ({relation}))))))"""
