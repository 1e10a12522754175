"""Per-job overhead: what a Snakemake job costs beyond the computation it exists for.

Three measurements (each a median over ``--repeats`` runs; the machine is shared, so
compare medians and ratios, not single seconds):

``imports``
    For every ``scripts/*.py``: a fresh ``python`` process runs the script's top-level
    imports and ``runlog.start`` (every script's first call; and ``runlog.pick_device``,
    which imports torch, where the script calls it) and exits. Reported: the wall
    time of the whole process (as the parent sees it), the seconds spent in those imports
    inside it, and which heavy libraries (torch, scipy, pandas, skimage, matplotlib,
    gemmi, starfile) ended up loaded. ``python -c pass`` and ``import torch`` are the
    reference rows.

``refine``
    One IsoNet refine iteration (iteration 2 of the default spheres settings on a blob
    tomogram: reads iteration 1's model and filled cubes) timed two ways, alternately:
    *in-process* (``refine.refine_iteration`` on arrays already in memory, torch already
    imported and warmed up: the computation alone) and *as a job* (a fresh process that
    unpickles a real ``snakemake`` object exactly as Snakemake's script preamble does and
    runs ``scripts/isonet_refine.py`` end to end: imports, reading the STAR file, cubes,
    model and angles, the iteration, writing ``model.pt``, the filled cubes and
    ``loss.csv``). The ratio job / in-process is the overhead factor (target ≤ 1.5).

``snakemake``
    A throwaway Snakefile in a temporary folder with N trivial jobs of two kinds: a
    ``script:`` that only touches its output and a ``shell:`` that runs ``python -c
    pass`` and touches it. The ``benchmark:`` seconds of the script jobs minus those of
    the shell jobs is the cost of the script directive's preamble (unpickling the
    ``snakemake`` object, importing Snakemake's modules); the run's wall time minus a
    dry run's, over the job count, is what a job costs Snakemake's main process in
    all (scheduling, metadata, benchmark), which no ``benchmark:`` file shows.

Run: ``python benchmarks/bench_overhead.py [--repeats 5] [--threads 2] [--parts imports
refine snakemake]`` (about 2 minutes on an idle 2-core machine).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
HEAVY = ("torch", "scipy", "pandas", "skimage", "matplotlib", "gemmi", "starfile")

PROBE = """
import json, sys, time
t0 = time.perf_counter()
{imports}
from wedgebench import runlog
runlog.start(None, 1)
{device}
t1 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0,
                  "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def script_imports(path: Path) -> str:
    """The top-level import statements of a script, as source code."""
    tree = ast.parse(path.read_text())
    return "\n".join(ast.unparse(node) for node in tree.body
                     if isinstance(node, (ast.Import, ast.ImportFrom)))


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_wall(cmd, cpu: list | None = None, **kwargs) -> tuple[float, str]:
    """``(wall seconds, stdout)`` of a subprocess (stderr discarded); its CPU seconds
    (user + system, all threads) are appended to ``cpu`` when given."""
    c, t = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          check=False, **kwargs)
    wall = time.perf_counter() - t
    if cpu is not None:
        cpu.append(_children_cpu() - c)
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def bench_imports(repeats: int) -> list[dict]:
    rows = []
    refs = [("(python -c pass)", "pass"), ("(import torch)", "import torch")]
    for name, code in refs:
        walls = [run_wall([sys.executable, "-c", code])[0] for _ in range(repeats)]
        rows.append(dict(script=name, wall_s=statistics.median(walls), import_s=None,
                         heavy=["torch"] if "torch" in code else []))
    for path in sorted(SCRIPTS.glob("*.py")):
        # scripts of torch jobs call runlog.pick_device, which imports torch
        device = "runlog.pick_device('cpu')" if "pick_device" in path.read_text() else ""
        code = PROBE.format(imports=script_imports(path), heavy=HEAVY, device=device)
        walls, inner, heavy = [], [], []
        for _ in range(repeats):
            wall, out = run_wall([sys.executable, "-c", code])
            rec = json.loads(out.strip().splitlines()[-1])
            walls.append(wall)
            inner.append(rec["import_s"])
            heavy = rec["heavy"]
        rows.append(dict(script=path.name, wall_s=statistics.median(walls),
                         import_s=statistics.median(inner), heavy=heavy))
    return rows


