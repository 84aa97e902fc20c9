"""Numba kernels of :mod:`meganet.kernels.normalization`.

Data are viewed as ``(n, C, P)`` (``P`` pixels; ``P = 1`` for vectors).  A
statistic group is a channel (batch: all ``n·P`` values) or an
(example, channel) pair (instance: ``P`` values; for vectors the ``C``
features of an example).  Groups run in parallel; each pass is a loop over the
group's values (two passes for μ and σ², one for the output).  The statistics
(float64) are also returned, for the overflow check of
:func:`meganet.kernels.normalization.standardize`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._numba_math import JIT
from .normalization import _IMPLEMENTATIONS, _axes


@njit(parallel=True, **JIT)
def _batch_stats(Y, eps, Yhat, inv, mean, var):
    n, C, P = Y.shape
    m = n * P
    for c in prange(C):
        acc = 0.0
        for s in range(n):
            for p in range(P):
                acc += Y[s, c, p]
        mu = acc / m
        acc = 0.0
        for s in range(n):
            for p in range(P):
                d = Y[s, c, p] - mu
                acc += d * d
        r = 1.0 / np.sqrt(acc / m + eps)
        inv[c] = r
        mean[c] = mu
        var[c] = acc / m
        for s in range(n):
            for p in range(P):
                Yhat[s, c, p] = (Y[s, c, p] - mu) * r


@njit(parallel=True, **JIT)
def _batch_jmv(dY, Yhat, inv, out):
    n, C, P = dY.shape
    m = n * P
    for c in prange(C):
        a = 0.0
        b = 0.0
        for s in range(n):
            for p in range(P):
                a += dY[s, c, p]
                b += Yhat[s, c, p] * dY[s, c, p]
        a /= m
        b /= m
        r = inv[c]
        for s in range(n):
            for p in range(P):
                out[s, c, p] = r * (dY[s, c, p] - a - Yhat[s, c, p] * b)


@njit(parallel=True, **JIT)
def _group_stats(Y, eps, Yhat, inv, mean, var):
    """Rows of ``Y`` (G, m) are the groups (instance normalization)."""
    G, m = Y.shape
    for g in prange(G):
        row = Y[g]
        acc = 0.0
        for k in range(m):
            acc += row[k]
        mu = acc / m
        acc = 0.0
        for k in range(m):
            d = row[k] - mu
            acc += d * d
        r = 1.0 / np.sqrt(acc / m + eps)
        inv[g] = r
        mean[g] = mu
        var[g] = acc / m
        out = Yhat[g]
        for k in range(m):
            out[k] = (row[k] - mu) * r


@njit(parallel=True, **JIT)
def _group_jmv(dY, Yhat, inv, out):
    G, m = dY.shape
    for g in prange(G):
        a = 0.0
        b = 0.0
        for k in range(m):
            a += dY[g, k]
            b += Yhat[g, k] * dY[g, k]
        a /= m
        b /= m
        r = inv[g]
        for k in range(m):
            out[g, k] = r * (dY[g, k] - a - Yhat[g, k] * b)


def _stat_shape(shape, kind):
    axes = _axes(kind, len(shape))
    return tuple(1 if k in axes else d for k, d in enumerate(shape))


def _standardize_numba(Y, kind, eps):
    Y = np.ascontiguousarray(Y)
    n, C = Y.shape[:2]
    Yhat = np.empty_like(Y)
    if kind == "batch":
        shape3 = (n, C, Y.size // max(n * C, 1))
        G = C
        inv, mean, var = np.empty(G, dtype=Y.dtype), np.empty(G), np.empty(G)
        _batch_stats(Y.reshape(shape3), eps, Yhat.reshape(shape3), inv, mean, var)
    else:
        G = n if Y.ndim == 2 else n * C
        inv, mean, var = np.empty(G, dtype=Y.dtype), np.empty(G), np.empty(G)
        _group_stats(Y.reshape(G, -1), eps, Yhat.reshape(G, -1), inv, mean, var)
    return Yhat, inv.reshape(_stat_shape(Y.shape, kind)), mean, var


def _jmv_numba(dY, Yhat, inv_std, kind):
    dY = np.ascontiguousarray(dY)
    Yhat = np.ascontiguousarray(Yhat)
    n, C = dY.shape[:2]
    out = np.empty_like(dY)
    inv = np.ascontiguousarray(inv_std).reshape(-1)
    if kind == "batch":
        shape3 = (n, C, dY.size // max(n * C, 1))
        _batch_jmv(dY.reshape(shape3), Yhat.reshape(shape3), inv, out.reshape(shape3))
    else:
        G = n if dY.ndim == 2 else n * C
        _group_jmv(dY.reshape(G, -1), Yhat.reshape(G, -1), inv, out.reshape(G, -1))
    return out


_IMPLEMENTATIONS["standardize"]["numba"] = _standardize_numba
_IMPLEMENTATIONS["standardize_jmv"]["numba"] = _jmv_numba
