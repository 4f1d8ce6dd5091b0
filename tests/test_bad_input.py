"""Wrong, corrupt or foreign input is refused in one line naming the file (and row) and the fix, exit code 2 on the
command line; nothing is accepted silently."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets.exceptions import DataFilesNotFoundError, NonMatchingSplitsSizesError

import hf_spatial.data.simulate as simulate_module
from hf_spatial.cli import main
from hf_spatial.data.folders import load_folder
from hf_spatial.data.simulate import simulate
from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor
from hf_spatial.models.tiny import build_tiny_processor
from hf_spatial.tasks.rewards import evidence_reward

SMALL = ["--num-scenes", "4", "--shard-size", "2", "--duration", "1.0", "--no-progress", "--workers", "1"]


def error_line(capsys, *argv: str) -> str:
    """Run the CLI in-process; assert exit code 2 and no traceback, and return the error line."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"hf-spatial {argv[0]}: error: "), err
    return line


@pytest.fixture
def scene_copy(scenes_dir, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "scenes"
    shutil.copytree(scenes_dir, folder)
    # datasets keys its cache of a local folder on the card: a cache of its own, so the copy's shards are read
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    return folder


def test_cli_bad_input_table(capsys, tmp_path, scenes_dir, questions_dir):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert "--model /nonexistent does not exist; pass a model folder" in error_line(
        capsys, "evaluate", "--model", "/nonexistent", "--benchmark", str(questions_dir), "--out", str(tmp_path / "e")
    )
    line = error_line(
        capsys, "questions", "--dataset", str(scenes_dir), "--out", str(tmp_path / "q"), "--rows-per-shard", "0"
    )
    assert "--rows-per-shard must be at least 1, got 0" in line and not (tmp_path / "q").exists()
    for argv in (
        ["questions", "--dataset", str(scenes_dir)],
        ["simulate", *SMALL],
        ["benchmark", "build", "--num-items", "4"],
        ["evaluate", "--baseline", "intensity", "--benchmark", str(questions_dir)],
    ):
        assert f"--out {a_file} is not a folder" in error_line(capsys, *argv, "--out", str(a_file))
        assert f"({a_file} is a file)" in error_line(capsys, *argv, "--out", str(a_file / "sub"))


def test_feature_extractor_sampling_rate_and_amplitude_checks():
    extractor = FOAFeatureExtractor()
    clip = (np.random.default_rng(0).standard_normal((4, 24000)) * 0.1).astype(np.float32)
    as_float = extractor(clip, sampling_rate=24000.0, return_tensors="np")  # a whole number of Hz as a float is fine
    as_int = extractor(clip, sampling_rate=24000, return_tensors="np")
    assert all(np.array_equal(as_float[key], as_int[key]) for key in as_int)
    for rate in (0, -24000, 24000.5, float("nan"), "24k"):
        with pytest.raises(ValueError, match="sampling_rate must be a"):
            extractor(clip, sampling_rate=rate)
    for scale in (32768.0, 1e30):  # int16-scale floats; absurd amplitudes that made NaN features
        with pytest.raises(ValueError, match=r"far above full scale .* Divide them by 32768"):
            extractor(clip * scale, sampling_rate=24000)


def test_processor_keeps_the_extractor_hint_and_does_not_assume_the_rate(caplog):
    processor = build_tiny_processor()
    text = "<|audio_bos|><|AUDIO|><|audio_eos|>Where?"
    clip = (np.random.default_rng(0).standard_normal((4, 24000)) * 0.1).astype(np.float32)
    with pytest.raises(ValueError, match=r"got shape \(24000, 4\).* pass its transpose `foa.T`"):
        processor(text=text, audio=clip.T, sampling_rate=24000)
    logging.Logger.warning_once.cache_clear()  # transformers warns once per message and process
    with caplog.at_level(logging.WARNING):
        processor(text=text, audio=clip)
    assert "No sampling_rate passed to FOAFeatureExtractor; assuming 24000 Hz" in caplog.text


def test_evidence_that_is_not_a_json_object_gives_a_reward():
    for cell in ("[1, 2]", "3", "null", '"north"', "true", "{not json"):
        assert evidence_reward(None, ["azimuth 30 degrees"], evidence=[cell]) == [0.0]


def test_a_failed_simulate_writes_nothing_and_the_corrected_command_runs(capsys, tmp_path):
    out = tmp_path / "ds"
    assert "Unknown sources" in error_line(capsys, "simulate", "--out", str(out), *SMALL, "--sources", "procedurl")
    assert "duration must be positive" in error_line(
        capsys, "simulate", "--out", str(out), *SMALL[:4], "--duration", "0"
    )
    assert not out.exists()
    assert main(["simulate", "--out", str(out), *SMALL]) == 0
    assert datasets.load_dataset(str(out), split="train").num_rows == 4


@pytest.mark.parametrize("shards_done", [0, 1])
def test_an_interrupted_simulate_folder_does_not_load_as_a_partial_dataset(tmp_path, monkeypatch, shards_done):
    out = tmp_path / "ds"
    write_shard = simulate_module._write_shard

    def interrupted(index):
        if index >= shards_done:
            raise KeyboardInterrupt
        return write_shard(index)

    monkeypatch.setattr(simulate_module, "_write_shard", interrupted)
    with pytest.raises(KeyboardInterrupt):
        simulate(out, num_scenes=2, shard_size=1, duration=0.5, progress=False)
    # Killed before its first shard the folder once loaded generation/train.json as a 1-row dataset; after one
    # shard, as half the split. (Re-runs finishing such folders: test_fault_injection.py.)
    with pytest.raises(DataFilesNotFoundError if shards_done == 0 else NonMatchingSplitsSizesError):
        datasets.load_dataset(str(out))
    with pytest.raises(ValueError, match=rf"the train split is incomplete \({shards_done} of 2 shards.*re-running"):
        load_folder(out, "train")


def test_a_truncated_shard_is_named_and_simulate_renders_it_again(capsys, tmp_path, scene_copy):
    shard = scene_copy / "data" / "train-00000-of-00001.parquet"
    original = shard.read_bytes()
    shard.write_bytes(original[: len(original) // 2])
    line = error_line(capsys, "questions", "--dataset", str(scene_copy), "--out", str(tmp_path / "q"))
    assert f"{shard} is truncated or corrupt" in line and "re-run `hf-spatial simulate --out" in line
    line = error_line(
        capsys, "train", "--stage", "encoder", "--dataset_dir", str(scene_copy), "--output_dir", str(tmp_path / "r")
    )
    assert f"{shard} is truncated or corrupt" in line
    record = json.loads((scene_copy / "generation" / "train.json").read_text())
    command = record["command"].split()
    assert main([*command[1:3], str(scene_copy), *command[4:], "--no-progress"]) == 0
    assert shard.read_bytes() == original


def test_a_shard_with_corrupt_pages_is_named(capsys, tmp_path, scene_copy):
    shard = scene_copy / "data" / "test-00000-of-00001.parquet"
    data = bytearray(shard.read_bytes())
    data[4:68] = bytes(64)  # the header of the first data page (after the magic bytes): the footer still parses
    shard.write_bytes(bytes(data))
    line = error_line(capsys, "questions", "--dataset", str(scene_copy), "--out", str(tmp_path / "q"))
    assert f"{shard} cannot be read" in line and "re-run `hf-spatial simulate --out" in line


def test_an_undecodable_audio_cell_is_refused_with_its_shard_and_row(capsys, tmp_path, scene_copy):
    shard = scene_copy / "data" / "train-00000-of-00001.parquet"
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[5]["audio"]["bytes"] = rows[5]["audio"]["bytes"][:3000]  # a FLAC cut short
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    line = error_line(capsys, "questions", "--dataset", str(scene_copy), "--out", str(tmp_path / "q"))
    assert f"{shard} row 5 (scene {rows[5]['scene_id']}): the audio cell does not decode" in line
    assert not (tmp_path / "q").exists()


def test_wrong_kinds_of_folder_are_named(capsys, tmp_path, scenes_dir, questions_dir):
    line = error_line(capsys, "questions", "--dataset", str(questions_dir), "--out", str(tmp_path / "q"))
    assert f"{questions_dir} is a question dataset" in line and "the scene folder the questions were made from" in line
    out = ["--output_dir", str(tmp_path / "run")]
    line = error_line(capsys, "train", "--stage", "align", "--dataset_dir", str(questions_dir), *out)
    assert "but the align stage reads simulated scenes" in line
    line = error_line(capsys, "train", "--stage", "sft", "--dataset_dir", str(scenes_dir), *out)
    assert f"make them with `hf-spatial questions --dataset {scenes_dir} --out QA_FOLDER`" in line


def test_a_missing_held_out_split_suggests_eval_split_none(capsys, tmp_path):
    simulate(tmp_path / "train-only", num_scenes=2, duration=1.0, progress=False)
    argv = [
        "train",
        "--stage",
        "encoder",
        "--dataset_dir",
        str(tmp_path / "train-only"),
        "--output_dir",
        str(tmp_path / "r"),
    ]
    line = error_line(capsys, *argv)
    assert "has no 'test' split (it has: train)" in line and "--eval_split none" in line
