"""Steepest descent with Armijo backtracking (Nocedal & Wright §3.1, Alg. 3.1;
Meganet.m ``sd``)."""

from __future__ import annotations

from ._common import SolverKind, check_common, check_label, check_problem, check_real, options_text, prepare_x0
from ._descent import Direction, check_search_options, run_descent

__all__ = ["minimize_steepest_descent"]


class _SteepestDescent:
    """``p = −g``; first trial step ``initial_step``, later
    ``α₀ = α_{k−1} ‖g_{k−1}‖² / ‖g_k‖²`` (N&W eq. 3.60: the first-order change
    of the last step is assumed to repeat)."""

    def __init__(self, initial_step):
        self.initial_step = initial_step
        self.prev = None  # (alpha, slope) of the last accepted step

    def direction(self, x, f, g, state, gnorm, k):
        slope = -gnorm * gnorm
        alpha0 = self.initial_step if self.prev is None else self.prev[0] * self.prev[1] / slope
        return Direction(-g, slope, alpha0)

    def accepted(self, x, x_new, g, g_new, alpha, d):
        self.prev = (alpha, d.slope)


def minimize_steepest_descent(problem, x0, *, initial_step=1.0, c1=1e-4, max_ls=30, max_iter=1000,
                              max_work_units=None, gtol=1e-5, rtol=0.0, ftol=0.0, callback=None, verbose=False,
                              label=None):
    """Minimize by steepest descent ``x ← x − α ∇f(x)`` with an Armijo line search.

    The step satisfies ``f(x − αg) ≤ f(x) − c₁ α ‖g‖²``; it is found by
    backtracking with safeguarded quadratic interpolation (N&W Alg. 3.1,
    eq. 3.58).  Only first-order information is used; expect linear
    convergence with rate ``(κ−1)/(κ+1)`` on quadratics of condition κ.

    Parameters
    ----------
    problem : object
        Needs ``value_and_gradient`` (``value``/``gradient`` used when present).
    x0 : array, shape (n,)
        Finite float32/float64 numpy or cupy vector (not modified).
    initial_step : float
        First trial step; later ones follow N&W eq. 3.60.
    c1 : float
        Armijo constant in ``(0, 1)``.
    max_ls : int
        Backtracking steps per iteration.
    max_iter : int
    max_work_units : float, optional
        Stop with status ``max_work_units`` once this solve has spent that many
        work units (forward + adjoint passes over the training set, counted by
        ``problem.counter``; Newman et al. 2020), checked at the start of every
        iteration (Meganet.m ``trnewton``: ``while iter <= maxIter && workUnits <=
        maxWorkUnits``), so a run ends within one iteration's work of the budget.
        ``None`` (default): no budget.  A positive finite number; a problem
        without a ``counter`` raises ``ValueError``.  Shown in the header.
    gtol, rtol : float
        Converged when ``‖g‖ ≤ max(gtol, rtol ‖g₀‖)``.
    ftol : float
        Converged when ``f_{k−1} − f_k ≤ ftol max(|f_{k−1}|, |f_k|, 1)``
        (L-BFGS-B's test); 0 disables it.
    callback : callable ``(x, row)``, optional
        Called after every iteration; raise ``StopIteration`` to stop.
    verbose : bool
        Print the iteration table (iter, f, |g|, step α, line-search trials, work units)
        under a header with the label and the main options.
    label : str, optional
        The solver's name in the header and in ``result.solver`` (default
        ``"steepest descent"``).

    Returns
    -------
    OptimizeResult
    """
    check_problem(problem, "minimize_steepest_descent", "value_and_gradient")
    x0 = prepare_x0(x0)
    max_iter, gtol, rtol, ftol, callback, verbose = check_common(
        max_iter=max_iter, gtol=gtol, rtol=rtol, ftol=ftol, callback=callback, verbose=verbose, dtype=x0.dtype)
    initial_step = check_real("initial_step", initial_step, low=0.0, low_open=True)
    c1, _, max_ls = check_search_options(c1, None, max_ls)
    label = check_label(label, "steepest descent")
    columns = ["iter", "f", "grad_norm", "step", "n_ls", "work_units"]
    return run_descent(problem, x0, _SteepestDescent(initial_step), solver=label,
                       kind=SolverKind("first", step_option="initial_step"), columns=columns, search="armijo",
                       c1=c1, c2=None, max_ls=max_ls, max_iter=max_iter, gtol=gtol, rtol=rtol, ftol=ftol,
                       callback=callback, verbose=verbose,
                       info=options_text(initial_step=initial_step, max_iter=max_iter, gtol=gtol),
                       max_work_units=max_work_units)
