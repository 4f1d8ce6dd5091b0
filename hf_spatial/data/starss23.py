"""`hf-spatial convert starss23` / `convert_starss23(...)`: real FOA recordings in the STARSS23 / DCASE SELD layout
into a dataset folder with the simulator's row schema.

Input layout (as distributed for DCASE 2022-2024 task 3)::

    ROOT/foa_dev/<fold>/<name>.wav        4-channel FOA, 24 kHz (AmbiX)
    ROOT/metadata_dev/<fold>/<name>.csv   DCASE CSV: frame, class, source, azimuth, elevation[, distance in cm]

Each recording is cut into segments (default 5 s). A row has the simulator's columns (`audio`, `scene_id`,
`split`, `scene`, `num_sources`, `labels`, `room_id`, `rt60`) plus `dcase_labels`, the segment's frame labels as
DCASE CSV text (frames re-based to the segment start, distances in metres). Real recordings have no room
description, so `scene` is "" (no `SceneSpec` is invented) and `rt60` is NaN; the encoder stage trains on
`dcase_labels` instead (`training.seld_targets.dcase_targets`).

The output is written like `hf-spatial simulate` writes: shards published atomically in `data/`, a generation
record in `generation/starss23.json` (which also records the class names the CSV class indices refer to), and a
dataset card; re-running resumes and skips finished shards.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hf_spatial.atomic import write_json_atomic
from hf_spatial.conventions import SAMPLE_RATE
from hf_spatial.data.dcase_csv import (
    LABEL_FRAMES_PER_SECOND,
    FrameLabels,
    format_dcase_csv,
    num_label_frames,
    read_dcase_csv,
)

logger = logging.getLogger(__name__)

# Class index order of STARSS23 (DCASE 2023 and 2024 task 3): CSV class k is STARSS23_CLASSES[k].
STARSS23_CLASSES: tuple[str, ...] = (
    "femaleSpeech",
    "maleSpeech",
    "clapping",
    "telephone",
    "laughter",
    "domesticSounds",
    "footsteps",
    "doorCupboard",
    "music",
    "musicInstrument",
    "waterTap",
    "bell",
    "knock",
)
DEFAULT_SEGMENT_SECONDS = 5.0
DEFAULT_MIN_SEGMENT_SECONDS = 1.0
DEFAULT_RECORDINGS_PER_SHARD = 8
RECORD_NAME = "starss23.json"
# STARSS23 fold folders are named dev-train-<site> / dev-test-<site>.
DEFAULT_FOLD_PREFIXES = {"dev-train": "train", "dev-test": "test"}
_ROOM_PATTERN = re.compile(r"^(fold\d+_room\d+)")


@dataclass(frozen=True)
class Recording:
    """One (FOA wav, DCASE CSV) pair of the dev set."""

    name: str
    fold: str
    split: str
    wav: Path
    csv: Path

    @property
    def room_id(self) -> str:
        """`fold4_room23` from `fold4_room23_mix001`; the fold folder name for other naming schemes."""
        match = _ROOM_PATTERN.match(self.name)
        return match.group(1) if match else self.fold


def split_of_fold(fold: str, split_by_fold: dict[str, str] | None = None) -> str:
    """train/test of a fold folder: `split_by_fold[fold]` if given, else by the STARSS23 `dev-train`/`dev-test`
    prefix."""
    if split_by_fold and fold in split_by_fold:
        split = split_by_fold[fold]
    else:
        split = next((s for prefix, s in DEFAULT_FOLD_PREFIXES.items() if fold.startswith(prefix)), None)
        if split is None:
            raise ValueError(
                f"Cannot tell whether fold folder {fold!r} is train or test (STARSS23 folds start with dev-train or "
                f"dev-test); map it with --split-by-fold {fold}=train (Python: split_by_fold={{{fold!r}: 'train'}})."
            )
    if split not in ("train", "test"):
        raise ValueError(f"Fold {fold!r} is mapped to split {split!r}; use 'train' or 'test'.")
    return split


def find_recordings(
    root: str | Path, split_by_fold: dict[str, str] | None = None, skip_unmatched: bool = False
) -> list[Recording]:
    """The (wav, csv) pairs of `ROOT/foa_dev` and `ROOT/metadata_dev`, matched by fold and file stem.

    Files without a partner are an error listing them (or, with `skip_unmatched`, a warning). Sorted by split,
    fold and name.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"STARSS23 root {root} does not exist.")
    audio_dir, metadata_dir = root / "foa_dev", root / "metadata_dev"
    if not audio_dir.is_dir():
        found = sorted(path.name for path in root.iterdir() if path.is_dir())
        hint = (
            " It has foa_eval only: the evaluation set's labels are not distributed, so it cannot be converted "
            "into labelled rows; convert the development set (foa_dev + metadata_dev)."
            if (root / "foa_eval").is_dir()
            else ""
        )
        raise FileNotFoundError(
            f"{root} has no foa_dev folder (found: {', '.join(found) or 'nothing'}).{hint} Point --root at the "
            "folder holding foa_dev/ and metadata_dev/ (unzip foa_dev.zip and metadata_dev.zip there)."
        )
    if not metadata_dir.is_dir():
        raise FileNotFoundError(
            f"{root} has foa_dev but no metadata_dev: the labels are missing. Unzip metadata_dev.zip into {root}."
        )
    wavs = {(path.parent.name, path.stem): path for path in audio_dir.glob("*/*.wav")}
    csvs = {(path.parent.name, path.stem): path for path in metadata_dir.glob("*/*.csv")}
    if not wavs:
        raise FileNotFoundError(f"No wav files in {audio_dir}/<fold>/; expected e.g. foa_dev/dev-train-sony/*.wav.")
    unmatched = [f"{wavs[key]} (no {metadata_dir / key[0] / key[1]}.csv)" for key in sorted(wavs.keys() - csvs.keys())]
    unmatched += [f"{csvs[key]} (no {audio_dir / key[0] / key[1]}.wav)" for key in sorted(csvs.keys() - wavs.keys())]
    if unmatched:
        listing = "\n  ".join(unmatched[:20]) + (
            f"\n  ... and {len(unmatched) - 20} more" if len(unmatched) > 20 else ""
        )
        message = f"{len(unmatched)} file(s) without a partner (wav and csv are matched by fold and name):\n  {listing}"
        if not skip_unmatched:
            raise ValueError(f"{message}\nFix the names, or pass --skip-unmatched to convert only the matched pairs.")
        logger.warning("%s\nSkipping them.", message)
    recordings = [
        Recording(name, fold, split_of_fold(fold, split_by_fold), wavs[fold, name], csvs[fold, name])
        for fold, name in sorted(wavs.keys() & csvs.keys())
    ]
    names = [recording.name for recording in recordings]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Recording names must be unique across folds (they name the rows); repeated: {duplicates}.")
    return sorted(recordings, key=lambda recording: (recording.split != "train", recording.fold, recording.name))


