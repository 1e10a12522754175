"""Particle classes from atomic models: assemblies, their electrostatic potential, a catalogue.

Models
------
Read offline with gemmi: a shipped PDB entry by id (``1UBQ`` is ``data/1ubq.pdb``, the
others ``data/pdb/<ID>.pdb.gz``) or a user's PDB/mmCIF path (optionally gzipped). The first
model is used, without waters, hydrogens and alternative conformations other than the first;
anisotropic ADPs are replaced by the isotropic B (a class map at 8–12 Å voxels cannot tell).
Hetero groups other than water (haems, inhibitors) are kept. ``chains`` selects chains.
X-ray models have no hydrogens, yet hydrogens carry ~20 % of a protein's potential
integral; with ``hydrogens`` (default true) each residue's hydrogens (gemmi's residue table,
two fewer for an amino acid in a chain) are added as united atoms: an H on every heavy atom
of the residue with occupancy ``n_H / n_heavy`` (their exact sites do not matter at 8–12 Å).

Assemblies
----------
* **Biological** (``assembly``: a REMARK 350 / ``pdbx_struct_assembly`` name): built with
  ``gemmi.make_assembly``. When the assembly's operators form a point group, its centre and
  axes are found (:func:`point_group`) and the assembly is moved into the standard frame of
  :func:`wedgebench.euler.symmetry_operators` (Cn about z, …), so its symmetry is usable for
  picking and averaging; otherwise (and with the identity alone) the class is C1.
* **Pseudo-assembly** (``symmetry``: ``Cn``, ``Dn``, ``T``, ``O``, ``I``): copies of the unit
  (a chain selection or a biological assembly) placed by the group's operators ``S_i``:
  ``copy_i = S_i (Q x + s u)``, ``x`` the unit centred on its potential-weighted centroid,
  ``Q`` an orientation, ``u`` a unit direction and ``s`` the offset (Å). For each of
  ``candidates`` random ``(Q, u)`` (seeded by ``search_seed``; ``u`` = x for Cn) the
  smallest ``s`` without a clash is found on the Cα (and P) atoms with a 1 Å wider clash
  distance; the candidate with the smallest outer radius is kept and its ``s`` refined on
  all atoms: walking ``s`` down from a separation where no two copies can meet, then
  bisecting to 0.05 Å, to the last ``s`` at which no atom of one copy comes closer than
  ``clash`` (3 Å) to an atom of another (a KD-tree query of copy 0 against every copy whose
  centre is near; by symmetry copy 0's contacts are every copy's). So the copies touch: the
  closest atoms of neighbouring copies are ``clash`` to ``clash`` + 0.1 Å apart.

Potential
---------
``V(r) = (h² / (2π m_e e)) · ρ(r)`` with ``h² / (2π m_e e)`` = 47.878 V·Å² (:data:`K_VOLT`)
and ``ρ`` gemmi's ``DensityCalculatorE`` density: the inverse Fourier transform of the
electron scattering factors ``f_e(s) = Σ a_k exp(−b_k s²)`` (Peng et al. 1996,
International Tables C 4.3.2.2, gemmi's ``c4322``; ``a_k`` in Å) blurred by each atom's B,
i.e. ``Σ a_k (4π / (b_k + B))^{3/2} exp(−4π² r² / (b_k + B))`` in Å / Å³ = Å⁻²
(gemmi's ``dencalc.hpp``; tabulated electron factors, so no Mott–Bethe conversion of
X-ray factors is needed). The integral of an atom's potential is
``K_VOLT · occupancy · f_e(0)``, ``f_e(0) = Σ a_k`` (V·Å³).

The class map is the **voxel average** of V: gemmi samples V on a fine grid of spacing
``h = voxel_size / k`` (``k = ⌈voxel_size / fine_spacing⌉``) and every ``k³`` block is
averaged into one voxel, the fine samples sitting at the centres of the sub-cells of each
voxel (a midpoint rule). Sampling at ``h`` integrates a Gaussian to ~1e-4 when its width
is at least 0.7 h, so atoms with B below ``8π² (0.7 h)²`` (38.7 Å² at h = 1 Å) are raised
to it (σ ≤ 0.7 Å, invisible at 8–12 Å voxels). Atoms beyond gemmi's cutoff (density
< 1e-5 Å⁻²) are not summed, which loses ~1e-4 of the integral.

Class frame and box
-------------------
The class frame has the point group's centre at the origin (for C1 and Cn classes the
potential-weighted centroid, moved along z for Cn); a class map is a cube of odd edge
``n`` whose centre voxel ``n // 2`` is the origin (:mod:`wedgebench.euler`'s convention),
atom ``(x, y, z)`` going to array axes ``(2, 1, 0)``.

Size and mass
-------------
``radius``: the largest distance of an atom from the class centre (Å). The CZII challenge's
radii (apo-ferritin 60 Å, β-galactosidase 90 Å, ribosome 150 Å) are half the particles'
largest dimensions, so this is the size that the 0.5·radius picking rule reads;
``sphere_radius`` = radius of gyration · √(5/3) (the radius of the uniform ball with the
same radius of gyration) is reported too. ``mass``: the model's atoms (atomic weights ×
occupancy) plus the hydrogens of each residue from gemmi's residue table (two fewer in an
amino acid joined in a chain), the same hydrogens as the united atoms: within ~3 % of
sequence masses (ubiquitin 8.35 kDa against 8.56 kDa).
"""

