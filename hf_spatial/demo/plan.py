"""The demo's plan: data sizes for this machine, and wall-clock budgets that make `--minutes` hold on any CPU.

Machines of one kind differ by several times in speed, so nothing is planned in steps. A short probe (a few
training steps of the tiny language model and FOA feature extraction, the demo's two kinds of work) measures how
much slower this machine is than the reference one the rates below were measured on; the data sizes and the time
kept for evaluation scale with it. The training stages then share whatever time is left, by wall clock: each stage
is given its share of the time remaining when it starts (`stage_budget`), so a slow simulation or a slow stage
shortens the stages after it instead of overrunning the deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hf_spatial.conventions import SAMPLE_RATE

# The stages' shares of the training time. Two thirds go to the two SFT parts (the language model's reading of the
# audio tokens is what the time buys); the encoder stage gets enough to learn directions, align the captions.
STAGE_SHARES = {"encoder": 0.10, "align": 0.04, "perception": 0.26, "sft": 0.52, "grpo": 0.08}
# Rates of the reference machine (AMD EPYC with AVX-512, 2 free cores; see the #15 note), per unit of `slowdown`:
REFERENCE_PROBE_SECONDS = 0.35  # `probe_seconds()`
SIMULATION_SECONDS_PER_SCENE = 0.075  # training scenes, their questions and the benchmark, with 2 workers
EMBEDDING_SECONDS_PER_SCENE = 0.075  # keying and embedding a training scene's clip (the first language stage)
EVALUATION_SECONDS_PER_ITEM = 0.26  # a headline item: the model in 4 conditions and after SFT in 2, the cascade,
# the encoder readout, the encoder's metrics, the baselines, and as many of the model's training questions
WHOLE_BENCHMARK_SECONDS_PER_ITEM = 0.05  # an item of the all-task benchmark: the model in 4 conditions
STAGE_OVERHEAD_SECONDS = 20.0  # per stage: loading, making its rows, saving (outside its training budget)
FIXED_SECONDS = 30.0  # imports, the probe, the report
MAX_STEPS = 1_000_000  # the stages' step cap when their wall-clock budget decides
# Shares of a `--minutes` run: the training scenes (simulated, asked about, embedded once), the headline
# benchmark's evaluation and the whole benchmark's. The tiny model fits its training clips better than it hears new
# ones; since its steps got cheaper (the SFT loss scores only answer positions), more scenes for fewer steps narrow
# that gap and score higher (the #16 note).
TRAINING_DATA_SHARE = 0.30
HEADLINE_EVALUATION_SHARE = 0.14
WHOLE_EVALUATION_SHARE = 0.025


@dataclass(frozen=True)
class DemoPlan:
    """What the demo does: data sizes, and for each stage a step cap and (for a `--minutes` run) its share of the
    wall-clock time. `slowdown` is this machine's probe time over the reference machine's."""

    train_scenes: int
    benchmark_items: int  # the headline benchmark (the trained L1+L2 direction/relation tasks)
    whole_benchmark_items: int  # the whole benchmark: all tasks, in TWNM's level proportions
    duration: float
    encoder_steps: int
    align_steps: int
    perception_steps: int
    sft_steps: int
    grpo_steps: int
    budget_seconds: float | None = None  # the whole run's wall-clock budget; None: the step counts decide
    slowdown: float = 1.0
    batch_size: int = 8
    seed: int = 0
    fine_tune_encoder: bool = False  # run the encoder stage on the shipped spatial encoder, else keep it frozen

    @classmethod
    def for_minutes(cls, minutes: float, slowdown: float = 1.0, fine_tune_encoder: bool = False) -> DemoPlan:
        """Sizes for a run of `minutes` on a machine `slowdown` times slower than the reference: about a third of
        the time for the data, a sixth for evaluation (most of it on the headline tasks), the rest for training."""
        if minutes < 2:
            raise ValueError(f"--minutes must be at least 2 (or use --smallest), got {minutes}.")
        seconds = 60.0 * minutes - FIXED_SECONDS
        per_scene = (SIMULATION_SECONDS_PER_SCENE + EMBEDDING_SECONDS_PER_SCENE) * slowdown
        per_item = EVALUATION_SECONDS_PER_ITEM * slowdown
        return cls(
            train_scenes=max(16, int(TRAINING_DATA_SHARE * seconds / per_scene)),
            benchmark_items=max(24, int(HEADLINE_EVALUATION_SHARE * seconds / per_item)),
            whole_benchmark_items=max(
                36, int(WHOLE_EVALUATION_SHARE * seconds / (WHOLE_BENCHMARK_SECONDS_PER_ITEM * slowdown))
            ),
            duration=5.0,
            encoder_steps=MAX_STEPS,
            align_steps=MAX_STEPS,
            perception_steps=MAX_STEPS,
            sft_steps=MAX_STEPS,
            grpo_steps=MAX_STEPS,
            budget_seconds=60.0 * minutes,
            slowdown=round(slowdown, 3),
            fine_tune_encoder=fine_tune_encoder,
        )

    @classmethod
    def smallest(cls, fine_tune_encoder: bool = False) -> DemoPlan:
        """About a minute: every step runs a fixed few steps on a few short scenes (what the tests run)."""
        return cls(
            train_scenes=8,
            benchmark_items=8,
            whole_benchmark_items=12,
            duration=1.0,
            encoder_steps=2,
            align_steps=1,
            perception_steps=1,
            sft_steps=2,
            grpo_steps=1,
            batch_size=4,
            fine_tune_encoder=fine_tune_encoder,
        )

    def evaluation_seconds(self) -> float:
        """The time kept after training for the evaluation steps."""
        items = EVALUATION_SECONDS_PER_ITEM * self.benchmark_items
        return self.slowdown * (items + WHOLE_BENCHMARK_SECONDS_PER_ITEM * self.whole_benchmark_items)

    def stage_budget(self, stage: str, seconds_left: float, stages_left: list[str]) -> float | None:
        """Wall-clock training budget of `stage` when `seconds_left` of the run remain and `stages_left` (this one
        first) are still to train: its share of what remains after evaluation and the stages' own overheads."""
        if self.budget_seconds is None:
            return None
        overheads = STAGE_OVERHEAD_SECONDS * self.slowdown * len(stages_left)
        training = seconds_left - self.evaluation_seconds() - overheads
        share = STAGE_SHARES[stage] / sum(STAGE_SHARES[name] for name in stages_left)
        return max(5.0, training * share)


def probe_seconds(steps: int = 6) -> float:
    """Seconds this machine takes for a fixed sample of the demo's work: training steps of the tiny model's
    language model on a batch of the demo's size, and FOA feature extraction of 5-s clips."""
    import numpy as np
    import torch

    from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio

    model, processor = build_tiny_spatial_qwen_audio(seed=0, window_seconds=5)
    language_model = model.model.language_model
    optimizer = torch.optim.AdamW(language_model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    embeds = torch.randn(8, 300, model.config.text_config.hidden_size, generator=generator)
    clips = list(np.random.default_rng(0).standard_normal((8, 4, 5 * SAMPLE_RATE)).astype(np.float32) * 0.1)
    began = time.perf_counter()
    for _ in range(steps):
        loss = language_model(inputs_embeds=embeds).last_hidden_state.square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    processor.feature_extractor(clips, sampling_rate=SAMPLE_RATE)
    return time.perf_counter() - began


def measure_slowdown() -> float:
    """This machine's probe time over the reference machine's (the best of two runs, after a warm-up)."""
    probe_seconds(steps=1)
    return min(8.0, max(0.25, min(probe_seconds(), probe_seconds()) / REFERENCE_PROBE_SECONDS))