def check_recording_audio(path: Path, resample: bool = True) -> None:
    """Header check (channels, rate, readability) so that a bad file fails before hours of conversion."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as error:
        raise ValueError(f"Could not read {path} as audio ({error}); the file is corrupt or not a wav.") from error
    if info.channels != 4:
        kind = {1: "mono", 2: "stereo"}.get(info.channels, f"{info.channels}-channel")
        raise ValueError(
            f"{path}: expected 4-channel First-Order Ambisonics (the foa_dev set), got {kind} audio. The mic_dev "
            "set (tetrahedral microphone signals) is not FOA; convert foa_dev."
        )
    if info.samplerate != SAMPLE_RATE and not resample:
        raise ValueError(f"{path}: {info.samplerate} Hz, expected {SAMPLE_RATE} Hz; drop --no-resample to resample it.")


def read_recording_audio(path: str | Path, foa_format: str = "ambix", resample: bool = True) -> np.ndarray:
    """A recording as (4, T) float32 AmbiX at 24 kHz (resampled with a polyphase filter when needed)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    from hf_spatial.conventions import to_ambix

    path = Path(path)
    check_recording_audio(path, resample)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:
        raise ValueError(f"Could not decode {path} ({error}); the file is corrupt.") from error
    foa = data.T
    if rate != SAMPLE_RATE:
        divisor = math.gcd(rate, SAMPLE_RATE)
        logger.debug("resampling %s from %d Hz to %d Hz", path, rate, SAMPLE_RATE)
        foa = resample_poly(foa, SAMPLE_RATE // divisor, rate // divisor, axis=-1).astype(np.float32)
    return np.ascontiguousarray(to_ambix(foa, foa_format), dtype=np.float32)


def segment_labels(labels: FrameLabels, first_frame: int, num_frames: int) -> FrameLabels:
    """The frames [first_frame, first_frame + num_frames) of `labels`, re-based to start at frame 0."""
    return {
        frame - first_frame: list(events)
        for frame, events in labels.items()
        if first_frame <= frame < first_frame + num_frames
    }


def num_tracks(labels: FrameLabels) -> int:
    """Distinct (class, source) tracks in frame labels: the number of sources of a segment."""
    return len({(event.class_idx, event.source_idx) for events in labels.values() for event in events})


@dataclass(frozen=True)
class ConversionArgs:
    """Everything the bytes of a converted folder depend on (besides the input files and package versions)."""

    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    min_segment_seconds: float = DEFAULT_MIN_SEGMENT_SECONDS
    foa_format: str = "ambix"
    resample: bool = True
    distance_unit: str = "cm"
    class_names: tuple[str, ...] = STARSS23_CLASSES
    split_by_fold: dict[str, str] = field(default_factory=dict)
    recordings_per_shard: int = DEFAULT_RECORDINGS_PER_SHARD

    def __post_init__(self) -> None:
        frames = self.segment_seconds * LABEL_FRAMES_PER_SECOND
        if self.segment_seconds <= 0 or abs(frames - round(frames)) > 1e-6:
            raise ValueError(
                f"--segment-seconds must be a positive multiple of the 0.1 s label frame, got {self.segment_seconds}."
            )
        if not 0 < self.min_segment_seconds <= self.segment_seconds:
            raise ValueError(f"min_segment_seconds must be in (0, segment_seconds], got {self.min_segment_seconds}.")
        if self.foa_format not in ("ambix", "fuma"):
            raise ValueError(f"foa_format must be 'ambix' or 'fuma', got {self.foa_format!r}.")
        if self.recordings_per_shard < 1:
            raise ValueError(f"recordings_per_shard must be at least 1, got {self.recordings_per_shard}.")
        if len(set(self.class_names)) != len(self.class_names) or not self.class_names:
            raise ValueError(f"class_names must be distinct and non-empty, got {list(self.class_names)}.")

    @property
    def segment_frames(self) -> int:
        return round(self.segment_seconds * LABEL_FRAMES_PER_SECOND)

    def command(self) -> str:
        args = ["hf-spatial", "convert", "starss23", "--root", "ROOT", "--out", "OUT",
                "--segment-seconds", str(self.segment_seconds)]  # fmt: skip
        args += ["--fuma"] if self.foa_format == "fuma" else []
        args += [] if self.resample else ["--no-resample"]
        args += [f"--split-by-fold={fold}={split}" for fold, split in sorted(self.split_by_fold.items())]
        return shlex.join(args)


def features():
    """The simulator's features plus `dcase_labels` (DCASE CSV text of the segment)."""
    from datasets import Features, Value

    from hf_spatial.data.schema import features as scene_features

    return Features({**scene_features(), "dcase_labels": Value("string")})


def recording_rows(recording: Recording, args: ConversionArgs) -> list[dict[str, Any]]:
    """The segment rows of one recording."""
    from hf_spatial.data.schema import encode_flac

    labels = read_dcase_csv(recording.csv, distance_unit=args.distance_unit, num_classes=len(args.class_names))
    foa = read_recording_audio(recording.wav, args.foa_format, args.resample)
    segment_samples = args.segment_frames * SAMPLE_RATE // LABEL_FRAMES_PER_SECOND
    num_segments = foa.shape[1] // segment_samples
    if foa.shape[1] - num_segments * segment_samples >= round(args.min_segment_seconds * SAMPLE_RATE):
        num_segments += 1  # keep a tail long enough to be useful
    label_end = num_label_frames(labels) / LABEL_FRAMES_PER_SECOND
    if label_end > foa.shape[1] / SAMPLE_RATE + 0.1:
        logger.warning(
            "%s: labels run to %.1f s but the audio is %.1f s long; labels past the audio are dropped.",
            recording.csv, label_end, foa.shape[1] / SAMPLE_RATE,
        )  # fmt: skip
    rows = []
    for segment in range(num_segments):
        audio = foa[:, segment * segment_samples : (segment + 1) * segment_samples]
        frames = segment_labels(labels, segment * args.segment_frames, args.segment_frames)
        scene_id = f"{recording.name}-{segment:04d}"
        rows.append(
            {
                "audio": {"bytes": encode_flac(audio), "path": f"{scene_id}.flac"},
                "scene_id": scene_id,
                "split": recording.split,
                "scene": "",
                "num_sources": num_tracks(frames),
                "labels": sorted({args.class_names[e.class_idx] for events in frames.values() for e in events}),
                "room_id": recording.room_id,
                "rt60": math.nan,
                "dcase_labels": format_dcase_csv(frames),
            }
        )
    return rows


def convert_starss23(
    root: str | Path,
    out_dir: str | Path,
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
    split_by_fold: dict[str, str] | None = None,
    foa_format: str = "ambix",
    resample: bool = True,
    class_names: tuple[str, ...] | list[str] = STARSS23_CLASSES,
    distance_unit: str = "cm",
    min_segment_seconds: float = DEFAULT_MIN_SEGMENT_SECONDS,
    recordings_per_shard: int = DEFAULT_RECORDINGS_PER_SHARD,
    skip_unmatched: bool = False,
    progress: bool = True,
) -> Path:
    """Convert a STARSS23-layout folder into a dataset folder (see the module docstring); returns the folder.

    `split_by_fold` maps fold folder names to "train"/"test" (default: STARSS23's dev-train-* / dev-test-*).
    `foa_format="fuma"` converts FuMa recordings to AmbiX (STARSS23 itself is AmbiX). `class_names` names the CSV
    class indices (default: the 13 STARSS23 classes) and `distance_unit` the CSV distances ("cm" in STARSS23's
    2024 metadata). Segments of `segment_seconds` (a multiple of 0.1 s); a final shorter segment is kept when it
    lasts at least `min_segment_seconds`. Re-running with the same arguments resumes.
    """
    from tqdm.auto import tqdm

    args = ConversionArgs(
        segment_seconds, min_segment_seconds, foa_format, resample, distance_unit, tuple(class_names),
        dict(split_by_fold or {}), recordings_per_shard,
    )  # fmt: skip
    recordings = find_recordings(root, args.split_by_fold, skip_unmatched)
    for recording in recordings:  # cheap checks first: a bad file fails now, not after hours of conversion
        check_recording_audio(recording.wav, resample)
        read_dcase_csv(recording.csv, distance_unit=distance_unit, num_classes=len(args.class_names))
    shards = _plan_shards(recordings, args.recordings_per_shard)
    out = Path(out_dir)
    record = _check_or_start_record(out, args, recordings)
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / ".partial").mkdir(exist_ok=True)
    for stale in (out / ".partial").iterdir():
        stale.unlink()  # left by a killed run
    pending = [(name, group) for name, group in shards.items() if not (out / "data" / name).is_file()]
    total = sum(len(group) for _, group in pending)
    logger.info("convert starss23: %d recordings, %d shard(s) to write", len(recordings), len(pending))
    with tqdm(total=total, unit="recording", desc="convert starss23", disable=not progress) as bar:
        for name, group in pending:
            rows = []
            for recording in group:
                rows += recording_rows(recording, args)
                bar.update(1)
            _write_shard(out, name, rows)
    num_rows = _count_rows(out, shards)
    record["num_segments"] = num_rows
    record["complete"] = True
    write_json_atomic(out / "generation" / RECORD_NAME, record, sort_keys=True)
    write_card(out, record)
    logger.info("convert starss23: %s segments", num_rows)
    return out


