"""FOAFeatureExtractor: Whisper-equal semantic features, aligned spatial features, options and input errors."""

import numpy as np
import pytest
import scipy.signal
from transformers import AutoFeatureExtractor, WhisperFeatureExtractor

from hf_spatial import FOAFeatureExtractor
from hf_spatial import conventions as C
from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import (
    audio_token_count,
    resample_poly,
)

RATE = 24000


@pytest.fixture(scope="module")
def extractor():
    return FOAFeatureExtractor()


@pytest.fixture(scope="module")
def whisper():
    # Qwen2-Audio's extractor settings (128 mel bins, 16 kHz, 30 s).
    return WhisperFeatureExtractor(feature_size=128)


def plane_wave(seconds: float, azimuth: float, elevation: float = 0.0, seed: int = 0) -> np.ndarray:
    signal = np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * 0.1
    return C.encode_plane_wave(signal, azimuth_deg=azimuth, elevation_deg=elevation).astype(np.float32)


@pytest.mark.parametrize(("up", "down", "length"), [(2, 3, 120000), (2, 3, 481), (3, 2, 7777), (1, 3, 48000)])
def test_resampler_matches_scipy(up, down, length):
    signal = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    expected = scipy.signal.resample_poly(signal, up, down, axis=-1)
    got = resample_poly(signal, up, down)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_semantic_features_equal_whisper_on_resampled_w(extractor, whisper):
    clips = [plane_wave(2.0, 30, seed=1), plane_wave(4.37, -100, seed=2)]
    out = extractor(clips, sampling_rate=RATE, return_tensors="np")
    w16 = [scipy.signal.resample_poly(clip[C.W], 2, 3) for clip in clips]
    ref = whisper(w16, sampling_rate=16000, padding="max_length", return_attention_mask=True, return_tensors="np")
    assert out["input_features"].shape == ref["input_features"].shape == (2, 128, 3000)
    np.testing.assert_allclose(out["input_features"], ref["input_features"], atol=2e-5)
    np.testing.assert_array_equal(out["feature_attention_mask"], ref["attention_mask"])


def test_16khz_input_uses_w_directly(extractor, whisper):
    clip = plane_wave(3.0, 45)
    clip16 = scipy.signal.resample_poly(clip, 2, 3, axis=-1).astype(np.float32)
    out = extractor(clip16, sampling_rate=16000, return_tensors="np")
    ref = whisper(clip16[C.W], sampling_rate=16000, padding="max_length", return_attention_mask=True)
    np.testing.assert_array_equal(out["input_features"], ref["input_features"])
    # spatial features are computed at 24 kHz whatever the input rate: same token grid, same direction
    native = extractor(clip, sampling_rate=RATE, return_tensors="np")
    assert out["spatial_features"].shape == native["spatial_features"].shape


def test_spatial_features_tile_audio_tokens_and_encode_direction(extractor):
    clips = [plane_wave(1.3, 60, 20), plane_wave(5.0, -135, -30)]
    out = extractor(clips, sampling_rate=RATE, return_tensors="np")
    tokens = audio_token_count(out["feature_attention_mask"].sum(-1))
    assert tokens.tolist() == [32, 125]
    assert out["spatial_features"].shape == (2, 7, 64, 4 * 125)
    assert out["spatial_attention_mask"].sum(-1).tolist() == [4 * 32, 4 * 125]
    assert not out["spatial_features"][0, :, :, 4 * 32 :].any()  # padding frames are zero
    for index, (azimuth, elevation) in enumerate([(60, 20), (-135, -30)]):
        frames = out["spatial_attention_mask"][index].astype(bool)
        intensity = out["spatial_features"][index][4:][..., frames].mean(axis=(1, 2))
        np.testing.assert_allclose(intensity, C.unit_vector(azimuth, elevation), atol=0.02)


def test_fuma_input_matches_ambix(extractor):
    clip = plane_wave(1.0, 120, 10)
    ambix = extractor(clip, sampling_rate=RATE, return_tensors="np")
    fuma = extractor(C.ambix_to_fuma(clip), sampling_rate=RATE, input_format="fuma", return_tensors="np")
    for key in ambix:
        np.testing.assert_allclose(fuma[key], ambix[key], atol=1e-5)


def test_other_rates_need_resample_flag(extractor):
    clip48 = scipy.signal.resample_poly(plane_wave(1.0, 0), 2, 1, axis=-1).astype(np.float32)
    with pytest.raises(ValueError, match=r"48000 Hz.*resample=True"):
        extractor(clip48, sampling_rate=48000)
    out = extractor(clip48, sampling_rate=48000, resample=True, return_tensors="np")
    assert audio_token_count(out["feature_attention_mask"].sum(-1)).tolist() == [25]


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros((3, RATE), np.float32), r"shape \(4, num_samples\).*\(3, 24000\)"),
        (np.zeros((RATE, 4), np.float32), r"transpose"),
        (np.full((4, RATE), np.nan, np.float32), "NaN or Inf"),
        (np.zeros((4, 31 * RATE), np.float32), "longer than the 30 s"),
        (np.zeros((4, 100), np.float32), "too short"),
        (np.zeros((4, RATE), np.int16), "floating-point"),
        ("clip.wav", "expects a \\(4, num_samples\\) array"),
    ],
)
def test_bad_inputs_raise_clear_errors(extractor, audio, message):
    with pytest.raises(ValueError, match=message):
        extractor(audio, sampling_rate=RATE)


def test_save_and_auto_load_round_trip(extractor, tmp_path):
    custom = FOAFeatureExtractor(spatial_num_mel_bins=32, input_format="fuma")
    custom.save_pretrained(tmp_path)
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert type(loaded) is FOAFeatureExtractor
    assert loaded.to_dict() == custom.to_dict()
    clip = C.ambix_to_fuma(plane_wave(0.5, 10))
    a, b = custom(clip, sampling_rate=RATE), loaded(clip, sampling_rate=RATE)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
