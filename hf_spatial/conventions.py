"""FOA conventions and listener-frame geometry: the only place where angles are defined.

Listener frame: x = front, y = left, z = up. Azimuth in degrees, counter-clockwise from the front, in
(-180, 180]; +90 is left. Elevation in degrees, +90 is up. Distances in metres from the array centre.

Rates: scenes and every FOA clip are at `SAMPLE_RATE` (24 kHz); the language model's audio tokens, and the spatial
encoder's slots aligned to them, run at `TOKEN_RATE_HZ` (25 per second).

The channel format (AmbiX = ACN W, Y, Z, X with SN3D; FuMa conversion) is defined once in the model folder's
`foa_format` module, which must stay importable by `trust_remote_code` checkpoints, and re-exported here.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from hf_spatial.models.spatial_qwen_audio.foa_format import (
    AMBIX_CHANNELS,
    FOA_FORMATS,
    FUMA_CHANNELS,
    NUM_FOA_CHANNELS,
    W,
    X,
    Y,
    Z,
    ambix_to_fuma,
    fuma_to_ambix,
    sn3d_gains,
    to_ambix,
)

__all__ = [
    "AMBIX_CHANNELS",
    "FOA_FORMATS",
    "FUMA_CHANNELS",
    "NUM_FOA_CHANNELS",
    "SAMPLE_RATE",
    "SECTORS",
    "TOKEN_RATE_HZ",
    "W",
    "X",
    "Y",
    "Z",
    "ambix_to_fuma",
    "angular_distance",
    "azimuth_to_sector",
    "cartesian_to_spherical",
    "encode_plane_wave",
    "fuma_to_ambix",
    "mirror_direction",
    "mirror_foa",
    "relative_direction",
    "relative_sector",
    "rotate_direction",
    "rotate_foa",
    "sector_boundary_margin",
    "sn3d_gains",
    "spherical_to_cartesian",
    "to_ambix",
    "unit_vector",
    "wrap_azimuth",
]

SAMPLE_RATE = 24000  # Hz, of scenes, datasets and benchmarks (the model folder's feature extractor defaults to it too)
TOKEN_RATE_HZ = 25.0  # Qwen2-Audio audio tokens per second; the spatial map is aligned to them

Sector = Literal["front", "left", "back", "right"]
# Sectors of 90 degrees centred on 0 / 90 / 180 / -90 degrees azimuth.
SECTORS: tuple[Sector, ...] = ("front", "left", "back", "right")
SECTOR_CENTRES: dict[Sector, float] = {"front": 0.0, "left": 90.0, "back": 180.0, "right": -90.0}
MirrorPlane = Literal["left_right", "front_back", "up_down"]

_EPS = 1e-9


def wrap_azimuth(azimuth_deg: float | np.ndarray) -> float | np.ndarray:
    """Wrap azimuths to (-180, 180]; -180 maps to 180."""
    wrapped = 180.0 - np.mod(180.0 - np.asarray(azimuth_deg, dtype=np.float64), 360.0)
    return float(wrapped) if np.ndim(wrapped) == 0 else wrapped


def spherical_to_cartesian(
    azimuth_deg: float | np.ndarray, elevation_deg: float | np.ndarray, distance: float | np.ndarray = 1.0
) -> np.ndarray:
    """(azimuth, elevation, distance) -> (..., 3) Cartesian (x front, y left, z up)."""
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.deg2rad(np.asarray(elevation_deg, dtype=np.float64))
    r = np.asarray(distance, dtype=np.float64)
    az, el, r = np.broadcast_arrays(az, el, r)
    return np.stack([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)], axis=-1)


def unit_vector(azimuth_deg: float | np.ndarray, elevation_deg: float | np.ndarray) -> np.ndarray:
    """Unit direction vector(s), shape (..., 3)."""
    return spherical_to_cartesian(azimuth_deg, elevation_deg, 1.0)


def cartesian_to_spherical(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., 3) Cartesian -> (azimuth in (-180, 180], elevation, distance), each of shape (...).

    At the poles (x = y = 0) the azimuth is undefined and reported as 0. A zero vector has no direction
    and raises ValueError.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.shape[-1:] != (3,):
        raise ValueError(f"Expected Cartesian vectors of shape (..., 3), got {xyz.shape}.")
    r = np.linalg.norm(xyz, axis=-1)
    if np.any(r < _EPS):
        raise ValueError(
            "Zero-length vector has no direction: two positions coincide (source at the listener, or two "
            "sources at the same place). Move them apart before asking for a direction."
        )
    horizontal = np.hypot(xyz[..., 0], xyz[..., 1])
    az = np.where(horizontal < _EPS * r, 0.0, np.rad2deg(np.arctan2(xyz[..., 1], xyz[..., 0])))
    el = np.rad2deg(np.arctan2(xyz[..., 2], horizontal))
    return np.asarray(wrap_azimuth(az)), el, r


def angular_distance(
    azimuth1_deg: float | np.ndarray,
    elevation1_deg: float | np.ndarray,
    azimuth2_deg: float | np.ndarray,
    elevation2_deg: float | np.ndarray,
) -> float | np.ndarray:
    """Great-circle angle in degrees between two directions (numerically stable haversine-free form)."""
    u = unit_vector(azimuth1_deg, elevation1_deg)
    v = unit_vector(azimuth2_deg, elevation2_deg)
    # atan2(|u x v|, u . v) is accurate for both tiny and near-180 degree angles, unlike arccos.
    angle = np.rad2deg(np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.sum(u * v, axis=-1)))
    return float(angle) if np.ndim(angle) == 0 else angle


def encode_plane_wave(signal: np.ndarray, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Encode a mono signal (T,) as an AmbiX plane wave from (azimuth, elevation): returns (4, T)."""
    signal = np.asarray(signal)
    if signal.ndim != 1:
        raise ValueError(f"Expected a mono signal of shape (num_samples,), got {signal.shape}; downmix first.")
    gains = sn3d_gains(azimuth_deg, elevation_deg).astype(np.result_type(signal.dtype, np.float32))
    return gains[:, None] * signal[None, :]


