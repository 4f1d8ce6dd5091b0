"""Leak checks: a held-out benchmark shares no source clip, room or scene with a training dataset."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_spatial.acoustics.scene import SceneSpec


def scene_fingerprint(scene: SceneSpec) -> tuple:
    """What makes two scenes the same scene whatever their ids: room, and each source's clip and position."""
    sources = sorted(
        (s.clip_id, round(s.azimuth, 3), round(s.elevation, 3), round(s.distance, 3)) for s in scene.sources
    )
    return scene.room.room_id, tuple(sources)


@dataclass
class LeakReport:
    """What a benchmark shares with one reference (training) set of scenes."""

    reference: str
    num_reference_scenes: int
    shared_clips: list[str] = field(default_factory=list)
    shared_rooms: list[str] = field(default_factory=list)
    shared_scenes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.shared_clips or self.shared_rooms or self.shared_scenes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "num_reference_scenes": self.num_reference_scenes,
            "clean": self.clean,
            "shared_clips": self.shared_clips,
            "shared_rooms": self.shared_rooms,
            "shared_scenes": self.shared_scenes,
        }

    def summary(self) -> str:
        if self.clean:
            return f"{self.reference}: clean ({self.num_reference_scenes} scenes: no shared clip, room or scene)"
        return (
            f"{self.reference}: LEAK: {len(self.shared_clips)} shared clip(s) {self.shared_clips[:5]}, "
            f"{len(self.shared_rooms)} shared room(s) {self.shared_rooms[:5]}, "
            f"{len(self.shared_scenes)} shared scene(s) {self.shared_scenes[:5]}"
        )


def find_leaks(benchmark: Sequence[SceneSpec], reference: Iterable[SceneSpec], name: str) -> LeakReport:
    """Clips, rooms and scenes (by id or by content) of `benchmark` that also occur in `reference`."""
    clips, rooms, scene_ids, fingerprints, count = set(), set(), set(), set(), 0
    for scene in reference:
        count += 1
        clips.update(source.clip_id for source in scene.sources)
        rooms.add(scene.room.room_id)
        scene_ids.add(scene.scene_id)
        fingerprints.add(scene_fingerprint(scene))
    return LeakReport(
        reference=name,
        num_reference_scenes=count,
        shared_clips=sorted({s.clip_id for scene in benchmark for s in scene.sources} & clips),
        shared_rooms=sorted({scene.room.room_id for scene in benchmark} & rooms),
        shared_scenes=sorted(
            scene.scene_id
            for scene in benchmark
            if scene.scene_id in scene_ids or scene_fingerprint(scene) in fingerprints
        ),
    )


def read_dataset_scenes(folder: str | os.PathLike) -> list[SceneSpec]:
    """Every scene (all splits) of a simulated or question dataset folder (`data/*.parquet` with a `scene` column)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    shards = sorted((folder / "data").rglob("*.parquet")) if (folder / "data").is_dir() else []
    if not shards:
        raise FileNotFoundError(
            f"{folder} has no data/*.parquet shards: --train-dataset takes a dataset folder written by "
            "`hf-spatial simulate` or `hf-spatial questions`."
        )
    texts: dict[str, str] = {}
    for shard in shards:
        columns = pq.read_schema(shard).names
        if "scene" not in columns:
            raise ValueError(f"{shard} has no 'scene' column; it is not a simulated or question dataset shard.")
        for text in pq.read_table(shard, columns=["scene"]).column("scene").to_pylist():
            texts.setdefault(text, text)  # question datasets repeat a scene once per question
    return [SceneSpec.from_json(text) for text in texts]
