import numpy as np
import pytest
from pyroomacoustics.experimental import measure_rt60

from hf_spatial.acoustics.intensity import estimate_direction
from hf_spatial.acoustics.render import render_scene, scene_rirs
from hf_spatial.acoustics.rooms import wall_absorption
from hf_spatial.acoustics.scene import NoiseSpec, RoomSpec, SceneSpec, SourceSpec
from hf_spatial.acoustics.sources import Clip, SourceBank
from hf_spatial.conventions import SAMPLE_RATE, X, Y, Z, angular_distance


@pytest.fixture(scope="module")
def noise_bank() -> SourceBank:
    rng = np.random.default_rng(0)
    audio = {"noise": (0.1 * rng.standard_normal(2 * SAMPLE_RATE)).astype(np.float32)}
    return SourceBank([Clip("noise", "noise", 2.0, "train")], "white noise", audio)


def _scene(room: RoomSpec, directions, mode="exact", duration=1.0, noise: NoiseSpec | None = None) -> SceneSpec:
    sources = [
        SourceSpec("noise", "noise", azimuth=az, elevation=el, distance=dist, onset=0.0, offset=min(duration, 1.0))
        for az, el, dist in directions
    ]
    return SceneSpec("t", room, sources, seed=7, duration=duration, render_mode=mode, noise=noise or NoiseSpec())


ROOM = RoomSpec("r", (8.0, 7.0, 4.0), 0.4, (4.0, 3.5, 2.0))


@pytest.mark.parametrize("azimuth, elevation", [(0, 0), (90, 0), (-135, 30), (60, -40), (170, 20), (-30, 45)])
def test_direct_path_is_a_plane_wave_from_the_scene_direction(noise_bank, azimuth, elevation):
    foa = render_scene(_scene(ROOM, [(azimuth, elevation, 1.5)]), noise_bank, anechoic=True)
    estimated = estimate_direction(foa, SAMPLE_RATE)
    assert angular_distance(*estimated, azimuth, elevation) < 2.0


@pytest.mark.parametrize("dimensions, rt60", [((4.0, 3.5, 2.8), 0.3), ((6.0, 4.0, 3.0), 0.5), ((7.0, 3.0, 2.7), 0.4)])
def test_rendered_rooms_have_the_requested_rt60(dimensions, rt60):
    listener = tuple(d / 2 - 0.3 for d in dimensions)
    room = RoomSpec("r", dimensions, rt60, listener)
    scene = _scene(room, [(40.0, 10.0, 1.2)])
    for mode in ("exact", "hybrid"):
        w = scene_rirs(scene, mode)[0][0]
        measured = measure_rt60(w, SAMPLE_RATE, decay_db=30)
        assert abs(measured - rt60) / rt60 < 0.2, (mode, measured)


def test_hybrid_keeps_the_early_part_and_matches_channel_energies():
    room = RoomSpec("r", (6.0, 4.0, 3.0), 0.5, (2.5, 1.8, 1.4))
    scene = _scene(room, [(-60.0, 20.0, 1.5)])
    exact, hybrid = scene_rirs(scene, "exact")[0], scene_rirs(scene, "hybrid")[0]
    direct = round(1.5 / 343.0 * SAMPLE_RATE)
    # Direct path and first reflections are the same image sources, filtered by the same causal high-pass.
    np.testing.assert_array_equal(exact[:, : direct + 24], hybrid[:, : direct + 24])
    late = slice(int(0.05 * SAMPLE_RATE), int(0.4 * SAMPLE_RATE))
    exact_ratio = np.sum(exact[[Y, Z, X], late] ** 2, axis=1) / np.sum(exact[0, late] ** 2)
    hybrid_ratio = np.sum(hybrid[[Y, Z, X], late] ** 2, axis=1) / np.sum(hybrid[0, late] ** 2)
    assert np.all(np.abs(10 * np.log10(hybrid_ratio / exact_ratio)) < 1.0), (exact_ratio, hybrid_ratio)
    total_db = 10 * np.log10(np.sum(hybrid[0] ** 2) / np.sum(exact[0] ** 2))
    assert abs(total_db) < 1.0


@pytest.mark.parametrize("mode", ["exact", "hybrid"])
def test_rendering_is_deterministic_and_clipping_safe(noise_bank, mode):
    scene = _scene(ROOM, [(30, 0, 0.6), (-100, 10, 2.0)], mode=mode, noise=NoiseSpec("diffuse_pink", 15.0))
    first = render_scene(scene, noise_bank)
    again = render_scene(SceneSpec.from_json(scene.to_json()), noise_bank)
    assert first.shape == (4, SAMPLE_RATE) and first.dtype == np.float32
    assert first.tobytes() == again.tobytes()
    assert np.max(np.abs(first)) <= 10 ** (-1 / 20) + 1e-6


def test_output_gain_is_recorded_when_the_mix_would_clip():
    loud = {"loud": np.full(SAMPLE_RATE, 0.9, dtype=np.float32) * np.sign(np.sin(np.arange(SAMPLE_RATE)))}
    bank = SourceBank([Clip("loud", "loud", 1.0, "train")], "loud", loud)
    scene = _scene(ROOM, [(0, 0, 0.5)])
    scene.sources[0] = SourceSpec("loud", "loud", 0, 0, 0.5, 0.0, 1.0, gain_db=0.0)
    foa = render_scene(scene, bank)
    assert scene.output_gain_db < 0
    assert np.isclose(np.max(np.abs(foa)), 10 ** (-1 / 20), rtol=1e-4)


def test_diffuse_noise_has_the_requested_snr_and_sn3d_channel_energies(noise_bank):
    scene = _scene(ROOM, [(0, 0, 1.0)], noise=NoiseSpec("diffuse_white", 0.0))
    with_noise = render_scene(scene, noise_bank).astype(np.float64) / 10 ** (scene.output_gain_db / 20)
    dry_scene = _scene(ROOM, [(0, 0, 1.0)])
    dry = render_scene(dry_scene, noise_bank).astype(np.float64) / 10 ** (dry_scene.output_gain_db / 20)
    noise = with_noise - dry
    assert abs(10 * np.log10(np.mean(dry[0] ** 2) / np.mean(noise[0] ** 2))) < 0.1
    assert np.allclose(np.mean(noise[1:] ** 2, axis=1) / np.mean(noise[0] ** 2), 1 / 3, rtol=0.05)


def test_impossible_room_and_missing_clip_give_clear_errors(noise_bank):
    with pytest.raises(ValueError, match=r"Impossible room: RT60 0\.05 s"):
        wall_absorption(0.05, (10.0, 10.0, 4.0))
    scene = _scene(RoomSpec("big", (20.0, 20.0, 8.0), 0.1, (10.0, 10.0, 2.0)), [(0, 0, 1.0)])
    with pytest.raises(ValueError, match="Impossible room"):
        render_scene(scene, noise_bank)
    scene = _scene(ROOM, [(0, 0, 1.0)])
    scene.sources[0].clip_id = "nope"
    with pytest.raises(KeyError, match="'nope' is not in the source bank"):
        render_scene(scene, noise_bank)
