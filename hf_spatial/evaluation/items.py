"""Load a benchmark for evaluation: a folder from `hf-spatial benchmark build`, its `twnm/` part, any TWNM-layout
folder (`metadata.jsonl` + audio) or a question dataset folder (`hf-spatial questions`, README + parquet)."""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hf_spatial.acoustics.scene import SceneSpec


@dataclass
class Benchmark:
    """QA items (dicts with the contract's fields, plus `scene` JSON when known) and their FOA audio."""

    name: str
    items: list[dict[str, Any]]
    split: str = "test"
    audio_rows: Any = None  # a datasets.Dataset of {"audio": cell} aligned with item["_row"], for parquet benchmarks
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)
    cache_size: int = 32

    def audio(self, item: dict[str, Any]) -> np.ndarray:
        """(4, T) float32 AmbiX at 24 kHz; the last `cache_size` clips are kept (questions share scenes)."""
        from hf_spatial.data import read_foa

        key = item.get("audio_path") or item.get("scene_id") or item["sample_id"]
        if key not in self._cache:
            cell = item["audio_path"] if "audio_path" in item else self.audio_rows[int(item["_row"])]["audio"]
            self._cache[key] = read_foa(cell)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]

    def scene(self, item: dict[str, Any]) -> SceneSpec | None:
        text = item.get("scene")
        return SceneSpec.from_json(text) if text else None


def load_benchmark(path: str | os.PathLike, split: str = "test", max_items: int | None = None) -> Benchmark:
    """Read a benchmark folder (see the module docstring); `max_items` keeps the first N items."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Benchmark folder {folder} does not exist; build one with `hf-spatial benchmark build`."
        )
    audio_rows = None
    if (folder / "data").is_dir() and (folder / "README.md").is_file():
        items, audio_rows = _read_dataset(folder, split)
    elif (folder / "metadata.jsonl").is_file():
        from hf_spatial.tasks.twnm import read_twnm_benchmark

        items = read_twnm_benchmark(folder)
    elif (folder / "twnm" / "metadata.jsonl").is_file():
        return load_benchmark(folder / "twnm", split, max_items)
    else:
        raise FileNotFoundError(
            f"{folder} is not a benchmark: expected README.md + data/*.parquet (hf-spatial benchmark build or "
            "questions) or metadata.jsonl with audio files (TWNM layout)."
        )
    if not items:
        raise ValueError(f"Benchmark {folder} has no items.")
    if max_items is not None:
        if max_items < 1:
            raise ValueError(f"--max-items must be at least 1, got {max_items}.")
        items = items[:max_items]
    name = folder.name if folder.name != "twnm" else folder.parent.name
    return Benchmark(name=name, items=items, split=split, audio_rows=audio_rows)


def _read_dataset(folder: Path, split: str) -> tuple[list[dict[str, Any]], Any]:
    from datasets import Audio, load_dataset

    splits = load_dataset(str(folder))
    if split not in splits:
        raise ValueError(f"{folder} has no split {split!r}; it has {sorted(splits)}.")
    dataset = splits[split]
    missing = {"audio", "question", "option_a", "answer_letter", "task", "level"} - set(dataset.column_names)
    if missing:
        raise ValueError(f"{folder} is not a question dataset: columns {sorted(missing)} are missing.")
    # Items without audio (a thousand decoded rows would hold gigabytes); audio is read per row when needed.
    items = [{**row, "_row": index} for index, row in enumerate(dataset.remove_columns("audio"))]
    return items, dataset.select_columns(["audio"]).cast_column("audio", Audio(decode=False))
