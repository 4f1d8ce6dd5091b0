"""`hf-spatial simulate` / `simulate(...)`: render a sharded, resumable FOA scene dataset folder.

Layout (ARCHITECTURE.md, "Row contracts"): `DIR/README.md` (card), `DIR/data/{split}-{i:05d}-of-{n:05d}.parquet`, and
`DIR/generation/{split}.json` (the parameters and provenance of a split; the card is rebuilt from these).

Shard i holds scenes [i * shard_size, (i + 1) * shard_size) of (seed, split), a deterministic function of the
arguments and i alone. A shard is written to `DIR/.partial/` and renamed into `data/` when complete, so `data/`
never shows a half-written shard; a re-run skips the shards present and intact (a damaged one is rendered again)
and produces the same bytes an uninterrupted run would. Nothing is written before the arguments and sources are
checked. While a split is incomplete its record says so and the card declares its full size, so `load_dataset`
and `hf_spatial.data.folders.load_folder` refuse the folder rather than load part of it.

Jobs share the work by parquet shards (`--shard-index K --num-shards N`, `hf_spatial.sharding`): each renders its
part into the same folder, concurrently or not; the same command without `--shard-index` then renders whatever is
missing and completes the split (provenance and card).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hf_spatial.atomic import check_output_folder, write_json_atomic
from hf_spatial.data.card import write_card
from hf_spatial.data.folders import generation_records
from hf_spatial.sharding import WHOLE, Shard, add_shard_arguments, shard_from_args

logger = logging.getLogger(__name__)

DEFAULT_NUM_SCENES = 100
DEFAULT_SHARD_SIZE = 50
MAX_ATTRIBUTIONS = 200


@dataclass(frozen=True)
class SimulationArgs:
    """Everything the bytes of a split depend on (besides package versions)."""

    num_scenes: int = DEFAULT_NUM_SCENES
    seed: int = 0
    split: str = "train"
    sources: str = "procedural"
    mode: str = "hybrid"
    shard_size: int = DEFAULT_SHARD_SIZE
    duration: float = 5.0

    def __post_init__(self) -> None:
        if self.num_scenes < 1:
            raise ValueError(f"--num-scenes must be at least 1, got {self.num_scenes}.")
        if self.shard_size < 1:
            raise ValueError(f"--shard-size must be at least 1, got {self.shard_size}.")
        if self.split not in ("train", "test"):
            raise ValueError(f"--split must be 'train' or 'test', got {self.split!r}.")
        if self.mode not in ("exact", "hybrid"):
            raise ValueError(f"--mode must be 'exact' or 'hybrid', got {self.mode!r}.")

    @property
    def num_shards(self) -> int:
        return math.ceil(self.num_scenes / self.shard_size)

    def shard_name(self, index: int) -> str:
        return f"{self.split}-{index:05d}-of-{self.num_shards:05d}.parquet"

    def shard_range(self, index: int) -> tuple[int, int]:
        start = index * self.shard_size
        return start, min(self.shard_size, self.num_scenes - start)

    def command(self) -> str:
        """The command line that generates this split (the output folder written as OUT)."""
        return shlex.join(
            ["hf-spatial", "simulate", "--out", "OUT", "--num-scenes", str(self.num_scenes), "--seed",
             str(self.seed), "--split", self.split, "--sources", self.sources, "--mode", self.mode,
             "--shard-size", str(self.shard_size), "--duration", str(self.duration)]
        )  # fmt: skip


# ------------------------------------------------------------------------------------------ worker side
_WORKER: dict[str, Any] = {}


def _init_worker(args: SimulationArgs, cache_dir: str | None, out_dir: str) -> None:
    """Build the bank and sampler once per process (they are deterministic functions of the arguments)."""
    from hf_spatial.acoustics.sampler import SceneSampler, SceneSamplerConfig
    from hf_spatial.acoustics.sources import SourceBank

    bank = SourceBank.from_spec(args.sources, cache_dir=cache_dir)  # the bank does not depend on the scene seed
    config = SceneSamplerConfig(duration=args.duration, render_mode=args.mode)
    _WORKER.update(args=args, bank=bank, sampler=SceneSampler(config, bank), out_dir=Path(out_dir))


def _write_shard(index: int) -> tuple[int, int]:
    """Render shard `index` and publish it atomically; returns (index, number of scenes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hf_spatial.acoustics.render import render_scene
    from hf_spatial.data.schema import features, scene_row

    args: SimulationArgs = _WORKER["args"]
    start, count = args.shard_range(index)
    rows = []
    for scene in _WORKER["sampler"].sample(count, args.seed, args.split, start=start):
        rows.append(scene_row(scene, render_scene(scene, _WORKER["bank"])))
    table = pa.Table.from_pylist(rows, schema=features().arrow_schema)
    out_dir: Path = _WORKER["out_dir"]
    partial = out_dir / ".partial" / f"{args.shard_name(index)}.{os.getpid()}"
    pq.write_table(table, partial, row_group_size=len(rows))
    partial.replace(out_dir / "data" / args.shard_name(index))
    return index, count


# ------------------------------------------------------------------------------------------ driver side
def simulate(
    out_dir: str | Path,
    num_scenes: int = DEFAULT_NUM_SCENES,
    seed: int = 0,
    split: str = "train",
    sources: str = "procedural",
    mode: str = "hybrid",
    shard_size: int = DEFAULT_SHARD_SIZE,
    duration: float = 5.0,
    workers: int = 1,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    shard: Shard = WHOLE,
) -> Path:
    """Generate (or finish generating) one split of a dataset folder; returns the folder.

    `sources`: "procedural" (or "procedural:N", N clips per class), "debian", "debian:all", "debian:PKG,...", a
    folder of class subfolders, or a CSV/TSV manifest (see `SourceBank.from_spec`). `workers` processes render shards
    in parallel; the result does not depend on it. Re-running with the same arguments resumes; different arguments
    for an existing split are refused.
    `shard` (part K of N) renders only that part's parquet shards and leaves the split incomplete.
    """
    from tqdm.auto import tqdm

    args = SimulationArgs(num_scenes, seed, split, sources, mode, shard_size, duration)
    out = check_output_folder(out_dir)
    record_path = out / "generation" / f"{split}.json"
    record = _new_record(out, record_path, args)
    cache = str(cache_dir) if cache_dir is not None else None
    # Sources and the sampler settings (duration, ...) are checked here, before anything is written, so a failed
    # command leaves nothing that would make its corrected version refuse to run.
    _init_worker(args, cache, str(out))
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / ".partial").mkdir(exist_ok=True)
    mine = shard.units(args.num_shards)
    for index in mine:  # other jobs may be writing theirs
        for stale in (out / ".partial").glob(f"{args.shard_name(index)}.*"):
            stale.unlink()  # left by a killed run
    pending = [i for i in mine if not _shard_done(out, args, i)]
    if pending or not record_path.is_file():
        # The card comes first: from now until the split is complete it declares the split's full size, so
        # `load_dataset(out)` refuses the folder instead of loading part of it (or the record as data).
        others = [r for name, r in generation_records(out).items() if name != split]
        write_card(out, [*others, record])
        write_json_atomic(record_path, record, sort_keys=True)
    total = sum(args.shard_range(i)[1] for i in mine)
    done = total - sum(args.shard_range(i)[1] for i in pending)
    logger.info("simulate %s: %d scenes, %d shard(s) to render, %d worker(s)", split, total, len(pending), workers)
    with tqdm(total=total, initial=done, unit="scene", desc=f"simulate {split}", disable=not progress) as bar:
        if workers <= 1 or len(pending) <= 1:
            for index in pending:
                bar.update(_write_shard(index)[1])
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            with context.Pool(min(workers, len(pending)), _init_worker, (args, cache, str(out))) as pool:
                for _, count in pool.imap_unordered(_write_shard, pending):
                    bar.update(count)
    if not shard.finishes:
        return out
    record["provenance"] = _provenance(out, args, _WORKER["bank"])
    record["complete"] = True
    write_json_atomic(record_path, record, sort_keys=True)
    write_card(out, list(generation_records(out).values()))
    return out


