"""Density map of an atomic model (default: ubiquitin, PDB 1UBQ, shipped in the package).

Each atom is a sum of five Gaussians: the electron scattering factor
parametrisation of International Tables for Crystallography Vol. C, Table
4.3.2.2 (Peng et al. 1996), as tabulated by gemmi (``Element.c4322``),
``f(s) = Σ a_k exp(-b_k s²)``, blurred by the atom's isotropic B-factor. In
real space term ``k`` is a normalised Gaussian of weight ``a_k · occupancy``
and variance ``σ² = (b_k + B) / (8 π²)`` Å². The Gaussians are integrated
exactly over each voxel (:func:`wedgebench.phantoms.filters.render_gaussians`),
so fine voxels and coarse voxels hold the same total density and narrow atoms
do not alias. No further low-pass filter is applied (as in the paper).

The molecule's scattering-weighted centre (weights ``occupancy · Σ a_k``) is put
at the box centre ``((n - 1) / 2)`` on every axis; atom ``(x, y, z)`` maps to
array axes ``(2, 1, 0)``. Only the first model and the first alternative
conformation are used; waters and ligands (non-polymer hetero residues) are removed
unless ``waters`` / ``ligands`` are true. Modified residues of a polymer chain (e.g. MSE,
CSO), which PDB files also flag HETATM, are part of the protein and always kept (gemmi's
entity types, as in ``gemmi.Structure.remove_ligands_and_waters``).
"""

from __future__ import annotations

import importlib.resources
import math
from pathlib import Path

import numpy as np

from wedgebench.io import InputError
from wedgebench.phantoms.filters import (check_bool, check_number, check_shape,
                                         render_gaussians, seeded_spin, spin_matrix)


def read_atoms(path, waters: bool = False, ligands: bool = False):
    """Atoms of the first model of a PDB or mmCIF file (optionally gzipped).

    Parameters
    ----------
    path : path-like
    waters : bool
        Keep water molecules.
    ligands : bool
        Keep ligands: hetero residues that are neither water nor part of a polymer
        (modified residues of a chain, e.g. MSE, are always kept).

    Returns
    -------
    xyz : ndarray ``(n, 3)``, Å, (x, y, z)
    elements : list of str
    b_iso : ndarray ``(n,)``, Å²
    occupancy : ndarray ``(n,)``
    """
    import gemmi

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    try:
        st = gemmi.read_structure(str(path))
    except Exception as exc:  # gemmi raises RuntimeError/ValueError variants
        raise InputError(f"{path}: not a readable PDB/mmCIF file ({exc})") from exc
    if len(st) == 0:
        raise InputError(f"{path}: no models")
    st.setup_entities()  # entity types: a HETATM residue inside a chain is Polymer
    xyz, elements, b_iso, occ = [], [], [], []
    for chain in st[0]:
        for res in chain:
            water = res.is_water()
            ligand = (res.het_flag == "H" and not water
                      and res.entity_type != gemmi.EntityType.Polymer)
            if (water and not waters) or (ligand and not ligands):
                continue
            alts = [atom.altloc for atom in res if atom.has_altloc()]
            for atom in res:
                if alts and atom.has_altloc() and atom.altloc != alts[0]:
                    continue  # keep only the first alternative conformation
                xyz.append(atom.pos.tolist())
                elements.append(atom.element.name)
                b_iso.append(atom.b_iso)
                occ.append(atom.occ)
    if not xyz:
        raise InputError(f"{path}: no atoms left after removing waters/ligands")
    return np.array(xyz, float), elements, np.array(b_iso, float), np.array(occ, float)


def scattering_gaussians(elements, b_iso) -> tuple[np.ndarray, np.ndarray]:
    """Per-atom Gaussian weights and variances of the electron scattering factors.

    Parameters
    ----------
    elements : sequence of str
    b_iso : array ``(n,)`` B-factors, Å²

    Returns
    -------
    a : ndarray ``(n, 5)``, weights (Å)
    var : ndarray ``(n, 5)``, real-space variances, Å²
    """
    import gemmi

    table = {}
    for el in set(elements):
        coef = np.array(gemmi.Element(el).c4322.get_coefs(), float)
        if not np.any(coef[:5] > 0):
            raise InputError(f"pdb: no electron scattering factors for element {el!r}")
        table[el] = coef
    coefs = np.array([table[e] for e in elements])
    a, b = coefs[:, :5], coefs[:, 5:]
    return a, (b + np.asarray(b_iso, float)[:, None]) / (8 * math.pi ** 2)


