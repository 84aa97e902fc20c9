r"""Block coordinate descent: alternate the classifier and the network weights
(Haber & Ruthotto 2017, §2)."""

from __future__ import annotations

import math
import time

import numpy as np

from ..core.validation import check_bool, check_int
from ..objectives import _classifier
from ..objectives._base import same_point
from ..objectives.network_objective import NetworkObjective
from ..optimizers import OptimizeResult, Status, WorkCounter, minimize_newton_cg
from ..optimizers.result import History
from ._common import check_options, check_real, fmt, resolve_solver

__all__ = ["block_coordinate_descent", "ClassifierSubproblem", "ThetaSubproblem"]


class ClassifierSubproblem:
    r"""The objective as a function of the classifier ``w`` for fixed θ:
    ``w ↦ L(W F + μ, C) + S(w) + const`` with the features ``F = F(θ, Y)`` of
    one forward pass.  A small convex problem; ``hessian_matvec`` is the exact
    Hessian ``∇²_ww L + ∇²S`` and ``preconditioner`` its exact diagonal
    (Jacobi), so Newton-PCG on it is Newton's method.  Touches no network: its
    :attr:`counter` stays at zero work units.

    Parameters
    ----------
    objective : NetworkObjective
    state : NetworkState
        An evaluation at ``(θ, w)`` providing ``F(θ, Y)``.
    """

    def __init__(self, objective, state):
        self.objective, self.base = objective, state
        self.counter = WorkCounter()
        self.const = state.value - state.parts["loss"] - state.parts["classifier_regularizer"]

    def value(self, w):
        st = self.objective.state_with_classifier(self.base, w)
        return st.value, st

    def gradient(self, w, state):
        g = state.loss_eval.grad_w
        reg = self.objective.classifier_regularizer
        return g if reg is None else g + reg.gradient(w)

    def value_and_gradient(self, w):
        f, st = self.value(w)
        return f, self.gradient(w, st), st

    def hessian_matvec(self, w, v, state):
        Hv = self.objective.loss.hess_w_mv(v, state.loss_eval)
        reg = self.objective.classifier_regularizer
        return Hv if reg is None else Hv + reg.hess_mv(v, w)

    def preconditioner(self, w, state):
        d = _classifier.hessian_diagonal(self.objective.loss, state.loss_eval)
        reg = self.objective.classifier_regularizer
        if reg is not None:
            d = d + reg.hessian_diagonal(w)
        dmax = float(d.max()) if d.size else 0.0
        if not dmax > 0.0:
            return None
        dinv = 1.0 / (self.objective.xp.maximum(d, 0.0) + 1e-10 * dmax)
        return lambda r: dinv * r


class ThetaSubproblem:
    r"""The objective as a function of the network weights θ for a fixed
    classifier ``w``: value and gradient of ``f(θ, w)``, the θθ block of the
    Gauss-Newton matrix ``J_θᵀ Wᵀ H_z W J_θ + ∇²R`` and the θ part of the
    objective's preconditioner.  Shares the objective's :attr:`counter`.

    Parameters
    ----------
    objective : NetworkObjective
    w : array, shape (n_w,)
    seed : NetworkState, optional
        An evaluation at ``(θ₀, w)`` (reused, no forward pass).
    """

    def __init__(self, objective, w, seed=None):
        self.objective, self.w = objective, w
        self.counter = objective.counter
        self._states = [] if seed is None else [seed]

    def _find(self, theta):
        for st in reversed(self._states):
            if same_point(st.theta, theta):
                return st
        return None

    def state_at(self, theta):
        """The cached state at ``(θ, w)``, or a new evaluation (one forward pass)."""
        st = self._find(theta)
        if st is None:
            _, st = self.objective.value(self.objective.join(theta, self.w))
            self._states = (self._states + [st])[-3:]
        return st

    def value(self, theta):
        st = self.state_at(theta)
        return st.value, st

    def gradient(self, theta, state):
        n = self.objective.n_theta
        return self.objective.gradient(state.x, state)[:n].copy()

    def value_and_gradient(self, theta):
        f, st = self.value(theta)
        return f, self.gradient(theta, st), st

    def hessian_matvec(self, theta, v, state):
        obj = self.objective
        xp = obj.xp
        full = obj.hessian_matvec(state.x, xp.concatenate([v, xp.zeros(obj.n_w, dtype=v.dtype)]), state)
        return full[:obj.n_theta]

    def preconditioner(self, theta, state):
        obj = self.objective
        P = obj.preconditioner(state.x, state)
        if P is None:
            return None
        xp = obj.xp
        zeros = xp.zeros(obj.n_w, dtype=obj.dtype)
        return lambda r: P(xp.concatenate([r, zeros]))[:obj.n_theta]


