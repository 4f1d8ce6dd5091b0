"""Shared test set-up: offline hub, a helper to run the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run the long tests (marked slow)")


def pytest_collection_modifyitems(config, items):
    # The long modes (many fuzz examples, many kill points) run only when asked for: CI stays short.
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long mode: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def run_cli(*args: str, cwd: Path | None = None, check: bool = True, timeout: float = 600, env: dict | None = None):
    """Run `python -m hf_spatial ARGS` with this checkout importable; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "hf_spatial", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"hf-spatial {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def scenes_dir(tmp_path_factory) -> Path:
    """A small simulated dataset (12 train, 4 test scenes of 2 s, procedural sources)."""
    from hf_spatial.data.simulate import simulate

    folder = tmp_path_factory.mktemp("data") / "scenes"
    simulate(folder, num_scenes=12, split="train", duration=2.0, progress=False)
    simulate(folder, num_scenes=4, split="test", seed=1, duration=2.0, progress=False)
    return folder


@pytest.fixture(scope="session")
def questions_dir(scenes_dir, tmp_path_factory) -> Path:
    """The QA dataset of `scenes_dir` (hf-spatial questions)."""
    from hf_spatial.tasks.dataset import build_question_dataset

    folder = tmp_path_factory.mktemp("data") / "questions"
    build_question_dataset(scenes_dir, folder, seed=0)
    return folder
