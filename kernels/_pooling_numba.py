"""Numba kernels of :mod:`meganet.kernels.pooling` (one parallel pass each)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._numba_math import JIT
from .pooling import _IMPLEMENTATIONS


@njit(parallel=True, **JIT)
def _pool(Y, f, Z):
    n, C, h, w = Z.shape
    inv = 1.0 / (f * f)
    for t in prange(n * C):
        s = t // C
        c = t % C
        for i in range(h):
            row = Z[s, c, i]
            for j in range(w):
                row[j] = 0
            for a in range(f):
                src = Y[s, c, f * i + a]
                for j in range(w):
                    acc = row[j]
                    for b in range(f):
                        acc += src[f * j + b]
                    row[j] = acc
            for j in range(w):
                row[j] = row[j] * inv


@njit(parallel=True, **JIT)
def _spread(Z, f, Y):
    n, C, h, w = Z.shape
    inv = 1.0 / (f * f)
    for t in prange(n * C):
        s = t // C
        c = t % C
        for i in range(h):
            src = Z[s, c, i]
            for a in range(f):
                dst = Y[s, c, f * i + a]
                for j in range(w):
                    v = src[j] * inv
                    for b in range(f):
                        dst[f * j + b] = v


def _pool_numba(Y, f, out):
    n, C, H, W = Y.shape
    Z = out if out is not None else np.empty((n, C, H // f, W // f), dtype=Y.dtype)
    _pool(np.ascontiguousarray(Y), f, Z)
    return Z


def _spread_numba(Z, f, out):
    n, C, h, w = Z.shape
    Y = out if out is not None else np.empty((n, C, h * f, w * f), dtype=Z.dtype)
    _spread(np.ascontiguousarray(Z), f, Y)
    return Y


_IMPLEMENTATIONS["avg_pool2d"]["numba"] = _pool_numba
_IMPLEMENTATIONS["avg_pool2d_adjoint"]["numba"] = _spread_numba
