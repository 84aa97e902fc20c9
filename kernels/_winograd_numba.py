r"""Numba (CPU) Winograd kernels of the 3×3 convolution, :math:`F(2×2, 3×3)`.

Used by the numba engine of :mod:`meganet.kernels.conv2d` for 3×3 stencils (see
:func:`meganet.kernels._conv2d_numba._use_winograd`); same map, argument conventions and
fused epilogue as the direct stencil loops of :mod:`._conv2d_numba`.

Method (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016)
-------------------------------------------------------------------------------------
Each 2×2 block of outputs of one output channel is

.. math:: Z_{\rm tile} = A^T \Big[ \sum_i \big(G\, K_{o,i}\, G^T\big) \odot
          \big(B^T d_i\, B\big) \Big] A,

with :math:`d_i` the 4×4 input patch of channel ``i`` under the tile (the example
padded by one pixel, zero or periodic), and

.. math:: B^T = \begin{pmatrix}1&0&-1&0\\0&1&1&0\\0&-1&1&0\\0&1&0&-1\end{pmatrix},\quad
          G = \begin{pmatrix}1&0&0\\ \tfrac12&\tfrac12&\tfrac12\\ \tfrac12&-\tfrac12&\tfrac12\\0&0&1
          \end{pmatrix},\quad
          A^T = \begin{pmatrix}1&1&1&0\\0&1&-1&-1\end{pmatrix}.

The sum over input channels is, for each of the 16 positions ``(ξ, ν)`` of the 4×4 tile, one
matrix product ``M_ξν = U_ξν V_ξν`` (``C_out × C_in`` times ``C_in × tiles``): 16·C_out·C_in
multiply-adds per tile of 4 outputs instead of 36·C_out·C_in, 2.25× fewer, plus the transforms
(additions only, O(C) per tile).  The products run in the same register pattern as the direct
stencil (four output rows, four input rows per pass, vectorized over tiles).  The padded example is
stored as its four row/column parity planes (:func:`_pad_planes`), so that both separable passes of
each transform (rows, then columns) are sums of shifted contiguous rows that vectorize; tile ``p =
r·R + c`` runs over ``R = ⌈W/2⌉ + 1`` columns, the last of which is computed and dropped (6 % extra
products at 32×32).  Per thread, one example's transformed input ``V`` and products ``M`` (1.1 MiB at
B2 size in float32) are kept in a pooled workspace, in blocks of tile rows of at most
:data:`BLOCK_BYTES`.

Accuracy: the transforms have entries 0, ±1 and ±½ only, and the weights are transformed in float64.
Measured in ``tests/test_conv2d_winograd.py`` against a float64 reference: within 4× the direct
kernel's error and within 16 ε · max Σ|K||Y|, in float32 and float64.  The
adjoint ``Kᵀ`` is the same algorithm on the flipped, channel-swapped stencil, so the pair passes the
dot test to rounding.  ``MEGANET_CONV2D_METHOD=direct`` selects the direct stencil everywhere.

Hand-written: numpy and scipy have no Winograd convolution (oneDNN and cuDNN do, but are not
dependencies of meganet's CPU engine).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import _buffers
from ._conv2d_numba import _epilogue_rows, _part
from ._numba_math import JIT

_OB = 4  # output channels per pass of the tile products
_IB = 4  # input channels per pass

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def transform_weights(K, dtype):
    """``U[o, i, ξ·4 + ν] = (G K[o, i] Gᵀ)[ξ, ν]`` computed in float64, cast to ``dtype``; rows rounded
    up to a multiple of four output channels (zero weights).

    K : (C_out, C_in, 3, 3) → U : (C_out rounded up to 4, C_in, 16)
    """
    c_out, c_in = K.shape[:2]
    out = np.zeros((-(-c_out // _OB) * _OB, c_in, 16), dtype=dtype)
    _transform_weights(np.ascontiguousarray(K), out)
    return out


@njit(inline="always", **JIT)
def _g3(a, b, c):
    """``G (a, b, c)ᵀ``: the four rows of G applied to a 3-vector."""
    return a, 0.5 * (a + b + c), 0.5 * (a - b + c), c


@njit(**JIT)
def _transform_weights(K, out):
    """:func:`transform_weights` as a compiled loop (numpy's einsum or small GEMMs took 0.2–1 ms at
    64² channels, more than a B2-size convolution of one example; this loop ≈ 30 µs).  ``out`` keeps
    the 16 entries of one (o, i) pair contiguous: stores to 16 planes a multiple of 4 KiB apart were
    5× slower (cache-set aliasing)."""
    for o in range(K.shape[0]):
        for i in range(K.shape[1]):
            # the columns of G g (t_ξb), then the rows of (G g) Gᵀ; unrolled by hand (indexing the
            # tuples with a loop variable, or views K[o, i], was 4× slower)
            t00, t10, t20, t30 = _g3(np.float64(K[o, i, 0, 0]), np.float64(K[o, i, 1, 0]), np.float64(K[o, i, 2, 0]))
            t01, t11, t21, t31 = _g3(np.float64(K[o, i, 0, 1]), np.float64(K[o, i, 1, 1]), np.float64(K[o, i, 2, 1]))
            t02, t12, t22, t32 = _g3(np.float64(K[o, i, 0, 2]), np.float64(K[o, i, 1, 2]), np.float64(K[o, i, 2, 2]))
            out[o, i, 0], out[o, i, 1], out[o, i, 2], out[o, i, 3] = _g3(t00, t01, t02)
            out[o, i, 4], out[o, i, 5], out[o, i, 6], out[o, i, 7] = _g3(t10, t11, t12)
            out[o, i, 8], out[o, i, 9], out[o, i, 10], out[o, i, 11] = _g3(t20, t21, t22)
            out[o, i, 12], out[o, i, 13], out[o, i, 14], out[o, i, 15] = _g3(t30, t31, t32)


@njit(**JIT)
def geometry(H, W):
    """``(TR, TC, R, As)``: tiles ``TR × TC`` of 2×2 outputs; row length ``R = TC + 1`` of the four
    parity planes of the padded example (the tile grid has ``TR × R`` tiles, the last column of each
    row is computed and dropped) and their stride ``As`` (one slack entry, zero)."""
    TR, TC = (H + 1) // 2, (W + 1) // 2
    R = TC + 1
    return TR, TC, R, (TR + 1) * R + 1


@njit(**JIT)
def _pad_planes(Y, s, periodic, R, As, out):
    """Example ``s`` padded by one pixel (zero or periodic; zero rows / columns beyond ``H + 2``,
    ``W + 2``) and split into its four parity planes:
    ``out[(i·4 + 2·jr + jc)·As + rr·R + cc] = Ypad[i, 2·rr + jr, 2·cc + jc]``, so that entry
    ``(j, m)`` of the 4×4 patch of tile ``p = r·R + c`` is plane ``(j mod 2, m mod 2)`` at
    ``p + ⌊j/2⌋·R + ⌊m/2⌋``: every transform is then a sum of shifted contiguous rows."""
    _, C, H, W = Y.shape
    rows = As // R  # TR + 1 rows per plane
    for i in range(C):
        for x in range(2 * rows):
            jr = x & 1
            rr = x >> 1
            qe = out[(i * 4 + 2 * jr) * As + rr * R:(i * 4 + 2 * jr) * As + (rr + 1) * R]
            qo = out[(i * 4 + 2 * jr + 1) * As + rr * R:(i * 4 + 2 * jr + 1) * As + (rr + 1) * R]
            xs = x - 1
            if periodic and xs <= H:
                xs = xs % H
            elif xs < 0 or xs >= H:
                qe[:] = 0
                qo[:] = 0
                continue
            src = Y[s, i, xs]
            # padded column y = 2·cc + jc is source column y − 1
            qe[0] = src[W - 1] if periodic else 0
            m = W // 2
            for cc in range(m):  # one full stride-2 group: vectorizes (interleaved loads)
                qo[cc] = src[2 * cc]
                qe[cc + 1] = src[2 * cc + 1]
            if W % 2:
                qo[m] = src[W - 1]
            for cc in range(m + W % 2, R):
                qo[cc] = src[0] if periodic and 2 * cc == W else 0
            for cc in range(m + 1, R):
                qe[cc] = src[0] if periodic and 2 * cc - 1 == W else 0
        for j in range(4):
            out[(i * 4 + j + 1) * As - 1] = 0  # the slack entry of each plane


@njit(**JIT)
def _sub(a, b, out):
    for p in range(out.shape[0]):
        out[p] = a[p] - b[p]


@njit(**JIT)
def _add(a, b, out):
    for p in range(out.shape[0]):
        out[p] = a[p] + b[p]


@njit(**JIT)
def _add3(a, b, c, out):
    for p in range(out.shape[0]):
        out[p] = a[p] + b[p] + c[p]


@njit(**JIT)
def _sub3(a, b, c, out):
    for p in range(out.shape[0]):
        out[p] = a[p] - b[p] - c[p]


@njit(**JIT)
def _input_transform(yq, C, R, As, p0, P, t, V):
    """``V[ξ·4 + ν, i, p] = (Bᵀ d B)[ξ, ν]`` for the patch ``d`` of channel ``i`` under tile ``p0 + p``,
    ``p < P`` (:func:`_pad_planes` layout ``yq``); ``t`` : (8, P + 1) scratch holding ``Bᵀ d`` (rows
    ``ξ·2 + jc``: the two column parities).  Every loop is one contiguous store from two shifted
    contiguous loads."""
    n = P + 1
    for i in range(C):
        b = i * 4 * As + p0
        for jc in range(2):
            q0 = yq[b + jc * As:b + (jc + 1) * As - p0]  # row parity 0, column parity jc
            q1 = yq[b + (2 + jc) * As:b + (3 + jc) * As - p0]
            _sub(q0[0:n], q0[R:R + n], t[jc])  # d0 − d2
            _add(q1[0:n], q0[R:R + n], t[2 + jc])  # d1 + d2
            _sub(q0[R:R + n], q1[0:n], t[4 + jc])  # d2 − d1
            _sub(q1[0:n], q1[R:R + n], t[6 + jc])  # d1 − d3
        for k in range(4):
            e = t[2 * k]
            o = t[2 * k + 1]
            _sub(e[0:P], e[1:P + 1], V[4 * k, i])
            _add(o[0:P], e[1:P + 1], V[4 * k + 1, i])
            _sub(e[1:P + 1], o[0:P], V[4 * k + 2, i])
            _sub(o[0:P], o[1:P + 1], V[4 * k + 3, i])


@njit(fastmath={"contract"}, **JIT)
def _tile_products(U, V, M, ob0, ob1):
    """``M[k, o, :] = Σ_i U[o, i, k] V[k, i, :]`` for the 16 tile positions ``k`` and the output rows
    ``4·ob0 ≤ o < 4·ob1``: four output rows from four input rows per pass (16 multiply-adds per loaded
    value of the accumulators).

    U : (C_out rounded up to 4, C_in, 16), V : (16, C_in, P), M : (16, C_out rounded up to 4, P)."""
    C = U.shape[1]
    P = V.shape[2]
    C_main = C - C % _IB
    for k in range(16):
        Vk = V[k]
        for o in range(_OB * ob0, _OB * ob1, _OB):
            a0 = M[k, o]
            a1 = M[k, o + 1]
            a2 = M[k, o + 2]
            a3 = M[k, o + 3]
            a0[:] = 0
            a1[:] = 0
            a2[:] = 0
            a3[:] = 0
            for i in range(0, C_main, _IB):
                u00 = U[o, i, k]
                u01 = U[o, i + 1, k]
                u02 = U[o, i + 2, k]
                u03 = U[o, i + 3, k]
                u10 = U[o + 1, i, k]
                u11 = U[o + 1, i + 1, k]
                u12 = U[o + 1, i + 2, k]
                u13 = U[o + 1, i + 3, k]
                u20 = U[o + 2, i, k]
                u21 = U[o + 2, i + 1, k]
                u22 = U[o + 2, i + 2, k]
                u23 = U[o + 2, i + 3, k]
                u30 = U[o + 3, i, k]
                u31 = U[o + 3, i + 1, k]
                u32 = U[o + 3, i + 2, k]
                u33 = U[o + 3, i + 3, k]
                v0 = Vk[i]
                v1 = Vk[i + 1]
                v2 = Vk[i + 2]
                v3 = Vk[i + 3]
                for l in range(P):
                    x0 = v0[l]
                    x1 = v1[l]
                    x2 = v2[l]
                    x3 = v3[l]
                    a0[l] += u00 * x0 + u01 * x1 + u02 * x2 + u03 * x3
                    a1[l] += u10 * x0 + u11 * x1 + u12 * x2 + u13 * x3
                    a2[l] += u20 * x0 + u21 * x1 + u22 * x2 + u23 * x3
                    a3[l] += u30 * x0 + u31 * x1 + u32 * x2 + u33 * x3
            for i in range(C_main, C):  # the last C_in mod 4 input channels, one at a time
                u0 = U[o, i, k]
                u1 = U[o + 1, i, k]
                u2 = U[o + 2, i, k]
                u3 = U[o + 3, i, k]
                v0 = Vk[i]
                for l in range(P):
                    x0 = v0[l]
                    a0[l] += u0 * x0
                    a1[l] += u1 * x0
                    a2[l] += u2 * x0
                    a3[l] += u3 * x0


@njit(**JIT)
def _output_transform(M, o, TR, TC, R, w, plane):
    """``plane[2r + a, 2c + b] = (Aᵀ m A)[a, b]`` with ``m[ξ, ν] = M[ξ·4 + ν, o, r·R + c]``;
    ``w`` : (12, P) scratch (``m A`` in rows ``ξ·2 + b``, then ``Aᵀ m A`` in rows ``8 + a·2 + b``);
    plane : (2·TR·2·TC,) flat, row length 2·TC."""
    for k in range(4):
        _add3(M[4 * k, o], M[4 * k + 1, o], M[4 * k + 2, o], w[2 * k])
        _sub3(M[4 * k + 1, o], M[4 * k + 2, o], M[4 * k + 3, o], w[2 * k + 1])
    for b in range(2):
        _add3(w[b], w[2 + b], w[4 + b], w[8 + b])
        _sub3(w[2 + b], w[4 + b], w[6 + b], w[10 + b])
    Wo = 2 * TC
    for r in range(TR):
        for a in range(2):
            z = plane[(2 * r + a) * Wo:(2 * r + a + 1) * Wo]
            e = w[8 + 2 * a, r * R:r * R + TC]
            f = w[9 + 2 * a, r * R:r * R + TC]
            for c in range(TC):
                z[2 * c] = e[c]
                z[2 * c + 1] = f[c]


@njit(**JIT)
def _winograd_example(Y, s, periodic, U, TR, TC, R, As, rb, bufs, Z, zs, mode, alpha, B, has_B, bias, has_bias,
                      S, code, eta, ob0, ob1):
    """Example ``s`` of ``Y`` through one convolution: the padded parity planes; per block of ``rb``
    tile rows the input transform, the 16 tile products and the output transforms into the plane of
    every output channel; then the epilogue into ``Z[zs, o]``; the output channels
    ``4·ob0 ≤ o < 4·ob1`` only.  ``bufs``: :func:`_scratch`."""
    yq, tflat, vflat, mflat, wflat, zacc, vrow, drow = bufs
    C = Y.shape[1]
    C4 = U.shape[0]
    H, W = Y.shape[2], Y.shape[3]
    Wo = 2 * TC
    _pad_planes(Y, s, periodic, R, As, yq)
    for r0 in range(0, TR, rb):
        nr = min(rb, TR - r0)
        P = nr * R
        t = tflat[:8 * (P + 1)].reshape(8, P + 1)
        V = vflat[:16 * C * P].reshape(16, C, P)
        M = mflat[:16 * C4 * P].reshape(16, C4, P)
        w = wflat[:12 * P].reshape(12, P)
        _input_transform(yq, C, R, As, r0 * R, P, t, V)
        _tile_products(U, V, M, ob0, ob1)
        for o in range(_OB * ob0, min(_OB * ob1, Z.shape[1])):
            _output_transform(M, o, nr, TC, R, w, zacc[o, 2 * r0 * Wo:2 * (r0 + nr) * Wo])
    for o in range(_OB * ob0, min(_OB * ob1, Z.shape[1])):
        _epilogue_rows(zacc[o], zs, o, H, W, Wo, Z, mode, alpha, B, has_B, bias, has_bias, S, code, eta, vrow,
                       drow)


#: Bytes of ``V`` and ``M`` per block of tile rows (:func:`_winograd_example`): caps the workspace.  Blocks
#: of a few tile rows were slower on the Zen 4 VM (short loops; B2 at 1 MiB: 0.99 of the direct time, at
#: 4 MiB, one block: 0.78–0.92), so the budget is large.  Read when a kernel is called (tests lower it).
BLOCK_BYTES = 4 * 1024 * 1024


def block_rows(C, C4, H, W, itemsize):
    """Tile rows per block: as many as :data:`BLOCK_BYTES` allow for ``V`` and ``M`` (at least one)."""
    TR, _, R, _ = geometry(H, W)
    return int(max(1, min(TR, BLOCK_BYTES // (16 * (C + C4) * R * itemsize))))


@njit(**JIT)
def workspace_sizes(C, C4, H, W, rb):
    """Entries of one thread's buffers for :func:`_winograd_example` with at most ``C`` input and ``C4``
    (rounded up to 4) output channels and blocks of ``rb`` tile rows: parity planes, row pass, V, M,
    output pass, output planes, two epilogue planes."""
    TR, TC, R, As = geometry(H, W)
    P = rb * R
    return (4 * C * As, 8 * (P + 1), 16 * C * P, 16 * C4 * P, 12 * P, C4 * 4 * TR * TC, H * W, H * W)


@njit(**JIT)
def _scratch(work, C, C4, H, W, rb):
    """:func:`workspace_sizes` buffers carved out of one row of the workspace ``work``."""
    n = workspace_sizes(C, C4, H, W, rb)
    o1 = n[0]
    o2 = o1 + n[1]
    o3 = o2 + n[2]
    o4 = o3 + n[3]
    o5 = o4 + n[4]
    o6 = o5 + n[5]
    o7 = o6 + n[6]
    return (work[:o1], work[o1:o2], work[o2:o3], work[o3:o4], work[o4:o5], work[o5:o6].reshape(C4, n[5] // C4),
            work[o6:o7], work[o7:o7 + n[7]])


def workspace(n_chunks, C, C4, H, W, dtype):
    """``(rb, work)``: the tile rows per block (:func:`block_rows`) and the workspace of
    :func:`_conv_winograd` / :func:`_symmetric_step_winograd`, one row per parallel chunk, from the
    buffer pool (:mod:`._buffers`), so that repeated calls reuse memory that is already mapped (fresh
    pages cost ~0.3 ms per B2 convolution in page faults)."""
    dtype = np.dtype(dtype)
    rb = block_rows(C, C4, H, W, dtype.itemsize)
    return rb, _buffers.empty((n_chunks, sum(workspace_sizes(C, C4, H, W, rb))), dtype)


@njit(parallel=True, **JIT)
def _conv_winograd(Y, U, periodic, bounds, parts, rb, work, Z, mode, alpha, B, has_B, bias, has_bias, S, code,
                   eta):
    """``Z = epilogue(K Y)`` for a 3×3 stencil by :math:`F(2×2, 3×3)`; ``U`` from
    :func:`transform_weights`; the epilogue arguments as in :func:`._conv2d_numba._conv_taps`.

    Y : (n, C_in, H, W) C-contiguous; Z : (n, C_out, H, W); bounds : example ranges, one per
    parallel chunk; parts : work items per chunk (:func:`._conv2d_numba._part`: the output-channel
    blocks are shared out); rb, work : :func:`workspace` (one row per work item).  ``B`` may be ``Z``.
    """
    n, C_in, H, W = Y.shape
    TR, TC, R, As = geometry(H, W)
    for c in prange((bounds.shape[0] - 1) * parts):
        ch, ob0, ob1 = _part(c, parts, U.shape[0] // _OB)
        bufs = _scratch(work[c], C_in, U.shape[0], H, W, rb)
        for s in range(bounds[ch], bounds[ch + 1]):
            _winograd_example(Y, s, periodic, U, TR, TC, R, As, rb, bufs, Z, s, mode, alpha, B, has_B, bias, has_bias,
                              S, code, eta, ob0, ob1)


@njit(parallel=True, **JIT)
def _symmetric_step_winograd(Y, U, UT, periodic, bounds, rb, work, C_mid, bias, has_bias, code, eta, h, Z, S, store_S):
    """The symmetric layer's step ``S = σ(K Y + b)``, ``Z = Y − h KᵀS`` per example (as
    :func:`._conv2d_numba._symmetric_step`) with both 3×3 convolutions by :math:`F(2×2, 3×3)`;
    ``U``, ``UT``: :func:`transform_weights` of K and of the flipped, channel-swapped Kᵀ."""
    n, C, H, W = Y.shape
    TR, TC, R, As = geometry(H, W)
    dummy = np.empty((0, 0, 0, 0), dtype=Y.dtype)
    for c in prange(bounds.shape[0] - 1):
        bufs = _scratch(work[c], max(C, C_mid), max(U.shape[0], UT.shape[0]), H, W, rb)
        stmp = np.empty((0 if store_S else 1, C_mid, H, W), dtype=Y.dtype)
        for s in range(bounds[c], bounds[c + 1]):
            St = S if store_S else stmp
            si = s if store_S else 0
            _winograd_example(Y, s, periodic, U, TR, TC, R, As, rb, bufs, St, si, 1, 1.0, dummy, False, bias, has_bias,
                              dummy, code, eta, 0, U.shape[0] // _OB)
            _winograd_example(St, si, periodic, UT, TR, TC, R, As, rb, bufs, Z, s, 0, -h, Y, True, bias, False, dummy,
                              code, eta, 0, UT.shape[0] // _OB)
