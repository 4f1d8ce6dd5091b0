"""The demo's report: the summary printed at the end, `demo_report.md` and its plots (drawn by
`hf_spatial.evaluation.plots`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hf_spatial.demo.settings import AFTER_SFT_CONDITIONS, PERCEPTION_TASKS
from hf_spatial.evaluation.binding import binding_markdown
from hf_spatial.tasks.registry import LEVEL_NAMES

CONDITION_LABELS = {
    "full": "full (FOA)",
    "no_audio": "no audio",
    "mono": "mono (W only)",
    "spatial_zeroed": "spatial branch zeroed",
    "cascade": "cascade (encoder slots as text)",
    "readout": "encoder readout (no language model)",
    "intensity_oracle": "intensity + true source identity (oracle)",
    "intensity": "intensity, no ground truth",
}


def _percent(metric: Mapping[str, Any]) -> str:
    low, high = metric["ci95"]
    return f"{100 * metric['accuracy']:5.1f}% ({100 * low:4.1f}-{100 * high:4.1f})"


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """The one-screen summary printed at the end."""
    rows = results["conditions"]
    chance = rows["full"]["scored"]["chance"]
    targets = results["targets"]
    width = max(len(CONDITION_LABELS[name]) for name in rows) + 2
    lines = [
        f"Held-out benchmark, L1+L2 direction/relation tasks ({rows['full']['scored']['n']} questions):",
        f"  {', '.join(results['tasks'])}",
        "",
        f"  {'condition':<{width}}{'accuracy (95% CI)':>24}",
    ]
    lines += [f"  {CONDITION_LABELS[name]:<{width}}{_percent(row['scored']):>24}" for name, row in rows.items()]
    lines += [
        f"  {'chance':<{width}}{' ' * 6}{100 * chance:5.1f}%",  # under the accuracies (right-aligned to 24)
        "",
        *[f"  {line}" for line in target_lines(targets)],
    ]
    for level, metric in rows["full"]["levels"].items():
        full, mono = 100 * metric["accuracy"], 100 * rows["mono"]["levels"][level]["accuracy"]
        lines.append(
            f"  level {level} ({LEVEL_NAMES[int(level)]}): full {full:.1f}% vs mono {mono:.1f}% ({full - mono:+.1f})"
        )
    lines.append(f"  {training_fit_line(results)}")
    single = results["single_source"]
    if single:
        accuracy = {name: 100 * single[name]["scored"]["accuracy"] for name in single}
        lines.append(
            f"  single-source items ({single['intensity']['scored']['n']}; no source identity needed): "
            + ", ".join(f"{CONDITION_LABELS[name]} {value:.1f}%" for name, value in accuracy.items())
        )
    if results["source_binding"]:
        lines.append(f"  {binding_line(results['source_binding'])}")
    whole = results["whole_benchmark"]
    lines.append(
        f"  whole benchmark, all tasks ({whole['full']['overall']['n']} questions, most never trained): "
        + ", ".join(
            f"level {level} full {100 * metric['accuracy']:.1f}% vs mono "
            f"{100 * whole['mono']['levels'][level]['accuracy']:.1f}%"
            for level, metric in whole["full"]["levels"].items()
        )
    )
    lines.append(f"  {grpo_line(results)}")
    lines += _encoder_lines(results["encoder"])
    lines.append(f"  model: {results['model']}")
    lines.append(f"  {stages_line(results)}")
    lines.append(f"  sources: {results['sources']['reason']}")
    return lines


def target_lines(targets: Mapping[str, Any]) -> list[str]:
    """Each of the demo's targets with its measured value and whether it is met."""

    def verdict(key: str) -> str:
        return "met" if targets[key] else "not met"

    def points(key: str) -> str:
        return "n/a" if targets[key] is None else f"{targets[key]:+.1f} points"

    return [
        f"full - mono: {points('full_minus_mono_points')} (target >= +25: "
        f"{verdict('full_at_least_25_points_above_mono')}); mono - chance: {points('mono_minus_chance_points')} "
        f"(target within 10: {verdict('mono_within_10_points_of_chance')})",
        f"level 2 full - mono: {points('level2_full_minus_mono_points')} (target >= +15: "
        f"{verdict('level2_full_at_least_15_points_above_mono')}); l1_direction_sector full - oracle intensity: "
        f"{points('sector_full_minus_intensity_oracle_points')} (target >= 0: "
        f"{verdict('sector_full_at_least_intensity_oracle')})",
    ]


