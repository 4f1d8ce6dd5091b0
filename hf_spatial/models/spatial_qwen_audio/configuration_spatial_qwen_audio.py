"""SpatialQwenAudio configuration: Qwen2-Audio plus the spatial (FOA) branch.

This file is copied next to checkpoints for `trust_remote_code` loading: it imports only transformers and
huggingface_hub (a transformers dependency).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import Qwen2AudioConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto import AutoConfig

# The text backbone of Qwen/Qwen2-Audio-7B(-Instruct) (its config.json sets only these; the rest are Qwen2Config
# defaults: hidden 4096, 32 layers, 32 heads, 32 key/value heads).
QWEN2_AUDIO_7B_TEXT_CONFIG = {
    "vocab_size": 156032,
    "intermediate_size": 11008,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-05,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}

# Auto classes a saved checkpoint maps to the remote-code classes (`auto_map` in config.json).
MODEL_AUTO_MAP = {
    "AutoConfig": "configuration_spatial_qwen_audio.SpatialQwenAudioConfig",
    "AutoModel": "modeling_spatial_qwen_audio.SpatialQwenAudioModel",
    "AutoModelForMultimodalLM": "modeling_spatial_qwen_audio.SpatialQwenAudioForConditionalGeneration",
    "AutoModelForCausalLM": "modeling_spatial_qwen_audio.SpatialQwenAudioForConditionalGeneration",
}


@strict
class SpatialQwenAudioConfig(Qwen2AudioConfig):
    r"""Configuration of [`SpatialQwenAudioForConditionalGeneration`]: a Qwen2-Audio model (Whisper encoder, projector,
    Qwen2 language model) with a spatial encoder over First-Order Ambisonics features and a dense hybrid projector.

    With no arguments it is the real Qwen2-Audio-7B size (128 mel bins, Whisper-large encoder, 7B Qwen2 LM) plus the
    default spatial branch. Every Qwen2-Audio config is accepted as is; the fields below add the spatial branch.

    Args:
        spatial_num_channels (`int`, defaults to 7):
            Feature maps per frame from `FOAFeatureExtractor`: 4 log-mels (W, Y, Z, X) + 3 normalised active
            intensity components (x, y, z).
        spatial_num_mel_bins (`int`, defaults to 64): Mel bands of the spatial features.
        spatial_frames_per_token (`int`, defaults to 4): Spatial frames (100 Hz) per audio token (25 Hz).
        spatial_conv_channels (`list[int]`, defaults to `[32, 64, 128]`): Channels of the CNN front end blocks.
        spatial_hidden_size (`int`, defaults to 256): Width of the spatial encoder (Conformer) and its dense map.
        spatial_num_layers (`int`, defaults to 4): Conformer blocks.
        spatial_num_heads (`int`, defaults to 4): Attention heads of the Conformer blocks and slot decoder.
        spatial_ffn_dim (`int`, defaults to 1024): Feed-forward width of the Conformer blocks.
        spatial_conv_kernel_size (`int`, defaults to 15): Depthwise convolution kernel of the Conformer blocks.
        spatial_dropout (`float`, defaults to 0.1): Dropout inside the spatial encoder and projector experts.
        spatial_num_slots (`int`, defaults to 3): Source slots of the auxiliary heads (max sources per scene).
        spatial_direction_refinement (`list[float]`, defaults to `[]`):
            Concentrations (von Mises-Fisher kappa, one per step) of the mean-shift steps that refine each slot's
            direction on the measured per-bin intensity directions of the frames the slot is active in, slots in
            order of presence, each discounting the bins an earlier slot explained. Parameter-free; empty: the
            slots' directions are the pooled ACCDOA map's.
        spatial_num_classes (`int`, defaults to 13): Sound classes of the slot class head.
        spatial_class_names (`list[str]`, *optional*): Names of those classes, in head order.
        spatial_name_token_ids (`list[list[list[int]]]`, *optional*):
            For each slot class, in head order, the token sequences that name it in text (e.g. its phrase with and
            without a leading space; [`SpatialQwenAudioProcessor.name_token_ids`] makes them). Where one occurs in
            the text of a sample with audio, the projector's name grounding adds that class's detection (its
            direction as the slots heard it) to those tokens, so a question about a named sound carries where that
            sound is. None: no grounding.
        projector_expert_size (`int`, defaults to 256): Output width of each spatial/fusion expert.
        projector_bottleneck_size (`int`, defaults to 512): Bottleneck of the hybrid projector's MLP.
        zero_spatial_branch (`bool`, defaults to `False`):
            Mono control: the spatial contribution is zeroed, so outputs depend on the W channel only.
        drop_semantic_branch (`bool`, defaults to `False`):
            Control: the Whisper (semantic) branch is dropped; audio tokens carry the spatial branch only.
    """

    model_type = "spatial_qwen_audio"
    sub_configs_defaults = {  # noqa: RUF012 (transformers class attribute)
        **Qwen2AudioConfig.sub_configs_defaults,
        "text_config": SubConfigSpec(
            config_class=AutoConfig, model_type="qwen2", init_kwargs=dict(QWEN2_AUDIO_7B_TEXT_CONFIG)
        ),
    }

    spatial_num_channels: int = 7
    spatial_num_mel_bins: int = 64
    spatial_frames_per_token: int = 4
    spatial_conv_channels: list[int] | tuple[int, ...] = (32, 64, 128)
    spatial_hidden_size: int = 256
    spatial_num_layers: int = 4
    spatial_num_heads: int = 4
    spatial_ffn_dim: int = 1024
    spatial_conv_kernel_size: int = 15
    spatial_dropout: float | int = 0.1
    spatial_num_slots: int = 3
    spatial_direction_refinement: list[float] | tuple[float, ...] = ()
    spatial_num_classes: int = 13
    spatial_class_names: list[str] | None = None
    spatial_name_token_ids: list[list[list[int]]] | None = None
    projector_expert_size: int = 256
    projector_bottleneck_size: int = 512
    zero_spatial_branch: bool = False
    drop_semantic_branch: bool = False

    def __post_init__(self, **kwargs):
        self.spatial_conv_channels = list(self.spatial_conv_channels)
        self.spatial_direction_refinement = [float(kappa) for kappa in self.spatial_direction_refinement]
        if any(kappa <= 0 for kappa in self.spatial_direction_refinement):
            raise ValueError(
                f"spatial_direction_refinement {self.spatial_direction_refinement} must hold positive concentrations "
                "(e.g. [10, 30, 60]; [] for none)."
            )
        if self.spatial_class_names is not None and len(self.spatial_class_names) != self.spatial_num_classes:
            raise ValueError(
                f"spatial_class_names has {len(self.spatial_class_names)} names but spatial_num_classes is "
                f"{self.spatial_num_classes}; give one name per class."
            )
        if self.spatial_name_token_ids is not None and len(self.spatial_name_token_ids) != self.spatial_num_classes:
            raise ValueError(
                f"spatial_name_token_ids has {len(self.spatial_name_token_ids)} entries but spatial_num_classes is "
                f"{self.spatial_num_classes}; give the token sequences of each class's name (possibly none)."
            )
        if self.spatial_hidden_size % self.spatial_num_heads:
            raise ValueError(
                f"spatial_hidden_size ({self.spatial_hidden_size}) must be divisible by spatial_num_heads "
                f"({self.spatial_num_heads})."
            )
        super().__post_init__(**kwargs)

    @classmethod
    def from_qwen2_audio_config(cls, config: Qwen2AudioConfig | dict, **spatial_kwargs) -> SpatialQwenAudioConfig:
        """Build a config from a Qwen2-Audio one (object or dict), keeping every base field; spatial fields from
        `spatial_kwargs` or the defaults."""
        config_dict = config.to_dict() if not isinstance(config, dict) else dict(config)
        for key in ("model_type", "auto_map", "transformers_version", "architectures"):
            config_dict.pop(key, None)
        return cls(**config_dict, **spatial_kwargs)


__all__ = ["SpatialQwenAudioConfig"]
