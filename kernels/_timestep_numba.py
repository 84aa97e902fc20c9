"""Numba kernels of :mod:`meganet.kernels.timestep`: one compiled loop over all layers.

Examples are processed in blocks of :data:`EB` = 8 (one AVX-512 register of
float64): a block's states are held transposed, ``(features, EB)``, so every
inner loop runs over the 8 examples of the block with a compile-time trip
count and vectorizes — also for widths of 4 (B3), where a loop over the
features would not fill a register.  A block is carried through all N steps
while its state stays in L1; blocks run in parallel (``prange``).  The
θ-adjoints are accumulated per chunk of blocks (no races; one chunk per
thread, or chunks fixed by the size in deterministic mode, see
:func:`meganet.kernels.set_deterministic`) and summed in chunk order at the end: per
layer, the operands of all the thread's examples are gathered transposed and
reduced by contiguous dot products, which vectorize (an accumulation per
block and lane compiled to scalar code: LLVM cannot rule out that the
accumulator aliases the operands).  Lanes of the last, partial block are zero
and never stored; they add nothing to the θ-adjoints (their cotangents are zero).  ``σ`` comes from
:mod:`._numba_math` (vectorizable ``tanh``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from . import _buffers, _reduction_bounds
from ._numba_math import JIT, act_row
from .activation import activation_code
from .timestep import _IMPLEMENTATIONS, DenseTrajectory, VerletTrajectory

#: Examples per block (SIMD lanes).
EB = 8


def _c(a):
    return np.ascontiguousarray(a)


def _or_zeros(a, shape, dtype):
    """``a`` contiguous, or a (never read) zero array of ``shape``; and whether ``a`` was given."""
    if a is None:
        return np.zeros(shape, dtype=dtype), False
    return _c(a), True


def _chunks(n_blocks):
    """Block ranges, one per thread (the forward and linearized sweeps: each example's result
    does not depend on them)."""
    k = max(1, min(n_blocks, numba.get_num_threads()))
    return np.linspace(0, n_blocks, k + 1).round().astype(np.int64)


#: Deterministic mode: blocks (of EB examples) per θ-adjoint chunk, at least (shorter dot products
#: and more partial sums cost more than they parallelize; see meganet.kernels.set_deterministic).
MIN_REDUCTION_BLOCKS = 16


def _reduction_chunks(n_blocks, partial_bytes):
    """Block ranges of the adjoint sweeps, one θ-adjoint partial sum (``partial_bytes``) each, added
    in order: one per thread, or fixed by the sizes alone in deterministic mode."""
    return _reduction_bounds(n_blocks, MIN_REDUCTION_BLOCKS, partial_bytes)


# ------------------------------------------------------------- block helpers
@njit(**JIT)
def _load(A, s0, m, out):
    """``out[i, e] = A[s0 + e, i]`` for ``e < m``, zero for the other lanes."""
    w = out.shape[0]
    if m == EB:  # full block: branch-free transposed copy
        for e in range(EB):
            row = A[s0 + e]
            for i in range(w):
                out[i, e] = row[i]
    else:
        for i in range(w):
            for e in range(EB):
                out[i, e] = A[s0 + e, i] if e < m else 0


@njit(**JIT)
def _store(src, s0, m, A):
    """``A[s0 + e, i] = src[i, e]`` for ``e < m``."""
    w = src.shape[0]
    for e in range(m):
        row = A[s0 + e]
        for i in range(w):
            row[i] = src[i, e]


@njit(**JIT)
def _bias_fill(u, b, j, given):
    """``u[o, :] = b_j[o]`` (shared stack: one row; width 1: a scalar), or 0."""
    jb = 0 if b.shape[0] == 1 else j
    wide = b.shape[1] > 1
    for o in range(u.shape[0]):
        v = b[jb, o if wide else 0] if given else 0
        for e in range(EB):
            u[o, e] = v


@njit(**JIT)
def _mat_acc(u, y, Mj):
    """``u[o, :] += Σ_i y[i, :] Mj[i, o]``."""
    for i in range(y.shape[0]):
        for o in range(u.shape[0]):
            mio = Mj[i, o]
            for e in range(EB):
                u[o, e] += y[i, e] * mio


@njit(**JIT)
def _matT_acc(w, v, Mj):
    """``w[i, :] += Σ_o v[o, :] Mj[i, o]``."""
    for i in range(w.shape[0]):
        for o in range(v.shape[0]):
            mio = Mj[i, o]
            for e in range(EB):
                w[i, e] += v[o, e] * mio


#: Compile time (issue 13): the kernels call the helpers above as functions (LLVM
#: still inlines them where it pays); a numba-level ``inline="always"`` copied each
#: call site's loops into the parfor body and doubled the LLVM time.  Measured no
#: slower at B1 size.  Where a call costs as much as the loop (the Verlet kernels,
#: width 4: ``act_row`` and ``_mat_acc`` per step, ``_load`` per step in the
#: linearized/adjoint sweeps) these twins keep the numba-level inlining
#: (``cache=False``: they are never compiled on their own).
def _inline_twin(f):
    return njit(**dict(JIT, cache=False, inline="always"))(getattr(f, "py_func", f))  # NUMBA_DISABLE_JIT: f itself


_load_i = _inline_twin(_load)
_mat_acc_i = _inline_twin(_mat_acc)
act_row_i = _inline_twin(act_row)


# =========================================================== dense ResNet / leapfrog
@njit(parallel=True, **JIT)
def _dense_forward(Y0, M, b, has_b, h, code, eta, leapfrog, store, N, chunks, Z, Zprev, states, dsig):
    """Forward Euler (``leapfrog=False``) or leapfrog sweep; ``h`` is h or h².
    ``store=False``: states/dsig are not touched (may be dummies).  Stacks with
    one entry are shared by all steps; a bias of width 1 is a scalar.
    Layer-major within each thread's blocks (see :func:`_dense_jtmv`)."""
    S, n = Y0.shape
    for c in prange(chunks.shape[0] - 1):
        b0 = chunks[c]
        nbc = chunks[c + 1] - b0
        y = np.empty((nbc, n, EB), dtype=Y0.dtype)
        yp = np.empty((nbc if leapfrog else 1, n, EB), dtype=Y0.dtype)  # Y_{j-1}: leapfrog only
        u = np.empty((n, EB), dtype=Y0.dtype)
        vv = np.empty((n, EB), dtype=Y0.dtype)
        dd = np.empty((n, EB), dtype=Y0.dtype)
        uf = u.reshape(n * EB)
        vf = vv.reshape(n * EB)
        df = dd.reshape(n * EB)
        for bi in range(nbc):
            s0 = (b0 + bi) * EB
            _load(Y0, s0, min(EB, S - s0), y[bi])
            if leapfrog:
                _load(Y0, s0, min(EB, S - s0), yp[bi])
        for j in range(N):
            Mj = M[0 if M.shape[0] == 1 else j]
            for bi in range(nbc):
                s0 = (b0 + bi) * EB
                m = min(EB, S - s0)
                yb = y[bi]
                ypb = yp[bi if leapfrog else 0]
                if store:
                    _store(yb, s0, m, states[j])
                _bias_fill(u, b, j, has_b)
                _mat_acc(u, yb, Mj)
                act_row(uf, 0.0, code, eta, vf, df)
                if store:
                    _store(dd, s0, m, dsig[j])
                for o in range(n):
                    for e in range(EB):
                        if leapfrog:
                            nxt = 2 * yb[o, e] - ypb[o, e] + h * vv[o, e]
                            ypb[o, e] = yb[o, e]
                            yb[o, e] = nxt
                        else:
                            yb[o, e] += h * vv[o, e]
        for bi in range(nbc):
            s0 = (b0 + bi) * EB
            _store(y[bi], s0, min(EB, S - s0), Z)
            if leapfrog:
                _store(yp[bi], s0, min(EB, S - s0), Zprev)


