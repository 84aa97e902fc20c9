"""Tests of meganet.weak: KL projection (P-step of constrained CNNs, Rabinovich 2020
eq. 1–6) against an independent primal solver (scipy SLSQP), KKT conditions, Taylor
tests of the hand-coded dual derivatives, infeasibility and slack, constraint builders."""

import numpy as np
import pytest
from scipy.optimize import minimize

from meganet.testing import taylor_test
from meganet.weak import background, foreground, kl_projection, stack, suppression
from meganet.weak.kl_projection import NegatedDual


def random_Q(rng, n, L, conc=1.0):
    return rng.dirichlet(conc * np.ones(L), size=n)


def slsqp_primal(Q, A, b, beta=None):
    """min Σ P log(P/Q) (+ βᵀξ) s.t. rows sum to 1, A p̄ ≥ b (− ξ), P ≥ 0, ξ ≥ 0.

    Without slack, a label whose constraint row reads −p̄(l) ≥ 0 (suppression) must
    have P(:, l) = 0 (since P ≥ 0); SLSQP gets it as the bound 0 ≤ P(:, l) ≤ 0, because
    the log barrier of the objective at P = 0 breaks its line search.
    """
    n, L = Q.shape
    m = A.shape[0]
    nx = n * L + (0 if beta is None else m)
    zero = np.zeros(L, dtype=bool)
    if beta is None:
        for a, bk in zip(A, b):
            if bk >= 0 and np.count_nonzero(a) == 1 and a.min() < 0:
                zero[np.flatnonzero(a)[0]] = True
    zmask = np.tile(zero, n)
    lo = 1e-300

    def split(x):
        P = x[:n * L].reshape(n, L)
        xi = x[n * L:] if beta is not None else np.zeros(m)
        return P, xi

    def fun(x):
        P, xi = split(x)
        Pc = np.maximum(P, lo)
        f = float(np.where(zero[None, :], 0.0, Pc * np.log(Pc / Q)).sum())
        return f + (0.0 if beta is None else float(beta @ xi))

    def jac(x):
        P, _ = split(x)
        g = np.where(zero[None, :], 0.0, np.log(np.maximum(P, lo) / Q) + 1.0)
        return np.concatenate([g.ravel(), [] if beta is None else beta])

    Jrow = np.zeros((n, nx))
    for i in range(n):
        Jrow[i, i * L:(i + 1) * L] = 1.0
    Jc = np.zeros((m, nx))
    Jc[:, :n * L] = np.tile(A, (1, n)) / n
    if beta is not None:
        Jc[:, n * L:] = np.eye(m)
    cons = [dict(type="eq", fun=lambda x: Jrow @ x - 1.0, jac=lambda x: Jrow),
            dict(type="ineq", fun=lambda x: Jc @ x - b, jac=lambda x: Jc)]
    P0 = np.where(zero[None, :], 0.0, Q)
    x0 = np.concatenate([(P0 / P0.sum(axis=1, keepdims=True)).ravel(), np.zeros(0 if beta is None else m)])
    bounds = [(0.0, 0.0) if z else (lo, 1.0) for z in zmask] + [(0.0, None)] * (nx - n * L)
    res = minimize(fun, x0, jac=jac, method="SLSQP", bounds=bounds, constraints=cons,
                   options=dict(ftol=1e-12, maxiter=2000))
    assert res.success, res.message
    P, xi = split(res.x)
    return P, xi, res.fun


def random_instance(seed):
    rng = np.random.default_rng(seed)
    n, L = int(rng.integers(6, 11)), int(rng.integers(3, 5))
    Q = random_Q(rng, n, L)
    bg = 0
    present = sorted(set(rng.choice(np.arange(1, L), size=int(rng.integers(1, L)), replace=False).tolist()))
    tags = [bg] + present
    fr = rng.uniform(0.1, 0.6 / len(tags), size=len(tags) - 1)
    lower = float(rng.uniform(0.05, 0.3))
    upper = float(lower + rng.uniform(0.05, 0.3))
    A, b = stack(suppression(tags, L), foreground(present, list(fr), L), background(bg, lower, upper, L))
    return Q, A, b


