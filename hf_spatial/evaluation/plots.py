"""Evaluation plots (PNG, matplotlib Agg): accuracy per level with intervals, per task against chance, direction
error on a polar plot, and the confusion of direction sectors."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hf_spatial.conventions import angular_distance
from hf_spatial.evaluation.runner import EvaluationRun
from hf_spatial.tasks.context import SECTOR_AROUND_YOU, SECTOR_ORDER

SECTOR_OF_TEXT = {text: sector for sector, text in SECTOR_AROUND_YOU.items()}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _error_bars(metrics: Sequence[Mapping[str, Any] | None]) -> np.ndarray:
    """(2, n) distances from each accuracy to its interval bounds (clipped at 0 against rounding)."""
    bars = [[m["accuracy"] - m["ci95"][0], m["ci95"][1] - m["accuracy"]] if m else [0.0, 0.0] for m in metrics]
    return np.clip(np.array(bars, dtype=float).T, 0.0, None)


def plot_grouped_accuracy(
    groups: Mapping[str, Sequence[Mapping[str, Any] | None]],
    labels: Sequence[str],
    chance: float,
    path: Path,
    title: str,
) -> Path:
    """Grouped bars: for each x label, one bar per group (`groups[name][i]` is its metric at `labels[i]`, None for
    none), 95% intervals, chance dashed."""
    plt = _pyplot()
    width = 0.8 / len(groups)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(labels), 4))
    for i, (name, metrics) in enumerate(groups.items()):
        x = np.arange(len(labels)) + (i - (len(groups) - 1) / 2) * width
        values = np.array([m["accuracy"] if m else np.nan for m in metrics])
        ax.bar(x, 100 * values, width, yerr=100 * _error_bars(metrics), capsize=3, label=name)
    ax.axhline(100 * chance, color="k", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=7 if len(labels) > 4 else None)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title)
    return _save(fig, path)


def plot_levels(results: Mapping[str, Any], path: Path) -> Path:
    """Grouped bars: accuracy per level and overall for each condition, 95% intervals, chance dashed."""
    conditions = results["conditions"]
    slices = [*sorted({level for c in conditions.values() for level in c["levels"]}), "overall"]
    groups = {
        name: [condition["overall"] if s == "overall" else condition["levels"].get(s) for s in slices]
        for name, condition in conditions.items()
    }
    chance = conditions.get("full", next(iter(conditions.values())))["overall"]["chance"]
    labels = [f"L{s}" if s != "overall" else s for s in slices]
    return plot_grouped_accuracy(groups, labels, chance, path, f"{results['model']}: accuracy per level (95% CI)")


def plot_tasks(results: Mapping[str, Any], path: Path, condition: str = "full") -> Path:
    """Horizontal bars: accuracy per task with 95% intervals; chance level marked per task."""
    plt = _pyplot()
    conditions = results["conditions"]
    data = conditions.get(condition) or next(iter(conditions.values()))
    tasks = sorted(data["tasks"])
    metrics = [data["tasks"][t] for t in tasks]
    y = np.arange(len(tasks))
    fig, ax = plt.subplots(figsize=(8, 1 + 0.35 * len(tasks)))
    values = np.array([m["accuracy"] for m in metrics])
    ax.barh(y, 100 * values, xerr=100 * _error_bars(metrics), capsize=2, color="tab:blue", label="accuracy")
    ax.scatter([100 * m["chance"] for m in metrics], y, marker="|", s=200, color="k", label="chance", zorder=3)
    ax.set_yticks(y, tasks, fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%)")
    ax.legend(fontsize=7)
    ax.set_title(f"{results['model']}: accuracy per task ({condition})")
    return _save(fig, path)


def direction_errors(records: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(true azimuth, angular error) pairs: per source for localiser records (`directions`), and per item for
    azimuth questions (the chosen option against the true azimuth in the evidence)."""
    pairs = []
    for record in records:
        for d in record.get("directions") or []:
            error = angular_distance(d["azimuth"], d["elevation"], d["est_azimuth"], d["est_elevation"])
            pairs.append((d["azimuth"], float(error)))
        if record.get("task") == "l1_azimuth" and record.get("predicted_text") and record.get("evidence"):
            truth = json.loads(record["evidence"])["azimuth_deg"][0]
            chosen = float(_NUMBER.search(record["predicted_text"]).group())
            pairs.append((truth, float(angular_distance(truth, 0.0, chosen, 0.0))))
    return pairs


def plot_direction_error(records: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path | None:
    """Polar scatter: angle = true azimuth (front up, left to the left), radius = direction error in degrees."""
    pairs = direction_errors(records)
    if not pairs:
        return None
    plt = _pyplot()
    azimuths, errors = np.array(pairs).T
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_zero_location("N")  # front up; azimuth counter-clockwise, so +90 (left) is drawn on the left
    ax.scatter(np.deg2rad(azimuths), errors, s=10, alpha=0.6)
    ax.set_rmax(max(10.0, float(np.percentile(errors, 98)) * 1.1))
    ax.set_title(f"{title}\nmedian error {np.median(errors):.1f} deg, n={len(errors)}", fontsize=9)
    return _save(fig, path)


def sector_confusion(records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Counts (true sector x answered sector, last column unanswered) for items whose options are sectors."""
    matrix = np.zeros((len(SECTOR_ORDER), len(SECTOR_ORDER) + 1), dtype=int)
    for record in records:
        true = SECTOR_OF_TEXT.get(record.get("answer_text"))
        if true is None:
            continue
        predicted = SECTOR_OF_TEXT.get(record.get("predicted_text"))
        column = SECTOR_ORDER.index(predicted) if predicted else len(SECTOR_ORDER)
        matrix[SECTOR_ORDER.index(true), column] += 1
    return matrix


def plot_sector_confusion(records: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path | None:
    matrix = sector_confusion(records)
    if not matrix.any():
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(SECTOR_ORDER) + 1), [*SECTOR_ORDER, "none"])
    ax.set_yticks(range(len(SECTOR_ORDER)), SECTOR_ORDER)
    ax.set_xlabel("answered sector")
    ax.set_ylabel("true sector")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def write_plots(run: EvaluationRun, results: Mapping[str, Any], out: Path) -> list[str]:
    """Every plot that has data; returns their paths."""
    if not results["conditions"]:
        return []
    main = "full" if "full" in run.records else next(iter(run.records))
    paths = [
        plot_levels(results, out / "accuracy_levels.png"),
        plot_tasks(results, out / "accuracy_tasks.png", main),
        plot_direction_error(run.records[main], out / "direction_error.png", f"{run.predictor}: direction error"),
        plot_sector_confusion(run.records[main], out / "sector_confusion.png", f"{run.predictor}: sector answers"),
    ]
    return [str(path) for path in paths if path is not None]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
