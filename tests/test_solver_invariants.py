"""Every solver, every status it can end with: the result describes one point.

The invariant (issue 9, item 12): ``result.fun == f(result.x)`` and the last
history row describes ``result.x`` — its ``f`` and ``grad_norm`` are the
result's, its iteration (epoch) count is ``result.nit`` (``info["epochs"]``)
and its work units are ``result.work_units``.  Stochastic runs without
``eval_full`` have no full objective: their ``fun`` is the mean mini-batch loss
of the last completed epoch, ``f_batch`` of the last row (NaN before the first
epoch).

Each solver is driven to each status it can reach on small problems: a
quadratic, Rosenbrock, a problem whose values (or Hessian products, or
mini-batch losses) turn NaN after ``k`` calls, a gradient with the wrong sign,
a non-symmetric "Hessian", a negative definite preconditioner, a callback that
raises ``StopIteration`` and a callback that writes into ``x``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import meganet.optimizers as mo
from meganet.optimizers import Status

X0_ROSEN = np.array([-1.2, 1.0])
SUCCESS = {Status.CONVERGED_GTOL, Status.CONVERGED_FTOL, Status.COMPLETED}


# --------------------------------------------------------------------------- problems


def quadratic(n=6, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (Q * np.geomspace(1.0, 10.0, n)) @ Q.T
    return mo.QuadraticProblem(0.5 * (A + A.T), np.arange(1.0, n + 1.0))


def least_squares():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((32, 5))
    return mo.LinearLeastSquares(A, A @ np.arange(1.0, 6.0), batch_size=8)


class Faulty(mo.Problem):
    """Wrap a problem: values, Hessian products or mini-batch losses turn NaN after ``k`` calls; the
    gradient may get the wrong sign.  Work is counted by the wrapped problem's counter."""

    def __init__(self, base, *, nan_value_after=None, nan_hessp_after=None, nan_batch_after=None, grad_sign=1.0):
        self.base, self.counter = base, base.counter
        self.nan_value_after, self.nan_hessp_after, self.nan_batch_after = nan_value_after, nan_hessp_after, \
            nan_batch_after
        self.grad_sign = grad_sign
        self.calls = dict(value=0, hessp=0, batch=0)
        if hasattr(base, "stochastic_gradient"):
            self.n_batches = base.n_batches
            self.shuffle = base.shuffle

    @staticmethod
    def _after(limit, n):
        return limit is not None and n > limit

    def value(self, x):
        self.calls["value"] += 1
        f, state = self.base.value(x)
        return (math.nan if self._after(self.nan_value_after, self.calls["value"]) else f), state

    def gradient(self, x, state):
        return self.grad_sign * self.base.gradient(x, state)

    def value_and_gradient(self, x):
        f, state = self.value(x)
        return f, self.gradient(x, state), state

    def hessian_matvec(self, x, v, state):
        self.calls["hessp"] += 1
        Hv = self.base.hessian_matvec(x, v, state)
        return Hv * math.nan if self._after(self.nan_hessp_after, self.calls["hessp"]) else Hv

    def stochastic_gradient(self, x, batch_index, rng):
        self.calls["batch"] += 1
        f, g = self.base.stochastic_gradient(x, batch_index, rng)
        return (math.nan if self._after(self.nan_batch_after, self.calls["batch"]) else f), g


def nonsymmetric():
    """A "Hessian" for which 3 CG steps give gᵀp > 0 (Newton-CG: not a descent direction)."""
    H = np.array([[3.0, -1.0, 1.0], [1.0, 3.0, 3.0], [-2.0, 0.0, -2.0]])
    g0 = np.array([2.0, 2.0, -1.0])
    return mo.FunctionProblem(lambda x: 0.5 * x @ x + g0 @ x, lambda x: x + g0, lambda x, v: H @ v)


def negative(r):
    return -r


# --------------------------------------------------------------------------- solvers

DETERMINISTIC = {
    "sd": mo.minimize_steepest_descent,
    "lbfgs": mo.minimize_lbfgs,
    "ncg": mo.minimize_nonlinear_cg,
    "newton_cg": mo.minimize_newton_cg,
    "pg": lambda p, x, **kw: mo.minimize_projected_gradient(p, x, lower=-5.0, upper=5.0, **kw),
    "pnewton": lambda p, x, **kw: mo.minimize_projected_newton_cg(p, x, lower=-5.0, upper=5.0, **kw),
    "tr_steihaug": mo.minimize_trust_region_steihaug,
    "tr_krylov": mo.minimize_trust_region_krylov,
}
SECOND_ORDER = ("newton_cg", "pnewton", "tr_steihaug", "tr_krylov")
TRUST_REGION = ("tr_steihaug", "tr_krylov")
STOCHASTIC = {"sgd": mo.minimize_sgd, "adam": mo.minimize_adam}


