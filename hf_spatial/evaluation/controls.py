"""Evaluation conditions: the model as is, and controls that remove or alter exactly one thing.

- `full`: the FOA scene and the question.
- `no_audio`: the question alone (a text-only prompt without the audio placeholder): what text priors give.
- `mono`: W only: X, Y, Z are zeroed before feature extraction, so no direction cue is left.
- `spatial_zeroed`: the model's spatial branch switched off (`set_audio_branches(spatial=False)`).
- `rotated`: the sound field rotated about z by 90, 180 or 270 degrees (per item, seeded by its id), scored
  against the answer for the rotated scene (`tasks.solving.answer_for_scene`); items whose question has no
  answer after rotation (e.g. an azimuth that left the option ladder) are excluded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import X, Y, Z, rotate_foa
from hf_spatial.tasks.parsing import option_texts
from hf_spatial.tasks.solving import answer_for_scene, rotate_scene

CONDITIONS = ("full", "no_audio", "mono", "spatial_zeroed", "rotated")
CONTROLS = CONDITIONS[1:]
ROTATIONS_DEG = (90.0, 180.0, 270.0)


@dataclass
class Request:
    """One question as a predictor sees it under a condition."""

    item: dict[str, Any]  # QA row as presented (gold letter adjusted for the condition)
    audio: np.ndarray | None  # (4, T) FOA after the condition's transform; None without audio
    scene: SceneSpec | None  # the scene as presented (rotated under `rotated`); None when unknown
    condition: str


def rotation_for(sample_id: str) -> float:
    """The rotation (degrees) the `rotated` control applies to an item: a fixed function of its id."""
    digest = hashlib.sha256(str(sample_id).encode()).digest()
    return ROTATIONS_DEG[digest[0] % len(ROTATIONS_DEG)]


def w_only(foa: np.ndarray) -> np.ndarray:
    """The FOA signal with X, Y and Z zeroed: the omnidirectional W channel alone."""
    mono = np.array(foa, copy=True)
    mono[[X, Y, Z]] = 0.0
    return mono


def with_gold(item: Mapping[str, Any], letter: str) -> dict[str, Any]:
    """A copy of `item` whose gold is option `letter`."""
    return {**item, "answer_letter": letter, "answer_text": option_texts(item)[letter]}


def prepare(condition: str, item: Mapping[str, Any], foa: np.ndarray | None, scene: SceneSpec | None):
    """The Request for `item` under `condition`, or a string saying why the item is excluded from it."""
    if condition not in CONDITIONS:
        raise ValueError(f"Unknown condition {condition!r}; expected one of {CONDITIONS}.")
    item = dict(item)
    if condition == "no_audio":
        return Request(item, None, scene, condition)
    if condition == "mono":
        return Request(item, w_only(foa), scene, condition)
    if condition == "rotated":
        if scene is None or not item.get("params"):
            return "no scene metadata or params to re-answer the item"
        angle = rotation_for(item["sample_id"])
        rotated = rotate_scene(scene, angle)
        letter = answer_for_scene(item, rotated)
        if letter is None:
            return "no option answers the rotated scene"
        return Request(with_gold(item, letter), rotate_foa(foa, angle), rotated, condition)
    return Request(item, foa, scene, condition)
