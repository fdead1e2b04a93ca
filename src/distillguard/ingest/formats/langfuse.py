"""Langfuse exports: GENERATION observations joined with the traces that name their user.

Langfuse records an LLM call as an observation of type GENERATION inside a trace; the
trace carries the end user (`user_id`) and the session. Exports come from the blob
storage integration (Parquet, CSV, JSON or JSON Lines: `traces/`, `observations/` and
the enriched `observations_v2/`), from the UI (CSV, JSON) and from the public API
(`GET /api/public/observations`, `/traces`: camelCase keys). Both spellings are read
(`trace_id` / `traceId`, `start_time` / `startTime`, `usage_details` / `usageDetails`,
...). Each record is told apart by its keys, so one file may hold traces, observations
or both:

  an observation    `trace_id` and a `type` (or `start_time`): a GENERATION is an exchange;
                    a SPAN, EVENT, AGENT, TOOL, EMBEDDING, ... is skipped (not_a_generation);
                    one with no `type` is quarantined (nothing tells a generation from a span)
  a trace           `id` and `timestamp`, no `trace_id`: gives its `user_id` (account_id) and
                    `session_id` (conversation_id) to the generations whose `trace_id` names
                    it; counted as a context record, never stored

Give the `traces/` file to the same ingest as its `observations/` file: a generation
takes the user and session of its trace from any file of the ingest (the first trace
record with a user wins when a trace was exported twice). A value on the observation
itself wins (the enriched export and the v2 API copy `user_id` and `session_id` onto
every observation, and need no traces). A generation whose trace is in no file of the
ingest and that names no user is quarantined as missing account_id, unless
`ingest --fill account_id=...` gives one. The end user named inside the input body
(`user`, `metadata.user_id`) is not read: the trace's user is Langfuse's identity.

`input` is read as the messages sent (an OpenAI-style list, `{messages: [...]}`, an
Anthropic or Responses body, a prompt string); `output` as the reply (a message, a
string, a Chat completion, Anthropic content blocks, a list of messages). Both are
often strings of JSON (CSV, Parquet and the blob export's JSON files; Langfuse stores
a plain-text input as a quoted JSON string), read through. Sampling settings come from
`model_parameters` (its values are often strings: "0.7"), then from the input body;
tools from the input body's `tools`, else `tool_definitions` (`{}`: none).

Langfuse keeps usage as exclusive buckets (`input` without the cached tokens counted
under `input_cached_tokens`, `output` without `output_reasoning_tokens`), so
input_tokens and output_tokens are the sums of every usage key containing `input` or
`output`, as Langfuse's own UI sums them, and reasoning_tokens the sum of the keys
containing `reasoning`. When there are no such keys: the v2 API's `inputUsage` /
`outputUsage`, older exports' `prompt_tokens` / `completion_tokens` (`promptTokens`,
...), usage kept verbatim in OpenAI's shape, then the `usage` of a whole provider
response kept as the output. Usage counted in another unit (`usage.unit` CHARACTERS)
is not told apart from tokens.

Status: level ERROR is an error (rate_limited when `status_message` names a 429 or a
rate limit); a refusal or a content filter in the output is refused; any other output
is ok. Langfuse records no client IP, API key or user agent: contract fields of those
names in the observation's `metadata` (`client_ip`, `api_key_id`, `user_agent`, ...)
are read when a deployment puts them there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distillguard.engine import literal
from distillguard.ingest.formats.base import LogFormat
from distillguard.ingest.formats.chat import (issued_blobs, merged, messages, request_fields, response_fields,
                                              response_status)
from distillguard.ingest.formats.jsonsql import (at, content_text, doc, field, items, message_text, reasoning_blobs,
                                                 scalar, text, texts_of, time_text)

# Observation types (Langfuse's `type`); only a GENERATION is an LLM exchange.
TYPES = ("GENERATION", "SPAN", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR", "EMBEDDING",
         "GUARDRAIL")
TRACE_KEYS = ("tags", "bookmarked", "public", "release", "environment", "project_id", "projectId", "htmlPath")
# Contract fields Langfuse has no place for, read from an observation's metadata under their own names.
FROM_METADATA = ("api_key_id", "turn", "client_ip", "asn", "ip_country", "user_agent", "tls_fingerprint",
                 "client_timezone")


def detect(record: Mapping[str, Any]) -> bool:
    keys = set(record)
    kind = record.get("type")
    if keys & {"trace_id", "traceId"} and keys & {"start_time", "startTime"} \
            and isinstance(kind, str) and kind.upper() in TYPES:
        return True
    return ({"id", "timestamp", "name"} <= keys and "type" not in keys and not keys & {"trace_id", "traceId"}
            and bool(keys & {"user_id", "userId", "session_id", "sessionId"}) and bool(keys & set(TRACE_KEYS)))


def payload(x: str) -> str:
    """An `input` / `output` value: JSON, a string of JSON (an object, an array, or a
    quoted string as Langfuse stores a plain-text input), or plain text. NULL when
    empty (the enriched export writes "" for an observation without one)."""
    v = doc(x)
    quoted = (f"json_type({v}) = 'VARCHAR' AND starts_with(ltrim(json_extract_string({v}, '$')), '\"') "
              f"AND json_valid(json_extract_string({v}, '$'))")
    v = f"(CASE WHEN {quoted} THEN json(json_extract_string({v}, '$')) ELSE {v} END)"
    return (f"(CASE WHEN json_type({v}) = 'NULL' OR (json_type({v}) = 'VARCHAR' "
            f"AND trim(json_extract_string({v}, '$')) = '') THEN NULL ELSE {v} END)")


def usage_doc(x: str, *paths: str) -> str:
    """The first of the usage objects that has keys."""
    return "coalesce(" + ", ".join(f"CASE WHEN len(json_keys({doc(at(x, p))})) > 0 THEN {doc(at(x, p))} END"
                                   for p in paths) + ")"


def bucket(u: str, word: str) -> str:
    """The sum of a usage object's numbers under every key containing `word` (not a
    cost or a price), as text; a value that is not a number is passed on as written,
    to be quarantined with what it was. NULL when no key has one."""
    keys = (f"list_filter(coalesce(json_keys({u}), []), lambda k: contains(lower(k), {literal(word)}) "
            f"AND NOT regexp_matches(lower(k), 'cost|price|unit'))")
    values = f"list_transform({keys}, lambda k: json_extract({u}, '$.\"' || replace(k, '\"', '\\\"') || '\"'))"
    scalars = f"list_filter({values}, lambda v: json_type(v) NOT IN ('OBJECT', 'ARRAY', 'NULL'))"
    number = "TRY_CAST(json_extract_string(v, '$') AS DOUBLE)"
    bad = f"list_filter({scalars}, lambda v: {number} IS NULL)"
    total = f"list_sum(list_transform({scalars}, lambda v: {number}))"
    return (f"(CASE WHEN len({scalars}) = 0 THEN NULL WHEN len({bad}) > 0 THEN json_extract_string(({bad})[1], '$') "
            f"WHEN {total} = round({total}) THEN CAST({total} AS HUGEINT)::VARCHAR ELSE {total}::VARCHAR END)")


def response_text(out: str) -> str:
    """The reply's text: a string, a Chat completion, a Responses or Anthropic body, a
    message (`content` or `parts`), a list of messages or of content blocks, a legacy
    completion's `text` / `completion`."""
    return (f"coalesce(CASE WHEN json_type({out}) = 'VARCHAR' THEN nullif(json_extract_string({out}, '$'), '') END, "
            f"{response_fields(out)['response']}, {message_text(out)}, "
            f"CASE WHEN json_type({out}) = 'ARRAY' THEN coalesce({texts_of(items(out), ('assistant',))}, "
            f"{content_text(out)}) END, "
            f"{scalar(out, '$.text', '$.completion', '$.output_text')})")


