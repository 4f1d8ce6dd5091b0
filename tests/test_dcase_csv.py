"""DCASE SELD CSV: both formats round trip, robust reading, clear errors on malformed rows."""

from __future__ import annotations

import pytest

from hf_spatial.data.dcase_csv import (
    SELDEvent,
    format_dcase_csv,
    frame_to_time,
    labels_have_distance,
    num_label_frames,
    parse_dcase_csv,
    read_dcase_csv,
    time_to_frame,
    write_dcase_csv,
)

# Rows in the style of STARSS23 metadata (integer degrees; 2024 distances in centimetres).
STARSS23_2023 = "0,1,0,-50,10\n0,4,1,120,-5\n1,1,0,-49,10\n5,12,0,180,0\n"
STARSS23_2024 = "0,1,0,-50,10,181\n0,4,1,120,-5,95\n1,1,0,-49,10,180\n5,12,0,180,0,402\n"


def test_2023_format_parses_to_frame_wise_labels():
    labels = parse_dcase_csv(STARSS23_2023)
    assert list(labels) == [0, 1, 5]
    assert labels[0] == [SELDEvent(1, 0, -50.0, 10.0), SELDEvent(4, 1, 120.0, -5.0)]
    assert labels[5] == [SELDEvent(12, 0, 180.0, 0.0, None)]
    assert not labels_have_distance(labels)
    assert num_label_frames(labels) == 6


def test_2024_format_reads_centimetres_as_metres():
    labels = parse_dcase_csv(STARSS23_2024, distance_unit="cm")
    assert labels[0][0] == SELDEvent(1, 0, -50.0, 10.0, 1.81)
    assert labels[5][0].distance == pytest.approx(4.02)
    assert labels_have_distance(labels)
    assert parse_dcase_csv(STARSS23_2024)[0][0].distance == 181.0  # metres by default


@pytest.mark.parametrize(("text", "unit"), [(STARSS23_2023, "m"), (STARSS23_2024, "cm")])
def test_real_style_metadata_round_trips_byte_for_byte(tmp_path, text, unit):
    path = tmp_path / "fold4_room23_mix001.csv"
    path.write_text(text)
    labels = read_dcase_csv(path, distance_unit=unit)
    out = write_dcase_csv(tmp_path / "out" / "copy.csv", labels, distance_unit=unit)
    assert out.read_text() == text
    assert read_dcase_csv(out, distance_unit=unit) == labels


def test_float_predictions_round_trip_exactly(tmp_path):
    labels = {
        3: [SELDEvent(0, 0, 12.345678901234, -7.25, 2.5000001), SELDEvent(2, 1, -179.9, 89.5, 0.33)],
        17: [SELDEvent(0, 0, 0.1, 0.0, 1.0)],
    }
    path = write_dcase_csv(tmp_path / "pred.csv", labels)
    assert read_dcase_csv(path) == labels
    assert path.read_text().splitlines()[0] == "3,0,0,12.345678901234,-7.25,2.5000001"


def test_unsorted_rows_are_grouped_by_frame_in_file_order():
    labels = parse_dcase_csv("4,2,0,10,0\n1,3,0,20,0\n4,1,1,30,0\n")
    assert list(labels) == [1, 4]
    assert [event.class_idx for event in labels[4]] == [2, 1]


def test_header_blank_lines_and_spaces_are_tolerated():
    labels = parse_dcase_csv("frame,class,source,azimuth,elevation\n\n 0, 1, 0, 30.5, -10 \n\n")
    assert labels == {0: [SELDEvent(1, 0, 30.5, -10.0)]}


def test_four_column_and_cartesian_baseline_outputs_are_read():
    assert parse_dcase_csv("2,5,90,0\n")[2] == [SELDEvent(5, 0, 90.0, 0.0)]
    (event,) = parse_dcase_csv("7,3,1,0.0,1.0,0.0,2.5\n")[7]
    assert (event.class_idx, event.source_idx, event.distance) == (3, 1, 2.5)
    assert event.azimuth == pytest.approx(90.0) and event.elevation == pytest.approx(0.0)


def test_writer_picks_format_from_distances_and_rejects_mixtures():
    assert format_dcase_csv({0: [SELDEvent(1, 0, 10.0, 0.0)]}) == "0,1,0,10,0\n"
    assert format_dcase_csv({0: [(1, 0, 10.0, 0.0, 1.5)]}) == "0,1,0,10,0,1.5\n"
    assert format_dcase_csv({0: [SELDEvent(1, 0, 10.0, 0.0, 1.5)]}, distance_unit="cm") == "0,1,0,10,0,150\n"
    assert format_dcase_csv({}) == ""
    with pytest.raises(ValueError, match="Some events have a distance"):
        format_dcase_csv({0: [SELDEvent(1, 0, 10.0, 0.0, 1.5)], 1: [SELDEvent(1, 0, 10.0, 0.0)]})


def test_frame_time_conversion():
    assert frame_to_time(12) == pytest.approx(1.2)
    assert time_to_frame(0.3) == 3
    assert time_to_frame(0.39) == 3
    assert time_to_frame(0.0) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,1,0,10\n0,1,0,10,0\n", r"<text>:2: 5 columns where earlier rows have 4"),
        ("0,1,0\n", r"<text>:1: expected 5 columns"),
        ("0,1,0,10,0,1,2,3\n", r"expected 5 columns"),
        ("0,1,0,10,0\n1,one,0,10,0\n", r"<text>:2: class index 'one' is not a number"),
        ("0.5,1,0,10,0\n", r"frame must be an integer"),
        ("-1,1,0,10,0\n", r"frame must be >= 0"),
        ("0,1,0,270,0\n", r"azimuth 270.0 outside \[-180, 180\].*wrap_azimuth"),
        ("0,1,0,10,95\n", r"elevation 95.0 outside \[-90, 90\]"),
        ("0,1,0,10,0,-2\n", r"distance must be finite and >= 0"),
        ("0,1,0,nan,0\n", r"azimuth must be finite"),
        ("0,1,0,0,0,0,1\n", r"has no direction"),
    ],
)
def test_malformed_rows_raise_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_dcase_csv(text)


def test_class_range_unit_and_missing_file_errors(tmp_path):
    with pytest.raises(ValueError, match="class index 13 out of range for 13 classes"):
        parse_dcase_csv("0,13,0,10,0\n", num_classes=13)
    with pytest.raises(ValueError, match="distance_unit"):
        parse_dcase_csv("", distance_unit="mm")
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        read_dcase_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("0,1,0,10,0\n0,1,x,10,0\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2: source index 'x'"):
        read_dcase_csv(bad)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (SELDEvent(0, 0, 200.0, 0.0), r"frame 3: azimuth 200.0 outside \[-180, 180\]"),
        (SELDEvent(0, 0, 0.0, -91.0), r"frame 3: elevation -91.0 outside"),
        (SELDEvent(0, 0, 0.0, 0.0, float("inf")), r"frame 3: distance must be finite"),
        (SELDEvent(-1, 0, 0.0, 0.0), r"frame 3: class and source indices must be >= 0"),
        ((0, 0, 0.0), r"\(class_idx, source_idx, azimuth, elevation\[, distance\]\), got 3 values"),
    ],
)
def test_writer_refuses_what_the_reader_would_reject(event, message):
    with pytest.raises(ValueError, match=message):
        format_dcase_csv({3: [event]})
