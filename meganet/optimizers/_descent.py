"""The line-search driver shared by steepest descent, L-BFGS, nonlinear CG and
Newton-CG (private).

As in optimistix, a solver is a *descent* (how to pick the direction) plus a
*search* (how far to go).  The descent object answers
``direction(x, f, g, state, gnorm, k) -> Direction`` and is told about every
accepted step through ``accepted(...)`` (L-BFGS memory, CG's previous
gradient).  The search is Armijo backtracking (N&W Alg. 3.1) or strong Wolfe
(N&W Alg. 3.5/3.6); both judge trials whose value is within
``100 ε |f|`` of ``f`` by the trapezoidal estimate from the directional
derivatives, so the methods converge below the ``sqrt(ε)`` stall of purely
value-based searches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._common import (
    Evaluator,
    Monitor,
    check_int,
    check_real,
    dot,
    eps_of,
    ftol_reached,
    gtol_reached,
    isfinite,
    norm,
)
from .linesearch import armijo_backtracking, strong_wolfe
from .result import Status

#: Objective values within ``F_TOL_EPS · ε · |f|`` of the current value are
#: treated as rounding noise by the line searches (see :mod:`.linesearch`).
F_TOL_EPS = 100.0


@dataclass
class Direction:
    """A search direction with ``slope = gᵀp`` and the first trial step ``alpha0``.

    ``status`` set means "stop with this status" (the direction is unusable);
    ``extra`` goes into the history row; ``n_inner`` counts inner iterations."""

    p: object
    slope: float
    alpha0: float = 1.0
    extra: dict = field(default_factory=dict)
    status: Status | None = None
    n_inner: int = 0


def run_descent(problem, x, descent, *, solver, kind, columns, search, c1, c2, max_ls, max_iter, gtol, rtol, ftol,
                callback, verbose, info="", preconditioner=None, max_work_units=None):
    """Generic line-search loop; ``x`` is validated and copied by the caller.

    ``solver`` is the label, ``kind`` the :class:`SolverKind` the stop
    message is written for, ``info`` the options shown in the header and
    ``preconditioner`` its description (None: the solver has none)."""
    ev = Evaluator(problem, x)
    eps = eps_of(x.dtype)
    descent.evaluator = ev
    mon = Monitor(solver, columns, verbose=verbose, callback=callback, evaluator=ev, kind=kind, info=info,
                  preconditioner=preconditioner, max_work_units=max_work_units)
    mon.start(x.shape[0])
    f, g, state = ev.value_and_gradient(x)
    gnorm = norm(g)
    gnorm0 = gnorm
    status = None if (isfinite(f) and isfinite(gnorm)) else Status.NON_FINITE
    mon.record(dict(iter=0, f=f, grad_norm=gnorm), x, callback=False)
    k = n_inner = 0
    while status is None:
        if gtol_reached(gnorm, gnorm0, gtol, rtol):
            status = Status.CONVERGED_GTOL
            break
        if k >= max_iter:
            status = Status.MAX_ITER
            break
        if mon.budget_spent():
            status = Status.MAX_WORK_UNITS
            break
        d = descent.direction(x, f, g, state, gnorm, k)
        n_inner += d.n_inner
        if d.status is not None:
            status = d.status
            break
        if not (isfinite(d.slope) and d.slope < 0.0):
            status = Status.NOT_DESCENT_DIRECTION
            break
        p = d.p
        f_tol = F_TOL_EPS * eps * abs(f)
        if search == "armijo":
            def phi(alpha):
                xt = x + alpha * p
                ft, _ = ev.value(xt)
                return ft, xt

            def dphi(alpha, xt):
                return dot(ev.value_and_gradient(xt)[1], p)

            ls = armijo_backtracking(phi, f, d.slope, alpha0=d.alpha0, c1=c1, max_backtracks=max_ls, dphi=dphi,
                                     f_tol=f_tol)
            if ls.success:
                x_new = ls.payload
                f_new, g_new, state_new = ev.value_and_gradient(x_new)
        else:
            def evaluate(alpha):
                xt = x + alpha * p
                ft, gt, st = ev.value_and_gradient(xt)
                return ft, (dot(gt, p) if isfinite(ft) else None), (xt, gt, st)

            ls = strong_wolfe(evaluate, f, d.slope, alpha0=d.alpha0, c1=c1, c2=c2, max_eval=max_ls, f_tol=f_tol)
            if ls.success:
                x_new, g_new, state_new = ls.payload
                f_new = ls.f
        if not ls.success:
            status = Status.NON_FINITE if ls.non_finite else Status.LINE_SEARCH_FAILED
            break
        gnorm_new = norm(g_new)
        if not (isfinite(f_new) and isfinite(gnorm_new)):
            status = Status.NON_FINITE  # keep the last good iterate x
            break
        k += 1
        descent.accepted(x, x_new, g, g_new, ls.alpha, d)
        f_prev = f
        x, f, g, state, gnorm = x_new, f_new, g_new, state_new, gnorm_new
        row = dict(iter=k, f=f, grad_norm=gnorm, step=ls.alpha, step_norm=ls.alpha * norm(p), n_ls=ls.n_eval,
                   **d.extra)
        stop = mon.record(row, x)
        if gtol_reached(gnorm, gnorm0, gtol, rtol):
            status = Status.CONVERGED_GTOL
        elif ftol_reached(f_prev, f, ftol):
            status = Status.CONVERGED_FTOL
        elif stop:
            status = Status.CALLBACK_STOP
    return mon.result(x=x, fun=f, grad=g, grad_norm=gnorm, nit=k, status=status, n_inner=n_inner,
                      row=dict(iter=k, f=f, grad_norm=gnorm))


def check_search_options(c1, c2, max_ls):
    """Validate the line-search constants (``c2=None`` for Armijo-only searches)."""
    c1 = check_real("c1", c1, low=0.0, high=1.0, low_open=True, high_open=True)
    if c2 is not None:
        c2 = check_real("c2", c2, low=0.0, high=1.0, low_open=True, high_open=True)
        if not c1 < c2:
            raise ValueError(f"c1 must be smaller than c2 (strong Wolfe conditions), got c1={c1!r}, c2={c2!r}")
    max_ls = check_int("max_ls", max_ls, minimum=1)
    return c1, c2, max_ls
