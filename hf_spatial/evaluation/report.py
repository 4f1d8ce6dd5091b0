"""Results of an evaluation run: `eval_results.json` (the shape `hf_spatial.hub_cards` reads for model cards), a
markdown report, and per-item predictions (`predictions.jsonl`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hf_spatial.atomic import write_json_atomic, write_text_atomic
from hf_spatial.evaluation import EVAL_RESULTS_FILE
from hf_spatial.evaluation.binding import BINDING_CONDITIONS, binding_markdown, source_binding
from hf_spatial.evaluation.runner import EvaluationRun
from hf_spatial.evaluation.seld import encoder_markdown
from hf_spatial.tasks.scoring import markdown_table, summarize

REPORT_FILE = "report.md"
PREDICTIONS_FILE = "predictions.jsonl"


def hub_metric(accuracy: Mapping[str, Any]) -> dict[str, Any]:
    """`tasks.scoring.Accuracy` as a dict -> {"accuracy", "ci95", "n", "chance"} (fractions)."""
    return {
        "accuracy": accuracy["accuracy"],
        "ci95": [accuracy["ci_low"], accuracy["ci_high"]],
        "n": accuracy["n"],
        "chance": accuracy["chance"],
    }


def condition_results(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{"overall": M, "levels": {"1": M, ...}, "tasks": {task: M}} of one condition's records."""
    summary = summarize(records)
    return {
        "overall": hub_metric(summary["overall"]),
        "levels": {str(level): hub_metric(value) for level, value in summary["levels"].items()},
        "tasks": {task: hub_metric(value) for task, value in summary["tasks"].items()},
    }


