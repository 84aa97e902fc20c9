"""Known-answer tests of the antisymmetric, negative semidefinite and
channel-scaling transforms, the double and symmetric layers, reshape/flatten
and average pooling (the generic derivative tests run through
tests/cases/transforms_layers.py)."""

from __future__ import annotations

import numpy as np
import pytest

from meganet.layers.bias import Bias
from meganet.layers.double import DoubleLayer
from meganet.layers.pooling import AvgPool2d
from meganet.layers.reshape import Flatten, Reshape
from meganet.layers.symmetric import SymmetricLayer
from meganet.normalization import TVNorm
from meganet.testing import dot_test, taylor_test
from meganet.transforms.antisymmetric import AntisymmetricDense
from meganet.transforms.base import Transform
from meganet.transforms.channel_scaling import ChannelScaling
from meganet.transforms.conv2d import Conv2d
from meganet.transforms.dense import Dense
from meganet.transforms.negative_definite import NegativeSemidefinite


def _rng(seed=0):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------ transforms
@pytest.mark.parametrize("n,gamma,scale", [(5, 0.0, 1.0), (6, 0.0, 0.5), (5, 0.3, 1.0), (4, 0.7, 0.5)])
def test_antisymmetric_matrix_and_eigenvalues(n, gamma, scale):
    T = AntisymmetricDense(n, gamma=gamma, scale=scale)
    theta = T.init_theta(rng=1)
    K = theta.reshape(n, n)
    A_hand = scale * (K - K.T - gamma * np.eye(n))
    A = T.matrix(theta)
    np.testing.assert_allclose(A, A_hand, rtol=0, atol=1e-15)
    # A − (−sγ)I is antisymmetric, exactly; for γ = 0 A itself is
    np.testing.assert_array_equal(A + A.T, -2.0 * scale * gamma * np.eye(n))
    ev = np.linalg.eigvals(A)
    np.testing.assert_allclose(ev.real, -scale * gamma, rtol=0, atol=1e-12)
    assert np.max(np.abs(ev.imag)) > 0.1  # a genuinely rotational spectrum, not A = −sγI
    # the map, examples first: z = A y
    Y = _rng(2).standard_normal((3, n))
    np.testing.assert_allclose(T(theta, Y), Y @ A_hand.T, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(T.apply_T(theta, Y), Y @ A_hand, rtol=1e-13, atol=1e-14)


def test_antisymmetric_scale_half_is_meganet_denseAntiSym():
    """Meganet.m KernelTypes/denseAntiSym.m: getOp = (K − Kᵀ)/2."""
    T = AntisymmetricDense(4, scale=0.5)
    theta = _rng(3).standard_normal(16)
    K = theta.reshape(4, 4)
    np.testing.assert_allclose(T.matrix(theta), (K - K.T) / 2, rtol=0, atol=1e-15)


@pytest.mark.parametrize("n,m", [(5, None), (5, 2), (3, 6)])
def test_negative_semidefinite_matrix_and_eigenvalues(n, m):
    T = NegativeSemidefinite(n, m=m)
    m_ = n if m is None else m
    theta = T.init_theta(rng=4)
    C = theta.reshape(m_, n)
    K = T.matrix(theta)
    np.testing.assert_allclose(K, -(C.T @ C), rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(K, K.T)
    ev = np.linalg.eigvals(K)
    assert np.max(np.abs(ev.imag)) <= 1e-12
    tol = 1e-12 * np.max(np.abs(ev))
    assert np.all(ev.real <= tol), ev
    # rank K = min(m, n): exactly n − min(m, n) zero eigenvalues
    n_zero = int(np.sum(np.abs(ev) <= 1e-10 * np.max(np.abs(ev))))
    assert n_zero == n - min(m_, n)
    Y = _rng(5).standard_normal((4, n))
    np.testing.assert_allclose(T(theta, Y), -Y @ C.T @ C, rtol=1e-13, atol=1e-14)


def test_negative_semidefinite_theta_adjoint_formula():
    """dK_adj = −C(M + Mᵀ) with M = WᵀY (hand formula of the docstring)."""
    T = NegativeSemidefinite(4, m=3)
    rng = _rng(6)
    theta, Y, W = rng.standard_normal(12), rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    C = theta.reshape(3, 4)
    M = W.T @ Y
    np.testing.assert_allclose(T.dK_adj(theta, Y, W), (-C @ (M + M.T)).ravel(), rtol=1e-13)
    G = T.dK_adj(theta, Y, W, per_example=True)
    for s in range(5):
        Ms = np.outer(W[s], Y[s])
        np.testing.assert_allclose(G[s], (-C @ (Ms + Ms.T)).ravel(), rtol=1e-13, atol=1e-14)


def test_channel_scaling_forward():
    T = ChannelScaling((3, 2, 4))
    rng = _rng(7)
    theta, Y = rng.standard_normal(3), rng.standard_normal((2, 3, 2, 4))
    np.testing.assert_array_equal(T(theta, Y), Y * theta[None, :, None, None])
    np.testing.assert_array_equal(T.init_theta(), np.ones(3))
    T1 = ChannelScaling(5)
    th1, Y1 = rng.standard_normal(5), rng.standard_normal((4, 5))
    np.testing.assert_array_equal(T1(th1, Y1), Y1 * th1)
    np.testing.assert_allclose(T1.dK_adj(th1, Y1, Y1 * 0 + 1), Y1.sum(axis=0), rtol=1e-14)


_TRANSFORMS = {
    "antisym-g0": lambda: AntisymmetricDense(4),
    "antisym-g0.5-s0.5": lambda: AntisymmetricDense(4, gamma=0.5, scale=0.5),
    "negdef-4-m2": lambda: NegativeSemidefinite(4, m=2),
    "negdef-3-m5": lambda: NegativeSemidefinite(3, m=5),
    "chscale-2x3x3": lambda: ChannelScaling((2, 3, 3)),
}


def _transform_data(T, seed, dtype=np.float64):
    rng = _rng(seed)
    theta = rng.standard_normal(T.n_theta).astype(dtype)
    dtheta = rng.standard_normal(T.n_theta).astype(dtype)
    Y = rng.standard_normal((3, *T.shape_in)).astype(dtype)
    Z = rng.standard_normal((3, *T.shape_out)).astype(dtype)
    return theta, dtheta, Y, Z


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(_TRANSFORMS))
def test_dKT_mv_taylor_and_dot(name, dtype):
    """θ ↦ K(θ)ᵀZ has derivative dKT_mv (Taylor), and dKT_mv's adjoint is dK_adj(θ, W, Z)."""
    T = _TRANSFORMS[name]()
    theta, dtheta, Y, Z = _transform_data(T, 8, dtype)
    rep = taylor_test(lambda th: T.apply_T(th, Z), theta, dtheta, T.dKT_mv(theta, dtheta, Z))
    assert rep.ok, rep.table()
    rep = taylor_test(lambda th: T.apply(th, Y), theta, dtheta, T.dK_mv(theta, dtheta, Y))
    assert rep.ok, rep.table()
    W = Y  # input-space weights for <(∂K[dθ])ᵀZ, W>
    rep = dot_test(lambda v: T.dKT_mv(theta, v, Z), lambda w: T.dK_adj(theta, w, Z), dtheta, W)
    assert rep.ok, str(rep)
    # per-example adjoints: row s is the adjoint of example s alone
    G = T.dK_adj(theta, W, Z, per_example=True)
    for s in range(W.shape[0]):
        g = T.dK_adj(theta, W[s : s + 1], Z[s : s + 1])
        np.testing.assert_allclose(G[s], g, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)


def test_antisymmetric_shift_is_not_in_the_derivative():
    """With γ > 0, A(dθ) ≠ ∂A[dθ]: the base-class default would be wrong, and
    the Taylor test detects it (so the test above can fail)."""
    T = AntisymmetricDense(4, gamma=0.5)
    theta, dtheta, Y, Z = _transform_data(T, 9)
    np.testing.assert_allclose(T.dK_mv(theta, dtheta, Y) - T.apply(dtheta, Y), 0.5 * Y, rtol=1e-13)
    wrong = taylor_test(lambda th: T.apply_T(th, Z), theta, dtheta, T.apply_T(dtheta, Z))
    assert not wrong.ok
    assert not T.linear_in_theta and AntisymmetricDense(4).linear_in_theta


# ------------------------------------------------------------------ layers
def _sym_J_Y_hand(layer, theta, y):
    """−Kᵀ diag(σ'(K y + b)) K for a single vector example."""
    p = layer.split(theta)
    K = layer.transform.matrix(p.K)
    u = K @ y + (p.b if layer.bias else 0.0)
    return -K.T @ np.diag(1.0 - np.tanh(u) ** 2) @ K


@pytest.mark.parametrize("make", [
    lambda: SymmetricLayer(Dense(4, 6)),
    lambda: SymmetricLayer(Dense(5, 3), bias=False),
    lambda: SymmetricLayer(AntisymmetricDense(5, gamma=0.2, scale=0.5)),
    lambda: SymmetricLayer(NegativeSemidefinite(4, m=2)),
], ids=["dense-4-6", "dense-5-3-nobias", "antisym", "negdef"])
def test_symmetric_layer_jacobian_symmetric_nsd(make):
    layer = make()
    rng = _rng(10)
    theta = rng.standard_normal(layer.n_theta)
    Y = rng.standard_normal((1, *layer.shape_in))
    J = layer.jacobian(theta, Y, wrt="Y").todense()
    np.testing.assert_allclose(J, J.T, rtol=0, atol=1e-13 * np.abs(J).max())
    ev = np.linalg.eigvalsh(0.5 * (J + J.T))
    assert ev.max() <= 1e-12 * np.abs(ev).max()
    assert ev.min() < -1e-3  # not trivially zero
    np.testing.assert_allclose(J, _sym_J_Y_hand(layer, theta, Y[0]), rtol=1e-12, atol=1e-13)


def test_symmetric_layer_forward_hand():
    layer = SymmetricLayer(Dense(3, 5))
    rng = _rng(11)
    theta, Y = rng.standard_normal(layer.n_theta), rng.standard_normal((4, 3))
    K = theta[:15].reshape(5, 3)
    b = theta[15:]
    np.testing.assert_allclose(layer(theta, Y), -np.tanh(Y @ K.T + b) @ K, rtol=1e-13, atol=1e-14)
    assert layer.layout.names == ("K", "b")


def test_symmetric_layer_conv_jacobian_symmetric_nsd():
    layer = SymmetricLayer(Conv2d(2, 3, (4, 3)))
    rng = _rng(12)
    theta = rng.standard_normal(layer.n_theta)
    Y = rng.standard_normal((1, 2, 4, 3))
    J = layer.jacobian(theta, Y, wrt="Y").todense()
    np.testing.assert_allclose(J, J.T, rtol=0, atol=1e-13 * np.abs(J).max())
    ev = np.linalg.eigvalsh(0.5 * (J + J.T))
    assert ev.max() <= 1e-12 * np.abs(ev).max() and ev.min() < -1e-3


@pytest.mark.parametrize("make", [
    lambda: SymmetricLayer(Dense(4, 6)),
    lambda: SymmetricLayer(NegativeSemidefinite(4, m=3)),
    lambda: SymmetricLayer(AntisymmetricDense(3, gamma=0.1), normalization=TVNorm(3, affine=True)),
    lambda: DoubleLayer(Dense(4, 6), AntisymmetricDense(6, gamma=0.2)),
], ids=["sym-dense", "sym-negdef", "sym-antisym-tvnorm", "double"])
def test_per_example_gradients_are_single_example_gradients(make):
    """Row s of the per-example θ-gradient is the gradient of example s alone
    (valid for elements that do not couple examples)."""
    el = make()
    rng = _rng(13)
    theta = rng.standard_normal(el.n_theta)
    Y = rng.standard_normal((3, *el.shape_in))
    W = rng.standard_normal((3, *el.shape_out))
    G = el.JthetaTmv(W, theta, Y, per_example=True)
    for s in range(3):
        g = el.JthetaTmv(W[s : s + 1], theta, Y[s : s + 1])
        np.testing.assert_allclose(G[s], g, rtol=1e-12, atol=1e-13)


def test_double_layer_forward_hand_and_parts():
    layer = DoubleLayer(Dense(3, 5), Dense(5, 2), activation="sigmoid")
    assert layer.layout.names == ("K1", "b1", "sigma", "K2", "b2")
    rng = _rng(14)
    theta, Y = rng.standard_normal(layer.n_theta), rng.standard_normal((4, 3))
    p = layer.split(theta)
    K1, K2 = p.K1.reshape(5, 3), p.K2.reshape(2, 5)
    hand = 1.0 / (1.0 + np.exp(-(Y @ K1.T + p.b1))) @ K2.T + p.b2
    np.testing.assert_allclose(layer(theta, Y), hand, rtol=1e-13, atol=1e-14)
    assert np.all(layer.init_theta(rng=0)[layer.layout.slice("b1")] == 0)
    nob = DoubleLayer(Dense(3, 5), Dense(5, 2), bias1=False, bias2=False)
    assert nob.layout.names == ("K1", "sigma", "K2") and nob.n_theta == 25


def test_avgpool_against_block_loops():
    f = 3
    pool = AvgPool2d((2, 6, 9), factor=f)
    assert pool.shape_out == (2, 2, 3) and pool.n_theta == 0
    rng = _rng(15)
    Y = rng.standard_normal((3, 2, 6, 9))
    Z = pool(None, Y)
    hand = np.empty((3, 2, 2, 3))
    for s in range(3):
        for c in range(2):
            for i in range(2):
                for j in range(3):
                    hand[s, c, i, j] = Y[s, c, f * i : f * i + f, f * j : f * j + f].mean()
    np.testing.assert_allclose(Z, hand, rtol=1e-14)
    # adjoint: each value /f² on its block
    W = rng.standard_normal(Z.shape)
    dY = pool.JYTmv(W, None, Y)
    np.testing.assert_allclose(dY, np.kron(W, np.ones((f, f))) / f**2, rtol=1e-14)
    Z32 = pool(None, Y.astype(np.float32))
    assert Z32.dtype == np.float32
    np.testing.assert_allclose(Z32, hand, rtol=1e-5)


def test_reshape_and_flatten_round_trip():
    rng = _rng(16)
    Y = rng.standard_normal((4, 2, 3, 5))
    flat = Flatten((2, 3, 5))
    assert flat.shape_out == (30,) and flat.n_theta == 0
    F = flat(None, Y)
    assert F.shape == (4, 30) and np.shares_memory(F, Y)
    np.testing.assert_array_equal(F, Y.reshape(4, -1))
    back = Reshape(30, (2, 3, 5))
    np.testing.assert_array_equal(back(None, F), Y)
    np.testing.assert_array_equal(flat.JYTmv(F, None, Y), Y)
    r = Reshape((2, 3, 5), (6, 5))
    np.testing.assert_array_equal(r.JYTmv(r(None, Y), None, Y), Y)


# ------------------------------------------------------------------ bad input
def test_bad_input_messages():
    with pytest.raises(ValueError, match=r"image size \(height, width\) = \(5, 4\) must be divisible by factor = 2"):
        AvgPool2d((3, 5, 4))
    with pytest.raises(ValueError, match=r"divisible by factor = 3"):
        AvgPool2d((1, 6, 4), factor=3)
    with pytest.raises(ValueError, match=r"shape_in must be \(channels, height, width\), got \(4, 4\)"):
        AvgPool2d((4, 4))
    with pytest.raises(ValueError, match="factor must be >= 1, got 0"):
        AvgPool2d((1, 4, 4), factor=0)
    with pytest.raises(ValueError, match=r"transform1.shape_out is \(6,\) but transform2.shape_in is \(5,\)"):
        DoubleLayer(Dense(4, 6), Dense(5, 3))
    with pytest.raises(TypeError, match="transform2 must be a Transform, got Bias"):
        DoubleLayer(Dense(4, 6), Bias(6))
    with pytest.raises(ValueError, match=r"normalization must map transform1.shape_out \(6,\) to itself"):
        DoubleLayer(Dense(4, 6), Dense(6, 3), normalization=Bias(4))
    with pytest.raises(TypeError, match="transform must be a Transform, got Bias"):
        SymmetricLayer(Bias(4))
    with pytest.raises(ValueError, match=r"normalization must map transform.shape_out \(6,\) to itself, got \(4,\)"):
        SymmetricLayer(Dense(4, 6), normalization=Bias(4))
    with pytest.raises(ValueError, match=r"shape_in \(2, 3\) has 6, shape_out \(5,\) has 5"):
        Reshape((2, 3), 5)
    with pytest.raises(ValueError, match="gamma must be non-negative, got -0.1"):
        AntisymmetricDense(3, gamma=-0.1)
    with pytest.raises(ValueError, match="scale must be positive, got 0"):
        AntisymmetricDense(3, scale=0)
    with pytest.raises(ValueError, match="m must be >= 1, got 0"):
        NegativeSemidefinite(3, m=0)
    with pytest.raises(ValueError, match="shape must be a non-empty tuple of positive ints"):
        ChannelScaling((3, 0))
    with pytest.raises(TypeError, match="got an unexpected keyword argument 'gama'"):
        AntisymmetricDense(3, gama=0.1)


class _NoTranspose(Transform):
    """A transform that offers K(θ) but not K(θ)ᵀ: no symmetric layer can be built from it."""

    def __init__(self):
        self.shape_in = self.shape_out = (3,)
        from meganet.core.layout import Layout

        self.layout = Layout([("K", 3)])

    def _apply(self, theta, Y):
        return Y * theta


def test_symmetric_layer_needs_transpose():
    with pytest.raises(TypeError, match=r"_NoTranspose must implement K\(θ\)ᵀ .* does not define _apply_T, _dK_adj"):
        SymmetricLayer(_NoTranspose())
