"""The P-step of constrained CNNs: KL projection of per-pixel label distributions
onto linear constraints, solved through the dual.

Problem (Rabinovich 2020 eq. 1–2, after Pathak, Krähenbühl & Darrell 2015), for fixed
per-pixel distributions ``Q`` of shape ``(n, L)``::

    min_P  KL(P‖Q) = Σ_i Σ_l P_i(l) log(P_i(l) / Q_i(l))
    s.t.   A p̄ ≥ b,   p̄ = (1/n) Σ_i P_i,   every row P_i a distribution.

``A`` has shape ``(m, L)``: label weights applied to the pixel mean (see
:mod:`meganet.weak.constraints`), i.e. the paper's per-pixel ``a_k[i, l] = A[k, l]/n``.

Dual (eq. 3): ``g(λ) = λᵀb − Σ_i log Σ_l Q_i(l) exp((Aᵀλ)_l / n)``, maximized over
``λ ≥ 0``; with slack (eq. 4–5, ``min KL + βᵀξ`` s.t. ``A p̄ ≥ b − ξ``, ``ξ ≥ 0``) over
``0 ≤ λ ≤ β``.  The primal solution is ``P_i(l) ∝ Q_i(l) exp((Aᵀλ)_l / n)``.

Numerically we maximize the dual per pixel in the scaled variable ``μ = λ / n``:
``g̃(μ) = g(nμ)/n = μᵀb − mean_i logsumexp_l(log Q_i(l) + (Aᵀμ)_l)``, with gradient
``b − A p̄(μ)`` and Hessian ``−mean_i A Cov_{P_i} Aᵀ`` (the covariance of the constraint
features ``A[:, l]`` under ``P_i``), hand-coded; :func:`~meganet.optimizers.minimize_projected_newton_cg`
minimizes ``−g̃`` on the box ``0 ≤ μ ≤ β/n``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from ..core.validation import check_bool
from ..optimizers import minimize_projected_newton_cg

__all__ = ["KLProjectionResult", "kl_projection", "NegatedDual"]

_FEAS_TOL = 1e-9


def _logsumexp_rows(Z):
    """Row-wise log Σ exp (rows may contain −inf, at least one finite entry each)."""
    m = Z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True)))[:, 0]


class NegatedDual:
    """``f(μ) = −g̃(μ) = −μᵀb + mean_i logsumexp_l(log Q_i(l) + (Aᵀμ)_l)`` (eq. 3, divided
    by the number of pixels, in ``μ = λ/n``), for :mod:`meganet.optimizers`.

    ``value_and_gradient`` returns ``f``, ``∇f = A p̄(μ) − b`` and the state ``P(μ)``;
    ``hessian_matvec(μ, v, P) = mean_i A (diag(P_i) − P_i P_iᵀ) Aᵀ v`` (PSD: ``f`` is convex).
    """

    hessian = "exact"

    def __init__(self, logQ, A, b):
        self.logQ, self.A, self.b = logQ, A, b

    def primal(self, mu):
        """``(P(μ), logsumexp per pixel)`` with ``P_i(l) ∝ Q_i(l) exp((Aᵀμ)_l)`` (eq. 3's closed form)."""
        Z = self.logQ + (self.A.T @ mu)[None, :]
        lse = _logsumexp_rows(Z)
        return np.exp(Z - lse[:, None]), lse

    def value(self, mu):
        P, lse = self.primal(mu)
        return float(lse.mean() - mu @ self.b), P

    def gradient(self, mu, P):
        return self.A @ P.mean(axis=0) - self.b

    def value_and_gradient(self, mu):
        f, P = self.value(mu)
        return f, self.gradient(mu, P), P

    def hessian_matvec(self, mu, v, P):
        d = (self.A.T @ v)[None, :]                     # feature value per label, (1, L)
        centred = d - (P * d).sum(axis=1, keepdims=True)  # d − E_{P_i}[d]
        return self.A @ (P * centred).mean(axis=0)


class _DampedNegatedDual(NegatedDual):
    """:class:`NegatedDual` whose Hessian product adds ``δ v`` with ``δ = min(1, ‖μ − Π(μ − ∇f)‖)``
    (Levenberg–Marquardt damping by the projected-gradient norm, ``Π`` the projection on the
    box).  The dual Hessian is singular whenever some combination of constraint rows gives the
    same feature to every label (e.g. ``p̄(l) ≥ a`` and ``−p̄(l) ≥ −u``, or rows spanning
    ``Σ_l p̄(l)``): a constant logit shift leaves ``P`` unchanged.  The undamped Newton step
    is then unbounded along that null space; the damping keeps it finite and vanishes at the
    solution, so the local convergence stays superlinear."""

    def __init__(self, logQ, A, b, upper):
        super().__init__(logQ, A, b)
        self.upper = np.inf if upper is None else upper

    def hessian_matvec(self, mu, v, P):
        g = self.gradient(mu, P)
        delta = min(1.0, float(np.linalg.norm(mu - np.clip(mu - g, 0.0, self.upper))))
        return super().hessian_matvec(mu, v, P) + delta * v


@dataclass
class KLProjectionResult:
    """Result of :func:`kl_projection`.

    Attributes
    ----------
    P : array (n, L)
        The projected distributions (rows sum to 1).
    lam : array (m,)
        Multipliers λ of eq. 3 (scale of the summed KL: ``P_i(l) ∝ Q_i(l) exp((Aᵀλ)_l / n)``).
        Constraints satisfied only with zero mass on a label (see ``forced_zero``) have
        multiplier +∞ in the limit; their entry is reported as solved (0 when they involve
        only forced-zero labels) and the closed form holds on the remaining labels.
    dual : float
        ``g(λ)`` (eq. 3), equal to ``kl + βᵀξ`` at the optimum (strong duality).
    kl : float
        ``KL(P‖Q)`` summed over pixels.
    objective : float
        The primal objective: ``kl`` without slack, ``kl + βᵀξ`` (eq. 4) with slack.
    slack : array (m,)
        ``ξ = max(0, b − A p̄)`` (zero up to round-off without slack).
    violation : float
        ``max(0, max_k (b − A p̄)_k)``.
    forced_zero : array of bool (L,)
        Labels the hard constraints force to zero mass (e.g. suppression); ``P[:, l] = 0``.
    status, message, success, nit
        From :func:`~meganet.optimizers.minimize_projected_newton_cg` (``nit = 0`` and
        status ``converged_gtol`` when ``Q`` already satisfies the constraints).
    optimize_result : OptimizeResult
    """

    P: np.ndarray
    lam: np.ndarray
    dual: float
    kl: float
    objective: float
    slack: np.ndarray
    violation: float
    forced_zero: np.ndarray
    status: object
    message: str
    success: bool
    nit: int
    optimize_result: object = field(repr=False, default=None)


def _check_inputs(Q, A, b, log, beta):
    log = check_bool("log", log)
    Q = np.asarray(Q)
    if Q.dtype.kind not in "fiu":
        raise TypeError(f"Q must be a real array, got dtype {Q.dtype}")
    Q = Q.astype(np.float64)
    if Q.ndim != 2 or Q.shape[0] < 1 or Q.shape[1] < 1:
        raise ValueError(f"Q must have shape (n_pixels, n_labels), got {Q.shape}")
    if not np.isfinite(Q).all():
        raise ValueError("Q must be finite (no NaN/Inf)" + (" (log Q: zero probabilities are not allowed)"
                                                            if log else ""))
    if log:
        logQ = Q
        s = np.exp(_logsumexp_rows(logQ))
    else:
        if (Q <= 0).any():
            raise ValueError("Q must be strictly positive (a per-pixel distribution with full support)")
        logQ = np.log(Q)
        s = Q.sum(axis=1)
    bad = np.abs(s - 1.0) > 1e-6
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"each row of Q must be a distribution summing to 1; row {i} sums to {s[i]:.8g}"
                         + (" (exp of log Q)" if log else ""))
    logQ = logQ - _logsumexp_rows(logQ)[:, None]     # renormalize exactly
    n, L = logQ.shape
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if A.ndim != 2 or A.shape[1] != L:
        raise ValueError(f"A must have shape (n_constraints, n_labels={L}) (label weights on the pixel "
                         f"fractions), got {A.shape}")
    if A.shape[0] < 1:
        raise ValueError("A must have at least one constraint row")
    if b.shape != (A.shape[0],):
        raise ValueError(f"b must have shape ({A.shape[0]},), got {b.shape}")
    if not (np.isfinite(A).all() and np.isfinite(b).all()):
        raise ValueError("A and b must be finite")
    if beta is not None:
        if isinstance(beta, numbers.Real) and not isinstance(beta, bool):
            beta = np.full(A.shape[0], float(beta))
        beta = np.asarray(beta, dtype=np.float64)
        if beta.shape != (A.shape[0],):
            raise ValueError(f"beta must be a number or have shape ({A.shape[0]},), got {beta.shape}")
        if not np.isfinite(beta).all():
            raise ValueError("beta must be finite (use beta=None for hard constraints)")
        if (beta < 0).any():
            raise ValueError(f"beta must be nonnegative (the slack weights of eq. 4), got min {beta.min():g}")
    return logQ, A, b, beta


