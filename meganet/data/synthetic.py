"""Two-dimensional classification problems of Haber & Ruthotto 2017, §6.

All generators are deterministic given ``seed`` (``numpy.random.default_rng``),
return float64 numpy arrays, and split into training and validation sets.
Features are examples-first, ``Y.shape == (n_examples, 2)``; labels are class
indices ``C.shape == (n_examples,)`` (see :func:`one_hot`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.validation import check_int, check_positive

__all__ = ["Dataset", "peaks", "peaks_function", "swiss_roll", "ellipses", "one_hot", "split"]


@dataclass
class Dataset:
    """Training and validation data of a classification problem.

    Attributes
    ----------
    Y_train : array, shape (n_train, n_features)
    C_train : int array, shape (n_train,)
    Y_val : array, shape (n_val, n_features)
    C_val : int array, shape (n_val,)
    n_classes : int
    name : str
    """

    Y_train: np.ndarray
    C_train: np.ndarray
    Y_val: np.ndarray
    C_val: np.ndarray
    n_classes: int
    name: str


def one_hot(C, n_classes):
    """Class indices ``(n,)`` → one-hot matrix ``(n, n_classes)``."""
    C = np.asarray(C)
    if C.ndim != 1 or not np.issubdtype(C.dtype, np.integer):
        raise ValueError(f"C must be a 1-D integer array of class indices, got shape {C.shape} dtype {C.dtype}")
    if C.size and (C.min() < 0 or C.max() >= n_classes):
        raise ValueError(f"class indices must lie in [0, {n_classes - 1}], got range [{C.min()}, {C.max()}]")
    out = np.zeros((C.size, n_classes))
    out[np.arange(C.size), C] = 1.0
    return out


def split(Y, C, *, val_fraction, rng, name, n_classes):
    """Shuffle and split into training and validation sets.

    ``val_fraction = 0`` gives an empty validation set; otherwise both sets must
    be non-empty (``ValueError`` naming the sizes if rounding empties one).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction!r}")
    n = Y.shape[0]
    perm = rng.permutation(n)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and not 0 < n_val < n:
        raise ValueError(f"val_fraction = {val_fraction:g} of {n} examples gives {n_val} validation and {n - n_val} "
                         f"training examples; both sets need at least one (use more examples)")
    val, train = perm[:n_val], perm[n_val:]
    return Dataset(Y[train], C[train], Y[val], C[val], n_classes, name)


def peaks_function(x, y):
    """MATLAB's ``peaks``:
    ``3(1−x)² e^{−x²−(y+1)²} − 10(x/5 − x³ − y⁵) e^{−x²−y²} − ⅓ e^{−(x+1)²−y²}``."""
    return (3 * (1 - x) ** 2 * np.exp(-x**2 - (y + 1) ** 2)
            - 10 * (x / 5 - x**3 - y**5) * np.exp(-x**2 - y**2)
            - np.exp(-(x + 1) ** 2 - y**2) / 3)


def peaks(n_examples=8000, *, n_classes=5, val_fraction=0.2, seed=0, grid=256):
    """The peaks problem (Haber & Ruthotto 2017 §6.3; Meganet.m ``setupPeaks.m``).

    The peaks function is evaluated on a ``grid × grid`` grid of ``[−3, 3]²``;
    its range is cut into ``n_classes`` bands of equal width (class k:
    ``min + k·Δ < f ≤ min + (k+1)·Δ``, the minimum itself joins class 0);
    the same number of points is drawn (with replacement) from the grid points
    of every class, so the classes are balanced.
    """
    n_examples = check_int("n_examples", n_examples, minimum=n_classes)
    n_classes = check_int("n_classes", n_classes, minimum=2)
    grid = check_int("grid", grid, minimum=8)
    rng = np.random.default_rng(seed)
    t = np.linspace(-3, 3, grid)
    xx, yy = np.meshgrid(t, t)
    f = peaks_function(xx, yy).ravel()
    edges = np.linspace(f.min(), f.max(), n_classes + 1)
    labels = np.clip(np.searchsorted(edges, f, side="left") - 1, 0, n_classes - 1)
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
    per_class = int(np.ceil(n_examples / n_classes))
    Y, C = [], []
    for k in range(n_classes):
        idx = np.flatnonzero(labels == k)
        pick = rng.integers(0, idx.size, per_class)
        Y.append(pts[idx[pick]])
        C.append(np.full(per_class, k))
    return split(np.concatenate(Y), np.concatenate(C), val_fraction=val_fraction, rng=rng,
                 name="peaks", n_classes=n_classes)


