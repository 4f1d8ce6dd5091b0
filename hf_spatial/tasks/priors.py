"""Dataset priors for numeric options: reference samples of each quantity a numeric task asks about.

With priors, numeric distractors are drawn at the other quartiles of the quantity's distribution
(`options.quantile_lattice`): a value's text then says nothing about whether it is the answer. Without them,
tasks fall back to fixed-step ladders, whose out-of-range rungs a text-only model can learn to avoid.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import angular_distance

PRIOR_KEYS = ("distance_m", "elevation_deg", "rt60_s", "separation_deg")


def compute_priors(scenes: Iterable[SceneSpec]) -> dict[str, np.ndarray]:
    """Sorted samples of source distance, elevation, room RT60 and pairwise angular separation, and how often
    each place of the scene-abduction task is the answer (`place_frequency`, in `level3.PLACES` order)."""
    from hf_spatial.tasks.level3 import PLACES, likely_place

    samples: dict[str, list[float]] = {key: [] for key in PRIOR_KEYS}
    places = dict.fromkeys(PLACES, 0.0)
    for scene in scenes:
        place = likely_place(scene.labels, scene.room.rt60)
        if place is not None:
            places[place] += 1
        samples["rt60_s"].append(scene.room.rt60)
        for source in scene.sources:
            samples["distance_m"].append(source.distance)
            samples["elevation_deg"].append(source.elevation)
        for a, b in itertools.combinations(scene.sources, 2):
            samples["separation_deg"].append(float(angular_distance(a.azimuth, a.elevation, b.azimuth, b.elevation)))
    priors = {key: np.sort(np.asarray(values, dtype=np.float64)) for key, values in samples.items() if len(values) >= 8}
    if sum(places.values()) > 0:
        priors["place_frequency"] = np.asarray(list(places.values())) / sum(places.values())
    return priors
