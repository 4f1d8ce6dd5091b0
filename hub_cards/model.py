"""The model card of a staged model folder: model-index results from `eval_results.json`, the curriculum from
`training_stages.json`, the run from `trainer_state.json` (see the package docstring for their shapes)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from hf_spatial.hub_cards.common import (
    ABSOLUTE_PATH,
    PIPELINE_TAG,
    SPATIAL_TAGS,
    TEMPLATES,
    is_repo_id,
    read_json,
    redact_local_paths,
)

MAIN_CONDITION = "full"


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
    config = read_json(folder / "config.json") or {}
    adapter = read_json(folder / "adapter_config.json")
    history = read_json(stages) or {"stages": []}
    base_model = base_model or history.get("base_model") or (adapter or {}).get("base_model_name_or_path")
    base_model = None if base_model is None or ABSOLUTE_PATH.match(base_model) else base_model
    hub_datasets = datasets or sorted(
        {name for stage in history["stages"] for name in stage.get("datasets", []) if is_repo_id(name)}
    )
    history["stages"] = [redact_local_paths(stage) for stage in history.get("stages", [])]
    evaluation = read_results(results)
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
        training_run=_training_run(read_json(trainer_state)),
        evaluation=evaluation,
    )


def read_results(path) -> dict[str, Any] | None:
    """Evaluation results as the card shows them (one row per slice: the model and every control), checked."""
    results = read_json(path)
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
