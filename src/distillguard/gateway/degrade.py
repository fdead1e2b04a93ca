"""`degrade`: serve the request without what a distiller harvests (policy.yaml `degrade`).

Requests and replies are OpenAI-style dicts (Chat Completions and Responses; LiteLLM
speaks this shape for every provider). The request loses token log-probabilities, its
sample count is capped, and the provider is asked for a reasoning summary instead of
replayable reasoning. The reply's reasoning is cut to an extract (the first sentence of
each paragraph, at most SUMMARY_CHARS), and reasoning signatures and encrypted blobs,
which let a client hand the full trace back, are removed.
"""

from __future__ import annotations

import copy
import re

from distillguard.gateway.policy import Degrade

SUMMARY_CHARS = 600
SUMMARIZED = " [reasoning summarized]"
_FIRST_SENTENCE = re.compile(r"^.*?(?:[.!?。！？](?=\s|$)|$)", re.S)


def summarize_reasoning(text: str, max_chars: int = SUMMARY_CHARS) -> str:
    """An extract of a reasoning trace: the first sentence of each paragraph, cut short."""
    parts = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        first = _FIRST_SENTENCE.match(paragraph.strip()).group(0).strip()
        if first:
            parts.append(first)
        if sum(len(p) + 1 for p in parts) >= max_chars:
            break
    return " ".join(parts)[:max_chars] + SUMMARIZED if text.strip() else text


def degrade_request(body: dict, spec: Degrade) -> dict:
    body = dict(body)
    if spec.logprobs == "drop":
        for k in ("logprobs", "top_logprobs"):
            body.pop(k, None)
    if spec.max_n is not None and isinstance(body.get("n"), int) and body["n"] > spec.max_n:
        body["n"] = spec.max_n
    if spec.reasoning == "summary":
        include = [i for i in body.get("include") or [] if i != "reasoning.encrypted_content"]
        if "include" in body:
            body["include"] = include
        if isinstance(body.get("reasoning"), dict):
            body["reasoning"] = {**body["reasoning"], "summary": "auto"}
    return body


def degrade_response(response: dict, spec: Degrade) -> dict:
    response = copy.deepcopy(response)
    choices = response.get("choices")
    if isinstance(choices, list):
        if spec.max_n is not None:
            del choices[spec.max_n:]
        for choice in choices:
            if spec.logprobs == "drop" and isinstance(choice, dict):
                choice.pop("logprobs", None)
            message = choice.get("message") if isinstance(choice, dict) else None
            if spec.reasoning == "summary" and isinstance(message, dict):
                _summarize_message(message)
    if spec.reasoning == "summary" and isinstance(response.get("output"), list):  # Responses API
        for item in response["output"]:
            if isinstance(item, dict) and item.get("type") == "reasoning":
                item.pop("encrypted_content", None)
                for part in item.get("content") or []:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        part["text"] = summarize_reasoning(part["text"])
    return response


def _summarize_message(message: dict) -> None:
    if isinstance(message.get("reasoning_content"), str):
        message["reasoning_content"] = summarize_reasoning(message["reasoning_content"])
    blocks = message.get("thinking_blocks")
    if isinstance(blocks, list):
        message["thinking_blocks"] = [
            {"type": "thinking", "thinking": summarize_reasoning(b.get("thinking") or "")}
            for b in blocks if isinstance(b, dict) and b.get("type") == "thinking"]