def atom_density(shape, voxel_size: float, xyz, elements, b_iso, occupancy) -> np.ndarray:
    """Sum of atomic Gaussians on the grid, molecule centred (density per Å³).

    Raises
    ------
    InputError
        When an atom lies outside the box.
    """
    a, var = scattering_gaussians(elements, b_iso)
    a = a * np.asarray(occupancy, float)[:, None]
    w = a.sum(1)
    centred = np.asarray(xyz, float) - (w @ xyz) / w.sum()
    vox = centred[:, ::-1] / voxel_size + (np.asarray(shape, float) - 1) / 2  # [z, y, x]
    if np.any(vox < 0) or np.any(vox > np.asarray(shape) - 1):
        ext = centred.max(0) - centred.min(0)
        raise InputError(f"shape: molecule extent {np.round(ext, 1).tolist()} Å (x, y, z) "
                         f"does not fit in box {tuple(shape)} at {voxel_size:g} Å/voxel")
    vol = render_gaussians(shape, np.repeat(vox, 5, axis=0),
                           np.sqrt(var.ravel()) / voxel_size, a.ravel())
    return vol / np.float32(voxel_size ** 3)


def generate(shape, voxel_size: float = 1.0, seed: int = 0, *, pdb=None, b_factor=None,
             waters: bool = False, ligands: bool = False, normalise: bool = True, spin=None):
    """Map of an atomic model, centred in the box, not low-pass filtered.

    Parameters
    ----------
    shape : [nz, ny, nx]
    voxel_size : float
        Å per voxel.
    seed : int
        Seed of the molecule's orientation when ``spin`` is None.
    pdb : str, optional
        PDB/mmCIF file (optionally .gz); default the packaged 1UBQ.
    b_factor : float, optional
        Uniform B-factor in Å² for every atom (default: the file's B-factors).
    waters, ligands : bool
        Keep waters / ligands (non-polymer hetero residues) (default: removed).
    normalise : bool
        Scale to maximum 1 (otherwise the units are scattering-factor Å per Å³).
    spin : float, optional
        Rotation of the model about the z (beam) axis through its centre, degrees
        (:func:`wedgebench.phantoms.filters.spin_matrix`); None (default) draws it uniformly in
        [0, 360) from ``seed``, so every seed sees the molecule in another orientation to
        the tilt axis and the missing wedge; 0 = the file's orientation.

    Returns
    -------
    vol : ndarray float32 ``[z, y, x]``, >= 0
    voxel_size : float
    """
    shape = check_shape(shape, "ubiquitin.shape")
    vs = check_number(voxel_size, "ubiquitin.voxel_size", minimum=0, exclusive_min=True)
    waters = check_bool(waters, "ubiquitin.waters")
    ligands = check_bool(ligands, "ubiquitin.ligands")
    normalise = check_bool(normalise, "ubiquitin.normalise")
    if pdb is None:
        ref = importlib.resources.files("wedgebench").joinpath("data/1ubq.pdb")
        with importlib.resources.as_file(ref) as path:
            xyz, el, b, occ = read_atoms(path, waters, ligands)
    else:
        xyz, el, b, occ = read_atoms(pdb, waters, ligands)
    if b_factor is not None:
        b = np.full_like(b, check_number(b_factor, "ubiquitin.b_factor", minimum=0))
    spin = seeded_spin(spin, seed, "ubiquitin.spin")
    xyz = np.asarray(xyz, float) @ spin_matrix(spin).T  # atom_density re-centres the molecule
    try:
        vol = atom_density(shape, vs, xyz, el, b, occ)
    except InputError as exc:
        raise InputError(f"ubiquitin.{exc}") from None
    if normalise and vol.max() > 0:
        vol /= vol.max()
    return vol, vs
