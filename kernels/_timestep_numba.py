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

The dense ResNet / leapfrog sweeps (issue 13, "B1 gradient") use tiles of :data:`TILE` examples
instead: a tile's arrays are ``(features, TILE)``, one contiguous row per feature, and every loop
runs over the tile's examples (one call per tile and layer of each helper, not per block of 8; the
B1 forward went from 8.1 to 5.3 ms).  Their forward stores the states only; the linearized and
adjoint sweeps recompute ``σ'(U_j)`` from them, bit-identical to the forward's (see
:func:`_mat_acc_T`): one trajectory of memory instead of two.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from . import _buffers, _reduction_bounds
from ._numba_math import JIT, act_row
from .activation import activation_code
from .timestep import _IMPLEMENTATIONS, DenseTrajectory, SigmaFromStates, VerletTrajectory

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


#: Examples per tile of the dense ResNet / leapfrog sweeps (see :func:`_dense_forward`).
TILE = 256


@njit(**JIT)
def _gather_T(A, s0, K, outT):
    """``outT[i, k] = A[s0 + k, i]`` for ``k < K``."""
    for k in range(K):
        row = A[s0 + k]
        for i in range(outT.shape[0]):
            outT[i, k] = row[i]


@njit(**JIT)
def _scatter_T(srcT, s0, K, A):
    """``A[s0 + k, i] = srcT[i, k]`` for ``k < K``."""
    for k in range(K):
        row = A[s0 + k]
        for i in range(srcT.shape[0]):
            row[i] = srcT[i, k]


@njit(**JIT)
def _fill_T(uT, b, j, given, K):
    """``uT[o, :K] = b_j[o]`` (shared stack: one row; width 1: a scalar), or 0."""
    jb = 0 if b.shape[0] == 1 else j
    wide = b.shape[1] > 1
    for o in range(uT.shape[0]):
        v = b[jb, o if wide else 0] if given else 0.0
        uo = uT[o]
        for k in range(K):
            uo[k] = v


@njit(**JIT)
def _mat_acc_T(uT, yT, Mj, K):
    """``uT[o, :K] += Σ_i yT[i, :K] Mj[i, o]``, summed over ``i = 0, …, n−1`` in order.

    No ``fastmath`` (neither here nor in the forward kernel): no contraction to FMAs and no
    reassociation, so ``U_j`` recomputed by the linearized and adjoint sweeps (compiled with
    ``fastmath``; a called function keeps its own flags when LLVM inlines it) has the
    forward's bits."""
    for i in range(yT.shape[0]):
        yi = yT[i]
        for o in range(uT.shape[0]):
            mio = Mj[i, o]
            uo = uT[o]
            for k in range(K):
                uo[k] += yi[k] * mio


@njit(**JIT)
def _act_T(uT, code, eta, vT, dT, K):
    """``vT[:, :K] = σ(uT)``, ``dT[:, :K] = σ'(uT)`` (three separate arrays: with an output
    aliasing the input LLVM's runtime overlap check sends ``act_row`` to its scalar loop)."""
    for o in range(uT.shape[0]):
        act_row(uT[o, :K], 0.0, code, eta, vT[o, :K], dT[o, :K])


@njit(**JIT)
def _step_tile(states, dsig, j, t0, K, want_states, recompute, b, has_b, Mj, code, eta, sT, uT, vT, dT):
    """Step j of a tile for the linearized and adjoint sweeps: its states ``sT = Y_jᵀ`` (when wanted or
    needed for σ') and ``dT = σ'(U_j)ᵀ``, recomputed (:func:`_sigma_prime_T`) or read from ``dsig``."""
    if want_states or recompute:
        _gather_T(states[j], t0, K, sT)
    if recompute:
        _sigma_prime_T(sT, b, j, has_b, Mj, code, eta, K, uT, vT, dT)
    else:
        _gather_T(dsig[j], t0, K, dT)


