"""The numba dense ResNet / leapfrog sweeps keep no σ' stack: the linearized and adjoint sweeps
recompute σ'(U_j), U_j = Y_j M_j + b_j, from the stored states (issue 13, "B1 gradient")."""

import tracemalloc

import numpy as np
import pytest

from meganet.kernels import timestep as T

numba = pytest.importorskip("numba")

from meganet.kernels import _buffers  # noqa: E402
from meganet.kernels._numba_math import act_row  # noqa: E402
from meganet.kernels.activation import activation_code  # noqa: E402

ACTS = ["tanh", "relu", "smooth_relu", "sigmoid", "identity"]
SCHEMES = ["resnet_dense", "leapfrog"]
VARIANTS = ["per-step", "shared", "shared-scalar-bias", "no-bias"]
DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]


def _data(variant, dtype, S=531, n=5, N=7, seed=3):
    """S = 531: two full tiles of 256 examples and a partial one, blocks of 8 with a partial last one."""
    rng = np.random.default_rng(seed)
    NW = 1 if variant.startswith("shared") else N
    Y = rng.standard_normal((S, n)).astype(dtype)
    M = (0.7 * rng.standard_normal((NW, n, n))).astype(dtype)
    b = None
    if variant != "no-bias":
        b = (0.3 * rng.standard_normal((NW, 1 if "scalar" in variant else n))).astype(dtype)
    return Y, M, b, N


def _ops(scheme):
    return (getattr(T, f"{scheme}_{op}") for op in ("forward", "jmv", "jtmv"))


def _close(a, b, dtype):
    tol = 1e-13 if dtype == np.float64 else 2e-5
    assert a.dtype == b.dtype == dtype and a.shape == b.shape
    assert np.linalg.norm((a - b).ravel()) <= tol * max(np.linalg.norm(b.ravel()), 1e-30)


