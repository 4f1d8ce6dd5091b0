"""Answer an existing question for a modified scene: the rotated-sound-field control and the direction baselines.

Every task registers a solver next to its generator, and the generator takes its gold answer from that solver,
so the gold of an item and the answer for a modified scene share one definition. An item records what its
question is about in `params` (source indices, turn, sector); `answer_for_scene(item, scene)` runs the task's
solver on `scene` and returns the letter of the option that answers it.

```python
rotated = rotate_scene(scene, 90.0)                      # the listener hears the field rotated by +90 degrees
answer_for_scene(item, rotated)                          # -> "C" (or None: no option is right any more)
estimated = scene_with_directions(scene, [(40.0, 5.0), (-100.0, 0.0)])   # directions of a localiser
answer_for_scene(item, estimated, strict=False)          # numeric options: the nearest one
```
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import rotate_direction
from hf_spatial.tasks.context import SceneContext
from hf_spatial.tasks.options import NearestValue
from hf_spatial.tasks.parsing import option_texts
from hf_spatial.tasks.registry import TASKS, resolve_tasks

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def item_params(item: Mapping[str, Any]) -> dict[str, Any]:
    """The `params` of a QA row (a JSON string or a dict); ValueError when the item has none."""
    params = item.get("params")
    if params is None or params == "":
        raise ValueError(
            f"Item {item.get('sample_id')!r} has no 'params': it was not made by this version of hf_spatial.tasks, so "
            "it cannot be answered for a modified scene (rebuild it with `hf-spatial benchmark build`)."
        )
    return json.loads(params) if isinstance(params, str) else dict(params)


def _option_number(text: str) -> float | None:
    match = _NUMBER.search(text)
    return float(match.group()) if match else None


def answer_for_scene(item: Mapping[str, Any], scene: SceneSpec, *, strict: bool = True) -> str | None:
    """Letter of the option of `item` that answers its question in `scene`, or None if none does.

    Categorical answers must match an option's text exactly. Numeric answers take the nearest option; with
    `strict` (the default) only when it is nearer than half the gap between the two closest options, so a value
    that moved off the option ladder (e.g. an azimuth rotated past the listed values) has no answer.
    """
    resolve_tasks([item["task"]])
    answer = TASKS[item["task"]].solve(SceneContext(scene, {}), item_params(item))
    options = option_texts(item)
    if answer is None:
        return None
    if isinstance(answer, str):
        matches = [letter for letter, text in options.items() if text == answer]
        return matches[0] if len(matches) == 1 else None
    if not isinstance(answer, NearestValue):
        raise TypeError(f"Solver of {item['task']} returned {answer!r}; expected a str, NearestValue or None.")
    values = {letter: _option_number(text) for letter, text in options.items()}
    if any(value is None for value in values.values()):
        raise ValueError(f"Item {item.get('sample_id')!r}: numeric task {item['task']} has an option without a number.")
    distances = sorted((answer.distance(value), letter) for letter, value in values.items())
    if len(distances) > 1 and distances[0][0] == distances[1][0]:
        return None
    if strict:
        numbers = list(values.values())
        gap = min(NearestValue(a, answer.circular).distance(b) for i, a in enumerate(numbers) for b in numbers[i + 1 :])
        if distances[0][0] >= gap / 2:
            return None
    return distances[0][1]


def _with_source_directions(
    scene: SceneSpec, directions: Sequence[tuple[float, float]], distances: Sequence[float] | None = None
) -> SceneSpec:
    # Copied without re-validation: a source moved to another direction may fall outside the room's walls, which
    # does not matter to questions about directions as heard by the listener.
    modified = copy.deepcopy(scene)
    for index, (source, (azimuth, elevation)) in enumerate(zip(modified.sources, directions, strict=True)):
        source.azimuth, source.elevation = float(azimuth), float(elevation)
        if distances is not None:
            source.distance = float(distances[index])
    return modified


def rotate_scene(scene: SceneSpec, angle_deg: float) -> SceneSpec:
    """The scene as heard after the sound field is rotated about z by `angle_deg` (`conventions.rotate_foa` sense)."""
    return _with_source_directions(
        scene, [(float(rotate_direction(s.azimuth, angle_deg)), s.elevation) for s in scene.sources]
    )


def scene_with_directions(
    scene: SceneSpec, directions: Sequence[tuple[float, float]], distances: Sequence[float] | None = None
) -> SceneSpec:
    """`scene` with source i at (azimuth, elevation) `directions[i]` (e.g. a localiser's estimates) and, when given,
    `distances[i]` metres away (where A is relative to B depends on both); rest unchanged."""
    for name, values in (("direction", directions), ("distance", distances)):
        if values is not None and len(values) != len(scene.sources):
            raise ValueError(f"Need one {name} per source ({len(scene.sources)}), got {len(values)}.")
    return _with_source_directions(scene, directions, distances)


def direction_tasks() -> list[str]:
    """Tasks whose answers depend on source directions."""
    return [name for name in resolve_tasks(None) if TASKS[name].uses_direction]


__all__ = ["answer_for_scene", "direction_tasks", "item_params", "rotate_scene", "scene_with_directions"]