def tool_count(x: str) -> str:
    """How many tools a `tool_definitions` value holds: a list's length, an object's keys."""
    return (f"(CASE json_type({x}) WHEN 'ARRAY' THEN json_array_length({x}) "
            f"WHEN 'OBJECT' THEN len(json_keys({x})) END)::VARCHAR")


KIND = """CASE WHEN coalesce(json_extract(_j, '$.trace_id'), json_extract(_j, '$.traceId')) IS NOT NULL
       AND coalesce(json_extract(_j, '$.type'), json_extract(_j, '$.start_time'), json_extract(_j, '$.startTime')) IS NOT NULL
  THEN 'observation'
  WHEN json_extract(_j, '$.id') IS NOT NULL AND json_extract(_j, '$.timestamp') IS NOT NULL THEN 'trace' END"""

ERROR_LEVEL = "upper(coalesce(json_extract_string(_j, '$.level'), '')) = 'ERROR'"
STATUS_MESSAGE = text("_j", "$.status_message", "$.statusMessage")
STATUS = f"""CASE WHEN _kind <> 'observation' THEN NULL
  WHEN {ERROR_LEVEL} THEN CASE WHEN regexp_matches(coalesce({STATUS_MESSAGE}, ''), '(?i)\\b429\\b|rate.?limit|too many requests')
                              THEN 'rate_limited' ELSE 'error' END
  WHEN {text('_out', '$.refusal')} IS NOT NULL THEN 'refused'
  ELSE {response_status('_out')} END"""

