"""The encoder's direction path: dense ACCDOA targets from a SceneSpec, the broadband intensity input, and slot
directions read from the ACCDOA map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_spatial import conventions as C
from hf_spatial.conventions import TOKEN_RATE_HZ
from hf_spatial.training.seld_targets import accdoa_targets, scene_targets
from tests.scene_factory import make_scene

CLASSES = ["dog", "bell", "speech"]


def test_accdoa_targets_put_each_source_direction_on_its_active_tokens():
    scene = make_scene([("bell", 90.0, 0.0, 2.0, 0.0), ("dog", -30.0, 20.0, 1.0, 1.0)])
    num_tokens = 100  # 4 s at 25 Hz
    targets = {k: torch.as_tensor(v)[None] for k, v in scene_targets(scene, CLASSES, 3, num_tokens).items()}
    accdoa = accdoa_targets(targets, len(CLASSES), num_tokens)[0]  # (tokens, classes, 3)
    assert accdoa.shape == (num_tokens, 3, 3)
    times = (np.arange(num_tokens) + 0.5) / TOKEN_RATE_HZ
    for source in scene.sources:
        active = torch.as_tensor((times >= source.onset) & (times < source.offset))
        vectors = accdoa[:, CLASSES.index(source.label)]
        expected = torch.as_tensor(C.unit_vector(source.azimuth, source.elevation), dtype=vectors.dtype)
        torch.testing.assert_close(vectors[active], expected.expand(int(active.sum()), 3))
        assert vectors[~active].abs().max() == 0
    assert accdoa[:, CLASSES.index("speech")].abs().max() == 0  # a class not in the scene


@pytest.mark.parametrize(("azimuth", "elevation"), [(0.0, 0.0), (120.0, 30.0), (-75.0, -20.0)])
def test_pooled_intensity_points_at_a_plane_wave(azimuth, elevation):
    from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor
    from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import _pooled_intensity

    noise = np.random.default_rng(0).standard_normal(24000 * 2)
    foa = C.encode_plane_wave(noise, azimuth, elevation).astype(np.float32)
    features = FOAFeatureExtractor()(foa, sampling_rate=24000, return_tensors="pt")
    broadband = _pooled_intensity(features["spatial_features"], 4)[0]  # (tokens, 3)
    az, el, norm = C.cartesian_to_spherical(broadband[2:-2].double().numpy())  # clip edges: window padding
    assert np.all(norm > 0.9)
    assert np.max(C.angular_distance(az, el, azimuth, elevation)) < 2.0


def test_slot_directions_read_the_accdoa_map_of_their_class_and_time():
    from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import SpatialEncoder
    from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio

    model, _ = build_tiny_spatial_qwen_audio(seed=0, class_names=CLASSES)
    encoder: SpatialEncoder = model.model.spatial_encoder
    # Make the ACCDOA map say "bell at +y (left)" on every token and every other class silent.
    with torch.no_grad():
        encoder.accdoa_activity_head.weight.zero_()
        encoder.accdoa_activity_head.bias.fill_(-30.0)  # no measured direction passes
        encoder.accdoa_correction_head.weight.zero_()
        bias = torch.zeros(len(CLASSES), 3)
        bias[CLASSES.index("bell"), 1] = 1.0
        encoder.accdoa_correction_head.bias.copy_(bias.flatten())
        encoder.class_head.weight.zero_()
        encoder.class_head.bias.copy_(torch.tensor([0.0, 8.0, 0.0]))  # every slot: "bell"
    features = torch.randn(1, 7, 64, 40)
    outputs = encoder(features, torch.ones(1, 40, dtype=torch.long))
    torch.testing.assert_close(outputs.slot_direction[0], torch.tensor([[0.0, 1.0, 0.0]]).expand(3, 3), atol=2e-3,
                               rtol=0)  # fmt: skip
    assert outputs.token_accdoa.shape == (1, 10, len(CLASSES), 3)


def test_a_new_encoder_reads_the_measured_direction_into_every_slot():
    """At initialisation (correction zero) every slot's direction is the activity-weighted broadband intensity:
    a plane wave's direction before any training."""
    from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor
    from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio

    model, _ = build_tiny_spatial_qwen_audio(seed=0, class_names=CLASSES)
    noise = np.random.default_rng(1).standard_normal(24000 * 2)
    foa = C.encode_plane_wave(noise, 135.0, 10.0).astype(np.float32)
    features = FOAFeatureExtractor()(foa, sampling_rate=24000, return_tensors="pt")
    with torch.no_grad():
        outputs = model.get_spatial_outputs(features["spatial_features"], features["spatial_attention_mask"])
    az, el, _ = C.cartesian_to_spherical(outputs.slot_direction[0].double().numpy())
    assert np.max(C.angular_distance(az, el, 135.0, 10.0)) < 3.0
