"""Hub cards for models, simulated datasets and benchmarks, computed from the folders they describe.

One module per card (`model`, `dataset`, `benchmark`) and what they share (`common`). The Jinja templates beside
them (`model_card.md.jinja`, `dataset_card.md.jinja`, `benchmark_card.md.jinja`) are rendered with
huggingface_hub's `ModelCard.from_template` / `DatasetCard.from_template`. This folder sits at the top of the
repository and installs as the package `hf_spatial.hub_cards` (pyproject `package-dir`), templates included as
package data, so an installed hf-spatial finds them.

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

from hf_spatial.hub_cards.benchmark import benchmark_card
from hf_spatial.hub_cards.common import TEMPLATES, redact_local_paths
from hf_spatial.hub_cards.dataset import dataset_card, summarise_dataset
from hf_spatial.hub_cards.model import model_card, read_results

__all__ = [
    "TEMPLATES",
    "benchmark_card",
    "dataset_card",
    "model_card",
    "read_results",
    "redact_local_paths",
    "summarise_dataset",
]
