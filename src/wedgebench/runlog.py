"""Logging and thread set-up shared by the workflow's entry-point scripts."""

from __future__ import annotations

import logging
import os
import time


def start(log_path: str | os.PathLike | None, threads: int = 1,
          name: str = "wedgebench") -> logging.Logger:
    """Send log records to ``log_path`` (and stderr) and size torch's thread pool.

    Parameters
    ----------
    log_path : path-like or None
        The job's log file (Snakemake's ``log:``).
    threads : int
        Threads the job was given; torch uses exactly these.
    name : str
        Logger name.
    """
    import torch

    torch.set_num_threads(max(1, int(threads)))
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


def pick_device(requested: str = "auto") -> str:
    """``"cuda"`` when requested or available (``"auto"``), else ``"cpu"``."""
    import torch

    if requested == "cpu":
        return "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda requested but torch.cuda.is_available() is False")
    return "cuda" if torch.cuda.is_available() else "cpu"
