"""SpatialQwenAudio: Qwen2-Audio with a spatial FOA branch and a dense hybrid projector.

Kept import-free: `hf_spatial.conventions` imports `foa_format` from here without loading torch. The classes live
in the configuration_/feature_extraction_/processing_/modeling_ modules (transformers' single-model-folder layout,
copied with checkpoints for `trust_remote_code`); `hf_spatial` exports and registers them.
"""
