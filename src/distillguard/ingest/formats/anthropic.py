"""Anthropic API logs: Messages request/response logs, and Message Batches requests and results.

Three record shapes, told apart by their keys:

  a log record      {"request": {...}, "response": {...}, ...}: the Messages request body and
                    the response message (`request_body` / `response_body` also read). Any
                    contract field at the top level (account_id, ts, client_ip, ...) wins.
  a batch request   {"custom_id", "params": {...}}: one element of a Message Batch's `requests`
  a batch result    {"custom_id", "result": {"type": "succeeded", "message": {...}}}: a line
                    of a batch's results file (or errored / canceled / expired)

A result is paired with its request by custom_id (give both files to the same ingest).
Batch files name no account and results carry no time: the request's `metadata.user_id`
names the account, or give `ingest --fill account_id=... --fill ts=...` (the batch's
`ended_at`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distillguard.ingest.formats.provider import provider_log


def detect(record: Mapping[str, Any]) -> bool:
    if "custom_id" in record and ("params" in record or isinstance(record.get("result"), dict)):
        return True
    response = record.get("response", record.get("response_body"))
    return isinstance(response, dict) and response.get("type") in ("message", "error")


RESULT_STATUS = """CASE json_extract_string(_j, '$.result.type') WHEN 'succeeded' THEN NULL
  WHEN 'errored' THEN CASE WHEN json_extract_string(_j, '$.result.error.error.type') = 'rate_limit_error'
                            OR json_extract_string(_j, '$.result.error.type') = 'rate_limit_error' THEN 'rate_limited' ELSE 'error' END
  WHEN 'canceled' THEN 'error' WHEN 'expired' THEN 'error' END"""

FORMAT = provider_log(
    name="anthropic",
    title="Anthropic Messages logs, Message Batches requests and results",
    about=__doc__.split("\n\n", 1)[1],
    detect=detect,
    batch_body="$.params",
    batch_result=("$.result",),
    result_body="$.result.message",
    note="not an Anthropic log record: expected request and response objects, or a Message Batches request or result",
    first={"status": f"CASE WHEN _kind = 'batch_result' THEN {RESULT_STATUS} END"},
    last={},
    sources={
        "request_id": "`request_id` at the top level; the message's `id` (`msg_...`); else a hash of the record",
        "ts": "`ts` / `timestamp` / `created_at` at the top level (RFC 3339 or Unix seconds); batch results carry none (`--fill ts=...`)",
        "account_id": "`account_id` at the top level; the request's `metadata.user_id`",
        "model": "the request's `model`; else the message's",
        "prompt": "the text blocks of the last `user` message that has text (a turn of only `tool_result` blocks is skipped: the prompt is the task that started the loop)",
        "system": "`system` (a string or text blocks)",
        "response": "the message's `text` blocks, joined",
        "input_tokens": "`usage.input_tokens` + `cache_read_input_tokens` + `cache_creation_input_tokens`",
        "output_tokens": "`usage.output_tokens` (thinking tokens included: the API does not count them apart)",
        "max_tokens": "`max_tokens`",
        "temperature": "`temperature`",
        "thinking": "`thinking.type`: enabled or adaptive: true, disabled: false",
        "tools": "the number of `tools`",
        "status": "`stop_reason` refusal: refused; an `error` response, or an errored, canceled or expired batch result: error (rate_limit_error: rate_limited); else ok",
        "api_key_id, client_ip, user_agent, ...": "the same names at the top level of a log record",
    },
)
