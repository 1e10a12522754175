"""Phantom generators: geometry measured back from the volumes, symmetry, errors."""

import gzip
import importlib.resources
import math

import gemmi
import numpy as np
import pytest
from scipy import ndimage

from wedgebench.io import InputError, write_mrc
from wedgebench.phantoms import make_phantom, p22, shapes, spheres, ubiquitin
from wedgebench.phantoms.filters import (gaussian_lowpass, lowpass_resolution,
                                         place_non_overlapping, render_gaussians)

FULL = np.ones((3, 3, 3), bool)  # 26-connectivity


def corr(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def crossing(x, y, level=0.5):
    """Linear interpolation of the first x where y crosses ``level``."""
    i = int(np.flatnonzero(np.diff(np.sign(y - level)) != 0)[0])
    return x[i] + (level - y[i]) * (x[i + 1] - x[i]) / (y[i + 1] - y[i])


def radial_profile(vol, centre, step=0.25, rmax=None):
    idx = np.indices(vol.shape).reshape(3, -1).T
    d = np.linalg.norm(idx - np.asarray(centre), axis=1)
    rmax = d.max() if rmax is None else rmax
    edges = np.arange(0, rmax + step, step)
    k = np.digitize(d, edges) - 1
    ok = k < edges.size - 1
    s = np.bincount(k[ok], weights=vol.ravel()[ok], minlength=edges.size - 1)
    n = np.bincount(k[ok], minlength=edges.size - 1)
    keep = n > 0
    return ((edges[:-1] + edges[1:]) / 2)[keep], s[keep] / n[keep]


def moments(vol, voxel):
    """Centre of mass and covariance (x, y, z order, Å) of a [z, y, x] map, box-centred."""
    g = np.stack(np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * voxel for n in vol.shape],
                             indexing="ij"), -1).reshape(-1, 3)[:, ::-1]
    w = vol.ravel() / vol.sum()
    com = w @ g
    d = g - com
    return com, (d * w[:, None]).T @ d


# --------------------------------------------------------------------------- filters


def test_gaussian_lowpass_matches_scipy():
    rng = np.random.default_rng(0)
    vol = np.zeros((20, 24, 28), np.float32)
    vol[3:-3, 3:-3, 3:-3] = rng.random((14, 18, 22))
    for sigma in (1.0, 2.0):  # (below ~1 voxel the sampled kernel itself differs)
        ours = gaussian_lowpass(vol, sigma)
        ref = ndimage.gaussian_filter(vol.astype(np.float64), sigma, mode="constant",
                                      truncate=8)
        assert np.abs(ours - ref).max() < 2e-3 * vol.max()
    assert np.array_equal(gaussian_lowpass(vol, 0), vol)


