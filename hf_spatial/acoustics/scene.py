"""`SceneSpec`: the one description of a scene that drives rendering, questions, rewards and scoring.

A SceneSpec is JSON-serialisable and holds every field needed to re-render the scene bit-identically.
Rooms are shoeboxes whose axes are aligned with the listener frame (the listener faces the room's +x axis),
so a source's room position is `listener + spherical_to_cartesian(azimuth, elevation, distance)`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hf_spatial.conventions import SAMPLE_RATE, relative_direction, spherical_to_cartesian

MAX_SOURCES = 3
RENDER_MODES = ("exact", "hybrid")
NOISE_KINDS = ("none", "diffuse_white", "diffuse_pink")


@dataclass
class RoomSpec:
    """A shoebox room: `dimensions` (length x, width y, height z) in metres, target `rt60` in seconds."""

    room_id: str
    dimensions: tuple[float, float, float]
    rt60: float
    listener_position: tuple[float, float, float]

    def __post_init__(self) -> None:
        self.dimensions = tuple(float(v) for v in self.dimensions)
        self.listener_position = tuple(float(v) for v in self.listener_position)

    @property
    def volume(self) -> float:
        return float(np.prod(self.dimensions))

    def contains(self, position: np.ndarray, margin: float = 0.0) -> bool:
        position = np.asarray(position, dtype=np.float64)
        return bool(np.all(position >= margin) and np.all(position <= np.asarray(self.dimensions) - margin))


@dataclass
class SourceSpec:
    """One sound source: what it is (clip, class, caption), when it plays and where it is (listener frame)."""

    clip_id: str
    label: str
    azimuth: float
    elevation: float
    distance: float
    onset: float
    offset: float
    gain_db: float = 0.0
    caption: str = ""
    clip_start: float = 0.0  # seconds into the clip where playback starts

    @property
    def direction_xyz(self) -> np.ndarray:
        """Position relative to the listener, metres (x front, y left, z up)."""
        return spherical_to_cartesian(self.azimuth, self.elevation, self.distance)


@dataclass
class NoiseSpec:
    """Background noise: `kind` in NOISE_KINDS, at `snr_db` relative to the summed sources."""

    kind: str = "none"
    snr_db: float | None = None


@dataclass
class SceneSpec:
    """A complete, re-renderable scene description (see the module docstring for the frame)."""

    scene_id: str
    room: RoomSpec
    sources: list[SourceSpec]
    seed: int
    split: str = "train"
    duration: float = 5.0
    sample_rate: int = SAMPLE_RATE
    noise: NoiseSpec = field(default_factory=NoiseSpec)
    render_mode: str = "exact"
    renderer_version: str = "1"
    output_gain_db: float = 0.0  # gain applied after rendering (clipping-safe normalisation)

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------------------------------- geometry
    def source_position(self, index: int) -> np.ndarray:
        """Absolute room coordinates (metres) of source `index`."""
        return np.asarray(self.room.listener_position) + self.sources[index].direction_xyz

    def relative_direction(self, index_a: int, index_b: int) -> tuple[float, float, float]:
        """(azimuth, elevation, distance) of source A as seen from source B, listener-frame axes."""
        return relative_direction(self.source_position(index_a), self.source_position(index_b))

    @property
    def labels(self) -> list[str]:
        return [source.label for source in self.sources]

    # --------------------------------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise ValueError naming the problem if the scene cannot be rendered as described."""
        if not 1 <= len(self.sources) <= MAX_SOURCES:
            raise ValueError(f"Scene {self.scene_id}: needs 1 to {MAX_SOURCES} sources, got {len(self.sources)}.")
        if self.render_mode not in RENDER_MODES:
            raise ValueError(f"Scene {self.scene_id}: render_mode {self.render_mode!r} not in {RENDER_MODES}.")
        if self.noise.kind not in NOISE_KINDS:
            raise ValueError(f"Scene {self.scene_id}: noise kind {self.noise.kind!r} not in {NOISE_KINDS}.")
        if self.noise.kind != "none" and self.noise.snr_db is None:
            raise ValueError(f"Scene {self.scene_id}: noise {self.noise.kind!r} needs an snr_db.")
        if self.duration <= 0 or self.sample_rate <= 0:
            raise ValueError(f"Scene {self.scene_id}: duration and sample_rate must be positive.")
        dims = np.asarray(self.room.dimensions)
        if dims.shape != (3,) or np.any(dims <= 0):
            raise ValueError(f"Scene {self.scene_id}: room dimensions must be three positive lengths, got {dims}.")
        if self.room.rt60 <= 0:
            raise ValueError(f"Scene {self.scene_id}: rt60 must be positive, got {self.room.rt60}.")
        if not self.room.contains(self.room.listener_position):
            raise ValueError(
                f"Scene {self.scene_id}: listener {self.room.listener_position} is outside the room {dims}."
            )
        for i, source in enumerate(self.sources):
            if source.distance <= 0:
                raise ValueError(f"Scene {self.scene_id}: source {i} distance must be positive.")
            if not -90.0 <= source.elevation <= 90.0:
                raise ValueError(f"Scene {self.scene_id}: source {i} elevation {source.elevation} not in [-90, 90].")
            if not 0.0 <= source.onset < source.offset <= self.duration + 1e-9:
                raise ValueError(
                    f"Scene {self.scene_id}: source {i} must satisfy 0 <= onset < offset <= duration "
                    f"({source.onset}, {source.offset}, {self.duration})."
                )
            if not self.room.contains(self.source_position(i)):
                raise ValueError(
                    f"Scene {self.scene_id}: source {i} at {self.source_position(i).round(2).tolist()} lies "
                    f"outside the room {dims.tolist()}; reduce its distance or enlarge the room."
                )

    # ------------------------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): equal scenes give equal strings."""
        return json.dumps(_jsonable(self.to_dict()), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneSpec:
        data = dict(data)
        data["room"] = RoomSpec(**data["room"])
        data["sources"] = [SourceSpec(**source) for source in data["sources"]]
        data["noise"] = NoiseSpec(**data.get("noise") or {})
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> SceneSpec:
        if not text or not text.strip():
            raise ValueError(
                "Empty `scene`: this row has no SceneSpec. Real recordings (hf-spatial convert starss23) carry "
                "`dcase_labels` only and can train the encoder stage, not the caption/question stages."
            )
        return cls.from_dict(json.loads(text))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
