"""SpatialQwenAudio: Qwen2-Audio with a spatial (FOA) encoder fused by a dense hybrid projector.

Copied next to checkpoints for `trust_remote_code` loading: imports only transformers, torch and its sibling
modules.

Architecture (one token per 25 Hz audio frame, no extra sequence length):
    W log-mel ──► audio_tower (Qwen2-Audio Whisper encoder) ──► multi_modal_projector (semantic expert) ──┐
    spatial features ──► spatial_encoder (CNN + Conformer, 25 Hz dense map + slot/global heads)          ├─► +
                         spatial_projector: direction, distance, room, count, fusion experts             │
                         concat(semantic, experts) ─► LayerNorm ─► bottleneck MLP ─► zero-init output ───┘
The output layer of `spatial_projector` starts at zero, so a model made from a Qwen2-Audio checkpoint gives
Qwen2-Audio's logits exactly until it is trained.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import ModelOutput
from transformers.models.qwen2_audio.modeling_qwen2_audio import (
    Qwen2AudioCausalLMOutputWithPast,
    Qwen2AudioModelOutputWithPast,
    Qwen2AudioMultiModalProjector,
    Qwen2AudioPreTrainedModel,
)
from transformers.utils import logging

from .configuration_spatial_qwen_audio import MODEL_AUTO_MAP, SpatialQwenAudioConfig

logger = logging.get_logger(__name__)

# The key/value cache's keyword and output field: `cache` since transformers 5.2x renamed it (the old name warns),
# `past_key_values` before; both sides are in the supported range, so the installed output class decides.
CACHE_KWARG = "cache" if "cache" in {f.name for f in fields(Qwen2AudioModelOutputWithPast)} else "past_key_values"

# Qwen2-Audio checkpoints come in two key layouts: the current one matches this model's module names; the legacy
# one (transformers < 4.52, e.g. the published Qwen2-Audio-7B files) is renamed on load. transformers registers
# renames per model_type, so ours must be registered for our model_type and base class name.
register_checkpoint_conversion_mapping(
    "spatial_qwen_audio",
    [
        WeightRenaming(source_patterns=r"^language_model.lm_head", target_patterns="lm_head"),
        WeightRenaming(source_patterns=r"^language_model", target_patterns="model.language_model"),
        WeightRenaming(source_patterns=r"^audio_tower", target_patterns="model.audio_tower"),
        WeightRenaming(source_patterns=r"^multi_modal_projector", target_patterns="model.multi_modal_projector"),
    ],
    overwrite=True,
)
register_checkpoint_conversion_mapping(
    "SpatialQwenAudioModel",
    [WeightRenaming(source_patterns=r"^language_model.model", target_patterns="language_model")],
    overwrite=True,
)

# Modules added to Qwen2-Audio (initialised, not loaded, when starting from a Qwen2-Audio checkpoint).
SPATIAL_MODULES = ("spatial_encoder", "spatial_projector")
# PEFT `target_modules` regex for LoRA on the language model only (the Whisper encoder also has q/k/v_proj).
LANGUAGE_MODEL_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


@dataclass
class SpatialEncoderOutput(ModelOutput):
    r"""Outputs of [`SpatialEncoder`]. N is the number of 25 Hz audio tokens, S the number of slots.

    last_hidden_state (`(batch, N, spatial_hidden_size)`): dense spatial map aligned with the audio tokens.
    pooled_output (`(batch, spatial_hidden_size)`): masked mean of the map.
    attention_mask (`(batch, N)`): valid tokens.
    slot_presence_logits (`(batch, S)`): logit that the slot holds a source.
    slot_class_logits (`(batch, S, num_classes)`): class logits per slot.
    slot_direction (`(batch, S, 3)`): unit direction vector (x front, y left, z up) per slot: the slot's
        activity- and class-weighted mean of `token_accdoa`, refined on the measured intensity where the config sets
        `spatial_direction_refinement` (`_refine_slot_directions`).
    slot_distance (`(batch, S)`): distance in metres per slot (non-negative).
    slot_activity_logits (`(batch, S, N)`): logit that the slot's source is active at each token (onset/offset).
    count_logits (`(batch, S + 1)`): number of sources, 0..S.
    rt60 (`(batch,)`): reverberation time in seconds (non-negative).
    token_accdoa (`(batch, N, num_classes, 3)`): activity-coupled Cartesian direction (ACCDOA, DCASE) per token and
        class: the class's direction while it sounds (norm near 1), near zero while it is silent; built as the
        class's activity times the measured intensity pooled over the class's time-frequency bins (weights: W power,
        plus learned per-band and directness terms), plus a learned correction.
    """

    last_hidden_state: torch.Tensor | None = None
    pooled_output: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    slot_presence_logits: torch.Tensor | None = None
    slot_class_logits: torch.Tensor | None = None
    slot_direction: torch.Tensor | None = None
    slot_distance: torch.Tensor | None = None
    slot_activity_logits: torch.Tensor | None = None
    count_logits: torch.Tensor | None = None
    rt60: torch.Tensor | None = None
    token_accdoa: torch.Tensor | None = None


@dataclass
class SpatialAudioEncoderOutput(ModelOutput):
    r"""What the two audio encoders give the projectors, per clip: everything trainable downstream of the encoders
    (projectors, language model) reads only this, so with frozen encoders it can be computed once per clip and
    cached (`hf_spatial.models.audio_cache`); `forward` takes these fields in place of the audio features.

    audio_hidden_states (`(batch, N, audio d_model)`): Whisper encoder output at the 25 Hz audio tokens (the
        semantic projector's and the fusion expert's input); positions past a clip's `audio_token_lengths` (up to
        the whole window when computed from features) are padding and never reach the language model.
    audio_token_lengths (`(batch,)`): audio tokens per clip.
    spatial_hidden_states (`(batch, N, spatial_hidden_size)`): the spatial encoder's dense map.
    spatial_pooled_output (`(batch, spatial_hidden_size)`): its masked mean.
    spatial_token_accdoa (`(batch, N, num_classes, 3)`): its per-token ACCDOA map.
    spatial_clip_accdoa (`(batch, num_classes, 3)`): the slots' detections as one ACCDOA vector per class and clip:
        the sum over slots of presence probability x class probability x direction (norm: how surely the class is
        present; `clip_accdoa`).
    """

    audio_hidden_states: torch.Tensor | None = None
    audio_token_lengths: torch.Tensor | None = None
    spatial_hidden_states: torch.Tensor | None = None
    spatial_pooled_output: torch.Tensor | None = None
    spatial_token_accdoa: torch.Tensor | None = None
    spatial_clip_accdoa: torch.Tensor | None = None


@dataclass
class SpatialQwenAudioModelOutputWithPast(Qwen2AudioModelOutputWithPast):
    r"""[`SpatialQwenAudioModel`]'s outputs: Qwen2-Audio's, plus `spatial_clip_accdoa` (`(batch, num_classes, 3)`),
    the detections that grounded this call's names (None without name grounding), which `generate` carries to the
    decoding steps so that the names the model writes are grounded too."""

    spatial_clip_accdoa: torch.Tensor | None = None


@dataclass
class SpatialQwenAudioCausalLMOutputWithPast(Qwen2AudioCausalLMOutputWithPast):
    r"""[`SpatialQwenAudioForConditionalGeneration`]'s outputs: Qwen2-Audio's, plus `spatial_clip_accdoa` as in
    [`SpatialQwenAudioModelOutputWithPast`]."""

    spatial_clip_accdoa: torch.Tensor | None = None


# Names of the precomputed encoder outputs `forward` accepts (the fields above).
AUDIO_ENCODER_OUTPUT_KEYS = (
    "audio_hidden_states",
    "audio_token_lengths",
    "spatial_hidden_states",
    "spatial_pooled_output",
    "spatial_token_accdoa",
    "spatial_clip_accdoa",
)


class ZeroInitLinear(nn.Linear):
    """A linear layer initialised to zero (weight and bias): a residual branch that starts switched off."""


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of (batch, channels, freq, time) maps: no statistics across time, so padded
    frames never change the valid ones. ("LayerNorm" in the name lets transformers' default init handle it.)"""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return super().forward(hidden.movedim(1, -1)).movedim(-1, 1)


