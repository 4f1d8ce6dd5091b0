"""What a language stage trains (`sft`, `grpo`): a LoRA adapter on the language model with the projectors trained in
full, or, with `lora_r: 0`, the projectors and the whole language model; `align` trains only the projectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from peft import LoraConfig

from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import LANGUAGE_MODEL_LORA_TARGETS

PROJECTOR_MODULES = ("multi_modal_projector", "spatial_projector")
# Trained by a language stage without LoRA (`lora_r: 0`): the projectors and the whole language model.
FULL_FINETUNE_MODULES = (*PROJECTOR_MODULES, "language_model", "lm_head")


@dataclass
class LoraArguments:
    """LoRA on the language model only, with the projectors trained in full (`modules_to_save`); `lora_r: 0`
    trains the projectors and the whole language model instead (no adapter)."""

    lora_r: int = field(default=8, metadata={"help": "LoRA rank; 0 trains the whole language model (no LoRA)."})
    lora_alpha: int = field(
        default=32, metadata={"help": "LoRA scaling numerator (the update is scaled by alpha / r)."}
    )
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch's input."})

    def __post_init__(self):
        if self.lora_r < 0:
            raise ValueError(f"lora_r must be positive, or 0 for full fine-tuning; got {self.lora_r}.")
        if hasattr(super(), "__post_init__"):  # the trainer config this is mixed into
            super().__post_init__()

    def lora_config(self):
        """The PEFT `LoraConfig`, or None for full fine-tuning (`lora_r: 0`)."""
        if self.lora_r == 0:
            return None
        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=LANGUAGE_MODEL_LORA_TARGETS,
            modules_to_save=list(PROJECTOR_MODULES),
            task_type="CAUSAL_LM",
        )


def freeze_all_but(model, module_names: tuple[str, ...]) -> None:
    """Train only parameters inside the named sub-modules (matched as dotted path components)."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(any(f".{module}." in f".{name}" for module in module_names))


def lora_or_full_finetune(model, args: LoraArguments, kwargs: dict[str, Any]) -> None:
    """Give the trainer the config's LoRA (`peft_config`), or, with `lora_r: 0`, leave only the projectors and the
    language model trainable."""
    peft_config = args.lora_config()
    if peft_config is None:
        freeze_all_but(model, FULL_FINETUNE_MODULES)
    else:
        kwargs.setdefault("peft_config", peft_config)
