"""Predictors answer batches of `Request`s with text: a model loaded with the Auto classes (SpatialQwenAudio with
FOA, or a stock Qwen2-Audio through a mono adapter), and the cascade baseline (the spatial encoder's slots as
text for the language model). The classical intensity baseline lives in `baselines`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from hf_spatial.evaluation.controls import Request
from hf_spatial.tasks.prompting import ANSWER_INSTRUCTION, format_prompt

logger = logging.getLogger(__name__)

FOA_SAMPLE_RATE = 24000
WHISPER_SAMPLE_RATE = 16000


class Predictor(Protocol):
    """Answers requests; `conditions` lists the conditions it supports, `applies_to` the items it can answer."""

    name: str
    conditions: tuple[str, ...]

    def applies_to(self, item: dict[str, Any]) -> bool: ...

    def predict(self, requests: Sequence[Request]) -> list[str]: ...


def user_messages(text: str, with_audio: bool) -> list[dict[str, Any]]:
    """A user turn with the audio placeholder (as in training) followed by `text`; no placeholder without audio."""
    content = ([{"type": "audio"}] if with_audio else []) + [{"type": "text", "text": text}]
    return [{"role": "user", "content": content}]


def mono_for_whisper(foa: np.ndarray) -> np.ndarray:
    """The W channel of 24 kHz FOA resampled to 16 kHz: what a mono audio-language model hears."""
    from scipy.signal import resample_poly

    return resample_poly(np.asarray(foa[0], dtype=np.float64), 2, 3).astype(np.float32)


class ModelPredictor:
    """Greedy generation with a model and processor from `from_pretrained(path)` (our Auto classes).

    A SpatialQwenAudio processor gets the FOA clip; any other audio processor (stock Qwen2-Audio's
    WhisperFeatureExtractor) gets the W channel at 16 kHz, so only full, no_audio and rotated apply to it.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        device: str = "cpu",
        dtype: str | None = None,
        max_new_tokens: int = 16,
        instruction: str = ANSWER_INSTRUCTION,
        model: Any = None,
        processor: Any = None,
    ):
        import torch
        from transformers import AutoModelForMultimodalLM, AutoProcessor

        import hf_spatial  # noqa: F401  (registers the Auto classes)
        from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor

        self.name = os.path.basename(os.path.normpath(str(model_path)))
        self.processor = processor if processor is not None else AutoProcessor.from_pretrained(model_path)
        torch_dtype = getattr(torch, dtype) if dtype else None
        if model is None:
            model = AutoModelForMultimodalLM.from_pretrained(model_path, dtype=torch_dtype)
        self.model = model.to(device).eval()
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.instruction = instruction
        self.processor.tokenizer.padding_side = "left"  # batched generation continues every prompt at its end
        self.spatial = isinstance(self.processor.feature_extractor, FOAFeatureExtractor)
        conditions = ["full", "no_audio", "rotated"]
        if self.spatial:
            conditions.insert(2, "mono")
            if hasattr(self.model, "set_audio_branches"):
                conditions.insert(3, "spatial_zeroed")
        self.conditions = tuple(conditions)

    def applies_to(self, item: dict[str, Any]) -> bool:
        return True

    def prompt_text(self, request: Request) -> str:
        return format_prompt(request.item, self.instruction)

    def predict(self, requests: Sequence[Request]) -> list[str]:
        import torch

        with_audio = requests[0].audio is not None
        if any((request.audio is not None) != with_audio for request in requests):
            raise ValueError("A batch mixes requests with and without audio; batch one condition at a time.")
        conversations = [user_messages(self.prompt_text(request), with_audio) for request in requests]
        texts = self.processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=False)
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if with_audio:
            if self.spatial:
                kwargs.update(audio=[request.audio for request in requests], sampling_rate=FOA_SAMPLE_RATE)
            else:
                kwargs.update(audio=[mono_for_whisper(r.audio) for r in requests], sampling_rate=WHISPER_SAMPLE_RATE)
        inputs = self.processor(**kwargs).to(self.device)
        zero_spatial = requests[0].condition == "spatial_zeroed"
        if zero_spatial:
            self.model.set_audio_branches(spatial=False)
        try:
            with torch.inference_mode():
                output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        finally:
            if zero_spatial:
                self.model.set_audio_branches(spatial=True)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self.processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


def describe_slots(outputs: Any, index: int, class_names: Sequence[str], threshold: float = 0.5) -> str:
    """The spatial encoder's detections for clip `index` as text (the cascade's input to the language model)."""
    import torch

    presence = torch.sigmoid(outputs.slot_presence_logits[index]).tolist()
    classes = outputs.slot_class_logits[index].argmax(-1).tolist()
    directions = outputs.slot_direction[index].float().cpu().numpy()
    distances = outputs.slot_distance[index].tolist()
    from hf_spatial.conventions import cartesian_to_spherical

    lines = []
    for slot in np.argsort(presence)[::-1]:
        if presence[slot] < threshold:
            continue
        azimuth, elevation, _ = cartesian_to_spherical(directions[slot])
        name = class_names[classes[slot]] if classes[slot] < len(class_names) else f"class {classes[slot]}"
        lines.append(
            f"- {name}: azimuth {float(azimuth):.0f} deg, elevation {float(elevation):.0f} deg, "
            f"{distances[slot]:.1f} m (confidence {presence[slot]:.2f})"
        )
    count = int(outputs.count_logits[index].argmax())
    rt60 = float(outputs.rt60[index])
    header = (
        f"Detected sound sources ({count} estimated; room RT60 {rt60:.2f} s; azimuth counter-clockwise from front):"
    )
    return "\n".join([header, *(lines or ["- none detected"])])


class CascadePredictor(ModelPredictor):
    """Cascade baseline: the spatial encoder's slot predictions written as text before the question, answered by
    the language model without audio tokens."""

    def __init__(self, model_path: str | os.PathLike, **kwargs):
        super().__init__(model_path, **kwargs)
        if not (self.spatial and hasattr(self.model, "get_spatial_outputs")):
            raise ValueError(f"The cascade baseline needs a SpatialQwenAudio model; {model_path} is not one.")
        self.name = f"cascade({self.name})"
        self.conditions = ("full", "mono", "rotated")
        self.class_names = list(getattr(self.model.config, "spatial_class_names", None) or [])

    def predict(self, requests: Sequence[Request]) -> list[str]:
        import torch

        features = self.processor.feature_extractor(
            [request.audio for request in requests], sampling_rate=FOA_SAMPLE_RATE, return_tensors="pt"
        )
        with torch.inference_mode():
            outputs = self.model.get_spatial_outputs(
                features["spatial_features"].to(self.device), features["spatial_attention_mask"].to(self.device)
            )
        texts = [describe_slots(outputs, i, self.class_names) for i in range(len(requests))]
        text_requests = [
            Request({**r.item, "question": f"{text}\n\n{r.item['question']}"}, None, r.scene, r.condition)
            for r, text in zip(requests, texts, strict=True)
        ]
        return super().predict(text_requests)
