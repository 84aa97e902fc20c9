"""VarProObjective (the reduced objective of Newman et al. 2020, "Train like a (Var)Pro").

Known answers: the least-squares classifier equals ``numpy.linalg.lstsq`` of
the stacked (weighted, Tikhonov-augmented) system, and the pseudo-inverse
solution without regularization.  Derivatives: Taylor tests of the reduced
value against the reduced gradient; the reduced gradient equals the θ-part of
the full gradient at ``(θ, w(θ))`` whose ``w``-part vanishes; the implicit
derivative ``J_θ w`` against central differences of the inner solution; the
reduced Gauss-Newton matrix against its dense assembly
``J_redᵀ H J_red + J_θwᵀ ∇²S J_θw + ∇²R`` with ``J_red`` from finite
differences; symmetry/PSD; inner-solve accuracy and warm starts; CG vs dense
inner solves; Hessian subsampling; counters; bad input.
"""

from __future__ import annotations

import numpy as np
import pytest

from meganet.data import peaks
from meganet.integrators import AntisymmetricResNet
from meganet.layers import SingleLayer
from meganet.losses import LeastSquares, SoftmaxCrossEntropy
from meganet.networks import Meganet
from meganet.objectives import NetworkObjective, VarProObjective
from meganet.optimizers import minimize_newton_cg
from meganet.regularizers import Tikhonov
from meganet.testing import taylor_test
from meganet.transforms import Dense
from tests.test_objectives import LOSSES, per_sample_hessians, tiny_network, tiny_problem


def varpro(kind="softmax", dtype=np.float64, **kwargs):
    return tiny_problem(kind, dtype, cls=VarProObjective, **kwargs)


def theta0(obj, seed=1):
    return obj.init_x(rng=seed)


def full_objective(vp):
    """The NetworkObjective with the same pieces as a VarPro objective."""
    return NetworkObjective(vp.network, vp.loss, vp.Y, vp.C, regularizer=vp.regularizer,
                            classifier_regularizer=vp.classifier_regularizer, mask=vp.mask)


def augmented(F, bias=True):
    return np.concatenate([F, np.ones((F.shape[0], 1))], axis=1) if bias else F


def w_from_X(X, f):
    """X = [W, μ] (C × (f+1)) → w = (vec W row-major, μ)."""
    return np.concatenate([X[:, :f].reshape(-1), X[:, f]])


# --------------------------------------------------------------------------- least squares: known answers
@pytest.mark.parametrize("mask", [False, True], ids=["all", "masked"])
def test_least_squares_classifier_is_the_ridge_solution(mask):
    rng = np.random.default_rng(0)
    net = tiny_network()
    loss = LeastSquares(3, 2)
    n = 12
    Y, C = rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
    m = (np.arange(n) % 3 != 1) if mask else None
    alpha = 0.05
    w_ref = rng.standard_normal(loss.n_w)
    obj = VarProObjective(net, loss, Y, C, mask=m,
                          classifier_regularizer=Tikhonov(loss.n_w, alpha=alpha, theta_ref=w_ref))
    assert obj.use_svd
    th = theta0(obj)
    w = obj.classifier(th)
    # min ½ Σ_s d_s ‖X a_s − c_s‖² + α/2 ‖X − X_ref‖²  as one stacked least-squares problem
    A = augmented(net(th, Y))
    q = np.ones(n) if m is None else m.astype(float)
    d = q / q.sum()
    X_ref = np.zeros((2, 4))
    X_ref[:, :3] = w_ref[:6].reshape(2, 3)
    X_ref[:, 3] = w_ref[6:]
    lhs = np.vstack([np.sqrt(d)[:, None] * A, np.sqrt(alpha) * np.eye(4)])
    rhs = np.vstack([np.sqrt(d)[:, None] * C, np.sqrt(alpha) * X_ref.T])
    X = np.linalg.lstsq(lhs, rhs, rcond=None)[0].T
    np.testing.assert_allclose(w, w_from_X(X, 3), rtol=1e-11, atol=1e-12)