_request = request_fields("_in", "_msgs")
_params = request_fields("_params", "[]::JSON[]")
_response = response_fields("_out")
_SAMPLING = ("max_tokens", "temperature", "n", "logprobs", "thinking")

FORMAT = LogFormat(
    name="langfuse",
    title="Langfuse exports: GENERATION observations with their traces",
    about=__doc__.split("\n\n", 1)[1],
    detect=detect,
    layers=(
        {"_kind": KIND,
         "_type": "upper(nullif(trim(json_extract_string(_j, '$.type')), ''))",
         "_in": payload(at("_j", "$.input")),
         "_out": payload(at("_j", "$.output")),
         "_params": field("_j", "$.model_parameters", "$.modelParameters"),
         "_meta": field("_j", "$.metadata"),
         "_usage": usage_doc("_j", "$.usage_details", "$.usageDetails", "$.usage")},
        {"_msgs": f"CASE WHEN json_type(_in) = 'ARRAY' THEN {items('_in')} ELSE {messages('_in')} END"},
    ),
    role="""CASE _kind WHEN 'trace' THEN 'context'
      WHEN 'observation' THEN CASE WHEN _type = 'GENERATION' THEN 'exchange' WHEN _type IS NULL THEN 'unrecognized' ELSE 'skip' END
      ELSE 'unrecognized' END""",
    key="CASE _kind WHEN 'trace' THEN json_extract_string(_j, '$.id') "
        "ELSE coalesce(json_extract_string(_j, '$.trace_id'), json_extract_string(_j, '$.traceId')) END",
    note="""CASE WHEN _kind = 'observation' AND _type IS NOT NULL THEN 'not_a_generation'
      WHEN _kind = 'observation' THEN 'a Langfuse observation with no type: cannot tell a GENERATION from a span'
      ELSE 'not a Langfuse trace or observation: expected trace_id and type (an observation) or id and timestamp (a trace)' END""",
    fields=merged(
        {
            "request_id": scalar("_j", "$.id"),
            "ts": time_text(scalar("_j", "$.start_time", "$.startTime", "$.timestamp")),
            "account_id": scalar("_j", "$.user_id", "$.userId"),
            "conversation_id": scalar("_j", "$.session_id", "$.sessionId"),
            "model": scalar("_j", "$.provided_model_name", "$.providedModelName", "$.model"),
            "prompt": f"coalesce({_request['prompt']}, CASE WHEN json_type(_in) = 'VARCHAR' "
                      f"THEN nullif(json_extract_string(_in, '$'), '') END)",
            "system": _request["system"],
            "response": response_text("_out"),
            "input_tokens": f"coalesce({bucket('_usage', 'input')}, "
                            f"{scalar('_j', '$.inputUsage', '$.prompt_tokens', '$.promptTokens')}, "
                            f"{scalar('_usage', '$.prompt_tokens')})",
            "output_tokens": f"coalesce({bucket('_usage', 'output')}, "
                             f"{scalar('_j', '$.outputUsage', '$.completion_tokens', '$.completionTokens')}, "
                             f"{scalar('_usage', '$.completion_tokens')})",
            "reasoning_tokens": f"coalesce({bucket('_usage', 'reasoning')}, "
                                f"{scalar('_usage', '$.completion_tokens_details.reasoning_tokens', '$.output_tokens_details.reasoning_tokens')})",
            "tools": f"coalesce({_request['tools']}, {tool_count(field('_j', '$.tool_definitions', '$.toolDefinitions'))})",
            "status": STATUS,
            # A thinking setting kept as a string of JSON in model_parameters (values there are strings).
            "thinking": f"CASE {text(field('_params', '$.thinking'), '$.type')} WHEN 'enabled' THEN 'true' "
                        f"WHEN 'adaptive' THEN 'true' WHEN 'disabled' THEN 'false' END",
            **{name: scalar("_meta", f"$.{name}") for name in FROM_METADATA},
        },
        {name: _params[name] for name in _SAMPLING},
        {name: _request[name] for name in (*_SAMPLING, "model")},
        # A whole provider response kept as the output carries its own usage and model.
        {name: _response[name] for name in ("model", "input_tokens", "output_tokens", "reasoning_tokens")},
    ),
    issued=f"list_sort(list_distinct(list_concat({issued_blobs('_out')}, "
           f"{reasoning_blobs('list_concat(' + items('_out') + ', [_out])')})))",
    replayed=reasoning_blobs("_msgs"),
    sources={
        "request_id": "the observation's `id`",
        "ts": "`start_time` / `startTime` (`YYYY-MM-DD HH:MM:SS.ffffff` UTC in blob exports, RFC 3339 from the API)",
        "account_id": "the observation's `user_id` / `userId` (enriched exports); else its trace's `user_id` / `userId` (a trace record of the same ingest, joined on `trace_id`)",
        "conversation_id": "the observation's `session_id` / `sessionId`; else its trace's",
        "model": "`provided_model_name` / `providedModelName` / `model`; else the input body's or the output's `model`",
        "prompt": "the text of the last `user` message of `input` (a messages list, `{messages: [...]}`, a Responses `input`, Anthropic content blocks); a plain-text `input`",
        "system": "`system` / `developer` messages of `input`; an Anthropic `system`; Responses `instructions`",
        "response": "`output`: a string, a message's `content`, a Chat completion's first choice, Responses output text, Anthropic text blocks, a completion's `text`",
        "input_tokens": "the sum of `usage_details` / `usageDetails` / `usage` keys containing `input` (input, input_cached_tokens, cache_read_input_tokens, ...); else `inputUsage`, `prompt_tokens`, `promptTokens`",
        "output_tokens": "the sum of usage keys containing `output` (output, output_reasoning_tokens, ...); else `outputUsage`, `completion_tokens`, `completionTokens`",
        "reasoning_tokens": "the sum of usage keys containing `reasoning` (output_reasoning_tokens); else OpenAI-shaped `completion_tokens_details.reasoning_tokens`",
        "max_tokens": "`model_parameters` / `modelParameters` `max_tokens`, `max_completion_tokens` or `max_output_tokens`; else the input body's",
        "temperature": "`model_parameters.temperature`; else the input body's",
        "n": "`model_parameters.n`",
        "logprobs": "`model_parameters.logprobs`; true when `top_logprobs` > 0",
        "thinking": "`model_parameters` `reasoning_effort` (not none) or `thinking.type` enabled",
        "tools": "the number of `tools` in the input body; else of `tool_definitions`",
        "status": "level ERROR: error (rate_limited when `status_message` names 429 or a rate limit); a `refusal` or content filter in the output: refused; else ok when there is an output",
        "api_key_id, turn, client_ip, asn, ip_country, user_agent, tls_fingerprint, client_timezone":
            "the same names in the observation's `metadata` (Langfuse records none of them itself)",
    },
)
