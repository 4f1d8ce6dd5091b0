"""Exact First-Order Ambisonics augmentation for the encoder stage: sound-field rotations about the vertical axis and
the reflections of Mazzon et al. (2019), applied to the audio and, by the same rule, to the direction labels.

At first order (SN3D) the X, Y, Z channels of every plane wave in a field are W times its direction cosines, so an
orthogonal map M of the listener frame acts on [X, Y, Z] exactly as on a direction vector, W unchanged, for the
direct path, every reflection and the diffuse part alike. A transform here is a left-right mirror (Y -> -Y: azimuth
-> -azimuth), an up-down mirror (Z -> -Z: elevation -> -elevation), then a rotation about z by any angle (azimuth
-> azimuth + angle), built from the conventions' `mirror_foa` and `rotate_foa`. With angles k * 90 degrees these are
the 16 channel swaps and sign flips of Mazzon et al.; `rotation` draws any angle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hf_spatial.conventions import X, Y, Z, mirror_foa, rotate_foa

AugmentationMode = Literal["none", "mazzon16", "rotation"]
AUGMENTATION_MODES: tuple[str, ...] = ("none", "mazzon16", "rotation")


@dataclass(frozen=True)
class FOATransform:
    """Mirror left-right, mirror up-down, then rotate about z by `rotation_deg` (in that order)."""

    rotation_deg: float = 0.0
    mirror_left_right: bool = False
    mirror_up_down: bool = False

    def apply_foa(self, foa: np.ndarray, axis: int = 0) -> np.ndarray:
        """The transformed AmbiX field (a new array); `axis` is the channel axis."""
        if self.mirror_left_right:
            foa = mirror_foa(foa, "left_right", axis=axis)
        if self.mirror_up_down:
            foa = mirror_foa(foa, "up_down", axis=axis)
        return rotate_foa(foa, self.rotation_deg, axis=axis)

    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) map of listener-frame vectors (x, y, z): the audio transform applied to the unit axes, so labels
        move exactly as the field does."""
        basis = np.zeros((4, 3))
        basis[[X, Y, Z], [0, 1, 2]] = 1.0
        return self.apply_foa(basis)[[X, Y, Z]].astype(np.float64)

    def apply_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Transformed direction vectors `(..., 3)` (zero vectors, e.g. padded slots, stay zero)."""
        vectors = np.asarray(vectors)
        return (vectors @ self.matrix.T).astype(vectors.dtype)


# The 16 transforms of Mazzon et al. (2019): azimuth -> +-azimuth + k * 90 degrees, elevation -> +-elevation.
MAZZON_TRANSFORMS: tuple[FOATransform, ...] = tuple(
    FOATransform(90.0 * k, left_right, up_down)
    for k in range(4)
    for left_right in (False, True)
    for up_down in (False, True)
)


def sample_transform(mode: AugmentationMode, rng: np.random.Generator | None) -> FOATransform:
    """A random transform: `mazzon16` one of the 16 uniformly, `rotation` any angle with random mirrors."""
    if mode == "none":
        return FOATransform()
    if mode == "mazzon16":
        return MAZZON_TRANSFORMS[int(rng.integers(len(MAZZON_TRANSFORMS)))]
    if mode == "rotation":
        left_right, up_down = (bool(flip) for flip in rng.integers(2, size=2))
        return FOATransform(float(rng.uniform(0.0, 360.0)), left_right, up_down)
    raise ValueError(f"Unknown augmentation {mode!r}; expected one of {AUGMENTATION_MODES}.")


__all__ = ["AUGMENTATION_MODES", "MAZZON_TRANSFORMS", "FOATransform", "sample_transform"]
