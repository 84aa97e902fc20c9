"""Limited-memory BFGS with a strong Wolfe line search (Nocedal & Wright,
Alg. 7.5 with the two-loop recursion Alg. 7.4; Meganet.m ``lbfgs``)."""

from __future__ import annotations

from collections import deque

from ._common import (
    SolverKind,
    check_common,
    check_int,
    check_label,
    check_problem,
    dot,
    eps_of,
    options_text,
    prepare_x0,
)
from ._descent import Direction, check_search_options, run_descent

__all__ = ["minimize_lbfgs"]


class _LBFGS:
    """Two-loop recursion (N&W Alg. 7.4) for ``p = −H_k g`` with the last ``m``
    pairs ``s = x_{k+1} − x_k``, ``y = g_{k+1} − g_k`` and the initial matrix
    ``H_k⁰ = γ_k I``, ``γ_k = sᵀy / yᵀy`` (N&W eq. 7.20).

    A pair is stored only if ``sᵀy > ε yᵀy`` (the curvature condition, which
    the Wolfe search guarantees up to round-off), so ``H_k`` stays positive
    definite.  Should ``gᵀp ≥ 0`` happen anyway (round-off), the memory is
    cleared and the step is steepest descent."""

    def __init__(self, memory, eps):
        self.pairs = deque(maxlen=memory)  # (s, y, rho)
        self.eps = eps

    def _two_loop(self, g):
        q = g
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * dot(s, q)
            alphas.append(a)
            q = q - a * y
        s, y, rho = self.pairs[-1]
        r = q * (1.0 / (rho * dot(y, y)))  # γ = sᵀy / yᵀy = 1 / (ρ yᵀy)
        for (s, y, rho), a in zip(self.pairs, reversed(alphas)):
            b = rho * dot(y, r)
            r = r + (a - b) * s
        return -r

    def direction(self, x, f, g, state, gnorm, k):
        if self.pairs:
            p = self._two_loop(g)
            slope = dot(g, p)
            if slope < 0.0:
                return Direction(p, slope, 1.0, dict(direction="lbfgs"))
            self.pairs.clear()
        # no curvature information yet: steepest descent with a unit-length first trial
        return Direction(-g, -gnorm * gnorm, min(1.0, 1.0 / gnorm), dict(direction="sd"))

    def accepted(self, x, x_new, g, g_new, alpha, d):
        s = x_new - x
        y = g_new - g
        sy, yy = dot(s, y), dot(y, y)
        if sy > self.eps * yy and sy > 0.0:
            self.pairs.append((s, y, 1.0 / sy))


def minimize_lbfgs(problem, x0, *, memory=10, c1=1e-4, c2=0.9, max_ls=25, max_iter=1000, max_work_units=None,
                   gtol=1e-5, rtol=0.0, ftol=0.0, callback=None, verbose=False, label=None):
    """Minimize with L-BFGS and a strong Wolfe line search.

    N&W Alg. 7.5: the direction comes from the two-loop recursion (Alg. 7.4)
    over the last ``memory`` step/gradient-change pairs; the step length
    satisfies the strong Wolfe conditions (Alg. 3.5/3.6), first trial 1
    (``min(1, 1/‖g‖)`` while there is no curvature pair).  Each line-search
    trial evaluates value and gradient.

    Parameters
    ----------
    problem : object
        Needs ``value_and_gradient``.
    x0 : array, shape (n,)
        Finite float32/float64 numpy or cupy vector (not modified).
    memory : int
        Number of pairs ``(s, y)`` kept (``2 memory`` vectors of length n).
    c1, c2 : float
        Wolfe constants, ``0 < c1 < c2 < 1``.
    max_ls : int
        Line-search evaluations per iteration.
    max_iter, gtol, rtol, ftol, callback, verbose
        As in :func:`~meganet.optimizers.minimize_steepest_descent`.
    max_work_units : float, optional
        Work-unit budget, checked at the start of every iteration; as in
        :func:`~meganet.optimizers.minimize_steepest_descent`.
    label : str, optional
        The solver's name in the header and in ``result.solver`` (default ``"L-BFGS"``).

    Returns
    -------
    OptimizeResult
    """
    check_problem(problem, "minimize_lbfgs", "value_and_gradient")
    x0 = prepare_x0(x0)
    max_iter, gtol, rtol, ftol, callback, verbose = check_common(
        max_iter=max_iter, gtol=gtol, rtol=rtol, ftol=ftol, callback=callback, verbose=verbose, dtype=x0.dtype)
    memory = check_int("memory", memory, minimum=1)
    c1, c2, max_ls = check_search_options(c1, c2, max_ls)
    label = check_label(label, "L-BFGS")
    columns = ["iter", "f", "grad_norm", "step", "n_ls", "direction", "work_units"]
    return run_descent(problem, x0, _LBFGS(memory, eps_of(x0.dtype)), solver=label, kind=SolverKind("quasi_newton"),
                       columns=columns, search="wolfe", c1=c1, c2=c2, max_ls=max_ls, max_iter=max_iter, gtol=gtol,
                       rtol=rtol, ftol=ftol, callback=callback, verbose=verbose,
                       info=options_text(memory=memory, max_iter=max_iter, gtol=gtol), max_work_units=max_work_units)
