"""FOA feature extractor: Whisper log-mels of the W channel (semantic path) + spatial features (spatial path).

Copied next to checkpoints for `trust_remote_code` loading: imports only transformers, torch, numpy and the
relative `foa_format` module (the one definition of the FOA channel format).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from transformers import WhisperFeatureExtractor
from transformers.audio_utils import mel_filter_bank
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import logging

from .foa_format import FOA_FORMATS, NUM_FOA_CHANNELS, W, X, Y, Z, to_ambix

logger = logging.get_logger(__name__)

# Float samples are expected in [-1, 1]. A peak this far above full scale (+24 dB) is integer PCM stored as floats
# (int16 reaches 32767) or broken audio; it would shift every log-mel (and overflow the band powers near 1e19).
MAX_PEAK_AMPLITUDE = 16.0


def audio_token_count(num_feature_frames: int | np.ndarray | torch.Tensor):
    """Audio tokens (25 Hz) Qwen2-Audio's encoder makes from `num_feature_frames` valid Whisper frames (100 Hz):
    conv stride 2 then average pool 2, exactly as `Qwen2AudioEncoder._get_feat_extract_output_lengths`."""
    return ((num_feature_frames - 1) // 2 + 1 - 2) // 2 + 1


def _kaiser_lowpass(num_taps: int, cutoff: float, beta: float = 5.0) -> np.ndarray:
    """Windowed-sinc low-pass FIR, unit DC gain; `cutoff` relative to Nyquist (scipy `firwin` with a Kaiser window)."""
    m = np.arange(num_taps) - (num_taps - 1) / 2
    taps = cutoff * np.sinc(cutoff * m) * np.kaiser(num_taps, beta)
    return taps / taps.sum()


def resample_poly(signal: np.ndarray, up: int, down: int) -> np.ndarray:
    """Polyphase resampling along the last axis by `up / down`, equal to `scipy.signal.resample_poly(signal, up,
    down, axis=-1)` with its defaults (Kaiser beta 5 filter, zero padding) up to float rounding. Returns float32.

    Written here because remote code may not import scipy."""
    divisor = math.gcd(up, down)
    up, down = up // divisor, down // divisor
    signal = np.asarray(signal, dtype=np.float32)
    if up == down == 1:
        return signal.copy()
    num_in = signal.shape[-1]
    num_out = -(-num_in * up // down)
    max_rate = max(up, down)
    half_len = 10 * max_rate
    taps = _kaiser_lowpass(2 * half_len + 1, 1.0 / max_rate) * up
    pre_pad = down - half_len % down
    pre_remove = (half_len + pre_pad) // down
    taps = np.concatenate([np.zeros(pre_pad), taps])
    # `upfirdn` output i is sum_k taps[k] * upsampled[i * down - k]; only every up-th upsampled sample is non-zero,
    # so output i is the convolution of the input with the polyphase branch taps[phase::up] at input index base.
    outputs = np.arange(pre_remove, pre_remove + num_out) * down
    phase, base = outputs % up, outputs // up
    rows = signal.reshape(-1, num_in).astype(np.float64)
    out = np.zeros((rows.shape[0], num_out))
    for p in np.unique(phase):
        branch, chosen = taps[p::up], phase == p
        index = base[chosen]
        inside = index < num_in + len(branch) - 1  # past the end of the full convolution the output is zero
        for row, samples in enumerate(rows):
            out[row, np.flatnonzero(chosen)[inside]] = np.convolve(samples, branch)[index[inside]]
    return out.reshape(*signal.shape[:-1], num_out).astype(np.float32)


def _whole_hertz(sampling_rate) -> int:
    """`sampling_rate` as an int: a positive whole number of Hz (24000 or 24000.0), else a clear error."""
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, int | float | np.integer | np.floating):
        raise ValueError(f"sampling_rate must be a number of Hz such as 24000, got {sampling_rate!r}.")
    if not (math.isfinite(sampling_rate) and sampling_rate > 0 and float(sampling_rate).is_integer()):
        raise ValueError(f"sampling_rate must be a positive whole number of Hz such as 24000, got {sampling_rate!r}.")
    return int(sampling_rate)


class FOAFeatureExtractor(SequenceFeatureExtractor):
    r"""Feature extractor for First-Order Ambisonics (FOA) clips, for [`SpatialQwenAudioForConditionalGeneration`].

    Input: one clip of shape `(4, num_samples)` (AmbiX: ACN order W, Y, Z, X, SN3D; or FuMa with
    `input_format="fuma"`), at 24 kHz (native), 16 kHz (native) or any rate with `resample=True`; or a list / a
    `(batch, 4, num_samples)` array of clips. Clips longer than `chunk_length` (30 s) are refused.

    Outputs:
    - `input_features` `(batch, feature_size, 3000)` and `feature_attention_mask` `(batch, 3000)`: exactly what
      Qwen2-Audio's `WhisperFeatureExtractor` gives for the W channel at 16 kHz (24 kHz W is resampled with a
      2/3 polyphase filter equal to `scipy.signal.resample_poly(w, 2, 3)`).
    - `spatial_features` `(batch, 7, spatial_num_mel_bins, frames)` at 100 Hz (hop 10 ms at 24 kHz), computed at
      24 kHz whatever the input rate: channels 0-3 are log-mels of W, Y, Z, X (one common dynamic range per clip,
      so channel level ratios are kept; scaled like Whisper's); channels 4-6 are the active intensity vector
      (x, y, z) = Re(conj(W) [X, Y, Z]) summed over each mel band and divided by the band energy
      (|W|^2 + |X|^2 + |Y|^2 + |Z|^2) / 2, so it is the source direction unit vector for a single plane wave and
      shrinks towards zero in diffuse sound. Each clip gets exactly 4 frames per 25 Hz audio token (trailing
      frames are cut or zero-padded); `spatial_attention_mask` `(batch, frames)` marks valid frames, the batch is
      padded to its longest clip (not to 30 s).
    """

    model_input_names = [  # noqa: RUF012
        "input_features",
        "feature_attention_mask",
        "spatial_features",
        "spatial_attention_mask",
    ]

    def __init__(
        self,
        feature_size: int = 128,
        # = hf_spatial.conventions.SAMPLE_RATE: remote code loads this folder without the package, so not imported.
        sampling_rate: int = 24000,
        semantic_sampling_rate: int = 16000,
        hop_length: int = 160,
        chunk_length: int = 30,
        n_fft: int = 400,
        padding_value: float = 0.0,
        spatial_num_mel_bins: int = 64,
        spatial_n_fft: int = 512,
        spatial_win_length: int = 480,
        spatial_hop_length: int = 240,
        spatial_min_frequency: float = 50.0,
        spatial_max_frequency: float | None = None,
        spatial_frames_per_token: int = 4,
        input_format: str = "ambix",
        return_attention_mask: bool = True,
        **kwargs,
    ):
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        if input_format not in FOA_FORMATS:
            raise ValueError(f"input_format must be one of {FOA_FORMATS}, got {input_format!r}.")
        if spatial_hop_length * spatial_frames_per_token * semantic_sampling_rate != (hop_length * 4 * sampling_rate):
            raise ValueError(
                "spatial frames must tile the 25 Hz audio tokens exactly: spatial_hop_length * "
                "spatial_frames_per_token / sampling_rate must equal 4 * hop_length / semantic_sampling_rate."
            )
        self.semantic_sampling_rate = semantic_sampling_rate
        self.hop_length = hop_length
        self.chunk_length = chunk_length
        self.n_fft = n_fft
        self.spatial_num_mel_bins = spatial_num_mel_bins
        self.spatial_n_fft = spatial_n_fft
        self.spatial_win_length = spatial_win_length
        self.spatial_hop_length = spatial_hop_length
        self.spatial_min_frequency = spatial_min_frequency
        self.spatial_max_frequency = spatial_max_frequency
        self.spatial_frames_per_token = spatial_frames_per_token
        self.input_format = input_format
        self._whisper = WhisperFeatureExtractor(
            feature_size=feature_size,
            sampling_rate=semantic_sampling_rate,
            hop_length=hop_length,
            chunk_length=chunk_length,
            n_fft=n_fft,
            padding_value=padding_value,
            return_attention_mask=True,
        )
        self._spatial_mel_filters = torch.from_numpy(
            mel_filter_bank(
                num_frequency_bins=spatial_n_fft // 2 + 1,
                num_mel_filters=spatial_num_mel_bins,
                min_frequency=spatial_min_frequency,
                max_frequency=spatial_max_frequency or sampling_rate / 2,
                sampling_rate=sampling_rate,
                norm="slaney",
                mel_scale="slaney",
            ).T.astype(np.float32)
        )
        self._spatial_window = torch.hann_window(spatial_win_length)

    def to_dict(self) -> dict:
        output = super().to_dict()
        for key in ("_whisper", "_spatial_mel_filters", "_spatial_window"):
            output.pop(key, None)
        return output

    @property
    def max_duration_s(self) -> float:
        return float(self.chunk_length)

    def _as_clip_list(self, raw_foa) -> list[np.ndarray]:
        if isinstance(raw_foa, torch.Tensor):
            raw_foa = raw_foa.detach().cpu().numpy()
        if isinstance(raw_foa, np.ndarray):
            if raw_foa.ndim == 3:
                return list(raw_foa)
            return [raw_foa]
        if isinstance(raw_foa, Sequence) and not isinstance(raw_foa, str) and len(raw_foa) > 0:
            return [clip.detach().cpu().numpy() if isinstance(clip, torch.Tensor) else clip for clip in raw_foa]
        raise ValueError(
            "FOAFeatureExtractor expects a (4, num_samples) array, a (batch, 4, num_samples) array or a non-empty "
            f"list of (4, num_samples) arrays; got {type(raw_foa).__name__}."
        )

    def _validate_clip(self, clip, index: int, sampling_rate: int) -> np.ndarray:
        clip = np.asarray(clip)
        where = f"clip {index}"
        if clip.ndim != 2 or clip.shape[0] != NUM_FOA_CHANNELS:
            hint = (
                " It looks like (num_samples, 4) (soundfile's layout): pass its transpose `foa.T`."
                if clip.ndim == 2 and clip.shape[1] == NUM_FOA_CHANNELS
                else " Mono or stereo audio has no FOA direction information."
            )
            raise ValueError(
                f"{where}: expected First-Order Ambisonics of shape (4, num_samples), got shape {clip.shape}.{hint}"
            )
        if not np.issubdtype(clip.dtype, np.floating):
            raise ValueError(f"{where}: expected floating-point samples in [-1, 1], got dtype {clip.dtype}.")
        if not np.isfinite(clip).all():
            raise ValueError(f"{where}: contains NaN or Inf samples; clean or re-render the audio.")
        peak = float(np.abs(clip).max()) if clip.size else 0.0
        if peak > MAX_PEAK_AMPLITUDE:
            raise ValueError(
                f"{where}: peak amplitude {peak:.4g} is far above full scale (1.0); floating-point audio must lie in "
                "[-1, 1]. Integer PCM samples stored as floats? Divide them by 32768 (16-bit), 8388608 (24-bit) or "
                "2147483648 (32-bit)."
            )
        duration = clip.shape[1] / sampling_rate
        if duration > self.chunk_length:
            raise ValueError(
                f"{where}: {duration:.2f} s is longer than the {self.chunk_length} s the Whisper encoder takes; "
                "split it into chunks of at most that length."
            )
        min_samples = math.ceil(3 * self.hop_length * sampling_rate / self.semantic_sampling_rate)
        if clip.shape[1] < min_samples:
            raise ValueError(
                f"{where}: {clip.shape[1]} samples is too short to make one audio token "
                f"(needs at least {min_samples} samples at {sampling_rate} Hz)."
            )
        return clip.astype(np.float32, copy=False)

    def _resample(self, clip: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
        return clip if from_rate == to_rate else resample_poly(clip, to_rate, from_rate)

    def __call__(
        self,
        raw_foa,
        sampling_rate: int | None = None,
        input_format: str | None = None,
        resample: bool = False,
        return_tensors: str | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Extract features from FOA clip(s); see the class docstring.

        Args:
            raw_foa: `(4, T)` array/tensor, `(batch, 4, T)` array, or list of `(4, T)` arrays.
            sampling_rate: rate of `raw_foa` in Hz. 24000 and 16000 are native; any other rate needs
                `resample=True`. Defaults to `self.sampling_rate` (24000) with a warning.
            input_format: "ambix" (W, Y, Z, X, SN3D) or "fuma" (W, X, Y, Z, W at -3 dB); defaults to
                `self.input_format`.
            resample: allow input at a rate other than 24 or 16 kHz (polyphase resampling).
            return_tensors: "pt", "np" or None (numpy arrays).
            **kwargs: processor/Whisper options such as `padding` or `return_attention_mask`; ignored because the
                layout is fixed (semantic features always padded to `chunk_length`, masks always returned).
        """
        sampling_rate, clips = self._prepare(raw_foa, sampling_rate, input_format, resample)
        w_semantic = [self._resample(clip[W], sampling_rate, self.semantic_sampling_rate) for clip in clips]
        input_features, feature_attention_mask = self.semantic_features(w_semantic)
        num_tokens = audio_token_count(feature_attention_mask.sum(-1))

        spatial_clips = [self._resample(clip, sampling_rate, self.sampling_rate) for clip in clips]
        spatial_features, spatial_attention_mask = self.spatial_features(spatial_clips, num_tokens)

        data = {
            "input_features": input_features,
            "feature_attention_mask": feature_attention_mask,
            "spatial_features": spatial_features.numpy(),
            "spatial_attention_mask": spatial_attention_mask.numpy(),
        }
        return BatchFeature(data, tensor_type=return_tensors)

    def _prepare(self, raw_foa, sampling_rate, input_format, resample) -> tuple[int, list[np.ndarray]]:
        """Checked rate and validated AmbiX clips (see `__call__`)."""
        if sampling_rate is None:
            logger.warning_once(
                f"No sampling_rate passed to {type(self).__name__}; assuming {self.sampling_rate} Hz. Pass "
                "`sampling_rate=` to catch mismatched audio."
            )
            sampling_rate = self.sampling_rate
        sampling_rate = _whole_hertz(sampling_rate)
        native_rates = (self.sampling_rate, self.semantic_sampling_rate)
        if sampling_rate not in native_rates and not resample:
            raise ValueError(
                f"FOA input at {sampling_rate} Hz: this extractor takes {self.sampling_rate} Hz or "
                f"{self.semantic_sampling_rate} Hz. Resample the audio, or pass `resample=True` to resample it here."
            )
        input_format = input_format or self.input_format
        clips = [
            to_ambix(self._validate_clip(clip, index, sampling_rate), input_format)
            for index, clip in enumerate(self._as_clip_list(raw_foa))
        ]
        return sampling_rate, clips

    def extract_spatial(
        self,
        raw_foa,
        sampling_rate: int | None = None,
        input_format: str | None = None,
        resample: bool = False,
        return_tensors: str | None = None,
    ) -> BatchFeature:
        """Only `spatial_features` and `spatial_attention_mask`, equal to `__call__`'s (same arguments), without the
        Whisper log-mels: what the spatial encoder alone reads (its training stage)."""
        sampling_rate, clips = self._prepare(raw_foa, sampling_rate, input_format, resample)
        # Whisper's mask marks ceil(samples at 16 kHz / hop) frames (resample_poly's output length is the ceiling).
        rate = self.semantic_sampling_rate
        semantic_samples = np.array([-(-clip.shape[1] * rate // sampling_rate) for clip in clips])
        max_frames = self.chunk_length * self.semantic_sampling_rate // self.hop_length
        num_tokens = audio_token_count(np.minimum(-(-semantic_samples // self.hop_length), max_frames))
        spatial_clips = [self._resample(clip, sampling_rate, self.sampling_rate) for clip in clips]
        features, mask = self.spatial_features(spatial_clips, num_tokens)
        data = {"spatial_features": features.numpy(), "spatial_attention_mask": mask.numpy()}
        return BatchFeature(data, tensor_type=return_tensors)

    def semantic_features(self, waveforms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Whisper log-mels of mono 16 kHz `waveforms` padded to `chunk_length`, equal to `WhisperFeatureExtractor`'s
        with `padding="max_length"`, and their frame mask: `(batch, feature_size, frames)`, `(batch, frames)`.

        Only the frames that real samples reach are computed. Whisper pads with zeros, and every later frame is the
        log-mel of silence, which its normalisation maps to the constant max(-1.5, clip maximum - 2); computing a 30-s
        window for a 5-s clip would spend 5/6 of the work on that constant."""
        max_frames = self.chunk_length * self.semantic_sampling_rate // self.hop_length
        longest = max(len(waveform) for waveform in waveforms)
        # Frames whose window (half of n_fft on each side) reaches a real sample, plus the reflection Whisper's
        # centred STFT makes at the end of the padded signal, which must fall on zeros as it does in the full window.
        needed = min(max_frames, -(-(longest + self.n_fft // 2 + 1) // self.hop_length) + 1)
        semantic = self._whisper(
            waveforms,
            sampling_rate=self.semantic_sampling_rate,
            padding="max_length",
            max_length=needed * self.hop_length,
            return_attention_mask=True,
            return_tensors="np",
        )
        computed = semantic["input_features"].astype(np.float32)
        silence = np.maximum(computed.max(axis=(1, 2)) - 2.0, -1.5).astype(np.float32)
        features = np.broadcast_to(silence[:, None, None], (len(waveforms), self.feature_size, max_frames)).copy()
        features[:, :, :needed] = computed
        mask = np.zeros((len(waveforms), max_frames), dtype=np.int32)
        mask[:, :needed] = semantic["attention_mask"]
        return features, mask

    @torch.no_grad()
    def spatial_features(self, clips: list[np.ndarray], num_tokens: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Spatial features of AmbiX clips at `self.sampling_rate`, `spatial_frames_per_token` frames per token.

        Returns `(features (batch, 7, mels, frames), mask (batch, frames))`, padded to the longest clip."""
        frames = [int(n) * self.spatial_frames_per_token for n in num_tokens]
        max_frames = max(frames)
        # Centred frames (frame k is centred on sample k * hop): zero-pad half a window on each side ourselves, which is
        # cheaper than torch.stft's reflection padding; 1 + length // hop frames, so pad every clip to all its frames.
        length = max(max(clip.shape[1] for clip in clips), (max_frames - 1) * self.spatial_hop_length)
        half = self.spatial_n_fft // 2
        audio = torch.zeros(len(clips), NUM_FOA_CHANNELS, length + 2 * half)
        for index, clip in enumerate(clips):
            audio[index, :, half : half + clip.shape[1]] = torch.from_numpy(clip)
        spectrum = torch.stft(
            audio.reshape(-1, audio.shape[-1]),
            n_fft=self.spatial_n_fft,
            hop_length=self.spatial_hop_length,
            win_length=self.spatial_win_length,
            window=self._spatial_window,
            center=False,
            return_complex=True,
        )
        parts = torch.view_as_real(spectrum)[:, :, :max_frames]
        parts = parts.reshape(len(clips), NUM_FOA_CHANNELS, *parts.shape[1:])
        real, imag = parts[..., 0], parts[..., 1]  # (batch, channel, freq, frame)
        mel = self._spatial_mel_filters
        band_power = torch.matmul(mel, real.square() + imag.square())
        # Active intensity Re(conj(W) V) for V = X, Y, Z (listener axes x, y, z), summed per band, divided by the band
        # energy (|W|^2 + |X|^2 + |Y|^2 + |Z|^2) / 2 (mel projection is linear, so the band sum of the powers).
        # (channels 1..3 in storage order, reordered to x, y, z after the small mel projection)
        intensity = torch.addcmul(real[:, W, None] * real[:, 1:], imag[:, W, None], imag[:, 1:])
        band_intensity = torch.matmul(mel, intensity)[:, [axis - 1 for axis in (X, Y, Z)]]
        band_intensity = band_intensity / (band_power.sum(dim=1, keepdim=True) / 2.0 + 1e-10)

        mask = (torch.arange(max_frames)[None, :] < torch.tensor(frames)[:, None]).to(torch.int32)
        valid = mask[:, None, None, :].bool()
        log_mel = band_power.clamp_min(1e-10).log10()
        clip_max = log_mel.masked_fill(~valid, -10.0).amax(dim=(1, 2, 3), keepdim=True)
        log_mel = (torch.maximum(log_mel, clip_max - 8.0) + 4.0) / 4.0

        features = torch.cat([log_mel, band_intensity], dim=1) * valid
        return features.float(), mask


__all__ = ["FOAFeatureExtractor", "audio_token_count", "resample_poly"]
