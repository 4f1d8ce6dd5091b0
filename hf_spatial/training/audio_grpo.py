"""GRPO with audio prompts: TRL's `GRPOTrainer`, extended so the audio reaches generation and every log-prob
forward (policy, old policy, reference).

The stock trainer knows only images: with audio prompts it generates from text alone and scores the
completions with forwards that never see the audio, which trains a policy that is silently wrong. Here every
batch row is tokenised with the processor together with its audio; the processor's audio tensors
(`input_features`, `feature_attention_mask`, and for SpatialQwenAudio `spatial_features`,
`spatial_attention_mask`; or, with an embedding cache, the cached audio-encoder outputs) are passed to `generate`,
kept with the rows through TRL's shuffling and splitting, and sliced into each chunked log-prob forward.

This module is the only place that reaches into TRL's private `GRPOTrainer` methods. Each override is marked with
the TRL method it adapts; `OVERRIDDEN_TRL_SIGNATURES` records their signatures in the supported TRL version and
`tests/test_trl_internals.py` fails when TRL's change shape.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import trl
from trl import GRPOConfig, GRPOTrainer

from hf_spatial.conventions import SAMPLE_RATE
from hf_spatial.data import read_foa
from hf_spatial.models.audio_cache import KEY_COLUMN, AudioEmbeddingCache
from hf_spatial.training.collators import audio_prompt_inputs
from hf_spatial.training.common import check_cache_allowed

# The hooks overridden below are private TRL methods; they were read and tested against this minor version.
SUPPORTED_TRL_VERSION = "1.16"
# Their signatures there (`str(inspect.signature(...))`, trl 1.16.0), which the overrides rely on.
OVERRIDDEN_TRL_SIGNATURES = {
    "_set_signature_columns_if_needed": "(self)",
    "_tokenize_prompts": "(self, prompts: list)",
    "_generate_and_score_completions": (
        "(self, inputs: list[dict[str, torch.Tensor | typing.Any]]) -> dict[str, torch.Tensor | typing.Any]"
    ),
    "_compute_loss": "(self, model, inputs)",
    "_get_per_token_logps_and_entropies": (
        "(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False, "
        "compute_aux_loss=False, pixel_values=None, image_grid_thw=None, num_images=None, pixel_attention_mask=None, "
        "spatial_shapes=None, num_tiles=None, image_sizes=None, token_type_ids=None, mm_token_type_ids=None, "
        "image_position_ids=None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]"
    ),
}
_TEXT_KEYS = ("input_ids", "attention_mask")
# Image inputs TRL may pass to the log-prob forward; an audio batch never has them.
_IMAGE_KEYS = (
    "pixel_values", "image_grid_thw", "pixel_attention_mask", "spatial_shapes", "image_sizes",
    "token_type_ids", "mm_token_type_ids", "image_position_ids",
)  # fmt: skip


def check_trl_version(version: str = trl.__version__) -> None:
    """Refuse to run on a TRL minor version the private-hook overrides were not checked against."""
    if ".".join(version.split(".")[:2]) != SUPPORTED_TRL_VERSION:
        raise RuntimeError(
            f"AudioGRPOTrainer overrides private GRPOTrainer methods checked against TRL {SUPPORTED_TRL_VERSION}.x, "
            f"but TRL {version} is installed. Install trl=={SUPPORTED_TRL_VERSION}.* or re-check the overrides "
            f"({', '.join(OVERRIDDEN_TRL_SIGNATURES)})."
        )


@dataclass
class AudioGRPOConfig(GRPOConfig):
    """`GRPOConfig` plus where the audio lives in the dataset and at which sampling rate the processor gets it."""

    audio_column: str = field(default="audio", metadata={"help": "Dataset column holding each prompt's audio."})
    audio_sampling_rate: int = field(default=SAMPLE_RATE, metadata={"help": "Sampling rate of the decoded audio."})


class AudioGRPOTrainer(GRPOTrainer):
    """`GRPOTrainer` for audio-language models whose prompts come with audio.

    Args:
        decode_audio: maps a dataset cell of `args.audio_column` to the array the processor takes
            (for SpatialQwenAudio a (4, T) AmbiX array; `hf_spatial.data.read_foa` by default).
        Other arguments are those of `GRPOTrainer`; `processing_class` must be the model's processor.
    """

    _tag_names: ClassVar[list[str]] = ["trl", "grpo", "hf-spatial"]

    def __init__(
        self,
        *args,
        decode_audio: Callable[[Any], np.ndarray] | None = None,
        embedding_cache: AudioEmbeddingCache | None = None,
        **kwargs,
    ):
        check_trl_version()
        super().__init__(*args, **kwargs)
        if self.use_vllm:
            raise ValueError("AudioGRPOTrainer generates with transformers; vLLM does not serve this model.")
        check_cache_allowed(self.model, embedding_cache)
        self.decode_audio = decode_audio or read_foa
        self.embedding_cache = embedding_cache
        self._batch_rows: list[dict[str, Any]] | None = None  # the rows being generated for
        self._audio_inputs: dict[str, torch.Tensor] | None = None  # processor audio tensors of the rows in flight
        self._audio_keys: list[str] = []  # names of those tensors, as the processor returns them

    # Extends trl 1.16.x trl/trainer/grpo_trainer.py GRPOTrainer._set_signature_columns_if_needed: keeps the audio
    # and cache-key columns, which TRL's column pruning would drop.
    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        for column in (self.args.audio_column, KEY_COLUMN):
            if column not in self._signature_columns:
                self._signature_columns.append(column)

    @contextlib.contextmanager
    def _audio_inputs_for(self, audio_inputs: dict[str, torch.Tensor] | None) -> Iterator[None]:
        self._audio_inputs = audio_inputs
        try:
            yield
        finally:
            self._audio_inputs = None

    # Replaces trl 1.16.x trl/trainer/grpo_trainer.py GRPOTrainer._tokenize_prompts (same return shape: prompt ids,
    # no images, the multimodal inputs `generate` gets).
    def _tokenize_prompts(self, prompts: list):
        """Render the chat template, then tokenise text and audio together (expanding the audio placeholders)."""
        if self._batch_rows is None or len(self._batch_rows) != len(prompts):
            raise RuntimeError("Audio prompts must be tokenised through _generate_and_score_completions.")
        texts = self.processing_class.apply_chat_template(
            prompts, add_generation_prompt=True, tokenize=False, chat_template=self.chat_template
        )
        encoded = audio_prompt_inputs(
            self.processing_class,
            texts,
            self._batch_rows,
            decode_audio=self.decode_audio,
            sampling_rate=self.args.audio_sampling_rate,
            audio_column=self.args.audio_column,
            embedding_cache=self.embedding_cache,
        )
        prompt_ids = [
            ids[mask.bool()].tolist() for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"], strict=True)
        ]
        audio_inputs = {key: value for key, value in encoded.items() if key not in _TEXT_KEYS}
        self._audio_inputs = {key: value.to(self.accelerator.device) for key, value in audio_inputs.items()}
        return prompt_ids, None, audio_inputs

    # Wraps trl 1.16.x trl/trainer/grpo_trainer.py GRPOTrainer._generate_and_score_completions.
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._batch_rows = inputs
        try:
            output = super()._generate_and_score_completions(inputs)
            # Keep the audio tensors with their rows: TRL shuffles and splits every batch-first tensor of the output.
            output.update(self._audio_inputs)
            self._audio_keys = list(self._audio_inputs)
        finally:
            self._batch_rows = None
            self._audio_inputs = None
        return output

    # Wraps trl 1.16.x trl/trainer/grpo_trainer.py GRPOTrainer._compute_loss.
    def _compute_loss(self, model, inputs):
        audio_inputs = {key: inputs[key] for key in self._audio_keys}
        with self._audio_inputs_for(audio_inputs):
            return super()._compute_loss(model, inputs)

    # Adapted from trl 1.16.x trl/trainer/grpo_trainer.py GRPOTrainer._get_per_token_logps_and_entropies: the same
    # chunked loop and return values, with each chunk's audio tensors in place of TRL's image inputs.
    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        num_images=None,
        num_tiles=None,
        **image_inputs,
    ):
        """Chunked log-prob forward that passes each chunk's audio tensors to the model."""
        unexpected = [key for key in _IMAGE_KEYS if image_inputs.get(key) is not None]
        if unexpected or set(image_inputs) - set(_IMAGE_KEYS):
            raise ValueError(f"AudioGRPOTrainer got image inputs {unexpected or sorted(image_inputs)}; not supported.")
        if not self._audio_inputs:
            raise RuntimeError("Log-prob forward without audio: the audio tensors of this batch were lost.")
        batch_size = batch_size or input_ids.size(0)
        all_logps, all_entropies, all_aux_losses = [], [], []
        for start in range(0, input_ids.size(0), batch_size):
            end = min(start + batch_size, input_ids.size(0))
            ids, mask = input_ids[start:end], attention_mask[start:end]
            model_inputs = {"input_ids": ids, "attention_mask": mask}
            model_inputs.update({key: value[start:end] for key, value in self._audio_inputs.items()})
            if compute_aux_loss:
                model_inputs["output_router_logits"] = True
            # Only the completion tokens are scored.
            labels = ids.masked_fill(mask == 0, -100)
            labels[:, :-logits_to_keep] = -100
            with self.accelerator.autocast():
                outputs = model(**model_inputs, labels=labels, fused_lm_head=True)
            all_logps.append(outputs.log_probs[:, -logits_to_keep:])
            if compute_entropy:
                all_entropies.append(outputs.entropy[:, -logits_to_keep:])
            if compute_aux_loss:
                all_aux_losses.append(outputs.aux_loss)
        logps = torch.cat(all_logps, dim=0)
        entropies = torch.cat(all_entropies, dim=0) if compute_entropy else None
        aux_loss = torch.stack(all_aux_losses).mean() if compute_aux_loss else None
        return logps, entropies, aux_loss
