"""Scoring multiple-choice answers: per item, per task, per level and overall, with 95% Wilson intervals."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hf_spatial.tasks.parsing import option_texts, parse_answer

Z_95 = 1.959963984540054


def wilson_interval(successes: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there are no trials."""
    if total < 0 or not 0 <= successes <= total:
        raise ValueError(f"Need 0 <= successes <= total, got {successes} of {total}.")
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Accuracy:
    """Accuracy of a group of items with its 95% Wilson interval and the chance level of guessing."""

    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    chance: float

    @classmethod
    def of(cls, records: Sequence[Mapping[str, Any]]) -> Accuracy:
        n = len(records)
        correct = sum(bool(r["correct"]) for r in records)
        low, high = wilson_interval(correct, n)
        chance = sum(1.0 / r["num_options"] for r in records) / n if n else 0.0
        return cls(n, correct, correct / n if n else 0.0, low, high, chance)


def score_item(item: Mapping[str, Any], response: Any) -> dict[str, Any]:
    """One item's record: the parsed letter (None if unparsable), whether it is right, and the item's keys."""
    options = option_texts(item)
    predicted = parse_answer(response, options)
    return {
        "sample_id": item.get("sample_id"),
        "task": item["task"],
        "level": int(item["level"]),
        "answer_letter": item["answer_letter"],
        "predicted_letter": predicted,
        "correct": predicted == item["answer_letter"],
        "num_options": len(options),
    }


def score(items: Sequence[Mapping[str, Any]], responses: Iterable[Any]) -> list[dict[str, Any]]:
    """Records for model responses (texts or TRL completions) aligned with `items`."""
    responses = list(responses)
    if len(responses) != len(items):
        raise ValueError(f"Got {len(responses)} responses for {len(items)} items; they must align one to one.")
    return [score_item(item, response) for item, response in zip(items, responses, strict=True)]


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{'overall': Accuracy, 'levels': {level: Accuracy}, 'tasks': {task: Accuracy}} as plain dicts."""
    by_level: dict[int, list[Mapping[str, Any]]] = {}
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_level.setdefault(int(record["level"]), []).append(record)
        by_task.setdefault(record["task"], []).append(record)
    return {
        "overall": asdict(Accuracy.of(records)),
        "levels": {level: asdict(Accuracy.of(group)) for level, group in sorted(by_level.items())},
        "tasks": {task: asdict(Accuracy.of(group)) for task, group in sorted(by_task.items())},
    }


def markdown_table(summary: Mapping[str, Any]) -> str:
    """A markdown table of a `summarize` result: one row per task, per level, and overall."""
    lines = ["| group | n | accuracy | 95% CI | chance |", "|---|---:|---:|---|---:|"]

    def row(name: str, acc: Mapping[str, Any]) -> str:
        return (
            f"| {name} | {acc['n']} | {100 * acc['accuracy']:.1f} | "
            f"{100 * acc['ci_low']:.1f}-{100 * acc['ci_high']:.1f} | {100 * acc['chance']:.1f} |"
        )

    lines += [row(task, acc) for task, acc in summary["tasks"].items()]
    lines += [row(f"level {level}", acc) for level, acc in summary["levels"].items()]
    lines.append(row("overall", summary["overall"]))
    return "\n".join(lines)
