"""Run a curriculum stage from its config: `hf-spatial train --stage encoder|align|sft|grpo --config FILE.yaml`.

Each stage reads a dataset folder, starts from `model_name_or_path` (a checkpoint folder, a Qwen2-Audio
checkpoint, or `tiny`), trains with its trainer, resumes from the last checkpoint in `output_dir` when re-run,
and leaves in `output_dir` a model that `AutoModelForMultimodalLM.from_pretrained` loads (LoRA stages merge
their adapter into it and keep the adapter itself in `output_dir/adapter`), its processor, and
`training_stages.json`, the curriculum history the model card shows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import struct
import typing
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

STAGE_NAMES = ("encoder", "align", "sft", "grpo")


@dataclass(frozen=True)
class Stage:
    """A stage: its config dataclass and the function that runs it."""

    config_class: Callable[[], type]
    run: Callable[..., Path]


def _encoder_config():
    from hf_spatial.training.encoder import EncoderTrainingConfig

    return EncoderTrainingConfig


def _align_config():
    from hf_spatial.training.language_stages import AlignConfig

    return AlignConfig


def _sft_config():
    from hf_spatial.training.language_stages import SpatialSFTConfig

    return SpatialSFTConfig


def _grpo_config():
    from hf_spatial.training.grpo import SpatialGRPOConfig

    return SpatialGRPOConfig


def preset_path(stage: str) -> Path:
    """The packaged tiny CPU config of a stage (`--config tiny`)."""
    return Path(str(resources.files("hf_spatial.training") / "configs" / f"tiny_{stage}.yaml"))


def load_config(stage: str, config: str | Path | dict[str, Any] | None = None, overrides: list[str] | None = None):
    """Build the stage's config dataclass from a YAML file (or `tiny`, or a dict) and `--key value` overrides."""
    from transformers import HfArgumentParser

    if stage not in STAGES:
        raise ValueError(f"Unknown stage {stage!r}; choose one of {', '.join(STAGE_NAMES)}.")
    if config is None or config == "tiny":
        config = preset_path(stage)
    if not isinstance(config, dict):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"Stage config {path} does not exist.")
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    config_class = STAGES[stage].config_class()
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"Unknown {stage} config keys: {', '.join(unknown)} (see {config_class.__name__}).")
    parser = HfArgumentParser(config_class)
    parser.set_defaults(**config)
    # Required fields may come from the YAML; HfArgumentParser would otherwise demand them on the command line.
    for action in parser._actions:
        if action.dest in config:
            action.required = False
    (parsed,) = parser.parse_args_into_dataclasses(args=overrides or [], look_for_args_file=False)
    # `--eval_split none` on the command line means None, as `eval_split: null` does in YAML.
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(parsed):
        if getattr(parsed, field.name) in ("None", "none", "null") and type(None) in typing.get_args(hints[field.name]):
            setattr(parsed, field.name, None)
    if parsed.dataset_dir is None:
        raise ValueError(f"The {stage} stage needs `dataset_dir` (in the YAML or as --dataset_dir).")
    return parsed


def run_stage(
    stage: str,
    config: str | Path | dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    callbacks: list | None = None,
) -> Path:
    """Run one curriculum stage; returns the output folder. `callbacks` are added to the stage's trainer."""
    args = load_config(stage, config, overrides)
    logger.info("stage %s: %s -> %s", stage, args.model_name_or_path, args.output_dir)
    return STAGES[stage].run(args, callbacks=callbacks)


def train_resuming(trainer) -> None:
    """Train, continuing from the newest complete checkpoint in `output_dir` if an earlier run left one."""
    checkpoint = last_complete_checkpoint(trainer.args.output_dir)
    if checkpoint is not None:
        logger.info("resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=None if checkpoint is None else str(checkpoint))


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest `checkpoint-N` of `output_dir` that a run can resume from. Newer ones that a killed run left
    half-written are skipped with a warning (the resumed run writes them again when it gets there)."""
    output_dir = Path(output_dir)
    steps = {}
    for folder in output_dir.glob("checkpoint-*") if output_dir.is_dir() else ():
        match = _CHECKPOINT.fullmatch(folder.name)
        if match and folder.is_dir():
            steps[folder] = int(match.group(1))
    for folder in sorted(steps, key=steps.get, reverse=True):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        logger.warning("skipping incomplete checkpoint %s (%s): a run was killed while writing it", folder, problem)
    return None


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why a Trainer checkpoint folder is incomplete, or None when it is whole: `trainer_state.json` (which the
    Trainer writes last) parses, the folder has model weights, and no weights, optimizer or RNG file is cut short."""
    folder = Path(folder)
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json"
    try:
        if "global_step" not in json.loads(state.read_text(encoding="utf-8")):
            return "trainer_state.json has no global_step"
    except (ValueError, UnicodeDecodeError):
        return "trainer_state.json is cut short"
    names = {path.name for path in folder.iterdir()}
    if not names & _WEIGHTS_FILES and not any(name.startswith(_WEIGHTS_FOLDERS) for name in names):
        return "no model weights"
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            missing = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()) - names)
        except (ValueError, KeyError, AttributeError, UnicodeDecodeError):
            return f"{index.name} is cut short"
        if missing:
            return f"weight shards {', '.join(missing)} missing"
    for path in sorted(folder.iterdir()):
        if path.suffix == ".safetensors" and not _safetensors_whole(path):
            return f"{path.name} is cut short"
        if path.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(path):  # torch.save writes zip archives
            return f"{path.name} is cut short"
    return None


