"""Speed of FOAFeatureExtractor on one core: spatial features and the full call (W resampling + Whisper log-mel).

    python scripts/feature_speed.py [--seconds 5] [--repeats 50] [--threads 1]

Target: spatial features of a 5 s 24 kHz clip in <= 5 ms on one core. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from hf_spatial import FOAFeatureExtractor
from hf_spatial.conventions import SAMPLE_RATE
from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import audio_token_count, resample_poly


def median_ms(function, repeats: int) -> float:
    function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return 1000 * statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one core)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    extractor = FOAFeatureExtractor()
    clip = np.random.default_rng(0).standard_normal((4, int(args.seconds * SAMPLE_RATE))).astype(np.float32) * 0.1
    clip16 = resample_poly(clip, 2, 3)
    tokens = [int(audio_token_count(round(args.seconds * 100)))]
    result = {
        "clip_seconds": args.seconds,
        "threads": args.threads,
        "spatial_features_ms": median_ms(lambda: extractor.spatial_features([clip], tokens), args.repeats),
        "full_call_ms": median_ms(lambda: extractor(clip, sampling_rate=SAMPLE_RATE), max(5, args.repeats // 5)),
        "full_call_16khz_input_ms": median_ms(
            lambda: extractor(clip16, sampling_rate=16000), max(5, args.repeats // 5)
        ),
    }
    for key, value in result.items():
        print(f"{key:<26} {value:>10.2f}" if isinstance(value, float) else f"{key:<26} {value:>10}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
