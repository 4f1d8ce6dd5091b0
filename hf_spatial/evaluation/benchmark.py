"""`hf-spatial benchmark build`: a held-out ASA benchmark rendered from test rooms and test clips only.

Output folder (written to a temporary sibling and renamed when complete):

```
OUT/README.md, OUT/data/test-00000-of-00001.parquet   load_dataset(OUT, split="test"): QA rows + audio + scene
OUT/twnm/metadata.jsonl, OUT/twnm/audio/*.flac         the TWNM-FOA-Benchmark layout (hf-spatial publish benchmark)
OUT/generation_report.md, OUT/generation_report.json   counts per level/task, leak checks, the command
```

Scenes are drawn by `SceneSampler(split="test")`, questions by `generate_questions` with distractor statistics
from training scenes (`--train-dataset`, else sampled training-split geometry), answers balanced per task, and
items chosen by level quota (`selection`). Only the scenes of chosen items are rendered. Same arguments give the
same bytes.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hf_spatial.atomic import check_output_folder, publish_folder, staging_folder, write_json_atomic

logger = logging.getLogger(__name__)

# Training-split scenes sampled (geometry only) for distractor statistics and the design leak check when no
# training dataset is given.
REFERENCE_SCENES = 2000
MAX_POOL_SCENES = 200_000


@dataclass(frozen=True)
class BenchmarkArgs:
    """Everything the benchmark's bytes depend on (besides package versions and training datasets)."""

    num_items: int = 1000
    seed: int = 0
    sources: str = "procedural"
    mode: str = "hybrid"
    duration: float = 5.0
    max_per_scene: int = 3
    train_datasets: tuple[str, ...] = field(default_factory=tuple)
    tasks: tuple[str, ...] | None = None  # None: every task

    def __post_init__(self) -> None:
        if self.num_items < 1:
            raise ValueError(f"--num-items must be at least 1, got {self.num_items}.")
        if self.max_per_scene < 1:
            raise ValueError(f"--max-per-scene must be at least 1, got {self.max_per_scene}.")
        if self.mode not in ("exact", "hybrid"):
            raise ValueError(f"--mode must be 'exact' or 'hybrid', got {self.mode!r}.")

    def command(self) -> str:
        words = ["hf-spatial", "benchmark", "build", "--out", "OUT", "--seed", str(self.seed), "--num-items",
                 str(self.num_items), "--sources", self.sources, "--mode", self.mode, "--duration", str(self.duration),
                 "--max-per-scene", str(self.max_per_scene)]  # fmt: skip
        for path in self.train_datasets:
            words += ["--train-dataset", Path(path).name]
        if self.tasks is not None:
            words += ["--tasks", *self.tasks]
        return shlex.join(words)


# ------------------------------------------------------------------------------------------ rendering workers
_WORKER: dict[str, Any] = {}


def _init_worker(sources: str, cache_dir: str | None) -> None:
    from hf_spatial.acoustics.sources import SourceBank

    _WORKER["bank"] = SourceBank.from_spec(sources, cache_dir=cache_dir)


def _render(scene_json: str) -> dict[str, Any]:
    from hf_spatial.acoustics.render import render_scene
    from hf_spatial.acoustics.scene import SceneSpec
    from hf_spatial.data.schema import scene_row

    scene = SceneSpec.from_json(scene_json)
    return scene_row(scene, render_scene(scene, _WORKER["bank"]))  # rendering sets scene.output_gain_db


def _render_all(scenes: list, args: BenchmarkArgs, workers: int, cache_dir: str | None) -> dict[str, dict[str, Any]]:
    from tqdm.auto import tqdm

    texts = [scene.to_json() for scene in scenes]
    rows: dict[str, dict[str, Any]] = {}
    with tqdm(total=len(texts), unit="scene", desc="render benchmark") as bar:
        if workers <= 1 or len(texts) <= 1:
            _init_worker(args.sources, cache_dir)
            for text in texts:
                row = _render(text)
                rows[row["scene_id"]] = row
                bar.update()
        else:
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(workers, _init_worker, (args.sources, cache_dir)) as pool:
                for row in pool.imap(_render, texts, chunksize=4):
                    rows[row["scene_id"]] = row
                    bar.update()
    return rows


