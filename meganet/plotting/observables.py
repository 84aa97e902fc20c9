"""Predicted against true observables of a regression (PDE-surrogate) model."""

from __future__ import annotations

import numpy as np

from ..core.validation import check_int
from ._mpl import finish_figure, new_figure, require_matplotlib

__all__ = ["predicted_vs_true", "relative_errors"]


def relative_errors(C_pred, C_true):
    """Per-sample relative errors ``‖c_pred,i − c_i‖ / ‖c_i‖`` (Meganet.m's GNvpro EVP scripts), shape ``(n,)``.

    Parameters
    ----------
    C_pred, C_true : arrays, shape (n, n_outputs)
        Samples in rows.  A sample with ``‖c_i‖ = 0`` gets ``inf`` unless its
        prediction is exact too (then 0).
    """
    C_pred, C_true = np.asarray(C_pred, dtype=np.float64), np.asarray(C_true, dtype=np.float64)
    if C_pred.shape != C_true.shape or C_pred.ndim != 2:
        raise ValueError(f"C_pred and C_true must be 2-D arrays of the same shape (n, n_outputs), "
                         f"got {C_pred.shape} and {C_true.shape}")
    num = np.linalg.norm(C_pred - C_true, axis=1)
    den = np.linalg.norm(C_true, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, 0.0))


def predicted_vs_true(C_true, C_pred, *, n_samples=4, offset=None, path=None, title=None):
    """Observables of a few samples: true (line) and predicted (markers), one panel per sample.

    Parameters
    ----------
    C_true, C_pred : arrays, shape (n, n_outputs)
        Samples in rows (e.g. the validation set and the model's predictions).
    n_samples : int
        Panels (the first ``n_samples`` samples, at most ``n``).
    offset : array, shape (n_outputs,), optional
        Added to both before plotting (e.g. the training mean that centred the targets,
        so that the panels show the observables themselves).
    path : str or path-like, optional
        Save there and return the path; otherwise return the ``Figure``.
    title : str, optional
    """
    require_matplotlib()
    C_true, C_pred = np.asarray(C_true, dtype=np.float64), np.asarray(C_pred, dtype=np.float64)
    err = relative_errors(C_pred, C_true)
    k = min(check_int("n_samples", n_samples, minimum=1), C_true.shape[0])
    if offset is not None:
        offset = np.asarray(offset, dtype=np.float64)
        if offset.shape != (C_true.shape[1],):
            raise ValueError(f"offset must have shape ({C_true.shape[1]},), got {offset.shape}")
        C_true, C_pred = C_true + offset, C_pred + offset
    fig, axes = new_figure(nrows=k, ncols=1, figsize=(9.0, 2.2 * k + 0.6))
    idx = np.arange(C_true.shape[1])
    for i in range(k):
        ax = axes[i, 0]
        ax.plot(idx, C_true[i], "-", color="0.2", lw=1.2, label="true")
        ax.plot(idx, C_pred[i], ".", color="#D55E00", ms=4, label="predicted")
        ax.set_ylabel(f"sample {i}")
        ax.set_title(f"relative error {err[i]:.3e}", fontsize=9, loc="right")
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    axes[-1, 0].set_xlabel("observable index")
    return finish_figure(fig, title=title, path=path)
