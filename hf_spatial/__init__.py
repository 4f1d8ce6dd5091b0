"""hf-spatial: spatial hearing (First-Order Ambisonics) for Hugging Face audio-language models.

Importing the package registers SpatialQwenAudio with the transformers Auto classes (AutoConfig, AutoModel,
AutoModelForMultimodalLM, AutoModelForCausalLM, AutoFeatureExtractor, AutoProcessor). The model classes are
exported lazily: they load with their module on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_MODEL_FOLDER = "hf_spatial.models.spatial_qwen_audio"
_LAZY_EXPORTS = {
    "SpatialQwenAudioConfig": "configuration_spatial_qwen_audio",
    "FOAFeatureExtractor": "feature_extraction_spatial_qwen_audio",
    "SpatialQwenAudioProcessor": "processing_spatial_qwen_audio",
    "SpatialQwenAudioModel": "modeling_spatial_qwen_audio",
    "SpatialQwenAudioForConditionalGeneration": "modeling_spatial_qwen_audio",
    "SpatialQwenAudioPreTrainedModel": "modeling_spatial_qwen_audio",
    "SpatialEncoderOutput": "modeling_spatial_qwen_audio",
}
__all__ = ["__version__", "register_auto_classes", *_LAZY_EXPORTS]

if TYPE_CHECKING:
    from hf_spatial.models.spatial_qwen_audio.configuration_spatial_qwen_audio import SpatialQwenAudioConfig
    from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor
    from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import (
        SpatialEncoderOutput,
        SpatialQwenAudioForConditionalGeneration,
        SpatialQwenAudioModel,
        SpatialQwenAudioPreTrainedModel,
    )
    from hf_spatial.models.spatial_qwen_audio.processing_spatial_qwen_audio import SpatialQwenAudioProcessor


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(f"{_MODEL_FOLDER}.{_LAZY_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'hf_spatial' has no attribute {name!r}")


_registered = False


def register_auto_classes() -> None:
    """Register SpatialQwenAudio with the transformers Auto classes and mark each class for `auto_map`, so that
    `save_pretrained` writes checkpoints loadable with `trust_remote_code=True`. Idempotent; runs on import."""
    global _registered
    if _registered:
        return
    from transformers import (
        AutoConfig,
        AutoFeatureExtractor,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForMultimodalLM,
        AutoProcessor,
    )

    from hf_spatial.models.spatial_qwen_audio.configuration_spatial_qwen_audio import SpatialQwenAudioConfig
    from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor
    from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import (
        SpatialQwenAudioForConditionalGeneration,
        SpatialQwenAudioModel,
    )
    from hf_spatial.models.spatial_qwen_audio.processing_spatial_qwen_audio import SpatialQwenAudioProcessor

    AutoConfig.register(SpatialQwenAudioConfig.model_type, SpatialQwenAudioConfig, exist_ok=True)
    AutoModel.register(SpatialQwenAudioConfig, SpatialQwenAudioModel, exist_ok=True)
    AutoModelForMultimodalLM.register(SpatialQwenAudioConfig, SpatialQwenAudioForConditionalGeneration, exist_ok=True)
    AutoModelForCausalLM.register(SpatialQwenAudioConfig, SpatialQwenAudioForConditionalGeneration, exist_ok=True)
    AutoFeatureExtractor.register(SpatialQwenAudioConfig, FOAFeatureExtractor, exist_ok=True)
    AutoProcessor.register(SpatialQwenAudioConfig, SpatialQwenAudioProcessor, exist_ok=True)

    SpatialQwenAudioConfig.register_for_auto_class("AutoConfig")
    SpatialQwenAudioModel.register_for_auto_class("AutoModel")
    SpatialQwenAudioForConditionalGeneration.register_for_auto_class("AutoModelForMultimodalLM")
    FOAFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    SpatialQwenAudioProcessor.register_for_auto_class("AutoProcessor")
    _registered = True


register_auto_classes()
