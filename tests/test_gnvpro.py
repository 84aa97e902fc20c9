"""GNvpro (:func:`meganet.optimizers.minimize_gnvpro`): the Gauss-Newton–Krylov trust region on the
reduced VarPro objective, with Meganet.m trnewton's radius rule and the work units of the GNvpro slides."""

import inspect
import math

import numpy as np
import pytest

from meganet.objectives import NetworkObjective, VarProObjective
from meganet.optimizers import GNVPRO_LABEL, minimize_gnvpro
from tests.test_objectives import tiny_problem


def varpro(kind="least_squares", **kw):
    return tiny_problem(kind, np.float64, n=24, alpha=1e-4, cls=VarProObjective, **kw)


def test_refuses_the_joint_objective():
    obj = tiny_problem("least_squares", np.float64, cls=NetworkObjective)
    with pytest.raises(TypeError, match="minimize_gnvpro needs a VarProObjective"):
        minimize_gnvpro(obj, obj.init_x(rng=0))


def test_defaults_are_meganet_trnewton():
    """acceptance 1e-4, shrink below 0.1, grow above 0.75, factors 0.5 / 1.5, GMRES m = 20, tol 1e-2."""
    p = inspect.signature(minimize_gnvpro).parameters
    got = {k: p[k].default for k in ("eta", "shrink_below", "grow_above", "shrink_factor", "grow_factor",
                                     "krylov_dim", "krylov_rtol", "initial_radius", "preconditioner")}
    assert got == dict(eta=1e-4, shrink_below=0.1, grow_above=0.75, shrink_factor=0.5, grow_factor=1.5,
                       krylov_dim=20, krylov_rtol=1e-2, initial_radius="auto", preconditioner=False)


@pytest.mark.parametrize("kind", ["least_squares", "softmax"])
def test_trains_and_follows_the_radius_rule(kind):
    obj = varpro(kind)
    th = obj.init_x(rng=1)
    f0 = obj.value(th)[0]
    res = minimize_gnvpro(obj, th, max_iter=25, krylov_dim=8)
    assert res.solver == GNVPRO_LABEL
    assert res.fun < (0.5 if kind == "least_squares" else 0.6) * f0, str(res)  # random labels: CE cannot reach 0
    h = res.history.to_dict()
    rows = range(1, len(h["iter"]))
    for k in rows:
        rho, acc = h["rho"][k], h["accepted"][k]
        assert acc == (rho > 1e-4), (k, rho, acc)  # trnewton's rho0
        if k + 1 < len(h["iter"]):
            r_used, r_next, p = h["radius"][k], h["radius"][k + 1], h["step_norm"][k]
            if rho < 0.1:
                assert r_next == pytest.approx(0.5 * min(r_used, p), rel=1e-12)
            elif rho <= 0.75:
                assert r_next == pytest.approx(r_used, rel=1e-12)
            else:  # grown by 1.5 when the step was on the boundary, else kept
                assert r_next == pytest.approx(1.5 * r_used, rel=1e-12) or r_next == pytest.approx(r_used)


def test_work_units_are_two_plus_two_r_per_iteration():
    """Slides, "Work Units": 2 per iteration (trial value + gradient) + 2 per Gauss-Newton product;
    a rejected trial costs its forward pass only; inner classifier solves cost nothing."""
    obj = varpro("softmax")
    res = minimize_gnvpro(obj, obj.init_x(rng=2), max_iter=12, krylov_dim=6)
    h = res.history.to_dict()
    w = h["work_units"]
    assert w[0] == pytest.approx(2.0)  # value and gradient at θ0
    for k in range(1, len(w)):
        expected = 2 * h["cg_iter"][k] + 1 + (1 if h["accepted"][k] else 0)
        assert w[k] - w[k - 1] == pytest.approx(expected), (k, h["cg_iter"][k], h["accepted"][k])
    assert obj.inner_stats["solves"] > 0  # the inner solves ran and were not counted


def test_stops_on_the_work_unit_budget():
    obj = varpro("least_squares")
    res = minimize_gnvpro(obj, obj.init_x(rng=3), max_iter=1000, krylov_dim=5, gtol=0.0, max_work_units=40)
    assert res.status.value == "max_work_units"
    assert 40 <= res.work_units <= 40 + 2 + 2 * 5


def test_initial_radius_auto_takes_the_first_subspace_step():
    """Meganet.m: Δ⁽⁰⁾ = ‖z‖ of the first (unconstrained) step; the first step is then never cut."""
    obj = varpro("least_squares")
    res = minimize_gnvpro(obj, obj.init_x(rng=4), max_iter=1, krylov_dim=6)
    h = res.history.to_dict()
    assert math.isfinite(h["radius"][1]) and h["step_norm"][1] == pytest.approx(h["radius"][1], rel=1e-8)
    assert h["sigma"][1] == pytest.approx(0.0, abs=1e-12)  # interior (unconstrained) solution of the subproblem
