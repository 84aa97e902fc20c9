"""Multilevel in depth (weights N ↔ 2N steps) and multiscale in space
(Galerkin coarsening of convolution stencils).

Known answers: the prolongation equals numpy.interp; the projection
restriction equals a least-squares solve; R P = I; a block prolongated from N
to 2N steps changes its output by O(h); the Galerkin relation
``R A_h(K_h) P y = A_H(K_H) y`` holds exactly with meganet's Conv2d on both
grids (periodic, and zero boundary for the constant prolongation).
"""

from __future__ import annotations

import numpy as np
import pytest

from meganet.core.element import Element
from meganet.core.layout import Layout
from meganet.integrators import AntisymmetricResNet, ResNet, RK4ResNet, TimeBasis
from meganet.integrators.leapfrog import Leapfrog
from meganet.integrators.verlet import HamiltonianVerlet
from meganet.layers import SingleLayer, SymmetricLayer
from meganet.multilevel import (galerkin_matrix, prolongate_block, prolongate_conv_theta, prolongate_image,
                                prolongate_network, prolongate_stencil, prolongate_weights, prolongation_matrix,
                                restrict_block, restrict_conv_theta, restrict_image, restrict_network,
                                restrict_stencil, restrict_weights, restriction_matrix)
from meganet.networks import Meganet
from meganet.transforms import Dense
from meganet.transforms.conv2d import Conv2d


