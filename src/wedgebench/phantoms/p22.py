"""P22-like bacteriophage: procedural model, or a real map resampled to the box.

Procedural model (default)
--------------------------
Built in physical units (Å) and sampled at voxel centres of the ``shape`` box.
Frame: physical ``(x, y, z)`` = array axes ``(2, 1, 0)``; **the tail points
along +z (increasing array index 0)** and the capsid's 5-fold vertex axis is the
z axis through the box centre in x and y, so rotating the capsid by 72° in the
(y, x) planes maps it onto itself. One neighbouring vertex of the tail vertex
lies in the +x half of the xz plane. The particle (capsid plus tail) is centred
along z: the capsid centre sits ``tail_length / 2`` below the box centre.

* **Capsid**: an icosahedral shell, not a sphere: the polyhedral norm
  ``N(p) = max_f n_f · p`` over the 20 face normals is used as the radius, and
  the shell is ``R_in - shell_thickness <= N(p) <= R_in`` with ``R_in`` the
  inradius of an icosahedron whose vertices lie at ``capsid_diameter / 2``
  (flat facets, sharp vertices). Capsomer texture: a T = 7 (h = 2, k = 1)
  lattice of 12 pentamers (at the vertices) and 60 hexamers on the faces, each
  drawn as a ring of 5 or 6 Gaussian lobes (ring radius 0.3, lobe σ 0.1 of the
  capsomer spacing ``edge / √7``) centred on the outer surface (so they
  protrude from it), oriented towards the nearest pentamer, so the texture
  keeps the full icosahedral symmetry. Defaults: ``capsid_diameter`` 600 Å
  (vertex to vertex), ``shell_thickness`` 25 Å, ``tail_length`` 150 Å (the whole
  particle, 750 Å long, fits a 64-voxel box at 12 Å/voxel).
* **DNA**: concentric layers inside the capsid following its facets, spaced
  ``dna_spacing`` Å; the DNA region starts 10 Å inside the capsid's inner
  surface and the outermost layer is centred half a spacing further in; layer
  contrast fades to uniform density (0.5) at 60 % of the way to the centre.
  Layers the grid cannot carry are faded out: full contrast at >= 3 voxels per
  layer, uniform density at <= 2 (so that sampling does not alias them).
  ``tail_length`` is approximate for tails shorter than about 100 Å (the hub's
  rounded end reaches 0.4·``tail_length`` + 50 Å).
* **Tail** at the +z vertex: a portal plug inside the vertex, a hub (radius
  50 Å, 0.4·``tail_length`` long), a needle (radius 15 Å) reaching
  ``tail_length`` beyond the vertex, and six tailspikes (radius 18 Å,
  0.6·``tail_length`` long) leaving the hub at 60° intervals (the first in the
  +x direction), tilted 50° away from the axis and pointing away from the capsid.

Densities: capsid and tail 1, DNA 0–1 (mean about 0.5), combined by voxel-wise
maximum, with one-voxel partial-volume edges. The result is low-pass filtered
to ``resolution`` Å (default Gaussian, gain 0.5 at 1/``resolution``; or order-8
Butterworth, gain 1/√2 there), clipped at 0 and, by default, scaled to maximum 1.

Real map (``source``)
---------------------
``source`` is an MRC/CCP4 map (optionally gzipped), e.g. EMD-9008 as in the
paper. Its voxel size comes from the header unless ``source_voxel_size`` is
given. It is low-pass filtered against aliasing when downsampled (Gaussian
σ = (1/f − 1)/2 source voxels for zoom factor f), resampled by trilinear
interpolation onto ``shape`` at ``voxel_size`` with the two box centres
coinciding (so the map is clipped or zero-padded symmetrically), negatives set
to 0, then filtered and scaled as above.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
from scipy import ndimage

from wedgebench.io import InputError, read_mrc
from wedgebench.phantoms.filters import (check_bool, check_number, check_shape,
                                         gaussian_lowpass, lowpass_resolution,
                                         paint_capsules, render_gaussians, seeded_spin,
                                         soft_inside, spin_matrix)

PHI = (1.0 + math.sqrt(5.0)) / 2.0
T_H, T_K = 2, 1  # P22: T = h² + hk + k² = 7

DEFAULTS = dict(capsid_diameter=600.0, shell_thickness=25.0, dna_spacing=25.0,
                tail_length=150.0)


def rotation_about(axis, angle: float) -> np.ndarray:
    """Right-handed rotation matrix by ``angle`` radians about ``axis`` (x, y, z)."""
    x, y, z = np.asarray(axis, float) / np.linalg.norm(axis)
    c, s = math.cos(angle), math.sin(angle)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def unique_rows(points: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Rows of ``points`` with near-duplicates (max abs difference <= ``tol``) removed,
    first occurrences kept in order."""
    keep = []
    for p in points:
        if not keep or np.abs(np.asarray(keep) - p).max(axis=1).min() > tol:
            keep.append(p)
    return np.asarray(keep)


