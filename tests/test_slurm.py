"""The workflow on a real SLURM cluster: profiles/slurm + snakemake-executor-plugin-slurm.

A one-node cluster (munged, slurmctld, slurmd from Debian's ``slurm-wlm``/``munge``, one
/dev/null-backed GPU GRES) is brought up on this machine by ``tests/slurm/start_cluster.sh``.
One dataset of the tiny config (WBP, Fourier inversion, their metrics and Table 1, plus CN's
anchor fit as a GPU job) is built through SLURM with a copy of ``profiles/slurm/config.yaml``
(only the cluster-specific keys changed: see ``_test_profile``), and the metrics again locally
with ``--cores 2``. The test checks that every job really went through sbatch (SLURM's
job-completion log and the plugin's per-job logs), that exactly the profile's GPU rules were
given the GPU, and that the deterministic methods' metrics equal the local run's.

Needs root (slurmd runs jobs as the submitting user and the daemons need their own dirs) and
``apt-get install slurm-wlm munge`` (tried here when missing); skips with the reason otherwise.
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wedgebench.config import dataset_acquisitions

ROOT = Path(__file__).resolve().parents[1]
SLURM_SCRIPTS = ROOT / "tests" / "slurm"
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
SLURM_TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun")
# Methods whose output depends only on the input data (no training): their metrics must be
# identical whether the job ran under SLURM or locally.
DETERMINISTIC = ("imod_wbp", "eman2_fourier")
DATASET = "spheres"
RUNTIME_KEYS = ("runtime_s", "wall_s", "cpu_s")
RUN_TIMEOUT_S = 900

pytestmark = pytest.mark.slow


def _tail(path, n=60):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"<{path}: {exc}>"
    return "\n".join(lines[-n:])


def _ensure_slurm():
    """Skip unless a throw-away SLURM cluster can be started here (installing it if needed)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("SLURM test needs Linux")
    if os.geteuid() != 0:
        pytest.skip("SLURM test needs root (it starts munged/slurmctld/slurmd itself)")
    pytest.importorskip("snakemake_executor_plugin_slurm",
                        reason="snakemake-executor-plugin-slurm is not installed")
    site_conf = Path("/etc/slurm/slurm.conf")
    if site_conf.exists() and not site_conf.is_symlink():
        pytest.skip(f"{site_conf} exists: a real SLURM installation, not touching it")
    missing = [t for t in SLURM_TOOLS if shutil.which(t) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        pytest.skip(f"SLURM not installed ({', '.join(missing)} missing) and no apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                     "slurm-wlm", "munge"]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                pytest.skip(f"SLURM not installable: {' '.join(cmd)} failed:\n"
                            f"{proc.stderr[-2000:]}")
    except subprocess.TimeoutExpired:
        pytest.skip("SLURM not installable: apt-get timed out")
    missing = [t for t in SLURM_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"SLURM installed but {', '.join(missing)} still missing")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node cluster; its daemons are stopped afterwards, whatever happened."""
    _ensure_slurm()
    state = tmp_path_factory.mktemp("slurm")
    stop = [str(SLURM_SCRIPTS / "stop_cluster.sh"), str(state)]
    try:
        proc = subprocess.run(["bash", str(SLURM_SCRIPTS / "start_cluster.sh"), str(state)],
                              env=dict(os.environ, WB_SLURM_OWNER_PID=str(os.getpid())),
                              capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired as exc:
        subprocess.run(["bash", *stop], timeout=120)
        pytest.fail(f"start_cluster.sh timed out:\n{exc.stdout}\n{exc.stderr}")
    if proc.returncode != 0:
        logs = "\n".join(f"---- {p.name}\n{_tail(p)}" for p in
                         (state / "slurmctld.log", state / "slurmd.log",
                          state / "munge" / "munged.log"))
        subprocess.run(["bash", *stop], timeout=120)
        pytest.fail(f"could not start the SLURM cluster:\n{proc.stdout}\n{proc.stderr}\n{logs}")
    env_sh = (state / "env.sh").read_text()
    info = dict(re.findall(r'^export (\w+)="([^"]*)"$', env_sh, re.M), state=state)
    try:
        yield info
    finally:
        subprocess.run(["bash", *stop], timeout=120)


def _test_profile(dst: Path, partition: str, cpus: int, mem_mb: int) -> Path:
    """profiles/slurm/config.yaml with only what this one-node test cluster needs changed.

    No accounting database (the plugin checks any ``slurm_account`` with sacctmgr), the test
    partition, threads and memory capped to the node's, squeue for status (no sacct), a fast
    first status check, successful jobs' SLURM logs kept for the checks. The GPU requests stay
    as they are: the node has one (/dev/null-backed) GPU GRES.
    """
    prof = yaml.safe_load(PROFILE.read_text())
    assert prof["executor"] == "slurm"
    defaults = dict(prof["default-resources"])
    assert defaults.pop("slurm_account") == "<your_account>"
    assert defaults["slurm_partition"] == "<your_partition>"
    defaults["slurm_partition"] = partition
    prof["default-resources"] = defaults
    for res in prof["set-resources"].values():
        assert res["gpu"] == 1
        res["mem_mb"] = min(int(res["mem_mb"]), mem_mb // 2)
    # (half the node, so a GPU job leaves room for the CPU jobs beside it)
    half = max(1, cpus // 2)
    prof["set-threads"] = {rule: min(int(t), half) for rule, t in prof["set-threads"].items()}
    prof.update({
        "jobs": 4,
        "retries": 0,
        "latency-wait": 10,
        "slurm-status-command": "squeue",
        "slurm-init-seconds-before-status-checks": 2,
        "slurm-keep-successful-logs": True,
    })
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return dst


def _snakemake(workdir: Path, config: dict, extra, env, log: Path):
    """Run the workflow in ``workdir`` on ``config`` (laid out as tests/workflow_utils.py does);
    the exit status, or None on timeout."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *extra]
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, cwd=workdir, env=env, stdout=fh,
                                  stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None
    return proc.returncode


def _flat(obj, prefix=""):
    """{"a.b[2]": leaf} for nested dicts and lists."""
    if isinstance(obj, dict):
        items = ((f"{prefix}.{k}" if prefix else str(k), v) for k, v in obj.items())
    elif isinstance(obj, list):
        items = ((f"{prefix}[{i}]", v) for i, v in enumerate(obj))
    else:
        return {prefix: obj}
    out = {}
    for key, value in items:
        out.update(_flat(value, key))
    return out


def _metric_differences(a: dict, b: dict):
    """Differences between two metrics records, ignoring runtimes (wall clock and CPU seconds)."""
    fa = {k: v for k, v in _flat(a).items() if k.rsplit(".", 1)[-1] not in RUNTIME_KEYS}
    fb = {k: v for k, v in _flat(b).items() if k.rsplit(".", 1)[-1] not in RUNTIME_KEYS}
    diffs = [f"keys differ: {sorted(set(fa) ^ set(fb))}"] if set(fa) != set(fb) else []
    for k in sorted(set(fa) & set(fb)):
        x, y = fa[k], fb[k]
        if isinstance(x, float) or isinstance(y, float):
            ok = (x is not None and y is not None
                  and (math.isclose(float(x), float(y), rel_tol=1e-6, abs_tol=1e-9)
                       or (math.isnan(float(x)) and math.isnan(float(y)))))
        else:
            ok = x == y
        if not ok:
            diffs.append(f"{k}: {x!r} != {y!r}")
    return diffs


@pytest.mark.skipif(not TINY.exists(), reason=f"{TINY} missing")
def test_profile_names_real_rules(tmp_path):
    """Every rule the profile tunes exists in the workflow (a renamed rule would silently
    lose its GPU request)."""
    prof = yaml.safe_load(PROFILE.read_text())
    shutil.copyfile(TINY, tmp_path / "config.yaml")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
                           "-d", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
                           "--list-rules"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rules = set(proc.stdout.split())
    assert set(prof["set-resources"]) <= rules, sorted(set(prof["set-resources"]) - rules)
    assert set(prof["set-threads"]) <= rules, sorted(set(prof["set-threads"]) - rules)


@pytest.mark.skipif(not TINY.exists(), reason=f"{TINY} missing")
def test_workflow_on_slurm_matches_local_run(slurm_cluster, tmp_path):
    state = slurm_cluster["state"]
    env = dict(os.environ, SLURM_CONF=slurm_cluster["SLURM_CONF"],
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    profile = _test_profile(tmp_path / "profile", slurm_cluster["WB_SLURM_PARTITION"],
                            int(slurm_cluster["WB_SLURM_CPUS"]),
                            int(slurm_cluster["WB_SLURM_MEM_MB"]))
    gpu_rules = set(yaml.safe_load(PROFILE.read_text())["set-resources"])
    # One dataset, the deterministic methods' Table 1 and one GPU job (CN's anchor fit, beside
    # them): the whole tiny config is ~27 jobs per dataset in long dependency chains (IsoNet's
    # refinement iterations), too slow for CI at 10-30 s per SLURM job on 2 CPUs.
    config = yaml.safe_load(TINY.read_text())
    config["run_datasets"] = [DATASET]
    config["methods"] = list(DETERMINISTIC)
    acqs = list(dataset_acquisitions(config, DATASET))
    targets = ["results/report/table1.csv"]
    for acq in acqs:
        targets.append(f"results/{DATASET}/{acq}/cn/anchor/weights.pt")

    def cluster_logs():
        return "\n".join(f"---- {name}\n{_tail(state / name)}"
                         for name in ("slurmctld.log", "slurmd.log"))

    slurm_dir, local_dir = tmp_path / "slurm_run", tmp_path / "local_run"
    slurm_logs_dir = slurm_dir / ".snakemake" / "slurm_logs"
    slurm_log = tmp_path / "slurm_run.log"
    rc = _snakemake(slurm_dir, config, ["--profile", str(profile), *targets], env, slurm_log)
    if rc != 0:
        job_logs = "\n".join(f"---- {p}\n{_tail(p, 30)}"
                             for p in sorted(slurm_logs_dir.rglob("*.log")))
        pytest.fail(f"snakemake --profile slurm {'timed out' if rc is None else f'rc={rc}'}"
                    f"\n{_tail(slurm_log, 80)}\n{job_logs}\n{cluster_logs()}")

    # Every job went through sbatch: SLURM's completion log has each submitted job, named
    # after this run's id, COMPLETED, and the plugin kept each job's log under rule_<name>/.
    text = slurm_log.read_text()
    run_id = re.search(r"SLURM run ID: (\S+)", text).group(1)
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", text))
    jobcomp = (state / "jobcomp.txt").read_text().splitlines()
    done = {m.group(1): line for line in jobcomp
            if (m := re.search(r"\bJobId=(\d+) ", line)) and f" Name={run_id} " in line}
    assert submitted and submitted == set(done), (sorted(submitted), jobcomp, cluster_logs())
    assert all("JobState=COMPLETED" in line for line in done.values()), jobcomp
    rule_of = {p.stem: p.relative_to(slurm_logs_dir).parts[0].removeprefix("rule_")
               for p in slurm_logs_dir.rglob("*.log")}
    assert set(rule_of) == submitted, (sorted(rule_of), sorted(submitted))
    ran = set(rule_of.values())
    assert {"phantom", "tiltseries", "metrics", "table1", "cn_anchor", *DETERMINISTIC} <= ran, ran
    # The profile's GPU requests reached SLURM: the GPU rules' jobs, and only they, were
    # allocated the node's GPU (finished jobs stay in slurmctld for MinJobAge).
    shown = subprocess.run(["scontrol", "-d", "-o", "show", "job"], env=env,
                           capture_output=True, text=True, timeout=60).stdout
    gres = {}
    for line in shown.splitlines():
        if m := re.match(r"JobId=(\d+) ", line):
            g = re.search(r"\bJOB_GRES=(\S+)", line)
            gres[m.group(1)] = g.group(1) if g else None
    for job, rule in rule_of.items():
        assert (gres.get(job) == "gpu:1") == (rule in gpu_rules), (rule, job, gres.get(job))

    local_log = tmp_path / "local_run.log"
    metrics = [f"results/{DATASET}/{acq}/metrics/{m}.json" for acq in acqs for m in DETERMINISTIC]
    rc = _snakemake(local_dir, config, ["--cores", "2", *metrics], env, local_log)
    assert rc == 0, _tail(local_log, 80)
    for rel in metrics:
        a = json.loads((slurm_dir / rel).read_text())
        b = json.loads((local_dir / rel).read_text())
        diffs = _metric_differences(a, b)
        assert not diffs, (rel, diffs)
