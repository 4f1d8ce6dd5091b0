"""Sound event localisation and detection (SELD) targets from `SceneSpec`, and the permutation-invariant slot loss.

The spatial encoder predicts up to S source slots per clip (presence, class, direction, distance, activity per
25 Hz token) and global count / RT60. Slots are unordered, so each clip's slots are matched to its sources by
the Hungarian algorithm on the same terms the loss uses; unmatched slots learn "absent".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.conventions import unit_vector

TOKEN_RATE_HZ = 25.0  # Qwen2-Audio audio tokens per second; the spatial map is aligned to them


def scene_targets(scene: SceneSpec, class_names: list[str], num_slots: int, num_tokens: int) -> dict[str, np.ndarray]:
    """Per-clip SELD targets of one scene, padded to `num_slots` sources (presence 0 on padding)."""
    if len(scene.sources) > num_slots:
        raise ValueError(
            f"Scene {scene.scene_id} has {len(scene.sources)} sources but the encoder has {num_slots} slots."
        )
    index = {name: i for i, name in enumerate(class_names)}
    targets = {
        "presence": np.zeros(num_slots, np.float32),
        "class_index": np.full(num_slots, -100, np.int64),
        "direction": np.zeros((num_slots, 3), np.float32),
        "distance": np.ones(num_slots, np.float32),
        "activity": np.zeros((num_slots, num_tokens), np.float32),
        "count": np.int64(len(scene.sources)),
        "rt60": np.float32(scene.room.rt60),
    }
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


def match_slots(
    outputs, targets: dict[str, torch.Tensor], weights: SlotLossWeights
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Hungarian assignment of slots to sources per clip: a list of (slot indices, source indices)."""
    with torch.no_grad():
        class_cost = -F.log_softmax(outputs.slot_class_logits.float(), dim=-1)  # (B, S, C)
        cosine = torch.einsum("bsk,btk->bst", outputs.slot_direction.float(), targets["direction"].float())
        log_distance = torch.log(outputs.slot_distance.float().clamp_min(1e-3))
        distance_cost = (log_distance[:, :, None] - torch.log(targets["distance"].float())[:, None, :]).abs()
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


def slot_loss(
    outputs, targets: dict[str, torch.Tensor], weights: SlotLossWeights | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Permutation-invariant SELD loss of a `SpatialEncoderOutput` against `scene_targets` batched as tensors."""
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
    parts = {
        "presence": F.binary_cross_entropy_with_logits(outputs.slot_presence_logits, presence_target),
        "class": F.cross_entropy(outputs.slot_class_logits[batch, slots], targets["class_index"][batch, sources]),
        "direction": (
            1.0 - (outputs.slot_direction[batch, slots] * targets["direction"][batch, sources]).sum(-1)
        ).mean(),
        "distance": (
            torch.log(outputs.slot_distance[batch, slots].clamp_min(1e-3))
            - torch.log(targets["distance"][batch, sources])
        )
        .abs()
        .mean(),
        "activity": (
            F.binary_cross_entropy_with_logits(activity_logits, activity_target, reduction="none") * token_mask
        ).sum()
        / token_mask.sum().clamp_min(1.0),
        "count": F.cross_entropy(outputs.count_logits, targets["count"]),
        "rt60": (outputs.rt60 - targets["rt60"]).abs().mean(),
    }
    total = (
        weights.presence * parts["presence"]
        + weights.class_ * parts["class"]
        + weights.direction * parts["direction"]
        + weights.distance * parts["distance"]
        + weights.activity * parts["activity"]
        + weights.count * parts["count"]
        + weights.rt60 * parts["rt60"]
    )
    return total, {name: float(value.detach()) for name, value in parts.items()}
