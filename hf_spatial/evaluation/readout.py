"""The encoder readout baseline: direction questions answered from a model's spatial encoder alone, without its
language model.

The encoder's detections are read as one vector per class (`clip_accdoa`: the slots' presence x class probability x
direction, summed over slots; what the projector hands the language model) and one distance per class
(`clip_distance`: the slots' distances, weighted alike). A sound the question names is placed along its class's
vector at its class's distance (where A is relative to B depends on both), and the item is answered for the scene
so estimated by the tasks' own solvers (`tasks.solving.answer_for_scene`); a question asking which sound is in a
sector picks the option sound whose vector points furthest into the sector. Only what the question says is used:
the sounds it names and its options, never which sounds the scene holds, how many, where, or how far. So unlike the
intensity oracle this is a fair line on scenes with several sources, and beside the model it shows how much of what
its encoder hears its language model reads.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers import AutoModelForMultimodalLM, AutoProcessor

import hf_spatial  # noqa: F401  (registers the Auto classes the model loads with)
from hf_spatial.conventions import SAMPLE_RATE, cartesian_to_spherical, unit_vector
from hf_spatial.evaluation.controls import Request
from hf_spatial.models.audio_cache import clip_key
from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import clip_accdoa, clip_distance
from hf_spatial.tasks.level2 import SECTOR_CENTRE_DEG
from hf_spatial.tasks.parsing import option_texts
from hf_spatial.tasks.solving import answer_for_scene, item_params, scene_with_directions
from hf_spatial.tasks.vocabulary import label_phrase

READOUT_NAME = "encoder readout (no language model)"
# Tasks whose answer depends on the directions of the sounds the question names alone (on its options' sounds for
# `l2_source_at_direction`). The other direction tasks' solvers read every source of the scene (which sounds are
# present, how many): answering them so would use ground truth.
READOUT_TASKS = (
    "l1_azimuth",
    "l1_direction_sector",
    "l1_elevation",
    "l2_angular_separation",
    "l2_relative_direction_between_objects",
    "l2_source_at_direction",
)
# The task answered by the sound in a sector: scored over its options, not by moving the scene's sources.
SOUND_IN_SECTOR_TASK = "l2_source_at_direction"
# The item params that name a source of the scene (by index) in the other READOUT_TASKS.
NAMED_SOURCE_PARAMS = ("source", "a", "b")


class Detections(NamedTuple):
    """One clip's detections per class: `vectors` `(classes, 3)` (`clip_accdoa`) and `distances` `(classes,)`
    (`clip_distance`)."""

    vectors: np.ndarray
    distances: np.ndarray


class EncoderReadout:
    """Answers direction questions from the spatial encoder's per-class detections of a SpatialQwenAudio model
    folder (see the module docstring); a sound the encoder has no class for, or never detects, has no direction and
    its items are answered with nothing (scored wrong)."""

    conditions = ("full", "mono", "rotated")

    def __init__(self, model_path: str | os.PathLike, device: str = "cpu", cache_size: int = 64):
        self.device = device
        self.model = AutoModelForMultimodalLM.from_pretrained(model_path).to(device).eval()
        if not hasattr(self.model, "get_spatial_outputs"):
            raise ValueError(
                f"The encoder readout needs a SpatialQwenAudio model (a spatial encoder); {model_path} has none."
            )
        self.feature_extractor = AutoProcessor.from_pretrained(model_path).feature_extractor
        class_names = list(self.model.config.spatial_class_names or [])
        if not class_names:
            raise ValueError(f"{model_path}: config.spatial_class_names is empty; the slot classes have no names.")
        self.class_of_phrase = {label_phrase(name): index for index, name in enumerate(class_names)}
        self.name = READOUT_NAME
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Detections] = OrderedDict()

    def applies_to(self, item: dict[str, Any]) -> bool:
        return item["task"] in READOUT_TASKS and bool(item.get("scene")) and bool(item.get("params"))

    def detections(self, audio: Sequence[np.ndarray]) -> list[Detections]:
        """Each clip's per-class detections; a benchmark asks several questions about one scene, so the last
        `cache_size` clips' are kept."""
        keys = [clip_key(clip) for clip in audio]
        new = {key: clip for key, clip in zip(keys, audio, strict=True) if key not in self._cache}
        if new:
            features = self.feature_extractor(list(new.values()), sampling_rate=SAMPLE_RATE, return_tensors="pt")
            with torch.inference_mode():
                outputs = self.model.get_spatial_outputs(
                    features["spatial_features"].to(self.device), features["spatial_attention_mask"].to(self.device)
                )
            vectors, distances = (
                clip_accdoa(outputs).float().cpu().numpy(),
                clip_distance(outputs).float().cpu().numpy(),
            )
            self._cache.update(zip(new, map(Detections, vectors, distances), strict=True))
        found = [self._cache[key] for key in keys]
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return found

    def detected_class(self, detections: Detections, phrase: str) -> int | None:
        """The class index of the sound called `phrase`; None when the encoder has no class for it or never detects
        it."""
        index = self.class_of_phrase.get(phrase)
        return None if index is None or not np.any(detections.vectors[index]) else index

    def predict(self, requests: Sequence[Request]) -> list[str]:
        if any(request.scene is None or request.audio is None for request in requests):
            raise ValueError("The encoder readout needs the FOA audio and the scene metadata of each item.")
        vectors = self.detections([request.audio for request in requests])
        return [self.answer(request, clip) for request, clip in zip(requests, vectors, strict=True)]

    def answer(self, request: Request, detections: Detections) -> str:
        """The letter answering `request` from one clip's detections, or "" when a named sound has none."""
        item = request.item
        if item["task"] == SOUND_IN_SECTOR_TASK:
            centre = unit_vector(SECTOR_CENTRE_DEG[item_params(item)["sector"]], 0.0)
            reach = {
                letter: float(detections.vectors[index] @ centre)
                for letter, text in option_texts(item).items()
                if (index := self.detected_class(detections, text)) is not None
            }
            return max(reach, key=reach.get) if reach else ""
        params, sources = item_params(item), request.scene.sources
        # The named sounds go where the encoder hears them; the others straight ahead at 1 m (their true positions
        # are ground truth, and the solvers of READOUT_TASKS read only the named sounds).
        directions, distances = [(0.0, 0.0)] * len(sources), [1.0] * len(sources)
        for source in {params[key] for key in NAMED_SOURCE_PARAMS if key in params}:
            index = self.detected_class(detections, label_phrase(sources[source].label))
            if index is None:
                return ""
            azimuth, elevation, _ = cartesian_to_spherical(detections.vectors[index])
            directions[source] = (float(azimuth), float(elevation))
            distances[source] = float(detections.distances[index])
        estimated = scene_with_directions(request.scene, directions, distances)
        return answer_for_scene(item, estimated, strict=False) or ""


__all__ = ["READOUT_NAME", "READOUT_TASKS", "Detections", "EncoderReadout"]
