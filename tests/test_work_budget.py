"""``max_work_units``: every solver stops on a budget of work units (forward + adjoint passes, Newman et
al. 2020), within one iteration of it; SGD/Adam spend exactly 2 per epoch; a radius rule with other
constants is followed exactly."""

import math

import numpy as np
import pytest

from meganet import optimizers as mo
from meganet.objectives import NetworkObjective
from tests.test_objectives import tiny_problem

SOLVERS = {
    "newton_cg": lambda p, x, **k: mo.minimize_newton_cg(p, x, cg_max_iter=5, **k),
    "steihaug": lambda p, x, **k: mo.minimize_trust_region_steihaug(p, x, cg_max_iter=5, **k),
    "krylov": lambda p, x, **k: mo.minimize_trust_region_krylov(p, x, krylov_dim=5, **k),
    "lbfgs": lambda p, x, **k: mo.minimize_lbfgs(p, x, **k),
    "nonlinear_cg": lambda p, x, **k: mo.minimize_nonlinear_cg(p, x, **k),
    "steepest_descent": lambda p, x, **k: mo.minimize_steepest_descent(p, x, **k),
    "projected_gradient": lambda p, x, **k: mo.minimize_projected_gradient(p, x, lower=-10.0, upper=10.0, **k),
    "projected_newton_cg": lambda p, x, **k: mo.minimize_projected_newton_cg(p, x, lower=-10.0, upper=10.0,
                                                                             cg_max_iter=5, **k),
    "sgd": lambda p, x, **k: mo.minimize_sgd(p, x, learning_rate=0.05, n_epochs=k.pop("max_iter"), rng=0, **k),
    "adam": lambda p, x, **k: mo.minimize_adam(p, x, learning_rate=0.01, n_epochs=k.pop("max_iter"), rng=0, **k),
}


def problem(batch=None):
    return tiny_problem("softmax", np.float64, n=24, alpha=1e-3, batch_size=batch)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_stops_within_one_iteration_of_the_budget(name):
    batch = 6 if name in ("sgd", "adam") else None
    p = problem(batch)
    x0 = p.init_x(rng=0)
    free = SOLVERS[name](p, x0, max_iter=40, gtol=0.0) if name not in ("sgd", "adam") else \
        SOLVERS[name](p, x0, max_iter=40)
    w = free.history.to_dict()["work_units"]
    per_iter = max(b - a for a, b in zip(w, w[1:]))
    budget = 0.5 * free.work_units
    p2 = problem(batch)
    kw = dict(max_iter=40, max_work_units=budget)
    if name not in ("sgd", "adam"):
        kw["gtol"] = 0.0
    res = SOLVERS[name](p2, x0, **kw)
    assert res.status.value == "max_work_units", res.message
    assert budget <= res.work_units < budget + per_iter + 1e-9
    assert res.work_units < free.work_units
    assert "work-unit budget max_work_units" in res.message


@pytest.mark.parametrize("name", ["sgd", "adam"])
@pytest.mark.parametrize("eval_full", [False, True])
def test_stochastic_methods_spend_two_work_units_per_epoch(name, eval_full):
    p = problem(batch=5)  # 24 examples in batches of 5: the last batch is smaller, still one pass per epoch
    fn = mo.minimize_sgd if name == "sgd" else mo.minimize_adam
    res = fn(p, p.init_x(rng=0), learning_rate=0.01, n_epochs=7, rng=0, eval_full=eval_full)
    assert res.work_units == pytest.approx(14.0, rel=1e-12)
    assert p.counter.work_units == pytest.approx(14.0, rel=1e-12)
    epochs = res.history.to_dict()["work_units"]
    assert epochs == pytest.approx([2.0 * e for e in range(8)])


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1.0, ValueError), (math.nan, ValueError),
                                      (math.inf, ValueError), ("10", TypeError), (True, TypeError)])