@njit(parallel=True, **JIT)
def _dense_jmv(M, states, dsig, h, dY0, has_dY0, dM, has_dM, db, has_db, leapfrog, chunks, dZ):
    N, S, n = states.shape
    for c in prange(chunks.shape[0] - 1):
        b0 = chunks[c]
        nbc = chunks[c + 1] - b0
        dy = np.zeros((nbc, n, EB), dtype=states.dtype)
        dyp = np.zeros((nbc if leapfrog else 1, n, EB), dtype=states.dtype)  # leapfrog only
        du = np.empty((n, EB), dtype=states.dtype)
        st = np.empty((n, EB), dtype=states.dtype)
        ds = np.empty((n, EB), dtype=states.dtype)
        if has_dY0:
            for bi in range(nbc):
                s0 = (b0 + bi) * EB
                _load(dY0, s0, min(EB, S - s0), dy[bi])
                if leapfrog:
                    _load(dY0, s0, min(EB, S - s0), dyp[bi])
        for j in range(N):
            Mj = M[0 if M.shape[0] == 1 else j]
            dMj = dM[0 if dM.shape[0] == 1 else j]
            for bi in range(nbc):
                s0 = (b0 + bi) * EB
                m = min(EB, S - s0)
                dyb = dy[bi]
                dypb = dyp[bi if leapfrog else 0]
                _bias_fill(du, db, j, has_db)
                _mat_acc(du, dyb, Mj)
                if has_dM:
                    _load(states[j], s0, m, st)
                    _mat_acc(du, st, dMj)
                _load(dsig[j], s0, m, ds)
                for o in range(n):
                    for e in range(EB):
                        inc = h * (ds[o, e] * du[o, e])
                        if leapfrog:
                            nxt = 2 * dyb[o, e] - dypb[o, e] + inc
                            dypb[o, e] = dyb[o, e]
                            dyb[o, e] = nxt
                        else:
                            dyb[o, e] += inc
        for bi in range(nbc):
            s0 = (b0 + bi) * EB
            _store(dy[bi], s0, min(EB, S - s0), dZ)