def _masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class _Attention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout

    def forward(self, query: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        batch, q_len, width = query.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, self.num_heads, width // self.num_heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            heads(self.q_proj(query)),
            heads(self.k_proj(memory)),
            heads(self.v_proj(memory)),
            attn_mask=key_mask[:, None, None, :].bool(),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out_proj(attended.transpose(1, 2).reshape(batch, q_len, width))


class _FeedForward(nn.Sequential):
    def __init__(self, hidden_size: int, ffn_dim: int, dropout: float):
        super().__init__(
            nn.LayerNorm(hidden_size),
            nn.Linear(hidden_size, ffn_dim),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(ffn_dim, hidden_size),
            nn.Dropout(dropout),
        )


class _ConformerBlock(nn.Module):
    """Macaron Conformer block (half FFN, self-attention, depthwise convolution, half FFN) with padding masks."""

    def __init__(self, config: SpatialQwenAudioConfig):
        super().__init__()
        width, dropout = config.spatial_hidden_size, config.spatial_dropout
        self.ffn_in = _FeedForward(width, config.spatial_ffn_dim, dropout)
        self.attn_norm = nn.LayerNorm(width)
        self.attn = _Attention(width, config.spatial_num_heads, dropout)
        self.conv_norm = nn.LayerNorm(width)
        self.conv_in = nn.Linear(width, 2 * width)
        kernel = config.spatial_conv_kernel_size
        self.depthwise = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=width)
        self.conv_out_norm = nn.LayerNorm(width)
        self.conv_out = nn.Linear(width, width)
        self.ffn_out = _FeedForward(width, config.spatial_ffn_dim, dropout)
        self.final_norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.to(hidden.dtype)[..., None]
        hidden = hidden + 0.5 * self.ffn_in(hidden)
        normed = self.attn_norm(hidden)
        hidden = hidden + self.dropout(self.attn(normed, normed, mask))
        conv = F.glu(self.conv_in(self.conv_norm(hidden)), dim=-1) * keep
        conv = self.depthwise(conv.transpose(1, 2)).transpose(1, 2)
        hidden = hidden + self.dropout(self.conv_out(F.silu(self.conv_out_norm(conv))))
        hidden = hidden + 0.5 * self.ffn_out(hidden)
        return self.final_norm(hidden) * keep


def _slot_class_weights(spatial: SpatialEncoderOutput) -> torch.Tensor:
    """`(batch, slots, num_classes)`: each slot's presence probability x class probability."""
    return torch.sigmoid(spatial.slot_presence_logits)[..., None] * spatial.slot_class_logits.softmax(-1)


def clip_accdoa(spatial: SpatialEncoderOutput) -> torch.Tensor:
    """The slots' detections as one ACCDOA vector per class `(batch, num_classes, 3)`: the sum over slots of
    presence probability x class probability x unit direction."""
    return torch.einsum("bsc,bsx->bcx", _slot_class_weights(spatial), spatial.slot_direction)


def clip_distance(spatial: SpatialEncoderOutput) -> torch.Tensor:
    """The slots' distance estimate per class `(batch, num_classes)` in metres: their distances weighted as
    `clip_accdoa` weights their directions."""
    weights = _slot_class_weights(spatial)
    return torch.einsum("bsc,bs->bc", weights, spatial.slot_distance) / weights.sum(1).clamp_min(1e-6)


