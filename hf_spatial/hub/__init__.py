"""Publishing to the Hugging Face Hub: stage, validate and upload model, dataset and benchmark repos.

Publishing is done in two steps so that what reaches the Hub is exactly what was checked:

1. `stage_model` / `stage_dataset` / `stage_benchmark` copy the files that belong in the repo into a fresh
   staging folder (weights as safetensors only, remote-code files named by `auto_map`, processor, generation
   config, LoRA adapter, data shards), render the card from the folder's own contents (`hf_spatial.hub_cards`)
   and validate the staging folder: it loads with the Auto classes / `load_dataset`, the card's YAML parses, and
   no text holds a token or a local absolute path.
2. `upload` creates the repo and uploads the staging folder as it is.

One module per job: `staging` (copy and render), `validation` (load as a user will), `leaks` (tokens and local
paths), `transfer` (upload, `publish`, `push_checkpoint`), `staged` (what a staged repo holds). `publish` chains
both; `push_checkpoint` is the `--push-to-hub` of the training stages. Tokens come from the
usual huggingface_hub login (`hf auth login`, `HF_TOKEN`); they are never printed or written.
"""

from hf_spatial.hub.leaks import find_leaks, known_tokens
from hf_spatial.hub.staged import KINDS, REPO_TYPE, StagedFile, StagedRepo
from hf_spatial.hub.staging import STAGERS, stage_benchmark, stage_dataset, stage_model
from hf_spatial.hub.transfer import check_repo_id, publish, push_checkpoint, upload
from hf_spatial.hub.validation import VALIDATORS, validate_benchmark, validate_dataset, validate_model

__all__ = [
    "KINDS",
    "REPO_TYPE",
    "STAGERS",
    "VALIDATORS",
    "StagedFile",
    "StagedRepo",
    "check_repo_id",
    "find_leaks",
    "known_tokens",
    "publish",
    "push_checkpoint",
    "stage_benchmark",
    "stage_dataset",
    "stage_model",
    "upload",
    "validate_benchmark",
    "validate_dataset",
    "validate_model",
]