def _plan_shards(recordings: list[Recording], per_shard: int) -> dict[str, list[Recording]]:
    shards: dict[str, list[Recording]] = {}
    for split in ("train", "test"):
        members = [recording for recording in recordings if recording.split == split]
        count = math.ceil(len(members) / per_shard)
        for index in range(count):
            shards[f"{split}-{index:05d}-of-{count:05d}.parquet"] = members[index * per_shard : (index + 1) * per_shard]
    return shards


def _write_shard(out: Path, name: str, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=features().arrow_schema)
    partial = out / ".partial" / name
    pq.write_table(table, partial, row_group_size=max(1, len(rows)))
    partial.replace(out / "data" / name)


def _count_rows(out: Path, shards: dict[str, list[Recording]]) -> dict[str, int]:
    import pyarrow.parquet as pq

    counts: dict[str, int] = {}
    for name in shards:
        split = name.split("-", 1)[0]
        counts[split] = counts.get(split, 0) + pq.ParquetFile(out / "data" / name).metadata.num_rows
    return counts


def _check_or_start_record(out: Path, args: ConversionArgs, recordings: list[Recording]) -> dict[str, Any]:
    from hf_spatial import __version__

    generation = out / "generation"
    others = sorted(path.name for path in generation.glob("*.json") if path.name != RECORD_NAME)
    if others:
        raise FileExistsError(
            f"{out} holds a simulated dataset ({', '.join(others)}); convert STARSS23 into another --out folder."
        )
    parameters = {**asdict(args), "class_names": list(args.class_names)}
    record = {
        "source": "STARSS23 / DCASE SELD layout",
        "command": args.command(),
        "parameters": parameters,
        "recordings": {split: [r.name for r in recordings if r.split == split] for split in ("train", "test")},
        "versions": {"hf_spatial": __version__},
    }
    path = generation / RECORD_NAME
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        for key in ("parameters", "recordings"):
            if previous.get(key) != record[key]:
                raise FileExistsError(
                    f"{out} already holds a conversion with other {key} (old {previous.get(key)}, new {record[key]}). "
                    f"Use another --out, or delete {out}."
                )
    else:
        write_json_atomic(path, record, sort_keys=True)
    return record


