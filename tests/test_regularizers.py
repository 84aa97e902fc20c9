"""Regularizers: generic derivative checks on every registered configuration,
known answers (against numpy loops, scipy.sparse and scipy.ndimage), and bad input.

Regularizers are not Elements, so they have their own small registry
(``REG_CASES`` below).  Every case runs, in float64 and float32 (and on cupy
when a GPU is present): the Taylor test of the value against ``<∇R, v>``, the
Taylor test of the gradient against the Hessian product (exact Hessians only),
the dot test of the Hessian (symmetry), and the agreement of ``hess_mv``,
``hessian_diagonal`` and the ``scipy.sparse`` ``hessian_matrix``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pytest
import scipy.ndimage
import scipy.sparse as sp

from meganet.backend import get_array_module, to_backend, to_numpy
from meganet.regularizers import (BlockRegularizer, Identity, Laplacian2D, FeatureSmoothness, Regularizer,
                                  Tikhonov, TimeDifference, TotalVariationTime)
from meganet.testing import dot_test, taylor_test_line
from tests.conftest import DTYPE_PARAMS, XP_PARAMS, get_xp


# --------------------------------------------------------------------------- registry
@dataclass
class RegCase:
    """One regularizer configuration.

    exact_hessian : False for the lagged-diffusivity (Gauss-Newton) Hessian,
        which is not the derivative of the gradient (tested against its formula instead).
    make_theta : (reg, rng) -> float64 θ (default standard normal).
    """

    name: str
    make: Callable
    exact_hessian: bool = True
    make_theta: Optional[Callable] = None
    taylor_kwargs: dict = field(default_factory=dict)

    def theta(self, reg, dtype, xp, seed=0):
        rng = np.random.default_rng(seed)
        th = self.make_theta(reg, rng) if self.make_theta is not None else rng.standard_normal(reg.n_theta)
        return to_backend(np.asarray(th, dtype=np.float64).astype(dtype), xp)


def _ref(n, seed=42):
    return np.random.default_rng(seed).standard_normal(n)


# TV: τ of the order of the squared time derivatives, so that φ_τ is not close to
# |x| (a kink at 0) at the scale of the Taylor directions; with τ ≪ x² the
# asymptotic range of the Taylor test of the value lies below float32 round-off.
REG_CASES = [
    RegCase("weight-decay-7", lambda: Tikhonov(7, alpha=0.3)),
    RegCase("weight-decay-7-ref", lambda: Tikhonov(Identity(7), alpha=2.0, theta_ref=_ref(7))),
    RegCase("time-derivative-5x3-h0.25", lambda: Tikhonov(TimeDifference(5, 3, h=0.25), alpha=0.5)),
    RegCase("time-derivative-1x4", lambda: Tikhonov(TimeDifference(1, 4))),
    RegCase("laplacian-neumann-2x4x5", lambda: Tikhonov(Laplacian2D((2, 4, 5)), alpha=0.1)),
    RegCase("laplacian-periodic-3x3-spacing", lambda: Tikhonov(Laplacian2D((3, 3), boundary="periodic", spacing=(0.5, 2.0)))),
    RegCase("laplacian-dirichlet-2x1x3x4-ref",
            lambda: Tikhonov(Laplacian2D((2, 1, 3, 4), boundary="dirichlet"), theta_ref=_ref(24))),
    RegCase("tv-time-6x3-exact", lambda: TotalVariationTime(6, 3, h=0.5, alpha=0.7, tau=1.0)),
    RegCase("tv-time-4x2-exact-ref", lambda: TotalVariationTime(4, 2, h=1.0, tau=0.5, theta_ref=_ref(8))),
    RegCase("tv-time-6x3-lagged", lambda: TotalVariationTime(6, 3, h=0.5, tau=1.0, hessian="lagged"), exact_hessian=False),
    RegCase("block-tv-wd-overlap", lambda: BlockRegularizer(
        20, [(slice(0, 12), TotalVariationTime(4, 3, h=0.5, tau=1.0)), ((8, 20), Tikhonov(12, alpha=0.1)),
             ((12, 20), Tikhonov(Laplacian2D((2, 4))))])),
    RegCase("block-gaps-lagged", lambda: BlockRegularizer(
        15, [((2, 8), TotalVariationTime(3, 2, tau=1.0, hessian="lagged")), ((10, 14), Tikhonov(4))]),
        exact_hessian=False),
]


def _params(exact_only=False):
    return [pytest.param(c, id=c.name) for c in REG_CASES if c.exact_hessian or not exact_only]


def _setup(case, dtype, xp_name, seed=0):
    xp = get_xp(xp_name)
    reg = case.make()
    if xp is not np:
        reg = reg.to(xp)
    return reg, case.theta(reg, dtype, xp, seed), xp


def _direction(theta, seed=7, rel=0.5):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(theta.shape)
    v *= rel * max(float(np.linalg.norm(to_numpy(theta))), 1.0) / np.linalg.norm(v)
    return to_backend(v.astype(theta.dtype), get_array_module(theta))


def _vdot(a, b):
    return float(np.vdot(to_numpy(a).astype(np.float64).ravel(), to_numpy(b).astype(np.float64).ravel()))


# ------------------------------------------------------------------ generic tests
@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case", _params())
def test_taylor_value_gradient(case, dtype, xp_name):
    reg, theta, xp = _setup(case, dtype, xp_name)
    val, g = reg.value_and_gradient(theta)
    v = _direction(theta)
    # the scalar value as a vector of length 1 (taylor_test_line needs a shape)
    rep = taylor_test_line(lambda h: reg.value(theta + h * v).reshape(1), val.reshape(1),
                           xp.asarray([_vdot(g, v)], dtype=dtype), name=f"{case.name} value", **case.taylor_kwargs)
    assert rep.ok, "\n" + str(rep)


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case", _params(exact_only=True))
def test_taylor_gradient_hessian(case, dtype, xp_name):
    reg, theta, xp = _setup(case, dtype, xp_name)
    v = _direction(theta, seed=8)
    rep = taylor_test_line(lambda h: reg.gradient(theta + h * v), reg.gradient(theta), reg.hess_mv(v, theta),
                           name=f"{case.name} gradient", **case.taylor_kwargs)
    assert rep.ok, "\n" + str(rep)


@pytest.mark.parametrize("xp_name", XP_PARAMS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("case", _params())
def test_hessian_symmetric_and_dtype(case, dtype, xp_name):
    reg, theta, xp = _setup(case, dtype, xp_name)
    rng = np.random.default_rng(3)
    u, w = (xp.asarray(rng.standard_normal(reg.n_theta).astype(dtype)) for _ in range(2))
    H = lambda x: reg.hess_mv(x, theta)  # noqa: E731
    rep = dot_test(H, H, u, w, name=f"{case.name} Hessian")
    assert rep.ok, str(rep)
    val, g = reg.value_and_gradient(theta)
    for out in (val, g, reg.value(theta), reg.gradient(theta), H(u), reg.hessian_diagonal(theta)):
        assert out.dtype == dtype and get_array_module(out) is xp
    assert val.shape == () and g.shape == (reg.n_theta,)
    assert float(val) == float(reg.value(theta))


@pytest.mark.parametrize("case", _params())
def test_hessian_matrix_and_diagonal(case):
    """``hessian_matrix`` (scipy.sparse) agrees with ``hess_mv`` column by column, and its
    diagonal with ``hessian_diagonal``."""
    reg, theta, _ = _setup(case, np.float64, "numpy")
    Hm = reg.hessian_matrix(theta)
    assert sp.issparse(Hm) and Hm.shape == (reg.n_theta, reg.n_theta) and Hm.dtype == np.float64
    cols = np.stack([reg.hess_mv(e, theta) for e in np.eye(reg.n_theta)], axis=1)
    np.testing.assert_allclose(Hm.toarray(), cols, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(cols).max()))
    np.testing.assert_allclose(reg.hessian_diagonal(theta), np.diag(cols), rtol=1e-12, atol=1e-14)
    # symmetric positive semidefinite (all regularizers here are convex; the lagged Hessian too)
    D = Hm.toarray()
    np.testing.assert_allclose(D, D.T, atol=1e-13 * max(1.0, np.abs(D).max()))
    assert np.linalg.eigvalsh(D).min() >= -1e-12 * max(1.0, np.abs(D).max())


@pytest.mark.parametrize("case", [p for p in _params() if p.values[0].name.endswith("-ref")])
def test_theta_ref_shift(case):
    """``R`` with ``θ_ref`` is ``R`` without it at ``θ − θ_ref``."""
    reg, theta, _ = _setup(case, np.float64, "numpy")
    ref = reg.theta_ref
    assert ref is not None
    plain = reg.to(np)
    plain.theta_ref = None
    np.testing.assert_allclose(reg.value(theta), plain.value(theta - ref), rtol=1e-14)
    np.testing.assert_allclose(reg.gradient(theta), plain.gradient(theta - ref), rtol=1e-13, atol=1e-15)
    assert abs(float(reg.value(ref)) - float(plain.value(np.zeros_like(ref)))) < 1e-15


# ------------------------------------------------------------------ known answers
def test_weight_decay_against_numpy():
    rng = np.random.default_rng(0)
    th, ref = rng.standard_normal(9), rng.standard_normal(9)
    R = Tikhonov(9, alpha=0.3, theta_ref=ref)
    np.testing.assert_allclose(R.value(th), 0.15 * np.sum((th - ref) ** 2), rtol=1e-15)
    np.testing.assert_allclose(R.gradient(th), 0.3 * (th - ref), rtol=1e-15)
    np.testing.assert_allclose(R.hessian_diagonal(th), 0.3 * np.ones(9))
    assert R.is_quadratic
    v32 = R.value(th.astype(np.float32))
    assert v32.dtype == np.float32


def test_time_derivative_against_loop_and_constant_in_time():
    rng = np.random.default_rng(1)
    N, n, h, alpha = 6, 4, 0.25, 0.7
    K = rng.standard_normal((N, n))
    R = Tikhonov(TimeDifference(N, n, h=h), alpha=alpha)
    expected = alpha / (2 * h) * sum(np.sum((K[j] - K[j - 1]) ** 2) for j in range(1, N))
    np.testing.assert_allclose(R.value(K.ravel()), expected, rtol=1e-14)
    # the gradient of Σ‖K_j − K_{j−1}‖²/(2h): (2K_j − K_{j−1} − K_{j+1})/h inside, one-sided at the ends
    G = np.zeros_like(K)
    for j in range(1, N):
        G[j] += (K[j] - K[j - 1]) / h
        G[j - 1] -= (K[j] - K[j - 1]) / h
    np.testing.assert_allclose(R.gradient(K.ravel()), alpha * G.ravel(), rtol=1e-13)
    # weights constant in time: zero penalty and gradient
    Kc = np.tile(rng.standard_normal(n), N)
    assert float(R.value(Kc)) == 0.0
    assert np.all(R.gradient(Kc) == 0.0)
    assert float(R.value(Kc.astype(np.float32))) == 0.0
    # L as a matrix: explicit loop construction
    L = TimeDifference(N, n, h=h)
    M = np.zeros((L.n_out, L.n_in))
    for j in range(N - 1):
        for i in range(n):
            M[j * n + i, (j + 1) * n + i] = 1 / np.sqrt(h)
            M[j * n + i, j * n + i] = -1 / np.sqrt(h)
    np.testing.assert_allclose(L.matrix().toarray(), M, rtol=1e-15)
    x, y = rng.standard_normal(L.n_in), rng.standard_normal(L.n_out)
    np.testing.assert_allclose(L.apply(x), M @ x, rtol=1e-14)
    np.testing.assert_allclose(L.apply_T(y), M.T @ y, rtol=1e-14)
    np.testing.assert_allclose(L.gram_diagonal(), np.diag(M.T @ M), rtol=1e-15)


@pytest.mark.parametrize("boundary,mode", [("neumann", "nearest"), ("periodic", "wrap"), ("dirichlet", "constant")])
def test_laplacian_against_scipy_ndimage(boundary, mode):
    rng = np.random.default_rng(2)
    shape = (3, 2, 5, 6)  # e.g. 3 classes × 2 channels of 5×6 images
    U = rng.standard_normal(shape)
    L = Laplacian2D(shape, boundary=boundary)
    expected = np.stack([scipy.ndimage.laplace(U[c, k], mode=mode, cval=0.0) for c in range(3) for k in range(2)])
    np.testing.assert_allclose(L.apply(U.ravel()), expected.ravel(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(L.matrix() @ U.ravel(), expected.ravel(), rtol=1e-13, atol=1e-13)
    M = L.matrix().toarray()
    np.testing.assert_allclose(M, M.T)
    np.testing.assert_allclose(L.gram_diagonal(), np.diag(M.T @ M), rtol=1e-14)
    # a constant field: in the null space for Neumann and periodic, not for Dirichlet
    c = np.full(L.n_in, 3.0)
    R = Tikhonov(L, alpha=1.0)
    if boundary == "dirichlet":
        assert float(R.value(c)) > 1.0
    else:
        assert np.all(L.apply(c) == 0.0) and float(R.value(c)) == 0.0 and np.all(R.gradient(c) == 0.0)
    # float32 stays float32
    assert L.apply(U.ravel().astype(np.float32)).dtype == np.float32


def test_laplacian_spacing():
    rng = np.random.default_rng(3)
    U = rng.standard_normal((4, 5))
    L = Laplacian2D((4, 5), spacing=(0.5, 2.0))
    d1 = scipy.ndimage.correlate1d(U, [1.0, -2.0, 1.0], axis=0, mode="nearest") / 0.25
    d2 = scipy.ndimage.correlate1d(U, [1.0, -2.0, 1.0], axis=1, mode="nearest") / 4.0
    np.testing.assert_allclose(L.apply(U.ravel()), (d1 + d2).ravel(), rtol=1e-13, atol=1e-14)
    # a quadratic u = x² in the first axis (spacing 0.5): Δu = 2 away from the boundary
    x = 0.5 * np.arange(4)[:, None] * np.ones((1, 5))
    lap = L.apply((x ** 2).ravel()).reshape(4, 5)
    np.testing.assert_allclose(lap[1:-1], 2.0, rtol=1e-13)


def test_total_variation_against_loop():
    rng = np.random.default_rng(4)
    N, n, h, alpha, tau = 5, 3, 0.5, 0.7, 1e-2
    K = rng.standard_normal((N, n))
    R = TotalVariationTime(N, n, h=h, alpha=alpha, tau=tau)
    phi = lambda x: np.sqrt(x ** 2 + tau)  # noqa: E731
    X = np.diff(K, axis=0) / h
    np.testing.assert_allclose(R.value(K.ravel()), alpha * h * np.sum(phi(X)), rtol=1e-14)
    # Hessians as dense matrices with the forward difference D (explicit)
    D = np.kron(np.diff(np.eye(N), axis=0), np.eye(n))
    x = (D @ K.ravel()) / h
    H_exact = alpha / h * D.T @ np.diag(tau / (x ** 2 + tau) ** 1.5) @ D
    H_lagged = alpha / h * D.T @ np.diag(1 / np.sqrt(x ** 2 + tau)) @ D
    np.testing.assert_allclose(R.hessian_matrix(K.ravel()).toarray(), H_exact, rtol=1e-12, atol=1e-14)
    lag = TotalVariationTime(N, n, h=h, alpha=alpha, tau=tau, hessian="lagged")
    np.testing.assert_allclose(lag.hessian_matrix(K.ravel()).toarray(), H_lagged, rtol=1e-12, atol=1e-14)
    v = rng.standard_normal(N * n)
    np.testing.assert_allclose(lag.hess_mv(v, K.ravel()), H_lagged @ v, rtol=1e-12)
    np.testing.assert_allclose(R.gradient(K.ravel()), alpha * D.T @ (x / np.sqrt(x ** 2 + tau)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lag.gradient(K.ravel()), R.gradient(K.ravel()), rtol=1e-15)
    # both PSD, and the lagged Hessian dominates the exact one
    for H in (H_exact, H_lagged, H_lagged - H_exact):
        assert np.linalg.eigvalsh(H).min() >= -1e-12 * np.abs(H).max()
    # the lagged Hessian is not the derivative of the gradient: its Taylor test fails (order 1)
    th, dv = K.ravel(), 0.5 * v
    rep = taylor_test_line(lambda t: lag.gradient(th + t * dv), lag.gradient(th), lag.hess_mv(dv, th))
    assert not rep.ok
    # constant in time: zero gradient, value α h (N−1) n √τ
    Kc = np.tile(rng.standard_normal(n), N)
    np.testing.assert_allclose(R.value(Kc), alpha * h * (N - 1) * n * np.sqrt(tau), rtol=1e-14)
    assert np.all(R.gradient(Kc) == 0.0)


def test_tv_hessian_psd_at_random_points():
    rng = np.random.default_rng(5)
    for hess in ("exact", "lagged"):
        R = TotalVariationTime(7, 2, h=0.1, tau=1e-4, hessian=hess)
        for _ in range(5):
            th = rng.standard_normal(R.n_theta) * rng.choice([1e-3, 1.0, 10.0])
            for _ in range(3):
                v = rng.standard_normal(R.n_theta)
                assert v @ R.hess_mv(v, th) >= 0.0
            assert np.all(R.hessian_diagonal(th) >= 0)


def test_block_sum_and_gaps():
    rng = np.random.default_rng(6)
    A, B = TotalVariationTime(3, 2, tau=0.1), Tikhonov(4, alpha=3.0)
    R = BlockRegularizer(12, [((1, 7), A), (slice(5, 9), B)])
    th, v = rng.standard_normal(12), rng.standard_normal(12)
    np.testing.assert_allclose(R.value(th), float(A.value(th[1:7])) + float(B.value(th[5:9])), rtol=1e-15)
    g = np.zeros(12)
    g[1:7] += A.gradient(th[1:7])
    g[5:9] += B.gradient(th[5:9])
    np.testing.assert_allclose(R.gradient(th), g, rtol=1e-15)
    assert np.all(R.gradient(th)[[0, 9, 10, 11]] == 0) and np.all(R.hessian_diagonal(th)[[0, 9, 10, 11]] == 0)
    Hv = np.zeros(12)
    Hv[1:7] += A.hess_mv(v[1:7], th[1:7])
    Hv[5:9] += B.hess_mv(v[5:9], th[5:9])
    np.testing.assert_allclose(R.hess_mv(v, th), Hv, rtol=1e-15)
    assert not R.is_quadratic and BlockRegularizer(4, [((0, 4), B)]).is_quadratic


def test_classifier_laplacian_leaves_bias_out():
    """The typical use: Laplacian smoothness on the W part of an image classifier, μ free."""
    from meganet.losses import SoftmaxCrossEntropy

    loss = SoftmaxCrossEntropy((1, 4, 4), 3)
    sl = loss.layout.slice("W")
    R = BlockRegularizer(loss.n_w, [(sl, Tikhonov(Laplacian2D((3, 1, 4, 4)), alpha=0.5))])
    w = np.random.default_rng(7).standard_normal(loss.n_w)
    g = R.gradient(w)
    assert np.all(g[sl.stop:] == 0)
    w2 = w.copy()
    w2[:sl.stop] += 5.0  # constant shift of every class image: Neumann null space
    np.testing.assert_allclose(R.value(w2), R.value(w), rtol=1e-12)


def test_to_numpy_is_a_copy():
    R = Tikhonov(3, theta_ref=np.ones(3))
    R2 = R.to("numpy")
    assert R2 is not R and isinstance(R2, Regularizer)
    np.testing.assert_array_equal(R2.theta_ref, R.theta_ref)


# ------------------------------------------------------------------ output smoothness
def test_output_smoothness_known_answers_and_derivatives():
    rng = np.random.default_rng(8)
    n, shape = 3, (2, 4, 5)
    S = FeatureSmoothness(shape, alpha=0.6, spacing=(1.0, 0.5))
    Y = rng.standard_normal((n, *shape))
    d1 = np.diff(Y, axis=2) / 1.0
    d2 = np.diff(Y, axis=3) / 0.5
    np.testing.assert_allclose(S.value(Y), 0.6 / (2 * n) * (np.sum(d1 ** 2) + np.sum(d2 ** 2)), rtol=1e-14)
    # constant images: zero value and gradient
    Yc = np.ones((n, *shape)) * rng.standard_normal((n, 2, 1, 1))
    assert float(S.value(Yc)) == 0.0 and np.all(S.gradient(Yc) == 0.0)
    for dt in (np.float64, np.float32):
        Yd = Y.astype(dt)
        val, g = S.value_and_gradient(Yd)
        assert val.dtype == dt and g.dtype == dt
        v = (0.5 * rng.standard_normal(Y.shape)).astype(dt)
        rep = taylor_test_line(lambda h: S.value(Yd + h * v).reshape(1), val.reshape(1),
                               np.asarray([_vdot(g, v)], dtype=dt))
        assert rep.ok, str(rep)
        rep = taylor_test_line(lambda h: S.gradient(Yd + h * v), g, S.hess_mv(v, Yd))
        assert rep.ok, str(rep)
        u = rng.standard_normal(Y.shape).astype(dt)
        rep = dot_test(lambda x: S.hess_mv(x, Yd), lambda x: S.hess_mv(x, Yd), u, v)
        assert rep.ok, str(rep)
    # Hessian diagonal against e_iᵀ H e_i
    small = FeatureSmoothness((3, 4), alpha=2.0, spacing=0.5)
    Ys = np.zeros((2, 3, 4))
    diag = np.array([small.hess_mv(e.reshape(Ys.shape), Ys).ravel() @ e for e in np.eye(Ys.size)])
    np.testing.assert_allclose(small.hessian_diagonal(Ys).ravel(), diag, rtol=1e-14)
    # gradient = −(α/n) Δ_h Y with the Neumann Laplacian
    L = Laplacian2D((n, 2, 4, 5), boundary="neumann", spacing=(1.0, 0.5))
    np.testing.assert_allclose(S.gradient(Y).ravel(), -0.6 / n * L.apply(Y.ravel()), rtol=1e-13)


# ------------------------------------------------------------------ bad input
def test_bad_input_messages():
    with pytest.raises(ValueError, match="alpha must be non-negative, got -1.0"):
        Tikhonov(3, alpha=-1.0)
    with pytest.raises(TypeError, match="alpha must be a finite real number"):
        Tikhonov(3, alpha="big")
    with pytest.raises(TypeError, match="L must be an int .* or a meganet.regularizers Operator"):
        Tikhonov(np.eye(3))
    with pytest.raises(ValueError, match=r"theta_ref must have shape \(3,\), got \(4,\)"):
        Tikhonov(3, theta_ref=np.zeros(4))
    with pytest.raises(ValueError, match=r"theta_ref contains 1 non-finite"):
        Tikhonov(2, theta_ref=np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="n_steps must be >= 1, got 0"):
        TimeDifference(0, 3)
    with pytest.raises(ValueError, match="h must be positive, got -0.1"):
        TotalVariationTime(3, 2, h=-0.1)
    with pytest.raises(ValueError, match="tau must be positive, got 0"):
        TotalVariationTime(3, 2, tau=0)
    with pytest.raises(ValueError, match=r"hessian must be one of \{'exact', 'lagged'\}, got 'gauss-newton'"):
        TotalVariationTime(3, 2, hessian="gauss-newton")
    with pytest.raises(ValueError, match=r"boundary must be one of \{'neumann', 'periodic', 'dirichlet'\}, got 'zeros'"):
        Laplacian2D((4, 4), boundary="zeros")
    with pytest.raises(ValueError, match="shape must have at least two axes"):
        Laplacian2D(16)
    with pytest.raises(ValueError, match="spacing must be a float or a pair"):
        Laplacian2D((4, 4), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(TypeError, match="unexpected keyword argument 'boundry'"):
        Laplacian2D((4, 4), boundry="periodic")
    with pytest.raises(ValueError, match="shape_in must be image-shaped"):
        FeatureSmoothness(5)
    R = TotalVariationTime(3, 2)
    with pytest.raises(ValueError, match=r"theta must have shape \(6,\), got \(5,\)"):
        R.value(np.zeros(5))
    with pytest.raises(TypeError, match="theta must have dtype float64 or float32, got int64"):
        R.gradient(np.zeros(6, dtype=np.int64))
    with pytest.raises(ValueError, match="theta contains 1 non-finite"):
        R.value(np.array([0, 1, 2, 3, 4, np.inf]))
    with pytest.raises(TypeError, match="v has dtype float32 but the other arguments are float64"):
        R.hess_mv(np.zeros(6, dtype=np.float32), np.zeros(6))
    with pytest.raises(TypeError, match="theta must be a numpy.ndarray or cupy.ndarray, got list"):
        R.value([0.0] * 6)
    S = FeatureSmoothness((2, 3))
    with pytest.raises(ValueError, match=r"Y must have shape \(n, 2, 3\), got \(4, 3, 2\)"):
        S.value(np.zeros((4, 3, 2)))
    with pytest.raises(ValueError, match=r"dY must have shape \(4, 2, 3\)"):
        S.hess_mv(np.zeros((3, 2, 3)), np.zeros((4, 2, 3)))


def test_block_bad_terms():
    T4 = Tikhonov(4)
    with pytest.raises(ValueError, match="terms must hold at least one"):
        BlockRegularizer(5, [])
    with pytest.raises(ValueError, match=r"terms\[0\]: slice 0:3 has length 3 but the regularizer .* vectors of length 4"):
        BlockRegularizer(5, [((0, 3), T4)])
    with pytest.raises(ValueError, match=r"terms\[1\]: slice 2:6 must satisfy 0 <= start < stop <= n_theta = 5"):
        BlockRegularizer(5, [((0, 4), T4), ((2, 6), T4)])
    with pytest.raises(ValueError, match="slices must have step 1"):
        BlockRegularizer(8, [(slice(0, 8, 2), T4)])
    with pytest.raises(TypeError, match=r"terms\[0\]\[1\] must be a Regularizer, got Identity"):
        BlockRegularizer(4, [((0, 4), Identity(4))])
    with pytest.raises(TypeError, match=r"terms\[0\] must be a pair \(slice, Regularizer\)"):
        BlockRegularizer(4, [T4])
    with pytest.raises(TypeError, match="slice bounds must be integers"):
        BlockRegularizer(4, [(slice(None, 4), T4)])
