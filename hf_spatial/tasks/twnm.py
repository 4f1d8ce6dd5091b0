"""TWNM-FOA-Benchmark interchange: a folder with `metadata.jsonl` and the audio files beside it.

Each line holds file_name (relative path of the audio), sample_id, question, option_a..option_d,
answer_letter, answer_text, level and task; extra fields (scene_id, open_answer, evidence, params, scene) are
kept.
`datasets.load_dataset("audiofolder", data_dir=...)` reads the same layout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from hf_spatial.atomic import write_bytes_atomic

# A multiple-choice question's own fields, in every row kind that holds questions (QA datasets, TWNM folders).
QUESTION_COLUMNS = ("question", "option_a", "option_b", "option_c", "option_d", "answer_letter", "answer_text")
TWNM_COLUMNS = ("file_name", "sample_id", *QUESTION_COLUMNS, "level", "task")
# Kept when present: `scene` (SceneSpec JSON) and `params` let controls and baselines re-answer items.
EXTRA_COLUMNS = ("scene_id", "open_answer", "evidence", "params", "scene")


def write_twnm_benchmark(
    items: Iterable[Mapping[str, Any]],
    audio_bytes: Callable[[Mapping[str, Any]], bytes],
    out_dir: str | os.PathLike,
    audio_suffix: str = ".flac",
) -> Path:
    """Write items and their audio as a TWNM benchmark folder; returns the metadata path.

    `audio_bytes(item)` returns the encoded audio of an item's scene; one file per scene is written
    (`audio/<scene_id><suffix>`, or `<sample_id>` when the item has no scene_id) and shared by its questions.
    """
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    lines = []
    for item in items:
        stem = str(item.get("scene_id") or item["sample_id"])
        file_name = f"audio/{stem}{audio_suffix}"
        if not (out / file_name).exists():
            write_bytes_atomic(out / file_name, audio_bytes(item))
        row = {"file_name": file_name, **{key: item[key] for key in TWNM_COLUMNS[1:]}}
        row.update({key: item[key] for key in EXTRA_COLUMNS if key in item})
        row["level"] = int(row["level"])
        lines.append(json.dumps(row, ensure_ascii=False))
    metadata = out / "metadata.jsonl"
    write_bytes_atomic(metadata, ("\n".join(lines) + "\n").encode())
    return metadata


def read_twnm_benchmark(folder: str | os.PathLike, check_audio: bool = False) -> list[dict[str, Any]]:
    """Items of a TWNM benchmark folder, each with `audio_path` (absolute); validates every line.

    `check_audio` also opens every audio file with soundfile (corrupt files fail here, not mid-evaluation).
    """
    folder = Path(folder)
    metadata = folder / "metadata.jsonl"
    if not metadata.is_file():
        raise FileNotFoundError(f"{metadata} not found: a TWNM benchmark folder holds metadata.jsonl and audio files.")
    items = []
    for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{metadata}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error}).") from error
        missing = [key for key in TWNM_COLUMNS if row.get(key) in (None, "")]
        if missing:
            raise ValueError(f"{where}: missing fields {missing}; each line needs {list(TWNM_COLUMNS)}.")
        letter = str(row["answer_letter"]).strip().upper()
        if letter not in "ABCD" or len(letter) != 1:
            raise ValueError(f"{where}: answer_letter {row['answer_letter']!r} is not one of A, B, C, D.")
        if str(row[f"option_{letter.lower()}"]) != str(row["answer_text"]):
            raise ValueError(f"{where}: answer_text {row['answer_text']!r} differs from option {letter}.")
        if str(row["level"]) not in ("1", "2", "3"):
            raise ValueError(f"{where}: level must be 1, 2 or 3, got {row['level']!r}.")
        file_name = Path(row["file_name"])
        if file_name.is_absolute() or ".." in file_name.parts:
            raise ValueError(f"{where}: file_name must be relative to the benchmark folder, got {row['file_name']}.")
        audio_path = (folder / file_name).resolve()
        if not audio_path.is_file():
            raise FileNotFoundError(f"{where}: audio file {audio_path} does not exist.")
        if check_audio:
            import soundfile

            try:
                soundfile.info(str(audio_path))
            except Exception as error:
                raise ValueError(f"{where}: audio file {row['file_name']} cannot be read ({error}).") from error
        row.update(answer_letter=letter, level=int(row["level"]), audio_path=str(audio_path))
        items.append(row)
    if not items:
        raise ValueError(f"{metadata} holds no items.")
    return items
