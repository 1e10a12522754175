"""Exact projections of the continuous phantoms (spheres, shapes) and the objects behind them.

Agreement with the ray-driven simulator of the rasterised phantom is measured on
*interior rays*: detector pixels whose analytic (unfiltered) projection is non-zero on
the pixel and on every pixel within 2 pixels of it (the footprint of the objects,
eroded twice by a 3×3 square). Off the silhouettes the chord length changes
smoothly; on them it falls to 0 like a square root and any sub-voxel difference is a
large relative one. The rasterised phantom is the indicator sampled at the voxel
centres, so each ray of the simulator is off by up to about half a voxel per surface
it crosses (partial volume: zero on average; median 1–4 % per ray at these sizes). Two
measures do not depend on that noise and are held to tight tolerances: the relative
error of the *sum* over interior rays (≤ 1 %), and the sub-pixel shift between the two
projections (least squares, ≤ 0.05 pixel in u and y; half a voxel of centring or a
sign error of the tilt would show as ≥ 0.5). That the per-ray differences are partial
volume is checked directly: they halve when the same objects are rasterised on a
grid twice as fine.
"""

import copy
import hashlib
import inspect

import numpy as np
import pytest
from scipy import ndimage

from wedgebench.analytic import (analytic_projections, ball_chord, project_objects,
                                 shape_intervals, union_length)
from wedgebench.io import InputError
from wedgebench.phantoms import OBJECT_KINDS, make_objects, make_phantom, shapes, spheres
from wedgebench.phantoms.filters import gaussian_lowpass
from wedgebench.tiltseries import simulate_projections

SHAPE = [32, 64, 64]
ANGLES = [-60.0, -30.0, 0.0, 30.0, 60.0]
CASES = {"spheres": (dict(count=8, diameter=[8, 20], thickness=3.0), 3),
         "shapes": (dict(count=8, size=[10, 22]), 5)}


def ball(shape, centre, radius, thickness=None, lowpass=0.0):
    """Description of one (hollow) sphere in the format of ``spheres.objects``."""
    return dict(phantom="spheres", shape=tuple(shape), centres=np.array([centre], float),
                radii=np.array([radius], float),
                thickness=float(radius if thickness is None else thickness), lowpass=lowpass)


def detector_uy(shape):
    """Centred detector coordinates (u of each pixel centre, y of each row)."""
    nz, ny, nx = shape
    return np.arange(nx) - (nx - 1) / 2, np.arange(ny) - (ny - 1) / 2


def interior(a0, margin=2):
    """Interior rays: footprint of the objects eroded by ``margin`` pixels (3×3 square)."""
    return ndimage.binary_erosion(a0 > 0, np.ones((3, 3), bool), iterations=margin)


def shift(s, a, axis):
    """Least-squares shift d (pixels) with s(x) ≈ a(x − d)."""
    g = np.gradient(a.astype(np.float64), axis=axis)
    return float(-((s - a) * g).sum() / (g * g).sum())


# --------------------------------------------------------------------------- exact chords


@pytest.mark.parametrize("thickness", [None, 2.5])
def test_ball_chords_closed_form(thickness):
    shape, centre, r = (24, 40, 48), np.array([9.3, 17.6, 30.2]), 7.5
    desc = ball(shape, centre, r, thickness)
    proj = project_objects(desc, ANGLES, oversampling=1)
    zc, yc, xc = centre - (np.array(shape) - 1) / 2
    for p, th in zip(proj, np.deg2rad(ANGLES)):
        u, y = detector_uy(shape)
        d = np.hypot(u[None, :] - (xc * np.cos(th) - zc * np.sin(th)), y[:, None] - yc)
        expected = ball_chord(r, d)
        if thickness is not None:
            expected = expected - ball_chord(r - thickness, d)
        assert np.abs(p - expected).max() < 1e-4
    assert ball_chord(5.0, [0.0, 3.0, 5.0, 6.0]) == pytest.approx([10.0, 8.0, 0.0, 0.0])