def recorded_class_names(dataset_dir: str | Path) -> list[str] | None:
    """The class names the `dcase_labels` class indices of a converted folder refer to (None for other folders)."""
    path = Path(dataset_dir) / "generation" / RECORD_NAME
    if not path.is_file():
        return None
    return list(json.loads(path.read_text(encoding="utf-8"))["parameters"]["class_names"])


def dcase_labels_have_distance(texts) -> bool:
    """False when any non-empty `dcase_labels` text lacks distances (2023 format): DCASE 2024 metrics need them."""
    from hf_spatial.data.dcase_csv import labels_have_distance, parse_dcase_csv

    return all(labels_have_distance(parse_dcase_csv(text)) for text in texts if text)


# ------------------------------------------------------------------------------------------------ card
CARD_TEMPLATE = """\
---
{front_matter}---

# Real FOA recordings in the STARSS23 / DCASE SELD layout (converted by hf-spatial)

4-channel First-Order Ambisonics (AmbiX: ACN channel order W, Y, Z, X; SN3D) recordings at 24 kHz, cut into
{segment_seconds:g} s segments by `hf-spatial convert starss23`, with the frame-wise sound event labels of each
segment. The rows have the columns of an `hf-spatial simulate` dataset, so the encoder stage of
`hf-spatial train` trains on them (adaptation to real recordings).

## Reading the data

```python
import datasets
from hf_spatial.data import read_foa
from hf_spatial.data.dcase_csv import parse_dcase_csv

ds = datasets.load_dataset("PATH_OR_REPO", split="{first_split}")
ds = ds.cast_column("audio", datasets.Audio(decode=False))
foa = read_foa(ds[0]["audio"])  # (4, T) float32, W Y Z X
labels = parse_dcase_csv(ds[0]["dcase_labels"])  # {{frame: [SELDEvent(class, source, az, el, distance m)]}}
```

Do not use `ds[i]["audio"]["array"]`: the `Audio` decoder averages the four channels to mono.

## Columns

| column | content |
|---|---|
| `audio` | 4-channel 24-bit FLAC, 24 kHz, AmbiX (W, Y, Z, X), SN3D |
| `scene_id` | `<recording>-<segment>` (segment k starts at k x {segment_seconds:g} s) |
| `split` | `train` or `test` (by fold folder) |
| `scene` | empty: real recordings have no `SceneSpec` (room geometry is unknown) |
| `num_sources` | distinct (class, source) tracks in the segment |
| `labels` | classes present in the segment |
| `room_id` | recording room (e.g. `fold4_room23`) |
| `rt60` | NaN (unknown) |
| `dcase_labels` | DCASE CSV `frame, class, source, azimuth, elevation[, distance]`: 100 ms frames from the \
segment start, distance in metres |

Class indices of `dcase_labels`: {class_list}.

Conventions: azimuth in degrees counter-clockwise from the front in [-180, 180] (+90 = left); elevation in
degrees (+90 = up); distance in metres (STARSS23's 2024 metadata gives centimetres; converted).

## Splits

{split_lines}
## Licence and attribution

The recordings and labels are STARSS23 (Sony-TAu Realistic Spatial Soundscapes 2023, Shimada et al., NeurIPS
2023 Datasets and Benchmarks; https://zenodo.org/record/7880637) or data in its layout, redistributed here under
the licence they were distributed with (STARSS22/23 ship a copyright notice of Sony and Tampere University with
an MIT-style licence; check the LICENSE of your copy). Cite the dataset when you use it.

## Reproducing

`{command}` with ROOT holding `foa_dev/` and `metadata_dev/`. Parameters: {parameters}
"""


