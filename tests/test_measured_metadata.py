"""Measured data as users have it: SerialEM .mdoc, IMOD .tlt/.rawtlt/.xf (wedgebench.measured)."""
import numpy as np
import pytest

from measured_data import DOSE, DOSE_SYMMETRIC, SHAPE, VOXEL, mdoc_text, projections, write_series
from wedgebench.io import InputError, write_mrc, write_tlt
from wedgebench.measured import (
    apply_xf,
    dose_weight,
    load_measured_series,
    prior_dose,
    read_measured,
    read_xf,
)


def params(stack, mdoc=None, **kw):
    out = {"stack": str(stack)}
    if mdoc is not None:
        out["mdoc"] = str(mdoc)
    out.update({k: str(v) if hasattr(v, "parent") else v for k, v in kw.items()})
    return out


# ----------------------------------------------------------------------------- the mdoc

def test_mdoc_series_in_acquisition_order_is_sorted_with_its_dose_history(tmp_path):
    stack, mdoc, acq = write_series(tmp_path)
    out, angles, pixel, rec, _ = load_measured_series(params(stack, mdoc), SHAPE)
    srt = np.argsort(acq)
    assert np.allclose(angles, acq[srt] + 0.00099)  # the mdoc's TiltAngle, ascending
    assert np.all(np.diff(angles) > 0) and pixel == VOXEL
    assert np.array_equal(out, projections(acq)[srt])  # each image kept with its angle
    # acquisition order from DateTime: rank k in the dose-symmetric list
    assert rec["acquisition_index"] == [DOSE_SYMMETRIC.index(a) for a in acq[srt]]
    assert rec["order_from"] == "DateTime" and rec["dose_from"] == "ExposureDose"
    assert rec["dose"] == [DOSE] * acq.size
    assert np.allclose(rec["prior_dose"], [DOSE * DOSE_SYMMETRIC.index(a) for a in acq[srt]])
    assert rec["prior_dose"][list(acq[srt]).index(0)] == 0.0
    assert rec["dose_weighted"] is False and rec["voltage_kv"] == 300.0
    assert len(rec["mdoc_Defocus"]) == acq.size and rec["mdoc_TargetDefocus"][0] == -4


def test_sorted_stack_with_datetime_gives_the_same_series(tmp_path):
    """A stack saved sorted by angle: DateTime, not ZValue, gives the acquisition order."""
    a = load_measured_series(params(*write_series(tmp_path / "a")[:2]), SHAPE)
    b = load_measured_series(params(*write_series(tmp_path / "b", order="angle")[:2]), SHAPE)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for key in ("acquisition_index", "prior_dose", "nominal_angles"):
        assert a[3][key] == b[3][key], key
    assert b[3]["stack_index"] == list(range(len(DOSE_SYMMETRIC)))


def test_without_datetime_the_zvalue_order_is_the_acquisition_order(tmp_path):
    stack, mdoc, acq = write_series(tmp_path, drop=("DateTime",))
    rec = load_measured_series(params(stack, mdoc), SHAPE)[3]
    assert rec["order_from"] == "ZValue"
    assert rec["acquisition_index"] == [DOSE_SYMMETRIC.index(a) for a in np.sort(acq)]


def test_dose_from_dose_rate_times_exposure_time_over_unbinned_pixel(tmp_path):
    # 24 e-/unbinned px/s x 2 s over (8 A / binning 2)^2 = 3 e-/A^2
    stack, mdoc, _ = write_series(tmp_path, drop=("ExposureDose",), section=lambda z: {
        "DoseRate": "24", "ExposureTime": "2", "Binning": "2"})
    meta = read_measured(params(stack, mdoc), SHAPE)
    assert np.allclose(meta.dose, 3.0) and meta.dose_from.startswith("DoseRate")


