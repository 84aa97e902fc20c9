"""Fused convolution epilogues (meganet.kernels.epilogue) and the symmetric layer's fused residual steps.

Every engine's ``conv2d_forward`` / ``conv2d_adjoint_input`` with an epilogue is
compared with the formula ``f(α·conv + add + bias)`` written out here on the
numpy reference convolution; the fused forward-Euler steps of the symmetric conv
layer are compared with the unfused composition of its element methods.
"""

from __future__ import annotations

import numpy as np
import pytest

from meganet.activations import get_activation
from meganet.kernels import conv2d as C
from meganet.kernels import numba_available
from meganet.kernels.epilogue import Epilogue, apply_epilogue
from tests.conftest import HAVE_GPU

ENGINES = ["numpy"] + (["numba"] if numba_available() else []) + [
    pytest.param("cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAVE_GPU, reason="no CUDA device")])]
DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]
CASES = [  # (n, C_in, C_out, H, W, kh, kw, boundary)
    (2, 3, 5, 5, 6, 3, 3, "zero"),
    (3, 2, 3, 6, 6, 3, 3, "periodic"),
    (2, 4, 6, 5, 6, 1, 1, "zero"),
    (2, 3, 2, 5, 5, 3, 5, "periodic"),
]
ACTS = ["tanh", "relu", "sigmoid", "identity", "smooth_relu"]
#: (epilogue kind, activation): the kinds without σ once, the others with every activation that applies
#: (σ' of the smoothed ReLU is not a function of its value: that error is tested below)
KIND_ACTS = ([(k, None) for k in ("scale", "add", "add_bias", "inplace")]
             + [(k, a) for k in ("act", "act_add") for a in ACTS]
             + [(k, a) for k in ("dsigma", "dsigma_add") for a in ACTS if a != "smooth_relu"])


def _xp(engine):
    if engine == "cupy":
        import cupy

        return cupy
    return np


def _host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _tol(dtype):
    return 1e-13 if dtype == np.float64 else 4e-6  # float32 tanh: ≤ 7 ulp (test_tanh32_accuracy)


def _expected(conv, kind, act, A, b, S, alpha):
    """The epilogue's formula, written out (numpy, float64 accumulation of the given arrays)."""
    a = get_activation(act or "identity")
    bb = b.reshape(1, -1, 1, 1)
    if kind == "scale":
        return alpha * conv
    if kind in ("add", "inplace"):
        return alpha * conv + A
    if kind == "add_bias":
        return alpha * conv + A + bb
    if kind == "act":
        return a.value(conv + bb)
    if kind == "act_add":
        return a.value(alpha * conv + A + bb)
    if kind == "dsigma":
        return a.derivative_from_value(S) * (alpha * conv)
    return a.derivative_from_value(S) * (alpha * conv + A)


def _epilogue(kind, act, A, b, S, alpha, out=None):
    return {
        "scale": Epilogue(alpha=alpha),
        "add": Epilogue(alpha=alpha, add=A),
        "add_bias": Epilogue(alpha=alpha, add=A, bias=b),
        "act": Epilogue(bias=b, activation=act),
        "act_add": Epilogue(alpha=alpha, add=A, bias=b, activation=act),
        "dsigma": Epilogue(alpha=alpha, activation=act, dsigma_from=S),
        "dsigma_add": Epilogue(alpha=alpha, add=A, activation=act, dsigma_from=S),
        "inplace": Epilogue(alpha=alpha, add=out),
    }[kind]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,act", KIND_ACTS, ids=lambda v: str(v))
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[5]}x{c[6]}-{c[7]}-{c[1]}to{c[2]}")
@pytest.mark.parametrize("op", ["forward", "adjoint_input"])
def test_epilogue_matches_formula(op, case, kind, act, dtype, engine):
    n, ci, co, H, W, kh, kw, bd = case
    xp = _xp(engine)
    rng = np.random.default_rng(1)
    K = rng.standard_normal((co, ci, kh, kw)).astype(dtype)
    c_in, c_out = (ci, co) if op == "forward" else (co, ci)
    X = rng.standard_normal((n, c_in, H, W)).astype(dtype)
    A = rng.standard_normal((n, c_out, H, W)).astype(dtype)
    S = get_activation(act or "tanh").value(rng.standard_normal((n, c_out, H, W))).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    alpha = -0.37
    fn = C.conv2d_forward if op == "forward" else C.conv2d_adjoint_input
    conv = fn(X, K, bd, engine="numpy").astype(np.float64)
    want = _expected(conv, kind, act, A.astype(np.float64), b.astype(np.float64), S.astype(np.float64), alpha)
    d = {k: xp.asarray(v) for k, v in dict(X=X, K=K, A=A, S=S, b=b).items()}
    out = xp.asarray(A.copy()) if kind == "inplace" else None
    ep = _epilogue(kind, act, d["A"], d["b"], d["S"], alpha, out)
    got = fn(d["X"], d["K"], bd, engine=engine, epilogue=ep, out=out)
    if out is not None:
        assert got is out
    got = _host(got)
    assert got.dtype == dtype and got.shape == want.shape
    err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300)
    assert err <= _tol(dtype), f"relative error {err:.2e}"
    np.testing.assert_array_equal(_host(d["A"]), A)  # `add` is read, never written (unless it is out)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