# ------------------------------------------------------------------------------------------ driver
def build_benchmark(
    out_dir: str | os.PathLike,
    num_items: int = 1000,
    seed: int = 0,
    sources: str = "procedural",
    mode: str = "hybrid",
    duration: float = 5.0,
    max_per_scene: int = 3,
    train_datasets: list[str | os.PathLike] | tuple = (),
    workers: int = 1,
    cache_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    tasks: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Build the benchmark folder (see the module docstring); returns the generation report as a dict.

    `tasks` (task names or level shorthands l1/l2/l3, as `hf-spatial questions --tasks`) restricts the benchmark
    to those tasks; the level quotas then cover only their levels, in TWNM's proportions.

    Raises ValueError when a training dataset shares a clip, room or scene with the benchmark (the report is
    still written to `OUT.rejected/` for inspection) or when the test split cannot supply enough items.
    """
    from hf_spatial.acoustics.sampler import SceneSampler, SceneSamplerConfig
    from hf_spatial.acoustics.sources import SourceBank
    from hf_spatial.evaluation.leaks import find_leaks, read_dataset_scenes
    from hf_spatial.tasks.dataset import distractor_statistics
    from hf_spatial.tasks.registry import resolve_tasks

    args = BenchmarkArgs(
        num_items,
        seed,
        sources,
        mode,
        duration,
        max_per_scene,
        tuple(str(p) for p in train_datasets),
        tuple(resolve_tasks(tasks)) if tasks is not None else None,
    )
    out = check_output_folder(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite or choose another --out.")
    cache = str(cache_dir) if cache_dir is not None else None
    bank = SourceBank.from_spec(sources, cache_dir=cache)
    sampler = SceneSampler(SceneSamplerConfig(duration=duration, render_mode=mode), bank)

    train_sets = {Path(path).name: read_dataset_scenes(path) for path in args.train_datasets}
    sampled_train = sampler.sample(REFERENCE_SCENES, seed, "train")
    reference = [scene for scenes in train_sets.values() for scene in scenes] or sampled_train
    vocabulary, priors = distractor_statistics(reference)

    items, scenes = _choose_items(sampler, args, vocabulary, priors)
    leak_checks = [find_leaks(scenes, sampled_train, "sampled training split")]
    leak_checks += [find_leaks(scenes, train, name) for name, train in train_sets.items()]
    report = generation_report(args, items, scenes, leak_checks, bank)
    if not all(check.clean for check in leak_checks):
        rejected = out.with_name(f"{out.name}.rejected")
        rejected.mkdir(parents=True, exist_ok=True)
        _write_reports(rejected, report)
        problems = "; ".join(check.summary() for check in leak_checks if not check.clean)
        raise ValueError(f"The benchmark would share data with training: {problems}. Report: {rejected}.")

    rows = _render_all(scenes, args, workers, cache)
    tmp = staging_folder(out)
    _write_benchmark(tmp, items, rows, report)
    publish_folder(tmp, out)
    logger.info("benchmark: %d items from %d scenes in %s", len(items), len(scenes), out)
    return report


def _choose_items(sampler, args: BenchmarkArgs, vocabulary, priors) -> tuple[list[dict[str, Any]], list]:
    """Sample test scenes until the quotas can be met; returns (items, the scenes they use, in id order)."""
    from hf_spatial.evaluation.selection import select_items
    from hf_spatial.tasks.balance import balance_answers
    from hf_spatial.tasks.registry import TASKS, generate_questions, resolve_tasks

    levels = sorted({TASKS[task].level for task in resolve_tasks(args.tasks)})
    pool_size = max(16, -(-2 * args.num_items // args.max_per_scene))
    scenes: list = []
    candidates: list[dict[str, Any]] = []
    while True:
        new = sampler.sample(pool_size - len(scenes), args.seed, "test", start=len(scenes))
        for scene in new:
            candidates += generate_questions(scene, args.seed, args.tasks, vocabulary=vocabulary, priors=priors)
        scenes += new
        items, shortfall = select_items(balance_answers(candidates, seed=args.seed), args.num_items, args.seed,
                                        args.max_per_scene, levels)  # fmt: skip
        if not shortfall:
            break
        if pool_size >= MAX_POOL_SCENES:
            raise ValueError(
                f"{pool_size} test scenes give too few items for levels {shortfall} (missing per level); lower "
                "--num-items or raise --max-per-scene."
            )
        pool_size *= 2
    used = {item["scene_id"] for item in items}
    return items, [scene for scene in scenes if scene.scene_id in used]


def generation_report(args: BenchmarkArgs, items, scenes, leak_checks, bank) -> dict[str, Any]:
    """Counts per level, task and gold letter, what the scenes use, and the leak checks."""
    from hf_spatial.tasks.registry import TASKS, resolve_tasks

    tasks = Counter(item["task"] for item in items)
    missing = [task for task in resolve_tasks(args.tasks) if task not in tasks]
    return {
        "args": {
            **asdict(args),
            "train_datasets": [Path(p).name for p in args.train_datasets],
            "tasks": list(args.tasks) if args.tasks is not None else None,
        },
        "command": args.command(),
        "num_items": len(items),
        "num_scenes": len(scenes),
        "levels": {str(level): n for level, n in sorted(Counter(int(i["level"]) for i in items).items())},
        "tasks": {task: {"level": TASKS[task].level, "count": tasks[task]} for task in sorted(tasks)},
        "tasks_missing": missing,
        "answer_letters": dict(sorted(Counter(item["answer_letter"] for item in items).items())),
        "sources_per_scene": dict(sorted(Counter(len(s.sources) for s in scenes).items())),
        "num_rooms": len({scene.room.room_id for scene in scenes}),
        "num_clips": len({source.clip_id for scene in scenes for source in scene.sources}),
        "splits": sorted({scene.split for scene in scenes}),
        "source_bank_test_clips": len(bank.split("test").clips),
        "leak_checks": [check.to_dict() for check in leak_checks],
    }


def report_markdown(report: dict[str, Any]) -> str:
    return f"# Benchmark generation report\n\n`{report['command']}`\n\n" + counts_markdown(report)


def counts_markdown(report: dict[str, Any]) -> str:
    """Counts per level and task and the leak checks of a generation report, as markdown."""
    lines = [
        f"{report['num_items']} items from {report['num_scenes']} test scenes ({report['num_rooms']} test rooms, "
        f"{report['num_clips']} test clips; sources per scene {report['sources_per_scene']}); gold letters "
        f"{report['answer_letters']}.",
        "",
        "| level | items |",
        "|---|---:|",
        *[f"| {level} | {count} |" for level, count in report["levels"].items()],
        "",
        "| task | level | items |",
        "|---|---:|---:|",
        *[f"| `{task}` | {info['level']} | {info['count']} |" for task, info in report["tasks"].items()],
        "",
    ]
    if report["tasks_missing"]:
        lines += [f"Tasks without items (raise --num-items): {', '.join(report['tasks_missing'])}.", ""]
    lines += ["## Leak checks", "", "Shared source clips, rooms and scenes (by id or content) with:", ""]
    for check in report["leak_checks"]:
        status = "clean" if check["clean"] else "**LEAK**"
        lines.append(
            f"- {check['reference']} ({check['num_reference_scenes']} scenes): {status}; clips "
            f"{len(check['shared_clips'])}, rooms {len(check['shared_rooms'])}, scenes {len(check['shared_scenes'])}"
        )
    return "\n".join(lines) + "\n"


def _write_reports(folder: Path, report: dict[str, Any]) -> None:
    write_json_atomic(folder / "generation_report.json", report)
    (folder / "generation_report.md").write_text(report_markdown(report), encoding="utf-8")


def _write_benchmark(folder: Path, items: list[dict[str, Any]], rows: dict[str, dict[str, Any]], report) -> None:
    from hf_spatial.tasks.dataset import qa_features, write_parquet
    from hf_spatial.tasks.twnm import write_twnm_benchmark

    (folder / "data").mkdir()
    full = [
        {**item, "split": "test", "scene": rows[item["scene_id"]]["scene"], "audio": rows[item["scene_id"]]["audio"]}
        for item in items
    ]
    write_parquet(full, qa_features(), folder / "data" / "test-00000-of-00001.parquet")
    write_twnm_benchmark(
        [{k: v for k, v in row.items() if k != "audio"} for row in full],
        lambda item: rows[item["scene_id"]]["audio"]["bytes"],
        folder / "twnm",
    )
    _write_reports(folder, report)
    (folder / "README.md").write_text(benchmark_card(report, folder / "data"), encoding="utf-8")


def benchmark_card(report: dict[str, Any], data_dir: Path) -> str:
    """Dataset card of the benchmark folder: YAML `configs` and `dataset_info` for load_dataset, what it holds, how it
    was made. The split size in `dataset_info` makes the card (which datasets keys its cache of a local folder on)
    differ between benchmarks, so a benchmark rebuilt in place, or another one at a same-named path, never loads
    stale rows."""
    import yaml

    from hf_spatial.data.card import loading_metadata
    from hf_spatial.tasks.dataset import qa_features

    tasks = report["args"].get("tasks")
    scope = f"only the tasks {', '.join(tasks)}; " if tasks else ""
    metadata = {
        **loading_metadata(data_dir, {"test": report["num_items"]}, qa_features()),
        "task_categories": ["audio-classification", "question-answering"],
        "tags": ["spatial-audio", "ambisonics", "foa", "benchmark"],
    }
    return f"""---
{yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)}---
# hf-spatial audio scene analysis benchmark

