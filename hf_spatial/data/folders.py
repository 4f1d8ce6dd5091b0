"""Opening dataset folders for a job: every check `load_dataset` does not make, each failing with one line that
names the file (and row) and the fix.

A job (`hf-spatial questions`, a training stage) reads a folder with `load_folder`, which refuses a folder that
- is not a dataset folder, or whose generation (`hf-spatial simulate`, recorded in `generation/{split}.json`) was
  interrupted, so that it would load as a partial dataset;
- has a truncated or corrupt parquet shard (a footer that does not parse, or a shard that does not read);
- lacks the split asked for;
- is of the other kind: question rows (`hf-spatial questions`) where scenes are expected, or the reverse.
`check_audio_cells` decodes every audio cell of a split, for jobs that copy cells on (questions).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hf_spatial.data.schema import read_foa

QUESTION_COLUMNS = ("question", "answer_letter")
KINDS = ("scenes", "questions")
AUDIO_CHECK_BATCH = 64


def folder_kind(column_names: Any) -> str:
    """`questions` for QA rows (`hf-spatial questions`, benchmarks), else `scenes` (simulated or converted clips)."""
    return "questions" if set(QUESTION_COLUMNS) <= set(column_names) else "scenes"


def generation_records(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The `hf-spatial simulate` records of a folder, by split (none for other folders)."""
    records = {}
    for path in sorted(Path(folder, "generation").glob("*.json")):
        try:
            records[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(
                f"{path} is not a readable generation record ({error}); delete it and the split's shards "
                f"({Path(folder, 'data')}/{path.stem}-*), then re-run its `hf-spatial simulate` command."
            ) from error
    return records


def split_command(folder: str | os.PathLike, record: dict[str, Any]) -> str:
    """A split's recorded `hf-spatial simulate` command, with its output folder filled in."""
    return shlex.join(str(folder) if word == "OUT" else word for word in shlex.split(record["command"]))


def check_generation_complete(folder: str | os.PathLike) -> None:
    """Refuse a folder with a split whose `hf-spatial simulate` run was interrupted (it would load partially)."""
    folder = Path(folder)
    for split, record in generation_records(folder).items():
        if not record.get("complete"):
            done = len(list((folder / "data").glob(f"{split}-*-of-{record['num_shards']:05d}.parquet")))
            raise ValueError(
                f"{folder}: the {split} split is incomplete ({done} of {record['num_shards']} shards; its generation "
                f"was interrupted). Finish it by re-running `{split_command(folder, record)}`, or drop it by deleting "
                f"{folder / 'generation' / f'{split}.json'} and {folder / 'data'}/{split}-*."
            )


def shard_fix(folder: str | os.PathLike, split: str) -> str:
    """How to repair a bad shard of `split`: re-run the split's simulate command, or rebuild the folder."""
    record = generation_records(folder).get(split)
    if record is not None:
        return f"re-run `{split_command(folder, record)}` (it renders missing and unreadable shards again)"
    return "rebuild the folder with the command that made it (its README.md says which) and --overwrite"


def shard_rows(folder: str | os.PathLike, split: str, files: list[str]) -> list[tuple[str, int]]:
    """(file, row count) of each shard, from the parquet footers; a footer that does not parse is refused."""
    import pyarrow.parquet as pq

    rows = []
    for path in files:
        try:
            rows.append((path, pq.read_metadata(path).num_rows))
        except (OSError, ValueError) as error:  # pyarrow: ArrowInvalid (a ValueError) or OSError
            raise ValueError(
                f"{path} is truncated or corrupt ({_one_line(error)}); {shard_fix(folder, split)}."
            ) from error
    return rows


def load_folder(
    folder: str | os.PathLike,
    split: str | None = None,
    kind: str | None = None,
    job: str = "this job",
    missing_split_hint: str = "",
):
    """`load_dataset(folder)` (one `split`, or all as a DatasetDict) after the checks of the module docstring, with
    the audio column left as FLAC bytes (decode with `read_foa`).

    `kind` ("scenes" or "questions", None for either) is what `job` (named in errors) reads; `missing_split_hint`
    ends the error for a missing split (e.g. how to do without it).
    """
    from datasets import Audio, load_dataset, load_dataset_builder
    from datasets.exceptions import DatasetGenerationError

    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}.")
    folder = Path(folder)
    check_generation_complete(folder)
    if not (folder / "README.md").is_file():
        what = "is not a dataset folder (no README.md)" if folder.is_dir() else "does not exist"
        raise FileNotFoundError(
            f"{folder} {what}; make one with `hf-spatial simulate` (scenes) or `hf-spatial questions` (questions)."
        )
    builder = load_dataset_builder(str(folder))
    files = {name: list(paths) for name, paths in builder.config.data_files.items()}
    if split is not None and split not in files:
        raise ValueError(f"{folder} has no {split!r} split (it has: {', '.join(files)}).{missing_split_hint}")
    shards = {name: shard_rows(folder, name, paths) for name, paths in files.items()}
    if builder.info.features is not None:
        _check_kind(folder, builder.info.features, kind, job)
    try:
        loaded = load_dataset(str(folder), split=split)
    except DatasetGenerationError as error:
        name, path, cause = _unreadable_shard(shards)
        if path is None:
            raise
        raise ValueError(f"{path} cannot be read ({_one_line(cause)}); {shard_fix(folder, name)}.") from error
    _check_kind(
        folder, loaded.column_names if split is not None else next(iter(loaded.values())).column_names, kind, job
    )
    return loaded.cast_column("audio", Audio(decode=False))


