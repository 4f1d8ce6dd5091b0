"""What a trained folder records about how it was made, and the hook that publishes it.

`training_stages.json` holds the curriculum history of a checkpoint (written here, read by the model card in
`hf_spatial.hub_cards`). Publishing a finished stage (`--publish_repo_id`) is the hub layer's job (stage, validate,
upload); training imports nothing above itself, so `hf_spatial.hub` installs its pusher here when it is imported.
The `hf-spatial` command line always imports it; a Python caller that publishes from a stage imports it first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hf_spatial.atomic import write_text_atomic

STAGES_FILE = "training_stages.json"

# (folder, repo_id, private) -> URL of the uploaded repo.
CheckpointPusher = Callable[[Path, str, bool], str]
_checkpoint_pusher: CheckpointPusher | None = None


def record_training_stage(
    output_dir: str | os.PathLike,
    *,
    stage: str,
    config: dict[str, Any],
    datasets: list[str] | None = None,
    init_from: str | os.PathLike | None = None,
    base_model: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Append one curriculum stage to `output_dir/training_stages.json` (the history the model card shows).

    The history of the checkpoint the stage started from (`init_from`) is carried over, so the final model's
    card lists every stage. See `hf_spatial.hub_cards` for the file's shape.
    """
    output_dir = Path(output_dir)
    history: dict[str, Any] = {"base_model": base_model, "stages": []}
    if init_from is not None and (Path(init_from) / STAGES_FILE).is_file():
        history = json.loads((Path(init_from) / STAGES_FILE).read_text(encoding="utf-8"))
    if base_model is not None:
        history["base_model"] = base_model
    history["stages"].append(
        {"stage": stage, "datasets": list(datasets or []), "config": config, "metrics": dict(metrics or {})}
    )
    return write_text_atomic(output_dir / STAGES_FILE, json.dumps(history, indent=2, default=str) + "\n")


def set_checkpoint_pusher(pusher: CheckpointPusher) -> None:
    """Install the function that publishes a finished stage's folder (`hf_spatial.hub` installs its own)."""
    global _checkpoint_pusher
    _checkpoint_pusher = pusher


def push_stage_output(folder: Path, repo_id: str, private: bool) -> str:
    """Publish a finished stage's folder with the installed pusher; returns the repo URL."""
    if _checkpoint_pusher is None:
        raise RuntimeError(
            f"publish_repo_id={repo_id!r} is set but no Hub publisher is installed: load the `hf_spatial.hub` module "
            "before running the stage (the `hf-spatial` command does), or publish the folder afterwards with "
            "`hf-spatial publish model`."
        )
    return _checkpoint_pusher(folder, repo_id, private)
