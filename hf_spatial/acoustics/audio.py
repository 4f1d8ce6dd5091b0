"""Reading and conditioning mono source clips: decode, downmix, resample to 24 kHz, trim silence, normalise.

Every clip that enters a scene goes through `prepare_clip`, so that sources of different origins (user files,
Debian packages, procedural synthesis) share one sample rate and one loudness reference.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from hf_spatial.conventions import SAMPLE_RATE

# Active-frame RMS every clip is normalised to (dBFS). Peaks of typical clips then stay below full scale and a
# source at 1 m (pyroomacoustics' 1/r law) renders at its clip level.
TARGET_RMS_DBFS = -20.0
# Frames quieter than this relative to the loudest frame count as silence (trimming and loudness).
SILENCE_THRESHOLD_DB = -45.0
FRAME_SECONDS = 0.01
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".au")


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode an audio file to (num_samples, num_channels) float32 and its sample rate; clear error if corrupt."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Audio file not found: {path}")
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises LibsndfileError/RuntimeError/TypeError depending on the damage
        raise ValueError(
            f"Could not decode audio file {path}: {error}. Re-export it as WAV/FLAC/OGG or remove it from the bank."
        ) from error
    if data.shape[0] == 0:
        raise ValueError(f"Audio file {path} contains no samples; remove it from the bank.")
    return data, int(sample_rate)


def resample(signal: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling along the last axis (exact rational ratio)."""
    if orig_sr == target_sr:
        return signal
    from scipy.signal import resample_poly

    ratio = Fraction(target_sr, orig_sr)
    return resample_poly(signal, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def frame_rms_db(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS level in dB of consecutive 10 ms frames (the last partial frame included)."""
    frame = max(1, round(FRAME_SECONDS * sample_rate))
    padded = np.pad(signal, (0, (-len(signal)) % frame))
    power = np.mean(padded.reshape(-1, frame).astype(np.float64) ** 2, axis=1)
    return 10.0 * np.log10(np.maximum(power, 1e-20))


def trim_silence(signal: np.ndarray, sample_rate: int, threshold_db: float = SILENCE_THRESHOLD_DB) -> np.ndarray:
    """Drop leading and trailing frames more than `threshold_db` below the loudest frame."""
    levels = frame_rms_db(signal, sample_rate)
    active = np.flatnonzero(levels > levels.max() + threshold_db)
    frame = max(1, round(FRAME_SECONDS * sample_rate))
    return signal[active[0] * frame : min(len(signal), (active[-1] + 1) * frame)]


def normalise_loudness(signal: np.ndarray, sample_rate: int, target_dbfs: float = TARGET_RMS_DBFS) -> np.ndarray:
    """Scale so that the RMS over active frames (gated like `trim_silence`) is `target_dbfs`."""
    levels = frame_rms_db(signal, sample_rate)
    active = levels[levels > levels.max() + SILENCE_THRESHOLD_DB]
    active_rms_db = 10.0 * np.log10(np.mean(10.0 ** (active / 10.0)))
    return (signal * 10.0 ** ((target_dbfs - active_rms_db) / 20.0)).astype(np.float32)


def prepare_clip(data: np.ndarray, sample_rate: int, name: str = "clip") -> np.ndarray:
    """(T,) or (T, C) audio at any rate -> mono float32 at 24 kHz, silence trimmed, loudness normalised."""
    data = np.asarray(data, dtype=np.float32)
    mono = data.mean(axis=1) if data.ndim == 2 else data
    if mono.ndim != 1 or mono.size == 0:
        raise ValueError(f"{name}: expected a non-empty (samples,) or (samples, channels) array, got {data.shape}.")
    if not np.all(np.isfinite(mono)):
        raise ValueError(f"{name}: audio contains NaN or Inf samples.")
    if np.max(np.abs(mono)) < 1e-6:
        raise ValueError(f"{name}: audio is silent (peak below -120 dBFS); remove it from the bank.")
    mono = resample(mono, sample_rate, SAMPLE_RATE)
    return normalise_loudness(trim_silence(mono, SAMPLE_RATE), SAMPLE_RATE)


def load_clip(path: str | Path) -> np.ndarray:
    """Read and condition one source clip file (see `prepare_clip`)."""
    data, sample_rate = read_audio(path)
    return prepare_clip(data, sample_rate, name=str(path))
