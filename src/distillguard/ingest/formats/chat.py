"""The request and response bodies of the OpenAI Chat Completions, OpenAI Responses and
Anthropic Messages APIs, as contract fields: one reading for all three, since gateways
(LiteLLM, Helicone) and tracers (Langfuse) log whichever their client called.

`request_fields(req)` and `response_fields(resp)` take SQL giving the bodies as JSON
(NULL when absent) and return contract field -> SQL text. A request's messages are its
`messages` (Chat, Anthropic) or its `input` items (Responses).
"""

from __future__ import annotations

from distillguard.ingest.formats.jsonsql import (at, content_text, count_items, epoch_text, field, items,
                                                 last_text_of, reasoning_blobs, text, texts_of)

USER = ("user",)
SYSTEM = ("system", "developer")


def messages(req: str) -> str:
    """The request's messages (Chat, Anthropic) or input items (Responses), as a list of JSON."""
    return f"list_concat({items(field(req, '$.messages'))}, {items(field(req, '$.input'))})"


def request_fields(req: str, msgs: str) -> dict[str, str]:
    """msgs: SQL for messages(req), computed once by the caller's layers."""
    effort = text(req, "$.reasoning_effort", "$.reasoning.effort")
    return {
        "model": text(req, "$.model"),
        # The last user message with text; a Responses `input` or a legacy `prompt` may be a plain string.
        "prompt": (f"coalesce({last_text_of(msgs, USER)}, "
                   f"CASE WHEN json_type({at(req, '$.input')}) = 'VARCHAR' THEN json_extract_string({req}, '$.input') END, "
                   f"CASE WHEN json_type({at(req, '$.prompt')}) = 'VARCHAR' THEN json_extract_string({req}, '$.prompt') END)"),
        # Anthropic's top-level `system`; Responses' `instructions`; system and developer messages.
        "system": (f"coalesce({content_text(field(req, '$.system'))}, "
                   f"nullif(concat_ws(chr(10) || chr(10), {text(req, '$.instructions')}, {texts_of(msgs, SYSTEM)}), ''))"),
        "max_tokens": text(req, "$.max_tokens", "$.max_completion_tokens", "$.max_output_tokens"),
        "temperature": text(req, "$.temperature"),
        "n": text(req, "$.n"),
        # Chat: logprobs true or top_logprobs > 0; Responses: top_logprobs or the logprobs include.
        "logprobs": (f"CASE WHEN TRY_CAST({text(req, '$.top_logprobs')} AS DOUBLE) > 0 "
                     f"OR list_contains(list_transform({items(field(req, '$.include'))}, lambda i: json_extract_string(i, '$')), "
                     f"'message.output_text.logprobs') "
                     f"THEN 'true' ELSE {text(req, '$.logprobs')} END"),
        # Anthropic `thinking: {type: enabled}`; OpenAI `reasoning_effort` / `reasoning.effort` other than none.
        "thinking": (f"CASE WHEN {text(req, '$.thinking.type')} IN ('enabled', 'adaptive') THEN 'true' "
                     f"WHEN {text(req, '$.thinking.type')} = 'disabled' THEN 'false' "
                     f"WHEN {effort} IS NOT NULL THEN CASE WHEN lower({effort}) = 'none' THEN 'false' ELSE 'true' END END"),
        "tools": count_items(field(req, "$.tools")),
        "conversation_id": text(req, "$.conversation.id", "$.conversation", "$.metadata.conversation_id"),
        # Who the end user is, when the log names no account: OpenAI safety_identifier and
        # user, Anthropic metadata.user_id.
        "account_id": text(req, "$.safety_identifier", "$.user", "$.metadata.user_id"),
    }


def response_fields(resp: str) -> dict[str, str]:
    outputs = items(field(resp, "$.output"))
    return {
        "request_id": text(resp, "$.id"),
        "model": text(resp, "$.model"),
        "ts": epoch_text(text(resp, "$.created", "$.created_at"), "s"),
        # Chat: the first choice; Responses: assistant message items; Anthropic: text blocks.
        "response": (f"coalesce({content_text(at(resp, '$.choices[0].message.content'))}, "
                     f"{texts_of(outputs, ('assistant',))}, {content_text(field(resp, '$.content'))})"),
        # Anthropic counts cache reads and writes apart from input_tokens; OpenAI includes them.
        "input_tokens": (f"CASE WHEN {text(resp, '$.usage.cache_read_input_tokens', '$.usage.cache_creation_input_tokens')} "
                         f"IS NOT NULL THEN (TRY_CAST({text(resp, '$.usage.input_tokens')} AS BIGINT) "
                         f"+ coalesce(TRY_CAST({text(resp, '$.usage.cache_read_input_tokens')} AS BIGINT), 0) "
                         f"+ coalesce(TRY_CAST({text(resp, '$.usage.cache_creation_input_tokens')} AS BIGINT), 0))::VARCHAR "
                         f"ELSE {text(resp, '$.usage.prompt_tokens', '$.usage.input_tokens')} END"),
        "output_tokens": text(resp, "$.usage.completion_tokens", "$.usage.output_tokens"),
        "reasoning_tokens": text(resp, "$.usage.completion_tokens_details.reasoning_tokens",
                                 "$.usage.output_tokens_details.reasoning_tokens"),
        "status": response_status(resp),
    }


def response_status(resp: str) -> str:
    """refused (a content filter or a refusal), error (a failed response or an error
    object), ok for any other response; NULL when there is none."""
    refused = (f"{text(resp, '$.choices[0].finish_reason')} = 'content_filter' "
               f"OR {text(resp, '$.choices[0].message.refusal')} IS NOT NULL "
               f"OR {text(resp, '$.stop_reason')} = 'refusal' "
               f"OR {text(resp, '$.incomplete_details.reason')} = 'content_filter' "
               f"OR list_contains(list_transform(coalesce({at(resp, '$.output[*].content[*].type')}, []), "
               f"lambda t: json_extract_string(t, '$')), 'refusal')")
    failed = (f"{text(resp, '$.status')} = 'failed' OR {text(resp, '$.type')} = 'error' "
              f"OR ({at(resp, '$.error')} IS NOT NULL AND json_type({at(resp, '$.error')}) <> 'NULL')")
    return (f"CASE WHEN {resp} IS NULL THEN NULL WHEN {refused} THEN 'refused' "
            f"WHEN {text(resp, '$.error.type')} = 'rate_limit_error' THEN 'rate_limited' "
            f"WHEN {failed} THEN 'error' ELSE 'ok' END")


def issued_blobs(resp: str) -> str:
    """Reasoning blobs in a response: Responses output items, Anthropic content blocks,
    Chat choices' messages (LiteLLM's thinking_blocks)."""
    choices = f"coalesce({at(resp, '$.choices[*].message')}, [])"
    outputs, blocks = items(field(resp, "$.output")), items(field(resp, "$.content"))
    return reasoning_blobs(f"list_concat(list_concat({outputs}, {blocks}), {choices})")


def http_status(code: str) -> str:
    """An HTTP status code as a contract status."""
    return (f"CASE WHEN TRY_CAST({code} AS INT) = 429 THEN 'rate_limited' "
            f"WHEN TRY_CAST({code} AS INT) >= 400 THEN 'error' END")


def merged(*mappings: dict[str, str]) -> dict[str, str]:
    """Field SQL from several sources, the first source's value winning field by field."""
    out: dict[str, list[str]] = {}
    for m in mappings:
        for name, sql in m.items():
            out.setdefault(name, []).append(sql)
    return {name: sqls[0] if len(sqls) == 1 else f"coalesce({', '.join(sqls)})" for name, sqls in out.items()}
