"""Spatial encoders vs classical direction finding on held-out scenes: the shipped pretrained encoder, and a fresh run
of the encoder stage's recipe after a fixed CPU budget.

Simulates a training and a test split (test rooms and clips are disjoint; or reads an `hf-spatial simulate` folder
given by `--scenes`), evaluates pretrained encoders side by side (`--encoder`, default `shipped`), trains the encoder
stage from scratch for `--minutes` of wall time (the packaged `tiny` preset, or `--config`; extra `--field value`
arguments override it, as for `hf-spatial train`), and compares per-source direction errors on the same test scenes:
each encoder decoded by its slots (the `k` most present, `k` the true source count) and by its dense ACCDOA map (the
`k` most active classes; an encoder whose config refines its slots' directions, `spatial_direction_refinement`,
with and without; a fresh run trained without it, also decoded with the shipped encoder's setting), and the
active-intensity estimator; all are told the source count and matched to the sources by the Hungarian algorithm (a
localisation error). Each encoder's class-aware DCASE 2024 and 2023 SELD metrics
(detections from its slots, no ground truth) follow. Targets (issue #18): one source median <= 5 deg; two sources both
within 20 deg in >= 80% of scenes; all sources median a third below the classical estimator's; F20 >= 0.5.

    python scripts/bench_encoder.py --minutes 10 --train-scenes 2000 --test-scenes 200 --out runs/bench_encoder
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from hf_spatial.acoustics.intensity import estimate_directions
from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import SAMPLE_RATE, TOKEN_RATE_HZ, angular_distance, cartesian_to_spherical
from hf_spatial.data import read_foa
from hf_spatial.data.dcase_csv import write_dcase_csv
from hf_spatial.data.folders import load_folder
from hf_spatial.data.simulate import simulate
from hf_spatial.evaluation.baselines import match_directions
from hf_spatial.models.spatial_encoders import SHIPPED_SPATIAL_ENCODER, spatial_encoder_config
from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio
from hf_spatial.seld.labels import predicted_labels, reference_labels
from hf_spatial.seld.metrics import evaluate_csv_folders
from hf_spatial.tasks.scoring import wilson_interval
from hf_spatial.training.common import dataset_labels
from hf_spatial.training.encoder import SeldCollator, SpatialEncoderTrainer
from hf_spatial.training.stages import load_config


class StopAfter(TrainerCallback):
    """Stop training after a wall-clock budget."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = time.monotonic() > self.deadline
        return control


def encoder_directions(outputs, scenes: list[SceneSpec]) -> dict[str, list[list[tuple[float, float]]]]:
    """Per scene, k = the scene's true source count: `slots`, the directions of the k most present slots;
    `accdoa`, of the k classes with the most ACCDOA activity (the summed norm of their vectors over tokens; the
    class-wise decoding of DCASE's ACCDOA systems), each the direction of its summed vectors."""
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


def with_direction_refinement(model, concentrations: list[float]):
    """`model` with its slots' directions refined with `concentrations` (`[]`: not refined): the same weights, as the
    refinement has none."""
    config = copy.deepcopy(model.config)
    config.spatial_direction_refinement = list(concentrations)
    twin = type(model)(config)
    twin.load_state_dict(model.state_dict())
    return twin.eval()


def shipped_refinement() -> list[float]:
    return spatial_encoder_config(SHIPPED_SPATIAL_ENCODER)["encoder"]["spatial_direction_refinement"]


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
        "two_sources_wilson95": list(wilson_interval(sum(two), len(two))) if two else None,
        "all_sources_median_deg": float(np.median(every)),
        "scenes_one_two_three": [sum(n == k for n, _ in per_scene) for k in (1, 2, 3)],
    }