def _check_kind(folder: Path, column_names: Any, kind: str | None, job: str) -> None:
    found = folder_kind(column_names)
    if kind is None or found == kind:
        return
    if found == "questions":
        raise ValueError(
            f"{folder} is a question dataset (rows with {', '.join(QUESTION_COLUMNS)}), but {job} reads simulated "
            "scenes: pass the scene folder the questions were made from (made by `hf-spatial simulate`)."
        )
    raise ValueError(
        f"{folder} is a scene dataset without questions, but {job} reads question rows: make them with "
        f"`hf-spatial questions --dataset {folder} --out QA_FOLDER` and pass QA_FOLDER."
    )


def _unreadable_shard(shards: dict[str, list[tuple[str, int]]]) -> tuple[str | None, str | None, Exception | None]:
    """(split, file, error) of the first shard that does not read in full, or Nones when all read."""
    import pyarrow.parquet as pq

    for name, files in shards.items():
        for path, _ in files:
            try:
                pq.read_table(path)
            except (OSError, ValueError) as error:
                return name, path, error
    return None, None, None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())  # pyarrow and libsndfile messages may span lines


def _locate(shards: list[tuple[str, int]], row: int) -> tuple[str, int]:
    """(file, row within it) of row `row` of a split whose shards are `shards` (in load order)."""
    for path, count in shards:
        if row < count:
            return path, row
        row -= count
    raise IndexError(row)


def check_audio_cells(dataset, folder: str | os.PathLike, split: str) -> None:
    """Decode every audio cell of a split (a `load_folder` result) as 4-channel FOA at 24 kHz; a cell that does not
    decode is refused with its shard, row and scene id, and the fix."""
    from datasets import load_dataset_builder

    folder = Path(folder)
    files = list(load_dataset_builder(str(folder)).config.data_files[split])
    shards = shard_rows(folder, split, files)
    for row, audio, scene_id in _audio_rows(dataset):
        try:
            read_foa(audio)
        except (ValueError, TypeError) as error:
            path, index = _locate(shards, row)
            raise ValueError(
                f"{path} row {index} (scene {scene_id}): the audio cell does not decode ({_one_line(error)}); "
                f"delete {path}, then {shard_fix(folder, split)}."
            ) from error


def _audio_rows(dataset) -> Iterator[tuple[int, Any, str]]:
    row = 0
    for batch in dataset.select_columns(["audio", "scene_id"]).iter(batch_size=AUDIO_CHECK_BATCH):
        for audio, scene_id in zip(batch["audio"], batch["scene_id"], strict=True):
            yield row, audio, scene_id
            row += 1