@pytest.mark.parametrize("kind,gain", [("gaussian", 0.5), ("butterworth", 2 ** -0.5)])
def test_lowpass_resolution_gain_at_cutoff(kind, gain):
    # a plane wave at frequency 1/resolution keeps `gain` of its amplitude
    n, voxel, res = 64, 2.0, 16.0
    x = np.arange(n) * voxel
    wave = np.broadcast_to(np.cos(2 * np.pi * x / res), (n, n, n)).astype(np.float32)
    out = lowpass_resolution(wave, res, voxel, kind)
    c = out[n // 2, n // 2, n // 4: 3 * n // 4]
    assert np.ptp(c) / 2 == pytest.approx(gain, abs=0.03)
    # a wave at twice the frequency is damped much more
    fast = np.broadcast_to(np.cos(4 * np.pi * x / res), (n, n, n)).astype(np.float32)
    c = lowpass_resolution(fast, res, voxel, kind)[n // 2, n // 2, n // 4: 3 * n // 4]
    assert np.ptp(c) / 2 < 0.1


def test_render_gaussians_conserves_mass_and_centre():
    centres = np.array([[10.3, 12.7, 9.1], [15.0, 8.2, 20.6]])
    vol = render_gaussians((26, 24, 30), centres, [0.3, 1.7], [2.0, 5.0])
    assert vol.sum() == pytest.approx(7.0, rel=1e-4)
    # a narrow Gaussian lands in the voxel containing its centre
    assert np.unravel_index(np.argmax(vol), vol.shape) == (10, 13, 9)
    one = render_gaussians((26, 24, 30), centres[:1], 1.0, 1.0)
    com = (np.indices(one.shape) * one).reshape(3, -1).sum(1) / one.sum()
    assert np.allclose(com, centres[0], atol=0.01)
    frac = [0.5 * (math.erf((0.5 - d) / math.sqrt(2)) - math.erf((-0.5 - d) / math.sqrt(2)))
            for d in centres[0] - np.rint(centres[0])]
    assert one.max() == pytest.approx(np.prod(frac), rel=1e-5)


def test_place_non_overlapping_warns_when_full():
    rng = np.random.default_rng(1)
    with pytest.warns(UserWarning, match="placed only"):
        c, ok = place_non_overlapping(rng, (12, 40, 40), np.full(30, 5.0), gap=1.0,
                                      max_tries=200)
    assert 0 < ok.sum() < 30 and np.all(np.isnan(c[~ok]))


# --------------------------------------------------------------------------- spheres


@pytest.mark.parametrize("lowpass", [0.0, 1.0])
def test_hollow_sphere_radius_and_thickness_measured_back(lowpass):
    shape, diameter, thickness, seed = (32, 36, 40), 24.0, 4.0, 5
    vol, _ = make_phantom("spheres", dict(shape=list(shape), count=1,
                                          diameter=[diameter, diameter],
                                          thickness=thickness, lowpass=lowpass), seed)
    centres, radii = spheres.place_spheres(shape, 1, (diameter, diameter), 2.0,
                                           np.random.default_rng(seed))
    assert radii == pytest.approx([diameter / 2])
    r, prof = radial_profile(vol, centres[0], rmax=15.5)
    peak = int(np.argmax(prof))
    inner = crossing(r[:peak + 1], prof[:peak + 1])
    outer = crossing(r[peak:], prof[peak:])
    assert outer == pytest.approx(diameter / 2, abs=1.0)
    assert outer - inner == pytest.approx(thickness, abs=1.0)
    assert prof[r < inner - 2].max() < 0.05  # hollow
    assert vol.min() >= 0 and vol.max() <= 1


def test_spheres_inside_box_and_not_overlapping():
    shape = (24, 64, 64)
    centres, radii = spheres.place_spheres(shape, 30, (6.0, 14.0), 2.0,
                                           np.random.default_rng(3))
    assert len(radii) == 30
    assert np.all(centres - radii[:, None] >= 0)
    assert np.all(centres + radii[:, None] <= np.array(shape) - 1)
    d = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    need = radii[:, None] + radii[None] + 2.0
    assert np.all(d[~np.eye(30, dtype=bool)] >= need[~np.eye(30, dtype=bool)])
    binary = spheres.hollow_spheres(shape, centres, radii, 2.0)
    assert ndimage.label(binary, FULL)[1] == 30
    vol, _ = make_phantom("spheres", dict(shape=list(shape), count=30, diameter=[6, 14],
                                          thickness=2.0, lowpass=0), 3)
    assert np.array_equal(vol, binary)


def test_spheres_too_many_warns_and_too_large_errors():
    with pytest.warns(UserWarning, match="placed only"):
        vol, _ = make_phantom("spheres", dict(shape=[24, 48, 48], count=40,
                                              diameter=[20, 20]), 0)
    assert vol.max() > 0
    with pytest.raises(InputError, match="spheres.diameter"):
        make_phantom("spheres", dict(shape=[16, 64, 64], diameter=[8, 20]), 0)


# --------------------------------------------------------------------------- shapes


def analytic_volume(s):
    d = s["dims"]
    k = s["kind"]
    if k == "sphere":
        return 4 / 3 * np.pi * d[0] ** 3
    if k == "ellipsoid":
        return 4 / 3 * np.pi * d[0] * d[1] * d[2]
    if k == "cube":
        return (2 * d[0]) ** 3
    if k == "prism":
        return 8 * d[0] * d[1] * d[2]
    if k == "pyramid":
        return (2 * d[0]) ** 2 * (d[2] - d[1]) / 3
    if k == "disc":
        return np.pi * d[0] ** 2 * 2 * d[1]
    bar, core = 2 * d[0] * (2 * d[1]) ** 2, (2 * d[1]) ** 3
    return 2 * bar - core if k == "cross4" else 3 * bar - 2 * core


def test_shapes_counts_kinds_components_and_volumes():
    shape = (32, 96, 96)
    placed = shapes.place_shapes(shape, 16, (12.0, 22.0), shapes.KINDS, 2.0,
                                 np.random.default_rng(7))
    assert len(placed) == 16
    assert {s["kind"] for s in placed} == set(shapes.KINDS)
    binary = shapes.rasterise_shapes(shape, placed)
    labels, n = ndimage.label(binary, FULL)
    assert n == 16
    sizes = np.bincount(labels.ravel())
    for s in placed:
        lab = labels[tuple(np.rint(s["centre"]).astype(int))]
        assert lab > 0, s["kind"]
        assert sizes[lab] == pytest.approx(analytic_volume(s), rel=0.1), s["kind"]
        pts = np.argwhere(labels == lab)
        assert np.linalg.norm(pts - s["centre"], axis=1).max() <= s["radius"] + 1e-9
        rot = s["rotation"]
        assert np.allclose(rot @ rot.T, np.eye(3)) and np.linalg.det(rot) == pytest.approx(1)
        if s["kind"] == "disc":  # the disc's normal is the local third axis, rotated
            _, evecs = np.linalg.eigh(np.cov((pts - pts.mean(0)).T))
            assert abs(evecs[:, 0] @ rot[:, 2]) > 0.95
    vol, _ = make_phantom("shapes", dict(shape=list(shape), count=16, size=[12, 22],
                                         lowpass=0), 7)
    assert np.array_equal(vol, binary)


def test_shapes_subset_of_kinds_and_bad_kind():
    placed = shapes.place_shapes((24, 64, 64), 6, (10.0, 14.0), ["cube", "disc"], 2.0,
                                 np.random.default_rng(0))
    assert [s["kind"] for s in placed].count("cube") == 3
    with pytest.raises(InputError, match="shapes.kinds"):
        make_phantom("shapes", dict(shape=[24, 64, 64], size=[8, 16],
                                    kinds=["cube", "torus"]), 0)


# --------------------------------------------------------------------------- p22


def test_icosahedral_lattice():
    v, f = p22.icosahedron()
    assert np.allclose(v[0], [0, 0, 1]) and f.shape == (20, 3)
    rots = p22.icosahedral_rotations(v, f)
    assert rots.shape == (60, 3, 3)
    caps, pent = p22.capsomer_lattice(v, f, rots)
    assert caps.shape == (72, 3) and pent.sum() == 12  # T = 7: 12 pentamers, 60 hexamers
    lobes = p22.capsomer_lobes(caps, pent, 0.05)
    assert lobes.shape == (12 * 5 + 60 * 6, 3)
    for pts in (caps, lobes):  # both point sets are invariant under every rotation
        for g in rots:
            moved = pts @ g.T
            assert np.abs(moved[:, None] - pts[None]).max(-1).min(1).max() < 1e-9


@pytest.fixture(scope="module")
def p22_parts():
    return p22.build_components((52, 52, 52), 16.0, 600.0, 25.0, 25.0, 200.0)


def test_p22_capsid_fivefold_symmetry(p22_parts):
    cap = lowpass_resolution(p22_parts["capsid"], 30.0, 16.0)
    c72 = corr(cap, ndimage.rotate(cap, 72, axes=(1, 2), reshape=False, order=1))
    c36 = corr(cap, ndimage.rotate(cap, 36, axes=(1, 2), reshape=False, order=1))
    assert c72 > 0.95
    assert c36 < c72 - 0.1


def test_p22_capsid_is_faceted(p22_parts):
    # outer radius towards a vertex / towards a face centre = circumradius / inradius
    v, f = p22.icosahedron()
    normal = v[f[0]].sum(0) / np.linalg.norm(v[f[0]].sum(0))
    vertex = v[1]  # the vertex opposite the tail: no tail density on that ray
    cap, centre, vs = p22_parts["capsid"], p22_parts["centre"], 16.0
    r = np.arange(0, 360, 1.0)

    def outer(direction):
        pts = centre[:, None] + (r[None] * direction[::-1, None]) / vs
        prof = ndimage.map_coordinates(cap, pts, order=1)
        return r[np.flatnonzero(prof > 0.5).max()]

    ratio = outer(vertex) / outer(normal)
    assert ratio == pytest.approx(1 / 0.7947, abs=0.08)


def test_p22_dna_layers(p22_parts):
    # fine grid: layers parallel to a facet, dna_spacing apart, along the face normal
    vs, spacing = 4.0, 25.0
    parts = p22.build_components((80, 80, 80), vs, 300.0, 20.0, spacing, 0.0)
    v, f = p22.icosahedron()
    normal = v[f[0]].sum(0) / np.linalg.norm(v[f[0]].sum(0))
    r = np.arange(30.0, 100.0, 0.5)  # DNA boundary at 0.7947·150 − 20 − 10 ≈ 89 Å
    pts = parts["centre"][:, None] + r[None] * normal[::-1, None] / vs
    prof = ndimage.map_coordinates(parts["dna"], pts, order=1)
    peaks = r[1:-1][(prof[1:-1] > prof[:-2]) & (prof[1:-1] >= prof[2:]) & (prof[1:-1] > 0.6)]
    r_dna = 0.7947 * 150 - 20 - 10
    assert len(peaks) >= 2
    assert peaks[-1] == pytest.approx(r_dna - spacing / 2, abs=1.5)
    assert np.diff(peaks).mean() == pytest.approx(spacing, abs=1.0)
    # coarse grid (16 Å voxels, 25 Å layers): not resolvable, so uniform density
    dna, cap = p22_parts["dna"], p22_parts["capsid"]
    inner = ndimage.binary_erosion(dna > 0.49, iterations=2)
    assert inner.sum() > 100 and np.ptp(dna[inner]) < 1e-6 and cap[inner].max() < 1e-3


def test_p22_phantom_nonnegative_with_one_sided_tail():
    shape, vs = (64, 64, 64), 16.0
    vol, out_vs = make_phantom("p22", dict(shape=list(shape), voxel_size=vs,
                                           tail_length=200.0), 0)
    assert out_vs == vs and vol.dtype == np.float32
    assert vol.min() >= 0 and vol.max() == pytest.approx(1.0)
    zc = (shape[0] - 1) / 2 - 200.0 / (2 * vs)  # capsid centre, voxels
    top = vol[int(np.ceil(zc + 300 / vs + 1.5)):].sum()
    bottom = vol[:int(np.floor(zc - 300 / vs - 1.5))].sum()
    assert top > 0.01 * vol.sum()
    assert bottom < 0.02 * top
    with pytest.warns(UserWarning, match="clipped"):
        make_phantom("p22", dict(shape=[16, 16, 16], voxel_size=30.0, resolution=0), 0)
    # the whole particle minus the tail side keeps the 5-fold symmetry
    lower = vol[:int(zc)]
    assert corr(lower, ndimage.rotate(lower, 72, axes=(1, 2), reshape=False, order=1)) > 0.95


def test_p22_from_map(tmp_path):
    n, src_vs = 40, 4.5
    z, y, x = np.indices((n, n, n)) - (n - 1) / 2
    blob = np.exp(-((x - 8) ** 2 + y ** 2 + (z + 4) ** 2) / (2 * 3.0 ** 2)) - 0.1
    path = tmp_path / "map.mrc"
    write_mrc(path, blob.astype(np.float32), src_vs)
    gz = tmp_path / "map.mrc.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    vol, vs = make_phantom("p22", dict(shape=[20, 22, 24], voxel_size=9.0, source=str(gz),
                                       resolution=0, normalise=False, spin=0), 0)
    assert vol.shape == (20, 22, 24) and vs == 9.0 and vol.min() == 0
    # expected: the source function sampled at the output voxels (Å → source voxels)
    zo, yo, xo = (((np.arange(m) - (m - 1) / 2) * 9.0 / src_vs).reshape(view)
                  for m, view in zip(vol.shape, ((-1, 1, 1), (1, -1, 1), (1, 1, -1))))
    expected = np.maximum(np.exp(-((xo - 8) ** 2 + yo ** 2 + (zo + 4) ** 2) / 18.0) - 0.1, 0)
    assert np.abs(vol - expected).max() < 0.08  # interpolation + anti-alias blur
    com, _ = moments(vol, 9.0)
    assert np.allclose(com, [8 * src_vs, 0, -4 * src_vs], atol=1.0)
    with pytest.raises(InputError, match="nothere.mrc"):
        make_phantom("p22", dict(shape=[8, 8, 8], voxel_size=9.0,
                                 source=str(tmp_path / "nothere.mrc")), 0)
    with pytest.raises(InputError, match="p22.tail_length"):
        make_phantom("p22", dict(shape=[8, 8, 8], voxel_size=9.0, source=str(path),
                                 tail_length=100), 0)