_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
# What `Trainer._load_from_checkpoint` loads weights from: files, or DeepSpeed / FSDP folders.
_WEIGHTS_FILES = {
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
}
_WEIGHTS_FOLDERS = ("global_step", "pytorch_model_fsdp")


def _safetensors_whole(path: Path) -> bool:
    """Whether a safetensors file is as long as its header says (a kill mid-write leaves it shorter)."""
    try:
        with path.open("rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_size))
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError, AttributeError, UnicodeDecodeError):
        return False
    return path.stat().st_size == 8 + header_size + end


def config_record(args) -> dict[str, Any]:
    """The stage config as recorded in training_stages.json: only what differs from the defaults."""
    record = {}
    for field in dataclasses.fields(args):
        value = getattr(args, field.name)
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        if field.init and _plain(value) and value != default:
            record[field.name] = value
    return record


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None)) or (
        isinstance(value, list | tuple) and all(isinstance(item, str | int | float) for item in value)
    )


# ------------------------------------------------------------------------------------------------ stages
def run_encoder(args, callbacks: list | None = None) -> Path:
    from hf_spatial.data.starss23 import recorded_class_names
    from hf_spatial.training.common import (
        dataset_labels,
        finish_stage,
        load_model_and_processor,
        load_stage_splits,
        stage_callbacks,
    )
    from hf_spatial.training.encoder import SeldCollator, SpatialEncoderTrainer

    if args.embedding_cache is not None:
        raise ValueError(
            "The encoder stage trains the spatial encoder, so its outputs cannot come from an embedding cache; "
            "unset embedding_cache (the later stages use it)."
        )
    train, evaluation = load_stage_splits(args, "scenes", "encoder")
    # A converted (STARSS23) folder records the class list its DCASE labels index; rows without a SceneSpec are
    # trained on those labels.
    dcase_class_names = recorded_class_names(args.dataset_dir)
    wanted = args.class_names or dcase_class_names or dataset_labels(train)
    model, processor = load_model_and_processor(
        args.model_name_or_path, class_names=wanted, spatial_encoder_name_or_path=args.spatial_encoder_name_or_path
    )
    class_names = model.config.spatial_class_names
    if not class_names:
        raise ValueError(
            "The model config has no `spatial_class_names`; set them to the dataset's labels "
            f"({wanted}) so the slot class head knows its classes."
        )
    collator = SeldCollator(
        processor.feature_extractor,
        class_names,
        model.config.spatial_num_slots,
        dcase_class_names,
        augmentation=args.augmentation,
    )
    trainer = SpatialEncoderTrainer(
        model,
        args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=collator,
        callbacks=stage_callbacks(args, callbacks),
    )
    train_resuming(trainer)
    if evaluation is not None:
        trainer.evaluate()
    output_dir = finish_stage(
        trainer, processor, "encoder", config_record(args), [args.dataset_dir], args.model_name_or_path
    )
    if evaluation is not None and trainer.is_world_process_zero():
        from hf_spatial.data.starss23 import dcase_labels_have_distance
        from hf_spatial.seld.evaluate import evaluate_model_seld

        # DCASE 2024 SELD metrics of the trained encoder on the held-out split (report in OUTPUT/seld/); 2023 ones
        # when real recordings' labels have no distances.
        with_distance = "dcase_labels" not in evaluation.column_names or dcase_labels_have_distance(
            evaluation["dcase_labels"]
        )
        edition = 2024 if with_distance else 2023
        results = evaluate_model_seld(
            output_dir,
            args.dataset_dir,
            output_dir / "seld",
            edition=edition,
            split=args.eval_split,
            max_scenes=args.max_eval_samples,
        )
        metrics = {key: value for key, value in results["metrics"].items() if key != "per_class"}
        logger.info(
            "encoder SELD (DCASE %d) on %s: %s; report %s", edition, args.eval_split, metrics, results["report_path"]
        )
    return output_dir