def stages_line(results: Mapping[str, Any]) -> str:
    """How far each training stage got, and why it stopped."""
    parts = [f"{stage} {record['steps']} ({record['stopped_by']})" for stage, record in results["stages"].items()]
    return "training steps: " + ", ".join(parts)


def grpo_line(results: Mapping[str, Any]) -> str:
    """What GRPO had to learn from, and what it changed on the headline tasks."""
    grpo, after_sft = results["stages"]["grpo"], results["after_sft"]
    line = "GRPO: "
    if "reward_groups_without_variance" in grpo:
        line += (
            f"{100 * (1 - grpo['reward_groups_without_variance']):.0f}% of the reward groups of its last logged steps "
            f"had non-zero variance (the only ones with a gradient), accuracy reward {grpo['accuracy_reward']:.2f}; "
        )
    changes = [
        f"{condition} {100 * after_sft[condition]['scored']['accuracy']:.1f}% -> "
        f"{100 * results['conditions'][condition]['scored']['accuracy']:.1f}%"
        for condition in AFTER_SFT_CONDITIONS
    ]
    return line + "after sft -> after grpo: " + ", ".join(changes)


def training_fit_line(results: Mapping[str, Any]) -> str:
    """The final model's accuracy on its own training questions beside the held-out one: the gap is what it fits of
    its training clips without hearing it in new ones."""
    training, held_out = results["training_questions"]["scored"], results["conditions"]["full"]["scored"]
    gap = 100 * (training["accuracy"] - held_out["accuracy"])
    return (
        f"training questions ({training['n']}, seen in training): full {100 * training['accuracy']:.1f}% vs "
        f"{100 * held_out['accuracy']:.1f}% held out ({gap:+.1f}: what it fits of its training clips beyond hearing)"
    )


def binding_line(binding: Mapping[str, Any]) -> str:
    """Source binding in one line: how often the model, the readout and the oracle answer for the named sound, and
    for another sound instead, beside a name-blind perfect localiser."""

    def shares(key: str) -> str:
        return ", ".join(
            f"{CONDITION_LABELS[name]} {100 * value[key]['share']:.1f}%" for name, value in binding.items() if value
        )

    full = binding["full"]
    return (
        f"source binding ({full['items']} questions about one named sound among several, where another sound has "
        f"another answer): answered for the named sound: {shares('named')}; for another sound: "
        f"{shares('another_source')}; a perfect localiser that ignores the name: {100 * full['name_blind']:.1f}%"
    )


def _cell(metric: Mapping[str, Any] | None) -> str:
    if not metric:
        return "-"
    low, high = metric["ci95"]
    return f"{100 * metric['accuracy']:.1f} ({100 * low:.1f}-{100 * high:.1f}), n={metric['n']}"


def _accuracy_table(
    rows: Mapping[str, Mapping[str, Any]], overall: str, overall_label: str, labels: Mapping[str, str]
) -> list[str]:
    """A markdown table with a column per entry of `rows` (headed `labels[name]`) and a row for the `overall` slice
    (labelled `overall_label`), each level and each task that the first entry has."""
    names = list(rows)

    def row(label: str, group: str, key: str | None = None) -> str:
        metrics = [rows[n][group] if key is None else rows[n][group].get(key) for n in names]
        return f"| {label} | {100 * metrics[0]['chance']:.1f} | " + " | ".join(_cell(m) for m in metrics) + " |"

    first = rows[names[0]]
    return [
        "| slice | chance | " + " | ".join(labels[n] for n in names) + " |",
        "|---|---:|" + "---:|" * len(names),
        row(f"**{overall_label}**", overall),
        *[row(f"level {level} ({LEVEL_NAMES[int(level)]})", "levels", level) for level in first["levels"]],
        *[row(f"`{task}`", "tasks", task) for task in first["tasks"]],
    ]


