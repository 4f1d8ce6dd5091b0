"""Scoring a model's spatial encoder on a dataset folder with the DCASE SELD metrics: the stage's own evaluation
after `hf-spatial train encoder` and `hf-spatial evaluate seld`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hf_spatial  # noqa: F401  (registers the Auto classes the model loads with)
from hf_spatial.conventions import SAMPLE_RATE, TOKEN_RATE_HZ
from hf_spatial.data import read_foa
from hf_spatial.data.dcase_csv import write_dcase_csv
from hf_spatial.data.starss23 import recorded_class_names
from hf_spatial.seld.labels import predicted_labels, row_reference_labels
from hf_spatial.seld.metrics import evaluate_csv_folders


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
        features = extractor([read_foa(row["audio"]) for row in rows], sampling_rate=SAMPLE_RATE, return_tensors="pt")
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
