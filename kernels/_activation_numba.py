"""Numba kernel of :func:`meganet.kernels.activation.bias_activation` (one parallel pass)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import _buffers
from ._numba_math import JIT, act_row, act_value, tanh64
from .activation import _IMPLEMENTATIONS, activation_code


@njit(parallel=True, **JIT)
def _bias_act(U, b, code, eta, S, D):
    """``S[s, c, p] = σ(U[s, c, p] + b[c])``, ``D = σ'``; U, S, D of shape (n, C, P)."""
    n, C, P = U.shape
    for t in prange(n * C):
        s = t // C
        c = t % C
        bc = b[c]
        u = U[s, c]
        sr = S[s, c]
        dr = D[s, c]
        act_row(u, bc, code, eta, sr, dr)


@njit(parallel=True, **JIT)
def _bias_act_value(U, b, code, eta, S):
    """``S[s, c, p] = σ(U[s, c, p] + b[c])`` only (no ``σ'``: a cache-free forward)."""
    n, C, P = U.shape
    for t in prange(n * C):
        s = t // C
        c = t % C
        bc = b[c]
        u = U[s, c]
        sr = S[s, c]
        if code == 1:  # tanh: a branch-free loop that vectorizes
            for p in range(P):
                sr[p] = tanh64(u[p] + bc)
        else:
            for p in range(P):
                sr[p] = act_value(u[p] + bc, code, eta)


def _bias_activation_numba(U, b, activation, derivative, out, dsigma_out):
    code, eta = activation_code(activation)
    U = np.ascontiguousarray(U)
    n, C = U.shape[:2]
    bb = np.zeros(C, dtype=U.dtype) if b is None else np.ascontiguousarray(b)
    S = out if out is not None else _buffers.empty(U.shape, U.dtype)
    shape3 = (n, C, U.size // max(n * C, 1))
    if not derivative:
        _bias_act_value(U.reshape(shape3), bb, code, eta, S.reshape(shape3))
        return S, None
    D = dsigma_out if dsigma_out is not None else _buffers.empty(U.shape, U.dtype)
    _bias_act(U.reshape(shape3), bb, code, eta, S.reshape(shape3), D.reshape(shape3))
    return S, D


@njit(parallel=True, **JIT)
def _dfv_mul(S, W, code, out):
    """``out = σ'(x) ⊙ W`` from ``S = σ(x)`` (flat arrays; codes of tanh, relu, sigmoid, identity)."""
    n = S.shape[0]
    nb = (n + 4095) // 4096
    for blk in prange(nb):
        lo = blk * 4096
        hi = min(n, lo + 4096)
        if code == 1:
            for p in range(lo, hi):
                out[p] = (1 - S[p] * S[p]) * W[p]
        elif code == 4:
            for p in range(lo, hi):
                out[p] = (S[p] * (1 - S[p])) * W[p]
        elif code == 2:
            for p in range(lo, hi):
                out[p] = W[p] if S[p] > 0 else 0
        else:
            for p in range(lo, hi):
                out[p] = W[p]


def _derivative_from_value_mul_numba(S, W, activation):
    code, _ = activation_code(activation)
    S, W = np.ascontiguousarray(S), np.ascontiguousarray(W)
    out = np.empty_like(W)
    _dfv_mul(S.reshape(-1), W.reshape(-1), code, out.reshape(-1))
    return out


_IMPLEMENTATIONS["bias_activation"]["numba"] = _bias_activation_numba
_IMPLEMENTATIONS["derivative_from_value_mul"]["numba"] = _derivative_from_value_mul_numba
