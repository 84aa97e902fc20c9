r"""Fused time-stepping kernels: whole forward / linearized / adjoint sweeps of a block.

For small widths (a few to a few dozen features) a time-stepping block spends
its time in per-step Python and array-call overhead, not in arithmetic: a
dense step on ``(5000, 8)`` data is ~0.7 Mflop, less than the cost of the ten
numpy calls that evaluate it.  These kernels run *all* steps of a block in one
call; the numba engine keeps each example's state in cache for all layers
(examples in parallel).  Each has an array-module reference (numpy or cupy)
written step by step, against which the compiled engines are tested.

Conventions: examples first; the per-step weights are stacked along a
leading step axis ``j = 0, …, N−1``; ``σ`` is given by name or instance (see
:mod:`meganet.kernels.activation`).  Cached trajectories are returned as
small dataclasses.

Dense ResNet (forward Euler; the antisymmetric ResNet passes ``M_j = A_jᵀ``)
    ``U_j = Y_j M_j + b_j``, ``Y_{j+1} = Y_j + h σ(U_j)``;
    :func:`resnet_dense_forward`, :func:`resnet_dense_jmv`,
    :func:`resnet_dense_jtmv`; :func:`resnet_dense_jvp`.
Hamiltonian Verlet (Haber & Ruthotto 2017, eq. 4.17; B3 of the benchmarks)
    ``z_{j+½} = z_{j−½} − h σ(y_j K_j + b_{z,j})``,
    ``y_{j+1} = y_j + h σ(z_{j+½} K_jᵀ + b_{y,j})``, ``K_j`` of shape
    ``(n_y, n_z)``; :func:`verlet_forward`, :func:`verlet_jmv`,
    :func:`verlet_jtmv`; :func:`verlet_jvp`.
Leapfrog (Haber & Ruthotto 2017, eq. 4.16)
    ``Y_{j+1} = 2Y_j − Y_{j−1} + h² σ(Y_j M_j + b_j)``, ``Y_{−1} = Y_0``;
    :func:`leapfrog_forward`, :func:`leapfrog_jmv`, :func:`leapfrog_jtmv`.

Derivatives (written once per scheme, in the references and the kernels):

* dense: ``dY_{j+1} = dY_j + h σ'_j ⊙ (dY_j M_j + Y_j dM_j + db_j)``; adjoint
  ``V = h σ'_j ⊙ W``, ``dM_j = Y_jᵀ V``, ``db_j = Σ_s V``, ``W ← W + V M_jᵀ``.
* Verlet: ``dz ← dz − h σ'_z ⊙ (dy K_j + y_j dK_j + db_z)``,
  ``dy ← dy + h σ'_y ⊙ (dz K_jᵀ + z_{j+½} dK_jᵀ + db_y)``; adjoint (``w_y``,
  ``w_z`` of ``y_{j+1}``, ``z_{j+½}``): ``v_y = h σ'_y ⊙ w_y``,
  ``w_z ← w_z + v_y K_j``, ``v_z = −h σ'_z ⊙ w_z``, ``w_y ← w_y + v_z K_jᵀ``,
  ``dK_j = v_yᵀ z_{j+½} + y_jᵀ v_z``.
* leapfrog: ``dY_{j+1} = 2dY_j − dY_{j−1} + h² σ'_j ⊙ (dY_j M_j + Y_j dM_j + db_j)``;
  adjoint with ``a = λ_{j+1}``: ``V = h² σ'_j ⊙ a``,
  ``λ_j = −λ_{j+2}(\text{from } j{+}1) + 2a + V M_jᵀ`` and finally
  ``dY_0 = λ_0 − λ_1`` (``Y_{−1} = Y_0``).

One-sweep forward-mode products (``*_jvp``, PyTorch's ``torch.func.jvp``):
the state and the tangent are propagated together, layer by layer (``U_j``,
``σ(U_j)``, ``σ'(U_j)``; the tangent update with the formulas above, which
read ``Y_j``; then the state update), and nothing is stored: same values as
``*_forward`` followed by ``*_jmv`` in ``O(1)`` states of memory instead of
``O(N)``.

σ' is not stored by the numba engine: its forward keeps the states only, and
the linearized and adjoint sweeps recompute ``σ'(U_j)``, ``U_j = Y_j M_j +
b_j``, from ``Y_j`` (:class:`SigmaFromStates`; bit-identical to the forward's
σ').  One trajectory of memory instead of two, for one ``n × n`` product and
one ``σ`` per example and layer in each of those sweeps.

Per-example θ-gradients are not offered here (the elements use their
generic step-by-step path for ``per_example=True``).
"""

from __future__ import annotations

from dataclasses import dataclass

from meganet.backend import get_array_module
from meganet.core.validation import check_bool

