"""Classical FOA direction-finding baselines: active-intensity directions answer direction questions.

Per item, the item is answered for its scene with estimated source directions by the tasks' own solvers
(`tasks.solving.answer_for_scene`, nearest numeric option). Everything but the directions comes from the metadata,
so only tasks whose answer depends on directions are scored; the others are reported as not applicable.

Two lines, because a direction finder does not recognise sounds:

- `IntensityBaseline(oracle_identity=True)`, "intensity + true source identity (oracle)":
  `acoustics.intensity.estimate_directions` with the scene's true source count, estimates matched to the true
  sources by the Hungarian algorithm on the TRUE directions. On a scene with several sources it thus knows which
  estimate belongs to which sound (and how many there are): an upper bound for a classical localiser, not a
  competitor. A source left without an estimate (fewer peaks than sources) takes the strongest estimate's direction.
- `IntensityBaseline()`, "intensity, single-source items (no ground truth)": the strongest intensity direction
  alone, scored only on items whose scene has one source, where the answer needs no source identity: the
  direction comes from the audio alone and there is no sound to tell apart. Binding estimates to named sounds by
  any rule (random, loudest first) would still use the true source count and the set of sounds present, i.e.
  ground truth, so the fair line answers only what a localiser can; the model's accuracy on the same items is its
  comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from hf_spatial.acoustics.intensity import estimate_directions
from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import SAMPLE_RATE, angular_distance
from hf_spatial.evaluation.controls import Request
from hf_spatial.tasks.registry import TASKS, resolve_tasks
from hf_spatial.tasks.solving import answer_for_scene, scene_with_directions

logger = logging.getLogger(__name__)


def match_directions(scene: SceneSpec, estimates: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Estimated (azimuth, elevation) per source of `scene`, assigned by minimum total angular distance."""
    if not estimates:
        raise ValueError(f"No direction estimates for scene {scene.scene_id}.")
    cost = np.array([[angular_distance(s.azimuth, s.elevation, az, el) for az, el in estimates] for s in scene.sources])
    rows, cols = linear_sum_assignment(cost)
    matched = [tuple(estimates[0])] * len(scene.sources)
    for row, col in zip(rows, cols, strict=True):
        matched[row] = tuple(estimates[col])
    return [(float(az), float(el)) for az, el in matched]


ORACLE_NAME = "intensity + true source identity (oracle)"
FAIR_NAME = "intensity, single-source items (no ground truth)"


class IntensityBaseline:
    """Answers direction questions from active-intensity direction estimates: with the true source identities
    (`oracle_identity=True`) or, using no ground truth, on single-source items only (see the module docstring)."""

    conditions = ("full", "rotated")

    def __init__(self, sample_rate: int = SAMPLE_RATE, oracle_identity: bool = False):
        self.sample_rate = sample_rate
        self.oracle_identity = oracle_identity
        self.name = ORACLE_NAME if oracle_identity else FAIR_NAME
        # Per request of the last `predict`: true and estimated directions of each source (for the polar plot).
        self.last_details: list[dict[str, Any]] = []

    def applies_to(self, item: dict[str, Any]) -> bool:
        resolve_tasks([item["task"]])
        if not (TASKS[item["task"]].uses_direction and item.get("scene") and item.get("params")):
            return False
        return self.oracle_identity or len(SceneSpec.from_json(item["scene"]).sources) == 1

    def estimate(self, foa: np.ndarray, scene: SceneSpec) -> list[tuple[float, float]]:
        """One estimated direction per source of `scene`; [] when the signal gives none."""
        count = len(scene.sources) if self.oracle_identity else 1
        try:
            estimates = estimate_directions(foa, self.sample_rate, num_sources=count)
        except ValueError as error:  # silent or fully diffuse: no estimate at all
            logger.warning("intensity baseline: no direction estimate for %s: %s", scene.scene_id, error)
            return []
        if not estimates:
            return []
        return match_directions(scene, estimates) if self.oracle_identity else [estimates[0]]

    def predict(self, requests: Sequence[Request]) -> list[str]:
        responses, self.last_details = [], []
        for request in requests:
            if request.scene is None or request.audio is None:
                raise ValueError("The intensity baseline needs the FOA audio and the scene metadata of each item.")
            directions = self.estimate(request.audio, request.scene)
            self.last_details.append(
                {
                    "directions": [
                        {"azimuth": s.azimuth, "elevation": s.elevation, "est_azimuth": az, "est_elevation": el}
                        for s, (az, el) in zip(request.scene.sources, directions, strict=False)
                    ]
                }
            )
            if not directions:
                responses.append("")
                continue
            estimated = scene_with_directions(request.scene, directions)
            responses.append(answer_for_scene(request.item, estimated, strict=False) or "")
        return responses