def test_rays_cut_to_the_slab():
    # a ball far larger than the slab: the central rays cross the whole slab, nz / cosθ
    shape = (16, 8, 32)
    desc = ball(shape, (np.array(shape) - 1) / 2, 40.0)
    proj = project_objects(desc, ANGLES, oversampling=1)
    for p, th in zip(proj, np.deg2rad(ANGLES)):
        assert p[3:5, 15:17] == pytest.approx(16 / np.cos(th), rel=1e-6)


@pytest.mark.parametrize("kind", shapes.KINDS)
def test_shape_chords_match_inside(kind):
    # intervals vs dense sampling of shapes.inside (the definition) along random rays
    rng = np.random.default_rng(1)
    dims = shapes.shape_dims(kind, 9.0, rng)
    reach = shapes.bounding_radius(kind, dims) + 1.0
    t = np.linspace(-reach, reach, 6001)
    dt = t[1] - t[0]
    for _ in range(12):
        b = rng.normal(size=3)
        b /= np.linalg.norm(b)
        a = rng.uniform(-0.7, 0.7, size=(40, 3)) * reach
        a -= (a @ b)[:, None] * b  # start points on the plane through the origin
        exact = union_length(shape_intervals(kind, dims, [a[:, i] for i in range(3)],
                                             list(b)))
        pts = a[:, None, :] + t[None, :, None] * b
        sampled = shapes.inside(kind, dims, [pts[..., i] for i in range(3)]).sum(1) * dt
        assert np.abs(exact - sampled).max() < 6 * dt, kind
    # axis-parallel rays (a zero direction component) take the all-or-nothing branch
    exact = union_length(shape_intervals(kind, dims, [np.zeros(1), np.zeros(1),
                                                      np.zeros(1)], [0.0, 0.0, 1.0]))
    pts = [np.zeros_like(t), np.zeros_like(t), t]
    assert exact[0] == pytest.approx(shapes.inside(kind, dims, pts).sum() * dt, abs=2 * dt)


# --------------------------------------------------------------------------- vs simulator


def test_ball_lands_where_the_simulator_puts_it():
    shape, centre = (32, 48, 64), np.array([8.4, 30.3, 40.7])  # off-centre in z, y and x
    desc = ball(shape, centre, 6.0)
    a = project_objects(desc, ANGLES)
    s = simulate_projections(spheres.rasterise(desc), ANGLES)
    zc, yc, xc = centre - (np.array(shape) - 1) / 2
    for pa, ps, th in zip(a, s, np.deg2rad(ANGLES)):
        u, y = detector_uy(shape)
        for p in (pa, ps):
            assert (p.sum(0) @ u) / p.sum() == pytest.approx(
                xc * np.cos(th) - zc * np.sin(th), abs=0.05)
            assert (p.sum(1) @ y) / p.sum() == pytest.approx(yc, abs=0.05)


@pytest.fixture(scope="module")
def projections():
    out = {}
    for kind, (params, seed) in CASES.items():
        a0 = project_objects(make_objects(kind, dict(params, shape=SHAPE, lowpass=0.0), seed),
                             ANGLES)
        for lowpass in (0.0, 1.0):
            p = dict(params, shape=SHAPE, lowpass=lowpass)
            vol, _ = make_phantom(kind, p, seed)
            out[kind, lowpass] = (a0, analytic_projections(kind, SHAPE, p, seed, ANGLES),
                                  simulate_projections(vol, ANGLES))
    return out


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("lowpass", [0.0, 1.0])
def test_agrees_with_ray_driven_simulator(projections, kind, lowpass):
    a0, a, s = projections[kind, lowpass]
    assert a.shape == s.shape == (len(ANGLES), SHAPE[1], SHAPE[2]) and a.dtype == np.float32
    for i in range(len(ANGLES)):
        m = interior(a0[i])
        assert m.sum() > 150
        assert abs(s[i][m].sum() / a[i][m].sum() - 1) <= 0.01, ANGLES[i]
        assert abs(s[i].sum() / a[i].sum() - 1) <= 0.01, ANGLES[i]
        assert abs(shift(s[i], a[i], 1)) <= 0.05 and abs(shift(s[i], a[i], 0)) <= 0.05


