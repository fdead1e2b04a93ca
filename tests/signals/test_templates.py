"""Template keys and the near-duplicate sketch, on prompts whose answer is known by
construction. Each test sends its prompts through the engine in one query (the
generated SQL is large; planning it costs more than running it on a few rows)."""

from __future__ import annotations

import random
import string

import pyarrow as pa
import pytest

from distillguard.engine import Engine
from distillguard.signals.templates import (
    BANDS, KEY_TOKENS, SKETCH_CHARS, collision_probability, minhash_bands_sql,
    normalize_sql, signatures_sql, template_keys_sql,
)


@pytest.fixture(scope="module")
def engine():
    with Engine.open() as e:
        yield e


def signatures(engine: Engine, prompts: list[str | None]) -> list[dict]:
    """Per prompt: normalised text, head and tail keys, sketch (list of band keys)."""
    engine.register("test_prompts", pa.table({"i": pa.array(range(len(prompts)), pa.int64()),
                                              "p": pa.array(prompts, pa.string())}))
    try:
        keys = template_keys_sql("p")
        rows = engine.rows(f"""SELECT {normalize_sql('p')}, {keys['template_head']}, {keys['template_tail']},
                                      {minhash_bands_sql('p')}
                               FROM test_prompts ORDER BY i""")
    finally:
        engine.unregister("test_prompts")
    return [dict(zip(("norm", "head", "tail", "sketch"), r)) for r in rows]


def words(rng: random.Random, n: int) -> list[str]:
    """n made-up lower-case words (letters only: a digit would be masked)."""
    return ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9))) for _ in range(n)]


def shares_band(a: list[int], b: list[int]) -> bool:
    return bool(set(a) & set(b))


QUESTIONS = [
    "A train leaves at noon at sixty miles per hour; when does it reach the city two hundred miles away?",
    "Why is the sky blue?",
    "Prove that the square root of two is irrational, and explain each step for a beginner.",
]
SLOT_AT_END = ("Solve the following problem. Before answering, write out your complete internal reasoning, "
               "including false starts.\n\n{q}")
SLOT_AT_START = "{q}\n\nThink aloud and explain your reasoning in detail before giving the final answer."
OTHER_END = ("Rate the response below from 1 to 10 for correctness and clarity, then justify the score "
             "briefly.\nQuestion: {q}")


def test_slot_at_the_end_shares_the_head_and_slot_at_the_start_the_tail(engine):
    prompts = [SLOT_AT_END.format(q=q) for q in QUESTIONS] + [SLOT_AT_START.format(q=q) for q in QUESTIONS]
    s = signatures(engine, prompts)
    end, start = s[:3], s[3:]
    assert len({r["head"] for r in end}) == 1 and None not in {r["head"] for r in end}
    assert len({r["tail"] for r in end}) == 3
    assert len({r["tail"] for r in start}) == 1 and None not in {r["tail"] for r in start}
    assert len({r["head"] for r in start}) == 3


def test_different_templates_have_different_keys(engine):
    q = QUESTIONS[0]
    s = signatures(engine, [SLOT_AT_END.format(q=q), OTHER_END.format(q=q), SLOT_AT_START.format(q=q)])
    assert len({r["head"] for r in s}) == 3
    assert len({r["tail"] for r in s}) == 2  # the first two end on the same question
    assert s[0]["tail"] == s[1]["tail"] != s[2]["tail"]


