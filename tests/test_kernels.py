"""Compiled kernels against their array-module references (meganet.kernels).

Every numba kernel is compared with the numpy reference on small random data
(rtol 1e-12 in float64, 1e-5 in float32); the references themselves are
checked against hand computations / scipy elsewhere (tests/test_conv2d.py)
and here (adjoint identities of the time-step sweeps).  CuPy kernels are
compared with the same references on the GPU (skipped cleanly without one).
Engine resolution: ``'auto'`` picks the right engine, a missing engine raises
with an install hint.
"""

from __future__ import annotations

import numpy as np
import pytest

import meganet.kernels as K
from meganet.kernels import activation as A
from meganet.kernels import conv2d as C
from meganet.kernels import normalization as NZ
from meganet.kernels import pooling as P
from meganet.kernels import timestep as T
from tests.conftest import HAVE_GPU

#: compiled engines testable on this machine (numba is in the test extra; cupy needs a GPU)
NUMBA = [pytest.param("numba", id="numba")] if K.numba_available() else []
CUPY = [pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not HAVE_GPU, reason="cupy with a CUDA device not available")])]
COMPILED = NUMBA + CUPY
DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]
ACTS = ["tanh", "relu", "smooth_relu", "sigmoid", "identity"]


def _xp(engine):
    if engine == "cupy":
        import cupy

        return cupy
    return np


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 1e-5


def _host(a):
    return a.get() if hasattr(a, "get") else a


def _close(a, b, dtype):
    a, b = _host(a), _host(b)
    assert a.dtype == b.dtype == dtype
    assert a.shape == b.shape
    err = np.linalg.norm((a - b).ravel()) / max(np.linalg.norm(b.ravel()), 1e-300)
    assert err <= _tol(dtype), f"relative error {err:.2e}"


def _rand(rng, shape, dtype, xp=np, scale=1.0):
    return xp.asarray((scale * rng.standard_normal(shape)).astype(dtype))


# ------------------------------------------------------------ engine resolution
def test_resolve_engine_auto_and_explicit(monkeypatch):
    assert K.resolve_engine("numpy", np) == "numpy"
    assert K.resolve_engine("auto", np) == ("numba" if K.numba_available() else "numpy")
    with pytest.raises(ValueError, match="engine must be one of"):
        K.resolve_engine("numbaa", np)
    monkeypatch.setattr(K, "_have", lambda name: False)
    assert K.resolve_engine("auto", np) == "numpy"
    with pytest.raises(ImportError, match=r"pip install 'meganet\[numba\]'"):
        K.resolve_engine("numba", np)
    with pytest.raises(ImportError, match=r"meganet\[gpu\]"):
        K.resolve_engine("cupy", None)


def test_cupy_engine_refuses_host_arrays():
    with pytest.raises(ValueError, match="needs cupy arrays"):
        K.resolve_engine("cupy", np)


def test_explicit_engine_without_kernel_raises():
    rng = np.random.default_rng(0)
    Y, Kk = _rand(rng, (1, 1, 4, 4), np.float64), _rand(rng, (1, 1, 3, 3), np.float64)
    if K.numba_available():  # no numba FFT kernel (scipy.fft is compiled already)
        with pytest.raises(NotImplementedError, match="no 'numba' kernel"):
            C.conv2d_fft_forward(Y, Kk, engine="numba")
    np.testing.assert_allclose(C.conv2d_fft_forward(Y, Kk, engine="auto"), C.conv2d_forward(Y, Kk, "periodic"))


def test_bias_activation_rejects_unknown_activation_for_compiled_engine():
    from meganet.activations import Tanh

    class MyTanh(Tanh):  # same name, different class: not the built-in formula
        pass

    U = np.zeros((2, 3))
    assert not A.supports(MyTanh()) and A.supports("tanh") and A.supports(Tanh())
    S, D = A.bias_activation(U, None, MyTanh(), engine="auto")  # reference
    np.testing.assert_array_equal(D, np.ones_like(U))
    if K.numba_available():
        with pytest.raises(ValueError, match="activation must be one of"):
            A.bias_activation(U, None, MyTanh(), engine="numba")


