"""Stages 2 and 3, `align` and `sft`: TRL `SFTTrainer`s over audio chat rows.

`align` trains only the projectors (the semantic expert, Qwen2-Audio's `multi_modal_projector`, and the dense
hybrid `spatial_projector`) on scene captions, with Whisper, the spatial encoder and the language model frozen.
`sft` trains the projectors and a LoRA adapter on the language model on L1-L3 questions (or, with `lora_r: 0`,
the projectors and the whole language model: the choice for a small or randomly initialised language model, where
a low-rank update of random weights has little to adapt).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import SFTConfig, SFTTrainer

from hf_spatial.data import read_foa
from hf_spatial.models.audio_cache import AudioEmbeddingCache
from hf_spatial.training.collators import AudioChatCollator
from hf_spatial.training.common import QuestionTaskArguments, StageDataArguments, check_cache_allowed

PROJECTOR_MODULES = ("multi_modal_projector", "spatial_projector")
# Trained by a language stage without LoRA (`lora_r: 0`): the projectors and the whole language model.
FULL_FINETUNE_MODULES = (*PROJECTOR_MODULES, "language_model", "lm_head")


@dataclass
class AudioSFTConfig(StageDataArguments, SFTConfig):
    """`SFTConfig` for audio chat rows: the collator tokenises, so TRL's dataset preparation is skipped."""

    remove_unused_columns: bool = False
    dataset_kwargs: dict[str, Any] | None = field(default_factory=lambda: {"skip_prepare_dataset": True})


@dataclass
class AlignConfig(AudioSFTConfig):
    """Stage `align`: projector-only training on scene captions (`train_language_model` adds the language model)."""

    learning_rate: float = 1e-3
    train_language_model: bool = field(
        default=False,
        metadata={
            "help": "Also train the whole language model: for a language model trained from scratch (the tiny one), "
            "which a frozen projector-only stage could not teach to read the audio. Keep False for a pretrained one."
        },
    )


@dataclass
class LoraArguments:
    """LoRA on the language model only, with the projectors trained in full (`modules_to_save`); `lora_r: 0`
    trains the projectors and the whole language model instead (no adapter)."""

    lora_r: int = field(default=8, metadata={"help": "LoRA rank; 0 trains the whole language model (no LoRA)."})
    lora_alpha: int = 32
    lora_dropout: float = 0.05

    def __post_init__(self):
        if self.lora_r < 0:
            raise ValueError(f"lora_r must be positive, or 0 for full fine-tuning; got {self.lora_r}.")
        if hasattr(super(), "__post_init__"):  # the trainer config this is mixed into
            super().__post_init__()

    def lora_config(self):
        """The PEFT `LoraConfig`, or None for full fine-tuning (`lora_r: 0`)."""
        if self.lora_r == 0:
            return None
        from peft import LoraConfig

        from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import LANGUAGE_MODEL_LORA_TARGETS

        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=LANGUAGE_MODEL_LORA_TARGETS,
            modules_to_save=list(PROJECTOR_MODULES),
            task_type="CAUSAL_LM",
        )


@dataclass
class SpatialSFTConfig(LoraArguments, QuestionTaskArguments, AudioSFTConfig):
    """Stage `sft`: projectors + LoRA on the language model, on L1-L3 questions."""

    learning_rate: float = 2e-4
    reasoning_fraction: float = field(
        default=0.5, metadata={"help": "Share of questions answered as <think>..</think><answer>X</answer>."}
    )
    answer_format: str = field(
        default="letter",
        metadata={
            "help": "The other questions' answer: `letter`, or `text` (the option's words, parsed to its letter)."
        },
    )

    def __post_init__(self):
        from hf_spatial.training.chat_data import ANSWER_FORMATS

        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {self.answer_format!r}.")
        super().__post_init__()


def freeze_all_but(model, module_names: tuple[str, ...]) -> None:
    """Train only parameters inside the named sub-modules (matched as dotted path components)."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(any(f".{module}." in f".{name}" for module in module_names))


class AudioSFTTrainer(SFTTrainer):
    """`SFTTrainer` whose batches are audio chat rows (`prompt`, `completion`, `audio`), collated with the
    processor; the loss covers only the completion. With an `embedding_cache` (rows keyed by `audio_key`), the
    batches carry the cached audio-encoder outputs instead of audio features."""

    def __init__(
        self,
        model,
        args: AudioSFTConfig,
        processing_class,
        decode_audio=None,
        embedding_cache: AudioEmbeddingCache | None = None,
        **kwargs,
    ):
        collator = AudioChatCollator(
            processing_class,
            decode_audio or read_foa,
            sampling_rate=args.audio_sampling_rate,
            max_length=args.max_length,
            embedding_cache=embedding_cache,
        )
        super().__init__(model=model, args=args, processing_class=processing_class, data_collator=collator, **kwargs)
        check_cache_allowed(self.model, embedding_cache)


class SpatialAlignTrainer(AudioSFTTrainer):
    """Stage `align`: freezes everything but the projectors (and the language model with
    `train_language_model`) before training."""

    def __init__(self, model, args: AlignConfig, processing_class, **kwargs):
        freeze_all_but(model, FULL_FINETUNE_MODULES if args.train_language_model else PROJECTOR_MODULES)
        super().__init__(model, args, processing_class, **kwargs)


def lora_or_full_finetune(model, args: LoraArguments, kwargs: dict[str, Any]) -> None:
    """Give the trainer the config's LoRA (`peft_config`), or, with `lora_r: 0`, leave only the projectors and the
    language model trainable."""
    peft_config = args.lora_config()
    if peft_config is None:
        freeze_all_but(model, FULL_FINETUNE_MODULES)
    else:
        kwargs.setdefault("peft_config", peft_config)


class SpatialSFTTrainer(AudioSFTTrainer):
    """Stage `sft`: LoRA on the language model (the config's `lora_*`), projectors fully trained; with
    `lora_r: 0`, the whole language model and the projectors."""

    def __init__(self, model, args: SpatialSFTConfig, processing_class, **kwargs):
        lora_or_full_finetune(model, args, kwargs)
        super().__init__(model, args, processing_class, **kwargs)
