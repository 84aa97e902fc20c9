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
"""

from __future__ import annotations

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
    Xc = Y - Y.mean(axis=axes, keepdims=True)
    var = (Xc * Xc).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / xp.sqrt(var + eps)
    return Xc * inv_std, inv_std


def _jmv_ref(dY, Yhat, inv_std, kind):
    axes = _axes(kind, dY.ndim)
    return inv_std * (dY - dY.mean(axis=axes, keepdims=True) - Yhat * (Yhat * dY).mean(axis=axes, keepdims=True))


def standardize(Y, kind, eps, *, engine="auto"):
    """``(X̂, r)``: the standardized data and ``r = 1/sqrt(σ² + ε)``.

    Parameters
    ----------
    Y : array, shape (n_examples, C) or (n_examples, C, *spatial)
    kind : {'batch', 'instance'}
    eps : float > 0
    engine : {'auto', 'numpy', 'numba', 'cupy'}

    Returns
    -------
    Yhat : array like Y
    inv_std : array, shape of Y with the statistic axes of size 1
    """
    xp = get_array_module(Y, names=["Y"])
    _check(Y, kind)
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    return dispatch(_IMPLEMENTATIONS, "standardize", engine, xp, _LOADERS)(Y, kind, float(eps))


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
