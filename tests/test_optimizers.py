"""Optimizers: known answers (quadratics, trust-region subproblems incl. the hard
case, Rosenbrock, least squares, box constraints), statuses, printing, options."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
import scipy.optimize as sopt

import meganet.optimizers as mo
from meganet.backend import to_numpy
from meganet.optimizers import Status
from tests.conftest import XP_PARAMS, get_xp

# --------------------------------------------------------------------------- helpers


def spd(n, cond=10.0, seed=0, eigs=None):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.geomspace(1.0, cond, n) if eigs is None else np.asarray(eigs, float)
    return (Q * lam) @ Q.T, Q


def model(H, g, p):
    return float(g @ p + 0.5 * p @ H @ p)


def brute_force_tr(H, g, radius):
    """Global minimum of the TR model by enumerating all KKT points: the interior
    Newton point and every real root σ of ‖(H + σI)⁻¹g‖² = Δ² (a polynomial of
    degree 2n in σ)."""
    lam, V = np.linalg.eigh(H)
    a = V.T @ g
    n = len(lam)
    best = math.inf
    if lam[0] > 0:
        p = -V @ (a / lam)
        if np.linalg.norm(p) <= radius:
            best = model(H, g, p)
    P = np.polynomial.polynomial
    poly = -radius ** 2 * P.polyfromroots(np.repeat(-lam, 2))
    for i in range(n):
        poly = P.polyadd(poly, a[i] ** 2 * P.polyfromroots(np.repeat(np.delete(-lam, i), 2)))
    for s in P.polyroots(poly):
        if abs(s.imag) < 1e-7 * max(1.0, abs(s)):
            p = -V @ (a / (lam + s.real))
            if np.linalg.norm(p) <= radius * (1 + 1e-8):  # inaccurate roots near poles fall outside
                best = min(best, model(H, g, p))
    return best


class NoisyQuadratic(mo.QuadraticProblem):
    """½xᵀAx − bᵀx with additive Gaussian gradient noise per mini-batch."""

    def __init__(self, A, b, *, noise, n_batches=10):
        super().__init__(A, b)
        self.noise, self.n_batches = noise, n_batches

    def stochastic_gradient(self, x, batch_index, rng):
        f, g, _ = self.value_and_gradient(x)
        return f, g + self.noise * rng.standard_normal(x.shape[0])


def counting(problem, *, nan_after=None, grad_sign=1.0):
    """Wrap a problem: return NaN values after `nan_after` value calls, or a scaled gradient."""
    calls = {"n": 0}

    def fun(x):
        calls["n"] += 1
        if nan_after is not None and calls["n"] > nan_after:
            return math.nan
        return problem.value(x)[0]

    def grad(x):
        return grad_sign * problem.value_and_gradient(x)[1]

    hessp = (lambda x, v: problem.hessian_matvec(x, v, None)) if hasattr(problem, "hessian_matvec") else None
    return mo.FunctionProblem(fun, grad, hessp)


X0_ROSEN = np.array([-1.2, 1.0])

# --------------------------------------------------------------------------- PCG


def test_pcg_spd_exact_in_n_steps_and_distinct_eigenvalues():
    A, _ = spd(6, cond=10.0)
    b = np.arange(1.0, 7.0)
    res = mo.pcg(lambda v: A @ v, b, rtol=1e-10)
    assert res.converged and res.n_iter <= 6
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-9)
    # CG terminates after as many steps as A has distinct eigenvalues (N&W Thm 5.4)
    A3, _ = spd(8, eigs=[1, 1, 1, 3, 3, 7, 7, 7], seed=1)
    b = np.ones(8)
    res = mo.pcg(lambda v: A3 @ v, b, rtol=1e-10)
    assert res.converged and res.n_iter == 3
    np.testing.assert_allclose(res.x, np.linalg.solve(A3, b), rtol=1e-9)


def test_pcg_preconditioned_and_float32():
    rng = np.random.default_rng(2)
    A, _ = spd(20, cond=5.0, seed=2)
    D = np.diag(np.geomspace(1.0, 1e3, 20))
    B = D @ A @ D  # badly scaled, Jacobi preconditioning undoes the scaling
    b = rng.standard_normal(20)
    d = np.diag(B).copy()
    plain = mo.pcg(lambda v: B @ v, b, rtol=1e-8, max_iter=200)
    jac = mo.pcg(lambda v: B @ v, b, precond=lambda r: r / d, rtol=1e-8, max_iter=200)
    assert jac.converged and jac.n_iter < plain.n_iter
    np.testing.assert_allclose(jac.x, np.linalg.solve(B, b), rtol=1e-5)
    A32, b32 = A.astype(np.float32), b.astype(np.float32)
    r32 = mo.pcg(lambda v: A32 @ v, b32, rtol=1e-5)
    assert r32.x.dtype == np.float32 and r32.converged
    np.testing.assert_allclose(r32.x, np.linalg.solve(A, b), rtol=1e-4, atol=1e-5)


def test_pcg_negative_curvature_and_bad_preconditioner():
    H = np.diag([-1.0, 2.0])
    res = mo.pcg(lambda v: H @ v, np.array([1.0, 0.0]))
    assert res.info == "negative_curvature" and res.n_iter == 0
    np.testing.assert_array_equal(res.x, 0.0)
    np.testing.assert_array_equal(res.d0, [1.0, 0.0])
    res = mo.pcg(lambda v: v, np.array([1.0, 2.0]), precond=lambda r: -r)
    assert res.info == "indefinite_preconditioner"


# --------------------------------------------------------------------------- Steihaug-CG


def test_steihaug_interior_equals_newton_step():
    A, _ = spd(5, cond=4.0)
    g = np.ones(5)
    res = mo.steihaug_cg(lambda v: A @ v, g, 100.0, rtol=1e-12)
    p = -np.linalg.solve(A, g)
    assert not res.hits_boundary and res.info == "converged"
    np.testing.assert_allclose(res.p, p, rtol=1e-9)
    assert res.predicted_reduction == pytest.approx(-model(A, g, p), rel=1e-10)
    assert res.step_norm == pytest.approx(np.linalg.norm(p), rel=1e-10)


def test_steihaug_indefinite_hits_boundary_along_negative_curvature():
    # first direction -g has curvature 2·0.01 − 1 < 0: step to the boundary along -g
    H = np.diag([2.0, -1.0])
    g = np.array([0.1, 1.0])
    res = mo.steihaug_cg(lambda v: H @ v, g, 0.5)
    assert res.info == "negative_curvature" and res.hits_boundary and res.n_iter == 1
    np.testing.assert_allclose(res.p, -0.5 * g / np.linalg.norm(g), rtol=1e-12)
    # negative curvature found in a later iteration (3-D indefinite)
    H = np.diag([1.0, 2.0, -0.5])
    g = np.array([1.0, 1.0, 0.2])
    res = mo.steihaug_cg(lambda v: H @ v, g, 3.0, rtol=1e-12)
    assert res.info == "negative_curvature" and res.hits_boundary and res.n_iter > 1
    assert np.linalg.norm(res.p) == pytest.approx(3.0, rel=1e-12)
    # at least the Cauchy decrease (the first CG iterate is the Cauchy point; m decreases along the path)
    t = min(3.0 / np.linalg.norm(g), g @ g / (g @ H @ g))
    assert model(H, g, res.p) < model(H, g, -t * g)
    assert res.predicted_reduction == pytest.approx(-model(H, g, res.p), rel=1e-10)


def test_steihaug_boundary_positive_curvature_and_preconditioned_norm():
    A, _ = spd(4, cond=3.0, seed=3)
    g = np.array([1.0, -2.0, 0.5, 1.0])
    res = mo.steihaug_cg(lambda v: A @ v, g, 0.1)
    assert res.info == "boundary" and res.hits_boundary and res.n_iter == 1
    np.testing.assert_allclose(res.p, -0.1 * g / np.linalg.norm(g), rtol=1e-12)
    m = np.array([1.0, 4.0, 9.0, 2.0])  # M = diag(m): the region is ‖p‖_M ≤ Δ
    res = mo.steihaug_cg(lambda v: A @ v, g, 0.3, precond=lambda r: r / m)
    assert res.hits_boundary
    assert math.sqrt(res.p @ (m * res.p)) == pytest.approx(0.3, rel=1e-10)
    assert res.predicted_reduction == pytest.approx(-model(A, g, res.p), rel=1e-10)


# --------------------------------------------------------------------------- exact small TR subproblem

H_SCIPY = np.array([[10, 2, 3, 4], [2, 1, 7, 1], [3, 7, 1, 7], [4, 1, 7, 2]], dtype=float)


def test_tr_subproblem_easy_case_known_answer():
    # scipy/optimize/tests/test_trustregion_exact.py::test_for_the_easy_case
    sol = mo.solve_trust_region_subproblem(H_SCIPY, np.ones(4), 1.0)
    np.testing.assert_allclose(sol.p, [0.00393332, -0.55260862, 0.67065477, -0.49480341], atol=1e-7)
    assert sol.hits_boundary and not sol.hard_case
    assert sol.model_value == pytest.approx(brute_force_tr(H_SCIPY, np.ones(4), 1.0), abs=1e-10)


def test_tr_subproblem_hard_case_known_answer():
    # g ⟂ eigenvector of λ₁ = -8.2151519874416614 (scipy's test_for_the_hard_case): σ = -λ₁, ‖p‖ = Δ
    g = np.array([6.4852641521327437, 1, 1, 1])
    sol = mo.solve_trust_region_subproblem(H_SCIPY, g, 1.0)
    assert sol.sigma == pytest.approx(8.2151519874416614, rel=1e-8)
    assert sol.hard_case and sol.hits_boundary
    assert np.linalg.norm(sol.p) == pytest.approx(1.0, rel=1e-10)
    np.testing.assert_allclose((H_SCIPY + sol.sigma * np.eye(4)) @ sol.p, -g, atol=1e-6)


def test_tr_subproblem_hard_case_analytic():
    # H = Q diag(-2, -1, 1, 2) Qᵀ, g = Q (0, 1, 1, 1): g has no component along v₁
    _, Q = spd(4, seed=5)
    lam = np.array([-2.0, -1.0, 1.0, 2.0])
    H = (Q * lam) @ Q.T
    g = Q @ np.array([0.0, 1.0, 1.0, 1.0])
    y_o = np.array([0.0, -1.0, -1.0 / 3.0, -1.0 / 4.0])  # -a_i / (λ_i + 2)
    # Δ = 2 > ‖y_o‖: hard case, σ = 2, p = Q (±τ, y_o[1:]) with ‖p‖ = 2
    tau = math.sqrt(4.0 - y_o @ y_o)
    sol = mo.solve_trust_region_subproblem(H, g, 2.0)
    assert sol.hard_case and sol.sigma == pytest.approx(2.0, rel=1e-12)
    candidates = [Q @ (y_o + s * tau * np.eye(4)[0]) for s in (1.0, -1.0)]
    assert min(np.abs(sol.p - c).max() for c in candidates) < 1e-10
    m_exact = -(1 + 1 / 3 + 1 / 4) + 0.5 * (-2 * tau ** 2 - 1 + 1 / 9 + 2 / 16)
    assert sol.model_value == pytest.approx(m_exact, rel=1e-12)
    # Δ = 1 < ‖y_o‖: the secular equation has a root σ > 2 (no hard case)
    sol = mo.solve_trust_region_subproblem(H, g, 1.0)
    assert not sol.hard_case and sol.sigma > 2.0
    assert np.linalg.norm(sol.p) == pytest.approx(1.0, rel=1e-10)
    np.testing.assert_allclose((H + sol.sigma * np.eye(4)) @ sol.p, -g, atol=1e-10)
    # σ from the secular equation in the eigenbasis: Σ_{i≥2} a_i²/(λ_i+σ)² = 1
    assert sum(1.0 / (lam[1:] + sol.sigma) ** 2) == pytest.approx(1.0, rel=1e-10)


def test_tr_subproblem_zero_gradient_and_interior():
    _, Q = spd(4, seed=6)
    H = (Q * np.array([-3.0, 1.0, 2.0, 4.0])) @ Q.T
    sol = mo.solve_trust_region_subproblem(H, np.zeros(4), 1.1)
    # the minimizer is ±Δ v₁
    assert abs(abs(sol.p @ Q[:, 0]) - 1.1) < 1e-12 and sol.hard_case
    A, _ = spd(4, cond=3.0, seed=7)
    g = np.array([0.1, -0.2, 0.1, 0.05])
    sol = mo.solve_trust_region_subproblem(A, g, 10.0)
    assert sol.sigma == 0.0 and not sol.hits_boundary
    np.testing.assert_allclose(sol.p, -np.linalg.solve(A, g), rtol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_tr_subproblem_random_vs_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    B = rng.standard_normal((4, 4))
    H = B + B.T
    g = rng.standard_normal(4)
    for radius in (0.05, 0.5, 2.0, 20.0):
        sol = mo.solve_trust_region_subproblem(H, g, radius)
        assert np.linalg.norm(sol.p) <= radius * (1 + 1e-10)
        assert sol.model_value == pytest.approx(model(H, g, sol.p), rel=1e-10, abs=1e-12)
        assert sol.model_value == pytest.approx(brute_force_tr(H, g, radius), rel=1e-8, abs=1e-10)
        # KKT: (H + σI)p = -g with H + σI ⪰ 0
        np.testing.assert_allclose((H + sol.sigma * np.eye(4)) @ sol.p, -g, atol=1e-8)
        assert np.linalg.eigvalsh(H + sol.sigma * np.eye(4))[0] >= -1e-10


def test_lanczos_subproblem_full_space_is_exact_and_preconditioned():
    rng = np.random.default_rng(8)
    B = rng.standard_normal((4, 4))
    H = B + B.T
    g = rng.standard_normal(4)
    sub = mo.LanczosSubproblem(lambda v: H @ v, g, max_dim=10, rtol=1e-12)
    for radius in (2.0, 0.3):  # the second solve reuses the basis: no new products
        step = sub.solve(radius)
        exact = mo.solve_trust_region_subproblem(H, g, radius)
        np.testing.assert_allclose(step.p, exact.p, atol=1e-8)
        assert step.predicted_reduction == pytest.approx(-exact.model_value, rel=1e-9)
    assert step.n_inner == 0 and len(sub.Q) == 4
    # with M = diag(m) the region is ‖p‖_M ≤ Δ: substitute p = M^{-1/2} u
    m = np.array([1.0, 2.0, 0.5, 3.0])
    sub = mo.LanczosSubproblem(lambda v: H @ v, g, precond=lambda r: r / m, max_dim=10, rtol=1e-12)
    step = sub.solve(0.7)
    s = 1.0 / np.sqrt(m)
    exact = mo.solve_trust_region_subproblem(s[:, None] * H * s[None, :], s * g, 0.7)
    np.testing.assert_allclose(step.p, s * exact.p, atol=1e-8)


# --------------------------------------------------------------------------- quadratics


def quadratic(n=8, cond=50.0, seed=0, dtype=np.float64):
    A, _ = spd(n, cond=cond, seed=seed)
    b = np.random.default_rng(seed).standard_normal(n)
    return mo.QuadraticProblem(A.astype(dtype), b.astype(dtype)), np.linalg.solve(A, b)


def test_newton_cg_one_step_on_spd_quadratic():
    prob, xs = quadratic()
    res = mo.minimize_newton_cg(prob, np.zeros(8), cg_rtol=1e-12, gtol=1e-9)
    assert res.status == Status.CONVERGED_GTOL and res.nit == 1
    np.testing.assert_allclose(res.x, xs, rtol=1e-9)
    assert res.history["step"][1] == 1.0 and res.n_inner <= 8


@pytest.mark.parametrize("solver", ["steihaug", "krylov"])
def test_trust_region_converges_on_spd_quadratic(solver):
    prob, xs = quadratic()
    f = mo.minimize_trust_region_steihaug if solver == "steihaug" else mo.minimize_trust_region_krylov
    res = f(prob, np.zeros(8), initial_radius=0.1, gtol=1e-9)
    assert res.status == Status.CONVERGED_GTOL
    np.testing.assert_allclose(res.x, xs, rtol=1e-7)
    radii = res.history["radius"]
    assert max(radii) > 0.1  # the radius grew after good boundary steps


def test_trust_region_rejections_cost_no_gradient_and_krylov_reuses_basis():
    prob = mo.Rosenbrock(6)
    x0 = np.tile(X0_ROSEN, 3)
    for f in (mo.minimize_trust_region_steihaug, mo.minimize_trust_region_krylov):
        res = f(prob, x0, initial_radius=10.0)  # too large: some steps are rejected
        acc = res.history["accepted"][1:]
        assert not all(acc) and res.success
        assert res.n_gev == 1 + sum(acc) and res.n_fev == 1 + res.nit  # a gradient only at accepted points
    hist = res.history
    after_reject = [hist["cg_iter"][i + 1] for i in range(1, len(hist) - 1) if not hist["accepted"][i]]
    assert after_reject and all(k == 0 for k in after_reject)  # re-solved on the same Lanczos basis
    assert res.n_hmv == res.n_inner


@pytest.mark.parametrize("name", ["lbfgs", "ncg_PR+", "ncg_FR", "ncg_HZ", "sd"])
def test_first_order_and_quasi_newton_on_quadratic(name):
    prob, xs = quadratic(cond=10.0)
    if name == "lbfgs":
        res = mo.minimize_lbfgs(prob, np.zeros(8), gtol=1e-9)
    elif name == "sd":
        res = mo.minimize_steepest_descent(prob, np.zeros(8), gtol=1e-9, max_iter=2000)
    else:
        res = mo.minimize_nonlinear_cg(prob, np.zeros(8), beta=name[4:], gtol=1e-9)
    assert res.status == Status.CONVERGED_GTOL, res
    np.testing.assert_allclose(res.x, xs, rtol=1e-7)


def test_float32_dtype_preserved():
    prob, xs = quadratic(dtype=np.float32, cond=10.0)
    x0 = np.zeros(8, np.float32)
    for f in (mo.minimize_lbfgs, mo.minimize_newton_cg, mo.minimize_trust_region_steihaug,
              mo.minimize_trust_region_krylov, mo.minimize_projected_newton_cg):
        res = f(prob, x0, gtol=1e-4)
        assert res.x.dtype == np.float32 and res.grad.dtype == np.float32
        assert res.success, res
        np.testing.assert_allclose(res.x, xs, rtol=1e-3, atol=1e-4)
    res = mo.minimize_adam(prob, x0, learning_rate=0.05, n_epochs=50)
    assert res.x.dtype == np.float32


# --------------------------------------------------------------------------- Rosenbrock


def test_rosenbrock_derivatives_match_scipy_and_gauss_newton():
    rng = np.random.default_rng(9)
    x = rng.standard_normal(5)
    v = rng.standard_normal(5)
    prob = mo.Rosenbrock(5)
    f, g, st = prob.value_and_gradient(x)
    assert f == pytest.approx(sopt.rosen(x), rel=1e-14)
    np.testing.assert_allclose(g, sopt.rosen_der(x), rtol=1e-13)
    np.testing.assert_allclose(prob.hessian_matvec(x, v, st), sopt.rosen_hess_prod(x, v), rtol=1e-13)
    # Gauss-Newton: 2 JᵀJ v with J from central differences of the residuals
    gn = mo.Rosenbrock(5, hessian="gauss_newton")
    h = 1e-6
    J = np.column_stack([(gn.residuals(x + h * e) - gn.residuals(x - h * e)) / (2 * h) for e in np.eye(5)])
    np.testing.assert_allclose(gn.hessian_matvec(x, v, None), 2 * J.T @ (J @ v), rtol=1e-7)
    assert sum(gn.residuals(x) ** 2) == pytest.approx(f, rel=1e-13)


ROSEN_SOLVERS = {
    "lbfgs": lambda p, x0: mo.minimize_lbfgs(p, x0, gtol=1e-7),
    "ncg": lambda p, x0: mo.minimize_nonlinear_cg(p, x0, gtol=1e-7, max_iter=3000),
    "newton_cg": lambda p, x0: mo.minimize_newton_cg(p, x0, gtol=1e-7),
    "gauss_newton_cg": lambda p, x0: mo.minimize_newton_cg(
        mo.Rosenbrock(p.n, hessian="gauss_newton"), x0, gtol=1e-7),
    "tr_steihaug": lambda p, x0: mo.minimize_trust_region_steihaug(p, x0, gtol=1e-7),
    "tr_krylov": lambda p, x0: mo.minimize_trust_region_krylov(p, x0, gtol=1e-7, krylov_dim=5),
}


@pytest.mark.parametrize("name", list(ROSEN_SOLVERS))
@pytest.mark.parametrize("n", [2, 6])
def test_rosenbrock_converges_to_ones(name, n):
    x0 = np.tile(X0_ROSEN, n // 2)
    res = ROSEN_SOLVERS[name](mo.Rosenbrock(n), x0)
    assert res.status == Status.CONVERGED_GTOL, res
    np.testing.assert_allclose(res.x, np.ones(n), atol=1e-5)
    assert res.fun == pytest.approx(sopt.rosen(res.x), abs=1e-14) and res.fun < 1e-10
    assert res.work_units > 0 and len(res.history) == res.nit + 1


# --------------------------------------------------------------------------- least squares


@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_linear_least_squares_vs_lstsq(alpha):
    rng = np.random.default_rng(10)
    A = rng.standard_normal((30, 6))
    b = rng.standard_normal(30)
    prob = mo.LinearLeastSquares(A, b, alpha=alpha)
    Aa = np.vstack([A, math.sqrt(alpha) * np.eye(6)])
    xs = np.linalg.lstsq(Aa, np.concatenate([b, np.zeros(6)]), rcond=None)[0]
    for f in (mo.minimize_newton_cg, mo.minimize_lbfgs, mo.minimize_trust_region_steihaug,
              mo.minimize_trust_region_krylov):
        res = f(prob, np.zeros(6), gtol=1e-10)
        assert res.success, res
        np.testing.assert_allclose(res.x, xs, rtol=1e-8, atol=1e-10)


def test_work_units_counter_matches_model():
    prob, _ = quadratic()
    res = mo.minimize_newton_cg(prob, np.zeros(8))
    assert res.work_units == res.n_fev + res.n_gev + 2 * res.n_hmv == prob.counter.work_units


    class NoCounter:  # a problem without counter: the solver's own cost model
        def value_and_gradient(self, x):
            f, g, st = prob.value_and_gradient(x)
            return f, g, st

        def hessian_matvec(self, x, v, state):
            return prob.hessian_matvec(x, v, state)

    res2 = mo.minimize_newton_cg(NoCounter(), np.zeros(8))
    assert res2.work_units == res2.n_fev + res2.n_gev + 2 * res2.n_hmv and res2.n_fev == res2.n_gev


# --------------------------------------------------------------------------- box constraints


def test_box_constrained_diagonal_known_solution():
    d = np.array([1.0, 2.0, 4.0, 8.0])
    c = np.array([2.0, -3.0, 0.25, 0.5])  # unconstrained minimizer of ½ Σ d (x - c)²
    prob = mo.QuadraticProblem(np.diag(d), d * c)
    lo, hi = np.array([-1.0, -1.0, -1.0, 0.6]), 1.0
    expected = np.clip(c, lo, hi)
    for f in (mo.minimize_projected_gradient, mo.minimize_projected_newton_cg):
        res = f(prob, np.zeros(4), lower=lo, upper=hi, gtol=1e-10)
        assert res.status == Status.CONVERGED_GTOL, res
        np.testing.assert_allclose(res.x, expected, atol=1e-10)


def test_box_constrained_quadratic_vs_lbfgsb():
    rng = np.random.default_rng(11)
    A, _ = spd(10, cond=30.0, seed=11)
    b = 3.0 * rng.standard_normal(10)
    prob = mo.QuadraticProblem(A, b)
    ref = sopt.minimize(lambda x: 0.5 * x @ A @ x - b @ x, np.zeros(10), jac=lambda x: A @ x - b,
                        method="L-BFGS-B", bounds=[(-1, 1)] * 10, options=dict(gtol=1e-12, ftol=1e-15))
    assert np.sum(np.abs(ref.x) > 0.999) >= 2  # some bounds are active
    for f in (mo.minimize_projected_gradient, mo.minimize_projected_newton_cg):
        res = f(prob, 5.0 * np.ones(10), lower=-1.0, upper=1.0, gtol=1e-9)  # x0 outside: projected
        assert res.success, res
        np.testing.assert_allclose(res.x, ref.x, atol=1e-6)
        assert res.fun <= ref.fun + 1e-10
    res = mo.minimize_projected_newton_cg(prob, np.zeros(10), lower=-1.0, upper=1.0, gtol=1e-9)
    assert res.nit <= 10  # Newton steps on the free set once the active set is found


# --------------------------------------------------------------------------- stochastic


@pytest.mark.parametrize("method", ["sgd", "momentum", "nesterov", "adam"])
def test_stochastic_methods_decrease_noisy_quadratic(method):
    A, _ = spd(10, cond=10.0, seed=12)
    b = np.random.default_rng(12).standard_normal(10)
    prob = NoisyQuadratic(A, b, noise=0.1)
    x0 = 3.0 * np.ones(10)
    f0, fstar = prob.value(x0)[0], prob.value(np.linalg.solve(A, b))[0]
    sched = mo.PiecewiseConstantLR(0.05, milestones=[10, 20], factor=0.2)
    if method == "adam":
        res = mo.minimize_adam(prob, x0, learning_rate=0.1, n_epochs=30, rng=0, eval_full=True)
    else:
        res = mo.minimize_sgd(prob, x0, learning_rate=sched, momentum=0.0 if method == "sgd" else 0.8,
                              nesterov=method == "nesterov", n_epochs=30, rng=0, eval_full=True)
    assert res.status == Status.COMPLETED and res.nit == 300 and res.info["epochs"] == 30
    assert res.fun - fstar < 1e-2 * (f0 - fstar)
    fs = res.history["f"]
    assert fs[-1] < fs[1] < fs[0]
    if method != "adam":
        assert res.history["lr"][1:] == pytest.approx([0.05] * 10 + [0.01] * 10 + [0.002] * 10, rel=1e-14)


def test_sgd_minibatch_least_squares_and_schedules():
    rng = np.random.default_rng(13)
    A = rng.standard_normal((64, 5))
    b = A @ np.arange(1.0, 6.0) + 0.01 * rng.standard_normal(64)
    prob = mo.LinearLeastSquares(A, b, batch_size=8)
    assert prob.n_batches == 8
    xs = np.linalg.lstsq(A, b, rcond=None)[0]
    res = mo.minimize_sgd(prob, np.zeros(5), learning_rate=mo.ExponentialDecayLR(0.005, decay=0.9), momentum=0.5,
                          n_epochs=40, rng=1)
    np.testing.assert_allclose(res.x, xs, atol=1e-2)
    assert res.work_units == pytest.approx(2.0 * 40)  # one forward + adjoint pass per epoch
    assert mo.ExponentialDecayLR(1.0, decay=0.5)(3) == 0.125
    assert [mo.PiecewiseConstantLR(1.0, milestones=[2, 4], factor=0.5)(e) for e in range(5)] == [1, 1, .5, .5, .25]
    # projected SGD stays in the box
    res = mo.minimize_sgd(prob, np.zeros(5), learning_rate=0.003, n_epochs=5, rng=1, lower=-1.0, upper=2.0)
    assert res.x.min() >= -1.0 and res.x.max() <= 2.0 and res.x.max() == 2.0


# --------------------------------------------------------------------------- statuses


def test_status_max_iter_and_callback_stop():
    prob = mo.Rosenbrock(2)
    res = mo.minimize_lbfgs(prob, X0_ROSEN, max_iter=3)
    assert res.status == Status.MAX_ITER and res.nit == 3 and not res.success
    assert "max_iter" in res.message
    seen = []

    def cb(x, row):
        seen.append((x.copy(), row["iter"], row["f"]))
        if row["iter"] == 2:
            raise StopIteration

    for f in (mo.minimize_newton_cg, mo.minimize_trust_region_steihaug, mo.minimize_trust_region_krylov,
              mo.minimize_nonlinear_cg, mo.minimize_steepest_descent, mo.minimize_projected_gradient):
        seen.clear()
        res = f(prob, X0_ROSEN, callback=cb)
        assert res.status == Status.CALLBACK_STOP and res.nit == 2 and [s[1] for s in seen] == [1, 2]
        np.testing.assert_array_equal(res.x, seen[-1][0])
        assert res.fun == seen[-1][2]

    def stop(x, row):
        raise StopIteration

    res = mo.minimize_sgd(prob, X0_ROSEN, learning_rate=1e-4, n_epochs=10, callback=stop)
    assert res.status == Status.CALLBACK_STOP and res.info["epochs"] == 1


@pytest.mark.parametrize("solver", ["lbfgs", "newton_cg", "sd", "ncg", "tr_steihaug", "tr_krylov", "pg"])
def test_nan_mid_run_keeps_last_good_iterate(solver):
    base = mo.Rosenbrock(2)
    prob = counting(base, nan_after=20)
    f = {"lbfgs": mo.minimize_lbfgs, "newton_cg": mo.minimize_newton_cg, "sd": mo.minimize_steepest_descent,
         "ncg": mo.minimize_nonlinear_cg, "tr_steihaug": mo.minimize_trust_region_steihaug,
         "tr_krylov": mo.minimize_trust_region_krylov, "pg": mo.minimize_projected_gradient}[solver]
    res = f(prob, X0_ROSEN)
    assert res.status == Status.NON_FINITE and "NaN" in res.message
    assert np.isfinite(res.x).all() and math.isfinite(res.fun)
    assert res.fun == pytest.approx(sopt.rosen(res.x), rel=1e-14)  # x and fun belong together
    assert res.fun < sopt.rosen(X0_ROSEN)  # progress was made before the NaNs


def test_nan_in_stochastic_run_keeps_last_good_iterate():
    A, _ = spd(4, seed=14)
    prob = NoisyQuadratic(A, np.ones(4), noise=0.0, n_batches=5)
    calls = {"n": 0}
    sg = prob.stochastic_gradient

    def bad(x, i, rng):
        calls["n"] += 1
        f, g = sg(x, i, rng)
        return (math.nan if calls["n"] > 12 else f), g

    prob.stochastic_gradient = bad
    res = mo.minimize_sgd(prob, np.ones(4), learning_rate=0.01, n_epochs=10, rng=0)
    assert res.status == Status.NON_FINITE and np.isfinite(res.x).all()
    # the iterate at the end of the last completed epoch (10 updates), the one the history describes
    assert res.nit == 10 and res.info["epochs"] == 2 and res.fun == res.history["f_batch"][-1]


def test_wrong_gradient_line_search_failed_and_radius_too_small():
    prob = counting(mo.Rosenbrock(2), grad_sign=-1.0)  # the gradient has the wrong sign
    for f in (mo.minimize_steepest_descent, mo.minimize_lbfgs, mo.minimize_newton_cg):
        res = f(prob, X0_ROSEN)
        assert res.status == Status.LINE_SEARCH_FAILED and "Taylor test" in res.message
        np.testing.assert_array_equal(res.x, X0_ROSEN)
    res = mo.minimize_trust_region_steihaug(prob, X0_ROSEN)
    assert res.status == Status.RADIUS_TOO_SMALL and not any(res.history["accepted"][1:])


def test_non_descent_direction_and_indefinite_preconditioner():
    # a non-symmetric "Hessian" for which 3 CG steps give gᵀp > 0
    H = np.array([[3.0, -1.0, 1.0], [1.0, 3.0, 3.0], [-2.0, 0.0, -2.0]])
    g0 = np.array([2.0, 2.0, -1.0])
    prob = mo.FunctionProblem(lambda x: 0.5 * x @ x + g0 @ x, lambda x: x + g0, lambda x, v: H @ v)
    opts = dict(cg_rtol=1e-14, cg_max_iter=3)
    res = mo.minimize_newton_cg(prob, np.zeros(3), on_non_descent="stop", **opts)
    assert res.status == Status.NOT_DESCENT_DIRECTION and res.nit == 0
    res = mo.minimize_newton_cg(prob, np.zeros(3), **opts)  # default: fall back to steepest descent
    assert res.success and res.history["direction"][1] == "sd"
    np.testing.assert_allclose(res.x, -g0, atol=1e-6)
    qp, xs = quadratic()
    neg = lambda r: -r  # noqa: E731  (not positive definite)
    res = mo.minimize_newton_cg(qp, np.zeros(8), preconditioner=neg, on_non_descent="stop")
    assert res.status == Status.INDEFINITE_PRECONDITIONER
    res = mo.minimize_newton_cg(qp, np.zeros(8), preconditioner=neg, max_iter=5)
    assert set(res.history["direction"][1:]) == {"sd"} and res.fun < res.history["f"][0]
    for f in (mo.minimize_trust_region_steihaug, mo.minimize_trust_region_krylov):
        assert f(qp, np.zeros(8), preconditioner=neg).status == Status.INDEFINITE_PRECONDITIONER


def test_nonfinite_x0_and_bad_problems_raise():
    prob = mo.Rosenbrock(2)
    with pytest.raises(ValueError, match="x0 contains 1 non-finite"):
        mo.minimize_lbfgs(prob, np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="x0 must be a flat 1-D"):
        mo.minimize_newton_cg(prob, np.zeros((2, 1)))
    with pytest.raises(TypeError, match="needs a problem with method"):
        mo.minimize_trust_region_steihaug(mo.FunctionProblem(sopt.rosen, sopt.rosen_der).fun, np.zeros(2))
    wrong_dtype = mo.FunctionProblem(lambda x: 0.0, lambda x: x.astype(np.float64))
    with pytest.raises(TypeError, match="returned dtype float64 for x of dtype float32"):
        mo.minimize_lbfgs(wrong_dtype, np.zeros(2, np.float32))
    with pytest.raises(TypeError, match="built without hessp"):
        mo.minimize_newton_cg(mo.FunctionProblem(sopt.rosen, sopt.rosen_der), X0_ROSEN)


@pytest.mark.parametrize("call, exc, match", [
    (lambda p, x: mo.minimize_lbfgs(p, x, max_iter=-1), ValueError, "max_iter must be >= 0"),
    (lambda p, x: mo.minimize_lbfgs(p, x, gtol=-1e-3), ValueError, r"gtol must lie in \[0.0, inf\)"),
    (lambda p, x: mo.minimize_lbfgs(p, x, c1=0.5, c2=0.4), ValueError, "c1 must be smaller than c2"),
    (lambda p, x: mo.minimize_lbfgs(p, x, memory=0), ValueError, "memory must be >= 1"),
    (lambda p, x: mo.minimize_lbfgs(p, x, verbose="yes"), TypeError, "verbose must be True or False"),
    (lambda p, x: mo.minimize_lbfgs(p, x, callback=3), TypeError, "callback must be callable"),
    (lambda p, x: mo.minimize_lbfgs(p, x, memroy=5), TypeError, "unexpected keyword argument 'memroy'"),
    (lambda p, x: mo.minimize_nonlinear_cg(p, x, beta="PRP"), ValueError, "beta must be one of"),
    (lambda p, x: mo.minimize_nonlinear_cg(p, x, beta="FR", c2=0.9), ValueError, "c2 must be < 0.5"),
    (lambda p, x: mo.minimize_newton_cg(p, x, on_non_descent="ignore"), ValueError, "on_non_descent must be"),
    (lambda p, x: mo.minimize_newton_cg(p, x, preconditioner="jacobi"), TypeError, "preconditioner must be"),
    (lambda p, x: mo.minimize_newton_cg(p, x, cg_max_iter=0), ValueError, "cg_max_iter must be >= 1"),
    (lambda p, x: mo.minimize_trust_region_steihaug(p, x, initial_radius=10.0, max_radius=1.0), ValueError,
     "initial_radius must be <= max_radius"),
    (lambda p, x: mo.minimize_trust_region_steihaug(p, x, eta=0.3), ValueError,
     r"must satisfy eta <= shrink_below < grow_above, got eta=0.3, shrink_below=0.25"),
    (lambda p, x: mo.minimize_trust_region_krylov(p, x, shrink_factor=1.0), ValueError, "shrink_factor must lie in"),
    (lambda p, x: mo.minimize_trust_region_krylov(p, x, grow_factor=1.0), ValueError, "grow_factor must"),
    (lambda p, x: mo.minimize_trust_region_krylov(p, x, initial_radius="big"), ValueError,
     "initial_radius must be a positive number or 'auto'"),
    (lambda p, x: mo.minimize_trust_region_steihaug(p, x, initial_radius="auto"), TypeError, "initial_radius"),
    (lambda p, x: mo.minimize_trust_region_krylov(p, x, krylov_dim=0), ValueError, "krylov_dim must be >= 1"),
    (lambda p, x: mo.minimize_projected_gradient(p, x, lower=1.0, upper=0.0), ValueError, "lower must be <= upper"),
    (lambda p, x: mo.minimize_projected_gradient(p, x, lower=np.zeros(3)), ValueError, r"lower must have shape \(2,\)"),
    (lambda p, x: mo.minimize_sgd(p, x, momentum=1.0), ValueError, r"momentum must lie in \[0.0, 1.0\)"),
    (lambda p, x: mo.minimize_sgd(p, x, nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
    (lambda p, x: mo.minimize_sgd(p, x, learning_rate=-0.1), ValueError, "learning_rate must lie in"),
    (lambda p, x: mo.minimize_sgd(p, x, learning_rate=lambda e: 0.0), ValueError, "schedule returned 0.0"),
    (lambda p, x: mo.minimize_adam(p, x, beta2=1.0), ValueError, "beta2 must lie in"),
    (lambda p, x: mo.minimize_adam(p, x, rng="seed"), TypeError, "rng must be None, an int seed"),
    (lambda p, x: mo.PiecewiseConstantLR(0.1, milestones=[5, 3]), ValueError, "strictly increasing"),
    (lambda p, x: mo.Rosenbrock(2, hessian="bfgs"), ValueError, "hessian must be one of"),
    (lambda p, x: mo.QuadraticProblem(np.array([[1.0, 2.0], [0.0, 1.0]]), np.ones(2)), ValueError, "symmetric"),
])
def test_bad_options_raise(call, exc, match):
    with pytest.raises(exc, match=match):
        call(mo.Rosenbrock(2), X0_ROSEN.copy())


# --------------------------------------------------------------------------- backends


@pytest.mark.parametrize("xp_name", XP_PARAMS)
def test_solvers_on_backend(xp_name):
    xp = get_xp(xp_name)
    A, _ = spd(6, cond=10.0, seed=15)
    b = np.arange(1.0, 7.0)
    xs = np.linalg.solve(A, b)
    for dtype, tol in ((np.float64, 1e-8), (np.float32, 1e-3)):
        prob = mo.QuadraticProblem(xp.asarray(A, dtype=dtype), xp.asarray(b, dtype=dtype))
        x0 = xp.zeros(6, dtype=dtype)
        for f in (mo.minimize_lbfgs, mo.minimize_newton_cg, mo.minimize_trust_region_steihaug,
                  mo.minimize_trust_region_krylov):
            res = f(prob, x0, gtol=1e-4 if dtype == np.float32 else 1e-10)
            assert type(res.x) is type(x0) and res.x.dtype == dtype and res.success, res
            np.testing.assert_allclose(to_numpy(res.x), xs, rtol=tol, atol=tol)
        res = mo.minimize_projected_newton_cg(prob, x0, lower=0.0, upper=1.0, gtol=1e-4)
        assert type(res.x) is type(x0) and float(res.x.min()) >= 0.0 and float(res.x.max()) <= 1.0
        res = mo.minimize_adam(prob, x0, learning_rate=0.1, n_epochs=20, lower=-1.0, upper=1.0)
        assert type(res.x) is type(x0) and res.x.dtype == dtype
    lls = mo.LinearLeastSquares(xp.asarray(np.vstack([A, A])), xp.asarray(np.concatenate([b, b])), batch_size=4)
    res = mo.minimize_sgd(lls, xp.zeros(6), learning_rate=0.002, n_epochs=3, rng=0)
    assert type(res.x) is type(x0) and res.fun < lls.value(xp.zeros(6))[0]


# --------------------------------------------------------------------------- printing and history

ALL_SOLVERS = {
    "sgd": lambda p, x, **kw: mo.minimize_sgd(p, x, learning_rate=1e-3, n_epochs=3, **kw),
    "adam": lambda p, x, **kw: mo.minimize_adam(p, x, n_epochs=3, eval_full=True, **kw),
    "sd": lambda p, x, **kw: mo.minimize_steepest_descent(p, x, max_iter=5, **kw),
    "lbfgs": lambda p, x, **kw: mo.minimize_lbfgs(p, x, **kw),
    "ncg": lambda p, x, **kw: mo.minimize_nonlinear_cg(p, x, **kw),
    "newton_cg": lambda p, x, **kw: mo.minimize_newton_cg(p, x, **kw),
    "tr_steihaug": lambda p, x, **kw: mo.minimize_trust_region_steihaug(p, x, **kw),
    "tr_krylov": lambda p, x, **kw: mo.minimize_trust_region_krylov(p, x, **kw),
    "pg": lambda p, x, **kw: mo.minimize_projected_gradient(p, x, lower=-2.0, upper=2.0, max_iter=5, **kw),
    "pnewton": lambda p, x, **kw: mo.minimize_projected_newton_cg(p, x, lower=-2.0, upper=2.0, **kw),
}


@pytest.mark.parametrize("name", list(ALL_SOLVERS))
def test_verbose_prints_table_and_quiet_prints_nothing(name, capsys):
    prob = mo.Rosenbrock(2)
    res = ALL_SOLVERS[name](prob, X0_ROSEN)
    assert capsys.readouterr().out == ""
    res_v = ALL_SOLVERS[name](prob, X0_ROSEN, verbose=True)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("== ") and "work" in out[1]
    n_rows = len(res_v.history)
    assert len(out) >= 2 + n_rows and out[2 + n_rows].startswith(res_v.solver)
    first = out[2].split()
    assert first[0] == "0" and (name == "sgd" or "2.4200000e+01" in first)
    assert res_v.nit == res.nit  # printing does not change the run


def test_history_export_and_result_summary(tmp_path):
    res = mo.minimize_trust_region_steihaug(mo.Rosenbrock(2), X0_ROSEN)
    d = res.history.to_dict()
    assert d["iter"] == list(range(res.nit + 1)) and d["f"][0] == pytest.approx(24.2, rel=1e-14)
    assert set(["f", "grad_norm", "radius", "rho", "accepted", "work_units", "time"]) <= set(res.history.columns)
    path = tmp_path / "hist.csv"
    res.history.to_csv(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == res.nit + 1 and float(rows[-1]["f"]) == pytest.approx(res.fun, rel=1e-12)
    assert res.history.to_csv() == path.read_text()
    assert res.history["f"][-1] == res.fun and res.history[0]["iter"] == 0
    s = str(res)
    assert "converged_gtol" in s and "work units" in s and f"nit = {res.nit}" in s
    assert Status.CONVERGED_GTOL == "converged_gtol" and Status.NON_FINITE.message.startswith("stopped")


# --------------------------------------------------------------------------- line searches


def test_line_searches_satisfy_their_conditions():
    phi = lambda a: (a - 2.0) ** 4 - 3.0 * a  # noqa: E731
    dphi = lambda a: 4.0 * (a - 2.0) ** 3 - 3.0  # noqa: E731
    f0, s0 = phi(0.0), dphi(0.0)
    ls = mo.strong_wolfe(lambda a: (phi(a), dphi(a), a), f0, s0, alpha0=0.01, c1=1e-4, c2=0.1)
    assert ls.success and ls.curvature
    assert phi(ls.alpha) <= f0 + 1e-4 * ls.alpha * s0 and abs(dphi(ls.alpha)) <= 0.1 * abs(s0)
    ls = mo.armijo_backtracking(lambda a: (phi(a), a), f0, s0, alpha0=10.0)
    assert ls.success and phi(ls.alpha) <= f0 + 1e-4 * ls.alpha * s0 and ls.n_eval > 1
    # NaN trials count as too long
    ls = mo.armijo_backtracking(lambda a: (math.nan if a > 1 else phi(a), a), f0, s0, alpha0=64.0)
    assert ls.success and ls.alpha <= 1.0
    ls = mo.strong_wolfe(lambda a: (math.nan, None, a), f0, s0)
    assert not ls.success and ls.non_finite
    with pytest.raises(ValueError, match="slope must be negative"):
        mo.armijo_backtracking(lambda a: (phi(a), a), f0, 1.0)


def test_line_searches_in_the_rounding_band():
    # φ(α) = 1 + 1e-20 (α² - 2α): the decrease is far below the rounding of φ(0) = 1
    phi = lambda a: 1.0 + 1e-20 * (a * a - 2.0 * a)  # noqa: E731
    dphi = lambda a: 1e-20 * (2.0 * a - 2.0)  # noqa: E731
    s0 = dphi(0.0)
    assert not mo.armijo_backtracking(lambda a: (phi(a), a), 1.0, s0).success  # values alone: no decrease
    ls = mo.armijo_backtracking(lambda a: (phi(a), a), 1.0, s0, dphi=lambda a, _: dphi(a), f_tol=1e-14)
    assert ls.success and ls.alpha == 1.0
    ls = mo.strong_wolfe(lambda a: (phi(a), dphi(a), a), 1.0, s0, f_tol=1e-14)
    assert ls.success and ls.curvature and ls.alpha == 1.0
    # a wrong derivative does not fool it: the first trial is clearly worse, the estimate is switched off
    bad = lambda a: 1.0 + 1e-3 * a  # noqa: E731
    ls = mo.armijo_backtracking(lambda a: (bad(a), a), 1.0, -1e-3, dphi=lambda a, _: -1e-3, f_tol=1e-14,
                                max_backtracks=60)
    assert not ls.success


# --------------------------------------------------------------------------- messages and labels fit the solver

GN_ROSEN = mo.Rosenbrock(2, hessian="gauss_newton")
SECOND_ORDER = {
    "newton_cg": (lambda p, x, **kw: mo.minimize_newton_cg(p, x, cg_max_iter=2, **kw), "cg_max_iter = 2"),
    "pnewton": (lambda p, x, **kw: mo.minimize_projected_newton_cg(p, x, lower=-2.0, upper=2.0, cg_max_iter=2,
                                                                   **kw), "cg_max_iter = 2"),
    "tr_steihaug": (lambda p, x, **kw: mo.minimize_trust_region_steihaug(p, x, cg_max_iter=2, **kw),
                    "cg_max_iter = 2"),
    "tr_krylov": (lambda p, x, **kw: mo.minimize_trust_region_krylov(p, x, krylov_dim=2, **kw), "krylov_dim = 2"),
}


def jacobi(r):
    return 0.5 * r


@pytest.mark.parametrize("name", list(SECOND_ORDER))
def test_second_order_max_iter_message_fits_the_solver(name):
    run, inner = SECOND_ORDER[name]
    res = run(GN_ROSEN, X0_ROSEN, max_iter=2)
    assert res.status == Status.MAX_ITER and not res.success
    assert "second-order method" not in res.message  # it is one
    assert "max_iter" in res.message and inner in res.message
    assert "a preconditioner" in res.message  # it ran without one
    qp = mo.QuadraticProblem(spd(6, cond=100.0)[0], np.ones(6), preconditioner=jacobi)
    res = run(qp, np.zeros(6), max_iter=1, gtol=1e-12)
    assert res.status == Status.MAX_ITER and inner in res.message
    assert "a preconditioner" not in res.message  # it ran with one
    assert res.info["preconditioner"] == "the problem's (jacobi)" and res.info["n_precond"] > 0


def test_first_order_max_iter_messages_suggest_better_methods():
    for f in (mo.minimize_steepest_descent, mo.minimize_lbfgs, mo.minimize_nonlinear_cg):
        res = f(GN_ROSEN, X0_ROSEN, max_iter=2)
        assert res.status == Status.MAX_ITER and "second-order method" in res.message
        assert "cg_max_iter" not in res.message and "preconditioner" not in res.message
    res = mo.minimize_projected_gradient(GN_ROSEN, X0_ROSEN, lower=-2.0, upper=2.0, max_iter=2)
    assert "minimize_projected_newton_cg" in res.message


def test_other_stop_messages_fit_the_solver():
    nan_late = counting(mo.Rosenbrock(2), nan_after=8)
    res = mo.minimize_newton_cg(nan_late, X0_ROSEN)
    assert res.status == Status.NON_FINITE and "max_step" in res.message and "learning rate" not in res.message
    res = mo.minimize_trust_region_krylov(counting(mo.Rosenbrock(2), nan_after=8), X0_ROSEN)
    assert res.status == Status.NON_FINITE and "initial_radius" in res.message
    A, _ = spd(4, seed=14)
    prob = NoisyQuadratic(A, np.ones(4), noise=0.0, n_batches=2)
    prob.stochastic_gradient = lambda x, i, rng: (math.nan, x)
    res = mo.minimize_adam(prob, np.ones(4))
    assert res.status == Status.NON_FINITE and "learning rate" in res.message and "Hessian" not in res.message
    # not a descent direction: a Gauss-Newton problem is not told to use a Gauss-Newton Hessian
    H = np.array([[3.0, -1.0, 1.0], [1.0, 3.0, 3.0], [-2.0, 0.0, -2.0]])
    g0 = np.array([2.0, 2.0, -1.0])
    opts = dict(cg_rtol=1e-14, cg_max_iter=3, on_non_descent="stop")
    for hessian, told in (("gauss_newton", False), ("exact", True)):
        prob = mo.FunctionProblem(lambda x: 0.5 * x @ x + g0 @ x, lambda x: x + g0, lambda x, v: H @ v,
                                  hessian=hessian)
        res = mo.minimize_newton_cg(prob, np.zeros(3), **opts)
        assert res.status == Status.NOT_DESCENT_DIRECTION and "dot test" in res.message
        assert ("use a Gauss-Newton Hessian" in res.message) == told
    # a failed projected line search does not recommend the (unconstrained) trust-region methods
    wrong = counting(mo.Rosenbrock(2), grad_sign=-1.0)
    res = mo.minimize_projected_gradient(wrong, X0_ROSEN, lower=-2.0, upper=2.0)
    assert res.status == Status.LINE_SEARCH_FAILED and "trust-region" not in res.message
    res = mo.minimize_lbfgs(wrong, X0_ROSEN)
    assert res.status == Status.LINE_SEARCH_FAILED and "trust-region" in res.message


def test_success_only_when_the_solver_did_what_was_asked():
    assert [s.value for s in Status if s.success] == ["converged_gtol", "converged_ftol", "completed"]
    def stop(x, row):
        raise StopIteration

    assert not mo.minimize_lbfgs(mo.Rosenbrock(2), X0_ROSEN, callback=stop).success
    assert mo.minimize_lbfgs(mo.Rosenbrock(2), X0_ROSEN).success


def header(capsys):
    return capsys.readouterr().out.splitlines()[0]


def test_header_names_the_solver_its_preconditioner_and_options(capsys):
    res = mo.minimize_newton_cg(GN_ROSEN, X0_ROSEN, cg_max_iter=2, max_iter=3, verbose=True)
    assert header(capsys) == ("== Gauss-Newton-CG (n = 2, preconditioner = none, cg_max_iter = 2, "
                              "cg_rtol = min(0.5, sqrt|g|), max_iter = 3, gtol = 1e-05) ==")
    assert res.solver == "Gauss-Newton-CG"
    res = mo.minimize_newton_cg(mo.Rosenbrock(2), X0_ROSEN, max_iter=3, verbose=True)
    assert header(capsys).startswith("== Newton-CG (n = 2, preconditioner = none, cg_max_iter = 2,")
    label = "GNvpro (Gauss-Newton-PCG, reduced objective)"
    res = mo.minimize_newton_cg(GN_ROSEN, X0_ROSEN, preconditioner=jacobi, cg_max_iter=5, max_iter=3, verbose=True,
                                label=label)
    assert header(capsys).startswith(f"== {label} (n = 2, preconditioner = given callable (jacobi), "
                                     "cg_max_iter = 5,")
    assert res.solver == label and res.info["preconditioner"] == "given callable (jacobi)"
    qp = mo.QuadraticProblem(spd(4)[0], np.ones(4), preconditioner=jacobi)
    res = mo.minimize_newton_cg(qp, np.zeros(4), verbose=True)
    assert header(capsys).startswith("== Newton-PCG (n = 4, preconditioner = the problem's (jacobi),")
    res = mo.minimize_newton_cg(qp, np.zeros(4), preconditioner=False, verbose=True)
    assert header(capsys).startswith("== Newton-CG (n = 4, preconditioner = none,")
    res = mo.minimize_trust_region_steihaug(GN_ROSEN, X0_ROSEN, cg_max_iter=2, max_iter=3, verbose=True)
    assert header(capsys).startswith("== trust-region Gauss-Newton Steihaug-CG (n = 2, preconditioner = none, "
                                     "cg_max_iter = 2, initial_radius = 1, max_iter = 3,")
    res = mo.minimize_trust_region_krylov(GN_ROSEN, X0_ROSEN, krylov_dim=2, max_iter=3, verbose=True)
    assert header(capsys).startswith("== trust-region Gauss-Newton-Krylov (Lanczos) (n = 2, preconditioner = none, "
                                     "krylov_dim = 2,")
    res = mo.minimize_projected_newton_cg(GN_ROSEN, X0_ROSEN, lower=-2.0, upper=2.0, max_iter=3, verbose=True)
    assert header(capsys).startswith("== projected Gauss-Newton-CG (n = 2, preconditioner = none, bounds = [-2, 2],")
    res = mo.minimize_sgd(GN_ROSEN, X0_ROSEN, learning_rate=1e-4, momentum=0.9, n_epochs=2, verbose=True)
    assert header(capsys) == ("== SGD (n = 2, n_batches = 1, learning_rate = 0.0001, momentum = 0.9, n_epochs = 2, "
                              "eval_full = False) ==")


def test_header_of_a_network_objective_shows_its_preconditioner(capsys):
    from tests.test_objectives import random_x, tiny_problem

    obj = tiny_problem("softmax", preconditioner="regularizer")
    res = mo.minimize_newton_cg(obj, random_x(obj), max_iter=1, cg_max_iter=3, verbose=True)
    line = header(capsys)
    assert "preconditioner = the problem's (regularizer)" in line and "cg_max_iter = 3" in line
    assert line.startswith(f"== {res.solver} (") and res.info["n_precond"] > 0


@pytest.mark.parametrize("name", list(ALL_SOLVERS))
def test_every_solver_takes_a_label(name, capsys):
    res = ALL_SOLVERS[name](mo.Rosenbrock(2), X0_ROSEN, verbose=True, label="my solver")
    assert res.solver == "my solver" and header(capsys).startswith("== my solver (n = 2")
    with pytest.raises(TypeError, match="label must be a string"):
        ALL_SOLVERS[name](mo.Rosenbrock(2), X0_ROSEN, label=3)
    with pytest.raises(ValueError, match="label must be a non-empty single line"):
        ALL_SOLVERS[name](mo.Rosenbrock(2), X0_ROSEN, label=" ")
