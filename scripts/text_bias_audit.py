"""Text-only bias audit of the ASA questions: answer every item without audio and compare with chance.

Strategies: always-A..D, longest option, shortest option, and the most frequent gold answer text per task
learned on a disjoint split of scenes. No strategy should beat chance by more than 5 points, overall or per
task. Per task (about 100 items each in a 2,000-item sample, so +-9 points of sampling noise) a strategy fails
only when the lower end of its 95% Wilson interval is above chance + 5 points; overall, the point estimate.
Scenes come from the simulator's SceneSampler over the procedural source bank (geometry only, no audio).

    python scripts/text_bias_audit.py --items 2000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hf_spatial.tasks import generate_questions, label_frequencies, wilson_interval
from hf_spatial.tasks.balance import balance_answers
from hf_spatial.tasks.options import LETTERS
from hf_spatial.tasks.priors import compute_priors

MAX_EXCESS = 0.05


def sample_scenes(num_scenes: int, seed: int, split: str) -> list[Any]:
    from hf_spatial.acoustics.sampler import SceneSampler, SceneSamplerConfig
    from hf_spatial.acoustics.sources import SourceBank

    bank = SourceBank.procedural(seed=seed)
    return SceneSampler(SceneSamplerConfig(), bank).sample(num_scenes=num_scenes, seed=seed, split=split)


def build_items(scenes: Sequence[Any], seed: int, vocabulary: dict[str, float], priors: dict) -> list[dict[str, Any]]:
    items = [item for scene in scenes for item in generate_questions(scene, seed, vocabulary=vocabulary, priors=priors)]
    return balance_answers(items, seed=seed)


def options(item: dict[str, Any]) -> list[str]:
    return [item[f"option_{letter.lower()}"] for letter in LETTERS]


def frequency_strategy(train: Sequence[dict[str, Any]]) -> Callable[[dict[str, Any]], str]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for item in train:
        counts[item["task"]][item["answer_text"]] += 1

    def answer(item: dict[str, Any]) -> str:
        seen = counts[item["task"]]
        scores = [seen[text] for text in options(item)]
        return LETTERS[scores.index(max(scores))]

    return answer


def strategies(train: Sequence[dict[str, Any]]) -> dict[str, Callable[[dict[str, Any]], str]]:
    found: dict[str, Callable[[dict[str, Any]], str]] = {f"always_{x}": (lambda _, x=x: x) for x in LETTERS}
    found["longest"] = lambda item: LETTERS[max(range(4), key=lambda i: len(options(item)[i]))]
    found["shortest"] = lambda item: LETTERS[min(range(4), key=lambda i: len(options(item)[i]))]
    found["most_frequent_text"] = frequency_strategy(train)
    return found


def audit(test: Sequence[dict[str, Any]], train: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """accuracy[strategy][task or 'overall']."""
    results: dict[str, dict[str, float]] = {}
    for name, strategy in strategies(train).items():
        hits: dict[str, list[bool]] = defaultdict(list)
        for item in test:
            correct = strategy(item) == item["answer_letter"]
            hits[item["task"]].append(correct)
            hits["overall"].append(correct)
        results[name] = {task: sum(v) / len(v) for task, v in sorted(hits.items())}
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2000, help="test items to audit (default 2000)")
    parser.add_argument("--train-scenes", type=int, default=3000, help="scenes of the disjoint learning split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    train_scenes = sample_scenes(args.train_scenes, args.seed, "train")
    test_scenes = sample_scenes(max(1, args.items // 6), args.seed + 1, "test")
    vocabulary = label_frequencies(s.label for scene in train_scenes for s in scene.sources)
    priors = compute_priors(train_scenes)
    train = build_items(train_scenes, args.seed, vocabulary, priors)
    test = build_items(test_scenes, args.seed + 1, vocabulary, priors)
    while len(test) < args.items:
        test_scenes = sample_scenes(len(test_scenes) * 2, args.seed + 1, "test")
        test = build_items(test_scenes, args.seed + 1, vocabulary, priors)
    test = test[: args.items]

    results = audit(test, train)
    chance = 1.0 / len(LETTERS)
    tasks = [key for key in next(iter(results.values())) if key != "overall"] + ["overall"]
    counts = Counter(item["task"] for item in test)
    counts["overall"] = len(test)
    names = list(results)
    print("| task | n | " + " | ".join(names) + " | best - chance | 95% CI low of best - chance |")
    print("|---|---:|" + "---:|" * len(names) + "---:|---:|")
    worst_overall = worst_task_low = 0.0
    failing = []
    for task in tasks:
        values = [results[name][task] for name in names]
        excess = max(values) - chance
        low = wilson_interval(round(max(values) * counts[task]), counts[task])[0] - chance
        if task == "overall":
            worst_overall = excess
        else:
            worst_task_low = max(worst_task_low, low)
            if low > MAX_EXCESS:
                failing.append(task)
        print(
            f"| {task} | {counts[task]} | "
            + " | ".join(f"{100 * v:.1f}" for v in values)
            + f" | {100 * excess:+.1f} | "
            f"{100 * low:+.1f} |"
        )
    verdict = {
        "items": len(test),
        "chance": chance,
        "overall_best_minus_chance": round(worst_overall, 4),
        "per_task_worst_ci_low_minus_chance": round(worst_task_low, 4),
        "threshold": MAX_EXCESS,
        "failing_tasks": failing,
        "passed": worst_overall <= MAX_EXCESS and not failing,
    }
    print(json.dumps(verdict))
    return 0 if verdict["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
