"""Figures of the few-label segmentation runs (Peters 2020): mIoU against α and predicted maps."""

from __future__ import annotations

import numpy as np

from ._mpl import finish_figure, new_figure

__all__ = ["miou_vs_alpha", "segmentation_maps"]


def miou_vs_alpha(rows, *, path=None, title="Peters 2020, eq. (3.2): mIoU against α", n_val=None):
    """mIoU against α: the mean over the seeds (line) and the range (band), on the validation pixels and, when the
    rows have it, on the whole map.

    Parameters
    ----------
    rows : list of dict
        Rows of :func:`meganet.training.alpha_sweep` with a ``seed`` key each (``alpha``, ``val_miou``,
        ``full_miou``).  α = 0 is drawn one decade left of the smallest positive α (log axis).
    path : str, optional
        Save the PNG there (atomically) and return the path; else return the figure.
    title : str
    n_val : int, optional
        The number of validation pixels, for the legend.
    """
    alphas = sorted({r["alpha"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    pos = [a for a in alphas if a > 0]
    zero_at = (pos[0] / 10) if pos else 1.0
    xs = [a if a > 0 else zero_at for a in alphas]
    fig, axes = new_figure(figsize=(6, 4), dpi=120)
    ax = axes[0, 0]
    what = f"validation pixels ({n_val})" if n_val else "validation pixels"
    for key, label in (("val_miou", what), ("full_miou", "whole map")):
        M = np.array([[next((r.get(key) for r in rows if r["seed"] == s and r["alpha"] == a), None)
                       for a in alphas] for s in seeds], dtype=float)  # None -> nan
        if np.all(np.isnan(M)):
            continue
        ax.plot(xs, np.nanmean(M, axis=0), "o-", label=f"mIoU, {label}, mean of {len(seeds)} seed"
                                                        f"{'s' if len(seeds) > 1 else ''}")
        ax.fill_between(xs, np.nanmin(M, axis=0), np.nanmax(M, axis=0), alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("α (α = 0 drawn at the left end)")
    ax.set_ylabel("mIoU")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return finish_figure(fig, path=path)


def segmentation_maps(truth, maps, *, n_classes=2, train_mask=None, ignore=None, truth_title="true map",
                      path=None, title=None):
    """The true map next to predicted maps, with the training pixels marked in red on the true map.

    Parameters
    ----------
    truth : int array, shape (H, W)
    maps : list of (str, int array of shape (H, W))
        Titles and predicted class maps.
    n_classes : int
        2: grey scale (0 black, 1 white); more: a qualitative colour map (``tab20``).
    train_mask : bool array, shape (H, W), optional
    ignore : bool array, shape (H, W), optional
        Pixels without ground truth, left blank (white) in the true map.
    path, title
        As :func:`miou_vs_alpha`.
    """
    cmap = "gray" if n_classes == 2 else "tab20"
    fig, axes = new_figure(ncols=1 + len(maps), figsize=(3 * (1 + len(maps)), 3.2), dpi=120)
    axs = axes[0]
    t = np.asarray(truth, dtype=float)
    if ignore is not None:
        t = np.ma.masked_array(t, mask=np.asarray(ignore, bool))
    axs[0].imshow(t, cmap=cmap, vmin=0, vmax=n_classes - 1, interpolation="nearest")
    axs[0].set_title(truth_title, fontsize=9)
    for ax, (name, m) in zip(axs[1:], maps):
        ax.imshow(np.asarray(m), cmap=cmap, vmin=0, vmax=n_classes - 1, interpolation="nearest")
        ax.set_title(name, fontsize=9)
    for ax in axs:
        ax.set_xticks([])
        ax.set_yticks([])
    if train_mask is not None:
        tr = np.argwhere(np.asarray(train_mask, bool))
        axs[0].plot(tr[:, 1], tr[:, 0], "r.", ms=2)
    return finish_figure(fig, title=title, path=path)