# --- refine: in-process vs job -----------------------------------------------------------

def blob_tomogram(shape, seed=0, density=2e-3):
    """Random Gaussian blobs on a zero background (as ``bench_isonet.py``)."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    vol = np.zeros(shape, np.float32)
    n = max(4, int(density * np.prod(shape)))
    np.add.at(vol, tuple(rng.integers(0, s, n) for s in shape), 1.0)
    return gaussian_filter(vol, 2.0) + rng.normal(0, 1e-3, shape).astype(np.float32)


def refine_setup(work: Path, dataset: str, iteration: int, seed: int = 1) -> dict:
    """Extract subtomograms of a blob tomogram, run iterations 1..N−1 into ``work``, and
    return the job description of iteration N (paths, params)."""
    import yaml

    from wedgebench.config import isonet_settings
    from wedgebench.geometry import tilt_angles
    from wedgebench.io import write_tlt
    from wedgebench.recon.isonet import extract, refine

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    iso = isonet_settings(cfg["isonet"], dataset)
    tomo = blob_tomogram(tuple(cfg["datasets"][dataset]["shape"]))
    ex = extract.extract_subtomos(tomo, iso["n_subtomos"], iso["cube_size"], iso["crop_size"],
                                  False, seed, iso["percentiles"], iso["mask"],
                                  normalisation=iso["normalisation"])
    star, stack, tlt = work / "subtomos.star", work / "subtomos.mrc", work / "tilt.tlt"
    extract.write_subtomos(star, stack, ex["cubes"], ex["centres"], iso["cube_size"], "blob",
                           False, 1.0)
    write_tlt(tlt, tilt_angles([-60, 60], 2))
    opts = refine.train_options(iso)
    noise = iso["noise"]

    def level(it):
        return refine.noise_level(it, noise["start_iter"], noise["every"], noise["levels"])

    def outputs(it):
        d = work / f"iter_{it}"
        return dict(model=str(d / "model.pt"), filled=str(d / "subtomos.mrc"),
                    loss=str(d / "loss.csv"))

    for it in range(1, iteration):
        prev = outputs(it - 1) if it > 1 else None
        o = outputs(it)
        refine.refine_iteration_files(star, tlt, it, opts, o["model"], o["filled"], o["loss"],
                                      prev_model=prev and prev["model"],
                                      prev_filled=prev and prev["filled"], level=level(it),
                                      seed=seed)
    prev = outputs(iteration - 1) if iteration > 1 else {"model": [], "filled": []}
    return dict(input=dict(star=str(star), stack=str(stack), tlt=str(tlt),
                           prev_model=prev["model"], prev_filled=prev["filled"]),
                output=outputs(iteration),
                params=dict(iteration=iteration, noise_level=level(iteration), opts=opts,
                            seed=seed, device="cpu"),
                log=str(work / f"refine_{iteration}.log"))


def pickled_snakemake(job: dict, threads: int, path: Path) -> None:
    """Pickle a real ``snakemake`` object for ``job`` as Snakemake's script directive does."""
    import pickle

    from snakemake.iocontainers import (InputFiles, Log, OutputFiles, Params, ResourceList,
                                        Wildcards)
    from snakemake.script import Snakemake

    sm = Snakemake(InputFiles(fromdict=job["input"]), OutputFiles(fromdict=job["output"]),
                   Params(fromdict=job["params"]), Wildcards(fromdict={}), threads,
                   ResourceList(fromdict={"_cores": threads}), Log([job["log"]]), {},
                   "isonet_refine", 0, str(SCRIPTS))
    path.write_bytes(pickle.dumps(sm, protocol=4))


