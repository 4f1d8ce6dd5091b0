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
from transformers import BatchFeature

from hf_spatial.conventions import SAMPLE_RATE
from hf_spatial.evaluation.controls import Request
from hf_spatial.models.audio_cache import AudioEmbeddingCache, clip_key
from hf_spatial.models.option_scoring import option_answer_log_likelihoods, pad_option_answers
from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import CACHE_KWARG
from hf_spatial.tasks.parsing import option_texts
from hf_spatial.tasks.prompting import ANSWER_INSTRUCTIONS, answer_completion, completion_token_ids, format_prompt

logger = logging.getLogger(__name__)

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


SCORING_MODES = ("generate", "likelihood")


class ModelPredictor:
    """A model and processor from `from_pretrained(path)` (our Auto classes) answering in `answer_format`
    (`"letter"` or `"text"`: the option's words, see `ANSWER_INSTRUCTIONS`).

    `scoring="generate"` decodes greedily and the shared parser reads the answer; `"likelihood"` answers with the
    option whose completion (as the model was trained to write it, end-of-turn included) has the highest
    log-probability, the multiple-choice scoring of lm-evaluation-harness: every answer is then a valid option, for
    models too small to follow the answer format (the prompts run once, the options continue from their cache).

    A SpatialQwenAudio processor gets the FOA clip; any other audio processor (stock Qwen2-Audio's
    WhisperFeatureExtractor) gets the W channel at 16 kHz, so only full, no_audio and rotated apply to it.
    `embedding_cache` (a folder, see `hf_spatial.models.audio_cache`) serves a SpatialQwenAudio's audio-encoder
    outputs from a cache, computing each clip once (a clip heard under two conditions, or asked about twice).
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        device: str = "cpu",
        dtype: str | None = None,
        max_new_tokens: int = 16,
        answer_format: str = "letter",
        scoring: str = "generate",
        model: Any = None,
        processor: Any = None,
        embedding_cache: str | os.PathLike | None = None,
    ):
        import torch
        from transformers import AutoModelForMultimodalLM, AutoProcessor

        import hf_spatial  # noqa: F401  (registers the Auto classes)
        from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor

        if answer_format not in ANSWER_INSTRUCTIONS:
            raise ValueError(f"answer_format must be one of {tuple(ANSWER_INSTRUCTIONS)}, got {answer_format!r}.")
        if scoring not in SCORING_MODES:
            raise ValueError(f"scoring must be one of {SCORING_MODES}, got {scoring!r}.")
        self.name = os.path.basename(os.path.normpath(str(model_path)))
        if (answer_format, scoring) != ("letter", "generate"):  # results say how the model was asked and scored
            self.name += f" ({answer_format} answers, {'most likely option' if scoring == 'likelihood' else 'parsed'})"
        self.processor = processor if processor is not None else AutoProcessor.from_pretrained(model_path)
        torch_dtype = getattr(torch, dtype) if dtype else None
        if model is None:
            model = AutoModelForMultimodalLM.from_pretrained(model_path, dtype=torch_dtype)
        self.model = model.to(device).eval()
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.answer_format = answer_format
        self.scoring = scoring
        self.processor.tokenizer.padding_side = "left"  # batched generation continues every prompt at its end
        self.spatial = isinstance(self.processor.feature_extractor, FOAFeatureExtractor)
        self.embedding_cache = None
        if embedding_cache is not None and self.spatial:
            self.embedding_cache = AudioEmbeddingCache.for_model(
                embedding_cache, self.model, self.processor.feature_extractor
            )
        conditions = ["full", "no_audio", "rotated"]
        if self.spatial:
            conditions.insert(2, "mono")
            if hasattr(self.model, "set_audio_branches"):
                conditions.insert(3, "spatial_zeroed")
        self.conditions = tuple(conditions)

    def applies_to(self, item: dict[str, Any]) -> bool:
        return True

    def prompt_text(self, request: Request) -> str:
        return format_prompt(request.item, ANSWER_INSTRUCTIONS[self.answer_format])

    def predict(self, requests: Sequence[Request]) -> list[str]:
        with_audio = requests[0].audio is not None
        if any((request.audio is not None) != with_audio for request in requests):
            raise ValueError("A batch mixes requests with and without audio; batch one condition at a time.")
        zero_spatial = requests[0].condition == "spatial_zeroed"
        if zero_spatial:
            self.model.set_audio_branches(spatial=False)
        try:
            if self.scoring == "likelihood":
                return [max(scores, key=scores.get) for scores in self.option_log_likelihoods(requests)]
            return self._generate(requests, with_audio)
        finally:
            if zero_spatial:
                self.model.set_audio_branches(spatial=True)

    def _model_audio(self, audio: np.ndarray) -> np.ndarray:
        return audio if self.spatial else mono_for_whisper(audio)

    @property
    def _sampling_rate(self) -> int:
        return SAMPLE_RATE if self.spatial else WHISPER_SAMPLE_RATE

    def _prompt_inputs(self, requests: Sequence[Request], with_audio: bool) -> tuple[list, list[str], Any]:
        """The user turns, their chat-template renderings (generation prompt included) and the processor's
        left-padded batch of them with the audio: for a spatial model the audio encoders' outputs (from the
        embedding cache, else computed for this batch), whose detections then also ground the names that decoding
        or option scoring adds after the prompt; for another model the audio features."""
        conversations = [user_messages(self.prompt_text(request), with_audio) for request in requests]
        texts = self.processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=False)
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        cache = self.embedding_cache
        if cache is None and self.spatial:
            cache = AudioEmbeddingCache(None, "this batch")
        if with_audio and cache is not None:
            # The clips as heard under this condition (mono and rotated clips are clips of their own).
            keys = [clip_key(request.audio) for request in requests]
            clips = zip(keys, (request.audio for request in requests), strict=True)
            cache.update(self.model, self.processor.feature_extractor, clips)
            audio_inputs = cache.batch(keys)
            inputs = self.processor(audio_token_lengths=audio_inputs["audio_token_lengths"], **kwargs)
            return conversations, texts, BatchFeature({**inputs, **audio_inputs}).to(self.device)
        if with_audio:
            kwargs.update(audio=[self._model_audio(r.audio) for r in requests], sampling_rate=self._sampling_rate)
        return conversations, texts, self.processor(**kwargs).to(self.device)

    def _generate(self, requests: Sequence[Request], with_audio: bool) -> list[str]:
        import torch

        _, _, inputs = self._prompt_inputs(requests, with_audio)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self.processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def option_log_likelihoods(self, requests: Sequence[Request]) -> list[dict[str, float]]:
        """Per request, letter -> log-probability of the completion that chooses that option (in `answer_format`,
        end-of-turn included, tokenised as in training). The prompt and its audio run once; the options continue
        from its key/value cache."""
        import torch

        with_audio = requests[0].audio is not None
        conversations, texts, inputs = self._prompt_inputs(requests, with_audio)
        letters = [list(option_texts(request.item)) for request in requests]
        completions = [
            completion_token_ids(
                self.processor, conversation, text, answer_completion(request.item, letter, self.answer_format)
            )
            for request, conversation, text, choices in zip(requests, conversations, texts, letters, strict=True)
            for letter in choices
        ]
        # Row of the prompt batch that each option continues.
        owner = torch.repeat_interleave(torch.arange(len(requests)), torch.tensor([len(ls) for ls in letters]))
        owner = owner.to(self.device)
        option_ids, option_mask = (tensor.to(self.device) for tensor in pad_option_answers(completions))
        prompt_mask = inputs["attention_mask"]
        with torch.inference_mode():
            # Left padding: positions count valid tokens only (as `generate` does).
            prompt = self.model(**inputs, position_ids=(prompt_mask.cumsum(-1) - 1).clamp_min(0), use_cache=True)
            totals = option_answer_log_likelihoods(
                self.model,
                getattr(prompt, CACHE_KWARG),
                prompt_mask,
                prompt.logits[owner, -1],
                owner,
                option_ids,
                option_mask,
                inputs.get("spatial_clip_accdoa"),
            )
        totals = iter(totals.tolist())
        return [{letter: next(totals) for letter in choices} for choices in letters]


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
            [request.audio for request in requests], sampling_rate=SAMPLE_RATE, return_tensors="pt"
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
