"""Per-scene facts that question generators share: labels, phrases, sectors and the thresholds of ill-posedness.

All geometry comes from `hf_spatial.conventions` through `SceneSpec`; nothing here re-derives an angle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from hf_spatial.acoustics.scene import SceneSpec, SourceSpec
from hf_spatial.conventions import azimuth_to_sector, sector_boundary_margin, wrap_azimuth
from hf_spatial.tasks.options import quantile_lattice
from hf_spatial.tasks.vocabulary import label_phrase, sample_absent_labels

# A direction closer than this to a sector boundary has no single right sector: the task skips the scene.
SECTOR_MARGIN_DEG = 10.0
# Two distances within this tolerance are "about equally far".
EQUIDISTANT_TOLERANCE_M = 0.25
# Distance differences between this and the tolerance are too close to call either way.
DISTANCE_GAP_M = 0.4
# Onsets closer than this are simultaneous for ordering questions.
ONSET_GAP_S = 0.3

# How each sector reads for a direction around the listener, and as a walking direction.
SECTOR_AROUND_YOU = {"front": "in front of you", "left": "to your left", "back": "behind you", "right": "to your right"}
SECTOR_FROM = {"front": "straight ahead", "left": "your left", "back": "behind you", "right": "your right"}
SECTOR_WALK = {"front": "forward", "left": "to your left", "back": "backward", "right": "to your right"}
SECTOR_OPPOSITE = {"front": "back", "back": "front", "left": "right", "right": "left"}
SECTOR_ORDER = ("front", "left", "back", "right")


def relative_phrase(sector: str, reference: str) -> str:
    """'in front of the phone', 'to the left of the phone', ... for A's position relative to a reference."""
    return {
        "front": f"in front of the {reference}",
        "left": f"to the left of the {reference}",
        "back": f"behind the {reference}",
        "right": f"to the right of the {reference}",
    }[sector]


@dataclass
class SceneContext:
    """A scene plus the vocabulary used for absent-label distractors."""

    scene: SceneSpec
    vocabulary: Mapping[str, float]
    priors: Mapping[str, np.ndarray] = field(default_factory=dict)
    _phrases: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._phrases = [label_phrase(source.label) for source in self.scene.sources]

    @property
    def sources(self) -> list[SourceSpec]:
        return self.scene.sources

    @property
    def num_sources(self) -> int:
        return len(self.scene.sources)

    def phrase(self, index: int) -> str:
        return self._phrases[index]

    @cached_property
    def labels_unique(self) -> bool:
        """True when every source reads differently, so a phrase names exactly one source."""
        return len(set(self._phrases)) == len(self._phrases)

    def named(self, index: int) -> bool:
        """True when source `index` is the only one its phrase can refer to."""
        return self._phrases.count(self._phrases[index]) == 1

    def sector(self, index: int) -> str:
        return azimuth_to_sector(self.sources[index].azimuth)

    def sector_clear(self, index: int) -> bool:
        return sector_boundary_margin(self.sources[index].azimuth) >= SECTOR_MARGIN_DEG

    @cached_property
    def sectors_distinct(self) -> bool:
        """Every source in its own sector, each clear of the boundaries."""
        sectors = [self.sector(i) for i in range(self.num_sources)]
        return len(set(sectors)) == len(sectors) and all(self.sector_clear(i) for i in range(self.num_sources))

    def numeric_options(
        self, key: str, gold: float, rng: np.random.Generator, quantum: float, ladder: Callable[[], list[float] | None]
    ) -> list[float] | None:
        """Quartile-lattice options from the dataset prior for `key` when there is one, else `ladder()`."""
        reference = self.priors.get(key)
        if reference is not None:
            values = quantile_lattice(gold, reference, rng, quantum)
            if values is not None:
                return values
        return ladder()

    def absent_labels(self, count: int, rng: np.random.Generator) -> list[str] | None:
        """`count` vocabulary labels that do not sound like any source of the scene."""
        return sample_absent_labels(self.vocabulary, self.scene.labels, count, rng)

    def with_absent_phrases(self, indices: list[int], rng: np.random.Generator) -> list[str] | None:
        """Phrases of the given sources, filled up to four options with absent labels (None if impossible)."""
        fill = self.absent_labels(4 - len(indices), rng)
        if fill is None:
            return None
        return [self.phrase(i) for i in indices] + [label_phrase(label) for label in fill]


def sector_and_margin(azimuth_deg: float) -> tuple[str, float]:
    """Sector of an azimuth and its distance in degrees to the nearest sector boundary."""
    azimuth_deg = float(wrap_azimuth(azimuth_deg))
    return azimuth_to_sector(azimuth_deg), sector_boundary_margin(azimuth_deg)