def stop_at(k, key="iter"):
    def callback(x, row):
        if row[key] >= k:
            raise StopIteration
    return callback


def write_into_x(x, row):
    """A careless callback: it writes into the iterate it was given."""
    try:
        x[...] = 1e3
    except ValueError:  # a read-only view: the solver protected its iterate
        pass


def deterministic_case(solver, scenario):
    """``(problem, f, x0, options, status)``; ``f`` is the objective to compare ``result.fun`` with."""
    rosen = mo.Rosenbrock(2)
    quad = quadratic()
    f_rosen = lambda x: mo.Rosenbrock(2).value(x)[0]  # noqa: E731  (uncounted)
    f_quad = lambda x: quadratic().value(x)[0]  # noqa: E731
    x0q = np.zeros(6)
    if scenario == "converged_gtol":
        return quad, f_quad, x0q, dict(gtol=1e-8, max_iter=5000), Status.CONVERGED_GTOL
    if scenario == "converged_ftol":
        return rosen, f_rosen, X0_ROSEN, dict(ftol=0.5, gtol=1e-12), Status.CONVERGED_FTOL
    if scenario == "max_iter":
        return rosen, f_rosen, X0_ROSEN, dict(max_iter=2, gtol=1e-12), Status.MAX_ITER
    if scenario == "nan_at_x0":
        return Faulty(rosen, nan_value_after=0), lambda x: math.nan, X0_ROSEN, {}, Status.NON_FINITE
    if scenario == "nan_after_k":
        return Faulty(rosen, nan_value_after=8), f_rosen, X0_ROSEN, {}, Status.NON_FINITE
    if scenario == "nan_hessian_product":
        return Faulty(rosen, nan_hessp_after=3), f_rosen, X0_ROSEN, {}, Status.NON_FINITE
    if scenario == "wrong_gradient":
        status = Status.RADIUS_TOO_SMALL if solver in TRUST_REGION else Status.LINE_SEARCH_FAILED
        return Faulty(rosen, grad_sign=-1.0), f_rosen, X0_ROSEN, {}, status
    if scenario == "callback_stop":
        return rosen, f_rosen, X0_ROSEN, dict(callback=stop_at(2)), Status.CALLBACK_STOP
    if scenario == "callback_writes_x":
        return quad, f_quad, x0q, dict(gtol=1e-8, max_iter=5000, callback=write_into_x), Status.CONVERGED_GTOL
    if scenario == "not_descent_direction":
        prob = nonsymmetric()
        return prob, prob.fun, np.zeros(3), dict(on_non_descent="stop", cg_rtol=1e-14, cg_max_iter=3), \
            Status.NOT_DESCENT_DIRECTION
    if scenario == "indefinite_preconditioner":
        opts = dict(preconditioner=negative)
        if solver == "newton_cg":
            opts["on_non_descent"] = "stop"
        return quad, f_quad, x0q, opts, Status.INDEFINITE_PRECONDITIONER
    raise AssertionError(scenario)


COMMON = ["converged_gtol", "converged_ftol", "max_iter", "nan_at_x0", "nan_after_k", "wrong_gradient",
          "callback_stop", "callback_writes_x"]
CASES = [(s, c) for s in DETERMINISTIC for c in COMMON]
CASES += [(s, "nan_hessian_product") for s in SECOND_ORDER]
CASES += [("newton_cg", "not_descent_direction")]
CASES += [(s, "indefinite_preconditioner") for s in ("newton_cg", "tr_steihaug", "tr_krylov")]


def same(a, b):
    """Equal, or both missing/NaN."""
    a = math.nan if a is None else a
    b = math.nan if b is None else b
    return (math.isnan(a) and math.isnan(b)) or a == b


def check_consistent(res, f, *, stochastic=False, eval_full=True):
    last = res.history[-1]
    assert last["work_units"] == res.work_units, (last, res)
    assert res.success == (res.status in SUCCESS)
    if stochastic:
        assert last["epoch"] == res.info["epochs"] and res.nit == res.info["epochs"] * res.info["n_batches"]
    else:
        assert last["iter"] == res.nit, (last, res)
    if stochastic and not eval_full:
        assert same(last["f_batch"], res.fun) and last["f"] is None, (last, res)
        return
    assert same(last["f"], res.fun), (last, res)
    assert same(last["grad_norm"], res.grad_norm), (last, res)
    assert same(res.fun, f(res.x)), (res.fun, f(res.x), res)