@njit(**JIT)
def _sigma_prime_T(sT, b, j, has_b, Mj, code, eta, K, uT, vT, dT):
    """``dT[:, :K] = σ'(U_j)ᵀ`` of a tile from its states ``sT = Y_jᵀ``: ``U_j = Y_j M_j + b_j``
    by the forward's own :func:`_fill_T` + :func:`_mat_acc_T` + :func:`_act_T`, hence the
    forward's bits; ``uT`` (U_j) and ``vT`` (σ(U_j)) are scratch."""
    _fill_T(uT, b, j, has_b, K)
    _mat_acc_T(uT, sT, Mj, K)
    _act_T(uT, code, eta, vT, dT, K)


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
# Layout (issue 13, "B1 gradient"): each thread takes a range of examples (chunks of EB-example
# blocks, as before) and walks it in tiles of TILE examples; a tile's arrays are held transposed,
# (n, TILE) — one contiguous row per feature — and carried through all N layers while they stay in
# L1/L2.  Every loop is a contiguous loop over the tile's examples (it vectorizes for any width;
# one call of each helper per tile and layer, not per block of 8), and ``states[j]`` is read and
# written in contiguous TILE × n pieces.  The forward keeps only the states: the linearized and
# adjoint sweeps recompute σ'(U_j) from them (:func:`_sigma_prime_T`).
@njit(parallel=True, **JIT)
def _dense_forward(Y0, M, b, has_b, h, code, eta, leapfrog, store, N, chunks, Z, Zprev, states):
    """Forward Euler (``leapfrog=False``) or leapfrog sweep; ``h`` is h or h².
    ``store=False``: states are not touched (may be a dummy).  Stacks with
    one entry are shared by all steps; a bias of width 1 is a scalar.

    Only the states ``Y_j`` are stored, not ``σ'(U_j)`` (one (N, S, n)
    trajectory instead of two): the linearized and adjoint sweeps recompute
    ``U_j = Y_j M_j + b_j`` and ``σ'(U_j)`` with the same helpers
    (:func:`_fill_T`, :func:`_mat_acc_T`, :func:`_act_T`), the same bits."""
    S, n = Y0.shape
    for c in prange(chunks.shape[0] - 1):
        e0 = chunks[c] * EB
        e1 = min(chunks[c + 1] * EB, S)
        yT = np.empty((n, TILE), dtype=Y0.dtype)
        ypT = np.empty((n, TILE if leapfrog else 0), dtype=Y0.dtype)  # Y_{j-1}: leapfrog only
        uT = np.empty((n, TILE), dtype=Y0.dtype)
        vT = np.empty((n, TILE), dtype=Y0.dtype)
        dT = np.empty((n, TILE), dtype=Y0.dtype)
        for t0 in range(e0, e1, TILE):
            K = min(TILE, e1 - t0)
            _gather_T(Y0, t0, K, yT)
            if leapfrog:
                _gather_T(Y0, t0, K, ypT)
            for j in range(N):
                Mj = M[0 if M.shape[0] == 1 else j]
                if store:
                    _scatter_T(yT, t0, K, states[j])
                _fill_T(uT, b, j, has_b, K)
                _mat_acc_T(uT, yT, Mj, K)
                _act_T(uT, code, eta, vT, dT, K)
                for o in range(n):
                    yo = yT[o]
                    vo = vT[o]
                    if leapfrog:
                        po = ypT[o]
                        for k in range(K):
                            nxt = 2 * yo[k] - po[k] + h * vo[k]
                            po[k] = yo[k]
                            yo[k] = nxt
                    else:
                        for k in range(K):
                            yo[k] += h * vo[k]
            _scatter_T(yT, t0, K, Z)
            if leapfrog:
                _scatter_T(ypT, t0, K, Zprev)


