"""Procedural sound sources that need nothing installed: alarms, bells, engines, footsteps, knocks, noise
bursts, telephone rings and speech-like babble (espeak-ng speech when the tool is present).

Each clip is a deterministic function of (class, index, seed), so a procedural bank re-synthesises the same
audio in every process. Captions describe what was synthesised.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hf_spatial.acoustics.audio import load_clip, prepare_clip
from hf_spatial.conventions import SAMPLE_RATE

SynthFn = Callable[[np.random.Generator], tuple[np.ndarray, str]]

_SENTENCES = (
    "The meeting starts in five minutes.",
    "Please close the window before you leave.",
    "Turn left at the end of the corridor.",
    "Could you pass me the blue folder?",
    "The train to the airport is delayed.",
    "I left my keys on the kitchen table.",
    "Dinner will be ready at seven.",
    "Remember to water the plants tomorrow.",
    "Where did you put the spare batteries?",
    "The printer on the second floor is out of paper.",
    "Let's take a short break and continue later.",
    "It is going to rain this afternoon.",
)


def _time(duration: float) -> np.ndarray:
    return np.arange(round(duration * SAMPLE_RATE)) / SAMPLE_RATE


def _bandpass(noise: np.ndarray, low: float, high: float) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    sos = butter(4, [low, min(high, 0.45 * SAMPLE_RATE)], btype="band", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, noise)


def _alarm(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    duration, f1 = rng.uniform(1.5, 4.0), rng.uniform(600, 1200)
    f2, rate = f1 * rng.uniform(1.2, 1.5), rng.uniform(2.0, 5.0)
    t = _time(duration)
    square = np.sign(np.sin(2 * np.pi * rate * t))
    freq = np.where(square > 0, f1, f2)
    phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
    tone = np.sin(phase) + 0.3 * np.sin(3 * phase)
    return tone, f"an electronic alarm alternating between {f1:.0f} and {f2:.0f} Hz, {rate:.1f} times a second"


def _bell(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    duration, f0, strikes = rng.uniform(1.5, 4.0), rng.uniform(300, 1500), int(rng.integers(1, 4))
    t = _time(duration)
    ratios, amps = np.array([0.5, 1.0, 1.19, 1.56, 2.0, 2.74]), np.array([0.4, 1.0, 0.6, 0.5, 0.35, 0.2])
    signal = np.zeros_like(t)
    for start in np.linspace(0, duration * 0.6, strikes):
        local = np.clip(t - start, 0, None)
        for ratio, amp in zip(ratios, amps, strict=True):
            decay = rng.uniform(0.6, 1.5) / ratio
            signal += (t >= start) * amp * np.sin(2 * np.pi * f0 * ratio * local) * np.exp(-local / decay)
    return signal, f"a bell ringing at {f0:.0f} Hz, struck {strikes} time{'s' * (strikes > 1)}"


def _engine(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    duration, rpm = rng.uniform(2.0, 5.0), rng.uniform(700, 3000)
    t = _time(duration)
    f0 = rpm / 60.0 * 2  # four-stroke, four cylinders: two firings per revolution
    f0_track = f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t))
    phase = 2 * np.pi * np.cumsum(f0_track) / SAMPLE_RATE
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 12))
    rumble = _bandpass(rng.standard_normal(len(t)), 60, 800) * (1 + 0.5 * np.sin(phase))
    return harmonics + 0.5 * rumble, f"an engine idling at about {rpm:.0f} rpm"


def _footsteps(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    steps, interval = int(rng.integers(3, 9)), rng.uniform(0.35, 0.7)
    t = _time(steps * interval + 0.3)
    signal = np.zeros_like(t)
    low, high = (rng.uniform(80, 200), rng.uniform(1500, 5000))
    for k in range(steps):
        start = round((k * interval + rng.uniform(-0.03, 0.03) + 0.05) * SAMPLE_RATE)
        length = round(rng.uniform(0.05, 0.12) * SAMPLE_RATE)
        burst = _bandpass(rng.standard_normal(length), low, high) * np.exp(-np.arange(length) / (0.015 * SAMPLE_RATE))
        signal[start : start + length] += burst[: len(signal) - start] * rng.uniform(0.7, 1.0)
    return signal, f"{steps} footsteps, one every {interval:.2f} s"


def _knock(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    knocks, f0 = int(rng.integers(2, 6)), rng.uniform(150, 400)
    t = _time(knocks * 0.25 + 0.4)
    signal = np.zeros_like(t)
    for k in range(knocks):
        start = round((0.05 + k * rng.uniform(0.15, 0.25)) * SAMPLE_RATE)
        local = np.arange(len(t) - start) / SAMPLE_RATE
        body = np.sin(2 * np.pi * f0 * local) + 0.5 * np.sin(2 * np.pi * 2.3 * f0 * local)
        signal[start:] += body * np.exp(-local / 0.02)
    return signal, f"{knocks} knocks on a wooden door"


def _noise_burst(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    duration, low = rng.uniform(0.5, 3.0), rng.uniform(100, 2000)
    high = low * rng.uniform(2, 8)
    t = _time(duration)
    envelope = np.minimum(1, np.minimum(t, duration - t) / 0.05)
    return _bandpass(rng.standard_normal(len(t)), low, high) * envelope, (
        f"a burst of noise between {low:.0f} and {min(high, 0.45 * SAMPLE_RATE):.0f} Hz lasting {duration:.1f} s"
    )


def _telephone(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    rings = int(rng.integers(1, 3))
    t = _time(rings * 3.0)
    on = np.mod(t, 3.0) < 2.0  # 2 s ring, 1 s pause
    tone = np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t)
    return tone * on * (1 + 0.3 * np.sin(2 * np.pi * 20 * t)), f"a telephone ringing {rings} time{'s' * (rings > 1)}"


def _babble(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Speech-like babble: a glottal pulse train through vowel formants with syllabic rhythm."""
    from scipy.signal import lfilter

    duration, pitch = rng.uniform(1.5, 4.0), rng.uniform(100, 240)
    t = _time(duration)
    f0 = pitch * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = np.cumsum(f0) / SAMPLE_RATE
    pulses = np.diff(np.floor(phase), prepend=0.0)
    vowels = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (640, 1190, 2390))
    syllable = round(rng.uniform(0.15, 0.25) * SAMPLE_RATE)
    signal = np.zeros_like(t)
    for start in range(0, len(t), syllable):
        segment = pulses[start : start + syllable]
        voiced = np.zeros_like(segment)
        for formant in vowels[int(rng.integers(len(vowels)))]:
            r = np.exp(-np.pi * 80 / SAMPLE_RATE)
            theta = 2 * np.pi * formant / SAMPLE_RATE
            voiced += lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], segment)
        window = np.hanning(len(segment)) if rng.uniform() > 0.15 else np.zeros(len(segment))
        signal[start : start + syllable] = voiced * window
    return signal, f"speech-like babble with a voice pitch around {pitch:.0f} Hz"


