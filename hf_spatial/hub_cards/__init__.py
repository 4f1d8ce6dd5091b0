"""Hub cards for models, simulated datasets and benchmarks, computed from the folders they describe.

The Jinja templates beside this module (`model_card.md.jinja`, `dataset_card.md.jinja`,
`benchmark_card.md.jinja`) are rendered with huggingface_hub's `ModelCard.from_template` /
`DatasetCard.from_template`. They ship inside the package (`hf_spatial/hub_cards/`, package data `**/*.jinja`)
so an installed hf-spatial finds them.

Files a model folder may carry for its card (all optional):

`training_stages.json` (written by `hf_spatial.training.records.record_training_stage`)::

    {"base_model": "Qwen/Qwen2-Audio-7B-Instruct",
     "stages": [{"stage": "align", "datasets": ["alice/foa-scenes"], "config": {...}, "metrics": {...}}, ...]}

`eval_results.json` (the evaluation's results; accuracies are fractions in [0, 1])::

    {"benchmark": {"name": "hf-spatial ASA benchmark", "repo_id": "alice/asa-bench", "split": "test"},
     "conditions": {
        "full":           {"overall": M, "levels": {"1": M, "2": M, "3": M}, "tasks": {"l1_...": M, ...}},
        "mono":           {"overall": M, "levels": {...}},      # controls: any name, same shape
        "no_audio": ..., "spatial_zeroed": ..., "rotated": ..., "circular": ...}}
    M = {"accuracy": 0.62, "ci95": [0.59, 0.65], "n": 1000, "chance": 0.25}

`full` is the model as published; every other condition is shown as a control. Each (condition, slice)
becomes a `model-index` metric (`config` = "condition/slice", `args` = interval and item count).
`trainer_state.json` (a Trainer checkpoint's) adds steps, epochs and the last logged losses.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from hf_spatial.tasks.twnm import TWNM_COLUMNS, read_twnm_benchmark

TEMPLATES = Path(__file__).resolve().parent
MAIN_CONDITION = "full"
SPATIAL_TAGS = ["hf-spatial", "spatial-audio", "ambisonics", "foa"]
PIPELINE_TAG = "audio-text-to-text"
ABSOLUTE_PATH = re.compile(r"^(?:/|~|[A-Za-z]:[\\/])")


# ------------------------------------------------------------------------------------------------ model
def model_card(
    folder: str | os.PathLike,
    *,
    repo_id: str | None = None,
    model_name: str | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    license: str = "apache-2.0",
    stages: str | os.PathLike | None = None,
    results: str | os.PathLike | None = None,
    trainer_state: str | os.PathLike | None = None,
):
    """The model card of a staged model folder (config, weights, adapter) plus its optional run records.

    `repo_id` is where the card will live (used in the usage snippet); `model_name` names the model-index entry.
    """
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    config = _read_json(folder / "config.json") or {}
    adapter = _read_json(folder / "adapter_config.json")
    history = _read_json(stages) or {"stages": []}
    base_model = base_model or history.get("base_model") or (adapter or {}).get("base_model_name_or_path")
    base_model = None if base_model is None or ABSOLUTE_PATH.match(base_model) else base_model
    hub_datasets = datasets or sorted(
        {name for stage in history["stages"] for name in stage.get("datasets", []) if _is_repo_id(name)}
    )
    history["stages"] = [redact_local_paths(stage) for stage in history.get("stages", [])]
    evaluation = _read_results(results)
    model_name = model_name or (repo_id or folder.name).split("/")[-1]
    repo_id = repo_id or model_name
    model_type = config.get("model_type", "")
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model,
        datasets=hub_datasets or None,
        license=license,
        library_name="peft" if adapter and not config else "transformers",
        pipeline_tag=PIPELINE_TAG,
        tags=[*SPATIAL_TAGS, model_type or None, "lora" if adapter else None],
        metrics=["accuracy"] if evaluation else None,
        eval_results=_eval_results(evaluation) if evaluation else None,
    )
    card_data.tags = [tag for tag in card_data.tags if tag]
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATES / "model_card.md.jinja"),
        title=model_name,
        repo_id=repo_id,
        model_type=model_type,
        architectures=config.get("architectures") or [],
        remote_code=bool(config.get("auto_map")),
        spatial=model_type.startswith("spatial"),
        adapter=redact_local_paths(adapter) if adapter else None,
        parameters=_count_parameters(folder),
        dtype=config.get("dtype") or config.get("torch_dtype"),
        stages=[
            {**stage, "config_json": json.dumps(stage.get("config") or {}, indent=2)} for stage in history["stages"]
        ],
        training_run=_training_run(_read_json(trainer_state)),
        evaluation=evaluation,
    )


def _read_results(path) -> dict[str, Any] | None:
    results = _read_json(path)
    if results is None:
        return None
    conditions = results.get("conditions")
    if not isinstance(conditions, dict) or MAIN_CONDITION not in conditions:
        raise ValueError(f"{path}: results need a 'conditions' mapping with a {MAIN_CONDITION!r} entry")
    benchmark = {"name": "hf-spatial ASA benchmark", "split": "test", **results.get("benchmark", {})}
    rows = []  # one row per slice: accuracy of the model and of every control
    controls = [name for name in conditions if name != MAIN_CONDITION]
    main = conditions[MAIN_CONDITION]
    slices = [("overall", main["overall"])]
    slices += [(f"level {level}", value) for level, value in sorted(main.get("levels", {}).items())]
    slices += [(task, value) for task, value in sorted(main.get("tasks", {}).items())]
    for name, metric in slices:
        _check_metric(path, name, metric)
        row = {"slice": name, "model": metric, "controls": {}}
        for control in controls:
            row["controls"][control] = _slice_of(conditions[control], name)
        rows.append(row)
    return {"benchmark": benchmark, "rows": rows, "controls": controls, "conditions": conditions}


def _slice_of(condition: dict[str, Any], name: str) -> dict[str, Any] | None:
    if name == "overall":
        return condition.get("overall")
    if name.startswith("level "):
        return condition.get("levels", {}).get(name.removeprefix("level "))
    return condition.get("tasks", {}).get(name)


def _check_metric(path, name: str, metric: dict[str, Any]) -> None:
    accuracy = metric.get("accuracy")
    if not isinstance(accuracy, int | float) or not 0 <= accuracy <= 1:
        raise ValueError(f"{path}: {name}: 'accuracy' must be a fraction in [0, 1], got {accuracy!r}")
    interval = metric.get("ci95")
    if interval is not None and not (len(interval) == 2 and interval[0] <= accuracy <= interval[1]):
        raise ValueError(f"{path}: {name}: 'ci95' must be [low, high] around the accuracy, got {interval!r}")


def _eval_results(evaluation: dict[str, Any]):
    from huggingface_hub import EvalResult

    benchmark = evaluation["benchmark"]
    results = []
    for condition, values in evaluation["conditions"].items():
        slices = [("overall", values.get("overall"))]
        slices += [(f"level_{k}", v) for k, v in sorted(values.get("levels", {}).items())]
        if condition == MAIN_CONDITION:
            slices += sorted(values.get("tasks", {}).items())
        for name, metric in slices:
            if not metric:
                continue
            args = {"n": metric.get("n")}
            if metric.get("ci95"):
                args.update(ci95_low=metric["ci95"][0], ci95_high=metric["ci95"][1])
            if metric.get("chance") is not None:
                args["chance"] = metric["chance"]
            label = name if condition == MAIN_CONDITION else f"{name}, {condition} control"
            results.append(
                EvalResult(
                    task_type=PIPELINE_TAG,
                    task_name="Spatial audio scene analysis",
                    dataset_type=benchmark.get("repo_id") or "hf-spatial/asa-benchmark",
                    dataset_name=benchmark["name"],
                    dataset_split=benchmark.get("split"),
                    dataset_revision=benchmark.get("revision"),
                    metric_type="accuracy",
                    metric_value=round(float(metric["accuracy"]), 4),
                    metric_name=f"Accuracy ({label})",
                    metric_config=f"{condition}/{name}",
                    metric_args={key: value for key, value in args.items() if value is not None},
                )
            )
    return results


def _training_run(state: dict[str, Any] | None) -> dict[str, Any] | None:
    if not state:
        return None
    losses = [entry for entry in state.get("log_history", []) if "loss" in entry]
    evals = [entry for entry in state.get("log_history", []) if "eval_loss" in entry]
    return {
        "global_step": state.get("global_step"),
        "epoch": state.get("epoch"),
        "max_steps": state.get("max_steps"),
        "train_batch_size": state.get("train_batch_size"),
        "first_loss": losses[0]["loss"] if losses else None,
        "last_loss": losses[-1]["loss"] if losses else None,
        "last_eval_loss": evals[-1]["eval_loss"] if evals else None,
    }


def _count_parameters(folder: Path) -> int | None:
    """Tensor elements in the staged safetensors files (header only, no weights loaded)."""
    total = 0
    files = sorted(folder.glob("*.safetensors"))
    for path in files:
        with path.open("rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        total += sum(math.prod(entry["shape"]) for key, entry in header.items() if key != "__metadata__")
    return total or None


# ---------------------------------------------------------------------------------------------- dataset
def dataset_card(
    folder: str | os.PathLike,
    *,
    repo_id: str | None = None,
    name: str | None = None,
    original_card: str | os.PathLike | None = None,
    license: str | None = None,
):
    """The dataset card of a staged simulated dataset, computed from its parquet shards.

    `configs` (and any other metadata the simulator wrote) are kept from `original_card`; without one, a
    `default` config with one split per `data/{split}-*.parquet` prefix is written. `name` (default: the
    folder's) titles the card.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    folder = Path(folder)
    metadata = _card_metadata(original_card)
    shards = sorted((folder / "data").rglob("*.parquet"))
    metadata.setdefault("configs", _default_configs(folder, shards))
    summary = summarise_dataset(folder, shards)
    metadata.update(
        license=license or metadata.get("license") or "other",
        task_categories=metadata.get("task_categories") or ["audio-classification", PIPELINE_TAG],
        tags=sorted({*(metadata.get("tags") or []), *SPATIAL_TAGS, "synthetic", "sound-event-localization"}),
        size_categories=[_size_category(summary["num_rows"])],
        pretty_name=metadata.get("pretty_name") or f"{name or folder.name} (simulated FOA scenes)",
    )
    card_data = DatasetCardData(**metadata)
    return DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATES / "dataset_card.md.jinja"),
        title=card_data.pretty_name,
        repo_id=repo_id or f"USER/{folder.name}",
        **summary,
    )