def icosahedron() -> tuple[np.ndarray, np.ndarray]:
    """Unit-circumradius icosahedron with vertex 0 on +z and a neighbour in the +x xz half-plane.

    Returns
    -------
    vertices : ndarray ``(12, 3)`` (x, y, z)
    faces : ndarray ``(20, 3)`` vertex indices, counter-clockwise seen from outside
    """
    v = np.array([p for a, b in itertools.product((-1, 1), repeat=2)
                  for p in ((0, a, b * PHI), (a, b * PHI, 0), (b * PHI, 0, a))], float)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    top = int(np.argmax(v @ np.array([0.0, 1.0, PHI])))
    nb = int(np.flatnonzero(np.isclose(v @ v[top], 1 / math.sqrt(5)))[0])
    e3 = v[top]
    e1 = v[nb] - (v[nb] @ e3) * e3
    e1 /= np.linalg.norm(e1)
    frame = np.stack([e1, np.cross(e3, e1), e3])  # rows: new x, y, z
    v = v @ frame.T
    v = np.concatenate([v[top:top + 1], np.delete(v, top, axis=0)])
    adj = np.isclose(v @ v.T, 1 / math.sqrt(5))
    faces = []
    for i, j, k in itertools.combinations(range(12), 3):
        if adj[i, j] and adj[j, k] and adj[i, k]:
            if np.cross(v[j] - v[i], v[k] - v[i]) @ (v[i] + v[j] + v[k]) < 0:
                j, k = k, j
            faces.append((i, j, k))
    return v, np.array(faces)


