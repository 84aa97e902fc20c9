"""Core machinery: backend detection, layout views, Jacobian operators, Chain, engines, activations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import meganet.kernels as mk
from meganet import Chain, Layout
from meganet.activations import ACTIVATIONS, SmoothReLU, get_activation
from meganet.backend import check_dtype, get_array_module, resolve_xp, to_backend
from meganet.layers import Bias, Pointwise, SingleLayer
from meganet.testing import taylor_test
from meganet.transforms import Dense


def test_get_array_module():
    a = np.zeros(3)
    assert get_array_module(a, None, a) is np
    assert get_array_module() is np
    with pytest.raises(TypeError, match="Y must be a numpy.ndarray or cupy.ndarray, got list"):
        get_array_module(a, [1.0], names=["theta", "Y"])


def test_resolve_xp_and_dtype():
    assert resolve_xp(None) is np and resolve_xp("numpy") is np
    with pytest.raises(ValueError, match="xp must be numpy, cupy"):
        resolve_xp("torch")
    assert check_dtype("float32") == np.float32
    with pytest.raises(TypeError, match="dtype must be float64 or float32, got float16"):
        check_dtype(np.float16)
    assert to_backend(np.ones(2), np) is not None


def test_layout_views_share_memory():
    lay = Layout([("K", 6), ("b", 2), ("empty", 0)])
    theta = np.arange(8.0)
    p = lay.split(theta)
    assert np.shares_memory(p.K, theta) and np.shares_memory(p["b"], theta)
    assert p.empty.shape == (0,) and list(p.names()) == ["K", "b", "empty"]
    batch = np.arange(16.0).reshape(2, 8)
    assert lay.split(batch).b.shape == (2, 2)
    with pytest.raises(ValueError, match="duplicate parameter part name 'K'"):
        Layout([("K", 1), ("K", 2)])
    with pytest.raises(AttributeError, match="no parameter part named 'c'"):
        p.c


def test_init_theta_seed_dtype():
    el = SingleLayer(Dense(3, 4))
    t1, t2 = el.init_theta(rng=5), el.init_theta(rng=5)
    np.testing.assert_array_equal(t1, t2)
    t32 = el.init_theta(rng=5, dtype=np.float32)
    assert t32.dtype == np.float32 and np.allclose(t32, t1, atol=1e-6)
    assert el.split(t1).b.shape == (4,)
    with pytest.raises(TypeError, match="dtype must be float64 or float32"):
        el.init_theta(dtype=np.int64)


def test_jacobian_operator_matches_dense_and_scipy():
    el = SingleLayer(Dense(3, 2), activation="sigmoid")
    rng = np.random.default_rng(0)
    theta, Y = el.init_theta(rng=rng), rng.standard_normal((4, 3))
    J = el.jacobian(theta, Y)
    assert J.shape == (8, el.n_theta + 12)
    M = J.todense()
    # columns are Jacobian-vector products; rows are adjoint products
    v = rng.standard_normal(J.shape[1])
    np.testing.assert_allclose(M @ v, J.matvec(v), rtol=1e-13, atol=1e-14)
    w = rng.standard_normal(J.shape[0])
    np.testing.assert_allclose(M.T @ w, J.rmatvec(w), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(J.T @ w, J.rmatvec(w))
    L = J.aslinearoperator()
    assert isinstance(L, spla.LinearOperator)
    np.testing.assert_allclose(L.rmatvec(w), M.T @ w, rtol=1e-13, atol=1e-14)
    # a scipy solver runs on the operator: largest singular value vs dense SVD
    s = spla.svds(L, k=1, return_singular_vectors=False)
    np.testing.assert_allclose(s[0], np.linalg.svd(M, compute_uv=False)[0], rtol=1e-8)
    # one-sided Jacobians are the column blocks
    Jt = el.jacobian(theta, Y, wrt="theta").todense()
    JY = el.jacobian(theta, Y, wrt="Y").todense()
    np.testing.assert_allclose(np.hstack([Jt, JY]), M, rtol=1e-13, atol=1e-14)
    with pytest.raises(ValueError, match="v must have length"):
        J.matvec(np.ones(3))


def test_chain_shape_mismatch_message():
    with pytest.raises(ValueError, match=r"elements\[0\] \(Dense\) has shape_out \(4,\) but elements\[1\] \(Bias\) expects shape_in \(5,\)"):
        Chain([Dense(3, 4), Bias(5)])
    with pytest.raises(TypeError, match=r"elements\[1\] must be an Element"):
        Chain([Dense(3, 4), "tanh"])
    with pytest.raises(ValueError, match="non-empty"):
        Chain([])


def test_chain_is_composition():
    K1, K2 = Dense(3, 4), Dense(4, 2)
    ch = Chain([K1, Pointwise("tanh", 4), K2])
    rng = np.random.default_rng(1)
    theta, Y = ch.init_theta(rng=rng), rng.standard_normal((5, 3))
    p = ch.split(theta)
    expected = np.tanh(Y @ p[0].reshape(4, 3).T) @ p[2].reshape(2, 4).T
    np.testing.assert_allclose(ch(theta, Y), expected, rtol=1e-14)


def test_element_to_numpy_roundtrip():
    el = SingleLayer(Dense(2, 2))
    el.constant = np.arange(3.0)
    moved = el.to("numpy")
    assert moved is not el and isinstance(moved.constant, np.ndarray)
    np.testing.assert_array_equal(moved.constant, el.constant)


def test_singlelayer_options_validated():
    with pytest.raises(ValueError, match=r"activation must be one of \{'tanh'.*got 'tahn'"):
        SingleLayer(Dense(2, 2), activation="tahn")
    with pytest.raises(TypeError, match="transform must be a Transform"):
        SingleLayer(Pointwise("tanh", 2))
    with pytest.raises(TypeError, match="unexpected keyword"):
        SingleLayer(Dense(2, 2), activaton="tanh")
    with pytest.raises(ValueError, match="normalization must map shape"):
        SingleLayer(Dense(2, 3), normalization=Bias(2))


def test_dense_bad_sizes():
    with pytest.raises(ValueError, match="n_in must be >= 1, got 0"):
        Dense(0, 2)
    with pytest.raises(TypeError, match="n_out must be an integer, got 2.5"):
        Dense(2, 2.5)


def test_engines():
    assert "numpy" in mk.available_engines()
    assert mk.resolve_engine("numpy", np) == "numpy"
    with pytest.raises(ValueError, match="engine must be one of"):
        mk.resolve_engine("fortran", np)
    auto = mk.resolve_engine("auto", np)
    assert auto == ("numba" if "numba" in mk.available_engines() else "numpy")
    if "numba" not in mk.available_engines():
        with pytest.raises(ImportError, match=r"pip install 'meganet\[numba\]'"):
            mk.resolve_engine("numba", np)
    with pytest.raises((ValueError, ImportError), match="cupy"):
        mk.resolve_engine("cupy", np)


# ----------------------------------------------------------------- activations
def _reference(name, x):
    return {
        "tanh": np.tanh(x),
        "relu": np.maximum(x, 0),
        "identity": x,
        "sigmoid": 1 / (1 + np.exp(-x)),
        "smooth_relu": np.where(x > 0.1, x, np.where(x < -0.1, 0, x**2 / 0.4 + x / 2 + 0.025)),
    }[name]


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_values_and_derivatives(name):
    act = get_activation(name)
    x = np.linspace(-3, 3, 61) + 0.013  # avoid the kinks at 0 and ±0.1 exactly
    np.testing.assert_allclose(act(x), _reference(name, x), rtol=1e-14, atol=1e-15)
    v = np.random.default_rng(0).standard_normal(x.shape)
    # σ' and σ'' verified by Taylor tests of σ and σ' (small steps: stay within one piece)
    assert taylor_test(act.value, x, v, act.derivative(x) * v, h0=1e-3).ok
    assert taylor_test(act.derivative, x, v, act.second_derivative(x) * v, h0=1e-3).ok
    for dt in (np.float32, np.float64):
        xd = x.astype(dt)
        assert act(xd).dtype == dt and act.derivative(xd).dtype == dt and act.second_derivative(xd).dtype == dt


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu", "identity", "smooth_relu"])
def test_derivative_from_value(name):
    act = get_activation(name)
    x = np.concatenate([np.linspace(-4, 4, 81) + 0.013, [0.0, -0.0]])
    if not act.derivative_from_value_available:  # smooth relu: σ is flat (0) on x < −η, σ' is not a function of σ
        with pytest.raises(NotImplementedError, match="cannot compute"):
            act.derivative_from_value(act(x))
        return
    for dt in (np.float64, np.float32):
        xd = x.astype(dt)
        d = act.derivative_from_value(act(xd))
        assert d.dtype == dt
        np.testing.assert_allclose(d, act.derivative(xd), rtol=0, atol=4 * np.finfo(dt).eps)


def test_smooth_relu_is_c1():
    a = SmoothReLU(eta=0.2)
    for x0 in (-0.2, 0.2):
        x = np.array([x0 - 1e-9, x0 + 1e-9])
        assert abs(np.diff(a(x))[0]) < 1e-8 and abs(np.diff(a.derivative(x))[0]) < 1e-8
    with pytest.raises(ValueError, match="eta must be positive, got -1"):
        SmoothReLU(eta=-1)
