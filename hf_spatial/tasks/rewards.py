"""GRPO reward functions with TRL's signature: `f(prompts, completions, **kwargs) -> list[float]` in [0, 1].

TRL passes every dataset column as a keyword argument (lists aligned with `completions`); these functions use
the QA row columns `answer_letter`, `option_a`..`option_d` and `evidence`. Completions may be strings or
conversational lists of messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hf_spatial.tasks.parsing import completion_text, parse_answer

# A stated angle counts when within this of a fact (azimuths compared on the circle).
ANGLE_TOLERANCE_DEG = 20.0
# A stated distance counts when within max(absolute, relative * fact) of a fact.
DISTANCE_TOLERANCE_M = 0.5
DISTANCE_TOLERANCE_RELATIVE = 0.25

# Linear-time patterns: a number starts only where no digit precedes it, and runs of digits and spaces are matched
# possessively (`++`, `*+`), so a long digit run is read once instead of once per start position (the matches are
# those of the plain patterns: a number that fits only a suffix of a digit run cannot exist).
_FORMAT = re.compile(r"\s*+<think>.+?</think>\s*+<answer>\s*+\(?[A-Z]\)?\s*+</answer>\s*+", re.DOTALL)
_TAGGED_LETTER = re.compile(r"<answer>\s*+\(?[A-Z]\)?\s*+</answer>")
_NUMBER = r"(?<!\d)(-?\d++(?:\.\d++)?+)"
_ANGLE = re.compile(_NUMBER + r"\s*+(?:°|deg\b|degrees?\b)", re.IGNORECASE)
_DISTANCE = re.compile(_NUMBER + r"\s*+(?:m\b|metres?\b|meters?\b)", re.IGNORECASE)
_ANGLE_KEYS = ("azimuth_deg", "elevation_deg", "angle_deg")


def _column(kwargs: Mapping[str, Any], name: str, count: int) -> list[Any]:
    values = kwargs.get(name)
    if values is None:
        raise ValueError(
            f"Reward needs the dataset column {name!r}; keep it in the training dataset (TRL passes columns as "
            "keyword arguments)."
        )
    if len(values) != count:
        raise ValueError(f"Column {name!r} has {len(values)} values for {count} completions.")
    return list(values)


def _options(kwargs: Mapping[str, Any], index: int) -> dict[str, str]:
    return {
        letter: str(kwargs[f"option_{letter.lower()}"][index])
        for letter in "ABCD"
        if kwargs.get(f"option_{letter.lower()}") is not None
    }


def accuracy_reward(prompts: Any = None, completions: Sequence[Any] = (), **kwargs: Any) -> list[float]:
    """1.0 when the parsed answer is the gold letter (`answer_letter` column), else 0.0."""
    gold = _column(kwargs, "answer_letter", len(completions))
    return [float(parse_answer(completion, _options(kwargs, i)) == gold[i]) for i, completion in enumerate(completions)]


def format_reward(prompts: Any = None, completions: Sequence[Any] = (), **kwargs: Any) -> list[float]:
    """1.0 for exactly `<think>...</think><answer>X</answer>`; 0.5 for an `<answer>X</answer>` tag alone."""
    rewards = []
    for completion in completions:
        text = completion_text(completion)
        if _FORMAT.fullmatch(text):
            rewards.append(1.0)
        elif _TAGGED_LETTER.search(text):
            rewards.append(0.5)
        else:
            rewards.append(0.0)
    return rewards


def _facts(evidence: Any) -> tuple[list[tuple[str, float]], list[float]]:
    """(angle facts as (key, degrees), distance facts in metres) from an evidence JSON string or dict."""
    if isinstance(evidence, str):
        evidence = json.loads(evidence) if evidence.strip() else {}
    if not isinstance(evidence, Mapping):  # None, or JSON that is not an object ("[1, 2]", "3"): no facts
        return [], []
    angles = [(key, float(v)) for key in _ANGLE_KEYS for v in evidence.get(key) or []]
    distances = [float(v) for v in evidence.get("distance_m") or []]
    return angles, distances


def _angle_matches(stated: float, key: str, fact: float) -> bool:
    difference = abs(stated - fact)
    if key == "azimuth_deg":
        difference = min(difference % 360.0, 360.0 - difference % 360.0)
    return difference <= ANGLE_TOLERANCE_DEG


def _distance_matches(stated: float, fact: float) -> bool:
    return abs(stated - fact) <= max(DISTANCE_TOLERANCE_M, DISTANCE_TOLERANCE_RELATIVE * abs(fact))


def evidence_score(text: str, evidence: Any) -> float:
    """F1 between the angles/distances stated in `text` and the item's evidence facts; 0.0 without facts.

    Recall: share of facts some stated number matches; precision: share of stated numbers (of the kinds the
    evidence has) that match some fact, so listing many numbers does not pay.
    """
    angles, distances = _facts(evidence)
    if not angles and not distances:
        return 0.0
    stated_angles = [float(v) for v in _ANGLE.findall(text)] if angles else []
    stated_distances = [float(v) for v in _DISTANCE.findall(text)] if distances else []
    stated = len(stated_angles) + len(stated_distances)
    if stated == 0:
        return 0.0
    matched_facts = sum(any(_angle_matches(s, key, fact) for s in stated_angles) for key, fact in angles)
    matched_facts += sum(any(_distance_matches(s, fact) for s in stated_distances) for fact in distances)
    matched_stated = sum(any(_angle_matches(s, key, fact) for key, fact in angles) for s in stated_angles)
    matched_stated += sum(any(_distance_matches(s, fact) for fact in distances) for s in stated_distances)
    recall = matched_facts / (len(angles) + len(distances))
    precision = matched_stated / stated
    return float(0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision))


def evidence_reward(prompts: Any = None, completions: Sequence[Any] = (), **kwargs: Any) -> list[float]:
    """Agreement of stated angles (deg) and distances (m) with the item's `evidence` column (see evidence_score)."""
    evidence = _column(kwargs, "evidence", len(completions))
    scores = []
    for completion, facts in zip(completions, evidence, strict=True):
        try:
            scores.append(evidence_score(completion_text(completion), facts))
        except (ValueError, TypeError):  # malformed evidence cell: no reward rather than a crashed step
            scores.append(0.0)
    return [float(np.clip(s, 0.0, 1.0)) for s in scores]


REWARD_FUNCTIONS = {"accuracy": accuracy_reward, "format": format_reward, "evidence": evidence_reward}