@njit(parallel=True, fastmath={"reassoc", "contract"}, **JIT)
def _dense_jtmv(W, M, states, dsig, h, need_theta, leapfrog, chunks, dM_part, db_part, dY0):
    """Adjoint sweep.  A shared ``M`` (one entry) accumulates all steps into entry 0.

    θ-adjoints: per layer, the states and ``V_j`` of the thread's examples are
    gathered transposed, ``(n, examples)``, and ``dM_j += Y_jᵀ V_j``,
    ``db_j += Σ V_j`` are contiguous dot products, which LLVM vectorizes (with
    ``fastmath`` reassociation: the sum over examples is taken in another,
    fixed, order).  The per-block outer-product accumulation used before
    compiled to scalar code (the accumulator may alias the operands, so LLVM
    does not vectorize it); this form made the B1 adjoint sweep 20 % faster.

    Layer-major within each thread's range of blocks: the adjoint states of all
    its blocks stay in L2 and ``states[j]``, ``dsig[j]`` are read as
    contiguous streams (hardware prefetch), not one 512-byte piece per layer.
    """
    N, S, n = states.shape
    for c in prange(chunks.shape[0] - 1):
        b0 = chunks[c]
        nbc = chunks[c + 1] - b0
        dMc = dM_part[c]
        dbc = db_part[c]
        if need_theta:
            dMc[...] = 0
            dbc[...] = 0
        w = np.empty((nbc, n, EB), dtype=W.dtype)  # λ_{j+1} of every block
        lp = np.zeros((nbc, n, EB), dtype=W.dtype)  # leapfrog: the part of λ_j known before step j
        v = np.empty((n, EB), dtype=W.dtype)
        st = np.empty((n, EB), dtype=W.dtype)
        ds = np.empty((n, EB), dtype=W.dtype)
        K = nbc * EB if need_theta else 0
        sT = np.empty((n, K), dtype=W.dtype)  # the layer's states of this thread's examples, transposed
        vT = np.empty((n, K), dtype=W.dtype)  # and V_j = h σ'_j ⊙ λ_{j+1}
        for bi in range(nbc):
            s0 = (b0 + bi) * EB
            _load(W, s0, min(EB, S - s0), w[bi])
        for j in range(N - 1, -1, -1):
            jm = 0 if M.shape[0] == 1 else j
            Mj = M[jm]
            sj = states[j]
            dj = dsig[j]
            for bi in range(nbc):
                s0 = (b0 + bi) * EB
                m = min(EB, S - s0)
                wb = w[bi]
                _load(dj, s0, m, ds)
                for o in range(n):
                    for e in range(EB):
                        v[o, e] = h * (ds[o, e] * wb[o, e])
                if need_theta:
                    _load(sj, s0, m, st)
                    k0 = bi * EB
                    for i in range(n):
                        for e in range(EB):
                            sT[i, k0 + e] = st[i, e]
                            vT[i, k0 + e] = v[i, e]
                if leapfrog:
                    lb = lp[bi]
                    for i in range(n):
                        for e in range(EB):
                            t = lb[i, e] + 2 * wb[i, e]
                            lb[i, e] = -wb[i, e]
                            wb[i, e] = t
                _matT_acc(wb, v, Mj)
            if need_theta:  # dM_j += Y_jᵀ V_j, db_j += Σ V_j as contiguous dot products
                G = dMc[jm]
                gb = dbc[jm]
                for i in range(n):
                    si = sT[i]
                    for o in range(n):
                        vo = vT[o]
                        acc = 0.0
                        for k in range(K):
                            acc += si[k] * vo[k]
                        G[i, o] += acc
                for o in range(n):
                    vo = vT[o]
                    acc = 0.0
                    for k in range(K):
                        acc += vo[k]
                    gb[o] += acc
        for bi in range(nbc):
            s0 = (b0 + bi) * EB
            wb = w[bi]
            if leapfrog:
                lb = lp[bi]
                for i in range(n):
                    for e in range(EB):
                        wb[i, e] += lb[i, e]
            _store(wb, s0, min(EB, S - s0), dY0)


