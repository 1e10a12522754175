"""Orientation conventions (wedgebench.euler): RELION's matrix, its inverse, volume rotation
and point groups, against independent constructions."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from wedgebench import euler


def test_relion_matrix_is_the_product_of_three_passive_axis_rotations():
    rng = np.random.default_rng(0)
    for rot, tilt, psi in rng.uniform([-180, 0, -180], [180, 180, 180], (20, 3)):
        a = euler.euler_to_matrix(rot, tilt, psi)
        expected = (euler.axis_rotation([0, 0, 1], -psi) @ euler.axis_rotation([0, 1, 0], -tilt)
                    @ euler.axis_rotation([0, 0, 1], -rot))
        np.testing.assert_allclose(a, expected, atol=1e-12)
        # scipy: intrinsic ZYZ of the inverse (active rotation by rot, tilt, psi about z, y', z'')
        r = Rotation.from_euler("ZYZ", [rot, tilt, psi], degrees=True).as_matrix()
        np.testing.assert_allclose(a, r.T, atol=1e-12)


def test_matrix_to_euler_inverts_euler_to_matrix():
    rng = np.random.default_rng(1)
    mats = euler.random_rotations(rng, 200)
    ang = euler.matrix_to_euler(mats)
    assert np.all((ang[:, 1] >= 0) & (ang[:, 1] <= 180))
    np.testing.assert_allclose(euler.euler_to_matrix(*ang.T), mats, atol=1e-9)
    for special in ([30.0, 0.0, 0.0], [0.0, 180.0, 40.0]):  # gimbal lock
        m = euler.euler_to_matrix(*special)
        np.testing.assert_allclose(euler.euler_to_matrix(*euler.matrix_to_euler(m)), m,
                                   atol=1e-9)


def test_random_rotations_are_proper_and_uniform():
    rng = np.random.default_rng(2)
    mats = euler.random_rotations(rng, 20000)
    np.testing.assert_allclose(mats @ np.swapaxes(mats, 1, 2), np.broadcast_to(np.eye(3),
                                                                             mats.shape),
                               atol=1e-12)
    assert np.allclose(np.linalg.det(mats), 1)
    # Haar measure: the rotated z axis is uniform on the sphere (mean 0, <z^2> = 1/3) and
    # the rotation angle has density (1 - cos t) / pi, mean pi/2 + 2/pi
    z = mats[:, :, 2]
    assert np.abs(z.mean(0)).max() < 0.02 and abs((z[:, 2] ** 2).mean() - 1 / 3) < 0.01
    t = np.deg2rad(euler.rotation_angle(mats))
    assert abs(t.mean() - (np.pi / 2 + 2 / np.pi)) < 0.02


def test_rotate_volume_moves_a_point_where_the_matrix_says():
    n = 33
    vol = np.zeros((n, n, n), np.float32)
    p_xyz = np.array([6.0, -3.0, 9.0])  # centred (x, y, z)
    c = n // 2
    vol[int(c + p_xyz[2]), int(c + p_xyz[1]), int(c + p_xyz[0])] = 1.0
    for angles in ([90, 0, 0], [0, 90, 0], [30, 50, 70]):
        r = euler.particle_matrix(*angles)
        out = euler.rotate_volume(vol, r, order=1)
        zyx = np.array(np.unravel_index(np.argmax(out), out.shape), float) - c
        com = np.array([np.sum(out * g) for g in np.indices(out.shape)]) / out.sum() - c
        np.testing.assert_allclose(com[::-1], r @ p_xyz, atol=0.6)  # (x, y, z)
        assert np.linalg.norm(zyx[::-1] - r @ p_xyz) < 1.0


def test_rotation_round_trip_of_an_asymmetric_map():
    rng = np.random.default_rng(3)
    from scipy.ndimage import gaussian_filter

    vol = np.zeros((40, 40, 40), np.float32)
    for _ in range(6):
        vol[tuple(rng.integers(12, 28, 3))] = rng.uniform(1, 3)
    vol = gaussian_filter(vol, 2.0)
    r = euler.particle_matrix(40, 70, -110)
    back = euler.rotate_volume(euler.rotate_volume(vol, r, order=3), r.T, order=3)
    assert np.corrcoef(back.ravel(), vol.ravel())[0, 1] > 0.99
    assert np.corrcoef(euler.rotate_volume(vol, r).ravel(), vol.ravel())[0, 1] < 0.6


@pytest.mark.parametrize("symbol, order", [("C1", 1), ("C5", 5), ("D2", 4), ("D7", 14),
                                           ("T", 12), ("O", 24), ("I", 60)])
def test_point_groups_have_their_order_and_are_groups(symbol, order):
    ops = euler.symmetry_operators(symbol)
    assert len(ops) == order
    np.testing.assert_allclose(ops[0], np.eye(3))
    assert np.allclose(np.linalg.det(ops), 1)
    keys = {tuple(np.round(m, 6).ravel() + 0.0) for m in ops}
    for a in ops[:6]:
        for b in ops[:6]:
            assert tuple(np.round(a @ b, 6).ravel() + 0.0) in keys


def test_icosahedral_group_has_its_axes_where_stated():
    tau = (1 + 5 ** 0.5) / 2
    ops = euler.symmetry_operators("I")
    for axis, fold in (([1, 0, 0], 2), ([0, 1, tau], 5), ([1, 1, 1], 3)):
        r = euler.axis_rotation(axis, 360.0 / fold)
        assert np.min(np.abs(ops - r).reshape(len(ops), -1).max(1)) < 1e-9


def test_angular_distance_respects_symmetry():
    rng = np.random.default_rng(4)
    a = euler.random_rotations(rng, 5)
    np.testing.assert_allclose(euler.angular_distance(a, a), 0, atol=1e-5)
    b = a @ euler.axis_rotation([0, 0, 1], 90.0)  # a symmetry-equivalent pose under C4
    np.testing.assert_allclose(euler.angular_distance(a, b), 90, atol=1e-6)
    np.testing.assert_allclose(euler.angular_distance(a, b, "C4"), 0, atol=1e-5)
    c = a @ euler.axis_rotation([1, 0, 0], 10.0)
    np.testing.assert_allclose(euler.angular_distance(a, c, "C4"), 10, atol=1e-6)


def test_unknown_symmetry_is_named():
    with pytest.raises(ValueError, match="'Q3'"):
        euler.symmetry_operators("Q3")
