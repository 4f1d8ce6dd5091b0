"""Publishing to the Hugging Face Hub: stage, validate and upload model, dataset and benchmark repos.

Publishing is done in two steps so that what reaches the Hub is exactly what was checked:

1. `stage_model` / `stage_dataset` / `stage_benchmark` copy the files that belong in the repo into a fresh
   staging folder (weights as safetensors only, remote-code files named by `auto_map`, processor, generation
   config, LoRA adapter, data shards), render the card from the folder's own contents (`hf_spatial.hub_cards`)
   and validate the staging folder: it loads with the Auto classes / `load_dataset`, the card's YAML parses, and
   no text holds a token or a local absolute path.
2. `upload` creates the repo and uploads the staging folder as it is.

`publish` chains both; `push_checkpoint` is the `--push-to-hub` of the training stages. Tokens come from the
usual huggingface_hub login (`hf auth login`, `HF_TOKEN`); they are never printed or written.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_spatial.tasks.twnm import read_twnm_benchmark
from hf_spatial.training.records import STAGES_FILE, set_checkpoint_pusher

logger = logging.getLogger(__name__)

KINDS = ("model", "dataset", "benchmark")
REPO_TYPE = {"model": "model", "dataset": "dataset", "benchmark": "dataset"}

# Model repo allow-list (top level of a `save_pretrained` / Trainer checkpoint folder).
MODEL_CONFIG_FILES = ("config.json", "generation_config.json", "adapter_config.json", "model.safetensors.index.json")
PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "feature_extractor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "chat_template.jinja",
    "chat_template.json",
)
# Files describing the training run: read for the card, never uploaded (they hold local paths and pickles).
TRAINING_STATE_FILES = {
    "trainer_state.json": "training state (read for the card)",
    "training_args.bin": "training state (pickle)",
    "optimizer.pt": "training state (pickle)",
    "scheduler.pt": "training state (pickle)",
    "scaler.pt": "training state (pickle)",
}
RESULTS_FILE = "eval_results.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
AUDIO_SUFFIXES = (".flac", ".wav")
TEXT_SUFFIXES = (".json", ".jsonl", ".md", ".txt", ".py", ".jinja", ".yaml", ".yml", ".csv", ".tsv")

# Above this total size huggingface_hub 1.x's `upload_large_folder` (resumable, multi-commit) is used; hub 2.x
# dropped it because `upload_folder` itself batches and resumes large uploads.
LARGE_FOLDER_BYTES = 5 * 1024**3

HF_TOKEN_PATTERN = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
# Absolute paths that only make sense on the machine that wrote them: home folders, temp folders, cluster mounts.
LOCAL_PATH_PATTERN = re.compile(
    r"(?<![\w.\-/])(?:/home/[^/\s\"'<>]+|/Users/[^/\s\"'<>]+|/root/|/tmp/|/private/var/|/var/folders/|/work/"
    r"|/scratch/|/mnt/|[A-Za-z]:\\{1,2}Users\\{1,2})"
)


@dataclass
class StagedFile:
    path: str  # relative to the staging folder, POSIX separators
    size: int


@dataclass
class StagedRepo:
    """A staging folder holding exactly what `upload` sends, with what was left out and why."""

    kind: str
    folder: Path
    files: list[StagedFile]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def repo_type(self) -> str:
        return REPO_TYPE[self.kind]

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def describe(self) -> str:
        """The file list with sizes, what was left out, and the validations that passed."""
        width = max(len(f.path) for f in self.files)
        lines = [f"{self.kind} repo staged in {self.folder} ({len(self.files)} files, {_human(self.total_size)}):"]
        lines += [f"  {f.path:<{width}}  {_human(f.size):>9}" for f in self.files]
        if self.skipped:
            lines.append("left out:")
            lines += [f"  {path}: {why}" for path, why in self.skipped]
        lines.append("checks passed:")
        lines += [f"  {check}" for check in self.checks]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------- repo ids
def check_repo_id(repo_id: str) -> str:
    """Return `repo_id` if the Hub would accept it, else raise ValueError saying what is wrong."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"invalid --repo-id {repo_id!r}: {error} Use USER/NAME, e.g. alice/spatial-qwen.") from None
    if not repo_id:
        raise ValueError("empty --repo-id; use USER/NAME, e.g. alice/spatial-qwen.")
    return repo_id