def write_card(out: Path, record: dict[str, Any]) -> Path:
    """Write `out/README.md` (atomically), with YAML `configs` so that `load_dataset(out)` works."""
    import yaml

    from hf_spatial.data.card import loading_metadata

    counts = {split: count for split, count in record["num_segments"].items() if count}
    parameters = record["parameters"]
    front = {
        "license": "other",
        "pretty_name": "STARSS23-layout FOA recordings (hf-spatial)",
        "tags": ["audio", "spatial-audio", "ambisonics", "foa", "sound-event-localization", "starss23", "hf-spatial"],
        "task_categories": ["audio-classification"],
        **loading_metadata(out / "data", counts, features()),
    }
    split_lines = "".join(
        f"- `{split}`: {count} segments of {len(record['recordings'][split])} recording(s)\n"
        for split, count in counts.items()
    )
    text = CARD_TEMPLATE.format(
        front_matter=yaml.safe_dump(front, sort_keys=False, allow_unicode=True),
        segment_seconds=parameters["segment_seconds"],
        first_split=next(iter(counts)),
        class_list=", ".join(f"{i} `{name}`" for i, name in enumerate(parameters["class_names"])),
        split_lines=split_lines,
        command=record["command"],
        parameters=", ".join(f"`{key}={value}`" for key, value in sorted(parameters.items())),
    )
    path = out / "README.md"
    partial = out / ".README.md.partial"
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path