_COLUMNS = [("iter", 5, "d"), ("f", 14, ".7e"), ("grad_norm", 10, ".3e"), ("f_classifier", 14, ".7e"),
            ("classifier_nit", 5, "d"), ("theta_nit", 5, "d"), ("cg_iter", 5, "d"), ("work_units", 9, ".6g")]
_HEADERS = {"iter": "iter", "f": "f", "grad_norm": "|g|", "f_classifier": "f(after w)", "classifier_nit": "w-it",
            "theta_nit": "θ-it", "cg_iter": "cg", "work_units": "work"}


def block_coordinate_descent(objective, x0, *, outer_iter=10, classifier_solver_options=None,
                             theta_solver_options=None, classifier_solver=minimize_newton_cg,
                             theta_solver=minimize_newton_cg, gtol=1e-5, rtol=0.0, ftol=None, callback=None,
                             verbose=False):
    r"""Block coordinate descent on ``f(θ, w)``: alternate the classifier and the weights.

    Each outer iteration (Haber & Ruthotto, "Stable architectures for deep
    neural networks", 2017, §2; the classifier sub-problem is Meganet.m's
    ``classObjFctn.m``):

    1. a Newton-PCG step on the classifier ``w`` with θ fixed — a small convex
       problem (:class:`ClassifierSubproblem`, exact Hessian, Jacobi
       preconditioner) whose features ``F(θ, Y)`` come from the last forward
       pass, so it costs no network pass (0 work units);
    2. a Gauss-Newton-PCG step on θ with ``w`` fixed (:class:`ThetaSubproblem`).

    Parameters
    ----------
    objective : NetworkObjective
    x0 : array, shape (objective.n,)
        ``(θ₀, w₀)``.
    outer_iter : int
        Number of outer iterations (each one classifier and one θ solve).
    classifier_solver_options, theta_solver_options : dict, optional
        Keyword options of the two solvers.  Defaults: ``{'max_iter': 1}`` for
        both ("a step"); e.g. ``{'max_iter': 5, 'gtol': 1e-8}`` solves the
        classifier problem more accurately at no work-unit cost.
    classifier_solver, theta_solver : callable or str
        Default :func:`~meganet.optimizers.minimize_newton_cg` for both (any
        solver of :mod:`meganet.optimizers` works).
    gtol, rtol : float
        Stop when ``‖∇f(θ, w)‖ ≤ max(gtol, rtol·‖∇f(x₀)‖)`` (full gradient).
    ftol : float, optional
        Stop when the relative decrease of ``f`` over an outer iteration is
        below ``ftol`` (default: machine epsilon).
    callback : callable ``(x, row)``, optional
        After every outer iteration; raise ``StopIteration`` to stop.
    verbose : bool
        Print one row per outer iteration.

    Returns
    -------
    OptimizeResult
        ``nit`` counts outer iterations; ``n_fev``, ``n_gev``, ``n_hmv``,
        ``n_inner`` are summed over the sub-solves; ``work_units`` counts the
        objective's network passes; ``info['classifier_results']`` and
        ``info['theta_results']`` hold the sub-results.
    """
    if not isinstance(objective, NetworkObjective):
        raise TypeError(f"block_coordinate_descent needs a NetworkObjective (x = (θ, w)), got {type(objective).__name__}"
                        "; for the reduced VarPro objective minimize over θ directly")
    outer_iter = check_int("outer_iter", outer_iter, minimum=0)
    c_opts = {"max_iter": 1, **check_options("classifier_solver_options", classifier_solver_options)}
    t_opts = {"max_iter": 1, **check_options("theta_solver_options", theta_solver_options)}
    c_solver = resolve_solver("classifier_solver", classifier_solver)
    t_solver = resolve_solver("theta_solver", theta_solver)
    gtol = check_real("gtol", gtol, low=0.0)
    rtol = check_real("rtol", rtol, low=0.0, high=1.0)
    ftol = float(np.finfo(objective.dtype).eps) if ftol is None else check_real("ftol", ftol, low=0.0, high=1.0)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable (x, row) or None, got {type(callback).__name__}")
    verbose = check_bool("verbose", verbose)
    objective._check_vec("x0", x0, objective.n)

    t0 = time.perf_counter()
    work0 = objective.counter.work_units
    history = History()
    counts = dict(n_fev=0, n_gev=0, n_hmv=0, n_inner=0)
    c_results, t_results = [], []

    def work():
        return objective.counter.work_units - work0

    def record(row):
        row = dict(row, work_units=work(), time=time.perf_counter() - t0)
        history.append(row)
        if verbose:
            print(" ".join(fmt(row.get(k), s).rjust(wd) for k, wd, s in _COLUMNS), flush=True)
        return row

    if verbose:
        print(f"== block coordinate descent (n_theta = {objective.n_theta}, n_w = {objective.n_w}) ==", flush=True)
        print(" ".join(_HEADERS[k].rjust(wd) for k, wd, _ in _COLUMNS), flush=True)

    x = x0.copy()
    f, state = objective.value(x)
    g = objective.gradient(x, state)
    gnorm = _norm(g)
    gnorm0 = gnorm
    record(dict(iter=0, f=f, grad_norm=gnorm))
    status = None if (math.isfinite(f) and math.isfinite(gnorm)) else Status.NON_FINITE
    k = 0
    while status is None:
        if gnorm <= max(gtol, rtol * gnorm0):
            status = Status.CONVERGED_GTOL
            break
        if k >= outer_iter:
            status = Status.MAX_ITER
            break
        theta, w = objective.split(x)
        # 1. classifier: Newton-PCG with θ (and the features F(θ, Y)) fixed
        cprob = ClassifierSubproblem(objective, state)
        cres = c_solver(cprob, w.copy(), **c_opts)
        c_results.append(cres)
        if cres.status == Status.NON_FINITE:
            status = Status.NON_FINITE
            break
        w_new = cres.x
        seed = objective.state_with_classifier(state, w_new)
        f_c = seed.value
        # 2. network weights: Gauss-Newton-PCG with w fixed
        tprob = ThetaSubproblem(objective, w_new, seed=seed)
        tres = t_solver(tprob, theta.copy(), **t_opts)
        t_results.append(tres)
        for key in counts:
            counts[key] += getattr(cres, key) + getattr(tres, key)
        if tres.status == Status.NON_FINITE:
            # keep the classifier step if it was finite
            x, state, f = seed.x, seed, f_c
            g = objective.gradient(x, state)
            gnorm = _norm(g)
            status = Status.NON_FINITE
            break
        state = tprob.state_at(tres.x)
        x = state.x
        f_prev, f = f, state.value
        g = objective.gradient(x, state)
        gnorm = _norm(g)
        k += 1
        row = record(dict(iter=k, f=f, grad_norm=gnorm, f_classifier=f_c, classifier_nit=cres.nit, theta_nit=tres.nit,
                          cg_iter=cres.n_inner + tres.n_inner, classifier_status=str(cres.status),
                          theta_status=str(tres.status)))
        stop = False
        if callback is not None:
            try:
                callback(x, dict(row))
            except StopIteration:
                stop = True
        if not (math.isfinite(f) and math.isfinite(gnorm)):
            status = Status.NON_FINITE
        elif gnorm <= max(gtol, rtol * gnorm0):
            status = Status.CONVERGED_GTOL
        elif (f_prev - f) <= ftol * max(abs(f_prev), abs(f), 1.0):
            if cres.status == Status.LINE_SEARCH_FAILED and tres.status == Status.LINE_SEARCH_FAILED:
                status = Status.LINE_SEARCH_FAILED
            else:
                status = Status.CONVERGED_FTOL
        elif stop:
            status = Status.CALLBACK_STOP
    res = OptimizeResult(x=x, fun=f, grad=g, grad_norm=gnorm, nit=k, n_fev=counts["n_fev"], n_gev=counts["n_gev"],
                         n_hmv=counts["n_hmv"], n_inner=counts["n_inner"], work_units=work(), status=Status(status),
                         message=Status(status).message, history=history, solver="block-coordinate-descent",
                         wall_time=time.perf_counter() - t0,
                         info=dict(classifier_results=c_results, theta_results=t_results))
    if verbose:
        print(str(res), flush=True)
    return res


def _norm(v):
    s = float(v @ v)
    return math.sqrt(s) if s >= 0 else float("nan")

