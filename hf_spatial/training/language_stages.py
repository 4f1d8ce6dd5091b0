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

import torch
from trl import SFTConfig, SFTTrainer

from hf_spatial.data import read_foa
from hf_spatial.models.audio_cache import AudioEmbeddingCache, audio_backbone
from hf_spatial.models.option_scoring import option_answer_log_likelihoods
from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import AUDIO_ENCODER_OUTPUT_KEYS, CACHE_KWARG
from hf_spatial.training.collators import AudioChatCollator
from hf_spatial.training.common import QuestionTaskArguments, StageDataArguments, check_cache_allowed
from hf_spatial.training.lora import (
    FULL_FINETUNE_MODULES,
    PROJECTOR_MODULES,
    LoraArguments,
    freeze_all_but,
    lora_or_full_finetune,
)

# The collator's option tensors (`AudioChatCollator(options=True)`), read by the multiple-choice loss.
OPTION_KEYS = ("option_ids", "option_mask", "option_row", "option_slot", "answer_slot")
_AUDIO_FEATURE_KEYS = ("input_features", "feature_attention_mask", "spatial_features", "spatial_attention_mask")


def with_encoder_outputs(model, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`model_inputs` with the audio features replaced by the audio encoders' outputs (computed with gradients
    where the encoders train): the options' continuation then has the clips' detections to ground their names."""
    if "input_features" not in model_inputs:
        return model_inputs
    encoded = audio_backbone(model).encode_audio(*(model_inputs.get(key) for key in _AUDIO_FEATURE_KEYS))
    kept = {key: value for key, value in model_inputs.items() if key not in _AUDIO_FEATURE_KEYS}
    return {**kept, **{key: getattr(encoded, key) for key in AUDIO_ENCODER_OUTPUT_KEYS}}


def label_positions(labels: torch.Tensor) -> torch.Tensor:
    """The sequence positions whose next token is a label in some row (where the LM head needs to run)."""
    return (labels[:, 1:] != -100).any(dim=0).nonzero().squeeze(-1)


def forward_with_options(
    model,
    model_inputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    options: dict[str, torch.Tensor],
    options_model=None,
) -> tuple[Any, torch.Tensor]:
    """The forward over the batch (logits at `label_positions(labels)`) and `(batch, most options)`: the
    log-likelihood of each option's answer after its row's prompt (-inf where a row has fewer options), continued
    from the forward's key/value cache as likelihood scoring does (`ModelPredictor.option_log_likelihoods`).

    `options_model` continues the options (default `model`): under DDP, the unwrapped model, since a wrapped
    forward runs collectives that a rank whose batch has no options would not join (the gradients still meet in
    the one backward)."""
    positions = label_positions(labels)
    outputs = model(**model_inputs, use_cache=True, logits_to_keep=positions)
    prompt_lengths = (labels != -100).int().argmax(-1)  # each row's first answer token
    row = options["option_row"]
    columns = torch.arange(labels.shape[1], device=labels.device)
    totals = option_answer_log_likelihoods(
        model if options_model is None else options_model,
        getattr(outputs, CACHE_KWARG),
        model_inputs["attention_mask"] * (columns[None, :] < prompt_lengths[:, None]),  # the answers masked out
        outputs.logits[row, torch.searchsorted(positions, prompt_lengths[row] - 1)],
        row,
        options["option_ids"],
        options["option_mask"],
        model_inputs.get("spatial_clip_accdoa"),
    )
    scores = totals.new_full((labels.shape[0], int(options["option_slot"].max()) + 1), float("-inf"))
    return outputs, scores.index_put((row, options["option_slot"]), totals)


@dataclass
class AudioSFTConfig(StageDataArguments, SFTConfig):
    """`SFTConfig` for audio chat rows: the collator tokenises, so TRL's dataset preparation is skipped."""

    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep every dataset column: the collator needs the audio and the chat rows."}
    )
    dataset_kwargs: dict[str, Any] | None = field(
        default_factory=lambda: {"skip_prepare_dataset": True},
        metadata={"help": "TRL dataset preparation options; skipped, as the collator tokenises text and audio."},
    )


