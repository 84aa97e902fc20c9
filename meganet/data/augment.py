"""Random data augmentation of image batches (examples first, NCHW; numpy or cupy arrays).

The JMIV paper (Ruthotto & Haber 2019, "Deep neural networks motivated by partial differential equations",
Sec. 5, "Training Algorithm") augments STL-10 and CIFAR with "a random horizontal flip (50 % probability),
pad the images by a factor of 1/16 with zeros into all directions and randomly crop" back to the original
size: :class:`RandomHorizontalFlip` and :class:`RandomPadCrop`.  :class:`RandomRot90` (rotations by
multiples of 90°) is meant for segmentation, where a label image must be transformed identically.

Every transform is called as ``t(X, rng)`` (or ``t(X, rng, labels=L)``, which returns ``(X_new, L_new)``),
draws its random numbers from the numpy ``Generator`` ``rng`` only (so a seed fixes the result, on the CPU
and on a GPU alike: the draws are made on the host and moved to the input's device), and never modifies
its input.

SGD applies a transform to every mini-batch
(:func:`~meganet.training.train_image_classifier`, ``augment=``).  The second-order solvers minimize a
fixed objective, so for them :func:`augment_dataset` draws augmented copies once and appends them to the
training set (an enlarged, deterministic data set for
:class:`~meganet.objectives.NetworkObjective`).
"""

from __future__ import annotations

import numbers

import numpy as np

from ..backend import get_array_module

__all__ = ["RandomHorizontalFlip", "RandomPadCrop", "RandomRot90", "Compose", "augment_dataset"]


def _check_probability(name, p):
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not np.isfinite(p):
        raise TypeError(f"{name} must be a real number in [0, 1], got {p!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p!r}")
    return float(p)


