import numpy as np
import pytest

from hf_spatial.acoustics.rooms import RoomSamplerConfig, room_set, wall_absorption
from hf_spatial.acoustics.sampler import SceneSampler, SceneSamplerConfig
from hf_spatial.acoustics.sources import SourceBank
from hf_spatial.conventions import angular_distance


@pytest.fixture(scope="module")
def bank() -> SourceBank:
    return SourceBank.procedural(seed=0, clips_per_class=4)


def test_sampling_is_deterministic_and_prefix_stable(bank):
    sampler = SceneSampler(SceneSamplerConfig(), bank)
    first = sampler.sample(num_scenes=30, seed=5, split="train")
    assert [s.to_json() for s in first] == [s.to_json() for s in sampler.sample(30, seed=5, split="train")]
    assert [s.to_json() for s in first[10:20]] == [s.to_json() for s in sampler.sample(10, 5, "train", start=10)]
    assert [s.to_json() for s in first] != [s.to_json() for s in sampler.sample(30, seed=6, split="train")]
    assert len({s.scene_id for s in first}) == 30


def test_scenes_respect_the_configured_ranges(bank):
    config = SceneSamplerConfig()
    scenes = SceneSampler(config, bank).sample(300, seed=1, split="train")
    counts = np.bincount([len(s.sources) for s in scenes])
    assert counts[0] == 0 and all(counts[1:4] > 50)
    for scene in scenes:
        assert 0.2 <= scene.room.rt60 <= 1.2
        listener = np.asarray(scene.room.listener_position)
        assert np.all(listener[:2] >= 1.0 - 1e-9) and np.all(listener[:2] <= np.asarray(scene.room.dimensions[:2]) - 1)
        for i, source in enumerate(scene.sources):
            assert -45 <= source.elevation <= 45 and 0.5 <= source.distance <= 5.0
            assert scene.room.contains(scene.source_position(i), margin=0.29)
            assert 0 <= source.onset < source.offset <= scene.duration
            clip = bank[source.clip_id]
            assert source.clip_start + (source.offset - source.onset) <= clip.duration + 2e-3
            assert source.caption == clip.caption
        labels = scene.labels
        assert len(set(labels)) == len(labels)
        for a in range(len(scene.sources)):
            for b in range(a):
                sa, sb = scene.sources[a], scene.sources[b]
                assert angular_distance(sa.azimuth, sa.elevation, sb.azimuth, sb.elevation) >= 20 - 0.01
    azimuths = [s.azimuth for scene in scenes for s in scene.sources]
    assert min(azimuths) < -150 and max(azimuths) > 150
    assert {s.noise.kind for s in scenes} == {"none", "diffuse_white", "diffuse_pink"}


def test_test_scenes_use_only_test_rooms_and_clips(bank):
    scenes = SceneSampler(SceneSamplerConfig(), bank).sample(100, seed=0, split="test")
    assert all(s.room.room_id.startswith("test-room-") and s.split == "test" for s in scenes)
    assert all(bank[src.clip_id].split == "test" for s in scenes for src in s.sources)
    config = RoomSamplerConfig(num_train_rooms=100)
    train_rooms = {(r.dimensions, r.rt60, r.listener_position) for r in room_set("train", config)}
    assert not train_rooms & {(r.dimensions, r.rt60, r.listener_position) for r in room_set("test", config)}


def test_room_sets_are_feasible_and_independent_of_the_dataset_seed():
    config = RoomSamplerConfig(num_train_rooms=50, num_test_rooms=20)
    rooms = list(room_set("train", config))
    assert len(rooms) == 50 and rooms == list(room_set("train", config))
    for room in rooms:
        absorption, order = wall_absorption(room.rt60, room.dimensions)
        assert 0 < absorption < 1 and order >= 1


def test_bad_sampler_inputs_give_clear_errors(bank):
    with pytest.raises(ValueError, match="num_sources"):
        SceneSamplerConfig(num_sources=(0, 4))
    with pytest.raises(ValueError, match="Unknown noise kind"):
        SceneSamplerConfig(noise_kinds=("rain",))
    with pytest.raises(ValueError, match="Unknown split"):
        SceneSampler(SceneSamplerConfig(), bank).sample(1, 0, split="validation")
    tiny = RoomSamplerConfig(length=(2.0, 2.2), width=(2.0, 2.2), listener_wall_margin=0.9, num_test_rooms=2)
    with pytest.raises(ValueError, match="Could not place a source"):
        SceneSampler(SceneSamplerConfig(distance=(3.0, 5.0), rooms=tiny), bank).sample(1, 0, "test")
