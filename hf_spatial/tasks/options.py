"""Option sets: numeric ladders whose gold sits at a random rank, and the texts numbers are written as.

A numeric option set is a ladder of four values with the gold at a uniformly random rank, so that "pick the
middle value", "pick the largest" or "pick the longest text" are all at chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hf_spatial.conventions import wrap_azimuth

LETTERS = ("A", "B", "C", "D")
NUM_OPTIONS = len(LETTERS)


def degrees_text(value: float) -> str:
    return f"{round(value):d} degrees"


def metres_text(value: float) -> str:
    return f"{value:.1f} m"


def seconds_text(value: float) -> str:
    return f"{value:.2f} s"


def _ranks(rng: np.random.Generator, feasible: list[int]) -> int:
    return int(rng.choice(feasible))


def azimuth_ladder(gold_deg: float, step_deg: float, rng: np.random.Generator) -> list[float]:
    """Four azimuths `step` apart on the circle, gold first, gold's rank along the ladder random."""
    gold = 5.0 * round(gold_deg / 5.0)
    rank = _ranks(rng, list(range(NUM_OPTIONS)))
    values = [float(wrap_azimuth(gold + step_deg * (j - rank))) for j in range(NUM_OPTIONS)]
    return [values[rank]] + [v for j, v in enumerate(values) if j != rank]


def linear_ladder(
    gold: float, step: float, rng: np.random.Generator, low: float, high: float, quantum: float
) -> list[float] | None:
    """Four values `step` apart within [low, high], gold first; None if the gold cannot sit at any rank."""
    gold = quantum * round(gold / quantum)
    feasible = [
        rank
        for rank in range(NUM_OPTIONS)
        if gold - step * rank >= low - 1e-9 and gold + step * (NUM_OPTIONS - 1 - rank) <= high + 1e-9
    ]
    if not feasible:
        return None
    rank = _ranks(rng, feasible)
    values = [gold + step * (j - rank) for j in range(NUM_OPTIONS)]
    return [values[rank]] + [v for j, v in enumerate(values) if j != rank]


def ratio_ladder(
    gold: float, ratio: float, rng: np.random.Generator, quantum: float, low: float = 0.0
) -> list[float] | None:
    """Four values in geometric progression (factor `ratio`) above `low`, gold first, rounded to `quantum`.

    Ranks at which rounding would merge two values or cross `low` are not used; None if no rank is left.
    """
    ladders = {
        rank: [quantum * round(gold * ratio ** (j - rank) / quantum) for j in range(NUM_OPTIONS)]
        for rank in range(NUM_OPTIONS)
    }
    feasible = [rank for rank, v in ladders.items() if len(set(v)) == NUM_OPTIONS and min(v) > low]
    if not feasible:
        return None
    rank = _ranks(rng, feasible)
    values = ladders[rank]
    return [values[rank]] + [v for j, v in enumerate(values) if j != rank]


def quantile_lattice(
    gold: float, reference: np.ndarray, rng: np.random.Generator, quantum: float
) -> list[float] | None:
    """Four values one quarter apart in the quantiles of `reference` (sorted samples of the quantity), gold first.

    Every option lies in a different quarter of the distribution the golds come from, at the gold's offset
    within its quarter, so a text-only guess based on which values tend to be right is at chance. None if
    rounding to `quantum` merges two values.
    """
    quantile = float(np.searchsorted(reference, gold, side="right")) / len(reference)
    jitter = rng.uniform(-0.5, 0.5) / len(reference)  # break ties between equal reference values
    levels = [(quantile + jitter + j / NUM_OPTIONS) % 1.0 for j in range(1, NUM_OPTIONS)]
    distractors = [quantum * round(float(np.quantile(reference, q)) / quantum) for q in levels]
    values = [quantum * round(gold / quantum), *distractors]
    return values if len(set(values)) == NUM_OPTIONS else None


@dataclass(frozen=True)
class NearestValue:
    """A solver's numeric answer: the option whose number is nearest to `value` (azimuths on the circle)."""

    value: float
    circular: bool = False

    def distance(self, other: float) -> float:
        difference = abs(self.value - other)
        if self.circular:
            difference %= 360.0
            return min(difference, 360.0 - difference)
        return difference