def test_bad_budgets_are_refused(bad, exc):
    p = problem()
    with pytest.raises(exc, match="max_work_units"):
        mo.minimize_lbfgs(p, p.init_x(rng=0), max_work_units=bad)


def test_a_budget_needs_a_problem_that_counts_work():
    q = mo.QuadraticProblem(np.diag([1.0, 2.0]), np.ones(2))
    q.counter = None
    with pytest.raises(ValueError, match="max_work_units = 5 needs a problem that counts its work"):
        mo.minimize_newton_cg(q, np.zeros(2), max_work_units=5)


def test_radius_rule_with_other_constants_is_followed():
    """The recorded radii follow shrink_below / grow_above / shrink_factor / grow_factor exactly."""
    p = problem()
    res = mo.minimize_trust_region_krylov(p, p.init_x(rng=1), krylov_dim=4, max_iter=30, initial_radius=0.05,
                                          eta=0.01, shrink_below=0.2, grow_above=0.6, shrink_factor=0.3,
                                          grow_factor=1.7)
    h = res.history.to_dict()
    n = len(h["iter"])
    checked = 0
    for k in range(1, n - 1):
        if h["rho"][k] is None or h["radius"][k + 1] is None:
            continue
        r, p_norm, rho = h["radius"][k], h["step_norm"][k], h["rho"][k]
        on_boundary = h["sigma"][k] > 0.0 or abs(p_norm - r) <= 1e-8 * r
        if rho < 0.2:
            expect = 0.3 * min(r, p_norm)
        elif rho > 0.6 and on_boundary:
            expect = min(1.7 * r, 1000.0)  # max_radius
        else:
            expect = r
        assert h["radius"][k + 1] == pytest.approx(expect, rel=1e-12), (k, rho, r, p_norm)
        assert h["accepted"][k] == (rho > 0.01)
        checked += 1
    assert checked >= 5
    assert any(rho < 0.2 for rho in h["rho"][1:-1])  # the shrink branch ran (and rejections: rho < eta)
    assert any(not a for a in h["accepted"][1:])
    assert any(h["radius"][k + 1] == pytest.approx(1.7 * h["radius"][k]) for k in range(1, n - 1)
               if h["radius"][k + 1] is not None)


def test_initial_radius_auto_takes_the_subspace_newton_step_on_a_quadratic():
    A = np.diag([1.0, 3.0, 10.0])
    b = np.array([1.0, -2.0, 0.5])
    q = mo.QuadraticProblem(A, b)
    res = mo.minimize_trust_region_krylov(q, np.zeros(3), initial_radius="auto", krylov_dim=3, max_iter=1,
                                          krylov_rtol=1e-14)
    cand = [np.linalg.solve(A, b), -np.linalg.solve(A, b)]  # whichever sign convention QuadraticProblem uses
    xstar = min(cand, key=lambda x: np.linalg.norm(q.value_and_gradient(x)[1]))
    assert np.allclose(res.x, xstar, rtol=1e-10, atol=1e-12)
    assert res.history.to_dict()["radius"][1] == pytest.approx(np.linalg.norm(xstar), rel=1e-10)


def test_budget_checked_before_the_first_iteration_and_named_in_header_and_message(capsys):
    p = problem()
    res = mo.minimize_lbfgs(p, p.init_x(rng=0), max_work_units=1.5, verbose=True)  # f and g at x0 cost 2
    assert res.status.value == "max_work_units" and res.nit == 0 and res.work_units == pytest.approx(2.0)
    out = capsys.readouterr().out
    assert "max_work_units = 1.5" in out.splitlines()[0]
    assert "max_work_units = 1.5, spent 2 work units" in res.message


