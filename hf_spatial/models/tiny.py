"""Tiny SpatialQwenAudio built offline: tokenizer, processor and random model for tests, CPU training and demos.

Nothing is downloaded. The tokenizer is a byte-level BPE (the Qwen2 tokenizer class) trained in a few
milliseconds on a built-in corpus about sound scenes, so questions ("Where is the dog relative to the piano?"),
options and answers such as "<think>...</think><answer>B</answer>" tokenize into sensible pieces; any other text
falls back to bytes. Same arguments -> same tokenizer and same weights.
"""

from __future__ import annotations

import json
from typing import Any

from transformers import AddedToken, Qwen2AudioConfig, Qwen2Tokenizer

import hf_spatial  # noqa: F401  (registers the Auto classes)
from hf_spatial.models.spatial_encoders import load_spatial_encoder, spatial_encoder_kwargs
from hf_spatial.models.spatial_qwen_audio.configuration_spatial_qwen_audio import SpatialQwenAudioConfig
from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor
from hf_spatial.models.spatial_qwen_audio.processing_spatial_qwen_audio import SpatialQwenAudioProcessor

# Qwen2-Audio's special tokens, then the reasoning/answer tags used by the curriculum (single tokens, kept on decode).
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")
TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")

_CORPUS_WORDS = """
what where which who how many much is are was were the a an of to from in on at by with and or not no yes it
this that these those there here its their his her one two three four five six seven eight nine ten zero
first second third last both each other another same different than more less most least only all none
sound sounds source sources event events audio clip scene scenes listener microphone speaker speakers voice
left right front back behind ahead above below up down over under near far nearest farthest closest furthest
closer further louder quieter loud quiet distance distances metre metres meter meters degree degrees
azimuth elevation direction directions angle angles sector relative position located location heard hear
room rooms reverberation reverb echo dry small large medium size time seconds second starts ends start end
before after during while first later earlier begins stops onset offset count number present absent
turn turns turned rotate rotated rotation clockwise counterclockwise facing face if would now then removed
remove move moves moving walk walking toward towards away navigate reach path straight
dog dogs bark barking cat meow bird birds chirping speech speaking talking man woman male female child baby
crying laughing laughter applause clapping music piano guitar drum drums violin singing phone telephone ring
ringing alarm bell bells door knock knocking footsteps steps water running tap engine car horn siren
glass breaking keyboard typing vacuum cleaner fan wind rain thunder kettle cough sneeze whistle clock tick
answer option options choose select letter correct question think reasoning because so therefore
system user assistant you are helpful please give reply explain describe briefly
"""
_CORPUS_SENTENCES = [
    "You are a helpful assistant.",
    "Where is the dog relative to the listener?",
    "Which sound is nearest to the listener?",
    "How many sound sources are in the scene?",
    "Is the telephone to the left or to the right of the piano?",
    "What is the azimuth of the speech source in degrees?",
    "If the listener turns 90 degrees to the left, where is the door knock?",
    "Answer with the letter of the correct option.",
    "Options: A. front B. left C. back D. right",
    "<think>The dog is at azimuth 42 degrees, 1.8 m away, so it is front left.</think><answer>B</answer>",
    "The scene has 2 sources: a man speaking at the front and a bell on the right.",
    "The room is medium sized with an RT60 of 0.6 seconds.",
    "azimuth 42 deg, elevation -10 deg, 1.8 m",
]


def _training_corpus() -> list[str]:
    words = _CORPUS_WORDS.split()
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    lines += words + [word.capitalize() for word in words]  # words also start text (e.g. after <think>)
    lines += [f"{number}" for number in range(-180, 361)] + [f"{number / 10:.1f}" for number in range(0, 100)]
    lines += ["A B C D", "A. B. C. D.", "(A) (B) (C) (D)", "Audio 1: Audio 2:", "m s deg dB Hz kHz RT60 FOA"]
    return lines + _CORPUS_SENTENCES * 3