from __future__ import annotations

import functools
import importlib.resources
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import constants

from wedgebench.euler import random_rotations, rotation_angle, symmetry_operators
from wedgebench.io import InputError

#: h² / (2π m_e e) in V·Å²: volts of potential per Å⁻² of scattering-factor density.
K_VOLT = constants.h ** 2 / (2 * math.pi * constants.m_e * constants.e) * 1e20
#: Å³ per dalton of protein (partial specific volume 0.73 cm³/g).
PROTEIN_VOLUME_A3_PER_DA = 0.73 / constants.Avogadro * 1e24
#: Width (in fine-grid spacings) below which an atom's B is raised (see module docstring).
B_FLOOR_WIDTH = 0.7
#: Fine sampling of the potential before voxel averaging, Å.
FINE_SPACING = 1.0

SHIPPED = ("1UBQ", "19HC", "1A28", "1BD2", "1HVR", "1OSM", "3KPR")
"""PDB entries shipped with the package (``data/1ubq.pdb``, ``data/pdb/<ID>.pdb.gz``)."""

SPEC_KEYS = ("pdb", "chains", "assembly", "symmetry", "hydrogens", "clash", "candidates",
             "search_seed")
"""Keys of a class recipe (see :func:`build_class`)."""

CATALOGUE = {
    "ubq_o24": dict(pdb="1UBQ", symmetry="O",
                    description="octahedral 24-mer cage of ubiquitin (apo-ferritin-like)"),
    "tcr_d2": dict(pdb="1BD2", assembly="1", symmetry="D2",
                   description="D2 tetramer of a T-cell receptor–peptide–MHC complex "
                               "(β-galactosidase-like)"),
    "prlbd_i60": dict(pdb="1A28", chains=["A"], symmetry="I",
                      description="icosahedral 60-mer shell of the progesterone-receptor "
                                  "ligand-binding domain (thyroglobulin/VLP-sized)"),
    "cytc_i60": dict(pdb="19HC", chains=["A"], symmetry="I",
                     description="icosahedral 60-mer shell of nine-haem cytochrome c "
                                 "(ribosome-sized)"),
    "porin_c3": dict(pdb="1OSM", symmetry="C3",
                     description="C3 pseudo-trimer of osmoporin OmpK36 (the file has no "
                                 "REMARK 350)"),
}
"""Named class recipes built from the shipped models (each also takes the keys of
:data:`SPEC_KEYS` to override); ``description`` is informative only."""

DEFAULT_CLASSES = ("ubq_o24", "tcr_d2", "prlbd_i60", "cytc_i60")
"""The classes of a crowded specimen when none are named (radii ≈ 60–150 Å)."""


# --------------------------------------------------------------------------- reading


def model_path(pdb, key: str = "pdb") -> Path:
    """The file of a shipped PDB id (case-insensitive) or a user's path."""
    pdb = str(pdb)
    root = importlib.resources.files("wedgebench").joinpath("data")
    if pdb.upper() == "1UBQ":
        return Path(str(root.joinpath("1ubq.pdb")))
    if pdb.upper() in SHIPPED:
        return Path(str(root.joinpath("pdb", f"{pdb.upper()}.pdb.gz")))
    path = Path(pdb).expanduser()
    if not path.is_file():
        raise InputError(f"{key}: {pdb!r} is neither a shipped PDB id {list(SHIPPED)} nor an "
                         "existing PDB/mmCIF file")
    return path