def _forward_sigma(Y, M, b, j, activation):
    """σ(U_j), σ'(U_j) with the forward kernel's arithmetic: the bias, then Σ_i Y[:, i] M[i, :] in
    the order i = 0, …, n−1 (elementwise, no FMA), then the kernels' ``act_row``."""
    Mj = M[0 if M.shape[0] == 1 else j]
    U = np.zeros(Y.shape, dtype=Y.dtype)
    if b is not None:
        U[...] = b[0 if b.shape[0] == 1 else j]
    for i in range(Y.shape[1]):
        U += Y[:, i : i + 1] * Mj[i]
    code, eta = activation_code(activation)
    v, d = np.empty(U.size, dtype=U.dtype), np.empty(U.size, dtype=U.dtype)
    act_row(U.ravel().copy(), 0.0, code, eta, v, d)
    return v.reshape(U.shape), d.reshape(U.shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_recomputed_sweeps_match_reference(scheme, variant, dtype):
    """Every activation: numba forward (states only), Jmv and JTmv (σ' recomputed) against the
    numpy reference (σ' stored), and the numpy engine handed the numba trajectory."""
    fwd, jmv, jtmv = _ops(scheme)
    Y, M, b, N = _data(variant, dtype)
    rng = np.random.default_rng(5)
    h = 0.3
    dY, W = rng.standard_normal(Y.shape).astype(dtype), rng.standard_normal(Y.shape).astype(dtype)
    dM = rng.standard_normal(M.shape).astype(dtype)
    db = None if b is None else rng.standard_normal(b.shape).astype(dtype)
    for act in ACTS:
        tr = fwd(Y, M, b, h, act, n_steps=N, engine="numba")
        ref = fwd(Y, M, b, h, act, n_steps=N, engine="numpy")
        assert isinstance(tr.dsigma, T.SigmaFromStates)
        _close(tr.Z, ref.Z, dtype)
        _close(tr.states, ref.states, dtype)
        _close(T.dense_dsigma(tr.dsigma, M, tr.states), ref.dsigma, dtype)
        for kw in ({"dY0": dY, "dM": dM, "db": db}, {"dM": dM}, {"dY0": dY}):
            exp = jmv(M, ref.states, ref.dsigma, h, engine="numpy", **kw)
            _close(jmv(M, tr.states, tr.dsigma, h, engine="numba", **kw), exp, dtype)
            _close(jmv(M, tr.states, tr.dsigma, h, engine="numpy", **kw), exp, dtype)
        exp = jtmv(W, M, ref.states, ref.dsigma, h, engine="numpy")
        for got in (jtmv(W, M, tr.states, tr.dsigma, h, engine="numba"),
                    jtmv(W, M, tr.states, tr.dsigma, h, engine="numpy")):
            for g, e in zip(got, exp):
                _close(g, e, dtype)
        only_Y = jtmv(W, M, tr.states, tr.dsigma, h, need_theta=False, engine="numba")
        assert only_Y[0] is None and only_Y[1] is None
        _close(only_Y[2], exp[2], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", ["per-step", "shared-scalar-bias"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_recomputed_sigma_prime_is_the_forwards_bitwise(scheme, variant, dtype):
    """The recomputed σ' has the forward's bits: the forward's states follow from σ(U_j) computed
    in the forward's order (checked bitwise for forward Euler), and the numba sweeps give the same
    bits with σ' recomputed as with that σ' stack passed in."""
    fwd, jmv, jtmv = _ops(scheme)
    Y, M, b, N = _data(variant, dtype)
    h = 0.3
    rng = np.random.default_rng(6)
    W, dM = rng.standard_normal(Y.shape).astype(dtype), rng.standard_normal(M.shape).astype(dtype)
    for act in ("tanh", "sigmoid", "smooth_relu"):
        tr = fwd(Y, M, b, h, act, n_steps=N, engine="numba")
        states = np.concatenate([tr.states, tr.Z[None]])
        stack = np.empty_like(tr.states)
        for j in range(N):
            v, stack[j] = _forward_sigma(states[j], M, b, j, act)
            if scheme == "resnet_dense":
                np.testing.assert_array_equal(states[j + 1], states[j] + dtype(h) * v)
        got, exp = jtmv(W, M, tr.states, tr.dsigma, h, engine="numba"), jtmv(W, M, tr.states, stack, h, engine="numba")
        for g, e in zip(got, exp):
            np.testing.assert_array_equal(g, e)
        np.testing.assert_array_equal(jmv(M, tr.states, tr.dsigma, h, dY0=W, dM=dM, engine="numba"),
                                      jmv(M, tr.states, stack, h, dY0=W, dM=dM, engine="numba"))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_numba_forward_allocates_no_sigma_prime_stack(scheme):
    fwd, _, _ = _ops(scheme)
    Y, M, b, N = _data("per-step", np.float64, S=4000, n=8, N=16)
    fwd(Y, M, b, 0.1, "tanh", engine="numba")  # compiled / loaded before measuring
    _buffers.clear()
    tracemalloc.start()
    try:
        tr = fwd(Y, M, b, 0.1, "tanh", engine="numba")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(tr.dsigma, T.SigmaFromStates)
    assert tr.states.nbytes == N * Y.nbytes
    # the states, Z (and leapfrog's Y_{N−1}), a copy of the bias: well under two stacks
    assert peak < tr.states.nbytes + 4 * Y.nbytes, (peak, tr.states.nbytes)
    light = fwd(Y, M, b, 0.1, "tanh", store=False, engine="numba")
    assert light.states is None and light.dsigma is None


def test_recomputation_sees_the_forwards_bias():
    """The trajectory keeps its own copy of the bias: changing ``b`` in place afterwards (θ views)
    changes nothing."""
    Y, M, b, N = _data("per-step", np.float64)
    tr = T.resnet_dense_forward(Y, M, b, 0.3, "tanh", engine="numba")
    W = np.ones_like(Y)
    before = T.resnet_dense_jtmv(W, M, tr.states, tr.dsigma, 0.3, engine="numba")
    b += 1.0
    after = T.resnet_dense_jtmv(W, M, tr.states, tr.dsigma, 0.3, engine="numba")
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)


def test_sigma_from_states_bias_is_checked():
    Y, M, b, N = _data("per-step", np.float64)
    tr = T.resnet_dense_forward(Y, M, b, 0.3, "tanh", engine="numba")
    bad = T.SigmaFromStates(b=np.zeros((N + 1, Y.shape[1])), activation="tanh")
    with pytest.raises(ValueError, match="dsigma.b"):
        T.resnet_dense_jtmv(np.ones_like(Y), M, tr.states, bad, 0.3, engine="numba")