class SpatialEncoder(nn.Module):
    """Spatial encoder: CNN over the 7 spatial feature maps (100 Hz) pooled to 25 Hz, Conformer blocks, and the
    auxiliary heads (DETR-style slot decoder for up to `spatial_num_slots` sources, global count and RT60 heads)
    used by the encoder training stage (permutation-invariant matching)."""

    def __init__(self, config: SpatialQwenAudioConfig):
        super().__init__()
        width, dropout = config.spatial_hidden_size, config.spatial_dropout
        self.frames_per_token = config.spatial_frames_per_token
        blocks, channels, freq = [], config.spatial_num_channels, config.spatial_num_mel_bins
        time_factors = _time_pooling(config.spatial_frames_per_token, len(config.spatial_conv_channels))
        for out_channels, time_factor in zip(config.spatial_conv_channels, time_factors, strict=True):
            freq_factor = 2 if freq >= 2 else 1
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(channels, out_channels, kernel_size=3, padding=1),
                    ChannelLayerNorm(out_channels),
                    nn.GELU(),
                    nn.AvgPool2d((freq_factor, time_factor)),
                )
            )
            channels, freq = out_channels, freq // freq_factor
        self.conv_blocks = nn.ModuleList(blocks)
        self.conv_pools = time_factors
        self.input_proj = nn.Linear(channels * freq + 3, width)  # + the broadband intensity direction
        self.input_norm = nn.LayerNorm(width)
        self.layers = nn.ModuleList([_ConformerBlock(config) for _ in range(config.spatial_num_layers)])

        self.slot_queries = nn.Parameter(torch.zeros(config.spatial_num_slots, width))
        self.slot_norm = nn.LayerNorm(width)
        self.slot_attn = _Attention(width, config.spatial_num_heads, dropout)
        self.slot_ffn = _FeedForward(width, config.spatial_ffn_dim, dropout)
        self.slot_out_norm = nn.LayerNorm(width)
        self.presence_head = nn.Linear(width, 1)
        self.class_head = nn.Linear(width, config.spatial_num_classes)
        self.accdoa_activity_head = nn.Linear(width, config.spatial_num_classes)
        self.accdoa_correction_head = ZeroInitLinear(width, 3 * config.spatial_num_classes)
        # Which mel bands carry each class at each token (log-weights added to the W power weighting), and how much
        # each class prefers direct (|intensity| near 1) over diffuse bins: both zero at initialisation.
        self.accdoa_band_head = ZeroInitLinear(width, config.spatial_num_classes * config.spatial_num_mel_bins)
        self.accdoa_directness = nn.Parameter(torch.zeros(config.spatial_num_classes))
        self.distance_head = nn.Linear(width, 1)
        self.activity_query = nn.Linear(width, width)
        self.activity_key = nn.Linear(width, width)
        self.count_head = nn.Linear(width, config.spatial_num_slots + 1)
        self.rt60_head = nn.Linear(width, 1)
        self.direction_refinement = tuple(config.spatial_direction_refinement)

    def forward(self, spatial_features: torch.Tensor, spatial_attention_mask: torch.Tensor) -> SpatialEncoderOutput:
        hidden = spatial_features.to(self.input_proj.weight.dtype)
        frame_mask = spatial_attention_mask.bool()
        if hidden.shape[-1] % self.frames_per_token or hidden.shape[-1] != frame_mask.shape[-1]:
            raise ValueError(
                f"spatial_features have {hidden.shape[-1]} frames and spatial_attention_mask "
                f"{frame_mask.shape[-1]}; both must be the same multiple of {self.frames_per_token} "
                "(use FOAFeatureExtractor)."
            )
        for block, pool in zip(self.conv_blocks, self.conv_pools, strict=True):
            hidden = block(hidden * frame_mask[:, None, None, :].to(hidden.dtype))
            frame_mask = frame_mask[:, ::pool]
        token_mask = frame_mask
        hidden = hidden.flatten(1, 2).transpose(1, 2)  # (batch, tokens, channels * freq)
        spatial_features = spatial_features.to(hidden.dtype)
        broadband = _pooled_intensity(spatial_features, self.frames_per_token)
        hidden = self.input_norm(self.input_proj(torch.cat([hidden, broadband], dim=-1)))
        for layer in self.layers:
            hidden = layer(hidden, token_mask)
        pooled = _masked_mean(hidden, token_mask)

        queries = self.slot_queries[None].expand(hidden.shape[0], -1, -1)
        slots = queries + self.slot_attn(self.slot_norm(queries), hidden, token_mask)
        slots = self.slot_out_norm(slots + self.slot_ffn(slots))
        activity = torch.einsum("bsd,bnd->bsn", self.activity_query(slots), self.activity_key(hidden))
        activity = (activity / math.sqrt(hidden.shape[-1])).masked_fill(~token_mask[:, None, :], -1e4)
        # ACCDOA per token and class: the measured intensity pooled over the bins the class is judged to hold (at
        # initialisation the power-weighted broadband direction), where the class is judged active, plus a learned
        # correction (zero at initialisation) for what pooled measurements cannot tell (overlapping
        # sources, reverberation). Slot directions are thus about right from the first step.
        class_activity = torch.sigmoid(self.accdoa_activity_head(hidden))[..., None]  # (batch, tokens, classes, 1)
        correction = self.accdoa_correction_head(hidden).unflatten(-1, (-1, 3))  # (batch, tokens, classes, 3)
        band_logits = self.accdoa_band_head(hidden).unflatten(-1, (len(self.accdoa_directness), -1))
        pooled_intensity = _pooled_intensity(
            spatial_features, self.frames_per_token, band_logits, self.accdoa_directness
        )
        accdoa = class_activity * pooled_intensity + correction
        class_logits = self.class_head(slots)
        # Directions come from the dense per-token map, which a per-token loss trains directly; a slot only
        # chooses when (activity) and what (class) to read. Regressing directions from the slot vectors instead
        # let the slots settle on fixed directions that the matching then picked from (median error ~90 deg).
        slot_direction = torch.einsum("bsn,bsc,bncx->bsx", torch.sigmoid(activity), class_logits.softmax(-1), accdoa)
        slot_direction = F.normalize(slot_direction, dim=-1)
        presence_logits = self.presence_head(slots).squeeze(-1)
        if self.direction_refinement:
            slot_direction = _refine_slot_directions(
                slot_direction, presence_logits, activity, spatial_features, spatial_attention_mask,
                self.direction_refinement,
            )  # fmt: skip
        return SpatialEncoderOutput(
            last_hidden_state=hidden,
            pooled_output=pooled,
            attention_mask=token_mask.long(),
            slot_presence_logits=presence_logits,
            slot_class_logits=class_logits,
            slot_direction=slot_direction,
            slot_distance=F.softplus(self.distance_head(slots)).squeeze(-1),
            slot_activity_logits=activity,
            count_logits=self.count_head(pooled),
            rt60=F.softplus(self.rt60_head(pooled)).squeeze(-1),
            token_accdoa=accdoa,
        )


def _vector_norm(vectors: torch.Tensor, dim: int) -> torch.Tensor:
    # `Tensor.norm` over a strided dimension of these maps is several times slower on CPU than the explicit sum; the
    # clamp keeps the gradient of an all-zero (padded) vector finite, as `Tensor.norm`'s is.
    return vectors.square().sum(dim=dim).clamp_min(1e-24).sqrt()


def _w_log_power(spatial_features: torch.Tensor) -> torch.Tensor:
    """W's band log-power in nats `(batch, bands, frames)` up to a constant: FOAFeatureExtractor's Whisper-style
    scaling (log10(power) + 4) / 4 of channel 0 undone, so a softmax over it weights bins by power."""
    return spatial_features[:, 0] * (4.0 * math.log(10.0))