def swiss_roll(n_examples=1024, *, noise=0.0, val_fraction=0.5, seed=0, holdout="random"):
    """Two interleaved spirals (Haber & Ruthotto 2017 §6.2; Meganet.m ``setupSwissRoll.m``).

    With ``m = n_examples // 2`` angles ``φ ∈ [0, 4π]``, class 0 is
    ``r(cos φ, sin φ)`` with ``r`` from 0 to 1 and class 1 the same with ``r``
    from 0.2 to 1.2 (the paper's ``f₁``, ``f₂``).  Optional Gaussian noise of
    standard deviation ``noise``.

    ``holdout='alternate'`` is the paper's split: "every other point along the
    curve is removed from the data set and used for validation" (the points with
    odd index along each arm; ``val_fraction`` is then ignored).  The paper's
    data set is ``swiss_roll(1026, holdout='alternate')``: 513 points per arm,
    257 + 256 for training and validation.  ``'random'``: a shuffled split with
    ``val_fraction``.
    """
    n_examples = check_int("n_examples", n_examples, minimum=4)
    noise = check_positive("noise", noise, allow_zero=True)
    if holdout not in ("random", "alternate"):
        raise ValueError(f"holdout must be 'random' or 'alternate', got {holdout!r}")
    rng = np.random.default_rng(seed)
    m = n_examples // 2
    phi = np.linspace(0, 4 * np.pi, m)
    r0, r1 = np.linspace(0, 1, m), np.linspace(0.2, 1.2, m)
    Y = np.concatenate([np.stack([r0 * np.cos(phi), r0 * np.sin(phi)], 1),
                        np.stack([r1 * np.cos(phi), r1 * np.sin(phi)], 1)])
    Y = Y + noise * rng.standard_normal(Y.shape)
    C = np.concatenate([np.zeros(m, int), np.ones(m, int)])
    if holdout == "alternate":
        val = np.concatenate([np.arange(m) % 2 == 1] * 2)
        return Dataset(Y[~val], C[~val], Y[val], C[val], 2, "swiss_roll")
    return split(Y, C, val_fraction=val_fraction, rng=rng, name="swiss_roll", n_classes=2)


def ellipses(n_examples=2000, *, n_classes=2, axes=(1.0, 0.5), val_fraction=0.2, seed=0):
    """Concentric ellipses: points uniform in ``[−1, 1]²``, class k where the
    elliptic radius ``ρ = sqrt((x/a)² + (y/b)²)`` falls in the k-th of
    ``n_classes`` rings of equal width in ``ρ ∈ [0, ρ_max]`` (ρ_max = largest ρ in
    the square); classes are balanced by rejection sampling.  (The problem is
    described, not specified exactly, in Haber & Ruthotto 2017 §6; this is our
    definition.)
    """
    n_examples = check_int("n_examples", n_examples, minimum=n_classes)
    n_classes = check_int("n_classes", n_classes, minimum=2)
    a, b = (check_positive("axes[0]", axes[0]), check_positive("axes[1]", axes[1]))
    rng = np.random.default_rng(seed)
    rho_max = np.hypot(1 / a, 1 / b)
    per_class = int(np.ceil(n_examples / n_classes))
    Ys, Cs = [], []
    for k in range(n_classes):
        lo, hi = k * rho_max / n_classes, (k + 1) * rho_max / n_classes
        got = np.zeros((0, 2))
        while got.shape[0] < per_class:
            P = rng.uniform(-1, 1, (8 * per_class, 2))
            rho = np.hypot(P[:, 0] / a, P[:, 1] / b)
            got = np.concatenate([got, P[(rho >= lo) & (rho < hi)]])
        Ys.append(got[:per_class])
        Cs.append(np.full(per_class, k))
    return split(np.concatenate(Ys), np.concatenate(Cs), val_fraction=val_fraction, rng=rng,
                 name="ellipses", n_classes=n_classes)
