"""Sound event localisation and detection (SELD) targets from `SceneSpec` or from DCASE frame labels, and the
permutation-invariant slot loss.

The spatial encoder predicts up to S source slots per clip (presence, class, direction, distance, activity per
25 Hz token) and global count / RT60. Slots are unordered, so each clip's slots are matched to its sources by
the Hungarian algorithm on the same terms the loss uses; unmatched slots learn "absent". Targets a clip's
metadata does not give (distance in 2023-format labels, RT60 of a real recording) are masked out of the loss
by `distance_mask` / `rt60_mask`. Besides the slots, a dense ACCDOA term trains the per-token, per-class
direction map that the slot directions read from (and that the language model sees through the projector).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import TOKEN_RATE_HZ, unit_vector
from hf_spatial.data.dcase_csv import FrameLabels, time_to_frame

logger = logging.getLogger(__name__)


def scene_targets(scene: SceneSpec, class_names: list[str], num_slots: int, num_tokens: int) -> dict[str, np.ndarray]:
    """Per-clip SELD targets of one scene, padded to `num_slots` sources (presence 0 on padding)."""
    if len(scene.sources) > num_slots:
        raise ValueError(
            f"Scene {scene.scene_id} has {len(scene.sources)} sources but the encoder has {num_slots} slots."
        )
    index = {name: i for i, name in enumerate(class_names)}
    targets = _empty_targets(num_slots, num_tokens)
    targets["count"] = np.int64(len(scene.sources))
    targets["rt60"] = np.float32(scene.room.rt60)
    token_times = (np.arange(num_tokens) + 0.5) / TOKEN_RATE_HZ
    for slot, source in enumerate(scene.sources):
        if source.label not in index:
            raise ValueError(
                f"Scene {scene.scene_id}: class {source.label!r} is not among the encoder's classes {class_names}; "
                "set `spatial_class_names` in the model config to the dataset's labels."
            )
        targets["presence"][slot] = 1.0
        targets["class_index"][slot] = index[source.label]
        targets["direction"][slot] = unit_vector(source.azimuth, source.elevation)
        targets["distance"][slot] = source.distance
        targets["activity"][slot] = (token_times >= source.onset) & (token_times < source.offset)
    return targets


def _empty_targets(num_slots: int, num_tokens: int) -> dict[str, np.ndarray]:
    return {
        "presence": np.zeros(num_slots, np.float32),
        "class_index": np.full(num_slots, -100, np.int64),
        "direction": np.zeros((num_slots, 3), np.float32),
        "distance": np.ones(num_slots, np.float32),  # neutral value on padding (log 1 = 0)
        "distance_mask": np.ones(num_slots, np.float32),
        "activity": np.zeros((num_slots, num_tokens), np.float32),
        "count": np.int64(0),
        "rt60": np.float32(0.0),
        "rt60_mask": np.float32(1.0),
    }


def dcase_targets(
    labels: FrameLabels, class_names: list[str], num_slots: int, num_tokens: int
) -> dict[str, np.ndarray]:
    """Per-clip SELD targets from DCASE frame labels (class indices into `class_names`), like `scene_targets`.

    A source is a (class, source index) track. Its direction is the normalised mean unit vector over its active
    frames and its distance the mean distance (masked out when the labels have none): one value per clip, as the
    slot heads predict, which summarises a moving source by its average position. Activity per 25 Hz token is the
    activity of the 100 ms frame holding the token's centre. A clip with more tracks than slots keeps the
    `num_slots` longest-active ones; `count` is the number of tracks, capped at `num_slots`. RT60 is unknown
    (`rt60_mask` 0).
    """
    tracks: dict[tuple[int, int], list] = {}
    for frame, events in sorted(labels.items()):
        for event in events:
            if not 0 <= event.class_idx < len(class_names):
                raise ValueError(
                    f"DCASE label class index {event.class_idx} out of range for the encoder's {len(class_names)} "
                    f"classes {class_names}."
                )
            tracks.setdefault((event.class_idx, event.source_idx), []).append((frame, event))
    if len(tracks) > num_slots:
        by_length = sorted(tracks, key=lambda key: (-len({frame for frame, _ in tracks[key]}), key))
        logger.debug(
            "%d sound event tracks but %d slots: keeping the %d longest-active, dropping %s",
            len(tracks), num_slots, num_slots, by_length[num_slots:],
        )  # fmt: skip
        tracks = {key: tracks[key] for key in by_length[:num_slots]}
    targets = _empty_targets(num_slots, num_tokens)
    targets["count"] = np.int64(len(tracks))
    targets["rt60_mask"] = np.float32(0.0)
    token_frames = np.array([time_to_frame((t + 0.5) / TOKEN_RATE_HZ) for t in range(num_tokens)])
    # Slots in order of first activity (then class, source): deterministic; the loss is permutation-invariant.
    for slot, key in enumerate(sorted(tracks, key=lambda key: (tracks[key][0][0], key))):
        frames = sorted({frame for frame, _ in tracks[key]})
        events = [event for _, event in tracks[key]]
        directions = unit_vector(np.array([e.azimuth for e in events]), np.array([e.elevation for e in events]))
        mean = directions.mean(axis=0)
        norm = np.linalg.norm(mean)
        targets["presence"][slot] = 1.0
        targets["class_index"][slot] = key[0]
        # Opposite directions average to ~0 (a source crossing the listener); its first direction stands in.
        targets["direction"][slot] = mean / norm if norm > 1e-6 else directions[0]
        distances = [e.distance for e in events]
        if all(distance is not None and distance > 0 for distance in distances):
            targets["distance"][slot] = float(np.mean(distances))
        else:
            targets["distance_mask"][slot] = 0.0
        targets["activity"][slot] = np.isin(token_frames, frames)
    return targets


@dataclass
class SlotLossWeights:
    """Weights of the SELD loss terms (also used as the matching cost)."""

    presence: float = 1.0
    class_: float = 1.0
    direction: float = 2.0
    distance: float = 1.0
    activity: float = 0.5
    count: float = 0.5
    rt60: float = 0.5
    accdoa: float = 1.0


def match_slots(
    outputs, targets: dict[str, torch.Tensor], weights: SlotLossWeights
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Hungarian assignment of slots to sources per clip: a list of (slot indices, source indices)."""
    with torch.no_grad():
        class_cost = -F.log_softmax(outputs.slot_class_logits.float(), dim=-1)  # (B, S, C)
        cosine = torch.einsum("bsk,btk->bst", outputs.slot_direction.float(), targets["direction"].float())
        log_distance = torch.log(outputs.slot_distance.float().clamp_min(1e-3))
        distance_cost = (log_distance[:, :, None] - torch.log(targets["distance"].float())[:, None, :]).abs()
        distance_cost = distance_cost * _distance_mask(targets).float()[:, None, :]
        presence_cost = -F.logsigmoid(outputs.slot_presence_logits.float())[:, :, None]
        matches = []
        for b in range(cosine.shape[0]):
            sources = np.flatnonzero(targets["presence"][b].cpu().numpy() > 0)
            classes = targets["class_index"][b, sources]
            cost = (
                weights.class_ * class_cost[b][:, classes]
                + weights.direction * (1.0 - cosine[b][:, sources])
                + weights.distance * distance_cost[b][:, sources]
                + weights.presence * presence_cost[b]
            )
            slot_indices, source_positions = linear_sum_assignment(cost.cpu().numpy())
            matches.append((slot_indices, sources[source_positions]))
    return matches


