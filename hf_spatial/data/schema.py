"""Row schema of simulated FOA datasets, FLAC encoding, and `read_foa` (the one way to decode an audio cell).

A row holds the audio as a 4-channel 24-bit FLAC in a `datasets.Audio` cell, the `SceneSpec` JSON (the metadata
everything else is derived from) and a few convenience columns. `datasets` is imported only by `features()`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import NUM_FOA_CHANNELS, SAMPLE_RATE

COLUMNS = ("audio", "scene_id", "split", "scene", "num_sources", "labels", "room_id", "rt60")


def features():
    """The `datasets.Features` of a simulated dataset (column order = COLUMNS)."""
    from datasets import Audio, Features, List, Value

    return Features(
        {
            "audio": Audio(sampling_rate=SAMPLE_RATE),
            "scene_id": Value("string"),
            "split": Value("string"),
            "scene": Value("string"),
            "num_sources": Value("int32"),
            "labels": List(Value("string")),
            "room_id": Value("string"),
            "rt60": Value("float32"),
        }
    )


def encode_flac(foa: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """(4, T) float AmbiX -> 4-channel 24-bit FLAC bytes (deterministic for equal input)."""
    import soundfile as sf

    foa = _check_foa(np.asarray(foa), "encode_flac")
    buffer = io.BytesIO()
    sf.write(buffer, np.ascontiguousarray(foa.T), sample_rate, format="FLAC", subtype="PCM_24")
    return buffer.getvalue()


def read_foa(cell: Any, expected_sample_rate: int | None = SAMPLE_RATE) -> np.ndarray:
    """Decode an audio cell to (4, T) float32 AmbiX with soundfile.

    `cell` is a `datasets` audio cell read with `Audio(decode=False)` ({"bytes": ..., "path": ...}), raw bytes, or
    a file path; or, where torchcodec and FFmpeg are installed, the decoder `datasets.Audio` gives (its
    `get_all_samples()`, all four channels). Never use `example["audio"]["array"]`: it averages the channels to mono.
    """
    import soundfile as sf

    if hasattr(cell, "get_all_samples"):  # a datasets / torchcodec AudioDecoder
        samples = cell.get_all_samples()
        if expected_sample_rate is not None and samples.sample_rate != expected_sample_rate:
            rate = samples.sample_rate
            raise ValueError(f"decoded audio: {expected_sample_rate} Hz FOA expected, got {rate} Hz; resample it.")
        return _check_foa(samples.data.numpy(), "decoded audio")
    if isinstance(cell, dict):
        if cell.get("bytes"):
            source, name = io.BytesIO(cell["bytes"]), cell.get("path") or "audio bytes"
        elif cell.get("path"):
            source = name = str(cell["path"])
        else:
            raise ValueError(
                "Audio cell has neither bytes nor path. Cast the column with `Audio(decode=False)` before reading: "
                "`ds = ds.cast_column('audio', datasets.Audio(decode=False))`."
            )
    elif isinstance(cell, bytes | bytearray):
        source, name = io.BytesIO(cell), "audio bytes"
    elif isinstance(cell, str | Path):
        source, name = str(cell), str(cell)
    else:
        raise TypeError(
            f"read_foa expects an audio cell dict, bytes, a path or an AudioDecoder, got {type(cell).__name__}."
        )
    try:
        data, sample_rate = sf.read(source, dtype="float32", always_2d=True)
    except Exception as error:
        raise ValueError(f"Could not decode FOA audio {name}: {error}") from error
    if expected_sample_rate is not None and sample_rate != expected_sample_rate:
        raise ValueError(f"{name}: expected {expected_sample_rate} Hz FOA, got {sample_rate} Hz; resample it first.")
    return _check_foa(data.T, name)


def _check_foa(foa: np.ndarray, name: str) -> np.ndarray:
    if foa.ndim != 2 or foa.shape[0] != NUM_FOA_CHANNELS:
        channels = foa.shape[0] if foa.ndim == 2 else 1
        kind = {1: "mono", 2: "stereo"}.get(channels, f"{channels}-channel")
        raise ValueError(
            f"{name}: expected 4-channel First-Order Ambisonics (AmbiX W, Y, Z, X), got {kind} audio of shape "
            f"{foa.shape}. Spatial audio must be recorded or rendered as FOA; a mono clip can be placed in a scene "
            "with `hf-spatial simulate --sources FOLDER`."
        )
    return np.ascontiguousarray(foa, dtype=np.float32)


def scene_row(scene: SceneSpec, foa: np.ndarray) -> dict[str, Any]:
    """One dataset row for a rendered scene."""
    return {
        "audio": {"bytes": encode_flac(foa, scene.sample_rate), "path": f"{scene.scene_id}.flac"},
        "scene_id": scene.scene_id,
        "split": scene.split,
        "scene": scene.to_json(),
        "num_sources": len(scene.sources),
        "labels": scene.labels,
        "room_id": scene.room.room_id,
        "rt60": scene.room.rt60,
    }
