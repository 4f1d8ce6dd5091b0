"""Level 2, relational integration: relations between sources and bindings of identity, place and distance."""

from __future__ import annotations

import itertools

import numpy as np

from hf_spatial.conventions import angular_distance, azimuth_to_sector, sector_boundary_margin, wrap_azimuth
from hf_spatial.tasks.context import (
    DISTANCE_GAP_M,
    EQUIDISTANT_TOLERANCE_M,
    SECTOR_AROUND_YOU,
    SECTOR_FROM,
    SECTOR_MARGIN_DEG,
    SECTOR_OPPOSITE,
    SECTOR_ORDER,
    SceneContext,
    relative_phrase,
    sector_and_margin,
)
from hf_spatial.tasks.level1 import direction_open_answer, merge_facts, source_facts
from hf_spatial.tasks.options import NearestValue, degrees_text, linear_ladder
from hf_spatial.tasks.registry import Draft, register_task
from hf_spatial.tasks.vocabulary import pick_template

# Sources closer than this horizontally have no meaningful left/right/front/back relation.
MIN_HORIZONTAL_SEPARATION_M = 0.3
# "Clearly closer" threshold of the distance comparison and the dead zone around each threshold.
FAR_CLOSER_M = 1.0
THRESHOLD_DEAD_ZONE_M = 0.1


def _named_pairs(context: SceneContext) -> list[tuple[int, int]]:
    named = [i for i in range(context.num_sources) if context.named(i)]
    return list(itertools.permutations(named, 2))


def _pick_pair(rng: np.random.Generator, pairs: list[tuple[int, int]]) -> tuple[int, int] | None:
    return pairs[int(rng.integers(len(pairs)))] if pairs else None


def _solve_relative_direction(context: SceneContext, params: dict) -> str:
    a, b = params["a"], params["b"]
    sector, _ = sector_and_margin(context.scene.relative_direction(a, b)[0])
    return relative_phrase(sector, context.phrase(b))


