"""What every card shares: the templates' folder, the tags, reading JSON records and card metadata, value spreads,
Hub size categories, and keeping local paths out of cards."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent  # the .md.jinja files ship beside the modules (package data)
SPATIAL_TAGS = ["hf-spatial", "spatial-audio", "ambisonics", "foa"]
PIPELINE_TAG = "audio-text-to-text"
ABSOLUTE_PATH = re.compile(r"^(?:/|~|[A-Za-z]:[\\/])")


def redact_local_paths(value: Any) -> Any:
    """Replace absolute local paths in a JSON-like value by `<local>/NAME`: cards never show a machine's paths."""
    if isinstance(value, dict):
        return {key: redact_local_paths(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_local_paths(item) for item in value]
    if isinstance(value, str) and ABSOLUTE_PATH.match(value) and not value.startswith("//"):
        return f"<local>/{Path(value).name}"
    return value


def is_repo_id(name: str) -> bool:
    """A Hub `owner/name`, not a local path."""
    return not ABSOLUTE_PATH.match(name) and not name.startswith(".") and name.count("/") == 1


def card_metadata(card_path) -> dict[str, Any]:
    """The YAML metadata of an existing dataset card, or {} without one."""
    if card_path is None or not Path(card_path).is_file():
        return {}
    from huggingface_hub import DatasetCard

    return DatasetCard.load(card_path).data.to_dict()


def read_json(path) -> dict[str, Any] | None:
    """A JSON record, or None when `path` is None or not a file (every record a card reads is optional)."""
    if path is None or not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def spread(values: list[float]) -> dict[str, float] | None:
    """min / median / max of `values`, or None when empty."""
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def size_category(rows: int) -> str:
    """The Hub `size_categories` value of a row count."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M"