def _espeak_speech(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    sentence = _SENTENCES[int(rng.integers(len(_SENTENCES)))]
    voice = ("en+m3", "en+f3", "en+m1", "en+f2")[int(rng.integers(4))]
    speed = int(rng.integers(140, 190))
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), sentence], check=True, capture_output=True
        )
        return load_clip(wav), sentence


SYNTHESISERS: dict[str, SynthFn] = {
    "alarm": _alarm,
    "bell": _bell,
    "engine": _engine,
    "footsteps": _footsteps,
    "knock": _knock,
    "noiseBurst": _noise_burst,
    "telephone": _telephone,
    "speech": _babble,
}


def speech_engine() -> str:
    """Which speech synthesiser the procedural bank uses on this machine ("espeak-ng" or "babble")."""
    return "espeak-ng" if shutil.which("espeak-ng") else "babble"


def synthesise(label: str, index: int, seed: int) -> tuple[np.ndarray, str]:
    """Clip `index` of class `label`: (24 kHz mono float32, conditioned like every clip; caption)."""
    if label not in SYNTHESISERS:
        raise ValueError(f"Unknown procedural class {label!r}; available: {', '.join(sorted(SYNTHESISERS))}.")
    digest = hashlib.sha256(f"procedural/{label}/{index}/{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    synth = _espeak_speech if label == "speech" and speech_engine() == "espeak-ng" else SYNTHESISERS[label]
    signal, caption = synth(rng)
    return prepare_clip(np.asarray(signal, dtype=np.float32), SAMPLE_RATE, name=f"procedural {label} {index}"), caption
