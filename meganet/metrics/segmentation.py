"""Segmentation metrics: confusion matrix, per-class intersection over union (IoU), mean IoU and pixel accuracy,
on the labelled pixels only (the selection ``Q`` of Peters 2020, eq. 3.2: a mask of labelled pixels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module, to_numpy
from ..core.validation import check_int

__all__ = ["confusion_matrix", "SegmentationScores", "segmentation_scores", "boundary_length"]


def _labels(name, a):
    xp = get_array_module(a, names=[name])
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class labels, got dtype {a.dtype}")
    return xp


def confusion_matrix(y_true, y_pred, n_classes, *, mask=None):
    """``M[i, j]`` = number of labelled pixels of true class ``i`` predicted as class ``j``.

    Parameters
    ----------
    y_true, y_pred : int arrays of the same shape, e.g. (n, H, W)
        Class labels in ``0 … n_classes − 1`` (``y_true`` is checked on the labelled pixels, ``y_pred`` everywhere
        it is counted).
    n_classes : int
    mask : bool or 0/1 array of the same shape, optional
        The labelled pixels (default: all). Unlabelled pixels may hold any value in ``y_true``.

    Returns
    -------
    numpy.ndarray of int64, shape (n_classes, n_classes)
        On the host (a small table), whatever the input's backend.
    """
    n_classes = check_int("n_classes", n_classes, minimum=1)
    xp = _labels("y_true", y_true)
    if _labels("y_pred", y_pred) is not xp:
        raise TypeError("y_true and y_pred must both be numpy or both be cupy arrays")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {tuple(y_true.shape)} and "
                         f"{tuple(y_pred.shape)}")
    t, p = y_true.reshape(-1), y_pred.reshape(-1)
    if mask is not None:
        if get_array_module(mask, names=["mask"]) is not xp or mask.shape != y_true.shape:
            raise ValueError(f"mask must be an array of the labels' shape {tuple(y_true.shape)} on their backend, "
                             f"got {tuple(getattr(mask, 'shape', ()))}")
        keep = mask.reshape(-1) != 0
        t, p = t[keep], p[keep]
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.size and (int(a.min()) < 0 or int(a.max()) >= n_classes):
            raise ValueError(f"{name} holds labels outside 0 … {n_classes - 1} (min {int(a.min())}, "
                             f"max {int(a.max())}) on the counted pixels")
    M = xp.bincount(t.astype(xp.int64) * n_classes + p.astype(xp.int64), minlength=n_classes * n_classes)
    return to_numpy(M).reshape(n_classes, n_classes).astype(np.int64)


@dataclass
class SegmentationScores:
    """Scores from a confusion matrix ``M`` (rows: true class, columns: prediction).

    Attributes
    ----------
    confusion : ndarray (n_classes, n_classes)
    iou : ndarray (n_classes,)
        ``IoU_c = M_cc / (Σ_j M_cj + Σ_i M_ic − M_cc)``; NaN for a class absent from both truth and prediction.
    miou : float
        Mean of the defined IoUs (classes absent from truth and prediction are left out, as is usual).
    pixel_accuracy : float
        ``trace(M) / ΣM``.
    n_pixels : int
    """

    confusion: np.ndarray
    iou: np.ndarray
    miou: float
    pixel_accuracy: float
    n_pixels: int


def segmentation_scores(y_true, y_pred, n_classes, *, mask=None):
    """Confusion matrix, per-class IoU, mean IoU and pixel accuracy on the labelled pixels.

    Parameters are those of :func:`confusion_matrix`. At least one pixel must be counted.

    Returns
    -------
    SegmentationScores
    """
    M = confusion_matrix(y_true, y_pred, n_classes, mask=mask)
    n = int(M.sum())
    if n == 0:
        raise ValueError("no labelled pixels: the scores are ratios over the counted pixels and need at least one")
    tp = np.diag(M).astype(np.float64)
    union = M.sum(axis=0) + M.sum(axis=1) - np.diag(M)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return SegmentationScores(confusion=M, iou=iou, miou=float(np.nanmean(iou)), pixel_accuracy=float(tp.sum() / n),
                              n_pixels=n)


def boundary_length(labels, *, mask=None):
    r"""Length of the label boundaries of maps: the number of 4-neighbour pixel pairs with different labels,

    .. math:: B(c) = \sum_{i,j} [c_{i,j} ≠ c_{i+1,j}] + [c_{i,j} ≠ c_{i,j+1}],

    per image (the anisotropic total variation of the label indicator).  A measure of the *oscillatory
    artifacts* Peters (2020, §4) reports without output regularization: the ratio ``B(prediction) / B(truth)``
    is above 1 for speckled or striped maps and tends to 0 when a large α over-smooths to one label.

    Parameters
    ----------
    labels : int array, shape (n, H, W) or (H, W)
    mask : bool array of the same shape, optional
        Only pairs with both pixels in the mask count (e.g. the pixels with ground truth).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)  (a 0-d array for a single map)
    """
    xp = _labels("labels", labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"labels must have shape (n, H, W) or (H, W), got {labels.shape}")
    single = labels.ndim == 2
    c = labels[None] if single else labels
    if mask is None:
        m = xp.ones(c.shape, dtype=bool)
    else:
        if mask.shape != labels.shape:
            raise ValueError(f"mask must have the shape of labels {labels.shape}, got {mask.shape}")
        m = (mask[None] if single else mask).astype(bool)
    v = ((c[:, 1:, :] != c[:, :-1, :]) & m[:, 1:, :] & m[:, :-1, :]).sum(axis=(1, 2))
    h = ((c[:, :, 1:] != c[:, :, :-1]) & m[:, :, 1:] & m[:, :, :-1]).sum(axis=(1, 2))
    out = to_numpy(v + h).astype(np.int64)
    return out[0] if single else out
