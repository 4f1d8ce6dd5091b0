"""Staging: copy what belongs in a model, dataset or benchmark repo into a fresh folder (weights as safetensors
only, the remote-code files `auto_map` names, processor, generation config, LoRA adapter, data shards), render its
card from the folder's own contents (`hf_spatial.hub_cards`) and validate it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hf_spatial import hub_cards
from hf_spatial.evaluation import EVAL_RESULTS_FILE
from hf_spatial.hub.staged import (
    AUDIO_SUFFIXES,
    MODEL_CONFIG_FILES,
    PICKLE_SUFFIXES,
    PROCESSOR_FILES,
    TRAINING_STATE_FILES,
    StagedFile,
    StagedRepo,
    is_license_file,
)
from hf_spatial.hub.validation import VALIDATORS
from hf_spatial.tasks.twnm import read_twnm_benchmark
from hf_spatial.training.records import STAGES_FILE


def stage_model(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    repo_id: str | None = None,
    card: str | os.PathLike | None = None,
    validate: bool = True,
    **card_options: Any,
) -> StagedRepo:
    """Stage a `save_pretrained` folder or Trainer checkpoint as a model repo.

    Copies config, generation config, safetensors weights (+ index), LoRA adapter files, processor/tokenizer
    files and the `auto_map` code files (with their relative imports); renders the model card for `repo_id` (or uses
    `card`, a README.md you wrote); refuses pickle weights. `card_options` go to `hub_cards.model_card`
    (base_model, datasets, license, results, model_name). Validates unless `validate=False`.
    """
    source = _existing_folder(path, "model")
    entries = _top_level_files(source)
    selected, skipped = _select_model_files(source, entries)
    card_options.setdefault("model_name", (repo_id or source.name).split("/")[-1])

    def render(staging: Path):
        return _model_card(source, staging, repo_id, card_options)

    return _stage("model", source, out, selected, skipped, card, render, validate)


def stage_dataset(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    repo_id: str | None = None,
    card: str | os.PathLike | None = None,
    validate: bool = True,
) -> StagedRepo:
    """Stage a simulated dataset folder (README card + `data/*.parquet`) as a dataset repo.

    The card is re-rendered from the shards (splits, classes, rooms, positions, leak checks) and keeps the
    original card's `configs`, so `load_dataset("user/repo")` reads the same files as `load_dataset(path)`.
    """
    source = _existing_folder(path, "dataset")
    shards = sorted(p for p in (source / "data").rglob("*.parquet")) if (source / "data").is_dir() else []
    if not shards:
        raise FileNotFoundError(f"{source} has no data/*.parquet shards: is it a dataset folder written by simulate?")
    selected = [p.relative_to(source).as_posix() for p in shards]
    selected += [name for name in _top_level_files(source) if is_license_file(name)]
    skipped = _unselected(source, set(selected) | {"README.md"}, "not part of the dataset repo")

    def render(staging: Path):
        return hub_cards.dataset_card(staging, repo_id=repo_id, name=source.name, original_card=source / "README.md")

    return _stage("dataset", source, out, selected, skipped, card, render, validate)


def stage_benchmark(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    repo_id: str | None = None,
    card: str | os.PathLike | None = None,
    validate: bool = True,
) -> StagedRepo:
    """Stage a TWNM-layout benchmark (`metadata.jsonl` + FLAC/WAV files beside it) as a dataset repo."""
    source = _existing_folder(path, "benchmark")
    rows = read_twnm_benchmark(source)
    audio = sorted({row["file_name"] for row in rows})
    selected = ["metadata.jsonl", *audio]
    selected += [name for name in _top_level_files(source) if is_license_file(name)]
    skipped = _unselected(source, set(selected) | {"README.md"}, "not referenced by metadata.jsonl")

    def render(staging: Path):
        return hub_cards.benchmark_card(staging, repo_id=repo_id, name=source.name)

    return _stage("benchmark", source, out, selected, skipped, card, render, validate)


STAGERS = {"model": stage_model, "dataset": stage_dataset, "benchmark": stage_benchmark}


def _stage(
    kind: str,
    source: Path,
    out: str | os.PathLike,
    selected: list[str],
    skipped: list[tuple[str, str]],
    card: str | os.PathLike | None,
    render: Callable[[Path], Any],
    validate: bool,
) -> StagedRepo:
    """Copy `selected` from `source` into the fresh staging folder `out`, add the card (`card`, else
    `render(staging)`) and validate the result unless `validate` is False."""
    with _staging_folder(out) as staging:
        for name in selected:
            _copy(source / name, staging / name)
        _write_card(staging, card, lambda: render(staging))
        staged = _finish(staging, out, kind, skipped)
    if validate:
        VALIDATORS[kind](staged)
    return staged


def _select_model_files(source: Path, entries: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    safetensors = [name for name in entries if name.endswith(".safetensors")]
    pickled = [name for name in entries if name.endswith(PICKLE_SUFFIXES) and name not in TRAINING_STATE_FILES]
    pickled = [name for name in pickled if not name.startswith("rng_state")]
    if not safetensors:
        if pickled:
            raise ValueError(
                f"{source} holds weights only as pickle files ({', '.join(pickled)}); the Hub repo gets safetensors "
                "only. Re-save with `model.save_pretrained(folder)` (safetensors is the default) and publish again."
            )
        raise FileNotFoundError(f"{source} holds no *.safetensors weights: is it a save_pretrained/checkpoint folder?")
    if "config.json" not in entries and "adapter_config.json" not in entries:
        raise FileNotFoundError(f"{source} has neither config.json nor adapter_config.json.")
    selected = [name for name in entries if name in MODEL_CONFIG_FILES or name in PROCESSOR_FILES]
    selected += safetensors + _remote_code_files(source)
    skipped = []
    for name in entries:
        if name in selected or name == "README.md":
            continue
        if name in TRAINING_STATE_FILES:
            why = TRAINING_STATE_FILES[name]
        elif name.startswith("rng_state"):
            why = "training state (pickle)"
        elif name in pickled:
            why = "pickle weights are never uploaded (the safetensors copy is)"
        elif name in (STAGES_FILE, EVAL_RESULTS_FILE):
            why = "read for the card"
        else:
            why = "not part of a model repo"
        skipped.append((name, why))
    skipped += [(f"{p.name}/", "sub-folder (checkpoints, logs)") for p in sorted(source.iterdir()) if p.is_dir()]
    return sorted(set(selected)), skipped


def _remote_code_files(source: Path) -> list[str]:
    """The .py files `trust_remote_code` needs: modules named in any `auto_map`, plus their relative imports."""
    from transformers.dynamic_module_utils import get_relative_import_files

    modules = set()
    for name in ("config.json", "preprocessor_config.json", "processor_config.json", "tokenizer_config.json"):
        if (source / name).is_file():
            auto_map = json.loads((source / name).read_text(encoding="utf-8")).get("auto_map") or {}
            for reference in auto_map.values():
                for item in reference if isinstance(reference, list) else [reference]:
                    if item and "--" not in item:  # "other/repo--module.Class" lives in another repo
                        modules.add(item.rsplit(".", 1)[0])
    files = set()
    for module in sorted(modules):
        module_file = source / f"{module}.py"
        if not module_file.is_file():
            raise FileNotFoundError(
                f"auto_map names {module}.py but {source} does not have it; re-save the model with save_pretrained "
                "after `register_for_auto_class` so the code files are copied."
            )
        files.add(module_file.name)
        files.update(Path(f).name for f in get_relative_import_files(module_file))
    missing = [name for name in files if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"the remote code in {source} imports files that are missing: {', '.join(missing)}")
    return sorted(files)


def _model_card(source: Path, staging: Path, repo_id: str | None, options: dict[str, Any]):
    stages = source / STAGES_FILE
    results = options.pop("results", None) or (
        source / EVAL_RESULTS_FILE if (source / EVAL_RESULTS_FILE).is_file() else None
    )
    trainer_state = source / "trainer_state.json"
    return hub_cards.model_card(
        staging,
        repo_id=repo_id,
        stages=stages if stages.is_file() else None,
        results=results,
        trainer_state=trainer_state if trainer_state.is_file() else None,
        **options,
    )


def _existing_folder(path: str | os.PathLike, kind: str) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"{kind} folder {folder} does not exist")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is a file; pass the {kind} folder")
    return folder.resolve()


def _top_level_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _unselected(source: Path, selected: set[str], why: str) -> list[tuple[str, str]]:
    skipped = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source).as_posix()
        if path.is_file() and rel not in selected and not any(part.startswith(".") for part in Path(rel).parts):
            skipped.append((rel, why))
    return skipped


class _staging_folder:
    """Build into a hidden sibling folder, then move it to `out`, so `out` is never half-written."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)

    def __enter__(self) -> Path:
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise FileExistsError(f"staging folder {self.out} exists and is not empty; pass another or delete it")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.partial = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        return self.partial

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None:
            shutil.rmtree(self.partial, ignore_errors=True)


def _finish(partial: Path, out: str | os.PathLike, kind: str, skipped: list[tuple[str, str]]) -> StagedRepo:
    out = Path(out)
    if out.exists():
        out.rmdir()  # empty (checked on entry)
    partial.replace(out)
    files = [StagedFile(p.relative_to(out).as_posix(), p.stat().st_size) for p in sorted(out.rglob("*")) if p.is_file()]
    return StagedRepo(kind=kind, folder=out.resolve(), files=files, skipped=skipped)


def _copy(source: Path, target: Path) -> None:
    """Hard-link large binaries when possible (no second copy of multi-GB weights); copy everything else."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix in (".safetensors", ".parquet", *AUDIO_SUFFIXES):
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copyfile(source, target)


def _write_card(staging: Path, card: str | os.PathLike | None, render) -> None:
    if card is not None:
        card_path = Path(card)
        if not card_path.is_file():
            raise FileNotFoundError(f"card {card_path} does not exist")
        shutil.copyfile(card_path, staging / "README.md")
    else:
        render().save(staging / "README.md")
