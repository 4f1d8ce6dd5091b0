import numpy as np
import pytest

from hf_spatial import conventions as C


def test_channel_order_is_ambix_acn():
    assert C.AMBIX_CHANNELS == ("W", "Y", "Z", "X")
    assert (C.W, C.Y, C.Z, C.X) == (0, 1, 2, 3)


def test_sn3d_gains_closed_form():
    np.testing.assert_allclose(C.sn3d_gains(60, 20), [1.0, 0.8138, 0.3420, 0.4698], atol=1e-4)
    np.testing.assert_allclose(C.sn3d_gains(0, 0), [1, 0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(C.sn3d_gains(90, 0), [1, 1, 0, 0], atol=1e-12)  # +90 is left (+y)
    np.testing.assert_allclose(C.sn3d_gains(-90, 0), [1, -1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(C.sn3d_gains(37, 90), [1, 0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(C.sn3d_gains(37, -90), [1, 0, -1, 0], atol=1e-12)
    assert C.sn3d_gains([0, 90], [0, 0]).shape == (2, 4)


def test_encode_plane_wave():
    signal = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    foa = C.encode_plane_wave(signal, 60, 20)
    assert foa.shape == (4, 3) and foa.dtype == np.float32
    np.testing.assert_allclose(foa[:, 1], -2 * C.sn3d_gains(60, 20), rtol=1e-6)
    with pytest.raises(ValueError, match="mono"):
        C.encode_plane_wave(np.zeros((2, 3)), 0, 0)


def test_fuma_round_trip_and_values():
    rng = np.random.default_rng(0)
    ambix = rng.standard_normal((4, 100))
    fuma = C.ambix_to_fuma(ambix)
    np.testing.assert_allclose(fuma[0], ambix[0] / np.sqrt(2))
    np.testing.assert_allclose(fuma[1], ambix[C.X])
    np.testing.assert_allclose(fuma[2], ambix[C.Y])
    np.testing.assert_allclose(fuma[3], ambix[C.Z])
    np.testing.assert_allclose(C.fuma_to_ambix(fuma), ambix, atol=1e-12)
    # channel axis last
    np.testing.assert_allclose(C.fuma_to_ambix(C.ambix_to_fuma(ambix.T, axis=1), axis=1), ambix.T, atol=1e-12)
    # a FuMa plane wave from the left converts to the AmbiX gains
    fuma_left = np.array([1 / np.sqrt(2), 0.0, 1.0, 0.0])
    np.testing.assert_allclose(C.fuma_to_ambix(fuma_left), C.sn3d_gains(90, 0), atol=1e-12)


def test_format_errors_are_clear():
    with pytest.raises(ValueError, match="4 channels"):
        C.fuma_to_ambix(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="Unknown FOA format"):
        C.to_ambix(np.zeros((4, 10)), "bformat")
    np.testing.assert_allclose(C.to_ambix(np.eye(4), "ambix"), np.eye(4))


@pytest.mark.parametrize(
    ("az", "expected"),
    [(180, 180), (-180, 180), (540, 180), (190, -170), (-190, 170), (0, 0), (360, 0), (-45, -45), (359.5, -0.5)],
)
def test_wrap_azimuth(az, expected):
    assert C.wrap_azimuth(az) == pytest.approx(expected)


def test_wrap_azimuth_array():
    np.testing.assert_allclose(C.wrap_azimuth(np.array([-180.0, 181.0])), [180.0, -179.0])


def test_spherical_cartesian_round_trip():
    np.testing.assert_allclose(C.spherical_to_cartesian(0, 0, 2), [2, 0, 0], atol=1e-12)
    np.testing.assert_allclose(C.spherical_to_cartesian(90, 0), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(C.spherical_to_cartesian(0, 90, 3), [0, 0, 3], atol=1e-12)
    rng = np.random.default_rng(1)
    az = rng.uniform(-179.9, 180, 50)
    el = rng.uniform(-89, 89, 50)
    r = rng.uniform(0.1, 10, 50)
    az2, el2, r2 = C.cartesian_to_spherical(C.spherical_to_cartesian(az, el, r))
    np.testing.assert_allclose(az2, az, atol=1e-9)
    np.testing.assert_allclose(el2, el, atol=1e-9)
    np.testing.assert_allclose(r2, r, atol=1e-9)


def test_cartesian_edge_cases():
    az, el, _r = C.cartesian_to_spherical(np.array([-1.0, 0.0, 0.0]))
    assert float(az) == 180.0  # never -180
    az, el, _ = C.cartesian_to_spherical(np.array([0.0, 0.0, 2.0]))
    assert (float(az), float(el)) == (0.0, 90.0)
    az, el, _ = C.cartesian_to_spherical(np.array([0.0, 0.0, -1.0]))
    assert float(el) == -90.0
    with pytest.raises(ValueError, match="Zero-length"):
        C.cartesian_to_spherical(np.zeros(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        C.cartesian_to_spherical(np.zeros(2))


def test_angular_distance():
    assert C.angular_distance(0, 0, 90, 0) == pytest.approx(90)
    assert C.angular_distance(180, 0, -180, 0) == pytest.approx(0, abs=1e-9)
    assert C.angular_distance(170, 0, -170, 0) == pytest.approx(20)
    assert C.angular_distance(0, 90, 123, 90) == pytest.approx(0, abs=1e-9)  # azimuth irrelevant at the pole
    assert C.angular_distance(0, 0, 180, 0) == pytest.approx(180)
    assert C.angular_distance(0, 45, 0, -45) == pytest.approx(90)
    assert C.angular_distance(0, 0, 1e-7, 0) == pytest.approx(1e-7, rel=1e-3)
    np.testing.assert_allclose(C.angular_distance(np.zeros(2), 0, [0, 30], 0), [0, 30], atol=1e-9)


def test_rotation_moves_front_source_to_left():
    front = C.encode_plane_wave(np.ones(8), 0, 0)
    rotated = C.rotate_foa(front, 90)
    np.testing.assert_allclose(rotated, C.encode_plane_wave(np.ones(8), 90, 0), atol=1e-12)
    assert C.rotate_direction(0, 90) == pytest.approx(90)


@pytest.mark.parametrize(("az", "el", "angle"), [(30, 20, 75), (170, -10, 30), (-120, 45, -200)])
def test_rotation_matches_re_encoding(az, el, angle):
    signal = np.random.default_rng(2).standard_normal(16)
    rotated = C.rotate_foa(C.encode_plane_wave(signal, az, el), angle)
    expected = C.encode_plane_wave(signal, C.rotate_direction(az, angle), el)
    np.testing.assert_allclose(rotated, expected, atol=1e-5)
    # rotation is exact and invertible, and leaves W and Z alone
    original = C.encode_plane_wave(signal, az, el)
    np.testing.assert_allclose(C.rotate_foa(rotated, -angle), original, atol=1e-5)
    np.testing.assert_array_equal(rotated[[C.W, C.Z]], original[[C.W, C.Z]])


def test_rotation_channel_axis_last_and_input_untouched():
    foa = C.encode_plane_wave(np.ones(4), 0, 0).T.copy()
    before = foa.copy()
    rotated = C.rotate_foa(foa, 90, axis=1)
    np.testing.assert_array_equal(foa, before)
    np.testing.assert_allclose(rotated[0], C.sn3d_gains(90, 0), atol=1e-7)


@pytest.mark.parametrize("plane", ["left_right", "front_back", "up_down"])
def test_mirror_matches_re_encoding(plane):
    signal = np.random.default_rng(3).standard_normal(16)
    az, el = 40.0, 25.0
    mirrored = C.mirror_foa(C.encode_plane_wave(signal, az, el), plane)
    az2, el2 = C.mirror_direction(az, el, plane)
    np.testing.assert_allclose(mirrored, C.encode_plane_wave(signal, az2, el2), atol=1e-5)
    with pytest.raises(ValueError, match="mirror plane"):
        C.mirror_foa(mirrored, "diagonal")


def test_mirror_directions():
    assert C.mirror_direction(40, 10, "left_right") == (-40, 10)
    assert C.mirror_direction(40, 10, "front_back") == (140, 10)
    assert C.mirror_direction(40, 10, "up_down") == (40, -10)
    assert C.mirror_direction(180, 0, "left_right")[0] == 180


@pytest.mark.parametrize(
    ("az", "sector"),
    [
        (0, "front"),
        (45, "front"),
        (45.001, "left"),
        (90, "left"),
        (135, "left"),
        (135.5, "back"),
        (180, "back"),
        (-180, "back"),
        (-135, "back"),
        (-134.9, "right"),
        (-90, "right"),
        (-45, "right"),
        (-44.9, "front"),
        (405, "front"),
    ],
)
def test_sector_boundaries(az, sector):
    assert C.azimuth_to_sector(az) == sector


def test_sector_boundary_margin():
    assert C.sector_boundary_margin(0) == pytest.approx(45)
    assert C.sector_boundary_margin(45) == pytest.approx(0)
    assert C.sector_boundary_margin(-130) == pytest.approx(5)
    assert C.sector_boundary_margin(180) == pytest.approx(45)
    assert C.sector_boundary_margin(100) == pytest.approx(35)


def test_relative_direction_rule():
    dog = np.array([3.0, 2.0, 1.5])
    phone = np.array([1.0, 2.0, 1.5])
    # the dog is 2 m in front (+x) of the phone; the phone is behind the dog
    assert C.relative_sector(dog, phone) == "front"
    assert C.relative_sector(phone, dog) == "back"
    az, el, r = C.relative_direction(np.array([1.0, 3.0, 1.5]), phone)
    assert (az, el, r) == pytest.approx((90.0, 0.0, 1.0))
    assert C.relative_sector(np.array([1.0, 3.0, 1.5]), phone) == "left"
    assert C.relative_sector(np.array([1.0, 0.5, 1.5]), phone) == "right"
    with pytest.raises(ValueError, match="Zero-length"):
        C.relative_sector(phone, phone)
