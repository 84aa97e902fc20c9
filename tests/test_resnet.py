"""Known-answer and bad-input tests of the time bases, the forward Euler and RK4
ResNets, the antisymmetric ResNet and the networks (Sequential, Meganet).

Derivatives (Taylor, dot, per-example, float32) are covered by the generic
tests through tests/cases/integrators_resnet.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

from meganet.integrators import AntisymmetricResNet, ResNet, RK4ResNet, TimeBasis
from meganet.layers import Pointwise, SingleLayer
from meganet.networks import Meganet, Sequential
from meganet.transforms import Dense

BLOCKS = [ResNet, RK4ResNet]


def _linear(n):
    """``F(θ, Y) = Y Kᵀ``: the linear ODE ``y' = K y`` for every example (row)."""
    return SingleLayer(Dense(n, n), activation="identity", bias=False)


def _rng(seed=0):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------ TimeBasis
def test_hat_basis_matrix_by_hand():
    # 4 steps on [0, T], nodes at 0, T/2, T: steps at s = 0, 1/4, 1/2, 3/4
    B = TimeBasis.hat(4, 3)
    np.testing.assert_array_equal(B.matrix(), [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5]])
    # RK4 stage times: s = (j + 1/2)/4 and (j + 1)/4
    np.testing.assert_array_equal(B.matrix(0.5), [[0.75, 0.25, 0], [0.25, 0.75, 0], [0, 0.75, 0.25], [0, 0.25, 0.75]])
    np.testing.assert_array_equal(B.matrix(1.0), [[0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1]])
    # non-dyadic grid: exact rational positions, no 1e-16 weights
    B = TimeBasis.hat(10, 11)
    np.testing.assert_array_equal(B.matrix(), np.eye(10, 11))
    assert all(len(idx) == 1 for idx, _ in B.rows())


def test_identity_constant_matrices_and_rk4_stages():
    np.testing.assert_array_equal(TimeBasis.identity(5).matrix(), np.eye(5))
    np.testing.assert_array_equal(TimeBasis.constant(5).matrix(), np.ones((5, 1)))
    # per-step weights are piecewise constant: every stage of step j uses row j
    for c in (0.5, 1.0):
        np.testing.assert_array_equal(TimeBasis.identity(5).matrix(c), np.eye(5))
    M = _rng().standard_normal((6, 2))
    M[2, 1] = 0.0
    B = TimeBasis.from_matrix(M)
    np.testing.assert_array_equal(B.matrix(), M)
    np.testing.assert_array_equal(B.matrix(1.0), M)
    assert B.rows()[2] == ((0,), (float(M[2, 0]),))


@pytest.mark.parametrize("basis", [TimeBasis.identity(6), TimeBasis.constant(6), TimeBasis.hat(6, 4),
                                   TimeBasis.from_matrix(np.arange(18.0).reshape(6, 3) - 4)])
