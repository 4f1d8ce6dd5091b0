"""DCASE frame labels of the spatial encoder: references from a `SceneSpec` (or a converted recording's
`dcase_labels`) and predictions from its slots.

Slots with presence probability >= 0.5 are detections (class = argmax, direction and distance per clip); a
detection is active in a 100 ms label frame when the mean activity probability of the 25 Hz tokens whose centres
fall in that frame is >= 0.5. References mark a source active in every frame whose centre lies in
[onset, offset), the rule the encoder's training targets use for tokens (`training.seld_targets`). Rows without a
`SceneSpec` (real recordings converted by `hf-spatial convert starss23`) are referenced by their `dcase_labels`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import cartesian_to_spherical
from hf_spatial.data.dcase_csv import (
    LABEL_HOP_S,
    FrameLabels,
    SELDEvent,
    parse_dcase_csv,
    rename_classes,
    time_to_frame,
)

PRESENCE_THRESHOLD = 0.5
ACTIVITY_THRESHOLD = 0.5


def reference_labels(scene: SceneSpec, class_names: list[str]) -> FrameLabels:
    """Frame-wise DCASE labels (metres) of a scene's sources."""
    index = {name: i for i, name in enumerate(class_names)}
    labels: FrameLabels = {}
    num_frames = round(scene.duration / LABEL_HOP_S)
    centres = (np.arange(num_frames) + 0.5) * LABEL_HOP_S
    for source_index, source in enumerate(scene.sources):
        if source.label not in index:
            raise ValueError(
                f"Scene {scene.scene_id}: class {source.label!r} is not among the encoder's classes {class_names}; "
                "evaluate a model whose `spatial_class_names` cover the dataset's labels."
            )
        event = SELDEvent(index[source.label], source_index, source.azimuth, source.elevation, source.distance)
        for frame in np.flatnonzero((centres >= source.onset) & (centres < source.offset)):
            labels.setdefault(int(frame), []).append(event)
    return dict(sorted(labels.items()))


def row_reference_labels(
    row: dict[str, Any], class_names: list[str], dcase_class_names: list[str] | None = None
) -> FrameLabels:
    """Frame-wise labels of a dataset row, class indices into `class_names`: from its `SceneSpec` when it has one,
    else from its `dcase_labels` (class indices into `dcase_class_names`, by default `class_names`)."""
    if row.get("scene"):
        return reference_labels(SceneSpec.from_json(row["scene"]), class_names)
    if row.get("dcase_labels") is None:
        raise ValueError(
            f"Row {row.get('scene_id')!r} has neither a `scene` nor `dcase_labels`; expected a folder written by "
            "`hf-spatial simulate` or `hf-spatial convert starss23`."
        )
    labels = parse_dcase_csv(row["dcase_labels"], source=f"dcase_labels of {row.get('scene_id')}")
    return rename_classes(labels, dcase_class_names or class_names, class_names)


def predicted_labels(outputs: Any, index: int, token_rate_hz: float) -> FrameLabels:
    """Frame-wise DCASE labels of clip `index` from `SpatialEncoderOutput`."""
    import torch

    presence = torch.sigmoid(outputs.slot_presence_logits[index]).float().cpu().numpy()
    activity = torch.sigmoid(outputs.slot_activity_logits[index]).float().cpu().numpy()  # (S, N)
    valid = outputs.attention_mask[index].bool().cpu().numpy()
    classes = outputs.slot_class_logits[index].argmax(-1).cpu().numpy()
    directions = outputs.slot_direction[index].float().cpu().numpy()
    distances = outputs.slot_distance[index].float().cpu().numpy()
    token_frames = np.array([time_to_frame((t + 0.5) / token_rate_hz) for t in range(activity.shape[1])])
    labels: FrameLabels = {}
    for slot in np.flatnonzero(presence >= PRESENCE_THRESHOLD):
        azimuth, elevation, _ = cartesian_to_spherical(directions[slot])
        event = SELDEvent(int(classes[slot]), int(slot), float(azimuth), float(elevation), float(distances[slot]))
        for frame in np.unique(token_frames[valid]):
            tokens = (token_frames == frame) & valid
            if activity[slot, tokens].mean() >= ACTIVITY_THRESHOLD:
                labels.setdefault(int(frame), []).append(event)
    return dict(sorted(labels.items()))
