"""Orientations: RELION's ZYZ Euler angles, rotating volumes, point-group symmetry.

Conventions (every module that places, picks or averages particles uses these)
------------------------------------------------------------------------------
* Angles are RELION's ``(rlnAngleRot, rlnAngleTilt, rlnAnglePsi)`` = ``(φ, θ, ψ)`` in
  degrees, ZYZ. :func:`euler_to_matrix` returns RELION's matrix
  ``A = R_z(−ψ) · R_y(−θ) · R_z(−φ)`` (``R_a(t)``: the active, right-handed rotation by
  ``t`` about axis ``a``), acting on column vectors ``(x, y, z)``.
* A particle at angles ``(φ, θ, ψ)`` is its reference map ``V`` rotated by
  :func:`particle_matrix` ``R``: ``p = rotate_volume(V, R)``, i.e. ``p(r) = V(Rᵀ r)`` for
  centred ``(x, y, z)`` coordinates ``r``. Averaging undoes it: ``V ≈ rotate_volume(p,
  Rᵀ)``. (This is the one place the meaning of stored angles is fixed; a test pins it
  against pytme's reading of the same angles.)
* Volumes are ``[z, y, x]`` arrays; the centre of a box of edge ``n`` is voxel ``n // 2``
  on each axis (RELION's and pytme's origin); a particle's ``rlnCoordinateX/Y/Z`` is the
  tomogram voxel on which its box centre sits.
* Symmetry groups (:func:`symmetry_operators`), as rotations of the reference onto itself:
  ``Cn`` about z; ``Dn`` adds a 2-fold about x; ``T`` has 2-folds along x, y, z and 3-folds
  along the cube diagonals; ``O`` 4-folds along x, y, z; ``I`` 2-folds along x, y, z and
  5-folds through the vertices ``(0, ±1, ±τ)``, ``(±1, ±τ, 0)``, ``(±τ, 0, ±1)`` (τ the
  golden ratio).
"""

from __future__ import annotations

import numpy as np

_REVERSE = np.eye(3)[::-1]  # (x, y, z) <-> (z, y, x)


def axis_rotation(axis, degrees: float) -> np.ndarray:
    """The active right-handed rotation by ``degrees`` about ``axis`` (``(x, y, z)``,
    any length > 0), as a 3 × 3 matrix on ``(x, y, z)`` column vectors (Rodrigues)."""
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    t = np.deg2rad(degrees)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def euler_to_matrix(rot, tilt, psi) -> np.ndarray:
    """RELION's rotation matrix of ZYZ Euler angles (degrees).

    Parameters
    ----------
    rot, tilt, psi : float or array of shape ``(n,)``

    Returns
    -------
    ndarray ``(3, 3)`` or ``(n, 3, 3)``, acting on ``(x, y, z)`` column vectors
    """
    a, b, g = (np.deg2rad(np.asarray(v, float)) for v in (rot, tilt, psi))
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    m = np.stack([
        np.stack([cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb], -1),
        np.stack([-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb], -1),
        np.stack([sc, ss, cb], -1),
    ], -2)
    return m


def matrix_to_euler(matrix) -> np.ndarray:
    """ZYZ Euler angles (degrees) of RELION's matrix: the inverse of
    :func:`euler_to_matrix`, with tilt in [0°, 180°] (rot = 0 at tilt 0° or 180°).

    Parameters
    ----------
    matrix : array ``(3, 3)`` or ``(n, 3, 3)``, a rotation

    Returns
    -------
    ndarray ``(3,)`` or ``(n, 3)``: rot, tilt, psi
    """
    m = np.asarray(matrix, float)
    single = m.ndim == 2
    m = m.reshape(-1, 3, 3)
    sb = np.hypot(m[:, 0, 2], m[:, 1, 2])
    regular = sb > 1e-9
    rot = np.where(regular, np.arctan2(m[:, 2, 1], m[:, 2, 0]), 0.0)
    tilt = np.arctan2(sb, m[:, 2, 2])
    psi = np.where(regular, np.arctan2(m[:, 1, 2], -m[:, 0, 2]),
                   np.where(m[:, 2, 2] > 0, np.arctan2(-m[:, 1, 0], m[:, 0, 0]),
                            np.arctan2(m[:, 1, 0], -m[:, 0, 0])))
    out = np.rad2deg(np.stack([rot, tilt, psi], -1))
    return out[0] if single else out


def particle_matrix(rot, tilt, psi) -> np.ndarray:
    """The rotation ``R`` that turns the reference into the particle stored with these
    angles (``p = rotate_volume(V, R)``); see the module's conventions."""
    return euler_to_matrix(rot, tilt, psi)


