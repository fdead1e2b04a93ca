"""What `degrade` takes from a request and a reply, and the per-account canary of `mark`."""

from __future__ import annotations

import json

import pytest

from distillguard.gateway.degrade import SUMMARIZED, degrade_request, degrade_response, summarize_reasoning
from distillguard.gateway.marking import TagCanary
from distillguard.gateway.policy import Degrade

TRACE = ("First, restate the problem. We need x such that 3x + 4 = 19.\n\n"
         "Subtract four from both sides. That leaves 3x = 15, which I double-check by adding back.\n\n"
         "Divide by three! So x = 5, and 3*5+4 = 19 holds.")


def test_a_degraded_request_loses_logprobs_extra_samples_and_replayable_reasoning():
    body = {"model": "m", "logprobs": True, "top_logprobs": 5, "n": 8, "temperature": 1.0,
            "include": ["reasoning.encrypted_content", "file_search_call.results"],
            "reasoning": {"effort": "high"}}
    out = degrade_request(body, Degrade())
    assert out == {"model": "m", "n": 1, "temperature": 1.0, "include": ["file_search_call.results"],
                   "reasoning": {"effort": "high", "summary": "auto"}}
    assert body["n"] == 8  # the caller's dict is left as it was


def test_a_degraded_reply_carries_an_extract_of_the_reasoning_and_nothing_replayable():
    reply = {"choices": [
        {"index": i, "logprobs": {"content": []},
         "message": {"content": "x = 5", "reasoning_content": TRACE,
                     "thinking_blocks": [{"type": "thinking", "thinking": TRACE, "signature": "sig"},
                                         {"type": "redacted_thinking", "data": "opaque"}]}} for i in range(3)]}
    out = degrade_response(reply, Degrade())
    assert len(out["choices"]) == 1 and "logprobs" not in out["choices"][0]
    message = out["choices"][0]["message"]
    assert message["content"] == "x = 5"
    assert message["reasoning_content"] == ("First, restate the problem. Subtract four from both sides. "
                                            "Divide by three!" + SUMMARIZED)
    assert message["thinking_blocks"] == [{"type": "thinking", "thinking": message["reasoning_content"]}]
    assert "sig" not in json.dumps(out) and "opaque" not in json.dumps(out)


def test_a_summary_is_bounded_however_long_the_trace():
    assert len(summarize_reasoning("A very long first sentence " * 500 + ".")) <= 600 + len(SUMMARIZED)
    assert summarize_reasoning("") == ""


def test_a_canary_names_the_account_only_to_the_key_holder_and_renders_as_nothing():
    canary = TagCanary(b"marking-test-key-not-a-secret")
    marked = canary.mark("The answer is 5. It follows from the equation.", "acct-7")
    assert marked.encode("ascii", "ignore").decode() == "The answer is 5. It follows from the equation."
    assert marked.startswith("The answer is 5.") and canary.find(marked) == [canary.tag("acct-7")]
    assert canary.attribute(marked, ["acct-1", "acct-7", "acct-9"]) == ["acct-7"]
    assert TagCanary(b"another-key-entirely-0000").attribute(marked, ["acct-7"]) == []
    assert canary.find(json.loads(json.dumps({"text": marked}))["text"]) == [canary.tag("acct-7")]


def test_a_short_marking_key_is_refused():
    with pytest.raises(ValueError, match="at least 16 bytes"):
        TagCanary(b"short")
