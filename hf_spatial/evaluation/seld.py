"""SELD evaluation of the spatial encoder: DCASE CSV predictions from its slots, references from `SceneSpec`, and
the DCASE 2023/2024 metrics (`seld_metrics.evaluate_csv_folders`).

Slots with presence probability >= 0.5 are detections (class = argmax, direction and distance per clip); a
detection is active in a 100 ms label frame when the mean activity probability of the 25 Hz tokens whose centres
fall in that frame is >= 0.5. References mark a source active in every frame whose centre lies in
[onset, offset), the rule the encoder's training targets use for tokens (`training.seld_targets`). Rows without a
`SceneSpec` (real recordings converted by `hf-spatial convert starss23`) are referenced by their `dcase_labels`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.data.dcase_csv import (
    LABEL_HOP_S,
    FrameLabels,
    SELDEvent,
    parse_dcase_csv,
    rename_classes,
    time_to_frame,
    write_dcase_csv,
)

logger = logging.getLogger(__name__)

PRESENCE_THRESHOLD = 0.5
ACTIVITY_THRESHOLD = 0.5


def reference_labels(scene: SceneSpec, class_names: list[str]) -> FrameLabels:
    """Frame-wise DCASE labels (metres) of a scene's sources."""
    index = {name: i for i, name in enumerate(class_names)}
    labels: FrameLabels = {}
    num_frames = round(scene.duration / LABEL_HOP_S)
    centres = (np.arange(num_frames) + 0.5) * LABEL_HOP_S
    for source_index, source in enumerate(scene.sources):
        if source.label not in index:
            raise ValueError(
                f"Scene {scene.scene_id}: class {source.label!r} is not among the encoder's classes {class_names}; "
                "evaluate a model whose `spatial_class_names` cover the dataset's labels."
            )
        event = SELDEvent(index[source.label], source_index, source.azimuth, source.elevation, source.distance)
        for frame in np.flatnonzero((centres >= source.onset) & (centres < source.offset)):
            labels.setdefault(int(frame), []).append(event)
    return dict(sorted(labels.items()))


def row_reference_labels(
    row: dict[str, Any], class_names: list[str], dcase_class_names: list[str] | None = None
) -> FrameLabels:
    """Frame-wise labels of a dataset row, class indices into `class_names`: from its `SceneSpec` when it has one,
    else from its `dcase_labels` (class indices into `dcase_class_names`, by default `class_names`)."""
    if row.get("scene"):
        return reference_labels(SceneSpec.from_json(row["scene"]), class_names)
    if row.get("dcase_labels") is None:
        raise ValueError(
            f"Row {row.get('scene_id')!r} has neither a `scene` nor `dcase_labels`; expected a folder written by "
            "`hf-spatial simulate` or `hf-spatial convert starss23`."
        )
    labels = parse_dcase_csv(row["dcase_labels"], source=f"dcase_labels of {row.get('scene_id')}")
    return rename_classes(labels, dcase_class_names or class_names, class_names)


def predicted_labels(outputs: Any, index: int, token_rate_hz: float) -> FrameLabels:
    """Frame-wise DCASE labels of clip `index` from `SpatialEncoderOutput`."""
    import torch

    from hf_spatial.conventions import cartesian_to_spherical

    presence = torch.sigmoid(outputs.slot_presence_logits[index]).float().cpu().numpy()
    activity = torch.sigmoid(outputs.slot_activity_logits[index]).float().cpu().numpy()  # (S, N)
    valid = outputs.attention_mask[index].bool().cpu().numpy()
    classes = outputs.slot_class_logits[index].argmax(-1).cpu().numpy()
    directions = outputs.slot_direction[index].float().cpu().numpy()
    distances = outputs.slot_distance[index].float().cpu().numpy()
    token_frames = np.array([time_to_frame((t + 0.5) / token_rate_hz) for t in range(activity.shape[1])])
    labels: FrameLabels = {}
    for slot in np.flatnonzero(presence >= PRESENCE_THRESHOLD):
        azimuth, elevation, _ = cartesian_to_spherical(directions[slot])
        event = SELDEvent(int(classes[slot]), int(slot), float(azimuth), float(elevation), float(distances[slot]))
        for frame in np.unique(token_frames[valid]):
            tokens = (token_frames == frame) & valid
            if activity[slot, tokens].mean() >= ACTIVITY_THRESHOLD:
                labels.setdefault(int(frame), []).append(event)
    return dict(sorted(labels.items()))


