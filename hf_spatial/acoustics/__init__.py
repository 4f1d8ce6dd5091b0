"""Scenes, sources, rooms and FOA rendering. Heavy modules (pyroomacoustics) are imported on use."""

from hf_spatial.acoustics.scene import NoiseSpec, RoomSpec, SceneSpec, SourceSpec

__all__ = ["NoiseSpec", "RoomSpec", "SceneSpec", "SourceSpec"]