def test_least_squares_without_regularizer_is_the_pseudo_inverse_solution():
    rng = np.random.default_rng(1)
    net = tiny_network()
    loss = LeastSquares(3, 2)
    Y, C = rng.standard_normal((10, 2)), rng.standard_normal((10, 2))
    # overdetermined (10 samples, 4 unknowns per output): the unique least-squares solution
    obj = VarProObjective(net, loss, Y, C)
    th = theta0(obj)
    A = augmented(net(th, Y))
    np.testing.assert_allclose(obj.classifier(th), w_from_X(np.linalg.lstsq(A, C, rcond=None)[0].T, 3),
                               rtol=1e-10, atol=1e-12)
    # underdetermined (3 labelled samples, 4 unknowns): the minimum-norm solution, α = 0 documented
    mask = np.zeros(10, dtype=bool)
    mask[[0, 4, 7]] = True
    obj = VarProObjective(net, loss, Y, C, mask=mask)
    X = np.linalg.pinv(A[mask]) @ C[mask]
    np.testing.assert_allclose(obj.classifier(th), w_from_X(X.T, 3), rtol=1e-9, atol=1e-10)
    f, g, state = obj.value_and_gradient(th)
    assert state.inner.grad_norm < 1e-12 and state.inner.status == "closed_form"


# --------------------------------------------------------------------------- reduced gradient
@pytest.mark.parametrize("mask", [False, True], ids=["all", "masked"])
@pytest.mark.parametrize("kind", LOSSES)
def test_taylor_reduced_value_gradient(kind, mask):
    obj = varpro(kind, mask=mask)
    th = theta0(obj)
    f, g, state = obj.value_and_gradient(th)
    v = np.random.default_rng(5).standard_normal(obj.n)
    rep = taylor_test(lambda t: np.asarray(obj.value(t)[0]), th, v, np.asarray(g @ v))
    assert rep.ok, rep.table()


def test_taylor_reduced_value_gradient_float32():
    obj = varpro("softmax", np.float32)
    th = theta0(obj)
    f, g, state = obj.value_and_gradient(th)
    assert g.dtype == np.float32 and state.w.dtype == np.float32 and state.w64.dtype == np.float64
    assert state.inner.status == "converged" and state.inner.grad_norm <= obj.inner_tol
    v = np.random.default_rng(5).standard_normal(obj.n).astype(np.float32)
    rep = taylor_test(lambda t: np.asarray(obj.value(t)[0]), th, v, np.asarray(float(g @ v)), dtype=np.float32)
    assert rep.ok, rep.table()


@pytest.mark.parametrize("kind", LOSSES)
def test_reduced_gradient_is_full_gradient_at_the_optimal_classifier(kind):
    vp = varpro(kind, mask=True)
    th = theta0(vp)
    g_red = vp.gradient(th, None)
    full = full_objective(vp)
    x = vp.full_x(th)
    g = full.gradient(x, None)
    np.testing.assert_allclose(g_red, g[: vp.n], rtol=1e-12, atol=1e-14)
    assert np.linalg.norm(g[vp.n:]) <= 1e-9  # ∇_w Φ(θ, w(θ)) = 0
    assert vp.value(th)[0] == pytest.approx(full.value(x)[0], rel=1e-14)


# --------------------------------------------------------------------------- inner solve
def test_cross_entropy_inner_solve_accuracy_and_warm_start():
    obj = varpro("softmax", alpha=1e-3)
    th = theta0(obj)
    _, state = obj.value(th)
    assert state.inner.status == "converged" and state.inner.n_iter >= 2
    assert state.inner.grad_norm <= 1e-10
    # independent check: the w-gradient of the full objective at (θ, w(θ))
    g = full_objective(obj).gradient(obj.full_x(th), None)
    assert np.linalg.norm(g[obj.n:]) <= 1e-9
    # warm start: the same θ needs no Newton step, a nearby θ only a few
    _, again = obj.value(th)
    assert again.inner.n_iter == 0
    _, near = obj.value(th + 1e-3 * np.random.default_rng(0).standard_normal(obj.n))
    assert 1 <= near.inner.n_iter <= 3
    assert obj.inner_stats["solves"] >= 3 and obj.inner_stats["not_converged"] == 0


def test_inner_trust_region_handles_weak_regularization():
    """α = 1e-6: Newton steps from w = 0 are huge along the softmax's flat directions; the trust region
    keeps the inner solve convergent."""
    obj = varpro("softmax", alpha=1e-6)
    _, state = obj.value(theta0(obj))
    assert state.inner.status == "converged" and state.inner.grad_norm <= 1e-10


@pytest.mark.parametrize("kind", ["softmax", "logistic"])
def test_cg_inner_solver_matches_dense(kind):
    dense = varpro(kind, inner_method="dense")
    cg = varpro(kind, inner_method="cg", inner_tol=1e-12)
    th = theta0(dense)
    _, sd = dense.value(th)
    _, sc = cg.value(th)
    assert sc.inner.n_cg > 0
    np.testing.assert_allclose(sc.w, sd.w, rtol=1e-8, atol=1e-10)
    v = np.random.default_rng(3).standard_normal(dense.n)
    np.testing.assert_allclose(cg.hessian_matvec(th, v, sc), dense.hessian_matvec(th, v, sd), rtol=1e-7,
                               atol=1e-9)


