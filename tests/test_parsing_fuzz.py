"""Property-based tests of the answer parser and the GRPO rewards on arbitrary text: they never raise, rewards stay
in [0, 1], and time grows linearly with the input (measured as a ratio to a short input built the same way, up to
100k characters). The CI runs few examples; `pytest --run-slow` runs many more, unseeded."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hf_spatial.tasks.parsing import parse_answer
from hf_spatial.tasks.rewards import accuracy_reward, evidence_reward, format_reward

EXAMPLES = [pytest.param(30, id="ci"), pytest.param(1000, marks=pytest.mark.slow, id="long")]
OPTIONS = ["a dog barking", "front left", "1.5 m", "about 30 degrees"]
EVIDENCE = json.dumps({"azimuth_deg": [30.0], "distance_m": [1.5]})
SHORT_LENGTH = 1_000
MAX_LENGTH = 100_000
# Linear time gives a ratio near the length ratio (20-100 here); the slack absorbs timer noise and fixed costs.
# Quadratic time multiplies the ratio by the length ratio again.
TIME_SLACK = 6.0

# Pieces whose long repetitions made the old patterns backtrack: spaces after "answer", blank lines, unclosed tags,
# digit runs before a unit, and the tokens the letter patterns look for.
RUNS = [" ", "\n", "\t", "1", "1.", "-1", "answer ", "answer is ", "option ", "(", "[A", "<answer>", "</answer>",
        "<think>", "</think>", "A.", "\nB", "deg", " m", "°"]  # fmt: skip
PREFIXES = ["", "answer", "The answer is", "<answer>", "<think>", "z", "12"]
SUFFIXES = ["", "z", "B", " deg", " m", "</answer>", ")"]


def pieces() -> st.SearchStrategy[tuple[str, str, str]]:
    """(prefix, unit, suffix): the input is prefix + unit repeated + suffix, of any unicode."""
    return st.tuples(
        st.one_of(st.sampled_from(PREFIXES), st.text(max_size=12)),
        st.one_of(st.sampled_from(RUNS), st.text(min_size=1, max_size=6)),
        st.one_of(st.sampled_from(SUFFIXES), st.text(max_size=12)),
    )


def build(parts: tuple[str, str, str], length: int) -> str:
    prefix, unit, suffix = parts
    return prefix + unit * max(1, (length - len(prefix) - len(suffix)) // len(unit)) + suffix


def score_all(text: str, options=OPTIONS, evidence=EVIDENCE) -> list[float]:
    """Every reward of one completion, checking the parser's answer on the way."""
    letter = parse_answer(text, options)
    assert letter is None or letter in ("ABCD"[: len(options)] or "ABCD")  # without options: any letter A-D
    columns = {f"option_{c}": [option] for c, option in zip("abcd", options, strict=False)}
    rewards = accuracy_reward(None, [text], answer_letter=["A"], **columns)
    rewards += format_reward(None, [text])
    rewards += evidence_reward(None, [text], evidence=[evidence])
    return rewards


def best_time(text: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        score_all(text)
        times.append(time.perf_counter() - start)
    return min(times)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8,
)
evidence_cells = st.one_of(
    st.none(),
    st.text(max_size=40),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {},
        optional={
            key: st.one_of(json_values, st.lists(st.floats() | st.integers() | st.text(max_size=4), max_size=3))
            for key in ("azimuth_deg", "elevation_deg", "angle_deg", "distance_m")
        },
    ),
)
completions = st.one_of(
    st.text(max_size=300),
    st.builds(lambda text: {"role": "assistant", "content": text}, st.text(max_size=100)),
    st.builds(lambda text: [{"role": "assistant", "content": [{"type": "text", "text": text}]}], st.text(max_size=100)),
)


@pytest.mark.parametrize("examples", EXAMPLES)
def test_parser_and_rewards_never_raise_and_stay_in_range(examples):
    @settings(max_examples=examples, deadline=None, derandomize=examples < 100, database=None)
    @given(
        parts=pieces(),
        length=st.integers(1, MAX_LENGTH),
        options=st.lists(st.text(max_size=30), max_size=4),
        evidence=evidence_cells,
        completion=completions,
    )
    @example(parts=("", "<answer>", ""), length=MAX_LENGTH, options=OPTIONS, evidence="[1, 2]", completion="A")
    def check(parts, length, options, evidence, completion):
        for text in (build(parts, length), completion):
            rewards = score_all(text, options, evidence)
            assert all(0.0 <= reward <= 1.0 for reward in rewards), rewards

    check()


@pytest.mark.parametrize("examples", EXAMPLES)
def test_time_grows_linearly_with_the_input(examples):
    @settings(
        max_examples=max(10, examples // 3),
        deadline=None,
        derandomize=examples < 100,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(parts=pieces(), length=st.integers(20 * SHORT_LENGTH, MAX_LENGTH))
    # The inputs of the issue: spaces after "answer", blank lines, unclosed <answer> tags, a long digit run.
    @example(parts=("answer", " ", "z"), length=MAX_LENGTH)
    @example(parts=("z", "\n", "z"), length=MAX_LENGTH)
    @example(parts=("", "<answer>", ""), length=MAX_LENGTH)
    @example(parts=("", "1", ""), length=MAX_LENGTH)
    def check(parts, length):
        short, long = build(parts, SHORT_LENGTH), build(parts, length)
        ratio = best_time(long, 2) / best_time(short, 5)
        assert ratio <= TIME_SLACK * len(long) / len(short), (parts, len(long), ratio)

    check()