from . import dispatch

__all__ = [
    "DenseTrajectory", "VerletTrajectory", "SigmaFromStates", "dense_dsigma",
    "resnet_dense_forward", "resnet_dense_jmv", "resnet_dense_jtmv",
    "verlet_forward", "verlet_jmv", "verlet_jtmv",
    "resnet_dense_jvp", "verlet_jvp",
    "leapfrog_forward", "leapfrog_jmv", "leapfrog_jtmv",
]


@dataclass
class SigmaFromStates:
    """``σ'(U_j)`` of a dense ResNet / leapfrog sweep, not stored but recomputed from the states.

    The numba forward keeps only the states ``Y_j``; its trajectory's ``dsigma``
    is this recipe, and the numba linearized and adjoint sweeps recompute
    ``U_j = Y_j M_j + b_j`` and ``σ'(U_j)`` per block of examples with the
    forward's own operations in the same order — the same bits as the σ' the
    forward computed.  Memory: one (N, n_examples, n) trajectory instead of two
    (B1: 20 MB less, what made its gradient's peak memory exceed PyTorch's);
    cost: one ``n × n`` product and one ``σ`` per example and layer in each of
    those sweeps.  Engines without the recomputation (numpy, cupy) are handed
    :meth:`stack` by the public functions.
    """

    b: object  #: the forward's bias stack (N or 1, n or 1), or None
    activation: object  #: σ (name or instance)

    def at(self, M, states, j):
        """``σ'(U_j)``, (n_examples, n), by the reference arithmetic (equal to ~1 ulp)."""
        U = states[j] @ _at(M, j)
        if self.b is not None:
            U = U + _at(self.b, j)
        return _activation(self.activation).derivative(U)

    def stack(self, M, states):
        """All ``σ'(U_j)``, (N, n_examples, n) (see :meth:`at`)."""
        xp = get_array_module(states)
        out = xp.empty_like(states)
        for j in range(states.shape[0]):
            out[j] = self.at(M, states, j)
        return out


@dataclass
class DenseTrajectory:
    """Output and cache of a dense ResNet or leapfrog sweep."""

    Z: object  #: Y_N, (n_examples, n)
    states: object  #: Y_j, (N, n_examples, n); None with ``store=False``
    #: σ'(U_j): an array (N, n_examples, n) (numpy, cupy engines) or, from the numba engine, a
    #: :class:`SigmaFromStates` (σ' recomputed from the states by the sweeps); None with ``store=False``.
    #: :func:`dense_dsigma` gives the array in either case.
    dsigma: object
    prev: object = None  #: leapfrog: Y_{N−1} (the state before the last step)


def dense_dsigma(dsigma, M, states, j=None):
    """``σ'(U_j)`` (or the whole stack for ``j=None``) from a trajectory's ``dsigma``
    (an array or a :class:`SigmaFromStates`), its ``M`` and states."""
    if isinstance(dsigma, SigmaFromStates):
        return dsigma.stack(M, states) if j is None else dsigma.at(M, states, j)
    return dsigma if j is None else dsigma[j]


@dataclass
class VerletTrajectory:
    """Output and cache of a Verlet sweep."""

    y: object  #: y_N, (n_examples, n_y)
    z: object  #: z_{N−½}, (n_examples, n_z)
    ys: object  #: y_j, (N, n_examples, n_y)  (this and the next three: None with ``store=False``)
    z_half: object  #: z_{j+½}, (N, n_examples, n_z)
    dsigma_z: object  #: σ'(y_j K_j + b_z), (N, n_examples, n_z)
    dsigma_y: object  #: σ'(z_{j+½} K_jᵀ + b_y), (N, n_examples, n_y)


# ======================================================== validation
def _xp(*arrays, names):
    return get_array_module(*arrays, names=names)


def _check_stack(name, A, N, shape, dtype, bias=False):
    """``A`` of shape ``(N, *shape)``, or ``(1, *shape)`` (shared by all steps);
    a bias may also have width 1 (one scalar per step)."""
    if A is None:
        return
    ok = A.ndim == 1 + len(shape) and A.shape[0] in (1, N) and A.dtype == dtype
    ok = ok and (tuple(A.shape[1:]) == tuple(shape) or (bias and A.shape[1:] == (1,)))
    if not ok:
        extra = " or width 1" if bias else ""
        raise ValueError(f"{name} must have shape {(N, *shape)} (leading axis 1 for weights shared by all steps"
                         f"{extra}) and dtype {dtype}, got {tuple(A.shape)} ({A.dtype})")


def _at(A, j):
    """Step ``j``'s slice of a stack (shared stacks have one entry)."""
    return A[j] if A.shape[0] > 1 else A[0]