@njit(parallel=True, **JIT)
def _dense_jmv(M, states, dsig, recompute, b, has_b, code, eta, h, dY0, has_dY0, dM, has_dM, db, has_db, leapfrog,
               chunks, dZ):
    """Linearized sweep, tiles as :func:`_dense_forward`.  ``recompute``: ``σ'(U_j)`` from the
    states (:func:`_sigma_prime_T`; ``dsig`` is a dummy), else read from ``dsig[j]`` (``b``,
    ``code``, ``eta`` unused)."""
    N, S, n = states.shape
    for c in prange(chunks.shape[0] - 1):
        e0 = chunks[c] * EB
        e1 = min(chunks[c + 1] * EB, S)
        dyT = np.empty((n, TILE), dtype=states.dtype)
        dypT = np.empty((n, TILE if leapfrog else 0), dtype=states.dtype)  # leapfrog only
        duT = np.empty((n, TILE), dtype=states.dtype)
        sT = np.empty((n, TILE), dtype=states.dtype)
        dT = np.empty((n, TILE), dtype=states.dtype)
        uT = np.empty((n, TILE if recompute else 0), dtype=states.dtype)  # recompute: U_j, σ(U_j) (scratch)
        vT = np.empty((n, TILE if recompute else 0), dtype=states.dtype)
        for t0 in range(e0, e1, TILE):
            K = min(TILE, e1 - t0)
            if has_dY0:
                _gather_T(dY0, t0, K, dyT)
            else:
                dyT[:, :K] = 0
            if leapfrog:
                dypT[:, :K] = dyT[:, :K]
            for j in range(N):
                Mj = M[0 if M.shape[0] == 1 else j]
                dMj = dM[0 if dM.shape[0] == 1 else j]
                _step_tile(states, dsig, j, t0, K, has_dM, recompute, b, has_b, Mj, code, eta, sT, uT, vT, dT)
                _fill_T(duT, db, j, has_db, K)
                _mat_acc_T(duT, dyT, Mj, K)
                if has_dM:
                    _mat_acc_T(duT, sT, dMj, K)
                for o in range(n):
                    dyo = dyT[o]
                    do = dT[o]
                    duo = duT[o]
                    if leapfrog:
                        po = dypT[o]
                        for k in range(K):
                            nxt = 2 * dyo[k] - po[k] + h * (do[k] * duo[k])
                            po[k] = dyo[k]
                            dyo[k] = nxt
                    else:
                        for k in range(K):
                            dyo[k] += h * (do[k] * duo[k])
            _scatter_T(dyT, t0, K, dZ)


