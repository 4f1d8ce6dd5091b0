"""The dataset card of a staged simulated dataset, computed from its parquet shards: rows, classes, rooms,
positions, generation parameters and cross-split leaks."""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from hf_spatial.hub_cards.common import PIPELINE_TAG, SPATIAL_TAGS, TEMPLATES, card_metadata, size_category, spread

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import azimuth_to_sector


def dataset_card(
    folder: str | os.PathLike,
    *,
    repo_id: str | None = None,
    name: str | None = None,
    original_card: str | os.PathLike | None = None,
    license: str | None = None,
):
    """The dataset card of a staged simulated dataset, computed from its parquet shards.

    `configs` (and any other metadata the simulator wrote) are kept from `original_card`; without one, a
    `default` config with one split per `data/{split}-*.parquet` prefix is written. `name` (default: the
    folder's) titles the card.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    folder = Path(folder)
    metadata = card_metadata(original_card)
    shards = sorted((folder / "data").rglob("*.parquet"))
    metadata.setdefault("configs", _default_configs(folder, shards))
    summary = summarise_dataset(folder, shards)
    metadata.update(
        license=license or metadata.get("license") or "other",
        task_categories=metadata.get("task_categories") or ["audio-classification", PIPELINE_TAG],
        tags=sorted({*(metadata.get("tags") or []), *SPATIAL_TAGS, "synthetic", "sound-event-localization"}),
        size_categories=[size_category(summary["num_rows"])],
        pretty_name=metadata.get("pretty_name") or f"{name or folder.name} (simulated FOA scenes)",
    )
    card_data = DatasetCardData(**metadata)
    return DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATES / "dataset_card.md.jinja"),
        title=card_data.pretty_name,
        repo_id=repo_id or f"USER/{folder.name}",
        **summary,
    )


def summarise_dataset(folder: Path, shards: list[Path]) -> dict[str, Any]:
    """Rows, classes, rooms, positions, generation parameters and cross-split leaks of a dataset's shards."""
    import pyarrow.parquet as pq

    splits: dict[str, dict[str, Any]] = {}
    scenes_by_split: dict[str, list] = defaultdict(list)
    audio_hashes: dict[str, set[str]] = defaultdict(set)
    columns: list[str] = []
    for shard in shards:
        parquet = pq.ParquetFile(shard)
        columns = columns or parquet.schema_arrow.names
        split = _split_of(shard)
        entry = splits.setdefault(split, {"rows": 0, "shards": 0, "bytes": 0})
        entry["rows"] += parquet.metadata.num_rows
        entry["shards"] += 1
        entry["bytes"] += shard.stat().st_size
        names = parquet.schema_arrow.names
        for batch in parquet.iter_batches(batch_size=256, columns=[c for c in ("scene", "audio") if c in names]):
            data = batch.to_pydict()
            for text in data.get("scene", []):
                scenes_by_split[split].append(SceneSpec.from_json(text))
            for cell in data.get("audio", []):
                if cell and cell.get("bytes"):
                    audio_hashes[split].add(hashlib.blake2b(cell["bytes"], digest_size=16).hexdigest())
    summary: dict[str, Any] = {
        "num_rows": sum(s["rows"] for s in splits.values()),
        "splits": splits,
        "columns": columns,
        "has_scenes": bool(scenes_by_split),
    }
    if scenes_by_split:
        summary.update(_scene_statistics(scenes_by_split))
        summary["leaks"] = _leak_checks(scenes_by_split, audio_hashes)
    return summary