def _check_tr_step(H, g, radius, p, pred, hits):
    """Optimality (N&W Thm. 4.1): (H + λI)p = −g, λ ≥ 0, λ(Δ − ‖p‖) = 0, and the model value."""
    model = lambda q: g @ q + 0.5 * q @ H @ q  # noqa: E731
    assert pred == pytest.approx(-model(p), rel=1e-10)
    if hits:
        assert np.linalg.norm(p) == pytest.approx(radius, rel=1e-7)
        r = -(H @ p + g)
        lam = (r @ p) / (p @ p)
        assert lam >= -1e-10
        np.testing.assert_allclose(r, lam * p, atol=1e-7 * np.linalg.norm(g))
    else:
        assert np.linalg.norm(p) <= radius
        np.testing.assert_allclose(H @ p, -g, atol=1e-10 * np.linalg.norm(g))
    rng = np.random.default_rng(0)
    for _ in range(200):  # no feasible point does better
        q = rng.standard_normal(len(g))
        q *= radius * rng.random() / np.linalg.norm(q)
        assert model(q) >= model(p) - 1e-10


@pytest.mark.parametrize("radius", [10.0, 1.0, 0.1])
def test_trust_region_subproblems_on_4x4(radius):
    from meganet.objectives._inner_newton import tr_subproblem_cholesky, tr_subproblem_eigh

    rng = np.random.default_rng(4)
    Q = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    lam = np.array([0.01, 0.5, 2.0, 10.0])
    H = (Q * lam) @ Q.T
    g = rng.standard_normal(4)
    for p, pred, hits in (tr_subproblem_cholesky(H, np.linalg.inv(H), g, radius),
                          tr_subproblem_eigh(Q, lam, g, radius)):
        assert hits == (radius < np.linalg.norm(np.linalg.solve(H, g)))
        _check_tr_step(H, g, radius, p, pred, hits)
    # singular H (eigenvalue 0) with a gradient component along its null space: always on the boundary
    lam0 = np.array([0.0, 0.5, 2.0, 10.0])
    p, pred, hits = tr_subproblem_eigh(Q, lam0, g, radius)
    assert hits
    _check_tr_step((Q * lam0) @ Q.T, g, radius, p, pred, hits)


def test_dense_solver_falls_back_to_the_pseudo_inverse():
    from meganet.objectives._classifier import DenseSolver, dense_hessian

    rng = np.random.default_rng(0)
    loss = SoftmaxCrossEntropy(3, 3)  # singular without regularizer: logits + constant change nothing
    ev = loss.evaluate(rng.standard_normal((10, 3)), rng.standard_normal(loss.n_w), rng.integers(0, 3, 10))
    solver = DenseSolver(loss, ev, None, np.zeros(loss.n_w))
    assert solver.kind == "eigh"
    b = rng.standard_normal(loss.n_w)
    np.testing.assert_allclose(solver.solve(b), np.linalg.pinv(dense_hessian(loss, ev), rcond=1e-12) @ b, rtol=1e-8,
                               atol=1e-10)
    reg = Tikhonov(loss.n_w, alpha=0.1)
    pd = DenseSolver(loss, ev, reg, np.zeros(loss.n_w))
    assert pd.kind == "cholesky"
    np.testing.assert_allclose(pd.solve(b), np.linalg.solve(dense_hessian(loss, ev) + 0.1 * np.eye(loss.n_w), b),
                               rtol=1e-12)


# --------------------------------------------------------------------------- reduced Gauss-Newton
def _fd_classifier_jacobian(obj, th, h=1e-4):
    cols = []
    for i in range(obj.n):
        e = np.zeros(obj.n)
        e[i] = h
        cols.append((obj.classifier(th + e) - obj.classifier(th - e)) / (2 * h))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("kind", ["softmax", "least_squares"])
def test_implicit_derivative_matches_finite_differences(kind):
    obj = varpro(kind, inner_tol=1e-13)
    th = theta0(obj)
    _, state = obj.value(th)
    Jw = _fd_classifier_jacobian(obj, th)
    obj.value(th)  # restore the state at θ as the last one
    v = np.random.default_rng(2).standard_normal(obj.n)
    np.testing.assert_allclose(obj.implicit_derivative(th, v, state), Jw @ v, rtol=1e-6,
                               atol=1e-7 * np.abs(Jw @ v).max())