def _pooled_intensity(
    spatial_features: torch.Tensor,
    frames_per_token: int,
    band_logits: torch.Tensor | None = None,
    directness: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per token, the mean of the intensity maps (channels 4-6) over its mel bands and frames, weighted by the band
    power of W: the classical broadband direction estimate (a unit vector for one plane wave, shorter in diffuse
    sound), `(batch, tokens, 3)`. The CNN could learn this power weighting only slowly (it sees log powers); given
    directly, directions are linearly readable from the first step.

    With `band_logits` `(batch, tokens, classes, bands)` and `directness` `(classes,)`, one such mean per class,
    `(batch, tokens, classes, 3)`: the log-weights add the class's band logits and `directness` times the log of the
    bin's intensity norm (near 1 for a plane wave, small in diffuse sound), so a class can pool the bins it dominates,
    as the classical estimator keeps the direct bins; a convex combination of measured directions either way."""
    log_power = _w_log_power(spatial_features)  # (batch, bands, frames)
    batch, bands, frames = log_power.shape
    tokens = frames // frames_per_token
    log_weights = log_power.view(batch, bands, tokens, frames_per_token).transpose(1, 2)  # (batch, tokens, bands, k)
    intensity = spatial_features[:, 4:7].view(batch, 3, bands, tokens, frames_per_token).permute(0, 3, 1, 2, 4)
    if band_logits is None:
        weights = log_weights.flatten(2).softmax(-1)
        return torch.einsum("bnk,bnxk->bnx", weights, intensity.flatten(3))
    log_norm = torch.log(_vector_norm(intensity, dim=2) + 1e-3)  # (batch, tokens, bands, k)
    log_weights = (
        log_weights[:, :, None] + band_logits[..., None] + directness[None, None, :, None, None] * log_norm[:, :, None]
    )  # (batch, tokens, classes, bands, k)
    weights = log_weights.flatten(3).softmax(-1)
    return torch.einsum("bnck,bnxk->bncx", weights, intensity.flatten(3))


# Direction refinement (`_refine_slot_directions`). A bin's weight grows with the W power to this exponent (loud bins
# count more, yet one source's loud onset does not drown the rest) and with its intensity norm to this exponent (near
# 1 for a plane wave, small in diffuse or overlapped sound: the classical estimator's diffuseness gate, made soft).
_REFINEMENT_POWER_EXPONENT = 0.25
_REFINEMENT_DIRECTNESS_EXPONENT = 2.0
# Bins within about 15 degrees of an earlier (present) slot's refined direction count that much less for later slots,
# and a slot that starts within 20 degrees of one restarts from the heaviest bin left: two slots that read the same
# frames would otherwise settle on one source.
_REFINEMENT_EXPLAINED_CONCENTRATION = 30.0
_REFINEMENT_RESTART_COSINE = math.cos(math.radians(20.0))


def _refine_slot_directions(
    slot_direction: torch.Tensor,
    presence_logits: torch.Tensor,
    activity_logits: torch.Tensor,
    spatial_features: torch.Tensor,
    frame_mask: torch.Tensor,
    concentrations: tuple[float, ...],
) -> torch.Tensor:
    """Each slot's direction `(batch, S, 3)` moved by mean-shift steps on the sphere to the mode of the measured
    intensity directions of its frames: per step, the unit intensity directions of all (band, frame) bins averaged
    with weights bin power x directness x the slot's activity at the frame x exp(kappa (cos(bin, direction) - 1)),
    kappa growing over the steps. Pooled maps average every bin the slot reads, so a second source or reflections pull
    the estimate off the source; the kernel keeps only the bins around it. Slots go in order of presence, each
    discounting the bins the earlier ones explained."""
    log_power = _w_log_power(spatial_features)
    intensity = spatial_features[:, 4:7]  # (batch, 3, bands, frames)
    norm = _vector_norm(intensity, dim=1)
    unit = intensity / norm.clamp_min(1e-6)[:, None]
    frames_per_token = spatial_features.shape[-1] // activity_logits.shape[-1]
    bin_log_weight = (
        _REFINEMENT_POWER_EXPONENT * (log_power - log_power.amax(dim=(1, 2), keepdim=True))
        + _REFINEMENT_DIRECTNESS_EXPONENT * torch.log(norm + 1e-3)
    ).masked_fill(~frame_mask.bool()[:, None, :], -1e4)  # (batch, bands, frames)
    slot_log_activity = F.logsigmoid(activity_logits).repeat_interleave(frames_per_token, dim=-1)  # (batch, S, frames)
    presence = torch.sigmoid(presence_logits)
    order = torch.argsort(presence_logits, dim=1, descending=True)
    rows = torch.arange(slot_direction.shape[0], device=slot_direction.device)
    found = []  # refined directions, in presence order
    unexplained = torch.zeros_like(bin_log_weight)  # log of the share of each bin earlier slots left unexplained
    for rank in range(slot_direction.shape[1]):
        slot = order[:, rank]
        direction = slot_direction[rows, slot]
        log_weight = bin_log_weight + slot_log_activity[rows, slot][:, None, :] + unexplained
        if found:
            taken = torch.stack([(direction * other).sum(-1) for other in found], -1).amax(-1)
            heaviest = unit.flatten(2)[rows, :, log_weight.flatten(1).argmax(-1)]
            direction = torch.where((taken > _REFINEMENT_RESTART_COSINE)[:, None], heaviest, direction)
        for kappa in concentrations:
            cosine = torch.einsum("bx,bxft->bft", direction, unit)
            weights = (log_weight + kappa * (cosine - 1.0)).flatten(1).softmax(-1).view_as(log_weight)
            direction = F.normalize(torch.einsum("bft,bxft->bx", weights, unit), dim=-1)
        found.append(direction)
        if rank + 1 == slot_direction.shape[1]:
            break  # no later slot to discount bins for
        cosine = torch.einsum("bx,bxft->bft", direction, unit)
        near = torch.exp(_REFINEMENT_EXPLAINED_CONCENTRATION * (cosine - 1.0))
        explained = near * presence[rows, slot][:, None, None]
        unexplained = unexplained + torch.log1p(-explained.clamp(max=1.0 - 1e-4))
    # Back from presence order to slot order.
    by_rank = torch.stack(found, dim=1)
    return torch.empty_like(by_rank).scatter_(1, order[..., None].expand_as(by_rank), by_rank)


def _time_pooling(frames_per_token: int, num_blocks: int) -> list[int]:
    """Split the 100 Hz -> 25 Hz reduction into per-block factors of 2 (the rest 1)."""
    factors, remaining = [], frames_per_token
    for _ in range(num_blocks):
        factor = 2 if remaining % 2 == 0 and remaining > 1 else 1
        factors.append(factor)
        remaining //= factor
    if remaining != 1:
        raise ValueError(
            f"spatial_frames_per_token={frames_per_token} must be a power of two reachable with "
            f"{num_blocks} conv blocks."
        )
    return factors


def _expert(in_size: int, out_size: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_size, out_size), nn.GELU(), nn.Dropout(dropout), nn.Linear(out_size, out_size))


class SpatialHybridProjector(nn.Module):
    """Spatial half of the dense hybrid projector (the semantic expert is Qwen2-Audio's `multi_modal_projector`).

    Experts: direction (per token, from the spatial map and the encoder's ACCDOA map), distance (per token, from
    the spatial map), room and count (per clip, from the pooled spatial embedding, broadcast over tokens), fusion
    (per token, Whisper hidden state + spatial map). Their outputs and the semantic expert's tokens are
    concatenated, normalised, passed through a bottleneck MLP and a zero-init output layer; beside it two zero-init
    linear maps: of the class-summed ACCDOA direction per token, and of the slots' detections (token t: class
    t mod num_classes, its learned key and its clip-level ACCDOA); the result is added to the semantic tokens."""

    def __init__(self, config: SpatialQwenAudioConfig):
        super().__init__()
        text_size, audio_size = config.text_config.hidden_size, config.audio_config.d_model
        spatial_size, expert_size = config.spatial_hidden_size, config.projector_expert_size
        dropout = config.spatial_dropout
        # The encoder's directions live in its ACCDOA map (measured broadband direction gated by class activity),
        # not necessarily in its hidden state: the direction expert reads both.
        self.direction_expert = _expert(spatial_size + 3 * config.spatial_num_classes, expert_size, dropout)
        self.distance_expert = _expert(spatial_size, expert_size, dropout)
        self.room_expert = _expert(spatial_size, expert_size, dropout)
        self.count_expert = _expert(spatial_size, expert_size, dropout)
        self.fusion_expert = _expert(audio_size + spatial_size, expert_size, dropout)
        self.norm = nn.LayerNorm(text_size + 5 * expert_size)
        self.bottleneck = nn.Sequential(
            nn.Linear(text_size + 5 * expert_size, config.projector_bottleneck_size), nn.GELU(), nn.Dropout(dropout)
        )
        self.output = ZeroInitLinear(config.projector_bottleneck_size, text_size)
        # A direct path from the encoder's direction (its ACCDOA map summed over classes) to the token, beside the
        # bottleneck: through the bottleneck alone a from-scratch language model learned to read the direction of
        # the demo's scenes far more slowly (isolated check: 17% vs 85% sector accuracy after 200 steps).
        self.direction_output = ZeroInitLinear(3, text_size)
        # What the slots detected, one class per token in turn (token t: class t mod num_classes, its clip-level
        # ACCDOA and a learned key of the class): the slots' directions are the encoder's best estimates (the
        # per-token map is noisier), and a question about a named sound can attend to that sound's tokens.
        self.num_classes = config.spatial_num_classes
        self.detections_output = ZeroInitLinear(config.spatial_num_classes + 3, text_size)
        # Name grounding: each class's detection, added to the tokens that name the class in the text (see
        # `ground_names`). Otherwise the language model must learn to match a question's words to the audio tokens
        # of the sound they name; carried on the name itself, that sound's direction is read as a lone sound's is.
        # It reads a detection as its direction (unit vector) and its confidence (norm) apart: fed the raw vector, a
        # weakly detected sound's direction reached the language model scaled down by its confidence.
        self.name_grounding = nn.Sequential(
            nn.Linear(4, expert_size), nn.GELU(), ZeroInitLinear(expert_size, text_size)
        )

    def forward(
        self,
        semantic_tokens: torch.Tensor,
        audio_hidden: torch.Tensor,
        spatial_map: torch.Tensor,
        spatial_pooled: torch.Tensor,
        spatial_accdoa: torch.Tensor,
        clip_accdoa: torch.Tensor,
    ) -> torch.Tensor:
        """Return the spatial contribution (batch, tokens, text hidden size) to add to `semantic_tokens`
        (`spatial_accdoa`: `(batch, tokens, classes, 3)`, the encoder's `token_accdoa`; `clip_accdoa`:
        `(batch, classes, 3)`, its slots' detections)."""
        num_tokens = semantic_tokens.shape[1]
        spatial_map = spatial_map.to(semantic_tokens.dtype)
        spatial_accdoa = spatial_accdoa.to(semantic_tokens.dtype)
        per_clip = [self.room_expert(spatial_pooled), self.count_expert(spatial_pooled)]
        experts = [
            semantic_tokens,
            self.direction_expert(torch.cat([spatial_map, spatial_accdoa.flatten(2)], dim=-1)),
            self.distance_expert(spatial_map),
            *[expert.to(semantic_tokens.dtype)[:, None, :].expand(-1, num_tokens, -1) for expert in per_clip],
            self.fusion_expert(torch.cat([audio_hidden.to(spatial_map.dtype), spatial_map], dim=-1)),
        ]
        direction = self.direction_output(spatial_accdoa.sum(2))
        classes = torch.arange(num_tokens, device=semantic_tokens.device) % self.num_classes
        detections = torch.cat(
            [
                F.one_hot(classes, self.num_classes).to(semantic_tokens.dtype)[None].expand(len(clip_accdoa), -1, -1),
                clip_accdoa.to(semantic_tokens.dtype)[:, classes],
            ],
            dim=-1,
        )
        direction = direction + self.detections_output(detections)
        return self.output(self.bottleneck(self.norm(torch.cat(experts, dim=-1)))) + direction

    def name_embeddings(self, clip_accdoa: torch.Tensor) -> torch.Tensor:
        """What a class's name carries `(batch, classes, text hidden size)`: each class's detection (`clip_accdoa`
        `(batch, classes, 3)`) as its direction (unit vector; zero where never detected) and its confidence (norm)
        through the grounding MLP."""
        detection = clip_accdoa.to(self.name_grounding[0].weight.dtype)
        confidence = detection.norm(dim=-1, keepdim=True)
        direction = detection / confidence.clamp_min(1e-6)
        return self.name_grounding(torch.cat([direction, confidence], dim=-1))

    def ground_names(self, name_mask: torch.Tensor, clip_accdoa: torch.Tensor) -> torch.Tensor:
        """The grounding `(batch, seq, text hidden size)` to add to the token embeddings: at the tokens where
        `name_mask` `(batch, seq, classes)` says a class is named, that class's `name_embeddings`."""
        grounding = self.name_embeddings(clip_accdoa)
        return torch.einsum("btc,bch->bth", name_mask.to(grounding.dtype), grounding)


def name_token_mask(input_ids: torch.Tensor, name_token_ids: list[list[list[int]]]) -> torch.Tensor:
    """`(batch, seq, classes)`: True at the tokens of each occurrence of one of class c's token sequences
    (`name_token_ids[c]`). Longer names are matched first and keep their tokens, so "speech" inside "male speech"
    names the man's speech only."""
    batch, length = input_ids.shape
    mask = torch.zeros(batch, length, len(name_token_ids), dtype=torch.bool, device=input_ids.device)
    taken = torch.zeros(batch, length, dtype=torch.bool, device=input_ids.device)
    names = sorted(
        ((len(tokens), index, tokens) for index, spellings in enumerate(name_token_ids) for tokens in spellings),
        reverse=True,
    )
    for size, index, tokens in names:
        if not 0 < size <= length:
            continue
        starts = (input_ids.unfold(1, size, 1) == input_ids.new_tensor(tokens)).all(-1)
        covered = torch.zeros_like(taken)
        for offset in range(size):
            covered[:, offset : offset + starts.shape[1]] |= starts
        covered &= ~taken
        mask[..., index] |= covered
        taken |= covered
    return mask


class SpatialQwenAudioPreTrainedModel(Qwen2AudioPreTrainedModel):
    config: SpatialQwenAudioConfig
    config_class = SpatialQwenAudioConfig
    _no_split_modules = ["Qwen2AudioAttention", "SpatialEncoder", "SpatialHybridProjector"]  # noqa: RUF012

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, ZeroInitLinear):
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, SpatialEncoder):
            init.normal_(module.slot_queries, mean=0.0, std=1.0)
            init.zeros_(module.accdoa_directness)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # One class can carry one `_auto_class`; write the whole auto_map so that every Auto class resolves with
        # trust_remote_code.
        if self._auto_class is not None:
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **MODEL_AUTO_MAP}
        return super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Load a SpatialQwenAudio checkpoint, or a Qwen2-Audio one (current or legacy key layout): then the spatial
        modules are initialised (zero-init output: same logits as Qwen2-Audio) and every base weight must load.

        Raises `ValueError` if any weight other than a newly added spatial one is missing, unexpected or has the
        wrong shape (transformers would otherwise re-initialise it silently)."""
        want_info = kwargs.pop("output_loading_info", False)
        hub_kwargs = {
            key: kwargs[key]
            for key in ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")
            if key in kwargs
        }
        from_base = False
        if pretrained_model_name_or_path is not None:
            config_dict, _ = SpatialQwenAudioConfig.get_config_dict(pretrained_model_name_or_path, **hub_kwargs)
            from_base = config_dict.get("model_type") == "qwen2_audio"
        if from_base and not isinstance(kwargs.get("config"), SpatialQwenAudioConfig):
            kwargs["config"] = SpatialQwenAudioConfig.from_qwen2_audio_config(config_dict)
        verbosity = logging.get_verbosity()
        if from_base:  # the load report would list every new spatial weight; we check and summarise instead
            logging.set_verbosity_error()
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
            )
        finally:
            logging.set_verbosity(verbosity)
        model._check_loading_info(info, allow_missing_spatial=from_base)
        if from_base:
            logger.info(
                "Loaded every Qwen2-Audio weight from %s; initialised %d spatial tensors (zero-init output: same "
                "logits as Qwen2-Audio until trained).",
                pretrained_model_name_or_path,
                len(info["missing_keys"]),
            )
        return (model, info) if want_info else model

    def _check_loading_info(self, info: dict, allow_missing_spatial: bool) -> None:
        spatial_prefixes = tuple(
            f"{name}."
            for name, module in self.named_modules()
            if isinstance(module, SpatialEncoder | SpatialHybridProjector)
        )
        # Checkpoints from before name grounding lack its weights: zero-initialised, it changes nothing until
        # trained, and it is off until `spatial_name_token_ids` is set.
        projectors = [name for name, module in self.named_modules() if isinstance(module, SpatialHybridProjector)]
        grounding = (
            () if self.config.spatial_name_token_ids else tuple(f"{name}.name_grounding." for name in projectors)
        )
        missing = [
            key
            for key in info.get("missing_keys", [])
            if not (allow_missing_spatial and key.startswith(spatial_prefixes)) and not key.startswith(grounding)
        ]
        problems = {
            "missing": sorted(missing),
            "unexpected": sorted(key for key in info.get("unexpected_keys", []) if not self._is_head_key(key)),
            "mismatched": sorted(str(item) for item in info.get("mismatched_keys", [])),
        }
        if any(problems.values()):
            details = "; ".join(
                f"{kind}: {keys[:8]}{' ...' if len(keys) > 8 else ''}" for kind, keys in problems.items() if keys
            )
            raise ValueError(
                f"Checkpoint does not match {type(self).__name__} ({details}). These weights would be re-initialised "
                "or ignored; check the checkpoint and its config (Qwen2-Audio checkpoints of both key layouts load)."
            )

    def _is_head_key(self, key: str) -> bool:
        # The backbone alone (AutoModel) legitimately skips the LM head of a full checkpoint.
        return isinstance(self, SpatialQwenAudioModel) and key.split(".")[-2:-1] == ["lm_head"]

    @classmethod
    def from_qwen2_audio(cls, path_or_model, **spatial_kwargs):
        """Build this model from a Qwen2-Audio checkpoint path/hub id or a loaded `Qwen2AudioForConditionalGeneration`
        (or `Qwen2AudioModel` for the base class), keeping every base weight and adding freshly initialised spatial
        modules (configured by `spatial_kwargs`, e.g. `spatial_hidden_size=...`). Logits equal Qwen2-Audio's."""
        if isinstance(path_or_model, PreTrainedModel):
            config = SpatialQwenAudioConfig.from_qwen2_audio_config(path_or_model.config, **spatial_kwargs)
            model = cls(config)
            incompatible = model.load_state_dict(path_or_model.state_dict(), strict=False)
            info = {"missing_keys": incompatible.missing_keys, "unexpected_keys": incompatible.unexpected_keys}
            model._check_loading_info(info, allow_missing_spatial=True)
            model.generation_config = copy.deepcopy(path_or_model.generation_config)
            return model.to(dtype=path_or_model.dtype).train(path_or_model.training)
        config_dict, _ = SpatialQwenAudioConfig.get_config_dict(path_or_model)
        if config_dict.get("model_type") != "qwen2_audio":
            raise ValueError(f"{path_or_model} is a {config_dict.get('model_type')!r} checkpoint, not qwen2_audio.")
        config = SpatialQwenAudioConfig.from_qwen2_audio_config(config_dict, **spatial_kwargs)
        return cls.from_pretrained(path_or_model, config=config)


