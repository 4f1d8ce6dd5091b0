import numpy as np

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.data import read_foa
from hf_spatial.data.simulate import simulate


def test_builder_renders_the_same_rows_as_the_cli(tmp_path):
    import datasets

    from datasets_loaders.spatial_foa_scenes import SpatialFOAScenes

    builder = SpatialFOAScenes(cache_dir=str(tmp_path / "cache"), num_train_scenes=2, num_test_scenes=1, duration=1.0)
    builder.download_and_prepare()
    built = builder.as_dataset()
    assert built["train"].num_rows == 2 and built["test"].num_rows == 1
    train = built["train"].cast_column("audio", datasets.Audio(decode=False))
    foa = read_foa(train[0]["audio"])
    assert foa.shape == (4, 24000)
    assert SceneSpec.from_json(train[0]["scene"]).scene_id == train[0]["scene_id"]
    folder = simulate(tmp_path / "cli", num_scenes=2, duration=1.0, progress=False)
    cli = datasets.load_dataset(str(folder), split="train").cast_column("audio", datasets.Audio(decode=False))
    assert cli["scene"] == train["scene"]
    assert np.array_equal(read_foa(cli[1]["audio"]), read_foa(train[1]["audio"]))
