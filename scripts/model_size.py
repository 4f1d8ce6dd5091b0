"""Size and cost of the spatial branch on the real Qwen2-Audio-7B configuration, and CPU latency of the tiny model.

    python scripts/model_size.py [--text-tokens 64] [--seconds 5] [--repeats 5]

Parameters and FLOPs are counted on the meta device (no weights are allocated): the full SpatialQwenAudio-7B
against its Qwen2-Audio base, per clip of `--seconds` (the Whisper encoder always sees 30 s, as in Qwen2-Audio;
the language model sees the clip's audio tokens plus `--text-tokens` prompt tokens; FLOPs = 2 x multiply-adds of
one forward pass). Prints a table and a final JSON line. Targets: spatial overhead <= 2% parameters,
<= 3% FLOPs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from hf_spatial import SpatialQwenAudioConfig, SpatialQwenAudioForConditionalGeneration
from hf_spatial.conventions import SAMPLE_RATE
from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import audio_token_count

WHISPER_FRAMES = 3000  # 30 s of 10 ms frames: Qwen2-Audio always pads to this


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def forward_flops(function, *args, **kwargs) -> int:
    with FlopCounterMode(display=False) as counter:
        function(*args, **kwargs)
    return counter.get_total_flops()


def full_size_report(seconds: float, text_tokens: int) -> dict:
    config = SpatialQwenAudioConfig()  # Qwen2-Audio-7B(-Instruct) + default spatial branch
    with torch.device("meta"):
        model = SpatialQwenAudioForConditionalGeneration(config).eval().requires_grad_(False)
    backbone = model.model
    spatial_params = {
        name: count_parameters(getattr(backbone, name)) for name in ("spatial_encoder", "spatial_projector")
    }
    total = count_parameters(model)
    base = total - sum(spatial_params.values())

    frames = int(seconds * 100)
    tokens = int(audio_token_count(frames))
    sequence = tokens + text_tokens
    meta = {"device": "meta"}
    whisper_tokens = WHISPER_FRAMES // 4  # conv stride 2 + average pool 2: 750 positions for 30 s
    flops = {
        "audio_tower": forward_flops(
            backbone.audio_tower, torch.empty(1, config.audio_config.num_mel_bins, WHISPER_FRAMES, **meta)
        ),
        "multi_modal_projector": forward_flops(
            backbone.multi_modal_projector, torch.empty(1, whisper_tokens, config.audio_config.d_model, **meta)
        ),
        "language_model": forward_flops(
            backbone.language_model, inputs_embeds=torch.empty(1, sequence, config.text_config.hidden_size, **meta)
        ),
        "lm_head": forward_flops(model.lm_head, torch.empty(1, sequence, config.text_config.hidden_size, **meta)),
    }
    spatial_features = torch.empty(1, config.spatial_num_channels, config.spatial_num_mel_bins, 4 * tokens, **meta)
    spatial_mask = torch.ones(1, 4 * tokens, dtype=torch.long, device="meta")
    flops["spatial_encoder"] = forward_flops(backbone.spatial_encoder, spatial_features, spatial_mask)
    flops["spatial_projector"] = forward_flops(
        backbone.spatial_projector,
        torch.empty(1, tokens, config.text_config.hidden_size, **meta),
        torch.empty(1, tokens, config.audio_config.d_model, **meta),
        torch.empty(1, tokens, config.spatial_hidden_size, **meta),
        torch.empty(1, config.spatial_hidden_size, **meta),
        torch.empty(1, tokens, config.spatial_num_classes, 3, **meta),
    )
    spatial_flops = flops["spatial_encoder"] + flops["spatial_projector"]
    base_flops = sum(flops.values()) - spatial_flops
    return {
        "clip_seconds": seconds,
        "audio_tokens": tokens,
        "text_tokens": text_tokens,
        "params_base": base,
        "params_spatial_encoder": spatial_params["spatial_encoder"],
        "params_spatial_projector": spatial_params["spatial_projector"],
        "params_overhead_pct": 100 * sum(spatial_params.values()) / base,
        "flops": flops,
        "flops_base": base_flops,
        "flops_spatial": spatial_flops,
        "flops_overhead_pct": 100 * spatial_flops / base_flops,
    }


def tiny_latency_report(seconds: float, repeats: int) -> dict:
    from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio

    model, processor = build_tiny_spatial_qwen_audio()
    clip = np.random.default_rng(0).standard_normal((4, int(seconds * SAMPLE_RATE))).astype(np.float32) * 0.1
    messages = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Where is the dog?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def timed(function) -> float:
        function()  # warm-up
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            samples.append(time.perf_counter() - start)
        return 1000 * statistics.median(samples)

    batch = processor(text=text, audio=clip, sampling_rate=SAMPLE_RATE, return_tensors="pt")
    result = {
        "tiny_params": count_parameters(model),
        "tiny_params_spatial": count_parameters(model.model.spatial_encoder)
        + count_parameters(model.model.spatial_projector),
        "torch_threads": torch.get_num_threads(),
        "processor_ms": timed(lambda: processor(text=text, audio=clip, sampling_rate=SAMPLE_RATE, return_tensors="pt")),
    }
    with torch.no_grad():
        result["forward_ms"] = timed(lambda: model(**batch))
        model.set_audio_branches(spatial=False)
        result["forward_mono_control_ms"] = timed(lambda: model(**batch))
        model.set_audio_branches()
        result["generate_16_tokens_ms"] = timed(
            lambda: model.generate(**batch, max_new_tokens=16, min_new_tokens=16, do_sample=False)
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length (default 5 s)")
    parser.add_argument("--text-tokens", type=int, default=64, help="prompt text tokens besides audio (default 64)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats for the tiny model (median)")
    args = parser.parse_args()

    full = full_size_report(args.seconds, args.text_tokens)
    tiny = tiny_latency_report(args.seconds, args.repeats)
    rows = [
        ("parameters, Qwen2-Audio-7B base", f"{full['params_base'] / 1e9:.3f} B"),
        ("parameters, spatial encoder", f"{full['params_spatial_encoder'] / 1e6:.2f} M"),
        ("parameters, spatial projector", f"{full['params_spatial_projector'] / 1e6:.2f} M"),
        ("parameter overhead (target <= 2%)", f"{full['params_overhead_pct']:.3f} %"),
        (f"GFLOPs per {args.seconds:g} s clip, base", f"{full['flops_base'] / 1e9:.1f}"),
        *[(f"  GFLOPs {name}", f"{value / 1e9:.2f}") for name, value in full["flops"].items()],
        ("FLOP overhead (target <= 3%)", f"{full['flops_overhead_pct']:.3f} %"),
        ("tiny model: parameters (spatial)", f"{tiny['tiny_params']:,} ({tiny['tiny_params_spatial']:,})"),
        (f"tiny model: processor, {args.seconds:g} s clip", f"{tiny['processor_ms']:.1f} ms"),
        ("tiny model: forward", f"{tiny['forward_ms']:.1f} ms"),
        ("tiny model: forward, mono control", f"{tiny['forward_mono_control_ms']:.1f} ms"),
        ("tiny model: generate 16 tokens", f"{tiny['generate_16_tokens_ms']:.1f} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>16}")
    print(json.dumps({**full, **tiny}))


if __name__ == "__main__":
    main()
