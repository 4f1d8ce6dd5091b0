"""First-Order Ambisonics channel format: the one definition of channel order and normalisation.

This file lives in the model folder because `save_pretrained` copies it next to the remote code (it is
imported relatively by the feature extractor), so it may import numpy only. `hf_spatial.conventions`
re-exports it and adds the listener-frame geometry.

Format: AmbiX = ACN channel order W, Y, Z, X with SN3D normalisation (as DCASE / STARSS23).
A plane wave from azimuth az, elevation el has gains W=1, Y=sin(az)cos(el), Z=sin(el), X=cos(az)cos(el).
FuMa: channel order W, X, Y, Z with W scaled by 1/sqrt(2); at first order X, Y, Z equal SN3D.
"""

from __future__ import annotations

import numpy as np

AMBIX_CHANNELS: tuple[str, ...] = ("W", "Y", "Z", "X")
FUMA_CHANNELS: tuple[str, ...] = ("W", "X", "Y", "Z")
NUM_FOA_CHANNELS = 4
W, Y, Z, X = range(4)  # ACN indices of the AmbiX channels
FOA_FORMATS = ("ambix", "fuma")

_FUMA_W_SCALE = 1.0 / np.sqrt(2.0)
# fuma[i] = ambix[_AMBIX_FROM_FUMA_ORDER...]: the FuMa channel at position i is AmbiX channel _FUMA_ORDER[i].
_FUMA_ORDER = (W, X, Y, Z)


def _check_foa(foa: np.ndarray, axis: int, what: str) -> np.ndarray:
    foa = np.asarray(foa)
    if foa.ndim == 0 or foa.shape[axis] != NUM_FOA_CHANNELS:
        shape = foa.shape if foa.ndim else "a scalar"
        raise ValueError(
            f"{what} must have {NUM_FOA_CHANNELS} channels along axis {axis}, got shape {shape}. "
            "First-order ambisonics has exactly four channels; pass (4, num_samples) arrays, or set the "
            "`axis` argument to the channel axis."
        )
    return foa


def fuma_to_ambix(foa: np.ndarray, axis: int = 0) -> np.ndarray:
    """Convert FuMa (W X Y Z, W at -3 dB) to AmbiX (W Y Z X, SN3D). Returns a new float array."""
    foa = _check_foa(foa, axis, "FuMa input")
    fuma = np.moveaxis(np.asarray(foa, dtype=np.result_type(foa.dtype, np.float32)), axis, 0)
    ambix = np.empty_like(fuma)
    for fuma_index, acn_index in enumerate(_FUMA_ORDER):
        ambix[acn_index] = fuma[fuma_index]
    ambix[W] = ambix[W] / _FUMA_W_SCALE
    return np.moveaxis(ambix, 0, axis)


def ambix_to_fuma(foa: np.ndarray, axis: int = 0) -> np.ndarray:
    """Convert AmbiX (W Y Z X, SN3D) to FuMa (W X Y Z, W at -3 dB). Returns a new float array."""
    foa = _check_foa(foa, axis, "AmbiX input")
    ambix = np.moveaxis(np.asarray(foa, dtype=np.result_type(foa.dtype, np.float32)), axis, 0)
    fuma = np.empty_like(ambix)
    for fuma_index, acn_index in enumerate(_FUMA_ORDER):
        fuma[fuma_index] = ambix[acn_index]
    fuma[0] = fuma[0] * _FUMA_W_SCALE
    return np.moveaxis(fuma, 0, axis)


def to_ambix(foa: np.ndarray, input_format: str, axis: int = 0) -> np.ndarray:
    """Return `foa` in AmbiX given its declared `input_format` ("ambix" or "fuma"); never guesses."""
    if input_format == "ambix":
        return np.asarray(_check_foa(foa, axis, "AmbiX input"))
    if input_format == "fuma":
        return fuma_to_ambix(foa, axis=axis)
    raise ValueError(f"Unknown FOA format {input_format!r}; expected one of {FOA_FORMATS}.")


def sn3d_gains(azimuth_deg: float | np.ndarray, elevation_deg: float | np.ndarray) -> np.ndarray:
    """AmbiX (ACN/SN3D) gains of a plane wave, shape (..., 4) in the order W, Y, Z, X."""
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.deg2rad(np.asarray(elevation_deg, dtype=np.float64))
    az, el = np.broadcast_arrays(az, el)
    return np.stack([np.ones_like(az), np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)], axis=-1)
