"""Weak-label segmentation data built from digit images: several digits on a canvas, pixel labels for evaluation
and the image-level tags that weakly supervised training (Pathak, Krähenbühl & Darrell 2015, as presented by
Rabinovich 2020) learns from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import check_dtype
from ..core.validation import check_int

__all__ = ["WeakLabelCanvas", "digit_canvas"]


@dataclass
class WeakLabelCanvas:
    """Canvases of digits with pixel labels and tags.

    Attributes
    ----------
    X : array, shape (n, 1, H, W)
        The canvases (digit intensities in [0, 1], overlapping digits combined by maximum).
    pixel_labels : int64 array, shape (n, H, W)
        0 (background) or ``1 + digit class`` on the digit's stroke (pixels above ``stroke_threshold``); where
        strokes overlap the brighter digit wins. Kept for evaluation only.
    tags : bool array, shape (n, n_labels)
        Image-level tags: ``tags[i, 0]`` (background) is always true, ``tags[i, 1 + d]`` when digit ``d`` is on
        canvas ``i``.
    n_labels : int
        11: background and ten digits.
    """

    X: np.ndarray
    pixel_labels: np.ndarray
    tags: np.ndarray
    n_labels: int = 11


def digit_canvas(digits, classes, n_images, *, canvas=(56, 56), per_image=(1, 3), stroke_threshold=0.5, seed=0,
                 dtype=np.float64):
    """Place ``per_image`` randomly chosen digits at random positions on blank canvases.

    Parameters
    ----------
    digits : array, shape (m, 1, h, w) or (m, h, w)
        Digit images with values in [0, 1] (e.g. :func:`meganet.data.load_mnist`'s ``X_train``, unstandardized).
    classes : int array, shape (m,)
        Their classes ``0 … 9``.
    n_images : int
    canvas : (int, int)
        Canvas size ``(H, W)``; at least the digit size.
    per_image : (int, int)
        Smallest and largest number of digits on a canvas (uniform).
    stroke_threshold : float in (0, 1)
        Pixels of a digit brighter than this are its stroke (labelled with its class).
    seed : int
    dtype : float64 or float32

    Returns
    -------
    WeakLabelCanvas
    """
    digits = np.asarray(digits)
    if digits.ndim == 4:
        if digits.shape[1] != 1:
            raise ValueError(f"digits must have one channel, got shape {digits.shape}")
        digits = digits[:, 0]
    if digits.ndim != 3 or digits.shape[0] == 0:
        raise ValueError(f"digits must have shape (m, 1, h, w) or (m, h, w) with m ≥ 1, got {digits.shape}")
    if not np.all(np.isfinite(digits)) or digits.min() < 0 or digits.max() > 1:
        raise ValueError("digits must hold finite values in [0, 1] (unstandardized images)")
    classes = np.asarray(classes)
    if classes.shape != (digits.shape[0],) or classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() > 9:
        raise ValueError(f"classes must be {digits.shape[0]} integers in 0 … 9, got shape {classes.shape}")
    n_images = check_int("n_images", n_images, minimum=1)
    H, W = (check_int("canvas[0]", canvas[0], minimum=digits.shape[1]),
            check_int("canvas[1]", canvas[1], minimum=digits.shape[2]))
    lo, hi = check_int("per_image[0]", per_image[0], minimum=1), check_int("per_image[1]", per_image[1], minimum=1)
    if lo > hi:
        raise ValueError(f"per_image must be (smallest, largest), got {per_image}")
    if not 0.0 < stroke_threshold < 1.0:
        raise ValueError(f"stroke_threshold must lie in (0, 1), got {stroke_threshold!r}")
    dtype = check_dtype(dtype)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    h, w = digits.shape[1:]
    X = np.zeros((n_images, H, W))
    labels = np.zeros((n_images, H, W), dtype=np.int64)
    tags = np.zeros((n_images, 11), dtype=bool)
    tags[:, 0] = True
    for i in range(n_images):
        for k in rng.choice(digits.shape[0], size=rng.integers(lo, hi + 1), replace=False):
            r, c = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
            patch = digits[k]
            window = X[i, r:r + h, c:c + w]
            brighter = (patch > stroke_threshold) & (patch >= window)
            labels[i, r:r + h, c:c + w][brighter] = 1 + int(classes[k])
            X[i, r:r + h, c:c + w] = np.maximum(window, patch)
            tags[i, 1 + int(classes[k])] = True
    # a digit completely covered by brighter strokes leaves no labelled pixel: its tag goes too
    for i in range(n_images):
        present = np.zeros(11, dtype=bool)
        present[np.unique(labels[i])] = True
        present[0] = True
        tags[i] &= present
    return WeakLabelCanvas(X=X[:, None].astype(dtype), pixel_labels=labels, tags=tags)
