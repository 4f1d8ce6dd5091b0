"""Splitting a command's work between independent jobs: `--shard-index K --num-shards N`.

Job K of N does the K-th of N contiguous parts of the command's work units, cut as `datasets.Dataset.shard(N, K)`
cuts a dataset (contiguous). The jobs share nothing but the output folder, so any scheduler can run them (a Slurm
array, Kubernetes indexed jobs, Ray tasks, a shell loop). The same command without `--shard-index` then does every
part not yet done and finishes the output (`hf-spatial simulate`: the card and provenance; `hf-spatial evaluate`:
the merged predictions and report); the result is byte for byte that of one job doing everything.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    """Part `index` of `count` (`index` None: every part, then finish)."""

    index: int | None = None
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"--num-shards must be at least 1, got {self.count}.")
        if self.index is not None and not 0 <= self.index < self.count:
            raise ValueError(
                f"--shard-index must be in 0..{self.count - 1} (--num-shards {self.count}), got {self.index}; "
                "for a Slurm array pass --shard-index $SLURM_ARRAY_TASK_ID with --array=0-N-1."
            )

    @property
    def finishes(self) -> bool:
        """Whether this run does every part and finishes the output (no `--shard-index`)."""
        return self.index is None

    def indices(self) -> range:
        """The parts this run does."""
        return range(self.count) if self.index is None else range(self.index, self.index + 1)

    def units(self, total: int, index: int | None = None) -> range:
        """The work units (of `total`, in order) of part `index` (default: this run's part; all for None)."""
        index = self.index if index is None else index
        if index is None:
            return range(total)
        size, extra = divmod(total, self.count)
        start = index * size + min(index, extra)
        return range(start, start + size + (index < extra))


WHOLE = Shard()  # one job doing every part (the default of every sharded command)


def add_shard_arguments(parser: argparse.ArgumentParser, units: str) -> None:
    """`--shard-index K --num-shards N` on a command whose work is split into `units`."""
    group = parser.add_argument_group(
        "sharding (one job per part, e.g. a Slurm array; see README)",
        f"Split the {units} into N contiguous parts and do part K only. Then run the same command without "
        "--shard-index: it does any part not yet done and finishes the output, identical to one job doing all.",
    )
    group.add_argument("--shard-index", type=int, default=None, metavar="K", help="the part this job does (0..N-1)")
    group.add_argument("--num-shards", type=int, default=1, metavar="N", help="number of parts (default 1)")


def shard_from_args(args: argparse.Namespace) -> Shard:
    return Shard(args.shard_index, args.num_shards)
