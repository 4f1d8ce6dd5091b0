"""Pretrained spatial encoders: save, load into models of other classes, refuse what does not fit; the shipped one."""

import json
import tomllib

import numpy as np
import pytest
import torch

from hf_spatial.models.spatial_encoders import (
    CONFIG_FILE,
    SHIPPED_SPATIAL_ENCODER,
    WEIGHTS_FILE,
    load_spatial_encoder,
    save_spatial_encoder,
    spatial_encoder_config,
    spatial_encoder_folder,
)
from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio
from tests.conftest import REPO_ROOT

CLASSES = ["bell", "dog", "knock"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model, processor = build_tiny_spatial_qwen_audio(seed=3, class_names=CLASSES, window_seconds=2)
    with torch.no_grad():  # as if trained: the zero-initialised ACCDOA correction too
        for parameter in model.model.spatial_encoder.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    folder = save_spatial_encoder(model, processor.feature_extractor, tmp_path_factory.mktemp("enc") / "e", "# card\n")
    return model, processor, folder


def _outputs(model, processor, seed=0):
    clip = (0.1 * np.random.default_rng(seed).standard_normal((4, 48000))).astype(np.float32)
    features = processor.feature_extractor.extract_spatial(clip, sampling_rate=24000, return_tensors="pt")
    with torch.inference_mode():
        return model.eval().get_spatial_outputs(features["spatial_features"], features["spatial_attention_mask"])


def test_a_model_built_with_the_encoder_computes_what_the_original_did(saved):
    original, processor, folder = saved
    model, _ = build_tiny_spatial_qwen_audio(seed=9, window_seconds=2, spatial_encoder_name_or_path=str(folder))
    assert model.config.spatial_class_names == CLASSES
    expected, got = _outputs(original, processor), _outputs(model, processor)
    for name in ("last_hidden_state", "token_accdoa", "slot_direction", "slot_presence_logits"):
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=0, atol=0)
    # The language side is the new model's own (seed 9), untouched by the encoder.
    other, _ = build_tiny_spatial_qwen_audio(seed=9, class_names=CLASSES, window_seconds=2)
    torch.testing.assert_close(model.lm_head.weight, other.lm_head.weight, rtol=0, atol=0)


def test_other_classes_get_the_shared_rows_by_name_and_keep_their_own_for_new_ones(saved):
    original, processor, folder = saved
    classes = ["knock", "siren", "bell"]
    model, _ = build_tiny_spatial_qwen_audio(
        seed=9, class_names=classes, window_seconds=2, spatial_encoder_name_or_path=str(folder)
    )
    expected, got = _outputs(original, processor), _outputs(model, processor)
    torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, rtol=0, atol=0)
    for target, name in enumerate(classes):
        if name in CLASSES:
            source = CLASSES.index(name)
            torch.testing.assert_close(got.token_accdoa[:, :, target], expected.token_accdoa[:, :, source])
        else:  # a new class: its head rows are the new model's initialisation, not some other class's
            new = got.token_accdoa[:, :, target]
            assert not any(torch.allclose(new, expected.token_accdoa[:, :, source]) for source in range(3))
    fresh, _ = build_tiny_spatial_qwen_audio(seed=9, class_names=classes, window_seconds=2)
    head = model.model.spatial_encoder.class_head.weight
    torch.testing.assert_close(head[1], fresh.model.spatial_encoder.class_head.weight[1], rtol=0, atol=0)
    torch.testing.assert_close(head[0], original.model.spatial_encoder.class_head.weight[2], rtol=0, atol=0)


def test_an_encoder_that_does_not_fit_is_refused(saved):
    _, processor, folder = saved
    wider, _ = build_tiny_spatial_qwen_audio(class_names=CLASSES, window_seconds=2, spatial_hidden_size=48)
    with pytest.raises(ValueError, match="does not fit this model"):
        load_spatial_encoder(wider, folder)
    model, _ = build_tiny_spatial_qwen_audio(class_names=CLASSES, window_seconds=2)
    processor.feature_extractor.spatial_min_frequency = 20.0
    try:
        with pytest.raises(ValueError, match="differ from those the encoder"):
            load_spatial_encoder(model, folder, processor.feature_extractor)
    finally:
        processor.feature_extractor.spatial_min_frequency = 50.0
    with pytest.raises(FileNotFoundError, match="not a spatial encoder folder"):
        load_spatial_encoder(model, folder.parent)


def test_the_shipped_encoder_is_packaged_and_documented():
    folder = spatial_encoder_folder(SHIPPED_SPATIAL_ENCODER)
    assert folder == REPO_ROOT / "hf_spatial" / "pretrained" / "spatial_encoder"
    assert (folder / WEIGHTS_FILE).stat().st_size < 8_000_000  # small enough to live in the repository
    config = spatial_encoder_config(SHIPPED_SPATIAL_ENCODER)
    assert json.loads((folder / CONFIG_FILE).read_text())["class_names"] == config["class_names"]
    card = (folder / "README.md").read_text()
    assert "hf-spatial train --stage encoder" in card and "## Metrics" in card
    package_data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"**/*.safetensors", "**/*.json", "**/*.md"} <= set(package_data["hf_spatial"])
    model, processor = build_tiny_spatial_qwen_audio(spatial_encoder_name_or_path=SHIPPED_SPATIAL_ENCODER)
    assert model.config.spatial_class_names == config["class_names"]
    outputs = _outputs(model, processor)
    assert torch.isfinite(outputs.token_accdoa).all()


def test_the_shipped_encoders_detections_name_a_sound_and_where_it_is():
    """The slots' per-class detections (`spatial_clip_accdoa`, what the projector reads) of a real scene: the
    strongest class is the sound played and it points where the sound came from."""
    from hf_spatial.acoustics.procedural import synthesise
    from hf_spatial.conventions import SAMPLE_RATE, angular_distance, cartesian_to_spherical, encode_plane_wave

    model, processor = build_tiny_spatial_qwen_audio(spatial_encoder_name_or_path=SHIPPED_SPATIAL_ENCODER,
                                                     window_seconds=3)  # fmt: skip
    names = model.config.spatial_class_names
    for label, azimuth in (("bell", 60.0), ("alarm", -120.0)):
        signal, _ = synthesise(label, 0, seed=0)
        clip = encode_plane_wave(np.resize(signal, 3 * SAMPLE_RATE), azimuth_deg=azimuth, elevation_deg=0.0)
        features = processor.feature_extractor(clip.astype(np.float32), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        with torch.inference_mode():
            detections = model.model.encode_audio(**features).spatial_clip_accdoa[0]
        strongest = int(detections.norm(dim=-1).argmax())
        assert names[strongest] == label
        estimated, _, _ = cartesian_to_spherical(detections[strongest].numpy())
        assert angular_distance(float(estimated), 0.0, azimuth, 0.0) < 20.0