@dataclass
class AlignConfig(AudioSFTConfig):
    """Stage `align`: projector-only training on scene captions (`train_language_model` adds the language model)."""

    learning_rate: float = field(default=1e-3, metadata={"help": "The initial learning rate for AdamW."})
    train_language_model: bool = field(
        default=False,
        metadata={
            "help": "Also train the whole language model: for a language model trained from scratch (the tiny one), "
            "which a frozen projector-only stage could not teach to read the audio. Keep False for a pretrained one."
        },
    )


@dataclass
class SpatialSFTConfig(LoraArguments, QuestionTaskArguments, AudioSFTConfig):
    """Stage `sft`: projectors + LoRA on the language model, on L1-L3 questions."""

    learning_rate: float = field(default=2e-4, metadata={"help": "The initial learning rate for AdamW."})
    reasoning_fraction: float = field(
        default=0.5, metadata={"help": "Share of questions answered as <think>..</think><answer>X</answer>."}
    )
    answer_format: str = field(
        default="letter",
        metadata={
            "help": "The other questions' answer: `letter`, or `text` (the option's words, parsed to its letter)."
        },
    )
    choice_loss_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the multiple-choice loss added to the answer's negative log-likelihood: cross-entropy "
            "over each question's options ranked by the log-likelihood of their answers (end-of-turn included), as "
            "likelihood scoring ranks them, so that the wrong options' answers are pushed down too. 0: off."
        },
    )

    def __post_init__(self):
        from hf_spatial.training.chat_data import ANSWER_FORMATS

        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {self.answer_format!r}.")
        super().__post_init__()


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
        self.choice_loss_weight = getattr(args, "choice_loss_weight", 0.0)
        collator = AudioChatCollator(
            processing_class,
            decode_audio or read_foa,
            sampling_rate=args.audio_sampling_rate,
            max_length=args.max_length,
            embedding_cache=embedding_cache,
            options=self.choice_loss_weight > 0,
        )
        super().__init__(model=model, args=args, processing_class=processing_class, data_collator=collator, **kwargs)
        check_cache_allowed(self.model, embedding_cache)
        if self.choice_loss_weight > 0 and (
            self.compute_loss_func is not None or self.label_smoother is not None or args.loss_type != "nll"
        ):
            raise ValueError(
                "choice_loss_weight adds to the plain negative log-likelihood: use loss_type 'nll' without a custom "
                "loss or label smoothing, or set choice_loss_weight to 0."
            )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # Adapted from trl 1.16.x trl/trainer/sft_trainer.py SFTTrainer.compute_loss (its default path: negative
        # log-likelihood, entropy and token-accuracy metrics): the same loss, with the LM head run only at the
        # positions that predict a label. On CPU TRL's fused head scores every position (it keeps only the labelled
        # ones on Triton devices, in chunks: left to it there), and an audio chat row is mostly audio and prompt
        # tokens before a short answer. The multiple-choice loss needs this path on every device.
        options = {key: inputs.pop(key) for key in OPTION_KEYS if key in inputs}
        choices = self.choice_loss_weight > 0 and bool(options) and not return_outputs
        if not choices and (
            inputs["labels"].device.type != "cpu"
            or return_outputs
            or self.compute_loss_func is not None
            or self.label_smoother is not None
            or self.aux_loss_enabled
            or self.args.loss_type != "nll"
        ):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        positions = label_positions(labels)  # each predicts the token after it
        model_inputs = {key: value for key, value in inputs.items() if key != "labels"}
        asked = options["answer_slot"] >= 0 if choices else None  # reasoning rows have no options
        option_scores = None
        if choices and bool(asked.any()):
            model_inputs = with_encoder_outputs(model, model_inputs)
            options_model = self.accelerator.unwrap_model(model)
            outputs, option_scores = forward_with_options(model, model_inputs, labels, options, options_model)
        else:
            outputs = model(**model_inputs, use_cache=False, logits_to_keep=positions)
        logits = outputs.logits
        targets = labels[:, positions + 1]
        mask = targets != -100
        log_probs = logits[mask].float().log_softmax(-1)
        label_log_probs = log_probs.gather(-1, targets[mask][:, None]).squeeze(-1)
        num_tokens = mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = -label_log_probs.sum() / torch.as_tensor(num_tokens).clamp(min=1)
        if choices:
            choice_loss = self._choice_loss(option_scores, options, asked, num_items_in_batch)
            loss = loss + self.choice_loss_weight * choice_loss
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())  # DDP averages the gradients
        with torch.no_grad():
            gather = self.accelerator.gather_for_metrics
            num_valid = gather(mask.sum()).sum()
            entropy = gather(-(log_probs.exp() * log_probs).sum()).sum()
            correct = gather((log_probs.argmax(-1) == targets[mask]).sum()).sum()
        self._metrics[mode]["entropy"].append((entropy / num_valid).item() if num_valid > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((correct / num_valid).item() if num_valid > 0 else 0.0)
        if mode == "train":
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item() // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return loss

    def _choice_loss(
        self,
        option_scores: torch.Tensor | None,
        options: dict[str, torch.Tensor],
        asked: torch.Tensor,
        num_items_in_batch: torch.Tensor | int | None,
    ) -> torch.Tensor:
        """The options' cross-entropy summed over this batch's questions and divided as the negative log-likelihood
        is: by this batch's questions, or, given `num_items_in_batch` (the answer tokens of every accumulation step,
        and of every process with `average_tokens_across_devices`), by the questions counted the same way. Every
        process joins the count's gather, with questions of its own or not. Logs the loss per question and how
        often the gold option ranks first."""
        mode = "train" if self.model.training else "eval"
        answers = options["answer_slot"][asked]
        summed, chosen = torch.zeros((), device=asked.device), torch.zeros((), device=asked.device)
        if option_scores is not None:
            summed = torch.nn.functional.cross_entropy(option_scores[asked], answers, reduction="sum")
            chosen = (option_scores[asked].detach().argmax(-1) == answers).sum().float()  # same dtype on every rank
        gather = self.accelerator.gather
        questions = asked.sum()
        asked_everywhere = gather(questions).sum()
        if num_items_in_batch is None:
            divisor = questions
        else:
            spread = asked_everywhere if self.args.average_tokens_across_devices else questions
            divisor = spread * self.current_gradient_accumulation_steps
        asked_everywhere = asked_everywhere.clamp(min=1)
        self._metrics[mode]["choice_loss"].append((gather(summed.detach()).sum() / asked_everywhere).item())
        self._metrics[mode]["choice_accuracy"].append((gather(chosen).sum() / asked_everywhere).item())
        return summed / divisor.clamp(min=1)


class SpatialAlignTrainer(AudioSFTTrainer):
    """Stage `align`: freezes everything but the projectors (and the language model with
    `train_language_model`) before training."""

    def __init__(self, model, args: AlignConfig, processing_class, **kwargs):
        freeze_all_but(model, FULL_FINETUNE_MODULES if args.train_language_model else PROJECTOR_MODULES)
        super().__init__(model, args, processing_class, **kwargs)


class SpatialSFTTrainer(AudioSFTTrainer):
    """Stage `sft`: LoRA on the language model (the config's `lora_*`), projectors fully trained; with
    `lora_r: 0`, the whole language model and the projectors."""

    def __init__(self, model, args: SpatialSFTConfig, processing_class, **kwargs):
        lora_or_full_finetune(model, args, kwargs)
        super().__init__(model, args, processing_class, **kwargs)
