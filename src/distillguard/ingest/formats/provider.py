"""A provider API's own logs (openai.py, anthropic.py): three record shapes, told apart by
their keys.

  a log record      {"request": {...}, "response": {...}, ...}: the request body and the
                    response (`request_body` / `response_body` also read). Any contract
                    field at the top level (account_id, ts, client_ip, ...) wins.
  a batch request   {"custom_id", <the body's key>: {...}}: one request of a batch
  a batch result    {"custom_id", <the result's keys>}: its result, paired with the
                    request by custom_id (base.combined_sql)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from distillguard.engine import literal
from distillguard.ingest.formats.base import LogFormat
from distillguard.ingest.formats.chat import issued_blobs, merged, messages, request_fields, response_fields
from distillguard.ingest.formats.jsonsql import field, reasoning_blobs, scalar, time_text
from distillguard.schema.contract import EVENTS

LOG_KEYS = ("$.request", "$.request_body", "$.response", "$.response_body")


def envelope_fields(j: str) -> dict[str, str]:
    """Contract fields a log record carries at its top level (they win over the bodies')."""
    fields = {f.name: scalar(j, f"$.{f.name}") for f in EVENTS.fields}
    fields["ts"] = time_text(scalar(j, "$.ts", "$.timestamp", "$.created_at"))
    return fields


def _present(*paths: str) -> str:
    return "(" + " OR ".join(f"json_extract(_j, {literal(p)}) IS NOT NULL" for p in paths) + ")"


def provider_log(*, name: str, title: str, about: str, detect: Callable[[Mapping[str, Any]], bool],
                 batch_body: str, batch_result: tuple[str, ...], result_body: str, note: str,
                 first: Mapping[str, str], last: Mapping[str, str], sources: Mapping[str, str]) -> LogFormat:
    """batch_body: the path of a batch request's body; batch_result: paths one of which a
    result line has; result_body: the path of the response in it. first: field SQL that
    wins over the bodies' (a batch's status); last: field SQL for what they leave empty."""
    kind = (f"CASE WHEN {_present('$.custom_id')} AND {_present(batch_body)} THEN 'batch_request' "
            f"WHEN {_present('$.custom_id')} AND {_present(*batch_result)} THEN 'batch_result' "
            f"WHEN {_present(*LOG_KEYS)} THEN 'log' END")
    return LogFormat(
        name=name, title=title, about=about, detect=detect,
        layers=(
            {"_kind": kind},
            {"_req": f"CASE _kind WHEN 'batch_request' THEN {field('_j', batch_body)} "
                     f"WHEN 'log' THEN {field('_j', '$.request', '$.request_body')} END",
             "_resp": f"CASE _kind WHEN 'batch_result' THEN {field('_j', result_body)} "
                      f"WHEN 'log' THEN {field('_j', '$.response', '$.response_body')} END"},
            {"_msgs": messages("_req")},
        ),
        role="CASE _kind WHEN 'batch_request' THEN 'request' WHEN 'batch_result' THEN 'response' "
             "WHEN 'log' THEN 'exchange' ELSE 'unrecognized' END",
        key="json_extract_string(_j, '$.custom_id')",
        note=literal(note),
        fields=merged(envelope_fields("_j"), dict(first), request_fields("_req", "_msgs"), response_fields("_resp"),
                      dict(last)),
        issued=issued_blobs("_resp"),
        replayed=reasoning_blobs("_msgs"),
        sources=sources,
    )