def dense_reduced_gauss_newton(obj, th, w, Jw, F, cache):
    """``J_redᵀ H_z J_red + J_θwᵀ ∇²S J_θw + ∇²R`` assembled column by column from the classifier Jacobian
    ``Jw`` (n_w × n_θ), with ``J_red e_i = W J_θF e_i + (Fᵀ ⊗ I) Jw e_i`` and the per-sample Hessians."""
    net, loss = obj.network, obj.loss
    k, f = loss.n_classes, loss.n_features
    W, mu = w[: k * f].reshape(k, f), w[k * f:]
    Z = F @ W.T + mu
    cols = []
    for i in range(obj.n):
        e = np.zeros(obj.n)
        e[i] = 1.0
        dF = net.Jthetamv(e, th, obj.Y, cache)
        dw = Jw[:, i]
        cols.append((dF @ W.T + F @ dw[: k * f].reshape(k, f).T + dw[k * f:]).reshape(-1))
    Jred = np.stack(cols, axis=1)
    Hs = per_sample_hessians(loss, Z, obj.C, obj.mask)
    Hz = np.zeros((Z.size, Z.size))
    for s in range(Z.shape[0]):
        Hz[s * k:(s + 1) * k, s * k:(s + 1) * k] = Hs[s]
    M = Jred.T @ Hz @ Jred + Jw.T @ obj.classifier_regularizer.hessian_matrix(w).toarray() @ Jw
    M += obj.regularizer.hessian_matrix(th).toarray()
    return M


@pytest.mark.parametrize("kind", ["softmax", "least_squares", "logistic"])
def test_reduced_gauss_newton_equals_dense_assembly(kind):
    obj = varpro(kind, inner_tol=1e-13, mask=True)
    net, loss = obj.network, obj.loss
    th = theta0(obj)
    Jw = _fd_classifier_jacobian(obj, th)
    _, state = obj.value(th)
    w = state.w
    F, cache = net.forward(th, obj.Y)
    M = dense_reduced_gauss_newton(obj, th, w, Jw, F, cache)
    H = np.stack([obj.hessian_matvec(th, np.eye(obj.n)[i], state) for i in range(obj.n)], axis=1)
    np.testing.assert_allclose(H, M, rtol=1e-5, atol=1e-6 * np.abs(M).max())
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-12 * np.abs(H).max())  # exact solves: symmetric
    assert np.linalg.eigvalsh(0.5 * (H + H.T)).min() >= obj.regularizer.alpha * (1 - 1e-8)


@pytest.mark.parametrize("kind", LOSSES)
def test_reduced_gauss_newton_symmetric_psd(kind):
    obj = varpro(kind)
    th = theta0(obj)
    _, state = obj.value(th)
    rng = np.random.default_rng(8)
    for _ in range(3):
        u, v = rng.standard_normal(obj.n), rng.standard_normal(obj.n)
        Hu, Hv = obj.hessian_matvec(th, u, state), obj.hessian_matvec(th, v, state)
        assert abs(u @ Hv - v @ Hu) <= 1e-12 * np.linalg.norm(u) * np.linalg.norm(Hv)
        assert v @ Hv >= 0


# --------------------------------------------------------------------------- subsampling and counters
def test_subsampled_reduced_gauss_newton_and_counters():
    obj = varpro("softmax", n=20, hessian_fraction=0.5, rng=0)
    th = theta0(obj)
    c = obj.counter
    f, state = obj.value(th)
    assert (c.forward, c.adjoint) == (1, 0)  # the inner solve touches no network
    obj.gradient(th, state)
    assert (c.forward, c.adjoint) == (1, 1)
    v = np.random.default_rng(1).standard_normal(obj.n)
    Hv = obj.hessian_matvec(th, v, state)
    assert c.forward == pytest.approx(1 + 0.5 + 0.5) and c.adjoint == pytest.approx(1.5)
    idx = state.curvature.view.idx
    assert len(idx) == 10
    u = np.random.default_rng(2).standard_normal(obj.n)
    assert abs(u @ Hv - v @ obj.hessian_matvec(th, u, state)) <= 1e-12 * abs(u @ Hv)
    full = varpro("softmax", n=20)
    assert not np.allclose(Hv, full.hessian_matvec(th, v, full.value(th)[1]))
    _, s2 = obj.value(th + 0.01)
    obj.hessian_matvec(th + 0.01, v, s2)
    _, s3 = obj.value(th + 0.02)
    obj.hessian_matvec(th + 0.02, v, s3)
    assert len({tuple(idx), tuple(s2.curvature.view.idx), tuple(s3.curvature.view.idx)}) > 1
    work = c.work_units
    obj.metrics(th, obj.Y, obj.C)
    obj.classifier(th + 0.5)
    assert c.work_units == work