def test_trust_region_header_shows_the_radius_rule(capsys):
    p = problem()
    mo.minimize_trust_region_steihaug(p, p.init_x(rng=0), max_iter=1, eta=0.05, shrink_below=0.1, grow_factor=1.5,
                                      max_radius=math.inf, verbose=True)
    head = capsys.readouterr().out.splitlines()[0]
    for text in ("max_radius = inf", "eta = 0.05", "shrink_below = 0.1", "grow_above = 0.75", "shrink_factor = 0.25",
                 "grow_factor = 1.5"):
        assert text in head, head


@pytest.mark.parametrize("kw, match", [
    (dict(shrink_below=0.8), "eta <= shrink_below < grow_above"),
    (dict(eta=0.2, shrink_below=0.1), "eta <= shrink_below"),
    (dict(grow_above=1.0), r"grow_above must lie in \[0.0, 1.0\)"),
    (dict(shrink_factor=0.0), "shrink_factor must lie in"),
    (dict(grow_factor=0.9), "grow_factor must lie in"),
    (dict(initial_radius="auto"), "initial_radius"),
])
def test_bad_radius_rules_are_refused(kw, match):
    q = mo.QuadraticProblem(np.diag([1.0, 2.0]), np.ones(2))
    exc = TypeError if kw.get("initial_radius") == "auto" else ValueError
    with pytest.raises(exc, match=match):
        mo.minimize_trust_region_steihaug(q, np.zeros(2), **kw)


def test_eval_full_is_not_work_without_a_counter_either():
    class Plain:  # no counter, no mini-batches: work = value and gradient calls
        def value_and_gradient(self, x):
            return float(x @ x), 2.0 * x, None

    res = mo.minimize_sgd(Plain(), np.ones(2), learning_rate=0.1, n_epochs=5, eval_full=True)
    assert res.work_units == pytest.approx(10.0)  # one full-batch value and gradient per epoch


def test_initial_radius_auto_falls_back_to_one_when_the_model_is_not_convex():
    q = mo.QuadraticProblem(np.diag([-1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0]))
    res = mo.minimize_trust_region_krylov(q, np.zeros(3), initial_radius="auto", krylov_dim=3, max_iter=1)
    assert res.history.to_dict()["radius"][1] == 1.0
    assert res.history.to_dict()["step_norm"][1] == pytest.approx(1.0)


def test_initial_radius_auto_is_capped_by_max_radius():
    A = np.diag([1.0, 3.0, 10.0])
    q = mo.QuadraticProblem(A, np.array([10.0, -20.0, 5.0]))
    res = mo.minimize_trust_region_krylov(q, np.zeros(3), initial_radius="auto", max_radius=2.0, krylov_dim=3,
                                          max_iter=1)
    h = res.history.to_dict()
    assert h["radius"][1] == 2.0 and h["step_norm"][1] == pytest.approx(2.0)


def test_subproblem_with_an_infinite_radius():
    H = np.diag([2.0, 4.0])
    g = np.array([1.0, 1.0])
    sol = mo.solve_trust_region_subproblem(H, g, math.inf)
    assert np.allclose(sol.p, [-0.5, -0.25]) and sol.sigma == 0.0 and not sol.hits_boundary
    bad = mo.solve_trust_region_subproblem(np.diag([-1.0, 1.0]), g, math.inf)
    assert np.isnan(bad.p).all()


def test_a_budget_met_exactly_stops_the_run():
    """Spent work equal to the budget stops the run (the test is ``work >= max_work_units``; Meganet.m
    trnewton's ``workUnits <= maxWorkUnits`` would go on at equality): L-BFGS spends 2 units at x0, SGD
    2 epochs of 4 mini-batches (exactly 4 units)."""
    p = problem()
    res = mo.minimize_lbfgs(p, p.init_x(rng=0), max_work_units=2.0)
    assert res.status.value == "max_work_units" and res.nit == 0 and res.work_units == 2.0
    p = problem(batch=6)
    res = mo.minimize_sgd(p, p.init_x(rng=0), learning_rate=0.05, n_epochs=10, rng=0, max_work_units=4.0)
    assert res.status.value == "max_work_units" and res.info["epochs"] == 2
    assert res.work_units == pytest.approx(4.0, rel=1e-12)


