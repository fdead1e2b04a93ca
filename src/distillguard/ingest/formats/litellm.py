"""LiteLLM proxy logs: the spend logs table, and StandardLoggingPayload callbacks.

Two record shapes, told apart by their keys (both have `call_type`):

  a spend log row          a row of the proxy's `LiteLLM_SpendLogs` table, exported to CSV or
                           JSON Lines (`request_id`, `call_type`, `api_key`, `startTime`,
                           `user`, `team_id`, `metadata`, `messages`, `response`,
                           `proxy_server_request`, `session_id`, `status`, ...). JSON columns
                           may be JSON or strings of JSON.
  a StandardLoggingPayload what LiteLLM hands its logging callbacks, one per line (`id`,
                           `trace_id`, `startTime` in Unix seconds, `metadata`, `messages`,
                           `response`, `model_parameters`, `error_information`, ...)

The request is read from `proxy_server_request` (the body the client sent), `messages`
(a list of messages, a request object or a prompt string) and `model_parameters`, in that
order; the response is a ModelResponse (Chat), a Responses API object or an Anthropic
message. Reasoning blobs are the `thinking_blocks` signatures LiteLLM puts on messages.

Calls that are not generations (`call_type` embedding, image generation, moderation,
transcription, speech, rerank, batch and file operations, ...) are skipped as
not_a_completion; a call type this reader does not know is taken as a generation when a
prompt can be read from it, and skipped otherwise.

The account is the proxy customer that owns the virtual key: the key's user (`user`,
`metadata.user_api_key_user_id`), else its team (`team_id`,
`metadata.user_api_key_team_id`), else the hashed key itself (`api_key`,
`metadata.user_api_key_hash`), so a key with neither is still an account of its own. The
organization is not used (it spans many teams), nor `end_user`: that is the customer's
own end user (the request's `user` parameter), not the account.

By default the proxy does not store prompts in the spend logs (`messages`, `response` and
`proxy_server_request` are `{}`): such rows are quarantined for their missing prompt; set
`general_settings.store_prompts_in_spend_logs: true` on the proxy to log them.
`session_id` / `trace_id` is a new random id per call unless the client sends
`litellm_session_id` or `litellm_trace_id`, so conversations only group when it does.
A cached response (`cache_hit`) has a `_cache_hit...` suffix on its request_id: it is its
own exchange, served to the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distillguard.ingest.formats.base import LogFormat
from distillguard.ingest.formats.chat import issued_blobs, merged, messages, request_fields, response_fields
from distillguard.ingest.formats.jsonsql import (content_text, field, items, reasoning_blobs, scalar, text,
                                                 time_text)

# Call types that produce text from a prompt (sync and async names).
GENERATIONS = ("completion", "acompletion", "text_completion", "atext_completion", "responses", "aresponses",
               "anthropic_messages", "aanthropic_messages", "generate_content", "agenerate_content",
               "generate_content_stream", "agenerate_content_stream")
# Call types that are not generations: any call_type containing one of these words.
NOT_GENERATIONS = ("embedding|image|moderation|transcription|speech|rerank|batch|file|ocr|fine_tuning|vector_store"
                   "|search|video|container|mcp|delete|cancel|retrieve|list|count_tokens")


def detect(record: Mapping[str, Any]) -> bool:
    if "call_type" not in record:
        return False
    spend_log = "request_id" in record and ("spend" in record or "api_key" in record)
    payload = "startTime" in record and ("model_parameters" in record or "hidden_params" in record
                                         or "trace_id" in record)
    return spend_log or payload


def _object(x: str) -> str:
    return f"CASE WHEN json_type({x}) = 'OBJECT' THEN {x} ELSE '{{}}'::JSON END"


ERROR_CODE = text("_err", "$.error_code")
ERROR_CLASS = text("_err", "$.error_class")
STATUS = f"""CASE WHEN {text('_j', '$.status')} = 'failure' OR {text('_meta', '$.status')} = 'failure' THEN
    CASE WHEN {ERROR_CODE} = '429' OR {ERROR_CLASS} = 'RateLimitError' THEN 'rate_limited'
         WHEN {ERROR_CLASS} IN ('ContentPolicyViolationError', 'ContentFilterError') THEN 'refused'
         ELSE 'error' END END"""

FORMAT = LogFormat(
    name="litellm",
    title="LiteLLM proxy spend logs and StandardLoggingPayload callbacks",
    about=__doc__.split("\n\n", 1)[1],
    detect=detect,
    layers=(
        {"_meta": field("_j", "$.metadata"),
         "_msgcol": field("_j", "$.messages"),
         "_psr": field("_j", "$.proxy_server_request"),
         "_params": field("_j", "$.model_parameters"),
         "_resp": f"CASE WHEN json_type({field('_j', '$.response')}) IN ('OBJECT', 'VARCHAR') "
                  f"THEN {field('_j', '$.response')} END",
         "_call": text("_j", "$.call_type")},
        # One request object: the client's body wins over a request stored in `messages`,
        # which wins over the callback's model_parameters.
        {"_req": (f"json_merge_patch(json_merge_patch({_object('_params')}, {_object('_msgcol')}), "
                  f"{_object('_psr')})"),
         "_err": f"coalesce({field('_j', '$.error_information')}, {field('_meta', '$.error_information')})"},
        {"_msgs": (f"CASE WHEN json_type(_msgcol) = 'ARRAY' AND json_array_length(_msgcol) > 0 "
                   f"THEN {items('_msgcol')} ELSE {messages('_req')} END")},
        {"_prompt": (f"coalesce({request_fields('_req', '_msgs')['prompt']}, CASE WHEN json_type(_msgcol) = 'VARCHAR' "
                     f"THEN nullif(json_extract_string(_msgcol, '$'), '') END)")},
        {"_kind": f"""CASE
            WHEN json_extract(_j, '$.call_type') IS NULL AND json_extract(_j, '$.startTime') IS NULL THEN 'unrecognized'
            WHEN regexp_matches(coalesce(_call, ''), '{NOT_GENERATIONS}') THEN 'skip'
            WHEN _call IS NULL OR _call IN {GENERATIONS} OR _prompt IS NOT NULL THEN 'exchange'
            ELSE 'skip' END"""},
    ),
    role="_kind",
    note="CASE _kind WHEN 'skip' THEN 'not_a_completion' WHEN 'unrecognized' THEN "
         "'not a LiteLLM record: expected a spend log row or a StandardLoggingPayload (call_type, startTime)' END",
    fields=merged(
        {
            "request_id": text("_j", "$.request_id", "$.id"),
            "ts": time_text(scalar("_j", "$.startTime")),
            "account_id": (f"coalesce({text('_j', '$.user')}, {text('_meta', '$.user_api_key_user_id')}, "
                           f"{text('_j', '$.team_id')}, {text('_meta', '$.user_api_key_team_id', '$.team_id')}, "
                           f"{text('_j', '$.api_key')}, {text('_meta', '$.user_api_key_hash', '$.user_api_key')})"),
            "api_key_id": (f"coalesce({text('_j', '$.api_key')}, "
                           f"{text('_meta', '$.user_api_key_hash', '$.user_api_key')})"),
            "model": text("_req", "$.model"),
            "prompt": "_prompt",
            "input_tokens": scalar("_j", "$.prompt_tokens"),
            "output_tokens": scalar("_j", "$.completion_tokens"),
            "status": STATUS,
            "client_ip": (f"coalesce({text('_j', '$.requester_ip_address')}, "
                          f"{text('_meta', '$.requester_ip_address')})"),
            "user_agent": text("_meta", "$.user_agent"),
            "response": (f"CASE WHEN json_type(_resp) = 'VARCHAR' THEN nullif(json_extract_string(_resp, '$'), '') "
                         f"ELSE {content_text(field('_resp', '$.choices[0].text'))} END"),
        },
        {"model": text("_j", "$.model_group", "$.model")},
        {name: sql for name, sql in request_fields("_req", "_msgs").items()
         if name not in ("prompt", "account_id", "model")},
        {"conversation_id": text("_j", "$.session_id", "$.trace_id")},
        {name: sql for name, sql in response_fields("_resp").items() if name not in ("ts", "model")},
        # Spend logs keep usage details in metadata even when the response is not stored.
        {"reasoning_tokens": text("_meta", "$.additional_usage_values.completion_tokens_details.reasoning_tokens",
                                  "$.usage_object.completion_tokens_details.reasoning_tokens")},
        {"status": "CASE WHEN _resp IS NULL THEN 'ok' END"},
    ),
    issued=issued_blobs("_resp"),
    replayed=reasoning_blobs("_msgs"),
    sources={
        "request_id": "`request_id` (spend logs: the response id or LiteLLM's call id) or `id` (StandardLoggingPayload)",
        "ts": "`startTime` (a timestamp in spend logs, Unix seconds in a StandardLoggingPayload)",
        "account_id": "the key's user: `user` or `metadata.user_api_key_user_id`; else its team: `team_id` or "
                      "`metadata.user_api_key_team_id`; else the hashed key (`api_key`, `metadata.user_api_key_hash`). "
                      "Never `end_user` (the customer's own end user)",
        "api_key_id": "`api_key` (the hashed virtual key) or `metadata.user_api_key_hash`",
        "model": "the request body's `model` (what the client asked for); else `model_group`, else `model`",
        "prompt": "the text of the last `user` message that has text (`proxy_server_request.messages`, `messages`, "
                  "or Responses `input`); a string `messages` or `prompt`",
        "system": "`system` / `developer` messages; Anthropic `system`; Responses `instructions`",
        "response": "the response's first choice (`message.content`, or `text` for text completions), Responses "
                    "`output_text`, Anthropic text blocks; a string `response`",
        "input_tokens": "`prompt_tokens`; else the response's `usage`",
        "output_tokens": "`completion_tokens`; else the response's `usage`",
        "reasoning_tokens": "the response's `usage.completion_tokens_details.reasoning_tokens`; else the same in "
                            "`metadata.additional_usage_values` (spend logs keep it when prompts are not stored)",
        "max_tokens": "`max_tokens` / `max_completion_tokens` / `max_output_tokens` of the request or `model_parameters`",
        "temperature": "`temperature` of the request or `model_parameters`",
        "logprobs": "`logprobs`, or `top_logprobs` > 0, of the request or `model_parameters`",
        "n": "`n` of the request or `model_parameters`",
        "thinking": "`reasoning_effort` (not none) or Anthropic `thinking.type` of the request or `model_parameters`",
        "tools": "the number of `tools` in the request or `model_parameters`",
        "conversation_id": "a Responses `conversation` in the request; else `session_id` (spend logs) or `trace_id` "
                           "(random per call unless the client sets `litellm_session_id` / `litellm_trace_id`)",
        "status": "`status` failure: error, rate_limited when `error_information.error_code` is 429 or its class "
                  "RateLimitError, refused for ContentPolicyViolationError; else the response's (a content filter or "
                  "refusal: refused); else ok",
        "client_ip": "`requester_ip_address` or `metadata.requester_ip_address`",
        "user_agent": "`metadata.user_agent` (newer proxies)",
    },
)
