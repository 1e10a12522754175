"""Report figures (matplotlib, Agg backend, PNG): orthoslices, FSC curves, sweeps.

Every function takes data and an output path and writes its PNG(s) atomically. The
figures follow the paper: orthoslices as in its Figure 3, full /
present-region / missing-region FSC as in Figure 4, metric versus tilt step or range
as in Figure 5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wedgebench.io import InputError, atomic_path

FSC_PANELS = (("full", "All of Fourier space"),
              ("present", "Present (measured) region"),
              ("missing", "Missing-wedge region"))

SWEEP_AXES = {"tilt_step": "tilt step (°)", "tilt_range": "maximum tilt angle ±(°)",
              "dose_total": "total dose (e⁻/Å²)"}

#: Axis labels (with units) of the table's and the metric records' columns.
METRIC_LABELS = {"PSNR": "PSNR (dB)", "SSIM": "SSIM", "VIF": "VIF",
                 "psnr": "PSNR (dB)", "ssim": "SSIM", "vif": "VIF",
                 "reprojection_error": "reprojection error (normalised RMS)",
                 "runtime_min": "runtime (min)", "wall_min": "wall time (min)",
                 "fsc_full_auc": "FSC area, all", "fsc_present_auc": "FSC area, present",
                 "fsc_missing_auc": "FSC area, missing wedge",
                 "fsc_full_res_A": "FSC 0.5 resolution (Å)",
                 "sphere_zx_ratio": "sphere z/x extent ratio"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_png) -> None:
    plt = _pyplot()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _display_volumes(volumes: dict, normalise: bool) -> dict:
    """Volumes for display: each non-reference one affinely fitted to the reference."""
    from wedgebench.metrics.normalise import affine_fit

    names = list(volumes)
    ref = np.asarray(volumes[names[0]], dtype=np.float64)
    out = {names[0]: ref}
    for name in names[1:]:
        vol = np.asarray(volumes[name], dtype=np.float64)
        if vol.shape != ref.shape:
            raise InputError(f"volume {name!r} has shape {vol.shape}, reference "
                             f"{names[0]!r} has {ref.shape}")
        if normalise:
            a, b = affine_fit(vol, ref)
            vol = a * vol + b
        out[name] = vol
    return out


def orthoslices(volumes: dict, out_png, title: str = "", normalise: bool = True,
                centre=None) -> None:
    """Central xy, xz and yz slices of several volumes, one row per volume.

    Grey scale: the first volume is the reference (the ground truth, or any volume
    when there is none). With ``normalise`` (default) every other volume is first
    mapped by its least-squares affine fit to the reference (the ``"fair"``
    convention of :mod:`wedgebench.metrics.normalise`), and all panels share one
    grey scale spanning the reference's minimum to maximum, so a brighter or darker
    region means a real intensity difference after the best calibration.

    Parameters
    ----------
    volumes : dict of name -> ndarray ``[z, y, x]``
        Ordered; all the same shape; the first is the reference.
    out_png : path-like
    title : str
    normalise : bool
        Fit each volume to the reference before display.
    centre : (int, int, int), optional
        The (z, y, x) voxel the three slices pass through; default the volume centre.
    """
    if not volumes:
        raise InputError("no volumes to show")
    vols = _display_volumes(volumes, normalise)
    ref = next(iter(vols.values()))
    if ref.ndim != 3:
        raise InputError(f"volumes must be 3-D, got shape {ref.shape}")
    nz, ny, nx = ref.shape
    cz, cy, cx = (nz // 2, ny // 2, nx // 2) if centre is None else map(int, centre)
    if not (0 <= cz < nz and 0 <= cy < ny and 0 <= cx < nx):
        raise InputError(f"slice centre {(cz, cy, cx)} outside volume {ref.shape}")
    vmin, vmax = float(ref.min()), float(ref.max())
    if vmax <= vmin:
        vmax = vmin + 1.0
    panels = ((f"xy (z = {cz})", lambda v: v[cz], "x (voxels)", "y (voxels)"),
              (f"xz (y = {cy})", lambda v: v[:, cy, :], "x (voxels)", "z (voxels)"),
              (f"yz (x = {cx})", lambda v: v[:, :, cx], "y (voxels)", "z (voxels)"))
    plt = _pyplot()
    widths = [nx, nx, ny]
    row_h = 2.6
    fig_w = row_h * sum(widths) / max(ny, nz) + 1.8
    fig, axes = plt.subplots(len(vols), 3, squeeze=False, constrained_layout=True,
                             figsize=(min(max(fig_w, 7.0), 20.0), row_h * len(vols) + 0.6),
                             gridspec_kw={"width_ratios": widths})
    image = None
    for r, (name, vol) in enumerate(vols.items()):
        for c, (label, cut, xlab, ylab) in enumerate(panels):
            ax = axes[r, c]
            image = ax.imshow(cut(vol), cmap="gray", vmin=vmin, vmax=vmax,
                              origin="lower", interpolation="nearest")
            if r == 0:
                ax.set_title(label)
            if r == len(vols) - 1:
                ax.set_xlabel(xlab)
            ax.set_ylabel(f"{name}\n{ylab}" if c == 0 else ylab)
            ax.tick_params(labelsize=7)
    fig.colorbar(image, ax=axes, shrink=0.8,
                 label="intensity (reference scale)" if normalise else "intensity")
    if title:
        fig.suptitle(title)
    _save(fig, out_png)


def fsc_figure(curves: dict, out_png, title: str = "", threshold: float = 0.5,
               panels=None, ylabel: str = "FSC with ground truth") -> None:
    """Full, present-region and missing-region FSC of several methods (3 panels).

    Parameters
    ----------
    curves : dict of method -> dict
        Each value has ``"frequency"`` (1/Å) and ``"full"``, ``"present"``,
        ``"missing"`` (FSC per shell, None/NaN allowed): the ``"fsc"`` entry of
        :func:`wedgebench.metrics.compute_metrics`. A missing region is skipped.
    out_png : path-like
    title : str
    threshold : float
        Drawn as a dashed horizontal line (0.5 against a ground truth).
    panels : list of (key, panel title), optional
        Which curves to draw (default: full, present, missing).
    ylabel : str
    """
    panels = list(FSC_PANELS if panels is None else panels)
    if not curves:
        raise InputError("no FSC curves to plot")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.7 * len(panels), 4.2), sharey=True,
                             squeeze=False, constrained_layout=True)
    axes = axes[0]
    for ax, (region, label) in zip(axes, panels):
        for method, c in curves.items():
            if region not in c:
                continue
            freq = np.asarray(c["frequency"], dtype=float)
            vals = np.asarray(c[region], dtype=float)
            ax.plot(freq, vals, marker=".", markersize=3, linewidth=1.4, label=str(method))
        ax.axhline(threshold, color="0.5", linestyle="--", linewidth=0.8,
                   label=f"FSC = {threshold:g}")
        ax.axhline(0, color="0.8", linewidth=0.6)
        ax.set_title(label)
        ax.set_xlabel("spatial frequency (1/Å)")
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[0].set_ylim(-0.2, 1.05)
    axes[0].legend(loc="lower left", fontsize=8)
    if title:
        fig.suptitle(title)
    _save(fig, out_png)


def sweep_figure(df, x: str, metric, out_png, title: str = "", max_columns: int = 3,
                 reference=None) -> None:
    """Metric versus tilt step or tilt range, one line per method (Figure 5 style), one
    panel per metric in a grid of at most ``max_columns`` columns.

    Parameters
    ----------
    df : DataFrame
        Columns ``method``, ``x`` and the metric column(s); rows sharing method and
        ``x`` are averaged (e.g. replicates).
    x : {"tilt_step", "tilt_range"} or another column
        ``tilt_range`` is the maximum tilt angle of a symmetric range, in degrees.
    metric : str or list of str
        One panel per metric (e.g. ``"PSNR"`` or ``["PSNR", "SSIM", "VIF"]``).
    out_png : path-like
    title : str
    reference : DataFrame, optional
        Rows drawn as one dashed horizontal line per method (the mean over its rows),
        e.g. the noise-free acquisition beside a dose sweep.
    """
    metrics = [metric] if isinstance(metric, str) else list(metric)
    missing = [c for c in ["method", x, *metrics] if c not in df.columns]
    if missing:
        raise InputError(f"sweep table lacks columns {missing}; has {list(df.columns)}")
    if df.empty:
        raise InputError("sweep table is empty")
    plt = _pyplot()
    ncols = min(len(metrics), max_columns)
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, constrained_layout=True,
                             figsize=(4.0 * ncols + 0.8, 3.3 * nrows))
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    numeric = df.assign(**{m: pd.to_numeric(df[m], errors="coerce") for m in metrics})
    table = numeric.groupby(["method", x], sort=True)[metrics].mean().reset_index()
    for ax, m in zip(axes.flat, metrics):
        for method in pd.unique(df["method"]):
            sub = table[table["method"] == method].sort_values(x)
            line, = ax.plot(sub[x], sub[m], marker="o", linewidth=1.6, label=str(method))
            if reference is not None:
                ref = pd.to_numeric(reference.loc[reference["method"] == method, m],
                                    errors="coerce").mean()
                if np.isfinite(ref):
                    ax.axhline(ref, color=line.get_color(), linestyle="--", linewidth=1.0)
        ax.set_xlabel(SWEEP_AXES.get(x, x))
        ax.set_ylabel(METRIC_LABELS.get(m, m))
        ax.set_title(METRIC_LABELS.get(m, m).split(" (")[0])
        ax.set_xticks(sorted(table[x].unique()))
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8, title="method")
    if title:
        fig.suptitle(title)
    _save(fig, out_png)


#: Metric-record columns plotted by :func:`sweep_figures`, when present.
SWEEP_METRICS = ("psnr", "ssim", "vif", "fsc_missing_auc", "fsc_present_auc",
                 "reprojection_error")


def sweep_figures(records, out_dir, dataset: str = "") -> list:
    """All Figure 5-style plots of one dataset's acquisition sweep.

    The acquisitions are described by the metric records' ``tilt_min``, ``tilt_max``
    and ``tilt_step`` columns. ``tilt_range`` is the half-span
    ``(tilt_max − tilt_min) / 2`` (60 for ±60°). Two sweeps are drawn when present:

    * ``vs_tilt_range.png``: metrics against tilt range, among the acquisitions that
      share the most common tilt step (the paper: ±60…±40° at 2°);
    * ``vs_tilt_step.png``: metrics against tilt step, among those sharing the most
      common tilt range (the paper: 1, 2, 4, 8° within ±60°);
    * ``vs_dose_total.png``: metrics against total dose (records' ``dose_total``), among
      acquisitions of the most common tilt scheme that differ only in dose (records'
      ``model``), with that scheme's noise-free acquisition as dashed lines.

    The tilt sweeps use the acquisitions of the most common acquisition model and dose.

    A sweep is drawn only if it has at least two distinct values. Each figure has one
    panel per metric of :data:`SWEEP_METRICS` that has a finite value.

    Parameters
    ----------
    records : DataFrame
        One row per reconstruction (the metrics JSON of
        :func:`wedgebench.metrics.run.evaluate` plus ``method``).
    out_dir : path-like
        Created if needed.
    dataset : str
        Used in the titles.

    Returns
    -------
    list of Path
        The PNG files written (possibly empty).
    """
    need = ["method", "tilt_min", "tilt_max", "tilt_step"]
    missing = [c for c in need if c not in records.columns]
    if missing:
        raise InputError(f"sweep records lack columns {missing}")
    df = records.copy()
    df["tilt_step"] = df["tilt_step"].astype(float).round(3)
    df["tilt_range"] = ((df["tilt_max"].astype(float) - df["tilt_min"].astype(float))
                        / 2).round(3)
    metrics = [m for m in SWEEP_METRICS
               if m in df.columns and np.isfinite(pd.to_numeric(df[m], errors="coerce")).any()]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if not metrics:
        return written
    model = df["model"].astype(str) if "model" in df.columns else pd.Series("none", df.index)
    dose = (pd.to_numeric(df["dose_total"], errors="coerce") if "dose_total" in df.columns
            else pd.Series(np.nan, df.index))
    df["_physics"] = model + "|" + dose.map(lambda v: "none" if pd.isna(v) else f"{v:g}")
    tilt = df[df["_physics"] == df["_physics"].mode().iloc[0]]
    for x, fixed in (("tilt_range", "tilt_step"), ("tilt_step", "tilt_range")):
        value = tilt[fixed].mode().iloc[0]
        sub = tilt[tilt[fixed] == value]
        if sub[x].nunique() < 2:
            continue
        held = f"tilt step {value:g}°" if fixed == "tilt_step" else f"tilt range ±{value:g}°"
        out = out_dir / f"vs_{x}.png"
        sweep_figure(sub, x, metrics, out, f"{dataset}: {held}" if dataset else held)
        written.append(out)
    # dose sweep: acquisitions of the most common tilt scheme and model (everything but the
    # dose) with at least two doses; the noise-free acquisition of that scheme is dashed
    df["dose_total"] = dose
    df["_scheme"] = [f"{r:g}|{s:g}" for r, s in zip(df["tilt_range"], df["tilt_step"])]
    dosed = df[dose.notna()]
    if not dosed.empty:
        scheme = dosed["_scheme"].mode().iloc[0]
        sub = dosed[dosed["_scheme"] == scheme]
        sub = sub[sub["model"].astype(str) == sub["model"].astype(str).mode().iloc[0]]
        if sub["dose_total"].nunique() >= 2:
            free = df[(df["_scheme"] == scheme) & dose.isna()
                      & (model == "none")]
            held = (f"tilt range ±{sub['tilt_range'].iloc[0]:g}° step "
                    f"{sub['tilt_step'].iloc[0]:g}°; dashed: noise-free")
            out = out_dir / "vs_dose_total.png"
            sweep_figure(sub, "dose_total", metrics, out,
                         f"{dataset}: {held}" if dataset else held,
                         reference=free if not free.empty else None)
            written.append(out)
    return written
