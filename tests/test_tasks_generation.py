"""Gold answers of every task on scenes with known geometry, computed by hand."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from hf_spatial.conventions import encode_plane_wave, rotate_direction, rotate_foa, wrap_azimuth
from hf_spatial.tasks import TASKS, describe_scene, generate_questions, parse_answer, task_names
from hf_spatial.tasks.level3 import listener_turn_rotation
from hf_spatial.tasks.parsing import option_texts
from tests.scene_factory import make_scene

# dog left 2.0 m (first), telephone right 1.0 m, woman speaking front 2.5 m (last); office-like RT60.
SCENE = make_scene(
    [("dogAnimal", 80, 5, 2.0, 0.2), ("telephone", -100, 0, 1.0, 1.0), ("femaleSpeech", 10, 10, 2.5, 1.5)],
    rt60=0.5,
)


def items_for(scene, task, seeds=range(40), **kwargs):
    found = []
    for seed in seeds:
        found += generate_questions(scene, seed, [task], **kwargs)
    return found


def test_registry_has_eighteen_tasks_over_three_levels():
    names = task_names()
    assert len(names) == 18
    assert {"l2_relative_direction_between_objects", "l2_compare_object_distances"} <= set(names)
    assert "l2_bind_identity_location_distance" in names
    assert {TASKS[n].level for n in names} == {1, 2, 3}
    assert all(re.fullmatch(rf"l{TASKS[n].level}_[a-z_]+", n) for n in names)


def test_rows_follow_the_contract_and_are_deterministic():
    items = generate_questions(SCENE, seed=3)
    assert items == generate_questions(SCENE, seed=3)
    assert {item["task"] for item in items} == set(task_names())  # this scene is well-posed for every task
    for item in items:
        assert item["answer_letter"] in "ABCD"
        assert item[f"option_{item['answer_letter'].lower()}"] == item["answer_text"]
        assert len(set(option_texts(item).values())) == 4
        assert isinstance(json.loads(item["evidence"]), dict)
        assert item["answer_text"].lower() not in item["question"].lower()  # no leakage of the answer


def test_more_questions_per_task_ask_about_other_sources_and_keep_the_first():
    one = generate_questions(SCENE, seed=5)
    three = generate_questions(SCENE, seed=5, questions_per_task=3)
    assert [item for item in three if item["sample_id"] in {i["sample_id"] for i in one}] == one
    sectors = [item for item in three if item["task"] == "l1_direction_sector"]
    # One question per source of the three-source scene, each with its right answer.
    assert len(sectors) == 3 and len({item["params"] for item in sectors}) == 3
    assert {item["answer_text"] for item in sectors} == {"to your left", "to your right", "in front of you"}
    assert len({item["sample_id"] for item in three}) == len(three)
    single = make_scene([("dogAnimal", 80, 5, 2.0, 0.2)], rt60=0.5)
    assert len(generate_questions(single, 5, ["l1_direction_sector"], questions_per_task=3)) == 1
    with pytest.raises(ValueError, match="questions_per_task must be at least 1"):
        generate_questions(SCENE, seed=5, questions_per_task=0)


def gold(task, scene=SCENE, seeds=range(40)):
    return {(item["question"], item["answer_text"]) for item in items_for(scene, task, seeds)}


def test_level1_golds():
    assert {a for _, a in gold("l1_identify_class")} <= {"dog", "telephone ringing", "woman speaking"}
    assert {a for _, a in gold("l1_count_sources")} == {"3"}
    expected_sector = {"dog": "to your left", "telephone ringing": "to your right", "woman speaking": "in front of you"}
    expected_azimuth = {"dog": "80 degrees", "telephone ringing": "-100 degrees", "woman speaking": "10 degrees"}
    expected_distance = {"dog": "2.0 m", "telephone ringing": "1.0 m", "woman speaking": "2.5 m"}
    expected_elevation = {"dog": "5 degrees", "telephone ringing": "0 degrees", "woman speaking": "10 degrees"}
    for task, expected in [
        ("l1_direction_sector", expected_sector),
        ("l1_azimuth", expected_azimuth),
        ("l1_distance", expected_distance),
        ("l1_elevation", expected_elevation),
    ]:
        for question, answer in gold(task):
            (name,) = [n for n in expected if f"the {n}" in question]
            assert answer == expected[name], (task, question)
    for question, answer in gold("l1_onset_order"):
        assert answer == ("woman speaking" if "last" in question else "dog")
    assert {a for _, a in gold("l1_room_reverberation")} == {"0.50 s"}


def test_level2_golds():
    # Positions (x front, y left): dog (0.35, 1.97), telephone (-0.17, -0.98), speech (2.42, 0.43).
    relative = {
        ("dog", "telephone ringing"): "left",  # (0.52, 2.95): az 80
        ("telephone ringing", "dog"): "right",
        ("dog", "woman speaking"): "back",  # (-2.07, 1.54): az 143
        ("woman speaking", "dog"): "front",  # az -37
        ("telephone ringing", "woman speaking"): "back",  # (-2.6, -1.4): az -152
        ("woman speaking", "telephone ringing"): "front",
    }
    phrases = {"left": "to the left of", "right": "to the right of", "back": "behind", "front": "in front of"}
    seen = set()
    for question, answer in gold("l2_relative_direction_between_objects", seeds=range(80)):
        a, b = re.search(r"the (.+?) (?:relative to|from|sit relative to) the (.+?)\?", question).groups()
        a = a.split("the ")[-1]
        assert answer == f"{phrases[relative[(a, b)]]} the {b}", question
        seen.add((a, b))
    assert len(seen) >= 4
    for question, answer in gold("l2_compare_object_distances", seeds=range(60)):
        # dog 2.0 / speech 2.5 -> difference 0.5 (a bit); telephone 1.0 vs speech 2.5 -> 1.5 (clearly);
        # telephone vs dog -> exactly 1.0 m, inside the dead zone, never asked.
        names = re.findall(r"the (dog|telephone ringing|woman speaking)", question)
        assert set(names) != {"dog", "telephone ringing"}
        if set(names) == {"dog", "woman speaking"}:
            assert answer == "the dog is closer, by less than 1 m"
        else:
            assert answer == "the telephone ringing is closer, by more than 1 m"
    bindings = {"dog": "to your left, about 2.0 m away", "telephone ringing": "to your right, about 1.0 m away"}
    bindings["woman speaking"] = "in front of you, about 2.5 m away"
    for question, answer in gold("l2_bind_identity_location_distance"):
        (name,) = [n for n in bindings if f"the {n}" in question]
        assert answer == bindings[name]
    at = {
        "your left": "dog",
        "to your left": "dog",
        "your right": "telephone ringing",
        "to your right": "telephone ringing",
    }
    at.update({"straight ahead": "woman speaking", "in front of you": "woman speaking"})
    for question, answer in gold("l2_source_at_direction"):
        (where,) = [w for w in sorted(at, key=len, reverse=True) if w in question][:1]
        assert answer == at[where]
    separation = {frozenset({"dog", "telephone ringing"}): "175 degrees"}
    separation[frozenset({"dog", "woman speaking"})] = "70 degrees"  # great circle (80,5)-(10,10): 69.9
    separation[frozenset({"telephone ringing", "woman speaking"})] = "110 degrees"  # (-100,0)-(10,10): 109.6
    for question, answer in gold("l2_angular_separation"):
        names = frozenset(re.findall(r"the (dog|telephone ringing|woman speaking)", question))
        assert answer == separation[names]
    for question, answer in gold("l2_nearest_source"):
        assert answer == (
            "woman speaking" if "farthest" in question or "most distant" in question else "telephone ringing"
        )


def test_level3_golds():
    for question, answer in gold("l3_source_removal"):
        removed = re.search(r"(?:If|Suppose|Without) the (dog|telephone ringing|woman speaking)", question).group(1)
        # Nearest remaining: telephone (1.0 m, right) unless it is removed, then the dog (2.0 m, left).
        assert answer == ("to your left" if removed == "telephone ringing" else "to your right"), question
    assert {a for _, a in gold("l3_scene_abduction")} == {"an office"}  # telephone + speech + RT60 0.5 s
    walk = {"dog": "to your right", "telephone ringing": "to your left", "woman speaking": "backward"}
    for question, answer in gold("l3_navigation"):
        (name,) = [n for n in walk if f"the {n}" in question]
        assert answer == walk[name]


def _foa_azimuth(foa: np.ndarray) -> float:
    # Plane-wave azimuth from the first-order channels (AmbiX W, Y, Z, X).
    return float(wrap_azimuth(np.rad2deg(np.arctan2(foa[1].mean(), foa[3].mean()))))


@pytest.mark.parametrize("seed", range(12))
def test_listener_rotation_matches_a_rotated_sound_field(seed):
    phrases = {"dog": 0, "telephone ringing": 1, "woman speaking": 2}
    (item,) = generate_questions(SCENE, seed, ["l3_listener_rotation"])
    question = item["question"]
    facing = re.search(r"face the (dog|telephone ringing|woman speaking)", question)
    names = [n for n in phrases if f"the {n}" in question and (facing is None or n != facing.group(1))]
    (target,) = names
    if facing:
        rotation = listener_turn_rotation("face", SCENE.sources[phrases[facing.group(1)]].azimuth)
    else:
        turn = "left" if "to your left" in question else "right" if "to your right" in question else "around"
        rotation = listener_turn_rotation(turn)
    source = SCENE.sources[phrases[target]]
    # What the listener hears after turning is the field rotated by `rotation`: encode, rotate, read back.
    foa = rotate_foa(encode_plane_wave(np.ones(8), source.azimuth, 0.0), rotation)
    heard = _foa_azimuth(foa)
    assert heard == pytest.approx(float(rotate_direction(source.azimuth, rotation)), abs=1e-6)
    rotated_scene = make_scene(
        [(s.label, float(wrap_azimuth(s.azimuth + rotation)), s.elevation, s.distance) for s in SCENE.sources]
    )
    direct = [
        it
        for seed2 in range(40)
        for it in generate_questions(rotated_scene, seed2, ["l1_direction_sector"])
        if f"the {target}" in it["question"]
    ]
    assert direct and {it["answer_text"] for it in direct} == {item["answer_text"]}


def test_facing_a_source_brings_it_to_the_front():
    assert listener_turn_rotation("face", 80.0) == -80.0
    assert rotate_direction(80.0, listener_turn_rotation("face", 80.0)) == 0.0
    assert rotate_direction(0.0, listener_turn_rotation("left")) == -90.0  # turn left: the front goes right


def test_sector_boundaries_are_respected():
    # Exactly on a boundary, or within the 10 degree margin: no direction question; just outside: asked.
    for azimuth in (45.0, -45.0, 135.0, -135.0, 180.0 - 5.0 + 45.0 - 180.0):
        scene = make_scene([("dogAnimal", azimuth, 0, 2.0)])
        assert not items_for(scene, "l1_direction_sector", range(5))
        assert not items_for(scene, "l3_navigation", range(5))
    for azimuth, sector in [(56.0, "to your left"), (34.0, "in front of you"), (-124.0, "to your right")]:
        scene = make_scene([("dogAnimal", azimuth, 0, 2.0)])
        assert {it["answer_text"] for it in items_for(scene, "l1_direction_sector", range(5))} == {sector}
    # The azimuth wrap: 170 and -170 are both behind.
    scene = make_scene([("dogAnimal", 170.0, 0, 2.0), ("bell", -170.0, 0, 2.5)])
    assert {it["answer_text"] for it in items_for(scene, "l1_direction_sector", range(10))} == {"behind you"}


def test_ill_posed_scenes_are_skipped():
    # Two sources of the same class: no question may name one of them.
    twins = make_scene([("dogAnimal", 80, 0, 2.0), ("dogAnimal", -100, 0, 1.0)])
    named = ["l1_direction_sector", "l2_relative_direction_between_objects", "l2_nearest_source", "l3_navigation"]
    assert not any(generate_questions(twins, s, named) for s in range(5))
    # Two sources in one sector: "which sound is on your left" is ill-posed for that sector.
    same_side = make_scene([("dogAnimal", 70, 0, 2.0), ("bell", 110, 0, 1.0)])
    assert not items_for(same_side, "l2_source_at_direction", range(10))
    # Distances 2.0 and 2.1 m: equidistant; 2.0 and 2.3: too close to call -> skipped.
    equal = make_scene([("dogAnimal", 80, 0, 2.0), ("bell", -100, 0, 2.1)])
    assert {it["answer_text"] for it in items_for(equal, "l2_compare_object_distances", range(10))} == {
        "they are about equally far (within 0.25 m)"
    }
    assert not items_for(equal, "l2_nearest_source", range(10))
    unclear = make_scene([("dogAnimal", 80, 0, 2.0), ("bell", -100, 0, 2.3)])
    assert not items_for(unclear, "l2_compare_object_distances", range(10))
    single = make_scene([("dogAnimal", 80, 0, 2.0)])
    assert not items_for(single, "l2_angular_separation", range(5))


def test_numeric_options_put_the_gold_at_every_rank():
    ranks = set()
    for item in items_for(SCENE, "l1_distance", range(60)):
        values = sorted(float(t.split()[0]) for t in option_texts(item).values())
        ranks.add(values.index(float(item["answer_text"].split()[0])))
    assert ranks == {0, 1, 2, 3}


def test_class_distractors_come_from_the_vocabulary():
    vocabulary = {"dogAnimal": 1, "telephone": 1, "femaleSpeech": 1, "bell": 1, "bird": 1, "alarm": 1}
    for item in items_for(SCENE, "l1_identify_class", range(10), vocabulary=vocabulary):
        assert set(option_texts(item).values()) <= {
            "dog",
            "telephone ringing",
            "woman speaking",
            "bell",
            "bird",
            "alarm",
        }
        others = set(option_texts(item).values()) - {item["answer_text"]}
        assert others <= {"bell", "bird", "alarm"}  # never another present source


def test_describe_scene_is_faithful():
    text = describe_scene(SCENE)
    assert text.startswith("Three sound sources in a moderately reverberant room of 12.0 by 12.0 by 6.0 m")
    for fragment in ("dog is to your left at azimuth 80 degrees", "1.0 m away", "woman speaking is in front of you"):
        assert fragment in text
    assert "RT60 0.50 s" in text


def test_gold_text_parses_to_gold_letter_for_all_tasks():
    for item in generate_questions(SCENE, 1):
        assert parse_answer(item["answer_text"], item) == item["answer_letter"]
