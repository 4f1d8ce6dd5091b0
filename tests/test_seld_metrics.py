"""DCASE 2023 / 2024 SELD metrics: the numbers of the official scorers on cases they scored
(`data/dcase_official_cases.json`), and hand-computed cases (numbers worked out in the comments).

The official scorers take a clip's last reference frame index as its length and do not score that frame, so the
hand-made references below often run one frame longer than the frames that are scored (`range(11)`: frames 0-9)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hf_spatial.data.dcase_csv import SELDEvent, write_dcase_csv
from hf_spatial.seld.metrics import (
    evaluate_csv_folders,
    format_seld_markdown,
    official_num_frames,
    seld_metrics_2023,
    seld_metrics_2024,
)

OFFICIAL = json.loads((Path(__file__).parent / "data" / "dcase_official_cases.json").read_text(encoding="utf-8"))
# Identical directions are 8.1e-4 deg apart for the 2024 scorer (it normalises by sqrt(|v|^2 + 1e-10)).
SAME_DIRECTION_2024 = 8.1028e-4


def events(frames, class_idx, azimuth, elevation=0.0, distance=None, source_idx=0):
    """{frame: [event]} for one source active over `frames`."""
    return {f: [SELDEvent(class_idx, source_idx, azimuth, elevation, distance)] for f in frames}


def merge(*labelings):
    merged = {}
    for labels in labelings:
        for frame, frame_events in labels.items():
            merged.setdefault(frame, []).extend(frame_events)
    return dict(sorted(merged.items()))


def class_row(metrics, class_idx):
    return metrics.per_class[class_idx]


def official_value(value):
    # The official arccos is accurate to about 1.5e-6 deg near 0 deg; None is the scorer's NaN.
    return None if value is None else pytest.approx(value, rel=1e-6, abs=2e-6)


@pytest.mark.parametrize("edition", [2023, 2024])
@pytest.mark.parametrize("case", sorted(OFFICIAL["cases"]))
def test_official_scorer_numbers_are_reproduced(tmp_path, case, edition):
    spec = OFFICIAL["cases"][case]
    ref_dir, pred_dir = tmp_path / "metadata_dev" / "split", tmp_path / "pred"
    for folder in (ref_dir, pred_dir):
        folder.mkdir(parents=True)
    for name, texts in spec["files"].items():
        (ref_dir / name).write_text(texts["ref"])
        (pred_dir / name).write_text(texts[f"pred_{edition}"])
    results = evaluate_csv_folders(
        tmp_path / "metadata_dev", pred_dir, edition=edition, num_classes=spec["num_classes"]
    )  # default units: references in cm, predictions in m, as the official 2024 scorer reads them
    metrics, expected = results["metrics"], spec["expected"][str(edition)]
    assert {key: metrics[key] for key in expected["metrics"]} == {
        key: official_value(value) for key, value in expected["metrics"].items()
    }
    for key, values in expected["per_class"].items():
        assert [row[key] for row in metrics["per_class"]] == [official_value(value) for value in values], key


@pytest.mark.parametrize(
    ("last_frame", "frames_2023", "frames_2024"), [(0, 0, 0), (1, 10, 1), (9, 10, 9), (10, 10, 10), (11, 20, 11)]
)
def test_official_clip_length_is_the_last_reference_frame_index(last_frame, frames_2023, frames_2024):
    reference = events([0, last_frame], 0, 0.0)
    assert official_num_frames(reference, 2023) == frames_2023  # whole 1 s segments
    assert official_num_frames(reference, 2024) == frames_2024  # the last reference frame is not scored
    assert official_num_frames({}, 2024) == 0


def test_perfect_prediction_scores_perfectly_in_both_editions():
    ref = merge(events(range(20), 0, 30.0, 10.0, 2.0), events(range(5, 15), 1, -120.0, -20.0, 4.5))
    m23 = seld_metrics_2023(ref, ref, num_classes=2)
    assert (m23.error_rate, m23.f_score, m23.localization_error, m23.localization_recall) == (0, 1, 0, 1)
    assert m23.seld_score == 0
    m24 = seld_metrics_2024(ref, ref, num_classes=2)
    assert (m24.error_rate, m24.f_score, m24.relative_distance_error, m24.localization_recall) == (0, 1, 0, 1)
    assert m24.doa_error == pytest.approx(SAME_DIRECTION_2024, rel=1e-4)
    assert m24.seld_score == pytest.approx(SAME_DIRECTION_2024 / 180 / 3, rel=1e-4)


def test_30_degrees_off_is_not_a_true_positive_but_counts_in_the_localisation_error():
    ref = events(range(11), 0, 0.0, distance=2.0)
    pred = events(range(11), 0, 30.0, distance=2.0)
    m = seld_metrics_2023(ref, pred, num_classes=1)
    # One segment, one track matched with a 30 deg mean error: a spatial FP (an insertion), not a TP.
    assert m.f_score == 0  # 0 / (0 + 1 + 0)
    assert m.localization_error == pytest.approx(30.0)
    assert m.localization_recall == 1
    assert m.error_rate == 1  # I = 1, one reference track
    assert m.seld_score == pytest.approx((1 + 1 + 30 / 180 + 0) / 4)
    m24 = seld_metrics_2024(ref, pred, num_classes=1)
    assert m24.f_score == 0 and m24.doa_error == pytest.approx(30.0) and m24.error_rate == 1
    assert m24.seld_score == pytest.approx((1 + 30 / 180 + 0) / 3)


def test_azimuth_wrap_around_is_a_small_error():
    m = seld_metrics_2023(events(range(10), 0, 179.0), events(range(10), 0, -179.0), num_classes=1)
    assert m.localization_error == pytest.approx(2.0) and m.f_score == 1


def test_class_without_true_positive_is_180_deg_in_2023_and_excluded_in_2024():
    ref = merge(events(range(11), 0, 0.0, distance=2.0), events(range(11), 1, 90.0, distance=3.0))
    pred = events(range(11), 0, 0.0, distance=2.0)  # class 1 never predicted
    m23 = seld_metrics_2023(ref, pred, num_classes=2)
    assert class_row(m23, 1)["localization_error"] == 180.0
    assert m23.localization_error == 90.0  # (0 + 180) / 2
    assert m23.f_score == 0.5 and m23.localization_recall == 0.5
    assert m23.error_rate == 0.5  # one deletion, two reference tracks
    assert m23.seld_score == pytest.approx((0.5 + 0.5 + 0.5 + 0.5) / 4)
    m24 = seld_metrics_2024(ref, pred, num_classes=2)
    assert math.isnan(class_row(m24, 1)["doa_error"]) and math.isnan(class_row(m24, 1)["relative_distance_error"])
    # Class 1 is left out (not 180 deg): class 0's errors alone.
    assert m24.doa_error == pytest.approx(SAME_DIRECTION_2024, rel=1e-4) and m24.relative_distance_error == 0.0
    assert m24.f_score == 0.5 and m24.error_rate == 0.5  # 10 deletions / 20 references
    # Per class: class 0 -> mean(0, ~0, 0) = ~0; class 1 -> only 1 - F = 1 is defined.
    assert m24.seld_score == pytest.approx(0.5, abs=1e-5)
    assert m24.to_dict()["per_class"][1]["doa_error"] is None  # JSON-ready


@pytest.mark.parametrize(
    ("pred_azimuth", "ref_distance", "pred_distance", "is_tp", "doae", "rde"),
    [
        (10.0, 2.0, 2.5, True, 10.0, 0.25),  # both within thresholds
        (10.0, 1.0, 2.5, False, 10.0, 1.5),  # direction fine, relative distance error 1.5 > 1
        (30.0, 2.0, 2.0, False, 30.0, 0.0),  # distance exact, direction 30 > 20 deg
        (30.0, 1.0, 3.0, False, 30.0, 2.0),  # both wrong
    ],
)
def test_2024_true_positive_needs_direction_and_distance(pred_azimuth, ref_distance, pred_distance, is_tp, doae, rde):
    # References in frames 0 and 1: the official scorer scores frame 0.
    ref = events([0, 1], 0, 0.0, distance=ref_distance)
    m = seld_metrics_2024(ref, events([0], 0, pred_azimuth, distance=pred_distance), num_classes=1)
    assert m.f_score == (1.0 if is_tp else 0.0)
    assert m.error_rate == (0.0 if is_tp else 1.0)
    # DOAE and RDE average every same-class matched pair, whether or not it passed the thresholds.
    assert m.doa_error == pytest.approx(doae)
    assert m.relative_distance_error == pytest.approx(rde)
    assert m.distance_error == pytest.approx(abs(pred_distance - ref_distance))


def test_2024_optional_absolute_distance_threshold():
    ref, pred = events([0, 1], 0, 0.0, distance=2.0), events([0], 0, 0.0, distance=2.6)
    assert seld_metrics_2024(ref, pred, num_classes=1).f_score == 1
    assert seld_metrics_2024(ref, pred, num_classes=1, distance_threshold=0.5).f_score == 0
    assert seld_metrics_2024(ref, pred, num_classes=1, relative_distance_threshold=0.2).f_score == 0


def test_2023_aggregates_one_second_segments_2024_scores_frames():
    ref = events(range(11), 0, 0.0, distance=2.0)
    # Right for half a second, 30 deg off for the other half: the segment's mean error is 15 deg.
    pred = merge(events(range(5), 0, 0.0, distance=2.0), events(range(5, 10), 0, 30.0, distance=2.0))
    m23 = seld_metrics_2023(ref, pred, num_classes=1)
    assert m23.f_score == 1 and m23.error_rate == 0
    assert m23.localization_error == pytest.approx(15.0)
    m24 = seld_metrics_2024(ref, pred, num_classes=1)
    assert m24.f_score == pytest.approx(5 / (5 + 5))  # 5 TPs, 5 spatial FPs
    assert m24.error_rate == pytest.approx(0.5)  # 5 insertions / 10 references
    assert m24.doa_error == pytest.approx(15.0, abs=1e-3)


def test_2023_segment_counts_tracks_not_frames():
    ref = events(range(21), 0, 0.0, distance=1.0)  # two segments (frames 0-19)
    pred = events(range(3), 0, 0.0, distance=1.0)  # detected in 3 frames of the first second only
    m23 = seld_metrics_2023(ref, pred, num_classes=1)
    assert m23.num_references == 2
    assert class_row(m23, 0)["f_score"] == pytest.approx(1 / (1 + 0.5 * 1))  # TP 1, FN 1
    assert m23.error_rate == 0.5 and m23.localization_recall == 0.5
    m24 = seld_metrics_2024(ref, pred, num_classes=1)
    assert m24.num_references == 20
    assert m24.f_score == pytest.approx(3 / (3 + 0.5 * 17)) and m24.error_rate == pytest.approx(17 / 20)


def test_error_rate_substitutions_deletions_insertions():
    ref = merge(events(range(10), 0, 0.0), events(range(10), 1, 90.0), events(range(10, 21), 0, 0.0))
    pred = merge(events(range(10), 1, 90.0), events(range(10), 2, 0.0), events(range(20, 30), 2, 45.0))
    m = seld_metrics_2023(ref, pred, num_classes=3, num_frames=30)  # whole 3 s clip (not the official length)
    # Segment 1: class 0 missed (FN) + class 2 inserted (FP) -> 1 substitution; class 1 correct.
    # Segment 2: class 0 missed -> 1 deletion. Segment 3: class 0 missed + class 2 inserted -> 1 substitution.
    # References: 2 + 1 + 1 tracks.
    assert m.error_rate == pytest.approx(3 / 4)
    assert [row["f_score"] for row in m.per_class] == [0.0, 1.0, 0.0]
    assert [row["localization_error"] for row in m.per_class] == [180.0, 0.0, 180.0]
    assert m.f_score == pytest.approx(1 / 3) and m.localization_error == pytest.approx(120.0)
    assert [row["num_predictions"] for row in m.per_class] == [0, 1, 2]
    official = seld_metrics_2023(ref, pred, num_classes=3)  # scored up to the last reference frame: segments 1, 2
    assert official.error_rate == pytest.approx(2 / 3)
    assert official.official_clip_length and not m.official_clip_length


def test_multiple_instances_of_a_class_are_paired_by_hungarian_matching():
    ref = {f: [SELDEvent(0, 0, 0.0, 0.0, 2.0), SELDEvent(0, 1, 90.0, 0.0, 2.0)] for f in range(11)}
    swapped = {f: [SELDEvent(0, 0, 95.0, 0.0, 2.0), SELDEvent(0, 1, 5.0, 0.0, 2.0)] for f in range(11)}
    # Optimal pairs (0 <-> 5, 90 <-> 95), not list order (0 <-> 95, 90 <-> 5).
    assert seld_metrics_2023(ref, swapped, num_classes=1).localization_error == pytest.approx(5.0)
    assert seld_metrics_2024(ref, swapped, num_classes=1).f_score == 1
    one = {f: [SELDEvent(0, 0, 85.0, 0.0, 2.0)] for f in range(11)}
    m = seld_metrics_2023(ref, one, num_classes=1)
    # The single prediction matches the 90 deg source (5 deg, TP); the 0 deg source is a FN.
    assert m.localization_error == pytest.approx(5.0)
    assert m.f_score == pytest.approx(1 / (1 + 0.5)) and m.localization_recall == 0.5 and m.error_rate == 0.5
    m = seld_metrics_2023(one, ref, num_classes=1)  # one reference, two predictions: one extra FP
    assert m.f_score == pytest.approx(1 / (1 + 0.5)) and m.error_rate == 1.0


def test_2023_baseline_rule_for_a_class_never_active_in_the_same_frame():
    # Reference in the first half of the segment, prediction in the second: no frame-wise match. The DCASE 2023
    # baseline counts the predicted tracks as false negatives (no false positive); we keep that rule.
    m = seld_metrics_2023(events(range(5), 0, 0.0), events(range(5, 10), 0, 0.0), num_classes=1)
    assert m.f_score == 0 and m.localization_recall == 0 and m.localization_error == 180
    assert m.error_rate == 1.0  # one deletion


def test_counts_accumulate_over_files_and_late_predictions_count_only_in_whole_clips():
    a = events(range(10), 0, 0.0)  # last reference frame 9: the official scorer scores frames 0-9
    m = seld_metrics_2023([a, a], [a, {}], num_classes=1)  # an empty prediction file: all its events are misses
    assert m.f_score == pytest.approx(1 / 1.5) and m.error_rate == 0.5 and m.localization_recall == 0.5
    late = merge(a, events([25], 0, 0.0))  # a false alarm after the last reference frame
    assert seld_metrics_2023(a, late, num_classes=1).error_rate == 0.0  # the official scorer ignores it
    assert seld_metrics_2023(a, late, num_classes=1, num_frames=30).error_rate == 1.0  # a whole 3 s clip
    assert seld_metrics_2023(a, late, num_classes=1, num_frames=20).error_rate == 0.0  # clip ends before it


def test_absent_classes_count_as_in_dcase_unless_ignored():
    ref = events(range(11), 0, 0.0, distance=1.0)
    dcase = seld_metrics_2023(ref, ref, num_classes=13)
    assert dcase.f_score == pytest.approx(1 / 13) and dcase.num_averaged_classes == 13
    present = seld_metrics_2023(ref, ref, num_classes=13, ignore_absent_classes=True)
    assert present.f_score == 1 and present.localization_error == 0 and present.num_averaged_classes == 1
    assert seld_metrics_2024(ref, ref, num_classes=13, ignore_absent_classes=True).seld_score < 1e-5


def test_input_errors_are_clear():
    with pytest.raises(ValueError, match="need a distance"):  # also in a frame the scorer ignores
        seld_metrics_2024(events([0], 0, 0.0), events([0], 0, 0.0, distance=1.0), num_classes=1)
    with pytest.raises(ValueError, match="Class index 3 out of range for num_classes=2"):
        seld_metrics_2023(events([0], 3, 0.0), {}, num_classes=2)
    with pytest.raises(ValueError, match="2 references but 1 predictions"):
        seld_metrics_2023([{}, {}], [{}], num_classes=1)


def test_markdown_report_lists_headline_and_classes():
    ref = events(range(11), 0, 0.0, distance=1.0)
    text = format_seld_markdown(seld_metrics_2024(ref, ref, num_classes=2), class_names=["speech", "music"])
    assert "| F20 | DOAE (deg) | RDE | SELD score |" in text
    assert "| speech | 10 | 10 | 1.000 | 0.001 |" in text
    assert "| music | 0 | 0 | 0.000 | n/a |" in text
    assert "count as misses, as in DCASE" in text
    assert "up to their last reference frame, as the official scorer does" in text
    whole = format_seld_markdown(seld_metrics_2024(ref, ref, num_classes=2, num_frames=11))
    assert "whole clips of the given num_frames (not the official clip-length rule)" in whole
    with pytest.raises(ValueError, match="1 class names for 2 classes"):
        format_seld_markdown(seld_metrics_2023(ref, ref, num_classes=2), class_names=["speech"])


def test_evaluate_csv_folders_matches_files_and_writes_reports(tmp_path):
    ref_dir, pred_dir = tmp_path / "metadata_dev", tmp_path / "predictions"
    clip_a = merge(events(range(11), 0, 0.0, distance=2.0), events(range(11), 1, 90.0, distance=3.0))
    clip_b = events(range(11), 1, -45.0, distance=1.0)
    write_dcase_csv(ref_dir / "dev-test-sony" / "a.csv", clip_a, distance_unit="cm")
    write_dcase_csv(ref_dir / "dev-test-tau" / "b.csv", clip_b, distance_unit="cm")
    write_dcase_csv(pred_dir / "a.csv", clip_a)
    (pred_dir / "b.csv").write_text("")  # no detections in clip b

    results = evaluate_csv_folders(ref_dir, pred_dir, edition=2024, num_classes=2)  # references in cm
    metrics = results["metrics"]
    assert results["files"] == ["a.csv", "b.csv"]
    # class 0: perfect; class 1: 10 TPs (clip a), 10 FNs (clip b).
    assert metrics["f_score"] == pytest.approx((1 + 10 / (10 + 0.5 * 10)) / 2)
    assert metrics["relative_distance_error"] == pytest.approx(0.0)
    assert metrics["error_rate"] == pytest.approx(10 / 30)
    report = (pred_dir / "seld_metrics_2024.md").read_text()
    assert report.startswith("## DCASE 2024 SELD metrics")
    assert json.loads((pred_dir / "seld_metrics_2024.json").read_text())["metrics"] == metrics

    out = tmp_path / "reports" / "seld.md"
    results = evaluate_csv_folders(ref_dir, pred_dir, edition=2023, num_classes=2, report_path=out, doa_threshold=10)
    assert out.is_file() and results["metrics"]["doa_threshold"] == 10 and results["metrics"]["edition"] == 2023

    (pred_dir / "b.csv").unlink()
    with pytest.raises(ValueError, match=r"no prediction for 1 reference file\(s\), e.g. \['b.csv'\]"):
        evaluate_csv_folders(ref_dir, pred_dir, edition=2023, num_classes=2)
    with pytest.raises(ValueError, match="Unknown DCASE edition 2022"):
        evaluate_csv_folders(ref_dir, pred_dir, edition=2022)
    with pytest.raises(FileNotFoundError, match="Prediction folder not found"):
        evaluate_csv_folders(ref_dir, tmp_path / "nope")
