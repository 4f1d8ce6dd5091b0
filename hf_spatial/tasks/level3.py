"""Level 3, cognitive reasoning: counterfactual listener rotation, source removal, scene abduction, navigation."""

from __future__ import annotations

import numpy as np

from hf_spatial.conventions import rotate_direction
from hf_spatial.tasks.context import (
    DISTANCE_GAP_M,
    SECTOR_AROUND_YOU,
    SECTOR_MARGIN_DEG,
    SECTOR_OPPOSITE,
    SECTOR_ORDER,
    SECTOR_WALK,
    SceneContext,
    sector_and_margin,
)
from hf_spatial.tasks.level1 import direction_open_answer, merge_facts, source_facts
from hf_spatial.tasks.registry import Draft, register_task
from hf_spatial.tasks.vocabulary import pick_template


def listener_turn_rotation(turn: str, facing_azimuth: float = 0.0) -> float:
    """Sound-field rotation (degrees, `conventions.rotate_foa` sense) heard after the listener turns.

    A listener who turns left by a hears the field rotated by -a; turning to face a source at azimuth az
    is a left turn by az.
    """
    turns = {"left": 90.0, "right": -90.0, "around": 180.0, "face": facing_azimuth}
    if turn not in turns:
        raise ValueError(f"Unknown turn {turn!r}; expected one of {tuple(turns)}.")
    return -turns[turn]


def _turned_azimuth(context: SceneContext, target: int, turn: str, facing: int | None) -> float:
    facing_azimuth = context.sources[facing].azimuth if facing is not None else 0.0
    return float(rotate_direction(context.sources[target].azimuth, listener_turn_rotation(turn, facing_azimuth)))


def _solve_listener_rotation(context: SceneContext, params: dict) -> str:
    sector, _ = sector_and_margin(_turned_azimuth(context, params["source"], params["turn"], params["facing"]))
    return SECTOR_AROUND_YOU[sector]