# What Snakemake's script directive runs (its preamble, then the script's own code).
CHILD = """
import sys
import pickle
snakemake = pickle.loads(open({pickle!r}, 'rb').read())
from snakemake.logging import logger
from snakemake.iocontainers import Snakemake
exec(compile(open({script!r}).read(), {script!r}, 'exec'))
"""


def bench_refine(repeats: int, threads: int, dataset: str = "spheres",
                 iteration: int = 2) -> dict:
    import numpy as np
    import torch

    from wedgebench.io import read_tlt
    from wedgebench.recon.isonet import refine
    from wedgebench.recon.isonet.extract import read_stack, read_subtomos

    torch.set_num_threads(threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))  # as Snakemake sets it for a job
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp:
        work = Path(tmp)
        job = refine_setup(work, dataset, iteration)
        pkl = work / "snakemake.pickle"
        pickled_snakemake(job, threads, pkl)
        child = CHILD.format(pickle=str(pkl), script=str(SCRIPTS / "isonet_refine.py"))
        raw = read_subtomos(job["input"]["star"])[0]
        angles = read_tlt(job["input"]["tlt"])
        p = job["params"]
        prev_state = refine.read_model(job["input"]["prev_model"]) if iteration > 1 else None
        prev_filled = read_stack(job["input"]["prev_filled"])[0] if iteration > 1 else None
        opts = refine.TrainOptions(**p["opts"])

        def in_process(cpu=None):
            c, t = time.process_time(), time.perf_counter()
            res = refine.refine_iteration(raw, angles, iteration, opts, filled=prev_filled,
                                          state=prev_state, level=p["noise_level"],
                                          seed=p["seed"])
            if cpu is not None:
                cpu.append(time.process_time() - c)
            return time.perf_counter() - t, res

        def in_process_files():
            """The job's code path in this (warm) process: read, iterate, write."""
            t = time.perf_counter()
            o = {k: str(work / "inproc" / Path(v).name) for k, v in job["output"].items()}
            inp = job["input"]
            refine.refine_iteration_files(inp["star"], inp["tlt"], iteration, p["opts"],
                                          o["model"], o["filled"], o["loss"],
                                          prev_model=inp["prev_model"] or None,
                                          prev_filled=inp["prev_filled"] or None,
                                          level=p["noise_level"], seed=p["seed"])
            return time.perf_counter() - t

        _, ref = in_process()  # warm-up (first-call allocations, kernel selection)
        inproc, files, jobs, inproc_cpu, job_cpu = [], [], [], [], []
        for _ in range(repeats):
            inproc.append(in_process(inproc_cpu)[0])
            files.append(in_process_files())
            jobs.append(run_wall([sys.executable, "-c", child], cpu=job_cpu, env=env)[0])
        # the job's files equal the in-process result (same seed, same threads)
        filled = read_stack(job["output"]["filled"])[0]
        state = refine.read_model(job["output"]["model"])
        same = bool(np.array_equal(filled, ref["filled"]) and
                    all(torch.equal(state[k], ref["state"][k]) for k in ref["state"]))
    ratios = [j / i for i, j in zip(inproc, jobs)]
    return dict(dataset=dataset, iteration=iteration, threads=threads,
                in_process_s=statistics.median(inproc), job_s=statistics.median(jobs),
                in_process_files_s=statistics.median(files),
                ratio=statistics.median(jobs) / statistics.median(inproc),
                pair_ratio_median=statistics.median(ratios), in_process_all=inproc,
                job_all=jobs, in_process_cpu_s=statistics.median(inproc_cpu),
                job_cpu_s=statistics.median(job_cpu), job_equals_in_process=same)


# --- Snakemake's script preamble and scheduling -------------------------------------------