{report["num_items"]} multiple-choice questions (four options A-D) about {report["num_scenes"]} First-Order
Ambisonics scenes rendered from held-out test rooms and test source clips only; {scope}levels L1/L2/L3 in TWNM's
proportions (385/279/336 per 1,000), tasks evenly within a level, at most {report["args"]["max_per_scene"]}
questions per scene.

- `load_dataset(path, split="test")`: one row per question with `audio` (4-channel AmbiX W,Y,Z,X SN3D FLAC at
  24 kHz; decode with `hf_spatial.data.read_foa`), `scene` (SceneSpec JSON) and the QA fields.
- `twnm/`: the same items in the TWNM-FOA-Benchmark layout (`metadata.jsonl` + `audio/`).
- `generation_report.md`: counts per level and task, and the leak checks.
- Evaluate: `hf-spatial evaluate --model MODEL --benchmark path --controls --circular`.

Made with `{report["command"]}`.

{counts_markdown(report)}"""


# ------------------------------------------------------------------------------------------ CLI
def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("benchmark", help="build the held-out ASA benchmark")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="render a held-out benchmark from test rooms and test clips",
        description="Build a held-out ASA benchmark (HF dataset folder + TWNM layout + generation report).",
    )
    build.add_argument("--out", required=True, type=Path, help="output folder")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--num-items", type=int, default=1000, help="questions (default 1000: L1/L2/L3 385/279/336)")
    build.add_argument(
        "--sources",
        default="procedural",
        help="procedural, debian, debian:all, FOLDER, manifest, or several joined by '+'",
    )
    build.add_argument("--mode", default="hybrid", choices=("hybrid", "exact"), help="renderer")
    build.add_argument("--duration", type=float, default=5.0, help="scene length in seconds")
    build.add_argument("--max-per-scene", type=int, default=3, help="at most N questions per scene")
    build.add_argument(
        "--train-dataset", action="append", default=[], type=Path, help="training dataset folder to check for leaks"
    )
    build.add_argument("--tasks", nargs="+", default=None, help="task names or levels l1/l2/l3 (default: every task)")
    build.add_argument("--workers", type=int, default=1, help="rendering processes")
    build.add_argument("--cache-dir", type=Path, default=None, help="cache of downloaded source clips")
    build.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    report = build_benchmark(
        args.out,
        num_items=args.num_items,
        seed=args.seed,
        sources=args.sources,
        mode=args.mode,
        duration=args.duration,
        max_per_scene=args.max_per_scene,
        train_datasets=args.train_dataset,
        workers=args.workers,
        cache_dir=args.cache_dir,
        overwrite=args.overwrite,
        tasks=args.tasks,
    )
    levels = ", ".join(f"L{level} {count}" for level, count in report["levels"].items())
    print(f"wrote {report['num_items']} items ({levels}) from {report['num_scenes']} scenes to {args.out}")
    return 0
