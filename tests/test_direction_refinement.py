"""Slot direction refinement (`spatial_direction_refinement`): mean-shift on the measured intensity directions. Two
slots that start together end on two sources; on simulated reverberant scenes the shipped encoder's slots are closer
to the sources with it than without; the setting travels with the shipped encoder."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hf_spatial import SpatialQwenAudioConfig
from hf_spatial.acoustics.procedural import synthesise
from hf_spatial.acoustics.render import diffuse_noise
from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import (
    SAMPLE_RATE,
    angular_distance,
    cartesian_to_spherical,
    encode_plane_wave,
    spherical_to_cartesian,
)
from hf_spatial.data import read_foa
from hf_spatial.data.folders import load_folder
from hf_spatial.data.simulate import simulate
from hf_spatial.evaluation.baselines import match_directions
from hf_spatial.models.spatial_encoders import SHIPPED_SPATIAL_ENCODER, spatial_encoder_config
from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor
from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import _refine_slot_directions
from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio

CONCENTRATIONS = (10.0, 30.0, 60.0)


def _as_angles(vectors: torch.Tensor) -> list[tuple[float, float]]:
    azimuth, elevation, _ = cartesian_to_spherical(vectors.double().numpy())
    return list(zip(np.atleast_1d(azimuth).tolist(), np.atleast_1d(elevation).tolist(), strict=True))


def test_two_slots_that_start_together_end_on_the_two_sources():
    sources = [("knock", 60.0, 10.0), ("engine", -80.0, -5.0)]
    samples = 3 * SAMPLE_RATE
    signals = [np.resize(synthesise(label, 0, seed=0)[0], samples) for label, _, _ in sources]
    foa = sum(encode_plane_wave(signal, az, el) for signal, (_, az, el) in zip(signals, sources, strict=True))
    foa = foa + 0.3 * np.sqrt(np.mean(foa[0] ** 2)) * diffuse_noise("diffuse_pink", samples, np.random.default_rng(0))
    features = FOAFeatureExtractor().extract_spatial(foa.astype(np.float32), SAMPLE_RATE, return_tensors="pt")
    tokens = features["spatial_features"].shape[-1] // 4

    def refine(starts, concentrations=CONCENTRATIONS):
        start = torch.tensor(np.array([spherical_to_cartesian(az, el) for az, el in starts]), dtype=torch.float32)
        refined = _refine_slot_directions(
            F.normalize(start, dim=-1)[None], torch.tensor([[3.0, 2.0, -4.0]]), torch.full((1, 3, tokens), 5.0),
            features["spatial_features"], features["spatial_attention_mask"], concentrations,
        )[0]  # fmt: skip
        return _as_angles(refined[:2])  # the two present slots

    def off(estimates):
        return [min(angular_distance(*e, az, el) for e in estimates) for _, az, el in sources]

    # Each slot starts 25 degrees off its source and ends on it; with no steps, it stays put.
    apart = [(80.0, 25.0), (-60.0, -15.0), (150.0, 0.0)]
    assert max(off(refine(apart))) < 5.0
    np.testing.assert_allclose(refine(apart, ()), apart[:2], atol=1e-3)
    # Both slots start on the engine (as two slots that read the same frames would): the less present one restarts
    # from the heaviest bin the first left unexplained and finds the knock.
    together = [(-75.0, 0.0), (-70.0, 5.0), (150.0, 0.0)]
    assert max(off(refine(together))) < 5.0


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Held-out reverberant scenes as `hf-spatial simulate` makes them (test rooms and clips, 1-3 sources)."""
    folder = tmp_path_factory.mktemp("refinement_scenes")
    simulate(folder, num_scenes=40, split="test", seed=5, duration=3.0, progress=False)
    return load_folder(folder, "test")


def _slot_errors(model, processor, test) -> list[float]:
    """Per source, the angle to its matched slot (the k most present slots for k sources)."""
    rows = [test[i] for i in range(len(test))]
    features = processor.feature_extractor.extract_spatial(
        [read_foa(row["audio"]) for row in rows], SAMPLE_RATE, return_tensors="pt"
    )
    with torch.inference_mode():
        outputs = model.get_spatial_outputs(features["spatial_features"], features["spatial_attention_mask"])
    errors = []
    for i, row in enumerate(rows):
        scene = SceneSpec.from_json(row["scene"])
        slots = torch.argsort(outputs.slot_presence_logits[i], descending=True)[: len(scene.sources)]
        matched = match_directions(scene, _as_angles(outputs.slot_direction[i, slots]))
        errors += [angular_distance(s.azimuth, s.elevation, *m) for s, m in zip(scene.sources, matched, strict=True)]
    return errors


def test_the_shipped_encoder_hears_directions_better_with_refinement(simulated):
    kappas = spatial_encoder_config(SHIPPED_SPATIAL_ENCODER)["encoder"]["spatial_direction_refinement"]
    assert kappas == list(CONCENTRATIONS)
    model, processor = build_tiny_spatial_qwen_audio(spatial_encoder_name_or_path=SHIPPED_SPATIAL_ENCODER)
    assert model.config.spatial_direction_refinement == kappas
    # No weight depends on the setting: the same weights load without it.
    plain, _ = build_tiny_spatial_qwen_audio(
        spatial_encoder_name_or_path=SHIPPED_SPATIAL_ENCODER, spatial_direction_refinement=[]
    )
    refined = _slot_errors(model.eval(), processor, simulated)
    unrefined = _slot_errors(plain.eval(), processor, simulated)
    print(f"median error refined {np.median(refined):.1f} unrefined {np.median(unrefined):.1f}")
    assert np.median(refined) < 0.75 * np.median(unrefined)
    assert np.mean(np.array(refined) <= 10.0) > np.mean(np.array(unrefined) <= 10.0) + 0.1


def test_concentrations_must_be_positive():
    with pytest.raises(ValueError, match="positive concentrations"):
        SpatialQwenAudioConfig(spatial_direction_refinement=[10.0, 0.0])


def test_refined_directions_train_the_slots_with_finite_gradients():
    """The encoder stage trains through the refinement: its gradients differ from the unrefined encoder's, reach the
    slot activity (which frames a slot reads) and stay finite on padded frames (a shorter clip in the batch)."""
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal((4, n))).astype(np.float32) for n in (48000, 30000)]

    def gradients(concentrations):
        model, processor = build_tiny_spatial_qwen_audio(
            window_seconds=2, spatial_direction_refinement=list(concentrations)
        )
        features = processor.feature_extractor.extract_spatial(clips, SAMPLE_RATE, return_tensors="pt")
        encoder = model.model.spatial_encoder.train()
        torch.manual_seed(0)  # the same dropout masks in both
        outputs = encoder(features["spatial_features"], features["spatial_attention_mask"])
        outputs.slot_direction[..., 0].sum().backward()
        return {name: p.grad for name, p in encoder.named_parameters() if p.grad is not None}

    refined, unrefined = gradients(CONCENTRATIONS), gradients(())
    assert all(torch.isfinite(gradient).all() for gradient in refined.values())
    assert refined["activity_query.weight"].abs().sum() > 0
    assert not torch.allclose(refined["activity_query.weight"], unrefined["activity_query.weight"])