@pytest.mark.parametrize("dtype", DTYPES)
def test_epilogue_on_the_gemm_path(dtype, monkeypatch):
    from meganet.kernels import _conv2d_numba as CN

    monkeypatch.setattr(CN, "METHOD", "gemm")
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((2, 8, 6, 7)).astype(dtype)
    K = rng.standard_normal((8, 8, 3, 3)).astype(dtype)
    A = rng.standard_normal((2, 8, 6, 7)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    ep = Epilogue(alpha=0.5, add=A, bias=b, activation="tanh")
    got = C.conv2d_forward(Y, K, "zero", engine="numba", epilogue=ep)
    want = np.tanh(0.5 * C.conv2d_forward(Y, K, "zero", engine="numpy") + A + b.reshape(1, -1, 1, 1))
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= _tol(dtype)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_tanh32_accuracy():
    """The float32 rational tanh of the conv epilogue: at most 7 ulp from the float64 tanh on a dense grid of
    [−12, 12] and on tiny values, odd, exactly ±1 far out, and it keeps NaN."""
    from numba import njit

    from meganet.kernels._numba_math import tanh32

    @njit
    def run(x, out):
        for i in range(x.shape[0]):
            out[i] = tanh32(x[i])

    f = np.float32
    x = np.concatenate([np.linspace(-12, 12, 2_000_001, dtype=f), f(10.0) ** -np.arange(1, 30, 0.01, dtype=f),
                        np.array([0.0, 9.0, 20.0, 1e30], dtype=f)])
    out = np.empty_like(x)
    run(x, out)
    ref = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(ref).astype(f)).astype(np.float64)
    assert np.max(np.abs(out - ref) / ulp) <= 7.0
    run(-x, out2 := np.empty_like(x))
    np.testing.assert_array_equal(out2, -out)
    assert out[-1] == 1.0 and out[-2] == 1.0
    nan = np.array([np.nan], dtype=f)
    run(nan, res := np.empty_like(nan))
    assert np.isnan(res[0])


def test_apply_epilogue_trivial_and_out():
    C0 = np.arange(6.0).reshape(1, 1, 2, 3)
    assert apply_epilogue(C0, None) is C0
    assert Epilogue().trivial and not Epilogue(alpha=2.0).trivial
    out = np.empty_like(C0)
    assert apply_epilogue(C0, Epilogue(alpha=2.0), out) is out
    np.testing.assert_array_equal(out, 2 * C0)
    np.testing.assert_array_equal(C0, np.arange(6.0).reshape(1, 1, 2, 3))  # input untouched