@pytest.mark.parametrize("solver, scenario", CASES)
def test_deterministic_result_describes_x(solver, scenario):
    prob, f, x0, opts, status = deterministic_case(solver, scenario)
    res = DETERMINISTIC[solver](prob, x0, **opts)
    assert res.status == status, res
    check_consistent(res, f)
    if scenario == "nan_at_x0":
        np.testing.assert_array_equal(res.x, x0)
    if scenario == "callback_writes_x":
        assert np.all(np.abs(res.x) < 100.0)


def stochastic_case(scenario, eval_full):
    base = least_squares()
    f = lambda x: least_squares().value(x)[0]  # noqa: E731
    opts = dict(learning_rate=0.005, n_epochs=4, rng=0, eval_full=eval_full)
    if scenario == "completed":
        return base, f, opts, Status.COMPLETED
    if scenario == "nan_batch_after_k":  # 4 batches per epoch: NaN in the 3rd epoch
        return Faulty(base, nan_batch_after=10), f, opts, Status.NON_FINITE
    if scenario == "nan_batch_first_epoch":
        return Faulty(base, nan_batch_after=2), f, opts, Status.NON_FINITE
    if scenario == "nan_full_objective":  # full evaluations at epochs 0 and 1 are finite, then NaN
        return Faulty(base, nan_value_after=2), f, opts, Status.NON_FINITE
    if scenario == "callback_stop":
        return base, f, dict(opts, callback=stop_at(2, "epoch")), Status.CALLBACK_STOP
    if scenario == "callback_writes_x":
        return base, f, dict(opts, callback=write_into_x), Status.COMPLETED
    raise AssertionError(scenario)


STOCHASTIC_SCENARIOS = ["completed", "nan_batch_after_k", "nan_batch_first_epoch", "callback_stop",
                        "callback_writes_x"]
STOCHASTIC_CASES = [(s, c, e) for s in STOCHASTIC for c in STOCHASTIC_SCENARIOS for e in (False, True)]
STOCHASTIC_CASES += [(s, "nan_full_objective", True) for s in STOCHASTIC]


@pytest.mark.parametrize("solver, scenario, eval_full", STOCHASTIC_CASES)
def test_stochastic_result_describes_x(solver, scenario, eval_full):
    prob, f, opts, status = stochastic_case(scenario, eval_full)
    res = STOCHASTIC[solver](prob, np.zeros(5), **opts)
    assert res.status == status, res
    check_consistent(res, f, stochastic=True, eval_full=eval_full)
    if scenario == "nan_batch_after_k":
        assert res.info["epochs"] == 2  # the last completed epoch before the NaN
    if scenario == "nan_batch_first_epoch":
        assert res.info["epochs"] == 0 and res.nit == 0
        np.testing.assert_array_equal(res.x, np.zeros(5))
    if scenario == "callback_writes_x":
        assert np.all(np.abs(res.x) < 100.0)


def test_callback_gets_a_read_only_view_that_stays_valid():
    seen = []

    def keep(x, row):
        seen.append((x, row["f"]))
        with pytest.raises(ValueError, match="read-only"):
            x[0] = 1.0

    res = mo.minimize_lbfgs(mo.Rosenbrock(2), X0_ROSEN, callback=keep)
    assert res.success and len(seen) == res.nit
    for x, f in seen:  # every view still holds the iterate its row describes
        assert f == mo.Rosenbrock(2).value(x)[0]
    np.testing.assert_array_equal(seen[-1][0], res.x)


def test_network_objective_results_describe_x():
    from tests.test_objectives import random_x, tiny_problem

    obj = tiny_problem("softmax")
    x0 = random_x(obj)
    f = lambda x: tiny_problem("softmax").value(x)[0]  # noqa: E731
    res = mo.minimize_newton_cg(obj, x0, max_iter=2, cg_max_iter=3)
    assert res.status == Status.MAX_ITER
    check_consistent(res, f)
    res = mo.minimize_newton_cg(Faulty(obj, nan_value_after=3), x0, max_iter=5, cg_max_iter=3)
    assert res.status == Status.NON_FINITE
    check_consistent(res, f)