def evaluate_encoder(model, extractor, test, out: Path) -> dict[str, dict]:
    """Direction errors (slots, ACCDOA) and DCASE 2024 / 2023 SELD metrics of `model`'s encoder on `test`."""
    model.eval()
    class_names = list(model.config.spatial_class_names)
    per_estimator = {"slots": [], "accdoa": []}
    for begin in range(0, len(test), 16):
        rows = [test[i] for i in range(begin, min(begin + 16, len(test)))]
        scenes = [SceneSpec.from_json(row["scene"]) for row in rows]
        features = extractor.extract_spatial([read_foa(row["audio"]) for row in rows], SAMPLE_RATE, return_tensors="pt")
        with torch.inference_mode():
            outputs = model.get_spatial_outputs(features["spatial_features"], features["spatial_attention_mask"])
        for name, estimates in encoder_directions(outputs, scenes).items():
            per_estimator[name] += [(len(s.sources), errors(s, e)) for s, e in zip(scenes, estimates, strict=True)]
        for i, scene in enumerate(scenes):
            references = reference_labels(scene, class_names)
            write_dcase_csv(out / "ref" / f"{scene.scene_id}.csv", references, distance_unit="cm")
            write_dcase_csv(out / "pred" / f"{scene.scene_id}.csv", predicted_labels(outputs, i, TOKEN_RATE_HZ))
    seld = {}
    for edition in (2024, 2023):
        metrics = evaluate_csv_folders(
            out / "ref", out / "pred", edition=edition, num_classes=len(class_names), class_names=class_names,
            report_path=out / f"seld_metrics_{edition}.md",
        )["metrics"]  # fmt: skip
        seld[str(edition)] = {key: value for key, value in metrics.items() if key != "per_class"}
    return {"slots": summary(per_estimator["slots"]), "accdoa": summary(per_estimator["accdoa"]), "seld": seld}


def classical(test) -> dict[str, float]:
    per_scene = []
    for index in range(len(test)):
        row = test[index]
        scene = SceneSpec.from_json(row["scene"])
        estimate = estimate_directions(read_foa(row["audio"]), scene.sample_rate, num_sources=len(scene.sources))
        per_scene.append((len(scene.sources), errors(scene, estimate)))
    return summary(per_scene)


