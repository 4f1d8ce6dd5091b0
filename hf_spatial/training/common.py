"""What every curriculum stage shares: loading the model and data, and finishing a run (save, record, publish)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import PartialState

from hf_spatial.conventions import SAMPLE_RATE
from hf_spatial.models.audio_cache import AudioEmbeddingCache, audio_encoders_frozen, embed_dataset
from hf_spatial.training.budget import TimeBudgetCallback
from hf_spatial.training.records import push_stage_output, record_training_stage

logger = logging.getLogger(__name__)

TINY_MODEL = "tiny"  # `model_name_or_path: tiny` builds the offline tiny SpatialQwenAudio


@dataclass
class StageDataArguments:
    """Where a stage starts from, what it reads, and where its result goes (shared by every stage config)."""

    model_name_or_path: str = field(default="tiny", metadata={"help": "Checkpoint to start from, or `tiny`."})
    dataset_dir: str | None = field(default=None, metadata={"help": "Simulated (encoder, align) or QA folder."})
    train_split: str = field(default="train", metadata={"help": "Split of `dataset_dir` to train on."})
    eval_split: str | None = field(default="test", metadata={"help": "Held-out split (None: no evaluation)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N held-out rows."})
    audio_sampling_rate: int = field(default=SAMPLE_RATE, metadata={"help": "Sampling rate of the decoded audio."})
    embedding_cache: str | None = field(
        default=None,
        metadata={
            "help": "Folder of cached audio-encoder outputs (`hf-spatial embed`): the stage embeds the clips it lacks "
            "once, then trains without running the frozen encoders. Entries sit in one subfolder per encoder "
            "fingerprint (weights + feature settings), so changed encoders never read stale numbers. Not for the "
            "encoder stage, which trains an encoder."
        },
    )
    max_train_seconds: float | None = field(
        default=None,
        metadata={
            "help": "Wall-clock budget of the training loop: stop after the step that spends it (or at max_steps, "
            "whichever comes first). A resumed run gets only the time left."
        },
    )
    decay_lr_by_time: bool = field(
        default=False,
        metadata={
            "help": "With max_train_seconds: also scale the learning rate linearly down to zero at the deadline (on "
            "top of lr_scheduler_type, whose steps cannot know when the clock stops the run): the budgeted-training "
            "schedule of Li et al. 2020, where a constant rate ends a run on noisy weights."
        },
    )
    publish_repo_id: str | None = field(
        default=None,
        metadata={
            "help": "After training, stage, validate and upload the output folder as this Hub model repo "
            "(as `hf-spatial publish model`: card, safetensors, remote code; no optimizer state)."
        },
    )


@dataclass
class QuestionTaskArguments:
    """Which of a question dataset's tasks a question stage (`sft`, `grpo`) trains on."""

    tasks: list[str] | None = field(
        default=None,
        metadata={"help": "Train (and evaluate) only on these tasks: names, or l1/l2/l3 for a level. Default: all."},
    )


def stage_callbacks(args: StageDataArguments, callbacks: list | None) -> list:
    """The caller's callbacks plus the time budget's, when the config sets `max_train_seconds`."""
    callbacks = list(callbacks or [])
    if args.max_train_seconds is not None:
        callbacks.append(TimeBudgetCallback(args.max_train_seconds, decay_lr=args.decay_lr_by_time))
    elif args.decay_lr_by_time:
        raise ValueError("decay_lr_by_time needs max_train_seconds (the deadline the learning rate decays to).")
    return callbacks


def prepare_embedding_cache(args: StageDataArguments, model, processor, splits: list) -> tuple[Any, list]:
    """With `args.embedding_cache`: open the model's cache, embed the clips of `splits` (datasets or None) that it
    lacks, and return it with the splits keyed by clip (their audio column dropped). Without: `(None, splits)`.

    In a multi-process run the main process embeds the missing clips while the others wait; they then find them all
    in the cache (each clip is computed and written once)."""
    if args.embedding_cache is None:
        return None, splits
    with PartialState().main_process_first():
        cache = AudioEmbeddingCache.for_model(args.embedding_cache, model, processor.feature_extractor)
        # Keyed rows need no audio: dropping it keeps the row mapping and every batch from copying the FLAC bytes.
        keyed = [
            split
            if split is None
            else embed_dataset(cache, model, processor.feature_extractor, split, keep_audio=False)
            for split in splits
        ]
    logger.info("audio embedding cache %s: %d clips", cache.folder, len(cache))
    return cache, keyed


def check_cache_allowed(model, embedding_cache) -> None:
    """A stage that trains an audio encoder cannot read its outputs from a cache (they change every step)."""
    if embedding_cache is not None and not audio_encoders_frozen(model):
        raise ValueError(
            "This stage trains an audio encoder, so its outputs cannot come from an embedding cache; unset "
            "embedding_cache (or freeze the encoders)."
        )