def test_layout_classifier_metrics_warm_start():
    obj = varpro("softmax")
    th = theta0(obj)
    assert obj.n == obj.network.n_theta and th.shape == (obj.n,)
    w = obj.classifier(th)
    x = obj.full_x(th)
    np.testing.assert_array_equal(x[: obj.n], th)
    np.testing.assert_array_equal(x[obj.n:], w)
    m = obj.metrics(th, obj.Y, obj.C)
    assert m["loss"] == pytest.approx(full_objective(obj).metrics(x, obj.Y, obj.C)["loss"], rel=1e-14)
    assert obj.preconditioner(th) is None
    pre = varpro("softmax", preconditioner="regularizer")
    r = np.arange(1.0, obj.n + 1)
    np.testing.assert_allclose(pre.preconditioner(th)(r), r / (pre.regularizer.alpha * (1 + 1e-8)), rtol=1e-12)
    other = varpro("softmax")
    other.warm_start_classifier(w)
    _, st = other.value(th)
    assert st.inner.n_iter == 0  # already the optimum


def test_gnvpro_trains_peaks():
    d = peaks(200, seed=0)
    net = Meganet([SingleLayer(Dense(2, 8)), AntisymmetricResNet(8, n_steps=4, final_time=3.0, gamma=0.01)])
    loss = SoftmaxCrossEntropy(8, 5)
    obj = VarProObjective(net, loss, d.Y_train, d.C_train, regularizer=Tikhonov(net.n_theta, alpha=1e-4),
                          classifier_regularizer=Tikhonov(loss.n_w, alpha=1e-4))
    th = obj.init_x(rng=1)
    f0 = obj.value(th)[0]
    res = minimize_newton_cg(obj, th, max_iter=10, cg_max_iter=15)
    assert res.fun < 0.3 * f0, str(res)
    assert obj.metrics(res.x, d.Y_val, d.C_val)["accuracy"] >= 0.85


# --------------------------------------------------------------------------- bad input
def test_bad_input():
    rng = np.random.default_rng(0)
    net = tiny_network()
    Y, C = rng.standard_normal((6, 2)), rng.integers(0, 3, size=6)
    loss = SoftmaxCrossEntropy(3, 3)
    with pytest.raises(ValueError, match="VarProObjective with SoftmaxCrossEntropy needs a classifier_regularizer"):
        VarProObjective(net, loss, Y, C)
    with pytest.raises(ValueError, match="needs a classifier_regularizer with alpha > 0"):
        VarProObjective(net, loss, Y, C, classifier_regularizer=Tikhonov(loss.n_w, alpha=0.0))
    S = Tikhonov(loss.n_w, alpha=1e-3)
    with pytest.raises(ValueError, match="inner_tol must be positive"):
        VarProObjective(net, loss, Y, C, classifier_regularizer=S, inner_tol=0.0)
    with pytest.raises(ValueError, match=r"inner_method must be one of \{'auto', 'dense', 'cg'\}, got 'newton'"):
        VarProObjective(net, loss, Y, C, classifier_regularizer=S, inner_method="newton")
    with pytest.raises(ValueError, match="C must hold one label"):
        VarProObjective(net, loss, Y, C[:4], classifier_regularizer=S)
    with pytest.raises(TypeError, match="unexpected keyword argument 'batch_size'"):
        VarProObjective(net, loss, Y, C, classifier_regularizer=S, batch_size=2)
    obj = VarProObjective(net, loss, Y, C, classifier_regularizer=S)
    th = obj.init_x(rng=0)
    with pytest.raises(ValueError, match=rf"theta must have shape \({obj.n},\)"):
        obj.value(np.zeros(obj.n + obj.n_w))
    with pytest.raises(TypeError, match="state must be the VarProState returned by VarProObjective.value"):
        obj.hessian_matvec(th, th, full_objective(obj).value(obj.full_x(th))[1])
    with pytest.raises(TypeError, match="w0 has dtype float32"):
        VarProObjective(net, loss, Y, C, classifier_regularizer=S, w0=np.zeros(loss.n_w, dtype=np.float32))