def summarise_dataset(folder: Path, shards: list[Path]) -> dict[str, Any]:
    """Rows, classes, rooms, positions, generation parameters and cross-split leaks of a dataset's shards."""
    import pyarrow.parquet as pq

    splits: dict[str, dict[str, Any]] = {}
    scenes_by_split: dict[str, list] = defaultdict(list)
    audio_hashes: dict[str, set[str]] = defaultdict(set)
    columns: list[str] = []
    for shard in shards:
        parquet = pq.ParquetFile(shard)
        columns = columns or parquet.schema_arrow.names
        split = _split_of(shard)
        entry = splits.setdefault(split, {"rows": 0, "shards": 0, "bytes": 0})
        entry["rows"] += parquet.metadata.num_rows
        entry["shards"] += 1
        entry["bytes"] += shard.stat().st_size
        names = parquet.schema_arrow.names
        for batch in parquet.iter_batches(batch_size=256, columns=[c for c in ("scene", "audio") if c in names]):
            data = batch.to_pydict()
            for text in data.get("scene", []):
                scenes_by_split[split].append(_scene(text))
            for cell in data.get("audio", []):
                if cell and cell.get("bytes"):
                    audio_hashes[split].add(hashlib.blake2b(cell["bytes"], digest_size=16).hexdigest())
    summary: dict[str, Any] = {
        "num_rows": sum(s["rows"] for s in splits.values()),
        "splits": splits,
        "columns": columns,
        "has_scenes": bool(scenes_by_split),
    }
    if scenes_by_split:
        summary.update(_scene_statistics(scenes_by_split))
        summary["leaks"] = _leak_checks(scenes_by_split, audio_hashes)
    return summary


