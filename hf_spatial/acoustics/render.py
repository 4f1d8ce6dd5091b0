"""FOA rendering of a `SceneSpec`: room impulse responses, source placement, diffuse noise, safe output gain.

Two modes (`SceneSpec.render_mode`):

- `exact`: pyroomacoustics' image-source method up to the order `rooms.wall_absorption` gives, with a coincident
  omni and three figure-of-eight microphones along +y, +z, +x; their gains are exactly the SN3D AmbiX gains
  (W, Y, Z, X) of every image source.
- `hybrid`: the same image sources up to order `HYBRID_ORDER`, plus a statistical late tail standing in for every
  image of higher order. In a shoebox the images of a source fill space with density 1/V; an image at distance R in
  direction u has undergone about n(u, R) = R (|u_x|/L_x + |u_y|/L_y + |u_z|/L_z) reflections, and pyroomacoustics
  gives it amplitude (1 - a)^(n/2) / R. So the expected energy arriving per second from direction u is
  4 pi c / V * (1 - a)^n(u, ct) (per unit solid angle, normalised over the sphere), counted here only where
  n > HYBRID_ORDER (those images are missing from the early part). The tail draws Gaussian samples with that
  energy envelope, each from a direction drawn with those weights, and encodes them as plane waves. It therefore
  has the decay (including the non-exponential, axis-dependent decay of a shoebox) and the channel energies
  (W:Y:Z:X, anisotropic in flat rooms) of the exact image sources, and the early part is identical to exact.
  `scripts/compare_hybrid_exact.py` measures the residual differences.

Rendering is deterministic: noise and tails are drawn from generators seeded by `SceneSpec.seed`.
"""

from __future__ import annotations

import numpy as np

from hf_spatial.acoustics.rooms import SPEED_OF_SOUND, SPHERE_DIRECTIONS, reflections_per_metre, wall_absorption
from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.acoustics.sources import SourceBank

HYBRID_ORDER = 3
HIGHPASS_HZ = 10.0
OUTPUT_PEAK_DBFS = -1.0  # clipping-safe normalisation: the rendered peak never exceeds this
_TAIL_BLOCK = 256  # samples per block over which the tail's direction weights are held constant
_TAIL_FLOOR_DB = -90.0  # the tail stops this far below its first block's level


def _foa_gains(directions: np.ndarray) -> np.ndarray:
    """(K, 3) unit vectors (x, y, z) -> (4, K) SN3D AmbiX gains W, Y, Z, X."""
    return np.stack([np.ones(len(directions)), directions[:, 1], directions[:, 2], directions[:, 0]])


def image_source_rirs(scene: SceneSpec, max_order: int) -> list[np.ndarray]:
    """One (4, L) AmbiX RIR per source from pyroomacoustics' image-source method, time 0 = emission."""
    import pyroomacoustics as pra
    from pyroomacoustics.directivities import CardioidFamily

    absorption, _ = wall_absorption(scene.room.rt60, scene.room.dimensions)
    room = pra.ShoeBox(
        list(scene.room.dimensions),
        fs=scene.sample_rate,
        materials=pra.Material(absorption),
        max_order=max_order,
        air_absorption=False,
    )
    for index in range(len(scene.sources)):
        room.add_source(scene.source_position(index).tolist())
    # AmbiX order W, Y, Z, X: omni, then figure-of-eights along +y, +z, +x (gains = SN3D spherical harmonics).
    axes = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0])
    patterns = [CardioidFamily(orientation=np.array(axis), p=1.0 if i == 0 else 0.0) for i, axis in enumerate(axes)]
    positions = np.tile(np.asarray(scene.room.listener_position)[:, None], (1, 4))
    room.add_microphone_array(pra.MicrophoneArray(positions, scene.sample_rate, directivity=patterns))
    # pyroomacoustics high-passes each RIR with a zero-phase (non-causal) filter, which would let the late part
    # change the direct path; `scene_rirs` applies a causal high-pass to the finished RIR instead.
    hpf_enabled = pra.constants.get("rir_hpf_enable")
    pra.constants.set("rir_hpf_enable", False)
    try:
        room.compute_rir()
    finally:
        pra.constants.set("rir_hpf_enable", hpf_enabled)
    delay = pra.constants.get("frac_delay_length") // 2  # pyroomacoustics' fractional-delay filter latency
    rirs = []
    for source in range(len(scene.sources)):
        length = max(len(room.rir[mic][source]) for mic in range(4))
        rir = np.zeros((4, length))
        for mic in range(4):
            rir[mic, : len(room.rir[mic][source])] = room.rir[mic][source]
        rirs.append(rir[:, delay:])
    return rirs


