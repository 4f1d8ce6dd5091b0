"""hf-spatial: spatial hearing (First-Order Ambisonics) for Hugging Face audio-language models.

Importing the package registers SpatialQwenAudio with the transformers Auto classes (AutoConfig, AutoModel,
AutoModelForMultimodalLM, AutoModelForCausalLM, AutoFeatureExtractor, AutoProcessor): at once for Auto modules
already imported, otherwise as each one is imported (see `hf_spatial.models.auto_registration`), so the import
itself stays fast. The model classes are exported lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from hf_spatial.models import auto_registration

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

if TYPE_CHECKING:  # static names for the lazy exports
    from hf_spatial.models.spatial_qwen_audio.configuration_spatial_qwen_audio import SpatialQwenAudioConfig  # noqa: F401
    from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor  # noqa: F401
    from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import (  # noqa: F401
        SpatialEncoderOutput,
        SpatialQwenAudioForConditionalGeneration,
        SpatialQwenAudioModel,
        SpatialQwenAudioPreTrainedModel,
    )
    from hf_spatial.models.spatial_qwen_audio.processing_spatial_qwen_audio import SpatialQwenAudioProcessor  # noqa: F401

register_auto_classes = auto_registration.register_all


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(f"{_MODEL_FOLDER}.{_LAZY_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'hf_spatial' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))


auto_registration.install()
