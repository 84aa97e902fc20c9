"""Training drivers: block coordinate descent, multilevel training in depth,
keep-best-on-validation.

Known answers: one exact Newton step on the least-squares classifier problem
gives the closed-form classifier of VarPro; the multilevel starting points are
the prolongations of the previous level's results; keep-best on a 1-D
problem with a known validation optimum returns the iterate closest to it.
"""

from __future__ import annotations

import numpy as np
import pytest

from meganet.data import peaks
from meganet.integrators import AntisymmetricResNet
from meganet.layers import SingleLayer
from meganet.losses import SoftmaxCrossEntropy
from meganet.multilevel import prolongate_network
from meganet.networks import Meganet
from meganet.objectives import NetworkObjective, VarProObjective
from meganet.optimizers import FunctionProblem, OptimizeResult, Status, minimize_steepest_descent
from meganet.regularizers import Tikhonov
from meganet.training import (KeepBest, MultilevelResult, block_coordinate_descent, train_keep_best,
                              train_multilevel)
from meganet.transforms import Dense
from tests.test_objectives import random_x, tiny_network, tiny_problem


def peaks_setup(n=200, n_steps=2, width=6):
    d = peaks(n, seed=0)
    net = Meganet([SingleLayer(Dense(2, width)),
                   AntisymmetricResNet(width, n_steps=n_steps, final_time=3.0, gamma=0.01)])
    loss = SoftmaxCrossEntropy(width, 5)

    def make(network, cls=NetworkObjective):
        return cls(network, loss, d.Y_train, d.C_train, regularizer=Tikhonov(network.n_theta, alpha=1e-4),
                   classifier_regularizer=Tikhonov(loss.n_w, alpha=1e-4))

    return d, net, make


# --------------------------------------------------------------------------- block coordinate descent
def test_block_coordinate_descent_decreases_the_objective():
    d, net, make = peaks_setup()
    obj = make(net)
    x0 = obj.init_x(rng=1)
    f0 = obj.value(x0)[0]
    obj.counter.reset()
    res = block_coordinate_descent(obj, x0, outer_iter=6, theta_solver_options=dict(max_iter=2, cg_max_iter=10),
                                   classifier_solver_options=dict(max_iter=3))
    assert isinstance(res, OptimizeResult) and res.solver == "block-coordinate-descent"
    assert res.status == Status.MAX_ITER and res.nit == 6 and len(res.history) == 7
    assert res.fun < 0.5 * f0
    f = res.history["f"]
    assert all(b <= a + 1e-12 for a, b in zip(f, f[1:]))  # monotone: both sub-steps are descent steps
    assert res.work_units == obj.counter.work_units
    assert all(r.work_units == 0 for r in res.info["classifier_results"])  # classifier steps: no network pass
    np.testing.assert_allclose(res.grad, obj.gradient(res.x, None), rtol=1e-12)
    assert res.fun == pytest.approx(obj.value(res.x)[0], rel=1e-14)


def test_classifier_newton_step_is_exact_for_least_squares():
    """One Newton step (CG to full accuracy) on the quadratic classifier problem = the VarPro closed form."""
    obj = tiny_problem("least_squares", alpha=1e-2)
    x0 = random_x(obj)
    res = block_coordinate_descent(obj, x0, outer_iter=1, theta_solver_options=dict(max_iter=0),
                                   classifier_solver_options=dict(max_iter=1, cg_rtol=1e-13, cg_max_iter=obj.n_w))
    theta, w = obj.split(res.x)
    np.testing.assert_array_equal(theta, obj.split(x0)[0])
    vp = tiny_problem("least_squares", alpha=1e-2, cls=VarProObjective)
    np.testing.assert_allclose(w, vp.classifier(theta.copy()), rtol=1e-9, atol=1e-11)


def test_block_coordinate_descent_callback_and_bad_input():
    obj = tiny_problem("softmax")
    x0 = random_x(obj)
    rows = []

    def cb(x, row):
        rows.append(row)
        if row["iter"] == 2:
            raise StopIteration

    res = block_coordinate_descent(obj, x0, outer_iter=5, callback=cb)
    assert res.status == Status.CALLBACK_STOP and res.nit == 2 and len(rows) == 2
    with pytest.raises(TypeError, match="block_coordinate_descent needs a NetworkObjective"):
        block_coordinate_descent(tiny_problem("softmax", cls=VarProObjective), x0[:10], outer_iter=1)
    with pytest.raises(ValueError, match="theta_solver must be a solver function .* got 'newton'"):
        block_coordinate_descent(obj, x0, outer_iter=1, theta_solver="newton")
    with pytest.raises(ValueError, match="classifier_solver_options must not contain 'callback'"):
        block_coordinate_descent(obj, x0, outer_iter=1, classifier_solver_options=dict(callback=cb))
    with pytest.raises(ValueError, match="outer_iter must be >= 0"):
        block_coordinate_descent(obj, x0, outer_iter=-1)
    with pytest.raises(ValueError, match=rf"x0 must have shape \({obj.n},\)"):
        block_coordinate_descent(obj, x0[:-1], outer_iter=1)