class SpatialQwenAudioModel(SpatialQwenAudioPreTrainedModel):
    """Qwen2-Audio backbone with the spatial branch: all audio processing (Whisper encoder, spatial encoder, hybrid
    projector, merging into the token embeddings) happens here, so trainers that call the backbone directly
    (`model.model`, TRL) see the spatial inputs too."""

    def __init__(self, config: SpatialQwenAudioConfig):
        super().__init__(config)
        self.audio_tower = AutoModel.from_config(config.audio_config)
        self.multi_modal_projector = Qwen2AudioMultiModalProjector(config)
        self.spatial_encoder = SpatialEncoder(config)
        self.spatial_projector = SpatialHybridProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def train(self, mode: bool = True) -> SpatialQwenAudioModel:
        """Like `nn.Module.train`, but a frozen audio encoder (no trainable parameter, as in the stages after its own)
        stays in eval mode: its dropout would only feed the projectors noisier features than inference gives."""
        super().train(mode)
        for encoder in (self.audio_tower, self.spatial_encoder):
            if mode and not any(parameter.requires_grad for parameter in encoder.parameters()):
                encoder.eval()
        return self

    def get_spatial_outputs(
        self, spatial_features: torch.Tensor, spatial_attention_mask: torch.Tensor
    ) -> SpatialEncoderOutput:
        """Spatial encoder outputs: the dense 25 Hz map and the auxiliary slot/count/RT60 heads."""
        return self.spatial_encoder(spatial_features, spatial_attention_mask)

    def encode_audio(
        self,
        input_features: torch.Tensor,
        feature_attention_mask: torch.Tensor,
        spatial_features: torch.Tensor | None = None,
        spatial_attention_mask: torch.Tensor | None = None,
    ) -> SpatialAudioEncoderOutput:
        """Run the audio encoders (Whisper and the spatial encoder): what the projectors read, and what an embedding
        cache stores. Skips the branch that `config.drop_semantic_branch` / `config.zero_spatial_branch` switch off."""
        feature_attention_mask = feature_attention_mask.to(input_features.device)
        frame_lengths, num_tokens = self.audio_tower._get_feat_extract_output_lengths(feature_attention_mask.sum(-1))
        max_tokens = int(num_tokens.max())
        audio_hidden = None
        if not self.config.drop_semantic_branch:
            # Exactly Qwen2-Audio's audio path (same masks), for identical tokens.
            batch_size, _, max_mel_len = input_features.shape
            max_positions = (max_mel_len - 2) // 2 + 1
            positions = torch.arange(max_positions, device=frame_lengths.device)[None, :]
            mask_2d = (positions < frame_lengths[:, None]).long()
            dummy = torch.zeros(batch_size, max_positions, 1, dtype=self.audio_tower.conv1.weight.dtype)
            audio_mask = create_bidirectional_mask(
                config=self.audio_tower.config, inputs_embeds=dummy.to(input_features.device), attention_mask=mask_2d
            )
            audio_hidden = self.audio_tower(input_features, attention_mask=audio_mask).last_hidden_state
        output = SpatialAudioEncoderOutput(audio_hidden_states=audio_hidden, audio_token_lengths=num_tokens)
        if self.config.zero_spatial_branch:
            return output
        if spatial_features is None or spatial_attention_mask is None:
            raise ValueError(
                "spatial_features and spatial_attention_mask are required (FOAFeatureExtractor / "
                "SpatialQwenAudioProcessor make them). For a mono control set `config.zero_spatial_branch = True`."
            )
        spatial = self.spatial_encoder(spatial_features.to(input_features.device), spatial_attention_mask)
        spatial_tokens = spatial.attention_mask.sum(-1).to(num_tokens.device)
        if not torch.equal(spatial_tokens, num_tokens):
            raise ValueError(
                f"spatial features give {spatial_tokens.tolist()} audio tokens per clip but input_features give "
                f"{num_tokens.tolist()}; extract both from the same clips with FOAFeatureExtractor."
            )
        output.spatial_hidden_states = spatial.last_hidden_state[:, :max_tokens]
        output.spatial_pooled_output = spatial.pooled_output
        output.spatial_token_accdoa = spatial.token_accdoa[:, :max_tokens]
        output.spatial_clip_accdoa = clip_accdoa(spatial)
        return output

    def project_audio(self, encoded: SpatialAudioEncoderOutput) -> torch.Tensor:
        """Audio token embeddings `(batch, max_tokens, text hidden)` from the encoders' outputs: the semantic expert
        (Qwen2-Audio's projector) plus the dense hybrid projector's spatial contribution. Honours
        `config.zero_spatial_branch` (then exactly Qwen2-Audio's tokens) and `config.drop_semantic_branch`."""
        max_tokens = int(encoded.audio_token_lengths.max())
        if self.config.drop_semantic_branch:
            weight = self.multi_modal_projector.linear.weight
            shape = (encoded.audio_token_lengths.shape[0], max_tokens)
            audio_hidden = weight.new_zeros(*shape, self.config.audio_config.d_model)
            semantic = weight.new_zeros(*shape, self.config.text_config.hidden_size)
        elif encoded.audio_hidden_states is None:
            raise ValueError("audio_hidden_states are required unless config.drop_semantic_branch is set.")
        else:
            # Projected over every position, then cut, as Qwen2-Audio does: bit-identical tokens at step 0.
            semantic = self.multi_modal_projector(encoded.audio_hidden_states)[:, :max_tokens]
            audio_hidden = encoded.audio_hidden_states[:, :max_tokens]
        if self.config.zero_spatial_branch:
            return semantic
        if encoded.spatial_hidden_states is None:
            raise ValueError("The spatial encoder outputs are required unless config.zero_spatial_branch is set.")
        delta = self.spatial_projector(
            semantic,
            audio_hidden,
            encoded.spatial_hidden_states[:, :max_tokens],
            encoded.spatial_pooled_output,
            encoded.spatial_token_accdoa[:, :max_tokens],
            encoded.spatial_clip_accdoa,
        )
        return semantic + delta

    def get_audio_features(
        self,
        input_features: torch.Tensor,
        feature_attention_mask: torch.Tensor,
        spatial_features: torch.Tensor | None = None,
        spatial_attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio token embeddings `(batch, max_tokens, text hidden)` and tokens per clip `(batch,)`:
        `project_audio(encode_audio(...))`."""
        encoded = self.encode_audio(input_features, feature_attention_mask, spatial_features, spatial_attention_mask)
        return self.project_audio(encoded), encoded.audio_token_lengths

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        feature_attention_mask: torch.Tensor | None = None,
        spatial_features: torch.Tensor | None = None,
        spatial_attention_mask: torch.Tensor | None = None,
        audio_hidden_states: torch.Tensor | None = None,
        audio_token_lengths: torch.Tensor | None = None,
        spatial_hidden_states: torch.Tensor | None = None,
        spatial_pooled_output: torch.Tensor | None = None,
        spatial_token_accdoa: torch.Tensor | None = None,
        spatial_clip_accdoa: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> SpatialQwenAudioModelOutputWithPast:
        r"""Like `Qwen2AudioModel.forward`, plus `spatial_features` `(batch, 7, mels, frames)` and
        `spatial_attention_mask` `(batch, frames)` from [`FOAFeatureExtractor`]. `input_ids` must hold one
        `<|AUDIO|>` token per audio frame (the processor expands them).

        Instead of the audio features, the audio encoders' outputs can be given (`audio_hidden_states`,
        `audio_token_lengths`, `spatial_hidden_states`, `spatial_pooled_output`, `spatial_token_accdoa`,
        `spatial_clip_accdoa`: the fields of [`SpatialAudioEncoderOutput`], e.g. from an embedding cache); the
        encoders are then not run. With name grounding (`config.spatial_name_token_ids`), `spatial_clip_accdoa` given
        to a call without audio tokens (continuing prompts from their cache: decoding, scoring options) grounds the
        names in each row with that row's clip, as a single pass over prompt and continuation would. The output
        returns the detections that grounded the call's names, so that `generate` hands them to its decoding steps.

        `cache` is the key/value cache (`past_key_values` in transformers before 5.2x, whose `generate` passes it
        under that name)."""
        cache = kwargs.pop("past_key_values", cache)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids and inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
            audio_token_mask = input_ids == self.config.audio_token_id
            if input_features is not None and audio_token_lengths is not None:
                raise ValueError("Pass either the audio features or the audio encoders' outputs, not both.")
            if (input_features is not None or audio_token_lengths is not None) and bool(audio_token_mask.any()):
                if audio_token_lengths is not None:
                    encoded = SpatialAudioEncoderOutput(
                        audio_hidden_states=audio_hidden_states,
                        audio_token_lengths=audio_token_lengths,
                        spatial_hidden_states=spatial_hidden_states,
                        spatial_pooled_output=spatial_pooled_output,
                        spatial_token_accdoa=spatial_token_accdoa,
                        spatial_clip_accdoa=spatial_clip_accdoa,
                    )
                elif feature_attention_mask is None:
                    raise ValueError("feature_attention_mask is required with input_features.")
                else:
                    encoded = self.encode_audio(
                        input_features, feature_attention_mask, spatial_features, spatial_attention_mask
                    )
                audio_embeds, num_tokens = self.project_audio(encoded), encoded.audio_token_lengths
                valid = torch.arange(audio_embeds.shape[1], device=audio_embeds.device)[None, :] < num_tokens[:, None]
                audio_embeds = audio_embeds[valid]
                if audio_embeds.shape[0] != int(audio_token_mask.sum()):
                    raise ValueError(
                        f"The text has {int(audio_token_mask.sum())} audio tokens but the audio gives "
                        f"{audio_embeds.shape[0]}; expand each <|AUDIO|> with SpatialQwenAudioProcessor."
                    )
                inputs_embeds = inputs_embeds.masked_scatter(
                    audio_token_mask[..., None].to(inputs_embeds.device),
                    audio_embeds.to(inputs_embeds.device, inputs_embeds.dtype),
                )
                if self._grounds_names:
                    spatial_clip_accdoa = encoded.spatial_clip_accdoa
                    inputs_embeds = inputs_embeds + self._name_grounding(
                        input_ids, audio_token_mask.any(-1), spatial_clip_accdoa
                    ).to(inputs_embeds.device, inputs_embeds.dtype)
            elif spatial_clip_accdoa is not None and self._grounds_names:
                # No audio in this call: it continues prompts from their key/value cache (decoding, or scoring
                # options), and the names it adds are grounded by their rows' clips, as when taught in one pass.
                rows = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
                inputs_embeds = inputs_embeds + self._name_grounding(input_ids, rows, spatial_clip_accdoa).to(
                    inputs_embeds.device, inputs_embeds.dtype
                )
        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **{CACHE_KWARG: cache},
            **kwargs,
        )
        return SpatialQwenAudioModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            **{CACHE_KWARG: getattr(outputs, CACHE_KWARG)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            attention_mask=attention_mask,
            labels=labels,
            spatial_clip_accdoa=spatial_clip_accdoa if self._grounds_names else None,
        )

    @property
    def _grounds_names(self) -> bool:
        return bool(self.config.spatial_name_token_ids) and not self.config.zero_spatial_branch

    def _name_grounding(
        self, input_ids: torch.Tensor, rows: torch.Tensor, clip_accdoa: torch.Tensor | None
    ) -> torch.Tensor:
        """The projector's name grounding for the samples `rows` (a boolean mask; zero for the others): each
        sample's clip's detections on the names in its text."""
        if clip_accdoa is None:
            raise ValueError(
                "Name grounding (config.spatial_name_token_ids) needs the spatial encoder's detections: pass "
                "spatial_clip_accdoa with the other audio encoder outputs."
            )
        if int(rows.sum()) != clip_accdoa.shape[0]:
            raise ValueError(
                f"Name grounding reads one clip per sample, but {int(rows.sum())} samples hold (or continue) audio "
                f"for {clip_accdoa.shape[0]} clips; put one clip in each sample or set "
                "config.spatial_name_token_ids to None."
            )
        mask = name_token_mask(input_ids[rows], self.config.spatial_name_token_ids)
        grounding = self.spatial_projector.ground_names(mask, clip_accdoa.to(mask.device))
        return grounding.new_zeros(*input_ids.shape, grounding.shape[-1]).index_put((rows,), grounding)


class SpatialQwenAudioForConditionalGeneration(SpatialQwenAudioPreTrainedModel, GenerationMixin):
    """SpatialQwenAudio with a language modelling head: Qwen2-Audio that also hears where sounds are (FOA).

    Load from a Qwen2-Audio checkpoint with `from_qwen2_audio(path)` or plain `from_pretrained(path)`; the spatial
    branch then starts switched off (identical logits) and is trained by the curriculum."""

    lora_target_modules = LANGUAGE_MODEL_LORA_TARGETS
    spatial_modules = SPATIAL_MODULES

    def __init__(self, config: SpatialQwenAudioConfig):
        super().__init__(config)
        self.model = SpatialQwenAudioModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def get_spatial_outputs(
        self, spatial_features: torch.Tensor, spatial_attention_mask: torch.Tensor
    ) -> SpatialEncoderOutput:
        """Spatial encoder outputs (dense map, slot/count/RT60 heads); see [`SpatialEncoderOutput`]."""
        return self.model.get_spatial_outputs(spatial_features, spatial_attention_mask)

    def set_audio_branches(self, spatial: bool = True, semantic: bool = True) -> None:
        """Controls: `spatial=False` zeroes the spatial branch (mono control, W only); `semantic=False` drops the
        Whisper branch. Stored in the config, so saved with the model."""
        self.config.zero_spatial_branch = not spatial
        self.config.drop_semantic_branch = not semantic

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        feature_attention_mask: torch.Tensor | None = None,
        spatial_features: torch.Tensor | None = None,
        spatial_attention_mask: torch.Tensor | None = None,
        audio_hidden_states: torch.Tensor | None = None,
        audio_token_lengths: torch.Tensor | None = None,
        spatial_hidden_states: torch.Tensor | None = None,
        spatial_pooled_output: torch.Tensor | None = None,
        spatial_token_accdoa: torch.Tensor | None = None,
        spatial_clip_accdoa: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> SpatialQwenAudioCausalLMOutputWithPast:
        r"""Inputs as [`SpatialQwenAudioModel.forward`]; `labels` (-100 = ignored) give the causal LM loss."""
        cache = kwargs.pop("past_key_values", cache)  # the name before transformers 5.2x (its `generate` uses it)
        outputs = self.model(
            input_ids=input_ids,
            input_features=input_features,
            attention_mask=attention_mask,
            feature_attention_mask=feature_attention_mask,
            spatial_features=spatial_features,
            spatial_attention_mask=spatial_attention_mask,
            audio_hidden_states=audio_hidden_states,
            audio_token_lengths=audio_token_lengths,
            spatial_hidden_states=spatial_hidden_states,
            spatial_pooled_output=spatial_pooled_output,
            spatial_token_accdoa=spatial_token_accdoa,
            spatial_clip_accdoa=spatial_clip_accdoa,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        return SpatialQwenAudioCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            **{CACHE_KWARG: getattr(outputs, CACHE_KWARG)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            attention_mask=attention_mask,
            spatial_clip_accdoa=outputs.spatial_clip_accdoa,
        )

    def _update_model_kwargs_for_generation(self, outputs: ModelOutput, model_kwargs: dict, *args, **kwargs) -> dict:
        # The first step's detections (computed from the audio features, or given) ground the names decoded later:
        # the decoding steps hold no audio tokens to compute them from.
        model_kwargs = super()._update_model_kwargs_for_generation(outputs, model_kwargs, *args, **kwargs)
        if getattr(outputs, "spatial_clip_accdoa", None) is not None:
            model_kwargs["spatial_clip_accdoa"] = outputs.spatial_clip_accdoa
        return model_kwargs


__all__ = [
    "AUDIO_ENCODER_OUTPUT_KEYS",
    "CACHE_KWARG",
    "LANGUAGE_MODEL_LORA_TARGETS",
    "SPATIAL_MODULES",
    "SpatialAudioEncoderOutput",
    "SpatialEncoder",
    "SpatialEncoderOutput",
    "SpatialHybridProjector",
    "SpatialQwenAudioCausalLMOutputWithPast",
    "SpatialQwenAudioForConditionalGeneration",
    "SpatialQwenAudioModel",
    "SpatialQwenAudioModelOutputWithPast",
    "SpatialQwenAudioPreTrainedModel",
    "name_token_mask",
]