# ====================================================================== time
def test_prolongation_is_numpy_interp_with_constant_extension():
    rng = np.random.default_rng(0)
    N, H = 6, 0.5
    W = rng.standard_normal((N, 3))
    t, tf = H * np.arange(N), H / 2 * np.arange(2 * N)
    expected = np.stack([np.interp(tf, t, W[:, c]) for c in range(3)], axis=1)
    np.testing.assert_allclose(prolongate_weights(W), expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(prolongation_matrix(N) @ W, expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(prolongate_weights(W[:1]), np.repeat(W[:1], 2, axis=0))  # N = 1


@pytest.mark.parametrize("method", ["injection", "projection"])
def test_restriction_is_left_inverse(method):
    rng = np.random.default_rng(1)
    N = 5
    R, P = restriction_matrix(2 * N, method=method), prolongation_matrix(N)
    np.testing.assert_allclose(R @ P, np.eye(N), atol=1e-14)
    W = rng.standard_normal((N, 2, 3)).astype(np.float32)
    back = restrict_weights(prolongate_weights(W), method=method)
    assert back.dtype == np.float32 and back.shape == W.shape
    np.testing.assert_allclose(back, W, rtol=1e-6, atol=1e-6)
    Wf = rng.standard_normal((2 * N, 4))
    if method == "projection":  # least squares: argmin_c ‖P c − Wf‖
        np.testing.assert_allclose(restrict_weights(Wf, method=method), np.linalg.lstsq(P, Wf, rcond=None)[0],
                                   rtol=1e-12)
    else:
        np.testing.assert_array_equal(restrict_weights(Wf), Wf[0::2])


def test_weight_transfer_bad_input():
    with pytest.raises(ValueError, match="n_steps_fine must be even to halve the number of steps, got 5"):
        restriction_matrix(5)
    with pytest.raises(ValueError, match="method must be one of"):
        restrict_weights(np.zeros((4, 2)), method="average")
    with pytest.raises(ValueError, match=r"W.shape\[0\] must be >= 2, got 1"):
        restrict_weights(np.zeros((1, 2)))


def _blocks():
    dense = lambda n: SingleLayer(Dense(n, n))  # noqa: E731
    return [
        ResNet(dense(3), n_steps=4, final_time=1.0),
        RK4ResNet(dense(3), n_steps=4, final_time=2.0),
        AntisymmetricResNet(3, n_steps=4, final_time=1.0, gamma=0.1),
        HamiltonianVerlet(2, 3, n_steps=4, final_time=1.0),
        HamiltonianVerlet(3, 2, n_steps=4, final_time=1.0, bias="vector", reversible=True),
        Leapfrog(3, n_steps=4, final_time=1.5, bias="scalar"),
    ]


@pytest.mark.parametrize("block", _blocks(), ids=lambda b: type(b).__name__)
@pytest.mark.parametrize("method", ["injection", "projection"])
def test_prolongate_then_restrict_is_identity(block, method):
    theta = block.init_theta(rng=0, dtype=np.float32)
    fine, th_f = prolongate_block(block, theta)
    assert type(fine) is type(block) and fine.n_steps == 2 * block.n_steps
    assert fine.final_time == block.final_time and fine.h == pytest.approx(block.h / 2)
    assert th_f.dtype == np.float32 and th_f.shape == (fine.n_theta,)
    # identity basis: row 2j of the fine coefficients is row j of the coarse ones
    np.testing.assert_array_equal(fine.coefficients(th_f)[0::2], block.coefficients(theta))
    coarse, th_c = restrict_block(fine, th_f, method=method)
    assert type(coarse) is type(block) and coarse.n_steps == block.n_steps and coarse.basis == block.basis
    assert repr(coarse) == repr(block)
    np.testing.assert_allclose(th_c, theta, rtol=1e-6, atol=1e-7)
    if method == "injection":
        np.testing.assert_array_equal(th_c, theta)
    Y = np.random.default_rng(1).standard_normal((2, *block.shape_in)).astype(np.float32)
    assert fine(th_f, Y).dtype == np.float32


def _smooth_theta(block, rng):
    """θ(t_j) = a + sin(2 t_j) b + cos(t_j) c at the block's step times."""
    a, b, c = 0.5 * rng.standard_normal((3, block.n_theta_layer))
    t = block.h * np.arange(block.n_steps)[:, None]
    return (a + np.sin(2 * t) * b + np.cos(t) * c).reshape(-1)


@pytest.mark.parametrize("cls", [ResNet, RK4ResNet])
def test_prolongated_block_output_differs_by_O_h(cls):
    Y = np.random.default_rng(2).standard_normal((4, 3))
    errors = []
    for N in (16, 32, 64):
        block = cls(SingleLayer(Dense(3, 3)), n_steps=N, final_time=2.0)
        theta = _smooth_theta(block, np.random.default_rng(3))  # same a, b, c at every level
        fine, th_f = prolongate_block(block, theta)
        errors.append(np.linalg.norm(fine(th_f, Y) - block(theta, Y)) / np.linalg.norm(block(theta, Y)))
        # the prolongated weights sample the smooth θ(t) at the fine times up to O(H²), except the
        # last fine step, which is extended constantly (O(H))
        exact = _smooth_theta(fine, np.random.default_rng(3)).reshape(2 * N, -1)
        err_w = np.abs(fine.coefficients(th_f) - exact)
        assert err_w[:-1].max() < 2.0 * block.h ** 2
    assert errors[0] < 0.2
    rates = [errors[i] / errors[i + 1] for i in range(2)]
    assert all(1.6 < r < 2.5 for r in rates), rates  # first order in h


@pytest.mark.parametrize("basis", ["constant", TimeBasis.hat(8, 3)], ids=["constant", "hat"])
def test_prolongate_constant_and_hat_bases_reuse_theta(basis):
    block = ResNet(SingleLayer(Dense(3, 3)), n_steps=8, final_time=1.0, basis=basis)
    theta = block.init_theta(rng=4)
    fine, th_f = prolongate_block(block, theta)
    np.testing.assert_array_equal(th_f, theta)
    assert not np.shares_memory(th_f, theta)
    assert fine.basis.kind == block.basis.kind and fine.basis.n_steps == 16 and fine.n_theta == block.n_theta
    # same weight function θ(t): the weights at the coarse step times coincide
    np.testing.assert_allclose(fine.step_weights(th_f)[0::2], block.step_weights(theta), rtol=1e-14)
    back, th_b = restrict_block(fine, th_f)
    assert back.basis == block.basis
    np.testing.assert_array_equal(th_b, theta)


def test_prolongate_block_bad_input():
    user = ResNet(SingleLayer(Dense(2, 2)), n_steps=4, final_time=1.0,
                  basis=TimeBasis.from_matrix(np.ones((4, 2))))
    with pytest.raises(ValueError, match="user basis matrix"):
        prolongate_block(user, np.zeros(user.n_theta))
    with pytest.raises(TypeError, match="block must be a time-stepping block.*got SingleLayer"):
        prolongate_block(SingleLayer(Dense(2, 2)), np.zeros(6))
    block = ResNet(SingleLayer(Dense(2, 2)), n_steps=3, final_time=1.0)
    with pytest.raises(ValueError, match="block.n_steps must be even to halve the number of steps, got 3"):
        restrict_block(block, np.zeros(block.n_theta))
    with pytest.raises(ValueError, match=r"theta must have shape \(18,\) for ResNet, got \(17,\)"):
        prolongate_block(block, np.zeros(17))
    with pytest.raises(ValueError, match="method must be one of"):
        restrict_block(block, np.zeros(block.n_theta), method="full")


def test_prolongate_network_of_blocks():
    rng = np.random.default_rng(5)
    net = Meganet([ResNet(SingleLayer(Dense(3, 3)), n_steps=4, final_time=1.0),
                   SingleLayer(Dense(3, 2)),
                   Leapfrog(2, n_steps=2, final_time=1.0, basis="constant")], names=["res", "conn", "lf"])
    theta = rng.standard_normal(net.n_theta)
    fine, th_f = prolongate_network(net, theta)
    assert isinstance(fine, Meganet) and fine.layout.names == ("res", "conn", "lf")
    assert [b.n_steps for b in (fine.blocks[0], fine.blocks[2])] == [8, 4]
    parts, fparts = net.split(theta), fine.split(th_f)
    np.testing.assert_array_equal(fparts.conn, parts.conn)
    np.testing.assert_array_equal(fparts.lf, parts.lf)
    np.testing.assert_array_equal(fparts.res, prolongate_weights(parts.res.reshape(4, -1)).reshape(-1))
    back, th_b = restrict_network(fine, th_f)
    np.testing.assert_array_equal(th_b, theta)
    assert [getattr(b, "n_steps", None) for b in back.blocks] == [4, None, 2]
    Y = rng.standard_normal((3, 3))
    assert np.linalg.norm(fine(th_f, Y) - net(theta, Y)) < 0.5 * np.linalg.norm(net(theta, Y))


# ===================================================================== space
def test_galerkin_matrix_by_hand():
    np.testing.assert_array_equal(galerkin_matrix(3), [[0.5, 0, 0], [0.5, 1, 0.5], [0, 0, 0.5]])
    np.testing.assert_array_equal(galerkin_matrix(3, prolongation="bilinear"),
                                  [[0.5, 0.125, 0], [0.5, 0.75, 0.5], [0, 0.125, 0.5]])
    np.testing.assert_array_equal(galerkin_matrix(1), [[1.0]])
    M5 = galerkin_matrix(5)
    assert np.all(M5[[0, 4]] == 0) and np.allclose(M5.sum(axis=0), 1)  # 5×5 → 3×3, constants kept
    np.testing.assert_allclose(np.linalg.inv(galerkin_matrix(3)), [[2, 0, 0], [-1, 1, -1], [0, 0, 2]])
    # 1-D stencils (k_{-1}, k_0, k_1) → (k_{-1}/2, k_{-1}/2 + k_0 + k_1/2, k_1/2): the centred difference
    # of step h becomes the centred difference of step 2h
    np.testing.assert_allclose(galerkin_matrix(3) @ np.array([-1.0, 0, 1]) / 2, np.array([-1.0, 0, 1]) / 4)
    with pytest.raises(ValueError, match="kernel_size must be odd, got 4"):
        galerkin_matrix(4)
    with pytest.raises(ValueError, match="prolongation='bilinear' needs kernel_size >= 3"):
        galerkin_matrix(1, prolongation="bilinear")


def test_restrict_and_prolongate_image():
    rng = np.random.default_rng(6)
    Y = rng.standard_normal((2, 3, 4, 6))
    Yc = restrict_image(Y)
    assert Yc.shape == (2, 3, 2, 3)
    assert Yc[1, 2, 1, 2] == pytest.approx(Y[1, 2, 2:4, 4:6].mean())
    c = rng.standard_normal((2, 3, 2, 3))
    P = prolongate_image(c)
    assert P.shape == (2, 3, 4, 6) and P[0, 1, 3, 5] == c[0, 1, 1, 2]
    # P = 4 Rᵀ: <R y, c> = ¼ <y, P c>, and R P = I
    assert np.vdot(Yc, c) == pytest.approx(0.25 * np.vdot(Y, P))
    np.testing.assert_allclose(restrict_image(P), c, rtol=1e-15)
    # bilinear, 1-D rows by hand (periodic and zero)
    row = np.array([1.0, 2.0, 4.0]).reshape(1, 1, 1, 3)
    col = prolongate_image(np.ones((1, 1, 1, 1)) * row, prolongation="bilinear", boundary="periodic")[0, 0, 0]
    np.testing.assert_allclose(col, [0.75 + 1.0, 0.75 + 0.5, 1.5 + 0.25, 1.5 + 1.0, 3.0 + 0.5, 3.0 + 0.25])
    col0 = prolongate_image(row, prolongation="bilinear", boundary="zero")[0, 0, 0]
    # zero outside; the single image row also loses ¼ to its zero neighbours in the vertical direction
    np.testing.assert_allclose(col0, 0.75 * np.array([0.75, 0.75 + 0.5, 1.5 + 0.25, 1.5 + 1.0, 3.0 + 0.5, 3.0]))
    with pytest.raises(ValueError, match=r"image height and width must be even to restrict, got \(3, 4\)"):
        restrict_image(np.zeros((1, 1, 3, 4)))


# (bilinear has no 1×1 coarse stencil — R P is a 3-point smoother — see test_galerkin_matrix_by_hand)
@pytest.mark.parametrize("boundary", ["periodic", "zero"])
@pytest.mark.parametrize("prolongation, kernel_size",
                         [("constant", 1), ("constant", 3), ("constant", 5), ("bilinear", 3), ("bilinear", 5)])
def test_galerkin_relation_with_conv2d(boundary, prolongation, kernel_size):
    rng = np.random.default_rng(7)
    H, W, cin, cout = 12, 16, 2, 3
    fine = Conv2d(cin, cout, (H, W), kernel_size=kernel_size, boundary=boundary)
    coarse = Conv2d(cin, cout, (H // 2, W // 2), kernel_size=kernel_size, boundary=boundary)
    theta = rng.standard_normal(fine.n_theta)
    yc = rng.standard_normal((2, cin, H // 2, W // 2))
    lhs = restrict_image(fine(theta, prolongate_image(yc, prolongation=prolongation, boundary=boundary)))
    theta_c = restrict_conv_theta(fine, theta, prolongation=prolongation)
    np.testing.assert_allclose(theta_c.reshape(fine.kernel_shape),
                               restrict_stencil(fine.stencil(theta), prolongation=prolongation), rtol=1e-15)
    rhs = coarse(theta_c, yc)
    if boundary == "zero" and prolongation == "bilinear":
        # exact away from the boundary only; at the boundary the fine padding cuts the interpolation
        np.testing.assert_allclose(lhs[..., 1:-1, 1:-1], rhs[..., 1:-1, 1:-1], atol=1e-12)
        assert np.abs(lhs - rhs).max() > 1e-3
    else:
        np.testing.assert_allclose(lhs, rhs, atol=1e-12)


@pytest.mark.parametrize("prolongation", ["constant", "bilinear"])
def test_stencil_round_trips_and_dtype(prolongation):
    rng = np.random.default_rng(8)
    K = rng.standard_normal((3, 2, 3, 3))
    Kc = restrict_stencil(K, prolongation=prolongation)
    np.testing.assert_allclose(prolongate_stencil(Kc, prolongation=prolongation), K, atol=1e-13)
    np.testing.assert_allclose(restrict_stencil(prolongate_stencil(K, prolongation=prolongation),
                                                prolongation=prolongation), K, atol=1e-13)
    np.testing.assert_allclose(Kc.sum(axis=(-2, -1)), K.sum(axis=(-2, -1)), rtol=1e-13)  # constants kept
    K32 = K.astype(np.float32)
    assert restrict_stencil(K32, prolongation=prolongation).dtype == np.float32
    # 5×5: the coarse stencil lives in the central 3×3; prolongation is the minimum-norm preimage
    K5 = rng.standard_normal((1, 1, 5, 5))
    Kc5 = restrict_stencil(K5)
    assert np.all(Kc5[..., [0, 4], :] == 0) and np.all(Kc5[..., :, [0, 4]] == 0)
    np.testing.assert_allclose(restrict_stencil(prolongate_stencil(Kc5)), Kc5, atol=1e-13)
    with pytest.raises(ValueError, match=r"K.shape\[-1\] \(stencil size\) must be odd, got 4"):
        restrict_stencil(np.zeros((3, 4)))


def test_conv_theta_walks_blocks_and_layers():
    rng = np.random.default_rng(9)
    conv_res = ResNet(SingleLayer(Conv2d(2, 2, (8, 8), boundary="periodic")), n_steps=3, final_time=1.0)
    net = Meganet([conv_res, SingleLayer(Conv2d(2, 3, (8, 8), kernel_size=1))])
    theta = rng.standard_normal(net.n_theta)
    th_c = restrict_conv_theta(net, theta)
    p, pc = net.split(theta), net.split(th_c)
    C, Cc = conv_res.coefficients(p[0]), conv_res.coefficients(pc[0])
    for k in range(3):
        lp, lpc = conv_res.layer.split(C[k]), conv_res.layer.split(Cc[k])
        np.testing.assert_allclose(lpc.K.reshape(2, 2, 3, 3), restrict_stencil(lp.K.reshape(2, 2, 3, 3)))
        np.testing.assert_array_equal(lpc.b, lp.b)  # biases copied
    np.testing.assert_array_equal(pc[1], p[1])  # 1×1 convolution and bias unchanged
    np.testing.assert_allclose(prolongate_conv_theta(net, th_c), theta, atol=1e-12)
    assert not np.shares_memory(th_c, theta)
    # symmetric layer −Kᵀσ(KY + b) (parabolic CNN): θ_K enters twice but is stored once, as part 'K'
    sym = SymmetricLayer(Conv2d(2, 3, (8, 8)))
    th_s = sym.init_theta(rng=11)
    ps, psc = sym.split(th_s), sym.split(restrict_conv_theta(sym, th_s))
    np.testing.assert_allclose(psc.K.reshape(3, 2, 3, 3), restrict_stencil(ps.K.reshape(3, 2, 3, 3)), rtol=1e-15)
    np.testing.assert_array_equal(psc.b, ps.b)

    class Hidden(Element):  # holds a convolution in an unknown layout
        def __init__(self):
            self.conv = Conv2d(1, 1, (4, 4))
            self.shape_in = self.shape_out = (1, 4, 4)
            self.layout = Layout([("w", 9)])

    with pytest.raises(TypeError, match="Hidden holds a convolution in attribute 'conv'"):
        restrict_conv_theta(Hidden(), np.zeros(9))
    with pytest.raises(ValueError, match=r"theta must have shape \(9,\)"):
        restrict_conv_theta(Conv2d(1, 1, (4, 4)), np.zeros(8))


def test_transfers_on_backend(xp):
    """numpy always; cupy when a GPU is present (conftest ``xp`` fixture): same numbers as numpy."""
    from meganet.backend import to_backend, to_numpy

    rng = np.random.default_rng(10)
    W = rng.standard_normal((6, 4))
    Wx = to_backend(W, xp)
    np.testing.assert_allclose(to_numpy(prolongate_weights(Wx)), prolongate_weights(W), rtol=1e-15)
    np.testing.assert_allclose(to_numpy(restrict_weights(Wx, method="projection")),
                               restrict_weights(W, method="projection"), rtol=1e-12)
    block = ResNet(SingleLayer(Dense(2, 2)), n_steps=4, final_time=1.0)
    theta = block.init_theta(rng=10)
    _, th_f = prolongate_block(block, to_backend(theta, xp))
    np.testing.assert_allclose(to_numpy(th_f), prolongate_block(block, theta)[1], rtol=1e-15)
    K = rng.standard_normal((2, 2, 3, 3))
    np.testing.assert_allclose(to_numpy(restrict_stencil(to_backend(K, xp), prolongation="bilinear")),
                               restrict_stencil(K, prolongation="bilinear"), rtol=1e-13)
    Y = rng.standard_normal((1, 2, 4, 6))
    for bc in ("periodic", "zero"):
        np.testing.assert_allclose(
            to_numpy(prolongate_image(to_backend(Y, xp), prolongation="bilinear", boundary=bc)),
            prolongate_image(Y, prolongation="bilinear", boundary=bc), rtol=1e-15)
    np.testing.assert_allclose(to_numpy(restrict_image(to_backend(Y, xp))), restrict_image(Y), rtol=1e-15)


# ------------------------------------------------- prolongation keeps the network (a discretization of one ODE)
def _smooth_network(n_steps, final_time=2.0, width=4, seed=0):
    """Opening dense tanh layer + ResNet of a dense tanh layer with bias, θ(t) smooth in time."""
    rng = np.random.default_rng(seed)
    opening = SingleLayer(Dense(2, width), activation="tanh")
    block = ResNet(SingleLayer(Dense(width, width), activation="tanh"), n_steps=n_steps, final_time=final_time)
    net = Meganet([opening, block], names=["opening", "block"])
    A, B = rng.standard_normal((2, block.layer.n_theta))
    t = np.arange(n_steps) * block.h
    steps = A + B * np.sin(2 * np.pi * t / final_time)[:, None]  # θ(t_j), one row per step
    theta = np.concatenate([rng.standard_normal(opening.n_theta), steps.reshape(-1)])
    return net, theta, rng.uniform(-2, 2, (50, 2))


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_prolongated_network_output_matches_the_coarse_output_on_smooth_weights():
    net, theta, Y = _smooth_network(32)
    F = [net(theta, Y)]
    nets, thetas = [net], [theta]
    for _ in range(3):  # 32 -> 64 -> 128 -> 256 steps
        n2, t2 = prolongate_network(nets[-1], thetas[-1])
        assert n2.blocks[1].n_steps == 2 * nets[-1].blocks[1].n_steps
        assert n2.blocks[1].h == pytest.approx(nets[-1].blocks[1].h / 2)  # same T, h halved
        np.testing.assert_array_equal(n2.split(t2)[0], net.split(theta)[0])  # opening layer carried over
        nets.append(n2), thetas.append(t2), F.append(n2(t2, Y))
    diffs = [_rel(b, a) for a, b in zip(F, F[1:])]
    # the coarse and the fine network discretize the same ODE: their outputs differ by O(h) ...
    assert diffs[0] < 0.03, diffs
    # ... and the difference halves with h (forward Euler is first order; the weights are interpolated exactly
    # enough not to spoil that)
    for a, b in zip(diffs, diffs[1:]):
        assert 0.35 < b / a < 0.65, diffs
    # a wrong transfer is caught: weights reversed in time, or h not halved (2N steps over 2T)
    coarse = net.blocks[1]
    C = coarse.coefficients(net.split(theta)[1])
    rev = np.concatenate([net.split(theta)[0], prolongate_weights(C[::-1]).reshape(-1)])
    assert _rel(nets[1](rev, Y), F[0]) > 10 * diffs[0]
    long_block = ResNet(coarse.layer, n_steps=2 * coarse.n_steps, final_time=2 * coarse.final_time)
    long_net = Meganet([net.blocks[0], long_block], names=["opening", "block"])
    assert _rel(long_net(thetas[1], Y), F[0]) > 10 * diffs[0]