def rotate_foa(foa: np.ndarray, angle_deg: float, axis: int = 0) -> np.ndarray:
    """Rotate an AmbiX sound field about the vertical axis by `angle_deg` (exact at first order).

    X' = X cos a - Y sin a, Y' = X sin a + Y cos a; W and Z are unchanged. A source at azimuth az moves to
    az + a: rotating by +90 degrees brings a front source to the left. A listener who turns left by a hears
    the field rotated by -a.
    """
    foa = np.moveaxis(np.array(foa, dtype=np.result_type(np.asarray(foa).dtype, np.float32)), axis, 0)
    if foa.shape[0] != NUM_FOA_CHANNELS:
        raise ValueError(f"Expected {NUM_FOA_CHANNELS} AmbiX channels on axis {axis}, got shape {foa.shape}.")
    a = np.deg2rad(angle_deg)
    x, y = foa[X].copy(), foa[Y].copy()
    foa[X] = x * np.cos(a) - y * np.sin(a)
    foa[Y] = x * np.sin(a) + y * np.cos(a)
    return np.moveaxis(foa, 0, axis)


def rotate_direction(azimuth_deg: float | np.ndarray, angle_deg: float) -> float | np.ndarray:
    """Azimuth of a source after `rotate_foa(..., angle_deg)`; elevation is unchanged."""
    return wrap_azimuth(np.asarray(azimuth_deg, dtype=np.float64) + angle_deg)


_MIRROR_CHANNEL = {"left_right": Y, "front_back": X, "up_down": Z}


def mirror_foa(foa: np.ndarray, plane: MirrorPlane, axis: int = 0) -> np.ndarray:
    """Mirror an AmbiX field: "left_right" negates Y (az -> -az), "front_back" negates X (az -> 180 - az),
    "up_down" negates Z (el -> -el)."""
    if plane not in _MIRROR_CHANNEL:
        raise ValueError(f"Unknown mirror plane {plane!r}; expected one of {tuple(_MIRROR_CHANNEL)}.")
    foa = np.moveaxis(np.array(foa, dtype=np.result_type(np.asarray(foa).dtype, np.float32)), axis, 0)
    if foa.shape[0] != NUM_FOA_CHANNELS:
        raise ValueError(f"Expected {NUM_FOA_CHANNELS} AmbiX channels on axis {axis}, got shape {foa.shape}.")
    foa[_MIRROR_CHANNEL[plane]] *= -1
    return np.moveaxis(foa, 0, axis)


def mirror_direction(azimuth_deg: float, elevation_deg: float, plane: MirrorPlane) -> tuple[float, float]:
    """Direction of a source after `mirror_foa(..., plane)`."""
    if plane == "left_right":
        return wrap_azimuth(-azimuth_deg), elevation_deg
    if plane == "front_back":
        return wrap_azimuth(180.0 - azimuth_deg), elevation_deg
    if plane == "up_down":
        return wrap_azimuth(azimuth_deg), -elevation_deg
    raise ValueError(f"Unknown mirror plane {plane!r}; expected one of {tuple(_MIRROR_CHANNEL)}.")


def azimuth_to_sector(azimuth_deg: float) -> Sector:
    """Quantise an azimuth to Front/Left/Back/Right sectors of 90 degrees centred on 0/90/180/-90.

    Intervals are half-open counter-clockwise, like the azimuth range itself: front (-45, 45],
    left (45, 135], back (135, 180] and (-180, -135], right (-135, -45].
    """
    az = wrap_azimuth(azimuth_deg)
    if -45.0 < az <= 45.0:
        return "front"
    if 45.0 < az <= 135.0:
        return "left"
    if -135.0 < az <= -45.0:
        return "right"
    return "back"


def sector_boundary_margin(azimuth_deg: float) -> float:
    """Degrees from `azimuth_deg` to the nearest sector boundary (+-45, +-135); 0 on a boundary.

    Question generators use it to skip directions too close to a boundary to have one right answer.
    """
    offset = np.mod(np.asarray(azimuth_deg, dtype=np.float64) - 45.0, 90.0)
    return float(min(offset, 90.0 - offset))


def relative_direction(position_a: np.ndarray, position_b: np.ndarray) -> tuple[float, float, float]:
    """Direction (azimuth, elevation, distance) of A seen from B: the vector pos(A) - pos(B), listener frame."""
    delta = np.asarray(position_a, dtype=np.float64) - np.asarray(position_b, dtype=np.float64)
    az, el, r = cartesian_to_spherical(delta)
    return float(az), float(el), float(r)


def relative_sector(position_a: np.ndarray, position_b: np.ndarray) -> Sector:
    """ "A relative to B": the sector of the azimuth of pos(A) - pos(B) in the listener frame."""
    return azimuth_to_sector(relative_direction(position_a, position_b)[0])