def _jj(A, j):
    return j if A.shape[0] > 1 else 0


def _check_rows(name, A, shape, dtype):
    if A is None:
        return
    if tuple(A.shape) != tuple(shape) or A.dtype != dtype:
        raise ValueError(f"{name} must have shape {tuple(shape)} and dtype {dtype}, got {tuple(A.shape)} ({A.dtype})")


def _n_steps(n_steps, W):
    if n_steps is None:
        return W.shape[0]
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    return n_steps


def _check_dense(Y, M, b, N):
    if Y.ndim != 2:
        raise ValueError(f"Y must have shape (n_examples, n_features), got {tuple(Y.shape)}")
    n = Y.shape[1]
    _check_stack("M", M, N, (n, n), Y.dtype)
    _check_stack("b", b, N, (n,), Y.dtype, bias=True)
    if b is not None and b.shape[0] != M.shape[0]:
        raise ValueError(f"b must share the leading axis of M ({M.shape[0]}), got {tuple(b.shape)}")


def _check_cache(states, dsigma, N, rows):
    _check_stack("states", states, N, rows, states.dtype)
    if isinstance(dsigma, SigmaFromStates):
        if dsigma.b is not None:
            _check_stack("dsigma.b", dsigma.b, N, rows[1:], states.dtype, bias=True)
        return
    _check_stack("dsigma", dsigma, N, rows, states.dtype)


def _arr(dsigma):
    """``dsigma`` for the backend check (None for a :class:`SigmaFromStates`)."""
    return None if isinstance(dsigma, SigmaFromStates) else dsigma


def _sweep(op, engine, xp, M, states, dsigma):
    """Kernel of a linearized/adjoint dense sweep and the ``dsigma`` to hand it: a
    :class:`SigmaFromStates` only to kernels that recompute σ' (``recomputes_sigma``)."""
    fn = _impl(op, engine, xp)
    kernel = getattr(fn, "__wrapped__", fn)  # numba entry points come wrapped (kernels._read_only_safe)
    if isinstance(dsigma, SigmaFromStates) and not getattr(kernel, "recomputes_sigma", False):
        dsigma = dsigma.stack(M, states)
    return fn, dsigma


def _activation(activation):
    from meganet.activations import get_activation

    return get_activation(activation)


def _impl(op, engine, xp, activation=None):
    """Kernel for ``op``; activations without a compiled kernel use the reference."""
    from .activation import supports

    if activation is not None and not supports(activation):
        if engine not in ("auto", "numpy"):
            from .activation import activation_code

            activation_code(activation)  # raises
        return _IMPLEMENTATIONS[op]["numpy"]
    return dispatch(_IMPLEMENTATIONS, op, engine, xp, _LOADERS)


# ======================================================== dense ResNet
def _dense_forward_ref(Y0, M, b, h, activation, store, N):
    xp = get_array_module(Y0)
    act = _activation(activation)
    states = xp.empty((N, *Y0.shape), dtype=Y0.dtype) if store else None
    dsigma = xp.empty_like(states) if store else None
    Y = Y0
    for j in range(N):
        U = Y @ _at(M, j)
        if b is not None:
            U = U + _at(b, j)
        if store:
            states[j] = Y
            S, dsigma[j] = act.value_and_derivative(U)
        else:
            S = act.value(U)
        Y = Y + h * S
    return DenseTrajectory(Z=Y, states=states, dsigma=dsigma)


def _dense_jmv_ref(M, states, dsigma, h, dY0, dM, db):
    xp = get_array_module(states)
    dY = dY0 if dY0 is not None else xp.zeros(states.shape[1:], dtype=states.dtype)
    for j in range(states.shape[0]):
        dU = dY @ _at(M, j)
        if dM is not None:
            dU = dU + states[j] @ _at(dM, j)
        if db is not None:
            dU = dU + _at(db, j)
        dY = dY + h * (dsigma[j] * dU)
    return dY


def _dense_jtmv_ref(W, M, states, dsigma, h, need_theta):
    xp = get_array_module(states)
    dM = xp.zeros_like(M) if need_theta else None
    db = xp.zeros((M.shape[0], M.shape[2]), dtype=M.dtype) if need_theta else None
    for j in range(states.shape[0] - 1, -1, -1):
        V = h * (dsigma[j] * W)
        if need_theta:
            dM[_jj(M, j)] += states[j].T @ V
            db[_jj(M, j)] += V.sum(axis=0)
        W = W + V @ _at(M, j).T
    return dM, db, W