SNAKEFILE = """
N = range({n})
rule all:
    input: expand("out/script_{{i}}", i=N), expand("out/shell_{{i}}", i=N)
rule script_job:
    output: "out/script_{{i}}"
    benchmark: "bench/script_{{i}}.tsv"
    script: "noop.py"
rule shell_job:
    output: "out/shell_{{i}}"
    benchmark: "bench/shell_{{i}}.tsv"
    shell: "{python} -c pass && touch {{output}}"
"""


def bench_snakemake(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_smk_") as tmp:
        d = Path(tmp)
        (d / "Snakefile").write_text(SNAKEFILE.format(n=n, python=sys.executable))
        (d / "noop.py").write_text("open(snakemake.output[0], 'w').close()\n")
        cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "-d", str(d), "-s",
               str(d / "Snakefile")]
        dry, _ = run_wall(cmd + ["-n"])
        wall, _ = run_wall(cmd)
        secs = {}
        for kind in ("script", "shell"):
            vals = []
            for f in sorted((d / "bench").glob(f"{kind}_*.tsv")):
                vals.append(float(f.read_text().splitlines()[1].split("\t")[0]))
            secs[kind] = statistics.median(vals)
    jobs = 2 * n
    return dict(jobs=jobs, wall_s=wall, dry_s=dry, per_job_s=(wall - dry) / jobs,
                script_s=secs["script"], shell_python_s=secs["shell"],
                preamble_s=secs["script"] - secs["shell"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iteration", type=int, default=2)
    ap.add_argument("--dataset", default="spheres")
    ap.add_argument("--snakemake-jobs", type=int, default=8)
    ap.add_argument("--parts", nargs="+", default=["imports", "refine", "snakemake"],
                    choices=["imports", "refine", "snakemake"])
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of "
          f"{args.repeats}")
    if "imports" in args.parts:
        print("\n== imports + runlog.start per script (fresh process) ==")
        print(f"{'script':24s} {'process s':>9s} {'imports s':>9s}  heavy modules loaded")
        for r in bench_imports(args.repeats):
            imp = "" if r["import_s"] is None else f"{r['import_s']:9.2f}"
            print(f"{r['script']:24s} {r['wall_s']:9.2f} {imp:>9s}  {' '.join(r['heavy'])}")
    if "refine" in args.parts:
        print(f"\n== IsoNet refine iteration {args.iteration} ({args.dataset} defaults, "
              f"{args.threads} threads): in-process vs job ==")
        r = bench_refine(args.repeats, args.threads, args.dataset, args.iteration)
        print(f"in-process {r['in_process_s']:.2f} s, job {r['job_s']:.2f} s, "
              f"ratio {r['ratio']:.2f} (median of per-pair ratios "
              f"{r['pair_ratio_median']:.2f}); job files == in-process result: "
              f"{r['job_equals_in_process']}")
        print(f"in-process from and to files (refine_iteration_files, warm process) "
              f"{r['in_process_files_s']:.2f} s: job ratio "
              f"{r['job_s'] / r['in_process_files_s']:.2f}")
        print(f"CPU seconds (all threads): in-process {r['in_process_cpu_s']:.2f}, job "
              f"{r['job_cpu_s']:.2f}, ratio {r['job_cpu_s'] / r['in_process_cpu_s']:.2f}")
        print("  in-process:", " ".join(f"{x:.2f}" for x in r["in_process_all"]))
        print("  job:       ", " ".join(f"{x:.2f}" for x in r["job_all"]))
    if "snakemake" in args.parts:
        print(f"\n== Snakemake: {args.snakemake_jobs} trivial jobs each of script: and "
              "shell: (python -c pass), --cores 1 ==")
        r = bench_snakemake(args.snakemake_jobs)
        print(f"benchmark s (median): script {r['script_s']:.3f}, shell python "
              f"{r['shell_python_s']:.3f} -> script preamble {r['preamble_s']:.3f} s")
        print(f"whole run {r['wall_s']:.1f} s, dry run (parse + DAG) {r['dry_s']:.1f} s: "
              f"{r['per_job_s']:.2f} s of wall time per job, benchmark seconds included")


if __name__ == "__main__":
    main()
