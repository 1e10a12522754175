"""Logging and thread set-up shared by the workflow's entry-point scripts."""

from __future__ import annotations

import gc
import logging
import os
import sys
import time

_THREADS: int | None = None  # the job's thread count, once set_threads has run


def set_threads(threads: int) -> int:
    """Make torch use exactly ``threads`` intra-op threads, without importing torch.

    Jobs that never use torch (phantoms, tables, figures) must not pay its import
    (seconds on a busy machine). If torch is already imported its pool is resized;
    in any case ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` are set, which torch reads
    when it is imported later (Snakemake sets them to the job's threads too).

    Returns
    -------
    int : the thread count (at least 1)
    """
    global _THREADS
    n = _THREADS = max(1, int(threads))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(n)
    return n


def start(log_path: str | os.PathLike | None, threads: int = 1,
          name: str = "wedgebench") -> logging.Logger:
    """Send log records to ``log_path`` (and stderr) and size torch's thread pool.

    Parameters
    ----------
    log_path : path-like or None
        The job's log file (Snakemake's ``log:``).
    threads : int
        Threads the job was given; torch uses exactly these (:func:`set_threads`;
        torch is not imported here).
    name : str
        Logger name.
    """
    set_threads(threads)
    gc.freeze()  # see import_torch
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handlers = [logging.StreamHandler()]
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    logger.info("started with %d thread(s) at %s", threads, time.strftime("%Y-%m-%d %H:%M:%S"))
    return logger


def import_torch():
    """``import torch``, with its thread pool sized by :func:`set_threads` (torch caps the
    ``OMP_NUM_THREADS`` default at the physical cores; an explicit count is kept exactly).

    The objects of the modules imported so far live as long as the job, so they are
    moved out of the garbage collector's sight (:func:`gc.freeze`): with torch loaded,
    the interpreter's final collection alone takes ~0.2 s of every job.
    """
    import torch

    if _THREADS is not None and torch.get_num_threads() != _THREADS:
        torch.set_num_threads(_THREADS)
    gc.freeze()
    return torch


def pick_device(requested: str = "auto") -> str:
    """``"cuda"`` when requested or available (``"auto"``), else ``"cpu"``."""
    torch = import_torch()
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda requested but torch.cuda.is_available() is False")
    return "cuda" if torch.cuda.is_available() else "cpu"