def _dense_jvp_ref(Y0, M, b, h, activation, dY0, dM, db, N):
    xp = get_array_module(Y0)
    act = _activation(activation)
    Y = Y0
    dY = dY0 if dY0 is not None else xp.zeros_like(Y0)
    for j in range(N):
        Mj = _at(M, j)
        U = Y @ Mj
        if b is not None:
            U = U + _at(b, j)
        dU = dY @ Mj
        if dM is not None:
            dU = dU + Y @ _at(dM, j)
        if db is not None:
            dU = dU + _at(db, j)
        S, dS = act.value_and_derivative(U)
        dY = dY + h * (dS * dU)  # reads Y_j (in dU): before the state update
        Y = Y + h * S
    return Y, dY


def resnet_dense_forward(Y0, M, b, h, activation="tanh", *, n_steps=None, store=True, engine="auto"):
    """All N steps ``Y_{j+1} = Y_j + h σ(Y_j M_j + b_j)`` of a dense ResNet.

    Parameters
    ----------
    Y0 : array, shape (n_examples, n)
    M : array, shape (N, n, n), or (1, n, n) shared by all steps
        Step matrices acting on rows (for a transform ``K_j`` in column form,
        ``M_j = K_jᵀ``).
    b : array, shape (N, n) or (N, 1) (one scalar per step), or None
        Leading axis 1 when ``M`` is shared.
    h : float
    activation : str or Activation
    n_steps : int, optional
        N (default ``M.shape[0]``; needed for shared weights).
    store : bool
        Keep the states and ``σ'`` (the cache of ``Jmv``/``JTmv``; the numba
        engine keeps only the states and a :class:`SigmaFromStates`, see
        :class:`DenseTrajectory`); without, only ``Z`` is computed (O(1)
        memory, for reversible blocks).
    engine : {'auto', 'numpy', 'numba', 'cupy'}

    Returns
    -------
    DenseTrajectory
        ``Z = Y_N`` and the cache (states ``Y_j``, (N, n_examples, n), and ``σ'_j``: an
        array of the same shape, or a :class:`SigmaFromStates` from the numba engine).
    """
    xp = _xp(Y0, M, b, names=["Y0", "M", "b"])
    N = _n_steps(n_steps, M)
    _check_dense(Y0, M, b, N)
    return _impl("resnet_dense_forward", engine, xp, activation)(Y0, M, b, float(h), activation, check_bool("store", store), N)


def resnet_dense_jmv(M, states, dsigma, h, *, dY0=None, dM=None, db=None, engine="auto"):
    """Linearized sweep: ``dY_N`` for input and weight perturbations (``None`` = zero).

    Parameters
    ----------
    M, states, dsigma : from :func:`resnet_dense_forward`
        ``dsigma``: the σ' stack or a :class:`SigmaFromStates` (recomputed by
        the numba kernel, expanded to the stack for the other engines).
    h : float
    dY0 : array, shape (n_examples, n), or None
    dM : array, shape (N, n, n), or None
    db : array, shape (N, n), or None

    Returns
    -------
    dZ : array, shape (n_examples, n)
    """
    xp = _xp(M, states, _arr(dsigma), dY0, dM, db, names=["M", "states", "dsigma", "dY0", "dM", "db"])
    N, n = states.shape[0], M.shape[1]
    _check_cache(states, dsigma, N, (states.shape[1], n))
    _check_stack("M", M, N, (n, n), states.dtype)
    _check_rows("dY0", dY0, states.shape[1:], states.dtype)
    _check_stack("dM", dM, N, (n, n), states.dtype)
    _check_stack("db", db, N, (n,), states.dtype, bias=True)
    fn, dsigma = _sweep("resnet_dense_jmv", engine, xp, M, states, dsigma)
    return fn(M, states, dsigma, float(h), dY0, dM, db)


def resnet_dense_jtmv(W, M, states, dsigma, h, *, need_theta=True, engine="auto"):
    """Adjoint sweep: ``(dM, db, dY0)`` for the output cotangent ``W``.

    Parameters
    ----------
    W : array, shape (n_examples, n)
    M, states, dsigma : from :func:`resnet_dense_forward`
    h : float
    need_theta : bool
        Accumulate ``dM`` (N, n, n) and ``db`` (N, n); else they are None.

    Returns
    -------
    dM, db, dY0
    """
    xp = _xp(W, M, states, _arr(dsigma), names=["W", "M", "states", "dsigma"])
    N, n = states.shape[0], M.shape[1]
    _check_cache(states, dsigma, N, (states.shape[1], n))
    _check_rows("W", W, states.shape[1:], states.dtype)
    need_theta = check_bool("need_theta", need_theta)
    fn, dsigma = _sweep("resnet_dense_jtmv", engine, xp, M, states, dsigma)
    return fn(W, M, states, dsigma, float(h), need_theta)