# --------------------------------------------------------------------------- multilevel
def test_multilevel_levels_are_consistent():
    d, net, make = peaks_setup(n_steps=2)
    x0 = make(net).init_x(rng=3)
    ml = train_multilevel(make, net, x0, levels=(2, 4, 8), solver="newton_cg",
                          solver_options=dict(max_iter=3, cg_max_iter=8), validation=(d.Y_val, d.C_val))
    assert isinstance(ml, MultilevelResult) and [L.n_steps for L in ml.levels] == [2, 4, 8]
    np.testing.assert_array_equal(ml.levels[0].x0, x0)
    for L in ml.levels:
        assert L.network.blocks[1].n_steps == L.n_steps and L.network.blocks[1].final_time == 3.0
        assert L.x.shape == (L.objective.n,) and L.objective.network is L.network
        assert L.result.x is L.x and set(L.validation) >= {"loss", "accuracy"}
    assert ml.levels[0].transfer is None
    for A, B in zip(ml.levels, ml.levels[1:]):
        theta, w = A.objective.split(A.x)
        net_f, theta_f = prolongate_network(A.network, theta)
        theta_0, w_0 = B.objective.split(B.x0)
        np.testing.assert_array_equal(theta_0, theta_f)  # prolongated θ, classifier re-fitted for it
        assert net_f.n_theta == B.network.n_theta
        t = B.transfer
        assert t["from_n_steps"] == A.n_steps and t["objective_before"] == pytest.approx(A.result.fun)
        assert t["validation_before"] == A.validation
        assert t["objective_after"] == pytest.approx(B.objective.value(np.concatenate([theta_f, w]))[0])
        assert t["objective_after_refit"] == pytest.approx(B.objective.value(B.x0)[0])
        assert t["objective_after_refit"] <= t["objective_after"]
        assert t["validation_after"] == B.objective.metrics(np.concatenate([theta_f, w]), d.Y_val, d.C_val)
        assert t["validation_after_refit"] == B.objective.metrics(B.x0, d.Y_val, d.C_val)
    assert ml.x is ml.levels[-1].x and ml.network is ml.levels[-1].network
    assert ml.work_units == pytest.approx(sum(L.result.work_units for L in ml.levels))
    assert ml.weighted_work_units == pytest.approx(sum(L.result.work_units * L.n_steps / 8 for L in ml.levels))
    assert ml.history["level"][0] == 1 and ml.history["level"][-1] == 3  # levels are numbered from 1
    tw = ml.history["total_work_units"]
    assert all(b >= a for a, b in zip(tw, tw[1:])) and tw[-1] == pytest.approx(ml.work_units)
    # the warm start pays off: the fine level starts from a much better point than a fresh start
    fine = ml.levels[-1].objective
    assert fine.value(ml.levels[-1].x0)[0] < 0.8 * fine.value(fine.init_x(rng=3))[0]


def test_multilevel_without_refit_carries_the_classifier_over():
    d, net, make = peaks_setup(n_steps=2)
    x0 = make(net).init_x(rng=3)
    ml = train_multilevel(make, net, x0, levels=(2, 4), solver_options=dict(max_iter=3, cg_max_iter=8),
                          refit_classifier=False)
    A, B = ml.levels
    theta, w = A.objective.split(A.x)
    np.testing.assert_array_equal(B.x0, np.concatenate([prolongate_network(A.network, theta)[1], w]))
    t = B.transfer
    assert t["objective_after"] == pytest.approx(B.objective.value(B.x0)[0])
    assert t["objective_after_refit"] is None and t["validation_after"] is None  # no validation data


def test_multilevel_varpro_warm_starts_the_classifier(monkeypatch):
    d, net, make = peaks_setup(n_steps=2)
    calls = []
    original = VarProObjective.warm_start_classifier

    def spy(self, w):
        calls.append((self, w.copy()))
        return original(self, w)

    monkeypatch.setattr(VarProObjective, "warm_start_classifier", spy)
    ml = train_multilevel(lambda n: make(n, VarProObjective), net, None, levels=2, rng=0,
                          solver_options=[dict(max_iter=3, cg_max_iter=8), dict(max_iter=1, cg_max_iter=8)])
    assert [L.n_steps for L in ml.levels] == [2, 4]
    A, B = ml.levels
    net_f, theta_f = prolongate_network(A.network, A.x)
    np.testing.assert_array_equal(B.x0, theta_f)
    assert B.x.shape == (B.network.n_theta,)
    # the fine level's classifier was warm-started from the coarse w(θ)
    assert len(calls) == 1 and calls[0][0] is B.objective
    np.testing.assert_array_equal(calls[0][1], A.objective.classifier(A.x))


