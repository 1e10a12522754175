"""A user's input MRC files are checked from their headers before any job.

A ``custom`` dataset's ``params.path`` (a ground-truth volume) and a measured
``tiltseries`` dataset's ``params.stack`` are opened header-only
(:func:`wedgebench.io.read_mrc_header`) by the config checks that Snakemake runs while it
reads the workflow: a truncated file, a file that is not an MRC, a 2-D image or a 4-D
volume stack, a complex mode, a bad voxel size or a shape that differs from the
configured ``shape`` stops the run with the config key, the file and the reason, and
nothing is written under ``results/``.
"""
import gzip
import shutil

import mrcfile
import numpy as np
import pytest
import yaml
from mrcfile.dtypes import HEADER_DTYPE

from wedgebench.config import ConfigError, check_config
from wedgebench.geometry import tilt_angles
from wedgebench.io import InputError, read_mrc, read_mrc_header, write_mrc, write_tlt
from workflow_utils import REPO, planned_jobs, run_snakemake, tiny_config

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
SHAPE = [6, 8, 10]


def volume(path, shape=SHAPE, voxel=4.0, dtype=np.float32):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).random(shape).astype(dtype)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
    return path


def truncate(path, n_bytes):
    data = path.read_bytes()
    path.write_bytes(data[:n_bytes])
    return path


# ------------------------------------------------------------------ the header check


def test_a_valid_volume_and_stack_pass_with_their_header(tmp_path):
    path = volume(tmp_path / "v.mrc")
    head = read_mrc_header(path)
    assert head.shape == tuple(SHAPE) and head.voxel_size == 4.0 and head.mode == 2
    assert read_mrc_header(path, "stack") == head
    write_mrc(tmp_path / "w.mrc", np.ones(SHAPE, np.float32), 2.5)  # our own writer
    assert read_mrc_header(tmp_path / "w.mrc").voxel_size == 2.5
    assert read_mrc_header(volume(tmp_path / "i.mrc", dtype=np.int16)).mode == 1
    gz = tmp_path / "v.mrc.gz"  # compressed files: header checked, length not
    with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert read_mrc_header(gz).shape == tuple(SHAPE)


def _write_header_edit(path, **fields):
    """Overwrite header fields in place (the data bytes stay as they are)."""
    raw = path.read_bytes()
    header = np.frombuffer(raw[:1024], dtype=HEADER_DTYPE).copy()
    for name, value in fields.items():
        header[name] = value
    path.write_bytes(header.tobytes() + raw[1024:])
    return path


def _text(path, text):
    path.write_text(text)
    return path


