"""Steps per second of each curriculum stage with the tiny CPU presets, with and without the audio embedding cache.

Simulates a small dataset and its questions, then runs every stage for `--steps` optimiser steps from the
packaged `tiny` preset (batch sizes as in the presets) and prints a table and a JSON line. The language stages
(align, sft, grpo) run twice from the same starting model, side by side: computing the frozen encoders every step,
and reading their outputs from an embedding cache (built before the timed steps; its cost is printed apart). The
first `--warmup` steps are excluded from the rates (model loading, first-batch costs). Beside the wall-clock rates
it reports the process's CPU seconds per step, which stay meaningful on a machine shared with other jobs (pin one
thread, `OMP_NUM_THREADS=1`, to compare those alone).

    python scripts/bench_training.py --steps 20 --out runs/bench_training
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from transformers import TrainerCallback

from hf_spatial.data.simulate import simulate
from hf_spatial.env import cpu_model
from hf_spatial.tasks.dataset import build_question_dataset
from hf_spatial.training.stages import load_config, run_stage


class StepClock(TrainerCallback):
    """Wall-clock and process CPU time at the end of each optimiser step."""

    def __init__(self):
        self.times: list[float] = []
        self.cpu_times: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.monotonic())
        self.cpu_times.append(time.process_time())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench_training")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="scene length in seconds (the demo's: 5)")
    parser.add_argument("--start", default="tiny", help="model the encoder stage starts from (e.g. a demo's "
                        "OUT/stages/initial: pretrained Whisper, 5-s window)")  # fmt: skip
    parser.add_argument("--lora_r", default=None, help="sft/grpo LoRA rank (0: the whole language model, as the demo)")
    args = parser.parse_args()
    out = Path(args.out)
    simulate(out / "scenes", 64, split="train", workers=2, duration=args.duration)
    simulate(out / "scenes", 16, seed=1, split="test", workers=2, duration=args.duration)
    if not (out / "questions").is_dir():
        build_question_dataset(out / "scenes", out / "questions")

    clock = StepClock()
    previous, rows = args.start, {}
    for stage, data in (("encoder", "scenes"), ("align", "scenes"), ("sft", "questions"), ("grpo", "questions")):
        variants = ("features",) if stage == "encoder" else ("features", "cache")
        for variant in variants:
            clock.times.clear()
            clock.cpu_times.clear()
            overrides = [
                "--model_name_or_path", previous, "--dataset_dir", str(out / data),
                "--output_dir", str(out / f"{stage}-{variant}"), "--max_steps", str(args.steps),
                "--save_strategy", "no", "--eval_split", "none", "--report_to", "none",
            ]  # fmt: skip
            if variant == "cache":
                overrides += ["--embedding_cache", str(out / "embedding_cache")]
            if args.lora_r is not None and stage in ("sft", "grpo"):
                overrides += ["--lora_r", args.lora_r]
            config = load_config(stage, "tiny", overrides)
            began = time.monotonic()
            run_stage(stage, "tiny", overrides, callbacks=[clock])
            timed = clock.times[args.warmup - 1 :]
            row = rows.setdefault(stage, {"batch_size": config.per_device_train_batch_size})
            row[f"{variant}_steps_per_second"] = round((len(timed) - 1) / (timed[-1] - timed[0]), 3)
            cpu = clock.cpu_times[args.warmup - 1 :]
            row[f"{variant}_cpu_seconds_per_step"] = round((cpu[-1] - cpu[0]) / (len(cpu) - 1), 4)
            # what the stage spent before its first step (loading; with the cache: embedding the clips it lacked)
            row[f"{variant}_setup_seconds"] = round(clock.times[0] - began, 1)
            if stage == "grpo":
                row["num_generations"] = config.num_generations
                row["max_completion_length"] = config.max_completion_length
        if "cache_steps_per_second" in row:
            row["speedup"] = round(row["cache_steps_per_second"] / row["features_steps_per_second"], 2)
            row["cpu_speedup"] = round(row["features_cpu_seconds_per_step"] / row["cache_cpu_seconds_per_step"], 2)
        previous = str(out / f"{stage}-features")
    cpu = cpu_model()
    print(f"CPU: {cpu}")
    print("| stage | batch | steps/s (encoders every step) | steps/s (embedding cache) | speedup "
          "| CPU s/step (encoders) | CPU s/step (cache) | CPU speedup |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for stage, row in rows.items():
        print(f"| {stage} | {row['batch_size']} | {row['features_steps_per_second']} | "
              f"{row.get('cache_steps_per_second', '-')} | {row.get('speedup', '-')} | "
              f"{row['features_cpu_seconds_per_step']} | {row.get('cache_cpu_seconds_per_step', '-')} | "
              f"{row.get('cpu_speedup', '-')} |")  # fmt: skip
    print(json.dumps({"cpu": cpu, "stages": rows}))


if __name__ == "__main__":
    main()
