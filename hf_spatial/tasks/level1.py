"""Level 1, atomic perception: what, how many, where (sector, azimuth, elevation), how far, when, which room."""

from __future__ import annotations

import numpy as np

from hf_spatial.tasks.context import ONSET_GAP_S, SECTOR_AROUND_YOU, SECTOR_ORDER, SceneContext
from hf_spatial.tasks.options import (
    NearestValue,
    azimuth_ladder,
    degrees_text,
    linear_ladder,
    metres_text,
    ratio_ladder,
    seconds_text,
)
from hf_spatial.tasks.registry import Draft, register_task
from hf_spatial.tasks.vocabulary import label_phrase, pick_template


def _pick(rng: np.random.Generator, candidates: list[int]) -> int | None:
    return int(rng.choice(candidates)) if candidates else None


def source_facts(context: SceneContext, index: int) -> dict[str, list[float]]:
    source = context.sources[index]
    return {
        "azimuth_deg": [round(source.azimuth, 1)],
        "elevation_deg": [round(source.elevation, 1)],
        "distance_m": [round(source.distance, 2)],
    }


def merge_facts(*facts: dict[str, list[float]]) -> dict[str, list[float]]:
    merged: dict[str, list[float]] = {}
    for fact in facts:
        for key, values in fact.items():
            merged.setdefault(key, []).extend(values)
    return merged


def direction_open_answer(context: SceneContext, index: int) -> str:
    source = context.sources[index]
    return (
        f"{context.phrase(index)}: {context.sector(index)}, azimuth {source.azimuth:.0f} deg, "
        f"elevation {source.elevation:.0f} deg, {source.distance:.1f} m"
    )


def _solve_phrase(context: SceneContext, params: dict) -> str:
    return context.phrase(params["source"])