@register_task(
    "l2_relative_direction_between_objects",
    2,
    "Where source A is relative to source B (listener-frame sectors).",
    _solve_relative_direction,
    True,
)
def relative_direction_between_objects(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    pairs = []
    for a, b in _named_pairs(context):
        azimuth, elevation, distance = context.scene.relative_direction(a, b)
        horizontal = distance * np.cos(np.deg2rad(elevation))
        if horizontal >= MIN_HORIZONTAL_SEPARATION_M and sector_boundary_margin(azimuth) >= SECTOR_MARGIN_DEG:
            pairs.append((a, b))
    pair = _pick_pair(rng, pairs)
    if pair is None:
        return None
    a, b = pair
    azimuth = context.scene.relative_direction(a, b)[0]
    gold, _ = sector_and_margin(azimuth)
    name_a, name_b = context.phrase(a), context.phrase(b)
    question = pick_template(
        rng,
        f"Keeping your own facing direction as 'front', where is the {name_a} relative to the {name_b}?",
        f"From your point of view, in which direction is the {name_a} from the {name_b}?",
        f"Seen with your front as the reference, where does the {name_a} sit relative to the {name_b}?",
    )
    return Draft(
        question=question,
        options=[_solve_relative_direction(context, {"a": a, "b": b})]
        + [relative_phrase(s, name_b) for s in SECTOR_ORDER if s != gold],
        open_answer=(
            f"the {name_a} is {relative_phrase(gold, name_b)} (direction {azimuth:.0f} deg from it); "
            f"{direction_open_answer(context, a)}; {direction_open_answer(context, b)}"
        ),
        evidence=merge_facts(source_facts(context, a), source_facts(context, b)),
        params={"a": a, "b": b},
    )


def _comparison_bin(difference: float) -> int | None:
    """Bin of d = dist(A) - dist(B): 0 A clearly closer, 1 A a bit closer, 2 equal, 3 B a bit closer, 4 B clearly
    closer; None inside a dead zone around a threshold."""
    size = abs(difference)
    thresholds = (EQUIDISTANT_TOLERANCE_M, FAR_CLOSER_M)
    if any(abs(size - t) < THRESHOLD_DEAD_ZONE_M for t in thresholds) or (
        EQUIDISTANT_TOLERANCE_M < size < DISTANCE_GAP_M
    ):
        return None
    if size <= EQUIDISTANT_TOLERANCE_M:
        return 2
    magnitude = 0 if size > FAR_CLOSER_M else 1
    return magnitude if difference < 0 else 4 - magnitude


def _comparison_texts(name_a: str, name_b: str) -> list[str]:
    return [
        f"the {name_a} is closer, by more than {FAR_CLOSER_M:.0f} m",
        f"the {name_a} is closer, by less than {FAR_CLOSER_M:.0f} m",
        f"they are about equally far (within {EQUIDISTANT_TOLERANCE_M:.2f} m)",
        f"the {name_b} is closer, by less than {FAR_CLOSER_M:.0f} m",
        f"the {name_b} is closer, by more than {FAR_CLOSER_M:.0f} m",
    ]


def _solve_compare_distances(context: SceneContext, params: dict) -> str | None:
    a, b = params["a"], params["b"]
    gold = _comparison_bin(context.sources[a].distance - context.sources[b].distance)
    return None if gold is None else _comparison_texts(context.phrase(a), context.phrase(b))[gold]


@register_task(
    "l2_compare_object_distances",
    2,
    "Which of two sources is closer, by how much, or equidistant.",
    _solve_compare_distances,
)
def compare_object_distances(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    pairs = [
        (a, b)
        for a, b in _named_pairs(context)
        if _comparison_bin(context.sources[a].distance - context.sources[b].distance) is not None
    ]
    pair = _pick_pair(rng, pairs)
    if pair is None:
        return None
    a, b = pair
    name_a, name_b = context.phrase(a), context.phrase(b)
    texts = _comparison_texts(name_a, name_b)
    gold = texts.index(_solve_compare_distances(context, {"a": a, "b": b}))
    distractors = [i for i in range(len(texts)) if i != gold]
    dropped = int(rng.integers(len(distractors)))
    question = pick_template(
        rng,
        f"Compare the distances of the {name_a} and the {name_b} from you.",
        f"Which is closer to you, the {name_a} or the {name_b}, and by how much?",
        f"How do the {name_a} and the {name_b} compare in distance from you?",
    )
    return Draft(
        question=question,
        options=[texts[gold]] + [texts[i] for k, i in enumerate(distractors) if k != dropped],
        open_answer=(f"{name_a} {context.sources[a].distance:.1f} m, {name_b} {context.sources[b].distance:.1f} m"),
        evidence={"distance_m": [round(context.sources[a].distance, 2), round(context.sources[b].distance, 2)]},
        params={"a": a, "b": b},
    )


def _binding_text(sector: str, distance: float) -> str:
    return f"{SECTOR_AROUND_YOU[sector]}, about {distance:.1f} m away"


def _distinct_distance(reference: float, other: float) -> bool:
    return abs(reference - other) >= max(0.5, 0.3 * min(reference, other))


def _solve_binding(context: SceneContext, params: dict) -> str:
    index = params["source"]
    return _binding_text(context.sector(index), context.sources[index].distance)


@register_task(
    "l2_bind_identity_location_distance",
    2,
    "Bind a named source to its sector and distance (2x2 swapped bindings).",
    _solve_binding,
    True,
)
def bind_identity_location_distance(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    candidates = [i for i in range(context.num_sources) if context.named(i) and context.sector_clear(i)]
    if not candidates:
        return None
    target = int(rng.choice(candidates))
    source = context.sources[target]
    sector = context.sector(target)
    others = [i for i in range(context.num_sources) if i != target]
    # Swapped bindings: another source's sector and distance where they differ clearly, else a rule-made foil.
    other_sectors = [context.sector(i) for i in others if context.sector_clear(i) and context.sector(i) != sector]
    wrong_sector = str(rng.choice(other_sectors)) if other_sectors else SECTOR_OPPOSITE[sector]
    other_distances = [context.sources[i].distance for i in others]
    other_distances = [d for d in other_distances if _distinct_distance(source.distance, d)]
    if other_distances:
        wrong_distance = float(rng.choice(other_distances))
    else:
        wrong_distance = source.distance * (1.6 if rng.integers(2) else 1 / 1.6)
    if f"{wrong_distance:.1f}" == f"{source.distance:.1f}":
        return None
    name = context.phrase(target)
    question = pick_template(
        rng,
        f"Where is the {name}, and how far away is it?",
        f"Which description matches the position of the {name}?",
        f"Locate the {name}: which direction and distance are right?",
    )
    return Draft(
        question=question,
        options=[
            _solve_binding(context, {"source": target}),
            _binding_text(wrong_sector, source.distance),
            _binding_text(sector, wrong_distance),
            _binding_text(wrong_sector, wrong_distance),
        ],
        open_answer=direction_open_answer(context, target),
        evidence=source_facts(context, target),
        params={"source": target},
    )


SECTOR_CENTRE_DEG = {"front": 0.0, "left": 90.0, "back": 180.0, "right": -90.0}


def _solve_source_at_direction(context: SceneContext, params: dict) -> str | None:
    # The source in the sector, nearest its centre (in a well-posed scene it is the only one).
    sector = params["sector"]
    inside = [i for i in range(context.num_sources) if azimuth_to_sector(context.sources[i].azimuth) == sector]
    if not inside:
        return None
    offset = [abs(float(wrap_azimuth(context.sources[i].azimuth - SECTOR_CENTRE_DEG[sector]))) for i in inside]
    return context.phrase(inside[int(np.argmin(offset))])


@register_task("l2_source_at_direction", 2, "Which source is in a given sector.", _solve_source_at_direction, True)
def source_at_direction(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    if not context.labels_unique or not all(context.sector_clear(i) for i in range(context.num_sources)):
        return None
    sectors = [context.sector(i) for i in range(context.num_sources)]
    candidates = [i for i, s in enumerate(sectors) if sectors.count(s) == 1]
    if not candidates:
        return None
    target = int(rng.choice(candidates))
    phrases = context.with_absent_phrases([target] + [i for i in range(context.num_sources) if i != target], rng)
    if phrases is None:
        return None
    where = SECTOR_AROUND_YOU[sectors[target]]
    question = pick_template(
        rng,
        f"Which sound is coming from {SECTOR_FROM[sectors[target]]}?",
        f"What do you hear {where}?",
        f"Which of these sound sources is located {where}?",
    )
    return Draft(
        question=question,
        options=phrases,
        open_answer=direction_open_answer(context, target),
        evidence=source_facts(context, target),
        params={"sector": sectors[target]},
    )


def _solve_separation(context: SceneContext, params: dict) -> NearestValue:
    sa, sb = context.sources[params["a"]], context.sources[params["b"]]
    return NearestValue(float(angular_distance(sa.azimuth, sa.elevation, sb.azimuth, sb.elevation)))


@register_task(
    "l2_angular_separation",
    2,
    "The angle between two sources, among four values 30 degrees apart.",
    _solve_separation,
    True,
)
def angular_separation(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    pairs = [(a, b) for a, b in _named_pairs(context) if a < b]
    pair = _pick_pair(rng, pairs)
    if pair is None:
        return None
    a, b = pair
    sa, sb = context.sources[a], context.sources[b]
    angle = _solve_separation(context, {"a": a, "b": b}).value
    values = context.numeric_options(
        "separation_deg", angle, rng, 5.0, lambda: linear_ladder(angle, 30.0, rng, low=0.0, high=180.0, quantum=5.0)
    )
    if values is None:
        return None
    name_a, name_b = context.phrase(a), context.phrase(b)
    question = pick_template(
        rng,
        f"What is the angle between the directions of the {name_a} and the {name_b}, as seen from you?",
        f"How many degrees apart are the {name_a} and the {name_b} from where you stand?",
        f"Estimate the angular separation between the {name_a} and the {name_b}.",
    )
    return Draft(
        question=question,
        options=[degrees_text(v) for v in values],
        open_answer=f"{angle:.0f} deg between {name_a} and {name_b}",
        evidence=merge_facts(
            {"angle_deg": [round(angle, 1)]},
            {"azimuth_deg": [round(sa.azimuth, 1), round(sb.azimuth, 1)]},
        ),
        params={"a": a, "b": b},
    )


def _distance_order(context: SceneContext, farthest: bool) -> np.ndarray:
    distances = np.array([source.distance for source in context.sources])
    return np.argsort(-distances if farthest else distances, kind="stable")


def _solve_nearest(context: SceneContext, params: dict) -> str:
    return context.phrase(int(_distance_order(context, params["farthest"])[0]))


@register_task("l2_nearest_source", 2, "Which source is nearest (or farthest) to the listener.", _solve_nearest)
def nearest_source(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    if context.num_sources < 2 or not context.labels_unique:
        return None
    distances = np.array([source.distance for source in context.sources])
    farthest = bool(rng.integers(2))
    order = _distance_order(context, farthest)
    if abs(distances[order[0]] - distances[order[1]]) < DISTANCE_GAP_M:
        return None
    gold = int(order[0])
    phrases = context.with_absent_phrases([gold] + [int(i) for i in order[1:]], rng)
    if phrases is None:
        return None
    if farthest:
        question = pick_template(
            rng, "Which sound source is farthest from you?", "Which of these sounds is the most distant?"
        )
    else:
        question = pick_template(rng, "Which sound source is closest to you?", "Which of these sounds is the nearest?")
    listing = ", ".join(f"{context.phrase(i)} {distances[i]:.1f} m" for i in range(context.num_sources))
    return Draft(
        question=question,
        options=phrases,
        open_answer=f"{context.phrase(gold)}; distances: {listing}",
        evidence={"distance_m": [round(float(d), 2) for d in distances]},
        params={"farthest": farthest},
    )