def read_structure(pdb, key: str = "pdb"):
    """A cleaned ``gemmi.Structure`` (first model only; see the module docstring)."""
    import gemmi

    path = model_path(pdb, key)
    try:
        st = gemmi.read_structure(str(path))
    except Exception as exc:  # gemmi raises RuntimeError/ValueError variants
        raise InputError(f"{key}: {path} is not a readable PDB/mmCIF file ({exc})") from exc
    if len(st) == 0:
        raise InputError(f"{key}: {path} has no models")
    while len(st) > 1:
        del st[1]
    st.remove_waters()
    st.remove_hydrogens()
    st.remove_alternative_conformations()
    st.remove_empty_chains()
    return st


def _select_chains(st, chains, key: str):
    """A clone of structure ``st`` whose model keeps only ``chains`` (None: all)."""
    st = st.clone()
    if chains is not None:
        if isinstance(chains, str) or not all(isinstance(c, str) for c in chains):
            raise InputError(f"{key}.chains: expected a list of chain names, got {chains!r}")
        for name in [ch.name for ch in st[0]]:
            if name not in chains:
                st[0].remove_chain(name)
    return st


def _atoms(model):
    """Arrays of a gemmi model: xyz ``(n, 3)``, elements, b_iso, occupancy, residue names."""
    xyz, el, b, occ, rep = [], [], [], [], []
    for ch in model:
        for res in ch:
            for atom in res:
                xyz.append(atom.pos.tolist())
                el.append(atom.element.name)
                b.append(atom.b_iso)
                occ.append(atom.occ)
                rep.append(atom.name in ("CA", "P") and atom.element.name in ("C", "P"))
    return (np.array(xyz, float).reshape(-1, 3), np.array(el, dtype=object),
            np.array(b, float), np.array(occ, float), np.array(rep, bool))


def electron_f0(elements, key: str = "pdb") -> np.ndarray:
    """``f_e(0) = Σ a_k`` (Å) of each element's electron scattering factor (gemmi c4322)."""
    import gemmi

    table = {}
    for name in set(elements):
        el = gemmi.Element(name)
        coef = np.array(el.c4322.get_coefs(), float) if el.atomic_number > 0 else np.zeros(10)
        if not np.any(coef[:5] > 0):
            raise InputError(f"{key}: no electron scattering factors for element {name!r}")
        table[name] = coef[:5].sum()
    return np.array([table[e] for e in elements], float)


def _residue_hydrogens(res) -> int:
    """Hydrogens of a residue from gemmi's table (two fewer for an amino acid)."""
    import gemmi

    info = gemmi.find_tabulated_residue(res.name)
    if info is None or not info.found():
        return 0
    return max(info.hydrogen_count - (2 if info.is_amino_acid() else 0), 0)


def _mass_da(model) -> float:
    """Daltons: the heavy atoms plus each residue's tabulated hydrogens."""
    import gemmi

    h = gemmi.Element("H").weight
    return float(sum(sum(atom.element.weight * atom.occ for atom in res)
                     + _residue_hydrogens(res) * h for ch in model for res in ch))


def add_united_hydrogens(model):
    """A clone of ``model`` with each residue's hydrogens as united atoms (see the module
    docstring): an H at every heavy atom, occupancy ``atom.occ · n_H / n_heavy``."""
    import gemmi

    model = model.clone()
    for ch in model:
        for res in ch:
            n_h = _residue_hydrogens(res)
            heavy = [atom for atom in res]
            if n_h == 0 or not heavy:
                continue
            for atom in heavy:
                hyd = gemmi.Atom()
                hyd.name, hyd.element, hyd.pos = "H", gemmi.Element("H"), atom.pos
                hyd.b_iso, hyd.occ = atom.b_iso, atom.occ * n_h / len(heavy)
                res.add_atom(hyd)
    return model


# --------------------------------------------------------------------------- point groups


def _axis_angle(r: np.ndarray) -> tuple[np.ndarray, float]:
    """Unit axis and angle (degrees) of a rotation matrix."""
    angle = float(rotation_angle(r))
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if angle < 179.0:
        return w / max(np.linalg.norm(w), 1e-12), angle
    m = r + np.eye(3)
    col = m[:, int(np.argmax(np.linalg.norm(m, axis=0)))]
    return col / np.linalg.norm(col), angle


