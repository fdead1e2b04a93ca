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

from distillguard.ingest.formats.chat import http_status
from distillguard.ingest.formats.jsonsql import text
from distillguard.ingest.formats.provider import provider_log


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


FORMAT = provider_log(
    name="openai",
    title="OpenAI Chat Completions and Responses logs, Batch API input and output",
    about=__doc__.split("\n\n", 1)[1],
    detect=detect,
    batch_body="$.body",
    batch_result=("$.response", "$.error"),
    result_body="$.response.body",
    note="not an OpenAI log record: expected request and response objects, or a Batch API input or output line",
    first={"status": f"coalesce({http_status(text('_j', '$.response.status_code', '$.status_code'))}, "
                     f"CASE WHEN _kind = 'batch_result' AND _resp IS NULL THEN 'error' END)"},
    last={"request_id": text("_j", "$.response.request_id", "$.id")},
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