# ------------------------------------------------------------------------------------------------- CLI
def register(subparsers: argparse._SubParsersAction) -> None:
    convert = subparsers.add_parser(
        "convert",
        help="convert external spatial audio data (STARSS23) into a dataset folder",
        description="Convert external FOA data into a dataset folder with the simulator's row schema.",
    )
    formats = convert.add_subparsers(dest="format", metavar="FORMAT", required=True)
    parser = formats.add_parser(
        "starss23",
        help="STARSS23 / DCASE SELD layout (foa_dev + metadata_dev)",
        description=(
            "Cut the FOA recordings of ROOT/foa_dev/<fold>/*.wav into segments with their DCASE labels "
            "(ROOT/metadata_dev/<fold>/*.csv) and write a dataset folder (load it with datasets.load_dataset(OUT)). "
            "Resumable: re-run the same command to finish an interrupted run."
        ),
    )
    parser.add_argument("--root", required=True, help="folder holding foa_dev/ and metadata_dev/")
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument("--segment-seconds", type=float, default=DEFAULT_SEGMENT_SECONDS, help="segment length")
    parser.add_argument(
        "--split-by-fold",
        action="append",
        default=[],
        metavar="FOLD=SPLIT",
        help="map a fold folder to train/test (default: dev-train-* -> train, dev-test-* -> test); repeatable",
    )
    parser.add_argument("--fuma", action="store_true", help="the recordings are FuMa (converted to AmbiX)")
    parser.add_argument("--no-resample", action="store_true", help="refuse recordings not at 24 kHz")
    parser.add_argument("--skip-unmatched", action="store_true", help="skip wav/csv files without a partner")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=_run)


def _parse_fold_mapping(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        fold, separator, split = item.partition("=")
        if not separator or not fold:
            raise ValueError(f"--split-by-fold takes FOLD=SPLIT (e.g. dev-train-sony=train), got {item!r}.")
        mapping[fold] = split
    return mapping


def _run(args: argparse.Namespace) -> int:
    out = convert_starss23(
        args.root,
        args.out,
        segment_seconds=args.segment_seconds,
        split_by_fold=_parse_fold_mapping(args.split_by_fold),
        foa_format="fuma" if args.fuma else "ambix",
        resample=not args.no_resample,
        skip_unmatched=args.skip_unmatched,
        progress=not args.no_progress,
    )
    print(f"Wrote {out} (load with datasets.load_dataset({str(out)!r}))")
    return 0