def _feasibility(A, b):
    """LP on the label fractions p̄ ∈ simplex: is ``{A p̄ ≥ b}`` nonempty, and which labels
    must have zero mass on it (max p̄(l) = 0)?  Feasible sets of P and of p̄ agree, since
    ``P_i = p̄`` for all pixels is feasible whenever p̄ is."""
    from scipy.optimize import linprog

    m, L = A.shape
    kw = dict(A_ub=-A, b_ub=-b + _FEAS_TOL, A_eq=np.ones((1, L)), b_eq=[1.0], bounds=[(0.0, 1.0)] * L,
              method="highs")
    res = linprog(np.zeros(L), **kw)
    if res.status == 2:
        return False, None
    if res.status != 0:
        raise RuntimeError(f"feasibility LP failed: {res.message}")
    forced = np.zeros(L, dtype=bool)
    for l in range(L):
        c = np.zeros(L)
        c[l] = -1.0
        r = linprog(c, **kw)
        forced[l] = r.status == 0 and -r.fun <= _FEAS_TOL
    return True, forced


def kl_projection(Q, A, b, *, beta=None, log=False, gtol=1e-11, max_iter=200, verbose=False):
    """KL projection of per-pixel distributions onto linear constraints (the P-step).

    Solves ``min_P KL(P‖Q)`` s.t. ``A p̄ ≥ b`` (eq. 1–2), or with slack
    ``min_P,ξ≥0 KL(P‖Q) + βᵀξ`` s.t. ``A p̄ ≥ b − ξ`` (eq. 4–5), through the dual
    (eq. 3) maximized over ``λ ≥ 0`` (``0 ≤ λ ≤ β`` with slack) with the projected
    Newton-CG solver, then ``P_i(l) ∝ Q_i(l) exp((Aᵀλ)_l / n)``.

    Parameters
    ----------
    Q : array (n_pixels, n_labels)
        Per-pixel distributions (rows strictly positive, summing to 1 to 1e-6); with
        ``log=True`` the log-probabilities.  Computed in float64.
    A, b : arrays (m, n_labels), (m,)
        Constraints ``Σ_l A[k, l] p̄(l) ≥ b[k]`` on the pixel fractions
        ``p̄ = (1/n) Σ_i P_i`` (see :mod:`meganet.weak.constraints`).
    beta : None, float or array (m,)
        Slack weights (eq. 4), finite and ``≥ 0``; ``None``: hard constraints.
    log : bool
        ``Q`` holds log-probabilities.
    gtol, max_iter, verbose
        Passed to :func:`~meganet.optimizers.minimize_projected_newton_cg` (``gtol``
        bounds the projected dual gradient, i.e. the constraint violation on the free set).

    Returns
    -------
    KLProjectionResult

    Raises
    ------
    ValueError
        Invalid ``Q``/``A``/``b``/``beta``; or hard constraints (``beta=None``) with no
        feasible ``P`` (the dual is then unbounded above).
    """
    verbose = check_bool("verbose", verbose)
    logQ, A, b, beta = _check_inputs(Q, A, b, log, beta)
    n, L = logQ.shape
    m = A.shape[0]
    forced = np.zeros(L, dtype=bool)
    if beta is None:
        feasible, forced = _feasibility(A, b)
        if not feasible:
            raise ValueError(
                "the constraints A p̄ >= b are infeasible: no per-pixel distributions P satisfy them, so the "
                "dual (eq. 3) is unbounded and the KL projection does not exist. Relax them with slack, "
                "e.g. kl_projection(Q, A, b, beta=10.0) (eq. 4-5), or fix the constraints.")
        if forced.all():
            raise ValueError("the constraints force every label to zero mass; no distribution satisfies them")
    logQ_eff = np.where(forced[None, :], -np.inf, logQ)
    upper = None if beta is None else beta / n
    problem = _DampedNegatedDual(logQ_eff, A, b, upper)
    res = minimize_projected_newton_cg(problem, np.zeros(m), lower=0.0, upper=upper, gtol=gtol,
                                       max_iter=max_iter, verbose=verbose, label="projected Newton-CG (KL dual)")
    mu = res.x
    P, lse = problem.primal(mu)
    P[:, forced] = 0.0
    lam = n * mu
    pbar = P.mean(axis=0)
    resid = b - A @ pbar
    slack = np.maximum(resid, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = float(np.where(P > 0, P * (np.log(np.where(P > 0, P, 1.0)) - logQ), 0.0).sum())
    objective = kl if beta is None else kl + float(beta @ slack)
    dual = float(lam @ b - lse.sum())
    return KLProjectionResult(P=P, lam=lam, dual=dual, kl=kl, objective=objective,
                              slack=slack if beta is not None else np.zeros(m),
                              violation=float(max(0.0, resid.max())), forced_zero=forced, status=res.status,
                              message=res.message, success=bool(res.success), nit=int(res.nit),
                              optimize_result=res)