@pytest.mark.parametrize("name", ["steihaug", "krylov"])
def test_radius_rule_and_acceptance_recomputed_on_rosenbrock(name):
    """Both public trust-region minimizers follow the rule with non-default constants: every next radius
    (and the final ``info["radius"]``) is recomputed from the recorded rho, radius, |p| and boundary flag,
    and a step is accepted iff rho > eta; the run has steps with 0 < rho <= eta (rejected although f
    decreased), so an acceptance test on another threshold would be caught."""
    eta, below, above, down, up = 0.1, 0.2, 0.5, 0.4, 3.0
    fn = mo.minimize_trust_region_steihaug if name == "steihaug" else mo.minimize_trust_region_krylov
    extra = {} if name == "steihaug" else dict(krylov_dim=2)
    res = fn(mo.Rosenbrock(2), np.array([-1.2, 1.0]), initial_radius=1.0, max_radius=1e3, eta=eta,
             shrink_below=below, grow_above=above, shrink_factor=down, grow_factor=up, max_iter=200, **extra)
    assert res.status.value == "converged_gtol", res.message
    h = res.history.to_dict()
    rows = [k for k in range(1, len(h["iter"])) if h["rho"][k] is not None]
    assert len(rows) == res.nit >= 20
    info = h["cg_info"] if "cg_info" in h else [None] * len(h["iter"])
    sigma = h["sigma"] if "sigma" in h else [0.0] * len(h["iter"])
    for k in rows:
        r, p_norm, rho = h["radius"][k], h["step_norm"][k], h["rho"][k]
        on_boundary = info[k] in ("boundary", "negative_curvature") or sigma[k] > 0.0 or abs(p_norm - r) <= 1e-8 * r
        if rho < below:
            expect = down * min(r, p_norm)
        elif rho > above and on_boundary:
            expect = min(up * r, 1e3)
        else:
            expect = r
        nxt = h["radius"][k + 1] if k + 1 < len(h["iter"]) and h["radius"][k + 1] is not None else res.info["radius"]
        assert nxt == pytest.approx(expect, rel=1e-12), (k, rho, r, p_norm)
        assert h["accepted"][k] == (rho > eta), (k, rho)
    assert any(0.0 < h["rho"][k] <= eta for k in rows)
    assert any(h["rho"][k] > above and h["radius"][k + 1] == pytest.approx(up * h["radius"][k]) for k in rows[:-1])


def test_initial_radius_auto_takes_the_newton_step_in_a_smaller_krylov_space():
    """With krylov_dim = 2 < n the "auto" first step is the Newton step restricted to span{g, Ag}
    (p = −Q (QᵀAQ)⁻¹ Qᵀg), not the full Newton step, and its length is the first radius."""
    A = np.diag([1.0, 2.0, 4.0, 7.0, 11.0])
    q = mo.QuadraticProblem(A, np.array([1.0, -1.0, 2.0, 0.5, -3.0]))
    x0 = np.zeros(5)
    g = q.value_and_gradient(x0)[1]
    Q, _ = np.linalg.qr(np.column_stack([g, A @ g]))
    p = -Q @ np.linalg.solve(Q.T @ A @ Q, Q.T @ g)
    assert np.linalg.norm(p - (-np.linalg.solve(A, g))) > 0.1  # not the full Newton step
    res = mo.minimize_trust_region_krylov(q, x0, initial_radius="auto", krylov_dim=2, krylov_rtol=1e-14, max_iter=1)
    h = res.history.to_dict()
    assert h["accepted"][1] and h["sigma"][1] == 0.0
    assert np.allclose(res.x - x0, p, rtol=1e-10, atol=1e-12)
    assert h["radius"][1] == pytest.approx(np.linalg.norm(p), rel=1e-10)