def test_multilevel_bad_input():
    d, net, make = peaks_setup(n_steps=2)
    with pytest.raises(ValueError, match="levels must double"):
        train_multilevel(make, net, levels=(2, 4, 6))
    with pytest.raises(ValueError, match=r"n_steps \[2\], but levels\[0\] = 4"):
        train_multilevel(make, net, levels=(4, 8))
    with pytest.raises(ValueError, match="network has no time-stepping block"):
        train_multilevel(make, tiny_network().blocks[0], levels=2)
    with pytest.raises(ValueError, match="solver_options must be one dict or 2 dicts"):
        train_multilevel(make, net, levels=(2, 4), solver_options=[{}])
    with pytest.raises(ValueError, match="keep_best=True needs validation"):
        train_multilevel(make, net, levels=(2, 4), keep_best=True)
    with pytest.raises(ValueError, match=r"starting point of level 1 has shape \(3,\)"):
        train_multilevel(make, net, np.zeros(3), levels=(2,))


# --------------------------------------------------------------------------- keep best
class _Quadratic1D(FunctionProblem):
    """f(x) = (x − 5)²; the "validation loss" (x − 3)² is smallest at x = 3."""

    def __init__(self):
        super().__init__(lambda x: float((x[0] - 5.0) ** 2), lambda x: 2.0 * (x - 5.0))

    def metrics(self, x, Y, C, *, mask=None):
        return dict(loss=float((x[0] - 3.0) ** 2), accuracy=None, n_examples=1)


def test_keep_best_returns_the_best_validation_iterate():
    """Gradient descent with a fixed step on (x − 5)² from 0: x_k = 5(1 − 0.9^k) passes the validation
    optimum x = 3 between k = 8 (2.85) and k = 9 (3.06); keep-best returns x_9, the solver goes on to 5."""
    prob = _Quadratic1D()
    res = train_keep_best("sgd", prob, np.zeros(1), None, None, metric="loss",
                          solver_options=dict(learning_rate=0.05, n_epochs=30))
    kb = res.info["keep_best"]
    assert kb["iteration"] == 9
    assert res.x[0] == pytest.approx(5 * (1 - 0.9 ** 9), rel=1e-12)
    assert kb["metrics"]["loss"] == pytest.approx((5 * (1 - 0.9 ** 9) - 3) ** 2, rel=1e-10)
    assert kb["final_x"][0] == pytest.approx(5 * (1 - 0.9 ** 30), rel=1e-12)
    assert [h["iteration"] for h in kb["history"]] == list(range(31))
    # the result describes the point it returns (issue 9, defect 12): fun, grad and the last history row
    assert res.fun == pytest.approx(prob.value(res.x)[0], rel=1e-14) and res.fun != kb["final_fun"]
    np.testing.assert_allclose(res.grad, 2 * (res.x - 5.0), rtol=1e-14)
    assert res.history[-1]["f"] == res.fun and res.history[-1]["stop"] == "keep_best"
    keep = KeepBest(prob, None, None, metric="loss", every=4)
    minimize_steepest_descent(prob, np.zeros(1), max_iter=3, callback=keep)
    assert keep.history == []  # 3 callbacks, evaluated every 4th
    with pytest.raises(ValueError, match="metric='accuracy' is not available"):
        KeepBest(prob, None, None, metric="accuracy").evaluate(np.zeros(1), 0)


def test_train_keep_best_on_peaks():
    d, net, make = peaks_setup()
    obj = make(net)
    x0 = obj.init_x(rng=1)
    res = train_keep_best("newton_cg", obj, x0, d.Y_val, d.C_val, every=2, solver_options=dict(max_iter=6,
                                                                                              cg_max_iter=8))
    kb = res.info["keep_best"]
    evaluated = kb["history"]
    assert evaluated[0]["iteration"] == 0 and evaluated[-1]["iteration"] == res.nit
    assert [h["iteration"] for h in evaluated[1:-1]] == list(range(2, res.nit, 2))[: len(evaluated) - 2]
    best = max(evaluated, key=lambda h: (h["accuracy"], -h["loss"]))
    assert kb["metrics"]["accuracy"] == best["accuracy"] and kb["iteration"] == best["iteration"]
    assert obj.metrics(res.x, d.Y_val, d.C_val) == pytest.approx(kb["metrics"])
    with pytest.raises(ValueError, match=r"metric must be one of \{'accuracy', 'loss'\}, got 'acc'"):
        KeepBest(obj, d.Y_val, d.C_val, metric="acc")
    with pytest.raises(ValueError, match="every must be >= 1"):
        KeepBest(obj, d.Y_val, d.C_val, every=0)
