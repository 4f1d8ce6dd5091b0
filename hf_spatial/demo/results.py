"""The demo's results from its evaluation folders: scored accuracy per condition, the fair classical line on
single-source items, source binding, GRPO's record, the encoder's metrics and the demo's targets
(`demo_results.json`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hf_spatial.demo.plan import DemoPlan
from hf_spatial.demo.settings import (
    AFTER_SFT_CONDITIONS,
    DEMO_TASKS,
    MODEL_CONDITIONS,
    MODEL_RECORD,
    REPORT_FILE,
    DemoPaths,
)
from hf_spatial.demo.steps import demo_stages
from hf_spatial.evaluation import EVAL_RESULTS_FILE
from hf_spatial.training.records import STAGES_FILE


def scored_metrics(records: Sequence[Mapping[str, Any]], tasks: Sequence[str] = DEMO_TASKS) -> dict[str, Any]:
    """Accuracy (with 95% interval and chance) over the scored tasks, per level and per task (in `tasks` order)."""
    from hf_spatial.evaluation.report import condition_results

    metrics = condition_results([record for record in records if record["task"] in tasks])
    return {
        "scored": metrics["overall"],
        "levels": metrics["levels"],
        "tasks": {task: metrics["tasks"][task] for task in tasks if task in metrics["tasks"]},
    }


def _read_records(eval_dir: Path) -> dict[str, list[dict[str, Any]]]:
    from hf_spatial.evaluation.report import PREDICTIONS_FILE

    by_condition: dict[str, list[dict[str, Any]]] = {}
    for line in (eval_dir / PREDICTIONS_FILE).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            by_condition.setdefault(record["condition"], []).append(record)
    return by_condition


# GRPO's last logged window: whether its reward groups had any variance to learn from (TRL's metric names).
GRPO_METRICS = {
    "frac_reward_zero_std": "reward_groups_without_variance",
    "rewards/accuracy_reward/mean": "accuracy_reward",
}


def _stage_record(output_dir: Path) -> dict[str, Any]:
    """A finished stage's steps and what stopped it (its time budget or its step count); for GRPO, its reward
    groups' variance and accuracy reward in the last logged steps."""
    metrics = json.loads((output_dir / STAGES_FILE).read_text(encoding="utf-8"))["stages"][-1]["metrics"]
    record = {"steps": metrics["steps"], "stopped_by": metrics["stopped_by"]}
    record.update({name: round(metrics[key], 3) for key, name in GRPO_METRICS.items() if key in metrics})
    return record


def demo_targets(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The thesis in numbers (issue #16's targets): the headline tasks far above mono, mono near chance, level 2
    (which sound is where) above mono, and the model at least as good as the oracle intensity baseline on
    `l1_direction_sector`."""
    full, mono = rows["full"]["scored"], rows["mono"]["scored"]
    gap = full["accuracy"] - mono["accuracy"]
    level2 = {name: rows[name]["levels"].get("2") for name in ("full", "mono")}
    level2_gap = level2["full"]["accuracy"] - level2["mono"]["accuracy"] if level2["full"] else None
    sector = {name: rows[name]["tasks"].get("l1_direction_sector") for name in ("full", "intensity_oracle")}
    sector_gap = sector["full"]["accuracy"] - sector["intensity_oracle"]["accuracy"] if sector["full"] else None

    def points(value: float | None) -> float | None:
        return None if value is None else round(100 * value, 1)

    return {
        "full_minus_mono_points": points(gap),
        "mono_minus_chance_points": points(mono["accuracy"] - mono["chance"]),
        "level2_full_minus_mono_points": points(level2_gap),
        "sector_full_minus_intensity_oracle_points": points(sector_gap),
        "full_at_least_25_points_above_mono": gap >= 0.25,
        "mono_within_10_points_of_chance": abs(mono["accuracy"] - mono["chance"]) <= 0.10,
        "level2_full_at_least_15_points_above_mono": level2_gap is not None and level2_gap >= 0.15,
        "sector_full_at_least_intensity_oracle": sector_gap is not None and sector_gap >= 0,
    }


def collect_results(paths: DemoPaths, plan: DemoPlan, sources: dict[str, str], seconds: dict[str, float]):
    """The demo's results: scored accuracy per condition (model controls, cascade, encoder readout, oracle intensity
    baseline), the fair classical line beside the model on its single-source items, source binding (model, readout
    and oracle on multi-source questions about one named sound), the encoder's metrics, targets, paths."""
    from hf_spatial.evaluation.report import condition_results

    model_records = _read_records(paths.eval_model)
    oracle_records = _read_records(paths.eval_intensity_oracle)["full"]
    fair_records = _read_records(paths.eval_intensity)["full"]
    rows = {condition: scored_metrics(model_records[condition]) for condition in MODEL_CONDITIONS}
    rows["cascade"] = scored_metrics(_read_records(paths.eval_cascade)["full"])
    readout_records = _read_records(paths.eval_readout)["full"]
    rows["readout"] = scored_metrics(readout_records)
    rows["intensity_oracle"] = scored_metrics(oracle_records)
    # The fair line answers single-source items only: every line on exactly those items.
    fair_items = {record["sample_id"] for record in fair_records}
    single_source = {
        name: scored_metrics([record for record in records if record["sample_id"] in fair_items])
        for name, records in (
            ("full", model_records["full"]),
            ("mono", model_records["mono"]),
            ("intensity_oracle", oracle_records),
            ("intensity", fair_records),
        )
    }
    # Each evaluation scored source binding on its items (`evaluation.binding`); the full condition's (None: no item).
    binding = {
        name: json.loads((eval_dir / EVAL_RESULTS_FILE).read_text(encoding="utf-8"))["source_binding"].get("full")
        for name, eval_dir in (
            ("full", paths.eval_model),
            ("readout", paths.eval_readout),
            ("intensity_oracle", paths.eval_intensity_oracle),
        )
    }
    after_sft = _read_records(paths.eval_after_sft)
    whole = _read_records(paths.eval_whole)
    return {
        "tasks": list(DEMO_TASKS),
        "plan": asdict(plan),
        "model": json.loads((paths.initial_model / MODEL_RECORD).read_text(encoding="utf-8"))["description"],
        "stages": {stage: _stage_record(paths.stage(stage)) for stage in demo_stages(plan)},
        "sources": sources,
        "conditions": rows,
        "after_sft": {condition: scored_metrics(after_sft[condition]) for condition in AFTER_SFT_CONDITIONS},
        "training_questions": scored_metrics(_read_records(paths.eval_training_questions)["full"]),
        "whole_benchmark": {condition: condition_results(whole[condition]) for condition in MODEL_CONDITIONS},
        "single_source": single_source if fair_items else None,
        "source_binding": binding if binding["full"] else None,
        "encoder": json.loads((paths.eval_encoder / "encoder_metrics.json").read_text(encoding="utf-8")),
        "targets": demo_targets(rows),
        "seconds": seconds,
        "paths": {
            "report": str(paths.out / REPORT_FILE),
            "model": str(paths.model),
            "benchmark": str(paths.benchmark),
            "evaluation": str(paths.eval_model),
            "evaluation_after_sft": str(paths.eval_after_sft),
            "evaluation_training_questions": str(paths.eval_training_questions),
            "whole_benchmark": str(paths.whole_benchmark),
            "evaluation_all_tasks": str(paths.eval_whole),
            "intensity_baseline": str(paths.eval_intensity),
            "intensity_oracle": str(paths.eval_intensity_oracle),
            "cascade": str(paths.eval_cascade),
            "readout": str(paths.eval_readout),
            "encoder": str(paths.eval_encoder),
        },
    }
