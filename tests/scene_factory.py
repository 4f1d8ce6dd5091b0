"""Hand-made scenes for task tests: `make_scene` from (label, azimuth, elevation, distance, onset) tuples and
`random_scene` for property tests (independent of the simulator's sampler)."""

from __future__ import annotations

import numpy as np

from hf_spatial.acoustics.scene import RoomSpec, SceneSpec, SourceSpec
from hf_spatial.tasks.vocabulary import DEFAULT_VOCABULARY


def make_scene(sources, rt60: float = 0.5, scene_id: str = "scene", room=(12.0, 12.0, 6.0)) -> SceneSpec:
    """A scene in a large room with the listener at its centre; each source (label, az, el, dist[, onset])."""
    specs = []
    for i, spec in enumerate(sources):
        label, azimuth, elevation, distance, *rest = spec
        onset = rest[0] if rest else 0.5 * i
        specs.append(SourceSpec(f"clip{i}", label, azimuth, elevation, distance, onset, min(onset + 2.0, 5.0)))
    listener = tuple(d / 2 for d in room)
    return SceneSpec(scene_id, RoomSpec("room", room, rt60, listener), specs, seed=0)


def random_scene(rng: np.random.Generator, scene_id: str = "random") -> SceneSpec:
    count = int(rng.integers(1, 4))
    labels = rng.choice(len(DEFAULT_VOCABULARY), size=count, replace=rng.random() < 0.1)
    sources = [
        (
            DEFAULT_VOCABULARY[int(label)],
            float(rng.uniform(-180, 180)),
            float(rng.uniform(-30, 40)),
            float(rng.uniform(0.5, 4.0)),
            float(rng.uniform(0, 2.5)),
        )
        for label in labels
    ]
    return make_scene(sources, rt60=float(rng.uniform(0.2, 1.2)), scene_id=scene_id)