def resnet_dense_jvp(Y0, M, b, h, activation="tanh", *, dY0=None, dM=None, db=None, n_steps=None, engine="auto"):
    """Forward sweep and linearized sweep in one, storing no states: ``(Y_N, dY_N)``.

    Same values as :func:`resnet_dense_forward` followed by
    :func:`resnet_dense_jmv`; the memory is that of a few ``Y``-sized arrays,
    independent of N.

    Parameters
    ----------
    Y0, M, b, h, activation, n_steps : as :func:`resnet_dense_forward`
    dY0 : array, shape (n_examples, n), or None
    dM : array, shape (N, n, n) or (1, n, n), or None
    db : array, shape (N, n), (N, 1), (1, n) or (1, 1), or None
        Perturbations of ``Y0``, ``M``, ``b`` (None = zero).
    engine : {'auto', 'numpy', 'numba'}
        No cupy kernel: cupy arrays use the reference (engine 'auto' or 'numpy').

    Returns
    -------
    Z : array, shape (n_examples, n)
    dZ : array, shape (n_examples, n)
    """
    xp = _xp(Y0, M, b, dY0, dM, db, names=["Y0", "M", "b", "dY0", "dM", "db"])
    N = _n_steps(n_steps, M)
    _check_dense(Y0, M, b, N)
    n = Y0.shape[1]
    _check_rows("dY0", dY0, Y0.shape, Y0.dtype)
    _check_stack("dM", dM, N, (n, n), Y0.dtype)
    _check_stack("db", db, N, (n,), Y0.dtype, bias=True)
    return _impl("resnet_dense_jvp", engine, xp, activation)(Y0, M, b, float(h), activation, dY0, dM, db, N)


# ============================================================ Verlet
def _verlet_forward_ref(y0, z0, K, by, bz, h, activation, store, N):
    xp = get_array_module(y0)
    act = _activation(activation)
    ys = zh = dsz = dsy = None
    if store:
        ys = xp.empty((N, *y0.shape), dtype=y0.dtype)
        zh = xp.empty((N, *z0.shape), dtype=y0.dtype)
        dsz, dsy = xp.empty_like(zh), xp.empty_like(ys)
    y, z = y0, z0
    for j in range(N):
        Kj = _at(K, j)
        U = y @ Kj
        if bz is not None:
            U = U + _at(bz, j)
        if store:
            ys[j] = y
            S, dsz[j] = act.value_and_derivative(U)
        else:
            S = act.value(U)
        z = z - h * S
        V = z @ Kj.T
        if by is not None:
            V = V + _at(by, j)
        if store:
            zh[j] = z
            S, dsy[j] = act.value_and_derivative(V)
        else:
            S = act.value(V)
        y = y + h * S
    return VerletTrajectory(y=y, z=z, ys=ys, z_half=zh, dsigma_z=dsz, dsigma_y=dsy)


def _verlet_jmv_ref(K, tr, h, dy0, dz0, dK, dby, dbz):
    xp = get_array_module(K)
    dy = dy0 if dy0 is not None else xp.zeros(tr.ys.shape[1:], dtype=K.dtype)
    dz = dz0 if dz0 is not None else xp.zeros(tr.z_half.shape[1:], dtype=K.dtype)
    for j in range(tr.ys.shape[0]):
        Kj = _at(K, j)
        dU = dy @ Kj
        if dK is not None:
            dU = dU + tr.ys[j] @ _at(dK, j)
        if dbz is not None:
            dU = dU + _at(dbz, j)
        dz = dz - h * (tr.dsigma_z[j] * dU)
        dV = dz @ Kj.T
        if dK is not None:
            dV = dV + tr.z_half[j] @ _at(dK, j).T
        if dby is not None:
            dV = dV + _at(dby, j)
        dy = dy + h * (tr.dsigma_y[j] * dV)
    return dy, dz


def _verlet_jtmv_ref(Wy, Wz, K, tr, h, need_theta):
    xp = get_array_module(K)
    NK = K.shape[0]
    dK = xp.zeros_like(K) if need_theta else None
    dby = xp.zeros((NK, K.shape[1]), dtype=K.dtype) if need_theta else None
    dbz = xp.zeros((NK, K.shape[2]), dtype=K.dtype) if need_theta else None
    wy, wz = Wy, Wz
    for j in range(tr.ys.shape[0] - 1, -1, -1):
        Kj = _at(K, j)
        vy = h * (tr.dsigma_y[j] * wy)
        wz = wz + vy @ Kj
        vz = -h * (tr.dsigma_z[j] * wz)
        if need_theta:
            dK[_jj(K, j)] += vy.T @ tr.z_half[j] + tr.ys[j].T @ vz
            dby[_jj(K, j)] += vy.sum(axis=0)
            dbz[_jj(K, j)] += vz.sum(axis=0)
        wy = wy + vz @ Kj.T
    return dK, dby, dbz, wy, wz