def keep_tasks(dataset, tasks: list[str] | None, where: str):
    """The rows of `dataset` whose `task` is one of `tasks` (names or level shorthands); all rows for None."""
    if tasks is None:
        return dataset
    from hf_spatial.tasks.registry import resolve_tasks

    wanted = set(resolve_tasks(tasks))
    kept = dataset.filter(lambda task: task in wanted, input_columns="task", desc="tasks")
    if len(kept) == 0:
        present = ", ".join(sorted(set(dataset["task"])))
        raise ValueError(f"{where} has no rows of the tasks {sorted(wanted)}; it has: {present}.")
    return kept


def load_stage_splits(args: StageDataArguments, kind: str, stage: str):
    """The stage's training and held-out splits, truncated to `max_*_samples`; `kind` is the folder kind the stage
    reads ("scenes" or "questions", see `hf_spatial.data.folders`)."""
    from hf_spatial.data.folders import load_folder

    def load(split: str, limit: int | None, hint: str):
        dataset = load_folder(args.dataset_dir, split, kind=kind, job=f"the {stage} stage", missing_split_hint=hint)
        return dataset.select(range(min(limit, len(dataset)))) if limit is not None else dataset

    train = load(args.train_split, args.max_train_samples, " Pass --train_split with one of these.")
    evaluation = None
    if args.eval_split:
        hint = " Pass --eval_split with one of these, or --eval_split none to train without a held-out split."
        evaluation = load(args.eval_split, args.max_eval_samples, hint)
    return train, evaluation


def load_model_and_processor(
    model_name_or_path: str,
    class_names: list[str] | None = None,
    spatial_encoder_name_or_path: str | None = None,
    **model_kwargs,
):
    """The stage's starting point: a checkpoint folder / Hub id, a Qwen2-Audio checkpoint, or `tiny`.

    `class_names` (the dataset's source labels) sizes the slot class head of a new tiny model, and
    `spatial_encoder_name_or_path` (a pretrained spatial encoder folder, `shipped` for the packaged one) gives it its
    spatial encoder; a checkpoint brings its own.
    """
    import hf_spatial  # noqa: F401  (registers the Auto classes)

    if model_name_or_path == TINY_MODEL:
        from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio

        model, processor = build_tiny_spatial_qwen_audio(
            class_names=class_names, spatial_encoder_name_or_path=spatial_encoder_name_or_path
        )
        return model.train(), processor
    if spatial_encoder_name_or_path is not None:
        raise ValueError(
            f"spatial_encoder_name_or_path applies to a new model (`tiny`); {model_name_or_path} has its own encoder."
        )
    from transformers import AutoModelForMultimodalLM, AutoProcessor

    model = AutoModelForMultimodalLM.from_pretrained(model_name_or_path, **model_kwargs)
    processor = AutoProcessor.from_pretrained(model_name_or_path)
    return model, processor


def dataset_labels(dataset) -> list[str]:
    """Sorted source labels present in a simulated split (its `labels` column)."""
    return sorted({label for labels in dataset["labels"] for label in labels})


def logged_metrics(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """The newest value of every metric in a trainer's `log_history`. The closing summary (`train_runtime`, mean
    loss) adds its own keys but does not replace the last periodic log's: TRL's GRPO flushes into it the metrics of
    the few steps since that log (one or two when a time budget stops the stage), too few to stand for the stage's
    end (the demo reports GRPO's reward variance from them)."""
    metrics: dict[str, Any] = {}
    for entry in log_history:
        summary = "train_runtime" in entry
        metrics.update({key: value for key, value in entry.items() if not (summary and key in metrics)})
    return metrics


def finish_stage(trainer, processor, stage: str, config: dict[str, Any], datasets: list[str], init_from: str) -> Path:
    """Save the final model and processor in `output_dir`, record the stage, and push if asked. In a multi-process
    run the main process writes everything, and no process returns before the folder is complete."""
    from peft import PeftModel

    output_dir = Path(trainer.args.output_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if isinstance(model, PeftModel):
        # Keep the adapter for PEFT users, and save the merged model so the next stage (and from_pretrained)
        # starts from a plain checkpoint.
        if trainer.is_world_process_zero():
            model.save_pretrained(str(output_dir / "adapter"))
            model.merge_and_unload().save_pretrained(str(output_dir))
    else:
        trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(output_dir))
        metrics = logged_metrics(trainer.state.log_history)
        budget = next((c for c in trainer.callback_handler.callbacks if isinstance(c, TimeBudgetCallback)), None)
        metrics.update(
            steps=trainer.state.global_step,
            stopped_by="time budget" if budget is not None and budget.stopped else "max_steps",
        )
        record_training_stage(
            output_dir, stage=stage, config=config, datasets=datasets, init_from=init_from, metrics=metrics
        )
        if trainer.args.publish_repo_id:
            push_stage_output(output_dir, trainer.args.publish_repo_id, bool(trainer.args.hub_private_repo))
    trainer.accelerator.wait_for_everyone()
    logger.info("%s stage finished: %s", stage, output_dir)
    return output_dir
