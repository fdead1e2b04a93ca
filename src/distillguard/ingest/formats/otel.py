"""OpenTelemetry GenAI spans in OTLP/JSON: the traces an instrumented LLM client or
gateway exports (OpenTelemetry GenAI semantic conventions, OpenLLMetry, OpenInference).

Each line is one OTLP/JSON `ExportTraceServiceRequest`, as the Collector's file
exporter writes it: `{"resourceSpans": [{"resource": {"attributes": [...]},
"scopeSpans": [{"scope": {...}, "spans": [...]}]}]}` (snake_case `resource_spans` /
`scope_spans` and the pre-1.0 `instrumentationLibrarySpans` are read too). A line
holds many spans: each becomes a record of its own, with its resource's attributes
added to its own (a span's own attribute wins), so `user.id` or `enduser.id` set on
the resource names the account of every span under it. Attribute values are OTLP
`AnyValue`s (`stringValue`, `intValue` written as a string, `doubleValue`,
`boolValue`, `arrayValue`, `kvlistValue`); message attributes may be JSON strings
or structured values.

A span is an LLM call when it names a model or a provider (`gen_ai.request.model`,
`gen_ai.provider.name`, `gen_ai.system`, OpenInference `llm.model_name`) or says so
(`gen_ai.operation.name` chat / text_completion / generate_content, OpenInference
`openinference.span.kind` LLM). Every other span (HTTP, database, agent, tool,
retrieval spans; `gen_ai.operation.name` embeddings, execute_tool, invoke_agent, ...;
OpenInference CHAIN, TOOL, EMBEDDING, ... spans) is skipped as `not_an_llm_span`,
and a line with no spans at all as `no_spans`. A span with no start time is
quarantined (the exchange has no time).

Messages are read from whichever convention the instrumentation wrote: the GenAI
`gen_ai.input.messages` / `gen_ai.output.messages` / `gen_ai.system_instructions`
(message `parts`), OpenLLMetry's indexed `gen_ai.prompt.{i}.role` / `.content` and
`gen_ai.completion.{i}.content`, OpenInference's `llm.input_messages.{i}.message.*` /
`llm.output_messages.{i}.message.*`, the older `gen_ai.content.prompt` /
`gen_ai.content.completion` span events, and OpenInference `input.value` /
`output.value` when they hold the request and response bodies (read like OpenAI and
Anthropic logs, reasoning blobs included).

Traces name the account only when the application puts it there: `user.id` or
`enduser.id` on the span or its resource (OpenInference `user.id`), else the `user`
the request body names; otherwise give `ingest --fill account_id=...`. Content
capture is opt-in in most instrumentations: without it the prompt is missing and
the span is quarantined (missing prompt), so enable message capture for the traces
you ingest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from distillguard.engine import literal
from distillguard.ingest.formats.base import LogFormat
from distillguard.ingest.formats.chat import (SYSTEM, USER, issued_blobs, messages, request_fields,
                                              response_fields, response_status)
from distillguard.ingest.formats.jsonsql import (at, content_text, count_items, doc, epoch_text, items, last_text_of,
                                                 message_text, reasoning_blobs, text, texts_of)

# --- OTLP values ----------------------------------------------------------------

SCALARS = ("stringValue", "intValue", "doubleValue", "boolValue", "bytesValue",
           "string_value", "int_value", "double_value", "bool_value", "bytes_value")
NESTED = ("arrayValue", "array_value", "kvlistValue", "kvlist_value")
DEPTH = 5  # nested arrayValue / kvlistValue levels turned into plain JSON (a message list's parts need 4)
# Attributes the conventions define as structured (a list of messages, of parts, of tools):
# read DEPTH levels deep. Every other attribute is read one level deep (a string array),
# which keeps the common case fast: nested lambdas cost the engine dearly.
STRUCTURED = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions")


def plain(v: str, depth: int = DEPTH) -> str:
    """An OTLP AnyValue as plain JSON: a string, an int (OTLP writes them as strings), a
    double or a bool as that value; an arrayValue as an array and a kvlistValue as an
    object, `depth` levels down (deeper ones stay as written). A value that is not an
    AnyValue object is taken as it is; an empty one is NULL. camelCase and snake_case
    (`string_value`) both read.

    Scalars (nearly every attribute) are read without a lambda; a nested value is bound
    once (a one-element list_transform), so the SQL grows linearly with depth."""
    kind = f"json_keys({v})[1]"
    nested = v
    if depth > 0:
        x, p = f"x{depth}", f"p{depth}"
        is_array = f"(json_keys({x})[1] IN ('arrayValue', 'array_value'))"
        key = f"CASE WHEN {is_array} THEN '' ELSE to_json(json_extract_string({p}, '$.key'))::VARCHAR || ':' END"
        value = plain(f"CASE WHEN {is_array} THEN {p} ELSE {at(p, '$.value')} END", depth - 1)
        values = items(at(f"json_extract({x}, '$.*')[1]", "$.values"))
        nested = (f"list_transform([{v}], lambda {x}: json(CASE WHEN {is_array} THEN '[' ELSE '{{' END "
                  f"|| array_to_string(list_transform({values}, lambda {p}: {key} || coalesce({value}, 'null')::VARCHAR), ',') "
                  f"|| CASE WHEN {is_array} THEN ']' ELSE '}}' END))[1]")
    return (f"(CASE WHEN json_type({v}) <> 'OBJECT' THEN {v} WHEN {kind} IN {SCALARS} THEN json_extract({v}, '$.*')[1] "
            f"WHEN {kind} IN {NESTED} THEN {nested} END)")


def attr(key: str) -> str:
    """A span attribute (its resource's when the span has none) as plain JSON; NULL when absent."""
    if key in STRUCTURED:  # the map holds it one level deep: its elements may still be AnyValues
        return (f"(CASE WHEN json_type(_a[{literal(key)}]) = 'ARRAY' THEN to_json(list_transform("
                f"{items(f'_a[{literal(key)}]')}, lambda dv: {plain('dv', DEPTH - 1)})) ELSE _a[{literal(key)}] END)")
    return f"_a[{literal(key)}]"


def atext(*keys: str) -> str:
    """The first present attribute as text (a number or a bool as written; empty = absent)."""
    return "coalesce(" + ", ".join(f"nullif(json_extract_string({attr(k)}, '$'), '')" for k in keys) + ")"


def indexed(prefix: str, role: str, content: str, parts: str | None = None, finish: str | None = None) -> str:
    """Messages flattened into indexed attributes (`{prefix}.{i}{role}`, `{prefix}.{i}{content}`),
    as a list of {"role", "content", "finish_reason"} JSON objects in index order. `parts`:
    the infix of multi-part content (`{prefix}.{i}{parts}{j}...text`), read when there is no content."""
    pattern = literal("^" + re.escape(prefix) + r"\.([0-9]+)\.")
    idx = (f"list_sort(list_distinct(list_filter(list_transform(_keys, lambda k: "
           f"TRY_CAST(regexp_extract(k, {pattern}, 1) AS INTEGER)), lambda i: i IS NOT NULL)))")
    base = f"{literal(prefix + '.')} || i"
    body = f"{doc(f'_a[{base} || {literal(content)}]')}"
    if parts:
        joined = (f"to_json(list_transform(list_filter(_kv, lambda e: starts_with(e.k, {base} || {literal(parts)}) "
                  f"AND ends_with(e.k, '.text')), lambda e: e.v))")
        body = f"coalesce({body}, {joined})"
    finish_sql = f"_a[{base} || {literal(finish)}]" if finish else "NULL::JSON"
    return (f"list_transform({idx}, lambda i: json_object('role', _a[{base} || {literal(role)}], "
            f"'content', {body}, 'finish_reason', {finish_sql}))")


def event_attr(event: str, key: str) -> str:
    """An attribute of a span event (the GenAI conventions before v1.28 put the prompt and
    the completion on `gen_ai.content.prompt` / `gen_ai.content.completion` events)."""
    ev = f"list_filter({items(at('_j', '$.events'))}, lambda ev: json_extract_string(ev, '$.name') = {literal(event)})[1]"
    kv = f"list_filter({items(at(ev, '$.attributes'))}, lambda ea: json_extract_string(ea, '$.key') = {literal(key)})[1]"
    return plain(at(kv, '$.value'), 0)


def nonempty(*lists: str) -> str:
    """The first of several lists that is not empty (else an empty list)."""
    cases = " ".join(f"WHEN len({x}) > 0 THEN {x}" for x in lists[:-1])
    return f"(CASE {cases} ELSE {lists[-1]} END)"


# --- the records: one per span ----------------------------------------------------

def _unwrapped(x: str) -> str:
    """A JSON value, or the JSON a JSON string holds (a CSV or Parquet column). No braces:
    the explode SQL is a format string."""
    return (f"(CASE WHEN json_type({x}) = 'VARCHAR' AND json_valid(json_extract_string({x}, '$')) "
            f"THEN json(json_extract_string({x}, '$')) ELSE {x} END)")


_RESOURCE_SPANS = _unwrapped("coalesce(json_extract(_export, '$.resourceSpans'), json_extract(_export, '$.resource_spans'))")


def _indexed(lst: str) -> str:
    """A list as {v: element, i: 0-based position}: one unnest gives both."""
    return f"list_transform({lst}, lambda e, n: struct_pack(v := e, i := n - 1))"


# One row per span: the resources of a line, then the spans of each resource (over its
# scopes), each a single unnest. At each level the engine is given only columns computed at
# the level before: a value computed beside an unnest is held once per row it unnests to,
# and nested lambdas would copy a whole resource once per span. _sub numbers a span within
# its line (resource << 24 | span). The span's text gets its resource's attributes as
# `resourceAttributes`, appended as text (rebuilding the span as JSON costs far more).
_RESOURCE_SPAN_LISTS = ("list_concat(list_concat(coalesce(json_extract(rs, '$.scopeSpans[*].spans[*]'), []), "
                        "coalesce(json_extract(rs, '$.scope_spans[*].spans[*]'), [])), "
                        "coalesce(json_extract(rs, '$.instrumentationLibrarySpans[*].spans[*]'), []))")
_RESOURCES = f"""
SELECT _line, u.v AS rs, u.i AS _r, json_extract(u.v, '$.resource.attributes') AS _ra
FROM (SELECT _line, unnest({_indexed(items(_RESOURCE_SPANS))}) AS u
      FROM (SELECT _line, json(_text) AS _export FROM ({{records}})))"""
EXPLODE = f"""
SELECT _line, ((_r << 24) + _k)::BIGINT AS _sub,
  CASE WHEN json_type(sp) = 'OBJECT' AND _ra IS NOT NULL
       THEN CASE WHEN sp::VARCHAR = '{{{{}}}}' THEN '{{{{' ELSE left(sp::VARCHAR, -1) || ',' END
            || '"resourceAttributes":' || _ra::VARCHAR || '}}}}'
       ELSE sp::VARCHAR END AS _text
FROM (SELECT _line, _r, _ra, u.v AS sp, u.i AS _k
      FROM (SELECT _line, _r, _ra, unnest({_indexed(_RESOURCE_SPAN_LISTS)}) AS u FROM ({_RESOURCES})))
UNION ALL
-- A line with no spans comes through once, as itself (skipped as no_spans, or unrecognized).
SELECT _line, 0::BIGINT, _text FROM (SELECT _line, _text, json(_text) AS _export FROM ({{records}}))
WHERE NOT coalesce(list_bool_or(list_transform({items(_RESOURCE_SPANS)}, lambda rs: len({_RESOURCE_SPAN_LISTS}) > 0)), false)"""


def _j(*paths: str) -> str:
    """The first present path of the record (read with its other paths in one parse)."""
    return "coalesce(" + ", ".join(at("_j", p) for p in paths) + ")"


_EXPORT = _j("$.resourceSpans", "$.resource_spans")
KIND = (f"CASE WHEN json_type(_j) <> 'OBJECT' THEN 'other' "
        f"WHEN {_EXPORT} IS NOT NULL THEN CASE WHEN json_type({_unwrapped(_EXPORT)}) = 'ARRAY' THEN 'empty' ELSE 'other' END "
        f"WHEN {_j('$.traceId', '$.spanId', '$.trace_id', '$.span_id', '$.startTimeUnixNano', '$.start_time_unix_nano')} "
        f"IS NOT NULL OR json_type({at('_j', '$.attributes')}) = 'ARRAY' THEN 'span' ELSE 'other' END")


# --- what an LLM span is ------------------------------------------------------------

LLM_OPERATIONS = ("chat", "text_completion", "generate_content", "completion", "responses")
# Spans of the GenAI conventions that are not one model call.
OTHER_OPERATIONS = ("embeddings", "embedding", "execute_tool", "invoke_agent", "create_agent", "retrieval",
                    "invoke_workflow", "rerank")
MODEL = atext("gen_ai.request.model", "gen_ai.response.model", "llm.model_name", "llm.request.model")
LLM = (f"CASE WHEN lower({atext('gen_ai.operation.name')}) IN {OTHER_OPERATIONS} THEN false "
       f"WHEN upper({atext('openinference.span.kind')}) <> 'LLM' THEN false "
       f"WHEN lower({atext('llm.request.type')}) IN ('embedding', 'rerank') THEN false "
       f"ELSE {MODEL} IS NOT NULL OR {atext('gen_ai.provider.name', 'gen_ai.system', 'llm.provider', 'llm.system')} IS NOT NULL "
       f"OR coalesce(lower({atext('gen_ai.operation.name')}) IN {LLM_OPERATIONS}, false) "
       f"OR coalesce(upper({atext('openinference.span.kind')}) = 'LLM', false) END")


# The prompt and completion of the older conventions: a JSON string of messages, or plain text.
LEGACY_PROMPT = f"coalesce({attr('gen_ai.prompt')}, {event_attr('gen_ai.content.prompt', 'gen_ai.prompt')})"
LEGACY_COMPLETION = f"coalesce({attr('gen_ai.completion')}, {event_attr('gen_ai.content.completion', 'gen_ai.completion')})"


def _string_of(x: str) -> str:
    """A JSON string value that does not hold a JSON document, as text."""
    return f"(CASE WHEN json_type({doc(x)}) = 'VARCHAR' THEN nullif(json_extract_string({x}, '$'), '') END)"


def _body(x: str) -> str:
    """An object a JSON string attribute holds (OpenInference input.value / output.value)."""
    return f"(CASE WHEN json_type({doc(x)}) = 'OBJECT' THEN {doc(x)} END)"


LAYERS = (
    {"_kind": KIND,
     "_kv0": (f"list_transform(list_filter(list_concat({items(at('_j', '$.attributes'))}, "
              f"{items(at('_j', '$.resourceAttributes'))}), "
              f"lambda a: nullif(json_extract_string(a, '$.key'), '') IS NOT NULL), "
              f"lambda a: struct_pack(k := json_extract_string(a, '$.key'), v := {plain(at('a', '$.value'), 1)}))")},
    {"_keys": "list_transform(_kv0, lambda f: f.k)"},
    # The first of a repeated key wins (the span's own before its resource's).
    {"_kv": "list_filter(_kv0, lambda e, i: list_position(_keys, e.k) = i)"},
    {"_a": "map_from_entries(_kv)"},
    {"_llm": LLM,
     "_params": _body(attr("llm.invocation_parameters")),
     "_reqbody": _body(attr("input.value")),
     "_respbody": _body(attr("output.value")),
     "_legacy_in": LEGACY_PROMPT,
     "_legacy_out": LEGACY_COMPLETION},
    {"_bodymsgs": messages("_reqbody"),
     "_in": nonempty(items(doc(attr("gen_ai.input.messages"))),
                     indexed("gen_ai.prompt", ".role", ".content"),
                     indexed("llm.input_messages", ".message.role", ".message.content", ".message.contents."),
                     items(doc("_legacy_in")),
                     messages("_reqbody")),
     "_out": nonempty(items(doc(attr("gen_ai.output.messages"))),
                      indexed("gen_ai.completion", ".role", ".content", finish=".finish_reason"),
                      indexed("llm.output_messages", ".message.role", ".message.content", ".message.contents."),
                      items(doc("_legacy_out")))},
    {"_reasons": ("list_concat(list_transform(" + items(doc(attr("gen_ai.response.finish_reasons"))) +
                  ", lambda r: json_extract_string(r, '$')), list_transform(_out, lambda m: json_extract_string(m, '$.finish_reason')))"),
     "_reasoning": ("list_contains(flatten(list_transform(_out, lambda m: list_transform(" + items("json_extract(m, '$.parts')") +
                    ", lambda p: json_extract_string(p, '$.type')))), 'reasoning')")},
)

REASONING_TOKENS = atext("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                         "llm.token_count.completion_details.reasoning", "llm.usage.reasoning_tokens")
ERROR_TYPE = atext("error.type")
STATUS_CODE = text("_j", "$.status.code")
RATE_LIMITED = (f"regexp_matches(lower({ERROR_TYPE}), 'rate.?limit|(^|[^0-9])429([^0-9]|$)') "
                f"OR TRY_CAST({atext('http.response.status_code', 'http.status_code')} AS INTEGER) = 429")
FAILED = (f"{STATUS_CODE} IN ('2', 'STATUS_CODE_ERROR') OR {ERROR_TYPE} IS NOT NULL "
          f"OR TRY_CAST({atext('http.response.status_code', 'http.status_code')} AS INTEGER) >= 400")


def _fields() -> dict[str, str]:
    params = request_fields("_params", "[]::JSON[]")
    body = request_fields("_reqbody", "_bodymsgs")
    result = response_fields("_respbody")

    def pick(*sqls: str) -> str:
        return "coalesce(" + ", ".join(sqls) + ")"

    first_out = "list_filter(list_transform(_out, lambda m: " + message_text("m") + "), lambda t: t IS NOT NULL)[1]"
    tool_index = ("len(list_distinct(list_filter(list_transform(_keys, lambda k: "
                  "regexp_extract(k, '^(llm\\.tools|llm\\.request\\.functions)\\.([0-9]+)\\.', 2)), lambda i: i <> ''))) ")
    return {
        "request_id": pick(atext("gen_ai.response.id"), result["request_id"],
                           "nullif(" + text("_j", "$.traceId", "$.trace_id") + " || '-' || "
                           + text("_j", "$.spanId", "$.span_id") + ", '-')"),
        "ts": epoch_text("nullif(" + text("_j", "$.startTimeUnixNano", "$.start_time_unix_nano") + ", '0')", "ns"),
        "account_id": pick(atext("user.id", "enduser.id"), body["account_id"]),
        "model": pick(MODEL, params["model"], body["model"], result["model"]),
        "prompt": pick(last_text_of("_in", USER), _string_of("_legacy_in"), _string_of(attr("input.value"))),
        "conversation_id": pick(atext("gen_ai.conversation.id", "session.id"), body["conversation_id"]),
        "system": ("nullif(concat_ws(chr(10) || chr(10), " + content_text(doc(attr("gen_ai.system_instructions")))
                   + ", " + texts_of("_in", SYSTEM) + "), '')"),
        "response": pick(first_out, _string_of("_legacy_out"), result["response"],
                         _string_of(attr("output.value"))),
        "input_tokens": pick(atext("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
                             result["input_tokens"]),
        "output_tokens": pick(atext("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                                    "llm.token_count.completion"), result["output_tokens"]),
        "reasoning_tokens": pick(REASONING_TOKENS, result["reasoning_tokens"]),
        "max_tokens": pick(atext("gen_ai.request.max_tokens", "llm.request.max_tokens"), params["max_tokens"],
                           body["max_tokens"]),
        "temperature": pick(atext("gen_ai.request.temperature", "llm.request.temperature"), params["temperature"],
                            body["temperature"]),
        "n": pick(atext("gen_ai.request.choice.count"), params["n"], body["n"]),
        "logprobs": pick(params["logprobs"], body["logprobs"]),
        "thinking": (f"CASE WHEN _reasoning OR TRY_CAST({REASONING_TOKENS} AS DOUBLE) > 0 THEN 'true' "
                     f"ELSE {pick(params['thinking'], body['thinking'])} END"),
        "tools": pick(count_items(doc(attr("gen_ai.tool.definitions"))),
                      f"CASE WHEN {tool_index} > 0 THEN ({tool_index})::VARCHAR END",
                      params["tools"], body["tools"]),
        "status": (f"CASE WHEN list_has_any(_reasons, ['content_filter', 'refusal']) "
                   f"OR {response_status('_respbody')} = 'refused' THEN 'refused' "
                   f"WHEN {RATE_LIMITED} THEN 'rate_limited' WHEN {FAILED} THEN 'error' ELSE 'ok' END"),
        "client_ip": atext("client.address", "http.client_ip"),
        "user_agent": atext("user_agent.original", "http.user_agent"),
    }


def detect(record: Mapping[str, Any]) -> bool:
    spans = record.get("resourceSpans", record.get("resource_spans"))
    if isinstance(spans, str) and spans.lstrip().startswith("["):
        try:
            spans = json.loads(spans)
        except ValueError:
            return False
    if not isinstance(spans, list):
        return False
    return not spans or isinstance(spans[0], dict) and any(
        k in spans[0] for k in ("scopeSpans", "scope_spans", "instrumentationLibrarySpans", "resource"))


FORMAT = LogFormat(
    name="otel",
    title="OpenTelemetry GenAI spans (OTLP/JSON)",
    about=__doc__.split("\n\n", 1)[1],
    detect=detect,
    explode=EXPLODE,
    layers=LAYERS,
    role=("CASE _kind WHEN 'span' THEN CASE WHEN _llm THEN 'exchange' ELSE 'skip' END "
          "WHEN 'empty' THEN 'skip' ELSE 'unrecognized' END"),
    note=("CASE _kind WHEN 'span' THEN CASE WHEN NOT _llm THEN 'not_an_llm_span' END WHEN 'empty' THEN 'no_spans' "
          "WHEN 'other' THEN CASE WHEN json_type(_j) <> 'OBJECT' THEN 'not an OTLP span: a span is a JSON object, this is a ' "
          "|| lower(json_type(_j)) ELSE 'not an OTLP/JSON trace export: expected {\"resourceSpans\": [{\"scopeSpans\": "
          "[{\"spans\": [...]}]}]}' END END"),
    fields=_fields(),
    issued=issued_blobs("_respbody"),
    replayed=reasoning_blobs("_bodymsgs"),
    sources={
        "request_id": "`gen_ai.response.id`; the `id` of the response body in OpenInference `output.value`; else the span's `traceId` and `spanId` (`<traceId>-<spanId>`)",
        "ts": "the span's `startTimeUnixNano` (`start_time_unix_nano`): Unix nanoseconds, a string or a number; 0 or absent: quarantined",
        "account_id": "`user.id` or `enduser.id` on the span or its resource; else the `user` / `safety_identifier` / `metadata.user_id` of the request body in `input.value`",
        "model": "`gen_ai.request.model`; else `gen_ai.response.model`, OpenInference `llm.model_name`, `llm.request.model`, the `model` of `llm.invocation_parameters` or of the request / response body",
        "prompt": "the text of the last `user` message of `gen_ai.input.messages` (text `parts`), of OpenLLMetry's `gen_ai.prompt.{i}.role` / `.content`, of OpenInference's `llm.input_messages.{i}.message.role` / `.message.content` (or `.message.contents.{j}.message_content.text`), of a `gen_ai.prompt` attribute or `gen_ai.content.prompt` event, or of the request body in `input.value`; a plain-text `gen_ai.prompt` or `input.value`",
        "system": "`gen_ai.system_instructions` (text parts), then the `system` and `developer` messages of the input messages above",
        "response": "the text of the first output message with text: `gen_ai.output.messages`, `gen_ai.completion.{i}.content`, `llm.output_messages.{i}.message.content`, a `gen_ai.completion` attribute or `gen_ai.content.completion` event; else the response body or plain text in `output.value`",
        "input_tokens": "`gen_ai.usage.input_tokens`; else `gen_ai.usage.prompt_tokens`, `llm.token_count.prompt`, the response body's usage",
        "output_tokens": "`gen_ai.usage.output_tokens`; else `gen_ai.usage.completion_tokens`, `llm.token_count.completion`, the response body's usage",
        "reasoning_tokens": "`gen_ai.usage.reasoning.output_tokens`; else `gen_ai.usage.reasoning_tokens`, `llm.token_count.completion_details.reasoning`, `llm.usage.reasoning_tokens`, the response body's usage",
        "max_tokens": "`gen_ai.request.max_tokens` (`llm.request.max_tokens`); else `max_tokens` / `max_completion_tokens` in `llm.invocation_parameters` or the request body",
        "temperature": "`gen_ai.request.temperature` (`llm.request.temperature`); else `llm.invocation_parameters` or the request body",
        "n": "`gen_ai.request.choice.count`; else `n` in `llm.invocation_parameters` or the request body",
        "logprobs": "`logprobs` / `top_logprobs` in `llm.invocation_parameters` or the request body",
        "thinking": "true when an output message has a `reasoning` part or the reasoning tokens are > 0; else the `reasoning_effort` / `thinking` of `llm.invocation_parameters` or the request body",
        "tools": "the number of `gen_ai.tool.definitions`; else of OpenInference `llm.tools.{i}` or OpenLLMetry `llm.request.functions.{i}`, or of the `tools` of the request",
        "conversation_id": "`gen_ai.conversation.id`; else OpenInference `session.id`",
        "status": "`gen_ai.response.finish_reasons` (or an output message's `finish_reason`) content_filter or refusal: refused; `error.type` naming a rate limit or 429, HTTP status 429: rate_limited; span `status.code` 2 (`STATUS_CODE_ERROR`), an `error.type` or an HTTP status >= 400: error; else ok",
        "client_ip": "`client.address` (`http.client_ip`), on the span or its resource",
        "user_agent": "`user_agent.original` (`http.user_agent`)",
    },
)
