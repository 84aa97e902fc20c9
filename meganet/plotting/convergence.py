"""Convergence plots: loss and validation metric vs. iteration, work units and wall time."""

from __future__ import annotations

import math

import numpy as np

from ..core.validation import check_bool
from ._mpl import finish_figure, new_figure, require_matplotlib

__all__ = ["convergence", "compare_runs"]


def _columns(history):
    """History (``meganet.optimizers.History``), dict of columns, or list of row dicts → dict of columns."""
    if hasattr(history, "to_dict"):
        return history.to_dict()
    if isinstance(history, dict):
        return {k: list(v) for k, v in history.items()}
    rows = list(history)
    cols = {}
    for r in rows:
        for k in r:
            cols.setdefault(k, None)
    return {k: [r.get(k) for r in rows] for k in cols}


def _floats(values):
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)


def convergence(history, *, loss="f", metric="val_accuracy", path=None, title=None):
    """Loss and validation metric of one training run.

    A 2×2 figure: loss vs. iteration and vs. work units (forward + adjoint
    passes, Newman et al. 2020) on a log scale; the metric vs. iteration and
    vs. work units.  Levels of a multilevel run (column ``level``) are
    separated by dashed vertical lines.

    Parameters
    ----------
    history : History, dict of columns or list of row dicts
        Needs the column ``loss`` and ``work_units``; ``metric`` and
        ``level`` are used when present.  Rows are numbered consecutively
        (the iteration axis runs over all levels).
    loss, metric : str
        Column names.
    path : str or path-like, optional
        Save there and return the path; otherwise return the ``Figure``.
    title : str, optional

    Raises
    ------
    ImportError
        matplotlib is missing (with the install hint).
    KeyError
        A required column is missing.
    """
    require_matplotlib()
    cols = _columns(history)
    for key in (loss, "work_units"):
        if key not in cols:
            raise KeyError(f"history needs a column {key!r}; it has {sorted(cols)}")
    f = _floats(cols[loss])
    work = _floats(cols["work_units"])
    it = np.arange(f.size)
    m = _floats(cols[metric]) if metric in cols else None
    fig, axes = new_figure(nrows=2, ncols=2, figsize=(10.0, 7.0))
    xs = [(it, "iteration"), (work, "work units (forward + adjoint passes)")]
    for j, (x, label) in enumerate(xs):
        ax = axes[0, j]
        pos = f > 0
        if np.any(pos):
            ax.semilogy(x[pos], f[pos], "-", marker=".", ms=3, color="#0072B2")
        else:
            ax.plot(x, f, "-", marker=".", ms=3, color="#0072B2")
        ax.set_xlabel(label)
        ax.set_ylabel(loss)
        ax.grid(True, which="both", alpha=0.3)
        ax = axes[1, j]
        if m is not None and np.any(np.isfinite(m)):
            ok = np.isfinite(m)
            ax.plot(x[ok], m[ok], "-", marker=".", ms=3, color="#D55E00")
        else:
            ax.text(0.5, 0.5, f"no column {metric!r}", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
    if "level" in cols:
        lev = cols["level"]
        starts = [i for i in range(1, len(lev)) if lev[i] != lev[i - 1]]
        for j, (x, _) in enumerate(xs):
            for i in starts:
                for ax in (axes[0, j], axes[1, j]):
                    if math.isfinite(x[i]):
                        ax.axvline(x[i], ls="--", color="0.5", lw=0.8)
    return finish_figure(fig, title=title, path=path)


def compare_runs(curves, *, loss_target=None, metric="val_accuracy", metric_label=None, path=None, title=None,
                 log_metric=False):
    """Several solvers on one problem: loss and metric vs. work units and vs. wall time.

    Parameters
    ----------
    curves : dict name -> dict of columns
        Each with columns ``work_units``, ``time`` (seconds), ``loss`` and
        (optionally) ``metric``.
    loss_target : float, optional
        Drawn as a horizontal line on the loss panels.
    metric : str
        Column of the second row of panels (e.g. ``val_accuracy`` or ``val_rel_error``).
    metric_label : str, optional
    path, title : as in :func:`convergence`
    log_metric : bool
        Log scale for the metric panels (e.g. for a relative error).
    """
    log_metric = check_bool("log_metric", log_metric)
    require_matplotlib()
    if not curves:
        raise ValueError("curves must hold at least one run")
    fig, axes = new_figure(nrows=2, ncols=2, figsize=(11.0, 8.0))
    palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"]
    for k, (name, cols) in enumerate(curves.items()):
        cols = _columns(cols)
        for key in ("work_units", "time", "loss"):
            if key not in cols:
                raise KeyError(f"curves[{name!r}] needs a column {key!r}; it has {sorted(cols)}")
        color = palette[k % len(palette)]
        f = _floats(cols["loss"])
        m = _floats(cols[metric]) if metric in cols else None
        for j, xkey in enumerate(("work_units", "time")):
            x = _floats(cols[xkey])
            ok = np.isfinite(f) & (f > 0)
            axes[0, j].semilogy(x[ok], f[ok], "-", color=color, label=name, lw=1.5)
            if m is not None:
                okm = np.isfinite(m)
                plot = axes[1, j].semilogy if log_metric else axes[1, j].plot
                plot(x[okm], m[okm], "-", color=color, label=name, lw=1.5)
    for j, xlabel in enumerate(("work units (forward + adjoint passes)", "wall time (s)")):
        axes[0, j].set_xlabel(xlabel)
        axes[0, j].set_ylabel("training loss")
        axes[1, j].set_xlabel(xlabel)
        axes[1, j].set_ylabel(metric_label or metric)
        for i in range(2):
            axes[i, j].grid(True, which="both", alpha=0.3)
        if loss_target is not None:
            axes[0, j].axhline(loss_target, ls="--", color="0.3", lw=1, label="target")
    axes[0, 0].legend(fontsize=8)
    return finish_figure(fig, title=title, path=path)