def _scene(text: str):
    from hf_spatial.acoustics.scene import SceneSpec

    return SceneSpec.from_json(text)


def _scene_statistics(scenes_by_split: dict[str, list]) -> dict[str, Any]:
    from hf_spatial.conventions import azimuth_to_sector

    split_names = sorted(scenes_by_split)
    classes: dict[str, Counter] = {split: Counter() for split in split_names}
    sources_per_scene: dict[str, Counter] = {split: Counter() for split in split_names}
    sectors: dict[str, Counter] = {split: Counter() for split in split_names}
    distance_bins: dict[str, Counter] = {split: Counter() for split in split_names}
    rooms, rt60 = {}, {}
    elevation, distance, volume = [], [], []
    noise, snr, generation = Counter(), [], defaultdict(Counter)
    clips: dict[str, set] = {}
    for split in split_names:
        scenes = scenes_by_split[split]
        for scene in scenes:
            sources_per_scene[split][len(scene.sources)] += 1
            for source in scene.sources:
                classes[split][source.label] += 1
                sectors[split][azimuth_to_sector(source.azimuth)] += 1
                distance_bins[split][_distance_bin(source.distance)] += 1
                elevation.append(source.elevation)
                distance.append(source.distance)
            noise[scene.noise.kind] += 1
            if scene.noise.snr_db is not None:
                snr.append(scene.noise.snr_db)
            volume.append(scene.room.volume)
            for key in ("sample_rate", "duration", "render_mode", "renderer_version"):
                generation[key][str(getattr(scene, key))] += 1
        rooms[split] = len({scene.room.room_id for scene in scenes})
        rt60[split] = _spread([scene.room.rt60 for scene in scenes])
        clips[split] = {source.clip_id for scene in scenes for source in scene.sources}
    all_classes = sorted(set().union(*classes.values()))
    return {
        "class_table": [{"label": c, **{s: classes[s][c] for s in split_names}} for c in all_classes],
        "sources_per_scene": {s: dict(sorted(sources_per_scene[s].items())) for s in split_names},
        "sectors": {s: {k: sectors[s][k] for k in ("front", "left", "back", "right")} for s in split_names},
        "distance_bins": {s: {name: distance_bins[s][name] for name in DISTANCE_BINS} for s in split_names},
        "rooms": rooms,
        "rt60": rt60,
        "elevation": _spread(elevation),
        "distance": _spread(distance),
        "volume": _spread(volume),
        "noise": dict(noise),
        "snr": _spread(snr) if snr else None,
        "generation": {key: dict(values) for key, values in generation.items()},
        "clips": {s: len(clips[s]) for s in split_names},
        "clip_origins": {s: dict(Counter(_clip_origin(clip) for clip in sorted(clips[s]))) for s in split_names},
        "seeds": {s: _spread([scene.seed for scene in scenes_by_split[s]]) for s in split_names},
    }


