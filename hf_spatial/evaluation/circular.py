"""Circular evaluation: each item is asked with its options rotated through every position; it counts as correct
only if all rotations are answered correctly, so a fixed letter preference or lucky guess cannot score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hf_spatial.tasks.options import LETTERS
from hf_spatial.tasks.parsing import option_texts


def rotate_options(item: Mapping[str, Any], shift: int) -> dict[str, Any]:
    """A copy of `item` with option i moved to position (i + shift) mod 4, gold letter following its text."""
    texts = option_texts(item)
    letters = list(texts)
    count = len(letters)
    rotated = {letters[(i + shift) % count]: texts[letter] for i, letter in enumerate(letters)}
    gold = letters[(letters.index(item["answer_letter"]) + shift) % count]
    return {
        **item,
        **{f"option_{letter.lower()}": rotated[letter] for letter in letters},
        "answer_letter": gold,
        "sample_id": f"{item['sample_id']}#rot{shift}",
    }


def circular_variants(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The item with its options in every cyclic order (shift 0 is the item itself, renamed)."""
    return [rotate_options(item, shift) for shift in range(len(option_texts(item)) or len(LETTERS))]


def combine_circular(item: Mapping[str, Any], variant_records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One record for an item from its variants' records: correct only if every variant is."""
    return {
        "sample_id": item["sample_id"],
        "condition": "circular",
        "task": item["task"],
        "level": int(item["level"]),
        "answer_letter": item["answer_letter"],
        "answer_text": item["answer_text"],
        "predicted_letter": None,
        "predicted_text": None,
        "correct": all(record["correct"] for record in variant_records),
        # Chance: independent uniform guesses pass all k rotations of k options with probability (1/k)^k, i.e.
        # one of k^k equally likely answer combinations (the scorer's chance is 1 / num_options).
        "num_options": len(option_texts(item)) ** len(variant_records),
        "variants": [record["predicted_letter"] for record in variant_records],
    }
