"""Answer balancing: drop items so that no gold answer text dominates a task.

Some answers are more common than others in any scene distribution (two sources more often than one, the
front more often than the back if the sampler prefers it). A model that learns those frequencies answers
above chance without listening. Per task, every answer text is capped at the largest count that keeps its
share at most `max_share`; which items go is seeded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np


def balance_cap(counts: Sequence[int], max_share: float) -> int:
    """Largest cap c with c <= max_share * sum(min(n, c)); the smallest count if no cap reaches that share."""
    counts = sorted(counts)
    for cap in range(counts[-1], 0, -1):
        if cap <= max_share * sum(min(n, cap) for n in counts):
            return cap
    return counts[0]


def balance_answers(items: Sequence[dict[str, Any]], seed: int, max_share: float = 0.27) -> list[dict[str, Any]]:
    """Items (original order kept) where, per task, no answer text is the gold of more than `max_share` of the
    task's items (or, when too few answer texts exist for that, every text equally often)."""
    groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, item in enumerate(items):
        groups[item["task"]][item["answer_text"]].append(index)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for task in sorted(groups):
        by_text = groups[task]
        cap = balance_cap([len(v) for v in by_text.values()], max_share)
        for text in sorted(by_text):
            indices = by_text[text]
            if len(indices) > cap:
                indices = sorted(rng.choice(indices, size=cap, replace=False).tolist())
            keep.extend(indices)
    return [items[i] for i in sorted(keep)]