@pytest.mark.parametrize("engine", ["numpy"] + (["numba"] if numba_available() else []))
def test_epilogue_bad_input(engine):
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((2, 3, 4, 4))
    K = rng.standard_normal((5, 3, 3, 3))
    good = rng.standard_normal((2, 5, 4, 4))
    cases = [
        (Epilogue(add=good[:, :4]), ValueError, "epilogue.add must have shape"),
        (Epilogue(add=good.astype(np.float32)), ValueError, "epilogue.add must have shape"),
        (Epilogue(bias=np.zeros(4)), ValueError, "epilogue.bias must have shape"),
        (Epilogue(dsigma_from=good), ValueError, "dsigma_from needs epilogue.activation"),
        (Epilogue(activation="smooth_relu", dsigma_from=np.tanh(good)), ValueError, "function of its value"),
        (Epilogue(activation="softsign"), ValueError, "activation"),
        (Epilogue(alpha="2"), TypeError, "epilogue.alpha"),
        (Epilogue(alpha=float("nan")), TypeError, "epilogue.alpha must be a finite"),
        ({"alpha": 2.0}, TypeError, "epilogue must be"),
    ]
    for ep, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            C.conv2d_forward(Y, K, "zero", engine=engine, epilogue=ep)
    ok = C.conv2d_forward(Y, K, "zero", engine=engine, epilogue=Epilogue(alpha=np.float32(0.5)))  # numpy scalars
    np.testing.assert_allclose(ok, 0.5 * C.conv2d_forward(Y, K, "zero", engine="numpy"), rtol=1e-12)
    Z = rng.standard_normal((2, 3, 4, 4))
    K3 = rng.standard_normal((3, 3, 3, 3))
    with pytest.raises(ValueError, match="out must not overlap the input Y"):
        C.conv2d_forward(Z, K3, "zero", engine=engine, out=Z, epilogue=Epilogue(alpha=2.0))
    with pytest.raises(ValueError, match="out must not overlap the input Z"):
        C.conv2d_adjoint_input(Z, K3, "zero", engine=engine, out=Z, epilogue=Epilogue(alpha=2.0))


# ------------------------------------------------------- the layer's fused steps
def _block(dtype, bias=True, activation="tanh", engine="auto"):
    from meganet.integrators import ResNet
    from meganet.layers.symmetric import SymmetricLayer
    from meganet.transforms.conv2d import Conv2d

    layer = SymmetricLayer(Conv2d(3, 4, (5, 6), engine=engine), activation=activation, bias=bias)
    return ResNet(layer, n_steps=3, final_time=0.6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_steps_equal_the_element_composition(bias, activation, dtype, monkeypatch):
    """apply / forward + JTmv (θ, Y, per example) / jvp of ResNet(SymmetricLayer(Conv2d)) with the fused steps
    equal the same products with the element defaults (``_fused_steps`` switched off)."""
    from meganet.layers.symmetric import SymmetricLayer

    blk = _block(dtype, bias, activation)
    assert blk.layer._fused_steps
    rng = np.random.default_rng(4)
    theta = (0.3 * rng.standard_normal(blk.n_theta)).astype(dtype)
    Y = rng.standard_normal((3, 3, 5, 6)).astype(dtype)
    V = rng.standard_normal(Y.shape).astype(dtype)
    dth = rng.standard_normal(blk.n_theta).astype(dtype)
    dY = rng.standard_normal(Y.shape).astype(dtype)

    def products():
        Z, cache = blk.forward(theta, Y)
        g, gY = blk.JTmv(V, theta, Y, cache)
        gpe, _ = blk.JTmv(V, theta, Y, cache, per_example=True)
        g_only, none_Y = blk.JTmv(V, theta, Y, cache, wrt="theta")
        assert none_Y is None
        Zj, dZ = blk.jvp(theta, Y, dth, dY)
        _, dZ_th = blk.jvp(theta, Y, dth, None)
        _, dZ_Y = blk.jvp(theta, Y, None, dY)
        return [blk.apply(theta, Y), Z, g, gY, gpe, g_only, Zj, dZ, dZ_th, dZ_Y]

    fused = products()
    monkeypatch.setattr(SymmetricLayer, "_fused_steps", property(lambda self: False))
    plain = products()
    for a, b in zip(fused, plain):
        err = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)
        assert err <= 50 * np.finfo(dtype).eps, err
    np.testing.assert_array_equal(Y, Y.copy())


def test_fused_apply_leaves_the_input_alone():
    blk = _block(np.float64)
    rng = np.random.default_rng(5)
    theta = 0.3 * rng.standard_normal(blk.n_theta)
    Y = rng.standard_normal((2, 3, 5, 6))
    Y0 = Y.copy()
    blk.apply(theta, Y)
    blk.forward(theta, Y)
    blk.jvp(theta, Y, theta, Y)
    np.testing.assert_array_equal(Y, Y0)



