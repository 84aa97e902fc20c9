"""Decision regions of a 2-D classifier with the data on top (Haber & Ruthotto 2017, Fig. 3)."""

from __future__ import annotations

import numpy as np

from ..core.validation import check_int
from ._mpl import new_figure, require_matplotlib, save_figure

__all__ = ["decision_regions", "class_colors"]

# colour-blind friendly qualitative palette (Okabe & Ito); cycled for more classes
_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def class_colors(n_classes):
    """One colour per class (hex strings)."""
    n_classes = check_int("n_classes", n_classes, minimum=1)
    return [_PALETTE[k % len(_PALETTE)] for k in range(n_classes)]


def _check_points(name, Y):
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n_examples, 2) (2-D points), got {Y.shape}")
    return Y


def decision_regions(predict, Y, C, *, n_classes=None, bounds=None, resolution=200, title=None, path=None,
                     ax=None, max_points=2000):
    """Colour the plane by the predicted class and scatter the labelled points.

    Parameters
    ----------
    predict : callable
        ``predict(P) -> classes`` for points ``P`` of shape ``(m, 2)`` (float64
        numpy); returns class indices, shape ``(m,)``.
    Y : array, shape (n_examples, 2)
        Data points.
    C : int array, shape (n_examples,)
        Their labels (class indices).
    n_classes : int, optional
        Default ``max(C) + 1`` (or more, if ``predict`` returns larger indices).
    bounds : (xmin, xmax, ymin, ymax), optional
        Plotted region; default the data's bounding box enlarged by 5 %.
    resolution : int
        Grid points per axis at which ``predict`` is evaluated.
    title : str, optional
    path : str or path-like, optional
        Save the figure there (PNG by extension) and return the path.
    ax : matplotlib Axes, optional
        Draw into these axes instead of a new figure (then nothing is saved).
    max_points : int
        At most this many data points are drawn (a deterministic subset).

    Returns
    -------
    path (when ``path`` is given), else the matplotlib ``Figure``.

    Raises
    ------
    ImportError
        matplotlib is not installed (the message says how to install it).
    """
    require_matplotlib()
    Y = _check_points("Y", Y)
    C = np.asarray(C)
    if C.shape != (Y.shape[0],) or not np.issubdtype(C.dtype, np.integer):
        raise ValueError(f"C must be an integer array of shape ({Y.shape[0]},), got shape {C.shape} dtype {C.dtype}")
    resolution = check_int("resolution", resolution, minimum=2)
    max_points = check_int("max_points", max_points, minimum=1)
    if bounds is None:
        lo, hi = Y.min(axis=0), Y.max(axis=0)
        pad = 0.05 * np.maximum(hi - lo, 1e-12)
        bounds = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
    xmin, xmax, ymin, ymax = (float(b) for b in bounds)
    if not (xmin < xmax and ymin < ymax):
        raise ValueError(f"bounds must be (xmin, xmax, ymin, ymax) with xmin < xmax and ymin < ymax, got {bounds}")
    gx, gy = np.linspace(xmin, xmax, resolution), np.linspace(ymin, ymax, resolution)
    XX, YY = np.meshgrid(gx, gy)
    grid_pred = np.asarray(predict(np.stack([XX.ravel(), YY.ravel()], axis=1))).reshape(XX.shape)
    if n_classes is None:
        n_classes = int(max(C.max(initial=0), grid_pred.max(initial=0))) + 1
    colors = class_colors(n_classes)

    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D

    cmap = ListedColormap(colors)
    norm = BoundaryNorm(np.arange(-0.5, n_classes + 0.5), n_classes)
    fig = None
    if ax is None:
        fig, axes = new_figure(figsize=(6.0, 5.4))
        ax = axes[0, 0]
    ax.pcolormesh(XX, YY, grid_pred, cmap=cmap, norm=norm, alpha=0.35, shading="auto")
    idx = np.arange(Y.shape[0])
    if Y.shape[0] > max_points:
        idx = np.random.default_rng(0).choice(Y.shape[0], max_points, replace=False)
    ax.scatter(Y[idx, 0], Y[idx, 1], c=C[idx], cmap=cmap, norm=norm, s=8, edgecolors="k", linewidths=0.3)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    handles = [Line2D([], [], marker="o", ls="", color=colors[k], markeredgecolor="k", label=f"class {k}")
               for k in range(n_classes)]
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8)
    if title:
        ax.set_title(title)
    if fig is None:
        return ax.figure
    if path is not None:
        return save_figure(fig, path)
    return fig
