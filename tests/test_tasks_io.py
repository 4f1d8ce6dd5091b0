"""TWNM benchmark interchange and the `hf-spatial questions` command on a dataset folder of the contract."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from hf_spatial.tasks import generate_questions, parse_answer
from hf_spatial.tasks.twnm import TWNM_COLUMNS, read_twnm_benchmark, write_twnm_benchmark
from tests.conftest import run_cli
from tests.scene_factory import random_scene


def flac_bytes(seed: int, frames: int = 2400) -> bytes:
    buffer = io.BytesIO()
    data = np.random.default_rng(seed).uniform(-0.5, 0.5, (frames, 4)).astype(np.float32)
    sf.write(buffer, data, 24000, format="FLAC", subtype="PCM_24")
    return buffer.getvalue()


def test_twnm_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    scenes = [random_scene(rng, f"scene{i}") for i in range(3)]
    items = [item for seed, scene in enumerate(scenes) for item in generate_questions(scene, seed)]
    audio = {scene.scene_id: flac_bytes(i) for i, scene in enumerate(scenes)}
    metadata = write_twnm_benchmark(items, lambda item: audio[item["scene_id"]], tmp_path / "bench")
    lines = [json.loads(line) for line in metadata.read_text().splitlines()]
    assert all(set(TWNM_COLUMNS) <= set(line) for line in lines)
    read = read_twnm_benchmark(tmp_path / "bench")
    assert [{k: r[k] for k in items[0]} for r in read] == items
    for row in read:
        data, rate = sf.read(row["audio_path"])
        assert rate == 24000 and data.shape[1] == 4
        assert parse_answer(row["answer_text"], row) == row["answer_letter"]
    assert len(list((tmp_path / "bench" / "audio").iterdir())) == 3  # one file per scene


def test_twnm_reader_names_the_problem(tmp_path):
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "a.wav", "question": "q"}) + "\n")
    with pytest.raises(ValueError, match=r"metadata.jsonl:1: missing fields"):
        read_twnm_benchmark(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"metadata\.jsonl"):
        read_twnm_benchmark(tmp_path / "nowhere")


def write_simulated_dataset(folder, num_scenes: int = 6) -> list:
    """A scene dataset folder (ARCHITECTURE.md, what the simulator writes) with short random audio."""
    from datasets import Audio, Features, Sequence, Value

    from hf_spatial.tasks.dataset import write_parquet

    rng = np.random.default_rng(1)
    features = Features(
        {
            "audio": Audio(sampling_rate=24000),
            "scene_id": Value("string"),
            "split": Value("string"),
            "scene": Value("string"),
            "num_sources": Value("int32"),
            "labels": Sequence(Value("string")),
            "room_id": Value("string"),
            "rt60": Value("float32"),
        }
    )
    (folder / "data").mkdir(parents=True)
    scenes = []
    for split in ("train", "test"):
        rows = []
        for i in range(num_scenes):
            scene = random_scene(rng, f"{split}-{i:03d}")
            scenes.append(scene)
            rows.append(
                {
                    "audio": {"bytes": flac_bytes(i), "path": f"{scene.scene_id}.flac"},
                    "scene_id": scene.scene_id,
                    "split": split,
                    "scene": scene.to_json(),
                    "num_sources": len(scene.sources),
                    "labels": scene.labels,
                    "room_id": scene.room.room_id,
                    "rt60": scene.room.rt60,
                }
            )
        write_parquet(rows, features, folder / "data" / f"{split}-00000-of-00001.parquet")
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*.parquet\n"
        "  - split: test\n    path: data/test-*.parquet\n---\n# simulated\n"
    )
    return scenes


def test_questions_cli_writes_a_loadable_qa_dataset(tmp_path):
    from datasets import Audio, load_dataset

    write_simulated_dataset(tmp_path / "sim")
    result = run_cli("questions", "--dataset", str(tmp_path / "sim"), "--out", str(tmp_path / "qa"), "--seed", "3")
    assert "questions" in result.stdout
    qa = load_dataset(str(tmp_path / "qa"))
    assert set(qa) == {"train", "test"}
    test = qa["test"].cast_column("audio", Audio(decode=False))
    row = test[0]
    for key in (
        "scene_id",
        "scene",
        "question",
        "option_a",
        "option_d",
        "answer_letter",
        "answer_text",
        "level",
        "task",
    ):
        assert key in row
    assert row["split"] == "test" and row["audio"]["path"] == f"{row['scene_id']}.flac"
    data, rate = sf.read(io.BytesIO(row["audio"]["bytes"]))
    assert data.shape[1] == 4 and rate == 24000
    assert all(parse_answer(r["answer_text"], r) == r["answer_letter"] for r in test)
    card = (tmp_path / "qa" / "README.md").read_text()
    assert "configs:" in card and "l2_bind_identity_location_distance" in card
    # Same seed -> same bytes; an existing output is refused without --overwrite.
    run_cli("questions", "--dataset", str(tmp_path / "sim"), "--out", str(tmp_path / "qa2"), "--seed", "3")
    for shard in (tmp_path / "qa" / "data").iterdir():
        assert shard.read_bytes() == (tmp_path / "qa2" / "data" / shard.name).read_bytes()
    again = run_cli("questions", "--dataset", str(tmp_path / "sim"), "--out", str(tmp_path / "qa"), check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_questions_per_task_adds_questions_to_the_same_scenes(tmp_path):
    from datasets import load_dataset

    write_simulated_dataset(tmp_path / "sim")
    base = ["questions", "--dataset", str(tmp_path / "sim"), "--tasks", "l1_direction_sector", "--no-balance"]
    run_cli(*base, "--out", str(tmp_path / "one"))
    run_cli(*base, "--out", str(tmp_path / "three"), "--questions-per-task", "3")
    one, three = (load_dataset(str(tmp_path / name), split="train") for name in ("one", "three"))
    assert len(three) > len(one) and set(one["sample_id"]) < set(three["sample_id"])
    assert set(three["scene_id"]) == set(one["scene_id"])
    bad = run_cli(*base, "--out", str(tmp_path / "bad"), "--questions-per-task", "0", check=False)
    assert bad.returncode == 2 and "--questions-per-task must be at least 1" in bad.stderr


def test_questions_cli_rejects_unknown_tasks(tmp_path):
    write_simulated_dataset(tmp_path / "sim", num_scenes=1)
    result = run_cli(
        "questions", "--dataset", str(tmp_path / "sim"), "--out", str(tmp_path / "qa"), "--tasks", "l9_x", check=False
    )
    assert result.returncode == 2 and "Unknown task 'l9_x'" in result.stderr