def run_align(args, callbacks: list | None = None) -> Path:
    from hf_spatial.training.chat_data import caption_row
    from hf_spatial.training.language_stages import SpatialAlignTrainer

    return _run_language_stage(args, "align", caption_row, SpatialAlignTrainer, callbacks)


def run_sft(args, callbacks: list | None = None) -> Path:
    from hf_spatial.training.chat_data import sft_row
    from hf_spatial.training.language_stages import SpatialSFTTrainer

    def to_row(row):
        return sft_row(row, args.reasoning_fraction, args.answer_format)

    return _run_language_stage(args, "sft", to_row, SpatialSFTTrainer, callbacks, args.tasks)


def run_grpo(args, callbacks: list | None = None) -> Path:
    from hf_spatial.training.chat_data import grpo_row
    from hf_spatial.training.grpo import SpatialGRPOTrainer

    def to_row(row):
        return grpo_row(row, args.answer_format)

    return _run_language_stage(args, "grpo", to_row, SpatialGRPOTrainer, callbacks, args.tasks)


def _run_language_stage(
    args,
    stage: str,
    to_row: Callable[[dict[str, Any]], dict[str, Any]],
    trainer_class: type,
    callbacks: list | None,
    tasks: list[str] | None = None,
) -> Path:
    """Load the stage's splits and model, key the rows by clip in the embedding cache (if any), make the chat rows,
    train (resuming) and finish the stage."""
    from hf_spatial.training.common import (
        dataset_labels,
        finish_stage,
        load_model_and_processor,
        prepare_embedding_cache,
        stage_callbacks,
    )

    train, evaluation = _language_splits(args, stage, tasks)
    # align may start a new tiny model: its slot classes are the scenes' labels
    class_names = dataset_labels(train) if stage == "align" else None
    model, processor = load_model_and_processor(args.model_name_or_path, class_names=class_names)
    cache, (train, evaluation) = prepare_embedding_cache(args, model, processor, [train, evaluation])
    train = train.map(to_row, desc=f"{args.train_split} rows")
    evaluation = evaluation.map(to_row, desc=f"{args.eval_split} rows") if evaluation is not None else None
    trainer = trainer_class(
        model,
        args,
        processor,
        train_dataset=train,
        eval_dataset=evaluation,
        embedding_cache=cache,
        callbacks=stage_callbacks(args, callbacks),
    )
    train_resuming(trainer)
    return finish_stage(trainer, processor, stage, config_record(args), [args.dataset_dir], args.model_name_or_path)


def _language_splits(args, stage: str, tasks: list[str] | None = None):
    """A language stage's training and held-out splits, with only the rows of `tasks` (all for None)."""
    from hf_spatial.training.common import keep_tasks, load_stage_splits

    # align describes scenes; sft and grpo answer questions
    train, evaluation = load_stage_splits(args, "scenes" if stage == "align" else "questions", stage)
    train = keep_tasks(train, tasks, f"{args.dataset_dir} [{args.train_split}]")
    if evaluation is not None:
        evaluation = keep_tasks(evaluation, tasks, f"{args.dataset_dir} [{args.eval_split}]")
    return train, evaluation


STAGES: dict[str, Stage] = {
    "encoder": Stage(_encoder_config, run_encoder),
    "align": Stage(_align_config, run_align),
    "sft": Stage(_sft_config, run_sft),
    "grpo": Stage(_grpo_config, run_grpo),
}


# --------------------------------------------------------------------------------------------------- CLI
def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="run a curriculum stage (encoder, align, sft, grpo)",
        description=(
            "Run one stage of the curriculum from a YAML config (any field of the stage's config dataclass: "
            "TrainingArguments / SFTConfig / GRPOConfig fields plus model_name_or_path, dataset_dir, ...). "
            "Extra `--field value` arguments override the YAML. Re-running resumes from the last checkpoint."
        ),
    )
    parser.add_argument("--stage", required=True, choices=STAGE_NAMES)
    parser.add_argument("--config", default="tiny", help="YAML file, or `tiny` for the packaged CPU preset")
    parser.set_defaults(func=_run, accepts_extra_args=True)


def _run(args: argparse.Namespace) -> int:
    output_dir = run_stage(args.stage, args.config, args.extra_args)
    print(f"{args.stage} stage done: {output_dir}")
    return 0
