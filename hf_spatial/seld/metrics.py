"""DCASE SELD metrics: the 2023 (ER20, F20, LE_CD, LR_CD) and 2024 (F20, DOAE, RDE) definitions.

Both reproduce the official task 3 scorers on frame-wise labels (`hf_spatial.data.dcase_csv.FrameLabels`): 2023 =
`SELDMetrics` of sharathadavanne/seld-dcase2023 (kept as `SELDMetricsSegmentLevel` in the 2024 baseline), 2024 =
`SELDMetrics` of partha2409/DCASE2024_seld_baseline with its default parameters (macro average, lad_doa_thresh 20,
lad_reldist_thresh 1.0, lad_dist_thresh inf, frame-wise). `tests/data/dcase_official_cases.json` holds cases scored
by the unmodified official code and `tests/test_seld_metrics.py` checks that these functions give the same numbers.
Counts accumulate over all files before the scores are computed; scores are macro averages over all
`num_classes` classes, absent classes included (over the classes with any reference or prediction when
`ignore_absent_classes=True`, which is not the official rule).

Clip length (the official rules, which look like accidents but decide leaderboard numbers): the scorers take the
largest reference frame index m of a file as its length. DCASE 2024 scores frames 0..m-1, so the last reference
frame is dropped; DCASE 2023 scores ceil(m / 10) whole 1 s segments, i.e. frames 0..10 ceil(m / 10) - 1. Predicted
frames past that are ignored, and a file whose references are all in frame 0 (or that has none) scores nothing.
Passing `num_frames` instead scores exactly the frames 0..num_frames-1 of each clip, so that every false alarm of a
clip of known length counts: not the official rule (say so when reporting such numbers).

Matching: in each frame, the references and predictions of one class are paired by the Hungarian algorithm on
their angular distance; extra references are false negatives and extra predictions false positives. The error
rate counts, per frame (2024) or segment (2023), S = min(FP, FN), D = max(0, FN - FP), I = max(0, FP - FN) over
all classes: ER = (S + D + I) / number of references (the scorers divide by eps when there is no reference; we
return 0, or infinity when there are errors).

DCASE 2023 (`seld_metrics_2023`): evaluated in 1 s segments of 10 label frames. Within a segment, a class has
as many reference (prediction) tracks as its largest number of simultaneous events in one frame. Each reference
track (the reference's position in its frame's list, as in the scorer) gets the mean angular error of its
frame-wise matches; that counts as a localisation TP (LE_CD, LR_CD) and as a detection TP if <= 20 deg, else as
a spatial FP. More predicted than reference tracks adds FPs, fewer adds FNs; a class active on both sides but
never in the same frame adds the number of predicted tracks as FNs (the scorer's rule). F = TP / (TP +
FP_spatial + (FP + FN) / 2); LE_CD = mean matched error (180 deg for a class without any match); LR_CD =
matched / (matched + FN). SELD score = mean over classes of mean(ER, 1 - F, LE_CD / 180, 1 - LR_CD).

DCASE 2024 (`seld_metrics_2024`): frame-wise at 100 ms, no segments. A matched pair is a detection TP only when
its angular error is <= 20 deg AND its relative distance error |d_pred - d_ref| / d_ref is <= 1.0 (failing
either makes it a spatial FP). DOAE and RDE average over all same-class matched pairs (without the thresholds);
a class without a match has NaN DOAE / RDE and is left out of their macro average (nanmean). SELD score = per
class nanmean(1 - F, DOAE / 180, RDE), averaged over classes. The 2024 scorer measures angles between unit vectors
normalised by sqrt(|v|^2 + 1e-10), so identical directions are 8.1e-4 deg apart and an error of exactly 20 deg
fails the threshold; `_angles_2024` does the same. Its reference files give distances in centimetres, its
prediction files in metres (`evaluate_csv_folders`' defaults).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from hf_spatial.atomic import write_json_atomic, write_text_atomic
from hf_spatial.conventions import angular_distance, unit_vector
from hf_spatial.data.dcase_csv import (
    LABEL_FRAMES_PER_SECOND,
    DistanceUnit,
    FrameLabels,
    SELDEvent,
    read_dcase_csv,
)

__all__ = [
    "SEGMENT_FRAMES",
    "SELDMetrics2023",
    "SELDMetrics2024",
    "evaluate_csv_folders",
    "format_seld_markdown",
    "seld_metrics_2023",
    "seld_metrics_2024",
]

SEGMENT_FRAMES = LABEL_FRAMES_PER_SECOND  # DCASE 2023 aggregates 1 s segments of 10 label frames
_EPS = float(np.finfo(float).eps)
_NORM_EPS_2024 = 1e-10  # added under the square root of the DCASE 2024 scorer's vector norms


@dataclass(frozen=True)
class SELDMetrics2023:
    """DCASE 2023 task 3 metrics (macro averages). Angles in degrees; `per_class` holds one dict per class."""

    error_rate: float
    f_score: float
    localization_error: float
    localization_recall: float
    seld_score: float
    num_references: int
    num_averaged_classes: int
    doa_threshold: float
    official_clip_length: bool
    per_class: list[dict[str, float]] = field(repr=False)

    edition = 2023
    headline = (
        ("ER20", "error_rate"),
        ("F20", "f_score"),
        ("LE_CD (deg)", "localization_error"),
        ("LR_CD", "localization_recall"),
        ("SELD score", "seld_score"),
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""
        return _json_ready({"edition": self.edition, **asdict(self)})


@dataclass(frozen=True)
class SELDMetrics2024:
    """DCASE 2024 task 3 metrics (macro averages; DOAE/RDE over classes with matches, NaN when none has any)."""

    f_score: float
    doa_error: float
    relative_distance_error: float
    distance_error: float
    error_rate: float
    localization_recall: float
    seld_score: float
    num_references: int
    num_averaged_classes: int
    doa_threshold: float
    relative_distance_threshold: float
    distance_threshold: float
    official_clip_length: bool
    per_class: list[dict[str, float]] = field(repr=False)

    edition = 2024
    headline = (
        ("F20", "f_score"),
        ("DOAE (deg)", "doa_error"),
        ("RDE", "relative_distance_error"),
        ("SELD score", "seld_score"),
        ("Distance error (m)", "distance_error"),
        ("ER20", "error_rate"),
        ("LR", "localization_recall"),
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and infinity become None)."""
        return _json_ready({"edition": self.edition, **asdict(self)})


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _Counts:
    """Per-class accumulators shared by both editions (names follow the DCASE baselines' meaning)."""

    def __init__(self, num_classes: int):
        zeros = lambda: np.zeros(num_classes)  # noqa: E731
        self.tp, self.fp, self.fp_spatial, self.fn = zeros(), zeros(), zeros(), zeros()
        self.num_ref, self.num_pred = zeros(), zeros()
        # Class-aware localisation: matched reference-prediction pairs (TP_CD) and unmatched references (FN_CD).
        self.matched, self.matched_fn = zeros(), zeros()
        self.angle_sum, self.distance_sum, self.rel_distance_sum = zeros(), zeros(), zeros()
        self.substitutions = self.deletions = self.insertions = 0

    def close_block(self, fp: int, fn: int) -> None:
        """Error-rate bookkeeping at the end of a frame (2024) or segment (2023)."""
        self.substitutions += min(fp, fn)
        self.deletions += max(0, fn - fp)
        self.insertions += max(0, fp - fn)

    def error_rate(self) -> float:
        errors = self.substitutions + self.deletions + self.insertions
        total = self.num_ref.sum()
        if total == 0:  # the baselines divide by eps here; a scene without references has no finite error rate
            return 0.0 if errors == 0 else math.inf
        return float(errors / total)

    def f_scores(self) -> np.ndarray:
        return _safe_ratio(self.tp, self.tp + self.fp_spatial + 0.5 * (self.fp + self.fn))

    def localization_recalls(self) -> np.ndarray:
        return _safe_ratio(self.matched, self.matched + self.matched_fn)

    def mean_over_matches(self, total: np.ndarray, no_match: float) -> np.ndarray:
        return np.where(self.matched > 0, total / np.maximum(self.matched, 1), no_match)

    def averaged_classes(self, ignore_absent_classes: bool) -> np.ndarray:
        """Mask of the classes entering the macro averages."""
        if ignore_absent_classes:
            return (self.num_ref > 0) | (self.num_pred > 0)
        return np.ones_like(self.num_ref, dtype=bool)


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator with 0 where the denominator is 0 (as the baselines' `/ (x + eps)`)."""
    return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0)


