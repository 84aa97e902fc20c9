"""Alternating training from tags (meganet.weak.alternating): constraints from tags, the batched
P-step, the θ-step objective, and the driver's history and statuses."""

import numpy as np
import pytest

from meganet.losses import SoftmaxCrossEntropy
from meganet.networks import segmentation_network
from meganet.objectives import NetworkObjective
from meganet.optimizers import Status, minimize_lbfgs
from meganet.weak import kl_projection
from meganet.weak.alternating import kl_divergence, p_step, tag_constraints, train_constrained

L = 4


def _tags():
    t = np.zeros((3, L), dtype=bool)
    t[:, 0] = True
    t[0, 1] = True
    t[1, [2, 3]] = True
    return t


def test_tag_constraints_rows():
    cons = tag_constraints(_tags(), foreground_fraction=0.1, background_bounds=(0.5, 0.9))
    A, b = cons[1]
    # image 1: label 1 suppressed, labels 2 and 3 at least 10 %, background in [0.5, 0.9]
    pbar = np.array([0.7, 0.0, 0.15, 0.15])
    assert np.all(A @ pbar >= b - 1e-15)
    for bad in (np.array([0.7, 0.05, 0.1, 0.15]), np.array([0.7, 0.0, 0.25, 0.05]), np.array([0.95, 0, 0.1, 0.1]),
                np.array([0.4, 0.0, 0.3, 0.3])):
        assert np.any(A @ bad < b - 1e-12), bad
    A0, b0 = cons[0]
    assert A0.shape == (2 + 1 + 2, L)       # 2 suppressed, 1 foreground, 2 background rows
    A2, _ = tag_constraints(_tags())[2]      # image 2: background only, suppression of 1, 2, 3
    assert A2.shape == (3, L)


def test_tag_constraints_no_rows_and_errors():
    t = np.ones((2, L), dtype=bool)
    cons = tag_constraints(t)
    assert cons[0].A.shape == (0, L)
    with pytest.raises(ValueError, match="tags"):
        tag_constraints(np.ones((2, L), dtype=int))
    with pytest.raises(ValueError, match="foreground_fraction"):
        tag_constraints(t, foreground_fraction=1.5)
    with pytest.raises(ValueError, match="background_label"):
        tag_constraints(t, background_label=L)
    with pytest.raises(ValueError, match="background_bounds"):
        tag_constraints(t, background_bounds=0.3)


def test_kl_divergence():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(L), size=5)
    Q = rng.dirichlet(np.ones(L), size=5)
    np.testing.assert_allclose(kl_divergence(P, Q), (P * np.log(P / Q)).sum(axis=1), rtol=1e-14)
    np.testing.assert_allclose(kl_divergence(Q, Q), 0.0, atol=1e-15)
    P[:, 0] = 0.0
    P /= P.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(kl_divergence(P, Q), (P[:, 1:] * np.log(P[:, 1:] / Q[:, 1:])).sum(axis=1), rtol=1e-14)


def test_p_step_matches_kl_projection_per_image():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((3, L, 5, 6))
    cons = tag_constraints(_tags(), foreground_fraction=0.2, background_bounds=(0.3, 1.0))
    ps = p_step(Z, cons)
    assert ps.P.shape == Z.shape
    np.testing.assert_allclose(ps.P.sum(axis=1), 1.0, atol=1e-12)
    Q = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    for I in range(3):
        Qi = Q[I].reshape(L, -1).T
        r = kl_projection(Qi, *cons[I])
        np.testing.assert_allclose(ps.P[I].reshape(L, -1).T, r.P, atol=1e-12)
        assert ps.kl[I] == pytest.approx(kl_divergence(r.P, Qi).mean(), rel=1e-10)
        A, b = cons[I]
        assert ps.violation_Q[I] == pytest.approx(max(0.0, (b - A @ Qi.mean(axis=0)).max()), abs=1e-15)
        assert ps.violation_Q[I] > 0.0         # random logits violate the suppression rows
    assert ps.violation_P.max() < 1e-8