# ------------------------------------------------------------------- conv2d
CONV = [
    # (n, C_in, C_out, H, W, kh, kw, boundary)
    (2, 3, 5, 5, 6, 3, 3, "zero"),
    (3, 2, 3, 6, 6, 3, 3, "periodic"),
    (2, 4, 4, 5, 6, 1, 1, "zero"),
    (2, 5, 2, 4, 3, 1, 1, "periodic"),
    (3, 1, 1, 6, 6, 5, 3, "zero"),
    (2, 2, 3, 5, 6, 5, 3, "periodic"),
    (2, 3, 2, 5, 5, 3, 5, "zero"),
    (2, 3, 6, 3, 3, 7, 5, "periodic"),  # stencil larger than the image: wraps twice
]


@pytest.mark.parametrize("engine", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV, ids=lambda c: f"{c[5]}x{c[6]}-{c[7]}-{c[1]}to{c[2]}")
def test_conv2d_kernels_match_reference(case, dtype, engine):
    n, ci, co, H, W, kh, kw, bd = case
    xp = _xp(engine)
    rng = np.random.default_rng(0)
    Y, Kk = _rand(rng, (n, ci, H, W), dtype, xp), _rand(rng, (co, ci, kh, kw), dtype, xp)
    Z = _rand(rng, (n, co, H, W), dtype, xp)
    _close(C.conv2d_forward(Y, Kk, bd, engine=engine), C.conv2d_forward(Y, Kk, bd, engine="numpy"), dtype)
    _close(C.conv2d_adjoint_input(Z, Kk, bd, engine=engine), C.conv2d_adjoint_input(Z, Kk, bd, engine="numpy"), dtype)
    for pe in (False, True):
        _close(C.conv2d_adjoint_weight(Y, Z, (kh, kw), bd, pe, engine=engine),
               C.conv2d_adjoint_weight(Y, Z, (kh, kw), bd, pe, engine="numpy"), dtype)


# numba engine: the implicit-GEMM path (BLAS per tap, channels-last padded copy)
# and the direct stencil, forced through the module switch; shapes that hit the
# 16-pixel transpose tiles' edges (W = 15, 16, 17, 33), batch 1, C_in != C_out.
CONV_GEMM = CONV + [
    (1, 16, 24, 7, 17, 3, 3, "zero"),
    (1, 24, 16, 16, 16, 3, 3, "periodic"),
    (3, 32, 8, 5, 33, 3, 3, "zero"),
    (2, 7, 9, 9, 15, 3, 1, "periodic"),
    (2, 8, 12, 4, 19, 1, 3, "zero"),
]