def _encoder_lines(encoder: Mapping[str, Any]) -> list[str]:
    """The spatial encoder's DCASE 2024 headline and its direction error beside the classical estimator."""

    def number(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    seld = encoder["seld_2024"]
    lines = [
        f"  spatial encoder, DCASE 2024 on {encoder['num_scenes']} scenes: F20 {number(seld['f_score'], 3)}, "
        f"DOAE {number(seld['doa_error'], 1)} deg, RDE {number(seld['relative_distance_error'], 3)}, "
        f"SELD score {number(seld['seld_score'], 3)}"
    ]
    for count, row in encoder["direction_error"].items():
        lines.append(
            f"  direction error, {count} source(s) ({row['encoder']['n']} scenes): encoder "
            f"{row['encoder']['mean_deg']:.1f} deg vs classical intensity {row['intensity']['mean_deg']:.1f} deg (mean)"
        )
    return lines


def report_markdown(results: Mapping[str, Any]) -> str:
    """demo_report.md: what ran, the scored table per condition, level and task, the fair classical line, the
    spatial encoder's metrics, the plots, where things are."""
    from hf_spatial.evaluation.seld import encoder_markdown

    plan, rows = results["plan"], results["conditions"]
    lines = [
        "# hf-spatial demo",
        "",
        "A small SpatialQwenAudio (a Whisper encoder as its semantic branch, a random d=64 two-layer language "
        "model with a byte-level BPE tokenizer built locally) trained by the four curriculum stages on simulated FOA "
        "scenes, then scored on a held-out benchmark (test rooms and test clips only) under controls that remove "
        "the spatial cues.",
        "",
        f"- Model: {results['model']}.",
        f"- Sources: {results['sources']['reason']}.",
        f"- Training: {plan['train_scenes']} scenes of {plan['duration']:g} s; sft on "
        f"`{'`, `'.join(PERCEPTION_TASKS)}` (atomic perception, the `perception` stage) before all the tasks (with "
        "the multiple-choice loss: each question's options ranked by the likelihood of their words); "
        + (
            f"wall-clock budgets for {plan['budget_seconds'] / 60:g} minutes on this machine "
            f"({plan['slowdown']:.2f}x the reference machine's time). "
            if plan["budget_seconds"]
            else "fixed step counts. "
        )
        + stages_line(results)
        + ".",
        f"- Trained and scored tasks (L1+L2 direction/relation): {', '.join(f'`{t}`' for t in results['tasks'])}.",
        '- The model is asked to answer with the words of the correct option ("Answer with the text of the correct '
        'option.", as in training) and scored by multiple-choice likelihood (as lm-evaluation-harness does): its '
        "answer is the option whose words, end-of-turn included, it finds most likely. Every answer is then a valid "
        "option, so a model that ignores the audio lands at its text prior, near chance.",
        "",
        "## Accuracy on the scored tasks",
        "",
        "Accuracy in % with 95% Wilson intervals. Controls: no audio (the question alone), mono (X, Y, Z zeroed: "
        "W only), spatial branch zeroed (the model without its spatial encoder). Baselines: the cascade gives the "
        "same language model the spatial encoder's detections as text instead of audio tokens; the encoder readout "
        "answers from those detections alone, without a language model (each sound the question names is where its "
        "class's detection points; no ground truth): what the model's language model could read from its encoder. "
        "Intensity + true source identity is an **oracle**: classical active-intensity directions, matched to the "
        "true sources on their true directions, so it is told which estimate is which sound (an upper bound for a "
        "localiser that cannot recognise sounds, not a competitor). The fair classical line, which uses no ground "
        "truth, follows the table.",
        "",
        *_accuracy_table(rows, "scored", "all scored", CONDITION_LABELS),
        "",
        "Targets:",
        "",
        *[f"- {line}" for line in target_lines(results["targets"])],
    ]
    after_sft = {f"{name} after {stage}": (results["after_sft"] if stage == "sft" else rows)[name]
                 for name in AFTER_SFT_CONDITIONS for stage in ("sft", "grpo")}  # fmt: skip
    whole = results["whole_benchmark"]
    lines += [
        "",
        "## What GRPO adds",
        "",
        f"The headline benchmark scored after sft (before GRPO) and after GRPO. {grpo_line(results)}.",
        "",
        *_accuracy_table(
            after_sft, "scored", "all scored", {name: name.replace("full", "full (FOA)") for name in after_sft}
        ),
        "",
        "## Training questions: what the model fits",
        "",
        f"The final model on {results['training_questions']['scored']['n']} of its own training questions (the "
        "scored tasks on training scenes), asked and scored as above, beside the held-out benchmark. Accuracy on "
        "training questions far above the held-out one means the model learned its training clips more than how to "
        f"hear them. {training_fit_line(results)}.",
        "",
        *_accuracy_table(
            {"held_out": rows["full"], "training": results["training_questions"]},
            "scored",
            "all scored",
            {"held_out": "full (FOA), held-out benchmark", "training": "full (FOA), training questions"},
        ),
        "",
        "## The whole benchmark: every task, three levels",
        "",
        "A second held-out benchmark over every task, in TWNM's level proportions "
        f"({len(whole['full']['tasks'])} tasks have items here), scored as above under the same controls. Only "
        f"{', '.join(f'`{t}`' for t in results['tasks'])} were trained: the other tasks show what the model "
        "answers untaught (near its text prior is the honest expectation for a model this small).",
        "",
        *_accuracy_table(whole, "overall", "all tasks", CONDITION_LABELS),
        "",
        "## Classical line without ground truth: single-source items",
        "",
        "A direction finder does not recognise sounds: tying its estimates to the named sounds by any rule would "
        "still use the true source count and the sounds present. So the fair classical line (the strongest "
        "active-intensity direction, nothing from the metadata) answers only the items whose scene has one "
        "source, where no identity is needed; every line below is scored on exactly those items.",
        "",
    ]
    single = results["single_source"]
    if single:
        single_names = list(single)
        lines += [
            "| slice | chance | " + " | ".join(CONDITION_LABELS[n] for n in single_names) + " |",
            "|---|---:|" + "---:|" * len(single_names),
        ]
        lines.append(
            f"| **single-source items** | {100 * single['intensity']['scored']['chance']:.1f} | "
            + " | ".join(_cell(single[n]["scored"]) for n in single_names)
            + " |"
        )
        lines += [
            f"| `{task}` | {100 * metric['chance']:.1f} | "
            + " | ".join(_cell(single[n]["tasks"].get(task)) for n in single_names)
            + " |"
            for task, metric in single["intensity"]["tasks"].items()
        ]
    else:
        lines.append("The benchmark has no single-source item the classical line applies to.")
    lines += ["", *binding_markdown(results["source_binding"] or {}, CONDITION_LABELS)]
    lines += [
        "",
        encoder_markdown(results["encoder"])
        .replace("## Spatial encoder", "## Spatial encoder (hearing alone)")
        .rstrip(),
        "",
        "![accuracy per condition](plots/scored_accuracy.png)",
        "",
        "![accuracy per task](plots/task_accuracy.png)",
        "",
        "## Time per step",
        "",
        "| step | seconds |",
        "|---|---:|",
        *[f"| {name} | {seconds:.0f} |" for name, seconds in results["seconds"].items()],
        "",
        "## Where things are",
        "",
        f"- Model: `{results['paths']['model']}` (`AutoModelForMultimodalLM.from_pretrained`, `AutoProcessor`).",
        f"- Benchmark: `{results['paths']['benchmark']}` (`load_dataset`, and a TWNM layout in `twnm/`).",
        f"- Full evaluation reports (per level, per task, plots, predictions): `{results['paths']['evaluation']}`, "
        f"`{results['paths']['cascade']}`, `{results['paths']['readout']}`, `{results['paths']['intensity_oracle']}`, "
        f"`{results['paths']['intensity_baseline']}`; the encoder's SELD report and CSVs: "
        f"`{results['paths']['encoder']}`.",
        "- Each step alone: `hf-spatial simulate`, `questions`, `benchmark build`, `train --stage ...`, `evaluate`.",
    ]
    return "\n".join(lines) + "\n"


def write_plots(results: Mapping[str, Any], folder: Path) -> list[Path]:
    """Bars of the scored accuracy per condition and level, and per task (95% intervals, chance dashed)."""
    from hf_spatial.evaluation.plots import plot_grouped_accuracy, plot_levels

    folder.mkdir(parents=True, exist_ok=True)
    rows = results["conditions"]
    conditions = {
        CONDITION_LABELS[name]: {"overall": row["scored"], "levels": row["levels"], "tasks": row["tasks"]}
        for name, row in rows.items()
    }
    scored = plot_levels({"model": "L1+L2 direction/relation tasks, held-out", "conditions": conditions},
                         folder / "scored_accuracy.png")  # fmt: skip
    tasks = list(rows["full"]["tasks"])
    task = plot_grouped_accuracy(
        {label: [condition["tasks"].get(t) for t in tasks] for label, condition in conditions.items()},
        [t.replace("_", " ") for t in tasks],
        rows["full"]["scored"]["chance"],
        folder / "task_accuracy.png",
        "accuracy per task and condition (95% CI)",
    )
    return [scored, task]
