"""Reconstructions made by other programs: your own method run as a command or a Python
script (``kind: external``), or a tomogram reconstructed elsewhere (``kind: precomputed``).

Whatever another program wrote is checked by :func:`load_checked` before anything
downstream sees it: an MRC of the right shape, a floating-point mode, finite values.
The workflow then writes the checked volume atomically under ``recon/``, so a bad or
missing output never leaves a file there.
"""

from __future__ import annotations

import os
import runpy
import shlex
import subprocess
import sys
import types
from pathlib import Path

import numpy as np


class MethodError(RuntimeError):
    """An external method failed or wrote something unusable; the message names it."""


def format_command(template: str, values: dict) -> str:
    """``template`` with every ``{placeholder}`` replaced by its shell-quoted value.

    Parameters
    ----------
    template : str
        A ``str.format`` template (``{{`` and ``}}`` are literal braces).
    values : dict
        Placeholder values; each is converted with ``str`` and quoted with
        :func:`shlex.quote`, so paths with spaces or shell characters are safe.

    Raises
    ------
    KeyError
        The template names a placeholder that ``values`` lacks.
    """
    return template.format(**{k: shlex.quote(str(v)) for k, v in values.items()})


def run_command(method: str, command: str, log_path, env: dict | None = None) -> None:
    """Run a shell command, its stdout and stderr appended to ``log_path``.

    Raises
    ------
    MethodError
        The command exits non-zero (the message names the method, the exit status and the
        log).
    """
    with open(log_path, "a") as log:
        log.write(f"$ {command}\n")
        log.flush()
        proc = subprocess.run(command, shell=True, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise MethodError(f"method {method!r}: command exited with status {proc.returncode} "
                          f"(its output is in {log_path}): {command}")


def run_script(method: str, script, inputs: dict, output, params: dict, threads: int,
               log_path, wildcards: dict) -> None:
    """Run a Python file the way Snakemake runs ``script:``: with a global ``snakemake``
    object whose ``input``, ``output``, ``params``, ``log`` and ``wildcards`` hold the
    paths and values (as attributes; ``output[0]`` and ``log[0]`` index too).

    Raises
    ------
    MethodError
        The script raised (the message names the method and the script; the original
        exception is chained).
    """
    ns = types.SimpleNamespace
    sm = ns(input=ns(**inputs), output=[str(output)], params=ns(**params), threads=threads,
            log=[str(log_path)], wildcards=ns(**wildcards))
    try:
        runpy.run_path(str(script), init_globals={"snakemake": sm}, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise MethodError(f"method {method!r}: script {script} exited with {exc.code}")
    except Exception as exc:
        raise MethodError(f"method {method!r}: script {script} failed: "
                          f"{type(exc).__name__}: {exc}") from exc


def load_checked(method: str, path, shape) -> tuple[np.ndarray, float]:
    """Read another program's reconstruction and check it.

    Parameters
    ----------
    method : str
        The method's name (for messages).
    path : path-like
        The MRC it wrote.
    shape : tuple of int
        The expected ``[z, y, x]`` shape.

    Returns
    -------
    (volume float32, voxel size in Å or 0 if the header has none)

    Raises
    ------
    MethodError
        Missing file, not an MRC, not 3-D, wrong shape, an integer or complex mode, or
        NaN/Inf values; the message names the method, the file and the problem.
    """
    import mrcfile

    path = Path(path)
    where = f"method {method!r}: output {path}"
    if not path.is_file():
        raise MethodError(f"{where} was not written")
    try:
        with mrcfile.open(path, permissive=False) as mrc:
            data = np.asarray(mrc.data)
            voxel = float(mrc.voxel_size.x)
    except Exception as exc:  # mrcfile raises ValueError and others on junk
        raise MethodError(f"{where} is not a readable MRC file ({exc})") from exc
    if data is None or data.ndim != 3:
        raise MethodError(f"{where} is not a 3-D volume (shape "
                          f"{None if data is None else data.shape})")
    if tuple(data.shape) != tuple(shape):
        raise MethodError(f"{where} has shape {tuple(data.shape)} [z, y, x]; expected "
                          f"{tuple(shape)}")
    if not np.issubdtype(data.dtype, np.floating):
        raise MethodError(f"{where} has data type {data.dtype}; write float32 (MRC mode 2)")
    bad = ~np.isfinite(data)
    if bad.any():
        raise MethodError(f"{where} has {int(bad.sum())} NaN/Inf values")
    return data.astype(np.float32), voxel


def command_values(inputs: dict, output, thickness: int, voxel_size: float, threads: int,
                   workdir) -> dict:
    """The placeholder values of an external method's command template (paths absolute,
    so the command may change directory, e.g. ``cd {workdir} && ...``)."""
    values = {"tiltseries": os.path.abspath(inputs["tiltseries"]),
              "tlt": os.path.abspath(inputs["tlt"]),
              "thickness": int(thickness), "voxel_size": f"{float(voxel_size):g}",
              "output": os.path.abspath(output), "threads": int(threads),
              "workdir": os.path.abspath(workdir), "python": sys.executable}
    if inputs.get("tomogram"):
        values["tomogram"] = os.path.abspath(inputs["tomogram"])
    return values

