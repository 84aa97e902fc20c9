r"""Normalization statistics: ``N(Y) = (Y − μ)/sqrt(σ² + ε)`` and its (self-adjoint) derivative.

Means and biased variances are taken per channel over the examples and pixels
(``kind='batch'``, batch normalization) or per example and channel over the
pixels (``kind='instance'``; for vector features ``(n, F)``: over the
features of each example, i.e. layer normalization).  Two-pass formula
``σ² = mean((Y − μ)²)`` as in :class:`meganet.normalization.base.Standardization`.

:func:`standardize` returns ``(X̂, r)`` with ``r = 1/sqrt(σ² + ε)`` shaped to
broadcast against ``Y``; :func:`standardize_jmv` applies
``r (dY − mean(dY) − X̂ mean(X̂ ⊙ dY))``.  The numba engine computes the
statistics and the product with one parallel sweep per pass and no
temporaries of the data's size; on cupy arrays the reference reductions are
already device kernels (``'auto'`` uses them).

Statistics that are not finite numbers of the data's dtype (a mean or a
variance that overflows, e.g. ``|Y| ≈ 1e300`` in float64 or ``1e20`` in
float32, where ``σ² = inf`` would give ``X̂ = 0`` silently) raise
``FloatingPointError``, on every engine: each engine returns its means and
variances and :func:`standardize` checks them (``O(groups)`` work; on cupy
arrays one boolean comes back to the host).
"""

from __future__ import annotations

import numpy as np

from meganet.backend import get_array_module

from . import dispatch

__all__ = ["KINDS", "standardize", "standardize_jmv"]

KINDS = ("batch", "instance")


def _axes(kind, ndim):
    if kind == "batch":
        return (0,) + tuple(range(2, ndim))
    return (1,) if ndim == 2 else tuple(range(2, ndim))


def _check(Y, kind):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {{'batch', 'instance'}}, got {kind!r}")
    if Y.ndim < 2:
        raise ValueError(f"Y must have shape (n_examples, channels, ...), got {tuple(Y.shape)}")


def _standardize_ref(Y, kind, eps):
    xp = get_array_module(Y)
    axes = _axes(kind, Y.ndim)
    with np.errstate(over="ignore", invalid="ignore"):  # overflows are reported by _check_statistics
        mean = Y.mean(axis=axes, keepdims=True)
        Xc = Y - mean
        var = (Xc * Xc).mean(axis=axes, keepdims=True)
        inv_std = 1.0 / xp.sqrt(var + eps)
        return Xc * inv_std, inv_std, mean, var


def _group_name(kind, shape, g):
    """Words for statistic group ``g`` (flat index) of data of ``shape``."""
    if kind == "batch":
        return f"feature {g} over the batch" if len(shape) == 2 else f"channel {g} over the batch and pixels"
    if len(shape) == 2:
        return f"example {g} over its features"
    return f"example {g // shape[1]}, channel {g % shape[1]} over its pixels"


def _check_statistics(Y, kind, mean, var):
    """Raise ``FloatingPointError`` unless every mean and variance is a finite number of ``Y.dtype``.

    ``mean`` and ``var`` hold one value per statistic group (any shape, any
    float dtype: the numba engine accumulates in float64, and a float64
    statistic beyond the float32 range counts as overflowed for float32
    data, as it does on the reference, which sums in the data's dtype).
    """
    xp = get_array_module(mean)
    big = float(np.finfo(Y.dtype).max)
    ok_mean = xp.abs(mean) <= big  # False for inf and nan
    ok_var = var <= big
    if bool(xp.all(ok_mean) & xp.all(ok_var)):
        return
    bad_mean = not bool(xp.all(ok_mean))
    stat, values, ok = ("mean", mean, ok_mean) if bad_mean else ("variance", var, ok_var)
    g = int(xp.argmin(ok.reshape(-1).astype(np.int8)))  # the first group that overflowed
    amax = float(xp.max(xp.abs(Y)))
    limit = big / max(Y.size // max(mean.size, 1), 1) if bad_mean else big ** 0.5
    raise FloatingPointError(
        f"the {stat} of {_group_name(kind, Y.shape, g)} is not finite in {Y.dtype} "
        f"({float(values.reshape(-1)[g]):.3g}): the data reach |Y| = {amax:.3g} and {stat}s overflow beyond "
        f"|Y| ≈ {limit:.2g}. {RESCALE_HINT}"
    )


#: What to do when statistics overflow (shared with :class:`meganet.normalization.TVNorm`).
RESCALE_HINT = ("A normalization cannot recover from this scale: rescale the input of this layer (standardize "
                "the data, or lower the step size / learning rate, or the weights, of the layers before it).")


def _jmv_ref(dY, Yhat, inv_std, kind):
    axes = _axes(kind, dY.ndim)
    return inv_std * (dY - dY.mean(axis=axes, keepdims=True) - Yhat * (Yhat * dY).mean(axis=axes, keepdims=True))


def standardize(Y, kind, eps, *, engine="auto", return_statistics=False):
    """``(X̂, r)``: the standardized data and ``r = 1/sqrt(σ² + ε)``.

    Parameters
    ----------
    Y : array, shape (n_examples, C) or (n_examples, C, *spatial)
    kind : {'batch', 'instance'}
    eps : float > 0
    engine : {'auto', 'numpy', 'numba', 'cupy'}
    return_statistics : bool, default False
        Also return the mean μ and the biased variance σ² of every statistic
        group (what batch normalization's running estimates are made of).

    Returns
    -------
    Yhat : array like Y
    inv_std : array, shape of Y with the statistic axes of size 1
    mean, var : arrays of the shape of ``inv_std`` (only with ``return_statistics``)
        Float64 from the numba engine, ``Y.dtype`` from the reference
        reductions (numpy/cupy), on ``Y``'s backend.

    Raises
    ------
    FloatingPointError
        If a mean or variance is not a finite number of ``Y.dtype`` (overflow).
    """
    xp = get_array_module(Y, names=["Y"])
    _check(Y, kind)
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    Yhat, inv_std, mean, var = dispatch(_IMPLEMENTATIONS, "standardize", engine, xp, _LOADERS)(Y, kind, float(eps))
    _check_statistics(Y, kind, mean, var)
    if return_statistics:
        return Yhat, inv_std, mean.reshape(inv_std.shape), var.reshape(inv_std.shape)
    return Yhat, inv_std


def standardize_jmv(dY, Yhat, inv_std, kind, *, engine="auto"):
    """``r (dY − mean(dY) − X̂ mean(X̂ ⊙ dY))`` (the Jacobian of :func:`standardize`, self-adjoint)."""
    xp = get_array_module(dY, Yhat, inv_std, names=["dY", "Yhat", "inv_std"])
    _check(dY, kind)
    if Yhat.shape != dY.shape or Yhat.dtype != dY.dtype:
        raise ValueError(f"Yhat must have the shape and dtype of dY {tuple(dY.shape)}, got {tuple(Yhat.shape)}")
    return dispatch(_IMPLEMENTATIONS, "standardize_jmv", engine, xp, _LOADERS)(dY, Yhat, inv_std, kind)


#: op -> {engine: implementation}; compiled engines add their entries.
_IMPLEMENTATIONS = {"standardize": {"numpy": _standardize_ref}, "standardize_jmv": {"numpy": _jmv_ref}}
_LOADERS = {"numba": "._normalization_numba"}