@njit(parallel=True, fastmath={"reassoc", "contract"}, **JIT)
def _dense_jtmv(W, M, states, dsig, recompute, b, has_b, code, eta, h, need_theta, leapfrog, chunks, dM_part, db_part,
                dY0):
    """Adjoint sweep, tiles as :func:`_dense_forward`.  A shared ``M`` (one entry) accumulates
    all steps into entry 0.

    ``recompute``: ``σ'(U_j)`` is recomputed per tile from the stored states,
    ``U_j = Y_j M_j + b_j`` and ``σ'(U_j)`` by the forward's own helpers
    (:func:`_sigma_prime_T`: the same bits as the forward's; they keep their own,
    non-``fastmath``, flags), so the forward keeps one trajectory (the states)
    instead of two; the price is one more ``n × n`` product and one ``σ`` per
    example and layer here.  Else (``b``, ``code``, ``eta`` unused) ``σ'`` is
    read from ``dsig[j]``.

    θ-adjoints: per tile and layer, ``dM_j += Y_jᵀ V_j`` and ``db_j += Σ V_j`` are
    contiguous dot products over the tile's examples, which LLVM vectorizes (with
    ``fastmath`` reassociation: the sum over examples is taken in another,
    fixed, order); one partial sum per chunk, tiles in order.
    """
    N, S, n = states.shape
    for c in prange(chunks.shape[0] - 1):
        e0 = chunks[c] * EB
        e1 = min(chunks[c + 1] * EB, S)
        dMc = dM_part[c]
        dbc = db_part[c]
        if need_theta:
            dMc[...] = 0
            dbc[...] = 0
        wT = np.empty((n, TILE), dtype=W.dtype)  # λ_{j+1}
        lT = np.empty((n, TILE if leapfrog else 0), dtype=W.dtype)  # leapfrog: the part of λ_j known before step j
        sT = np.empty((n, TILE), dtype=W.dtype)  # Y_j
        vT = np.empty((n, TILE), dtype=W.dtype)  # σ'_j, then V_j = h σ'_j ⊙ λ_{j+1}
        uT = np.empty((n, TILE if recompute else 0), dtype=W.dtype)  # recompute: U_j, σ(U_j) (scratch)
        svT = np.empty((n, TILE if recompute else 0), dtype=W.dtype)
        for t0 in range(e0, e1, TILE):
            K = min(TILE, e1 - t0)
            _gather_T(W, t0, K, wT)
            if leapfrog:
                lT[:, :K] = 0
            for j in range(N - 1, -1, -1):
                jm = 0 if M.shape[0] == 1 else j
                Mj = M[jm]
                _step_tile(states, dsig, j, t0, K, need_theta, recompute, b, has_b, Mj, code, eta, sT, uT, svT, vT)
                for o in range(n):
                    vo = vT[o]
                    wo = wT[o]
                    for k in range(K):
                        vo[k] = h * (vo[k] * wo[k])
                if leapfrog:
                    for i in range(n):
                        li = lT[i]
                        wi = wT[i]
                        for k in range(K):
                            t = li[k] + 2 * wi[k]
                            li[k] = -wi[k]
                            wi[k] = t
                for i in range(n):  # λ += V_j M_jᵀ
                    wi = wT[i]
                    for o in range(n):
                        mio = Mj[i, o]
                        vo = vT[o]
                        for k in range(K):
                            wi[k] += vo[k] * mio
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
            if leapfrog:
                for i in range(n):
                    for k in range(K):
                        wT[i, k] += lT[i, k]
            _scatter_T(wT, t0, K, dY0)


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
    """Only the states are kept (``store``): the trajectory's ``dsigma`` is a
    :class:`~meganet.kernels.timestep.SigmaFromStates` (the bias and ``σ``), from which the
    linearized and adjoint sweeps recompute ``σ'(U_j)`` — one (N, S, n) stack instead of two."""
    code, eta = activation_code(activation)
    Y0, M = _c(Y0), _c(M)
    n = M.shape[1]
    bb, has_b = _or_zeros(b, (1, 1), Y0.dtype)
    Z = np.empty_like(Y0)
    Zprev = np.empty_like(Y0) if leapfrog else np.empty((1, n), dtype=Y0.dtype)  # never touched without leapfrog
    states = _buffers.empty((N, *Y0.shape) if store else (1, 1, n), Y0.dtype)
    hh = h * h if leapfrog else h
    _dense_forward(Y0, M, bb, has_b, Y0.dtype.type(hh), code, eta, leapfrog, store, N,
                   _chunks((Y0.shape[0] + EB - 1) // EB), Z, Zprev, states)
    # the bias is copied (N × n): the recomputation must see the forward's b_j even if θ changes in place
    sigma = SigmaFromStates(b=bb.copy() if has_b else None, activation=activation) if store else None
    return DenseTrajectory(Z=Z, states=states if store else None, dsigma=sigma, prev=Zprev if leapfrog else None)


def _sigma_args(dsigma, n, dt):
    """Kernel arguments ``(dsig, recompute, b, has_b, code, eta)`` for a σ' stack or a :class:`SigmaFromStates`."""
    if isinstance(dsigma, SigmaFromStates):
        code, eta = activation_code(dsigma.activation)
        b, has_b = _or_zeros(dsigma.b, (1, 1), dt)
        return np.zeros((1, 1, n), dtype=dt), True, b, has_b, code, eta
    return _c(dsigma), False, np.zeros((1, 1), dtype=dt), False, 0, 0.0


def _dense_jmv_numba(M, states, dsigma, h, dY0, dM, db, leapfrog=False):
    dt = states.dtype
    N, S, n = states.shape
    dY0, has_dY0 = _or_zeros(dY0, (1, n), dt)
    dM, has_dM = _or_zeros(dM, (1, n, n), dt)
    db, has_db = _or_zeros(db, (1, n), dt)
    dZ = np.empty((S, n), dtype=dt)
    hh = h * h if leapfrog else h
    _dense_jmv(_c(M), _c(states), *_sigma_args(dsigma, n, dt), dt.type(hh), dY0, has_dY0, dM, has_dM, db, has_db,
               leapfrog, _chunks((S + EB - 1) // EB), dZ)
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
    _dense_jtmv(_c(W), _c(M), _c(states), *_sigma_args(dsigma, n, dt), dt.type(hh), need_theta, leapfrog, chunks,
                dM_part, db_part, dY0)
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


# The linearized and adjoint sweeps take a SigmaFromStates as ``dsigma`` (the wrappers in .timestep
# turn it into a σ' stack for engines without this mark).
for _f in (_dense_jmv_numba, _dense_jtmv_numba, _leapfrog_jmv_numba, _leapfrog_jtmv_numba):
    _f.recomputes_sigma = True


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
