"""Question vocabulary: the wording templates a question is drawn from, how labels read in questions, and label
frequencies for distractor sampling.

Distractor labels are drawn with the same frequencies as the labels that occur in scenes: a text-only model
then cannot tell the present label from the absent ones by how often each label tends to be the answer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

# Natural phrases for the classes of the Debian sound bank (STARSS23 classes plus extras).
LABEL_PHRASES: dict[str, str] = {
    "femaleSpeech": "woman speaking",
    "maleSpeech": "man speaking",
    "clapping": "clapping",
    "telephone": "telephone ringing",
    "laughter": "laughter",
    "domesticSounds": "household appliance",
    "footsteps": "footsteps",
    "doorCupboard": "door or cupboard",
    "music": "music",
    "musicInstrument": "musical instrument",
    "waterTap": "running water",
    "bell": "bell",
    "knock": "knocking",
    "alarm": "alarm",
    "bird": "bird",
    "dogAnimal": "dog",
    "farmAnimal": "farm animal",
    "fire": "crackling fire",
    "glassBreak": "breaking glass",
}
DEFAULT_VOCABULARY: tuple[str, ...] = tuple(LABEL_PHRASES)


def pick_template(rng: np.random.Generator, *templates: str) -> str:
    """One of a question's wordings, drawn from the scene's generator (so a seed gives the same question)."""
    return str(rng.choice(templates))


def label_phrase(label: str) -> str:
    """How a class label reads in text: known classes get a natural phrase, others are de-camel-cased."""
    if label in LABEL_PHRASES:
        return LABEL_PHRASES[label]
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", label).replace("_", " ").replace("-", " ")
    return " ".join(words.lower().split())


def label_frequencies(labels: Iterable[str]) -> dict[str, float]:
    """Relative frequency of each label among scene sources, for `generate_questions(..., vocabulary=...)`."""
    counts = Counter(labels)
    total = sum(counts.values())
    if total == 0:
        raise ValueError("Cannot build a vocabulary from zero labels.")
    return {label: count / total for label, count in sorted(counts.items())}


def as_weights(vocabulary: Sequence[str] | Mapping[str, float] | None) -> dict[str, float]:
    """Normalise a vocabulary (labels, or label -> frequency) to label -> weight; None means the default bank."""
    if vocabulary is None:
        vocabulary = DEFAULT_VOCABULARY
    if isinstance(vocabulary, Mapping):
        weights = {str(label): float(weight) for label, weight in vocabulary.items() if float(weight) > 0}
    else:
        weights = {str(label): 1.0 for label in vocabulary}
    if not weights:
        raise ValueError("The vocabulary is empty: pass labels or a label -> frequency mapping.")
    return weights


def sample_absent_labels(
    weights: Mapping[str, float], exclude: Iterable[str], count: int, rng: np.random.Generator
) -> list[str] | None:
    """Draw `count` distinct labels not in `exclude`, proportionally to `weights`; None if too few exist.

    Labels whose phrase equals an excluded label's phrase are excluded too (they would read as the same sound).
    """
    excluded_phrases = {label_phrase(label) for label in exclude}
    candidates = sorted(label for label in weights if label_phrase(label) not in excluded_phrases)
    if len(candidates) < count:
        return None
    probabilities = np.array([weights[label] for label in candidates], dtype=np.float64)
    chosen = rng.choice(len(candidates), size=count, replace=False, p=probabilities / probabilities.sum())
    return [candidates[i] for i in chosen]
