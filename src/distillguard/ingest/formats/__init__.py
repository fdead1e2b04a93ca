"""The log formats ingest reads besides the contract's own (`ingest --format`).

    otel       OpenTelemetry GenAI spans (OTLP/JSON)
    litellm    LiteLLM proxy spend logs and StandardLoggingPayload callbacks
    langfuse   Langfuse exports: GENERATION observations with their traces
    helicone   Helicone request exports
    openai     OpenAI Chat Completions / Responses logs, Batch API input and output
    anthropic  Anthropic Messages logs, Message Batches requests and results

`--format auto` looks at each file's first record and picks the first format (the
contract first) whose detect() accepts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

from distillguard.ingest.formats.base import LogFormat
from distillguard.schema.contract import EVENTS

CONTRACT = "contract"
AUTO = "auto"
# In the order auto-detection tries them: the more specific shapes first.
NAMES = ("otel", "langfuse", "litellm", "helicone", "anthropic", "openai")
CHOICES = (AUTO, CONTRACT, *NAMES)


def log_format(name: str) -> LogFormat:
    if name not in NAMES:
        raise ValueError(f"unknown log format {name!r}; known: {', '.join(CHOICES)}")
    return import_module(f"distillguard.ingest.formats.{name}").FORMAT


def is_contract(record: Mapping[str, Any]) -> bool:
    """A record with every required contract field is the contract's own format."""
    return all(f.name in record for f in EVENTS.required)


def detect(record: Mapping[str, Any]) -> str | None:
    """The name of the format a file's first record is in (contract included); None if none."""
    if is_contract(record):
        return CONTRACT
    for name in NAMES:
        try:
            if log_format(name).detect(record):
                return name
        except (AttributeError, TypeError, ValueError):  # an odd record is just not that format
            continue
    return None


__all__ = ["AUTO", "CHOICES", "CONTRACT", "NAMES", "LogFormat", "detect", "is_contract", "log_format"]
