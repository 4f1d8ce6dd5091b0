"""FOA augmentation against re-rendered scenes: transforming the audio must equal rendering the scene with its sources
moved by the same rule (and the labels must move by that rule)."""

import numpy as np
import pytest

from hf_spatial.acoustics.render import render_scene
from hf_spatial.acoustics.scene import RoomSpec, SceneSpec, SourceSpec
from hf_spatial.acoustics.sources import Clip, SourceBank
from hf_spatial.conventions import SAMPLE_RATE, cartesian_to_spherical, mirror_direction, rotate_direction, unit_vector
from hf_spatial.training.augmentation import MAZZON_TRANSFORMS, FOATransform, sample_transform

SOURCES = [(30.0, 20.0, 1.3), (-110.0, -35.0, 1.1)]
ARBITRARY = [FOATransform(37.0), FOATransform(-151.5, True, False), FOATransform(203.0, True, True)]


@pytest.fixture(scope="module")
def bank() -> SourceBank:
    rng = np.random.default_rng(0)
    audio = {f"n{i}": (0.1 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32) for i in range(2)}
    return SourceBank([Clip(name, "noise", 1.0, "train") for name in audio], "white noise", audio)


def _scene(room: RoomSpec, directions) -> SceneSpec:
    sources = [
        SourceSpec(f"n{i}", "noise", azimuth=az, elevation=el, distance=dist, onset=0.1 * i, offset=0.5)
        for i, (az, el, dist) in enumerate(directions)
    ]
    return SceneSpec("aug", room, sources, seed=3, duration=0.5)


def _moved(transform: FOATransform, directions):
    moved = []
    for az, el, dist in directions:
        new_az, new_el, _ = cartesian_to_spherical(transform.apply_vectors(unit_vector(az, el)))
        moved.append((float(new_az), float(new_el), dist))
    return moved


def _render(scene: SceneSpec, bank: SourceBank, anechoic: bool) -> np.ndarray:
    # Undo the clipping-safe output gain, which depends on the channel peaks and so on the direction.
    foa = render_scene(scene, bank, anechoic=anechoic).astype(np.float64)
    return foa / 10.0 ** (scene.output_gain_db / 20.0)


def _assert_same_field(transform, room, bank, anechoic):
    original = _render(_scene(room, SOURCES), bank, anechoic)
    expected = _render(_scene(room, _moved(transform, SOURCES)), bank, anechoic)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(transform.apply_foa(original), expected, atol=2e-4 * scale)
    # The check can tell fields apart: the untransformed audio does not match the moved sources.
    if transform.matrix.round(9).tolist() != np.eye(3).tolist():
        assert np.abs(original - expected).max() > 0.05 * scale


@pytest.mark.parametrize("transform", ARBITRARY + list(MAZZON_TRANSFORMS[1::3]))
def test_transformed_audio_equals_the_anechoic_render_with_moved_sources(transform, bank):
    # In free field (direct path only) every rotation about z and every mirror is exact.
    room = RoomSpec("free", (12.0, 11.0, 6.0), 0.3, (6.0, 5.5, 3.0))
    _assert_same_field(transform, room, bank, anechoic=True)


@pytest.mark.parametrize("transform", MAZZON_TRANSFORMS[1:])
def test_mazzon_transforms_equal_the_reverberant_render_in_a_symmetric_room(transform, bank):
    # A square room with the listener at its centre is mapped onto itself by the 16 transforms, so the whole
    # image-source field (every reflection) of the moved sources must equal the transformed field.
    room = RoomSpec("square", (4.0, 4.0, 3.0), 0.25, (2.0, 2.0, 1.5))
    _assert_same_field(transform, room, bank, anechoic=False)


def test_rotation_off_the_grid_is_not_exact_in_a_reverberant_room(bank):
    # The control of the test above: a 37-degree rotation does not map the room onto itself, so its reflections
    # differ (only the direct path would match); the symmetric-room check is not passing trivially.
    room = RoomSpec("square", (4.0, 4.0, 3.0), 0.25, (2.0, 2.0, 1.5))
    transform = FOATransform(37.0)
    original = _render(_scene(room, SOURCES), bank, anechoic=False)
    expected = _render(_scene(room, _moved(transform, SOURCES)), bank, anechoic=False)
    assert np.abs(transform.apply_foa(original) - expected).max() > 1e-2 * np.abs(expected).max()


@pytest.mark.parametrize("transform", ARBITRARY + list(MAZZON_TRANSFORMS))
def test_label_vectors_move_as_the_conventions_move_directions(transform):
    rng = np.random.default_rng(1)
    for az, el in zip(rng.uniform(-180, 180, 20), rng.uniform(-80, 80, 20), strict=True):
        expected_az, expected_el = az, el
        if transform.mirror_left_right:
            expected_az, expected_el = mirror_direction(expected_az, expected_el, "left_right")
        if transform.mirror_up_down:
            expected_az, expected_el = mirror_direction(expected_az, expected_el, "up_down")
        expected = unit_vector(rotate_direction(expected_az, transform.rotation_deg), expected_el)
        np.testing.assert_allclose(transform.apply_vectors(unit_vector(az, el)), expected, atol=1e-12)
    assert not transform.apply_vectors(np.zeros((3, 3))).any()  # padded slots stay empty


def test_the_16_transforms_are_distinct_signed_permutations():
    matrices = {tuple(t.matrix.round(12).ravel()) for t in MAZZON_TRANSFORMS}
    assert len(matrices) == 16
    for transform in MAZZON_TRANSFORMS:
        matrix = np.abs(transform.matrix.round(12))
        assert sorted(matrix.sum(0)) == sorted(matrix.sum(1)) == [1.0, 1.0, 1.0]


def test_sampling_is_seeded_and_covers_the_modes():
    draws = [sample_transform("mazzon16", np.random.default_rng([0, i])) for i in range(200)]
    assert set(draws) == set(MAZZON_TRANSFORMS)
    assert draws == [sample_transform("mazzon16", np.random.default_rng([0, i])) for i in range(200)]
    angles = [sample_transform("rotation", np.random.default_rng([0, i])).rotation_deg for i in range(50)]
    assert len(set(angles)) == 50 and min(angles) >= 0 and max(angles) < 360
    assert sample_transform("none", np.random.default_rng(0)) == FOATransform()
    with pytest.raises(ValueError, match="Unknown augmentation"):
        sample_transform("spin", np.random.default_rng(0))
