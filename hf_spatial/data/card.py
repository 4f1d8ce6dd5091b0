"""The dataset card (README.md) of a simulated dataset folder.

Its YAML `configs` lists the parquet shards per split so that `datasets.load_dataset(DIR)` works without a
loading script; `dataset_info` declares the features (4-channel 24 kHz `Audio`). The body records the generation
parameters of every split and the licence and attribution of the source clips used. The card is a function of
the generation records only (no timestamps), so re-running a generation reproduces it byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hf_spatial.atomic import write_text_atomic

CARD_TEMPLATE = """\
---
{front_matter}---

# Simulated First-Order Ambisonics scenes (hf-spatial)

4-channel FOA (AmbiX: ACN channel order W, Y, Z, X; SN3D) sound scenes at 24 kHz, rendered by
[hf-spatial](https://github.com/hf-spatial/hf-spatial) in the style of *The World is Not Mono* (arXiv 2601.02954):
1 to 3 labelled sources placed around a listener in simulated shoebox rooms, with the complete scene description
(`scene`, a `SceneSpec` JSON) for every clip.

## Reading the data

With torchcodec and FFmpeg installed (`pip install "hf-spatial[audio]"`, `apt-get install ffmpeg`), the standard
`Audio` feature decodes all four channels:

```python
import datasets

ds = datasets.load_dataset("PATH_OR_REPO", split="{first_split}")
samples = ds[0]["audio"].get_all_samples()  # samples.data: (4, T) float32 tensor, W Y Z X; sample_rate 24000
```

Without FFmpeg, decode the FLAC bytes with soundfile (the same samples):

```python
import datasets
from hf_spatial.data import read_foa

ds = datasets.load_dataset("PATH_OR_REPO", split="{first_split}")
ds = ds.cast_column("audio", datasets.Audio(decode=False))
foa = read_foa(ds[0]["audio"])  # (4, T) float32, W Y Z X
```

Do not use `ds[i]["audio"]["array"]`: it averages the four channels to mono.

## Columns

| column | content |
|---|---|
| `audio` | 4-channel 24-bit FLAC, 24 kHz, AmbiX (W, Y, Z, X), SN3D |
| `scene_id` | unique id, stable for a seed |
| `split` | `train` or `test` |
| `scene` | `SceneSpec` JSON: room, sources (class, clip, caption, direction, distance, timing, gain), noise, seed |
| `num_sources`, `labels`, `room_id`, `rt60` | convenience copies of fields of `scene` |

Conventions: listener frame x = front, y = left, z = up; azimuth in degrees counter-clockwise from the front in
(-180, 180] (+90 = left); elevation in degrees (+90 = up); distance in metres.

## Splits

{split_sections}
Train and test scenes use disjoint source clips (split by a hash of the clip id) and disjoint rooms
(`train-room-*` / `test-room-*`).

## Sources, licences and attribution

{source_sections}
## Reproducing

Generation is deterministic: the same command and versions give the same bytes. Each split above lists its
command.
"""


def loading_metadata(data_dir: Path, num_examples: dict[str, int], features) -> dict[str, Any]:
    """The card's YAML `configs` (parquet shards per split) and `dataset_info` (features, split sizes).

    The sizes matter beyond documentation: with YAML `configs`, datasets 5 keys its cache of a local folder on the
    card, not on the data files, so a folder regenerated in place would load stale rows unless the card changes
    with the data. Split row counts and shard bytes make it change.
    """
    splits = [
        {
            "name": split,
            "num_examples": count,
            "num_bytes": sum(path.stat().st_size for path in sorted(data_dir.glob(f"{split}-*.parquet"))),
        }
        for split, count in num_examples.items()
    ]
    total = sum(split["num_bytes"] for split in splits)
    return {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split in num_examples],
            }
        ],
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": splits,
            "download_size": total,
            "dataset_size": total,
        },
    }


def front_matter(out_dir: Path, records: list[dict[str, Any]], features) -> str:
    licences = sorted(
        {licence for record in records if "provenance" in record for licence in record["provenance"]["licences"]}
    )
    data = {
        "license": "cc0-1.0" if licences == ["CC0-1.0"] else "other",
        "pretty_name": "hf-spatial simulated FOA scenes",
        "tags": ["audio", "spatial-audio", "ambisonics", "foa", "sound-event-localization", "hf-spatial"],
        "task_categories": ["audio-classification"],
        **loading_metadata(out_dir / "data", {record["split"]: record["num_scenes"] for record in records}, features),
    }
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _split_section(record: dict[str, Any]) -> str:
    params = record["parameters"]
    lines = [f"### `{record['split']}`: {record['num_scenes']} scenes in {record['num_shards']} shards", ""]
    lines.append(f"Command: `{record['command']}`")
    lines.append("")
    if not record.get("complete"):
        lines.append(
            "**Incomplete**: this split is being generated, or its generation was interrupted; the folder does not "
            "load until it is finished (re-run the command)."
        )
        lines.append("")
    lines += [f"- `{key}`: `{value}`" for key, value in params.items()]
    lines.append("")
    return "\n".join(lines)


def _source_section(record: dict[str, Any]) -> str:
    provenance = record["provenance"]
    lines = [f"### `{record['split']}` ({provenance['bank']})", ""]
    labels = provenance["labels"]
    lines.append(f"{provenance['num_clips']} distinct clips of {len(labels)} classes ({', '.join(labels)}).")
    lines.append("")
    lines += ["| licence | clips |", "|---|---|"]
    lines += [f"| {licence} | {count} |" for licence, count in provenance["licences"].items()]
    lines.append("")
    if provenance["attributions"]:
        lines.append("Attribution:")
        lines.append("")
        lines += [f"- {attribution}" for attribution in provenance["attributions"]]
        lines.append("")
    return "\n".join(lines)


def write_card(out_dir: Path, records: list[dict[str, Any]]) -> Path:
    """Write `out_dir/README.md` for the given split records (atomically). An incomplete record (no `complete`)
    is declared with its full size, so `load_dataset` refuses its partial shards, and marked as such."""
    from hf_spatial.data.schema import features

    records = sorted(records, key=lambda record: record["split"] != "train")  # train first
    text = CARD_TEMPLATE.format(
        front_matter=front_matter(out_dir, records, features()),
        first_split=records[0]["split"],
        split_sections="\n".join(_split_section(record) for record in records),
        source_sections="\n".join(_source_section(record) for record in records if "provenance" in record),
    )
    return write_text_atomic(out_dir / "README.md", text)
