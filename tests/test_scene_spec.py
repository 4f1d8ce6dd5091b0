import numpy as np
import pytest

from hf_spatial.acoustics import NoiseSpec, RoomSpec, SceneSpec, SourceSpec


def make_scene(**overrides) -> SceneSpec:
    room = RoomSpec(room_id="r1", dimensions=(6.0, 5.0, 3.0), rt60=0.4, listener_position=(3.0, 2.5, 1.5))
    sources = [
        SourceSpec(clip_id="c1", label="dog", azimuth=0, elevation=0, distance=2.0, onset=0.0, offset=2.0),
        SourceSpec(clip_id="c2", label="phone", azimuth=90, elevation=0, distance=1.0, onset=1.0, offset=4.0),
    ]
    fields = dict(scene_id="s1", room=room, sources=sources, seed=7)
    fields.update(overrides)
    return SceneSpec(**fields)


def test_positions_follow_listener_frame():
    scene = make_scene()
    np.testing.assert_allclose(scene.source_position(0), [5.0, 2.5, 1.5])
    np.testing.assert_allclose(scene.source_position(1), [3.0, 3.5, 1.5], atol=1e-12)
    az, _, r = scene.relative_direction(0, 1)  # dog seen from the phone: front-right
    assert az == pytest.approx(-26.565, abs=1e-3)
    assert r == pytest.approx(np.sqrt(5))
    assert scene.labels == ["dog", "phone"]


def test_json_round_trip_is_exact_and_canonical():
    scene = make_scene(noise=NoiseSpec(kind="diffuse_pink", snr_db=20.0))
    text = scene.to_json()
    again = SceneSpec.from_json(text)
    assert again == scene
    assert again.to_json() == text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sources": []}, "1 to 3 sources"),
        ({"render_mode": "fast"}, "render_mode"),
        ({"noise": NoiseSpec(kind="diffuse_white")}, "snr_db"),
        ({"noise": NoiseSpec(kind="babble", snr_db=3)}, "noise kind"),
        ({"room": RoomSpec("r", (6, 5, 3), 0.4, (7, 2, 1))}, "outside the room"),
        ({"room": RoomSpec("r", (6, 5, 3), -1.0, (3, 2, 1))}, "rt60"),
        ({"room": RoomSpec("r", (6, 0, 3), 0.4, (3, 0, 1))}, "dimensions"),
        ({"room": RoomSpec("r", (3.5, 5, 3), 0.4, (3, 2.5, 1.5))}, "lies outside the room"),
        (
            {"sources": [SourceSpec("c", "dog", 0, 0, 1.0, onset=3.0, offset=2.0)]},
            "onset < offset",
        ),
        ({"sources": [SourceSpec("c", "dog", 0, 100, 1.0, onset=0, offset=2.0)]}, "elevation"),
    ],
)
def test_invalid_scenes_name_the_problem(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_scene(**overrides)
