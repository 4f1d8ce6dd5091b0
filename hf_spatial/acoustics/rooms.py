"""Shoebox rooms: sampling, physical feasibility, and disjoint train/test room sets.

Room `i` of split `s` is a deterministic function of (s, i, RoomSamplerConfig) only, never of a dataset seed, so
"test-room-0007" is the same room in every dataset and no test room can appear in a training set.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from hf_spatial.acoustics.scene import RoomSpec

SPEED_OF_SOUND = 343.0  # m/s, pyroomacoustics' default
MAX_ABSORPTION = 0.95  # beyond this a "room" is closer to free field than to a room


@dataclass(frozen=True)
class RoomSamplerConfig:
    """Ranges rooms are drawn from (uniform), and how many distinct rooms each split has."""

    length: tuple[float, float] = (3.0, 10.0)
    width: tuple[float, float] = (3.0, 8.0)
    height: tuple[float, float] = (2.5, 4.0)
    rt60: tuple[float, float] = (0.2, 1.2)
    listener_wall_margin: float = 1.0  # metres between the listener and any wall
    listener_height: tuple[float, float] = (1.2, 1.8)
    num_train_rooms: int = 500
    num_test_rooms: int = 100

    def num_rooms(self, split: str) -> int:
        return self.num_train_rooms if split == "train" else self.num_test_rooms


def _fibonacci_sphere(count: int) -> np.ndarray:
    """`count` nearly uniform unit vectors (golden-angle spiral), shape (count, 3) in (x, y, z)."""
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    phi = np.pi * (1.0 + 5.0**0.5) * i
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


SPHERE_DIRECTIONS = _fibonacci_sphere(1024)


def reflections_per_metre(dimensions: tuple[float, float, float]) -> np.ndarray:
    """For each of SPHERE_DIRECTIONS u: wall reflections per metre of an image source seen in direction u,
    |u_x|/L_x + |u_y|/L_y + |u_z|/L_z (images of a shoebox source tile space with the room's mirrored copies)."""
    return np.abs(SPHERE_DIRECTIONS) @ (1.0 / np.asarray(dimensions, dtype=np.float64))


_CALIBRATION_DIRECTIONS = np.abs(_fibonacci_sphere(16384))


@lru_cache(maxsize=4096)
def _decay_constant(dimensions: tuple[float, float, float]) -> float:
    """T30-based reverberation time x (-ln(1 - absorption) c) of a shoebox, a constant of its shape.

    The expected energy of the image sources arriving at time t is proportional to mean_u (1 - a)^(c t g(u)) with
    g = `reflections_per_metre`; in units tau = -ln(1 - a) c t its Schroeder curve depends on the shape only. The
    mean over directions is taken over a histogram of g (16k directions: the slowly decaying near-axis
    directions dominate late, so they need a fine sampling).
    """
    g = _CALIBRATION_DIRECTIONS @ (1.0 / np.asarray(dimensions, dtype=np.float64))
    counts, edges = np.histogram(g, bins=128)
    centres = (edges[:-1] + edges[1:]) / 2.0
    tau = np.linspace(0.0, 40.0 / g.min(), 1000)
    schroeder = (np.exp(-np.outer(tau, centres)) / centres) @ (counts / counts.sum())
    level_db = -10.0 * np.log10(schroeder / schroeder[0])
    return float(2.0 * (np.interp(35.0, level_db, tau) - np.interp(5.0, level_db, tau)))


def wall_absorption(rt60: float, dimensions: tuple[float, float, float]) -> tuple[float, int]:
    """(energy absorption coefficient of all walls, exact image-source order) giving a shoebox the RT60 `rt60`.

    Sabine's inversion (`pyroomacoustics.inverse_sabine`) assumes an isotropic diffuse field; image sources in a
    shoebox decay more slowly along the long axes, so Sabine rooms measure up to 60% longer RT60 than asked in
    elongated rooms. Here the absorption is chosen so that the expected image-source energy decay has a T30 equal
    to `rt60` (this reduces to Eyring's formula in an isotropic field); measured T30s then land within about 10%
    (tests/test_render.py). The order is pyroomacoustics': images up to distance c * rt60 are all included.
    ValueError naming the fix if the room cannot be that dry.
    """
    dimensions = tuple(float(d) for d in dimensions)
    exponent = _decay_constant(dimensions) / (SPEED_OF_SOUND * rt60)
    absorption = 1.0 - np.exp(-exponent)
    if absorption > MAX_ABSORPTION:
        shortest = _decay_constant(dimensions) / (SPEED_OF_SOUND * -np.log(1.0 - MAX_ABSORPTION))
        raise ValueError(
            f"Impossible room: RT60 {rt60:.2f} s in a {' x '.join(f'{d:.2f}' for d in dimensions)} m room needs walls "
            f"absorbing {100 * absorption:.1f}% of incident energy; the shortest RT60 this room can have with "
            f"{100 * MAX_ABSORPTION:.0f}% absorbing walls is {shortest:.2f} s. Raise the RT60 or make the room smaller."
        )
    radii = [a * b / np.hypot(a, b) for a, b in itertools.combinations(dimensions, 2)]
    max_order = int(np.ceil(SPEED_OF_SOUND * rt60 / min(radii) - 1))
    return float(absorption), max(max_order, 1)


def sample_room(rng: np.random.Generator, config: RoomSamplerConfig, room_id: str) -> RoomSpec:
    """Draw a feasible room (see `wall_absorption`) with a listener away from walls."""
    for _ in range(1000):
        dims = (rng.uniform(*config.length), rng.uniform(*config.width), rng.uniform(*config.height))
        dims = tuple(round(d, 3) for d in dims)
        rt60 = round(float(rng.uniform(*config.rt60)), 3)
        margin = config.listener_wall_margin
        if min(dims[:2]) <= 2 * margin or dims[2] <= config.listener_height[0]:
            continue
        try:
            wall_absorption(rt60, dims)
        except ValueError:
            continue
        listener = (
            rng.uniform(margin, dims[0] - margin),
            rng.uniform(margin, dims[1] - margin),
            rng.uniform(config.listener_height[0], min(config.listener_height[1], dims[2] - 0.3)),
        )
        return RoomSpec(
            room_id=room_id, dimensions=dims, rt60=rt60, listener_position=tuple(round(v, 3) for v in listener)
        )
    raise ValueError(f"Could not sample a feasible room from {config}; widen the RT60 or dimension ranges.")


def room_set(split: str, config: RoomSamplerConfig = RoomSamplerConfig()) -> RoomSet:
    """The rooms of a split (see `RoomSet`)."""
    if split not in ("train", "test"):
        raise ValueError(f"Unknown split {split!r}; expected 'train' or 'test'.")
    return RoomSet(split, config)


@dataclass(frozen=True)
class RoomSet:
    """The `len(self)` rooms `{split}-room-{i:04d}` of a split, each drawn on first access from a generator seeded
    by (split, i, config)."""

    split: str
    config: RoomSamplerConfig

    def __len__(self) -> int:
        return self.config.num_rooms(self.split)

    def __getitem__(self, index: int) -> RoomSpec:
        if not 0 <= index < len(self):
            raise IndexError(f"Room index {index} out of range for the {len(self)} {self.split} rooms.")
        return _room(self.split, index, self.config)

    def __iter__(self) -> Iterator[RoomSpec]:
        return (self[index] for index in range(len(self)))


@lru_cache(maxsize=4096)
def _room(split: str, index: int, config: RoomSamplerConfig) -> RoomSpec:
    config_key = repr(sorted(asdict(config).items()))
    digest = hashlib.sha256(f"room/{split}/{index}/{config_key}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return sample_room(rng, config, f"{split}-room-{index:04d}")