@pytest.mark.parametrize("kind, shape, vs", [("p22", [40, 40, 40], 20.0),
                                              ("ubiquitin", [48, 48, 48], 1.0)])
def test_spin_about_the_beam_axis(kind, shape, vs):
    """A fixed structure turns about z with the seed (replicates and validation seeds differ);
    spin 90 carries +x onto +y, i.e. a quarter turn of the (y, x) planes."""
    fixed, _ = make_phantom(kind, dict(shape=shape, voxel_size=vs, spin=0), 1)
    quarter, _ = make_phantom(kind, dict(shape=shape, voxel_size=vs, spin=90), 1)
    np.testing.assert_allclose(quarter, np.rot90(fixed, -1, axes=(1, 2)), atol=1e-5)
    s1, _ = make_phantom(kind, dict(shape=shape, voxel_size=vs), 1)
    s1b, _ = make_phantom(kind, dict(shape=shape, voxel_size=vs), 1)
    s2, _ = make_phantom(kind, dict(shape=shape, voxel_size=vs), 2)
    assert np.array_equal(s1, s1b) and not np.allclose(s1, s2, atol=1e-3)
    # only the orientation changes: same z profile (the spin axis) and the same total
    np.testing.assert_allclose(s1.sum((1, 2)), fixed.sum((1, 2)), rtol=0.02,
                               atol=0.02 * fixed.sum((1, 2)).max())