def _shard_done(out: Path, args: SimulationArgs, index: int) -> bool:
    """Whether shard `index` is in `data/` and intact (its footer parses and holds its row count); a damaged one
    (truncated by a full disk or a copy, say) is removed, with a warning, to be rendered again."""
    import pyarrow.parquet as pq

    path = out / "data" / args.shard_name(index)
    if not path.is_file():
        return False
    expected = args.shard_range(index)[1]
    try:
        rows = pq.read_metadata(path).num_rows
        problem = None if rows == expected else f"{rows} rows where it should hold {expected}"
    except (OSError, ValueError) as error:  # pyarrow: ArrowInvalid (a ValueError) or OSError
        problem = str(error)
    if problem is None:
        return True
    logger.warning("%s is truncated or corrupt (%s); rendering it again", path, problem)
    path.unlink()
    return False


def _new_record(out: Path, record_path: Path, args: SimulationArgs) -> dict[str, Any]:
    """The generation record of this split (not yet complete); a split recorded with other parameters is refused."""
    from hf_spatial import __version__
    from hf_spatial.acoustics.scene import SceneSpec

    parameters = asdict(args)
    record = {
        "split": args.split,
        "num_scenes": args.num_scenes,
        "num_shards": args.num_shards,
        "command": args.command(),
        "parameters": parameters,
        "versions": {"hf_spatial": __version__, "renderer": SceneSpec.__dataclass_fields__["renderer_version"].default},
    }
    previous = generation_records(out).get(args.split)
    if previous is not None and previous["parameters"] != parameters:
        changed = {k: (previous["parameters"].get(k), v) for k, v in parameters.items()
                   if previous["parameters"].get(k) != v}  # fmt: skip
        raise FileExistsError(
            f"{out} already holds a {args.split} split generated with other parameters "
            f"(old, new): {changed}. Use another --out, or delete {out / 'data'}/{args.split}-* and {record_path}."
        )
    return record


