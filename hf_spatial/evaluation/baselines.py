"""Classical FOA direction-finding baseline: active-intensity directions answer direction questions.

Per item: `acoustics.intensity.estimate_directions` with the scene's source count, estimates matched to the
scene's sources by the Hungarian algorithm on angular distance, and the item answered for the scene with the
estimated directions by the tasks' own solvers (`tasks.solving.answer_for_scene`, nearest numeric option).
Everything but the directions comes from the metadata, so only tasks whose answer depends on directions are
scored; the others are reported as not applicable. A source left without an estimate (fewer peaks than
sources) takes the strongest estimate's direction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import angular_distance
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


class IntensityBaseline:
    """Answers direction questions from active-intensity direction estimates (see the module docstring)."""

    name = "intensity"
    conditions = ("full", "rotated")

    def __init__(self, sample_rate: int = 24000):
        self.sample_rate = sample_rate
        # Per request of the last `predict`: true and estimated directions of each source (for the polar plot).
        self.last_details: list[dict[str, Any]] = []

    def applies_to(self, item: dict[str, Any]) -> bool:
        resolve_tasks([item["task"]])
        return TASKS[item["task"]].uses_direction and bool(item.get("scene")) and bool(item.get("params"))

    def estimate(self, foa: np.ndarray, scene: SceneSpec) -> list[tuple[float, float]]:
        from hf_spatial.acoustics.intensity import estimate_directions

        try:
            estimates = estimate_directions(foa, self.sample_rate, num_sources=len(scene.sources))
        except ValueError as error:  # silent or fully diffuse: no estimate at all
            logger.warning("intensity baseline: no direction estimate for %s: %s", scene.scene_id, error)
            return []
        return match_directions(scene, estimates) if estimates else []

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
