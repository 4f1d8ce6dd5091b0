"""`describe_scene`: a faithful text description of a scene, the target of the alignment stage."""

from __future__ import annotations

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import azimuth_to_sector
from hf_spatial.tasks.context import SECTOR_AROUND_YOU
from hf_spatial.tasks.vocabulary import label_phrase

_COUNT_WORDS = {1: "one sound source", 2: "two sound sources", 3: "three sound sources"}


def _height(elevation: float) -> str:
    if elevation > 10:
        return "above ear level"
    if elevation < -10:
        return "below ear level"
    return "at about ear level"


def _room_character(rt60: float) -> str:
    if rt60 < 0.3:
        return "acoustically dry"
    if rt60 < 0.6:
        return "moderately reverberant"
    if rt60 < 1.0:
        return "reverberant"
    return "very reverberant"


def describe_scene(scene: SceneSpec) -> str:
    """Sources (class, caption, sector, azimuth, elevation, distance, timing), room size/RT60 and noise."""
    length, width, height = scene.room.dimensions
    parts = [
        f"{_COUNT_WORDS.get(len(scene.sources), f'{len(scene.sources)} sound sources').capitalize()} in a "
        f"{_room_character(scene.room.rt60)} room of {length:.1f} by {width:.1f} by {height:.1f} m "
        f"(RT60 {scene.room.rt60:.2f} s)."
    ]
    for source in sorted(scene.sources, key=lambda s: (s.onset, s.azimuth)):
        what = label_phrase(source.label)
        if source.caption:
            what += f" ({source.caption.strip().rstrip('.')})"
        parts.append(
            f"The {what} is {SECTOR_AROUND_YOU[azimuth_to_sector(source.azimuth)]} at azimuth "
            f"{source.azimuth:.0f} degrees, {_height(source.elevation)} (elevation {source.elevation:.0f} "
            f"degrees), {source.distance:.1f} m away, sounding from {source.onset:.1f} s to {source.offset:.1f} s."
        )
    if scene.noise.kind != "none":
        noise = scene.noise.kind.replace("diffuse_", "diffuse ")
        parts.append(f"There is {noise} background noise at {scene.noise.snr_db:.0f} dB SNR.")
    return " ".join(parts)
