"""Solvers for box constraints ``lower ≤ x ≤ upper`` (e.g. −1 ≤ θ ≤ 1 in
Ruthotto & Haber, JMIV 2019; Meganet.m ``projBound``): projected gradient and
projected (Gauss-)Newton-PCG, both with an Armijo rule along the projection
arc ``x(α) = P(x + α p)``, ``P(x) = clip(x, lower, upper)``.

Stationarity is measured by the projected-gradient norm
``‖x − P(x − ∇f(x))‖``, which is zero exactly at KKT points of the box
problem; it is what ``grad_norm`` reports and what ``gtol``/``rtol`` test.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..backend import get_array_module, to_numpy
from ._common import (
    FORCING_TERM,
    Evaluator,
    Monitor,
    SolverKind,
    check_common,
    check_int,
    check_label,
    check_preconditioner_option,
    check_problem,
    check_real,
    describe_preconditioner,
    dot,
    eps_of,
    ftol_reached,
    gtol_reached,
    hessian_kind,
    isfinite,
    newton_label,
    norm,
    options_text,
    prepare_x0,
)
from ._descent import F_TOL_EPS, check_search_options
from .cg import pcg
from .result import Status

__all__ = ["Box", "minimize_projected_gradient", "minimize_projected_newton_cg"]


class Box:
    """The box ``lower ≤ x ≤ upper`` on the backend and dtype of ``x``.

    Parameters
    ----------
    lower, upper : None, float or array of shape (n,)
        ``None`` means unbounded (±inf); arrays may contain ±inf.
    like : array, shape (n,)
        Template for backend and dtype.
    """

    def __init__(self, lower, upper, like):
        xp = get_array_module(like)
        n = like.shape[0]
        self.xp = xp
        bounds = []
        for name, b, default in (("lower", lower, -np.inf), ("upper", upper, np.inf)):
            if b is None:
                b = default
            if isinstance(b, numbers.Real) and not isinstance(b, bool):
                if math.isnan(b):
                    raise ValueError(f"{name} must not be NaN")
                bounds.append(float(b))
                continue
            if not hasattr(b, "shape"):
                raise TypeError(
                    f"{name} must be None, a real number or an array of shape ({n},), got {type(b).__name__}")
            bn = np.asarray(to_numpy(b), dtype=np.float64)
            if bn.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {bn.shape}")
            if np.isnan(bn).any():
                raise ValueError(f"{name} must not contain NaN")
            bounds.append(xp.asarray(bn, dtype=like.dtype))
        lo, hi = bounds
        if bool(np.any(to_numpy(xp.asarray(lo) > xp.asarray(hi)))):
            raise ValueError("lower must be <= upper componentwise")
        self.lower, self.upper = lo, hi

    def project(self, x):
        return self.xp.clip(x, self.lower, self.upper)

    def projected_gradient(self, x, g):
        """``x − P(x − g)`` (zero at a KKT point)."""
        return x - self.project(x - g)


def _prepare_box(problem, x0, name, lower, upper, methods):
    check_problem(problem, name, *methods)
    x0 = prepare_x0(x0)
    box = Box(lower, upper, x0)
    return box.project(x0), box


def _arc_search(ev, f, g, x, trial_point, rhs, *, c1, alpha0, max_ls, f_tol):
    """Armijo along the projection arc: accept ``f(x(α)) − f(x) ≤ −c₁ rhs(α, x(α))`` with a
    strict decrease, halving α.  Inside the rounding band ``|f(x(α)) − f(x)| ≤ f_tol`` the
    change is estimated by the trapezoidal rule ``½ (g + g(x(α)))ᵀ(x(α) − x)`` along the
    segment (exact for quadratics; see :mod:`.linesearch`), as long as no trial was clearly
    worse than ``f``."""
    alpha = alpha0
    last_finite = True
    use_estimate = True
    for j in range(max_ls + 1):
        xt = trial_point(alpha)
        ft, _ = ev.value(xt)
        last_finite = isfinite(ft)
        if last_finite:
            change = ft - f
            if change > f_tol:
                use_estimate = False
            elif use_estimate and abs(change) <= f_tol:
                _, gt, _ = ev.value_and_gradient(xt)
                est = 0.5 * dot(g + gt, xt - x)
                if abs(est) <= f_tol:
                    change = est
            if change <= -c1 * rhs(alpha, xt) and change < 0.0:
                return alpha, xt, j + 1, None
        else:
            use_estimate = False
        alpha *= 0.5
    return alpha, None, max_ls + 1, (Status.LINE_SEARCH_FAILED if last_finite else Status.NON_FINITE)


def _bounds_text(box):
    def one(b):
        return format(b, "g") if isinstance(b, float) else "array"
    return f"[{one(box.lower)}, {one(box.upper)}]"


def _run_projected(problem, x, box, direction, *, solver, kind, columns, c1, max_ls, max_iter, gtol, rtol, ftol,
                   callback, verbose, info="", preconditioner=None, max_work_units=None):
    ev = Evaluator(problem, x)
    eps = eps_of(x.dtype)
    mon = Monitor(solver, columns, verbose=verbose, callback=callback, evaluator=ev, kind=kind, info=info,
                  preconditioner=preconditioner, max_work_units=max_work_units)
    mon.start(x.shape[0])
    f, g, state = ev.value_and_gradient(x)
    pgn = norm(box.projected_gradient(x, g))
    pgn0 = pgn
    status = None if (isfinite(f) and isfinite(pgn)) else Status.NON_FINITE
    mon.record(dict(iter=0, f=f, grad_norm=pgn, pg_norm=pgn), x, callback=False)
    k = n_inner = 0
    while status is None:
        if gtol_reached(pgn, pgn0, gtol, rtol):
            status = Status.CONVERGED_GTOL
            break
        if k >= max_iter:
            status = Status.MAX_ITER
            break
        if mon.budget_spent():
            status = Status.MAX_WORK_UNITS
            break
        step = direction(ev, x, f, g, state, pgn, k)
        n_inner += step.get("n_inner", 0)
        if step.get("status") is not None:
            status = step["status"]
            break
        alpha, x_new, n_ls, fail = _arc_search(ev, f, g, x, step["trial_point"], step["rhs"], c1=c1,
                                               alpha0=step["alpha0"], max_ls=max_ls, f_tol=F_TOL_EPS * eps * abs(f))
        if fail is not None:
            status = fail
            break
        f_new, g_new, state_new = ev.value_and_gradient(x_new)
        pgn_new = norm(box.projected_gradient(x_new, g_new))
        if not (isfinite(f_new) and isfinite(pgn_new)):
            status = Status.NON_FINITE
            break
        k += 1
        if "accepted" in step:
            step["accepted"](x, x_new, g, g_new, alpha)
        f_prev = f
        x, f, g, state, pgn = x_new, f_new, g_new, state_new, pgn_new
        row = dict(iter=k, f=f, grad_norm=pgn, pg_norm=pgn, step=alpha, n_ls=n_ls, **step.get("extra", {}))
        stop = mon.record(row, x)
        if gtol_reached(pgn, pgn0, gtol, rtol):
            status = Status.CONVERGED_GTOL
        elif ftol_reached(f_prev, f, ftol):
            status = Status.CONVERGED_FTOL
        elif stop:
            status = Status.CALLBACK_STOP
    return mon.result(x=x, fun=f, grad=g, grad_norm=pgn, nit=k, status=status, n_inner=n_inner,
                      row=dict(iter=k, f=f, grad_norm=pgn, pg_norm=pgn))


def minimize_projected_gradient(problem, x0, *, lower=None, upper=None, initial_step=1.0, c1=1e-4, max_ls=30,
                                max_iter=1000, max_work_units=None, gtol=1e-5, rtol=0.0, ftol=0.0, callback=None,
                                verbose=False, label=None):
    """Projected gradient method for ``min f(x)`` s.t. ``lower ≤ x ≤ upper``.

    ``x_{k+1} = P(x_k − α_k ∇f(x_k))`` with the Armijo rule along the
    projection arc, ``f(x(α)) ≤ f(x) + c₁ ∇f(x)ᵀ(x(α) − x)`` (Bertsekas,
    *Nonlinear Programming*, 2nd ed., §2.3.1; Kelley, *Iterative Methods for
    Optimization*, Alg. 5.4.1), halving α.  The first trial step is
    ``initial_step``, later the Barzilai–Borwein step ``sᵀs / sᵀy`` (when
    ``sᵀy > 0``; else twice the last step).  ``x0`` is projected onto the box
    first.

    Parameters
    ----------
    problem : object
        Needs ``value_and_gradient``.
    x0 : array, shape (n,)
    lower, upper : None, float or array of shape (n,)
        Bounds (``None`` = unbounded; ±inf allowed).
    initial_step : float
    c1 : float
        Armijo constant.
    max_ls : int
        Halvings per iteration.
    max_iter, gtol, rtol, ftol, callback, verbose
        As in :func:`~meganet.optimizers.minimize_steepest_descent`, with the
        projected-gradient norm in place of ``‖g‖``.
    max_work_units : float, optional
        Work-unit budget, checked at the start of every iteration; as in
        :func:`~meganet.optimizers.minimize_steepest_descent`.
    label : str, optional
        The solver's name in the header and in ``result.solver`` (default
        ``"projected gradient"``).

    Returns
    -------
    OptimizeResult
        ``grad_norm`` is ``‖x − P(x − g)‖``; ``grad`` the plain gradient.
    """
    x, box = _prepare_box(problem, x0, "minimize_projected_gradient", lower, upper, ("value_and_gradient",))
    max_iter, gtol, rtol, ftol, callback, verbose = check_common(
        max_iter=max_iter, gtol=gtol, rtol=rtol, ftol=ftol, callback=callback, verbose=verbose, dtype=x.dtype)
    initial_step = check_real("initial_step", initial_step, low=0.0, low_open=True)
    c1, _, max_ls = check_search_options(c1, None, max_ls)
    memo = {"alpha0": initial_step}

    def accepted(x, x_new, g, g_new, alpha):
        s, y = x_new - x, g_new - g
        sy = dot(s, y)
        memo["alpha0"] = dot(s, s) / sy if sy > 0.0 else 2.0 * alpha

    def direction(ev, x, f, g, state, pgn, k):
        return dict(
            trial_point=lambda a: box.project(x - a * g),
            rhs=lambda a, xt: -dot(g, xt - x),
            alpha0=memo["alpha0"],
            accepted=accepted,
        )

    label = check_label(label, "projected gradient")
    columns = ["iter", "f", "pg_norm", "step", "n_ls", "work_units"]
    return _run_projected(problem, x, box, direction, solver=label,
                          kind=SolverKind("first", bounded=True, step_option="initial_step"), columns=columns, c1=c1,
                          max_ls=max_ls, max_iter=max_iter, gtol=gtol, rtol=rtol, ftol=ftol, callback=callback,
                          verbose=verbose, info=options_text(bounds=_bounds_text(box), initial_step=initial_step,
                                                             max_iter=max_iter, gtol=gtol),
                                                             max_work_units=max_work_units)


def minimize_projected_newton_cg(problem, x0, *, lower=None, upper=None, active_tol=1e-3, cg_max_iter=None,
                                 cg_rtol=None, preconditioner=True, c1=1e-4, max_ls=30, max_iter=200,
                                 max_work_units=None, gtol=1e-5, rtol=0.0, ftol=0.0, callback=None, verbose=False,
                                 label=None):
    """Projected Newton / Gauss-Newton-PCG for box constraints (Bertsekas,
    SIAM J. Control Optim. 20, 1982, "Projected Newton methods for
    optimization problems with simple constraints"; Kelley §5.5).

    Per iteration, with ``w = ‖x − P(x − g)‖`` and ``ε = min(active_tol, w)``:

    1. ε-active set ``A = {i : x_i ≤ l_i + ε, g_i > 0} ∪ {i : x_i ≥ u_i − ε, g_i < 0}``,
       free set ``F`` = the rest;
    2. PCG on the reduced Newton system ``H_FF p_F = −g_F`` (the Hessian
       product masked to ``F``; forcing term ``min(0.5, sqrt w)``), and
       ``p_A = −g_A``; if the reduced direction is not a descent direction
       (``g_Fᵀp_F ≥ 0``) the step is the projected gradient ``p = −g``;
    3. Armijo along the arc ``x(α) = P(x + αp)`` (Bertsekas 1982, eq. 32):
       ``f(x) − f(x(α)) ≥ c₁ [α (−g_Fᵀp_F) + Σ_{i∈A} g_i (x_i − x_i(α))]``,
       first trial ``α = 1``, halving.

    Near a non-degenerate solution the active set is identified and the
    method reduces to Newton-CG on the free variables.

    Parameters
    ----------
    problem : object
        Needs ``value_and_gradient`` and ``hessian_matvec``.
    x0 : array, shape (n,)
        Projected onto the box first.
    lower, upper : None, float or array of shape (n,)
    active_tol : float
        ε̄ of the ε-active set.
    cg_max_iter, cg_rtol, preconditioner
        As in :func:`~meganet.optimizers.minimize_newton_cg` (the
        preconditioner is masked to the free set).
    c1, max_ls, max_iter, gtol, rtol, ftol, callback, verbose
        As in :func:`minimize_projected_gradient`; the header shows the
        preconditioner as :func:`~meganet.optimizers.minimize_newton_cg` does.
    max_work_units : float, optional
        Work-unit budget, checked at the start of every iteration; as in
        :func:`~meganet.optimizers.minimize_steepest_descent`.
    label : str, optional
        The solver's name in the header and in ``result.solver``.  Default:
        ``"projected "`` followed by the default label of
        :func:`~meganet.optimizers.minimize_newton_cg` (e.g.
        ``"projected Gauss-Newton-CG"``).

    Returns
    -------
    OptimizeResult
        ``grad_norm`` is ``‖x − P(x − g)‖``; the history has the size of the
        active set; ``info["preconditioner"]`` is the preconditioner as in the header.
    """
    x, box = _prepare_box(problem, x0, "minimize_projected_newton_cg", lower, upper,
                          ("value_and_gradient", "hessian_matvec"))
    max_iter, gtol, rtol, ftol, callback, verbose = check_common(
        max_iter=max_iter, gtol=gtol, rtol=rtol, ftol=ftol, callback=callback, verbose=verbose, dtype=x.dtype)
    active_tol = check_real("active_tol", active_tol, low=0.0)
    n = x.shape[0]
    cg_max_iter = min(n, 200) if cg_max_iter is None else check_int("cg_max_iter", cg_max_iter, minimum=1)
    if cg_rtol is not None:
        cg_rtol = check_real("cg_rtol", cg_rtol, low=0.0, high=1.0, high_open=True)
    preconditioner = check_preconditioner_option(preconditioner)
    c1, _, max_ls = check_search_options(c1, None, max_ls)
    def direction(ev, x, f, g, state, pgn, k):
        eps = min(active_tol, pgn)
        active = ((x <= box.lower + eps) & (g > 0)) | ((x >= box.upper - eps) & (g < 0))
        free = (~active).astype(x.dtype)
        n_active = int(active.sum())
        g_free = free * g
        M = ev.preconditioner(x, state, preconditioner)
        Mred = None if M is None else (lambda r: free * M(free * r))
        eta = cg_rtol if cg_rtol is not None else min(0.5, math.sqrt(pgn))
        res = pcg(lambda v: free * ev.hessp(x, free * v, state), -g_free, precond=Mred, rtol=eta,
                  max_iter=cg_max_iter)
        extra = dict(cg_iter=res.n_iter, cg_info=res.info, n_active=n_active, direction="newton")
        if res.info == "non_finite":
            return dict(status=Status.NON_FINITE, n_inner=res.n_matvec)
        p_free = res.x if res.n_iter > 0 else res.d0
        slope_free = dot(g_free, p_free) if n_active < n else 0.0
        if n_active < n and not slope_free < 0.0:
            p_free, slope_free = -g_free, -dot(g_free, g_free)
            extra["direction"] = "pg"
        p = p_free - (1.0 - free) * g

        def rhs(a, xt):
            return -a * slope_free + dot((1.0 - free) * g, x - xt)

        return dict(trial_point=lambda a: box.project(x + a * p), rhs=rhs, alpha0=1.0, extra=extra,
                    n_inner=res.n_matvec)

    precond = describe_preconditioner(problem, preconditioner)
    label = check_label(label, newton_label(problem, precond, prefix="projected "))
    kind = SolverKind("second", bounded=True, inner=f"cg_max_iter = {cg_max_iter}", inner_rtol="cg_rtol",
                      hessian=hessian_kind(problem))
    columns = ["iter", "f", "pg_norm", "step", "n_ls", "cg_iter", "n_active", "direction", "work_units"]
    return _run_projected(problem, x, box, direction, solver=label, kind=kind, columns=columns, c1=c1,
                          max_ls=max_ls, max_iter=max_iter, gtol=gtol, rtol=rtol, ftol=ftol, callback=callback,
                          verbose=verbose, preconditioner=precond,
                          info=options_text(bounds=_bounds_text(box), cg_max_iter=cg_max_iter,
                                            cg_rtol=FORCING_TERM if cg_rtol is None else cg_rtol,
                                            active_tol=active_tol, max_iter=max_iter, gtol=gtol),
                                            max_work_units=max_work_units)