def _scene_statistics(scenes_by_split: dict[str, list]) -> dict[str, Any]:
    split_names = sorted(scenes_by_split)
    classes: dict[str, Counter] = {split: Counter() for split in split_names}
    sources_per_scene: dict[str, Counter] = {split: Counter() for split in split_names}
    sectors: dict[str, Counter] = {split: Counter() for split in split_names}
    distance_bins: dict[str, Counter] = {split: Counter() for split in split_names}
    rooms, rt60 = {}, {}
    elevation, distance, volume = [], [], []
    noise, snr, generation = Counter(), [], defaultdict(Counter)
    clips: dict[str, set] = {}
    for split in split_names:
        scenes = scenes_by_split[split]
        for scene in scenes:
            sources_per_scene[split][len(scene.sources)] += 1
            for source in scene.sources:
                classes[split][source.label] += 1
                sectors[split][azimuth_to_sector(source.azimuth)] += 1
                distance_bins[split][_distance_bin(source.distance)] += 1
                elevation.append(source.elevation)
                distance.append(source.distance)
            noise[scene.noise.kind] += 1
            if scene.noise.snr_db is not None:
                snr.append(scene.noise.snr_db)
            volume.append(scene.room.volume)
            for key in ("sample_rate", "duration", "render_mode", "renderer_version"):
                generation[key][str(getattr(scene, key))] += 1
        rooms[split] = len({scene.room.room_id for scene in scenes})
        rt60[split] = spread([scene.room.rt60 for scene in scenes])
        clips[split] = {source.clip_id for scene in scenes for source in scene.sources}
    all_classes = sorted(set().union(*classes.values()))
    return {
        "class_table": [{"label": c, **{s: classes[s][c] for s in split_names}} for c in all_classes],
        "sources_per_scene": {s: dict(sorted(sources_per_scene[s].items())) for s in split_names},
        "sectors": {s: {k: sectors[s][k] for k in ("front", "left", "back", "right")} for s in split_names},
        "distance_bins": {s: {name: distance_bins[s][name] for name in DISTANCE_BINS} for s in split_names},
        "rooms": rooms,
        "rt60": rt60,
        "elevation": spread(elevation),
        "distance": spread(distance),
        "volume": spread(volume),
        "noise": dict(noise),
        "snr": spread(snr) if snr else None,
        "generation": {key: dict(values) for key, values in generation.items()},
        "clips": {s: len(clips[s]) for s in split_names},
        "clip_origins": {s: dict(Counter(_clip_origin(clip) for clip in sorted(clips[s]))) for s in split_names},
        "seeds": {s: spread([scene.seed for scene in scenes_by_split[s]]) for s in split_names},
    }


def _clip_origin(clip_id: str) -> str:
    """The source bank a clip id names by its prefix ("debian:pkg/...", "procedural:...")."""
    for separator in (":", "/"):
        if separator in clip_id:
            return clip_id.split(separator, 1)[0]
    return "unprefixed"


def _leak_checks(scenes_by_split: dict[str, list], audio_hashes: dict[str, set[str]]) -> list[dict[str, Any]]:
    """For every pair of splits: shared scene ids, source clips, rooms and identical audio."""
    keys = {
        "scene ids": lambda scenes: {scene.scene_id for scene in scenes},
        "source clips": lambda scenes: {source.clip_id for scene in scenes for source in scene.sources},
        "rooms": lambda scenes: {scene.room.room_id for scene in scenes},
    }
    names = sorted(scenes_by_split)
    checks = []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = {
                what: len(get(scenes_by_split[first]) & get(scenes_by_split[second])) for what, get in keys.items()
            }
            shared["identical audio"] = len(audio_hashes[first] & audio_hashes[second])
            checks.append({"splits": f"{first} / {second}", **shared, "clean": not any(shared.values())})
    return checks


def _default_configs(folder: Path, shards: list[Path]) -> list[dict[str, Any]]:
    splits = sorted({_split_of(shard) for shard in shards})
    return [
        {
            "config_name": "default",
            "data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split in splits],
        }
    ]


def _split_of(shard: Path) -> str:
    return shard.name.split("-", 1)[0]


DISTANCE_EDGES = (1, 2, 3)
DISTANCE_BINS = (
    *(f"{low}-{high} m" for low, high in zip((0, *DISTANCE_EDGES), DISTANCE_EDGES, strict=False)),
    f">= {DISTANCE_EDGES[-1]} m",
)


def _distance_bin(distance: float) -> str:
    for name, high in zip(DISTANCE_BINS, DISTANCE_EDGES, strict=False):
        if distance < high:
            return name
    return DISTANCE_BINS[-1]
