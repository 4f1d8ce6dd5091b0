"""DCASE SELD CSV metadata (STARSS23 / DCASE 2023-2024 task 3): read, write, convert to frame-wise labels.

One row per active event per label frame (100 ms, 10 frames per second), no header:

- 2023 format, 5 columns: ``frame, class, source, azimuth, elevation``
- 2024 format, 6 columns: ``frame, class, source, azimuth, elevation, distance``

Also read, because DCASE systems write them: 4 columns ``frame, class, azimuth, elevation`` (no source index;
read as source 0) and the baseline's Cartesian output ``frame, class, source, x, y, z, distance`` (7 columns;
the direction is converted with `hf_spatial.conventions`). Frames, classes and sources are 0-based integers.

DCASE angles use our listener convention (azimuth counter-clockwise from the front in [-180, 180] degrees,
elevation up in [-90, 90]), so no conversion is applied. Distances are returned in metres: STARSS23's 2024
metadata stores them in centimetres, so read it with ``distance_unit="cm"``.

The frame-wise structure is ``{frame: [SELDEvent(class_idx, source_idx, azimuth, elevation, distance), ...]}``
with frames in increasing order and events in file order; frames without events are absent.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from hf_spatial.atomic import write_text_atomic
from hf_spatial.conventions import cartesian_to_spherical

__all__ = [
    "LABEL_FRAMES_PER_SECOND",
    "LABEL_HOP_S",
    "DistanceUnit",
    "FrameLabels",
    "SELDEvent",
    "format_dcase_csv",
    "frame_to_time",
    "labels_have_distance",
    "num_label_frames",
    "parse_dcase_csv",
    "read_dcase_csv",
    "rename_classes",
    "time_to_frame",
    "write_dcase_csv",
]

LABEL_HOP_S = 0.1
LABEL_FRAMES_PER_SECOND = 10

DistanceUnit = Literal["m", "cm"]
_UNITS_PER_METRE: dict[str, float] = {"m": 1.0, "cm": 100.0}


class SELDEvent(NamedTuple):
    """One active sound event in one label frame. `distance` is in metres, None when the format has none."""

    class_idx: int
    source_idx: int
    azimuth: float
    elevation: float
    distance: float | None = None


FrameLabels = dict[int, list[SELDEvent]]


def frame_to_time(frame: int) -> float:
    """Start time in seconds of a 100 ms label frame."""
    return frame * LABEL_HOP_S


def time_to_frame(time_s: float) -> int:
    """Label frame containing `time_s` (frame k covers [0.1 k, 0.1 (k + 1)) seconds)."""
    # The small epsilon keeps exact multiples of 0.1 s (e.g. 0.3 / 0.1 = 2.9999999999999996) in their own frame.
    return math.floor(time_s / LABEL_HOP_S + 1e-9)


def num_label_frames(labels: Mapping[int, Sequence[SELDEvent]]) -> int:
    """Number of frames spanned by `labels` (last frame index + 1; 0 when empty)."""
    return max(labels, default=-1) + 1


def _as_event(event: Sequence) -> SELDEvent:
    """Accept SELDEvent or a plain (class, source, azimuth, elevation[, distance]) tuple."""
    if len(event) not in (4, 5):
        raise ValueError(
            f"An event is (class_idx, source_idx, azimuth, elevation[, distance]), got {len(event)} values: {event!r}."
        )
    return SELDEvent(*event)


def labels_have_distance(labels: Mapping[int, Sequence[SELDEvent]]) -> bool:
    """True when every event has a distance, False when none has; mixed labels raise ValueError."""
    flags = {_as_event(event).distance is not None for events in labels.values() for event in events}
    if len(flags) > 1:
        raise ValueError(
            "Some events have a distance and others do not; give every event a distance (2024 format) or none "
            "(2023 format)."
        )
    return flags == {True}


def _parse_int(text: str, what: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not a number.") from None
    if not value.is_integer():
        raise ValueError(f"{where}: {what} must be an integer, got {text!r}.")
    if value < 0:
        raise ValueError(f"{where}: {what} must be >= 0, got {text!r}.")
    return int(value)


def _parse_float(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not a number.") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {what} must be finite, got {text!r}.")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_row(fields: list[str], where: str, distance_unit: DistanceUnit, num_classes: int | None):
    n = len(fields)
    if n not in (4, 5, 6, 7):
        raise ValueError(
            f"{where}: expected 5 columns (frame, class, source, azimuth, elevation) or 6 (..., distance), "
            f"got {n}: {','.join(fields)!r}."
        )
    frame = _parse_int(fields[0], "frame", where)
    class_idx = _parse_int(fields[1], "class index", where)
    if num_classes is not None and class_idx >= num_classes:
        raise ValueError(f"{where}: class index {class_idx} out of range for {num_classes} classes.")
    source_idx = 0 if n == 4 else _parse_int(fields[2], "source index", where)
    distance = None
    if n == 7:
        xyz = np.array([_parse_float(f, name, where) for f, name in zip(fields[3:6], "xyz", strict=True)])
        if np.linalg.norm(xyz) < 1e-9:
            raise ValueError(f"{where}: Cartesian direction (0, 0, 0) has no direction.")
        az, el, _ = cartesian_to_spherical(xyz)
        azimuth, elevation = float(az), float(el)
        distance = _parse_float(fields[6], "distance", where)
    else:
        first_angle = 2 if n == 4 else 3
        azimuth = _parse_float(fields[first_angle], "azimuth", where)
        elevation = _parse_float(fields[first_angle + 1], "elevation", where)
        if n == 6:
            distance = _parse_float(fields[5], "distance", where)
    if distance is not None:
        distance /= _UNITS_PER_METRE[distance_unit]
    event = SELDEvent(class_idx, source_idx, azimuth, elevation, distance)
    _check_angles_and_distance(event, where)
    return frame, event


def _check_angles_and_distance(event: SELDEvent, where: str) -> None:
    if not -180.0 <= event.azimuth <= 180.0:
        raise ValueError(
            f"{where}: azimuth {event.azimuth} outside [-180, 180] degrees; wrap it with "
            "hf_spatial.conventions.wrap_azimuth."
        )
    if not -90.0 <= event.elevation <= 90.0:
        raise ValueError(f"{where}: elevation {event.elevation} outside [-90, 90] degrees.")
    if event.distance is not None and not (math.isfinite(event.distance) and event.distance >= 0):
        raise ValueError(f"{where}: distance must be finite and >= 0, got {event.distance}.")


def parse_dcase_csv(
    text: str, *, distance_unit: DistanceUnit = "m", num_classes: int | None = None, source: str = "<text>"
) -> FrameLabels:
    """Parse DCASE SELD CSV text into frame-wise labels (see the module docstring for the formats).

    A first line without any number is taken as a header and skipped; blank lines are ignored. Every row must have
    the same number of columns. `num_classes`, when given, bounds the class indices. `source` names the input
    in error messages. Raises ValueError naming the line of the first malformed row.
    """
    if distance_unit not in _UNITS_PER_METRE:
        raise ValueError(f"distance_unit must be one of {sorted(_UNITS_PER_METRE)}, got {distance_unit!r}.")
    labels: FrameLabels = {}
    num_columns = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        where = f"{source}:{line_no}"
        if line_no == 1 and not any(_is_number(field) for field in fields):
            continue
        if num_columns is not None and len(fields) != num_columns:
            raise ValueError(f"{where}: {len(fields)} columns where earlier rows have {num_columns}.")
        frame, event = _parse_row(fields, where, distance_unit, num_classes)
        num_columns = len(fields)
        labels.setdefault(frame, []).append(event)
    return dict(sorted(labels.items()))


def read_dcase_csv(
    path: str | os.PathLike, *, distance_unit: DistanceUnit = "m", num_classes: int | None = None
) -> FrameLabels:
    """Read a DCASE SELD CSV file into frame-wise labels (distances in metres; see `parse_dcase_csv`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DCASE CSV file not found: {path}")
    return parse_dcase_csv(
        path.read_text(encoding="utf-8"), distance_unit=distance_unit, num_classes=num_classes, source=str(path)
    )


def _format_number(value: float) -> str:
    # Integral values (all STARSS23 labels) are written as integers so real metadata round-trips byte for byte;
    # other values use repr, the shortest text that parses back to the same float.
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def format_dcase_csv(labels: Mapping[int, Sequence[SELDEvent]], *, distance_unit: DistanceUnit = "m") -> str:
    """Frame-wise labels -> DCASE CSV text: 6 columns when events have distances (2024), else 5 (2023).

    Frames are written in increasing order, events in the given order, distances in `distance_unit`.
    """
    if distance_unit not in _UNITS_PER_METRE:
        raise ValueError(f"distance_unit must be one of {sorted(_UNITS_PER_METRE)}, got {distance_unit!r}.")
    with_distance = labels_have_distance(labels)
    lines = []
    for frame in sorted(labels):
        if int(frame) != frame or frame < 0:
            raise ValueError(f"Frame indices must be integers >= 0, got {frame!r}.")
        for event in map(_as_event, labels[frame]):
            if event.class_idx < 0 or event.source_idx < 0:
                raise ValueError(f"frame {frame}: class and source indices must be >= 0, got {event!r}.")
            _check_angles_and_distance(event, f"frame {frame}")
            fields = [
                str(int(frame)),
                str(int(event.class_idx)),
                str(int(event.source_idx)),
                _format_number(event.azimuth),
                _format_number(event.elevation),
            ]
            if with_distance:
                distance = event.distance
                if distance_unit != "m":
                    # Undo the float noise of the unit change (4.02 m * 100 = 401.99999999999994 cm).
                    distance = round(distance * _UNITS_PER_METRE[distance_unit], 9)
                fields.append(_format_number(distance))
            lines.append(",".join(fields))
    return "".join(line + "\n" for line in lines)


def write_dcase_csv(
    path: str | os.PathLike, labels: Mapping[int, Sequence[SELDEvent]], *, distance_unit: DistanceUnit = "m"
) -> Path:
    """Write frame-wise labels as a DCASE CSV file (atomically: a reader never sees a partial file)."""
    path = Path(path)
    text = format_dcase_csv(labels, distance_unit=distance_unit)
    write_text_atomic(path, text)
    return path


def rename_classes(
    labels: Mapping[int, Sequence[SELDEvent]], from_names: Sequence[str], to_names: Sequence[str]
) -> FrameLabels:
    """Re-index the classes of `labels` from the class list `from_names` to `to_names` (matched by name)."""
    if list(from_names) == list(to_names):
        return {frame: [_as_event(event) for event in events] for frame, events in labels.items()}
    index = {name: i for i, name in enumerate(to_names)}
    renamed: FrameLabels = {}
    for frame, events in labels.items():
        for event in map(_as_event, events):
            if not 0 <= event.class_idx < len(from_names):
                raise ValueError(
                    f"frame {frame}: class index {event.class_idx} out of range for {len(from_names)} classes."
                )
            name = from_names[event.class_idx]
            if name not in index:
                raise ValueError(
                    f"Class {name!r} of the labels is not among the model's classes {list(to_names)}; set the "
                    "model's `spatial_class_names` (encoder stage: `class_names`) to cover the dataset's classes."
                )
            renamed.setdefault(frame, []).append(event._replace(class_idx=index[name]))
    return renamed