def test_p22_map_spins_like_the_model(tmp_path):
    """A ``source`` map is turned by interpolation with the model's sense of rotation."""
    n = 24
    z, y, x = np.indices((n, n, n)) - (n - 1) / 2
    blob = np.exp(-((x - 6) ** 2 + y ** 2 + z ** 2) / (2 * 2.0 ** 2))
    path = tmp_path / "map.mrc"
    write_mrc(path, blob.astype(np.float32), 10.0)
    params = dict(shape=[n, n, n], voxel_size=10.0, source=str(path), resolution=0,
                  normalise=False)
    vol, _ = make_phantom("p22", dict(params, spin=90), 0)
    com, _ = moments(vol, 10.0)  # physical (x, y, z), Å
    assert np.allclose(com, [0, 60, 0], atol=1.0)  # +x turned onto +y
    with pytest.raises(InputError, match="p22.spin"):
        make_phantom("p22", dict(params, spin="north"), 0)


# --------------------------------------------------------------------------- ubiquitin


def atoms_gemmi(path, waters=False):
    """Independent reading: atom positions and weights (occupancy × electron
    scattering factor at s = 0)."""
    st = gemmi.read_structure(str(path))
    xyz, z = [], []
    for chain in st[0]:
        for res in chain:
            if res.is_water() and not waters:
                continue
            for atom in res:
                xyz.append(atom.pos.tolist())
                z.append(atom.occ * sum(atom.element.c4322.get_coefs()[:5]))
    return np.array(xyz), np.array(z, float)