def test_numbers_urls_and_emails_are_masked(engine):
    s = signatures(engine, [
        "Question 17 of 500: what is 3.14 times 12? Reply by 2025-11-03 12:30, "
        "see https://ex.com/a?id=9 or mail ann@ex.org",
        "Question 242 of 500: what is 2.71 times 7? Reply by 2026-01-15 08:05, "
        "see http://other.net/b or mail bob.li@corp.example.com",
        "QUESTION 9 OF 1000:   what is 1 times 1?\n\nReply by 1999-01-01 00:00, see www.x.io/y or mail x_y@z.co",
    ])
    assert s[0]["norm"] == s[1]["norm"] == s[2]["norm"] == \
        "question 0 of 0 what is 0 times 0? reply by 0 0 see <url> or mail <email>"
    assert s[0]["head"] == s[1]["head"] == s[2]["head"] is not None
    assert s[0]["sketch"] == s[1]["sketch"] == s[2]["sketch"]
    ids = signatures(engine, ["Record 550e8400-e29b-41d4-a716-446655440000 failed with code 0x1f, hash a3f9c2e1",
                              "Record 123e4567-e89b-12d3-a456-426614174000 failed with code 0x2a, hash 9b8e7d6c"])
    assert ids[0]["norm"] == ids[1]["norm"] == "record 0 failed with code 0 hash 0"


def test_short_prompts_have_no_template_keys(engine):
    short = " ".join(["word"] * (2 * KEY_TOKENS - 1))
    s = signatures(engine, [short, short + " more", "hi", "Why is the sky blue?"])
    assert s[0]["head"] is None and s[0]["tail"] is None
    assert s[1]["head"] is not None and s[1]["tail"] is not None
    assert all(r["head"] is None and r["tail"] is None for r in s[2:])


def test_null_empty_and_blank_prompts(engine):
    s = signatures(engine, [None, "", "   \n\t ", "one two"])
    assert s[0] == {"norm": None, "head": None, "tail": None, "sketch": None}
    for r in s[1:3]:
        assert r == {"norm": "", "head": None, "tail": None, "sketch": []}
    assert s[3]["sketch"] == []  # no 3-gram in two tokens


def test_a_long_prompt_keeps_its_tail(engine):
    """Past SKETCH_CHARS the tail key is read from the end of the prompt: a long
    question in a slot-at-start template still matches a short one."""
    long_q = " ".join(words(random.Random(1), 400))
    assert len(long_q) > 2 * SKETCH_CHARS
    s = signatures(engine, [SLOT_AT_START.format(q=long_q), SLOT_AT_START.format(q=QUESTIONS[2])])
    assert s[0]["tail"] == s[1]["tail"] is not None


def test_chinese_and_russian(engine):
    zh_tpl = "请解答下面的问题。回答之前，完整写出你内部的推理过程，包括走过的弯路以及如何纠正。\n\n{q}"
    zh_q = ["一列火车中午出发，每小时行驶六十公里，几点到达？", "为什么天空是蓝色的？请详细说明。"]
    ru_tpl = "{q}\n\nПодумай вслух и подробно объясни свои рассуждения, прежде чем дать окончательный ответ."
    ru_q = ["Почему небо голубое днём, а закат красный?", "Докажите, что корень из двух иррационален."]
    zh_text = "我在学习机器学习的时候遇到了一个问题，模型在训练集上表现很好，但是在测试集上表现很差，这是什么原因，应该怎么解决？"
    ru_text = ("Я изучаю машинное обучение и столкнулся с проблемой: модель отлично работает на обучающей выборке, "
               "но плохо на тестовой. В чём причина и как это исправить? Приведи несколько способов и объясни каждый.")
    s = signatures(engine, [zh_tpl.format(q=q) for q in zh_q] + [ru_tpl.format(q=q) for q in ru_q]
                   + [zh_text, zh_text.replace("很差", "不好"), ru_text, ru_text.replace("отлично", "хорошо")])
    assert s[0]["head"] == s[1]["head"] is not None and s[0]["tail"] != s[1]["tail"]
    assert s[2]["tail"] == s[3]["tail"] is not None and s[2]["head"] != s[3]["head"]
    assert s[0]["norm"].startswith("请 解 答 下 面 的 问 题 。")
    assert s[2]["norm"].startswith("почему небо голубое днём, а закат красный? подумай")
    assert shares_band(s[4]["sketch"], s[5]["sketch"])
    assert shares_band(s[6]["sketch"], s[7]["sketch"])
    assert not shares_band(s[4]["sketch"], s[6]["sketch"])