def random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` rotation matrices drawn uniformly from SO(3) (normalised Gaussian
    quaternions), as ``(n, 3, 3)`` on ``(x, y, z)``."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def random_eulers(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniformly random orientations as RELION Euler angles ``(n, 3)`` (degrees)."""
    return matrix_to_euler(random_rotations(rng, n))


def zyx_matrix(matrix) -> np.ndarray:
    """A matrix on ``(x, y, z)`` vectors rewritten for ``[z, y, x]`` array indices."""
    return _REVERSE @ np.asarray(matrix, float) @ _REVERSE


def rotate_volume(vol: np.ndarray, matrix, order: int = 1, centre=None,
                  output_shape=None, mode: str = "constant", cval: float = 0.0
                  ) -> np.ndarray:
    """``vol`` rotated by ``matrix``: ``out(r) = vol(Rᵀ r)``, about the box centre.

    Parameters
    ----------
    vol : ndarray ``[z, y, x]``
    matrix : (3, 3) rotation on ``(x, y, z)``
    order : int
        Spline order of :func:`scipy.ndimage.affine_transform` (1: trilinear).
    centre : sequence of 3 float, optional
        Rotation centre in ``vol``'s ``[z, y, x]`` indices (default ``shape // 2``); it
        lands on the output's own ``shape // 2``.
    output_shape : tuple, optional
        Default ``vol.shape``.
    mode, cval
        Outside values (default 0).

    Returns
    -------
    ndarray float32 of ``output_shape``
    """
    from scipy import ndimage

    vol = np.asarray(vol, np.float32)
    shape_out = tuple(output_shape or vol.shape)
    c_in = np.asarray(centre if centre is not None else [s // 2 for s in vol.shape], float)
    c_out = np.array([s // 2 for s in shape_out], float)
    m = zyx_matrix(np.asarray(matrix, float).T)  # input = Rᵀ (output − c_out) + c_in
    return ndimage.affine_transform(vol, m, offset=c_in - m @ c_out, output_shape=shape_out,
                                    order=order, mode=mode, cval=cval, prefilter=order > 1,
                                    output=np.float32)


def rotation_angle(matrix) -> np.ndarray:
    """Rotation angle (degrees, 0…180) of a rotation matrix ``(…, 3, 3)``."""
    m = np.asarray(matrix, float)
    tr = np.trace(m, axis1=-2, axis2=-1)
    return np.rad2deg(np.arccos(np.clip((tr - 1) / 2, -1.0, 1.0)))


def angular_distance(a, b, symmetry: str | np.ndarray = "C1") -> np.ndarray:
    """Smallest rotation angle (degrees) between particle orientations ``a`` and ``b``
    (matrices ``(…, 3, 3)`` as from :func:`particle_matrix`), over the reference's
    symmetry: a particle rotated by ``A`` equals one rotated by ``A·S`` for every operator
    ``S`` of the group.
    """
    ops = symmetry_operators(symmetry) if isinstance(symmetry, str) else np.asarray(symmetry)
    rel = np.swapaxes(np.asarray(a, float), -1, -2) @ np.asarray(b, float)  # Aᵀ B
    # min over S of angle(Sᵀ Aᵀ B)
    angles = rotation_angle(np.swapaxes(ops, -1, -2)[:, None] @ rel.reshape(-1, 3, 3)[None])
    return angles.min(0).reshape(rel.shape[:-2])


def _closure(generators: list[np.ndarray], limit: int = 120) -> np.ndarray:
    """The finite group generated by ``generators`` (rotation matrices)."""
    group = [np.eye(3)]
    keys = {tuple(np.round(np.eye(3), 6).ravel())}
    frontier = [np.eye(3)]
    while frontier:
        new = []
        for g in frontier:
            for h in generators:
                m = h @ g
                key = tuple(np.round(m, 6).ravel() + 0.0)
                if key not in keys:
                    keys.add(key)
                    group.append(m)
                    new.append(m)
        frontier = new
        if len(group) > limit:
            raise ValueError("generators do not close to a finite point group")
    return np.array(group)


def symmetry_operators(symbol: str) -> np.ndarray:
    """The rotations of a point group, ``(n, 3, 3)`` on ``(x, y, z)``, identity first.

    Parameters
    ----------
    symbol : str
        ``C1``, ``Cn``, ``Dn`` (n ≥ 1), ``T``, ``O`` or ``I`` (case-insensitive); axes as in
        the module's conventions.

    Raises
    ------
    ValueError
        An unknown symbol (naming it and the allowed forms).
    """
    s = str(symbol).strip().upper()
    tau = (1 + 5 ** 0.5) / 2
    if s[:1] in ("C", "D") and s[1:].isdigit() and int(s[1:]) >= 1:
        n = int(s[1:])
        gens = [axis_rotation([0, 0, 1], 360.0 / n)]
        if s[0] == "D":
            gens.append(axis_rotation([1, 0, 0], 180.0))
        return _closure(gens)
    if s == "T":
        return _closure([axis_rotation([0, 0, 1], 180.0), axis_rotation([1, 1, 1], 120.0)])
    if s == "O":
        return _closure([axis_rotation([0, 0, 1], 90.0), axis_rotation([1, 1, 1], 120.0)])
    if s == "I":
        return _closure([axis_rotation([0, 1, tau], 72.0), axis_rotation([0, 0, 1], 180.0)])
    raise ValueError(f"unknown symmetry {symbol!r}: use C1, Cn, Dn (n >= 1), T, O or I")