@pytest.mark.parametrize("offset", [0.0, 0.5, 1.0])
def test_basis_apply_matches_matrix_and_adjoint(basis, offset):
    rng = _rng(1)
    n_theta = 5
    C = rng.standard_normal((basis.n_basis, n_theta))
    G = rng.standard_normal((basis.n_steps, n_theta))
    B = basis.matrix(offset)
    np.testing.assert_allclose(basis.apply(C, offset), B @ C, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(basis.apply_T(G, offset), B.T @ G, rtol=1e-14, atol=1e-13)
    # batched (per-example) layout: (n_examples, n_basis, n_theta)
    Cb = rng.standard_normal((2, basis.n_basis, n_theta))
    np.testing.assert_allclose(basis.apply(Cb, offset)[1], B @ Cb[1], rtol=1e-14, atol=1e-14)


def test_identity_and_constant_weights_are_views():
    # hat(4, 5): nodes at s = k/4 coincide with the step times
    for basis in (TimeBasis.identity(4), TimeBasis.constant(4), TimeBasis.hat(4, 5)):
        theta = np.arange(3.0 * basis.n_basis)
        for j in range(4):
            assert np.shares_memory(basis.weights_at(basis.coefficients(theta), j), theta), basis
    theta = np.arange(12.0)
    C = TimeBasis.identity(4).coefficients(theta)
    np.testing.assert_array_equal(TimeBasis.identity(4).weights_at(C, 3), [9.0, 10.0, 11.0])
    # a hat row between two nodes is a combination (new array)
    hb = TimeBasis.hat(4, 3)
    w = hb.weights_at(hb.coefficients(theta[:9]), 1)
    np.testing.assert_array_equal(w, 0.5 * (theta[0:3] + theta[3:6]))


def test_weights_keep_float32():
    basis = TimeBasis.hat(6, 4)
    C = np.ones((4, 3), dtype=np.float32)
    assert basis.weights_at(C, 1, 0.5).dtype == np.float32
    G = np.zeros((4, 3), dtype=np.float32)
    basis.add_adjoint(G, 1, np.ones(3, dtype=np.float32), 0.5, scale=0.1)
    assert G.dtype == np.float32


def test_resample_keeps_weight_function():
    coarse, fine = TimeBasis.hat(8, 3), TimeBasis.hat(8, 3).resample(16)
    assert fine == TimeBasis.hat(16, 3)
    # the fine grid contains the coarse step times at even indices
    np.testing.assert_array_equal(fine.matrix()[::2], coarse.matrix())
    np.testing.assert_array_equal(fine.matrix()[1::2], coarse.matrix(0.5))
    assert TimeBasis.constant(4).resample(8) == TimeBasis.constant(8)
    with pytest.raises(ValueError, match="resample is defined for kind 'constant' or 'hat'"):
        TimeBasis.identity(4).resample(8)


def test_time_basis_bad_input():
    with pytest.raises(ValueError, match=r"kind must be one of \{'identity', 'constant', 'hat', 'matrix'\}, got 'hats'"):
        TimeBasis("hats", n_steps=4)
    with pytest.raises(ValueError, match="n_basis must be >= 2, got 1"):
        TimeBasis.hat(4, 1)
    with pytest.raises(ValueError, match="n_steps must be >= 1, got 0"):
        TimeBasis.identity(0)
    with pytest.raises(ValueError, match="n_basis is required"):
        TimeBasis("hat", n_steps=4)
    with pytest.raises(ValueError, match="must be a 2-D array"):
        TimeBasis.from_matrix(np.ones(4))
    with pytest.raises(ValueError, match="non-finite"):
        TimeBasis.from_matrix(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match=r"offset must be in \[0, 1\], got 1.5"):
        TimeBasis.hat(4, 3).rows(1.5)


# ------------------------------------------------------- forward Euler ResNet
def test_resnet_linear_per_step_weights_by_hand():
    n, N, T = 3, 16, 2.0
    net = ResNet(_linear(n), n_steps=N, final_time=T)
    rng = _rng(2)
    theta = rng.standard_normal(net.n_theta)
    Y0 = rng.standard_normal((4, n))
    expected = Y0.copy()
    for K in theta.reshape(N, n, n):  # row j is the weight of step j
        expected = expected + (T / N) * expected @ K.T
    np.testing.assert_allclose(net(theta, Y0), expected, rtol=1e-13)


def test_resnet_zero_weights_tanh_is_identity():
    net = ResNet(SingleLayer(Dense(4, 4), activation="tanh"), n_steps=16, final_time=3.0)
    Y0 = _rng(3).standard_normal((5, 4))
    np.testing.assert_array_equal(net(np.zeros(net.n_theta), Y0), Y0)
    # and a non-zero bias does move the state (the check above can fail)
    theta = np.zeros(net.n_theta)
    theta[16::20] = 1.0  # first bias entry of every step
    assert not np.allclose(net(theta, Y0), Y0)


@pytest.mark.parametrize("Block", BLOCKS)
@pytest.mark.parametrize("basis", [TimeBasis.hat(16, 5), TimeBasis.constant(16),
                                   TimeBasis.from_matrix(np.random.default_rng(7).uniform(size=(16, 3)))])
def test_basis_block_equals_identity_block_on_B_theta(Block, basis):
    """A block with basis B at θ is the identity-basis block at the step weights
    Bθ (forward Euler; for RK4 when every stage uses the step weight, i.e. for the
    piecewise constant bases) — and its θ-gradient is Bᵀ times the latter's."""
    layer = SingleLayer(Dense(3, 3))
    net = Block(layer, n_steps=16, final_time=1.5, basis=basis)
    ref = Block(layer, n_steps=16, final_time=1.5)
    rng = _rng(4)
    theta = rng.standard_normal(net.n_theta)
    Y0 = rng.standard_normal((3, 3))
    W = rng.standard_normal((3, 3))
    if Block is RK4ResNet and basis.kind == "hat":
        # stages read θ(t_j + h/2) ≠ θ(t_j): compare with the dense B matrices instead
        G = net.JthetaTmv(W, theta, Y0)
        J = net.jacobian(theta, Y0, wrt="theta").todense()
        np.testing.assert_allclose(G, J.T @ W.reshape(-1), rtol=1e-12)
        return
    Theta = net.step_weights(theta).reshape(-1)
    np.testing.assert_allclose(net(theta, Y0), ref(Theta, Y0), rtol=1e-13)
    g_ref = ref.JthetaTmv(W, Theta, Y0).reshape(16, -1)
    np.testing.assert_allclose(net.JthetaTmv(W, theta, Y0).reshape(basis.n_basis, -1),
                               basis.matrix().T @ g_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("Block", BLOCKS)
def test_per_example_gradients_rowwise(Block):
    net = Block(SingleLayer(Dense(3, 3)), n_steps=16, final_time=1.0, basis=TimeBasis.hat(16, 4))
    rng = _rng(5)
    theta, Y, W = rng.standard_normal(net.n_theta), rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    G = net.JthetaTmv(W, theta, Y, per_example=True)
    for i in range(4):
        np.testing.assert_allclose(G[i], net.JthetaTmv(W[i:i + 1], theta, Y[i:i + 1]), rtol=1e-12, atol=1e-15)


def _norm_growth(N, K, Y0, T):
    net = AntisymmetricResNet(K.shape[0], n_steps=N, final_time=T, gamma=0.0, activation="identity",
                              bias=False, basis="constant")
    YN = net(K.reshape(-1), Y0)
    return np.linalg.norm(YN) / np.linalg.norm(Y0) - 1.0, YN


def test_antisymmetric_linear_block_conserves_norm_to_order_h():
    """y' = A y, A = ½(K − Kᵀ) antisymmetric: ‖y(t)‖ is constant; forward Euler
    multiplies ‖y‖² by 1 + h²‖Ay‖²/‖y‖² per step, so ‖Y_N‖/‖Y_0‖ − 1 = O(h) at
    fixed T (eq. 4.12 with σ = identity, γ = 0, b = 0)."""
    n, T = 4, 1.0
    rng = _rng(6)
    K = rng.standard_normal((n, n))
    Y0 = rng.standard_normal((3, n))
    A = 0.5 * (K - K.T)
    growth = []
    for N in (32, 64, 128, 256):
        g, YN = _norm_growth(N, K, Y0, T)
        growth.append(g)
        # forward Euler only adds energy: every example's norm grows
        assert np.all(np.linalg.norm(YN, axis=1) >= np.linalg.norm(Y0, axis=1))
        # and converges to the norm-preserving exact flow
        exact = Y0 @ scipy.linalg.expm(T * A).T
        assert np.linalg.norm(YN - exact) <= 2 * T * (T / N) * np.linalg.norm(A, 2) ** 2 * np.linalg.norm(Y0)
    growth = np.array(growth)
    orders = np.log2(growth[:-1] / growth[1:])
    np.testing.assert_allclose(orders, 1.0, atol=0.05)
    assert growth[-1] < 0.05


def test_antisymmetric_layer_matrix():
    net = AntisymmetricResNet(3, n_steps=1, final_time=1.0, gamma=0.2, activation="identity", bias=False)
    K = _rng(7).standard_normal((3, 3))
    Y0 = np.eye(3)
    # one step: Y1 = Y0 + h Y0 Aᵀ with A = ½(K − Kᵀ − γI)
    A = 0.5 * (K - K.T - 0.2 * np.eye(3))
    np.testing.assert_allclose(net(K.reshape(-1), Y0), Y0 + Y0 @ A.T, rtol=1e-14)


# ------------------------------------------------------------------------ RK4
def test_rk4_linear_ode_matches_expm_fourth_order():
    n, T = 4, 1.5
    rng = _rng(8)
    K = rng.standard_normal((n, n)) / np.sqrt(n)
    Y0 = rng.standard_normal((3, n))
    exact = Y0 @ scipy.linalg.expm(T * K).T
    errs = []
    for N in (4, 8, 16, 32):
        net = RK4ResNet(_linear(n), n_steps=N, final_time=T, basis="constant")
        errs.append(np.linalg.norm(net(K.reshape(-1), Y0) - exact) / np.linalg.norm(exact))
    errs = np.array(errs)
    orders = np.log2(errs[:-1] / errs[1:])
    np.testing.assert_allclose(orders, 4.0, atol=0.25)
    assert errs[-1] < 1e-6


def _time_dependent_reference(K0, K1, K2, Y0, T):
    """y' = K(t) y with K(t) piecewise linear through K0, K1, K2 at t = 0, T/2, T."""

    def K_of(t):
        s = 2 * t / T
        return (1 - s) * K0 + s * K1 if s <= 1 else (2 - s) * K1 + (s - 1) * K2

    def rhs(t, y):
        return (K_of(t) @ y.reshape(-1, K0.shape[0]).T).T.reshape(-1)

    # the kink of K(t) at T/2 is a step boundary of every grid below; integrate each piece separately
    y = Y0.reshape(-1)
    for a, b in ((0.0, T / 2), (T / 2, T)):
        y = scipy.integrate.solve_ivp(rhs, (a, b), y, method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]
    return y.reshape(Y0.shape)


@pytest.mark.parametrize("Block, order", [(RK4ResNet, 4.0), (ResNet, 1.0)])
def test_time_dependent_weights_convergence_order(Block, order):
    """Hat-basis weights, θ(t) linear on [0, T/2] and [T/2, T]: RK4 evaluates θ at the
    stage times t_j + h/2, t_j + h and keeps fourth order (piecewise constant stage
    weights would drop it to first order); forward Euler is first order."""
    n, T = 3, 1.0
    rng = _rng(9)
    Ks = [rng.standard_normal((n, n)) / np.sqrt(n) for _ in range(3)]
    Y0 = rng.standard_normal((2, n))
    ref = _time_dependent_reference(*Ks, Y0, T)
    theta = np.concatenate([K.reshape(-1) for K in Ks])
    errs = []
    for N in (8, 16, 32, 64):
        net = Block(_linear(n), n_steps=N, final_time=T, basis=TimeBasis.hat(N, 3))
        errs.append(np.linalg.norm(net(theta, Y0) - ref) / np.linalg.norm(ref))
    errs = np.array(errs)
    orders = np.log2(errs[:-1] / errs[1:])
    np.testing.assert_allclose(orders, order, atol=0.15 if order == 1 else 0.3)


def test_rk4_per_step_weights_use_step_weight_for_all_stages():
    """Identity basis: step j is the RK4 step of y' = K_j y, i.e. close to expm(h K_j)."""
    n, N, T = 3, 4, 0.2
    rng = _rng(10)
    theta = rng.standard_normal(N * n * n)
    Y0 = rng.standard_normal((2, n))
    expected = Y0.copy()
    h = T / N
    for K in theta.reshape(N, n, n):
        M = h * K
        R = np.eye(n) + M + M @ M / 2 + M @ M @ M / 6 + M @ M @ M @ M / 24  # RK4 stability polynomial
        expected = expected @ R.T
    net = RK4ResNet(_linear(n), n_steps=N, final_time=T)
    np.testing.assert_allclose(net(theta, Y0), expected, rtol=1e-13)


# -------------------------------------------------------------------- networks
def test_meganet_block_thetas_are_views_and_forward_composes():
    blocks = [ResNet(SingleLayer(Dense(3, 3)), n_steps=16, final_time=1.0),
              SingleLayer(Dense(3, 4)),
              RK4ResNet(SingleLayer(Dense(4, 4)), n_steps=16, final_time=1.0, basis="constant")]
    net = Meganet(blocks)
    assert net.n_theta == sum(b.n_theta for b in blocks)
    assert net.shape_in == (3,) and net.shape_out == (4,)
    rng = _rng(11)
    theta = rng.standard_normal(net.n_theta)
    Y = rng.standard_normal((2, 3))
    parts = net.block_thetas(theta)
    assert [p.size for p in parts] == [b.n_theta for b in blocks]
    assert all(np.shares_memory(p, theta) for p in parts)
    Z = Y
    for b, p in zip(blocks, parts):
        Z = b(p, Z)
    np.testing.assert_array_equal(net(theta, Y), Z)
    with pytest.raises(ValueError, match="theta must have length"):
        net.block_thetas(theta[:-1])
    assert "RK4ResNet" in repr(net) and repr(net).startswith("Meganet(")


def test_sequential_composes_and_repr():
    layers = [SingleLayer(Dense(3, 5)), SingleLayer(Dense(5, 2), activation="identity")]
    net = Sequential(layers)
    rng = _rng(12)
    theta = rng.standard_normal(net.n_theta)
    Y = rng.standard_normal((4, 3))
    t0, t1 = net.split(theta)
    np.testing.assert_array_equal(net(theta, Y), layers[1](t1, layers[0](t0, Y)))
    assert repr(net).count("SingleLayer") == 2


def test_networks_reject_shape_mismatch():
    with pytest.raises(ValueError, match=r"has shape_out \(3,\) but elements\[1\].*expects shape_in \(4,\)"):
        Meganet([ResNet(SingleLayer(Dense(3, 3)), n_steps=2, final_time=1.0), SingleLayer(Dense(4, 4))])
    with pytest.raises(ValueError, match="shape_out"):
        Sequential([SingleLayer(Dense(3, 5)), SingleLayer(Dense(4, 2))])


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("Block", BLOCKS)
def test_block_rejects_shape_changing_layer(Block):
    with pytest.raises(ValueError, match=r"must keep the feature shape.*shape_in \(3,\) != shape_out \(4,\)"):
        Block(SingleLayer(Dense(3, 4)), n_steps=16, final_time=1.0)
    with pytest.raises(TypeError, match="layer must be an Element, got function"):
        Block(lambda y: y, n_steps=4, final_time=1.0)


@pytest.mark.parametrize("Block", BLOCKS)
def test_block_rejects_bad_time_grid(Block):
    layer = SingleLayer(Dense(3, 3))
    with pytest.raises(ValueError, match="final_time must be positive, got 0"):
        Block(layer, n_steps=4, final_time=0)
    with pytest.raises(ValueError, match=r"final_time must be positive, got -1.0"):
        Block(layer, n_steps=4, final_time=-1.0)
    with pytest.raises(TypeError, match="final_time must be a finite real number, got nan"):
        Block(layer, n_steps=4, final_time=float("nan"))
    with pytest.raises(ValueError, match="n_steps must be >= 1, got 0"):
        Block(layer, n_steps=0, final_time=1.0)
    with pytest.raises(TypeError, match="n_steps must be an integer, got 2.5"):
        Block(layer, n_steps=2.5, final_time=1.0)
    with pytest.raises(ValueError, match="step size h = final_time / n_steps .* underflows"):
        Block(layer, n_steps=4, final_time=5e-324)
    with pytest.raises(TypeError, match="unexpected keyword argument 'h'"):
        Block(layer, n_steps=4, final_time=1.0, h=0.1)


@pytest.mark.parametrize("Block", BLOCKS)
def test_block_rejects_basis_of_wrong_shape(Block):
    layer = SingleLayer(Dense(3, 3))
    with pytest.raises(ValueError, match=r"basis must have n_steps = 16 rows \(one per time step\).*with 8 rows"):
        Block(layer, n_steps=16, final_time=1.0, basis=TimeBasis.hat(8, 3))
    with pytest.raises(ValueError, match="basis must have n_steps = 16 rows"):
        Block(layer, n_steps=16, final_time=1.0, basis=np.ones((8, 2)))
    with pytest.raises(ValueError, match="basis: matrix must be a 2-D array"):
        Block(layer, n_steps=16, final_time=1.0, basis=np.ones(16))
    with pytest.raises(ValueError, match="for hat functions use TimeBasis.hat"):
        Block(layer, n_steps=16, final_time=1.0, basis="hat")
    with pytest.raises(TypeError, match="basis must be None, 'identity', 'constant', a TimeBasis or a 2-D array, got 3"):
        Block(layer, n_steps=16, final_time=1.0, basis=3)


def test_antisymmetric_resnet_bad_input():
    with pytest.raises(ValueError, match="gamma must be non-negative, got -0.1"):
        AntisymmetricResNet(3, n_steps=4, final_time=1.0, gamma=-0.1)
    with pytest.raises(ValueError, match="n_features must be >= 1, got 0"):
        AntisymmetricResNet(0, n_steps=4, final_time=1.0)
    with pytest.raises(ValueError, match="activation must be one of"):
        AntisymmetricResNet(3, n_steps=4, final_time=1.0, activation="tahn")


def test_block_without_parameters_and_backend_move():
    net = ResNet(Pointwise("tanh", 3), n_steps=16, final_time=1.0)
    assert net.n_theta == 0
    Y = _rng(13).standard_normal((2, 3))
    expected = Y.copy()
    for _ in range(16):
        expected = expected + np.tanh(expected) / 16
    np.testing.assert_allclose(net(None, Y), expected, rtol=1e-14)
    moved = RK4ResNet(SingleLayer(Dense(3, 3)), n_steps=4, final_time=1.0, basis=TimeBasis.hat(4, 3)).to(np)
    theta = moved.init_theta(rng=0)
    assert moved(theta, Y).shape == Y.shape


def test_hat_2n_plus_1_is_meganet_rk4_parameterization():
    """hat(N, 2N + 1) has a node at every RK4 stage time (Meganet.m ResNNrk4.m):
    stage weights are coefficient vectors 2j, 2j + 1, 2j + 2 unchanged (views)."""
    basis = TimeBasis.hat(16, 33)
    for c, shift in ((0.0, 0), (0.5, 1), (1.0, 2)):
        assert basis.rows(c) == tuple(((2 * j + shift,), (1.0,)) for j in range(16))
