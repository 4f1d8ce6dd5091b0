"""Evaluation pieces without a model: solvers for modified scenes, controls, circular evaluation, scoring to the
hub shape, the report and plots, leak checks and quota selection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_spatial.conventions import X, Y, Z, encode_plane_wave, rotate_direction, rotate_foa
from hf_spatial.evaluation.circular import circular_variants, combine_circular, rotate_options
from hf_spatial.evaluation.controls import prepare, rotation_for, w_only
from hf_spatial.evaluation.leaks import find_leaks
from hf_spatial.evaluation.report import condition_results, markdown_report, results_dict, write_outputs
from hf_spatial.evaluation.runner import EvaluationRun, evaluate
from hf_spatial.evaluation.selection import level_quotas, select_items
from hf_spatial.tasks import generate_questions, wilson_interval
from hf_spatial.tasks.scoring import score_item
from hf_spatial.tasks.solving import answer_for_scene, rotate_scene, scene_with_directions
from tests.scene_factory import make_scene, random_scene


def _item(scene, task, seed=0):
    items = [it for it in generate_questions(scene, seed, [task])]
    assert items, f"{task} is ill-posed for the scene"
    return items[0]


def _letter_of(item, text):
    return next(letter for letter in "ABCD" if item[f"option_{letter.lower()}"] == text)


# ------------------------------------------------------------------------------------------ solving
def test_answer_for_scene_reproduces_every_gold():
    rng = np.random.default_rng(1)
    count = 0
    for k in range(60):
        scene = random_scene(rng, f"s{k}")
        for item in generate_questions(scene, seed=k):
            assert answer_for_scene(item, scene) == item["answer_letter"], item["task"]
            count += 1
    assert count > 300


def test_rotated_answers_follow_the_rotation():
    scene = make_scene([("dog", 20.0, 0.0, 2.0), ("telephone", -100.0, 0.0, 1.0)])
    sector = _item(scene, "l1_direction_sector")
    named = scene.sources[json.loads(sector["params"])["source"]].label
    truth = {
        "dog": ("in front of you", "to your left", "behind you"),  # 20 -> 110 -> -160 degrees
        "telephone": ("to your right", "in front of you", "to your left"),  # -100 -> -10 -> 80 degrees
    }
    for index, angle in enumerate((0.0, 90.0, 180.0)):
        letter = answer_for_scene(sector, rotate_scene(scene, angle))
        assert sector[f"option_{letter.lower()}"] == truth[named][index]
    # Facing another source is invariant under rotating the whole field.
    facing = [it for it in generate_questions(scene, 0, ["l3_listener_rotation"]) if "face" in it["question"]]
    for item in facing:
        assert answer_for_scene(item, rotate_scene(scene, 90.0)) == item["answer_letter"]
    # Which source is to your left changes with the rotation: after +90 the dog (20 deg -> 110) is on the left.
    left = {**_item(scene, "l2_source_at_direction"), "params": json.dumps({"sector": "left"})}
    assert left[f"option_{answer_for_scene(left, rotate_scene(scene, 90.0)).lower()}"] == "dog"


def test_rotated_azimuth_leaves_the_ladder_or_moves_two_rungs():
    scene = make_scene([("dog", 30.0, 0.0, 2.0)])
    item = _item(scene, "l1_azimuth")
    values = {letter: float(item[f"option_{letter.lower()}"].split()[0]) for letter in "ABCD"}
    letter = answer_for_scene(item, rotate_scene(scene, 90.0))
    if letter is None:
        assert all(abs(float(rotate_direction(30.0, 90.0)) - v) > 20 for v in values.values())
    else:
        assert values[letter] == pytest.approx(120.0)
    # The lenient mode (baselines) takes the nearest option.
    estimated = scene_with_directions(scene, [(33.0, 0.0)])
    assert answer_for_scene(item, estimated, strict=False) == item["answer_letter"]


def test_rotate_foa_matches_rotate_scene():
    from hf_spatial.acoustics.intensity import estimate_direction

    signal = np.random.default_rng(0).standard_normal(24000)
    foa = encode_plane_wave(signal, 30.0, 10.0)
    for angle in (90.0, 180.0, 270.0):
        azimuth, _ = estimate_direction(rotate_foa(foa, angle), 24000)
        assert azimuth == pytest.approx(float(rotate_direction(30.0, angle)), abs=1.0)


# ------------------------------------------------------------------------------------------ controls
def test_w_only_zeroes_directional_features_only():
    from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor

    rng = np.random.default_rng(0)
    foa = encode_plane_wave(rng.standard_normal(24000), 60.0, 0.0) + 0.01 * rng.standard_normal((4, 24000))
    mono = w_only(foa)
    assert np.array_equal(mono[0], foa[0]) and not mono[[X, Y, Z]].any()
    extractor = FOAFeatureExtractor()
    full, zeroed = extractor(foa, sampling_rate=24000), extractor(mono, sampling_rate=24000)
    np.testing.assert_array_equal(full["input_features"], zeroed["input_features"])  # W path untouched
    valid = zeroed["spatial_attention_mask"][0].astype(bool)
    spatial = zeroed["spatial_features"][0][..., valid]
    assert np.abs(spatial[4:]).max() < 1e-6  # no intensity
    assert np.ptp(spatial[1:4]) == 0.0  # Y, Z, X log-mels sit at the floor
    assert np.abs(full["spatial_features"][0][4:][..., valid]).max() > 0.1


def test_prepare_conditions():
    scene = make_scene([("dog", 20.0, 0.0, 2.0), ("telephone", -100.0, 0.0, 1.0)])
    item = {**_item(scene, "l1_direction_sector"), "scene": scene.to_json()}
    foa = np.random.default_rng(0).standard_normal((4, 2400)).astype(np.float32)
    assert prepare("no_audio", item, foa, scene).audio is None
    assert prepare("full", item, foa, scene).audio is foa
    rotated = prepare("rotated", item, foa, scene)
    angle = rotation_for(item["sample_id"])
    np.testing.assert_allclose(rotated.audio, rotate_foa(foa, angle))
    assert rotated.item["answer_letter"] == answer_for_scene(item, rotate_scene(scene, angle))
    assert isinstance(prepare("rotated", {**item, "params": None}, foa, scene), str)  # excluded, with a reason
    with pytest.raises(ValueError, match="Unknown condition"):
        prepare("louder", item, foa, scene)


# ------------------------------------------------------------------------------------------ circular
class FixedLetter:
    """A predictor that always answers the same letter."""

    name = "always-A"
    conditions = ("full",)

    def __init__(self, letter="A"):
        self.letter = letter

    def applies_to(self, item):
        return True

    def predict(self, requests):
        return [self.letter] * len(requests)


class Oracle(FixedLetter):
    name = "oracle"

    def predict(self, requests):
        return [f"The answer is ({r.item['answer_letter']})." for r in requests]


class _Bench:
    def __init__(self, items):
        self.name, self.items = "hand", items

    def audio(self, item):
        return np.zeros((4, 2400), np.float32)

    def scene(self, item):
        return None


def _items(count=12):
    rng = np.random.default_rng(3)
    items = []
    for k in range(count):
        items += generate_questions(random_scene(rng, f"c{k}"), k, ["l1_count_sources", "l1_direction_sector"])
    return items


def test_rotate_options_moves_gold_with_its_text():
    item = _items(1)[0]
    for shift in range(4):
        rotated = rotate_options(item, shift)
        assert rotated[f"option_{rotated['answer_letter'].lower()}"] == item["answer_text"]
    assert len({rotate_options(item, s)["answer_letter"] for s in range(4)}) == 4


def test_fixed_letter_fails_circular_and_oracle_passes():
    items = _items()
    bench = _Bench(items)
    fixed = evaluate(FixedLetter(), bench, circular=True)
    assert sum(r["correct"] for r in fixed.records["full"]) > 0  # some golds are A
    assert not any(r["correct"] for r in fixed.records["circular"])
    oracle = evaluate(Oracle(), bench, circular=True)
    assert all(r["correct"] for r in oracle.records["circular"])
    assert len(oracle.records["circular"]) == len(items)
    combined = combine_circular(items[0], [score_item(v, "A") for v in circular_variants(items[0])])
    assert combined["correct"] is False and combined["num_options"] == 256


# ------------------------------------------------------------------------------------------ scoring and reports
def _records(correct_flags, task="l1_direction_sector", level=1):
    return [
        {"task": task, "level": level, "correct": flag, "num_options": 4, "predicted_letter": "A" if flag else None}
        for flag in correct_flags
    ]


def test_condition_results_hub_shape_and_intervals():
    records = _records([True] * 8 + [False] * 2) + _records([True, False], "l2_nearest_source", 2)
    result = condition_results(records)
    overall = result["overall"]
    assert overall["accuracy"] == pytest.approx(9 / 12) and overall["n"] == 12 and overall["chance"] == 0.25
    assert overall["ci95"] == pytest.approx(list(wilson_interval(9, 12)))
    assert result["levels"]["1"]["ci95"] == pytest.approx([0.4901624, 0.9433178], abs=1e-6)  # Wilson 8/10
    assert set(result["tasks"]) == {"l1_direction_sector", "l2_nearest_source"}


def test_report_plots_and_hub_card_read_the_results(tmp_path):
    from hf_spatial import hub_cards

    items = _items(20)
    run = evaluate(Oracle(), _Bench(items), circular=True)
    # A second condition and a localiser's direction details, as the intensity baseline records them.
    run.records["mono"] = [{**r, "correct": i % 4 == 0} for i, r in enumerate(run.records["full"])]
    run.records["full"][0]["directions"] = [{"azimuth": 30, "elevation": 0, "est_azimuth": 35, "est_elevation": 2}]
    results = write_outputs(run, tmp_path, {"num_items": len(items)})
    for name in ("accuracy_levels.png", "accuracy_tasks.png", "direction_error.png", "sector_confusion.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "report.md").read_text()
    assert "| overall | 25.0 | 100.0 (" in report and "`l1_count_sources`" in report and "mono" in report
    saved = json.loads((tmp_path / "eval_results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert set(saved["conditions"]) == {"full", "circular", "mono"}
    evaluation = hub_cards.read_results(tmp_path / "eval_results.json")
    assert evaluation["controls"] == ["circular", "mono"]
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 3 * len(items)
    assert markdown_report(results_dict(EvaluationRun("x", "y", {"full": run.records["full"]})), run)


# ------------------------------------------------------------------------------------------ leaks and selection
def test_find_leaks_detects_shared_clip_room_and_scene():
    bench = [make_scene([("dog", 20.0, 0.0, 2.0)], scene_id="b0")]
    clean = [make_scene([("dog", 20.0, 0.0, 2.0)], scene_id="t0")]
    for scene in clean:
        scene.room.room_id = "train-room"
        scene.sources[0].clip_id = "train-clip"
    assert find_leaks(bench, clean, "train").clean
    shared_clip = make_scene([("dog", -50.0, 0.0, 1.0)], scene_id="t1")
    shared_clip.room.room_id = "train-room"
    report = find_leaks(bench, [shared_clip], "train")
    assert report.shared_clips == ["clip0"] and not report.shared_rooms and not report.clean
    shared_room = make_scene([("dog", -50.0, 0.0, 1.0)], scene_id="t2")
    shared_room.sources[0].clip_id = "other"
    assert find_leaks(bench, [shared_room], "train").shared_rooms == ["room"]
    same_content = make_scene([("dog", 20.0, 0.0, 2.0)], scene_id="t3")
    assert find_leaks(bench, [same_content], "train").shared_scenes == ["b0"]


def test_level_quotas_and_selection():
    assert level_quotas(1000) == {1: 385, 2: 279, 3: 336}
    assert sum(level_quotas(37).values()) == 37
    rng = np.random.default_rng(5)
    candidates = [it for k in range(120) for it in generate_questions(random_scene(rng, f"q{k}"), k)]
    items, shortfall = select_items(candidates, 60, seed=0, max_per_scene=2)
    assert not shortfall and len(items) == 60
    levels = {level: sum(int(it["level"]) == level for it in items) for level in (1, 2, 3)}
    assert levels == level_quotas(60)
    per_scene = {}
    for item in items:
        per_scene[item["scene_id"]] = per_scene.get(item["scene_id"], 0) + 1
    assert max(per_scene.values()) <= 2
    assert items == select_items(candidates, 60, seed=0, max_per_scene=2)[0]


def test_selection_restricted_to_some_levels_keeps_their_proportions():
    assert level_quotas(664, levels=[2, 1]) == {1: 385, 2: 279}
    rng = np.random.default_rng(6)
    candidates = [
        it
        for k in range(60)
        for it in generate_questions(random_scene(rng, f"r{k}"), k, ["l1_direction_sector", "l2_source_at_direction"])
    ]
    items, shortfall = select_items(candidates, 30, seed=0, max_per_scene=2, levels=[1, 2])
    assert not shortfall and len(items) == 30
    assert {it["task"] for it in items} == {"l1_direction_sector", "l2_source_at_direction"}
