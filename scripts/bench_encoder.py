"""Spatial encoder vs classical direction finding on held-out scenes, after a fixed CPU training budget.

Simulates a training and a test split (test rooms and clips are disjoint), trains the tiny encoder stage for
`--minutes` of wall time, then compares per-source direction errors of the encoder (its slots, and its dense
ACCDOA map decoded class-wise) and of the active-intensity estimator on the same test scenes, all given the true
source count and matched to the sources by the Hungarian algorithm. Targets (DESIGN.md section 9): one source,
median error <= 5 deg; two sources, both within 20 deg in >= 90% of scenes.

    python scripts/bench_encoder.py --minutes 10 --train-scenes 2000 --test-scenes 200 --out runs/bench_encoder
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from hf_spatial.acoustics.intensity import estimate_directions
from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import angular_distance, cartesian_to_spherical
from hf_spatial.data import read_foa
from hf_spatial.data.folders import load_folder
from hf_spatial.data.simulate import simulate
from hf_spatial.evaluation.baselines import match_directions
from hf_spatial.training.common import dataset_labels, load_model_and_processor
from hf_spatial.training.encoder import SeldCollator, SpatialEncoderTrainer
from hf_spatial.training.stages import load_config


class StopAfter(TrainerCallback):
    """Stop training after a wall-clock budget."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = time.monotonic() > self.deadline
        return control


def encoder_directions(model, extractor, rows) -> dict[str, list[list[tuple[float, float]]]]:
    """Per scene, k = the scene's true source count: `slots`, the directions of the k most present slots;
    `accdoa`, of the k classes with the most ACCDOA activity (the summed norm of their vectors over tokens; the
    class-wise decoding of DCASE's ACCDOA systems), each the direction of its summed vectors."""
    scenes = [SceneSpec.from_json(row["scene"]) for row in rows]
    features = extractor([read_foa(row["audio"]) for row in rows], sampling_rate=24000, return_tensors="pt")
    with torch.inference_mode():
        outputs = model.get_spatial_outputs(features["spatial_features"], features["spatial_attention_mask"])
    estimates = {"slots": [], "accdoa": []}
    for i, scene in enumerate(scenes):
        k = len(scene.sources)
        order = torch.argsort(outputs.slot_presence_logits[i], descending=True)[:k]
        accdoa = outputs.token_accdoa[i, outputs.attention_mask[i].bool()]  # (tokens, classes, 3)
        classes = torch.argsort(accdoa.norm(dim=-1).sum(0), descending=True)[:k]
        for name, vectors in (("slots", outputs.slot_direction[i, order]), ("accdoa", accdoa[:, classes].sum(0))):
            az, el, _ = cartesian_to_spherical(vectors.numpy().astype(np.float64))
            estimates[name].append(list(zip(np.atleast_1d(az).tolist(), np.atleast_1d(el).tolist(), strict=True)))
    return estimates


def errors(scene: SceneSpec, estimates) -> list[float]:
    matched = match_directions(scene, estimates)
    return [float(angular_distance(s.azimuth, s.elevation, *m)) for s, m in zip(scene.sources, matched, strict=True)]


def summary(per_scene: list[tuple[int, list[float]]]) -> dict[str, float]:
    one = [e[0] for n, e in per_scene if n == 1]
    two = [max(e) <= 20 for n, e in per_scene if n == 2]
    every = [x for _, e in per_scene for x in e]
    return {
        "one_source_median_deg": float(np.median(one)) if one else float("nan"),
        "one_source_p90_deg": float(np.percentile(one, 90)) if one else float("nan"),
        "two_sources_both_within_20deg": float(np.mean(two)) if two else float("nan"),
        "all_sources_median_deg": float(np.median(every)),
        "scenes_one_two_three": [sum(n == k for n, _ in per_scene) for k in (1, 2, 3)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench_encoder")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--train-scenes", type=int, default=2000)
    parser.add_argument("--test-scenes", type=int, default=200)
    parser.add_argument("--sources", default="procedural")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    scenes_dir = out / "scenes"
    simulate(scenes_dir, args.train_scenes, split="train", sources=args.sources, workers=args.workers)
    simulate(scenes_dir, args.test_scenes, seed=1, split="test", sources=args.sources, workers=args.workers)

    train, test = load_folder(scenes_dir, "train"), load_folder(scenes_dir, "test")
    config = load_config(
        "encoder",
        "tiny",
        ["--dataset_dir", str(scenes_dir), "--output_dir", str(out / "encoder"), "--max_steps", "1000000",
         "--per_device_train_batch_size", str(args.batch_size), "--save_strategy", "no", "--eval_strategy", "no",
         "--lr_scheduler_type", "constant_with_warmup", "--logging_steps", "50"],
    )  # fmt: skip
    model, processor = load_model_and_processor("tiny", class_names=dataset_labels(train))
    collator = SeldCollator(processor.feature_extractor, model.config.spatial_class_names, 3)
    trainer = SpatialEncoderTrainer(
        model, config, train_dataset=train, data_collator=collator, callbacks=[StopAfter(args.minutes * 60)]
    )
    start = time.monotonic()
    trainer.train()
    train_seconds = time.monotonic() - start
    model.eval()

    per_estimator = {"encoder slots": [], "encoder ACCDOA": [], "intensity": []}
    for begin in range(0, len(test), 16):
        rows = [test[i] for i in range(begin, min(begin + 16, len(test)))]
        estimates = encoder_directions(model, processor.feature_extractor, rows)
        for index, row in enumerate(rows):
            scene = SceneSpec.from_json(row["scene"])
            classical = estimate_directions(read_foa(row["audio"]), scene.sample_rate, num_sources=len(scene.sources))
            for name, estimate in (
                ("encoder slots", estimates["slots"][index]),
                ("encoder ACCDOA", estimates["accdoa"][index]),
                ("intensity", classical),
            ):
                per_estimator[name].append((len(scene.sources), errors(scene, estimate)))
    result = {
        "train_seconds": round(train_seconds, 1),
        "steps": trainer.state.global_step,
        "steps_per_second": round(trainer.state.global_step / train_seconds, 2),
        "batch_size": args.batch_size,
        "train_scenes": args.train_scenes,
        "test_scenes": len(test),
        **{name: summary(values) for name, values in per_estimator.items()},
    }
    print("| estimator | 1 source median (p90) | 2 sources both <= 20 deg | all sources median |")
    print("|---|---|---|---|")
    for name in per_estimator:
        s = result[name]
        print(
            f"| {name} | {s['one_source_median_deg']:.1f} ({s['one_source_p90_deg']:.1f}) deg | "
            f"{100 * s['two_sources_both_within_20deg']:.0f}% | {s['all_sources_median_deg']:.1f} deg |"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