BAD_FILES = {
    "text": (lambda p: _text(p, "not an MRC\n"), "not an MRC file (11 bytes"),
    "long text": (lambda p: _text(p, "x" * 2000), "not an MRC file (Map ID"),
    "cut header": (lambda p: truncate(volume(p), 600), "truncated MRC file: 600 bytes, "
                   "shorter than the 1024-byte MRC header"),
    "cut data": (lambda p: truncate(volume(p), 1024 + 100), "truncated MRC file: 1124 bytes, "
                 "but its header announces 2944 (a 6x8x10 float32"),
    "2-D image": (lambda p: volume(p, shape=[8, 10]), "wrong number of dimensions: a single "
                  "2-D image of 8 x 10 pixels (nz = 1)"),
    "volume stack": (lambda p: volume(p, shape=[2, 3, 8, 10]),
                     "wrong number of dimensions: a 4-D volume stack"),
    "complex": (lambda p: volume(p, dtype=np.complex64), "MRC mode 4 (complex values)"),
    "unknown mode": (lambda p: _write_header_edit(volume(p), mode=99), "MRC mode 99"),
    "zero nx": (lambda p: _write_header_edit(volume(p), nx=0), "are not all positive"),
    "negative voxel": (lambda p: _write_header_edit(volume(p), cella=(-40.0, 32.0, 24.0)),
                       "voxel size (x, y, z) = (-4.0, 4.0, 4.0) Å is not valid"),
    "anisotropic": (lambda p: _write_header_edit(volume(p), cella=(40.0, 32.0, 60.0)),
                    "voxel size differs between axes (x, y, z) = (4.0, 4.0, 10.0) Å"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_are_refused_naming_the_file_and_the_reason(tmp_path, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path / "bad.mrc")
    with pytest.raises(InputError) as err:
        read_mrc_header(path)
    assert str(err.value).startswith(f"{path}: ") and reason in str(err.value)


def test_the_check_agrees_with_reading_the_data(tmp_path):
    """What the header check passes, read_mrc reads; what it refuses as truncated or not an
    MRC, read_mrc refuses too (so the check only moves the error before the jobs)."""
    good = volume(tmp_path / "good.mrc")
    assert read_mrc(good)[0].shape == read_mrc_header(good).shape
    for name in ("text", "cut header", "cut data"):
        path = BAD_FILES[name][0](tmp_path / f"{name}.mrc")
        with pytest.raises(InputError):
            read_mrc(path)


def test_a_stack_needs_square_pixels_only(tmp_path):
    """A tilt stack's z 'voxel' (cella.z / mz) says nothing about its pixels."""
    path = _write_header_edit(volume(tmp_path / "s.mrc"), cella=(40.0, 32.0, 60.0))
    assert read_mrc_header(path, "stack").voxel_size == 4.0
    _write_header_edit(path, mz=0)  # z spacing undefined: a volume is refused, a stack not
    assert read_mrc_header(path, "stack").voxel_size == 4.0
    with pytest.raises(InputError, match=r"voxel size \(x, y, z\) = \(4.0, 4.0, inf\)"):
        read_mrc_header(path)
    _write_header_edit(path, cella=(40.0, 40.0, 60.0))
    with pytest.raises(InputError, match=r"\(x, y\) = \(4.0, 5.0\) Å; square pixels"):
        read_mrc_header(path, "stack")


# ------------------------------------------------------------------ the config checks


def custom_config(path, shape=SHAPE):
    return tiny_config(datasets={"mine": {"kind": "custom", "shape": list(shape),
                                          "params": {"path": str(path)}}},
                       run_datasets=["mine"], methods=["imod_wbp"])


def measured_config(stack, tlt, shape=SHAPE):
    return tiny_config(datasets={"mine": {"kind": "tiltseries", "shape": list(shape),
                                          "params": {"stack": str(stack), "tlt": str(tlt)}}},
                       run_datasets=["mine"], methods=["imod_wbp"])


def test_config_check_names_key_file_and_reason(tmp_path):
    cut = truncate(volume(tmp_path / "gt.mrc"), 2000)
    with pytest.raises(ConfigError) as err:
        check_config(custom_config(cut), SCHEMA)
    assert (f"config key 'datasets.mine.params.path': {cut}: truncated MRC file: 2000 bytes"
            in str(err.value))
    text = tmp_path / "ts.mrc"
    text.write_text("tilt stack\n")
    tlt = tmp_path / "ts.tlt"
    write_tlt(tlt, [-30.0, 0.0, 30.0])
    with pytest.raises(ConfigError) as err:
        check_config(measured_config(text, tlt), SCHEMA)
    assert f"config key 'datasets.mine.params.stack': {text}: not an MRC file" in str(err.value)


def test_config_check_compares_the_shape(tmp_path):
    path = volume(tmp_path / "gt.mrc")
    check_config(custom_config(path), SCHEMA)
    with pytest.raises(ConfigError, match=r"'datasets.mine.params.path': .*gt.mrc: shape "
                       r"mismatch: the volume is \[6, 8, 10\] \[z, y, x\] but "
                       r"'datasets.mine.shape' is \[6, 8, 12\]"):
        check_config(custom_config(path, [6, 8, 12]), SCHEMA)
    # a stack: any number of tilts, its images (y, x) must match the configured (ny, nx)
    tlt = tmp_path / "ts.tlt"
    write_tlt(tlt, tilt_angles([-50, 50], 20))
    check_config(measured_config(path, tlt, [4, 8, 10]), SCHEMA)
    with pytest.raises(ConfigError, match=r"'datasets.mine.params.stack': .*gt.mrc: shape "
                       r"mismatch: the stack's images are \(y, x\) = \(8, 10\) but "
                       r"'datasets.mine.shape' gives \(ny, nx\) = \(8, 12\)"):
        check_config(measured_config(path, tlt, [4, 8, 12]), SCHEMA)


# ------------------------------------------------------------------ real Snakemake runs


def _stops_before_any_job(workdir, cfg, *texts):
    proc = run_snakemake(workdir, cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for text in texts:
        assert text in out, out[-3000:]
    assert "Traceback" not in out and "Couldn't read enough bytes" not in out, out[-3000:]
    assert not planned_jobs(proc)
    results = workdir / "results"
    assert not results.exists() or not any(results.rglob("*")), sorted(results.rglob("*"))


def test_a_truncated_custom_volume_stops_snakemake_before_any_job(tmp_path):
    cut = truncate(volume(tmp_path / "data" / "gt.mrc"), 1024 + 500)
    _stops_before_any_job(tmp_path / "run", custom_config(cut),
                          "config key 'datasets.mine.params.path'",
                          f"{cut}: truncated MRC file: 1524 bytes, but its header announces "
                          "2944")


def test_a_text_file_as_tilt_stack_stops_snakemake_before_any_job(tmp_path):
    (tmp_path / "data").mkdir()
    text = tmp_path / "data" / "ts.mrc"
    text.write_text("-60\n-54\n")
    tlt = tmp_path / "data" / "ts.tlt"
    write_tlt(tlt, [-30.0, 0.0, 30.0])
    _stops_before_any_job(tmp_path / "run", measured_config(text, tlt),
                          "config key 'datasets.mine.params.stack'",
                          f"{text}: not an MRC file (8 bytes, shorter than the 1024-byte "
                          "MRC header)")


def test_a_valid_custom_volume_plans_its_jobs(tmp_path):
    """The check lets a good file through (dry run: the phantom job is planned)."""
    path = volume(tmp_path / "data" / "gt.mrc", shape=[16, 24, 32], voxel=10.0)
    proc = run_snakemake(tmp_path / "run", custom_config(path, [16, 24, 32]), "-n")
    assert planned_jobs(proc).get("phantom") == 1