def icosahedral_rotations(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The 60 rotations of the icosahedron (closure of a 5-fold and a 3-fold)."""
    gens = [rotation_about(vertices[0], 2 * math.pi / 5),
            rotation_about(vertices[faces[0]].sum(0), 2 * math.pi / 3)]
    group = np.eye(3)[None]
    while True:
        grown = unique_rows(np.concatenate([group, np.einsum("hij,gjk->hgik", gens, group)
                                            .reshape(-1, 3, 3)]).reshape(-1, 9))
        if len(grown) == len(group):
            return group
        group = grown.reshape(-1, 3, 3)


def capsomer_lattice(vertices, faces, rotations) -> tuple[np.ndarray, np.ndarray]:
    """Capsomer centres of a T = 7 lattice on the unit-circumradius icosahedron.

    The triangular lattice points of one face (with its vertices at lattice
    points ``0``, ``h·a + k·b`` and that rotated by 60°) are mapped by all 60
    rotations; duplicates are merged.

    Returns
    -------
    centres : ndarray ``(72, 3)`` on the icosahedron's faces
    pentamer : ndarray ``(72,)`` bool, True at the 12 vertices
    """
    a, b = np.array([1.0, 0.0]), np.array([0.5, math.sqrt(3) / 2])
    p1 = T_H * a + T_K * b
    p2 = np.array([[0.5, -math.sqrt(3) / 2], [math.sqrt(3) / 2, 0.5]]) @ p1
    basis = np.stack([p1, p2], axis=1)
    n = T_H + T_K
    pts = []
    for i, j in itertools.product(range(-2 * n, 2 * n + 1), repeat=2):
        lam1, lam2 = np.linalg.solve(basis, i * a + j * b)
        lam = np.array([1 - lam1 - lam2, lam1, lam2])
        if np.all(lam >= -1e-9):
            pts.append(lam @ vertices[faces[0]])
    orbit = np.einsum("gij,pj->gpi", rotations, np.array(pts)).reshape(-1, 3)
    centres = unique_rows(orbit)
    pentamer = np.max(centres @ vertices.T, axis=1) > 1 - 1e-6
    return centres, pentamer


def capsomer_lobes(centres, pentamer, ring: float) -> np.ndarray:
    """Lobe positions: 5 (pentamer) or 6 (hexamer) points on a ring of radius ``ring``.

    The ring lies in the plane normal to the capsomer's radial direction; its
    phase is set by the direction to the nearest pentamer (another one, for a
    pentamer), offset by half a lobe spacing, so the pattern is equivariant
    under the icosahedral rotations.
    """
    pents = centres[pentamer]
    lobes = []
    for c, is_pent in zip(centres, pentamer):
        r_hat = c / np.linalg.norm(c)
        d = np.linalg.norm(pents - c, axis=1)
        ref = pents[np.argmin(np.where(d > 1e-9, d, np.inf))]
        e1 = ref - (ref @ r_hat) * r_hat
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(r_hat, e1)
        n = 5 if is_pent else 6
        ang = (np.arange(n) + 0.5) * 2 * math.pi / n
        lobes.append(c + ring * (np.cos(ang)[:, None] * e1 + np.sin(ang)[:, None] * e2))
    return np.concatenate(lobes)


def spin_volume(vol: np.ndarray, spin_deg: float) -> np.ndarray:
    """``vol`` ``[z, y, x]`` rotated like :func:`spin_matrix` about the box's z axis through
    its centre (trilinear interpolation, zero outside)."""
    rot = spin_matrix(spin_deg)[::-1, ::-1]  # acting on (z, y, x)
    centre = (np.asarray(vol.shape, float) - 1) / 2
    # output voxel o samples the input at R^T (o - c) + c
    return ndimage.affine_transform(vol, rot.T, offset=centre - rot.T @ centre, order=1,
                                    mode="constant", cval=0.0).astype(np.float32)


def build_components(shape, voxel_size: float, capsid_diameter: float,
                     shell_thickness: float, dna_spacing: float,
                     tail_length: float, spin: float = 0.0) -> dict:
    """The procedural particle's parts, unfiltered, on the ``shape`` grid.

    Parameters
    ----------
    shape : (nz, ny, nx)
    voxel_size : float, Å
    capsid_diameter : float
        Vertex-to-vertex diameter, Å.
    shell_thickness : float, Å
    dna_spacing : float, Å
    tail_length : float
        Extent of the tail beyond the capsid vertex, Å (0: no tail).
    spin : float
        Rotation of the particle about the z (beam, tail) axis through the box centre,
        degrees (:func:`~wedgebench.phantoms.filters.spin_matrix`); 0 = the frame of the module docstring.

    Returns
    -------
    dict
        ``capsid``, ``dna``, ``tail``: float32 volumes in [0, 1];
        ``centre``: capsid centre ``(z, y, x)`` in voxels.
    """
    vs = float(voxel_size)
    verts, faces = icosahedron()
    rots = icosahedral_rotations(verts, faces)
    normals = verts[faces].sum(1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    r_c = capsid_diameter / 2.0
    r_in = r_c * float(normals[0] @ verts[faces[0, 0]])
    centre = np.array([(shape[0] - 1) / 2 - tail_length / (2 * vs),
                       (shape[1] - 1) / 2, (shape[2] - 1) / 2])
    z, yb, xb = (((np.arange(n) - c) * vs).astype(np.float32).reshape(view)
                 for n, c, view in zip(shape, centre, ((-1, 1, 1), (1, -1, 1), (1, 1, -1))))
    rot = spin_matrix(spin)
    # the model is evaluated at R^T p of every box point p (only x and y mix)
    x = np.float32(rot[0, 0]) * xb + np.float32(rot[1, 0]) * yb
    y = np.float32(rot[0, 1]) * xb + np.float32(rot[1, 1]) * yb
    norm = np.full(shape, -np.inf, np.float32)
    for nx_, ny_, nz_ in normals.astype(np.float32):
        np.maximum(norm, nx_ * x + ny_ * y + nz_ * z, out=norm)

    shell = soft_inside(norm - r_in, vs) * soft_inside(r_in - shell_thickness - norm, vs)
    edge = r_c * float(np.linalg.norm(verts[faces[0, 1]] - verts[faces[0, 0]]))
    spacing = edge / math.sqrt(T_H ** 2 + T_H * T_K + T_K ** 2)
    caps, pent = capsomer_lattice(verts, faces, rots)
    lobes = capsomer_lobes(caps * r_c, pent, 0.3 * spacing)
    sigma = 0.1 * spacing / vs
    blobs = render_gaussians(shape, centre + (lobes @ rot.T)[:, ::-1] / vs, sigma,
                             (2 * math.pi * sigma ** 2) ** 1.5)
    capsid = np.maximum(shell, np.minimum(blobs, 1.0))

    r_dna = r_in - shell_thickness - 10.0
    depth = r_dna - norm
    # layers fade towards the centre, and vanish (uniform DNA) when the grid cannot
    # resolve them: full contrast at >= 3 voxels per layer, none at <= 2 (no aliasing)
    contrast = (np.clip(1.0 - depth / (0.6 * r_dna), 0.0, 1.0)
                * np.clip(dna_spacing / vs - 2.0, 0.0, 1.0))
    # layer centres at depths (k + 1/2)·spacing: density 0 on the boundary itself
    layers = 0.5 * (1.0 - contrast * np.cos(2 * math.pi * depth / dna_spacing))
    dna = soft_inside(-depth, vs) * layers

    tail = np.zeros(shape, np.float32)
    if tail_length > 0:
        L = tail_length
        # portal plug: from 60 Å inside the shell's inner surface (on the axis) to the vertex
        portal_in = (r_in - shell_thickness) * r_c / r_in - 60.0
        segs, radii = [((0, 0, portal_in), (0, 0, r_c)),
                       ((0, 0, r_c), (0, 0, r_c + 0.4 * L))], [45.0, 50.0]
        segs.append(((0, 0, r_c + 0.4 * L), (0, 0, r_c + L - 15)))
        radii.append(15.0)
        beta = math.radians(50)
        for phi in np.radians(np.arange(6) * 60.0):
            u = np.array([math.cos(phi), math.sin(phi), 0.0])
            a = 45.0 * u + np.array([0, 0, r_c + 0.2 * L])
            d = math.sin(beta) * u + np.array([0, 0, math.cos(beta)])
            segs.append((a, a + 0.6 * L * d))
            radii.append(18.0)
        segs = (np.asarray(segs, float) @ rot.T)[:, :, ::-1] / vs + centre  # → [z,y,x] voxels
        tail = paint_capsules(shape, segs, np.asarray(radii) / vs)
    return dict(capsid=capsid.astype(np.float32), dna=dna.astype(np.float32),
                tail=tail, centre=centre)


def resample_map(data: np.ndarray, source_voxel: float, shape, voxel_size: float) -> np.ndarray:
    """Resample a map onto ``shape`` at ``voxel_size``, box centres coinciding.

    Anti-aliasing Gaussian (σ = (1/f − 1)/2 source voxels, f = source/target
    voxel ratio) when downsampling; trilinear interpolation; zero outside.
    """
    f = source_voxel / voxel_size
    if f < 1:
        data = gaussian_lowpass(data, (1.0 / f - 1.0) / 2.0)
    step = voxel_size / source_voxel
    offset = [(n_in - 1) / 2 - step * (n_out - 1) / 2 for n_in, n_out in zip(data.shape, shape)]
    return ndimage.affine_transform(np.asarray(data, np.float32), np.full(3, step),
                                    offset=offset, output_shape=tuple(shape), order=1,
                                    mode="constant", cval=0.0).astype(np.float32)


def generate(shape, voxel_size: float = 12.0, seed: int = 0, *, capsid_diameter=None,
             shell_thickness=None, dna_spacing=None, tail_length=None,
             resolution: float = 30.0, filter: str = "gaussian", source=None,
             source_voxel_size=None, normalise: bool = True, spin=None):
    """P22 phage phantom (see module docstring).

    Parameters
    ----------
    shape : [nz, ny, nx]
    voxel_size : float
        Å per voxel of the output.
    seed : int
        Seed of the particle's orientation when ``spin`` is None.
    capsid_diameter : float, optional
        Vertex-to-vertex capsid diameter, Å (default 600).
    shell_thickness : float, optional
        Capsid shell thickness, Å (default 25), without the capsomer lobes.
    dna_spacing : float, optional
        Spacing of the DNA layers, Å (default 25).
    tail_length : float, optional
        Tail extent beyond the vertex, Å (default 150; 0: no tail).
    resolution : float
        Low-pass filter resolution, Å; 0 disables.
    filter : {"gaussian", "butterworth"}
        ``gaussian``: gain 0.5 at 1/``resolution``, no ringing; ``butterworth``
        (order 8): gain 1/√2 at 1/``resolution``, sharper, rings (clipped at 0).
    source : str, optional
        Path of a real map (MRC/CCP4, optionally .gz) used instead of the model;
        the four geometry parameters must then be left out.
    source_voxel_size : float, optional
        Voxel size of ``source`` in Å (default: its header).
    normalise : bool
        Scale the result to maximum 1.
    spin : float, optional
        Rotation about the z (beam) axis in degrees (:func:`~wedgebench.phantoms.filters.spin_matrix`), for the model and
        for a ``source`` map alike; None (default) draws it uniformly in [0, 360) from
        ``seed``, so every seed sees the particle in another orientation to the tilt axis
        (and so to the missing wedge) while the tail stays along z; 0 = the fixed frame.

    Returns
    -------
    vol : ndarray float32 ``[z, y, x]``, >= 0
    voxel_size : float
    """
    shape = check_shape(shape, "p22.shape")
    vs = check_number(voxel_size, "p22.voxel_size", minimum=0, exclusive_min=True)
    resolution = check_number(resolution, "p22.resolution", minimum=0)
    if filter not in ("gaussian", "butterworth"):
        raise InputError(f"p22.filter: expected 'gaussian' or 'butterworth', got {filter!r}")
    normalise = check_bool(normalise, "p22.normalise")
    spin = seeded_spin(spin, seed, "p22.spin")
    geometry = dict(capsid_diameter=capsid_diameter, shell_thickness=shell_thickness,
                    dna_spacing=dna_spacing, tail_length=tail_length)
    if source is not None:
        given = [k for k, v in geometry.items() if v is not None]
        if given:
            raise InputError(f"p22: {', '.join('p22.' + k for k in given)} cannot be "
                             f"combined with p22.source (a real map)")
        data, header_voxel = read_mrc(source)
        src_vs = header_voxel if source_voxel_size is None else check_number(
            source_voxel_size, "p22.source_voxel_size", minimum=0, exclusive_min=True)
        vol = np.clip(resample_map(data, src_vs, shape, vs), 0.0, None)
        if spin % 360:
            vol = spin_volume(vol, spin)
    else:
        if source_voxel_size is not None:
            raise InputError("p22.source_voxel_size: only meaningful with p22.source")
        g = {k: DEFAULTS[k] if v is None else v for k, v in geometry.items()}
        g["capsid_diameter"] = check_number(g["capsid_diameter"], "p22.capsid_diameter",
                                            minimum=0, exclusive_min=True)
        g["shell_thickness"] = check_number(g["shell_thickness"], "p22.shell_thickness",
                                            minimum=0, exclusive_min=True,
                                            maximum=0.25 * g["capsid_diameter"])
        g["dna_spacing"] = check_number(g["dna_spacing"], "p22.dna_spacing",
                                        minimum=0, exclusive_min=True)
        g["tail_length"] = check_number(g["tail_length"], "p22.tail_length", minimum=0)
        half_z = g["capsid_diameter"] / 2 + g["tail_length"] / 2
        half_xy = g["capsid_diameter"] / 2
        if half_z > (shape[0] - 1) / 2 * vs or half_xy > (min(shape[1:]) - 1) / 2 * vs:
            warnings.warn(f"p22: particle ({g['capsid_diameter']:g} Å capsid + "
                          f"{g['tail_length']:g} Å tail) is clipped by box {shape} at "
                          f"{vs:g} Å/voxel", stacklevel=2)
        parts = build_components(shape, vs, **g, spin=spin)
        vol = np.maximum(np.maximum(parts["capsid"], parts["dna"]), parts["tail"])
    vol = np.clip(lowpass_resolution(vol, resolution, vs, filter), 0.0, None)
    if normalise and vol.max() > 0:
        vol /= vol.max()
    return vol.astype(np.float32), vs