def results_dict(
    run: EvaluationRun,
    benchmark_info: Mapping[str, Any] | None = None,
    cascade: EvaluationRun | None = None,
    encoder: Mapping[str, Any] | None = None,
    items: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The eval_results.json content: benchmark, predictor, conditions (hub shape) and exclusions; with a spatial
    encoder, the cascade baseline's results (`cascade`, full condition) and the encoder's own metrics (`encoder`,
    `seld.evaluate_encoder_on_benchmark`); with the benchmark's `items`, source binding per condition that presents
    the item's own scene (`source_binding`: `evaluation.binding`, None where no item counts)."""
    results = {
        "benchmark": {"name": run.benchmark, "split": "test", **(benchmark_info or {})},
        "model": run.predictor,
        "conditions": {name: condition_results(records) for name, records in run.records.items() if records},
        "excluded": run.excluded,
    }
    if cascade is not None and cascade.records.get("full"):
        results["cascade"] = {"model": cascade.predictor, **condition_results(cascade.records["full"])}
    if encoder is not None:
        results["encoder"] = dict(encoder)
    if items:
        results["source_binding"] = {
            name: source_binding(records, items)
            for name, records in run.records.items()
            if name in BINDING_CONDITIONS and records
        }
    return results


CONDITION_NOTES = {
    "full": "the FOA scene and the question",
    "no_audio": "the question alone, no audio placeholder (text priors)",
    "mono": "W channel only (X, Y, Z zeroed before feature extraction)",
    "spatial_zeroed": "the model's spatial branch switched off",
    "rotated": "sound field rotated by 90/180/270 degrees about z, gold answers for the rotated scene",
    "circular": "options in all four cyclic orders; correct only if all four are (chance 1/256)",
}


def _cell(metric: Mapping[str, Any] | None) -> str:
    if not metric:
        return "-"
    low, high = metric["ci95"]
    return f"{100 * metric['accuracy']:.1f} ({100 * low:.1f}-{100 * high:.1f}), n={metric['n']}"


def _unparsed(record: Mapping[str, Any]) -> bool:
    # A circular record is unparsed when any of its option orders got no answer.
    return None in record["variants"] if "variants" in record else record["predicted_letter"] is None


def markdown_report(results: Mapping[str, Any], run: EvaluationRun, plots: Sequence[str] = ()) -> str:
    """Conditions side by side (overall, per level, per task), the full condition's table, exclusions, plots."""
    conditions = results["conditions"]
    names = list(conditions)
    lines = [
        f"# Evaluation of `{results['model']}` on `{results['benchmark']['name']}`",
        "",
        "Accuracy in % with 95% Wilson intervals; chance is the accuracy of uniform guessing.",
        "",
        "| condition | what it is |",
        "|---|---|",
        *[f"| {name} | {CONDITION_NOTES.get(name, '')} |" for name in names],
        "",
        "| slice | chance | " + " | ".join(names) + " |",
        "|---|---:|" + "---|" * len(names),
    ]
    main = conditions.get("full") or conditions[names[0]]
    slices = [("overall", lambda c: c["overall"], main["overall"])]
    slices += [(f"level {k}", lambda c, k=k: c["levels"].get(k), v) for k, v in main["levels"].items()]
    slices += [(f"`{t}`", lambda c, t=t: c["tasks"].get(t), v) for t, v in main["tasks"].items()]
    for label, get, reference in slices:
        row = " | ".join(_cell(get(conditions[name])) for name in names)
        lines.append(f"| {label} | {100 * reference['chance']:.1f} | {row} |")
    if "cascade" in results:
        cascade = results["cascade"]
        lines += [
            "",
            "## Cascade baseline",
            "",
            f"`{cascade['model']}`: the spatial encoder's detections written as text before the question, answered by "
            "the same language model without audio tokens (full condition, same items).",
            "",
            "| slice | chance | full | cascade |",
            "|---|---:|---|---|",
        ]
        for label, get, reference in slices:
            lines.append(f"| {label} | {100 * reference['chance']:.1f} | {_cell(get(main))} | {_cell(get(cascade))} |")
    if "encoder" in results:
        lines += ["", encoder_markdown(results["encoder"]).rstrip("\n")]
    if "source_binding" in results:
        lines += ["", *binding_markdown(results["source_binding"], {})]
    if "full" in run.records:
        lines += ["", "## Full condition", "", markdown_table(summarize(run.records["full"]))]
    excluded = {name: reasons for name, reasons in results["excluded"].items() if reasons}
    if excluded:
        lines += ["", "## Items left out", ""]
        for name, reasons in excluded.items():
            lines += [f"- {name}: " + "; ".join(f"{count} ({reason})" for reason, count in reasons.items())]
    unparsed = {name: sum(_unparsed(r) for r in records) for name, records in run.records.items()}
    lines += ["", "Unparsable answers (counted wrong): " + ", ".join(f"{k} {v}" for k, v in unparsed.items()) + "."]
    if plots:
        lines += ["", "## Plots", "", *[f"![{Path(p).stem}]({Path(p).name})" for p in plots]]
    return "\n".join(lines) + "\n"


def write_outputs(
    run: EvaluationRun,
    out_dir: str | os.PathLike,
    benchmark_info: Mapping[str, Any] | None = None,
    plots: bool = True,
    cascade: EvaluationRun | None = None,
    encoder: Mapping[str, Any] | None = None,
    items: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Write eval_results.json, report.md, predictions.jsonl and the plots into `out_dir`; returns the results
    (`cascade`, `encoder`, `items`: see `results_dict`; the cascade's predictions go to predictions.jsonl as
    condition `cascade`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = results_dict(run, benchmark_info, cascade, encoder, items)
    plot_paths: list[str] = []
    if plots:
        from hf_spatial.evaluation.plots import write_plots

        plot_paths = write_plots(run, results, out)
    write_json_atomic(out / EVAL_RESULTS_FILE, results)
    write_text_atomic(out / REPORT_FILE, markdown_report(results, run, plot_paths))
    lines = [json.dumps(record, default=str) for records in run.records.values() for record in records]
    if cascade is not None:
        lines += [json.dumps({**record, "condition": "cascade"}, default=str) for record in cascade.records["full"]]
    write_text_atomic(out / PREDICTIONS_FILE, "\n".join(lines) + "\n")
    return results