AngleMatrix = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _angles_2023(ref: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Angles in degrees between (azimuth, elevation) rows of `ref` and of `pred`: (len(ref), len(pred)).

    Exact (`conventions.angular_distance`); the DCASE 2023 scorer's arccos is up to 1.5e-6 deg off near 0 deg.
    """
    return np.asarray(angular_distance(ref[:, None, 0], ref[:, None, 1], pred[None, :, 0], pred[None, :, 1]))


def _angles_2024(ref: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """As `_angles_2023`, with the DCASE 2024 scorer's normalisation (see the module docstring)."""
    u, v = unit_vector(ref[:, 0], ref[:, 1]), unit_vector(pred[:, 0], pred[:, 1])
    u = u / np.sqrt(np.sum(u * u, axis=-1, keepdims=True) + _NORM_EPS_2024)
    v = v / np.sqrt(np.sum(v * v, axis=-1, keepdims=True) + _NORM_EPS_2024)
    return np.rad2deg(np.arccos(np.clip(u @ v.T, -1.0, 1.0)))


def _hungarian(references: Sequence[SELDEvent], predictions: Sequence[SELDEvent], angles: AngleMatrix):
    """Pair references with predictions minimising the total angular distance: (rows, cols, angles in deg)."""
    ref = np.array([(event.azimuth, event.elevation) for event in references])
    pred = np.array([(event.azimuth, event.elevation) for event in predictions])
    cost = angles(ref, pred)
    rows, cols = linear_sum_assignment(cost)
    return rows, cols, cost[rows, cols]


def _by_class(events: Sequence[SELDEvent]) -> dict[int, list[SELDEvent]]:
    grouped: dict[int, list[SELDEvent]] = defaultdict(list)
    for event in events:
        grouped[event.class_idx].append(event)
    return grouped


def _check_labels(labels: FrameLabels, num_classes: int, need_distance: bool, role: str) -> None:
    """Class indices in range (and distances for 2024) in every frame, also the frames the scorer ignores."""
    for events in labels.values():
        for event in events:
            if not 0 <= event.class_idx < num_classes:
                raise ValueError(
                    f"Class index {event.class_idx} out of range for num_classes={num_classes}; pass the dataset's "
                    "number of classes (13 for STARSS23)."
                )
            if need_distance and event.distance is None:
                raise ValueError(
                    f"DCASE 2024 metrics need a distance for every {role} event; use the 6-column CSV format "
                    "(frame, class, source, azimuth, elevation, distance) or evaluate with edition=2023."
                )


def _segment_by_class(labels: FrameLabels, start: int, stop: int):
    """{class: {frame: [events]}} for the frames [start, stop) of one segment."""
    segment: dict[int, dict[int, list[SELDEvent]]] = defaultdict(dict)
    for frame in range(start, stop):
        for class_idx, events in _by_class(labels.get(frame, ())).items():
            segment[class_idx][frame] = events
    return segment


def _accumulate_2023(counts: _Counts, ref: FrameLabels, pred: FrameLabels, num_frames: int, doa_threshold: float):
    for start in range(0, num_frames, SEGMENT_FRAMES):
        stop = min(start + SEGMENT_FRAMES, num_frames)
        ref_segment = _segment_by_class(ref, start, stop)
        pred_segment = _segment_by_class(pred, start, stop)
        seg_fp = seg_fn = 0
        for c in set(ref_segment) | set(pred_segment):
            ref_frames, pred_frames = ref_segment.get(c, {}), pred_segment.get(c, {})
            num_ref = max(map(len, ref_frames.values()), default=0)
            num_pred = max(map(len, pred_frames.values()), default=0)
            counts.num_ref[c] += num_ref
            counts.num_pred[c] += num_pred
            if num_ref and num_pred:
                # Errors of each reference track (its position in the frame's list) over the frames where both
                # the reference and the prediction have this class.
                track_errors: dict[int, list[float]] = defaultdict(list)
                for frame, ref_events in ref_frames.items():
                    if frame in pred_frames:
                        rows, _, angles = _hungarian(ref_events, pred_frames[frame], _angles_2023)
                        for row, angle in zip(rows, angles, strict=True):
                            track_errors[int(row)].append(float(angle))
                if not track_errors:
                    # Active in the segment but never in the same frame. The baseline counts the number of
                    # predicted tracks as false negatives (and no false positive); kept for comparable scores.
                    counts.fn[c] += num_pred
                    counts.matched_fn[c] += num_pred
                    seg_fn += num_pred
                    continue
                for errors in track_errors.values():
                    mean_error = float(np.mean(errors))
                    counts.angle_sum[c] += mean_error
                    counts.matched[c] += 1
                    if mean_error <= doa_threshold:
                        counts.tp[c] += 1
                    else:
                        counts.fp_spatial[c] += 1
                        seg_fp += 1
                if num_pred > num_ref:
                    counts.fp[c] += num_pred - num_ref
                    seg_fp += num_pred - num_ref
                elif num_ref > num_pred:
                    counts.fn[c] += num_ref - num_pred
                    counts.matched_fn[c] += num_ref - num_pred
                    seg_fn += num_ref - num_pred
            elif num_ref:
                counts.fn[c] += num_ref
                counts.matched_fn[c] += num_ref
                seg_fn += num_ref
            else:
                counts.fp[c] += num_pred
                seg_fp += num_pred
        counts.close_block(seg_fp, seg_fn)


def _distances(events: Sequence[SELDEvent], indices: np.ndarray) -> np.ndarray:
    return np.asarray([events[i].distance for i in indices], dtype=np.float64)


def _accumulate_2024(
    counts: _Counts,
    ref: FrameLabels,
    pred: FrameLabels,
    num_frames: int,
    doa_threshold: float,
    relative_distance_threshold: float,
    distance_threshold: float,
):
    for frame in range(num_frames):
        ref_classes = _by_class(ref.get(frame, ()))
        pred_classes = _by_class(pred.get(frame, ()))
        frame_fp = frame_fn = 0
        for c in set(ref_classes) | set(pred_classes):
            refs, preds = ref_classes.get(c, []), pred_classes.get(c, [])
            counts.num_ref[c] += len(refs)
            counts.num_pred[c] += len(preds)
            if refs and preds:
                rows, cols, angles = _hungarian(refs, preds, _angles_2024)
                ref_distance = _distances(refs, rows)
                distance_errors = np.abs(_distances(preds, cols) - ref_distance)
                relative_errors = distance_errors / (ref_distance + _EPS)
                # A matched pair is a TP only within every threshold; failing any one makes it a spatial FP.
                missed = int(
                    np.sum(
                        (angles > doa_threshold)
                        | (distance_errors > distance_threshold)
                        | (relative_errors > relative_distance_threshold)
                    )
                )
                extra_pred, extra_ref = max(0, len(preds) - len(refs)), max(0, len(refs) - len(preds))
                counts.tp[c] += len(rows) - missed
                counts.fp_spatial[c] += missed
                counts.fp[c] += extra_pred
                counts.fn[c] += extra_ref
                counts.matched[c] += len(rows)
                counts.matched_fn[c] += extra_ref
                counts.angle_sum[c] += angles.sum()
                counts.distance_sum[c] += distance_errors.sum()
                counts.rel_distance_sum[c] += relative_errors.sum()
                frame_fp += missed + extra_pred
                frame_fn += extra_ref
            elif refs:
                counts.fn[c] += len(refs)
                counts.matched_fn[c] += len(refs)
                frame_fn += len(refs)
            else:
                counts.fp[c] += len(preds)
                frame_fp += len(preds)
        counts.close_block(frame_fp, frame_fn)


def official_num_frames(reference: FrameLabels, edition: int) -> int:
    """Number of leading label frames of a clip that the official DCASE `edition` scorer scores (module docstring):
    the largest reference frame index m for 2024, 10 ceil(m / 10) for 2023, 0 for a clip without references."""
    if edition not in _EDITIONS:
        raise ValueError(f"Unknown DCASE edition {edition!r}; choose one of {sorted(_EDITIONS)}.")
    last = max(reference, default=0)
    return last if edition == 2024 else SEGMENT_FRAMES * math.ceil(last / SEGMENT_FRAMES)


def _pairs(
    references, predictions, num_frames, edition: int, num_classes: int
) -> list[tuple[FrameLabels, FrameLabels, int]]:
    """Normalise one (reference, prediction) pair or parallel sequences of them, with each clip's scored frame count
    (`num_frames`, or the official scorer's rule when it is None)."""
    if isinstance(references, Mapping) != isinstance(predictions, Mapping):
        raise ValueError("Pass one reference and one prediction, or two sequences of the same length.")
    if isinstance(references, Mapping):
        references, predictions = [references], [predictions]
    if len(references) != len(predictions):
        raise ValueError(f"Got {len(references)} references but {len(predictions)} predictions.")
    if num_frames is None or isinstance(num_frames, int):
        num_frames = [num_frames] * len(references)
    if len(num_frames) != len(references):
        raise ValueError(f"Got {len(num_frames)} frame counts for {len(references)} clips.")
    pairs = []
    for ref, pred, frames in zip(references, predictions, num_frames, strict=True):
        _check_labels(ref, num_classes, edition == 2024, "reference")
        _check_labels(pred, num_classes, edition == 2024, "predicted")
        pairs.append((ref, pred, official_num_frames(ref, edition) if frames is None else frames))
    return pairs


def _per_class_rows(counts: _Counts, columns: dict[str, np.ndarray]) -> list[dict[str, float]]:
    return [
        {
            "class_idx": c,
            "num_references": int(counts.num_ref[c]),
            "num_predictions": int(counts.num_pred[c]),
            **{name: float(values[c]) for name, values in columns.items()},
        }
        for c in range(len(counts.tp))
    ]


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Mean ignoring NaN; NaN (without a warning) where everything is NaN."""
    valid = ~np.isnan(values)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    count = valid.sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def seld_metrics_2023(
    references: FrameLabels | Sequence[FrameLabels],
    predictions: FrameLabels | Sequence[FrameLabels],
    *,
    num_classes: int = 13,
    doa_threshold: float = 20.0,
    num_frames: int | Sequence[int] | None = None,
    ignore_absent_classes: bool = False,
) -> SELDMetrics2023:
    """DCASE 2023 SELD metrics (ER20, F20, LE_CD, LR_CD, SELD score) over one clip or parallel lists of clips.

    Labels are frame-wise at 100 ms (`read_dcase_csv` output). By default the numbers are the official scorer's,
    its clip-length rule included (module docstring); `num_frames` (each clip's length in label frames) scores
    whole clips instead, which is not the official rule. As in DCASE, the macro averages run over all
    `num_classes` classes, so a class with neither references nor predictions counts as F = 0, LE_CD = 180,
    LR_CD = 0; `ignore_absent_classes=True` leaves such classes out (for data sets that do not use every class).
    """
    counts = _Counts(num_classes)
    for ref, pred, frames in _pairs(references, predictions, num_frames, 2023, num_classes):
        _accumulate_2023(counts, ref, pred, frames, doa_threshold)
    error_rate = counts.error_rate()
    f_scores = counts.f_scores()
    errors = counts.mean_over_matches(counts.angle_sum, no_match=180.0)
    recalls = counts.localization_recalls()
    seld_scores = (error_rate + (1 - f_scores) + errors / 180 + (1 - recalls)) / 4
    averaged = counts.averaged_classes(ignore_absent_classes)
    return SELDMetrics2023(
        error_rate=error_rate,
        f_score=float(_nanmean(f_scores[averaged])),
        localization_error=float(_nanmean(errors[averaged])),
        localization_recall=float(_nanmean(recalls[averaged])),
        seld_score=float(_nanmean(seld_scores[averaged])),
        num_references=int(counts.num_ref.sum()),
        num_averaged_classes=int(averaged.sum()),
        doa_threshold=doa_threshold,
        official_clip_length=num_frames is None,
        per_class=_per_class_rows(
            counts,
            {
                "f_score": f_scores,
                "localization_error": errors,
                "localization_recall": recalls,
                "seld_score": seld_scores,
            },
        ),
    )


def seld_metrics_2024(
    references: FrameLabels | Sequence[FrameLabels],
    predictions: FrameLabels | Sequence[FrameLabels],
    *,
    num_classes: int = 13,
    doa_threshold: float = 20.0,
    relative_distance_threshold: float = 1.0,
    distance_threshold: float = math.inf,
    num_frames: int | Sequence[int] | None = None,
    ignore_absent_classes: bool = False,
) -> SELDMetrics2024:
    """DCASE 2024 SELD metrics (F20, DOAE, RDE, SELD score; also ER, LR and absolute distance error).

    Every event needs a distance in metres. `distance_threshold` (metres, infinite in DCASE 2024) is an optional
    absolute threshold applied like the relative one. Other arguments as in `seld_metrics_2023` (official numbers
    unless `num_frames` or `ignore_absent_classes` is given). Definitions: module docstring.
    """
    counts = _Counts(num_classes)
    for ref, pred, frames in _pairs(references, predictions, num_frames, 2024, num_classes):
        _accumulate_2024(counts, ref, pred, frames, doa_threshold, relative_distance_threshold, distance_threshold)
    f_scores = counts.f_scores()
    doa_errors = counts.mean_over_matches(counts.angle_sum, no_match=np.nan)
    distance_errors = counts.mean_over_matches(counts.distance_sum, no_match=np.nan)
    relative_errors = counts.mean_over_matches(counts.rel_distance_sum, no_match=np.nan)
    recalls = counts.localization_recalls()
    seld_scores = _nanmean(np.stack([1 - f_scores, doa_errors / 180, relative_errors]), axis=0)
    averaged = counts.averaged_classes(ignore_absent_classes)
    return SELDMetrics2024(
        f_score=float(_nanmean(f_scores[averaged])),
        doa_error=float(_nanmean(doa_errors[averaged])),
        relative_distance_error=float(_nanmean(relative_errors[averaged])),
        distance_error=float(_nanmean(distance_errors[averaged])),
        error_rate=counts.error_rate(),
        localization_recall=float(_nanmean(recalls[averaged])),
        seld_score=float(_nanmean(seld_scores[averaged])),
        num_references=int(counts.num_ref.sum()),
        num_averaged_classes=int(averaged.sum()),
        doa_threshold=doa_threshold,
        relative_distance_threshold=relative_distance_threshold,
        distance_threshold=distance_threshold,
        official_clip_length=num_frames is None,
        per_class=_per_class_rows(
            counts,
            {
                "f_score": f_scores,
                "doa_error": doa_errors,
                "relative_distance_error": relative_errors,
                "distance_error": distance_errors,
                "localization_recall": recalls,
                "seld_score": seld_scores,
            },
        ),
    )


_EDITIONS: dict[int, Callable[..., SELDMetrics2023 | SELDMetrics2024]] = {
    2023: seld_metrics_2023,
    2024: seld_metrics_2024,
}


def _format_value(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def format_seld_markdown(metrics: SELDMetrics2023 | SELDMetrics2024, class_names: Sequence[str] | None = None) -> str:
    """Markdown report: the headline metrics, then one row per class (n/a where a class has no match)."""
    num_classes = len(metrics.per_class)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"Got {len(class_names)} class names for {num_classes} classes.")
    if isinstance(metrics, SELDMetrics2024):
        setting = f"frame-wise (100 ms), relative distance threshold {metrics.relative_distance_threshold:g}"
    else:
        setting = f"1 s segments of {SEGMENT_FRAMES} frames"
    absent = sum(row["num_references"] == 0 and row["num_predictions"] == 0 for row in metrics.per_class)
    averaging = f"macro average over {metrics.num_averaged_classes} of {num_classes} classes"
    clip_length = (
        "clips scored up to their last reference frame, as the official scorer does"
        if metrics.official_clip_length
        else "whole clips of the given num_frames (not the official clip-length rule)"
    )
    if absent and metrics.num_averaged_classes == num_classes:
        averaging += (
            f"; {absent} class(es) without any reference or prediction count as misses, as in DCASE "
            "(ignore_absent_classes=True leaves them out)"
        )
    names = [name for name, _ in metrics.headline]
    keys = [key for _, key in metrics.headline]
    class_keys = [key for key in keys if key in metrics.per_class[0]] if metrics.per_class else []
    class_headers = [name for name, key in metrics.headline if key in class_keys]
    lines = [
        f"## DCASE {metrics.edition} SELD metrics",
        "",
        f"{metrics.num_references} reference events; DOA threshold {metrics.doa_threshold:g} deg, {setting}; "
        f"{averaging}; {clip_length}.",
        "",
        "| " + " | ".join(names) + " |",
        "|" + "---|" * len(names),
        "| " + " | ".join(_format_value(getattr(metrics, key)) for key in keys) + " |",
        "",
        "| Class | References | Predictions | " + " | ".join(class_headers) + " |",
        "|---|---|---|" + "---|" * len(class_keys),
    ]
    for row in metrics.per_class:
        name = class_names[row["class_idx"]] if class_names is not None else str(row["class_idx"])
        values = " | ".join(_format_value(row[key]) for key in class_keys)
        lines.append(f"| {name} | {row['num_references']} | {row['num_predictions']} | {values} |")
    return "\n".join(lines) + "\n"


def _csv_files(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{role.capitalize()} folder not found: {folder}")
    files: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.csv")):
        if path.name in files:
            raise ValueError(f"Two {role} files are named {path.name}: {files[path.name]} and {path}.")
        files[path.name] = path
    if not files:
        raise ValueError(f"No .csv files found in the {role} folder {folder}.")
    return files


def evaluate_csv_folders(
    ref_dir: str | os.PathLike,
    pred_dir: str | os.PathLike,
    edition: int = 2023,
    num_classes: int = 13,
    *,
    report_path: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    reference_distance_unit: DistanceUnit = "cm",
    prediction_distance_unit: DistanceUnit = "m",
    **metric_options: float,
) -> dict[str, Any]:
    """Score a folder of DCASE prediction CSVs against a folder of reference CSVs (matched by file name).

    Both folders are searched recursively (STARSS23 keeps its metadata in sub-folders such as dev-test-sony);
    every reference needs a prediction file of the same name (an empty file for a clip without detections: all its
    events are misses) and vice versa (the official scorers skip a reference without a prediction file). As in the
    official 2024 scorer, reference distances are read in centimetres (STARSS23's metadata) and predicted ones in
    metres. `metric_options` (e.g. doa_threshold, num_frames) go to `seld_metrics_2023` / `seld_metrics_2024`.

    Writes a markdown report to `report_path` (default: PRED_DIR/seld_metrics_{edition}.md) and the same
    results as JSON next to it; returns the results dict (the metrics, the files and the report paths).
    """
    if edition not in _EDITIONS:
        raise ValueError(f"Unknown DCASE edition {edition!r}; choose one of {sorted(_EDITIONS)}.")
    ref_dir, pred_dir = Path(ref_dir), Path(pred_dir)
    ref_files, pred_files = _csv_files(ref_dir, "reference"), _csv_files(pred_dir, "prediction")
    missing = sorted(set(ref_files) - set(pred_files))
    unexpected = sorted(set(pred_files) - set(ref_files))
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"no prediction for {len(missing)} reference file(s), e.g. {missing[:3]}")
        if unexpected:
            problems.append(f"no reference for {len(unexpected)} prediction file(s), e.g. {unexpected[:3]}")
        raise ValueError(
            f"Reference folder {ref_dir} and prediction folder {pred_dir} do not match: {'; '.join(problems)}. "
            "Write an empty CSV for a clip without detections."
        )
    names = sorted(ref_files)
    references = [
        read_dcase_csv(ref_files[name], distance_unit=reference_distance_unit, num_classes=num_classes)
        for name in names
    ]
    predictions = [
        read_dcase_csv(pred_files[name], distance_unit=prediction_distance_unit, num_classes=num_classes)
        for name in names
    ]
    metrics = _EDITIONS[edition](references, predictions, num_classes=num_classes, **metric_options)

    report_path = Path(report_path) if report_path is not None else pred_dir / f"seld_metrics_{edition}.md"
    json_path = report_path.with_suffix(".json")
    results = {
        "metrics": metrics.to_dict(),
        "reference_dir": str(ref_dir),
        "prediction_dir": str(pred_dir),
        "files": names,
        "class_names": list(class_names) if class_names is not None else None,
        "report_path": str(report_path),
        "json_path": str(json_path),
    }
    write_text_atomic(report_path, format_seld_markdown(metrics, class_names))
    write_json_atomic(json_path, results)
    return results
