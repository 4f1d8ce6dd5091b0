"""Running the demo: the plan (resumed or made for this machine), the steps in order with their times, then the
results, plots and report."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import datasets

from hf_spatial.atomic import write_json_atomic, write_text_atomic
from hf_spatial.demo.plan import DemoPlan, measure_slowdown
from hf_spatial.demo.report import report_markdown, write_plots
from hf_spatial.demo.results import collect_results
from hf_spatial.demo.settings import (
    DEFAULT_MINUTES,
    DEMO_RESULTS_FILE,
    PLAN_FILE,
    REPORT_FILE,
    STATE_FILE,
    DemoPaths,
)
from hf_spatial.demo.steps import demo_stages, demo_steps, resolve_sources

logger = logging.getLogger(__name__)


def run_demo(
    out: str | os.PathLike = "runs/demo",
    minutes: float = DEFAULT_MINUTES,
    sources: str = "auto",
    smallest: bool = False,
    workers: int = 2,
    cache_dir: str | os.PathLike | None = None,
    fine_tune_encoder: bool = False,
) -> dict[str, Any]:
    """Run the demo into `out` (see the module docstring); returns the results (also in `out/demo_results.json`).
    `fine_tune_encoder` runs the encoder stage on the shipped spatial encoder (by default it stays frozen).

    Re-running with the same arguments skips the finished steps; other arguments for an existing folder are
    refused (the data and models would not match).
    """
    start = time.monotonic()
    paths = DemoPaths(Path(out))
    spec, reason = resolve_sources(sources, cache_dir)
    logger.info("sources: %s", reason)
    request = {"minutes": None if smallest else minutes, "sources": spec, "fine_tune_encoder": fine_tune_encoder}
    plan = _resume_or_make_plan(paths.out, request)
    logger.info("demo plan: %s", plan)
    state = _read_json(paths.out / STATE_FILE) or {"seconds": {}}
    spent_before = sum(state["seconds"].values())  # earlier runs' finished steps count against the budget

    def stage_seconds(stage: str) -> float | None:
        seconds_left = plan.budget_seconds - spent_before - (time.monotonic() - start) if plan.budget_seconds else 0
        stages = demo_stages(plan)
        budget = plan.stage_budget(stage, seconds_left, list(stages[stages.index(stage) :]))
        if budget is not None:
            logger.info("%s: %.0f s of training (%.0f s of the run left)", stage, budget, seconds_left)
        return budget

    steps = demo_steps(plan, spec, paths, workers, cache_dir, stage_seconds)
    with datasets_cache_in(paths.datasets_cache):
        for number, step in enumerate(steps, start=1):
            if step.done():
                logger.info("[%d/%d] %s: done in an earlier run, skipped", number, len(steps), step.description)
                continue
            logger.info("[%d/%d] %s", number, len(steps), step.description)
            began = time.monotonic()
            step.run()
            state["seconds"][step.name] = round(time.monotonic() - began, 1)
            write_json_atomic(paths.out / STATE_FILE, state)
        results = collect_results(paths, plan, {"spec": spec, "reason": reason}, state["seconds"])
    results["seconds"]["total (this run)"] = round(time.monotonic() - start, 1)
    write_plots(results, paths.out / "plots")
    write_json_atomic(paths.out / DEMO_RESULTS_FILE, results)
    write_text_atomic(paths.out / REPORT_FILE, report_markdown(results))
    return results


@contextmanager
def datasets_cache_in(folder: Path) -> Iterator[None]:
    """Within the block, the Arrow copies `datasets` makes of the run's folders go to `folder` (inside the run:
    deleting the run deletes them) instead of `~/.cache/huggingface/datasets`, where each run left several GB (every
    question row carries its scene's audio). An `HF_DATASETS_CACHE` the user set is kept."""
    if "HF_DATASETS_CACHE" in os.environ:
        yield
        return
    previous = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = folder
    try:
        yield
    finally:
        datasets.config.HF_DATASETS_CACHE = previous


def _resume_or_make_plan(out: Path, request: dict[str, Any]) -> DemoPlan:
    """The plan of the run in `out` when it was asked for with the same `request` (minutes, sources); a new plan,
    sized for this machine (`measure_slowdown`), for a new folder. Another request for an existing run is refused:
    its data and models would not match."""
    previous = _read_json(out / PLAN_FILE)
    if previous is not None:
        if previous.get("request") != request:
            raise FileExistsError(
                f"{out} holds a demo run with another plan ({previous.get('request')}); re-run with the same "
                "arguments to resume, or choose another --out."
            )
        if set(previous["plan"]) != {field.name for field in fields(DemoPlan)}:
            raise FileExistsError(
                f"{out} holds a demo run made by another version of hf-spatial; choose another --out."
            )
        return DemoPlan(**previous["plan"])
    if request["minutes"] is None:
        plan = DemoPlan.smallest(request["fine_tune_encoder"])
    else:
        slowdown = measure_slowdown()
        logger.info("this machine is %.2fx the reference machine's time", slowdown)
        plan = DemoPlan.for_minutes(request["minutes"], slowdown, request["fine_tune_encoder"])
    write_json_atomic(out / PLAN_FILE, {"request": request, "plan": asdict(plan)})
    return plan


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
