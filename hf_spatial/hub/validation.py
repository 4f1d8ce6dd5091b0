"""Validation of a staging folder, the way a Hub user will load it: the model (and adapter, processor, generation
config) with the Auto classes, a dataset with `load_dataset`, a benchmark's rows and audio, every card's YAML, and
the leak scan."""

from __future__ import annotations

import fnmatch
import json

from hf_spatial.hub.leaks import find_leaks
from hf_spatial.hub.staged import StagedRepo
from hf_spatial.tasks.twnm import read_twnm_benchmark


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
    validate_no_leaks(staged)


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
    validate_no_leaks(staged)


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
    validate_no_leaks(staged)


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


def validate_no_leaks(staged: StagedRepo, token: str | None = None) -> None:
    """Refuse a staging folder whose files hold a token or a local path (`find_leaks`)."""
    problems = find_leaks(staged.folder, [f.path for f in staged.files], token=token)
    if problems:
        listed = "\n  ".join(problems[:20])
        raise ValueError(
            f"refusing to publish: {len(problems)} staged file(s) hold secrets or local paths:\n  {listed}\n"
            "Remove them from the source folder (or the card) and stage again."
        )
    staged.checks.append("no tokens or local absolute paths in text files, safetensors metadata or parquet strings")