def _verlet_jvp_ref(y0, z0, K, by, bz, h, activation, dy0, dz0, dK, dby, dbz, N):
    xp = get_array_module(y0)
    act = _activation(activation)
    y, z = y0, z0
    dy = dy0 if dy0 is not None else xp.zeros_like(y0)
    dz = dz0 if dz0 is not None else xp.zeros_like(z0)
    for j in range(N):
        Kj = _at(K, j)
        U = y @ Kj
        if bz is not None:
            U = U + _at(bz, j)
        dU = dy @ Kj
        if dK is not None:
            dU = dU + y @ _at(dK, j)
        if dbz is not None:
            dU = dU + _at(dbz, j)
        S, dS = act.value_and_derivative(U)
        dz = dz - h * (dS * dU)
        z = z - h * S  # z_{j+½}
        V = z @ Kj.T
        if by is not None:
            V = V + _at(by, j)
        dV = dz @ Kj.T
        if dK is not None:
            dV = dV + z @ _at(dK, j).T
        if dby is not None:
            dV = dV + _at(dby, j)
        S, dS = act.value_and_derivative(V)
        dy = dy + h * (dS * dV)
        y = y + h * S
    return y, z, dy, dz


def _check_verlet(y, z, K, by, bz, N):
    for name, a in (("y0", y), ("z0", z)):
        if a.ndim != 2:
            raise ValueError(f"{name} must have shape (n_examples, n_features), got {tuple(a.shape)}")
    if z.shape[0] != y.shape[0] or z.dtype != y.dtype:
        raise ValueError(f"z0 must have {y.shape[0]} rows and dtype {y.dtype}, got {tuple(z.shape)} ({z.dtype})")
    ny, nz = y.shape[1], z.shape[1]
    _check_stack("K", K, N, (ny, nz), y.dtype)
    for name, b in (("by", by), ("bz", bz)):
        if b is not None and b.shape[0] != K.shape[0]:
            raise ValueError(f"{name} must share the leading axis of K ({K.shape[0]}), got {tuple(b.shape)}")
    _check_stack("by", by, N, (ny,), y.dtype, bias=True)
    _check_stack("bz", bz, N, (nz,), y.dtype, bias=True)
    return N, ny, nz


def _check_verlet_cache(tr, K):
    _, ny, nz = K.shape
    N, s = tr.ys.shape[:2]
    for name, a, w in (("ys", tr.ys, ny), ("z_half", tr.z_half, nz), ("dsigma_z", tr.dsigma_z, nz),
                       ("dsigma_y", tr.dsigma_y, ny)):
        _check_stack(name, a, N, (s, w), K.dtype)


def verlet_forward(y0, z0, K, by, bz, h, activation="tanh", *, n_steps=None, store=True, engine="auto"):
    """All N Verlet steps of a Hamiltonian block.

    Parameters
    ----------
    y0 : array, shape (n_examples, n_y)
    z0 : array, shape (n_examples, n_z)
        ``z_{−½}``.
    K : array, shape (N, n_y, n_z), or (1, n_y, n_z) shared by all steps
    by : array, shape (N, n_y) or (N, 1), or None
    bz : array, shape (N, n_z) or (N, 1), or None
        Width 1: one scalar per step (the same ``b_j`` in both half steps is
        ``by = bz = b[:, None]``).  Leading axis 1 when ``K`` is shared.
    h : float
    activation : str or Activation
    n_steps : int, optional
        N (default ``K.shape[0]``).
    store : bool
        Keep the trajectory (see :func:`resnet_dense_forward`).

    Returns
    -------
    VerletTrajectory
    """
    xp = _xp(y0, z0, K, by, bz, names=["y0", "z0", "K", "by", "bz"])
    N = _n_steps(n_steps, K)
    _check_verlet(y0, z0, K, by, bz, N)
    return _impl("verlet_forward", engine, xp, activation)(y0, z0, K, by, bz, float(h), activation, check_bool("store", store), N)


def verlet_jmv(K, trajectory, h, *, dy0=None, dz0=None, dK=None, dby=None, dbz=None, engine="auto"):
    """Linearized Verlet sweep: ``(dy_N, dz_{N−½})`` (``None`` perturbations are zero)."""
    tr = trajectory
    xp = _xp(K, tr.ys, dy0, dz0, dK, dby, dbz, names=["K", "trajectory.ys", "dy0", "dz0", "dK", "dby", "dbz"])
    _check_verlet_cache(tr, K)
    N, ny, nz = tr.ys.shape[0], K.shape[1], K.shape[2]
    _check_rows("dy0", dy0, tr.ys.shape[1:], K.dtype)
    _check_rows("dz0", dz0, tr.z_half.shape[1:], K.dtype)
    _check_stack("dK", dK, N, (ny, nz), K.dtype)
    _check_stack("dby", dby, N, (ny,), K.dtype, bias=True)
    _check_stack("dbz", dbz, N, (nz,), K.dtype, bias=True)
    return _impl("verlet_jmv", engine, xp)(K, tr, float(h), dy0, dz0, dK, dby, dbz)


