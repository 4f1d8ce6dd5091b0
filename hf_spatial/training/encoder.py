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
from hf_spatial.conventions import SAMPLE_RATE
from hf_spatial.data import read_foa
from hf_spatial.seld.labels import row_reference_labels
from hf_spatial.training.augmentation import AUGMENTATION_MODES, sample_transform
from hf_spatial.training.common import StageDataArguments
from hf_spatial.training.seld_targets import SlotLossWeights, dcase_targets, scene_targets, slot_loss

logger = logging.getLogger(__name__)
TARGET_PREFIX = "target_"


@dataclass
class EncoderTrainingConfig(StageDataArguments, TrainingArguments):
    """`TrainingArguments` for the encoder stage, plus the data and the SELD loss weights."""

    class_names: list[str] | None = field(
        default=None,
        metadata={
            "help": "Classes of a new model's slot class head. Default: the class list a converted folder records "
            "(the 13 STARSS23 classes), else the labels of the train split."
        },
    )
    augmentation: str = field(
        default="none",
        metadata={
            "help": "Exact FOA augmentation of every training clip, its direction labels moved by the same rule: "
            "`rotation` (about the vertical axis by any angle, with random left-right and up-down mirrors), "
            "`mazzon16` (the 16 channel swaps and sign flips of Mazzon et al. 2019) or `none`.",
            "choices": list(AUGMENTATION_MODES),
        },
    )
    spatial_encoder_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "When `model_name_or_path` builds a new model (`tiny`): start its spatial encoder from this "
            "pretrained encoder folder (`shipped`: the one packaged with hf-spatial). Default: random."
        },
    )
    # SELD loss weights; the defaults are SlotLossWeights' own.
    presence_weight: float = field(default=SlotLossWeights.presence, metadata={"help": "Weight of slot presence."})
    class_weight: float = field(default=SlotLossWeights.class_, metadata={"help": "Weight of the slot class."})
    direction_weight: float = field(
        default=SlotLossWeights.direction, metadata={"help": "Weight of the slot direction (cosine) term."}
    )
    distance_weight: float = field(default=SlotLossWeights.distance, metadata={"help": "Weight of the slot distance."})
    activity_weight: float = field(
        default=SlotLossWeights.activity, metadata={"help": "Weight of the per-token activity of matched slots."}
    )
    count_weight: float = field(default=SlotLossWeights.count, metadata={"help": "Weight of the source count."})
    rt60_weight: float = field(default=SlotLossWeights.rt60, metadata={"help": "Weight of the room's RT60."})
    accdoa_weight: float = field(
        default=SlotLossWeights.accdoa, metadata={"help": "Weight of the class-wise ACCDOA token map."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep every dataset column: the collator needs the audio and the scene."}
    )
    label_names: list[str] | None = field(
        default_factory=lambda: [TARGET_PREFIX + "presence"],
        metadata={"help": "Tells `Trainer` batches carry targets, so evaluation calls `compute_loss`, not `forward`."},
    )
    prediction_loss_only: bool = field(
        default=True, metadata={"help": "Evaluate the SELD loss only (the slot outputs are scored after training)."}
    )

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
            accdoa=self.accdoa_weight,
        )


@dataclass
class SeldCollator:
    """Rows -> spatial features and per-clip SELD targets (`target_*`).

    Simulated rows get their targets from the `SceneSpec` (`scene_targets`); rows without one (real recordings,
    `hf-spatial convert starss23`) from their `dcase_labels` (`dcase_targets`), whose class indices refer to
    `dcase_class_names` (default: `class_names`) and are matched to `class_names` by name. With `augmentation`, each
    clip is transformed (`hf_spatial.training.augmentation`) and its direction targets with it; each batch's transforms
    come from a generator seeded from torch's global one, which `Trainer` seeds and restores on resume, so a resumed
    run draws what an uninterrupted one would.
    """

    feature_extractor: Any
    class_names: list[str]
    num_slots: int
    dcase_class_names: list[str] | None = None
    augmentation: str = "none"

    def targets(self, row: dict[str, Any], num_tokens: int) -> dict[str, np.ndarray]:
        if row.get("scene"):
            return scene_targets(SceneSpec.from_json(row["scene"]), self.class_names, self.num_slots, num_tokens)
        labels = row_reference_labels(row, self.class_names, self.dcase_class_names)
        return dcase_targets(labels, self.class_names, self.num_slots, num_tokens)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        # Draw from torch's RNG only when augmenting: a plain run's random stream stays as it was.
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,)))) if self.augmentation != "none" else None
        transforms = [sample_transform(self.augmentation, rng) for _ in rows]
        # read_foa checks the rate: every dataset folder is 24 kHz. Only the spatial features: Whisper's are unused.
        clips = [transform.apply_foa(read_foa(row["audio"])) for transform, row in zip(transforms, rows, strict=True)]
        features = self.feature_extractor.extract_spatial(clips, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        num_tokens = features["spatial_attention_mask"].shape[-1] // self.feature_extractor.spatial_frames_per_token
        targets = [self.targets(row, num_tokens) for row in rows]
        for transform, target in zip(transforms, targets, strict=True):
            target["direction"] = transform.apply_vectors(target["direction"])
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
