"""Stage 1, `encoder`: train the spatial encoder and its slot heads on SELD targets from the scene metadata."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainingArguments

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.training.common import StageDataArguments
from hf_spatial.training.seld_targets import SlotLossWeights, scene_targets, slot_loss

logger = logging.getLogger(__name__)
TARGET_PREFIX = "target_"


@dataclass
class EncoderTrainingConfig(StageDataArguments, TrainingArguments):
    """`TrainingArguments` for the encoder stage, plus the data and the SELD loss weights."""

    presence_weight: float = 1.0
    class_weight: float = 1.0
    direction_weight: float = 2.0
    distance_weight: float = 1.0
    activity_weight: float = 0.5
    count_weight: float = 0.5
    rt60_weight: float = 0.5
    remove_unused_columns: bool = False  # the collator needs the audio and scene columns
    # Tells `Trainer` that batches carry targets, so evaluation calls `compute_loss` rather than `forward`.
    label_names: list[str] | None = field(default_factory=lambda: [TARGET_PREFIX + "presence"])
    prediction_loss_only: bool = True

    @property
    def loss_weights(self) -> SlotLossWeights:
        return SlotLossWeights(
            presence=self.presence_weight,
            class_=self.class_weight,
            direction=self.direction_weight,
            distance=self.distance_weight,
            activity=self.activity_weight,
            count=self.count_weight,
            rt60=self.rt60_weight,
        )


@dataclass
class SeldCollator:
    """Rows of a simulated dataset -> spatial features and per-clip SELD targets (`target_*`)."""

    feature_extractor: Any
    class_names: list[str]
    num_slots: int

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from hf_spatial.data import read_foa

        scenes = [SceneSpec.from_json(row["scene"]) for row in rows]
        features = self.feature_extractor(
            [read_foa(row["audio"]) for row in rows], sampling_rate=scenes[0].sample_rate, return_tensors="pt"
        )
        num_tokens = features["spatial_attention_mask"].shape[-1] // self.feature_extractor.spatial_frames_per_token
        targets = [scene_targets(scene, self.class_names, self.num_slots, num_tokens) for scene in scenes]
        batch = {key: features[key] for key in ("spatial_features", "spatial_attention_mask")}
        for key in targets[0]:
            batch[TARGET_PREFIX + key] = torch.as_tensor(np.stack([target[key] for target in targets]))
        return batch


class SpatialEncoderTrainer(Trainer):
    """`Trainer` that optimises only `model.model.spatial_encoder` with the permutation-invariant slot loss.

    The rest of the model (Whisper, projectors, language model) is frozen and never run, so a step costs only
    the spatial encoder. It runs on one device: the encoder is small, and its loss bypasses the model's
    `forward`, which multi-process wrappers (DDP, FSDP) need to see.
    """

    def __init__(self, model, args: EncoderTrainingConfig, *trainer_args, **trainer_kwargs):
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(".spatial_encoder." in f".{name}")
        super().__init__(model, args, *trainer_args, **trainer_kwargs)
        if self.args.world_size > 1:
            raise ValueError("The encoder stage trains a small module on one device; launch it without accelerate.")
        self.loss_weights = args.loss_weights
        self._loss_parts: dict[str, list[float]] = defaultdict(list)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        targets = {
            key.removeprefix(TARGET_PREFIX): value for key, value in inputs.items() if key.startswith(TARGET_PREFIX)
        }
        outputs = self.accelerator.unwrap_model(model).get_spatial_outputs(
            inputs["spatial_features"], inputs["spatial_attention_mask"]
        )
        loss, parts = slot_loss(outputs, targets, self.loss_weights)
        if model.training:
            for name, value in parts.items():
                self._loss_parts[name].append(value)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        # Report each SELD loss term alongside the total, averaged since the last log.
        for name, values in self._loss_parts.items():
            logs[f"loss_{name}"] = round(float(np.mean(values)), 4)
        self._loss_parts.clear()
        super().log(logs, *args, **kwargs)
