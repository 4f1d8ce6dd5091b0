"""Benchmark FOA scene rendering (exact and hybrid) and FLAC decoding, one core.

Renders 5 s scenes with 3 procedural sources in random test rooms whose RT60 is set to 0.3 / 0.6 / 1.0 s, and
times `render_scene` (scenes per second per core = 1 / mean time), then the FLAC encode and `read_foa` decode of a
rendered clip. Prints a table and one JSON line. Targets (one core): a hybrid render of 5 s with 3 sources at
RT60 <= 1.2 s in <= 0.25 s, exact no slower than pyroomacoustics itself, FLAC decode of a 5 s clip in <= 4 ms.

    python scripts/bench_simulation.py [--scenes-exact 2] [--scenes-hybrid 6] [--rt60 0.3 0.6 1.0]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rt60", type=float, nargs="+", default=[0.3, 0.6, 1.0])
    parser.add_argument("--scenes-exact", type=int, default=2)
    parser.add_argument("--scenes-hybrid", type=int, default=6)
    parser.add_argument("--num-sources", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from hf_spatial.acoustics.render import render_scene
    from hf_spatial.acoustics.rooms import wall_absorption
    from hf_spatial.acoustics.sampler import SceneSampler, SceneSamplerConfig
    from hf_spatial.acoustics.sources import SourceBank
    from hf_spatial.data.schema import encode_flac, read_foa

    bank = SourceBank.procedural(seed=0, clips_per_class=4)
    config = SceneSamplerConfig(num_sources=(args.num_sources, args.num_sources), duration=args.duration)
    scenes = SceneSampler(config, bank).sample(max(args.scenes_exact, args.scenes_hybrid) * 4, seed=123, split="test")
    results = []
    for rt60 in args.rt60:
        # Same rooms at every RT60; rooms that cannot be that dry are skipped.
        usable = []
        for scene in scenes:
            try:
                wall_absorption(rt60, scene.room.dimensions)
            except ValueError:
                continue
            usable.append(dataclasses.replace(scene, room=dataclasses.replace(scene.room, rt60=rt60)))
        for mode, count in (("hybrid", args.scenes_hybrid), ("exact", args.scenes_exact)):
            times = []
            for scene in usable[:count]:
                start = time.perf_counter()
                foa = render_scene(scene, bank, mode=mode)
                times.append(time.perf_counter() - start)
            mean = float(np.mean(times))
            results.append(
                {"mode": mode, "rt60": rt60, "scenes": len(times), "seconds_per_scene": round(mean, 4),
                 "scenes_per_second_per_core": round(1.0 / mean, 3), "real_time_factor": round(args.duration / mean, 1)}
            )  # fmt: skip
    flac = encode_flac(foa)
    encode_times, decode_times = [], []
    for _ in range(20):
        start = time.perf_counter()
        flac = encode_flac(foa)
        encode_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        read_foa({"bytes": flac, "path": "x.flac"})
        decode_times.append(time.perf_counter() - start)
    codec = {
        "flac_encode_ms": round(1000 * float(np.median(encode_times)), 2),
        "flac_decode_ms": round(1000 * float(np.median(decode_times)), 2),
        "flac_kib_per_clip": round(len(flac) / 1024, 1),
    }
    print(f"{args.num_sources} sources, {args.duration:.0f} s scenes, 24 kHz FOA, one process")
    print(f"{'mode':<8}{'RT60 s':>8}{'scenes':>8}{'s/scene':>10}{'scenes/s/core':>15}{'x real time':>13}")
    for row in results:
        print(
            f"{row['mode']:<8}{row['rt60']:>8.1f}{row['scenes']:>8}{row['seconds_per_scene']:>10.3f}"
            f"{row['scenes_per_second_per_core']:>15.2f}{row['real_time_factor']:>13.1f}"
        )
    print(f"FLAC 4ch 24-bit: encode {codec['flac_encode_ms']} ms, decode (read_foa) {codec['flac_decode_ms']} ms, "
          f"{codec['flac_kib_per_clip']} KiB per clip")  # fmt: skip
    print(json.dumps({"benchmark": "simulation", "render": results, **codec}))


if __name__ == "__main__":
    main()