def late_tail(
    dimensions: tuple[float, float, float],
    rt60: float,
    early_order: int,
    num_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(4, num_samples) statistical FOA tail of every image source of order > `early_order` (module docstring)."""
    absorption, _ = wall_absorption(rt60, dimensions)
    per_metre = reflections_per_metre(dimensions)
    log_reflection = np.log1p(-absorption)
    energy_per_sample = 4.0 * np.pi * SPEED_OF_SOUND / (float(np.prod(dimensions)) * sample_rate)
    decay_per_sample = 3.0 * np.log(10.0) / (rt60 * sample_rate)  # within-block amplitude slope at the RT60
    gains = _foa_gains(SPHERE_DIRECTIONS)
    tail = np.zeros((4, num_samples))
    # No image of order > early_order arrives before this distance.
    first = int((early_order + 0.5) / per_metre.max() / SPEED_OF_SOUND * sample_rate)
    first_level = None
    for start in range(first - first % _TAIL_BLOCK, num_samples, _TAIL_BLOCK):
        stop = min(start + _TAIL_BLOCK, num_samples)
        centre = (start + stop) / 2.0
        reflections = SPEED_OF_SOUND * centre / sample_rate * per_metre
        weights = np.exp(log_reflection * reflections) * (reflections > early_order + 0.5)
        level = energy_per_sample * weights.mean()
        if level <= 0.0:
            continue
        first_level = first_level or level
        if 10.0 * np.log10(level / first_level) < _TAIL_FLOOR_DB:
            break
        envelope = np.sqrt(level) * np.exp(-decay_per_sample * (np.arange(start, stop) - centre))
        directions = rng.choice(len(SPHERE_DIRECTIONS), size=stop - start, p=weights / weights.sum())
        tail[:, start:stop] = gains[:, directions] * (rng.standard_normal(stop - start) * envelope)
    return tail


def scene_rirs(scene: SceneSpec, mode: str | None = None, anechoic: bool = False) -> list[np.ndarray]:
    """One (4, L) AmbiX RIR per source; `anechoic` keeps only the direct path (for checks and dry renders)."""
    from scipy.signal import butter, sosfilt

    mode = mode or scene.render_mode
    if mode not in ("exact", "hybrid"):
        raise ValueError(f"Unknown render mode {mode!r}; expected 'exact' or 'hybrid'.")
    _, exact_order = wall_absorption(scene.room.rt60, scene.room.dimensions)
    if anechoic:
        rirs = image_source_rirs(scene, max_order=0)
    elif mode == "exact":
        rirs = image_source_rirs(scene, max_order=exact_order)
    else:
        rirs = _hybrid_rirs(scene, exact_order)
    # Causal DC blocker (the image-source sum has a DC offset); causal, so the direct path is left untouched.
    sos = butter(2, HIGHPASS_HZ, btype="highpass", fs=scene.sample_rate, output="sos")
    return [sosfilt(sos, rir, axis=1) for rir in rirs]


def _hybrid_rirs(scene: SceneSpec, exact_order: int) -> list[np.ndarray]:
    early_order = min(HYBRID_ORDER, exact_order)
    rirs = image_source_rirs(scene, max_order=early_order)
    num_samples = round(scene.duration * scene.sample_rate)
    rng = np.random.default_rng([scene.seed, 1])
    hybrid = []
    for rir in rirs:
        tail = late_tail(scene.room.dimensions, scene.room.rt60, early_order, num_samples, scene.sample_rate, rng)
        length = max(rir.shape[1], tail.shape[1])
        combined = np.zeros((4, length))
        combined[:, : rir.shape[1]] += rir
        combined[:, : tail.shape[1]] += tail
        hybrid.append(combined)
    return hybrid


def diffuse_noise(kind: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """(4, T) diffuse FOA noise with unit W power: independent channels, X/Y/Z each 1/3 of W's energy (SN3D)."""
    noise = rng.standard_normal((4, num_samples))
    if kind == "diffuse_pink":
        spectrum = np.fft.rfft(noise, axis=1)
        frequencies = np.arange(spectrum.shape[1], dtype=np.float64)
        spectrum /= np.sqrt(np.maximum(frequencies, 1.0))
        noise = np.fft.irfft(spectrum, n=num_samples, axis=1)
    elif kind != "diffuse_white":
        raise ValueError(f"Unknown noise kind {kind!r}.")
    noise /= np.sqrt(np.mean(noise**2, axis=1, keepdims=True))
    noise[1:] /= np.sqrt(3.0)
    return noise


def render_scene(scene: SceneSpec, bank: SourceBank, mode: str | None = None, anechoic: bool = False) -> np.ndarray:
    """Render `scene` to (4, T) float32 AmbiX at `scene.sample_rate`.

    Sources play their clip from `clip_start` between `onset` and `offset`, at `gain_db`, through their RIR; diffuse
    noise is added at `noise.snr_db` below the sources' mean W power; then one gain (<= 0 dB) keeps the peak at or
    below OUTPUT_PEAK_DBFS. That gain is written to `scene.output_gain_db` (the one field rendering sets).
    `mode` overrides `scene.render_mode`.
    """
    from scipy.signal import fftconvolve

    scene.validate()
    for source in scene.sources:
        bank[source.clip_id]  # fail early, naming the clip, if the bank lacks it
    num_samples = round(scene.duration * scene.sample_rate)
    mix = np.zeros((4, num_samples))
    for source, rir in zip(scene.sources, scene_rirs(scene, mode, anechoic), strict=True):
        clip = bank.audio(source.clip_id).astype(np.float64)
        start = round(source.clip_start * scene.sample_rate)
        onset = round(source.onset * scene.sample_rate)
        length = round(source.offset * scene.sample_rate) - onset
        segment = np.zeros(length)
        available = clip[start : start + length]
        segment[: len(available)] = available
        segment *= 10.0 ** (source.gain_db / 20.0)
        wet = fftconvolve(segment[None, :], rir[:, : num_samples - onset], axes=1)[:, : num_samples - onset]
        mix[:, onset : onset + wet.shape[1]] += wet
    if scene.noise.kind != "none":
        noise = diffuse_noise(scene.noise.kind, num_samples, np.random.default_rng([scene.seed, 2]))
        source_power = np.mean(mix[0] ** 2)
        mix += noise * np.sqrt(source_power * 10.0 ** (-scene.noise.snr_db / 10.0))
    peak = float(np.max(np.abs(mix)))
    gain_db = min(0.0, OUTPUT_PEAK_DBFS - 20.0 * np.log10(peak)) if peak > 0 else 0.0
    scene.output_gain_db = float(np.floor(gain_db * 1e4) / 1e4)  # rounded down: the peak stays below the limit
    return (mix * 10.0 ** (scene.output_gain_db / 20.0)).astype(np.float32)