@pytest.mark.skipif(not NUMBA, reason="numba not installed")
@pytest.mark.parametrize("method", ["gemm", "direct", "winograd"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_GEMM, ids=lambda c: f"{c[0]}-{c[1]}to{c[2]}-{c[3]}x{c[4]}-{c[5]}x{c[6]}-{c[7]}")
def test_conv2d_numba_methods_match_reference(case, dtype, method, monkeypatch):
    from meganet.kernels import _conv2d_numba as CN
    from meganet.kernels import _gemm_numba as G

    if method == "gemm" and not G.available():
        pytest.skip("scipy's BLAS pointers / thread control not found")
    monkeypatch.setattr(CN, "METHOD", method)
    n, ci, co, H, W, kh, kw, bd = case
    rng = np.random.default_rng(2)
    Y, Kk = _rand(rng, (n, ci, H, W), dtype), _rand(rng, (co, ci, kh, kw), dtype)
    Z = _rand(rng, (n, co, H, W), dtype)
    _close(C.conv2d_forward(Y, Kk, bd, engine="numba"), C.conv2d_forward(Y, Kk, bd, engine="numpy"), dtype)
    _close(C.conv2d_adjoint_input(Z, Kk, bd, engine="numba"), C.conv2d_adjoint_input(Z, Kk, bd, engine="numpy"),
           dtype)
    for pe in (False, True):
        _close(C.conv2d_adjoint_weight(Y, Z, (kh, kw), bd, pe, engine="numba"),
               C.conv2d_adjoint_weight(Y, Z, (kh, kw), bd, pe, engine="numpy"), dtype)


@pytest.mark.skipif(not NUMBA, reason="numba not installed")
def test_conv2d_numba_gemm_out_buffers_readonly_and_threads(monkeypatch):
    from meganet.kernels import _conv2d_numba as CN
    from meganet.kernels import _gemm_numba as G

    if not G.available():
        pytest.skip("scipy's BLAS pointers / thread control not found")
    monkeypatch.setattr(CN, "METHOD", "gemm")
    rng = np.random.default_rng(3)
    Y = _rand(rng, (3, 4, 6, 20), np.float32)[:, :, :, ::2]  # strided view
    Kk = _rand(rng, (5, 4, 3, 3), np.float32)
    Kk.flags.writeable = False
    threads = G._CONTROL[0]() if G._CONTROL else None
    out = np.empty((3, 5, 6, 10), np.float32)
    assert C.conv2d_forward(Y, Kk, "zero", out=out, engine="numba") is out
    _close(out, C.conv2d_forward(np.ascontiguousarray(Y), Kk, "zero", engine="numpy"), np.float32)
    gout = np.empty((3, 5, 4, 3, 3), np.float32)
    assert C.conv2d_adjoint_weight(Y, out, (3, 3), "zero", True, out=gout, engine="numba") is gout
    _close(gout, C.conv2d_adjoint_weight(Y, out, (3, 3), "zero", True, engine="numpy"), np.float32)
    if threads is not None:  # the BLAS thread count is restored after the kernels
        assert G._CONTROL[0]() == threads
    monkeypatch.setattr(CN, "METHOD", "gemmm")
    with pytest.raises(ValueError, match="MEGANET_CONV2D_METHOD"):
        C.conv2d_forward(Y, Kk, "zero", engine="numba")


@pytest.mark.parametrize("engine", COMPILED)
def test_conv2d_out_buffers_and_noncontiguous_input(engine):
    xp = _xp(engine)
    rng = np.random.default_rng(1)
    Y = _rand(rng, (3, 2, 6, 10), np.float64, xp)[:, :, :, ::2]  # strided view
    Kk = _rand(rng, (3, 2, 3, 3), np.float64, xp)
    out = xp.empty((3, 3, 6, 5))
    res = C.conv2d_forward(Y, Kk, "zero", out=out, engine=engine)
    assert res is out
    _close(out, C.conv2d_forward(xp.ascontiguousarray(Y), Kk, "zero", engine="numpy"), np.float64)
    gout = xp.empty((3, 2, 3, 3))
    assert C.conv2d_adjoint_weight(Y, out, (3, 3), "zero", out=gout, engine=engine) is gout
    _close(gout, C.conv2d_adjoint_weight(Y, out, (3, 3), "zero", engine="numpy"), np.float64)


@pytest.mark.parametrize("engine", CUPY)  # no numba FFT kernels: scipy.fft is compiled already
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_fft_kernels_match_reference(dtype, engine):
    xp = _xp(engine)
    rng = np.random.default_rng(2)
    for (n, ci, co, H, W, kh, kw) in [(2, 3, 2, 6, 5, 3, 3), (2, 2, 3, 5, 6, 5, 3), (1, 4, 4, 6, 6, 1, 1)]:
        Y, Kk = _rand(rng, (n, ci, H, W), dtype, xp), _rand(rng, (co, ci, kh, kw), dtype, xp)
        Z = _rand(rng, (n, co, H, W), dtype, xp)
        _close(C.conv2d_fft_forward(Y, Kk, engine=engine), C.conv2d_fft_forward(Y, Kk, engine="numpy"), dtype)
        _close(C.conv2d_fft_adjoint_input(Z, Kk, engine=engine), C.conv2d_fft_adjoint_input(Z, Kk, engine="numpy"),
               dtype)
        for pe in (False, True):
            _close(C.conv2d_fft_adjoint_weight(Y, Z, (kh, kw), pe, engine=engine),
                   C.conv2d_fft_adjoint_weight(Y, Z, (kh, kw), pe, engine="numpy"), dtype)


# --------------------------------------------------------------- activation
@pytest.mark.parametrize("engine", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_bias_activation_matches_reference(act, dtype, engine):
    xp = _xp(engine)
    rng = np.random.default_rng(3)
    for shape in [(4, 3), (3, 2, 5, 4)]:
        U = _rand(rng, shape, dtype, xp, scale=3.0)
        b = _rand(rng, (shape[1],), dtype, xp)
        for bias in (None, b):
            S, D = A.bias_activation(U, bias, act, engine=engine)
            Sr, Dr = A.bias_activation(U, bias, act, engine="numpy")
            _close(S, Sr, dtype)
            _close(D, Dr, dtype)
            S2, D2 = A.bias_activation(U, bias, act, derivative=False, engine=engine)
            assert D2 is None
            _close(S2, Sr, dtype)


@pytest.mark.parametrize("engine", NUMBA)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid", "identity"])
def test_derivative_from_value_mul_matches_reference(act, dtype, engine):
    rng = np.random.default_rng(5)
    for shape in [(5, 3), (3, 2, 5, 4), (2, 3, 40, 40)]:  # the last one spans several parallel chunks
        X = _rand(rng, shape, dtype, scale=3.0)
        S = A.bias_activation(X, None, act, derivative=False, engine="numpy")[0]
        W = _rand(rng, shape, dtype)
        got = A.derivative_from_value_mul(S, W, act, engine=engine)
        _close(got, A.derivative_from_value_mul(S, W, act, engine="numpy"), dtype)
        _close(got, A.bias_activation(X, None, act, engine="numpy")[1] * W, dtype)  # = σ'(x) ⊙ W


def test_derivative_from_value_mul_rejects_bad_input():
    S = np.zeros((2, 3))
    with pytest.raises(ValueError, match="function of its value"):
        A.derivative_from_value_mul(S, S, "smooth_relu")
    with pytest.raises(ValueError, match="same shape and dtype"):
        A.derivative_from_value_mul(S, S.astype(np.float32))


@pytest.mark.parametrize("engine", NUMBA)
def test_fast_tanh_accuracy_on_the_whole_line(engine):
    """The vectorizable Cephes tanh of the numba kernels: ≤ 4 ulp from numpy's."""
    x = np.concatenate([np.linspace(-30, 30, 200001), [0.0, -0.0, 1e-300, 0.6249999, 0.625, 22.0, 23.0, 1e308]])
    S, D = A.bias_activation(x.reshape(-1, 1), None, "tanh", engine=engine)
    ref = np.tanh(x)
    assert np.max(np.abs(S.ravel() - ref) / np.maximum(np.abs(ref), 1e-300)) <= 4 * np.finfo(float).eps
    np.testing.assert_allclose(D.ravel(), 1 - ref * ref, rtol=1e-14, atol=1e-15)


# ------------------------------------------------------------------ pooling
@pytest.mark.parametrize("engine", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool_matches_reference(dtype, engine):
    xp = _xp(engine)
    rng = np.random.default_rng(4)
    for f, shape in [(2, (2, 3, 4, 6)), (3, (1, 2, 6, 9)), (1, (2, 1, 3, 3))]:
        Y = _rand(rng, shape, dtype, xp)
        Z = P.avg_pool2d(Y, f, engine=engine)
        _close(Z, P.avg_pool2d(Y, f, engine="numpy"), dtype)
        _close(P.avg_pool2d_adjoint(Z, f, engine=engine), P.avg_pool2d_adjoint(Z, f, engine="numpy"), dtype)


def test_avg_pool_known_answer_and_adjoint():
    Y = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(P.avg_pool2d(Y, 2)[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    rng = np.random.default_rng(5)
    Y, W = rng.standard_normal((2, 3, 6, 4)), rng.standard_normal((2, 3, 3, 2))
    assert abs(np.vdot(P.avg_pool2d(Y, 2), W) - np.vdot(Y, P.avg_pool2d_adjoint(W, 2))) <= 1e-13
    with pytest.raises(ValueError, match="divisible by factor"):
        P.avg_pool2d(np.zeros((1, 1, 5, 4)), 2)


# ------------------------------------------------------------ normalization
@pytest.mark.parametrize("engine", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", NZ.KINDS)
def test_standardize_matches_reference(kind, dtype, engine):
    xp = _xp(engine)
    rng = np.random.default_rng(6)
    for shape in [(5, 3), (3, 2, 4, 5)]:
        Y = _rand(rng, shape, dtype, xp, scale=2.0) + 3.0
        Yh, r = NZ.standardize(Y, kind, 1e-5, engine=engine)
        Yr, rr = NZ.standardize(Y, kind, 1e-5, engine="numpy")
        _close(Yh, Yr, dtype)
        _close(r, rr, dtype)
        dY = _rand(rng, shape, dtype, xp)
        _close(NZ.standardize_jmv(dY, Yh, r, kind, engine=engine), NZ.standardize_jmv(dY, Yr, rr, kind, engine="numpy"),
               dtype)


def test_standardize_known_answer_and_symmetry():
    Y = np.array([[1.0, 3.0], [3.0, 5.0]])  # batch: per column mean (2, 4), variance 1
    Yh, r = NZ.standardize(Y, "batch", 1e-300)
    np.testing.assert_allclose(Yh, [[-1.0, -1.0], [1.0, 1.0]])
    rng = np.random.default_rng(7)
    Y = rng.standard_normal((3, 2, 4, 4))
    for kind in NZ.KINDS:
        Yh, r = NZ.standardize(Y, kind, 1e-5)
        u, v = rng.standard_normal(Y.shape), rng.standard_normal(Y.shape)
        a = np.vdot(NZ.standardize_jmv(u, Yh, r, kind), v)
        b = np.vdot(u, NZ.standardize_jmv(v, Yh, r, kind))
        assert abs(a - b) <= 1e-12 * abs(a)


# ---------------------------------------------------------------- time steps
def _dense_data(rng, dtype, xp, S=37, n=3, N=5, shared=False, scalar_bias=False):  # S = 37: 5 blocks of 8 examples, several per thread, a partial last one
    NW = 1 if shared else N
    Y = _rand(rng, (S, n), dtype, xp)
    M = _rand(rng, (NW, n, n), dtype, xp, scale=0.7)
    b = _rand(rng, (NW, 1 if scalar_bias else n), dtype, xp)
    return Y, M, b, N


@pytest.mark.parametrize("engine", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme", ["resnet_dense", "leapfrog"])
@pytest.mark.parametrize("variant", ["per-step", "shared-scalar-bias", "no-bias"])
def test_dense_sweeps_match_reference(variant, scheme, dtype, engine):
    xp = _xp(engine)
    rng = np.random.default_rng(8)
    fwd, jmv, jtmv = (getattr(T, f"{scheme}_{op}") for op in ("forward", "jmv", "jtmv"))
    Y, M, b, N = _dense_data(rng, dtype, xp, shared=variant != "per-step", scalar_bias=variant != "per-step")
    if variant == "no-bias":
        b = None
    h = 0.3
    for act in ACTS:
        tr = fwd(Y, M, b, h, act, n_steps=N, engine=engine)
        ref = fwd(Y, M, b, h, act, n_steps=N, engine="numpy")
        _close(tr.Z, ref.Z, dtype)
        _close(tr.states, ref.states, dtype)
        _close(T.dense_dsigma(tr.dsigma, M, tr.states), ref.dsigma, dtype)  # numba: a SigmaFromStates
        light = fwd(Y, M, b, h, act, n_steps=N, store=False, engine=engine)
        assert light.states is None
        _close(light.Z, ref.Z, dtype)
    dY, dM = _rand(rng, Y.shape, dtype, xp), _rand(rng, M.shape, dtype, xp)
    db = None if b is None else _rand(rng, b.shape, dtype, xp)
    for kw in ({"dY0": dY, "dM": dM, "db": db}, {"dM": dM}, {"dY0": dY}):
        _close(jmv(M, tr.states, tr.dsigma, h, engine=engine, **kw),
               jmv(M, ref.states, ref.dsigma, h, engine="numpy", **kw), dtype)
    W = _rand(rng, Y.shape, dtype, xp)
    got = jtmv(W, M, tr.states, tr.dsigma, h, engine=engine)
    exp = jtmv(W, M, ref.states, ref.dsigma, h, engine="numpy")
    for g, e in zip(got, exp):
        _close(g, e, dtype)
    only_Y = jtmv(W, M, tr.states, tr.dsigma, h, need_theta=False, engine=engine)
    assert only_Y[0] is None and only_Y[1] is None
    _close(only_Y[2], exp[2], dtype)


@pytest.mark.parametrize("engine", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", ["per-step", "shared-scalar-bias", "no-bias"])
def test_verlet_sweeps_match_reference(variant, dtype, engine):
    xp = _xp(engine)
    rng = np.random.default_rng(9)
    S, ny, nz, N, h = 37, 3, 2, 6, 0.4  # 5 blocks of 8: several per thread, a partial last one
    NW = 1 if variant != "per-step" else N
    y0, z0 = _rand(rng, (S, ny), dtype, xp), _rand(rng, (S, nz), dtype, xp)
    Kk = _rand(rng, (NW, ny, nz), dtype, xp)
    by = bz = None
    if variant == "per-step":
        by, bz = _rand(rng, (N, ny), dtype, xp), _rand(rng, (N, nz), dtype, xp)
    elif variant == "shared-scalar-bias":
        by = bz = _rand(rng, (1, 1), dtype, xp)
    for act in ACTS:
        tr = T.verlet_forward(y0, z0, Kk, by, bz, h, act, n_steps=N, engine=engine)
        ref = T.verlet_forward(y0, z0, Kk, by, bz, h, act, n_steps=N, engine="numpy")
        for f in ("y", "z", "ys", "z_half", "dsigma_z", "dsigma_y"):
            _close(getattr(tr, f), getattr(ref, f), dtype)
    pert = dict(dy0=_rand(rng, (S, ny), dtype, xp), dz0=_rand(rng, (S, nz), dtype, xp),
                dK=_rand(rng, Kk.shape, dtype, xp))
    if by is not None:
        pert.update(dby=_rand(rng, by.shape, dtype, xp), dbz=_rand(rng, bz.shape, dtype, xp))
    for g, e in zip(T.verlet_jmv(Kk, tr, h, engine=engine, **pert), T.verlet_jmv(Kk, ref, h, engine="numpy", **pert)):
        _close(g, e, dtype)
    Wy, Wz = _rand(rng, (S, ny), dtype, xp), _rand(rng, (S, nz), dtype, xp)
    for g, e in zip(T.verlet_jtmv(Wy, Wz, Kk, tr, h, engine=engine), T.verlet_jtmv(Wy, Wz, Kk, ref, h, engine="numpy")):
        _close(g, e, dtype)


def _adjoint_gap(jv, w, grads, dirs):
    lhs = sum(float(np.vdot(a, b)) for a, b in zip(jv, w))
    rhs = sum(float(np.vdot(g, d)) for g, d in zip(grads, dirs))
    return abs(lhs - rhs) / abs(lhs)


@pytest.mark.parametrize("scheme", ["resnet_dense", "leapfrog"])
def test_dense_reference_sweeps_are_adjoint(scheme):
    """⟨J v, w⟩ = ⟨v, Jᵀ w⟩ for the references (dense and leapfrog, per-step weights)."""
    rng = np.random.default_rng(10)
    fwd, jmv, jtmv = (getattr(T, f"{scheme}_{op}") for op in ("forward", "jmv", "jtmv"))
    Y, M, b, N = _dense_data(rng, np.float64, np)
    tr = fwd(Y, M, b, 0.3, "tanh", engine="numpy")
    dY, dM, db, W = (rng.standard_normal(a.shape) for a in (Y, M, b, Y))
    jv = jmv(M, tr.states, tr.dsigma, 0.3, dY0=dY, dM=dM, db=db, engine="numpy")
    g = jtmv(W, M, tr.states, tr.dsigma, 0.3, engine="numpy")
    assert _adjoint_gap([jv], [W], g, [dM, db, dY]) <= 1e-13


def test_verlet_reference_sweeps_are_adjoint_and_match_the_scheme():
    rng = np.random.default_rng(11)
    S, ny, nz, N, h = 4, 3, 2, 5, 0.3
    y0, z0, Kk = rng.standard_normal((S, ny)), rng.standard_normal((S, nz)), rng.standard_normal((N, ny, nz))
    by, bz = rng.standard_normal((N, ny)), rng.standard_normal((N, nz))
    tr = T.verlet_forward(y0, z0, Kk, by, bz, h, "tanh", engine="numpy")
    y, z = y0, z0  # hand-written scheme
    for j in range(N):
        z = z - h * np.tanh(y @ Kk[j] + bz[j])
        y = y + h * np.tanh(z @ Kk[j].T + by[j])
    np.testing.assert_allclose(tr.y, y, rtol=1e-14)
    np.testing.assert_allclose(tr.z, z, rtol=1e-14)
    dirs = [rng.standard_normal(a.shape) for a in (Kk, by, bz, y0, z0)]
    jv = T.verlet_jmv(Kk, tr, h, dK=dirs[0], dby=dirs[1], dbz=dirs[2], dy0=dirs[3], dz0=dirs[4], engine="numpy")
    W = [rng.standard_normal(a.shape) for a in jv]
    g = T.verlet_jtmv(W[0], W[1], Kk, tr, h, engine="numpy")
    assert _adjoint_gap(jv, W, g, dirs) <= 1e-13


def test_timestep_validation_messages():
    Y, M = np.zeros((3, 2)), np.zeros((4, 2, 3))
    with pytest.raises(ValueError, match=r"M must have shape \(4, 2, 2\)"):
        T.resnet_dense_forward(Y, M, None, 0.1)
    with pytest.raises(ValueError, match="b must have shape"):
        T.resnet_dense_forward(Y, np.zeros((4, 2, 2)), np.zeros((4, 3)), 0.1)
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        T.leapfrog_forward(Y, np.zeros((1, 2, 2)), None, 0.1, n_steps=0)


# ------------------------------------------------- one-sweep forward-mode products
_PERTURBED = [(True, True, True), (True, False, False), (False, True, False), (False, False, True),
              (False, False, False), (True, True, False)]


def _close_or_zero(g, e, dtype):
    """``_close``, or both exactly zero (the tangent of a zero perturbation)."""
    if np.any(e):
        _close(g, e, dtype)
    else:
        assert g.dtype == dtype and g.shape == e.shape and not np.any(g)


def _dense_jvp_case(rng, dtype, xp, variant):
    Y, M, b, N = _dense_data(rng, dtype, xp, S=11, shared=variant != "per-step", scalar_bias=variant != "per-step")
    if variant == "no-bias":
        b = None
    dY, dM = _rand(rng, Y.shape, dtype, xp), _rand(rng, M.shape, dtype, xp)
    db = _rand(rng, (M.shape[0], 1 if variant != "per-step" else Y.shape[1]), dtype, xp)
    return Y, M, b, N, dY, dM, db


@pytest.mark.parametrize("engine", NUMBA)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", ["per-step", "shared-scalar-bias", "no-bias"])
def test_dense_jvp_matches_reference(variant, dtype, engine):
    """The one-sweep kernel against the reference, for every subset of given perturbations."""
    rng = np.random.default_rng(12)
    Y, M, b, N, dY, dM, db = _dense_jvp_case(rng, dtype, np, variant)
    h = 0.3
    for act in ACTS:
        for gY, gM, gb in _PERTURBED:
            kw = {"dY0": dY if gY else None, "dM": dM if gM else None, "db": db if gb else None}
            got = T.resnet_dense_jvp(Y, M, b, h, act, n_steps=N, engine=engine, **kw)
            exp = T.resnet_dense_jvp(Y, M, b, h, act, n_steps=N, engine="numpy", **kw)
            for g, e in zip(got, exp):
                _close_or_zero(g, e, dtype)
            assert np.any(got[1]) == (gY or gM or gb)


@pytest.mark.parametrize("variant", ["per-step", "shared-scalar-bias", "no-bias"])
def test_dense_reference_jvp_is_forward_then_jmv(variant):
    rng = np.random.default_rng(13)
    Y, M, b, N, dY, dM, db = _dense_jvp_case(rng, np.float64, np, variant)
    for act in ("tanh", "sigmoid", "identity"):
        tr = T.resnet_dense_forward(Y, M, b, 0.3, act, n_steps=N, engine="numpy")
        for gY, gM, gb in _PERTURBED:
            kw = {"dY0": dY if gY else None, "dM": dM if gM else None, "db": db if gb else None}
            Z, dZ = T.resnet_dense_jvp(Y, M, b, 0.3, act, n_steps=N, engine="numpy", **kw)
            assert Z.shape == dZ.shape == Y.shape and dZ.dtype == Y.dtype
            _close(Z, tr.Z, np.float64)
            jv = T.resnet_dense_jmv(M, tr.states, tr.dsigma, 0.3, engine="numpy", **kw)
            np.testing.assert_allclose(dZ, jv, rtol=1e-13, atol=1e-15)


def _verlet_jvp_case(rng, dtype, xp, variant):
    S, ny, nz, N = 13, 3, 2, 6
    NW = 1 if variant != "per-step" else N
    y0, z0 = _rand(rng, (S, ny), dtype, xp), _rand(rng, (S, nz), dtype, xp)
    Kk = _rand(rng, (NW, ny, nz), dtype, xp)
    by = bz = dby = dbz = None
    if variant == "per-step":
        by, bz = _rand(rng, (N, ny), dtype, xp), _rand(rng, (N, nz), dtype, xp)
        dby, dbz = _rand(rng, (N, ny), dtype, xp), _rand(rng, (N, nz), dtype, xp)
    elif variant == "shared-scalar-bias":  # the same scalar in both half steps, as HamiltonianVerlet(bias='scalar')
        by = bz = _rand(rng, (1, 1), dtype, xp)
        dby = dbz = _rand(rng, (1, 1), dtype, xp)
    pert = {"dy0": _rand(rng, (S, ny), dtype, xp), "dz0": _rand(rng, (S, nz), dtype, xp),
            "dK": _rand(rng, Kk.shape, dtype, xp), "dby": dby, "dbz": dbz}
    return y0, z0, Kk, by, bz, N, pert


def _subsets(pert):
    """The perturbation dict with each subset of its entries set to None (all 2⁵ subsets)."""
    names = sorted(pert)
    for mask in range(1 << len(names)):
        yield {k: (pert[k] if mask >> i & 1 else None) for i, k in enumerate(names)}


@pytest.mark.parametrize("engine", NUMBA)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", ["per-step", "shared-scalar-bias", "no-bias"])
def test_verlet_jvp_matches_reference(variant, dtype, engine):
    rng = np.random.default_rng(14)
    y0, z0, Kk, by, bz, N, pert = _verlet_jvp_case(rng, dtype, np, variant)
    h = 0.4
    for act in ACTS:
        for kw in _subsets(pert) if act == "tanh" else [pert, {}]:
            got = T.verlet_jvp(y0, z0, Kk, by, bz, h, act, n_steps=N, engine=engine, **kw)
            exp = T.verlet_jvp(y0, z0, Kk, by, bz, h, act, n_steps=N, engine="numpy", **kw)
            for g, e in zip(got, exp):
                _close_or_zero(g, e, dtype)


@pytest.mark.parametrize("variant", ["per-step", "shared-scalar-bias", "no-bias"])
def test_verlet_reference_jvp_is_forward_then_jmv(variant):
    rng = np.random.default_rng(15)
    y0, z0, Kk, by, bz, N, pert = _verlet_jvp_case(rng, np.float64, np, variant)
    for act in ("tanh", "sigmoid"):
        tr = T.verlet_forward(y0, z0, Kk, by, bz, 0.4, act, n_steps=N, engine="numpy")
        for kw in _subsets(pert):
            y, z, dy, dz = T.verlet_jvp(y0, z0, Kk, by, bz, 0.4, act, n_steps=N, engine="numpy", **kw)
            _close(y, tr.y, np.float64)
            _close(z, tr.z, np.float64)
            jy, jz = T.verlet_jmv(Kk, tr, 0.4, engine="numpy", **kw)
            np.testing.assert_allclose(dy, jy, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(dz, jz, rtol=1e-13, atol=1e-15)


def test_jvp_validation_messages():
    Y, M = np.zeros((3, 2)), np.zeros((4, 2, 2))
    with pytest.raises(ValueError, match=r"dY0 must have shape \(3, 2\)"):
        T.resnet_dense_jvp(Y, M, None, 0.1, dY0=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"dM must have shape \(4, 2, 2\)"):
        T.resnet_dense_jvp(Y, M, None, 0.1, dM=np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="db must have shape"):
        T.resnet_dense_jvp(Y, M, None, 0.1, db=np.zeros((4, 2), dtype=np.float32))
    y, z, Kk = np.zeros((3, 2)), np.zeros((3, 1)), np.zeros((4, 2, 1))
    with pytest.raises(ValueError, match=r"dz0 must have shape \(3, 1\)"):
        T.verlet_jvp(y, z, Kk, None, None, 0.1, dz0=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"dK must have shape \(4, 2, 1\)"):
        T.verlet_jvp(y, z, Kk, None, None, 0.1, dK=np.zeros((4, 1, 2)))
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        T.verlet_jvp(y, z, Kk[:1], None, None, 0.1, n_steps=-1)