SEEDS = list(range(12))


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_slsqp_hard(seed):
    Q, A, b = random_instance(seed)
    r = kl_projection(Q, A, b)
    assert r.success, r.message
    P_ref, _, f_ref = slsqp_primal(Q, A, b)
    assert r.P.dtype == np.float64
    assert abs(r.kl - f_ref) <= 1e-6 * max(1.0, abs(f_ref))
    assert abs(r.dual - r.kl) <= 1e-8 * max(1.0, abs(r.kl))       # strong duality
    assert r.violation <= 1e-8
    np.testing.assert_allclose(r.P.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(r.P, P_ref, atol=1e-4)
    # KKT: λ ≥ 0, complementary slackness, stationarity (closed form on the non-forced labels)
    n = Q.shape[0]
    assert (r.lam >= 0).all()
    resid = A @ r.P.mean(axis=0) - b
    assert np.all(np.abs(r.lam * resid) <= 1e-8 * max(1.0, r.lam.max()))
    free = ~r.forced_zero
    assert np.all(r.P[:, r.forced_zero] == 0.0)
    logits = np.log(Q[:, free]) + (A.T @ r.lam)[free] / n
    closed = np.exp(logits - logits.max(axis=1, keepdims=True))
    closed /= closed.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(r.P[:, free], closed, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_slsqp_slack(seed):
    Q, A, b = random_instance(100 + seed)
    rng = np.random.default_rng(seed)
    beta = rng.uniform(0.5, 3.0, size=A.shape[0])
    r = kl_projection(Q, A, b, beta=beta)
    assert r.success, r.message
    P_ref, xi_ref, f_ref = slsqp_primal(Q, A, b, beta)
    assert abs(r.objective - f_ref) <= 1e-6 * max(1.0, abs(f_ref))
    assert abs(r.dual - r.objective) <= 1e-8 * max(1.0, abs(r.objective))
    np.testing.assert_allclose(r.P, P_ref, atol=1e-4)
    # KKT with slack: 0 ≤ λ ≤ β; λ_k < β_k ⇒ ξ_k = 0; λ_k > 0 ⇒ constraint with slack tight
    assert (r.lam >= 0).all() and (r.lam <= beta * (1 + 1e-12)).all()
    resid = A @ r.P.mean(axis=0) - b + r.slack
    assert np.all(resid >= -1e-8)
    assert np.all(np.abs(r.lam * resid) <= 1e-8 * max(1.0, beta.max()))
    assert np.all(np.abs((beta - r.lam) * r.slack) <= 1e-8 * max(1.0, beta.max()))
    n = Q.shape[0]
    logits = np.log(Q) + (A.T @ r.lam) / n
    closed = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(r.P, closed / closed.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-14)


def test_slack_small_beta_keeps_Q_and_large_beta_approaches_hard():
    Q, A, b = random_instance(7)
    r0 = kl_projection(Q, A, b, beta=0.0)
    np.testing.assert_array_equal(r0.lam, 0.0)
    np.testing.assert_allclose(r0.P, Q, rtol=1e-14)
    # without suppression (no forced zeros) a large β reproduces the hard solution
    rng = np.random.default_rng(3)
    Q = random_Q(rng, 8, 3)
    A, b = stack(foreground([1, 2], [0.4, 0.3], 3), background(0, 0.1, 0.2, 3))
    hard = kl_projection(Q, A, b)
    soft = kl_projection(Q, A, b, beta=1e3 * (1 + hard.lam.max()))
    np.testing.assert_allclose(soft.P, hard.P, atol=1e-9)
    np.testing.assert_allclose(soft.lam, hard.lam, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dual_gradient_and_hessian_taylor(seed):
    rng = np.random.default_rng(seed)
    Q = random_Q(rng, 7, 4)
    A = rng.standard_normal((5, 4))
    b = rng.uniform(-0.5, 0.5, size=5)
    prob = NegatedDual(np.log(Q), A, b)
    mu = rng.uniform(0.0, 2.0, size=5)
    v = rng.standard_normal(5)
    f, g, P = prob.value_and_gradient(mu)
    rep = taylor_test(lambda x: np.asarray(prob.value(x)[0]), mu, v, np.asarray(g @ v))
    assert rep.ok, rep.table()
    rep = taylor_test(lambda x: prob.value_and_gradient(x)[1], mu, v, prob.hessian_matvec(mu, v, P))
    assert rep.ok, rep.table()
    # a wrong Hessian (no centring) must fail the test
    wrong = A @ (P * (A.T @ v)[None, :]).mean(axis=0)
    rep = taylor_test(lambda x: prob.value_and_gradient(x)[1], mu, v, wrong)
    assert not rep.ok
    # Hessian symmetric positive semidefinite (covariance)
    H = np.column_stack([prob.hessian_matvec(mu, e, P) for e in np.eye(5)])
    np.testing.assert_allclose(H, H.T, atol=1e-14)
    assert np.linalg.eigvalsh(H).min() >= -1e-14


def test_infeasible_without_slack_raises_and_slack_solves():
    rng = np.random.default_rng(5)
    Q = random_Q(rng, 6, 3)
    A, b = foreground([0, 1, 2], [0.5, 0.4, 0.3], 3)   # fractions sum to 1.2 > 1
    with pytest.raises(ValueError, match=r"infeasible.*beta="):
        kl_projection(Q, A, b)
    r = kl_projection(Q, A, b, beta=2.0)
    assert r.success, r.message
    assert r.violation > 0.1 and np.isfinite(r.objective)
    np.testing.assert_allclose(r.P.sum(axis=1), 1.0, atol=1e-12)
    P_ref, _, f_ref = slsqp_primal(Q, A, b, np.full(3, 2.0))
    assert abs(r.objective - f_ref) <= 1e-6 * max(1.0, f_ref)
    # background lower > achievable together with suppression of everything else but one tag
    A, b = stack(suppression([0], 3), background(0, 0.1, 0.5, 3))   # only label 0 allowed, but at most 50 %
    with pytest.raises(ValueError, match="infeasible"):
        kl_projection(Q, A, b)


def test_constraints_satisfied_by_Q_give_P_equal_Q():
    rng = np.random.default_rng(11)
    Q = random_Q(rng, 9, 4, conc=5.0)
    qbar = Q.mean(axis=0)
    A, b = stack(foreground([0, 1, 2, 3], list(0.5 * qbar), 4), background(0, qbar[0] - 0.05, qbar[0] + 0.05, 4))
    for beta in (None, 1.0):
        r = kl_projection(Q, A, b, beta=beta)
        assert r.nit == 0 and r.success
        np.testing.assert_array_equal(r.lam, 0.0)
        np.testing.assert_allclose(r.P, Q, rtol=1e-14)
        assert abs(r.kl) <= 1e-14 and r.violation == 0.0


def test_log_input_matches():
    Q, A, b = random_instance(4)
    r1 = kl_projection(Q, A, b)
    r2 = kl_projection(np.log(Q), A, b, log=True)
    np.testing.assert_allclose(r1.P, r2.P, atol=1e-12)
    assert r1.kl == pytest.approx(r2.kl, rel=1e-10)


def test_suppression_forces_zero_mass():
    rng = np.random.default_rng(2)
    Q = random_Q(rng, 6, 4)
    r = kl_projection(Q, *suppression([1, 3], 4))
    np.testing.assert_array_equal(r.forced_zero, [True, False, True, False])
    np.testing.assert_array_equal(r.P[:, [0, 2]], 0.0)
    # KL projection onto a face = renormalized Q on the allowed labels
    ref = Q[:, [1, 3]] / Q[:, [1, 3]].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(r.P[:, [1, 3]], ref, rtol=1e-12)


def test_input_validation():
    rng = np.random.default_rng(0)
    Q = random_Q(rng, 5, 3)
    A, b = foreground([0], 0.2, 3)
    with pytest.raises(ValueError, match="sums to"):
        kl_projection(Q * 1.1, A, b)
    Qn = Q.copy()
    Qn[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        kl_projection(Qn, A, b)
    Qz = Q.copy()
    Qz[0] = [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="positive"):
        kl_projection(Qz, A, b)
    with pytest.raises(ValueError, match="shape"):
        kl_projection(Q[0], A, b)
    with pytest.raises(ValueError, match="A must have shape"):
        kl_projection(Q, np.ones((1, 4)), b)
    with pytest.raises(ValueError, match="b must have shape"):
        kl_projection(Q, A, np.ones(2))
    with pytest.raises(ValueError, match="nonnegative"):
        kl_projection(Q, A, b, beta=-1.0)
    with pytest.raises(ValueError, match="beta must be"):
        kl_projection(Q, A, b, beta=np.ones(3))


def test_builders():
    A, b = suppression([0, 2], 4)
    np.testing.assert_array_equal(A, [[0, -1, 0, 0], [0, 0, 0, -1]])
    np.testing.assert_array_equal(b, [0, 0])
    A, b = foreground([1, 3], [0.2, 0.1], 4)
    np.testing.assert_array_equal(A, [[0, 1, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(b, [0.2, 0.1])
    A, b = background(0, 0.3, 0.7, 2)
    np.testing.assert_array_equal(A, [[1, 0], [-1, 0]])
    np.testing.assert_array_equal(b, [0.3, -0.7])
    A, b = stack(suppression([0], 2), background(0, 0.3, 0.7, 2))
    assert A.shape == (3, 2) and b.shape == (3,)
    with pytest.raises(ValueError):
        foreground([0, 5], 0.1, 4)
    with pytest.raises(ValueError):
        background(0, 0.8, 0.2, 3)
    with pytest.raises(ValueError):
        stack(suppression([0], 2), suppression([0], 3))
    with pytest.raises(ValueError):
        foreground([0, 1], [0.1], 3)


def test_singular_dual_hessian_equality_and_full_simplex_rows():
    """Rows e_l and −e_l (background bounds) and rows spanning Σ_l p̄(l) make the dual
    Hessian singular (undamped Newton steps blow up); the solver must still converge.
    Optimality is certified by KKT (λ ≥ 0, complementary slackness, closed form) and
    compared with SLSQP on the equivalent problem without the Σ row (implied by the row sums;
    SLSQP stalls on it, as LICQ fails)."""
    rng = np.random.default_rng(21)
    Q = random_Q(rng, 8, 3)
    n = Q.shape[0]
    for lower, upper in ((0.34, 0.36), (0.35, 0.35)):
        A, b = stack(background(0, lower, upper, 3), foreground([1, 2], [0.2, 0.1], 3),
                     (-np.ones((1, 3)), np.array([-1.0])))
        r = kl_projection(Q, A, b)
        assert r.success, r.message
        assert lower - 1e-9 <= r.P.mean(axis=0)[0] <= upper + 1e-9
        resid = A @ r.P.mean(axis=0) - b
        assert (r.lam >= 0).all() and np.all(np.abs(r.lam * resid) <= 1e-8 * max(1.0, r.lam.max()))
        logits = np.log(Q) + (A.T @ r.lam) / n
        closed = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(r.P, closed / closed.sum(axis=1, keepdims=True), rtol=1e-12)
        _, _, f_ref = slsqp_primal(Q, A[:-1], b[:-1])
        assert abs(r.kl - f_ref) <= 1e-6 * max(1.0, f_ref)


@pytest.mark.parametrize("seed", range(10))
def test_general_constraints_feasible_solved_or_clear_error(seed):
    rng = np.random.default_rng(500 + seed)
    n, L, m = int(rng.integers(4, 9)), int(rng.integers(2, 5)), int(rng.integers(1, 5))
    Q = random_Q(rng, n, L, conc=0.5)
    A = rng.standard_normal((m, L))
    b = rng.uniform(-1.0, 0.5, size=m)
    try:
        r = kl_projection(Q, A, b)
    except ValueError as e:
        assert "infeasible" in str(e) and "beta=" in str(e)
        # independent check: no mixture of the simplex vertices satisfies A p̄ ≥ b (SLSQP on max min slack)
        res = minimize(lambda z: -z[-1], np.concatenate([np.full(L, 1.0 / L), [0.0]]), method="SLSQP",
                       bounds=[(0, 1)] * L + [(None, None)],
                       constraints=[dict(type="eq", fun=lambda z: z[:L].sum() - 1.0),
                                    dict(type="ineq", fun=lambda z: A @ z[:L] - b - z[-1])])
        assert res.x[-1] < 1e-8
    else:
        assert r.success and r.violation <= 1e-9
        _, _, f_ref = slsqp_primal(Q, A, b)
        assert abs(r.kl - f_ref) <= 1e-6 * max(1.0, f_ref)
    r = kl_projection(Q, A, b, beta=5.0)
    assert r.success
    _, _, f_ref = slsqp_primal(Q, A, b, np.full(m, 5.0))
    assert abs(r.objective - f_ref) <= 1e-6 * max(1.0, abs(f_ref))
