import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
from datasets.exceptions import NonMatchingSplitsSizesError

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.data import read_foa
from hf_spatial.data.folders import load_folder
from hf_spatial.data.simulate import simulate
from tests.conftest import REPO_ROOT, run_cli

SMALL = ("--num-scenes", "4", "--shard-size", "2", "--duration", "1.5", "--no-progress")


def _files(folder: Path) -> dict[str, bytes]:
    """Every visible file of a dataset folder (hidden work folders excluded), by relative path."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    }


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "ds"
    run_cli("simulate", "--out", str(out), *SMALL, "--workers", "1")
    run_cli("simulate", "--out", str(out), *SMALL, "--split", "test", "--seed", "1", "--workers", "1")
    return out


def test_load_dataset_round_trip_gives_4_channel_scenes(dataset_dir):
    assert sorted(_files(dataset_dir)) == [
        "README.md",
        "data/test-00000-of-00002.parquet",
        "data/test-00001-of-00002.parquet",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "generation/test.json",
        "generation/train.json",
    ]
    loaded = datasets.load_dataset(str(dataset_dir))
    assert set(loaded) == {"train", "test"} and loaded["train"].num_rows == 4
    train = loaded["train"].cast_column("audio", datasets.Audio(decode=False))
    for row in train:
        foa = read_foa(row["audio"])
        assert foa.shape == (4, 36000) and foa.dtype == np.float32
        assert np.max(np.abs(foa)) <= 10 ** (-1 / 20) + 1e-4
        scene = SceneSpec.from_json(row["scene"])
        assert scene.scene_id == row["scene_id"] and scene.labels == row["labels"]
        assert row["num_sources"] == len(scene.sources) and row["room_id"] == scene.room.room_id
        assert row["audio"]["path"] == f"{scene.scene_id}.flac" and scene.render_mode == "hybrid"
    test = loaded["test"]
    assert all(room.startswith("test-room-") for room in test["room_id"])
    train_clips = {s["clip_id"] for row in train for s in SceneSpec.from_json(row["scene"]).to_dict()["sources"]}
    test_clips = {s.clip_id for text in test["scene"] for s in SceneSpec.from_json(text).sources}
    assert train_clips.isdisjoint(test_clips)
    card = (dataset_dir / "README.md").read_text()
    assert "path: data/train-*.parquet" in card and "path: data/test-*.parquet" in card
    assert "CC0-1.0" in card and "hf-spatial simulate --out OUT --num-scenes 4" in card


def test_same_arguments_give_the_same_bytes_whatever_the_workers(dataset_dir, tmp_path):
    again = simulate(tmp_path / "again", num_scenes=4, shard_size=2, duration=1.5, workers=2, progress=False)
    reference = {k: v for k, v in _files(dataset_dir).items() if "test" not in k and k != "README.md"}
    assert {k: v for k, v in _files(again).items() if k != "README.md"} == reference


def test_killed_run_resumes_to_identical_bytes(tmp_path):
    args = ("--num-scenes", "6", "--shard-size", "1", "--duration", "1.5", "--no-progress", "--workers", "1")
    reference = tmp_path / "reference"
    run_cli("simulate", "--out", str(reference), *args)
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "hf_spatial", "simulate", "--out", str(killed), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not list((killed / "data").glob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    shards = sorted(p.name for p in (killed / "data").glob("*.parquet"))
    assert 1 <= len(shards) < 6, "the run should have been killed part-way"
    # The card already declares the full split: datasets refuses the partial folder instead of loading part of it.
    with pytest.raises(NonMatchingSplitsSizesError):
        datasets.load_dataset(str(killed))
    with pytest.raises(ValueError, match=r"the train split is incomplete .* Finish it by re-running `hf-spatial"):
        load_folder(killed, "train")
    # Every visible shard is complete; whatever was being written stayed in .partial.
    for shard in shards:
        assert (killed / "data" / shard).read_bytes() == (reference / "data" / shard).read_bytes()
    run_cli("simulate", "--out", str(killed), *args)
    assert _files(killed) == _files(reference)


def test_changed_arguments_for_an_existing_split_are_refused(dataset_dir):
    result = run_cli("simulate", "--out", str(dataset_dir), *SMALL[:4], "--mode", "exact", check=False)
    assert result.returncode == 2
    assert "already holds a train split generated with other parameters" in result.stderr
    assert "'mode': ('hybrid', 'exact')" in result.stderr


def test_bad_inputs_give_clear_errors(tmp_path):
    result = run_cli("simulate", "--out", str(tmp_path / "x"), "--sources", str(tmp_path / "nothing"), check=False)
    assert result.returncode == 2 and "Unknown sources" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run_cli("simulate", "--out", str(tmp_path / "y"), "--sources", str(tmp_path / "empty"), check=False)
    assert result.returncode == 2 and "No audio files found" in result.stderr
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((2400, 2), dtype=np.float32), 24000)
    with pytest.raises(ValueError, match=r"expected 4-channel First-Order Ambisonics .* got stereo"):
        read_foa(str(stereo))
    with pytest.raises(ValueError, match="Could not decode FOA audio"):
        read_foa({"bytes": b"not a flac file", "path": "x.flac"})
    with pytest.raises(ValueError, match="decode=False"):
        read_foa({"bytes": None, "path": None})


def test_folder_regenerated_in_place_loads_fresh_rows(tmp_path):
    # datasets caches a folder with YAML `configs` by its card; the card's split sizes must change with the data.
    import shutil

    from datasets import load_dataset

    folder = tmp_path / "scenes"
    simulate(folder, num_scenes=2, duration=1.0, workers=1, progress=False)
    assert load_dataset(str(folder), split="train").num_rows == 2
    shutil.rmtree(folder)
    simulate(folder, num_scenes=3, duration=1.0, workers=1, progress=False)
    assert load_dataset(str(folder), split="train").num_rows == 3


def test_shard_jobs_and_the_finishing_run_give_the_bytes_of_one_run(tmp_path):
    reference = simulate(tmp_path / "reference", num_scenes=4, shard_size=2, duration=1.5, workers=1, progress=False)
    out = tmp_path / "sharded"
    args = [sys.executable, "-m", "hf_spatial", "simulate", "--out", str(out), *SMALL, "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    jobs = [  # at the same time, into one folder, as a Slurm array runs them
        subprocess.Popen([*args, "--shard-index", str(index), "--num-shards", "2"], env=env, stderr=subprocess.PIPE)
        for index in range(2)
    ]
    for job in jobs:
        assert job.wait(timeout=300) == 0, job.stderr.read().decode()[-3000:]
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(p.name for p in (reference / "data").iterdir())
    # Every shard is there, but the split is complete only once the finishing run has recorded it.
    with pytest.raises(ValueError, match="the train split is incomplete"):
        load_folder(out, "train")
    result = run_cli("simulate", "--out", str(out), *SMALL, "--workers", "1")
    assert "0 shard(s) to render" in result.stderr
    assert _files(out) == _files(reference)


def test_a_shard_index_out_of_range_is_refused(tmp_path):
    result = run_cli(
        "simulate", "--out", str(tmp_path / "x"), *SMALL, "--shard-index", "2", "--num-shards", "2", check=False
    )
    assert result.returncode == 2
    assert "--shard-index must be in 0..1 (--num-shards 2), got 2" in result.stderr
    assert not (tmp_path / "x").exists()
