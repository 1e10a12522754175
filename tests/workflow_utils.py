"""Helpers for tests that run the real Snakemake workflow in a temporary directory."""
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def tiny_config(**overrides) -> dict:
    """The tiny test config with top-level keys replaced by ``overrides``."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg.update(overrides)
    return cfg


def run_snakemake(workdir: Path, config: dict, *args, check=True, timeout=900):
    """Run ``snakemake`` on the repository's Snakefile in ``workdir`` with ``config``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))  # keep method order
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(cfg_path), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc


def planned_jobs(proc) -> dict:
    """Job counts per rule from the 'Job stats' table of a snakemake (dry) run."""
    counts, in_table = {}, False
    for line in (proc.stdout + proc.stderr).splitlines():
        parts = line.split()
        if line.startswith("job") and "count" in line:
            in_table = True
            continue
        if in_table:
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] == "total":
                    break
                counts[parts[0]] = int(parts[1])
            elif parts and not set(parts[0]) <= {"-"}:
                break
    return counts