# ---------------------------------------------------------------------------------------------- staging
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
    with _staging_folder(out) as staging:
        for name in selected:
            _copy(source / name, staging / name)
        card_options.setdefault("model_name", (repo_id or source.name).split("/")[-1])
        _write_card(staging, card, lambda: _model_card(source, staging, repo_id, card_options))
        staged = _finish(staging, out, "model", skipped)
    if validate:
        validate_model(staged)
    return staged


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
    selected += [name for name in _top_level_files(source) if _is_license_file(name)]
    skipped = _unselected(source, set(selected) | {"README.md"}, "not part of the dataset repo")
    with _staging_folder(out) as staging:
        for name in selected:
            _copy(source / name, staging / name)
        from hf_spatial import hub_cards

        _write_card(
            staging,
            card,
            lambda: hub_cards.dataset_card(
                staging, repo_id=repo_id, name=source.name, original_card=source / "README.md"
            ),
        )
        staged = _finish(staging, out, "dataset", skipped)
    if validate:
        validate_dataset(staged)
    return staged


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
    from hf_spatial import hub_cards

    rows = read_twnm_benchmark(source)
    audio = sorted({row["file_name"] for row in rows})
    selected = ["metadata.jsonl", *audio]
    selected += [name for name in _top_level_files(source) if _is_license_file(name)]
    skipped = _unselected(source, set(selected) | {"README.md"}, "not referenced by metadata.jsonl")
    with _staging_folder(out) as staging:
        for name in selected:
            _copy(source / name, staging / name)
        _write_card(staging, card, lambda: hub_cards.benchmark_card(staging, repo_id=repo_id, name=source.name))
        staged = _finish(staging, out, "benchmark", skipped)
    if validate:
        validate_benchmark(staged)
    return staged


STAGERS = {"model": stage_model, "dataset": stage_dataset, "benchmark": stage_benchmark}


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
        elif name in (STAGES_FILE, RESULTS_FILE):
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
    from hf_spatial import hub_cards

    stages = source / STAGES_FILE
    results = options.pop("results", None) or (source / RESULTS_FILE if (source / RESULTS_FILE).is_file() else None)
    trainer_state = source / "trainer_state.json"
    return hub_cards.model_card(
        staging,
        repo_id=repo_id,
        stages=stages if stages.is_file() else None,
        results=results,
        trainer_state=trainer_state if trainer_state.is_file() else None,
        **options,
    )


# ------------------------------------------------------------------------------------------- validation
def validate_model(staged: StagedRepo) -> None:
    """Load the staged model (and processor, adapter, generation config) the way a Hub user will."""
    folder = staged.folder
    _validate_card(staged, "model")
    if (folder / "config.json").is_file():
        model = _load_model(staged)
        if (folder / "adapter_config.json").is_file():
            from peft import PeftModel

            PeftModel.from_pretrained(model, folder)
            staged.checks.append("PeftModel.from_pretrained(model, staging) loads the adapter")
        del model
    elif (folder / "adapter_config.json").is_file():
        _validate_adapter_only(staged)
    if (folder / "generation_config.json").is_file():
        from transformers import GenerationConfig

        GenerationConfig.from_pretrained(folder)
        staged.checks.append("GenerationConfig.from_pretrained(staging)")
    _validate_processor(staged)
    _validate_no_leaks(staged)