def _clip_origin(clip_id: str) -> str:
    """The source bank a clip id names by its prefix ("debian:pkg/...", "procedural:...")."""
    for separator in (":", "/"):
        if separator in clip_id:
            return clip_id.split(separator, 1)[0]
    return "unprefixed"


def _leak_checks(scenes_by_split: dict[str, list], audio_hashes: dict[str, set[str]]) -> list[dict[str, Any]]:
    """For every pair of splits: shared scene ids, source clips, rooms and identical audio."""
    keys = {
        "scene ids": lambda scenes: {scene.scene_id for scene in scenes},
        "source clips": lambda scenes: {source.clip_id for scene in scenes for source in scene.sources},
        "rooms": lambda scenes: {scene.room.room_id for scene in scenes},
    }
    names = sorted(scenes_by_split)
    checks = []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = {
                what: len(get(scenes_by_split[first]) & get(scenes_by_split[second])) for what, get in keys.items()
            }
            shared["identical audio"] = len(audio_hashes[first] & audio_hashes[second])
            checks.append({"splits": f"{first} / {second}", **shared, "clean": not any(shared.values())})
    return checks


def _default_configs(folder: Path, shards: list[Path]) -> list[dict[str, Any]]:
    splits = sorted({_split_of(shard) for shard in shards})
    return [
        {
            "config_name": "default",
            "data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split in splits],
        }
    ]


