"""Downstream tasks on a reconstruction: particle picking and subtomogram averaging.

Modules
-------
:mod:`~wedgebench.downstream.settings`
    The ``downstream`` settings, their defaults and checks (errors name the key).
:mod:`~wedgebench.downstream.boxes`
    Boxes about ``n // 2``: centring, cropping, spherical masks.
:mod:`~wedgebench.downstream.picking`
    Template matching with pytme, called as a separate program (``pytme match`` and
    ``pytme postprocess``; pytme is GPL-2.0-only and is never imported), peak selection and
    STAR pick lists in our angle convention.
:mod:`~wedgebench.downstream.scoring`
    Picks against the ground truth as in the CZII challenge: per class precision, recall,
    F1, F-β, average precision, orientation error; a weighted mean over classes.
:mod:`~wedgebench.downstream.averaging`
    Subtomogram extraction, missing-wedge-weighted averaging, FSC against the true map,
    resolution against the number of particles and the Rosenthal–Henderson B factor.

Particle lists (STAR, one block) use RELION's columns: ``rlnCoordinateX/Y/Z`` (tomogram
voxels, the voxel the particle's box centre ``n // 2`` sits on), ``rlnAngleRot/Tilt/Psi``
(degrees, :mod:`wedgebench.euler`'s convention), :data:`SCORE` for a pick's score,
:data:`TOMO` for the tomogram and :data:`CLASS` for the class name.

Layer: beside :mod:`wedgebench.metrics`; imports ``io``, ``geometry``, ``euler`` and
``metrics`` only.
"""

COORDS = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
SCORE = "rlnAutopickFigureOfMerit"
TOMO = "rlnTomoName"
CLASS = "wbClassName"

__all__ = ["ANGLES", "CLASS", "COORDS", "SCORE", "TOMO"]