def _load_model(staged: StagedRepo):
    import transformers

    folder = staged.folder
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    auto_map = config.get("auto_map") or {}
    remote = [name for name in ("AutoModelForMultimodalLM", "AutoModelForCausalLM", "AutoModel") if name in auto_map]
    if remote:
        # Load through the copied code files, as a user without hf_spatial installed will.
        candidates, trust = remote[:1], True
    else:
        candidates, trust = ["AutoModelForMultimodalLM", "AutoModelForCausalLM", "AutoModel"], False
    last_error = None
    for name in candidates:
        auto_class = getattr(transformers, name)
        try:
            model, info = auto_class.from_pretrained(
                folder, trust_remote_code=trust, output_loading_info=True, dtype="auto"
            )
        except ValueError as error:  # this Auto class does not map the config; try the next one
            last_error = error
            continue
        problems = {key: sorted(info[key]) for key in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        problems = {key: value for key, value in problems.items() if value}
        if problems:
            raise ValueError(f"the staged weights do not match the model: {problems}")
        how = ", trust_remote_code=True" if trust else ""
        staged.checks.append(f"{name}.from_pretrained(staging{how}) -> {type(model).__name__}, all weights matched")
        return model
    raise ValueError(f"no Auto model class loads the staged config: {last_error}")


def _validate_adapter_only(staged: StagedRepo) -> None:
    from peft import PeftConfig
    from safetensors import safe_open

    config = PeftConfig.from_pretrained(staged.folder)
    weights = staged.folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError("adapter_config.json without adapter_model.safetensors")
    with safe_open(weights, framework="pt") as handle:
        if not list(handle.keys()):
            raise ValueError("adapter_model.safetensors holds no tensors")
    staged.checks.append(f"PeftConfig.from_pretrained(staging): {config.peft_type} on {config.base_model_name_or_path}")


def _validate_processor(staged: StagedRepo) -> None:
    from transformers import AutoProcessor, AutoTokenizer

    folder = staged.folder
    names = {f.path for f in staged.files}
    trust = any(
        "auto_map" in json.loads((folder / name).read_text(encoding="utf-8"))
        for name in ("preprocessor_config.json", "processor_config.json", "tokenizer_config.json")
        if name in names
    )
    how = ", trust_remote_code=True" if trust else ""
    if {"preprocessor_config.json", "processor_config.json"} & names:
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=trust)
        staged.checks.append(f"AutoProcessor.from_pretrained(staging{how}) -> {type(processor).__name__}")
    elif "tokenizer_config.json" in names:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust)
        staged.checks.append(f"AutoTokenizer.from_pretrained(staging{how}) -> {type(tokenizer).__name__}")


def validate_dataset(staged: StagedRepo) -> None:
    """`load_dataset(staging)` (streamed, nothing cached) sees every split with the shards' row counts."""
    import datasets
    import pyarrow.parquet as pq

    card = _validate_card(staged, "dataset")
    configs = card.data.to_dict().get("configs")
    if not configs:
        raise ValueError("the dataset card has no `configs`: load_dataset would not find the parquet shards")
    staged_paths = [f.path for f in staged.files]
    for config in configs:
        for entry in config["data_files"]:
            patterns = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            matched = [p for p in staged_paths if any(fnmatch.fnmatch(p, pattern) for pattern in patterns)]
            if not matched:
                raise ValueError(
                    f"card config {config['config_name']!r} split {entry['split']!r}: no staged file matches {patterns}"
                )
            rows = sum(pq.ParquetFile(staged.folder / p).metadata.num_rows for p in matched)
            stream = datasets.load_dataset(
                str(staged.folder), name=config["config_name"], split=entry["split"], streaming=True
            )
            if "audio" in (stream.features or {}):
                stream = stream.cast_column("audio", datasets.Audio(decode=False))
            first = next(iter(stream), None)
            if first is None and rows:
                raise ValueError(f"load_dataset(staging, split={entry['split']!r}) yields no rows")
            staged.checks.append(
                f"load_dataset(staging, name={config['config_name']!r}, split={entry['split']!r}): {rows} rows, "
                f"columns {sorted(first or {})}"
            )
    _validate_no_leaks(staged)