# ------------------------------------------------------- the symmetric step kernel
STEP_CASES = [  # (n, C, C_mid, H, W, kh, kw, boundary)
    (3, 3, 5, 5, 6, 3, 3, "zero"),
    (2, 4, 4, 6, 5, 3, 3, "periodic"),
    (2, 3, 6, 5, 6, 1, 1, "zero"),
    (3, 2, 3, 5, 7, 3, 5, "periodic"),
    (5, 1, 1, 4, 4, 3, 3, "zero"),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("case", STEP_CASES, ids=lambda c: f"{c[5]}x{c[6]}-{c[7]}-{c[1]}to{c[2]}")
def test_symmetric_step_matches_formula(case, activation, dtype, engine):
    """``Z = Y − h Kᵀσ(KY + b)`` and ``S = σ(KY + b)`` against the formula on the numpy reference
    convolutions; with and without bias, S stored or not, written into a given buffer and into Y itself."""
    n, c, cm, H, W, kh, kw, bd = case
    xp = _xp(engine)
    rng = np.random.default_rng(7)
    Y = rng.standard_normal((n, c, H, W)).astype(dtype)
    K = (0.5 * rng.standard_normal((cm, c, kh, kw))).astype(dtype)
    b = rng.standard_normal(cm).astype(dtype)
    h = 0.3
    act = get_activation(activation)
    for bias in (b, None):
        U = C.conv2d_forward(Y, K, bd, engine="numpy").astype(np.float64)
        S = act.value(U + (0 if bias is None else bias.reshape(1, -1, 1, 1).astype(np.float64)))
        Z = Y - h * C.conv2d_adjoint_input(S, K.astype(np.float64), bd, engine="numpy")
        dY, dK = xp.asarray(Y), xp.asarray(K)
        db = None if bias is None else xp.asarray(bias)
        for store in (True, False):
            got_Z, got_S = C.conv2d_symmetric_step(dY, dK, db, activation, h, bd, store_S=store, engine=engine)
            assert (got_S is None) is (not store)
            for got, want in ((got_Z, Z),) + (((got_S, S),) if store else ()):
                got = _host(got)
                assert got.dtype == dtype
                assert np.linalg.norm(got - want) / np.linalg.norm(want) <= _tol(dtype)
        np.testing.assert_array_equal(_host(dY), Y)  # the input is not written
        inplace = xp.asarray(Y.copy())
        res, _ = C.conv2d_symmetric_step(inplace, dK, db, activation, h, bd, out=inplace, engine=engine)
        assert res is inplace
        assert np.linalg.norm(_host(inplace) - Z) / np.linalg.norm(Z) <= _tol(dtype)


@pytest.mark.parametrize("engine", ["numpy"] + (["numba"] if numba_available() else []))
def test_symmetric_step_bad_input(engine):
    rng = np.random.default_rng(8)
    Y = rng.standard_normal((2, 3, 4, 4))
    K = rng.standard_normal((5, 3, 3, 3))
    with pytest.raises(ValueError, match="epilogue.bias must have shape"):
        C.conv2d_symmetric_step(Y, K, np.zeros(3), "tanh", 0.1, "zero", engine=engine)
    with pytest.raises(ValueError, match="activation must be one of"):
        C.conv2d_symmetric_step(Y, K, None, "softsign", 0.1, "zero", engine=engine)
    for h in ("0.1", float("inf")):
        with pytest.raises(TypeError, match="h must be a finite real number"):
            C.conv2d_symmetric_step(Y, K, None, "tanh", h, "zero", engine=engine)
    with pytest.raises(ValueError, match="Y must have 2 input channels"):
        C.conv2d_symmetric_step(Y, K[:, :2], None, "tanh", 0.1, "zero", engine=engine)
    with pytest.raises(ValueError, match="out must have shape"):
        C.conv2d_symmetric_step(Y, K, None, "tanh", 0.1, "zero", out=np.empty((2, 5, 4, 4)), engine=engine)
    with pytest.raises(TypeError, match="store_S"):
        C.conv2d_symmetric_step(Y, K, None, "tanh", 0.1, "zero", store_S=1, engine=engine)
