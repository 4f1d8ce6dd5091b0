"""Classical FOA direction finding from the active intensity vector.

For an AmbiX (SN3D) plane wave from unit direction u, the channels are X, Y, Z = u_x W, u_y W, u_z W, so the
active intensity Re{conj(W) [X, Y, Z]} points at the source with magnitude |W|^2, and the diffuseness
1 - |I| / E (E = (|W|^2 + |X|^2 + |Y|^2 + |Z|^2) / 2) is 0. In a diffuse field I averages to 0 and the
diffuseness to 1. This is the classical DirAC estimator; it serves as a test oracle for the renderer and as
the direction-finding baseline of the evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, maximum_filter, uniform_filter1d
from scipy.signal import stft

from hf_spatial.conventions import NUM_FOA_CHANNELS, W, X, Y, Z, angular_distance, cartesian_to_spherical


@dataclass
class IntensityMap:
    """Time-frequency active intensity (x, y, z; listener frame) and energy of an FOA signal."""

    intensity: np.ndarray  # (3, F, T)
    energy: np.ndarray  # (F, T)
    frequencies: np.ndarray  # (F,) Hz

    def diffuseness(self, frames: int = 8) -> np.ndarray:
        """Per-bin diffuseness 1 - |<I>| / <E> in [0, 1], averaging over `frames` STFT frames.

        Averaging is what makes the estimate meaningful: in a single bin, even a diffuse field has a
        well-defined instantaneous intensity direction.
        """
        mean_intensity = uniform_filter1d(self.intensity, size=frames, axis=-1, mode="nearest")
        mean_energy = uniform_filter1d(self.energy, size=frames, axis=-1, mode="nearest")
        norm = np.linalg.norm(mean_intensity, axis=0)
        return np.clip(1.0 - norm / np.maximum(mean_energy, 1e-20), 0.0, 1.0)


def active_intensity(foa: np.ndarray, sample_rate: int, n_fft: int = 512, hop: int | None = None) -> IntensityMap:
    """STFT-domain active intensity of an AmbiX signal of shape (4, T)."""
    foa = np.asarray(foa, dtype=np.float64)
    if foa.ndim != 2 or foa.shape[0] != NUM_FOA_CHANNELS:
        raise ValueError(f"Expected AmbiX audio of shape (4, num_samples), got {foa.shape}.")
    if not np.all(np.isfinite(foa)):
        raise ValueError("FOA audio contains NaN or Inf samples.")
    hop = hop or n_fft // 2
    frequencies, _, spectra = stft(foa, fs=sample_rate, nperseg=n_fft, noverlap=n_fft - hop, boundary=None)
    w = spectra[W]
    velocity = np.stack([spectra[X], spectra[Y], spectra[Z]])  # listener-frame x, y, z components
    intensity = np.real(np.conj(w)[None] * velocity)
    energy = 0.5 * (np.abs(w) ** 2 + np.sum(np.abs(velocity) ** 2, axis=0))
    return IntensityMap(intensity=intensity, energy=energy, frequencies=frequencies)


def _band(intensity_map: IntensityMap, freq_range: tuple[float, float]) -> np.ndarray:
    low, high = freq_range
    return (intensity_map.frequencies >= low) & (intensity_map.frequencies <= high)


def estimate_direction(
    foa: np.ndarray, sample_rate: int, freq_range: tuple[float, float] = (100.0, 8000.0), n_fft: int = 512
) -> tuple[float, float]:
    """Broadband direction (azimuth, elevation) in degrees of the dominant source: the summed intensity."""
    intensity_map = active_intensity(foa, sample_rate, n_fft=n_fft)
    total = intensity_map.intensity[:, _band(intensity_map, freq_range)].sum(axis=(1, 2))
    if np.linalg.norm(total) == 0:
        raise ValueError("The FOA signal is silent (or has no directional energy) in the analysed band.")
    az, el, _ = cartesian_to_spherical(total)
    return float(az), float(el)


def estimate_directions(
    foa: np.ndarray,
    sample_rate: int,
    num_sources: int,
    freq_range: tuple[float, float] = (100.0, 8000.0),
    max_diffuseness: float = 0.5,
    min_separation: float = 25.0,
    n_fft: int = 512,
    grid_step: float = 2.0,
) -> list[tuple[float, float]]:
    """Directions of up to `num_sources` sources from a histogram of per-bin intensity directions.

    Bins with diffuseness above `max_diffuseness` are discarded (reverberant or overlapped); the rest vote with
    their energy on an azimuth x elevation grid, smoothed on the sphere; peaks closer than `min_separation`
    degrees to a stronger one are suppressed. Returns (azimuth, elevation) pairs, strongest first; fewer than
    `num_sources` if no further distinct peak exists.
    """
    if num_sources < 1:
        raise ValueError(f"num_sources must be at least 1, got {num_sources}.")
    intensity_map = active_intensity(foa, sample_rate, n_fft=n_fft)
    band = _band(intensity_map, freq_range)
    intensity = intensity_map.intensity[:, band].reshape(3, -1)
    diffuseness = intensity_map.diffuseness()[band].reshape(-1)
    norm = np.linalg.norm(intensity, axis=0)
    keep = (norm > 1e-12 * max(norm.max(initial=0.0), 1e-30)) & (diffuseness <= max_diffuseness)
    if not np.any(keep):
        raise ValueError("No directional time-frequency bins: the signal is silent or fully diffuse.")
    # Unit vectors: quiet bins have intensities far below conventions' zero-length threshold, yet a direction.
    az, el, _ = cartesian_to_spherical((intensity[:, keep] / norm[keep]).T)
    az_edges = np.arange(-180.0, 180.0 + grid_step, grid_step)
    el_edges = np.arange(-90.0, 90.0 + grid_step, grid_step)
    histogram, _, _ = np.histogram2d(az, el, bins=(az_edges, el_edges), weights=norm[keep])
    # Smooth with a ~5 degree kernel; azimuth wraps around, elevation does not.
    histogram = gaussian_filter(histogram, sigma=5.0 / grid_step, mode=("wrap", "nearest"))
    az_centres = (az_edges[:-1] + az_edges[1:]) / 2
    el_centres = (el_edges[:-1] + el_edges[1:]) / 2
    # Candidate peaks are local maxima of the smoothed histogram, strongest first.
    is_peak = (histogram == maximum_filter(histogram, size=3, mode=("wrap", "nearest"))) & (histogram > 0)
    candidates = np.argwhere(is_peak)
    candidates = candidates[np.argsort(histogram[is_peak])[::-1]]
    peaks: list[tuple[float, float]] = []
    for i, j in candidates:
        candidate = (float(az_centres[i]), float(el_centres[j]))
        if all(angular_distance(*candidate, *peak) >= min_separation for peak in peaks):
            peaks.append(candidate)
            if len(peaks) == num_sources:
                break
    return peaks
