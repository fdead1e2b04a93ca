"""Helicone request exports: the records of Helicone's request API, as written by its export
tool (`npx @helicone/export`, JSON Lines or CSV) or a custom ETL.

One record per proxied request: `request_id`, `request_created_at`, `request_body` (the
provider request, OpenAI Chat / Responses or Anthropic Messages), `response_body`,
`response_status` (the HTTP status), `request_user_id`, `request_properties` (custom
properties and the session headers), `request_path`, `provider`, the model and token
columns, `country_code`. The export tool's CSV has fewer columns (`response_id`,
`response_created_at`, `response_status`, `request_created_at`, `request_body`,
`request_properties`, `request_user_id`, `model`, `prompt_tokens`, `completion_tokens`,
`latency`, `cost`): no request_id, so the response id names the exchange, and no
response body, so no response text or reasoning blobs. JSON cells that some versions of
the export tool wrote with their quotes doubled twice are read as well.

Requests that are not generations (a `request_path` to embeddings, moderations, images,
audio or files) are skipped as not_a_completion. A body Helicone left out as too large
(`helicone_message`) has no prompt, and the record is quarantined for it.

The account is `request_user_id`: the `Helicone-User-Id` header (or the body's `user`,
which Helicone copies there). Without it a record has no account: ingest with
`--fill account_id=...` (all of a file's traffic then counts as one account). The
conversation is the `Helicone-Session-Id` property. `country_code` gives ip_country;
Cloudflare's XX (unknown) and T1 (Tor) are not countries and are left empty. Helicone
exports neither the client IP nor the user agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distillguard.ingest.formats.base import LogFormat
from distillguard.ingest.formats.chat import (http_status, issued_blobs, merged, messages, request_fields,
                                              response_fields)
from distillguard.ingest.formats.jsonsql import at, doc, reasoning_blobs, scalar, text, time_text

# Keys any Helicone request record has (the export tool's CSV columns included).
KEYS = ("request_created_at", "request_body", "request_user_id", "request_properties", "response_status")
NOT_GENERATIONS = "(embeddings|moderations|images|audio|files)"
SESSION = ("$.\"Helicone-Session-Id\"", "$.\"helicone-session-id\"", "$.\"Helicone-Session-ID\"")


def detect(record: Mapping[str, Any]) -> bool:
    return "request_created_at" in record and sum(k in record for k in KEYS) >= 3


def _cell(x: str) -> str:
    """A JSON document, also from a string of JSON whose quotes were doubled ("{""a"":1}")."""
    raw = f"json_extract_string({x}, '$')"
    fixed = f"replace({raw}, '\"\"', '\"')"
    repaired = (f"CASE WHEN json_type({x}) = 'VARCHAR' AND regexp_matches({raw}, '^\\s*[\\[{{]') "
                f"AND NOT json_valid({raw}) AND json_valid({fixed}) THEN json({fixed}) END")
    return f"coalesce({repaired}, {doc(x)})"


def _field(x: str, *paths: str) -> str:
    return "coalesce(" + ", ".join(_cell(at(x, p)) for p in paths) + ")"


COUNTRY = text("_j", "$.country_code")
UNRECOGNIZED = " AND ".join(f"{at('_j', p)} IS NULL" for p in ("$.request_id", "$.response_id", "$.request_created_at",
                                                                "$.request_body"))

FORMAT = LogFormat(
    name="helicone",
    title="Helicone request exports",
    about=__doc__.split("\n\n", 1)[1],
    detect=detect,
    layers=(
        {"_req": _field("_j", "$.request_body"),
         "_resp": _field("_j", "$.response_body"),
         "_props": _field("_j", "$.request_properties", "$.properties"),
         "_path": text("_j", "$.request_path", "$.path", "$.target_url")},
        {"_msgs": messages("_req")},
    ),
    role=(f"CASE WHEN {UNRECOGNIZED} THEN 'unrecognized' "
          f"WHEN regexp_matches(lower(coalesce(_path, '')), '{NOT_GENERATIONS}') THEN 'skip' ELSE 'exchange' END"),
    note=(f"CASE WHEN {UNRECOGNIZED} THEN 'not a Helicone request record: expected request_id, request_created_at "
          f"and request_body' ELSE 'not_a_completion' END"),
    fields=merged(
        {
            "request_id": text("_j", "$.request_id", "$.response_id"),
            "ts": time_text(scalar("_j", "$.request_created_at", "$.response_created_at")),
            "account_id": text("_j", "$.request_user_id", "$.user_id"),
            "model": text("_j", "$.request_model"),
            "conversation_id": text("_props", *SESSION),
            "status": (f"coalesce({http_status(text('_j', '$.response_status', '$.status'))}, "
                       f"CASE WHEN TRY_CAST({text('_j', '$.response_status', '$.status')} AS INT) < 0 "
                       f"THEN 'error' END)"),
            "ip_country": f"CASE WHEN upper({COUNTRY}) IN ('XX', 'T1') THEN NULL ELSE {COUNTRY} END",
        },
        {"model": text("_req", "$.model")},
        {"model": text("_j", "$.model", "$.response_model")},
        {name: sql for name, sql in request_fields("_req", "_msgs").items() if name != "account_id"},
        {name: sql for name, sql in response_fields("_resp").items() if name not in ("ts", "request_id")},
        {"input_tokens": scalar("_j", "$.prompt_tokens"),
         "output_tokens": scalar("_j", "$.completion_tokens"),
         "reasoning_tokens": scalar("_j", "$.reasoning_tokens")},
        {"status": "'ok'"},
    ),
    issued=issued_blobs("_resp"),
    replayed=reasoning_blobs("_msgs"),
    sources={
        "request_id": "`request_id`; else `response_id` (the export tool's CSV has no request_id)",
        "ts": "`request_created_at`; else `response_created_at`",
        "account_id": "`request_user_id` (the Helicone-User-Id header); none without it: `--fill account_id=...`",
        "model": "`request_model`; else the request body's `model`; else `model` / `response_model`",
        "prompt": "the text of the last `user` message of the request body that has text (OpenAI or Anthropic); a string `input` or `prompt`",
        "system": "`system` / `developer` messages; Anthropic `system`; Responses `instructions`",
        "response": "the response body's first choice, Responses `output_text`, or Anthropic text blocks (JSON exports only)",
        "input_tokens": "the response body's usage (Anthropic: input plus cache read and write tokens); else `prompt_tokens`",
        "output_tokens": "the response body's usage; else `completion_tokens`",
        "reasoning_tokens": "the response body's `completion_tokens_details.reasoning_tokens` / "
                            "`output_tokens_details.reasoning_tokens`; else a `reasoning_tokens` column",
        "max_tokens": "the request body's `max_tokens` / `max_completion_tokens` / `max_output_tokens`",
        "temperature": "the request body's `temperature`",
        "logprobs": "the request body's `logprobs`, or `top_logprobs` > 0",
        "n": "the request body's `n`",
        "thinking": "the request body's `reasoning_effort` / `reasoning.effort` (not none) or Anthropic `thinking.type`",
        "tools": "the number of `tools` in the request body",
        "conversation_id": "the `Helicone-Session-Id` property (`request_properties`); else a Responses `conversation`",
        "status": "`response_status` 429: rate_limited, other 4xx/5xx or negative (no response): error; a content "
                  "filter or refusal in the body: refused; an error body: error; else ok",
        "ip_country": "`country_code` (XX and T1 left empty)",
    },
)