@njit(parallel=True, **JIT)
def _dense_jvp(Y0, M, b, has_b, h, code, eta, N, dY0, has_dY0, dM, has_dM, db, has_db, chunks, Z, dZ):
    """Forward Euler sweep and its linearization in one (nothing stored):
    per layer ``U``, ``dU = dY M_j + Y dM_j + db_j``, ``σ(U)``, ``σ'(U)``, then
    ``dY += h σ' ⊙ dU`` and ``Y += h σ(U)``.  Layer-major within each thread's
    blocks, as :func:`_dense_forward`."""
    S, n = Y0.shape
    for c in prange(chunks.shape[0] - 1):
        b0 = chunks[c]
        nbc = chunks[c + 1] - b0
        y = np.empty((nbc, n, EB), dtype=Y0.dtype)
        dy = np.zeros((nbc, n, EB), dtype=Y0.dtype)
        u = np.empty((n, EB), dtype=Y0.dtype)
        du = np.empty((n, EB), dtype=Y0.dtype)
        vv = np.empty((n, EB), dtype=Y0.dtype)
        dd = np.empty((n, EB), dtype=Y0.dtype)
        uf = u.reshape(n * EB)
        vf = vv.reshape(n * EB)
        df = dd.reshape(n * EB)
        for bi in range(nbc):
            s0 = (b0 + bi) * EB
            _load(Y0, s0, min(EB, S - s0), y[bi])
            if has_dY0:
                _load(dY0, s0, min(EB, S - s0), dy[bi])
        for j in range(N):
            Mj = M[0 if M.shape[0] == 1 else j]
            dMj = dM[0 if dM.shape[0] == 1 else j]
            for bi in range(nbc):
                yb = y[bi]
                dyb = dy[bi]
                _bias_fill(u, b, j, has_b)
                _mat_acc(u, yb, Mj)
                _bias_fill(du, db, j, has_db)
                _mat_acc(du, dyb, Mj)
                if has_dM:
                    _mat_acc(du, yb, dMj)
                act_row(uf, 0.0, code, eta, vf, df)
                for o in range(n):
                    for e in range(EB):
                        dyb[o, e] += h * (dd[o, e] * du[o, e])
                        yb[o, e] += h * vv[o, e]
        for bi in range(nbc):
            s0 = (b0 + bi) * EB
            _store(y[bi], s0, min(EB, S - s0), Z)
            _store(dy[bi], s0, min(EB, S - s0), dZ)