@register_task("l1_identify_class", 1, "Which of four sound classes is present in the scene.", _solve_phrase)
def identify_class(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    n = context.num_sources
    index = int(rng.integers(n))
    absent = context.absent_labels(3, rng)
    if absent is None:
        return None
    question = pick_template(
        rng,
        "Which of these sounds can you hear in this recording?",
        "One of the following sounds is present in the scene. Which one?",
        "Listen to the scene. Which of these sound sources is in it?",
    )
    return Draft(
        question=question,
        options=[_solve_phrase(context, {"source": index})] + [label_phrase(label) for label in absent],
        open_answer=f"{context.phrase(index)} is present; sources: {', '.join(map(context.phrase, range(n)))}",
        params={"source": index},
    )


def _solve_count(context: SceneContext, params: dict) -> str:
    return str(context.num_sources)


@register_task("l1_count_sources", 1, "How many distinct sound sources the scene contains.", _solve_count)
def count_sources(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    count = context.num_sources
    # Always the same four counts: with at most three sources, a shifting window would reveal the answer by
    # which counts it shows.
    values = [1, 2, 3, 4]
    question = pick_template(
        rng,
        "How many distinct sound sources are active in this scene?",
        "Count the separate sound sources you can hear. How many are there?",
        "How many different sounds are playing in this recording?",
    )
    return Draft(
        question=question,
        options=[_solve_count(context, {})] + [str(v) for v in values if v != count],
        open_answer=f"{count} sources",
    )


def _clear_named_sources(context: SceneContext) -> list[int]:
    return [i for i in range(context.num_sources) if context.named(i) and context.sector_clear(i)]


def _solve_sector(context: SceneContext, params: dict) -> str:
    return SECTOR_AROUND_YOU[context.sector(params["source"])]


@register_task(
    "l1_direction_sector", 1, "Whether a named source is in front, left, behind or right.", _solve_sector, True
)
def direction_sector(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    index = _pick(rng, _clear_named_sources(context))
    if index is None:
        return None
    name = context.phrase(index)
    question = pick_template(
        rng,
        f"Where is the {name} relative to you?",
        f"From which direction do you hear the {name}?",
        f"Facing forward, where is the {name} located?",
    )
    gold = _solve_sector(context, {"source": index})
    return Draft(
        question=question,
        options=[gold] + [SECTOR_AROUND_YOU[s] for s in SECTOR_ORDER if SECTOR_AROUND_YOU[s] != gold],
        open_answer=direction_open_answer(context, index),
        evidence=source_facts(context, index),
        params={"source": index},
    )


_AZIMUTH_CONVENTION = "(azimuth in degrees, counter-clockwise from straight ahead, so +90 is your left)"


def _solve_azimuth(context: SceneContext, params: dict) -> NearestValue:
    return NearestValue(context.sources[params["source"]].azimuth, circular=True)


@register_task(
    "l1_azimuth", 1, "The azimuth of a named source, among four values 45 degrees apart.", _solve_azimuth, True
)
def azimuth(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    index = _pick(rng, [i for i in range(context.num_sources) if context.named(i)])
    if index is None:
        return None
    name = context.phrase(index)
    question = pick_template(
        rng,
        f"What is the azimuth of the {name}? {_AZIMUTH_CONVENTION}",
        f"At what azimuth do you hear the {name}? {_AZIMUTH_CONVENTION}",
        f"Estimate the horizontal direction of the {name} {_AZIMUTH_CONVENTION}.",
    )
    values = azimuth_ladder(_solve_azimuth(context, {"source": index}).value, 45.0, rng)
    return Draft(
        question=question,
        options=[degrees_text(v) for v in values],
        open_answer=direction_open_answer(context, index),
        evidence={"azimuth_deg": [round(context.sources[index].azimuth, 1)]},
        params={"source": index},
    )


def _solve_elevation(context: SceneContext, params: dict) -> NearestValue:
    return NearestValue(context.sources[params["source"]].elevation)


@register_task(
    "l1_elevation", 1, "The elevation of a named source, among four values 15 degrees apart.", _solve_elevation, True
)
def elevation(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    index = _pick(rng, [i for i in range(context.num_sources) if context.named(i)])
    if index is None:
        return None
    name = context.phrase(index)
    gold = _solve_elevation(context, {"source": index}).value
    values = context.numeric_options(
        "elevation_deg", gold, rng, 5.0, lambda: linear_ladder(gold, 15.0, rng, low=-90.0, high=90.0, quantum=5.0)
    )
    if values is None:
        return None
    question = pick_template(
        rng,
        f"What is the elevation of the {name}, in degrees above ear level (negative is below)?",
        f"How high is the {name} relative to your ears? Give its elevation angle (negative is below).",
        f"At what elevation angle is the {name} (0 is ear level, positive is up)?",
    )
    return Draft(
        question=question,
        options=[degrees_text(v) for v in values],
        open_answer=direction_open_answer(context, index),
        evidence={"elevation_deg": [round(context.sources[index].elevation, 1)]},
        params={"source": index},
    )


def _solve_distance(context: SceneContext, params: dict) -> NearestValue:
    return NearestValue(context.sources[params["source"]].distance)


@register_task("l1_distance", 1, "How far a named source is, among four distances in ratio 1.4.", _solve_distance)
def distance(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    index = _pick(rng, [i for i in range(context.num_sources) if context.named(i)])
    if index is None:
        return None
    gold = _solve_distance(context, {"source": index}).value
    values = context.numeric_options("distance_m", gold, rng, 0.1, lambda: ratio_ladder(gold, 1.4, rng, quantum=0.1))
    if values is None:
        return None
    name = context.phrase(index)
    question = pick_template(
        rng,
        f"How far away from you is the {name}?",
        f"Estimate the distance between you and the {name}.",
        f"About how many metres away is the {name}?",
    )
    return Draft(
        question=question,
        options=[metres_text(v) for v in values],
        open_answer=direction_open_answer(context, index),
        evidence={"distance_m": [round(context.sources[index].distance, 2)]},
        params={"source": index},
    )


def _onset_order(context: SceneContext, latest: bool) -> np.ndarray:
    onsets = np.array([source.onset for source in context.sources])
    return np.argsort(-onsets if latest else onsets, kind="stable")


def _solve_onset(context: SceneContext, params: dict) -> str:
    return context.phrase(int(_onset_order(context, params["latest"])[0]))


@register_task("l1_onset_order", 1, "Which source starts first (or last).", _solve_onset)
def onset_order(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    if context.num_sources < 2 or not context.labels_unique:
        return None
    onsets = np.array([source.onset for source in context.sources])
    latest = bool(rng.integers(2))
    order = _onset_order(context, latest)
    if abs(onsets[order[1]] - onsets[order[0]]) < ONSET_GAP_S:
        return None
    gold = int(order[0])
    phrases = context.with_absent_phrases([gold] + [int(i) for i in order[1:]], rng)
    if phrases is None:
        return None
    if latest:
        question = pick_template(
            rng, "Which of these sounds starts last?", "Which sound is the last to begin in this recording?"
        )
    else:
        question = pick_template(
            rng, "Which of these sounds starts first?", "Which sound begins earliest in this recording?"
        )
    timeline = ", ".join(f"{context.phrase(int(i))} at {onsets[i]:.1f} s" for i in np.argsort(onsets, kind="stable"))
    return Draft(question=question, options=phrases, open_answer=f"onsets: {timeline}", params={"latest": latest})


def _solve_rt60(context: SceneContext, params: dict) -> NearestValue:
    return NearestValue(context.scene.room.rt60)


@register_task(
    "l1_room_reverberation", 1, "The room's reverberation time RT60, among four values in ratio 1.5.", _solve_rt60
)
def room_reverberation(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    rt60 = _solve_rt60(context, {}).value
    values = context.numeric_options("rt60_s", rt60, rng, 0.05, lambda: ratio_ladder(rt60, 1.5, rng, quantum=0.05))
    if values is None:
        return None
    question = pick_template(
        rng,
        "What is the reverberation time (RT60) of the room?",
        "How long does sound take to die away in this room (RT60)?",
        "Estimate the room's RT60 reverberation time.",
    )
    return Draft(
        question=question,
        options=[seconds_text(v) for v in values],
        open_answer=f"RT60 {rt60:.2f} s",
        evidence={"rt60_s": [round(rt60, 3)]},
    )
