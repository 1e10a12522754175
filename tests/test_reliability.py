"""Interruption and determinism, proven with real Snakemake runs.

The uninterrupted run of the tiny config (fixture ``tiny_run``) is the reference. Other runs
of the same config in other directories are SIGKILLed (the whole Snakemake process group)
while a coordinate-network chunk, an IsoNet refine iteration or a metrics job is running,
then resumed with the same command. Every volume, tilt series, checkpoint and table of a
resumed run must be bit-identical to the reference: this proves at once that a killed job
leaves nothing Snakemake would take as complete, that a rerun finishes only what is
missing, and that the pipeline is deterministic on the CPU. (A SIGKILLed Snakemake leaves
its directory lock behind: ``snakemake --unlock`` releases it.)
"""
import hashlib
import os
import signal
import subprocess
import sys
import time

import mrcfile
import numpy as np
import torch
import yaml

from workflow_utils import REPO, run_snakemake


def content_digest(path):
    """sha256 of a result's content (MRC and STAR headers carry a creation time)."""
    h = hashlib.sha256()
    if path.suffix == ".mrc":
        with mrcfile.open(path, permissive=False) as m:
            h.update(np.ascontiguousarray(m.data).tobytes())
            h.update(np.float32(m.voxel_size.x).tobytes())
    elif path.suffix == ".pt":
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in sorted(state):
            h.update(key.encode())
            h.update(state[key].cpu().numpy().tobytes())
    elif path.suffix == ".npz":
        with np.load(path) as data:
            for key in sorted(data.files):
                h.update(key.encode())
                h.update(data[key].tobytes())
    elif path.suffix == ".star":  # the first line is a creation-time comment
        h.update("".join(line for line in path.read_text().splitlines(True)
                         if not line.startswith("#")).encode())
    else:
        h.update(path.read_bytes())
    return h.hexdigest()


def digests(root):
    """Content digests of every result whose content must not depend on timing."""
    return {str(p.relative_to(root)): content_digest(p)
            for p in sorted((root / "results").rglob("*"))
            if p.is_file() and p.suffix in (".mrc", ".tlt", ".star", ".pt", ".npy", ".npz")}


def kill_when(workdir, cfg, marker_glob, delay=1.0, timeout=600):
    """Start snakemake, SIGKILL its process group once a new file matches ``marker_glob``.

    Returns the newly matching paths (empty when the run ended first). Files that match
    before the start (an earlier, interrupted attempt) do not count.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    before = set(workdir.glob(marker_glob))
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
         "--configfile", str(workdir / "config.yaml"), "--cores", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            new = set(workdir.glob(marker_glob)) - before
            if new:
                time.sleep(delay)  # let the job get into its main loop
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return sorted(new)
            if proc.poll() is not None:
                return []
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return []


def assert_nothing_half_written(workdir):
    """The killed run is incomplete and every MRC it left is whole and readable."""
    assert not (workdir / "results" / "report" / "table1.csv").exists()
    for path in (workdir / "results").rglob("*.mrc"):
        with mrcfile.open(path, permissive=False) as m:
            assert m.data is not None


def resume_and_compare(workdir, reference, cfg):
    """Unlock as the README says, rerun the same command, compare with the reference."""
    run_snakemake(workdir, cfg, "--unlock")
    run_snakemake(workdir, cfg)
    ref, got = digests(reference), digests(workdir)
    assert ref.keys() == got.keys()
    differing = [k for k in ref if ref[k] != got[k]]
    assert not differing, differing
    assert (workdir / "results" / "report" / "table1.csv").is_file()


def test_killed_run_resumes_to_identical_files(tiny_run, tmp_path):
    reference, cfg = tiny_run
    workdir = tmp_path / "killed"
    assert kill_when(workdir, cfg, "results/logs/spheres/*/cn/chunk_*.log"), \
        "the run ended before a CN chunk started"
    assert_nothing_half_written(workdir)
    resume_and_compare(workdir, reference, cfg)


def test_kill_during_isonet_iteration_then_metrics_resumes(tiny_run, tmp_path):
    reference, cfg = tiny_run
    workdir = tmp_path / "killed"
    started = kill_when(workdir, cfg, "results/logs/*/*/isonet/refine_1.log", delay=0.5)
    assert started, "the run ended before an IsoNet refine iteration started"
    assert_nothing_half_written(workdir)
    # the kill came inside the iteration: it had not written all of its outputs
    assert any(not (workdir / "results" / log.parts[-4] / log.parts[-3] / "isonet" / "iter_1" /
                    "loss.csv").exists() for log in started)
    # second interruption of the resumed run, this time inside a metrics job
    run_snakemake(workdir, cfg, "--unlock")
    started = kill_when(workdir, cfg, "results/logs/*/*/*/metrics.log", delay=0.0)
    assert started, "the run ended before a metrics job started"
    assert_nothing_half_written(workdir)
    killed = [log for log in started
              if not (workdir / "results" / log.parts[-4] / log.parts[-3] / "metrics" /
                      (log.parts[-2] + ".json")).exists()]
    assert killed, "no metrics job was interrupted before writing its output"
    resume_and_compare(workdir, reference, cfg)
