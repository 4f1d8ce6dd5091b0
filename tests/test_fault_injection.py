"""Fault injection: `simulate`, `questions`, `benchmark build` and `train` are killed with SIGKILL at random instants
(train also inside its checkpoint writes, with an older complete checkpoint present); after each kill nothing
partial is visible, and re-running the same command reaches the bytes of an uninterrupted run.

The CI runs one kill per command (seeded, so a failure reproduces); `pytest --run-slow` runs many more.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hf_spatial.cli import main
from hf_spatial.training.stages import checkpoint_problem, run_stage
from tests.checkpoint_kill import POINTS
from tests.conftest import REPO_ROOT
from tests.test_simulate import _files

KILLS = [pytest.param(1, id="ci"), pytest.param(8, marks=pytest.mark.slow, id="long")]


def kill_during(argv: list[str], started: Path | None, delay: float = 0.0, module: str = "hf_spatial") -> int:
    """Run `python -m MODULE ARGV`; once `started` exists, wait `delay` seconds and SIGKILL it (None: let it run, for
    a process that kills itself). Returns the exit code (-9 when killed, 0 when it finished first)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", module, *argv], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    if started is not None:
        deadline = time.monotonic() + 600
        while not started.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)  # a no-op when it has already exited
    _, stderr = process.communicate(timeout=600)
    assert process.returncode in (0, -signal.SIGKILL), stderr.decode()
    return process.returncode


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


@pytest.mark.parametrize("kills", KILLS)
def test_simulate_killed_at_random_instants_resumes_to_the_same_bytes(tmp_path, kills):
    args = ["--num-scenes", "6", "--shard-size", "1", "--duration", "1.0", "--workers", "1", "--no-progress"]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    seconds = timed(main, ["simulate", "--out", str(reference), *args])
    rng = random.Random(kills)
    for _ in range(kills):  # each run resumes the last one and is killed in turn
        kill_during(["simulate", "--out", str(killed), *args], killed, rng.uniform(0, seconds))
    assert main(["simulate", "--out", str(killed), *args]) == 0
    assert _files(killed) == _files(reference)


@pytest.mark.parametrize("kills", KILLS)
def test_questions_killed_at_random_instants_reruns_to_the_same_bytes(tmp_path, scenes_dir, questions_dir, kills):
    # `questions_dir` is this command's uninterrupted output (conftest.py).
    rng = random.Random(kills)
    for index in range(kills):
        out = tmp_path / f"qa{index}"
        argv = ["questions", "--dataset", str(scenes_dir), "--out", str(out), "--seed", "0"]
        # The output is built in a hidden sibling and published when complete: kill while it is being written.
        kill_during(argv, tmp_path / f".{out.name}.tmp", rng.uniform(0, 0.5))
        assert not out.exists() or _files(out) == _files(questions_dir), "a kill left a partial output"
        if not out.exists():
            assert main(argv) == 0
        assert _files(out) == _files(questions_dir)


def test_benchmark_build_killed_while_writing_reruns_to_the_same_bytes(tmp_path):
    argv = ["benchmark", "build", "--seed", "3", "--num-items", "6", "--duration", "1.0"]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert main([*argv, "--out", str(reference)]) == 0
    kill_during([*argv, "--out", str(killed)], tmp_path / f".{killed.name}.tmp", random.Random(0).uniform(0, 0.3))
    assert not killed.exists() or _files(killed) == _files(reference), "a kill left a partial benchmark"
    if not killed.exists():
        assert main([*argv, "--out", str(killed)]) == 0
    assert _files(killed) == _files(reference)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["questions", "benchmark"])
def test_overwriting_a_folder_killed_at_random_instants_never_leaves_half_of_it(tmp_path, scenes_dir, command):
    argv = ["questions", "--dataset", str(scenes_dir)] if command == "questions" else ["benchmark", "build"]
    argv += ["--seed", "3"] + (["--num-items", "6", "--duration", "1.0"] if command == "benchmark" else [])
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 0
    reference = _files(out)
    rng = random.Random(1)
    for _ in range(6):
        kill_during([*argv, "--out", str(out), "--overwrite"], tmp_path / f".{out.name}.tmp", rng.uniform(0, 1.0))
        assert not out.exists() or _files(out) == reference, "a kill left a half-replaced folder"
    assert main([*argv, "--out", str(out), "--overwrite"]) == 0
    assert _files(out) == reference


# Two steps of two clips, a checkpoint after each: the kill lands in checkpoint-2's write, checkpoint-1 is complete.
STEPS = ["--max_steps", "2", "--save_steps", "1", "--per_device_train_batch_size", "2", "--eval_split", "none",
         "--logging_steps", "1", "--report_to", "none"]  # fmt: skip
CHECKPOINT_KILLS = [pytest.param("weights", 0.5, id="ci-weights-half-written")] + [
    pytest.param(point, fraction, marks=pytest.mark.slow, id=f"{point}-{fraction}")
    for point in POINTS
    for fraction in ((0.0,) if point == "start" else (0.0, 0.3, 0.9))
]


@pytest.fixture(scope="module")
def trained_weights(scenes_dir, tmp_path_factory) -> bytes:
    """The final weights of an uninterrupted run of the encoder stage."""
    out = tmp_path_factory.mktemp("train") / "reference"
    run_stage("encoder", "tiny", ["--dataset_dir", str(scenes_dir), "--output_dir", str(out), *STEPS])
    return (out / "model.safetensors").read_bytes()


@pytest.mark.parametrize(("point", "fraction"), CHECKPOINT_KILLS)
def test_train_killed_inside_a_checkpoint_write_resumes_from_the_older_one(
    scenes_dir, trained_weights, tmp_path, caplog, point, fraction
):
    out = tmp_path / "run"
    args = ["--dataset_dir", str(scenes_dir), "--output_dir", str(out), *STEPS]
    argv = ["2", point, str(fraction), "train", "--stage", "encoder", *args]
    returncode = kill_during(argv, None, module="tests.checkpoint_kill")
    assert returncode == -signal.SIGKILL
    assert checkpoint_problem(out / "checkpoint-1") is None and checkpoint_problem(out / "checkpoint-2") is not None
    with caplog.at_level(logging.INFO, logger="hf_spatial.training.stages"):
        run_stage("encoder", "tiny", args)
    assert f"skipping incomplete checkpoint {out / 'checkpoint-2'}" in caplog.text
    assert f"resuming from {out / 'checkpoint-1'}" in caplog.text
    assert (out / "model.safetensors").read_bytes() == trained_weights