def _provenance(out: Path, args: SimulationArgs, bank) -> dict[str, Any]:
    """Licences and attribution of the clips the split actually uses (read back from its shards)."""
    import pyarrow.parquet as pq

    clip_ids = set()
    for index in range(args.num_shards):
        for scene in pq.read_table(out / "data" / args.shard_name(index), columns=["scene"]).column("scene"):
            clip_ids.update(source["clip_id"] for source in json.loads(scene.as_py())["sources"])
    clips = [bank[clip_id] for clip_id in sorted(clip_ids)]
    licences: dict[str, int] = {}
    for clip in clips:
        licences[clip.licence or "unknown"] = licences.get(clip.licence or "unknown", 0) + 1
    attributions = sorted({clip.attribution for clip in clips if clip.attribution})
    if len(attributions) > MAX_ATTRIBUTIONS:
        extra = len(attributions) - MAX_ATTRIBUTIONS
        attributions = [*attributions[:MAX_ATTRIBUTIONS], f"... and {extra} more (clip ids are in the `scene` column)"]
    return {
        "bank": bank.description,
        "num_clips": len(clips),
        "labels": sorted({clip.label for clip in clips}),
        "licences": dict(sorted(licences.items())),
        "attributions": attributions,
    }


# ------------------------------------------------------------------------------------------------- CLI
def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="render a dataset of FOA scenes (parquet shards + dataset card)",
        description=(
            "Render simulated First-Order Ambisonics scenes into a Hugging Face dataset folder "
            "(load it with datasets.load_dataset(OUT)). Deterministic, parallel and resumable: re-run the same "
            "command to finish an interrupted run."
        ),
    )
    parser.add_argument("--out", required=True, help="dataset folder (created; re-use it to resume or add a split)")
    parser.add_argument("--num-scenes", type=int, default=DEFAULT_NUM_SCENES, help="scenes in this split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument(
        "--sources",
        default="procedural",
        help="procedural (default; procedural:N for N clips per class), debian (small packages), debian:all, "
        "debian:PKG,..., a folder with one subfolder per class, a .csv/.tsv manifest (path, label[, caption, licence, "
        "attribution, split]), or several joined by '+' (procedural+debian)",
    )
    parser.add_argument("--mode", choices=("exact", "hybrid"), default="hybrid", help="renderer (default: hybrid)")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="scenes per parquet shard")
    parser.add_argument("--duration", type=float, default=5.0, help="scene length in seconds")
    parser.add_argument("--workers", type=int, default=_default_workers(), help="parallel processes")
    parser.add_argument("--cache-dir", default=None, help="Debian sound bank cache (default ~/.cache/hf_spatial)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_shard_arguments(parser, "parquet shards of the split")
    parser.set_defaults(func=_run)


def _default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _run(args: argparse.Namespace) -> int:
    shard = shard_from_args(args)
    out = simulate(
        args.out,
        num_scenes=args.num_scenes,
        seed=args.seed,
        split=args.split,
        sources=args.sources,
        mode=args.mode,
        shard_size=args.shard_size,
        duration=args.duration,
        workers=args.workers,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
        shard=shard,
    )
    if not shard.finishes:
        print(
            f"Wrote part {shard.index} of {shard.count} of {out}; when every part is written, run this command "
            "without --shard-index to complete the split"
        )
        return 0
    print(f"Wrote {out} (load with datasets.load_dataset({str(out)!r}))")
    return 0
