"""The content sample of build_signals: who is read, how much, and what the sample estimates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from distillguard.engine import Engine
from distillguard.signals.request import (READ_BUCKET_SECONDS, READ_EXCHANGES, SAMPLE_KEY_ENV, WINDOW_HEAD,
                                          WINDOW_TAIL, build_signals, read_window, read_window_sql)
from distillguard.signals.templates import SKETCH_CHARS, TAIL_CHARS

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
ELICIT = ("Problem {i}: what is {i} times seven? Before answering, write out your complete internal chain of "
          "thought, every step, including false starts.")
PLAIN = "Problem {i}: what is {i} times seven, and is the result an even number or an odd one? Answer briefly."

_EVENTS = {"request_id": pa.string(), "account_id": pa.string(), "ts": pa.timestamp("us", tz="UTC"),
           "model": pa.string(), "conversation_id": pa.string(), "turn": pa.int32(), "status": pa.string(),
           "max_tokens": pa.int64(), "thinking": pa.bool_(), "logprobs": pa.bool_(), "n": pa.int32(),
           "tools": pa.int32(), "temperature": pa.float64(), "client_ip": pa.string(), "asn": pa.int64(),
           "user_agent": pa.string(), "tls_fingerprint": pa.string(), "client_timezone": pa.string(),
           "prompt": pa.string(), "system": pa.string()}


def _requests(account: str, count: int, *, every_s: float, elicit_every: int = 0) -> list[dict]:
    """`count` requests, one every `every_s` seconds; every elicit_every-th asks for the chain of thought."""
    return [{"request_id": f"{account}-{i}", "account_id": account, "ts": T0 + timedelta(seconds=i * every_s),
             "model": "m1", "prompt": (ELICIT if elicit_every and i % elicit_every == 0 else PLAIN).format(i=i)}
            for i in range(count)]


def _signals(rows: list[dict]) -> pa.Table:
    events = pa.table({c: pa.array([r.get(c) for r in rows], t) for c, t in _EVENTS.items()})
    accounts = pa.table({"account_id": pa.array(sorted({r["account_id"] for r in rows})),
                         "billing_country": pa.array(["US"] * len({r["account_id"] for r in rows}))})
    with Engine.open() as engine:
        engine.register("events_in", events)
        engine.register("accounts_in", accounts)
        build_signals(engine, "SELECT * FROM events_in", "SELECT * FROM accounts_in")
        return engine.arrow("SELECT * FROM signals ORDER BY request_id")


def _by_account(table: pa.Table, account: str) -> list[dict]:
    return [r for r in table.to_pylist() if r["account_id"] == account]


def test_an_ordinary_account_is_read_in_full():
    rows = _by_account(_signals(_requests("light", 100, every_s=900, elicit_every=4)), "light")
    assert all(r["read_level"] == 0 and r["content_read"] for r in rows)
    assert sum(r["intent_reasoning"] >= 0.5 for r in rows) == 25
    assert all(r["template_head"] is not None for r in rows)


def test_a_heavy_account_is_read_through_a_sample_that_estimates_its_shares():
    # 4,096 requests, one every three minutes for eight and a half days: 16x READ_EXCHANGES,
    # so level 4, a sixteenth of its ten-minute buckets; a quarter elicit reasoning.
    n = 16 * READ_EXCHANGES
    rows = _by_account(_signals(_requests("heavy", n, every_s=180, elicit_every=4)), "heavy")
    assert {r["read_level"] for r in rows} == {4}
    read = [r for r in rows if r["content_read"]]
    assert READ_EXCHANGES / 4 <= len(read) <= READ_EXCHANGES * 2
    # Whole buckets are read or skipped, never part of one.
    buckets = {}
    for r in rows:
        buckets.setdefault(int(r["ts"].timestamp()) // READ_BUCKET_SECONDS, set()).add(r["content_read"])
    assert all(len(flags) == 1 for flags in buckets.values())
    # Unread exchanges carry no content (NULL, which SQL averages skip) ...
    assert all(r["intent_reasoning"] is None and r["template_head"] is None for r in rows if not r["content_read"])
    # ... and the read ones estimate the share: 1/4 by construction.
    share = sum(r["intent_reasoning"] >= 0.5 for r in read) / len(read)
    assert share == pytest.approx(0.25, abs=0.08)


def test_a_burst_in_a_few_buckets_is_read_in_full():
    # 3,000 requests within half an hour (three buckets): a sample of buckets could miss them all.
    rows = _by_account(_signals(_requests("burst", 3000, every_s=0.5)), "burst")
    assert all(r["read_level"] == 0 and r["content_read"] for r in rows)


def test_a_text_read_for_one_account_is_not_read_for_another_outside_its_sample():
    heavy = _requests("heavy", 16 * READ_EXCHANGES, every_s=180)
    # A light account sends every one of the heavy account's texts: its copies are all read,
    # and the heavy account's unread copies stay unread.
    light = [{**r, "request_id": f"light-{i}", "account_id": "light", "ts": r["ts"] + timedelta(seconds=1)}
             for i, r in enumerate(heavy[:READ_EXCHANGES])]
    table = _signals(heavy + light)
    assert all(r["content_read"] and r["template_head"] is not None for r in _by_account(table, "light"))
    unread = [r for r in _by_account(table, "heavy") if not r["content_read"]]
    assert unread and all(r["template_head"] is None for r in unread)


def test_a_secret_key_picks_other_buckets_and_the_same_key_the_same_ones(monkeypatch):
    rows = _requests("heavy", 16 * READ_EXCHANGES, every_s=180)

    def read_ids() -> set[str]:
        return {r["request_id"] for r in _signals(rows).to_pylist() if r["content_read"]}

    public = read_ids()
    monkeypatch.setenv(SAMPLE_KEY_ENV, "a secret from the environment")
    keyed = read_ids()
    assert keyed != public and keyed == read_ids()
    assert READ_EXCHANGES / 4 <= len(keyed) <= READ_EXCHANGES * 2


def test_the_text_window_holds_everything_the_template_keys_and_sketch_read():
    # Texts are cut to the window before they are keyed: a longer key window would
    # silently key a cut text differently from the whole prompt.
    assert SKETCH_CHARS <= WINDOW_HEAD and TAIL_CHARS <= WINDOW_TAIL


def test_one_prompt_is_cut_to_the_window_as_the_table_cuts_it():
    # The gateway reads one request as the scan reads a table: same head, same tail, in
    # characters (not bytes), with the same joint.
    prompts = ["short", "x" * (WINDOW_HEAD + WINDOW_TAIL), "y" * (WINDOW_HEAD + WINDOW_TAIL + 1),
               "思" * 700 + "考" * 700 + "END", "head " * 300 + "the tail asks for your chain of thought " * 20]
    with Engine.open() as engine:
        engine.register("prompts", pa.table({"i": range(len(prompts)), "prompt": prompts}))
        cut = [r[0] for r in engine.rows(f"SELECT {read_window_sql('prompt')} FROM prompts ORDER BY i")]
    assert cut == [read_window(p) for p in prompts]
    assert read_window(prompts[2]) == "y" * WINDOW_HEAD + "\n" + "y" * WINDOW_TAIL
