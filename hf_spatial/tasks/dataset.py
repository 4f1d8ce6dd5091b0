"""Build a QA dataset from a simulated dataset folder: the `hf-spatial questions` command (ARCHITECTURE.md, "Row
contracts").

Output: `OUT/data/{split}-{index:05d}-of-{count:05d}.parquet` and `OUT/README.md` whose YAML `configs` make
`datasets.load_dataset(OUT)` work. Each row is one question and carries its scene's audio cell, scene_id,
split, scene JSON and the QA fields of the contract.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hf_spatial.atomic import check_output_folder, publish_folder, staging_folder
from hf_spatial.conventions import SAMPLE_RATE
from hf_spatial.tasks.twnm import QUESTION_COLUMNS

logger = logging.getLogger(__name__)

QA_STRING_COLUMNS = (
    "sample_id",
    "scene_id",
    "split",
    "scene",
    *QUESTION_COLUMNS,
    "task",
    "open_answer",
    "evidence",
    "params",
)


def qa_features(sampling_rate: int = SAMPLE_RATE):
    from datasets import Audio, Features, Value

    return Features(
        {
            "audio": Audio(sampling_rate=sampling_rate),
            **{c: Value("string") for c in QA_STRING_COLUMNS},
            "level": Value("int32"),
        }
    )


def _load_simulated(dataset_dir: Path):
    """Every split of a simulated folder, each audio cell decoded once: `questions` copies cells on, so an
    undecodable one is refused here, named by shard and row, rather than passed into the QA set."""
    from hf_spatial.data.folders import check_audio_cells, load_folder

    splits = load_folder(dataset_dir, kind="scenes", job="`hf-spatial questions`")
    for name, split in splits.items():
        missing = {"audio", "scene", "scene_id"} - set(split.column_names)
        if missing:
            raise ValueError(f"{dataset_dir} split {name!r} lacks columns {sorted(missing)} of the simulated dataset.")
        check_audio_cells(split, dataset_dir, name)
    return splits


def distractor_statistics(reference_scenes: Sequence[Any]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(vocabulary, priors) for `generate_questions` from reference (training) scenes: label frequencies for
    absent-class distractors and quantity distributions for numeric distractors."""
    from hf_spatial.tasks.priors import compute_priors
    from hf_spatial.tasks.vocabulary import label_frequencies

    vocabulary = label_frequencies(source.label for scene in reference_scenes for source in scene.sources)
    return vocabulary, compute_priors(reference_scenes)


def build_question_dataset(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    max_per_scene: int | None = None,
    questions_per_task: int = 1,
    balance: bool = True,
    rows_per_shard: int = 2000,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write the QA dataset; returns the number of questions per split (`questions_per_task`: see
    `generate_questions`)."""
    from tqdm.auto import tqdm

    from hf_spatial.acoustics.scene import SceneSpec
    from hf_spatial.tasks.balance import balance_answers
    from hf_spatial.tasks.registry import generate_questions, resolve_tasks

    dataset_dir, out_dir = Path(dataset_dir), check_output_folder(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; pass --overwrite or choose another --out.")
    if max_per_scene is not None and max_per_scene < 1:
        raise ValueError(f"--max-per-scene must be at least 1, got {max_per_scene}.")
    if questions_per_task < 1:
        raise ValueError(f"--questions-per-task must be at least 1, got {questions_per_task}.")
    if rows_per_shard < 1:
        raise ValueError(f"--rows-per-shard must be at least 1, got {rows_per_shard}.")
    task_list = resolve_tasks(tasks)
    splits = _load_simulated(dataset_dir)
    scenes = {name: [SceneSpec.from_json(text) for text in split["scene"]] for name, split in splits.items()}
    # Distractor statistics come from the training scenes when there are any, so test items never shape them.
    vocabulary, priors = distractor_statistics(scenes.get("train") or [s for split in scenes.values() for s in split])

    tmp_dir = staging_folder(out_dir)
    (tmp_dir / "data").mkdir()
    counts = {}
    for name, split in splits.items():
        items = []
        for row_index, scene in enumerate(tqdm(scenes[name], desc=f"questions {name}", unit="scene")):
            scene_items = generate_questions(scene, seed, task_list, vocabulary=vocabulary, priors=priors,
                                             questions_per_task=questions_per_task)  # fmt: skip
            if max_per_scene is not None and len(scene_items) > max_per_scene:
                rng = np.random.default_rng([seed, row_index])
                keep = sorted(rng.choice(len(scene_items), size=max_per_scene, replace=False).tolist())
                scene_items = [scene_items[i] for i in keep]
            items.extend({**item, "_row": row_index} for item in scene_items)
        if balance:
            items = balance_answers(items, seed=seed)
        counts[name] = len(items)
        _write_split(tmp_dir / "data", name, split, items, rows_per_shard)
        logger.info("%s: %d questions from %d scenes", name, len(items), len(scenes[name]))
    card = dataset_card(tmp_dir / "data", counts, task_list, seed, dataset_dir)
    (tmp_dir / "README.md").write_text(card, encoding="utf-8")
    publish_folder(tmp_dir, out_dir)
    return counts


def write_parquet(rows: list[dict[str, Any]], features: Any, path: Path) -> None:
    """Write rows with their HF features in the schema metadata, without `Audio.encode_example` (which needs
    torchcodec): audio cells are already {"bytes", "path"} structs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows, schema=features.arrow_schema), str(path))