def build_tiny_tokenizer(vocab_size: int = 2048) -> Qwen2Tokenizer:
    """A Qwen2 byte-level BPE tokenizer (about `vocab_size` tokens + Qwen2-Audio specials) trained offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(_training_corpus(), trainer)
    model_state = json.loads(bpe.to_str())["model"]
    merges = [tuple(pair) if isinstance(pair, list) else tuple(pair.split(" ")) for pair in model_state["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=model_state["vocab"],
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in TAG_TOKENS])
    return tokenizer


# Whisper encoder positions per second of its window (100 Hz mel frames, stride-2 convolution).
WHISPER_POSITIONS_PER_SECOND = 50


def build_tiny_processor(
    tokenizer: Qwen2Tokenizer | None = None, window_seconds: int = 30, **feature_extractor_kwargs
) -> SpatialQwenAudioProcessor:
    """Processor with the real-size FOA feature extractor (128 Whisper mel bins, a `window_seconds` window: 30 as
    Qwen2-Audio, or shorter for short clips) and the tiny tokenizer."""
    return SpatialQwenAudioProcessor(
        feature_extractor=FOAFeatureExtractor(chunk_length=window_seconds, **feature_extractor_kwargs),
        tokenizer=tokenizer or build_tiny_tokenizer(),
    )


def tiny_qwen2_audio_config_dict(tokenizer: Qwen2Tokenizer, window_seconds: int = 30) -> dict[str, Any]:
    """Config kwargs of a tiny random Qwen2-Audio (d=64 LM, d=32 Whisper, 2 layers each) for `tokenizer`, whose
    Whisper encoder takes `window_seconds` of audio (its positional table has 50 positions a second)."""
    return {
        "audio_config": {
            "model_type": "qwen2_audio_encoder",
            "num_mel_bins": 128,
            "encoder_layers": 2,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "max_source_positions": window_seconds * WHISPER_POSITIONS_PER_SECOND,
        },
        "text_config": {
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 2048,
            "bos_token_id": None,
            "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
            "pad_token_id": tokenizer.pad_token_id,
            "tie_word_embeddings": False,
        },
        "audio_token_index": tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    }


TINY_SPATIAL_KWARGS: dict[str, Any] = {
    "spatial_conv_channels": [8, 16, 16],
    "spatial_hidden_size": 32,
    "spatial_num_layers": 2,
    "spatial_num_heads": 2,
    "spatial_ffn_dim": 64,
    "spatial_conv_kernel_size": 7,
    "projector_expert_size": 16,
    "projector_bottleneck_size": 32,
}


def slot_class_kwargs(class_names: list[str] | None, spatial_encoder_name_or_path: str | None) -> dict[str, Any]:
    """Config fields of a new model's spatial branch: the slot classes `class_names` and, with a pretrained spatial
    encoder, that encoder's architecture (and its classes when `class_names` is None)."""
    if spatial_encoder_name_or_path is not None:
        return spatial_encoder_kwargs(spatial_encoder_name_or_path, class_names)
    if class_names is None:
        return {}
    return {"spatial_class_names": list(class_names), "spatial_num_classes": len(class_names)}


def tiny_spatial_qwen_audio_config(
    tokenizer: Qwen2Tokenizer, window_seconds: int = 30, **overrides
) -> SpatialQwenAudioConfig:
    """Tiny SpatialQwenAudio config (tiny Qwen2-Audio + small spatial branch); `overrides` set any config field."""
    base = Qwen2AudioConfig(**tiny_qwen2_audio_config_dict(tokenizer, window_seconds))
    return SpatialQwenAudioConfig.from_qwen2_audio_config(base, **{**TINY_SPATIAL_KWARGS, **overrides})


def build_tiny_spatial_qwen_audio(
    seed: int = 0,
    class_names: list[str] | None = None,
    window_seconds: int = 30,
    spatial_encoder_name_or_path: str | None = None,
    **config_overrides,
) -> tuple[Any, SpatialQwenAudioProcessor]:
    """Return `(model, processor)`: a random tiny `SpatialQwenAudioForConditionalGeneration` (eval mode) and its
    processor. `class_names` sets the slot class head's labels; `window_seconds` the semantic (Whisper) window,
    the longest clip the model takes; `spatial_encoder_name_or_path` a pretrained spatial encoder (`shipped`: the
    packaged one; default random); `config_overrides` any config field."""
    import torch

    from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import (
        SpatialQwenAudioForConditionalGeneration,
    )

    processor = build_tiny_processor(window_seconds=window_seconds)
    config_overrides = {**slot_class_kwargs(class_names, spatial_encoder_name_or_path), **config_overrides}
    config = tiny_spatial_qwen_audio_config(processor.tokenizer, window_seconds, **config_overrides)
    torch.manual_seed(seed)
    model = SpatialQwenAudioForConditionalGeneration(config).eval()
    if spatial_encoder_name_or_path is not None:
        load_spatial_encoder(model, spatial_encoder_name_or_path, processor.feature_extractor)
    tokenizer = processor.tokenizer
    model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, processor


__all__ = [
    "build_tiny_processor",
    "build_tiny_spatial_qwen_audio",
    "build_tiny_tokenizer",
    "slot_class_kwargs",
    "tiny_qwen2_audio_config_dict",
    "tiny_spatial_qwen_audio_config",
]
