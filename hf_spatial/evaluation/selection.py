"""Which questions make the benchmark: level quotas (TWNM's 385/279/336 per 1,000), tasks evenly within a level,
a cap on questions per scene, and answer balancing. Pure functions of the candidate items and the seed."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# TWNM's benchmark: 1,000 items, L1/L2/L3 = 385/279/336.
LEVEL_SHARES = {1: 385, 2: 279, 3: 336}


def largest_remainder(total: int, weights: Mapping[Any, float]) -> dict[Any, int]:
    """Split `total` into integers proportional to `weights` (largest remainder; ties in key order)."""
    keys = list(weights)
    scale = total / sum(weights.values())
    exact = [weights[key] * scale for key in keys]
    counts = [int(np.floor(value)) for value in exact]
    order = sorted(range(len(keys)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return dict(zip(keys, counts, strict=True))


def level_quotas(num_items: int, levels: Sequence[int] | None = None) -> dict[int, int]:
    """Items per level for a benchmark of `num_items` (exactly 385/279/336 for 1,000); `levels` restricts the
    benchmark to some levels, which keep TWNM's proportions between them."""
    shares = LEVEL_SHARES if levels is None else {level: LEVEL_SHARES[level] for level in sorted(set(levels))}
    return largest_remainder(num_items, shares)


def task_quotas(level_quota: int, available: Mapping[str, int]) -> dict[str, int]:
    """Split a level's quota evenly over its tasks; a task with too few candidates passes its share on."""
    quotas: dict[str, int] = {}
    remaining = level_quota
    tasks = sorted(available, key=lambda task: (available[task], task))  # scarcest first
    for position, task in enumerate(tasks):
        quotas[task] = min(remaining // (len(tasks) - position), available[task])
        remaining -= quotas[task]
    return {task: quotas[task] for task in sorted(quotas)}


def select_items(
    candidates: Sequence[dict[str, Any]],
    num_items: int,
    seed: int,
    max_per_scene: int,
    levels: Sequence[int] | None = None,
) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """Pick up to `num_items` items by level quota (over `levels`, default all three), tasks evenly within a level,
    at most `max_per_scene` per scene.

    Returns (items in candidate order, shortfall per level). Items are drawn in a seeded random order, scarce
    tasks first, so common tasks do not use up the scenes rare tasks need.
    """
    rng = np.random.default_rng([seed, 7])
    by_task: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(candidates):
        by_task[item["task"]].append(index)
    for task in sorted(by_task):
        rng.shuffle(by_task[task])
    task_levels = {item["task"]: int(item["level"]) for item in candidates}
    per_scene: Counter[str] = Counter()
    chosen: list[int] = []
    shortfall: dict[int, int] = {}
    for level, quota in level_quotas(num_items, levels).items():
        tasks = {task: len(indices) for task, indices in by_task.items() if task_levels[task] == level}
        if not tasks:
            shortfall[level] = quota
            continue
        taken = 0
        for task, task_quota in sorted(task_quotas(quota, tasks).items(), key=lambda kv: (tasks[kv[0]], kv[0])):
            taken += _take(by_task[task], task_quota, candidates, per_scene, max_per_scene, chosen)
        # Fill what scarce tasks could not give from the other tasks of the level, round robin.
        while taken < quota:
            progress = 0
            for task in sorted(tasks):
                if taken < quota:
                    got = _take(by_task[task], 1, candidates, per_scene, max_per_scene, chosen)
                    taken, progress = taken + got, progress + got
            if not progress:
                break
        if taken < quota:
            shortfall[level] = quota - taken
    return [candidates[i] for i in sorted(chosen)], shortfall


def _take(
    indices: list[int],
    count: int,
    candidates: Sequence[dict[str, Any]],
    per_scene: Counter[str],
    max_per_scene: int,
    chosen: list[int],
) -> int:
    """Move up to `count` items from the front of `indices` whose scene has room into `chosen`."""
    taken = 0
    position = 0
    while taken < count and position < len(indices):
        index = indices[position]
        scene_id = candidates[index]["scene_id"]
        if per_scene[scene_id] < max_per_scene:
            per_scene[scene_id] += 1
            chosen.append(index)
            indices.pop(position)
            taken += 1
        else:
            position += 1
    return taken
