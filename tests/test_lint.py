"""The Snakemake workflow catalog's checks: `snakemake --lint` and `snakefmt --check`."""
import shutil
import subprocess
import sys

import pytest

from workflow_utils import REPO


def test_snakemake_lint_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--configfile",
                           str(REPO / "config.yaml")], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Congratulations, your workflow is in a good condition" in out, out[-4000:]


def test_snakefmt_would_change_nothing():
    exe = shutil.which("snakefmt")
    if exe is None:
        pytest.fail("snakefmt is not installed (pip install -e '.[test]' installs it)")
    proc = subprocess.run([exe, "--check", "."], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
