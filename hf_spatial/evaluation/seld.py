"""The spatial encoder of a SpatialQwenAudio model on a benchmark's scenes: DCASE 2024 SELD metrics of its slots
and its direction error beside the classical active-intensity estimator (`evaluate_encoder_on_benchmark`), and the
report section (`encoder_markdown`). Labels and metrics come from `hf_spatial.seld`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from hf_spatial.acoustics.intensity import estimate_directions
from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.atomic import write_json_atomic
from hf_spatial.conventions import SAMPLE_RATE, TOKEN_RATE_HZ, angular_distance, cartesian_to_spherical
from hf_spatial.data.dcase_csv import write_dcase_csv
from hf_spatial.evaluation.baselines import match_directions
from hf_spatial.seld.labels import predicted_labels, reference_labels
from hf_spatial.seld.metrics import evaluate_csv_folders


def _sources_by_presence(outputs: Any, index: int, count: int) -> list[tuple[float, float]]:
    """(azimuth, elevation) of the `count` slots of clip `index` with the highest presence probability."""
    presence = outputs.slot_presence_logits[index].float().cpu().numpy()
    directions = outputs.slot_direction[index].float().cpu().numpy()
    estimates = []
    for slot in np.argsort(presence)[::-1][:count]:
        azimuth, elevation, _ = cartesian_to_spherical(directions[slot])
        estimates.append((float(azimuth), float(elevation)))
    return estimates


def _direction_error(scene: SceneSpec, estimates: list[tuple[float, float]]) -> float:
    """Mean angle in degrees between the scene's sources and the estimates matched to them (Hungarian)."""
    if not estimates:
        return 180.0  # no direction at all: as far off as a direction can be
    pairs = zip(scene.sources, match_directions(scene, estimates), strict=True)
    return float(np.mean([angular_distance(s.azimuth, s.elevation, az, el) for s, (az, el) in pairs]))


def _error_summary(errors: list[float]) -> dict[str, Any]:
    return {"mean_deg": float(np.mean(errors)), "median_deg": float(np.median(errors)), "n": len(errors)}


def evaluate_encoder_on_benchmark(
    model: Any, feature_extractor: Any, benchmark: Any, out_dir: str | os.PathLike, batch_size: int = 8
) -> dict[str, Any]:
    """The spatial encoder of a loaded SpatialQwenAudio `model` on the scenes of a `Benchmark` (each scene once).

    Returns {"seld_2024": the DCASE 2024 headline metrics (`evaluate_csv_folders`: CSV folders and report in OUT),
    "seld_report", "num_scenes", "direction_error": {source count: {"encoder": ..., "intensity": ...}}}, also
    written to OUT/encoder_metrics.json. The direction
    error puts the encoder beside the classical active-intensity estimator on the same scenes, each giving as many
    directions as the scene has sources (the encoder's most present slots) matched to the sources by the Hungarian
    algorithm: a localisation error, so both are told the source count. A benchmark label unknown to the encoder is
    scored as an extra class it can only miss.
    """
    import torch

    scenes: dict[str, tuple[SceneSpec, dict[str, Any]]] = {}
    for item in benchmark.items:
        scene = benchmark.scene(item)
        if scene is not None and scene.scene_id not in scenes:
            scenes[scene.scene_id] = (scene, item)
    if not scenes:
        raise ValueError(f"Benchmark {benchmark.name} has no scene metadata; the encoder needs reference scenes.")
    class_names = list(model.config.spatial_class_names or [])
    labels = {source.label for scene, _ in scenes.values() for source in scene.sources}
    class_names += sorted(labels - set(class_names))
    out = Path(out_dir)
    ref_dir, pred_dir = out / "ref", out / "pred"
    errors: dict[int, dict[str, list[float]]] = {}
    device = next(model.parameters()).device
    entries = list(scenes.values())
    for start in range(0, len(entries), batch_size):
        batch = entries[start : start + batch_size]
        foas = [benchmark.audio(item) for _, item in batch]
        features = feature_extractor(foas, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        with torch.inference_mode():
            outputs = model.get_spatial_outputs(
                features["spatial_features"].to(device), features["spatial_attention_mask"].to(device)
            )
        for i, ((scene, _), foa) in enumerate(zip(batch, foas, strict=True)):
            write_dcase_csv(ref_dir / f"{scene.scene_id}.csv", reference_labels(scene, class_names), distance_unit="cm")
            write_dcase_csv(pred_dir / f"{scene.scene_id}.csv", predicted_labels(outputs, i, TOKEN_RATE_HZ))
            count = len(scene.sources)
            try:
                intensity = estimate_directions(foa, SAMPLE_RATE, num_sources=count)
            except ValueError:  # silent or fully diffuse: no direction
                intensity = []
            by_count = errors.setdefault(count, {"encoder": [], "intensity": []})
            by_count["encoder"].append(_direction_error(scene, _sources_by_presence(outputs, i, count)))
            by_count["intensity"].append(_direction_error(scene, intensity))
    seld = evaluate_csv_folders(
        ref_dir,
        pred_dir,
        edition=2024,
        num_classes=len(class_names),
        class_names=class_names,
        report_path=out / "seld_metrics_2024.md",
    )
    results = {
        "seld_2024": {key: value for key, value in seld["metrics"].items() if key != "per_class"},
        "seld_report": seld["report_path"],
        "num_scenes": len(entries),
        "direction_error": {
            str(count): {name: _error_summary(values) for name, values in by_name.items()}
            for count, by_name in sorted(errors.items())
        },
    }
    write_json_atomic(out / "encoder_metrics.json", results)
    return results


def encoder_markdown(results: dict[str, Any]) -> str:
    """Markdown section of `evaluate_encoder_on_benchmark`'s results: SELD headline and direction errors."""
    metrics = results["seld_2024"]

    def value(key: str) -> str:
        return "n/a" if metrics[key] is None else f"{metrics[key]:.3f}"

    lines = [
        "## Spatial encoder",
        "",
        f"DCASE 2024 SELD metrics of the encoder's slots on the benchmark's {results['num_scenes']} scenes "
        f"(official scorer rules; macro average over the encoder's classes; report `{results['seld_report']}`):",
        "",
        "| F20 | DOAE (deg) | RDE | SELD score |",
        "|---:|---:|---:|---:|",
        f"| {value('f_score')} | {value('doa_error')} | {value('relative_distance_error')} | {value('seld_score')} |",
        "",
        "Direction error in degrees (mean / median over scenes), each estimator giving as many directions as the "
        "scene has sources, matched to them by the Hungarian algorithm:",
        "",
        "| sources | scenes | encoder | classical active intensity |",
        "|---:|---:|---:|---:|",
    ]
    for count, row in results["direction_error"].items():
        encoder, intensity = row["encoder"], row["intensity"]
        lines.append(
            f"| {count} | {encoder['n']} | {encoder['mean_deg']:.1f} / {encoder['median_deg']:.1f} | "
            f"{intensity['mean_deg']:.1f} / {intensity['median_deg']:.1f} |"
        )
    return "\n".join(lines) + "\n"