def accdoa_targets(targets: dict[str, torch.Tensor], num_classes: int, num_tokens: int) -> torch.Tensor:
    """Dense ACCDOA targets `(batch, tokens, classes, 3)`: each class's unit direction on the tokens where it is
    active, zero elsewhere (two overlapping sources of one class: the direction of their sum)."""
    present = (targets["presence"] > 0).to(targets["direction"].dtype)
    one_hot = F.one_hot(targets["class_index"].clamp_min(0), num_classes).to(present.dtype) * present[..., None]
    activity = targets["activity"][:, :, :num_tokens].to(present.dtype)
    summed = torch.einsum("bsn,bsc,bsx->bncx", activity, one_hot, targets["direction"].to(present.dtype))
    return summed / summed.norm(dim=-1, keepdim=True).clamp_min(1.0)


def _distance_mask(targets: dict[str, torch.Tensor]) -> torch.Tensor:
    mask = targets.get("distance_mask")
    return torch.ones_like(targets["distance"]) if mask is None else mask


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def slot_loss(
    outputs, targets: dict[str, torch.Tensor], weights: SlotLossWeights | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Permutation-invariant SELD loss of a `SpatialEncoderOutput` against `scene_targets` / `dcase_targets`
    batched as tensors. Distances and RT60s whose mask is 0 do not count (missing masks mean all known)."""
    weights = weights or SlotLossWeights()
    matches = match_slots(outputs, targets, weights)
    batch = torch.cat([torch.full((len(slots),), b, dtype=torch.long) for b, (slots, _) in enumerate(matches)])
    slots = torch.as_tensor(np.concatenate([slots for slots, _ in matches]), dtype=torch.long)
    sources = torch.as_tensor(np.concatenate([sources for _, sources in matches]), dtype=torch.long)

    presence_target = torch.zeros_like(outputs.slot_presence_logits)
    presence_target[batch, slots] = 1.0
    token_mask = outputs.attention_mask[batch].float()  # (M, N)
    activity_logits = outputs.slot_activity_logits[batch, slots]
    activity_target = targets["activity"][batch, sources][:, : activity_logits.shape[-1]]
    accdoa = outputs.token_accdoa
    accdoa_error = (accdoa - accdoa_targets(targets, accdoa.shape[2], accdoa.shape[1])).square().sum((-1, -2))
    parts = {
        "presence": F.binary_cross_entropy_with_logits(outputs.slot_presence_logits, presence_target),
        "class": F.cross_entropy(outputs.slot_class_logits[batch, slots], targets["class_index"][batch, sources]),
        "direction": (
            1.0 - (outputs.slot_direction[batch, slots] * targets["direction"][batch, sources]).sum(-1)
        ).mean(),
        "distance": _masked_mean(
            (
                torch.log(outputs.slot_distance[batch, slots].clamp_min(1e-3))
                - torch.log(targets["distance"][batch, sources])
            ).abs(),
            _distance_mask(targets)[batch, sources],
        ),
        "activity": (
            F.binary_cross_entropy_with_logits(activity_logits, activity_target, reduction="none") * token_mask
        ).sum()
        / token_mask.sum().clamp_min(1.0),
        "accdoa": _masked_mean(accdoa_error, outputs.attention_mask),
        "count": F.cross_entropy(outputs.count_logits, targets["count"]),
        "rt60": _masked_mean(
            (outputs.rt60 - targets["rt60"]).abs(), targets.get("rt60_mask", torch.ones_like(targets["rt60"]))
        ),
    }
    total = (
        weights.presence * parts["presence"]
        + weights.class_ * parts["class"]
        + weights.direction * parts["direction"]
        + weights.distance * parts["distance"]
        + weights.activity * parts["activity"]
        + weights.count * parts["count"]
        + weights.rt60 * parts["rt60"]
        + weights.accdoa * parts["accdoa"]
    )
    return total, {name: float(value.detach()) for name, value in parts.items()}
