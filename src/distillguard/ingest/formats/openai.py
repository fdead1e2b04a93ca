"""OpenAI API logs: Chat Completions and Responses request/response logs, and Batch API
input and output files.

Three record shapes, told apart by their keys:

  a log record      {"request": {...}, "response": {...}, ...}: the request body and the
                    response object (`request_body` / `response_body` also read). Any
                    contract field at the top level (account_id, ts, client_ip, ...) wins.
  a batch request   {"custom_id", "method", "url", "body"}: a line of a Batch input file
  a batch result    {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}:
                    a line of a Batch output or error file

A batch result is paired with its request line by custom_id (give both files to the
same ingest). Batch files name no account: the request body's safety_identifier or
user does, or `ingest --fill account_id=...`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distillguard.ingest.formats.base import LogFormat
from distillguard.ingest.formats.chat import (http_status, issued_blobs, merged, messages, request_fields,
                                              response_fields)
from distillguard.ingest.formats.jsonsql import field, reasoning_blobs, scalar, text, time_text
from distillguard.schema.contract import EVENTS


def envelope_fields(j: str) -> dict[str, str]:
    """Contract fields a log record carries at its top level (they win over the bodies')."""
    fields = {f.name: scalar(j, f"$.{f.name}") for f in EVENTS.fields}
    fields["ts"] = time_text(scalar(j, "$.ts", "$.timestamp", "$.created_at"))
    return fields


def _is(record: Mapping[str, Any], *keys: str) -> bool:
    return all(k in record for k in keys)


def detect(record: Mapping[str, Any]) -> bool:
    if _is(record, "custom_id", "body") and "method" in record or _is(record, "custom_id", "response") \
            and isinstance(record.get("response"), (dict, type(None))) and "result" not in record:
        return True
    response = record.get("response", record.get("response_body"))
    if isinstance(response, dict):
        return response.get("object") in ("chat.completion", "response") or "choices" in response
    return False


KIND = """CASE WHEN json_extract(_j, '$.custom_id') IS NOT NULL AND json_extract(_j, '$.body') IS NOT NULL THEN 'batch_request'
  WHEN json_extract(_j, '$.custom_id') IS NOT NULL AND (json_extract(_j, '$.response') IS NOT NULL OR json_extract(_j, '$.error') IS NOT NULL) THEN 'batch_result'
  WHEN coalesce(json_extract(_j, '$.request'), json_extract(_j, '$.request_body'), json_extract(_j, '$.response'), json_extract(_j, '$.response_body')) IS NOT NULL THEN 'log'
END"""

FORMAT = LogFormat(
    name="openai",
    title="OpenAI Chat Completions and Responses logs, Batch API input and output",
    about=__doc__.split("\n\n", 1)[1],
    detect=detect,
    layers=(
        {"_kind": KIND},
        {"_req": f"CASE _kind WHEN 'batch_request' THEN {field('_j', '$.body')} "
                 f"WHEN 'log' THEN {field('_j', '$.request', '$.request_body')} END",
         "_resp": f"CASE _kind WHEN 'batch_result' THEN {field('_j', '$.response.body')} "
                  f"WHEN 'log' THEN {field('_j', '$.response', '$.response_body')} END"},
        {"_msgs": messages("_req")},
    ),
    role="CASE _kind WHEN 'batch_request' THEN 'request' WHEN 'batch_result' THEN 'response' "
         "WHEN 'log' THEN 'exchange' ELSE 'unrecognized' END",
    key="json_extract_string(_j, '$.custom_id')",
    note="'not an OpenAI log record: expected request and response objects, or a Batch API input or output line'",
    fields=merged(
        envelope_fields("_j"),
        {"status": f"coalesce({http_status(text('_j', '$.response.status_code', '$.status_code'))}, "
                   f"CASE WHEN _kind = 'batch_result' AND _resp IS NULL THEN 'error' END)"},
        request_fields("_req", "_msgs"),
        response_fields("_resp"),
        {"request_id": text("_j", "$.response.request_id", "$.id")},
        ),
    issued=issued_blobs("_resp"),
    replayed=reasoning_blobs("_msgs"),
    sources={
        "request_id": "`request_id` at the top level; the response's `id` (`chatcmpl-...`, `resp_...`); a batch result's `response.request_id` or `id`; else a hash of the record",
        "ts": "`ts` / `timestamp` / `created_at` at the top level (RFC 3339 or Unix seconds); the response's `created` (Chat) or `created_at` (Responses)",
        "account_id": "`account_id` at the top level; the request's `safety_identifier`, `user` or `metadata.user_id`",
        "model": "the request's `model`; else the response's",
        "prompt": "the text of the last `user` message that has text (`messages`, or Responses `input` items; string content or `text` / `input_text` parts); a string `input`",
        "system": "`system` and `developer` messages; Responses `instructions`",
        "response": "the first choice's `message.content` (Chat); `output_text` parts of `output` messages (Responses)",
        "input_tokens": "`usage.prompt_tokens` (Chat) or `usage.input_tokens` (Responses)",
        "output_tokens": "`usage.completion_tokens` or `usage.output_tokens`",
        "reasoning_tokens": "`usage.completion_tokens_details.reasoning_tokens` or `usage.output_tokens_details.reasoning_tokens`",
        "max_tokens": "`max_tokens`, `max_completion_tokens` or `max_output_tokens`",
        "temperature": "`temperature`",
        "logprobs": "`logprobs`; true when `top_logprobs` > 0 or `include` asks for `message.output_text.logprobs`",
        "n": "`n`",
        "thinking": "true when `reasoning_effort` (Chat) or `reasoning.effort` (Responses) is set and not `none`",
        "tools": "the number of `tools`",
        "conversation_id": "the Responses `conversation` (or its `id`); `metadata.conversation_id`",
        "status": "HTTP `status_code` 429: rate_limited, other 4xx/5xx: error; `finish_reason` content_filter, a `refusal`: refused; a failed response or an `error`: error; else ok",
        "api_key_id, client_ip, user_agent, ...": "the same names at the top level of a log record",
    },
)
