"""The parser, scoring and rewards: hand cases and hypothesis properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_spatial.tasks import generate_questions, markdown_table, parse_answer, score, summarize, wilson_interval
from hf_spatial.tasks.balance import balance_answers
from hf_spatial.tasks.parsing import option_texts
from hf_spatial.tasks.rewards import accuracy_reward, evidence_reward, evidence_score, format_reward
from tests.scene_factory import random_scene

OPTIONS = ["dog", "farm animal", "1.8 m", "-35 degrees"]


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B", "B"),
        ("(B)", "B"),
        (" b. ", "B"),
        ("The answer is B.", "B"),
        ("Answer: (C)", "C"),
        ("<answer>B</answer>", "B"),
        ("<think>the dog is left, so D is wrong</think>\n<answer> (A) </answer>", "A"),
        ("<answer>farm animal</answer>", "B"),
        ("It is the farm animal.", "B"),
        ("dog", "A"),
        ("-35 degrees", "D"),
        ("The answer is a dog", "A"),  # "a" is an article, the option text decides
        ("A or B", None),
        ("The answer is B, or maybe (C)", None),
        ("35 degrees", None),  # not -35
        ("animal", None),
        ("", None),
        ("I cannot tell.", None),
        ([{"role": "assistant", "content": "The answer is D."}], "D"),
    ],
)
def test_parser_hand_cases(text, letter):
    assert parse_answer(text, OPTIONS) == letter


def test_option_text_inside_another_does_not_count():
    assert parse_answer("the farm animal", ["animal", "farm animal", "bell", "bird"]) == "B"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.lists(st.text(max_size=20), min_size=0, max_size=4))
def test_parser_never_raises(text, options):
    assert parse_answer(text, options) in (None, "A", "B", "C", "D")


def _items(seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return generate_questions(random_scene(rng, f"s{seed}"), seed)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_gold_text_parses_to_gold_letter_and_shuffling_moves_it(seed):
    for item in _items(seed):
        assert parse_answer(item["answer_text"], item) == item["answer_letter"]
        assert (
            parse_answer(f"<think>...</think><answer>{item['answer_letter']}</answer>", item) == item["answer_letter"]
        )
        texts = list(option_texts(item).values())
        order = np.random.default_rng(seed).permutation(4)
        shuffled = [texts[i] for i in order]
        new_letter = "ABCD"[shuffled.index(item["answer_text"])]
        assert parse_answer(item["answer_text"], shuffled) == new_letter


def test_option_order_depends_on_seed_only():
    rng = np.random.default_rng(0)
    scene = random_scene(rng, "x")
    letters = {
        item["answer_letter"] for seed in range(30) for item in generate_questions(scene, seed, ["l1_count_sources"])
    }
    assert letters == set("ABCD")


def _kwargs(items):
    return {key: [item[key] for item in items] for key in items[0]}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(st.text(), st.lists(st.fixed_dictionaries({"role": st.just("assistant"), "content": st.text()}))),
        min_size=1,
        max_size=4,
    )
)
def test_rewards_never_raise_and_stay_in_unit_interval(completions):
    items = (_items(1) * 4)[: len(completions)]
    kwargs = _kwargs(items)
    for reward in (accuracy_reward, format_reward, evidence_reward):
        values = reward(prompts=["p"] * len(completions), completions=completions, **kwargs)
        assert len(values) == len(completions)
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values)


def test_rewards_hand_cases():
    item = {"answer_letter": "B", "option_a": "x", "option_b": "y", "option_c": "z", "option_d": "w"}
    item["evidence"] = '{"azimuth_deg": [170.0], "distance_m": [2.0]}'
    kwargs = _kwargs([item] * 4)
    completions = [
        "<think>It is behind-left at -175 deg, 2.2 m away.</think><answer>B</answer>",
        "<answer>B</answer>",
        [{"role": "assistant", "content": "The answer is A"}],
        "<think>90 degrees, 5 m</think><answer>C</answer>",
    ]
    assert accuracy_reward(None, completions, **kwargs) == [1.0, 1.0, 0.0, 0.0]
    assert format_reward(None, completions, **kwargs) == [1.0, 0.5, 0.0, 1.0]
    assert evidence_reward(None, completions, **kwargs) == [1.0, 0.0, 0.0, 0.0]
    # One of two facts stated, plus one wrong number: recall 1/2, precision 1/2.
    assert evidence_score(
        "170 degrees and 9 m and 2.1 m... no, 40 deg", '{"azimuth_deg": [170], "distance_m": [2]}'
    ) == pytest.approx(2 * (1.0 * 0.5) / 1.5)
    with pytest.raises(ValueError, match="answer_letter"):
        accuracy_reward(None, ["A"], option_a=["x"])


def test_wilson_interval_hand_values():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and high == pytest.approx(0.1611, abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_scoring_per_task_level_and_overall():
    items = [
        {
            "task": "l1_a",
            "level": 1,
            "answer_letter": "A",
            "option_a": "x",
            "option_b": "y",
            "option_c": "z",
            "option_d": "w",
        },
        {
            "task": "l1_a",
            "level": 1,
            "answer_letter": "B",
            "option_a": "x",
            "option_b": "y",
            "option_c": "z",
            "option_d": "w",
        },
        {
            "task": "l2_b",
            "level": 2,
            "answer_letter": "C",
            "option_a": "x",
            "option_b": "y",
            "option_c": "z",
            "option_d": "w",
        },
    ]
    records = score(items, ["A", "no idea", "<answer>z</answer>"])
    assert [r["correct"] for r in records] == [True, False, True]
    assert [r["predicted_letter"] for r in records] == ["A", None, "C"]
    summary = summarize(records)
    assert summary["overall"]["correct"] == 2 and summary["overall"]["n"] == 3
    assert summary["tasks"]["l1_a"]["accuracy"] == 0.5
    assert summary["levels"][2]["accuracy"] == 1.0
    assert summary["overall"]["chance"] == 0.25
    assert "| overall | 3 | 66.7 |" in markdown_table(summary)
    with pytest.raises(ValueError, match="align"):
        score(items, ["A"])


def test_balance_caps_dominant_answers():
    items = [{"task": "t", "answer_text": text} for text in ["1"] * 60 + ["2"] * 30 + ["3"] * 10]
    balanced = balance_answers(items, seed=0)
    counts = {t: sum(i["answer_text"] == t for i in balanced) for t in "123"}
    assert counts == {"1": 10, "2": 10, "3": 10}  # three answers cannot stay under 27% share: equalised
    many = [{"task": "t", "answer_text": str(i % 5)} for i in range(100)] + [{"task": "t", "answer_text": "0"}] * 50
    kept = balance_answers(many, seed=0)
    assert max(sum(i["answer_text"] == t for i in kept) for t in "01234") <= 0.27 * len(kept)
