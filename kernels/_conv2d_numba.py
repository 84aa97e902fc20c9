r"""Numba (CPU) kernels of the 2-D convolution: direct "flat padded" stencils.

Registered as engine ``'numba'`` of :mod:`meganet.kernels.conv2d` when first
resolved.  Same maps and argument conventions as the references there.

Method
------
The input of one example is padded (zeros, or periodically continued) by
``p = (kh−1)/2`` rows and ``q = (kw−1)/2`` columns and stored flat, channel by
channel, with row length ``Wp = W + 2q``: ``Yp[s, i·Lp + x·Wp + y]``; the
padded copy of one example is built by the thread that uses it, in a buffer
that stays in L2 (no padded copy of the whole batch goes through memory).  In this
layout every stencil entry ``(i, a, b)`` ("tap") is a constant shift
``off = i·Lp + a·Wp + b``, so

.. math:: Z[s, o, l] = \sum_t K[o, t]\; Yp[s, \mathrm{off}_t + l],
          \qquad l = x·Wp + y,\quad 0 ≤ l < H·Wp,

a sum of shifted contiguous rows (the two columns ``y ≥ W`` of every output
row are computed and dropped).  No im2col matrix is formed: the input is read
from L1/L2 cache ``C_in·kh·kw`` times.  The inner loop updates four output
channels from three taps at once (12 multiply-adds per loaded value of the
accumulators), which keeps the loop compute bound and lets LLVM vectorize it
over ``l`` (AVX2/AVX-512); examples × output-channel blocks run in parallel
(``prange``).  The same loop with a flipped, channel-swapped stencil is the
adjoint ``KᵀZ``.  The θ-adjoint is the matching reduction
``dK[o, t] = Σ_{s,l} Wg[s, o, l] Yp[s, off_t + l]`` (``Wg`` is ``W`` on the
``H × Wp`` grid, zero in the two extra columns, also built per example),
computed per chunk of examples in parallel with private partial sums (no
races), then added in chunk order (one chunk per thread, or chunks fixed by
the size in deterministic mode, see :func:`meganet.kernels.set_deterministic`).

A 1×1 stencil needs no padding (``Yp`` is a view of ``Y``); every other odd
``kh × kw`` goes through the same kernels.  Channel counts that are not
multiples of four and tap counts that are not multiples of three are padded
with zero weights (results of the padding are discarded).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import _buffers, _reduction_bounds
from ._numba_math import JIT
from .conv2d import _IMPLEMENTATIONS

_OB = 4  # output channels per inner loop
_G = 3  # taps per inner loop


# ------------------------------------------------------------------ layout
@njit(inline="always", **JIT)
def _pad_example(Y, s, p, q, periodic, Wp, Lp, out):
    """``out[i·Lp + x·Wp + y] = Y[s, i, x − p, y − q]`` (zero or periodic outside); slack zeroed."""
    _, C, H, W = Y.shape
    Hp = H + 2 * p
    for i in range(C):
        o = out[i * Lp:(i + 1) * Lp]
        for x in range(Hp):
            xs = x - p
            base = x * Wp
            if periodic:
                xs = xs % H
            elif xs < 0 or xs >= H:
                for y in range(Wp):
                    o[base + y] = 0
                continue
            src = Y[s, i, xs]
            for y in range(q):
                o[base + y] = src[(y - q) % W] if periodic else 0
            for y in range(W):
                o[base + q + y] = src[y]
            for y in range(q):
                o[base + q + W + y] = src[y % W] if periodic else 0
        for y in range(Hp * Wp, Lp):
            o[y] = 0


@njit(inline="always", **JIT)
def _grid_example(W, s, Wp, out):
    """``out[o, x·Wp + y] = W[s, o, x, y]`` for ``y < W``, zero for ``W ≤ y < Wp``."""
    _, C, H, Wd = W.shape
    for c in range(C):
        o = out[c]
        for x in range(H):
            src = W[s, c, x]
            for y in range(Wd):
                o[x * Wp + y] = src[y]
            for y in range(Wd, Wp):
                o[x * Wp + y] = 0


# ----------------------------------------------------------------- forward
@njit(parallel=True, **JIT)
def _conv_taps(Y, Kt, off, p, q, periodic, Wp, Lp, Z):
    """``Z[s, o, x, y] = Σ_t Kt[o, t] Yp[s, off_t + x·Wp + y]`` with ``Yp`` the
    padded example (built per example in a buffer that stays in L2).

    Y : (n, C_in, H, W) C-contiguous; Kt : (C_out rounded up to 4, T) with T a
    multiple of 3; off : (T,) int64; Z : (n, C_out, H, W).
    """
    n, C_in, H, _ = Y.shape
    C_out = Z.shape[1]
    W = Z.shape[3]
    L = H * Wp
    T = off.shape[0]
    nob = Kt.shape[0] // 4
    one = p == 0 and q == 0
    for s in prange(n):
        y = Y[s].reshape(C_in * H * W) if one else np.empty(C_in * Lp, dtype=Y.dtype)
        if not one:
            _pad_example(Y, s, p, q, periodic, Wp, Lp, y)
        acc = np.empty((4, L), dtype=Y.dtype)
        a0 = acc[0]
        a1 = acc[1]
        a2 = acc[2]
        a3 = acc[3]
        for ob in range(nob):
            o = 4 * ob
            acc[...] = 0
            for g in range(0, T, 3):
                k00 = Kt[o, g]
                k01 = Kt[o, g + 1]
                k02 = Kt[o, g + 2]
                k10 = Kt[o + 1, g]
                k11 = Kt[o + 1, g + 1]
                k12 = Kt[o + 1, g + 2]
                k20 = Kt[o + 2, g]
                k21 = Kt[o + 2, g + 1]
                k22 = Kt[o + 2, g + 2]
                k30 = Kt[o + 3, g]
                k31 = Kt[o + 3, g + 1]
                k32 = Kt[o + 3, g + 2]
                y0 = y[off[g]:off[g] + L]
                y1 = y[off[g + 1]:off[g + 1] + L]
                y2 = y[off[g + 2]:off[g + 2] + L]
                for l in range(L):
                    v0 = y0[l]
                    v1 = y1[l]
                    v2 = y2[l]
                    a0[l] += k00 * v0 + k01 * v1 + k02 * v2
                    a1[l] += k10 * v0 + k11 * v1 + k12 * v2
                    a2[l] += k20 * v0 + k21 * v1 + k22 * v2
                    a3[l] += k30 * v0 + k31 * v1 + k32 * v2
            for j in range(4):
                if o + j < C_out:
                    aj = acc[j]
                    for x in range(H):
                        zr = Z[s, o + j, x]
                        for yy in range(W):
                            zr[yy] = aj[x * Wp + yy]


# ------------------------------------------------------------ weight adjoint
@njit(parallel=True, fastmath={"reassoc", "contract"}, **JIT)
def _weight_taps(Y, Wt, off, p, q, periodic, Wp, Lp, bounds, zero, out):
    """Partial sums ``out[c, o, t] = Σ_{s ∈ chunk c} Σ_l Wg[s, o, l] Yp[s, off_t + l]``
    (``Yp``, ``Wg``: the example padded / on the ``H × Wp`` grid, built per
    example in L2-resident buffers).

    Y : (n, C_in, H, W); Wt : (n, C_out, H, W); off : (T,) int64 (T multiple of
    3); bounds : (n_chunks + 1,) example ranges; zero : 0 in the data's dtype
    (the accumulators' type); out : (n_chunks, C_out rounded up to 4, T), zeroed here.
    """
    n_chunks = bounds.shape[0] - 1
    n, C_in, H, Wd = Y.shape
    C_out = Wt.shape[1]
    L = H * Wp
    T = off.shape[0]
    C4 = out.shape[1]
    one = p == 0 and q == 0
    for c in prange(n_chunks):
        oc = out[c]
        oc[:, :] = 0
        ybuf = np.empty(C_in * Lp, dtype=Y.dtype)
        wg = np.empty((C_out, L), dtype=Y.dtype)
        for s in range(bounds[c], bounds[c + 1]):
            if one:
                y = Y[s].reshape(C_in * H * Wd)
                wgs = Wt[s].reshape(C_out, L)
            else:
                _pad_example(Y, s, p, q, periodic, Wp, Lp, ybuf)
                _grid_example(Wt, s, Wp, wg)
                y = ybuf
                wgs = wg
            for o in range(0, C4, 4):
                w0 = wgs[min(o, C_out - 1)]
                w1 = wgs[min(o + 1, C_out - 1)]
                w2 = wgs[min(o + 2, C_out - 1)]
                w3 = wgs[min(o + 3, C_out - 1)]
                for g in range(0, T, 3):
                    y0 = y[off[g]:off[g] + L]
                    y1 = y[off[g + 1]:off[g + 1] + L]
                    y2 = y[off[g + 2]:off[g + 2] + L]
                    s00 = s01 = s02 = s10 = s11 = s12 = zero
                    s20 = s21 = s22 = s30 = s31 = s32 = zero
                    for l in range(L):
                        v0 = y0[l]
                        v1 = y1[l]
                        v2 = y2[l]
                        u0 = w0[l]
                        u1 = w1[l]
                        u2 = w2[l]
                        u3 = w3[l]
                        s00 += u0 * v0
                        s01 += u0 * v1
                        s02 += u0 * v2
                        s10 += u1 * v0
                        s11 += u1 * v1
                        s12 += u1 * v2
                        s20 += u2 * v0
                        s21 += u2 * v1
                        s22 += u2 * v2
                        s30 += u3 * v0
                        s31 += u3 * v1
                        s32 += u3 * v2
                    oc[o, g] += s00
                    oc[o, g + 1] += s01
                    oc[o, g + 2] += s02
                    oc[o + 1, g] += s10
                    oc[o + 1, g + 1] += s11
                    oc[o + 1, g + 2] += s12
                    oc[o + 2, g] += s20
                    oc[o + 2, g + 1] += s21
                    oc[o + 2, g + 2] += s22
                    oc[o + 3, g] += s30
                    oc[o + 3, g + 1] += s31
                    oc[o + 3, g + 2] += s32


# ------------------------------------------------------------------ drivers
def _round_up(a, m):
    return -(-a // m) * m


def _geometry(shape, kh, kw):
    """Padding ``p, q``, padded row length ``Wp`` and flat channel length ``Lp``."""
    _, _, H, W = shape
    p, q = (kh - 1) // 2, (kw - 1) // 2
    if kh == 1 and kw == 1:
        return 0, 0, W, H * W
    Wp = W + 2 * q
    return p, q, Wp, (H + 2 * p) * Wp + 2 * q


def _offsets(c_in, kh, kw, Wp, Lp):
    """Tap offsets ``i·Lp + a·Wp + b`` in the order of ``K.reshape(C_out, -1)``,
    padded with zeros to a multiple of 3."""
    i, a, b = np.meshgrid(np.arange(c_in), np.arange(kh), np.arange(kw), indexing="ij")
    off = (i * Lp + a * Wp + b).reshape(-1).astype(np.int64)
    out = np.zeros(_round_up(off.size, _G), dtype=np.int64)
    out[:off.size] = off
    return out


def _forward_numba(Y, K, boundary, out):
    Y = np.ascontiguousarray(Y)
    n, c_in, H, W = Y.shape
    c_out, _, kh, kw = K.shape
    p, q, Wp, Lp = _geometry(Y.shape, kh, kw)
    off = _offsets(c_in, kh, kw, Wp, Lp)
    Kt = np.zeros((_round_up(c_out, _OB), off.size), dtype=Y.dtype)
    Kt[:c_out, :c_in * kh * kw] = np.asarray(K).reshape(c_out, -1)
    Z = out if out is not None else _buffers.empty((n, c_out, H, W), Y.dtype)
    _conv_taps(Y, Kt, off, p, q, boundary == "periodic", Wp, Lp, Z)
    return Z


def _adjoint_input_numba(Z, K, boundary, out):
    K_T = np.ascontiguousarray(K[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return _forward_numba(Z, K_T, boundary, out)


def _adjoint_weight_numba(Y, W, kernel_shape, boundary, per_example, out):
    Y = np.ascontiguousarray(Y)
    W = np.ascontiguousarray(W)
    n, c_in, H, Wd = Y.shape
    c_out = W.shape[1]
    kh, kw = kernel_shape
    p, q, Wp, Lp = _geometry(Y.shape, kh, kw)
    off = _offsets(c_in, kh, kw, Wp, Lp)
    n_taps = c_in * kh * kw
    if per_example:
        bounds = np.arange(n + 1, dtype=np.int64)
    else:  # one partial sum per chunk of examples, added in chunk order (see meganet.kernels.set_deterministic)
        bounds = _reduction_bounds(n, 1, _round_up(c_out, _OB) * off.size * Y.dtype.itemsize)
    part = np.empty((bounds.size - 1, _round_up(c_out, _OB), off.size), dtype=Y.dtype)
    _weight_taps(Y, W, off, p, q, boundary == "periodic", Wp, Lp, bounds, Y.dtype.type(0), part)
    G = part[:, :c_out, :n_taps]
    if per_example:
        res = G.reshape(n, c_out, c_in, kh, kw)
    else:
        res = G.sum(axis=0).reshape(c_out, c_in, kh, kw)
    if out is None:
        return np.ascontiguousarray(res)
    out[...] = res
    return out


_IMPLEMENTATIONS["forward"]["numba"] = _forward_numba
_IMPLEMENTATIONS["adjoint_input"]["numba"] = _adjoint_input_numba
_IMPLEMENTATIONS["adjoint_weight"]["numba"] = _adjoint_weight_numba
