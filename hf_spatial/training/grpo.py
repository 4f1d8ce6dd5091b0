"""Stage 4, `grpo`: LoRA GRPO on L1-L3 questions with the accuracy, format and evidence rewards, on the audio GRPO
trainer of `training.audio_grpo`."""

from __future__ import annotations

from dataclasses import dataclass, field

from hf_spatial.tasks import rewards
from hf_spatial.training.audio_grpo import AudioGRPOConfig, AudioGRPOTrainer
from hf_spatial.training.chat_data import GRPO_ANSWER_FORMATS
from hf_spatial.training.common import QuestionTaskArguments, StageDataArguments
from hf_spatial.training.lora import LoraArguments, lora_or_full_finetune


@dataclass
class SpatialGRPOConfig(LoraArguments, QuestionTaskArguments, StageDataArguments, AudioGRPOConfig):
    """Stage `grpo`: LoRA GRPO on L1-L3 questions with the accuracy, format and evidence rewards."""

    learning_rate: float = field(default=1e-5, metadata={"help": "The initial learning rate for AdamW."})
    reward_weights: list[float] | None = field(
        default_factory=lambda: [1.0, 0.2, 0.3],
        metadata={"help": "Weights of the accuracy, format and evidence rewards, in that order."},
    )
    answer_format: str = field(
        default="reasoning",
        metadata={
            "help": "What the prompts ask for: `reasoning` (<think>..</think><answer>X</answer>, the format reward's "
            "form), or the answer as the SFT stage taught it, `letter` or `text` (the option's words). A model "
            "asked in a form it never learned samples nothing the rewards can score."
        },
    )

    def __post_init__(self):
        if self.answer_format not in GRPO_ANSWER_FORMATS:
            raise ValueError(f"answer_format must be one of {GRPO_ANSWER_FORMATS}, got {self.answer_format!r}.")
        super().__post_init__()


class SpatialGRPOTrainer(AudioGRPOTrainer):
    """Stage `grpo`: the audio GRPO trainer with the ASA rewards and LoRA from the config."""

    def __init__(self, model, args: SpatialGRPOConfig, processing_class, **kwargs):
        # TRL reads `image_token_id` for multimodal processors; the audio placeholder plays that role here.
        model.config.image_token_id = processing_class.audio_token_id
        lora_or_full_finetune(model, args, kwargs)
        super().__init__(
            model=model,
            args=args,
            processing_class=processing_class,
            reward_funcs=[rewards.accuracy_reward, rewards.format_reward, rewards.evidence_reward],
            **kwargs,
        )
