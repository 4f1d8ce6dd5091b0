"""`hf-spatial embed`: precompute a model's audio-encoder outputs for a dataset's clips (the embedding cache).

The language stages (`embedding_cache: DIR`) and `hf-spatial evaluate --embedding-cache DIR` read the cache instead
of running the frozen Whisper and spatial encoders on every step. Sharded (`--shard-size` clips a file), parallel
(`--workers` processes, each writing whole shards), resumable and atomic: a killed run leaves only complete shards,
and the re-run computes the rest, to the same bytes as one uninterrupted run. Jobs share the work by shard files
(`--shard-index K --num-shards N`, `hf_spatial.sharding`): the shards are fixed groups of the splits' distinct clips
in dataset order, so every job, whenever it starts, computes its own and no other's.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

from hf_spatial.data import read_foa
from hf_spatial.data.folders import load_folder
from hf_spatial.models.audio_cache import AudioEmbeddingCache, clip_keys
from hf_spatial.sharding import WHOLE, Shard, add_shard_arguments, shard_from_args
from hf_spatial.training.common import load_model_and_processor

logger = logging.getLogger(__name__)


def default_cache_root() -> Path:
    """`$HF_SPATIAL_CACHE/embeddings`, else `~/.cache/hf_spatial/embeddings`."""
    return Path(os.environ.get("HF_SPATIAL_CACHE") or Path.home() / ".cache" / "hf_spatial") / "embeddings"


def embed(
    model_name_or_path: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    splits: Sequence[str] = ("train",),
    batch_size: int = 8,
    shard_size: int = 256,
    workers: int = 1,
    device: str = "cpu",
    shard: Shard = WHOLE,
) -> AudioEmbeddingCache:
    """Embed every clip of `splits` of `dataset_dir` that the cache under `out` lacks for this model; returns the
    cache. The shards are the distinct clips in dataset order, `shard_size` at a time, each written with the clips of
    it the cache lacks, so any number of workers or jobs (`shard`: part K of N of the shards), and any resume, write
    the same files."""
    if batch_size < 1 or shard_size < 1 or workers < 1:
        raise ValueError(
            f"--batch-size, --shard-size and --workers must be at least 1 (got {batch_size}, {shard_size}, {workers})."
        )
    root = Path(out) if out is not None else default_cache_root()
    model, processor = load_model_and_processor(str(model_name_or_path))
    model.to(device).eval()
    cache = AudioEmbeddingCache.for_model(root, model, processor.feature_extractor)
    # (split, row) of each distinct clip's first occurrence, in dataset order
    clips: dict[str, tuple[str, int]] = {}
    for split in splits:
        keys = clip_keys(load_folder(dataset_dir, split))
        for row, key in enumerate(keys):
            clips.setdefault(key, (split, row))
    ordered = list(clips.items())
    groups = [ordered[start : start + shard_size] for start in range(0, len(ordered), shard_size)]
    # each shard file of this job's part: its group's clips that the cache lacks
    files = [[clip for clip in groups[index] if clip[0] not in cache] for index in shard.units(len(groups))]
    files = [file for file in files if file]
    missing = sum(len(file) for file in files)
    logger.info("embedding %d clips in %d shards into %s (%d cached)", missing, len(files), cache.folder, len(cache))
    jobs = [(str(model_name_or_path), str(dataset_dir), str(root), file, batch_size, device) for file in files]
    bar = tqdm(total=missing, desc="embed", unit="clip")
    if workers == 1 or len(files) <= 1:
        for job in jobs:
            bar.update(_embed_shard(*job, model=model, processor=processor))
    else:
        with ProcessPoolExecutor(min(workers, len(files)), mp_context=get_context("spawn")) as pool:
            for added in pool.map(_embed_shard, *zip(*jobs, strict=True)):
                bar.update(added)
    bar.close()
    return AudioEmbeddingCache.for_model(root, model, processor.feature_extractor)


# A process embeds many shards of the same splits: load each once.
_load_split = functools.lru_cache(maxsize=8)(load_folder)


def _embed_shard(model_name_or_path, dataset_dir, root, shard, batch_size, device, model=None, processor=None) -> int:
    """Compute one shard's clips and store them as one file; in a worker process, load the model first."""
    if model is None:
        model, processor = load_model_and_processor(model_name_or_path)
        model.to(device).eval()
    cache = AudioEmbeddingCache.for_model(root, model, processor.feature_extractor)
    clips = ((key, read_foa(_load_split(dataset_dir, split)[row]["audio"])) for key, (split, row) in shard)
    return cache.update(model, processor.feature_extractor, clips, batch_size=batch_size, shard_size=len(shard))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="precompute a model's audio-encoder outputs for a dataset (the embedding cache)",
        description=(
            "Run the Whisper and spatial encoders of --model once on every clip of --dataset and store their outputs "
            "in --out, for `train ... --embedding_cache DIR` and `evaluate --embedding-cache DIR`. Resumable."
        ),
    )
    parser.add_argument("--model", required=True, help="model folder (or `tiny`)")
    parser.add_argument("--dataset", required=True, type=Path, help="simulated or question dataset folder")
    parser.add_argument("--splits", nargs="+", default=["train"], help="splits to embed (default train)")
    parser.add_argument("--out", type=Path, default=None, help=f"cache folder (default {default_cache_root()})")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--shard-size", type=int, default=256, help="clips per shard file")
    parser.add_argument("--workers", type=int, default=1, help="processes, each writing whole shards")
    parser.add_argument("--device", default="cpu")
    add_shard_arguments(parser, "shard files (--shard-size clips each)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    cache = embed(
        args.model,
        args.dataset,
        args.out,
        args.splits,
        args.batch_size,
        args.shard_size,
        args.workers,
        args.device,
        shard_from_args(args),
    )
    print(f"embedding cache: {cache.folder} ({len(cache)} clips)")
    return 0
