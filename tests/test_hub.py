"""Publishing: staging, validation, cards, recorded uploads, secrets. Offline: HfApi upload methods are patched."""

from __future__ import annotations

import io
import json
import logging
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hf_spatial import hub
from hf_spatial.acoustics.scene import NoiseSpec, RoomSpec, SceneSpec, SourceSpec
from hf_spatial.training.records import record_training_stage
from tests.conftest import run_cli

FAKE_TOKEN = "hf_" + "Q7x" * 11 + "z"  # shaped like a real token (hf_ + 34 characters)


# ------------------------------------------------------------------------------------------ artefacts
def _tiny_qwen2_audio(folder: Path, model_class=None, config_class=None) -> None:
    """A stock-architecture Qwen2-Audio (audio d_model 32, 1 layer; qwen2 hidden 32, 1 layer) + processor."""
    from transformers import (
        GenerationConfig,
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        Qwen2Tokenizer,
        WhisperFeatureExtractor,
    )

    chars = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,?!<>|_"))
    tokenizer = Qwen2Tokenizer(vocab={c: i for i, c in enumerate(chars)}, merges=[])
    tokenizer.add_special_tokens(
        {
            "additional_special_tokens": ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"],
            "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
        }
    )
    processor = Qwen2AudioProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=128),
        tokenizer=tokenizer,
        chat_template="{% for m in messages %}{{ m['content'] }}{% endfor %}",
    )
    config = (config_class or Qwen2AudioConfig)(
        audio_config={"d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64},
        text_config={
            "model_type": "qwen2",
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "intermediate_size": 64,
            "vocab_size": 300,
        },
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    model = (model_class or Qwen2AudioForConditionalGeneration)(config)
    model.generation_config = GenerationConfig(max_new_tokens=8)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def _add_run_records(folder: Path) -> None:
    """What a Trainer checkpoint and our curriculum leave beside the weights (with local paths inside)."""
    (folder / "optimizer.pt").write_bytes(b"pickle")
    (folder / "training_args.bin").write_bytes(b"pickle")
    (folder / "rng_state.pth").write_bytes(b"pickle")
    (folder / "events.out.tfevents.1").write_bytes(b"log")
    (folder / "runs").mkdir()
    state = {
        "global_step": 40,
        "epoch": 2.0,
        "train_batch_size": 4,
        "best_model_checkpoint": "/home/alice/runs/sft/checkpoint-40",
        "log_history": [{"loss": 2.5, "step": 10}, {"loss": 1.25, "step": 40}, {"eval_loss": 1.5, "step": 40}],
    }
    (folder / "trainer_state.json").write_text(json.dumps(state))
    record_training_stage(
        folder,
        stage="align",
        config={"learning_rate": 1e-3, "output_dir": "/home/alice/runs/align"},
        datasets=["alice/foa-scenes", "/home/alice/data/local-scenes"],
        base_model="Qwen/Qwen2-Audio-7B-Instruct",
    )
    record_training_stage(
        folder,
        stage="sft",
        config={"lora_r": 8, "lora_alpha": 32},
        datasets=["alice/foa-qa"],
        init_from=folder,
        metrics={"train_loss": 1.25},
    )
    metric = {"accuracy": 0.62, "ci95": [0.59, 0.65], "n": 1000, "chance": 0.25}
    results = {
        "benchmark": {"name": "hf-spatial ASA benchmark", "repo_id": "alice/asa-bench", "split": "test"},
        "conditions": {
            "full": {
                "overall": metric,
                "levels": {"1": {**metric, "n": 385, "accuracy": 0.7, "ci95": [0.65, 0.74]}},
                "tasks": {"l2_relative_direction_between_objects": {**metric, "n": 60}},
            },
            "mono": {"overall": {"accuracy": 0.26, "ci95": [0.23, 0.29], "n": 1000, "chance": 0.25}},
        },
    }
    (folder / "eval_results.json").write_text(json.dumps(results))


def _flac_bytes(seed: int, frames: int = 2400) -> bytes:
    buffer = io.BytesIO()
    audio = np.random.default_rng(seed).standard_normal((frames, 4)).astype(np.float32) * 0.1
    sf.write(buffer, audio, 24000, format="FLAC", subtype="PCM_24")
    return buffer.getvalue()


def _scene(index: int, split: str, clip: str, label: str, azimuth: float, room: str) -> SceneSpec:
    return SceneSpec(
        scene_id=f"{split}-{index:04d}",
        room=RoomSpec(room, dimensions=(6, 5, 3), rt60=0.3 + 0.1 * index, listener_position=(3, 2.5, 1.5)),
        sources=[SourceSpec(clip, label, azimuth=azimuth, elevation=0, distance=1.0 + index * 0.5, onset=0, offset=1)],
        seed=index,
        split=split,
        duration=1.0,
        noise=NoiseSpec("diffuse_pink", 20.0),
    )


def _tiny_dataset(folder: Path, leak: bool = False) -> list[SceneSpec]:
    """A dataset folder in the simulator's layout: data/{split}-00000-of-00001.parquet + README with configs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    scenes = [
        _scene(0, "train", "procedural:tone-1", "telephone", 90, "room-a"),
        _scene(1, "train", "procedural:noise-2", "footsteps", 10, "room-b"),
        _scene(2, "train", "debian:sound-icons/bell", "bell", -100, "room-a"),
        _scene(0, "test", "procedural:noise-2" if leak else "procedural:tone-9", "telephone", 170, "room-c"),
        _scene(1, "test", "procedural:knock-3", "knock", -30, "room-c"),
    ]
    (folder / "data").mkdir(parents=True)
    for split in ("train", "test"):
        rows = [s for s in scenes if s.split == split]
        table = pa.table(
            {
                "audio": [
                    {"bytes": _flac_bytes(i + 10 * (split == "test")), "path": f"{s.scene_id}.flac"}
                    for i, s in enumerate(rows)
                ],
                "scene_id": [s.scene_id for s in rows],
                "split": [split] * len(rows),
                "scene": [s.to_json() for s in rows],
                "num_sources": [len(s.sources) for s in rows],
                "labels": [s.labels for s in rows],
                "room_id": [s.room.room_id for s in rows],
                "rt60": [s.room.rt60 for s in rows],
            }
        )
        pq.write_table(table, folder / "data" / f"{split}-00000-of-00001.parquet")
    (folder / "README.md").write_text(
        textwrap.dedent(
            """\
            ---
            configs:
            - config_name: default
              data_files:
              - split: train
                path: data/train-*.parquet
              - split: test
                path: data/test-*.parquet
            dataset_info:
              features:
              - name: audio
                dtype:
                  audio:
                    sampling_rate: 24000
              - name: scene_id
                dtype: string
              - name: split
                dtype: string
              - name: scene
                dtype: string
              - name: num_sources
                dtype: int64
              - name: labels
                sequence: string
              - name: room_id
                dtype: string
              - name: rt60
                dtype: float64
            ---
            # simulated scenes
            """
        )
    )
    (folder / "progress.json").write_text(json.dumps({"done": 2, "out": str(folder)}))  # resume state, local
    return scenes


def _tiny_benchmark(folder: Path) -> list[dict]:
    (folder / "audio").mkdir(parents=True)
    rows = []
    for i, (level, task, letter) in enumerate(
        [(1, "l1_class", "A"), (1, "l1_direction", "C"), (2, "l2_relative_direction_between_objects", "B")]
    ):
        (folder / "audio" / f"s{i}.flac").write_bytes(_flac_bytes(i))
        options = {f"option_{x}": f"answer {x}" for x in "abcd"}
        rows.append(
            {
                "file_name": f"audio/s{i}.flac",
                "sample_id": f"test-{i:04d}-{task}",
                "question": f"Question {i}?",
                **options,
                "answer_letter": letter,
                "answer_text": f"answer {letter.lower()}",
                "level": level,
                "task": task,
                "scene_id": f"test-{i:04d}",
            }
        )
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "unused.wav").write_bytes(b"x")
    return rows


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "checkpoint-40"
    _tiny_qwen2_audio(folder)
    _add_run_records(folder)
    return folder


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dataset") / "foa-scenes"
    _tiny_dataset(folder)
    return folder


@pytest.fixture
def hub_calls(monkeypatch):
    """Record HfApi calls (and the staged files as they were when upload was called); nothing goes online."""
    from huggingface_hub import HfApi, RepoUrl

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return RepoUrl(f"https://huggingface.co/{'datasets/' if kwargs.get('repo_type') == 'dataset' else ''}{repo_id}")

    def uploader(name):
        def upload(self, **kwargs):
            folder = Path(kwargs["folder_path"])
            files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
            calls.append((name, kwargs["repo_id"], {**kwargs, "files": files}))

        return upload

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", uploader("upload_folder"))
    monkeypatch.setattr(HfApi, "upload_large_folder", uploader("upload_large_folder"), raising=False)
    monkeypatch.setattr(HfApi, "create_commit", uploader("create_commit"))
    return calls


# --------------------------------------------------------------------------------------------- models
def test_stage_model_copies_exactly_the_repo_files_and_reloads(model_dir, tmp_path):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForMultimodalLM, AutoProcessor

    staged = hub.stage_model(model_dir, tmp_path / "stage", model_name="spatial-test")
    names = {f.path for f in staged.files}
    assert names == {
        "README.md",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    }
    skipped = dict(staged.skipped)
    assert {"optimizer.pt", "training_args.bin", "rng_state.pth", "trainer_state.json", "runs/"} <= set(skipped)
    assert any("AutoModelForMultimodalLM.from_pretrained" in check for check in staged.checks)
    model = AutoModelForMultimodalLM.from_pretrained(staged.folder)
    assert type(model).__name__ == "Qwen2AudioForConditionalGeneration"
    assert type(AutoProcessor.from_pretrained(staged.folder)).__name__ == "Qwen2AudioProcessor"
    described = staged.describe()
    assert "model.safetensors" in described and "optimizer.pt: training state" in described

    card = ModelCard.load(staged.folder / "README.md")
    assert card.data.base_model == "Qwen/Qwen2-Audio-7B-Instruct"
    assert card.data.datasets == ["alice/foa-qa", "alice/foa-scenes"]  # local dataset paths are not Hub ids
    assert card.data.pipeline_tag == "audio-text-to-text"
    results = {r.metric_config: r for r in card.data.eval_results}
    assert results["full/overall"].metric_value == 0.62
    assert results["full/overall"].metric_args == {"n": 1000, "ci95_low": 0.59, "ci95_high": 0.65, "chance": 0.25}
    assert results["full/level_1"].metric_value == 0.7
    assert results["mono/overall"].metric_value == 0.26
    assert results["full/l2_relative_direction_between_objects"].dataset_type == "alice/asa-bench"
    text = card.text
    assert "| overall | 1000 | 25.0% | 62.0% (59.0-65.0) | 26.0% (23.0-29.0) |" in text
    assert "| 1 | align | alice/foa-scenes, <local>/local-scenes |" in text
    assert '"output_dir": "<local>/align"' in text  # stage configs shown, local paths redacted
    assert "40 steps, 2.00 epochs, batch size 4; training loss 2.5000 -> 1.2500; last eval loss 1.5000" in text
    assert "/home/alice" not in (staged.folder / "README.md").read_text()


def test_remote_code_model_ships_its_code_files_and_loads_with_trust_remote_code(tmp_path, monkeypatch):
    """A model saved with `register_for_auto_class` (as SpatialQwenAudio is) travels with its auto_map code."""
    package = tmp_path / "toy_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "toy_helper.py").write_text("HIDDEN_TAG = 'toy'\n")
    (package / "configuration_toy.py").write_text(
        "from transformers import Qwen2AudioConfig\n\n\n"
        "class ToyAudioConfig(Qwen2AudioConfig):\n    model_type = 'toy_qwen_audio'\n"
    )
    (package / "modeling_toy.py").write_text(
        "from transformers import Qwen2AudioForConditionalGeneration\n\n"
        "from .configuration_toy import ToyAudioConfig\nfrom .toy_helper import HIDDEN_TAG\n\n\n"
        "class ToyAudioForConditionalGeneration(Qwen2AudioForConditionalGeneration):\n"
        "    config_class = ToyAudioConfig\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from toy_pkg.configuration_toy import ToyAudioConfig
    from toy_pkg.modeling_toy import ToyAudioForConditionalGeneration

    ToyAudioConfig.register_for_auto_class()
    ToyAudioForConditionalGeneration.register_for_auto_class("AutoModelForMultimodalLM")
    source = tmp_path / "toy-model"
    _tiny_qwen2_audio(source, model_class=ToyAudioForConditionalGeneration, config_class=ToyAudioConfig)
    (source / "stray_script.py").write_text("print('not model code')\n")
    for name in [m for m in sys.modules if m.startswith("toy_pkg")]:
        monkeypatch.delitem(sys.modules, name)  # the staged copy must load without the package importable

    staged = hub.stage_model(source, tmp_path / "stage")
    names = {f.path for f in staged.files}
    assert {"configuration_toy.py", "modeling_toy.py", "toy_helper.py"} <= names
    assert "stray_script.py" not in names
    assert any(
        "trust_remote_code=True" in check and "ToyAudioForConditionalGeneration" in check for check in staged.checks
    )

    (source / "toy_helper.py").unlink()
    with pytest.raises(FileNotFoundError, match="toy_helper"):
        hub.stage_model(source, tmp_path / "stage-2")


def test_pickle_only_weights_are_refused(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match=r"pickle files \(pytorch_model.bin\).*save_pretrained"):
        hub.stage_model(folder, tmp_path / "stage")
    assert not (tmp_path / "stage").exists()  # nothing half-staged


def test_local_paths_and_tokens_in_text_files_are_refused(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    source = tmp_path / "m"
    shutil.copytree(model_dir, source)
    config = json.loads((source / "generation_config.json").read_text())
    (source / "generation_config.json").write_text(json.dumps({**config, "note": "/home/alice/secret"}))
    with pytest.raises(ValueError, match=r"generation_config.json: local path") as error:
        hub.stage_model(source, tmp_path / "stage")
    tokenizer_config = json.loads((source / "tokenizer_config.json").read_text())
    (source / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "auth": FAKE_TOKEN}))
    with pytest.raises(ValueError, match=r"tokenizer_config\.json: contains an access token") as error:
        hub.stage_model(source, tmp_path / "stage-2")
    assert FAKE_TOKEN not in str(error.value)


# ------------------------------------------------------------------------------------------- datasets
def test_stage_dataset_reloads_and_card_is_computed_from_the_shards(dataset_dir, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    staged = hub.stage_dataset(dataset_dir, tmp_path / "stage")
    assert {f.path for f in staged.files} == {
        "README.md",
        "data/train-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
    }
    assert ("progress.json", "not part of the dataset repo") in staged.skipped
    train = datasets.load_dataset(str(staged.folder), split="train")
    assert len(train) == 3 and train.features["audio"].sampling_rate == 24000
    assert (
        sf.read(io.BytesIO(train.cast_column("audio", datasets.Audio(decode=False))[0]["audio"]["bytes"]))[0].shape[1]
        == 4
    )

    card = DatasetCard.load(staged.folder / "README.md")
    data = card.data.to_dict()
    assert data["configs"][0]["data_files"][1] == {"split": "test", "path": "data/test-*.parquet"}
    assert data["dataset_info"]["features"][0]["name"] == "audio"  # the simulator's metadata is kept
    assert data["size_categories"] == ["n<1K"] and "ambisonics" in data["tags"]
    text = card.text
    assert "| telephone | 1 | 1 |" in text and "| bell | 0 | 1 |" in text  # class | test | train
    assert "| test | 1 | 0 | 1 | 0 | 0 | 2 | 0 | 0 |" in text  # sectors (170 -> back, -30 -> right), distances
    assert "| train | 1 | 1 | 0 | 1 | 0 | 2 | 1 | 0 |" in text
    assert "| test / train | 0 | 0 | 0 | 0 | yes |" in text
    assert "RT60: test 0.30-0.40 s" in text
    assert "train: 3 distinct source clips (debian: 1, procedural: 2)" in text


def test_dataset_leaks_between_splits_are_reported(tmp_path):
    from huggingface_hub import DatasetCard

    _tiny_dataset(tmp_path / "leaky", leak=True)
    staged = hub.stage_dataset(tmp_path / "leaky", tmp_path / "stage")
    assert "| test / train | 0 | 1 | 0 | 0 | **no** |" in DatasetCard.load(staged.folder / "README.md").text


def test_stage_benchmark(tmp_path):
    from huggingface_hub import DatasetCard

    _tiny_benchmark(tmp_path / "bench")
    staged = hub.stage_benchmark(tmp_path / "bench", tmp_path / "stage")
    assert {f.path for f in staged.files} == {
        "README.md",
        "metadata.jsonl",
        "audio/s0.flac",
        "audio/s1.flac",
        "audio/s2.flac",
    }
    assert ("unused.wav", "not referenced by metadata.jsonl") in staged.skipped
    card = DatasetCard.load(staged.folder / "README.md")
    assert card.data.configs[0]["data_files"][0]["path"] == ["metadata.jsonl", "audio/*.flac"]
    assert "| `l2_relative_direction_between_objects` | L2 | 1 |" in card.text
    assert "Gold letters: A 1, B 1, C 1, D 0" in card.text
    assert "4 channels" in card.text and "`scene_id`" in card.text

    bad = tmp_path / "bad"
    _tiny_benchmark(bad)
    lines = (bad / "metadata.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    row["answer_letter"] = "E"
    (bad / "metadata.jsonl").write_text("\n".join([lines[0], json.dumps(row)]))
    with pytest.raises(ValueError, match=r"metadata\.jsonl:2: answer_letter 'E' is not one of A, B, C, D"):
        hub.stage_benchmark(bad, tmp_path / "stage-bad")


# ------------------------------------------------------------------------------------------- uploads
def test_upload_sends_exactly_the_staged_files_and_never_the_token(
    dataset_dir, tmp_path, hub_calls, monkeypatch, capsys, caplog
):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    caplog.set_level(logging.DEBUG)
    staged, url = hub.publish("dataset", dataset_dir, "alice/foa-scenes", private=True, staging_dir=tmp_path / "stage")
    print(staged.describe())
    assert url == "https://huggingface.co/datasets/alice/foa-scenes"
    (name, repo_id, kwargs), (upload_name, upload_repo, upload) = hub_calls
    assert (name, repo_id) == ("create_repo", "alice/foa-scenes")
    assert kwargs["repo_type"] == "dataset" and kwargs["private"] is True and kwargs["exist_ok"] is True
    assert upload_name == "upload_folder" and upload_repo == "alice/foa-scenes"
    assert upload["files"] == sorted(f.path for f in staged.files)
    assert upload["repo_type"] == "dataset"
    written = "".join(p.read_text(errors="replace") for p in (tmp_path / "stage").rglob("*") if p.is_file())
    assert FAKE_TOKEN not in written
    assert FAKE_TOKEN not in capsys.readouterr().out + caplog.text


def test_large_folders_use_upload_large_folder_when_the_hub_client_has_it(
    dataset_dir, tmp_path, hub_calls, monkeypatch
):
    monkeypatch.setattr(hub.transfer, "LARGE_FOLDER_BYTES", 1)
    hub.publish("dataset", dataset_dir, "alice/big", staging_dir=tmp_path / "stage")
    assert [call[0] for call in hub_calls] == ["create_repo", "upload_large_folder"]
    staged_files = sorted(p.relative_to(tmp_path / "stage").as_posix() for p in (tmp_path / "stage").rglob("*"))
    assert hub_calls[1][2]["files"] == [f for f in staged_files if (tmp_path / "stage" / f).is_file()]
    assert hub_calls[1][2]["repo_type"] == "dataset"


def test_dry_run_uploads_nothing_and_push_checkpoint_uploads_a_model(model_dir, tmp_path, hub_calls):
    staged, url = hub.publish("model", model_dir, "alice/spatial", dry_run=True, staging_dir=tmp_path / "dry")
    assert url is None and hub_calls == [] and (tmp_path / "dry" / "model.safetensors").is_file()
    url = hub.push_checkpoint(model_dir, "alice/spatial", private=True)
    assert url == "https://huggingface.co/alice/spatial"
    assert [c[0] for c in hub_calls] == ["create_repo", "upload_folder"]
    assert hub_calls[0][2]["repo_type"] == "model" and hub_calls[0][2]["private"] is True
    assert hub_calls[1][2]["files"] == sorted(f.path for f in staged.files)
    assert not Path(hub_calls[1][2]["folder_path"]).exists()  # the temporary staging folder is cleaned up


@pytest.mark.parametrize("repo_id", ["alice/spatial/extra", "alice/bad--name", "alice/", "-alice/x.git", ""])
def test_bad_repo_ids_are_rejected_before_any_work(repo_id, model_dir, hub_calls):
    with pytest.raises(ValueError, match="repo-id"):
        hub.publish("model", model_dir, repo_id)
    assert hub_calls == []


def test_missing_folders_and_existing_staging_dirs_give_clear_errors(model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model folder .*nowhere does not exist"):
        hub.stage_model(tmp_path / "nowhere", tmp_path / "stage")
    with pytest.raises(FileNotFoundError, match=r"metadata\.jsonl not found"):
        hub.stage_benchmark(tmp_path, tmp_path / "stage")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        hub.stage_model(model_dir, tmp_path / "busy")


def test_record_training_stage_carries_the_history_forward(tmp_path):
    first = record_training_stage(tmp_path / "a", stage="encoder", config={"lr": 1}, base_model="org/base")
    record_training_stage(tmp_path / "b", stage="align", config={"lr": 2}, init_from=first.parent)
    history = json.loads((tmp_path / "b" / "training_stages.json").read_text())
    assert history["base_model"] == "org/base"
    assert [s["stage"] for s in history["stages"]] == ["encoder", "align"]


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_dry_run_and_errors(model_dir, tmp_path):
    result = run_cli(
        "publish",
        "model",
        str(model_dir),
        "--repo-id",
        "alice/spatial",
        "--dry-run",
        "--staging-dir",
        str(tmp_path / "stage"),
        env={"HF_TOKEN": FAKE_TOKEN},
    )
    assert "model.safetensors" in result.stdout and "dry run: nothing uploaded" in result.stdout
    assert FAKE_TOKEN not in result.stdout + result.stderr
    assert (tmp_path / "stage" / "README.md").is_file()
    bad = run_cli("publish", "model", str(model_dir), "--repo-id", "a/b/c", "--dry-run", check=False)
    assert bad.returncode == 2 and "invalid --repo-id 'a/b/c'" in bad.stderr and "Traceback" not in bad.stderr
    missing = run_cli("publish", "dataset", str(tmp_path / "nope"), "--repo-id", "a/b", "--dry-run", check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_local_paths_inside_parquet_strings_are_refused(tmp_path, monkeypatch):
    folder = tmp_path / "scenes"
    _tiny_dataset(folder)
    import pyarrow.parquet as pq

    shard = folder / "data" / "test-00000-of-00001.parquet"
    table = pq.read_table(shard)
    scenes = [json.loads(text) for text in table.column("scene").to_pylist()]
    scenes[0]["sources"][0]["clip_id"] = "/home/alice/clips/knock.wav"
    table = table.set_column(table.schema.get_field_index("scene"), "scene", [[json.dumps(s) for s in scenes]])
    pq.write_table(table, shard)
    with pytest.raises(ValueError, match=r"test-00000-of-00001\.parquet: local path"):
        hub.stage_dataset(folder, tmp_path / "stage")


def test_importing_the_hub_installs_the_pusher_training_publishes_through(tmp_path, monkeypatch):
    from hf_spatial.training import records

    pushed = []
    monkeypatch.setattr(
        hub.transfer, "push_checkpoint", lambda folder, repo_id, private: pushed.append((folder, private))
    )
    records.push_stage_output(tmp_path, "alice/spatial", True)
    assert pushed == [(tmp_path, True)]
    monkeypatch.setattr(records, "_checkpoint_pusher", None)
    with pytest.raises(RuntimeError, match="no Hub publisher"):
        records.push_stage_output(tmp_path, "alice/spatial", False)