@register_task(
    "l3_listener_rotation",
    3,
    "Where a source would be after the listener turns (counterfactual).",
    _solve_listener_rotation,
    True,
)
def listener_rotation(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    named = [i for i in range(context.num_sources) if context.named(i)]
    # (turn, facing source or None, target) options that leave the target clear of the sector boundaries.
    candidates = []
    for target in named:
        turns = [("left", None), ("right", None), ("around", None)]
        turns += [("face", other) for other in named if other != target]
        for turn, facing in turns:
            _, margin = sector_and_margin(_turned_azimuth(context, target, turn, facing))
            if margin >= SECTOR_MARGIN_DEG:
                candidates.append((turn, facing, target))
    if not candidates:
        return None
    # Prefer facing another source (the TWNM form) when the scene allows it.
    facing_candidates = [c for c in candidates if c[0] == "face"]
    pool = facing_candidates if facing_candidates and rng.random() < 0.7 else candidates
    turn, facing, target = pool[int(rng.integers(len(pool)))]
    params = {"source": target, "turn": turn, "facing": facing}
    new_azimuth = _turned_azimuth(context, target, turn, facing)
    gold_text = _solve_listener_rotation(context, params)
    gold, _ = sector_and_margin(new_azimuth)
    name = context.phrase(target)
    action = {
        "left": "turn 90 degrees to your left",
        "right": "turn 90 degrees to your right",
        "around": "turn around to face the opposite way",
        "face": f"turn to face the {context.phrase(facing) if facing is not None else ''}",
    }[turn]
    question = pick_template(
        rng,
        f"If you {action}, where will the {name} be?",
        f"Imagine you {action}. Where would you then hear the {name}?",
        f"Suppose you {action}. In which direction is the {name} afterwards?",
    )
    facts = source_facts(context, target)
    if facing is not None:
        facts = merge_facts(facts, {"azimuth_deg": [round(context.sources[facing].azimuth, 1)]})
    return Draft(
        question=question,
        options=[gold_text] + [SECTOR_AROUND_YOU[s] for s in SECTOR_ORDER if s != gold],
        open_answer=f"after turning, {name} at azimuth {new_azimuth:.0f} deg ({gold}); before: "
        + direction_open_answer(context, target),
        evidence=merge_facts(facts, {"azimuth_deg": [round(new_azimuth, 1)]}),
        params=params,
    )


def _nearest_remaining(context: SceneContext, removed: int) -> list[int]:
    return sorted((i for i in range(context.num_sources) if i != removed), key=lambda i: context.sources[i].distance)


def _solve_source_removal(context: SceneContext, params: dict) -> str:
    return SECTOR_AROUND_YOU[context.sector(_nearest_remaining(context, params["removed"])[0])]


@register_task(
    "l3_source_removal", 3, "Where the nearest remaining source is if one source stops.", _solve_source_removal, True
)
def source_removal(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    if context.num_sources < 2:
        return None
    candidates = []
    for removed in range(context.num_sources):
        if not context.named(removed):
            continue
        remaining = _nearest_remaining(context, removed)
        nearest = remaining[0]
        if len(remaining) > 1 and context.sources[remaining[1]].distance - context.sources[nearest].distance < (
            DISTANCE_GAP_M
        ):
            continue
        if context.sector_clear(nearest):
            candidates.append((removed, nearest))
    if not candidates:
        return None
    removed, nearest = candidates[int(rng.integers(len(candidates)))]
    name = context.phrase(removed)
    question = pick_template(
        rng,
        f"If the {name} were switched off, where would the closest remaining sound be?",
        f"Suppose the {name} stops. From which direction would the nearest sound that is still playing come?",
        f"Without the {name}, where is the nearest of the other sounds?",
    )
    gold = context.sector(nearest)
    return Draft(
        question=question,
        options=[_solve_source_removal(context, {"removed": removed})]
        + [SECTOR_AROUND_YOU[s] for s in SECTOR_ORDER if s != gold],
        open_answer=f"{context.phrase(nearest)} would be closest: " + direction_open_answer(context, nearest),
        evidence=source_facts(context, nearest),
        params={"removed": removed},
    )


# Kinds of place, with the sound classes and the RT60 range (s) that point to each.
PLACES: dict[str, tuple[frozenset[str], tuple[float, float]]] = {
    "an office": (
        frozenset({"telephone", "speech", "femaleSpeech", "maleSpeech", "knock", "doorCupboard"}),
        (0.2, 0.6),
    ),
    "a kitchen": (frozenset({"waterTap", "domesticSounds", "doorCupboard", "glassBreak"}), (0.2, 0.7)),
    "a church or concert hall": (frozenset({"music", "musicInstrument", "bell", "clapping"}), (1.0, 10.0)),
    "a farmyard": (frozenset({"farmAnimal", "bird", "dogAnimal"}), (0.0, 0.35)),
    "a living room": (frozenset({"laughter", "music", "dogAnimal", "footsteps"}), (0.2, 0.5)),
    "a lecture hall": (frozenset({"speech", "femaleSpeech", "maleSpeech", "clapping"}), (0.6, 1.2)),
    "a building with a fire alarm going off": (
        frozenset({"alarm", "fire", "footsteps", "glassBreak", "noiseBurst"}),
        (0.3, 1.5),
    ),
    "a garage or workshop": (frozenset({"engine", "knock", "noiseBurst"}), (0.4, 1.2)),
}
# The place must win by this many cues, and be supported by at least MIN_CUES cues.
PLACE_MARGIN = 1
MIN_CUES = 2


def likely_place(labels: list[str], rt60: float) -> str | None:
    """The place the cues point to, or None when they are too weak or tie."""
    scores = place_scores(labels, rt60)
    best, second = sorted(scores, key=lambda place: -scores[place])[:2]
    if scores[best] < MIN_CUES or scores[best] - scores[second] < PLACE_MARGIN:
        return None
    return best


def place_scores(labels: list[str], rt60: float) -> dict[str, int]:
    """Cue count per place: sources of a matching class, plus one if the reverberation fits."""
    return {
        place: sum(label in classes for label in labels) + int(low <= rt60 <= high)
        for place, (classes, (low, high)) in PLACES.items()
    }


def _solve_scene_abduction(context: SceneContext, params: dict) -> str | None:
    return likely_place(context.scene.labels, context.scene.room.rt60)


@register_task(
    "l3_scene_abduction",
    3,
    "What kind of place the scene is, from its sources and reverberation.",
    _solve_scene_abduction,
)
def scene_abduction(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    best = _solve_scene_abduction(context, {})
    if best is None:
        return None
    others = [place for place in PLACES if place != best]
    # Distractors as often as each place is an answer in the dataset (prior), so no place is a likelier guess.
    weights = context.priors.get("place_frequency")
    weights = np.ones(len(PLACES)) if weights is None else np.asarray(weights, dtype=np.float64) + 1e-3
    p = np.array([weights[list(PLACES).index(place)] for place in others])
    distractors = [others[i] for i in rng.choice(len(others), size=3, replace=False, p=p / p.sum())]
    question = pick_template(
        rng,
        "Judging from the sounds and the room acoustics, where is this most likely recorded?",
        "What kind of place does this scene most likely take place in?",
        "Based on what you hear and how the room sounds, which setting fits best?",
    )
    sources = ", ".join(context.phrase(i) for i in range(context.num_sources))
    return Draft(
        question=question,
        options=[best, *distractors],
        open_answer=f"{best}: {sources}; RT60 {context.scene.room.rt60:.2f} s",
        evidence={"rt60_s": [round(context.scene.room.rt60, 3)]},
    )


def _solve_navigation(context: SceneContext, params: dict) -> str:
    return SECTOR_WALK[SECTOR_OPPOSITE[context.sector(params["source"])]]


@register_task("l3_navigation", 3, "Which way to walk to get away from (or towards) a source.", _solve_navigation, True)
def navigation(context: SceneContext, rng: np.random.Generator) -> Draft | None:
    candidates = [i for i in range(context.num_sources) if context.named(i) and context.sector_clear(i)]
    if not candidates:
        return None
    target = int(rng.choice(candidates))
    name = context.phrase(target)
    gold = SECTOR_OPPOSITE[context.sector(target)]
    question = pick_template(
        rng,
        f"Without turning, which way should you walk to get away from the {name}?",
        f"You want to move away from the {name} as directly as possible, keeping your facing direction. "
        "Which way do you walk?",
        f"Which direction of travel takes you away from the {name} fastest, without turning around?",
    )
    return Draft(
        question=question,
        options=[_solve_navigation(context, {"source": target})] + [SECTOR_WALK[s] for s in SECTOR_ORDER if s != gold],
        open_answer=f"walk {SECTOR_WALK[gold]}, away from the {name} ({direction_open_answer(context, target)})",
        evidence=source_facts(context, target),
        params={"source": target},
    )
