"""Sharded evaluation (`hf-spatial evaluate --shard-index K --num-shards N`): each job scores a contiguous part of the
benchmark's items and stores the part's records in `OUT/parts/`; the run without `--shard-index` scores any part not
yet stored, then merges them in item order into the outputs one run writes (`report.write_outputs`).

A part file records the settings it was made with (model, benchmark, controls, scoring, ...); a part made with other
settings is refused rather than merged. Part files are written atomically, so a killed job leaves none half-written.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hf_spatial.atomic import write_text_atomic
from hf_spatial.evaluation.runner import NOT_APPLICABLE, EvaluationRun
from hf_spatial.sharding import Shard

PARTS_FOLDER = "parts"
Scored = tuple[EvaluationRun, EvaluationRun | None]  # a predictor's run and the cascade baseline's (if any)


def score_in_parts(
    out: str | Path,
    shard: Shard,
    items: list[dict[str, Any]],
    settings: dict[str, Any],
    score: Callable[[list[dict[str, Any]]], Scored],
) -> Scored | None:
    """Score (`score(items)`) and store each of this job's parts of `items` that `out` lacks; when the job does every
    part (`shard.finishes`), return their merge, else None."""
    parts = []
    for index in shard.indices():
        path = part_path(out, index, shard.count)
        if load_part(path, settings) is None:
            units = shard.units(len(items), index)
            save_part(path, settings, *score(items[units.start : units.stop]))
        parts.append(load_part(path, settings))  # read back, so a merge does not depend on which job scored a part
    if not shard.finishes:
        return None
    cascades = [cascade for _, cascade in parts]
    return merge_runs([run for run, _ in parts]), merge_runs(cascades) if cascades[0] is not None else None


def part_path(out: str | Path, index: int, count: int) -> Path:
    return Path(out) / PARTS_FOLDER / f"part-{index:05d}-of-{count:05d}.json"


def save_part(path: Path, settings: dict[str, Any], run: EvaluationRun, cascade: EvaluationRun | None) -> None:
    runs = {"run": _as_dict(run), "cascade": _as_dict(cascade) if cascade is not None else None}
    write_text_atomic(path, json.dumps({"settings": settings, **runs}, default=str) + "\n")


def load_part(path: Path, settings: dict[str, Any]) -> tuple[EvaluationRun, EvaluationRun | None] | None:
    """The stored part (run, cascade run), or None when there is none yet."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable evaluation part ({error}); delete it to score it again.") from error
    if stored.get("settings") != settings:
        changed = {key: (stored.get("settings", {}).get(key), value) for key, value in settings.items()
                   if stored.get("settings", {}).get(key) != value}  # fmt: skip
        raise ValueError(
            f"{path} was evaluated with other settings (old, new): {changed}. Use another --out, or delete "
            f"{path.parent} to evaluate every part again."
        )
    cascade = stored["cascade"]
    return EvaluationRun(**stored["run"]), EvaluationRun(**cascade) if cascade is not None else None


def merge_runs(runs: Sequence[EvaluationRun]) -> EvaluationRun:
    """One run from the runs of consecutive parts of a benchmark: records in item order, exclusions summed (in the
    order one run over all items lists them)."""
    merged = EvaluationRun(predictor=runs[0].predictor, benchmark=runs[0].benchmark)
    for condition in runs[0].records:
        merged.records[condition] = [record for run in runs for record in run.records[condition]]
        excluded: Counter[str] = Counter()
        for run in runs:
            excluded.update(run.excluded[condition])
        first = {NOT_APPLICABLE: excluded.pop(NOT_APPLICABLE)} if NOT_APPLICABLE in excluded else {}
        merged.excluded[condition] = {**first, **excluded}
    return merged


def _as_dict(run: EvaluationRun) -> dict[str, Any]:
    return {"predictor": run.predictor, "benchmark": run.benchmark, "records": run.records, "excluded": run.excluded}
