"""`SpatialFOAScenes`: a `datasets` builder that renders hf-spatial FOA scenes.

It is an `ArrowBasedBuilder` (yielding Arrow tables) rather than a `GeneratorBasedBuilder` (yielding dicts): the
latter runs `Audio.encode_example` on every row, which in datasets 5 requires torchcodec even for ready FLAC bytes;
Arrow tables in the dataset's schema need no re-encoding and no extra dependency.

datasets 5 refuses loading scripts in `load_dataset`, so this builder is used programmatically:

    from datasets_loaders.spatial_foa_scenes import SpatialFOAScenes

    builder = SpatialFOAScenes(num_train_scenes=200, num_test_scenes=50, sources="procedural", mode="hybrid")
    builder.download_and_prepare()
    ds = builder.as_dataset()          # DatasetDict with train/test, same rows as `hf-spatial simulate`

Rows and scenes are identical to `hf-spatial simulate` with the same seed, sources and mode (the builder renders
in one process; use the CLI for parallel, resumable, sharded folders that `load_dataset(DIR)` reads directly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import datasets

_DESCRIPTION = (
    "Simulated First-Order Ambisonics (AmbiX W, Y, Z, X; SN3D; 24 kHz) scenes with 1 to 3 labelled sources in "
    "shoebox rooms, rendered by hf-spatial, with the full SceneSpec JSON of every clip."
)
_CITATION = """@article{twnm2026,
  title = {The World is Not Mono},
  journal = {arXiv preprint arXiv:2601.02954},
  year = {2026}
}"""


@dataclass
class SpatialFOAConfig(datasets.BuilderConfig):
    """Generation parameters (the same meaning as the `hf-spatial simulate` options)."""

    num_train_scenes: int = 100
    num_test_scenes: int = 20
    seed: int = 0
    sources: str = "procedural"
    mode: str = "hybrid"
    duration: float = 5.0
    sources_cache_dir: str | None = None


class SpatialFOAScenes(datasets.ArrowBasedBuilder):
    """Renders hf-spatial FOA scenes into a `datasets` dataset (see the module docstring)."""

    BUILDER_CONFIG_CLASS = SpatialFOAConfig
    BUILDER_CONFIGS: ClassVar[list[SpatialFOAConfig]] = [
        SpatialFOAConfig(name="default", version=datasets.Version("1.0.0"))
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self) -> datasets.DatasetInfo:
        from hf_spatial.data.schema import features

        return datasets.DatasetInfo(description=_DESCRIPTION, features=features(), citation=_CITATION)

    def _split_generators(self, dl_manager):
        config = self.config
        return [
            datasets.SplitGenerator(
                datasets.Split.TRAIN, gen_kwargs={"split": "train", "count": config.num_train_scenes}
            ),
            datasets.SplitGenerator(datasets.Split.TEST, gen_kwargs={"split": "test", "count": config.num_test_scenes}),
        ]

    def _generate_tables(self, split: str, count: int):
        import pyarrow as pa

        from hf_spatial.acoustics.render import render_scene
        from hf_spatial.acoustics.sampler import SceneSampler, SceneSamplerConfig
        from hf_spatial.acoustics.sources import SourceBank
        from hf_spatial.data.schema import scene_row

        config = self.config
        bank = SourceBank.from_spec(config.sources, cache_dir=config.sources_cache_dir)
        sampler = SceneSampler(SceneSamplerConfig(duration=config.duration, render_mode=config.mode), bank)
        schema = self.info.features.arrow_schema
        for scene in sampler.sample(count, config.seed, split):
            yield scene.scene_id, pa.Table.from_pylist([scene_row(scene, render_scene(scene, bank))], schema=schema)
