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

Fused epilogue
~~~~~~~~~~~~~~
:func:`_conv_taps` writes its accumulators through an
:class:`~meganet.kernels.epilogue.Epilogue`: ``V = α·C + add + bias``, then ``V``,
``σ(V)`` or ``σ'(S) ⊙ V`` (see :func:`_epilogue_rows`), while the output channel
is still in L1.  The symmetric layer's forward Euler step uses it for bias + σ
after ``K Y`` and ``Y − h·`` after ``Kᵀ S`` (and ``σ' ⊙`` / ``W + h·`` in the
adjoint step), which removed one to three element-wise passes over 8-MiB
arrays per convolution at B2 size.  float32 data take the rational float32
``tanh`` (:func:`~meganet.kernels._numba_math.tanh32`, ≤ 7 ulp) in the epilogue.

Winograd (3×3 stencils, large problems)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
3×3 forward and adjoint convolutions (with their epilogues, and the symmetric step) with at least
:data:`WINOGRAD_MIN_CHANNELS` channels on images of at least :data:`WINOGRAD_MIN_PIXELS` pixels run
:math:`F(2×2, 3×3)` from :mod:`._winograd_numba` instead (2.25× fewer multiply-adds; see there), unless
:data:`METHOD` says otherwise.

Implicit GEMM (opt-in)
~~~~~~~~~~~~~~~~~~~~~
:func:`_conv_gemm` / :func:`_weight_gemm` compute the same maps with BLAS
(scipy's ``?gemm`` through :mod:`._gemm_numba`): the example is padded
*channels last*, ``Yp[(x·Wp + y)·C_in + i]``, so that every tap ``(a, b)`` is
the ``H·Wp × C_in`` matrix that starts at pixel ``a·Wp + b`` (leading dimension
``C_in``, no im2col copy); the forward is ``kh·kw`` GEMMs ``Zt += Yp_ab·K_ab``
(``H·Wp × C_out``, accumulated with ``beta = 1``) and a tiled transpose back to
channels first; the θ-adjoint is ``dK_ab += Wg·Yp_ab`` per example.  Each numba
thread calls a single-threaded BLAS on its own examples.  On the machine it was
measured on (2-core AMD EPYC, scipy's OpenBLAS 0.3.30) the BLAS calls alone ran
at about the direct stencil's speed and the two layout transposes made the path
10–40 % slower, so ``METHOD = 'auto'`` keeps the direct stencil (see
:data:`GEMM_MIN_CHANNEL_PRODUCT`); ``MEGANET_CONV2D_METHOD=gemm`` selects it.

A 1×1 stencil needs no padding (``Yp`` is a view of ``Y``); every other odd
``kh × kw`` goes through the same kernels.  Channel counts that are not
multiples of four and tap counts that are not multiples of three are padded
with zero weights (results of the padding are discarded).
"""

from __future__ import annotations

import os

import numpy as np
import numba
from numba import get_thread_id, njit, prange

from . import _buffers, _reduction_bounds
from . import _gemm_numba
gemm_rm = getattr(_gemm_numba, "gemm_rm", None)
from ._numba_math import JIT, act_row, tanh32, tanh64
from .epilogue import apply_epilogue
from .conv2d import _IMPLEMENTATIONS

_OB = 4  # output channels per inner loop
#: The implicit-GEMM kernels call BLAS through a ctypes pointer, which numba
#: cannot cache: they compile in every process (about 2 s each).
_JIT_NOCACHE = {**JIT, "cache": False}
_TILE = 16  # pixels per tile of the channels-first <-> channels-last transposes
_G = 3  # taps per inner loop


# ------------------------------------------------------------------ layout
@njit(**JIT)
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


@njit(**JIT)
def _example_input(Y, s, one, p, q, periodic, Wp, Lp, buf):
    """Example ``s`` of Y as the stencil loops read it: flat ``Y[s]`` for a 1×1 stencil (a view), else
    padded into ``buf`` (:func:`_pad_example`)."""
    if one:
        return Y[s].reshape(Y.shape[1] * Y.shape[2] * Y.shape[3])
    _pad_example(Y, s, p, q, periodic, Wp, Lp, buf)
    return buf


@njit(**JIT)
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


@njit(**JIT)
def _epilogue_rows(a, s, oc, H, W, Wp, Z, mode, alpha, B, has_B, bias, has_bias, S, code, eta, v, d):
    """Write the accumulator ``a`` (one output channel on the ``H × Wp`` grid) into ``Z[s, oc]``
    through the epilogue of :func:`_conv_taps`; ``v``, ``d``: scratch planes of ``H·W`` entries.
    ``V`` is gathered into ``v`` (dropping the padding columns), then σ or σ' ⊙ runs over the whole
    plane: long branch-free loops that vectorize."""
    al = Z.dtype.type(alpha)
    bo = bias[oc] if has_bias else Z.dtype.type(0)
    f32 = Z.itemsize == 4
    HW = H * W
    z = Z[s, oc].reshape(HW)
    t = z if mode == 0 else v  # mode 0 writes V straight into Z
    if has_B:
        bb = B[s, oc].reshape(HW)
        for x in range(H):
            for yy in range(W):
                t[x * W + yy] = al * a[x * Wp + yy] + bb[x * W + yy] + bo
    else:
        for x in range(H):
            for yy in range(W):
                t[x * W + yy] = al * a[x * Wp + yy] + bo
    if mode == 1:
        if code == 1 and f32:  # float32 data: the rational float32 tanh (≤ 7 ulp, 6× cheaper)
            for k in range(HW):
                z[k] = tanh32(v[k])
        elif code == 1:
            for k in range(HW):
                z[k] = tanh64(v[k])
        else:
            act_row(v, 0.0, code, eta, z, d)
    elif mode == 2:
        sr = S[s, oc].reshape(HW)
        if code == 1:
            for k in range(HW):
                z[k] = (1 - sr[k] * sr[k]) * v[k]
        elif code == 4:
            for k in range(HW):
                z[k] = (sr[k] * (1 - sr[k])) * v[k]
        elif code == 2:
            for k in range(HW):
                z[k] = v[k] if sr[k] > 0 else 0
        else:
            for k in range(HW):
                z[k] = v[k]


# ----------------------------------------------------------------- forward
#: ``contract``: the three multiply-adds per accumulator and tap group become fused multiply-adds (no
#: reassociation: the sum over taps keeps its order).  Measured 5–9 % faster at B2 size on the AMD EPYC
#: (Zen 4) VM, interleaved in one process (2026-12-05).
@njit(fastmath={"contract"}, **JIT)
def _conv_example(y, Kt, off, L, C_out, acc, s, H, W, Wp, Z, mode, alpha, B, has_B, bias, has_bias, S, code, eta,
                  vrow, drow, ob0, ob1):
    """One example: ``C[o, l] = Σ_t Kt[o, t] y[off_t + l]`` (``y``: the padded example, flat), four
    output channels at a time in ``acc`` (4, L), each written into ``Z[s]`` through the epilogue
    (:func:`_epilogue_rows`); the blocks of four output channels ``ob0 ≤ ob < ob1`` only."""
    T = off.shape[0]
    a0 = acc[0]
    a1 = acc[1]
    a2 = acc[2]
    a3 = acc[3]
    for ob in range(ob0, ob1):
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
                _epilogue_rows(acc[j], s, o + j, H, W, Wp, Z, mode, alpha, B, has_B, bias, has_bias, S, code, eta,
                               vrow, drow)


@njit(**JIT)
def _part(c, parts, n_blocks):
    """Work item ``c`` of a parallel loop over ``chunks × parts``: its chunk and its range
    ``[b0, b1)`` of the ``n_blocks`` output-channel blocks (``parts`` > 1 when there are fewer
    examples than threads, see :func:`_work_split`)."""
    k = c % parts
    return c // parts, k * n_blocks // parts, (k + 1) * n_blocks // parts


@njit(parallel=True, **JIT)
def _conv_taps(Y, Kt, off, p, q, periodic, Wp, Lp, bounds, parts, Z, mode, alpha, B, has_B, bias, has_bias, S,
               code, eta):
    """``C[s, o, x, y] = Σ_t Kt[o, t] Yp[s, off_t + x·Wp + y]`` with ``Yp`` the
    padded example (built per example in a buffer that stays in L2), written
    through the epilogue (:mod:`meganet.kernels.epilogue`) ``V = α C + B + bias_o``,
    ``Z = V`` (``mode`` 0), ``σ(V)`` (1) or ``σ'(S) ⊙ V`` (2, σ' from the value S).

    Y : (n, C_in, H, W) C-contiguous; Kt : (C_out rounded up to 4, T) with T a
    multiple of 3; off : (T,) int64; bounds : example ranges, one per parallel
    chunk (:func:`_example_bounds`); Z : (n, C_out, H, W); B, S like Z (any
    4-d array when unused: ``has_B``, ``mode``); bias : (C_out,) (any when
    ``has_bias`` is False).  ``B`` may be ``Z`` itself (each entry is read
    before it is written, by the same thread).  ``parts``: the output-channel blocks of each
    chunk are split into this many work items (:func:`_part`).
    """
    n, C_in, H, W = Y.shape
    L = H * Wp
    one = p == 0 and q == 0
    for c in prange((bounds.shape[0] - 1) * parts):
        ch, ob0, ob1 = _part(c, parts, Kt.shape[0] // 4)
        # one set of buffers per work item
        ybuf = np.empty(0 if one else C_in * Lp, dtype=Y.dtype)
        acc = np.empty((4, L), dtype=Y.dtype)
        vrow = np.empty(H * W, dtype=Y.dtype)  # epilogue scratch planes
        drow = np.empty(H * W if mode == 1 and code != 1 else 0, dtype=Y.dtype)
        for s in range(bounds[ch], bounds[ch + 1]):
            y = _example_input(Y, s, one, p, q, periodic, Wp, Lp, ybuf)
            _conv_example(y, Kt, off, L, Z.shape[1], acc, s, H, W, Wp, Z, mode, alpha, B, has_B, bias, has_bias, S,
                          code, eta, vrow, drow, ob0, ob1)


@njit(parallel=True, **JIT)
def _symmetric_step(Y, Kt, KTt, off, offT, p, q, periodic, Wp, Lp, bounds, C_mid, bias, has_bias, code, eta, h, Z,
                    S, store_S):
    """The symmetric layer's forward Euler step per example, ``S = σ(K Y + b)``, ``Z = Y − h KᵀS``, with
    ``S`` of one example kept in L2 between the two convolutions (padded there for the second), not
    written to memory and read back (``store_S``: also written to ``S``, for the cache).

    Y, Z : (n, C, H, W); Kt : (C_mid rounded up to 4, T), KTt : (C rounded up to 4, T') the stencils of K
    and Kᵀ as for :func:`_conv_taps` (offsets ``off``, ``offT``); S : (n, C_mid, H, W) when ``store_S``
    (else any 4-d array).  Z may be Y (each example is read into the padded buffer, and each entry of
    ``Y[s]`` is read before the same thread writes it).
    """
    n, C, H, W = Y.shape
    L = H * Wp
    one = p == 0 and q == 0
    dummy = np.empty((0, 0, 0, 0), dtype=Y.dtype)
    for c in prange(bounds.shape[0] - 1):
        ybuf = np.empty(0 if one else C * Lp, dtype=Y.dtype)
        sbuf = np.empty(0 if one else C_mid * Lp, dtype=Y.dtype)
        stmp = np.empty((0 if store_S else 1, C_mid, H, W), dtype=Y.dtype)
        acc = np.empty((4, L), dtype=Y.dtype)
        vrow = np.empty(H * W, dtype=Y.dtype)
        drow = np.empty(H * W if code != 1 else 0, dtype=Y.dtype)
        for s in range(bounds[c], bounds[c + 1]):
            y = _example_input(Y, s, one, p, q, periodic, Wp, Lp, ybuf)
            St = S if store_S else stmp
            si = s if store_S else 0
            _conv_example(y, Kt, off, L, C_mid, acc, si, H, W, Wp, St, 1, 1.0, dummy, False, bias, has_bias, dummy,
                          code, eta, vrow, drow, 0, Kt.shape[0] // 4)
            sp = _example_input(St, si, one, p, q, periodic, Wp, Lp, sbuf)
            _conv_example(sp, KTt, offT, L, C, acc, s, H, W, Wp, Z, 0, -h, Y, True, bias, False, dummy, code, eta,
                          vrow, drow, 0, KTt.shape[0] // 4)


# ------------------------------------------------------------ weight adjoint
@njit(parallel=True, fastmath={"reassoc", "contract"}, **JIT)
def _weight_taps(Y, Wt, off, p, q, periodic, Wp, Lp, bounds, parts, zero, out):
    """Partial sums ``out[c, o, t] = Σ_{s ∈ chunk c} Σ_l Wg[s, o, l] Yp[s, off_t + l]``
    (``Yp``, ``Wg``: the example padded / on the ``H × Wp`` grid, built per
    example in L2-resident buffers).

    Y : (n, C_in, H, W); Wt : (n, C_out, H, W); off : (T,) int64 (T multiple of
    3); bounds : (n_chunks + 1,) example ranges; zero : 0 in the data's dtype
    (the accumulators' type); out : (n_chunks, C_out rounded up to 4, T), zeroed here; parts : the
    output-channel blocks of each chunk are split into this many work items (:func:`_part`; their
    rows of ``out[c]`` are disjoint).
    """
    n_chunks = bounds.shape[0] - 1
    n, C_in, H, Wd = Y.shape
    C_out = Wt.shape[1]
    L = H * Wp
    T = off.shape[0]
    C4 = out.shape[1]
    one = p == 0 and q == 0
    for item in prange(n_chunks * parts):
        c, ob0, ob1 = _part(item, parts, C4 // 4)
        oc = out[c]
        oc[4 * ob0:4 * ob1, :] = 0
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
            for o in range(4 * ob0, 4 * ob1, 4):
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


# --------------------------------------------------------- implicit GEMM
@njit(inline="always", **JIT)
def _pad_example_nhwc(Y, s, p, q, periodic, Wp, Lp, out):
    """Channels last: ``out[(x·Wp + y)·C + i] = Y[s, i, x − p, y − q]`` (zero or
    periodic outside), ``x < H + 2p``, ``y < Wp``; the slack pixels up to ``Lp`` zeroed."""
    _, C, H, W = Y.shape
    Hp = H + 2 * p
    for x in range(Hp):
        xs = x - p
        row = x * Wp * C
        if periodic:
            xs = xs % H
        elif xs < 0 or xs >= H:
            out[row:row + Wp * C] = 0
            continue
        for i in range(C):
            src = Y[s, i, xs]
            for y in range(q):
                out[row + y * C + i] = src[(y - q) % W] if periodic else 0
                out[row + (q + W + y) * C + i] = src[y % W] if periodic else 0
        for y0 in range(0, W, _TILE):  # transpose in L1-sized tiles
            y1 = min(y0 + _TILE, W)
            for i in range(C):
                src = Y[s, i, xs]
                for y in range(y0, y1):
                    out[row + (q + y) * C + i] = src[y]
    out[Hp * Wp * C:Lp * C] = 0


@njit(parallel=True, **_JIT_NOCACHE)
def _conv_gemm(Y, Kt, p, q, periodic, Wp, Lp, Z, ybuf, zbuf, si, sf, sd):
    """Implicit GEMM: ``Zt[l, o] = Σ_{a,b} Σ_i Yp[l + a·Wp + b, i] Kt[a, b, i, o]``
    with ``Yp`` the example padded channels-last (``Lp × C_in``, built per
    example) and ``l = x·Wp + y``: one BLAS ``gemm`` per tap ``(a, b)`` on the
    shifted window of ``Yp`` (no im2col copy), accumulated with ``beta = 1``;
    then ``Z[s, o, x, y] = Zt[x·Wp + y, o]`` for ``y < W``.

    Y : (n, C_in, H, W); Kt : (kh, kw, C_in, C_out) C-contiguous; Z : (n, C_out, H, W);
    ybuf : (threads, Lp·C_in), zbuf : (threads, H·Wp·C_out) and the BLAS scratch
    ``si, sf, sd`` (:func:`._gemm_numba.scratch`): per-thread buffers.
    """
    n, C_in, H, W = Y.shape
    C_out = Z.shape[1]
    kh, kw = Kt.shape[0], Kt.shape[1]
    L = H * Wp
    isz = Y.itemsize
    kbase = Kt.ctypes.data
    for s in prange(n):
        tid = get_thread_id()
        yp = ybuf[tid]
        zt = zbuf[tid]
        _pad_example_nhwc(Y, s, p, q, periodic, Wp, Lp, yp)
        ybase = ybuf.ctypes.data + tid * ybuf.shape[1] * isz
        zbase = zbuf.ctypes.data + tid * zbuf.shape[1] * isz
        for a in range(kh):
            for b in range(kw):
                t = a * kw + b
                gemm_rm(si[tid], sf[tid], sd[tid], L, C_out, C_in, ybase + (a * Wp + b) * C_in * isz, C_in,
                        kbase + t * C_in * C_out * isz, C_out, zbase, C_out, 0.0 if t == 0 else 1.0,
                        False, False, isz)
        for x in range(H):  # transpose back in L1-sized tiles
            for y0 in range(0, W, _TILE):
                y1 = min(y0 + _TILE, W)
                for o in range(C_out):
                    zr = Z[s, o, x]
                    for y in range(y0, y1):
                        zr[y] = zt[(x * Wp + y) * C_out + o]


@njit(parallel=True, **_JIT_NOCACHE)
def _weight_gemm(Y, Wt, kh, kw, p, q, periodic, Wp, Lp, bounds, out, ybuf, wbuf, si, sf, sd):
    """Partial sums ``out[c, a, b, o, i] = Σ_{s ∈ chunk c} Σ_l Wg[s, o, l] Yp[s, l + a·Wp + b, i]``:
    one BLAS ``gemm`` (``C_out × L`` times ``L × C_in``) per example and tap,
    accumulated with ``beta = 1``.  ``Wg``: ``W`` on the ``H × Wp`` grid, ``Yp``:
    the example padded channels-last, both built per example in the per-thread
    buffers ``ybuf`` (threads, Lp·C_in) and ``wbuf`` (threads, C_out, H·Wp).

    out : (n_chunks, kh, kw, C_out, C_in) C-contiguous, zeroed here.
    """
    n_chunks = bounds.shape[0] - 1
    n, C_in, H, Wd = Y.shape
    C_out = Wt.shape[1]
    L = H * Wp
    isz = Y.itemsize
    csize = kh * kw * C_out * C_in
    for c in prange(n_chunks):
        tid = get_thread_id()
        oc = out[c]
        oc[...] = 0
        yp = ybuf[tid]
        wg = wbuf[tid]
        ybase = ybuf.ctypes.data + tid * ybuf.shape[1] * isz
        wbase = wbuf.ctypes.data + tid * C_out * L * isz
        obase = out.ctypes.data + c * csize * isz
        for s in range(bounds[c], bounds[c + 1]):
            _pad_example_nhwc(Y, s, p, q, periodic, Wp, Lp, yp)
            _grid_example(Wt, s, Wp, wg)
            for a in range(kh):
                for b in range(kw):
                    t = a * kw + b
                    gemm_rm(si[tid], sf[tid], sd[tid], C_out, C_in, L, wbase, L,
                            ybase + (a * Wp + b) * C_in * isz, C_in, obase + t * C_out * C_in * isz, C_in, 1.0,
                            False, False, isz)


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


#: Which kernels the drivers use: ``'auto'`` (:func:`_use_winograd`, then :func:`_use_gemm`),
#: ``'winograd'`` (:mod:`._winograd_numba` for every 3×3 stencil, the direct loops for the others),
#: ``'gemm'`` (the implicit GEMM wherever scipy's BLAS is usable) or ``'direct'`` (the stencil loops
#: only).  Initial value from the environment variable ``MEGANET_CONV2D_METHOD``; tests and
#: benchmarks set it to force a path.
METHOD = os.environ.get("MEGANET_CONV2D_METHOD", "auto")
METHODS = ("auto", "direct", "winograd", "gemm")

#: ``'auto'`` takes the implicit GEMM when ``C_in·C_out`` reaches this (``None``:
#: never).  Measured on the 2-core AMD EPYC (Zen 4) VM with scipy's OpenBLAS
#: 0.3.30 (``benchmarks/results/b2_gemm/README.md``): the direct stencil ran at
#: the single-core BLAS rate already (82 vs 84 GFLOP/s, float32, B2 shapes) and
#: the GEMM path lost its 10–40 % to the two layout transposes for 16–128
#: channels in float32 and float64, so ``'auto'`` keeps the direct stencil.
GEMM_MIN_CHANNEL_PRODUCT = None


def _use_gemm(c_in, c_out):
    """Implicit GEMM (one BLAS call per tap, inner dimension ``C_in``) or the direct stencil."""
    method = _method()
    if method in ("direct", "winograd") or not _gemm_numba.available():
        return False
    if method == "gemm":
        return True
    return GEMM_MIN_CHANNEL_PRODUCT is not None and c_in * c_out >= GEMM_MIN_CHANNEL_PRODUCT


#: ``'auto'`` takes the Winograd kernels (:mod:`._winograd_numba`) for 3×3 stencils when both channel
#: counts reach this and the image has at least :data:`WINOGRAD_MIN_PIXELS` pixels.  Measured on the
#: 2-core AMD EPYC (Zen 4) VM, float32 and float64, 8–64 channels, 8×8–64×64 images (2026-12-05,
#: ``benchmarks/results/winograd/``): Winograd / direct time 0.76–0.95 from 32 channels and 32×32
#: pixels on, 0.94–1.11 at 16 channels, 1.1–1.9 at 8 channels or on 8×8 images, where the transforms
#: (O(C) additions per tile and channel) cost more than the 2.25× fewer multiply-adds save.
WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_PIXELS = 32 * 32


def _method():
    """:data:`METHOD`, checked."""
    if METHOD not in METHODS:
        raise ValueError(f"MEGANET_CONV2D_METHOD / METHOD must be one of {METHODS}, got {METHOD!r}")
    return METHOD


def _use_winograd(kh, kw, c_in, c_out, H, W):
    """Winograd :math:`F(2×2, 3×3)` (3×3 stencils only) or the direct stencil / implicit GEMM."""
    method = _method()
    if kh != 3 or kw != 3 or method in ("direct", "gemm"):
        return False
    if method == "winograd":
        return True
    return min(c_in, c_out) >= WINOGRAD_MIN_CHANNELS and H * W >= WINOGRAD_MIN_PIXELS


def _example_bounds(n):
    """Contiguous ranges of examples, one per numba thread (at most ``n``): ``bounds[c]:bounds[c + 1]``."""
    k = max(1, min(n, numba.get_num_threads()))
    return np.linspace(0, n, k + 1).round().astype(np.int64)


#: :func:`_work_split` shares one example's output channels out over threads from this many
#: multiply-adds per example on (``C_in·C_out·kh·kw·H·W``).  Measured on the 2-core AMD EPYC VM
#: (2026-12-05, one example, float32, interleaved): 64→64 channels on 32×32 (38 M) took 0.81 of the
#: one-thread time; 32→32 (9.4 M) 0.8–1.2 and 8→8 on 16×16 (0.15 M) 1.1–1.4: waking the second
#: thread (OMP_WAIT_POLICY=PASSIVE) costs about as much as half of such a convolution.
SPLIT_MIN_MACS = 1 << 24


def _work_split(n_chunks, c_out, macs):
    """Work items per chunk of examples (:func:`_part`): with fewer chunks than numba threads (a batch
    smaller than the thread count) and at least :data:`SPLIT_MIN_MACS` multiply-adds per example,
    each chunk's output-channel blocks are shared out so that a single example uses every thread (at
    most one block of four channels per item); else one item per chunk."""
    threads = numba.get_num_threads()
    if n_chunks >= threads or macs < SPLIT_MIN_MACS:
        return 1
    return max(1, min(threads // n_chunks, _round_up(c_out, _OB) // _OB))


def _epilogue_args(ep, dtype):
    """The :func:`_conv_taps` arguments ``mode, alpha, B, has_B, bias, has_bias, S, code, eta`` of an
    :class:`~meganet.kernels.epilogue.Epilogue` (None: plain ``Z = C``)."""
    from .activation import activation_code

    dummy4 = np.empty((0, 0, 0, 0), dtype=dtype)
    if ep is None:
        return 0, 1.0, dummy4, False, np.empty(0, dtype=dtype), False, dummy4, 0, 0.0
    code, eta = activation_code(ep.activation) if ep.activation is not None else (0, 0.0)
    mode = 0 if ep.activation is None else (2 if ep.dsigma_from is not None else 1)
    B = dummy4 if ep.add is None else np.ascontiguousarray(ep.add)
    bias = np.empty(0, dtype=dtype) if ep.bias is None else np.ascontiguousarray(ep.bias)
    S = dummy4 if ep.dsigma_from is None else np.ascontiguousarray(ep.dsigma_from)
    return mode, float(ep.alpha), B, ep.add is not None, bias, ep.bias is not None, S, code, float(eta)


def _forward_numba(Y, K, boundary, out, ep=None):
    Y = np.ascontiguousarray(Y)
    n, c_in, H, W = Y.shape
    c_out, _, kh, kw = K.shape
    p, q, Wp, Lp = _geometry(Y.shape, kh, kw)
    if _use_winograd(kh, kw, c_in, c_out, H, W):
        Z = out if out is not None else _buffers.empty((n, c_out, H, W), Y.dtype)
        bounds = _example_bounds(n)
        parts = _work_split(bounds.size - 1, c_out, c_in * c_out * 9 * H * W)
        rb, work = _winograd_numba.workspace((bounds.size - 1) * parts, c_in, _round_up(c_out, _OB), H, W, Y.dtype)
        _winograd_numba._conv_winograd(Y, _winograd_numba.transform_weights(K, Y.dtype), boundary == "periodic",
                                       bounds, parts, rb, work, Z, *_epilogue_args(ep, Y.dtype))
        return Z
    if ep is not None and _use_gemm(c_in, c_out):  # the GEMM path has no fused epilogue: a pass after it
        return apply_epilogue(_forward_numba(Y, K, boundary, None), ep, out)
    Z = out if out is not None else _buffers.empty((n, c_out, H, W), Y.dtype)
    if _use_gemm(c_in, c_out):
        Kt = np.ascontiguousarray(np.asarray(K).transpose(2, 3, 1, 0))  # (kh, kw, C_in, C_out)
        nt = numba.get_num_threads()
        ybuf = np.empty((nt, Lp * c_in), dtype=Y.dtype)
        zbuf = np.empty((nt, H * Wp * c_out), dtype=Y.dtype)
        with _gemm_numba.blas_single_thread():
            _conv_gemm(Y, Kt, p, q, boundary == "periodic", Wp, Lp, Z, ybuf, zbuf, *_gemm_numba.scratch(nt))
        return Z
    Kt, off = _stencil_table(K, c_in, kh, kw, Wp, Lp, Y.dtype)
    bounds = _example_bounds(n)
    parts = _work_split(bounds.size - 1, c_out, c_in * c_out * kh * kw * H * W)
    _conv_taps(Y, Kt, off, p, q, boundary == "periodic", Wp, Lp, bounds, parts, Z, *_epilogue_args(ep, Y.dtype))
    return Z


def _stencil_table(K, c_in, kh, kw, Wp, Lp, dtype):
    """``(Kt, off)`` of :func:`_conv_taps` for the stencils K (C_out, C_in, kh, kw)."""
    off = _offsets(c_in, kh, kw, Wp, Lp)
    Kt = np.zeros((_round_up(K.shape[0], _OB), off.size), dtype=dtype)
    Kt[:K.shape[0], :c_in * kh * kw] = np.asarray(K).reshape(K.shape[0], -1)
    return Kt, off


def _symmetric_step_numba(Y, K, b, activation, h, boundary, store_S, out):
    from .activation import activation_code

    Y = np.ascontiguousarray(Y)
    n, c, H, W = Y.shape
    c_mid, _, kh, kw = K.shape
    p, q, Wp, Lp = _geometry(Y.shape, kh, kw)
    KT = np.ascontiguousarray(np.asarray(K)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    code, eta = activation_code(activation)
    Z = out if out is not None else _buffers.empty(Y.shape, Y.dtype)
    S = _buffers.empty((n, c_mid, H, W), Y.dtype) if store_S else np.empty((0, 0, 0, 0), dtype=Y.dtype)
    bias = np.empty(0, dtype=Y.dtype) if b is None else np.ascontiguousarray(b)
    bounds = _example_bounds(n)
    if _use_winograd(kh, kw, c, c_mid, H, W):
        U = _winograd_numba.transform_weights(K, Y.dtype)
        UT = _winograd_numba.transform_weights(KT, Y.dtype)
        rb, work = _winograd_numba.workspace(bounds.size - 1, max(c, c_mid), max(U.shape[0], UT.shape[0]), H, W,
                                             Y.dtype)
        _winograd_numba._symmetric_step_winograd(Y, U, UT, boundary == "periodic", bounds, rb, work, c_mid, bias,
                                                 b is not None, code, float(eta), float(h), Z, S, store_S)
        return Z, (S if store_S else None)
    Kt, off = _stencil_table(K, c, kh, kw, Wp, Lp, Y.dtype)
    KTt, offT = _stencil_table(KT, c_mid, kh, kw, Wp, Lp, Y.dtype)
    _symmetric_step(Y, Kt, KTt, off, offT, p, q, boundary == "periodic", Wp, Lp, bounds, c_mid, bias,
                    b is not None, code, float(eta), float(h), Z, S, store_S)
    return Z, (S if store_S else None)


def _adjoint_input_numba(Z, K, boundary, out, ep=None):
    K_T = np.ascontiguousarray(K[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return _forward_numba(Z, K_T, boundary, out, ep)


def _adjoint_weight_numba(Y, W, kernel_shape, boundary, per_example, out):
    Y = np.ascontiguousarray(Y)
    W = np.ascontiguousarray(W)
    n, c_in, H, Wd = Y.shape
    c_out = W.shape[1]
    kh, kw = kernel_shape
    p, q, Wp, Lp = _geometry(Y.shape, kh, kw)
    if _use_gemm(c_in, c_out):
        if per_example:
            bounds = np.arange(n + 1, dtype=np.int64)
        else:
            bounds = _reduction_bounds(n, 1, kh * kw * c_out * c_in * Y.dtype.itemsize)
        part = np.empty((bounds.size - 1, kh, kw, c_out, c_in), dtype=Y.dtype)
        nt = numba.get_num_threads()
        ybuf = np.empty((nt, Lp * c_in), dtype=Y.dtype)
        wbuf = np.empty((nt, c_out, H * Wp), dtype=Y.dtype)
        with _gemm_numba.blas_single_thread():
            _weight_gemm(Y, W, kh, kw, p, q, boundary == "periodic", Wp, Lp, bounds, part, ybuf, wbuf,
                         *_gemm_numba.scratch(nt))
        G = part.transpose(0, 3, 4, 1, 2)  # (chunks, C_out, C_in, kh, kw)
        res = G.reshape(n, c_out, c_in, kh, kw) if per_example else G.sum(axis=0)
        if out is None:
            return np.ascontiguousarray(res)
        out[...] = res
        return out
    off = _offsets(c_in, kh, kw, Wp, Lp)
    n_taps = c_in * kh * kw
    if per_example:
        bounds = np.arange(n + 1, dtype=np.int64)
    else:  # one partial sum per chunk of examples, added in chunk order (see meganet.kernels.set_deterministic)
        bounds = _reduction_bounds(n, 1, _round_up(c_out, _OB) * off.size * Y.dtype.itemsize)
    part = np.empty((bounds.size - 1, _round_up(c_out, _OB), off.size), dtype=Y.dtype)
    parts = _work_split(bounds.size - 1, c_out, c_in * c_out * kh * kw * H * Wd * -(-n // (bounds.size - 1)))
    _weight_taps(Y, W, off, p, q, boundary == "periodic", Wp, Lp, bounds, parts, Y.dtype.type(0), part)
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
_IMPLEMENTATIONS["forward_ep"]["numba"] = _forward_numba
_IMPLEMENTATIONS["adjoint_input_ep"]["numba"] = _adjoint_input_numba
_IMPLEMENTATIONS["symmetric_step"]["numba"] = _symmetric_step_numba

from . import _winograd_numba  # noqa: E402  (it imports _epilogue_rows from this module)