def _same_set(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    if len(a) != len(b):
        return False
    diff = np.abs(a[:, None] - b[None]).max(axis=(-1, -2))
    return bool(np.all(diff.min(1) < tol) and np.all(diff.min(0) < tol))


def point_group(rotations, tol: float = 2e-3):
    """The point group of a set of rotations and its frame.

    Parameters
    ----------
    rotations : array ``(n, 3, 3)``
        Rotations on ``(x, y, z)``, the identity included.
    tol : float
        Largest element-wise difference between matrices taken as equal.

    Returns
    -------
    symbol : str or None
        ``Cn``, ``Dn``, ``T``, ``O`` or ``I``; None when the set is not a group.
    q : ndarray ``(3, 3)`` or None
        A rotation with ``{q S qᵀ : S in symmetry_operators(symbol)}`` = the set.
    """
    rots = np.asarray(rotations, float).reshape(-1, 3, 3)
    n = len(rots)
    keep = [0]
    for i in range(1, n):  # drop duplicates
        if np.abs(rots[keep] - rots[i]).max(axis=(1, 2)).min() > tol:
            keep.append(i)
    rots = rots[keep]
    n = len(rots)
    if n == 1:
        return "C1", np.eye(3)
    products = (rots[:, None] @ rots[None]).reshape(-1, 3, 3)
    if np.abs(products[:, None] - rots[None]).max(axis=(-1, -2)).min(1).max() > tol:
        return None, None
    axes, orders = [], []
    for r in rots:
        angle = float(rotation_angle(r))
        if angle < 1.0:
            continue
        ax, _ = _axis_angle(r)
        axes.append(ax)
        orders.append(int(round(360.0 / angle)))
    axes, orders = np.array(axes), np.array(orders)
    top = int(orders.max())
    cyclic = np.all(np.abs(np.abs(axes @ axes[np.argmax(orders)]) - 1) < 1e-3)
    if cyclic:
        symbol = f"C{n}"
    elif n == 12 and top == 3:
        symbol = "T"
    elif n == 24 and top == 4:
        symbol = "O"
    elif n == 60 and top == 5:
        symbol = "I"
    elif n % 2 == 0 and (top == n // 2 or n == 4):
        symbol = f"D{n // 2}"
    else:
        return None, None
    std = symmetry_operators(symbol)
    # two standard axes (orders) that fix the frame, and the same pair in the set
    tau = (1 + 5 ** 0.5) / 2
    pairs = {"T": ([1, 1, 1], 3, [0, 0, 1], 2), "O": ([0, 0, 1], 4, [1, 1, 1], 3),
             "I": ([0, 1, tau], 5, [0, 0, 1], 2)}
    if symbol in pairs:
        a_s, na, b_s, nb = pairs[symbol]
    else:
        a_s, na, b_s, nb = [0, 0, 1], top, ([1, 0, 0] if symbol[0] == "D" else None), 2
    a_s = np.asarray(a_s, float) / np.linalg.norm(a_s)
    cand_a = [s * ax for ax, o in zip(axes, orders) if o == na for s in (1, -1)]
    if b_s is None:
        for a in cand_a:
            q = _frame_from_axes(a_s, None, a, None)
            if _same_set(q @ std @ q.T, rots, tol):
                return symbol, q
        return None, None
    b_s = np.asarray(b_s, float) / np.linalg.norm(b_s)
    cand_b = [s * ax for ax, o in zip(axes, orders) if o == nb for s in (1, -1)]
    for a in cand_a:
        for b in cand_b:
            if abs(a @ b - a_s @ b_s) > 1e-3:
                continue
            q = _frame_from_axes(a_s, b_s, a, b)
            if _same_set(q @ std @ q.T, rots, tol):
                return symbol, q
    return None, None


def _frame_from_axes(a_s, b_s, a, b) -> np.ndarray:
    """The rotation taking ``a_s`` to ``a`` (and ``b_s`` to ``b`` when given)."""
    def basis(x, y):
        y = y - (y @ x) * x
        y = y / np.linalg.norm(y)
        return np.stack([x, y, np.cross(x, y)], axis=1)

    if b_s is None:
        helper = np.eye(3)[int(np.argmin(np.abs(a_s)))]
        b_s = helper
        b = np.eye(3)[int(np.argmin(np.abs(a)))]
    return basis(a, b) @ basis(a_s, b_s).T


# --------------------------------------------------------------------------- assemblies


def _affine(r, t) -> np.ndarray:
    out = np.zeros((3, 4))
    out[:, :3], out[:, 3] = r, t
    return out


def _apply(tr: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    return xyz @ tr[:, :3].T + tr[:, 3]


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a ∘ b`` for 3 × 4 affine maps."""
    return _affine(a[:, :3] @ b[:, :3], a[:, :3] @ b[:, 3] + a[:, 3])


def biological_assembly(st, name, key: str = "assembly"):
    """A REMARK 350 assembly as one model in the standard frame of its point group.

    Parameters
    ----------
    st : gemmi.Structure
    name : str
        The assembly's name (``"1"``, …).

    Returns
    -------
    model : gemmi.Model
        The assembled copies (chains renamed by gemmi: ``A``, ``A2``, …), in file
        coordinates.
    transform : ndarray ``(3, 4)``
        File coordinates → class frame (centre at the origin, axes standard).
    symbol : str
        The point group of the operators, C1 when they are the identity alone or are not
        a point group.
    """
    import gemmi

    names = [a.name for a in st.assemblies]
    match = [a for a in st.assemblies if a.name == str(name)]
    if not match:
        raise InputError(f"{key}: no assembly {name!r} in {st.name} (has {names})")
    asm = match[0]
    model = gemmi.make_assembly(asm, st[0], gemmi.HowToNameCopiedChain.AddNumber)
    ops = [(np.array(op.transform.mat.tolist()), np.array(op.transform.vec.tolist()))
           for gen in asm.generators for op in gen.operators]
    chains_per_gen = {tuple(gen.chains) for gen in asm.generators}
    symbol, q = ("C1", np.eye(3))
    if len(ops) > 1 and len(chains_per_gen) == 1:
        symbol, q = point_group(np.array([r for r, _ in ops]))
        if symbol is None:
            symbol, q = "C1", np.eye(3)
    if symbol == "C1" or symbol is None:
        return model, None, "C1"
    a = np.concatenate([np.eye(3) - r for r, _ in ops])
    t = np.concatenate([v for _, v in ops])
    centre, *_ = np.linalg.lstsq(a, t, rcond=None)
    if np.abs(a @ centre - t).max() > 0.05:  # no common fixed point
        return model, None, "C1"
    return model, _affine(q.T, -q.T @ centre), symbol


def _contact_offset(points: np.ndarray, ops: np.ndarray, u: np.ndarray, clash: float,
                    tol: float) -> float:
    """Smallest offset ``s`` (walking down, then bisecting) at which the copies
    ``S_i (points + s u)`` keep every inter-copy distance ``>= clash``."""
    from scipy.spatial import cKDTree

    r = float(np.linalg.norm(points, axis=1).max())
    tree = cKDTree(points)
    images = ops @ u
    sep = float(np.linalg.norm(images[1:] - u, axis=1).min())
    rot_points = np.einsum("kij,nj->kni", ops, points)  # S_i · p

    def ok(s):
        shift = s * (images - u)  # S_i (s u) - s u
        near = np.flatnonzero(np.linalg.norm(shift, axis=1) < 2 * r + clash)
        near = near[near > 0]
        if near.size == 0:
            return True
        query = (rot_points[near] + shift[near, None, :]).reshape(-1, 3)
        return bool(np.isinf(tree.query(query, distance_upper_bound=clash)[0]).all())

    s = (2 * r + clash) / sep + tol
    step = max(r / 4, 2.0)
    while s > 0 and ok(s):
        s -= step
    lo, hi = max(s, 0.0), s + step
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def pseudo_assembly(xyz: np.ndarray, rep: np.ndarray, symbol: str, clash: float = 3.0,
                    candidates: int = 100, search_seed: int = 0) -> list[np.ndarray]:
    """Operators placing copies of a unit by a point group, touching without clashes.

    Parameters
    ----------
    xyz : ``(n, 3)``
        The unit's atoms, centred (Å).
    rep : ``(n,)`` bool
        Representative atoms (Cα, P) for the coarse search; all atoms when fewer than 3.
    symbol : str
        Point group (:func:`wedgebench.euler.symmetry_operators`).
    clash : float
        Closest allowed approach of atoms of different copies, Å.
    candidates : int
        Random orientations and directions tried.
    search_seed : int
        Seed of the search.

    Returns
    -------
    list of ``(3, 4)`` affine maps, one per copy: unit frame → class frame.
    """
    ops = symmetry_operators(symbol)
    if len(ops) == 1:
        return [_affine(np.eye(3), np.zeros(3))]
    coarse = xyz[rep] if rep.sum() >= 3 else xyz
    rng = np.random.default_rng(search_seed)
    best = None
    for _ in range(int(candidates)):
        q = random_rotations(rng, 1)[0]
        u = rng.standard_normal(3)
        u = np.array([1.0, 0.0, 0.0]) if symbol.upper().startswith("C") else u / np.linalg.norm(u)
        pts = coarse @ q.T
        s = _contact_offset(pts, ops, u, clash + 1.0, 0.25)
        outer = float(np.linalg.norm(pts + s * u, axis=1).max())
        if best is None or outer < best[0]:
            best = (outer, q, u)
    _, q, u = best
    s = _contact_offset(xyz @ q.T, ops, u, clash, 0.05)
    return [_affine(op @ q, op @ (s * u)) for op in ops]


# --------------------------------------------------------------------------- classes


@dataclass(frozen=True, eq=False)
class MoleculeClass:
    """A particle class: copies of gemmi models placed in the class frame.

    Attributes
    ----------
    name, source, symmetry : str
    pieces : tuple of (gemmi.Model, ndarray (3, 4))
        Each model (file coordinates, cleaned) and its map into the class frame.
    xyz : ndarray ``(n, 3)``
        All atoms in the class frame, Å.
    elements : ndarray of str; b_iso, occupancy : ndarray; copy : ndarray of int
        Per atom (``copy``: index of its piece).
    f0 : ndarray
        ``f_e(0)`` of each atom, Å.
    mass_da : float
    recipe : dict
        The recipe it was built from.
    """

    name: str
    source: str
    symmetry: str
    pieces: tuple
    xyz: np.ndarray
    elements: np.ndarray
    b_iso: np.ndarray
    occupancy: np.ndarray
    copy: np.ndarray
    f0: np.ndarray
    mass_da: float
    recipe: dict = field(default_factory=dict)

    @property
    def radius(self) -> float:
        """Largest atom distance from the class centre, Å (CZII radius semantics)."""
        return float(np.linalg.norm(self.xyz, axis=1).max())

    @property
    def sphere_radius(self) -> float:
        """Radius of gyration · √(5/3), Å."""
        return float(np.sqrt(5.0 / 3.0 * (self.xyz ** 2).sum(1).mean()))

    @property
    def volume_A3(self) -> float:
        """Volume of the protein, mass × 1.21 Å³/Da (:data:`PROTEIN_VOLUME_A3_PER_DA`)."""
        return self.mass_da * PROTEIN_VOLUME_A3_PER_DA

    def integral(self) -> float:
        """Analytic ∫V d³r = K_VOLT · Σ occupancy · f_e(0), V·Å³."""
        return float(K_VOLT * (self.occupancy * self.f0).sum())

    def potential(self, voxel_size: float, fine_spacing: float = FINE_SPACING) -> np.ndarray:
        """Voxel-averaged potential (V), ``[z, y, x]``, odd cube, centre at ``n // 2``
        (a cached read-only array; copy before changing it)."""
        return _potential_cached(self, float(voxel_size), float(fine_spacing))

    @property
    def chains(self) -> int:
        """Number of chains over all copies."""
        return sum(len(model) for model, _ in self.pieces)

    def summary(self) -> dict:
        """Name, source, symmetry, radius, sphere radius (Å), mass (kDa), copies of the
        unit, chains, atoms (with united hydrogens)."""
        return {"name": self.name, "source": self.source, "symmetry": self.symmetry,
                "radius_A": round(self.radius, 1),
                "sphere_radius_A": round(self.sphere_radius, 1),
                "mass_kDa": round(self.mass_da / 1000.0, 1), "copies": len(self.pieces),
                "chains": self.chains, "atoms": int(len(self.xyz))}


def box_half(radius: float, pad: float, voxel_size: float) -> int:
    """Half edge (voxels) of a class map box holding a particle of ``radius`` plus ``pad``
    (Å): the box spans ``±(half + 0.5)`` voxels around its centre voxel."""
    return int(math.ceil((radius + pad) / voxel_size + 0.5))


def potential_map(mol: MoleculeClass, voxel_size: float,
                  fine_spacing: float = FINE_SPACING) -> np.ndarray:
    """The voxel-averaged electrostatic potential of a class (volts), see the module
    docstring.

    Parameters
    ----------
    mol : MoleculeClass
    voxel_size : float
        Å per voxel of the map.
    fine_spacing : float
        Largest spacing of gemmi's fine samples, Å.

    Returns
    -------
    ndarray float32 ``[z, y, x]`` of edge ``2·half + 1``, the class centre at ``half``.
    """
    import gemmi

    v = float(voxel_size)
    k = max(1, int(math.ceil(v / float(fine_spacing) - 1e-9)))
    h = v / k
    b_floor = 8 * math.pi ** 2 * (B_FLOOR_WIDTH * h) ** 2
    dc = gemmi.DensityCalculatorE()
    floored = {}
    pad = 0.0
    for model, _ in mol.pieces:
        if id(model) in floored:
            continue
        m = model.clone()
        for ch in m:
            for res in ch:
                for atom in res:
                    atom.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
                    atom.b_iso = max(atom.b_iso, b_floor)
                    pad = max(pad, dc.estimate_radius(atom))
        floored[id(model)] = m
    half = box_half(mol.radius, pad, v)
    n = 2 * half + 1
    dc.grid.unit_cell = gemmi.UnitCell(n * v, n * v, n * v, 90, 90, 90)
    dc.grid.spacegroup = gemmi.find_spacegroup_by_name("P1")
    dc.grid.set_size(n * k, n * k, n * k)
    dc.d_min = 0.0
    dc.initialize_grid()
    shift = half * v + (k - 1) * h / 2  # fine point i sits at (i - (k-1)/2)·h from voxel 0
    for model, tr in mol.pieces:
        m = floored[id(model)].clone()
        m.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(tr[:, :3].tolist()),
                                                gemmi.Vec3(*(tr[:, 3] + shift))))
        dc.add_model_density_to_grid(m)
    fine = np.array(dc.grid, copy=False)  # [x, y, z]
    coarse = fine.reshape(n, k, n, k, n, k).sum(axis=(1, 3, 5), dtype=np.float64)
    vol = (K_VOLT / k ** 3) * coarse.transpose(2, 1, 0)
    return np.ascontiguousarray(vol, dtype=np.float32)


@functools.lru_cache(maxsize=16)
def _potential_cached(mol: MoleculeClass, voxel_size: float, fine_spacing: float):
    vol = potential_map(mol, voxel_size, fine_spacing)
    vol.setflags(write=False)
    return vol


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(frozen) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in frozen}


def class_recipe(name: str, spec: dict | None = None, key: str = "classes") -> dict:
    """The full recipe of a class: the catalogue's entry for a known ``name`` updated by
    ``spec``, or ``spec`` alone (which must then name ``pdb``). Unknown keys raise."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise InputError(f"{key}.{name}: unknown key(s) {unknown}; allowed: {list(SPEC_KEYS)}")
    if name in CATALOGUE:
        base = {k: v for k, v in CATALOGUE[name].items() if k != "description"}
        return {**base, **spec}
    if "pdb" not in spec:
        raise InputError(f"{key}.{name}: unknown class name; choose from "
                         f"{sorted(CATALOGUE)} or give 'pdb' (a shipped id or a file) and "
                         "optionally 'chains', 'assembly', 'symmetry'")
    return spec


def build_class(name: str, spec: dict | None = None, key: str = "classes") -> MoleculeClass:
    """Build a particle class from its recipe (cached per recipe).

    Parameters
    ----------
    name : str
        A :data:`CATALOGUE` name, or any name when ``spec`` gives ``pdb``.
    spec : dict, optional
        Recipe keys (:data:`SPEC_KEYS`): ``pdb`` (shipped id or PDB/mmCIF path),
        ``chains`` (list), ``assembly`` (REMARK 350 name), ``symmetry`` (point group of a
        pseudo-assembly of the unit), ``clash`` (Å, default 3), ``candidates`` (default
        100), ``search_seed`` (default 0).
    key : str
        Prefix of error messages (``<key>.<name>.<recipe key>``).

    Raises
    ------
    InputError
        Unknown name or key, unreadable file, unknown assembly or symmetry, a selection
        without atoms, an element without scattering factors (the message names the key).
    """
    recipe = class_recipe(name, spec, key)
    try:
        return _build_cached(name, _freeze(recipe))
    except InputError as exc:
        raise InputError(str(exc).replace(_KEY, key)) from None


def class_mass(name: str, spec: dict | None = None, key: str = "classes") -> float:
    """Mass (Da) of a class without building it (no contact search): its unit's mass times
    the number of copies. Raises like :func:`build_class` for a bad recipe (except the
    search's own parameters)."""
    recipe = class_recipe(name, spec, key)
    try:
        unit = _unit_cached(name, _freeze(recipe))
    except InputError as exc:
        raise InputError(str(exc).replace(_KEY, key)) from None
    copies = 1
    if recipe.get("symmetry") is not None:
        copies = len(_check_symmetry(recipe["symmetry"], f"{key}.{name}"))
    return unit["mass"] * copies


def _check_symmetry(symbol, key: str) -> np.ndarray:
    try:
        return symmetry_operators(str(symbol).strip().upper())
    except ValueError as exc:
        raise InputError(f"{key}.symmetry: {exc}") from None


_KEY = "\x00key\x00"  # stands for the caller's key in messages raised by cached builders


@functools.lru_cache(maxsize=32)
def _unit_cached(name: str, frozen: tuple) -> dict:
    """The unit of a class (chains or biological assembly) and its centring."""
    recipe = _thaw(frozen)
    k = f"{_KEY}.{name}"
    st = _select_chains(read_structure(recipe["pdb"], f"{k}.pdb"), recipe.get("chains"), k)
    unit = st[0]
    pdb = str(recipe["pdb"])
    parts = [pdb.upper() if pdb.upper() in SHIPPED else pdb]
    if recipe.get("chains") is not None:
        parts.append("chain" + ("s " if len(recipe["chains"]) > 1 else " ")
                     + ",".join(recipe["chains"]))
    unit_tr, symmetry = None, "C1"
    if recipe.get("assembly") is not None:
        try:  # the assembly of the selected chains
            unit, unit_tr, symmetry = biological_assembly(st, str(recipe["assembly"]),
                                                          f"{k}.assembly")
        except RuntimeError as exc:
            raise InputError(f"{k}.assembly: {exc}") from exc
        parts.append(f"assembly {recipe['assembly']} ({symmetry})")
    heavy_xyz, _, _, _, rep = _atoms(unit)
    if len(heavy_xyz) == 0:
        raise InputError(f"{k}: no atoms (check 'chains' {recipe.get('chains')!r} and "
                         f"'assembly' {recipe.get('assembly')!r} of {recipe['pdb']!r})")
    hydrogens = recipe.get("hydrogens", True)
    if not isinstance(hydrogens, (bool, np.bool_)):
        raise InputError(f"{k}.hydrogens: expected true or false, got {hydrogens!r}")
    mass = _mass_da(unit)
    if hydrogens:
        unit = add_united_hydrogens(unit)
    xyz, el, b, occ, _ = _atoms(unit)
    f0 = electron_f0(el, f"{k}.pdb")
    if unit_tr is None:  # centre on the potential-weighted centroid
        w = occ * f0
        unit_tr = _affine(np.eye(3), -(w @ xyz) / w.sum())
    return dict(model=unit, transform=unit_tr, symmetry=symmetry, parts=parts,
                heavy_xyz=_apply(unit_tr, heavy_xyz), rep=rep, xyz=xyz, elements=el,
                b_iso=b, occupancy=occ, f0=f0, mass=mass)


@functools.lru_cache(maxsize=32)
def _build_cached(name: str, frozen: tuple) -> MoleculeClass:
    recipe = _thaw(frozen)
    k = f"{_KEY}.{name}"
    clash = recipe.get("clash", 3.0)
    if isinstance(clash, bool) or not isinstance(clash, (int, float)) or not (
            math.isfinite(clash) and clash > 0):
        raise InputError(f"{k}.clash: must be a number > 0 (Å), got {clash!r}")
    for opt in ("candidates", "search_seed"):
        val = recipe.get(opt, 100 if opt == "candidates" else 0)
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < (
                1 if opt == "candidates" else 0):
            raise InputError(f"{k}.{opt}: expected an integer >= "
                             f"{1 if opt == 'candidates' else 0}, got {val!r}")
    unit = _unit_cached(name, frozen)
    symmetry, parts = unit["symmetry"], list(unit["parts"])
    xyz, occ, f0 = unit["xyz"], unit["occupancy"], unit["f0"]
    ops = [_affine(np.eye(3), np.zeros(3))]
    if recipe.get("symmetry") is not None:
        _check_symmetry(recipe["symmetry"], k)
        symmetry = str(recipe["symmetry"]).strip().upper()
        ops = pseudo_assembly(unit["heavy_xyz"], unit["rep"], symmetry, float(clash),
                              int(recipe.get("candidates", 100)),
                              int(recipe.get("search_seed", 0)))
        parts.append(f"{len(ops)} copies by {symmetry} (pseudo-assembly)")
    transforms = [_compose(op, unit["transform"]) for op in ops]
    all_xyz = np.concatenate([_apply(t, xyz) for t in transforms])
    if symmetry.startswith("C") and symmetry != "C1":  # centroid onto the origin along z
        w = np.tile(occ * f0, len(transforms))
        dz = (w @ all_xyz[:, 2]) / w.sum()
        transforms = [t - np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, dz]])
                      for t in transforms]
        all_xyz[:, 2] -= dz
    m = len(transforms)
    return MoleculeClass(
        name=name, source=", ".join(parts), symmetry=symmetry,
        pieces=tuple((unit["model"], t) for t in transforms), xyz=all_xyz,
        elements=np.tile(unit["elements"], m), b_iso=np.tile(unit["b_iso"], m),
        occupancy=np.tile(occ, m), copy=np.repeat(np.arange(m), len(xyz)),
        f0=np.tile(f0, m), mass_da=unit["mass"] * m, recipe=recipe)