def _dense_forward_numba(Y0, M, b, h, activation, store, N, leapfrog=False):
    code, eta = activation_code(activation)
    Y0, M = _c(Y0), _c(M)
    n = M.shape[1]
    bb, has_b = _or_zeros(b, (1, 1), Y0.dtype)
    Z = np.empty_like(Y0)
    Zprev = np.empty_like(Y0) if leapfrog else np.empty((1, n), dtype=Y0.dtype)  # never touched without leapfrog
    shape = (N, *Y0.shape) if store else (1, 1, n)
    states = _buffers.empty(shape, Y0.dtype)
    dsig = _buffers.empty(shape, Y0.dtype)
    hh = h * h if leapfrog else h
    _dense_forward(Y0, M, bb, has_b, Y0.dtype.type(hh), code, eta, leapfrog, store, N,
                   _chunks((Y0.shape[0] + EB - 1) // EB), Z, Zprev, states, dsig)
    return DenseTrajectory(Z=Z, states=states if store else None, dsigma=dsig if store else None,
                           prev=Zprev if leapfrog else None)


def _dense_jmv_numba(M, states, dsigma, h, dY0, dM, db, leapfrog=False):
    dt = states.dtype
    N, S, n = states.shape
    dY0, has_dY0 = _or_zeros(dY0, (1, n), dt)
    dM, has_dM = _or_zeros(dM, (1, n, n), dt)
    db, has_db = _or_zeros(db, (1, n), dt)
    dZ = np.empty((S, n), dtype=dt)
    hh = h * h if leapfrog else h
    _dense_jmv(_c(M), _c(states), _c(dsigma), dt.type(hh), dY0, has_dY0, dM, has_dM, db, has_db, leapfrog,
               _chunks((S + EB - 1) // EB), dZ)
    return dZ


def _dense_jtmv_numba(W, M, states, dsigma, h, need_theta, leapfrog=False):
    dt = states.dtype
    N, S, n = states.shape
    NM = M.shape[0]
    chunks = _reduction_chunks((S + EB - 1) // EB, NM * (n + 1) * n * dt.itemsize)
    k = chunks.size - 1
    dM_part = np.empty((k, NM, n, n), dtype=dt)  # partial sums per chunk (untouched without need_theta)
    db_part = np.empty((k, NM, n), dtype=dt)
    dY0 = np.empty((S, n), dtype=dt)
    hh = h * h if leapfrog else h
    _dense_jtmv(_c(W), _c(M), _c(states), _c(dsigma), dt.type(hh), need_theta, leapfrog, chunks, dM_part, db_part,
                dY0)
    if not need_theta:
        return None, None, dY0
    return dM_part.sum(axis=0), db_part.sum(axis=0), dY0


def _dense_jvp_numba(Y0, M, b, h, activation, dY0, dM, db, N):
    code, eta = activation_code(activation)
    Y0, M = _c(Y0), _c(M)
    dt = Y0.dtype
    S, n = Y0.shape
    bb, has_b = _or_zeros(b, (1, 1), dt)
    dY0, has_dY0 = _or_zeros(dY0, (1, n), dt)
    dM, has_dM = _or_zeros(dM, (1, n, n), dt)
    db, has_db = _or_zeros(db, (1, n), dt)
    Z, dZ = np.empty_like(Y0), np.empty_like(Y0)
    _dense_jvp(Y0, M, bb, has_b, dt.type(h), code, eta, N, dY0, has_dY0, dM, has_dM, db, has_db,
               _chunks((S + EB - 1) // EB), Z, dZ)
    return Z, dZ


def _leapfrog_forward_numba(Y0, M, b, h, activation, store, N):
    return _dense_forward_numba(Y0, M, b, h, activation, store, N, leapfrog=True)


def _leapfrog_jmv_numba(M, states, dsigma, h, dY0, dM, db):
    return _dense_jmv_numba(M, states, dsigma, h, dY0, dM, db, leapfrog=True)


def _leapfrog_jtmv_numba(W, M, states, dsigma, h, need_theta):
    return _dense_jtmv_numba(W, M, states, dsigma, h, need_theta, leapfrog=True)


# =================================================================== Verlet
@njit(parallel=True, **JIT)
def _verlet_forward(y0, z0, K, by, bz, has_b, h, code, eta, store, N, yN, zN, ys, zh, dsz, dsy):
    S, ny = y0.shape
    nz = z0.shape[1]
    nb = (S + EB - 1) // EB
    for blk in prange(nb):
        s0 = blk * EB
        m = min(EB, S - s0)
        y = np.empty((ny, EB), dtype=y0.dtype)
        z = np.empty((nz, EB), dtype=y0.dtype)
        u = np.empty((nz, EB), dtype=y0.dtype)
        w = np.empty((ny, EB), dtype=y0.dtype)
        vz = np.empty((nz, EB), dtype=y0.dtype)
        vy = np.empty((ny, EB), dtype=y0.dtype)
        dz_ = np.empty((nz, EB), dtype=y0.dtype)
        dy_ = np.empty((ny, EB), dtype=y0.dtype)
        _load(y0, s0, m, y)
        _load(z0, s0, m, z)
        for j in range(N):
            Kj = K[0 if K.shape[0] == 1 else j]
            if store:
                _store(y, s0, m, ys[j])
            _bias_fill(u, bz, j, has_b)
            _mat_acc_i(u, y, Kj)  # u = y K_j + b_z
            act_row_i(u.reshape(nz * EB), 0.0, code, eta, vz.reshape(nz * EB), dz_.reshape(nz * EB))
            for q in range(nz):
                for e in range(EB):
                    z[q, e] -= h * vz[q, e]
            _bias_fill(w, by, j, has_b)
            for a in range(ny):  # w = z K_jᵀ + b_y
                for q in range(nz):
                    kaq = Kj[a, q]
                    for e in range(EB):
                        w[a, e] += z[q, e] * kaq
            act_row_i(w.reshape(ny * EB), 0.0, code, eta, vy.reshape(ny * EB), dy_.reshape(ny * EB))
            for a in range(ny):
                for e in range(EB):
                    y[a, e] += h * vy[a, e]
            if store:
                _store(z, s0, m, zh[j])
                _store(dz_, s0, m, dsz[j])
                _store(dy_, s0, m, dsy[j])
        _store(y, s0, m, yN)
        _store(z, s0, m, zN)


@njit(parallel=True, **JIT)
def _verlet_jmv(K, ys, zh, dsz, dsy, h, dy0, has_dy0, dz0, has_dz0, dK, has_dK, dby, has_dby, dbz, has_dbz, dyN,
                dzN):
    N, S, ny = ys.shape
    nz = zh.shape[2]
    nb = (S + EB - 1) // EB
    for blk in prange(nb):
        s0 = blk * EB
        m = min(EB, S - s0)
        dy = np.zeros((ny, EB), dtype=K.dtype)
        dz = np.zeros((nz, EB), dtype=K.dtype)
        du = np.empty((nz, EB), dtype=K.dtype)
        dw = np.empty((ny, EB), dtype=K.dtype)
        st = np.empty((ny, EB), dtype=K.dtype)
        zs = np.empty((nz, EB), dtype=K.dtype)
        sz = np.empty((nz, EB), dtype=K.dtype)
        sy = np.empty((ny, EB), dtype=K.dtype)
        if has_dy0:
            _load_i(dy0, s0, m, dy)
        if has_dz0:
            _load_i(dz0, s0, m, dz)
        for j in range(N):
            Kj = K[0 if K.shape[0] == 1 else j]
            dKj = dK[0 if dK.shape[0] == 1 else j]
            _bias_fill(du, dbz, j, has_dbz)
            _mat_acc_i(du, dy, Kj)
            if has_dK:
                _load_i(ys[j], s0, m, st)
                _mat_acc_i(du, st, dKj)
            _load_i(dsz[j], s0, m, sz)
            for q in range(nz):
                for e in range(EB):
                    dz[q, e] -= h * (sz[q, e] * du[q, e])
            _bias_fill(dw, dby, j, has_dby)
            if has_dK:
                _load_i(zh[j], s0, m, zs)
            for a in range(ny):
                for q in range(nz):
                    kaq = Kj[a, q]
                    for e in range(EB):
                        dw[a, e] += dz[q, e] * kaq
                    if has_dK:
                        dkaq = dKj[a, q]
                        for e in range(EB):
                            dw[a, e] += zs[q, e] * dkaq
            _load_i(dsy[j], s0, m, sy)
            for a in range(ny):
                for e in range(EB):
                    dy[a, e] += h * (sy[a, e] * dw[a, e])
        _store(dy, s0, m, dyN)
        _store(dz, s0, m, dzN)


@njit(parallel=True, fastmath={"reassoc", "contract"}, **JIT)
def _verlet_jtmv(Wy, Wz, K, ys, zh, dsz, dsy, h, need_theta, chunks, dK_part, dby_part, dbz_part, dy0, dz0):
    """Adjoint Verlet sweep, layer-major within each thread's blocks; θ-adjoints as contiguous dot
    products over the thread's examples (see :func:`_dense_jtmv`)."""
    N, S, ny = ys.shape
    nz = zh.shape[2]
    for c in prange(chunks.shape[0] - 1):
        b0 = chunks[c]
        nbc = chunks[c + 1] - b0
        dKc = dK_part[c]
        dbyc = dby_part[c]
        dbzc = dbz_part[c]
        if need_theta:
            dKc[...] = 0
            dbyc[...] = 0
            dbzc[...] = 0
        wy = np.empty((nbc, ny, EB), dtype=K.dtype)
        wz = np.empty((nbc, nz, EB), dtype=K.dtype)
        vy = np.empty((ny, EB), dtype=K.dtype)
        vz = np.empty((nz, EB), dtype=K.dtype)
        st = np.empty((ny, EB), dtype=K.dtype)
        zs = np.empty((nz, EB), dtype=K.dtype)
        sz = np.empty((nz, EB), dtype=K.dtype)
        sy = np.empty((ny, EB), dtype=K.dtype)
        KT = nbc * EB if need_theta else 0
        vyT = np.empty((ny, KT), dtype=K.dtype)  # this layer's v_y, y_j, v_z, z_{j+½} of the thread's examples
        ysT = np.empty((ny, KT), dtype=K.dtype)
        vzT = np.empty((nz, KT), dtype=K.dtype)
        zsT = np.empty((nz, KT), dtype=K.dtype)
        for bi in range(nbc):
            s0 = (b0 + bi) * EB
            _load_i(Wy, s0, min(EB, S - s0), wy[bi])
            _load_i(Wz, s0, min(EB, S - s0), wz[bi])
        for j in range(N - 1, -1, -1):
            jk = 0 if K.shape[0] == 1 else j
            Kj = K[jk]
            for bi in range(nbc):
                s0 = (b0 + bi) * EB
                m = min(EB, S - s0)
                wyb = wy[bi]
                wzb = wz[bi]
                _load_i(dsy[j], s0, m, sy)
                for a in range(ny):
                    for e in range(EB):
                        vy[a, e] = h * (sy[a, e] * wyb[a, e])
                _mat_acc_i(wzb, vy, Kj)  # wz[q] += Σ_a vy[a] K[a, q]
                _load_i(dsz[j], s0, m, sz)
                for q in range(nz):
                    for e in range(EB):
                        vz[q, e] = -h * (sz[q, e] * wzb[q, e])
                if need_theta:
                    _load_i(zh[j], s0, m, zs)
                    _load_i(ys[j], s0, m, st)
                    k0 = bi * EB
                    for a in range(ny):
                        for e in range(EB):
                            vyT[a, k0 + e] = vy[a, e]
                            ysT[a, k0 + e] = st[a, e]
                    for q in range(nz):
                        for e in range(EB):
                            vzT[q, k0 + e] = vz[q, e]
                            zsT[q, k0 + e] = zs[q, e]
                _mat_acc_i(wyb, vz, Kj.T)  # wy[a] += Σ_q vz[q] K[a, q]
            if need_theta:  # dK[a, q] += Σ v_y[a] z_{j+½}[q] + y_j[a] v_z[q]; db_y += Σ v_y; db_z += Σ v_z
                G = dKc[jk]
                for a in range(ny):
                    for q in range(nz):
                        acc = 0.0
                        for k in range(KT):
                            acc += vyT[a, k] * zsT[q, k] + ysT[a, k] * vzT[q, k]
                        G[a, q] += acc
                    acc = 0.0
                    for k in range(KT):
                        acc += vyT[a, k]
                    dbyc[jk, a] += acc
                for q in range(nz):
                    acc = 0.0
                    for k in range(KT):
                        acc += vzT[q, k]
                    dbzc[jk, q] += acc
        for bi in range(nbc):
            s0 = (b0 + bi) * EB
            _store(wy[bi], s0, min(EB, S - s0), dy0)
            _store(wz[bi], s0, min(EB, S - s0), dz0)


@njit(parallel=True, **JIT)
def _verlet_jvp(y0, z0, K, by, has_by, bz, has_bz, h, code, eta, N, dy0, has_dy0, dz0, has_dz0, dK, has_dK, dby,
                has_dby, dbz, has_dbz, yN, zN, dyN, dzN):
    """Verlet sweep and its linearization in one (nothing stored); per step the
    tangent half step of ``z`` (it reads ``y_j``) comes with the state's, then
    the half step of ``y`` (it reads ``z_{j+½}``).  Block-major, as
    :func:`_verlet_forward`."""
    S, ny = y0.shape
    nz = z0.shape[1]
    nb = (S + EB - 1) // EB
    for blk in prange(nb):
        s0 = blk * EB
        m = min(EB, S - s0)
        y = np.empty((ny, EB), dtype=y0.dtype)
        z = np.empty((nz, EB), dtype=y0.dtype)
        dy = np.zeros((ny, EB), dtype=y0.dtype)
        dz = np.zeros((nz, EB), dtype=y0.dtype)
        u = np.empty((nz, EB), dtype=y0.dtype)
        du = np.empty((nz, EB), dtype=y0.dtype)
        w = np.empty((ny, EB), dtype=y0.dtype)
        dw = np.empty((ny, EB), dtype=y0.dtype)
        vz = np.empty((nz, EB), dtype=y0.dtype)
        vy = np.empty((ny, EB), dtype=y0.dtype)
        sz = np.empty((nz, EB), dtype=y0.dtype)
        sy = np.empty((ny, EB), dtype=y0.dtype)
        _load(y0, s0, m, y)
        _load(z0, s0, m, z)
        if has_dy0:
            _load(dy0, s0, m, dy)
        if has_dz0:
            _load(dz0, s0, m, dz)
        for j in range(N):
            Kj = K[0 if K.shape[0] == 1 else j]
            dKj = dK[0 if dK.shape[0] == 1 else j]
            _bias_fill(u, bz, j, has_bz)
            _mat_acc_i(u, y, Kj)  # u = y K_j + b_z
            _bias_fill(du, dbz, j, has_dbz)
            _mat_acc_i(du, dy, Kj)  # du = dy K_j + y dK_j + db_z
            if has_dK:
                _mat_acc_i(du, y, dKj)
            act_row_i(u.reshape(nz * EB), 0.0, code, eta, vz.reshape(nz * EB), sz.reshape(nz * EB))
            for q in range(nz):
                for e in range(EB):
                    dz[q, e] -= h * (sz[q, e] * du[q, e])
                    z[q, e] -= h * vz[q, e]
            _bias_fill(w, by, j, has_by)
            _bias_fill(dw, dby, j, has_dby)
            for a in range(ny):  # w = z K_jᵀ + b_y, dw = dz K_jᵀ + z dK_jᵀ + db_y
                for q in range(nz):
                    kaq = Kj[a, q]
                    for e in range(EB):
                        w[a, e] += z[q, e] * kaq
                        dw[a, e] += dz[q, e] * kaq
                    if has_dK:
                        dkaq = dKj[a, q]
                        for e in range(EB):
                            dw[a, e] += z[q, e] * dkaq
            act_row_i(w.reshape(ny * EB), 0.0, code, eta, vy.reshape(ny * EB), sy.reshape(ny * EB))
            for a in range(ny):
                for e in range(EB):
                    dy[a, e] += h * (sy[a, e] * dw[a, e])
                    y[a, e] += h * vy[a, e]
        _store(y, s0, m, yN)
        _store(z, s0, m, zN)
        _store(dy, s0, m, dyN)
        _store(dz, s0, m, dzN)


def _verlet_forward_numba(y0, z0, K, by, bz, h, activation, store, N):
    code, eta = activation_code(activation)
    y0, z0, K = _c(y0), _c(z0), _c(K)
    ny, nz = K.shape[1], K.shape[2]
    S = y0.shape[0]
    dt = y0.dtype
    has_b = by is not None
    by, _ = _or_zeros(by, (1, 1), dt)
    bz, _ = _or_zeros(bz, (1, 1), dt)
    yN, zN = np.empty_like(y0), np.empty_like(z0)
    ys = _buffers.empty((N, S, ny) if store else (1, 1, ny), dt)
    zh = _buffers.empty((N, S, nz) if store else (1, 1, nz), dt)
    dsz, dsy = _buffers.empty(zh.shape, dt), _buffers.empty(ys.shape, dt)
    _verlet_forward(y0, z0, K, by, bz, has_b, dt.type(h), code, eta, store, N, yN, zN, ys, zh, dsz, dsy)
    if not store:
        ys = zh = dsz = dsy = None
    return VerletTrajectory(y=yN, z=zN, ys=ys, z_half=zh, dsigma_z=dsz, dsigma_y=dsy)


def _verlet_jmv_numba(K, tr, h, dy0, dz0, dK, dby, dbz):
    K = _c(K)
    ny, nz = K.shape[1], K.shape[2]
    S = tr.ys.shape[1]
    dt = K.dtype
    dy0, h_dy0 = _or_zeros(dy0, (1, ny), dt)
    dz0, h_dz0 = _or_zeros(dz0, (1, nz), dt)
    dK, h_dK = _or_zeros(dK, (1, ny, nz), dt)
    dby, h_dby = _or_zeros(dby, (1, ny), dt)
    dbz, h_dbz = _or_zeros(dbz, (1, nz), dt)
    dyN, dzN = np.empty((S, ny), dtype=dt), np.empty((S, nz), dtype=dt)
    _verlet_jmv(K, _c(tr.ys), _c(tr.z_half), _c(tr.dsigma_z), _c(tr.dsigma_y), dt.type(h), dy0, h_dy0, dz0, h_dz0,
                dK, h_dK, dby, h_dby, dbz, h_dbz, dyN, dzN)
    return dyN, dzN


def _verlet_jtmv_numba(Wy, Wz, K, tr, h, need_theta):
    K = _c(K)
    NK, ny, nz = K.shape
    S = tr.ys.shape[1]
    dt = K.dtype
    chunks = _reduction_chunks((S + EB - 1) // EB, NK * (ny * nz + ny + nz) * dt.itemsize)
    k = chunks.size - 1  # one partial sum per chunk (untouched without need_theta)
    dK_part = np.empty((k, NK, ny, nz), dtype=dt)  # per chunk
    dby_part = np.empty((k, NK, ny), dtype=dt)
    dbz_part = np.empty((k, NK, nz), dtype=dt)
    dy0, dz0 = np.empty((S, ny), dtype=dt), np.empty((S, nz), dtype=dt)
    _verlet_jtmv(_c(Wy), _c(Wz), K, _c(tr.ys), _c(tr.z_half), _c(tr.dsigma_z), _c(tr.dsigma_y), dt.type(h),
                 need_theta, chunks, dK_part, dby_part, dbz_part, dy0, dz0)
    if not need_theta:
        return None, None, None, dy0, dz0
    return dK_part.sum(axis=0), dby_part.sum(axis=0), dbz_part.sum(axis=0), dy0, dz0


def _verlet_jvp_numba(y0, z0, K, by, bz, h, activation, dy0, dz0, dK, dby, dbz, N):
    code, eta = activation_code(activation)
    y0, z0, K = _c(y0), _c(z0), _c(K)
    ny, nz = K.shape[1], K.shape[2]
    dt = y0.dtype
    by, h_by = _or_zeros(by, (1, 1), dt)
    bz, h_bz = _or_zeros(bz, (1, 1), dt)
    dy0, h_dy0 = _or_zeros(dy0, (1, ny), dt)
    dz0, h_dz0 = _or_zeros(dz0, (1, nz), dt)
    dK, h_dK = _or_zeros(dK, (1, ny, nz), dt)
    dby, h_dby = _or_zeros(dby, (1, 1), dt)
    dbz, h_dbz = _or_zeros(dbz, (1, 1), dt)
    yN, zN = np.empty_like(y0), np.empty_like(z0)
    dyN, dzN = np.empty_like(y0), np.empty_like(z0)
    _verlet_jvp(y0, z0, K, by, h_by, bz, h_bz, dt.type(h), code, eta, N, dy0, h_dy0, dz0, h_dz0, dK, h_dK, dby, h_dby,
                dbz, h_dbz, yN, zN, dyN, dzN)
    return yN, zN, dyN, dzN


_IMPLEMENTATIONS["resnet_dense_forward"]["numba"] = _dense_forward_numba
_IMPLEMENTATIONS["resnet_dense_jmv"]["numba"] = _dense_jmv_numba
_IMPLEMENTATIONS["resnet_dense_jtmv"]["numba"] = _dense_jtmv_numba
_IMPLEMENTATIONS["leapfrog_forward"]["numba"] = _leapfrog_forward_numba
_IMPLEMENTATIONS["leapfrog_jmv"]["numba"] = _leapfrog_jmv_numba
_IMPLEMENTATIONS["leapfrog_jtmv"]["numba"] = _leapfrog_jtmv_numba
_IMPLEMENTATIONS["verlet_forward"]["numba"] = _verlet_forward_numba
_IMPLEMENTATIONS["verlet_jmv"]["numba"] = _verlet_jmv_numba
_IMPLEMENTATIONS["verlet_jtmv"]["numba"] = _verlet_jtmv_numba
_IMPLEMENTATIONS["resnet_dense_jvp"]["numba"] = _dense_jvp_numba
_IMPLEMENTATIONS["verlet_jvp"]["numba"] = _verlet_jvp_numba
