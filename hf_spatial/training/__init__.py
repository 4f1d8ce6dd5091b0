"""Training: the curriculum's stages (`encoder`, `align`, `sft`, `grpo`), their configs and presets, collators,
the embedding command and the stage record. `hf-spatial train STAGE` is `stages.register`'s command."""