def _split_of(shard: Path) -> str:
    return shard.name.split("-", 1)[0]


DISTANCE_EDGES = (1, 2, 3)
DISTANCE_BINS = (
    *(f"{low}-{high} m" for low, high in zip((0, *DISTANCE_EDGES), DISTANCE_EDGES, strict=False)),
    f">= {DISTANCE_EDGES[-1]} m",
)


def _distance_bin(distance: float) -> str:
    for name, high in zip(DISTANCE_BINS, DISTANCE_EDGES, strict=False):
        if distance < high:
            return name
    return DISTANCE_BINS[-1]


# -------------------------------------------------------------------------------------------- benchmark
def benchmark_card(
    folder: str | os.PathLike, *, repo_id: str | None = None, name: str | None = None, license: str | None = None
):
    """The card of a staged TWNM-layout benchmark: item counts per level and task, answer balance, audio format."""
    import soundfile
    from huggingface_hub import DatasetCard, DatasetCardData

    folder = Path(folder)
    rows = read_twnm_benchmark(folder)
    levels = Counter(int(row["level"]) for row in rows)
    tasks = Counter((int(row["level"]), row["task"]) for row in rows)
    letters = Counter(row["answer_letter"] for row in rows)
    files = sorted({row["file_name"] for row in rows})
    infos = [soundfile.info(str(folder / name)) for name in files]
    patterns = sorted({(str(Path(name).parent / f"*{Path(name).suffix}")).removeprefix("./") for name in files})
    card_data = DatasetCardData(
        license=license or "other",
        task_categories=[PIPELINE_TAG, "question-answering"],
        tags=[*SPATIAL_TAGS, "benchmark", "twnm", "synthetic"],
        size_categories=[_size_category(len(rows))],
        pretty_name=f"{name or folder.name} (spatial audio scene analysis benchmark)",
        configs=[{"config_name": "default", "data_files": [{"split": "test", "path": ["metadata.jsonl", *patterns]}]}],
    )
    return DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATES / "benchmark_card.md.jinja"),
        title=card_data.pretty_name,
        repo_id=repo_id or f"USER/{folder.name}",
        num_items=len(rows),
        num_files=len(files),
        levels=dict(sorted(levels.items())),
        tasks=[{"level": level, "task": task, "count": count} for (level, task), count in sorted(tasks.items())],
        letters={letter: letters[letter] for letter in "ABCD"},
        channels=sorted({info.channels for info in infos}),
        sample_rates=sorted({info.samplerate for info in infos}),
        duration=_spread([info.duration for info in infos]),
        formats=sorted({f"{info.format} {info.subtype}" for info in infos}),
        extra_fields=sorted(set().union(*(row.keys() for row in rows)) - {*TWNM_COLUMNS, "audio_path"}),
    )


# --------------------------------------------------------------------------------------------- helpers
def redact_local_paths(value: Any) -> Any:
    """Replace absolute local paths in a JSON-like value by `<local>/NAME`: cards never show a machine's paths."""
    if isinstance(value, dict):
        return {key: redact_local_paths(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_local_paths(item) for item in value]
    if isinstance(value, str) and ABSOLUTE_PATH.match(value) and not value.startswith("//"):
        return f"<local>/{Path(value).name}"
    return value


def _is_repo_id(name: str) -> bool:
    return not ABSOLUTE_PATH.match(name) and not name.startswith(".") and name.count("/") == 1


def _card_metadata(card_path) -> dict[str, Any]:
    if card_path is None or not Path(card_path).is_file():
        return {}
    from huggingface_hub import DatasetCard

    return DatasetCard.load(card_path).data.to_dict()


def _read_json(path) -> dict[str, Any] | None:
    if path is None or not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M"
