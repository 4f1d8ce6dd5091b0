"""Uploading a staged repo, `publish` (stage, validate, upload) and `push_checkpoint`, which training's
`--publish_repo_id` reaches through the pusher installed into `training.records` here."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hf_spatial.hub.leaks import find_leaks
from hf_spatial.hub.staged import KINDS, StagedRepo, human_size
from hf_spatial.hub.staging import STAGERS
from hf_spatial.training.records import set_checkpoint_pusher

logger = logging.getLogger(__name__)

# Above this total size huggingface_hub 1.x's `upload_large_folder` (resumable, multi-commit) is used; hub 2.x
# dropped it because `upload_folder` itself batches and resumes large uploads.
LARGE_FOLDER_BYTES = 5 * 1024**3


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
        logger.info(
            "uploading %s with upload_large_folder (resumable: re-run to continue)", human_size(staged.total_size)
        )
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
    logger.info("pushed checkpoint %s (%d files, %s)", folder, len(staged.files), human_size(staged.total_size))
    return url


# Training publishes through this (`--publish_repo_id`); looked up at call time so it can be replaced.
set_checkpoint_pusher(lambda folder, repo_id, private: push_checkpoint(folder, repo_id, private=private))


def _validate_no_leaks_for_token(staged: StagedRepo, token: str | None) -> None:
    # stage_* already checked the environment's tokens; an explicit token may differ from those.
    if token:
        problems = find_leaks(staged.folder, [f.path for f in staged.files], token=token)
        if problems:
            raise ValueError("refusing to publish: the staged files contain the access token you passed")
