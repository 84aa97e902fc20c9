r"""The VarPro inner problem (private): ``w(θ) = argmin_w L(W F + μ, C) + S(w)``
for fixed features ``F = F(θ, Y)``, solved to high accuracy in float64.

Trust-region Newton (Nocedal & Wright, Alg. 4.1) with the exact Hessian
``∇²_ww L + ∇²S`` of the small convex classifier problem:

* small ``n_w``: the subproblem ``min gᵀp + ½pᵀHp, ‖p‖ ≤ Δ`` is solved
  exactly (N&W Alg. 4.3, Moré–Sorensen: Newton's method on
  ``1/Δ − 1/‖p(λ)‖`` for the multiplier λ with Cholesky factors of
  ``H + λI``; ``H`` is positive definite, so there is no hard case; the
  eigendecomposition variant :func:`tr_subproblem_eigh` serves singular ``H``);
* large ``n_w``: matrix-free Steihaug-CG (N&W Alg. 7.2,
  :func:`meganet.optimizers.steihaug_cg`) — a Newton–Krylov trust region.

The trust region matters with a weak classifier regularizer: the softmax
loss is flat along "add the same to every class", so full Newton steps from a
poor warm start can be huge (observed: the loss jumping from 2 to 130).
Near the solution the actual and predicted reductions fall below round-off
(``|Δf| ≲ eps·|f|``); there a step is accepted when it decreases ``‖∇_w Φ‖``,
so tolerances like ``1e-10`` on the gradient are reached (Newton converges
quadratically).  The warm start (the previous ``w``) usually leaves a few
steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..backend import to_numpy
from ..optimizers.cg import steihaug_cg
from . import _classifier

__all__ = ["InnerResult", "solve_classifier", "tr_subproblem_cholesky", "tr_subproblem_eigh"]


@dataclass
class InnerResult:
    """Outcome of one inner solve.

    Attributes
    ----------
    w : array (float64)
    loss_eval : LossEval at ``w`` (float64 features)
    value : float
        ``L + S`` at ``w``.
    grad_norm : float
        ``‖∇_w (L + S)‖`` at ``w``.
    n_iter : int
        Trust-region iterations (accepted and rejected steps).
    n_cg : int
        Krylov iterations (Hessian products): Steihaug-CG of the matrix-free
        solver, or Lanczos steps of the GNvpro solver (:mod:`._inner_krylov`).
    status : str
        ``'converged'``, ``'closed_form'`` (least squares via the SVD),
        ``'max_iter'``, ``'stalled'`` (no step decreases the objective or
        its gradient: round-off level) or ``'non_finite'``.
    solver : the Hessian solver at ``w`` when still valid (else None); for the
        GNvpro solver the low-rank ``KrylovLowRankSolver`` (kind ``'krylov_lowrank'``)
    radius : float
        The final trust radius (a good initial radius for the next, warm-started solve).
    """

    w: object
    loss_eval: object
    value: float
    grad_norm: float
    n_iter: int
    n_cg: int
    status: str
    solver: object = None
    radius: float = 1.0


def _value_grad(loss, Z, C, mask, reg, w):
    ev = loss.evaluate(Z, w, C, mask=mask)
    f = float(ev.value)
    g = ev.grad_w
    if reg is not None:
        rv, rg = reg.value_and_gradient(w)
        f += float(rv)
        g = g + rg
    return f, g, ev


def tr_subproblem_eigh(Q, lam, g, radius, *, max_iter=100):
    """Exact trust-region step for ``H = Q diag(lam) Qᵀ`` positive semidefinite.

    Returns ``(p, predicted_reduction, hits_boundary)``.  N&W Alg. 4.3 in the
    eigen-coordinates ``γ = Qᵀg`` (all scalars on the host): if the Newton
    step ``−γ/λ`` (pseudo-inverse on a numerically zero curvature with zero
    gradient component) is inside the region it is the answer; otherwise
    Newton's method on ``φ(μ) = 1/Δ − 1/‖p(μ)‖``, ``p(μ) = −γ/(λ + μ)``, started
    left of the root where it converges monotonically (φ is increasing and
    concave).
    """
    gam = to_numpy(Q.T @ g).astype(np.float64)
    lam_h = np.maximum(to_numpy(lam).astype(np.float64), 0.0)
    lmax = float(lam_h.max()) if lam_h.size else 0.0
    tiny = lam_h.size * np.finfo(np.float64).eps * max(lmax, 1e-300)
    gn = float(np.linalg.norm(gam))
    pos = lam_h > tiny
    if np.all(np.abs(gam[~pos]) <= 1e-12 * max(gn, 1e-300)):
        pt = np.where(pos, -gam / np.where(pos, lam_h, 1.0), 0.0)
        if float(np.linalg.norm(pt)) <= radius:
            pred = -float(gam @ pt + 0.5 * (lam_h * pt) @ pt)
            return Q @ _as(pt, Q), pred, False
    mult = tiny
    for _ in range(max_iter):
        d = lam_h + mult
        pt = -gam / d
        pn = float(np.linalg.norm(pt))
        if pn <= radius * (1.0 + 1e-10):
            break
        qn2 = float(np.sum(gam * gam / d ** 3))
        mult += (pn * pn / qn2) * (pn - radius) / radius
    pt = -gam / (lam_h + mult)
    pn = float(np.linalg.norm(pt))
    if pn > radius:  # round-off: put it on the sphere
        pt *= radius / pn
    pred = -float(gam @ pt + 0.5 * (lam_h * pt) @ pt)
    return Q @ _as(pt, Q), pred, True


def tr_subproblem_cholesky(H, Hinv, g, radius, *, max_iter=50):
    """Exact trust-region step for ``H`` positive definite (N&W Alg. 4.3).

    The Newton step ``−H⁻¹g`` if it lies in the region; otherwise λ > 0 with
    ``‖(H + λI)⁻¹g‖ = Δ`` by Newton's method on ``φ(λ) = 1/Δ − 1/‖p(λ)‖``
    from λ = 0 (left of the root: monotone convergence), each step one
    Cholesky factorization ``H + λI = LLᵀ`` and ``q = L⁻¹p``,
    ``λ ← λ + (‖p‖/‖q‖)² (‖p‖ − Δ)/Δ``.

    Returns ``(p, predicted_reduction, hits_boundary)``.
    """
    from ..backend import get_array_module

    xp = get_array_module(H)
    p = -(Hinv @ g)
    pn = _classifier.norm(p)
    hits = pn > radius
    if hits:
        eye = xp.eye(H.shape[0], dtype=H.dtype)
        mult = 0.0
        for _ in range(max_iter):
            L = xp.linalg.cholesky(H + mult * eye)
            p = -xp.linalg.solve(L.T, xp.linalg.solve(L, g))
            pn = _classifier.norm(p)
            if abs(pn - radius) <= 1e-8 * radius:
                break
            q = xp.linalg.solve(L, p)
            qn = _classifier.norm(q)
            mult += (pn / qn) ** 2 * (pn - radius) / radius
            mult = max(mult, 0.0)
        if pn > radius:  # round-off: put it on the sphere
            p = p * (radius / pn)
    pred = -(float(g @ p) + 0.5 * float(p @ (H @ p)))
    return p, pred, bool(hits)


def _as(a, like):
    from ..backend import get_array_module, to_backend

    return to_backend(a.astype(like.dtype), get_array_module(like))


def solve_classifier(loss, Z, C, mask, reg, w0, *, tol, max_iter, method, dense_max, radius0=None, eta=1e-4):
    """Minimize ``L(W Z + μ, C) + S(w)`` over ``w`` from ``w0`` by trust-region Newton (float64).

    Parameters
    ----------
    loss : Loss
    Z : array (float64), network output (features)
    C, mask : labels and mask for ``Z``
    reg : classifier Regularizer or None
    w0 : array (float64), warm start
    tol : float
        Stop when ``‖∇_w Φ‖ ≤ tol``.
    max_iter : int
        Trust-region iterations.
    method : {'auto', 'dense', 'cg'}
    dense_max : int
        ``'auto'``: dense when ``n_w ≤ dense_max``.
    radius0 : float, optional
        Initial radius (default ``max(1, ‖w0‖)``).

    Returns
    -------
    InnerResult
    """
    return trust_region_newton(lambda w: _value_grad(loss, Z, C, mask, reg, w),
                               lambda w, ev: _classifier.make_solver(loss, ev, reg, w, method, dense_max=dense_max),
                               w0, tol=tol, max_iter=max_iter, radius0=radius0, eta=eta)


def trust_region_newton(evaluate, make_solver, w0, *, tol, max_iter, radius0=None, eta=1e-4):
    """The trust-region Newton loop of :func:`solve_classifier`, on any evaluation of ``Φ(w)``.

    ``evaluate(w) -> (f, g, ev)`` (float64 value, gradient and what ``make_solver`` needs);
    ``make_solver(w, ev)`` returns a :mod:`~meganet.objectives._classifier` solver (``kind`` ``'cg'``,
    ``'cholesky'`` or ``'eigh'``), rebuilt after every accepted step.  Used by the serial inner solve and by
    :mod:`meganet.distributed` on shard sums (same iterates).
    """
    eps = np.finfo(np.float64).eps
    w = w0
    f, g, ev = evaluate(w)
    gnorm = _classifier.norm(g)
    radius = max(1.0, _classifier.norm(w)) if radius0 is None else float(radius0)
    n_cg = 0
    solver = None
    status = "max_iter"
    k = 0
    while True:
        if not (math.isfinite(f) and math.isfinite(gnorm)):
            status = "non_finite"
            break
        if gnorm <= tol:
            status = "converged"
            break
        if k >= max_iter:
            break
        if solver is None:
            solver = make_solver(w, ev)
        if solver.kind == "cg":
            sres = steihaug_cg(solver.matvec, g, radius, precond=lambda r: solver.dinv * r,
                               rtol=min(0.1, math.sqrt(gnorm)) * min(1.0, gnorm), max_iter=solver.max_iter)
            p, pred, hits = sres.p, sres.predicted_reduction, sres.hits_boundary
            n_cg += sres.n_iter
        elif solver.kind == "cholesky":
            p, pred, hits = tr_subproblem_cholesky(solver.H, solver.Hinv, g, radius)
        else:
            p, pred, hits = tr_subproblem_eigh(solver.Q, solver.lam, g, radius)
        k += 1
        pnorm = _classifier.norm(p)
        wt = w + p
        ft, gt, evt = evaluate(wt)
        actual = f - ft
        noise = 100.0 * eps * max(abs(f), 1.0)
        if not math.isfinite(ft):
            rho = -1.0
        elif pred <= noise and abs(actual) <= noise:
            # reductions at round-off: judge the step by the gradient (Newton near the solution)
            gtn = _classifier.norm(gt)
            rho = 1.0 if gtn < gnorm else -1.0
        else:
            rho = actual / pred if pred > 0 else -1.0
        if rho < 0.25:
            radius = 0.25 * pnorm
        elif rho > 0.75 and hits:
            radius = 2.0 * radius
        if rho > eta:
            w, f, g, ev = wt, ft, gt, evt
            gnorm = _classifier.norm(g)
            solver = None  # the Hessian moved with w
        elif radius <= 1e-14 * max(1.0, _classifier.norm(w)):
            status = "stalled"
            break
    return InnerResult(w=w, loss_eval=ev, value=f, grad_norm=gnorm, n_iter=k, n_cg=n_cg, status=status,
                       solver=solver, radius=radius)