def validate_benchmark(staged: StagedRepo) -> None:
    """Every metadata row is complete and its audio readable; `load_dataset(staging)` where torchcodec allows."""
    import importlib.util

    import datasets

    _validate_card(staged, "dataset")
    rows = read_twnm_benchmark(staged.folder, check_audio=True)
    staged.checks.append(f"metadata.jsonl: {len(rows)} complete items, every audio file readable by soundfile")
    if importlib.util.find_spec("torchcodec") is not None:
        dataset = datasets.load_dataset(str(staged.folder), split="test")
        if len(dataset) != len(rows):
            raise ValueError(f"load_dataset(staging) gives {len(dataset)} rows, metadata.jsonl has {len(rows)}")
        staged.checks.append(f"load_dataset(staging, split='test'): {len(dataset)} rows")
    else:
        # datasets' audiofolder builder encodes audio with torchcodec (optional: it needs FFmpeg's shared libraries).
        table = datasets.load_dataset("json", data_files=str(staged.folder / "metadata.jsonl"), split="train")
        staged.checks.append(
            f"load_dataset('json', metadata.jsonl): {len(table)} rows (install torchcodec to also check the "
            "audiofolder view users get from load_dataset(repo))"
        )
    _validate_no_leaks(staged)


VALIDATORS = {"model": validate_model, "dataset": validate_dataset, "benchmark": validate_benchmark}


def _validate_card(staged: StagedRepo, repo_type: str):
    from huggingface_hub import DatasetCard, ModelCard

    card_class = ModelCard if repo_type == "model" else DatasetCard
    path = staged.folder / "README.md"
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        raise ValueError("the card (README.md) has no YAML metadata block")
    card = card_class.load(path)  # raises on YAML that is not a mapping or an invalid model-index
    if not card.data.to_dict():
        raise ValueError("the card's YAML metadata block is empty")
    staged.checks.append(f"{card_class.__name__}.load(README.md): metadata {sorted(card.data.to_dict())}")
    return card


def _validate_no_leaks(staged: StagedRepo, token: str | None = None) -> None:
    problems = find_leaks(staged.folder, [f.path for f in staged.files], token=token)
    if problems:
        listed = "\n  ".join(problems[:20])
        raise ValueError(
            f"refusing to publish: {len(problems)} staged file(s) hold secrets or local paths:\n  {listed}\n"
            "Remove them from the source folder (or the card) and stage again."
        )
    staged.checks.append("no tokens or local absolute paths in text files, safetensors metadata or parquet strings")