@pytest.mark.parametrize("spin", [0.0, 37.0])
def test_ubiquitin_centre_extent_and_orientation(spin):
    vol, vs = make_phantom("ubiquitin", dict(shape=[48, 48, 48], voxel_size=1.0, spin=spin), 0)
    assert vs == 1.0 and vol.min() >= 0 and vol.max() == pytest.approx(1.0)
    ref = importlib.resources.files("wedgebench").joinpath("data/1ubq.pdb")
    with importlib.resources.as_file(ref) as path:
        xyz, w = atoms_gemmi(path)
    c, s_ = np.cos(np.radians(spin)), np.sin(np.radians(spin))
    xyz = xyz @ np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]]).T  # counter-clockwise, x to y
    centred = xyz - (w @ xyz) / w.sum()
    cov_atoms = (centred * w[:, None]).T @ centred / w.sum()
    com, cov = moments(vol, vs)
    assert np.linalg.norm(com) < 1.0
    rg_map, rg_atoms = np.sqrt(np.trace(cov)), np.sqrt(np.trace(cov_atoms))
    assert rg_map == pytest.approx(rg_atoms, rel=0.1)
    # axis order: the anisotropic spread along x, y, z matches the atoms'
    assert np.diag(cov) == pytest.approx(np.diag(cov_atoms), rel=0.05)
    assert np.abs(np.diag(cov) - np.diag(cov_atoms)).max() < 0.3 * np.ptp(np.diag(cov_atoms))


