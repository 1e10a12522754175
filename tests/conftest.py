"""Shared fixtures: one real Snakemake run of the tiny config serves several test modules."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from workflow_utils import run_snakemake, tiny_config  # noqa: E402


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(workdir, config) of a completed, uninterrupted run of tests/configs/tiny.yaml."""
    workdir = tmp_path_factory.mktemp("tiny")
    cfg = tiny_config()
    run_snakemake(workdir, cfg)
    return workdir, cfg


@pytest.fixture(autouse=True)
def one_torch_thread():
    """In-process numerics run on one thread (the machine is small and shared)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