def verlet_jtmv(Wy, Wz, K, trajectory, h, *, need_theta=True, engine="auto"):
    """Adjoint Verlet sweep for cotangents ``Wy`` of ``y_N`` and ``Wz`` of ``z_{N−½}``.

    Returns
    -------
    dK : (N, n_y, n_z) or None
    dby : (N, n_y) or None
    dbz : (N, n_z) or None
    dy0 : (n_examples, n_y)
    dz0 : (n_examples, n_z)
    """
    tr = trajectory
    xp = _xp(Wy, Wz, K, tr.ys, names=["Wy", "Wz", "K", "trajectory.ys"])
    _check_verlet_cache(tr, K)
    _check_rows("Wy", Wy, tr.ys.shape[1:], K.dtype)
    _check_rows("Wz", Wz, tr.z_half.shape[1:], K.dtype)
    return _impl("verlet_jtmv", engine, xp)(Wy, Wz, K, tr, float(h), check_bool("need_theta", need_theta))


def verlet_jvp(y0, z0, K, by, bz, h, activation="tanh", *, dy0=None, dz0=None, dK=None, dby=None, dbz=None,
               n_steps=None, engine="auto"):
    """Verlet forward and linearized sweeps in one, storing no states.

    Same values as :func:`verlet_forward` followed by :func:`verlet_jmv`; the
    memory is that of a few state-sized arrays, independent of N.

    Parameters
    ----------
    y0, z0, K, by, bz, h, activation, n_steps : as :func:`verlet_forward`
    dy0 : array, shape (n_examples, n_y), or None
    dz0 : array, shape (n_examples, n_z), or None
    dK : array, shape (N, n_y, n_z) or (1, n_y, n_z), or None
    dby : array, shape (N, n_y) or (N, 1) (leading axis N or 1), or None
    dbz : array, shape (N, n_z) or (N, 1) (leading axis N or 1), or None
        Perturbations (None = zero).
    engine : {'auto', 'numpy', 'numba'}
        No cupy kernel: cupy arrays use the reference (engine 'auto' or 'numpy').

    Returns
    -------
    yN : array, shape (n_examples, n_y)
    zN : array, shape (n_examples, n_z)
        ``z_{N−½}``.
    dyN : array, shape (n_examples, n_y)
    dzN : array, shape (n_examples, n_z)
    """
    xp = _xp(y0, z0, K, by, bz, dy0, dz0, dK, dby, dbz,
             names=["y0", "z0", "K", "by", "bz", "dy0", "dz0", "dK", "dby", "dbz"])
    N = _n_steps(n_steps, K)
    N, ny, nz = _check_verlet(y0, z0, K, by, bz, N)
    _check_rows("dy0", dy0, y0.shape, y0.dtype)
    _check_rows("dz0", dz0, z0.shape, y0.dtype)
    _check_stack("dK", dK, N, (ny, nz), y0.dtype)
    _check_stack("dby", dby, N, (ny,), y0.dtype, bias=True)
    _check_stack("dbz", dbz, N, (nz,), y0.dtype, bias=True)
    return _impl("verlet_jvp", engine, xp, activation)(y0, z0, K, by, bz, float(h), activation, dy0, dz0, dK, dby,
                                                       dbz, N)


# ========================================================== leapfrog
def _leapfrog_forward_ref(Y0, M, b, h, activation, store, N):
    xp = get_array_module(Y0)
    act = _activation(activation)
    h2 = h * h
    states = xp.empty((N, *Y0.shape), dtype=Y0.dtype) if store else None
    dsigma = xp.empty_like(states) if store else None
    prev = cur = Y0
    for j in range(N):
        U = cur @ _at(M, j)
        if b is not None:
            U = U + _at(b, j)
        if store:
            states[j] = cur
            S, dsigma[j] = act.value_and_derivative(U)
        else:
            S = act.value(U)
        prev, cur = cur, 2 * cur - prev + h2 * S
    return DenseTrajectory(Z=cur, states=states, dsigma=dsigma, prev=prev)


