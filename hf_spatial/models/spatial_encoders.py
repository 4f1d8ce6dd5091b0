"""Pretrained spatial encoders: the one shipped with hf-spatial, and how any SpatialQwenAudio gets one.

A spatial encoder folder holds `config.json` (the `SpatialQwenAudioConfig` fields that shape the encoder, its class
names, and the FOA feature settings it was trained on), `model.safetensors` (the `SpatialEncoder` state dict) and a
`README.md` card. `shipped` names the folder packaged with hf-spatial (`hf_spatial/pretrained/spatial_encoder/`);
its card says how it was trained and what it measures.

A model whose slot classes differ from the encoder's still gets every class-independent weight; of the per-class heads
it gets the rows of the classes both share (by name), and keeps its own initialisation for the others, which the
encoder stage then trains.
"""

from __future__ import annotations

import json
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from hf_spatial.atomic import atomic_directory

logger = logging.getLogger(__name__)

SHIPPED_SPATIAL_ENCODER = "shipped"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# The config fields that shape `SpatialEncoder` (besides the class names, which are matched by name).
ENCODER_CONFIG_KEYS = (
    "spatial_num_channels",
    "spatial_num_mel_bins",
    "spatial_frames_per_token",
    "spatial_conv_channels",
    "spatial_hidden_size",
    "spatial_num_layers",
    "spatial_num_heads",
    "spatial_ffn_dim",
    "spatial_conv_kernel_size",
    "spatial_dropout",
    "spatial_num_slots",
    "spatial_direction_refinement",
)
# Of those, the ones a model may set otherwise and still take the weights: no parameter depends on them.
WEIGHT_FREE_KEYS = ("spatial_dropout", "spatial_direction_refinement")
# `FOAFeatureExtractor` settings the encoder's inputs depend on: a model's extractor must agree.
FEATURE_KEYS = (
    "sampling_rate",
    "spatial_num_mel_bins",
    "spatial_n_fft",
    "spatial_win_length",
    "spatial_hop_length",
    "spatial_min_frequency",
    "spatial_max_frequency",
    "spatial_frames_per_token",
)
# Per-class weights of `SpatialEncoder`: their first dimension is class-major (a block of rows per class).
CLASS_HEADS = ("class_head", "accdoa_activity_head", "accdoa_correction_head", "accdoa_band_head")
CLASS_WEIGHTS = (*(f"{head}.{part}" for head in CLASS_HEADS for part in ("weight", "bias")), "accdoa_directness")


def spatial_encoder_folder(name_or_path: str | os.PathLike) -> Path:
    """The folder of `name_or_path` (`shipped` or a path), checked to hold a spatial encoder."""
    if str(name_or_path) == SHIPPED_SPATIAL_ENCODER:
        folder = Path(str(resources.files("hf_spatial.pretrained") / "spatial_encoder"))
    else:
        folder = Path(name_or_path)
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a spatial encoder folder (missing {', '.join(missing)}); write one with "
            "`save_spatial_encoder` (scripts/export_spatial_encoder.py) or pass `shipped`."
        )
    return folder


def spatial_encoder_config(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """The encoder folder's config.json: {"encoder": config fields, "class_names": [...], "feature_extractor": ...}."""
    return json.loads((spatial_encoder_folder(name_or_path) / CONFIG_FILE).read_text(encoding="utf-8"))


def spatial_encoder_kwargs(name_or_path: str | os.PathLike, class_names: list[str] | None = None) -> dict[str, Any]:
    """`SpatialQwenAudioConfig` fields for a model that takes this encoder: its architecture, and the slot classes
    `class_names` (default: the encoder's own)."""
    config = spatial_encoder_config(name_or_path)
    names = list(class_names) if class_names is not None else list(config["class_names"])
    return {**config["encoder"], "spatial_class_names": names, "spatial_num_classes": len(names)}


def load_spatial_encoder(model, name_or_path: str | os.PathLike, feature_extractor=None) -> list[str]:
    """Load a pretrained spatial encoder into `model` (a SpatialQwenAudio model whose encoder config matches, e.g.
    built with `spatial_encoder_kwargs`); checks `feature_extractor` against the encoder's feature settings. Returns
    the model's classes the encoder did not know (their head rows keep the model's initialisation)."""
    folder = spatial_encoder_folder(name_or_path)
    config = spatial_encoder_config(folder)
    encoder = _spatial_encoder(model)
    model_config = model.config
    mismatched = {
        key: (getattr(model_config, key), value)
        for key, value in config["encoder"].items()
        if key not in WEIGHT_FREE_KEYS and _plain(getattr(model_config, key)) != _plain(value)
    }
    if mismatched:
        raise ValueError(
            f"The spatial encoder in {folder} does not fit this model (model, encoder): {mismatched}. Build the model "
            "with `spatial_encoder_kwargs(...)` (or `spatial_encoder_name_or_path=`)."
        )
    if feature_extractor is not None:
        settings = {key: getattr(feature_extractor, key) for key in FEATURE_KEYS}
        if settings != config["feature_extractor"]:
            raise ValueError(
                f"The feature extractor's settings {settings} differ from those the encoder in {folder} was trained "
                f"on {config['feature_extractor']}."
            )
    state = load_file(str(folder / WEIGHTS_FILE))
    source_classes = list(config["class_names"])
    target_classes = list(model_config.spatial_class_names or [])
    if target_classes != source_classes:
        current = encoder.state_dict()
        shared = [(source_classes.index(name), i) for i, name in enumerate(target_classes) if name in source_classes]
        for key in CLASS_WEIGHTS:
            new = current[key].clone().unflatten(0, (len(target_classes), -1))
            old = state[key].unflatten(0, (len(source_classes), -1))
            for source, target in shared:
                new[target] = old[source]
            state[key] = new.flatten(0, 1)
    with torch.no_grad():
        encoder.load_state_dict(state, strict=True)
    unknown = [name for name in target_classes if name not in source_classes]
    if unknown:
        logger.info("spatial encoder %s: classes %s are new to it (their head rows start untrained)", folder, unknown)
    return unknown


def save_spatial_encoder(model, feature_extractor, folder: str | os.PathLike, card: str) -> Path:
    """Write `model`'s spatial encoder as an encoder folder (config.json, model.safetensors, README.md = `card`)."""
    config = model.config
    record = {
        "encoder": {key: _plain(getattr(config, key)) for key in ENCODER_CONFIG_KEYS},
        "class_names": list(config.spatial_class_names),
        "feature_extractor": {key: getattr(feature_extractor, key) for key in FEATURE_KEYS},
    }
    encoder = _spatial_encoder(model)
    state = {key: value.detach().contiguous() for key, value in encoder.state_dict().items()}
    with atomic_directory(Path(folder), overwrite=True) as out:
        save_file(state, str(out / WEIGHTS_FILE))
        (out / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (out / "README.md").write_text(card, encoding="utf-8")
    return Path(folder)


def _spatial_encoder(model):
    """The `SpatialEncoder` of a SpatialQwenAudio backbone or of the model with its language modelling head."""
    return getattr(model, "model", model).spatial_encoder


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


__all__ = [
    "SHIPPED_SPATIAL_ENCODER",
    "load_spatial_encoder",
    "save_spatial_encoder",
    "spatial_encoder_config",
    "spatial_encoder_folder",
    "spatial_encoder_kwargs",
]