def _write_split(data_dir: Path, name: str, split: Any, items: list[dict[str, Any]], rows_per_shard: int) -> None:
    num_shards = max(1, -(-len(items) // rows_per_shard))
    audio_column = split["audio"] if items else []
    scene_column = split["scene"] if items else []
    features = qa_features()
    for shard in range(num_shards):
        rows = []
        for item in items[shard * rows_per_shard : (shard + 1) * rows_per_shard]:
            row = dict(item)
            source_row = row.pop("_row")
            audio = audio_column[source_row]
            row.update(
                audio={"bytes": audio["bytes"], "path": audio["path"]}, split=name, scene=scene_column[source_row]
            )
            rows.append(row)
        write_parquet(rows, features, data_dir / f"{name}-{shard:05d}-of-{num_shards:05d}.parquet")


def dataset_card(data_dir: Path, counts: dict[str, int], tasks: Sequence[str], seed: int, source: Path) -> str:
    """README with YAML `configs` listing the parquet shards per split, and what the dataset holds."""
    import yaml

    from hf_spatial.data.card import loading_metadata
    from hf_spatial.tasks.registry import TASKS

    metadata = {
        **loading_metadata(data_dir, counts, qa_features()),
        "task_categories": ["audio-classification", "question-answering"],
        "tags": ["spatial-audio", "ambisonics", "foa"],
    }
    task_lines = "\n".join(f"| `{name}` | {TASKS[name].level} | {TASKS[name].description} |" for name in tasks)
    sizes = ", ".join(f"{name}: {count}" for name, count in counts.items())
    return f"""---
{yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)}---
# Spatial audio scene analysis questions

Multiple-choice questions (four options A-D) about First-Order Ambisonics scenes, generated by `hf-spatial
questions` (seed {seed}) from the simulated dataset `{source.name}`. Questions per split: {sizes}.

Each row: `audio` (4-channel AmbiX W,Y,Z,X SN3D FLAC at 24 kHz; decode with `hf_spatial.data.read_foa`, not
`["array"]`, which downmixes), `scene_id`, `split`, `scene` (SceneSpec JSON), `sample_id`, `question`,
`option_a`..`option_d`, `answer_letter`, `answer_text`, `level`, `task`, `open_answer`, `evidence`, `params`
(what the question is about, for `hf_spatial.tasks.solving.answer_for_scene`).

Listener frame: x front, y left, z up; azimuth counter-clockwise from the front (+90 = left).

| task | level | what it asks |
|---|---:|---|
{task_lines}
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "questions",
        help="generate ASA multiple-choice questions for a simulated dataset",
        description="Read a simulated FOA dataset folder and write a QA dataset folder (parquet + card).",
    )
    parser.add_argument("--dataset", required=True, type=Path, help="simulated dataset folder (hf-spatial simulate)")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the QA dataset")
    parser.add_argument("--seed", type=int, default=0, help="seed of question templates and option order")
    parser.add_argument("--tasks", nargs="+", default=None, help="task names or levels l1/l2/l3 (default: all)")
    parser.add_argument("--max-per-scene", type=int, default=None, help="keep at most N questions per scene")
    parser.add_argument(
        "--questions-per-task",
        type=int,
        default=1,
        help="per scene and task, up to N questions about different sources/pairs (more training data per scene)",
    )
    parser.add_argument("--no-balance", action="store_true", help="keep every question (no answer balancing)")
    parser.add_argument("--rows-per-shard", type=int, default=2000)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    counts = build_question_dataset(
        args.dataset,
        args.out,
        seed=args.seed,
        tasks=args.tasks,
        max_per_scene=args.max_per_scene,
        questions_per_task=args.questions_per_task,
        balance=not args.no_balance,
        rows_per_shard=args.rows_per_shard,
        overwrite=args.overwrite,
    )
    print(f"wrote {sum(counts.values())} questions ({', '.join(f'{k}: {v}' for k, v in counts.items())}) to {args.out}")
    return 0
