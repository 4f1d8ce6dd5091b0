"""Measure the error of the hybrid renderer against the exact image-source renderer.

For single-source scenes in random test rooms (RT60 spread over 0.2-1.2 s), compares the two modes' RIRs:
- early part: largest sample difference before the statistical tail starts (0 means identical), and the
  active-intensity direction of +-0.5 ms around the direct sound against the SceneSpec direction;
- RT60: T30 of the W RIR (Schroeder), hybrid vs exact and exact vs the requested RT60;
- channel energies: Y/W, Z/W, X/W energy ratios of the reverberant part (from 50 ms), hybrid vs exact, in dB;
- total W energy, hybrid vs exact, in dB.
Prints per-scene rows, a summary (median / 90th percentile / max of absolute errors) and a JSON line.

    python scripts/compare_hybrid_exact.py [--scenes 12] [--max-rt60 1.2]
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--max-rt60", type=float, default=1.2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from pyroomacoustics.experimental import measure_rt60

    from hf_spatial.acoustics.intensity import estimate_direction
    from hf_spatial.acoustics.render import scene_rirs
    from hf_spatial.acoustics.rooms import RoomSamplerConfig
    from hf_spatial.acoustics.sampler import SceneSampler, SceneSamplerConfig
    from hf_spatial.acoustics.sources import SourceBank
    from hf_spatial.conventions import SAMPLE_RATE, angular_distance

    rate = SAMPLE_RATE
    bank = SourceBank.procedural(seed=0, clips_per_class=2)
    rooms = RoomSamplerConfig(rt60=(0.2, args.max_rt60))
    config = SceneSamplerConfig(num_sources=(1, 1), rooms=rooms, noise_probability=0.0)
    scenes = SceneSampler(config, bank).sample(args.scenes, seed=args.seed, split="test")
    rows = []
    for scene in scenes:
        exact, hybrid = scene_rirs(scene, "exact")[0], scene_rirs(scene, "hybrid")[0]
        source = scene.sources[0]
        direct = int(source.distance / 343.0 * rate)
        length = min(exact.shape[1], hybrid.shape[1])
        differs = np.flatnonzero(np.any(exact[:, :length] != hybrid[:, :length], axis=0))
        identical_ms = 1000 * ((differs[0] if len(differs) else length) - direct) / rate
        early = slice(max(direct - 12, 0), direct + 12)  # +-0.5 ms: before any reflection in most positions
        direction_errors = [
            angular_distance(*estimate_direction(rir[:, early], rate, n_fft=24), source.azimuth, source.elevation)
            for rir in (exact, hybrid)
        ]
        late = slice(int(0.05 * rate), None)
        ratios = [
            10 * np.log10(np.sum(rir[1:, late] ** 2, axis=1) / np.sum(rir[0, late] ** 2)) for rir in (exact, hybrid)
        ]
        rt60 = [measure_rt60(rir[0], rate, decay_db=30) for rir in (exact, hybrid)]
        rows.append(
            {
                "room": scene.room.room_id,
                "dims": scene.room.dimensions,
                "rt60_requested": scene.room.rt60,
                "rt60_exact": round(rt60[0], 3),
                "rt60_hybrid": round(rt60[1], 3),
                "rt60_rel_error": round(rt60[1] / rt60[0] - 1, 4),
                "exact_rt60_vs_requested": round(rt60[0] / scene.room.rt60 - 1, 4),
                "identical_ms_after_direct": round(identical_ms, 1),
                "direct_direction_error_exact_deg": round(direction_errors[0], 2),
                "direct_direction_error_hybrid_deg": round(direction_errors[1], 2),
                "channel_ratio_error_db_YZX": np.round(ratios[1] - ratios[0], 2).tolist(),
                "w_energy_error_db": round(10 * np.log10(np.sum(hybrid[0] ** 2) / np.sum(exact[0] ** 2)), 2),
            }
        )
        row = rows[-1]
        print(
            f"{row['room']} {'x'.join(f'{d:.1f}' for d in row['dims'])} RT60 {row['rt60_requested']:.2f}: "
            f"T30 exact {row['rt60_exact']:.3f} hybrid {row['rt60_hybrid']:.3f} ({100 * row['rt60_rel_error']:+.1f}%), "
            f"identical {row['identical_ms_after_direct']:.1f} ms after direct, direction err "
            f"{row['direct_direction_error_exact_deg']:.2f}/{row['direct_direction_error_hybrid_deg']:.2f} deg, "
            f"YZX ratio err {row['channel_ratio_error_db_YZX']} dB, W energy {row['w_energy_error_db']:+.2f} dB",
            flush=True,
        )

    def stats(values) -> dict[str, float]:
        values = np.abs(np.asarray(values, dtype=float))
        return {"median": round(float(np.median(values)), 3), "p90": round(float(np.percentile(values, 90)), 3),
                "max": round(float(values.max()), 3)}  # fmt: skip

    summary = {
        "scenes": len(rows),
        "rt60_hybrid_vs_exact_rel": stats([r["rt60_rel_error"] for r in rows]),
        "rt60_exact_vs_requested_rel": stats([r["exact_rt60_vs_requested"] for r in rows]),
        "direct_direction_error_deg_hybrid": stats([r["direct_direction_error_hybrid_deg"] for r in rows]),
        "direct_direction_error_deg_exact": stats([r["direct_direction_error_exact_deg"] for r in rows]),
        "identical_ms_after_direct_min": min(r["identical_ms_after_direct"] for r in rows),
        "channel_ratio_error_db": stats([v for r in rows for v in r["channel_ratio_error_db_YZX"]]),
        "w_energy_error_db": stats([r["w_energy_error_db"] for r in rows]),
    }
    print("summary (absolute errors):")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    print(json.dumps({"benchmark": "hybrid_vs_exact", **summary}))


if __name__ == "__main__":
    main()