def test_p_step_without_rows_returns_q_and_errors():
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((2, L, 3, 3))
    ps = p_step(Z, tag_constraints(np.ones((2, L), dtype=bool)))
    np.testing.assert_allclose(ps.P, np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True), rtol=1e-14)
    assert np.all(ps.kl == 0.0)
    with pytest.raises(ValueError, match="one \\(A, b\\) pair per image"):
        p_step(Z, tag_constraints(np.ones((3, L), dtype=bool)))
    Z[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        p_step(Z, tag_constraints(np.ones((2, L), dtype=bool)))


def _problem(n=6, size=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 1, size, size))
    tags = np.zeros((n, L), dtype=bool)
    tags[:, 0] = True
    tags[np.arange(n), 1 + np.arange(n) % (L - 1)] = True
    net = segmentation_network(1, (size, size), width=4, n_layers=2)
    loss = SoftmaxCrossEntropy(net.shape_out, L, per_pixel=True)
    x0 = NetworkObjective(net, loss, X, np.zeros((n, size, size), dtype=np.int64)).init_x(rng=seed)
    return net, loss, X, tags, x0


def test_theta_step_is_kl_up_to_entropy():
    """CE(P, Q(θ)) − H(P) = mean KL(P‖Q(θ)): the θ-step minimizes the KL the P-step minimized."""
    net, loss, X, tags, x0 = _problem()
    obj = NetworkObjective(net, loss, X, np.zeros((X.shape[0], 8, 8), dtype=np.int64))
    theta, w = obj.split(x0)
    Z = loss.logits(net(theta, X), w)
    ps = p_step(Z, tag_constraints(tags, foreground_fraction=0.2))
    ce = NetworkObjective(net, loss, X, ps.P).value(x0)[0]
    P = ps.P
    ent = -np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0).sum(axis=1).mean()
    assert ce - ent == pytest.approx(ps.kl.mean(), rel=1e-10)


def test_train_constrained_reduces_the_networks_violation():
    net, loss, X, tags, x0 = _problem()
    cons = tag_constraints(tags, foreground_fraction=0.25, background_bounds=(0.3, 0.7))
    res = train_constrained(net, loss, X, cons, x0, outer_iter=4, theta_solver="lbfgs",
                            theta_solver_options={"max_iter": 30})
    assert res.status == Status.COMPLETED and res.success
    h = res.history
    assert list(h["outer"]) == [1, 2, 3, 4]
    assert h["violation_P"][-1] < 1e-8
    assert h["violation_Q"][-1] < 0.4 * h["violation_Q"][0]
    # block-coordinate descent on KL(P‖Q(θ)) with a monotone θ-solver (L-BFGS): the P-step's KL never grows
    assert np.all(np.diff(h["kl"]) <= 1e-12) and h["kl"][-1] < 0.2 * h["kl"][0]
    assert np.all(np.diff(h["work_units"]) > 0)
    assert res.P.shape == (X.shape[0], L, 8, 8)
    # the returned x is the θ-step's minimizer against the last P
    assert np.array_equal(res.x, res.theta_results[-1].x)


def test_train_constrained_statuses():
    net, loss, X, tags, x0 = _problem()
    cons = tag_constraints(tags, foreground_fraction=0.2)

    def stop(x, row):
        if row["outer"] == 2:
            raise StopIteration

    res = train_constrained(net, loss, X, cons, x0, outer_iter=5, theta_solver="lbfgs",
                            theta_solver_options={"max_iter": 2}, callback=stop)
    assert res.status == Status.CALLBACK_STOP and len(res.history) == 2 and not res.success

    calls = []

    def nan_solver(problem, x, **kw):
        r = minimize_lbfgs(problem, x, max_iter=1)
        calls.append(r.x)
        if len(calls) == 2:
            r.x = r.x * np.nan
            r.status = Status.NON_FINITE
        return r

    res = train_constrained(net, loss, X, cons, x0, outer_iter=5, theta_solver=nan_solver)
    assert res.status == Status.NON_FINITE
    assert np.array_equal(res.x, calls[0]) and np.isfinite(res.x).all()
    assert "NaN" in res.message


def test_train_constrained_errors():
    net, loss, X, tags, x0 = _problem()
    cons = tag_constraints(tags)
    with pytest.raises(ValueError, match="one \\(A, b\\) pair per image"):
        train_constrained(net, loss, X, cons[:-1], x0)
    with pytest.raises(ValueError, match="x0"):
        train_constrained(net, loss, X, cons, x0[:-1])
    with pytest.raises(ValueError, match="projection_options"):
        train_constrained(net, loss, X, cons, x0, projection_options={"tol": 1})
    with pytest.raises(ValueError, match="theta_solver"):
        train_constrained(net, loss, X, cons, x0, theta_solver="newton")
    with pytest.raises(ValueError, match="outer_iter"):
        train_constrained(net, loss, X, cons, x0, outer_iter=0)
    with pytest.raises(TypeError, match="per-pixel"):
        train_constrained(net, SoftmaxCrossEntropy(net.shape_out, L), X, cons, x0)
