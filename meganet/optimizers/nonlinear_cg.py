"""Nonlinear conjugate gradients with a strong Wolfe line search
(Nocedal & Wright §5.2, Alg. 5.4; Meganet.m ``nlcg``)."""

from __future__ import annotations

from ..core.validation import check_option
from ._common import (
    SolverKind,
    check_common,
    check_int,
    check_label,
    check_problem,
    dot,
    norm,
    options_text,
    prepare_x0,
)
from ._descent import Direction, check_search_options, run_descent

__all__ = ["minimize_nonlinear_cg"]

_BETAS = ("PR+", "FR", "HZ")


class _NonlinearCG:
    """``p_{k+1} = −g_{k+1} + β_{k+1} p_k`` with

    * ``'PR+'``: ``β = max(0, g_{k+1}ᵀ(g_{k+1} − g_k) / ‖g_k‖²)`` (Polak–Ribière+, N&W eq. 5.45);
    * ``'FR'``: ``β = ‖g_{k+1}‖² / ‖g_k‖²`` (Fletcher–Reeves, N&W eq. 5.41a);
    * ``'HZ'``: Hager & Zhang (SIAM J. Optim. 16, 2005, eq. 1.2 with the
      truncation of their eq. 2.7): ``β = (y − 2p ‖y‖²/(pᵀy))ᵀ g_{k+1} / (pᵀy)``,
      bounded below by ``−1 / (‖p‖ min(0.01, ‖g_k‖))``.

    Restarts with ``p = −g`` every ``restart_every`` iterations, when
    successive gradients are far from orthogonal,
    ``|g_{k+1}ᵀg_k| ≥ 0.1 ‖g_{k+1}‖²`` (N&W eq. 5.52; PR+ and FR), and whenever
    the new direction is not a descent direction.  The first trial step is
    ``min(1, 1/‖g‖)`` after a restart and ``α_{k−1} gᵀ_{k−1}p_{k−1} / gᵀ_kp_k``
    otherwise (N&W eq. 3.60)."""

    def __init__(self, beta, restart_every):
        self.beta_rule, self.restart_every = beta, restart_every
        self.prev = None  # (g, p, alpha, slope) of the last accepted step
        self.since_restart = 0

    def _beta(self, g, gnorm):
        g0, p0, _, _ = self.prev
        g0g0 = dot(g0, g0)
        if self.beta_rule in ("PR+", "FR") and abs(dot(g, g0)) >= 0.1 * gnorm * gnorm:
            return None  # N&W (5.52)
        if self.beta_rule == "FR":
            return gnorm * gnorm / g0g0
        if self.beta_rule == "PR+":
            return max(0.0, (gnorm * gnorm - dot(g, g0)) / g0g0)
        y = g - g0
        py = dot(p0, y)
        if py == 0.0:
            return None
        beta = (dot(y, g) - 2.0 * dot(y, y) * dot(p0, g) / py) / py
        eta = -1.0 / (norm(p0) * min(0.01, g0g0 ** 0.5))
        return max(beta, eta)

    def direction(self, x, f, g, state, gnorm, k):
        beta = None
        if self.prev is not None and self.since_restart < self.restart_every:
            beta = self._beta(g, gnorm)
        if beta is not None:
            g0, p0, alpha0, slope0 = self.prev
            p = -g + beta * p0
            slope = dot(g, p)
            if slope < 0.0:
                return Direction(p, slope, alpha0 * slope0 / slope, dict(beta=beta, restart=False))
        self.since_restart = 0
        return Direction(-g, -gnorm * gnorm, min(1.0, 1.0 / gnorm), dict(beta=0.0, restart=True))

    def accepted(self, x, x_new, g, g_new, alpha, d):
        # the next direction needs g_{k-1} = g (gradient at the old point), p_{k-1}, α_{k-1}, g_{k-1}ᵀp_{k-1}
        self.prev = (g, d.p, alpha, d.slope)
        self.since_restart += 1


def minimize_nonlinear_cg(problem, x0, *, beta="PR+", restart_every=None, c1=1e-4, c2=0.1, max_ls=25, max_iter=1000,
                          max_work_units=None, gtol=1e-5, rtol=0.0, ftol=0.0, callback=None, verbose=False,
                          label=None):
    """Minimize by nonlinear conjugate gradients (N&W Alg. 5.4 with the β
    rules and restarts of :class:`_NonlinearCG`) and a strong Wolfe line
    search (N&W Alg. 3.5/3.6, ``c2 = 0.1`` as N&W recommend for CG; FR needs
    ``c2 < 1/2``).

    Parameters
    ----------
    problem : object
        Needs ``value_and_gradient``.
    x0 : array, shape (n,)
        Finite float32/float64 numpy or cupy vector (not modified).
    beta : {'PR+', 'FR', 'HZ'}
        Polak–Ribière+, Fletcher–Reeves or Hager–Zhang.
    restart_every : int, optional
        Restart with steepest descent every this many iterations (default ``n``).
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
        The solver's name in the header and in ``result.solver`` (default
        ``"nonlinear CG (<beta>)"``).

    Returns
    -------
    OptimizeResult
    """
    check_problem(problem, "minimize_nonlinear_cg", "value_and_gradient")
    x0 = prepare_x0(x0)
    max_iter, gtol, rtol, ftol, callback, verbose = check_common(
        max_iter=max_iter, gtol=gtol, rtol=rtol, ftol=ftol, callback=callback, verbose=verbose, dtype=x0.dtype)
    check_option("beta", beta, _BETAS)
    restart_every = x0.shape[0] if restart_every is None else check_int("restart_every", restart_every, minimum=1)
    c1, c2, max_ls = check_search_options(c1, c2, max_ls)
    if beta == "FR" and c2 >= 0.5:
        raise ValueError(f"c2 must be < 0.5 with beta='FR' (Fletcher-Reeves needs it for descent), got {c2!r}")
    label = check_label(label, f"nonlinear CG ({beta})")
    columns = ["iter", "f", "grad_norm", "step", "n_ls", "beta", "restart", "work_units"]
    return run_descent(problem, x0, _NonlinearCG(beta, restart_every), solver=label, kind=SolverKind("quasi_newton"),
                       columns=columns, search="wolfe", c1=c1, c2=c2, max_ls=max_ls, max_iter=max_iter, gtol=gtol,
                       rtol=rtol, ftol=ftol, callback=callback, verbose=verbose,
                       info=options_text(beta=beta, restart_every=restart_every, max_iter=max_iter, gtol=gtol),
                       max_work_units=max_work_units)