def test_ubiquitin_mass_waters_and_custom_pdb(tmp_path):
    xyz, el, b, occ = ubiquitin.read_atoms(
        importlib.resources.files("wedgebench").joinpath("data/1ubq.pdb"))
    assert len(el) == 602
    assert len(ubiquitin.read_atoms(
        importlib.resources.files("wedgebench").joinpath("data/1ubq.pdb"),
        waters=True)[1]) == 660
    # total density = Σ a_k (electron scattering factor at s = 0), for any voxel size
    a, _ = ubiquitin.scattering_gaussians(el, b)
    for vs, n in ((1.0, 48), (2.0, 26)):
        vol, _ = make_phantom("ubiquitin", dict(shape=[n, n, n], voxel_size=vs,
                                                normalise=False), 0)
        assert vol.sum() * vs ** 3 == pytest.approx((a.sum(1) * occ).sum(), rel=0.01)
    # a two-atom model: density peaks where the atoms are, centred on their weighted mean
    pdb = tmp_path / "two.pdb"
    pdb.write_text(
        "ATOM      1  C   GLY A   1       0.000   0.000   0.000  1.00 10.00           C\n"
        "ATOM      2  CA  GLY A   1       8.000   0.000   0.000  1.00 10.00           C\n"
        "END\n")
    vol, _ = make_phantom("ubiquitin", dict(shape=[9, 11, 21], voxel_size=1.0, pdb=str(pdb),
                                        spin=0), 0)
    peaks = np.argwhere(vol > 0.5 * vol.max())
    assert sorted({tuple(p) for p in peaks}) == [(4, 5, 6), (4, 5, 14)]
    # only the first alternative conformation is kept
    alt = tmp_path / "alt.pdb"
    alt.write_text(
        "ATOM      1  N   SER A   1       0.000   0.000   0.000  1.00 10.00           N\n"
        "ATOM      2  OG ASER A   1       1.000   0.000   0.000  0.60 10.00           O\n"
        "ATOM      3  OG BSER A   1       0.000   1.000   0.000  0.40 10.00           O\n"
        "END\n")
    xyz, el, _, occ = ubiquitin.read_atoms(alt)
    assert el == ["N", "O"] and np.allclose(xyz[1], [1, 0, 0]) and occ[1] == pytest.approx(0.6)
    with pytest.raises(InputError, match="ubiquitin.shape"):
        make_phantom("ubiquitin", dict(shape=[20, 20, 20], voxel_size=1.0), 0)
    with pytest.raises(InputError, match="missing.pdb"):
        make_phantom("ubiquitin", dict(shape=[20, 20, 20], pdb=str(tmp_path / "missing.pdb")), 0)