def evaluate_model_seld(
    model_path: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    edition: int = 2024,
    split: str = "test",
    batch_size: int = 8,
    max_scenes: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Run the model's spatial encoder on a split of a simulated or converted (STARSS23) dataset folder, write
    `OUT/ref/*.csv` and `OUT/pred/*.csv`, and score them; returns `evaluate_csv_folders`' results (report at
    OUT/seld_metrics_{edition}.md)."""
    import torch
    from datasets import Audio, load_dataset
    from tqdm.auto import tqdm
    from transformers import AutoModelForMultimodalLM, AutoProcessor

    import hf_spatial  # noqa: F401
    from hf_spatial.data import read_foa
    from hf_spatial.data.starss23 import recorded_class_names
    from hf_spatial.evaluation.seld_metrics import evaluate_csv_folders
    from hf_spatial.training.seld_targets import TOKEN_RATE_HZ

    model = AutoModelForMultimodalLM.from_pretrained(model_path).to(device).eval()
    if not hasattr(model, "get_spatial_outputs"):
        raise ValueError(
            f"{model_path} has no spatial encoder (get_spatial_outputs); SELD needs a SpatialQwenAudio model."
        )
    extractor = AutoProcessor.from_pretrained(model_path).feature_extractor
    class_names = list(model.config.spatial_class_names or [])
    if not class_names:
        raise ValueError(f"{model_path}: config.spatial_class_names is empty; the slot classes have no names.")
    dataset = load_dataset(str(dataset_dir), split=split).cast_column("audio", Audio(decode=False))
    if max_scenes is not None:
        dataset = dataset.select(range(min(max_scenes, len(dataset))))
    dcase_class_names = recorded_class_names(dataset_dir)
    out = Path(out_dir)
    ref_dir, pred_dir = out / "ref", out / "pred"
    for start in tqdm(range(0, len(dataset), batch_size), desc="SELD", unit="batch"):
        rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        features = extractor([read_foa(row["audio"]) for row in rows], sampling_rate=24000, return_tensors="pt")
        with torch.inference_mode():
            outputs = model.get_spatial_outputs(
                features["spatial_features"].to(device), features["spatial_attention_mask"].to(device)
            )
        for i, row in enumerate(rows):
            references = row_reference_labels(row, class_names, dcase_class_names)
            # In centimetres, as STARSS23's metadata: the official 2024 scorer reads reference distances so.
            write_dcase_csv(ref_dir / f"{row['scene_id']}.csv", references, distance_unit="cm")
            write_dcase_csv(pred_dir / f"{row['scene_id']}.csv", predicted_labels(outputs, i, TOKEN_RATE_HZ))
    return evaluate_csv_folders(
        ref_dir,
        pred_dir,
        edition=edition,
        num_classes=len(class_names),
        class_names=class_names,
        report_path=out / f"seld_metrics_{edition}.md",
    )


def _sources_by_presence(outputs: Any, index: int, count: int) -> list[tuple[float, float]]:
    """(azimuth, elevation) of the `count` slots of clip `index` with the highest presence probability."""
    from hf_spatial.conventions import cartesian_to_spherical

    presence = outputs.slot_presence_logits[index].float().cpu().numpy()
    directions = outputs.slot_direction[index].float().cpu().numpy()
    estimates = []
    for slot in np.argsort(presence)[::-1][:count]:
        azimuth, elevation, _ = cartesian_to_spherical(directions[slot])
        estimates.append((float(azimuth), float(elevation)))
    return estimates


def _direction_error(scene: SceneSpec, estimates: list[tuple[float, float]]) -> float:
    """Mean angle in degrees between the scene's sources and the estimates matched to them (Hungarian)."""
    from hf_spatial.conventions import angular_distance
    from hf_spatial.evaluation.baselines import match_directions

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
    import json

    import torch

    from hf_spatial.acoustics.intensity import estimate_directions
    from hf_spatial.atomic import write_text_atomic
    from hf_spatial.evaluation.seld_metrics import evaluate_csv_folders
    from hf_spatial.training.seld_targets import TOKEN_RATE_HZ

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
        features = feature_extractor(foas, sampling_rate=24000, return_tensors="pt")
        with torch.inference_mode():
            outputs = model.get_spatial_outputs(
                features["spatial_features"].to(device), features["spatial_attention_mask"].to(device)
            )
        for i, ((scene, _), foa) in enumerate(zip(batch, foas, strict=True)):
            write_dcase_csv(ref_dir / f"{scene.scene_id}.csv", reference_labels(scene, class_names), distance_unit="cm")
            write_dcase_csv(pred_dir / f"{scene.scene_id}.csv", predicted_labels(outputs, i, TOKEN_RATE_HZ))
            count = len(scene.sources)
            try:
                intensity = estimate_directions(foa, 24000, num_sources=count)
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
    write_text_atomic(out / "encoder_metrics.json", json.dumps(results, indent=2) + "\n")
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