def test_dose_per_tilt_fills_an_mdoc_without_dose(tmp_path):
    stack, mdoc, _ = write_series(tmp_path, section=lambda z: {"ExposureDose": "0"})
    assert read_measured(params(stack, mdoc), SHAPE).dose is None
    with pytest.raises(InputError, match=r"ts\.mrc\.mdoc: params\.dose_weighting needs the "
                                         r"dose .*dose_per_tilt"):
        read_measured(params(stack, mdoc, dose_weighting=True), SHAPE)
    meta = read_measured(params(stack, mdoc, dose_weighting=True, dose_per_tilt=2.5), SHAPE)
    assert np.allclose(meta.dose, 2.5) and meta.dose_from == "params.dose_per_tilt"


def test_binned_stack_checks_pixel_against_mdoc_times_binning(tmp_path):
    # mdoc of the unbinned camera images (48 x 32 at 4 A); the stack binned 2x (8 A)
    stack, mdoc, _ = write_series(tmp_path, pixel=VOXEL, image_size=(48, 32))
    md = tmp_path / "ts.mrc.mdoc"
    md.write_text(md.read_text().replace("PixelSpacing = 8", "PixelSpacing = 4"))
    assert read_measured(params(stack, mdoc), SHAPE).pixel_A == VOXEL


def test_mdoc_angles_order_checked_against_tlt_and_rawtlt_preferred_order(tmp_path):
    stack, mdoc, acq = write_series(tmp_path)
    write_tlt(tmp_path / "ts.rawtlt", acq)
    write_tlt(tmp_path / "ts.tlt", acq * 1.01 + 0.3)  # refined: same order, other values
    meta = read_measured(params(stack, mdoc, rawtlt=tmp_path / "ts.rawtlt"), SHAPE)
    assert meta.angles_from.endswith("ts.rawtlt") and np.allclose(meta.angles, acq, atol=1e-4)
    meta = read_measured(params(stack, mdoc, tlt=tmp_path / "ts.tlt",
                                rawtlt=tmp_path / "ts.rawtlt"), SHAPE)
    assert meta.angles_from.endswith("ts.tlt")
    assert np.allclose(meta.angles, acq * 1.01 + 0.3, atol=1e-4)
    swapped = acq.copy()
    swapped[[1, 2]] = swapped[[2, 1]]  # images 1 and 2 (6 and 12 deg) exchanged
    write_tlt(tmp_path / "bad.tlt", swapped)
    with pytest.raises(InputError, match=r"bad\.tlt: the angles are not in the order of "
                                         r".*ts\.mrc\.mdoc's TiltAngle: image 1"):
        read_measured(params(stack, mdoc, tlt=tmp_path / "bad.tlt"), SHAPE)


# ----------------------------------------------------------------------------- bad metadata

@pytest.mark.parametrize("edit, message", [
    (dict(angles=DOSE_SYMMETRIC[:-1]), r"ts\.mrc has 20 tilt images but .*ts\.mrc\.mdoc has "
                                       r"19 \[ZValue\] sections"),
    (dict(zvalues=list(range(19)) + [18]), r"ts\.mrc\.mdoc: the \[ZValue = i\] sections must "
                                           r"number the 20 images 0…19 once each \(ZValue "
                                           r"\[18\] given twice\)"),
    (dict(drop=("TiltAngle",)), r"ts\.mrc\.mdoc: \[ZValue = 0\] has no TiltAngle"),
    (dict(section=lambda z: {"DateTime": "yesterday"} if z == 4 else {}),
     r"ts\.mrc\.mdoc: \[ZValue = 4\] has an unreadable DateTime 'yesterday'"),
    (dict(section=lambda z: {"ExposureDose": "0"} if z == 7 else {}),
     r"ts\.mrc\.mdoc: \[ZValue = 7\] has ExposureDose 0"),
    (dict(section=lambda z: {"TiltAngle": "abc"} if z == 2 else {}),
     r"ts\.mrc\.mdoc: not a readable SerialEM \.mdoc \(line 54: TiltAngle = 'abc': Input "
     r"should be a valid number"),
    (dict(pixel=8.2), r"pixel size disagreement: .*ts\.mrc has 8 Å in its MRC header but "
                      r".*ts\.mrc\.mdoc has PixelSpacing = 8\.2 Å \(differ by 2\.4 %"),
])
def test_bad_mdoc_names_file_and_field(tmp_path, edit, message):
    stack, mdoc, acq = write_series(tmp_path)
    kw = dict(edit)
    angles = kw.pop("angles", acq)
    mdoc.write_text(mdoc_text(angles, **kw))
    with pytest.raises(InputError, match=message):
        read_measured(params(stack, mdoc), SHAPE)