def _check_call(X, rng, labels):
    xp = get_array_module(X, names=["X"])
    if X.ndim != 4:
        raise ValueError(f"X must have shape (n, C, H, W), got {tuple(X.shape)}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    if labels is not None:
        if get_array_module(labels, names=["labels"]) is not xp:
            raise TypeError("labels must live on the same device as X (both numpy or both cupy arrays)")
        if labels.ndim not in (3, 4) or labels.shape[0] != X.shape[0] or labels.shape[-2:] != X.shape[-2:]:
            raise ValueError(f"labels must have shape (n, H, W) or (n, C', H, W) with n, H, W of X {tuple(X.shape)}, "
                             f"got {tuple(labels.shape)}")
    return xp


class _Transform:
    def __call__(self, X, rng, labels=None):
        xp = _check_call(X, rng, labels)
        return self._apply(xp, X, rng, labels)

    def _apply(self, xp, X, rng, labels):  # pragma: no cover - abstract
        raise NotImplementedError


def _ret(X, labels):
    return X if labels is None else (X, labels)


class RandomHorizontalFlip(_Transform):
    """Mirror each image left–right with probability ``p``: ``X[i, :, :, ::-1]`` (JMIV 2019, Sec. 5: p = 0.5).

    Parameters
    ----------
    p : float in [0, 1]

    Notes
    -----
    ``t(X, rng[, labels=L])`` with ``X`` of shape (n, C, H, W) and ``L`` of shape (n, H, W) or (n, C', H, W):
    one uniform draw per example from ``rng``; returns a new array (and the labels flipped alike).
    """

    def __init__(self, p=0.5):
        self.p = _check_probability("p", p)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"

    def _apply(self, xp, X, rng, labels):
        flip = rng.random(X.shape[0]) < self.p
        idx = xp.asarray(np.flatnonzero(flip))
        out = X.copy()
        out[idx] = X[idx][..., ::-1]
        if labels is not None:
            labels_out = labels.copy()
            labels_out[idx] = labels[idx][..., ::-1]
            labels = labels_out
        return _ret(out, labels)


class RandomPadCrop(_Transform):
    """Zero-pad each image by ``pad`` pixels on all sides, then crop a random H × W window (JMIV 2019, Sec. 5).

    ``X_new[i] = P(X[i])[:, r_i : r_i + H, c_i : c_i + W]`` with ``P`` the zero padding and offsets ``r_i, c_i``
    uniform in ``0..2·pad`` (so a shift by up to ``pad`` pixels in each direction).

    Parameters
    ----------
    pad : int >= 0, optional
        Padding in pixels; default ``fraction · H`` rows and ``fraction · W`` columns, rounded half up and at
        least 1 when ``fraction > 0`` (so small images are shifted too).
    fraction : float >= 0
        The paper's 1/16 (2 pixels for 32 × 32 CIFAR images, 6 for 96 × 96 STL-10 images).
    fill : float
        Value of the padded pixels (zeros in the paper).
    label_fill : int
        Value of the padded label pixels when ``labels`` are given.
    """

    def __init__(self, pad=None, *, fraction=1 / 16, fill=0.0, label_fill=0):
        from ..core.validation import check_int, check_nonnegative

        self.pad = None if pad is None else check_int("pad", pad, minimum=0)
        self.fraction = check_nonnegative("fraction", fraction)
        if not isinstance(fill, numbers.Real) or isinstance(fill, bool) or not np.isfinite(fill):
            raise TypeError(f"fill must be a finite real number, got {fill!r}")
        self.fill = float(fill)
        self.label_fill = check_int("label_fill", label_fill)

    def __repr__(self):
        return f"RandomPadCrop(pad={self.pad}, fraction={self.fraction}, fill={self.fill})"

    def pads(self, H, W):
        """``(pad_rows, pad_cols)`` for images of H × W pixels."""
        if self.pad is not None:
            return self.pad, self.pad
        if self.fraction == 0:
            return 0, 0
        return tuple(max(1, int(np.floor(self.fraction * s + 0.5))) for s in (H, W))

    def _crop(self, xp, A, pr, pc, r, c, fill):
        n, H, W = A.shape[0], A.shape[-2], A.shape[-1]
        widths = [(0, 0)] * (A.ndim - 2) + [(pr, pr), (pc, pc)]
        P = xp.pad(A, widths, mode="constant", constant_values=fill)
        rows = xp.asarray(r[:, None] + np.arange(H)[None, :])          # (n, H)
        cols = xp.asarray(c[:, None] + np.arange(W)[None, :])          # (n, W)
        ex = xp.asarray(np.arange(n))
        if A.ndim == 3:
            return P[ex[:, None, None], rows[:, :, None], cols[:, None, :]]
        # advanced indices separated by a slice: the indexed axes come first, (n, H, W, C)
        out = P[ex[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        return xp.ascontiguousarray(xp.moveaxis(out, -1, 1))

    def _apply(self, xp, X, rng, labels):
        n, _, H, W = X.shape
        pr, pc = self.pads(H, W)
        r = rng.integers(0, 2 * pr + 1, size=n)
        c = rng.integers(0, 2 * pc + 1, size=n)
        out = self._crop(xp, X, pr, pc, r, c, X.dtype.type(self.fill))
        if labels is not None:
            labels = self._crop(xp, labels, pr, pc, r, c, labels.dtype.type(self.label_fill))
        return _ret(out, labels)


class RandomRot90(_Transform):
    """Rotate each image by ``k_i · 90°`` counter-clockwise, ``k_i`` uniform in ``ks`` (``numpy.rot90`` on (H, W)).

    For segmentation: ``t(X, rng, labels=L)`` rotates the label image of each example by the same ``k_i``.
    Rotations by 90° or 270° need square images (H = W) to keep the batch one array.

    Parameters
    ----------
    ks : sequence of int in {0, 1, 2, 3}
        The allowed quarter turns (default all four).
    """

    def __init__(self, ks=(0, 1, 2, 3)):
        try:
            ks = tuple(ks)
        except TypeError:
            raise TypeError(f"ks must be a sequence of quarter turns in {{0, 1, 2, 3}}, got {ks!r}") from None
        if not ks or any(not isinstance(k, numbers.Integral) or isinstance(k, bool) or not 0 <= k <= 3 for k in ks):
            raise ValueError(f"ks must be a non-empty sequence of quarter turns in {{0, 1, 2, 3}}, got {ks!r}")
        self.ks = tuple(int(k) for k in ks)

    def __repr__(self):
        return f"RandomRot90(ks={self.ks})"

    def _apply(self, xp, X, rng, labels):
        n, _, H, W = X.shape
        k = np.asarray(self.ks)[rng.integers(0, len(self.ks), size=n)]
        if H != W and np.any(k % 2 == 1):
            raise ValueError(f"RandomRot90 with odd quarter turns needs square images, got H x W = {H} x {W}; "
                             "use ks=(0, 2)")
        out = X.copy()
        labels_out = None if labels is None else labels.copy()
        for q in range(1, 4):
            idx = xp.asarray(np.flatnonzero(k == q))
            if idx.size:
                out[idx] = xp.rot90(X[idx], q, axes=(-2, -1))
                if labels is not None:
                    labels_out[idx] = xp.rot90(labels[idx], q, axes=(-2, -1))
        return _ret(out, labels_out)


class Compose(_Transform):
    """Apply transforms one after the other with the same ``rng``: ``t_m(…t_2(t_1(X, rng), rng)…, rng)``.

    Parameters
    ----------
    transforms : sequence of callables ``t(X, rng, labels=None)``
    """

    def __init__(self, transforms):
        transforms = list(transforms)
        bad = [t for t in transforms if not callable(t)]
        if bad:
            raise TypeError(f"transforms must be callables t(X, rng, labels=None), got {bad[0]!r}")
        self.transforms = transforms

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"

    def _apply(self, xp, X, rng, labels):
        if not self.transforms:
            return _ret(X.copy(), None if labels is None else labels.copy())
        for t in self.transforms:
            if labels is None:
                X = t(X, rng)
            else:
                X, labels = t(X, rng, labels=labels)
        return _ret(X, labels)


def augment_dataset(X, y, transform, *, copies=1, seed=0):
    """The training set with ``copies`` augmented copies appended, for the second-order solvers.

    Parameters
    ----------
    X : array, shape (n, C, H, W)
    y : array, shape (n,) (class labels) or (n, H, W) / (n, C', H, W) (label images, transformed alike)
    transform : callable ``t(X, rng, labels=None)``
        E.g. ``Compose([RandomHorizontalFlip(), RandomPadCrop()])``.
    copies : int >= 0
    seed : int
        The copies are ``transform(X, default_rng(seed))`` applied ``copies`` times in a row (one generator).

    Returns
    -------
    X_aug : array, shape ((copies + 1)·n, C, H, W)
        ``X`` followed by the copies (same backend and dtype).
    y_aug : array
        The labels in the same order.
    """
    from ..core.validation import check_int

    copies = check_int("copies", copies, minimum=0)
    if not callable(transform):
        raise TypeError(f"transform must be a callable t(X, rng, labels=None), got {type(transform).__name__}")
    xp = get_array_module(X, names=["X"])
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have one label (or label image) per example of X ({X.shape[0]}), got {y.shape[0]}")
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    image_labels = y.ndim >= 3
    Xs, ys = [X], [y]
    for _ in range(copies):
        if image_labels:
            Xa, ya = transform(X, rng, labels=y)
        else:
            Xa, ya = transform(X, rng), y
        Xs.append(Xa)
        ys.append(ya)
    return xp.concatenate(Xs), xp.concatenate(ys)
