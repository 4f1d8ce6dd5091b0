import numpy as np
import pytest

from hf_spatial import conventions as C
from hf_spatial.acoustics.intensity import active_intensity, estimate_direction, estimate_directions

SR = 24000


def noise(seed: int, seconds: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(SR * seconds))


@pytest.mark.parametrize(("az", "el"), [(0, 0), (60, 20), (-120, -35), (180, 10), (95, 70)])
def test_plane_wave_direction_is_exact(az, el):
    est_az, est_el = estimate_direction(C.encode_plane_wave(noise(0), az, el), SR)
    assert C.angular_distance(est_az, est_el, az, el) < 0.5


def test_plane_wave_is_not_diffuse_and_diffuse_field_is():
    plane = active_intensity(C.encode_plane_wave(noise(1), 30, 0), SR)
    assert np.median(plane.diffuseness()) < 1e-6
    # Many uncorrelated plane waves from all around approximate a diffuse field.
    rng = np.random.default_rng(2)
    directions = rng.normal(size=(200, 3))
    az, el, _ = C.cartesian_to_spherical(directions)
    diffuse = sum(C.encode_plane_wave(noise(10 + k), a, e) for k, (a, e) in enumerate(zip(az, el, strict=True)))
    assert np.median(active_intensity(diffuse, SR).diffuseness()) > 0.7


def test_two_sources_in_alternation_are_both_found():
    # Two sources active in alternating time blocks: each TF bin is dominated by one of them.
    a, b = noise(3, 2.0), noise(4, 2.0)
    gate = (np.arange(a.size) // 4800) % 2 == 0
    foa = C.encode_plane_wave(a * gate, 40, 0) + C.encode_plane_wave(b * ~gate, -100, 10)
    found = estimate_directions(foa, SR, num_sources=2)
    assert len(found) == 2
    for az, el in [(40, 0), (-100, 10)]:
        assert min(C.angular_distance(az, el, *f) for f in found) < 5


def test_errors_are_clear():
    with pytest.raises(ValueError, match=r"\(4, num_samples\)"):
        estimate_direction(np.zeros((2, 100)), SR)
    with pytest.raises(ValueError, match="NaN"):
        estimate_direction(np.full((4, 1000), np.nan), SR)
    with pytest.raises(ValueError, match="silent"):
        estimate_direction(np.zeros((4, 4800)), SR)
    with pytest.raises(ValueError, match="num_sources"):
        estimate_directions(np.zeros((4, 4800)), SR, num_sources=0)