def _leapfrog_jmv_ref(M, states, dsigma, h, dY0, dM, db):
    xp = get_array_module(states)
    h2 = h * h
    dprev = dcur = dY0 if dY0 is not None else xp.zeros(states.shape[1:], dtype=states.dtype)
    for j in range(states.shape[0]):
        dU = dcur @ _at(M, j)
        if dM is not None:
            dU = dU + states[j] @ _at(dM, j)
        if db is not None:
            dU = dU + _at(db, j)
        dprev, dcur = dcur, 2 * dcur - dprev + h2 * (dsigma[j] * dU)
    return dcur


def _leapfrog_jtmv_ref(W, M, states, dsigma, h, need_theta):
    xp = get_array_module(states)
    h2 = h * h
    dM = xp.zeros_like(M) if need_theta else None
    db = xp.zeros((M.shape[0], M.shape[2]), dtype=M.dtype) if need_theta else None
    lam_next, lam_part = W, xp.zeros_like(W)  # λ_{j+1}; the part of λ_j known before step j
    for j in range(states.shape[0] - 1, -1, -1):
        V = h2 * (dsigma[j] * lam_next)
        if need_theta:
            dM[_jj(M, j)] += states[j].T @ V
            db[_jj(M, j)] += V.sum(axis=0)
        lam_next, lam_part = lam_part + 2 * lam_next + V @ _at(M, j).T, -lam_next
    return dM, db, lam_next + lam_part


def leapfrog_forward(Y0, M, b, h, activation="tanh", *, n_steps=None, store=True, engine="auto"):
    """All N leapfrog steps ``Y_{j+1} = 2Y_j − Y_{j−1} + h² σ(Y_j M_j + b_j)``, ``Y_{−1} = Y_0``.

    Same arguments and result as :func:`resnet_dense_forward` (``M_j = K_jᵀ``);
    the result also holds ``prev = Y_{N−1}``.
    """
    xp = _xp(Y0, M, b, names=["Y0", "M", "b"])
    N = _n_steps(n_steps, M)
    _check_dense(Y0, M, b, N)
    return _impl("leapfrog_forward", engine, xp, activation)(Y0, M, b, float(h), activation, check_bool("store", store), N)


def leapfrog_jmv(M, states, dsigma, h, *, dY0=None, dM=None, db=None, engine="auto"):
    """Linearized leapfrog sweep (``dY_{−1} = dY_0``); arguments as :func:`resnet_dense_jmv`."""
    xp = _xp(M, states, _arr(dsigma), dY0, dM, db, names=["M", "states", "dsigma", "dY0", "dM", "db"])
    N, n = states.shape[0], M.shape[1]
    _check_cache(states, dsigma, N, (states.shape[1], n))
    _check_stack("M", M, N, (n, n), states.dtype)
    _check_rows("dY0", dY0, states.shape[1:], states.dtype)
    _check_stack("dM", dM, N, (n, n), states.dtype)
    _check_stack("db", db, N, (n,), states.dtype, bias=True)
    fn, dsigma = _sweep("leapfrog_jmv", engine, xp, M, states, dsigma)
    return fn(M, states, dsigma, float(h), dY0, dM, db)


def leapfrog_jtmv(W, M, states, dsigma, h, *, need_theta=True, engine="auto"):
    """Adjoint leapfrog sweep; arguments and result as :func:`resnet_dense_jtmv`."""
    xp = _xp(W, M, states, _arr(dsigma), names=["W", "M", "states", "dsigma"])
    N, n = states.shape[0], M.shape[1]
    _check_cache(states, dsigma, N, (states.shape[1], n))
    _check_rows("W", W, states.shape[1:], states.dtype)
    need_theta = check_bool("need_theta", need_theta)
    fn, dsigma = _sweep("leapfrog_jtmv", engine, xp, M, states, dsigma)
    return fn(W, M, states, dsigma, float(h), need_theta)


#: op -> {engine: implementation}; compiled engines add their entries.
_IMPLEMENTATIONS = {
    "resnet_dense_forward": {"numpy": _dense_forward_ref},
    "resnet_dense_jmv": {"numpy": _dense_jmv_ref},
    "resnet_dense_jtmv": {"numpy": _dense_jtmv_ref},
    "resnet_dense_jvp": {"numpy": _dense_jvp_ref},
    "verlet_forward": {"numpy": _verlet_forward_ref},
    "verlet_jmv": {"numpy": _verlet_jmv_ref},
    "verlet_jtmv": {"numpy": _verlet_jtmv_ref},
    "verlet_jvp": {"numpy": _verlet_jvp_ref},
    "leapfrog_forward": {"numpy": _leapfrog_forward_ref},
    "leapfrog_jmv": {"numpy": _leapfrog_jmv_ref},
    "leapfrog_jtmv": {"numpy": _leapfrog_jtmv_ref},
}
_LOADERS = {"numba": "._timestep_numba", "cupy": "._timestep_cupy"}