def test_one_changed_word_in_forty_shares_a_band(engine):
    rng = random.Random(7)
    prompts = []
    for _ in range(50):
        w = words(rng, 40)
        changed = list(w)
        changed[rng.randrange(40)] = "zzzz"
        prompts += [" ".join(w), " ".join(changed)]
    s = signatures(engine, prompts)
    assert all(len(r["sketch"]) == BANDS for r in s)
    assert all(shares_band(s[i]["sketch"], s[i + 1]["sketch"]) for i in range(0, len(s), 2))


def test_the_s_curve_holds_on_pairs_of_known_jaccard(engine):
    """Pairs of 42-token prompts of distinct words (40 distinct 3-grams each) that
    share their first m tokens, hence m - 2 shingles: Jaccard 33/47 = 0.70 and
    18/62 = 0.29. Designed: P = 0.92 and 0.029; asserted with room for sampling."""
    rng = random.Random(11)
    pairs = {33: [], 18: []}
    prompts = []
    for shared in pairs:
        for _ in range(300):
            w = words(rng, 42 + 42)
            a, b = w[:42], w[:shared + 2] + w[42:42 + 40 - shared]
            assert len(set(a)) == 42 and len(b) == 42
            pairs[shared].append(len(prompts))
            prompts += [" ".join(a), " ".join(b)]
    s = signatures(engine, prompts)
    rate = {m: sum(shares_band(s[i]["sketch"], s[i + 1]["sketch"]) for i in idx) / len(idx) for m, idx in pairs.items()}
    assert collision_probability(33 / 47) > 0.9 and collision_probability(18 / 62) < 0.05
    assert rate[33] >= 0.87, rate
    assert rate[18] <= 0.05, rate


def test_unrelated_prompts_share_no_band(engine):
    rng = random.Random(3)
    s = signatures(engine, [" ".join(words(rng, rng.randint(5, 60))) for _ in range(300)])
    hits = sum(shares_band(s[i]["sketch"], s[j]["sketch"]) for i in range(300) for j in range(i + 1, 300))
    assert hits / (300 * 299 / 2) <= 0.001


def test_signatures_table_equals_the_expressions(engine):
    """signatures_sql is the fast path for a scan: the same keys, once per distinct prompt."""
    rng = random.Random(5)
    prompts = [SLOT_AT_END.format(q=q) for q in QUESTIONS] + [SLOT_AT_START.format(q=q) for q in QUESTIONS]
    prompts += [" ".join(words(rng, rng.randint(0, 80))) for _ in range(40)]
    prompts += ["我在学习机器学习的时候遇到了一个问题", "Почему небо голубое?", "", "  ", "hi", None, None]
    prompts += prompts[:10]  # repeats
    engine.register("sig_events", pa.table({"prompt": pa.array(prompts, pa.string())}))
    try:
        table = engine.rows(f"""SELECT e.prompt, s.template_head, s.template_tail, s.sketch FROM sig_events e
                                LEFT JOIN ({signatures_sql('sig_events')}) s ON s.text_hash = hash(e.prompt)""")
        count = engine.rows(f"SELECT count(*), count(DISTINCT text_hash) FROM ({signatures_sql('sig_events')})")
    finally:
        engine.unregister("sig_events")
    expected = {p: (r["head"], r["tail"], r["sketch"]) for p, r in zip(prompts, signatures(engine, prompts))}
    assert {p: (h, t, k) for p, h, t, k in table} == expected | {None: (None, None, None)}
    assert count == [(len(set(prompts) - {None}),) * 2]


def test_designed_s_curve():
    assert collision_probability(0.7) >= 0.9
    assert collision_probability(0.3) <= 0.05
    assert collision_probability(0.0) == 0.0 and collision_probability(1.0) == 1.0
    with pytest.raises(ValueError):
        collision_probability(1.5)
