"""What the demo trains and scores (tasks, stages, conditions), its defaults, and where each output lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The L1 + L2 tasks whose answer is a direction or a directional relation (`TaskSpec.uses_direction`), minus
# elevation and angular separation (fine angles that a tiny model cannot resolve in minutes) and identity-location-
# distance binding (its distance half can be heard in mono). Trained and scored.
DEMO_TASKS = (
    "l1_direction_sector",
    "l1_azimuth",
    "l2_relative_direction_between_objects",
    "l2_source_at_direction",
)

# The SFT curriculum's first step, atomic perception: the one question whose answer is a direction alone. Before the
# full mix, it teaches the random language model to read the spatial tokens: trained on the mix from the start, it
# kept its text prior on every task (full = mono after 900 steps), while 450 steps on this task first gave it
# 45-56% on it (mono 28%) and carried over to the mix.
PERCEPTION_TASKS = ("l1_direction_sector",)

# The demo's curriculum, each stage starting from the previous one's model (`perception` is an `sft` run on
# PERCEPTION_TASKS before the `sft` run on all of DEMO_TASKS). The encoder stage runs only with `--fine-tune-encoder`:
# by default the shipped spatial encoder, pretrained on the demo's sound classes, stays frozen (`demo_stages`).
DEMO_STAGES = ("encoder", "align", "perception", "sft", "grpo")

# Conditions the model is evaluated under (see `hf_spatial.evaluation.controls`).
MODEL_CONDITIONS = ("full", "no_audio", "mono", "spatial_zeroed")

# The SFT model (before GRPO) is scored on the headline benchmark in these: what RL adds, with its mono control.
AFTER_SFT_CONDITIONS = ("full", "mono")

DEFAULT_MINUTES = 13.0  # + about a minute of installation: the README's first command in <= 15 min on 2 cores

SOURCES_CHOICES = ("auto", "procedural", "debian")

PLAN_FILE = "demo_plan.json"

STATE_FILE = "demo_state.json"

DEMO_RESULTS_FILE = "demo_results.json"

REPORT_FILE = "demo_report.md"

MODEL_RECORD = "demo_model.json"  # in the initial model's folder: which model the demo trains, and why


@dataclass
class DemoPaths:
    """Where each output of the demo lives under `out`."""

    out: Path

    @property
    def scenes(self) -> Path:
        return self.out / "data" / "scenes"

    @property
    def questions(self) -> Path:
        return self.out / "data" / "questions"

    @property
    def benchmark(self) -> Path:
        return self.out / "data" / "benchmark"

    @property
    def whole_benchmark(self) -> Path:
        return self.out / "data" / "benchmark_all_tasks"

    def stage(self, name: str) -> Path:
        return self.out / "model" if name == "grpo" else self.out / "stages" / name

    @property
    def initial_model(self) -> Path:
        return self.out / "stages" / "initial"

    @property
    def embeddings(self) -> Path:
        return self.out / "embeddings"

    @property
    def datasets_cache(self) -> Path:
        return self.out / "cache" / "datasets"

    @property
    def model(self) -> Path:
        return self.stage("grpo")

    @property
    def eval_model(self) -> Path:
        return self.out / "eval" / "model"

    @property
    def eval_after_sft(self) -> Path:
        return self.out / "eval" / "model_after_sft"

    @property
    def eval_training_questions(self) -> Path:
        return self.out / "eval" / "model_training_questions"

    @property
    def eval_whole(self) -> Path:
        return self.out / "eval" / "model_all_tasks"

    @property
    def eval_intensity(self) -> Path:
        return self.out / "eval" / "intensity"

    @property
    def eval_intensity_oracle(self) -> Path:
        return self.out / "eval" / "intensity_oracle"

    @property
    def eval_cascade(self) -> Path:
        return self.out / "eval" / "cascade"

    @property
    def eval_readout(self) -> Path:
        return self.out / "eval" / "encoder_readout"

    @property
    def eval_encoder(self) -> Path:
        return self.out / "eval" / "encoder"