def train_fresh(train, args, overrides: list[str], out: Path):
    """The encoder stage's recipe (preset + overrides) on a new tiny model, stopped after `args.minutes`."""
    config = load_config(
        "encoder",
        args.config,
        ["--dataset_dir", "unused", "--output_dir", str(out), "--max_steps", "1000000", "--save_strategy", "no",
         "--eval_strategy", "no", "--lr_scheduler_type", "constant_with_warmup", "--logging_steps", "50",
         "--disable_tqdm", "true", *overrides],
    )  # fmt: skip
    model, processor = build_tiny_spatial_qwen_audio(
        class_names=dataset_labels(train),
        spatial_encoder_name_or_path=config.spatial_encoder_name_or_path,
        **json.loads(args.spatial_config),
    )
    model.train()
    collator = SeldCollator(
        processor.feature_extractor, model.config.spatial_class_names, model.config.spatial_num_slots,
        augmentation=config.augmentation,
    )  # fmt: skip
    trainer = SpatialEncoderTrainer(
        model, config, train_dataset=train, data_collator=collator, callbacks=[StopAfter(args.minutes * 60)]
    )
    start = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - start
    record = {
        "train_seconds": round(seconds, 1),
        "steps": trainer.state.global_step,
        "steps_per_second": round(trainer.state.global_step / seconds, 2),
        "batch_size": config.per_device_train_batch_size,
        "augmentation": config.augmentation,
        "parameters": sum(p.numel() for p in model.model.spatial_encoder.parameters()),
    }
    return model, processor.feature_extractor, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench_encoder")
    parser.add_argument(
        "--scenes",
        default=None,
        help="an `hf-spatial simulate` folder with a test split (and a train split for a fresh run)",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="the fresh run's training budget (0: no run)")
    parser.add_argument("--train-scenes", type=int, default=2000)
    parser.add_argument("--test-scenes", type=int, default=200)
    parser.add_argument("--sources", default="procedural")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", default="tiny", help="encoder stage YAML for the fresh run (default: preset)")
    parser.add_argument("--spatial-config", default="{}", help="JSON of spatial config fields for the fresh model")
    parser.add_argument(
        "--encoder",
        nargs="+",
        default=["shipped"],
        help="pretrained encoders to evaluate side by side: `shipped` or encoder folders (`none`: skip)",
    )
    args, overrides = parser.parse_known_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    scenes_dir = Path(args.scenes) if args.scenes else out / "scenes"
    if args.scenes is None:
        simulate(scenes_dir, args.train_scenes, split="train", sources=args.sources, workers=args.workers)
        simulate(scenes_dir, args.test_scenes, seed=1, split="test", sources=args.sources, workers=args.workers)
    test = load_folder(scenes_dir, "test")
    test = test.select(range(min(args.test_scenes, len(test))))

    generation = json.loads((scenes_dir / "generation" / "test.json").read_text(encoding="utf-8"))
    result = {
        "test_scenes": len(test),
        "scenes": str(scenes_dir),
        "sources": generation["parameters"]["sources"],
        "intensity": classical(test),
    }
    for encoder in [name for name in args.encoder if name != "none"]:
        label = Path(encoder).name
        model, processor = build_tiny_spatial_qwen_audio(spatial_encoder_name_or_path=encoder)
        result[f"encoder {label}"] = evaluate_encoder(model, processor.feature_extractor, test, out / label)
        if model.config.spatial_direction_refinement:  # what the refinement adds: the same weights without it
            result[f"encoder {label} unrefined"] = evaluate_encoder(
                with_direction_refinement(model, []), processor.feature_extractor, test, out / f"{label}_unrefined"
            )
    if args.minutes > 0:  # only a fresh run needs the train split
        model, extractor, record = train_fresh(load_folder(scenes_dir, "train"), args, overrides, out / "fresh")
        result["fresh"] = {**record, **evaluate_encoder(model, extractor, test, out / "fresh")}
        if not model.config.spatial_direction_refinement:  # trained without it; decoded with the shipped setting
            refined = with_direction_refinement(model, shipped_refinement())
            result["fresh refined"] = {**record, **evaluate_encoder(refined, extractor, test, out / "fresh_refined")}

    table = "\n".join(table_lines(result))
    print(table)
    print(json.dumps(result))
    (out / "table.md").write_text(table + "\n", encoding="utf-8")
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def table_lines(result: dict) -> list[str]:
    """The markdown table of a bench result: each estimator's direction errors, and each encoder's DCASE 2024 F20,
    DOAE and LR (of its slots)."""
    lines = [
        "| estimator | 1 source median (p90) | 2 sources both <= 20 deg [95% CI] | all sources median | F20 | DOAE "
        "| LR |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = [("active intensity (classical, no ground truth)", result["intensity"], None)]
    for name in [key for key in result if key.startswith(("encoder", "fresh"))]:
        seld = result[name]["seld"]["2024"]
        label = f"fresh run ({result[name]['steps']} steps){name[5:]}" if name.startswith("fresh") else name
        rows += [(f"{label}, slots", result[name]["slots"], seld), (f"{label}, ACCDOA", result[name]["accdoa"], None)]
    for label, s, seld in rows:
        low, high = s["two_sources_wilson95"]
        dcase = " | | |"
        if seld is not None:
            doa = "n/a" if seld["doa_error"] is None else f"{seld['doa_error']:.1f} deg"
            dcase = f" {seld['f_score']:.3f} | {doa} | {seld['localization_recall']:.3f} |"
        lines.append(
            f"| {label} | {s['one_source_median_deg']:.1f} ({s['one_source_p90_deg']:.1f}) deg | "
            f"{100 * s['two_sources_both_within_20deg']:.0f}% [{100 * low:.0f}, {100 * high:.0f}] | "
            f"{s['all_sources_median_deg']:.1f} deg |{dcase}"
        )
    one, two, three = result["intensity"]["scenes_one_two_three"]
    lines += [
        "",
        f"{result['test_scenes']} held-out scenes of `{result['sources']}` sources (one, two, three sources: {one}, "
        f"{two}, {three}).",
    ]
    return lines


if __name__ == "__main__":
    main()
