"""Measured-like test data: a small tilt stack and its SerialEM .mdoc, written as SerialEM
writes them (global header, titles, one [ZValue = i] section per image)."""
import datetime

import numpy as np

from wedgebench.io import write_mrc
from wedgebench.phantoms import make_phantom
from wedgebench.tiltseries import simulate_tiltseries

SHAPE = [16, 16, 24]
VOXEL = 8.0
#: -54..60 in 6° steps, in a dose-symmetric order (0°, then two tilts per side, positive
#: side first), written out by hand.
DOSE_SYMMETRIC = [0, 6, 12, -6, -12, 18, 24, -18, -24, 30, 36, -30, -36, 42, 48, -42, -48,
                  54, 60, -54]
DOSE = 3.0  # e-/A^2 per image


def projections(angles):
    """Noise-free projections of a small phantom at ``angles`` (degrees, that order)."""
    vol, _ = make_phantom("spheres", {"shape": SHAPE, "voxel_size": VOXEL, "count": 2,
                                      "diameter": [6, 10]}, seed=5)
    return simulate_tiltseries(vol, np.asarray(angles, float))


def mdoc_text(angles, times=None, *, pixel=VOXEL, image_size=(SHAPE[2], SHAPE[1]),
              section=None, drop=(), zvalues=None):
    """A SerialEM tilt-series .mdoc: one section per image, ``angles`` in ZValue order.

    ``times`` are the minutes after the start at which each image was taken (default: in
    ZValue order, one a minute); ``section(z)`` returns extra or replacing "Key = value"
    lines of section z; keys in ``drop`` are left out of every section.
    """
    start = datetime.datetime(2024, 3, 12, 10, 2, 11)
    times = range(len(angles)) if times is None else times
    lines = [f"PixelSpacing = {pixel:g}", "Voltage = 300", "ImageFile = ts.mrc",
             f"ImageSize = {image_size[0]} {image_size[1]}", "DataMode = 2", "",
             "[T = SerialEM: Digitized on Krios G4                   12-Mar-24  10:02:11    ]",
             "", "[T =     Tilt axis angle = 85.3, binning = 1  spot = 8  camera = 0]", ""]
    for z, (a, t) in enumerate(zip(angles, times)):
        stamp = (start + datetime.timedelta(minutes=int(t))).strftime("%d-%b-%y  %H:%M:%S")
        fields = {
            "TiltAngle": f"{a + 0.00099:.5f}", "StagePosition": "20.7936 155.287",
            "StageZ": "163.803", "Magnification": "64000", "Intensity": "0.00900259",
            "ExposureDose": f"{DOSE:g}", "PixelSpacing": f"{pixel:g}", "SpotSize": "8",
            "Defocus": f"{2.68 - 0.01 * z:.4f}", "ImageShift": "-0.0108126 -0.121079",
            "RotationAngle": "175.3", "ExposureTime": "0.8", "Binning": "1",
            "CameraIndex": "0", "DividedBy2": "0", "MagIndex": "31",
            "MinMaxMean": "5 1403 623.699", "TargetDefocus": "-4", "DateTime": stamp,
        }
        fields.update(section(z) if section else {})
        head = z if zvalues is None else zvalues[z]
        lines.append(f"[ZValue = {head}]")
        lines += [f"{k} = {v}" for k, v in fields.items() if k not in drop]
        lines.append("")
    return "\n".join(lines) + "\n"


def write_series(folder, *, order="acquisition", pixel=VOXEL, **mdoc_kw):
    """A dose-symmetric series: stack ``ts.mrc`` and ``ts.mrc.mdoc`` in ``folder``.

    ``order="acquisition"``: the images in acquisition order (as SerialEM saves a
    dose-symmetric series); ``"angle"``: sorted by angle, the DateTime stamps keeping the
    acquisition order. Returns (stack path, mdoc path, acquisition-ordered angles).
    """
    folder.mkdir(parents=True, exist_ok=True)
    acq = np.asarray(DOSE_SYMMETRIC, float)
    if order == "acquisition":
        angles, times = acq, range(acq.size)
    else:
        angles = np.sort(acq)
        times = [DOSE_SYMMETRIC.index(a) for a in angles]
    write_mrc(folder / "ts.mrc", projections(angles), pixel)
    (folder / "ts.mrc.mdoc").write_text(mdoc_text(angles, times, **mdoc_kw))
    return folder / "ts.mrc", folder / "ts.mrc.mdoc", acq
