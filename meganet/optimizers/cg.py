"""Conjugate gradients: the preconditioned linear solver used by Newton-CG and
the Steihaug-CG trust-region subproblem solver.

Both work on matrix-free products ``v ↦ Hv`` and ``r ↦ M⁻¹r`` with any array
backend; scalars (``rᵀz``, ``dᵀHd``) are brought to the host once per
iteration, vectors never leave the device.  ``scipy.sparse.linalg.cg`` offers
plain CG; it is hand-written here for cupy arrays, float32, negative-curvature
detection (needed by truncated Newton, Nocedal & Wright Alg. 7.1) and the
trust-region variant, which scipy does not offer as a public function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._common import dot, norm

__all__ = ["CGResult", "pcg", "SteihaugResult", "steihaug_cg"]


@dataclass
class CGResult:
    """Result of :func:`pcg`.

    Attributes
    ----------
    x : array
        The approximate solution (the last iterate before a breakdown).
    n_iter : int
        Completed CG steps (updates of ``x``; ``x`` is zero when 0).
    info : str
        ``'converged'``, ``'max_iter'``, ``'negative_curvature'`` (``dᵀHd ≤ 0``),
        ``'indefinite_preconditioner'`` (``rᵀM⁻¹r ≤ 0``) or ``'non_finite'``.
    residual_norm : float
        ``‖b − H x‖`` (Euclidean).
    d0 : array or None
        The first search direction ``M⁻¹b`` (the preconditioned steepest
        descent direction when ``b = −g``).
    n_matvec : int
        Products with ``H``.
    """

    x: object
    n_iter: int
    info: str
    residual_norm: float
    d0: object = None
    n_matvec: int = 0

    @property
    def converged(self) -> bool:
        return self.info == "converged"


def pcg(matvec, b, *, precond=None, rtol=1e-6, atol=0.0, max_iter=None):
    """Preconditioned conjugate gradients for ``H x = b`` with ``x₀ = 0``
    (Nocedal & Wright, Alg. 5.3; Saad, *Iterative Methods*, Alg. 9.1).

    Stops when ``‖r‖ ≤ max(rtol ‖b‖, atol)``, after ``max_iter`` iterations,
    or at the first direction of non-positive curvature ``dᵀHd ≤ 0``
    (truncated Newton, N&W Alg. 7.1: the iterate built so far is returned;
    it is zero when this happens in the first iteration, and ``d0`` is then
    the steepest-descent fallback).

    Parameters
    ----------
    matvec : callable ``v -> Hv``
        ``H`` symmetric (positive definite on the Krylov space for a full solve).
    b : array, shape (n,)
    precond : callable ``r -> M⁻¹r``, optional
        ``M`` symmetric positive definite.
    rtol, atol : float
    max_iter : int, optional
        Default ``n``.

    Returns
    -------
    CGResult
    """
    n = b.shape[0]
    max_iter = n if max_iter is None else int(max_iter)
    x = b * 0.0
    r = b
    bnorm = norm(b)
    if not math.isfinite(bnorm):
        return CGResult(x, 0, "non_finite", bnorm)
    tol = max(rtol * bnorm, atol)
    z = precond(r) if precond is not None else r
    d0 = z
    if bnorm == 0.0 or bnorm <= tol:
        return CGResult(x, 0, "converged", bnorm, d0)
    rz = dot(r, z)
    if not math.isfinite(rz):
        return CGResult(x, 0, "non_finite", bnorm, d0)
    if rz <= 0.0:
        return CGResult(x, 0, "indefinite_preconditioner", bnorm, d0)
    d = z
    rnorm = bnorm
    for j in range(max_iter):
        Hd = matvec(d)
        kappa = dot(d, Hd)
        if not math.isfinite(kappa):
            return CGResult(x, j, "non_finite", rnorm, d0, j + 1)
        if kappa <= 0.0:
            return CGResult(x, j, "negative_curvature", rnorm, d0, j + 1)
        alpha = rz / kappa
        x = x + alpha * d
        r = r - alpha * Hd
        rnorm = norm(r)
        if not math.isfinite(rnorm):
            return CGResult(x, j + 1, "non_finite", rnorm, d0, j + 1)
        if rnorm <= tol:
            return CGResult(x, j + 1, "converged", rnorm, d0, j + 1)
        z = precond(r) if precond is not None else r
        rz_new = dot(r, z)
        if not rz_new > 0.0:
            info = "indefinite_preconditioner" if math.isfinite(rz_new) else "non_finite"
            return CGResult(x, j + 1, info, rnorm, d0, j + 1)
        beta = rz_new / rz
        d = z + beta * d
        rz = rz_new
    return CGResult(x, max_iter, "max_iter", rnorm, d0, max_iter)


@dataclass
class SteihaugResult:
    """Result of :func:`steihaug_cg`.

    Attributes
    ----------
    p : array
        The step.
    hits_boundary : bool
        ``‖p‖_M = Δ`` (the step was cut at the trust-region boundary).
    n_iter : int
        CG iterations (Hessian products).
    info : str
        ``'converged'`` (interior, residual small), ``'boundary'`` (an iterate
        left the region), ``'negative_curvature'``, ``'max_iter'``,
        ``'indefinite_preconditioner'`` or ``'non_finite'``.
    predicted_reduction : float
        ``m(0) − m(p) = −(gᵀp + ½ pᵀHp)``.
    step_norm : float
        ``‖p‖_M`` (Euclidean without preconditioner).
    """

    p: object
    hits_boundary: bool
    n_iter: int
    info: str
    predicted_reduction: float
    step_norm: float


def _boundary_roots(pMp, pMd, dMd, radius):
    """The roots ``τ₋ ≤ 0 ≤ τ₊`` of ``‖p + τ d‖_M = Δ`` (``‖p‖_M ≤ Δ``)."""
    gap = max(radius * radius - pMp, 0.0)
    disc = math.sqrt(pMd * pMd + dMd * gap)
    if pMd >= 0.0:
        tau_plus = gap / (pMd + disc) if pMd + disc > 0.0 else 0.0
        tau_minus = -(pMd + disc) / dMd
    else:
        tau_plus = (disc - pMd) / dMd
        tau_minus = -gap / (disc - pMd) if disc - pMd > 0.0 else 0.0
    return tau_minus, tau_plus


def steihaug_cg(hessp, g, radius, *, precond=None, rtol=None, max_iter=None):
    """Steihaug's truncated CG for the trust-region subproblem
    ``min m(p) = gᵀp + ½ pᵀHp  s.t.  ‖p‖_M ≤ Δ``
    (Nocedal & Wright, Alg. 7.2; preconditioned form with the M-norm
    recurrences of Conn, Gould & Toint, *Trust-Region Methods*, Alg. 7.5.1).

    CG on ``Hp = −g`` from ``p₀ = 0`` until (a) the residual is small:
    ``‖r‖_{M⁻¹} ≤ rtol ‖g‖_{M⁻¹}``; (b) an iterate would leave the region: the
    step is cut at the boundary along the current direction; (c) a direction
    of non-positive curvature appears: move to the boundary along it, at the
    root with the lower model value (as scipy's ``CGSteihaugSubproblem``).
    The model value decreases monotonically along the CG path, so the step
    is at least as good as the Cauchy point.

    Parameters
    ----------
    hessp : callable ``v -> Hv``
    g : array, shape (n,)
        Gradient (non-zero).
    radius : float
        Trust-region radius Δ, in the M-norm ``‖p‖_M = sqrt(pᵀMp)`` when
        preconditioned.
    precond : callable ``r -> M⁻¹r``, optional
    rtol : float, optional
        Default: the forcing term ``min(0.5, sqrt(‖g‖_{M⁻¹}))`` (N&W §7.1),
        which gives superlinear convergence of the outer iteration.
    max_iter : int, optional
        Default ``n``.

    Returns
    -------
    SteihaugResult
    """
    n = g.shape[0]
    max_iter = n if max_iter is None else int(max_iter)
    p = g * 0.0
    r = g
    z = precond(r) if precond is not None else r
    rz = dot(r, z)
    if not math.isfinite(rz):
        return SteihaugResult(p, False, 0, "non_finite", 0.0, 0.0)
    if rz <= 0.0:
        info = "converged" if norm(g) == 0.0 else "indefinite_preconditioner"
        return SteihaugResult(p, False, 0, info, 0.0, 0.0)
    gnorm_m = math.sqrt(rz)
    rtol = min(0.5, math.sqrt(gnorm_m)) if rtol is None else rtol
    tol = rtol * gnorm_m
    d = -z
    pMp, pMd, dMd = 0.0, 0.0, rz  # CGT eqs. (7.5.5)-(7.5.6): ‖p‖²_M, pᵀMd, ‖d‖²_M

    def finish(p, r_at_p, hits, j, info, step_norm):
        # m(p) = gᵀp + ½ pᵀHp = ½ (gᵀp + pᵀr)  with  r = g + Hp
        pred = -0.5 * (dot(g, p) + dot(p, r_at_p))
        return SteihaugResult(p, hits, j, info, pred, step_norm)

    for j in range(max_iter):
        Hd = hessp(d)
        kappa = dot(d, Hd)
        if not math.isfinite(kappa):
            return SteihaugResult(p, False, j + 1, "non_finite", 0.0, math.sqrt(pMp))
        if kappa <= 0.0:
            tau_minus, tau_plus = _boundary_roots(pMp, pMd, dMd, radius)
            # model change along d: Δm(τ) = τ rᵀd + ½ τ² κ with rᵀd = −rᵀz
            tau = min((tau_minus, tau_plus), key=lambda t: -t * rz + 0.5 * t * t * kappa)
            return finish(p + tau * d, r + tau * Hd, True, j + 1, "negative_curvature", radius)
        alpha = rz / kappa
        pMp_next = pMp + 2.0 * alpha * pMd + alpha * alpha * dMd
        if pMp_next >= radius * radius:
            _, tau = _boundary_roots(pMp, pMd, dMd, radius)
            return finish(p + tau * d, r + tau * Hd, True, j + 1, "boundary", radius)
        p = p + alpha * d
        r = r + alpha * Hd
        pMp = pMp_next
        z = precond(r) if precond is not None else r
        rz_new = dot(r, z)
        if not math.isfinite(rz_new):
            return SteihaugResult(p, False, j + 1, "non_finite", 0.0, math.sqrt(pMp))
        if rz_new <= 0.0 and norm(r) > 0.0:
            return SteihaugResult(p, False, j + 1, "indefinite_preconditioner", 0.0, math.sqrt(pMp))
        if math.sqrt(max(rz_new, 0.0)) <= tol:
            return finish(p, r, False, j + 1, "converged", math.sqrt(pMp))
        beta = rz_new / rz
        pMd = beta * (pMd + alpha * dMd)
        dMd = rz_new + beta * beta * dMd
        d = -z + beta * d
        rz = rz_new
    return finish(p, r, False, max_iter, "max_iter", math.sqrt(pMp))
