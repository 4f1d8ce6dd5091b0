"""Steps per second of each curriculum stage with the tiny CPU presets.

Simulates a small dataset and its questions, then runs every stage for `--steps` optimiser steps from the
packaged `tiny` preset (batch sizes as in the presets) and prints a table and a JSON line. The first
`--warmup` steps are excluded from the rate (model loading, first-batch costs).

    python scripts/bench_training.py --steps 20 --out runs/bench_training
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from transformers import TrainerCallback

from hf_spatial.data.simulate import simulate
from hf_spatial.tasks.dataset import build_question_dataset
from hf_spatial.training.stages import load_config, run_stage


class StepClock(TrainerCallback):
    """Wall-clock time of each optimiser step."""

    def __init__(self):
        self.times: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.monotonic())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench_training")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    out = Path(args.out)
    simulate(out / "scenes", 64, split="train", workers=2)
    simulate(out / "scenes", 16, seed=1, split="test", workers=2)
    if not (out / "questions").is_dir():
        build_question_dataset(out / "scenes", out / "questions")

    clock = StepClock()
    previous, rows = "tiny", {}
    for stage, data in (("encoder", "scenes"), ("align", "scenes"), ("sft", "questions"), ("grpo", "questions")):
        clock.times.clear()
        overrides = [
            "--model_name_or_path", previous, "--dataset_dir", str(out / data), "--output_dir", str(out / stage),
            "--max_steps", str(args.steps), "--save_strategy", "no", "--eval_strategy", "no", "--report_to", "none",
        ]  # fmt: skip
        config = load_config(stage, "tiny", overrides)
        run_stage(stage, "tiny", overrides, callbacks=[clock])
        timed = clock.times[args.warmup - 1 :]
        rows[stage] = {
            "steps_per_second": round((len(timed) - 1) / (timed[-1] - timed[0]), 3),
            "batch_size": config.per_device_train_batch_size,
        }
        if stage == "grpo":
            rows[stage]["num_generations"] = config.num_generations
            rows[stage]["max_completion_length"] = config.max_completion_length
        previous = str(out / stage)
    print("| stage | batch | steps/s |")
    print("|---|---|---|")
    for stage, row in rows.items():
        print(f"| {stage} | {row['batch_size']} | {row['steps_per_second']} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