# ------------------------------------------------------------------------------------ secrets and paths
def known_tokens(token: str | None = None) -> list[str]:
    """Token values that must never be written: the given one, HF_TOKEN-style variables and the login file."""
    from huggingface_hub import constants

    values = [token, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")]
    token_path = Path(constants.HF_TOKEN_PATH)
    if token_path.is_file():
        values.append(token_path.read_text(encoding="utf-8").strip())
    return sorted({value for value in values if value and len(value) >= 8})


def find_leaks(folder: Path, paths: Iterable[str], token: str | None = None) -> list[str]:
    """'file: what' for every token or machine-local absolute path found in the staged files' text."""
    secrets = known_tokens(token)
    local_roots = _local_roots()
    problems = []
    for rel in paths:
        for text in _texts(folder / rel):
            for secret in secrets:
                if secret in text:
                    problems.append(f"{rel}: contains an access token (the value of your HF token)")
            for match in HF_TOKEN_PATTERN.finditer(text):
                problems.append(f"{rel}: contains something shaped like an HF token ({match.group()[:5]}...)")
            for match in LOCAL_PATH_PATTERN.finditer(text):
                problems.append(f"{rel}: local path {_context(text, match.start())!r}")
            for root in local_roots:
                if root in text:
                    problems.append(f"{rel}: local path {_context(text, text.index(root))!r}")
    return list(dict.fromkeys(problems))


def _local_roots() -> list[str]:
    roots = {str(Path.home()), tempfile.gettempdir(), os.getcwd()}
    # Single-component roots such as "/" or "/srv" would match any path-like text.
    return sorted(root for root in roots if len(Path(root).parts) > 2)


def _texts(path: Path) -> Iterator[str]:
    """Text a file carries: the whole file for text formats, safetensors header metadata, parquet strings."""
    name = path.name
    if name.endswith(TEXT_SUFFIXES) or name in PROCESSOR_FILES or _is_license_file(name):
        yield path.read_text(encoding="utf-8", errors="replace")
    elif name.endswith(".safetensors"):
        with path.open("rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            yield json.dumps(json.loads(handle.read(header_size)).get("__metadata__") or {})
    elif name.endswith(".parquet"):
        yield from _parquet_strings(path)


def _parquet_strings(path: Path) -> Iterator[str]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    yield (parquet.schema_arrow.metadata or {}).get(b"huggingface", b"").decode()
    for batch in parquet.iter_batches(batch_size=4096):
        for column in batch.columns:
            for array in _string_leaves(column):
                yield "\n".join(pc.drop_null(array).to_pylist())


def _string_leaves(array) -> Iterator:
    import pyarrow as pa

    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        yield array
    elif pa.types.is_struct(kind):
        for index in range(kind.num_fields):
            yield from _string_leaves(array.field(index))
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        yield from _string_leaves(array.flatten())


def _context(text: str, start: int) -> str:
    return text[max(0, start - 10) : start + 50].replace("\n", " ")


# ---------------------------------------------------------------------------------------------- upload
def upload(
    staged: StagedRepo,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Create `repo_id` (if needed) and upload the staging folder as it is; returns the repo URL."""
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type=staged.repo_type, private=private, exist_ok=True)
    repo_id = getattr(url, "repo_id", None) or repo_id  # a bare NAME resolves to the token's namespace
    message = commit_message or f"Upload {staged.kind} with hf-spatial"
    if staged.total_size > LARGE_FOLDER_BYTES and hasattr(api, "upload_large_folder"):
        logger.info("uploading %s with upload_large_folder (resumable: re-run to continue)", _human(staged.total_size))
        api.upload_large_folder(repo_id=repo_id, folder_path=staged.folder, repo_type=staged.repo_type, private=private)
    else:
        api.upload_folder(
            repo_id=repo_id, folder_path=staged.folder, repo_type=staged.repo_type, commit_message=message
        )
    logger.info("published %s to %s", staged.kind, url)
    return str(url)


def publish(
    kind: str,
    path: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    staging_dir: str | os.PathLike | None = None,
    token: str | None = None,
    **stage_options: Any,
) -> tuple[StagedRepo, str | None]:
    """Stage, validate and (unless `dry_run`) upload; returns the staged repo and the URL (None on a dry run).

    Without `staging_dir` the staging folder is a fresh temporary folder, kept after a dry run for inspection
    and removed after an upload.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    check_repo_id(repo_id)
    temporary = staging_dir is None
    out = Path(tempfile.mkdtemp(prefix=f"hf-spatial-{kind}-")) if temporary else Path(staging_dir)
    staged = STAGERS[kind](path, out, repo_id=repo_id, **stage_options)
    _validate_no_leaks_for_token(staged, token)
    if dry_run:
        return staged, None
    url = upload(staged, repo_id, private=private, token=token)
    if temporary:
        shutil.rmtree(out, ignore_errors=True)
    return staged, url


def push_checkpoint(
    folder: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None, **card_options: Any
) -> str:
    """Stage, validate and upload a training checkpoint folder (the stages' `--push-to-hub`); returns the URL."""
    staged, url = publish("model", folder, repo_id, private=private, token=token, **card_options)
    logger.info("pushed checkpoint %s (%d files, %s)", folder, len(staged.files), _human(staged.total_size))
    return url


# Training publishes through this (`--publish_repo_id`); looked up at call time so it can be replaced.
set_checkpoint_pusher(lambda folder, repo_id, private: push_checkpoint(folder, repo_id, private=private))


def _validate_no_leaks_for_token(staged: StagedRepo, token: str | None) -> None:
    # stage_* already checked the environment's tokens; an explicit token may differ from those.
    if token:
        problems = find_leaks(staged.folder, [f.path for f in staged.files], token=token)
        if problems:
            raise ValueError("refusing to publish: the staged files contain the access token you passed")


# --------------------------------------------------------------------------------------------- helpers
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


def _is_license_file(name: str) -> bool:
    return name.upper().startswith(("LICENSE", "LICENCE", "NOTICE", "ATTRIBUTION"))


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


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
