"""The audio embedding cache: cached encoder outputs give the same logits, losses, gradients and GRPO log-probs as
the encoders themselves; stale entries are never served; `embed` resumes to the same bytes; a time budget stops a
stage; the feature extractor's short-window path equals Whisper's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch
from transformers import WhisperFeatureExtractor

from hf_spatial import conventions as C
from hf_spatial.data import read_foa
from hf_spatial.data.folders import load_folder
from hf_spatial.models.audio_cache import (
    KEY_COLUMN,
    AudioEmbeddingCache,
    clip_key,
    clip_keys,
    embed_dataset,
    encoder_fingerprint,
)
from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import audio_token_count
from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio
from hf_spatial.training.audio_grpo import AudioGRPOTrainer
from hf_spatial.training.chat_data import caption_row, grpo_row, sft_row
from hf_spatial.training.collators import AudioChatCollator
from hf_spatial.training.grpo import SpatialGRPOConfig
from hf_spatial.training.stages import load_config, run_stage
from tests.conftest import REPO_ROOT, run_cli

TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


def _live_model(seed: int = 0, **kwargs):
    """A tiny model whose zero-initialised spatial outputs are given weights, so the spatial branch counts."""
    model, processor = build_tiny_spatial_qwen_audio(seed=seed, **kwargs)
    generator = torch.Generator().manual_seed(seed + 1)
    projector = model.model.spatial_projector
    for layer in (projector.output, projector.direction_output, projector.detections_output):
        layer.weight.data = torch.randn(layer.weight.shape, generator=generator) * 0.3
    return model.float(), processor


@pytest.fixture(scope="module")
def live():
    return _live_model()


def _clips(*seconds: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        C.encode_plane_wave(rng.standard_normal(int(s * 24000)) * 0.1, azimuth_deg=40.0 * i, elevation_deg=0.0).astype(
            np.float32
        )
        for i, s in enumerate(seconds)
    ]


def _texts(processor, questions):
    messages = [[{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": q}]}] for q in questions]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def test_processor_expands_audio_tokens_from_lengths_as_from_audio(live):
    _, processor = live
    clips = _clips(1.0, 2.3)
    texts = _texts(processor, ["Where is the dog?", "Which sound is on the left?"])
    with_audio = processor(text=texts, audio=clips, sampling_rate=24000, padding=True, return_tensors="pt")
    lengths = audio_token_count(with_audio["feature_attention_mask"].sum(-1)).tolist()
    from_lengths = processor(text=texts, audio_token_lengths=lengths, padding=True, return_tensors="pt")
    assert torch.equal(from_lengths["input_ids"], with_audio["input_ids"])
    assert torch.equal(from_lengths["attention_mask"], with_audio["attention_mask"])
    with pytest.raises(ValueError, match="placeholder"):
        processor(text=texts, audio_token_lengths=lengths[:1])


@pytest.mark.parametrize("branches", [{}, {"spatial": False}, {"semantic": False}])
def test_cached_encoder_outputs_give_the_same_logits(live, branches):
    model, processor = live
    clips = _clips(1.0, 2.3, 1.7)
    texts = _texts(processor, ["Where is the dog?", "Which sound is on the left?", "How far is it?"])
    features = processor(text=texts, audio=clips, sampling_rate=24000, padding=True, return_tensors="pt")
    cache = AudioEmbeddingCache.for_model(None, model, processor.feature_extractor)
    keys = [clip_key(clip) for clip in clips]
    assert cache.update(model, processor.feature_extractor, zip(keys, clips, strict=True), batch_size=2) == 3
    cached = cache.batch(keys)
    text = processor(text=texts, audio_token_lengths=cached["audio_token_lengths"], padding=True, return_tensors="pt")
    model.set_audio_branches(**branches)
    try:
        with torch.no_grad():
            expected = model(**features).logits
            got = model(input_ids=text["input_ids"], attention_mask=text["attention_mask"], **cached).logits
    finally:
        model.set_audio_branches()
    torch.testing.assert_close(got, expected, **TOLERANCE)
    with pytest.raises(ValueError, match="not both"):
        model(**features, **cached)


def _collated_grads(model, collator, rows):
    batch = collator(rows)
    model.zero_grad()
    torch.manual_seed(0)  # the same dropout masks in both runs
    loss = model(**batch).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("stage", ["align", "sft"])
def test_cached_training_batches_give_the_same_loss_and_gradients(scenes_dir, questions_dir, stage):
    from hf_spatial.training.lora import FULL_FINETUNE_MODULES, freeze_all_but

    model, processor = _live_model(seed=3)
    freeze_all_but(model, FULL_FINETUNE_MODULES)  # what align (train_language_model) and sft (lora_r 0) train
    model.train()
    if stage == "align":
        dataset = load_folder(scenes_dir, "train").select(range(4)).map(caption_row)
    else:
        dataset = load_folder(questions_dir, "train").select(range(6)).map(lambda row: sft_row(row, 0.5))
    cache = AudioEmbeddingCache.for_model(None, model, processor.feature_extractor)
    dataset = embed_dataset(cache, model, processor.feature_extractor, dataset)
    rows = list(dataset)
    plain_loss, plain = _collated_grads(model, AudioChatCollator(processor, read_foa), rows)
    cached_loss, cached = _collated_grads(model, AudioChatCollator(processor, read_foa, embedding_cache=cache), rows)
    torch.testing.assert_close(cached_loss, plain_loss, **TOLERANCE)
    assert plain.keys() == cached.keys() and any("spatial_projector" in name for name in plain)
    for name in plain:
        torch.testing.assert_close(cached[name], plain[name], **TOLERANCE, msg=name)


def test_cached_grpo_log_probs_equal_the_encoders(questions_dir, tmp_path):
    from hf_spatial.training.lora import FULL_FINETUNE_MODULES, freeze_all_but

    model, processor = _live_model(seed=4)
    freeze_all_but(model, FULL_FINETUNE_MODULES)
    model.config.image_token_id = model.config.audio_token_id
    questions = load_folder(questions_dir, "train")
    first_of_scene = list({scene: row for row, scene in reversed(list(enumerate(questions["scene_id"])))}.values())
    dataset = questions.select(sorted(first_of_scene)[:4]).map(grpo_row)  # four scenes: four clips
    cache = AudioEmbeddingCache.for_model(None, model, processor.feature_extractor)
    dataset = embed_dataset(cache, model, processor.feature_extractor, dataset)
    args = load_config(
        "grpo",
        "tiny",
        [
            "--dataset_dir", "unused", "--output_dir", str(tmp_path), "--max_steps", "1", "--beta", "0.0",
            "--per_device_train_batch_size", "4", "--num_generations", "2", "--max_completion_length", "8",
            "--report_to", "none", "--save_strategy", "no", "--reward_weights", "1.0", "--bf16", "false",
        ],
    )  # fmt: skip
    assert isinstance(args, SpatialGRPOConfig)

    def trainer(embedding_cache):
        return AudioGRPOTrainer(
            model=model, args=args, processing_class=processor, reward_funcs=lambda completions, **_: [0.0] * len(
                completions), train_dataset=dataset, embedding_cache=embedding_cache,
        )  # fmt: skip

    cached_trainer, plain_trainer = trainer(cache), trainer(None)
    batch = cached_trainer._generate_and_score_completions(list(dataset))
    assert {"audio_hidden_states", "spatial_token_accdoa"} <= set(cached_trainer._audio_keys)
    assert "input_features" not in batch
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    keep = batch["completion_ids"].shape[1]
    model.eval()  # no dropout: both forwards see the same network (and fp32: no bf16 autocast)
    with torch.no_grad(), cached_trainer._audio_inputs_for({key: batch[key] for key in cached_trainer._audio_keys}):
        cached = cached_trainer._get_per_token_logps_and_entropies(model, input_ids, mask, keep)[0]
    plain_batch = plain_trainer._generate_and_score_completions(list(dataset))
    assert torch.equal(plain_batch["prompt_ids"], batch["prompt_ids"])  # the same prompts, audio tokens included
    with torch.no_grad(), plain_trainer._audio_inputs_for({k: plain_batch[k] for k in plain_trainer._audio_keys}):
        plain = plain_trainer._get_per_token_logps_and_entropies(model, input_ids, mask, keep)[0]
    torch.testing.assert_close(cached, plain, **TOLERANCE)


def test_changed_encoders_never_read_stale_entries(tmp_path):
    model, processor = _live_model(seed=5)
    clips = _clips(1.2)
    key = clip_key(clips[0])
    cache = AudioEmbeddingCache.for_model(tmp_path, model, processor.feature_extractor)
    cache.update(model, processor.feature_extractor, [(key, clips[0])])
    before = cache.get(key)["spatial_hidden_states"].clone()

    with torch.no_grad():
        model.model.spatial_encoder.input_proj.weight.add_(0.01)  # one trained step's worth of change
    changed = AudioEmbeddingCache.for_model(tmp_path, model, processor.feature_extractor)
    assert changed.folder != cache.folder and key not in changed
    changed.update(model, processor.feature_extractor, [(key, clips[0])])
    assert not torch.equal(changed.get(key)["spatial_hidden_states"], before)
    # feature settings are part of the fingerprint too
    processor.feature_extractor.spatial_min_frequency = 80.0
    assert encoder_fingerprint(model, processor.feature_extractor) != changed.fingerprint
    # a folder that claims another fingerprint is refused, not read
    manifest = changed.folder / "cache.json"
    manifest.write_text(json.dumps({"format": 1, "fingerprint": "0" * 64}))
    with pytest.raises(ValueError, match="other encoders"):
        AudioEmbeddingCache(changed.folder, changed.fingerprint)


def _shard_bytes(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.rglob("shard-*.safetensors"))}


EMBED_ARGS = ("embed", "--model", "tiny", "--splits", "train", "test", "--shard-size", "2")


@pytest.fixture(scope="module")
def whole_embedding(scenes_dir, tmp_path_factory) -> dict[str, bytes]:
    """The shard files of one uninterrupted `hf-spatial embed` of the 16 clips of `scenes_dir`."""
    out = tmp_path_factory.mktemp("embed") / "whole"
    run_cli(*EMBED_ARGS, "--dataset", str(scenes_dir), "--out", str(out))
    return _shard_bytes(out)


def test_embed_resumes_after_a_kill_to_the_same_bytes(scenes_dir, whole_embedding, tmp_path):
    args = [*EMBED_ARGS, "--dataset", str(scenes_dir)]
    whole = whole_embedding
    assert len(whole) == 8  # 16 clips, 2 a shard

    # Killed once the first shards are written, with a half-written temporary file left behind.
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "hf_spatial", *args, "--out", str(killed)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while len(_shard_bytes(killed)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = _shard_bytes(killed)
    assert partial.items() <= whole.items()  # only whole, correct shards survive a kill
    folder = next(killed.iterdir())
    (folder / ".shard-interrupted.safetensors.tmp").write_bytes(b"\x00" * 100)
    result = run_cli(*args, "--out", str(killed))
    assert f"({16} clips)" in result.stdout
    assert _shard_bytes(killed) == whole


def test_embed_jobs_of_a_sharded_run_write_the_files_of_one_run(scenes_dir, whole_embedding, tmp_path):
    out = tmp_path / "sharded"
    args = [sys.executable, "-m", "hf_spatial", *EMBED_ARGS, "--dataset", str(scenes_dir), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    jobs = [  # at the same time, into one folder, as a scheduler runs them
        subprocess.Popen([*args, "--shard-index", str(index), "--num-shards", "3"], env=env, stderr=subprocess.PIPE)
        for index in (1, 2)
    ]
    for job in jobs:
        assert job.wait(timeout=300) == 0, job.stderr.read().decode()[-3000:]
    # parts 1 and 2 of 3: the last 5 of the 8 shard files (3 + 2 in the cut of `datasets.Dataset.shard`)
    assert len(_shard_bytes(out)) == 5 and _shard_bytes(out).items() <= whole_embedding.items()
    result = run_cli(*EMBED_ARGS, "--dataset", str(scenes_dir), "--out", str(out))  # does what is missing: part 0
    assert "embedding 6 clips in 3 shards" in result.stderr
    assert _shard_bytes(out) == whole_embedding


def test_clip_keys_decode_each_scene_once_and_key_by_samples(questions_dir):
    dataset = load_folder(questions_dir, "train")
    keys = clip_keys(dataset)
    assert len(set(keys)) < len(keys)  # questions of one scene share their clip
    row = dataset[0]
    assert keys[0] == clip_key(read_foa(row["audio"]))


def test_keying_a_filtered_question_set_without_its_audio_copies_no_audio(live, questions_dir):
    # What a language stage does with its tasks' rows: before, `add_column` flattened the filtered rows audio and
    # all (a demo run's Arrow cache was 7 GB of such copies).
    model, processor = live
    questions = load_folder(questions_dir, "train")
    folder = Path(questions.cache_files[0]["filename"]).parent
    filtered = questions.filter(lambda task: task.startswith("l1_"), input_columns="task")
    assert 0 < len(filtered) < len(questions)
    before = set(folder.glob("*.arrow"))
    cache = AudioEmbeddingCache.for_model(None, model, processor.feature_extractor)
    keyed = embed_dataset(cache, model, processor.feature_extractor, filtered, keep_audio=False)
    written = sum(path.stat().st_size for path in set(folder.glob("*.arrow")) - before)
    audio_bytes = sum(len(cell["bytes"]) for cell in filtered["audio"])  # load_folder leaves the FLAC encoded
    assert "audio" not in keyed.column_names and keyed["sample_id"] == filtered["sample_id"]
    assert keyed[KEY_COLUMN] == clip_keys(filtered) and not cache.missing(keyed[KEY_COLUMN])
    assert written < audio_bytes / 20, (written, audio_bytes)


def test_stages_with_a_cache_never_run_the_encoders(scenes_dir, questions_dir, tmp_path, monkeypatch):
    from hf_spatial.models.spatial_qwen_audio import modeling_spatial_qwen_audio as modeling

    calls = []
    original = modeling.SpatialQwenAudioModel.encode_audio

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(modeling.SpatialQwenAudioModel, "encode_audio", counting)
    cache = tmp_path / "cache"
    common = ["--max_steps", "2", "--report_to", "none", "--save_strategy", "no", "--embedding_cache", str(cache)]
    align_args = ["--model_name_or_path", "tiny", "--dataset_dir", str(scenes_dir), "--output_dir", str(tmp_path / "a")]
    align = run_stage("align", "tiny", [*align_args, "--eval_split", "none", *common])
    embedded = len(calls)
    assert 0 < embedded <= 2  # the 12 training clips, 8 a batch; then training never runs the encoders
    run_stage("sft", "tiny", ["--model_name_or_path", str(align), "--dataset_dir", str(questions_dir),
                              "--output_dir", str(tmp_path / "s"), "--eval_split", "none", *common])  # fmt: skip
    # align trained no encoder: sft's model has the same fingerprint, and its questions' clips are align's scenes
    assert len(calls) == embedded
    with pytest.raises(ValueError, match="trains the spatial encoder"):
        run_stage("encoder", "tiny", ["--dataset_dir", str(scenes_dir), "--output_dir", str(tmp_path / "e"), *common])


def test_a_trainer_that_trains_an_encoder_refuses_a_cache(questions_dir, tmp_path):
    from hf_spatial.training.language_stages import AudioSFTTrainer, SpatialSFTConfig

    model, processor = build_tiny_spatial_qwen_audio()  # every parameter trainable, the encoders' included
    cache = AudioEmbeddingCache.for_model(None, model, processor.feature_extractor)
    args = SpatialSFTConfig(output_dir=str(tmp_path), lora_r=0, report_to=[], max_steps=1, use_cpu=True)
    dataset = load_folder(questions_dir, "train").select(range(2)).map(lambda row: sft_row(row, 0.0))
    with pytest.raises(ValueError, match="trains an audio encoder"):
        AudioSFTTrainer(model, args, processor, train_dataset=dataset, embedding_cache=cache)


def test_a_time_budget_stops_a_stage_and_is_recorded(scenes_dir, tmp_path):
    out = tmp_path / "encoder"
    began = time.monotonic()
    run_stage("encoder", "tiny", ["--dataset_dir", str(scenes_dir), "--output_dir", str(out), "--max_steps",
                                  "100000", "--max_train_seconds", "20", "--save_steps", "20", "--report_to", "none",
                                  "--eval_split", "none"])  # fmt: skip
    took = time.monotonic() - began
    record = json.loads((out / "training_stages.json").read_text())["stages"][-1]["metrics"]
    assert record["stopped_by"] == "time budget" and 0 < record["steps"] < 100000
    assert 20 <= took < 60, took  # training stops after the step that spends 20 s (plus loading and saving)


def test_a_resumed_stage_gets_only_the_time_left(scenes_dir, tmp_path):
    from transformers import TrainerState

    out = tmp_path / "encoder"
    common = ["--dataset_dir", str(scenes_dir), "--output_dir", str(out), "--report_to", "none",
              "--eval_split", "none", "--save_steps", "2"]  # fmt: skip
    run_stage("encoder", "tiny", [*common, "--max_steps", "2", "--max_train_seconds", "600"])
    checkpoint = out / "checkpoint-2"
    state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    (spent,) = [entry["attributes"]["spent_seconds"] for entry in [state.stateful_callbacks["TimeBudgetCallback"]]]
    assert spent > 0
    # pretend the first run used almost all of a 5-s budget: the resumed run stops after its first step
    state.stateful_callbacks["TimeBudgetCallback"]["attributes"]["spent_seconds"] = 4.999
    state.stateful_callbacks["TimeBudgetCallback"]["args"]["seconds"] = 5.0
    state.save_to_json(str(checkpoint / "trainer_state.json"))
    (out / "training_stages.json").unlink()
    run_stage("encoder", "tiny", [*common, "--max_steps", "1000", "--max_train_seconds", "5"])
    record = json.loads((out / "training_stages.json").read_text())["stages"][-1]["metrics"]
    assert record["stopped_by"] == "time budget" and record["steps"] == 3


@pytest.mark.parametrize("seconds", [(2.0, 4.37), (5.0,), (0.03, 1.0), (29.99,)])
def test_short_semantic_window_computation_equals_whisper(seconds):
    from hf_spatial import FOAFeatureExtractor

    clips = _clips(*seconds)
    out = FOAFeatureExtractor()(clips, sampling_rate=24000, return_tensors="np")
    w16 = [scipy.signal.resample_poly(clip[C.W], 2, 3) for clip in clips]
    ref = WhisperFeatureExtractor(feature_size=128)(
        w16, sampling_rate=16000, padding="max_length", return_attention_mask=True, return_tensors="np"
    )
    np.testing.assert_allclose(out["input_features"], ref["input_features"], atol=2e-5)
    np.testing.assert_array_equal(out["feature_attention_mask"], ref["attention_mask"])


def test_a_five_second_window_works_end_to_end():
    model, processor = build_tiny_spatial_qwen_audio(window_seconds=5)
    clips = _clips(5.0, 3.1)
    texts = _texts(processor, ["Where is the dog?", "Which is left?"])
    inputs = processor(text=texts, audio=clips, sampling_rate=24000, padding=True, return_tensors="pt")
    assert inputs["input_features"].shape[-1] == 500
    with torch.no_grad():
        logits = model(**inputs).logits
    assert torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="longer than the 5 s"):
        processor.feature_extractor(_clips(5.5), sampling_rate=24000)
