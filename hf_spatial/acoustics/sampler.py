"""`SceneSampler`: draws `SceneSpec`s (pure geometry and metadata, no audio) from a source bank and room sets.

Scene `i` of (seed, split) is drawn from its own generator seeded by (seed, split, i), so `sample(N)` is a
prefix of `sample(N + k)` and any shard of a dataset can be drawn without drawing the ones before it.
Test scenes use only test clips and test rooms (see `SourceBank.split` and `rooms.room_set`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hf_spatial.acoustics.rooms import RoomSamplerConfig, RoomSet, room_set
from hf_spatial.acoustics.scene import MAX_SOURCES, NOISE_KINDS, NoiseSpec, RoomSpec, SceneSpec, SourceSpec
from hf_spatial.acoustics.sources import Clip, SourceBank
from hf_spatial.conventions import SAMPLE_RATE, angular_distance, unit_vector

_SPLIT_CODES = {"train": 0, "test": 1}


@dataclass(frozen=True)
class SceneSamplerConfig:
    """Ranges scenes are drawn from (uniform unless stated)."""

    duration: float = 5.0
    sample_rate: int = SAMPLE_RATE
    num_sources: tuple[int, int] = (1, 3)  # inclusive
    azimuth: tuple[float, float] = (-180.0, 180.0)
    elevation: tuple[float, float] = (-45.0, 45.0)
    distance: tuple[float, float] = (0.5, 5.0)
    source_wall_margin: float = 0.3  # metres between a source and any wall
    min_separation_deg: float = 20.0  # between the directions of two sources of one scene
    distinct_labels: bool = True  # no two sources of one scene share a class (when the bank has enough classes)
    min_event_duration: float = 0.5  # seconds (shorter clips play whole)
    gain_db: tuple[float, float] = (-6.0, 0.0)
    noise_probability: float = 0.5
    noise_kinds: tuple[str, ...] = ("diffuse_white", "diffuse_pink")
    snr_db: tuple[float, float] = (10.0, 30.0)
    render_mode: str = "exact"
    rooms: RoomSamplerConfig = field(default_factory=RoomSamplerConfig)

    def __post_init__(self) -> None:
        low, high = self.num_sources
        if not 1 <= low <= high <= MAX_SOURCES:
            raise ValueError(f"num_sources must satisfy 1 <= min <= max <= {MAX_SOURCES}, got {self.num_sources}.")
        if self.distance[0] <= 0 or self.distance[0] > self.distance[1]:
            raise ValueError(f"distance range must be positive and increasing, got {self.distance}.")
        if not -90 <= self.elevation[0] <= self.elevation[1] <= 90:
            raise ValueError(f"elevation range must lie in [-90, 90], got {self.elevation}.")
        unknown = set(self.noise_kinds) - set(NOISE_KINDS[1:])
        if unknown:
            raise ValueError(f"Unknown noise kind(s) {sorted(unknown)}; available: {NOISE_KINDS[1:]}.")
        if self.duration <= 0:
            raise ValueError(f"duration must be positive, got {self.duration}.")


class SceneSampler:
    """Draws scenes; see the module docstring for determinism and the train/test separation."""

    def __init__(self, config: SceneSamplerConfig, bank: SourceBank):
        self.config = config
        self.bank = bank

    def sample(self, num_scenes: int, seed: int, split: str = "train", start: int = 0) -> list[SceneSpec]:
        """Scenes `start .. start + num_scenes - 1` of (seed, split)."""
        bank = self.bank.split(split)
        by_label: dict[str, list[Clip]] = {}
        for clip in bank.clips:
            by_label.setdefault(clip.label, []).append(clip)
        rooms = room_set(split, self.config.rooms)
        return [self._sample_one(index, seed, split, by_label, rooms) for index in range(start, start + num_scenes)]

    def _sample_one(
        self, index: int, seed: int, split: str, by_label: dict[str, list[Clip]], rooms: RoomSet
    ) -> SceneSpec:
        config = self.config
        rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
        room = rooms[int(rng.integers(len(rooms)))]
        num_sources = int(rng.integers(config.num_sources[0], config.num_sources[1] + 1))
        clips = self._pick_clips(rng, by_label, num_sources)
        sources: list[SourceSpec] = []
        for clip in clips:
            azimuth, elevation, distance = self._place(rng, room, sources)
            event = min(clip.duration, config.duration)
            length = rng.uniform(min(config.min_event_duration, event), event)
            onset = rng.uniform(0.0, config.duration - length)
            clip_start = rng.uniform(0.0, clip.duration - length)
            sources.append(
                SourceSpec(
                    clip_id=clip.clip_id,
                    label=clip.label,
                    azimuth=round(azimuth, 3),
                    elevation=round(elevation, 3),
                    distance=round(distance, 3),
                    onset=round(onset, 3),
                    offset=round(min(onset + length, config.duration), 3),
                    gain_db=round(float(rng.uniform(*config.gain_db)), 2),
                    caption=clip.caption,
                    clip_start=round(clip_start, 3),
                )
            )
        noise = NoiseSpec()
        if config.noise_kinds and rng.uniform() < config.noise_probability:
            kind = config.noise_kinds[int(rng.integers(len(config.noise_kinds)))]
            noise = NoiseSpec(kind=kind, snr_db=round(float(rng.uniform(*config.snr_db)), 2))
        return SceneSpec(
            scene_id=f"{split}-s{seed}-{index:06d}",
            room=room,
            sources=sources,
            seed=int(rng.integers(2**31)),
            split=split,
            duration=config.duration,
            sample_rate=config.sample_rate,
            noise=noise,
            render_mode=config.render_mode,
        )

    def _pick_clips(self, rng: np.random.Generator, by_label: dict[str, list[Clip]], num_sources: int) -> list[Clip]:
        """A class per source (distinct when asked and possible), then a clip of that class."""
        labels = sorted(by_label)
        distinct = self.config.distinct_labels and len(labels) >= num_sources
        chosen = rng.choice(len(labels), size=num_sources, replace=not distinct)
        return [by_label[labels[i]][int(rng.integers(len(by_label[labels[i]])))] for i in chosen]

    def _place(self, rng: np.random.Generator, room: RoomSpec, placed: list[SourceSpec]) -> tuple[float, float, float]:
        """A direction inside the ranges, far enough from placed sources, with a distance that stays inside the
        room (`source_wall_margin` from every wall)."""
        config = self.config
        listener, dims = np.asarray(room.listener_position), np.asarray(room.dimensions)
        for _ in range(1000):
            azimuth = float(rng.uniform(*config.azimuth))
            elevation = float(rng.uniform(*config.elevation))
            if any(
                angular_distance(azimuth, elevation, other.azimuth, other.elevation) < config.min_separation_deg
                for other in placed
            ):
                continue
            direction = unit_vector(azimuth, elevation)
            # Largest distance along `direction` keeping the source `source_wall_margin` inside every wall.
            with np.errstate(divide="ignore"):
                limits = np.where(
                    direction > 0,
                    (dims - config.source_wall_margin - listener) / direction,
                    np.where(direction < 0, (config.source_wall_margin - listener) / direction, np.inf),
                )
            max_distance = min(float(limits.min()), config.distance[1])
            if max_distance >= config.distance[0]:
                return azimuth, elevation, float(rng.uniform(config.distance[0], max_distance))
        raise ValueError(
            f"Could not place a source in room {room.room_id} {room.dimensions} with distance >= "
            f"{config.distance[0]} m; lower the minimum distance or the wall margin."
        )
