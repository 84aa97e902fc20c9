"""Newton / Gauss-Newton with preconditioned CG and an Armijo line search
(truncated or inexact Newton: Nocedal & Wright Alg. 7.1; Meganet.m ``newton``;
the GN-PCG of Haber & Ruthotto 2017 §6.4)."""

from __future__ import annotations

import math

from ..core.validation import check_option
from ._common import (
    FORCING_TERM,
    SolverKind,
    check_common,
    check_int,
    check_label,
    check_preconditioner_option,
    check_problem,
    check_real,
    describe_preconditioner,
    dot,
    hessian_kind,
    newton_label,
    options_text,
    prepare_x0,
)
from ._descent import Direction, check_search_options, run_descent
from .cg import pcg
from .result import Status

__all__ = ["minimize_newton_cg"]


class _NewtonCG:
    """Direction from PCG on ``H p = −g`` (``H`` = ``problem.hessian_matvec``).

    * forcing term ``η_k = min(0.5, sqrt‖g‖)`` (N&W eq. 7.3 / Alg. 7.1) unless
      ``cg_rtol`` is given;
    * CG stops at the first direction of non-positive curvature; if that is
      the very first one, the direction is the preconditioned steepest descent
      ``−M⁻¹g`` (N&W Alg. 7.1), otherwise the CG iterate reached so far;
    * if the direction is still not a descent direction (``gᵀp ≥ 0``: a
      non-symmetric Hessian product or an indefinite preconditioner), either
      fall back to ``p = −g`` (``on_non_descent='steepest_descent'``, the
      default, marked ``direction = 'sd'`` in the history) or stop with status
      ``not_descent_direction`` / ``indefinite_preconditioner`` (``'stop'``);
    * ``max_step`` caps ``‖p‖_∞`` (Meganet.m ``newton.maxStep``).
    """

    def __init__(self, cg_max_iter, cg_rtol, preconditioner, on_non_descent, max_step):
        self.cg_max_iter, self.cg_rtol = cg_max_iter, cg_rtol
        self.preconditioner, self.on_non_descent, self.max_step = preconditioner, on_non_descent, max_step
        self.evaluator = None  # set by the driver

    def direction(self, x, f, g, state, gnorm, k):
        ev = self.evaluator
        M = ev.preconditioner(x, state, self.preconditioner)
        eta = self.cg_rtol if self.cg_rtol is not None else min(0.5, math.sqrt(gnorm))
        res = pcg(lambda v: ev.hessp(x, v, state), -g, precond=M, rtol=eta, max_iter=self.cg_max_iter)
        extra = dict(cg_iter=res.n_iter, cg_info=res.info, direction="newton")
        if res.info == "non_finite":
            return Direction(None, math.nan, extra=extra, status=Status.NON_FINITE, n_inner=res.n_matvec)
        p = res.x if res.n_iter > 0 else res.d0  # N&W Alg. 7.1: -M⁻¹g if CG could not make a step
        slope = dot(g, p)
        if not slope < 0.0:
            if self.on_non_descent == "stop":
                status = (Status.INDEFINITE_PRECONDITIONER if res.info == "indefinite_preconditioner"
                          else Status.NOT_DESCENT_DIRECTION)
                return Direction(p, slope, extra=extra, status=status, n_inner=res.n_matvec)
            p, slope = -g, -gnorm * gnorm
            extra["direction"] = "sd"
        if self.max_step is not None:
            xp = ev.xp
            pmax = float(xp.abs(p).max())
            if pmax > self.max_step:
                scale = self.max_step / pmax
                p, slope = p * scale, slope * scale
        return Direction(p, slope, 1.0, extra, n_inner=res.n_matvec)

    def accepted(self, x, x_new, g, g_new, alpha, d):
        pass