def test_pixel_size_small_disagreement_accepted_and_missing_refused(tmp_path):
    stack, mdoc, acq = write_series(tmp_path)
    mdoc.write_text(mdoc_text(acq, pixel=8.05))  # 0.6 %: the header's value is kept
    assert read_measured(params(stack, mdoc), SHAPE).pixel_A == VOXEL
    write_mrc(tmp_path / "nopix.mrc", projections(acq), 0.0)
    assert read_measured(params(tmp_path / "nopix.mrc", mdoc), SHAPE).pixel_A == 8.05
    write_tlt(tmp_path / "ts.tlt", acq)
    with pytest.raises(InputError, match=r"nopix\.mrc: no pixel size: the MRC header's is 0 "
                                         r"and no \.mdoc is given"):
        read_measured(params(tmp_path / "nopix.mrc", tlt=tmp_path / "ts.tlt"), SHAPE)


def test_tlt_count_and_configured_shape(tmp_path):
    stack, mdoc, acq = write_series(tmp_path)
    write_tlt(tmp_path / "ts.tlt", acq[:5])
    with pytest.raises(InputError, match=r"ts\.mrc has 20 tilt images but .*ts\.tlt lists 5 "
                                         r"angles"):
        read_measured(params(stack, tlt=tmp_path / "ts.tlt"), SHAPE)
    with pytest.raises(InputError, match=r"stack \(y, x\) = \(16, 24\) does not match the "
                                         r"configured shape \(ny, nx\) = \(16, 16\)"):
        read_measured(params(stack, mdoc), [16, 16, 16])


def xf_line(a11=1.0, a12=0.0, a21=0.0, a22=1.0, dx=0.0, dy=0.0):
    return f"{a11:12.7f}{a12:12.7f}{a21:12.7f}{a22:12.7f}{dx:12.3f}{dy:12.3f}\n"


@pytest.mark.parametrize("text, message", [
    (xf_line() * 19, r"ts\.mrc has 20 tilt images but .*ts\.xf has 19 transforms \(lines\)"),
    (xf_line() * 5 + "1 0 0 1 0\n" + xf_line() * 14,
     r"ts\.xf:6: 5 fields, expected 6 \(A11 A12 A21 A22 DX DY\)"),
    (xf_line() * 3 + "1 0 0 1 0 x\n" + xf_line() * 16, r"ts\.xf:4: not a number"),
    (xf_line() * 2 + xf_line(a11=0, a22=0) + xf_line() * 17, r"ts\.xf:3: the matrix .* is "
                                                              r"singular"),
])
def test_bad_xf_names_file_and_line(tmp_path, text, message):
    stack, mdoc, _ = write_series(tmp_path)
    (tmp_path / "ts.xf").write_text(text)
    with pytest.raises(InputError, match=message):
        read_measured(params(stack, mdoc, xf=tmp_path / "ts.xf"), SHAPE)


# ----------------------------------------------------------------------------- .xf

def test_read_xf_layout(tmp_path):
    (tmp_path / "a.xf").write_text(xf_line(0.9, -0.1, 0.2, 1.1, 3.5, -2.25))
    assert np.allclose(read_xf(tmp_path / "a.xf")[0], [[0.9, -0.1, 3.5], [0.2, 1.1, -2.25]])