# --------------------------------------------------------------------------- custom


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_custom_round_trip_and_errors(tmp_path):
    data = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32)
    path = tmp_path / "gt.mrc"
    write_mrc(path, data, 3.5)
    vol, vs = make_phantom("custom", dict(path=str(path)), 0)
    assert np.array_equal(vol, data) and vs == pytest.approx(3.5)
    vol, vs = make_phantom("custom", dict(path=str(path), shape=[6, 7, 8], voxel_size=2.0), 0)
    assert vs == 2.0
    with pytest.raises(InputError, match="custom.shape"):
        make_phantom("custom", dict(path=str(path), shape=[6, 7, 9]), 0)
    with pytest.raises(InputError, match="absent.mrc"):
        make_phantom("custom", dict(path=str(tmp_path / "absent.mrc")), 0)
    bad = tmp_path / "nan.mrc"
    import mrcfile
    with mrcfile.new(bad) as m:
        m.set_data(np.full((2, 3, 4), np.nan, np.float32))
    with pytest.raises(InputError, match="nan.mrc"):
        make_phantom("custom", dict(path=str(bad)), 0)


# --------------------------------------------------------------------------- dispatch


@pytest.mark.parametrize("kind,params", [
    ("spheres", dict(shape=[16, 40, 40], count=6, diameter=[6, 10])),
    ("shapes", dict(shape=[16, 40, 40], count=6, size=[8, 12])),
])
def test_determinism(kind, params):
    a, _ = make_phantom(kind, params, 11)
    b, _ = make_phantom(kind, params, 11)
    c, _ = make_phantom(kind, params, 12)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_fixed_orientation_ignores_the_seed():
    for kind, params in (("p22", dict(shape=[24, 24, 24], voxel_size=40.0, spin=0)),
                         ("ubiquitin", dict(shape=[20, 20, 20], voxel_size=3.0, spin=15))):
        a, _ = make_phantom(kind, params, 1)
        b, _ = make_phantom(kind, params, 2)
        assert a.tobytes() == b.tobytes()


def test_make_phantom_rejects_bad_input():
    with pytest.raises(InputError, match="'blobs'"):
        make_phantom("blobs", dict(shape=[8, 8, 8]), 0)
    with pytest.raises(InputError, match="radius"):
        make_phantom("spheres", dict(shape=[8, 32, 32], radius=3), 0)
    with pytest.raises(InputError, match="shape"):
        make_phantom("shapes", dict(count=3), 0)
    with pytest.raises(InputError, match="spheres.count"):
        make_phantom("spheres", dict(shape=[8, 32, 32], count=-1), 0)
    with pytest.raises(InputError, match="spheres.shape"):
        make_phantom("spheres", dict(shape=[8, 32]), 0)
    with pytest.raises(InputError, match="p22.resolution"):
        make_phantom("p22", dict(shape=[8, 8, 8], resolution="high"), 0)
    with pytest.raises(InputError, match="p22.filter"):
        make_phantom("p22", dict(shape=[8, 8, 8], filter="box"), 0)