def minimize_newton_cg(problem, x0, *, cg_max_iter=None, cg_rtol=None, preconditioner=True,
                       on_non_descent="steepest_descent", max_step=None, c1=1e-4, max_ls=30, max_iter=200,
                       max_work_units=None, gtol=1e-5, rtol=0.0, ftol=0.0, callback=None, verbose=False, label=None):
    """Newton-CG / Gauss-Newton-PCG with an Armijo line search.

    Newton or Gauss-Newton according to what ``problem.hessian_matvec``
    multiplies with.  Each iteration solves ``H p = −g`` inexactly by PCG
    (forcing term ``min(0.5, sqrt‖g‖)``, N&W §7.1), then backtracks from the
    full step ``α = 1`` until the Armijo condition holds (N&W Alg. 3.1 with
    quadratic interpolation).  On an SPD quadratic with ``cg_max_iter ≥ n``
    and a tight ``cg_rtol`` it converges in one iteration.

    Parameters
    ----------
    problem : object
        Needs ``value_and_gradient`` and ``hessian_matvec``; ``preconditioner``
        is used when present (e.g. the regularizer's Hessian).
    x0 : array, shape (n,)
        Finite float32/float64 numpy or cupy vector (not modified).
    cg_max_iter : int, optional
        PCG iterations per Newton step (default ``min(n, 200)``; Meganet.m
        uses ~10 for networks).
    cg_rtol : float, optional
        Relative residual of PCG (default: the forcing term).
    preconditioner : bool or callable
        ``True``: the problem's, if any; ``False``: none; or ``r -> M⁻¹r``.
    on_non_descent : {'steepest_descent', 'stop'}
        What to do when the PCG direction is not a descent direction (see
        :class:`_NewtonCG`).
    max_step : float, optional
        Cap on ``‖p‖_∞`` before the line search.
    c1 : float
        Armijo constant.
    max_ls : int
        Backtracking steps per iteration.
    max_iter, gtol, rtol, ftol, callback, verbose
        As in :func:`~meganet.optimizers.minimize_steepest_descent`; the
        verbose table shows CG iterations and why CG stopped, under a header
        with the label, the preconditioner (``none``, ``the problem's (...)``
        or ``given callable (name)``), ``cg_max_iter``, ``cg_rtol`` and
        ``max_iter``.
    max_work_units : float, optional
        Work-unit budget, checked at the start of every iteration; as in
        :func:`~meganet.optimizers.minimize_steepest_descent`.
    label : str, optional
        The solver's name in the header and in ``result.solver``, e.g.
        ``"GNvpro (Gauss-Newton-PCG, reduced objective)"``.  Default:
        ``"Gauss-Newton-CG"`` when the problem declares a Gauss-Newton Hessian
        product (``problem.hessian == "gauss_newton"`` or
        ``problem.gauss_newton is True``), else ``"Newton-CG"``; ``-PCG``
        instead of ``-CG`` when a preconditioner is certainly in use (a given
        callable, or the problem names one in ``preconditioner_kind``).

    Returns
    -------
    OptimizeResult
        ``n_inner`` is the total number of Hessian products in PCG;
        ``info["preconditioner"]`` the preconditioner as in the header.
    """
    check_problem(problem, "minimize_newton_cg", "value_and_gradient", "hessian_matvec")
    x0 = prepare_x0(x0)
    max_iter, gtol, rtol, ftol, callback, verbose = check_common(
        max_iter=max_iter, gtol=gtol, rtol=rtol, ftol=ftol, callback=callback, verbose=verbose, dtype=x0.dtype)
    n = x0.shape[0]
    cg_max_iter = min(n, 200) if cg_max_iter is None else check_int("cg_max_iter", cg_max_iter, minimum=1)
    if cg_rtol is not None:
        cg_rtol = check_real("cg_rtol", cg_rtol, low=0.0, high=1.0, high_open=True)
    preconditioner = check_preconditioner_option(preconditioner)
    check_option("on_non_descent", on_non_descent, ("steepest_descent", "stop"))
    if max_step is not None:
        max_step = check_real("max_step", max_step, low=0.0, low_open=True)
    c1, _, max_ls = check_search_options(c1, None, max_ls)
    descent = _NewtonCG(cg_max_iter, cg_rtol, preconditioner, on_non_descent, max_step)
    precond = describe_preconditioner(problem, preconditioner)
    label = check_label(label, newton_label(problem, precond))
    kind = SolverKind("second", step_option="max_step", inner=f"cg_max_iter = {cg_max_iter}", inner_rtol="cg_rtol",
                      hessian=hessian_kind(problem))
    columns = ["iter", "f", "grad_norm", "step", "n_ls", "cg_iter", "cg_info", "direction", "work_units"]
    return run_descent(problem, x0, descent, solver=label, kind=kind, columns=columns, search="armijo", c1=c1,
                       c2=None, max_ls=max_ls, max_iter=max_iter, gtol=gtol, rtol=rtol, ftol=ftol, callback=callback,
                       verbose=verbose, preconditioner=precond,
                       info=options_text(cg_max_iter=cg_max_iter, cg_rtol=FORCING_TERM if cg_rtol is None else cg_rtol,
                                         max_step=max_step, max_iter=max_iter, gtol=gtol),
                                         max_work_units=max_work_units)