def test_apply_xf_shift_and_rotation_follow_imod_convention():
    """x' - cx = A11 (x - cx) + A12 (y - cy) + DX, y' - cy = A21 (x - cx) + A22 (y - cy) + DY,
    (cx, cy) = (nx/2, ny/2): a point image lands where the formula puts it."""
    img = np.zeros((2, 12, 16), np.float32)
    img[0, 5, 5] = 1.0   # (y, x) = (5, 5)
    img[1, 3, 10] = 1.0  # (y, x) = (3, 10)
    shift = [[1, 0, 2], [0, 1, -1]]       # DX = 2, DY = -1
    rot90 = [[0, -1, 0], [1, 0, 0]]       # x' - 8 = -(y - 6), y' - 6 = x - 8
    out = apply_xf(img, np.array([shift, rot90], float))
    assert np.unravel_index(np.argmax(out[0]), out[0].shape) == (4, 7)
    assert np.unravel_index(np.argmax(out[1]), out[1].shape) == (8, 11)
    assert np.isclose(out[0].max(), 1.0, atol=1e-5) and np.isclose(out[1].max(), 1.0, atol=1e-5)
    ident = apply_xf(img, np.array([[[1, 0, 0], [0, 1, 0]]] * 2, float))
    assert np.allclose(ident, img, atol=1e-6)


def test_xf_applied_before_sorting(tmp_path):
    """Each .xf line belongs to the stack section of the same index (ZValue order)."""
    stack, mdoc, acq = write_series(tmp_path)
    lines = [xf_line(dx=2.0) if z == 3 else xf_line() for z in range(acq.size)]
    (tmp_path / "ts.xf").write_text("".join(lines))
    out, angles, _, rec, _ = load_measured_series(params(stack, mdoc, xf=tmp_path / "ts.xf"),
                                                  SHAPE)
    plain = projections(acq)
    k = rec["stack_index"].index(3)  # section 3 (-6 deg) in the sorted stack
    assert np.allclose(out[k][:, 4:-4], plain[3][:, 2:-6], atol=1e-4)
    other = rec["stack_index"].index(4)
    assert np.allclose(out[other], plain[4], atol=1e-5) and rec["xf_applied"]


# ----------------------------------------------------------------------------- dose

def test_prior_dose_follows_acquisition_order():
    # images (stack order) acquired 3rd, 1st, 2nd with doses 1, 2, 4
    assert np.allclose(prior_dose([1.0, 2.0, 4.0], [2, 0, 1]), [6.0, 0.0, 2.0])


def test_dose_weight_attenuates_a_fourier_component_by_the_critical_exposure():
    """exp(-N / (2 Ne(k))), Ne = 0.245 k^-1.665 + 2.81 e/A^2 at 300 kV (Grant & Grigorieff)."""
    ny, nx, pixel = 16, 32, 2.0
    x = np.arange(nx)
    img = np.tile(1.0 + np.cos(2 * np.pi * 4 * x / nx), (ny, 1)).astype(np.float32)
    out = dose_weight(np.stack([img, img]), [0.0, 20.0], pixel)
    k = 4 / (nx * pixel)
    att = np.exp(-20.0 / (2 * (0.245 * k**-1.665 + 2.81)))
    assert np.allclose(out[0], img, atol=1e-5)  # the first image received no dose
    assert np.allclose(out[1], 1.0 + att * np.cos(2 * np.pi * 4 * x / nx), atol=1e-5)


def test_dose_weighting_uses_prior_dose_of_the_whole_series_in_halves_too(tmp_path):
    stack, mdoc, acq = write_series(tmp_path)
    p = params(stack, mdoc, dose_weighting=True)
    full, angles, _, rec, _ = load_measured_series(p, SHAPE)
    srt = np.argsort(acq)
    plain = projections(acq)[srt]
    k0 = list(acq[srt]).index(0)
    assert np.allclose(full[k0], plain[k0], atol=1e-5)  # first image: no prior dose
    last = list(acq[srt]).index(DOSE_SYMMETRIC[-1])
    want = dose_weight(plain[last:last + 1], [DOSE * (acq.size - 1)], VOXEL)
    assert np.allclose(full[last], want[0], atol=1e-5) and not np.allclose(full[last], plain[last])
    odd, odd_angles, _, odd_rec, _ = load_measured_series(p, SHAPE, subset="odd")
    assert np.allclose(odd_angles, angles[1::2])
    assert np.allclose(odd, full[1::2]) and odd_rec["prior_dose"] == rec["prior_dose"][1::2]
