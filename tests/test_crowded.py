"""Crowded specimens: class potentials against analytic integrals and independent codes,
assemblies and their symmetry, placement, ground truth, determinism, bad settings."""

import gzip
import math

import gemmi
import numpy as np
import pytest
import starfile
from scipy import ndimage
from scipy.spatial import cKDTree

from wedgebench.euler import axis_rotation, particle_matrix, random_rotations, \
    rotate_volume, symmetry_operators
from wedgebench.io import InputError, read_json, read_mrc
from wedgebench.phantoms import crowded, make_phantom, molecules, ubiquitin


def corr(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def symmetry_rmsd(mol):
    """Largest, over the class's operators, RMSD of each operated atom to its nearest atom."""
    tree = cKDTree(mol.xyz)
    return max(float(np.sqrt((tree.query(mol.xyz @ s.T)[0] ** 2).mean()))
               for s in symmetry_operators(mol.symmetry))


def closest_between_copies(mol):
    """Smallest distance between heavy atoms of copy 0 and of any other copy (Å)."""
    heavy = mol.elements != "H"
    tree = cKDTree(mol.xyz[heavy & (mol.copy == 0)])
    return float(tree.query(mol.xyz[heavy & (mol.copy > 0)])[0].min())


# --------------------------------------------------------------------------- potentials


def test_volt_constant_is_h2_over_2pi_me_e():
    assert molecules.K_VOLT == pytest.approx(47.878, abs=1e-3)
    assert molecules.PROTEIN_VOLUME_A3_PER_DA == pytest.approx(1.2122, abs=1e-4)


@pytest.mark.parametrize("name,voxel", [("porin_c3", 10.0), ("ubq_o24", 8.0),
                                        ("ubq_o24", 12.0)])
def test_map_integral_equals_analytic_integral(name, voxel):
    """Σ V·voxel³ = 47.878 · Σ occupancy · f_e(0) (f_e(0) = Σ a_k of gemmi's c4322) to 0.1 %:
    the map is the voxel average of the potential, not point samples (at 8–12 Å voxels
    point samples of atoms would be nowhere near this)."""
    mol = molecules.build_class(name)
    vol = mol.potential(voxel)
    f0 = np.array([sum(gemmi.Element(e).c4322.get_coefs()[:5]) for e in mol.elements])
    analytic = 47.878 * float((mol.occupancy * f0).sum())
    assert mol.integral() == pytest.approx(analytic, rel=1e-4)
    assert vol.sum(dtype=np.float64) * voxel ** 3 == pytest.approx(analytic, rel=1e-3)
    assert vol.shape[0] % 2 == 1 and len(set(vol.shape)) == 1
    assert vol.min() >= 0


def test_map_matches_ubiquitin_module():
    """1UBQ (no hydrogens, as in ubiquitin.py) against ubiquitin.atom_density, which
    integrates each Gaussian exactly over the voxels: scale within 0.1 %, correlation
    > 0.9995 with 1 Å fine sampling (B raised to ≥ 38.7 Å²), > 0.99999 with 0.5 Å."""
    mol = molecules.build_class("ubq_plain", {"pdb": "1UBQ", "hydrogens": False})
    for voxel, fine, least in ((8.0, 1.0, 0.9995), (10.0, 1.0, 0.9995), (8.0, 0.5, 0.99999)):
        vol = mol.potential(voxel, fine)  # odd box: ubiquitin.py's centre (n-1)/2 = n//2
        ref = molecules.K_VOLT * ubiquitin.atom_density(
            vol.shape, voxel, mol.xyz, list(mol.elements), mol.b_iso, mol.occupancy)
        assert corr(vol, ref) > least
        assert vol.sum() / ref.sum() == pytest.approx(1.0, abs=1e-3)
        com = [float((np.arange(n) * vol.sum(axis=tuple(a for a in range(3) if a != ax))).sum()
                     / vol.sum()) for ax, n in enumerate(vol.shape)]
        assert np.allclose(com, vol.shape[0] // 2, atol=0.05)


def test_map_matches_ttsim3d():
    """ttsim3d (teamtomo; Benjamin & Grigorieff 2021) integrates the same Peng
    parametrisation over 1 Å voxels (no upsampling, no dose filter); binned to 10 Å it must
    equal our map up to its lead term 1.043·λ·(1 Å)/47.878: correlation > 0.9999, scale 1 %.
    (1OSM: every occupancy is 1; ttsim3d ignores occupancies.)"""
    pytest.importorskip("ttsim3d")
    import torch
    from ttsim3d.simulate3d import simulate3d

    mol = molecules.build_class("osm_plain", {"pdb": "1OSM", "hydrogens": False})
    assert np.all(mol.occupancy == 1)
    voxel, k = 10.0, 10
    vol = mol.potential(voxel)
    n = vol.shape[0]
    # ttsim3d centres voxel (n·k)/2 on the origin; our voxel n//2's centre is half a fine
    # voxel further: shift the atoms by -0.5 Å
    xyz = torch.tensor((mol.xyz - 0.5)[:, ::-1].copy(), dtype=torch.float32)
    out = simulate3d(xyz, [e.upper() for e in mol.elements],
                     torch.tensor(mol.b_iso, dtype=torch.float32), 300.0, voxel / k,
                     (n * k,) * 3, requested_upsampling=1, apply_dose_weighting=False,
                     device="cpu").numpy()
    binned = out.reshape(n, k, n, k, n, k).mean(axis=(1, 3, 5))
    volts = 300e3
    wavelength = 12.2643 / math.sqrt(volts * (1 + 0.97845e-6 * volts))
    lead = 1.043 * wavelength * (voxel / k) / molecules.K_VOLT
    assert corr(vol, binned) > 0.9999
    assert (vol.sum() * lead) / binned.sum() == pytest.approx(1.0, abs=0.01)


# --------------------------------------------------------------------------- assemblies


def test_shipped_models_and_remark350_assemblies():
    st = molecules.read_structure("3KPR")
    model, tr, symbol = molecules.biological_assembly(st, "2")
    assert [ch.name[0] for ch in model] == list("FGHIJ") and symbol == "C1" and tr is None
    assert molecules.build_class("a", {"pdb": "19HC", "assembly": "1"}).chains == 2
    with pytest.raises(InputError, match="classes.b.assembly"):
        molecules.build_class("b", {"pdb": "1A28", "assembly": "7"})


def c3_pdb(path):
    """1UBQ with a REMARK 350 trimer about an oblique 3-fold axis 22 Å from its centre."""
    lines = [ln for ln in molecules.model_path("1UBQ").read_text().splitlines()
             if ln.startswith(("CRYST1", "ATOM", "TER"))]
    xyz = np.array([[float(ln[30:38]), float(ln[38:46]), float(ln[46:54])]
                    for ln in lines if ln.startswith("ATOM")])
    axis = np.array([1.0, 2.0, 0.5]) / np.linalg.norm([1.0, 2.0, 0.5])
    perp = np.cross(axis, [0, 0, 1])
    point = xyz.mean(0) + 22 * perp / np.linalg.norm(perp)
    remark = ["REMARK 350 BIOMOLECULE: 1", "REMARK 350 APPLY THE FOLLOWING TO CHAINS: A"]
    for k in range(3):
        r = axis_rotation(axis, 120 * k)
        t = point - r @ point
        remark += [f"REMARK 350   BIOMT{i + 1}{k + 1:4d}{r[i, 0]:10.6f}{r[i, 1]:10.6f}"
                   f"{r[i, 2]:10.6f}{t[i]:15.5f}" for i in range(3)]
    path.write_text("\n".join(remark + lines + ["END"]) + "\n")
    return path


def test_remark350_trimer_goes_to_the_standard_frame(tmp_path):
    mol = molecules.build_class("tri", {"pdb": str(c3_pdb(tmp_path / "c3.pdb")),
                                        "assembly": "1"})
    assert mol.symmetry == "C3" and mol.chains == 3
    assert symmetry_rmsd(mol) < 1e-3  # C3 about z through the box centre
    unit = molecules.build_class("one", {"pdb": "1UBQ"})
    assert mol.mass_da == pytest.approx(3 * unit.mass_da)


@pytest.mark.parametrize("symbol", ["C2", "C5", "D3", "T", "O", "I"])
def test_point_group_of_conjugated_operators(symbol):
    rng = np.random.default_rng(7)
    q = random_rotations(rng, 1)[0]
    std = symmetry_operators(symbol)
    ops = (q @ std @ q.T)[rng.permutation(len(std))]
    found, frame = molecules.point_group(ops)
    assert found == symbol
    back = frame.T @ ops @ frame
    assert np.abs(back[:, None] - std[None]).max(axis=(-1, -2)).min(1).max() < 1e-9
    if len(ops) > 2:
        assert molecules.point_group(ops[:-1])[0] is None  # not closed: not a group


@pytest.mark.parametrize("name,symbol,copies", [("porin_c3", "C3", 3), ("ubq_o24", "O", 24),
                                                ("tcr_d2", "D2", 4)])
def test_pseudo_assemblies_are_symmetric_and_touch_without_clashes(name, symbol, copies):
    """Each operator of the class's point group maps the atoms onto themselves (RMSD < 1 Å);
    no two copies come closer than 2 Å (the search keeps 3 Å) and neighbours touch (< 4 Å),
    checked with a KD-tree of copy 0 against every other copy."""
    mol = molecules.build_class(name)
    assert mol.symmetry == symbol and len(mol.pieces) == copies
    assert symmetry_rmsd(mol) < 1.0
    gap = closest_between_copies(mol)
    assert 2.0 <= gap < 4.0
    assert gap >= 3.0 - 1e-6
    unit_chains = {"porin_c3": 1, "ubq_o24": 1, "tcr_d2": 5}[name]
    assert mol.chains == copies * unit_chains
    assert mol.radius == pytest.approx(np.linalg.norm(mol.xyz, axis=1).max())


def test_default_catalogue_spans_czii_sizes():
    """Radii (largest atom distance from the centre) across ≈ 60–150 Å like the CZII
    targets (apo-ferritin 60, β-galactosidase 90, thyroglobulin 130, ribosome 150 Å)."""
    radii = sorted(molecules.build_class(n).radius for n in molecules.DEFAULT_CLASSES)
    assert 50 <= radii[0] <= 70 and 140 <= radii[-1] <= 160
    assert len(radii) >= 4


def test_united_hydrogens_add_the_tabulated_hydrogens():
    plain = molecules.build_class("u0", {"pdb": "1UBQ", "hydrogens": False})
    with_h = molecules.build_class("u1", {"pdb": "1UBQ"})
    n_h = (with_h.occupancy * (with_h.elements == "H")).sum()
    # ubiquitin C378 H629 N105 O118 S1 (76 residues); the model lacks 2 C-terminal atoms
    assert n_h == pytest.approx(629 - 2, abs=15)
    assert with_h.integral() / plain.integral() == pytest.approx(1.24, abs=0.03)
    assert with_h.mass_da == pytest.approx(8565, rel=0.03)


# --------------------------------------------------------------------------- membranes


def test_vesicle_integral_and_bilayer_profile():
    profile, c = crowded.bilayer_profile(40.0, 4.5)
    assert profile(20.0) > profile(0.0) > 0  # head groups above the core, in ice
    assert c["core_V"] == pytest.approx(1.33, abs=0.05)
    voxel, radius = 8.0, 120.0
    shape = (41, 41, 41)
    sl, vals = crowded.render_vesicle(shape, voxel, (20.3, 19.8, 20.1), radius, profile,
                                      40.0 / 2 + 12)
    assert vals.sum() * voxel ** 3 == pytest.approx(
        crowded.vesicle_integral(radius, 40.0, 4.5), rel=0.005)


def test_filament_has_actin_mass_per_length():
    centres, sigma = crowded.filament_blobs([0, 0, 0], [0, 0, 550.0], 70.0, 0.0)
    assert len(centres) == 21 and sigma == pytest.approx(17.5)
    assert np.allclose(np.linalg.norm(centres[:, :2], axis=1), 7.0)


# --------------------------------------------------------------------------- specimen

PARAMS = dict(classes={"ubq_o24": {"fraction": 0.02}, "porin_c3": {"count": 12},
                       "tcr_d2": None},
              fraction=0.015, thickness=260.0, vesicles=1, vesicle_radius=[80.0, 90.0],
              filaments=1, filament_length=[300.0, 400.0])
SHAPE, VOXEL = (32, 80, 80), 10.0


@pytest.fixture(scope="module")
def spec():
    return crowded.specimen(SHAPE, VOXEL, 3, **PARAMS)


def replace_particles(spec):
    """Each class map at its STAR coordinates and angles (rotate_volume, trilinear)."""
    out = np.zeros(spec.volume.shape, np.float64)
    maps = {c["number"]: c["map"] for c in spec.classes}
    for row in spec.particles.itertuples():
        m = maps[row.rlnClassNumber]
        p = rotate_volume(m, particle_matrix(row.rlnAngleRot, row.rlnAngleTilt,
                                             row.rlnAnglePsi), order=1)
        corner = np.array([row.rlnCoordinateZ, row.rlnCoordinateY, row.rlnCoordinateX]) \
            - m.shape[0] // 2
        vs, ls = crowded._window(out.shape, corner, p.shape)
        out[vs] += p[ls]
    return out


def test_ground_truth_reproduces_the_particles(spec):
    again = replace_particles(spec)
    part = spec.parts["particles"]
    assert np.abs(again - part).max() < 1e-4 * part.max()
    total = spec.parts["particles"] + spec.parts["membranes"] + spec.parts["filaments"]
    assert np.allclose(spec.volume, total, atol=1e-5)


def object_masks(spec):
    """Occupancy masks (as placed) of every particle, vesicle and filament."""
    thr = crowded.DEFAULTS["mask_threshold"]
    masks = []
    maps = {c["number"]: c["map"] for c in spec.classes}
    for row in spec.particles.itertuples():
        m = maps[row.rlnClassNumber]
        p = rotate_volume(m, particle_matrix(row.rlnAngleRot, row.rlnAngleTilt,
                                             row.rlnAnglePsi), order=1)
        full = np.zeros(spec.volume.shape, bool)
        corner = np.array([row.rlnCoordinateZ, row.rlnCoordinateY, row.rlnCoordinateX]) \
            - m.shape[0] // 2
        vs, ls = crowded._window(full.shape, corner, p.shape)
        mask = ndimage.binary_fill_holes(p > thr * p.max())
        assert mask[ls].sum() == mask.sum()  # the whole mask lies in the box
        full[vs] = mask[ls]
        masks.append(full)
    for name in ("membranes", "filaments"):
        labels, n = ndimage.label(spec.parts[name] > 0)
        for i in range(1, n + 1):
            obj = np.where(labels == i, spec.parts[name], 0)
            masks.append(obj > thr * obj.max())
    return masks


def test_no_overlaps_and_inside_the_slab(spec):
    masks = object_masks(spec)
    assert len(masks) == len(spec.particles) + 2
    cover = np.sum(masks, axis=0)
    assert cover.max() == 1  # no voxel in two masks
    margin = int(round(crowded.DEFAULTS["margin"] / VOXEL))
    ball = ndimage.generate_binary_structure(3, 1)
    for i, m in enumerate(masks[:len(spec.particles)]):
        grown = ndimage.binary_dilation(m, ball, iterations=margin)
        assert not np.any(grown & (cover - m).astype(bool)), i
    lo, hi = crowded._slab(SHAPE, VOXEL, PARAMS["thickness"])[0]
    z = np.flatnonzero(cover.any(axis=(1, 2)))
    assert z.min() >= lo and z.max() <= hi and (lo, hi) == (3, 28)
    outside = np.r_[spec.volume[:lo].ravel(), spec.volume[hi + 1:].ravel()]
    assert outside.max() <= crowded.DEFAULTS["mask_threshold"] * spec.volume.max()


def test_fractions_are_reached(spec):
    """Achieved = count · mass · 1.21 Å³/Da / slab volume, within half a particle of the
    target; counts are exact."""
    slab = PARAMS["thickness"] * SHAPE[1] * SHAPE[2] * VOXEL ** 2
    by_name = {c["name"]: c for c in spec.classes}
    counts = spec.particles["wbClassName"].value_counts()
    for name, target in (("ubq_o24", 0.02), ("tcr_d2", 0.015)):
        c = by_name[name]
        one = c["mass_kDa"] * 1000 * molecules.PROTEIN_VOLUME_A3_PER_DA / slab
        assert c["fraction_target"] == target
        assert abs(c["fraction"] - target) <= one / 2 + 1e-4
        assert c["count"] == counts[name] > 0
    assert by_name["porin_c3"]["count"] == counts["porin_c3"] == 12


def test_ground_truth_files(spec, tmp_path):
    paths = crowded.write_ground_truth(spec, tmp_path, volume=True)
    df = starfile.read(paths["star"])
    for col in ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnAngleRot",
                "rlnAngleTilt", "rlnAnglePsi", "rlnClassNumber", "wbClassName"):
        assert col in df.columns
    assert len(df) == len(spec.particles)
    assert np.allclose(df[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(),
                       spec.particles[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]],
                       atol=1e-4)
    assert (df["rlnCoordinateX"].to_numpy() == spec.particles["rlnCoordinateX"]).all()
    cat = read_json(paths["catalogue"])
    assert [c["name"] for c in cat["classes"]] == ["ubq_o24", "porin_c3", "tcr_d2"]
    for c in cat["classes"]:
        assert {"number", "source", "symmetry", "radius_A", "mass_kDa", "map", "count",
                "fraction", "fraction_target"} <= set(c)
        vol, vs = read_mrc(tmp_path / c["map"])
        assert vs == pytest.approx(VOXEL) and vol.shape[0] % 2 == 1
    vol, vs = read_mrc(paths["volume"])
    assert np.array_equal(vol, spec.volume) and vs == VOXEL
    assert len(cat["vesicles"]) == 1 and len(cat["filaments"]) == 1


def test_units_are_volts(spec):
    """Contrast against 4.5 V ice: particles ≈ 3–4 V, membranes 1–2 V at 10 Å voxels."""
    assert 2.0 < spec.parts["particles"].max() < 5.0
    assert 0.5 < spec.parts["membranes"].max() < 3.0
    assert spec.volume.min() >= 0
    for c in spec.classes:
        assert 7.0 < c["mip_V"] < 9.0
        assert c["contrast_scale"] == pytest.approx(1 - 4.5 / c["mip_V"], abs=1e-4)


def test_same_seed_same_volume_other_seed_differs(spec):
    again = crowded.specimen(SHAPE, VOXEL, 3, **PARAMS)
    assert np.array_equal(again.volume, spec.volume)
    assert again.particles.equals(spec.particles)
    other = crowded.specimen(SHAPE, VOXEL, 4, **PARAMS)
    assert not np.array_equal(other.volume, spec.volume)


def test_make_phantom_dispatches_crowded():
    vol, voxel = make_phantom("crowded", dict(shape=[24, 48, 48], voxel_size=12.0,
                                              classes={"porin_c3": {"count": 3}},
                                              vesicles=0, filaments=0), seed=1)
    assert vol.dtype == np.float32 and vol.shape == (24, 48, 48) and voxel == 12.0
    assert vol.max() > 1.0


def test_exhaustive_search_finds_the_only_free_spot():
    occ = np.ones((12, 12, 12), bool)
    occ[4:7, 5:8, 6:9] = False
    dil = np.ones((3, 3, 3), bool)
    rng = np.random.default_rng(0)
    c = crowded._search_free(rng, occ, dil, 0, (1, 1, 1), np.array([1, 1, 1]),
                             np.array([10, 10, 10]), attempts=1)
    assert tuple(c) == (5, 6, 7)
    occ[5, 6, 7] = True
    assert crowded._search_free(rng, occ, dil, 0, (1, 1, 1), np.array([1, 1, 1]),
                                np.array([10, 10, 10]), attempts=1) is None


# --------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize("params,key", [
    (dict(vesicle_radius=[0.0, 100.0]), "crowded.vesicle_radius"),
    (dict(vesicle_radius=[-5.0, 100.0]), "crowded.vesicle_radius"),
    (dict(filament_length=[0, 300]), "crowded.filament_length"),
    (dict(filament_diameter=0), "crowded.filament_diameter"),
    (dict(classes=["nope"]), "crowded.classes.nope"),
    (dict(classes={"x": {"pdb": "1A28", "chains": ["Z"]}}), "crowded.classes.x"),
    (dict(classes={"x": {"pdb": "1A28", "symmetry": "Q7"}}), "crowded.classes.x.symmetry"),
    (dict(classes={"x": {"pdb": "no/such/file.pdb"}}), "crowded.classes.x.pdb"),
    (dict(classes={"ubq_o24": {"colour": 1}}), "crowded.classes.ubq_o24"),
    (dict(classes={"ubq_o24": {"fraction": 0.1, "count": 3}}), "crowded.classes.ubq_o24"),
    (dict(fractions={"ubq_o24": 0.3, "tcr_d2": 0.2}), "crowded.fractions"),
    (dict(fractions={"ghost": 0.1}), "crowded.fractions.ghost"),
    (dict(fraction=-0.1), "crowded.fraction"),
    (dict(thickness=5000.0), "crowded.thickness"),
    (dict(vesicles=2, vesicle_fraction=0.05), "crowded.vesicle_fraction"),
    (dict(vesicle_radius=[400.0, 500.0]), "crowded.vesicle_radius"),
    (dict(margin=-1), "crowded.margin"),
    (dict(colour="red"), "crowded: unknown parameter"),
])
def test_bad_settings_name_the_key(params, key):
    problems = crowded.check_params([32, 96, 96], 10.0, **params)
    assert problems and key in problems[0], problems
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        make_phantom("crowded", dict(shape=[32, 96, 96], voxel_size=10.0, **params), 0)


def test_defaults_pass_the_checks_at_the_proposed_size():
    assert crowded.check_params([64, 160, 160], 12.0) == []
    assert crowded.check_params([48, 144, 144], 10.0) == []


def test_empty_model_names_the_class(tmp_path):
    empty = tmp_path / "empty.pdb.gz"
    with gzip.open(empty, "wt") as fh:
        fh.write("HEADER    EMPTY\nHETATM    1  O   HOH A   1       0.000   0.000   0.000"
                 "  1.00 10.00           O\nEND\n")
    problems = crowded.check_params([32, 96, 96], 10.0, classes={"e": {"pdb": str(empty)}})
    assert problems and "crowded.classes.e" in problems[0] and "no atoms" in problems[0]


def test_unplaceable_fraction_names_the_class_and_what_was_reached():
    params = dict(classes={"tcr_d2": {"fraction": 0.3}}, vesicles=0, filaments=0)
    assert crowded.check_params([24, 64, 64], 10.0, **params) == []
    with pytest.raises(InputError, match=r"crowded\.classes\.tcr_d2: could place only "
                                         r"\d+ of \d+ particles \(volume fraction 0\.\d+"):
        crowded.generate([24, 64, 64], 10.0, 0, **params)