def scaled(desc, k):
    """The same objects ``k`` times larger on a ``k`` times larger grid (same box centre)."""
    d = copy.deepcopy(desc)
    old = np.array(desc["shape"], float)
    d["shape"] = tuple(int(k * n) for n in desc["shape"])
    new = np.array(d["shape"], float)

    def move(c):
        return (np.asarray(c, float) - (old - 1) / 2) * k + (new - 1) / 2

    if d["phantom"] == "spheres":
        d["centres"], d["radii"], d["thickness"] = (move(d["centres"]), d["radii"] * k,
                                                    d["thickness"] * k)
    else:
        for s in d["shapes"]:
            s["centre"], s["radius"] = move(s["centre"]), s["radius"] * k
            s["dims"] = tuple(v * k for v in s["dims"])
    return d


@pytest.mark.parametrize("kind", sorted(CASES))
def test_per_ray_differences_are_partial_volume(kind):
    params, seed = CASES[kind]
    desc = make_objects(kind, dict(params, shape=SHAPE, lowpass=0.0), seed)
    module = {"spheres": spheres, "shapes": shapes}[kind]
    med = []
    for k in (1, 2):
        d = scaled(desc, k)
        a = project_objects(d, [0.0, 60.0])
        s = simulate_projections(module.rasterise(d), [0.0, 60.0])
        masks = [interior(ai, 2 * k) for ai in a]  # the same margin in object units
        rel = [np.abs(si - ai)[m] / ai[m] for ai, si, m in zip(a, s, masks)]
        med.append(np.median(np.concatenate(rel)))
    assert med[1] < 0.65 * med[0]


# --------------------------------------------------------------------------- objects


GENERATE_SHA256 = {  # generate() output before the objects() refactor (lowpass 0: no FFT)
    "spheres": "3c6ca98f4343c6f071aedb3921be67f2cfa231c88833c04d3a7c3c9cc58e1a89",
    "shapes": "c1a69cfcdd8dcbecb65920d880a81a31665d38e2fdb5c778a727d0d97494c464",
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_generate_unchanged_by_refactor(kind):
    params, seed = CASES[kind]
    vol, _ = make_phantom(kind, dict(params, shape=SHAPE, lowpass=0.0), seed)
    assert hashlib.sha256(vol.tobytes()).hexdigest() == GENERATE_SHA256[kind]


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("lowpass", [0.0, 1.0])
def test_objects_rasterise_to_generate(kind, lowpass):
    params, seed = CASES[kind]
    p = dict(params, shape=SHAPE, lowpass=lowpass)
    desc = make_objects(kind, p, seed)
    assert desc["phantom"] == kind and desc["lowpass"] == lowpass
    if kind == "spheres":
        binary = spheres.hollow_spheres(SHAPE, desc["centres"], desc["radii"],
                                        desc["thickness"])
    else:
        binary = shapes.rasterise_shapes(SHAPE, desc["shapes"])
    vol = np.clip(gaussian_lowpass(binary, lowpass), 0.0, 1.0)
    assert np.array_equal(vol, make_phantom(kind, p, seed)[0])
    module = {"spheres": spheres, "shapes": shapes}[kind]
    assert inspect.signature(module.objects).parameters == \
        inspect.signature(module.generate).parameters


def test_other_kinds_rejected():
    with pytest.raises(ValueError, match=r"'p22'.*spheres.*shapes"):
        analytic_projections("p22", SHAPE, {}, 0, ANGLES)
    with pytest.raises(InputError, match=r"'custom'.*spheres"):
        make_objects("custom", dict(shape=SHAPE), 0)
    with pytest.raises(ValueError, match="shape"):
        analytic_projections("spheres", SHAPE, dict(shape=[16, 64, 64]), 0, ANGLES)
    with pytest.raises(InputError, match="spheres.count"):
        analytic_projections("spheres", SHAPE, dict(count=-1), 0, ANGLES)
    assert set(OBJECT_KINDS) == {"spheres", "shapes"}
