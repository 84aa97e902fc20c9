r"""The published GNvpro inner solver (private): Newton–Krylov trust region for
``w(θ) = argmin_w Φ(w) = L(W F + μ, C) + S(w)`` with fixed features, float64.

Newman, Ruthotto, Hart & van Bloemen Waanders, "Train like a (Var)Pro" (2021)
and the GNvpro slides ("Newton-Krylov Trust Region Method"):

* every inner solve starts from ``W⁽⁰⁾ = 0`` (no warm start);
* step ``j``: Lanczos with full reorthogonalisation on the Krylov space
  ``K_r(∇²Φ, ∇_wΦ)``.  ``∇²Φ`` is symmetric, so Lanczos is Arnoldi: with
  ``q₁ = ∇_wΦ/β``, ``β = ‖∇_wΦ‖``, it gives ``Q_{r+1}`` with orthonormal
  columns and the tridiagonal ``(r+1) × r`` matrix ``H_r`` with the Arnoldi
  relation ``Q_{r+1} H_r = ∇²Φ Q_r`` (full reorthogonalisation keeps it, and
  the orthogonality, to round-off);
* the step ``δw = −Q_r z*(λ)`` (the sign: it approximates the Newton step,
  ``∇²Φ δw = −∇_wΦ``) with
  ``z*(λ) = argmin ½‖H_r z − β e₁‖² + λ/2 ‖z‖²``: ``λ = 0`` when
  ``‖z*(0)‖ ≤ Δ``, else the ``λ > 0`` with ``‖z*(λ)‖ = Δ`` from the SVD
  ``H_r = U Σ Vᵀ`` (``z*(λ) = V diag(σ/(σ² + λ)) Uᵀ β e₁``) and
  :func:`scipy.optimize.brentq` on the secular equation ``‖z*(λ)‖ − Δ = 0``;
* trust region as Meganet.m's ``trnewton``: initial ``Δ = ‖z*(0)‖`` of the
  first step (the first step is the full Newton–Krylov step), ratio
  ``ρ = ared/pred`` with ``pred`` from the projected quadratic model
  ``pred = β z₁ − ½ zᵀ T_r z`` (``T_r`` the upper ``r × r`` block of ``H_r``
  = ``Q_rᵀ ∇²Φ Q_r``); ``ρ < 10⁻⁴``: reject, ``Δ ← ½ min(Δ, ‖δw‖)`` (the
  Krylov space at ``w`` is kept, only the secular equation is re-solved);
  ``ρ < 0.1``: accept, ``Δ ← ½Δ``; ``ρ ≤ 0.75``: accept; ``ρ > 0.75``:
  accept and ``Δ ← 1.5Δ`` when the step was on the boundary and
  ``Δ ≤ 10⁴ ‖∇_wΦ‖`` (trnewton's ``C``).  (Meganet.m,
  on ``ρ > 0.75`` at the boundary, enlarges Δ and re-solves *without*
  accepting the step; here the step is accepted — it has decreased Φ as
  predicted.)  Near convergence, when ``ared`` and ``pred`` are at round-off
  (``≲ 100·eps·|Φ|``), the step is judged by the gradient norm (accepted when
  it decreases ``‖∇_wΦ‖``), as in :mod:`._inner_newton`;
* stop at ``‖∇_wΦ‖ ≤ tol``.

The inverse Hessian for the implicit Jacobian is the low-rank
``Q_r H_r† Q_{r+1}ᵀ`` (:class:`KrylovLowRankSolver`).  It is built at the
*final* ``w`` by one more Lanczos run (Hessian products only: no network
passes) started from the gradient that started the last Newton step (the
direction of Meganet.m's last Krylov space, but with the Hessian at the
solution; the gradient *at* the solution is round-off), restarted with a new
orthogonal direction when the space becomes invariant before ``r`` vectors
(see :func:`lanczos`), so that ``r = n_w`` spans all of ``R^{n_w}``.  The run is lazy: it
happens at the first ``solve``.  With ``r = n_w`` it is the exact inverse
(up to round-off); with ``r < n_w`` it is exact on the Krylov space
(``solve(∇²Φ x) = x`` for ``x ∈ range Q_r``) and not symmetric in general.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module, to_backend, to_numpy
from . import _classifier
from ._inner_newton import InnerResult, _value_grad

_GROW_CAP = 1e4  # Meganet.m trnewton's C: Δ grows only while Δ ≤ C ‖∇_wΦ‖

__all__ = ["lanczos", "krylov_tr_step", "KrylovLowRankSolver", "solve_classifier_krylov", "hessian_operator"]


def hessian_operator(loss, ev, reg, w):
    """``v ↦ (∇²_ww L + ∇²S) v`` at ``w`` (float64)."""
    def matvec(v):
        Hv = loss.hess_w_mv(v, ev)
        if reg is not None:
            Hv = Hv + reg.hess_mv(v, w)
        return Hv
    return matvec


def lanczos(matvec, b, r, *, restart=False):
    """Lanczos with full reorthogonalisation on ``K_r(A, b)`` (``A`` symmetric).

    Returns ``(Q, H, beta)``: ``Q`` of shape ``(n, k+1)`` with orthonormal
    columns (the last one zero on breakdown), ``H`` of shape ``(k+1, k)``
    tridiagonal with ``Q H = A Q[:, :k]`` (Arnoldi relation), ``beta = ‖b‖``;
    ``k ≤ r`` is smaller than ``r`` when the Krylov space becomes invariant
    (then ``H[k, k-1] = 0``).  Classical Gram-Schmidt against all previous
    vectors, twice ("twice is enough").

    ``restart=True``: on an invariant subspace before ``r`` vectors, continue
    with a new unit vector orthogonal to the previous ones (deterministic,
    seeded) and ``H[j+1, j] = 0`` — the relation ``Q H = A Q[:, :k]`` still
    holds, ``H`` stays symmetric tridiagonal (block diagonal), and ``r = n``
    spans the whole space.  (The softmax Hessian leaves the gradient's
    "zero sum over classes" subspace invariant, so plain Lanczos from a
    gradient stops at ``n_w − n_features − 1`` vectors.)
    """
    xp = get_array_module(b)
    n = b.shape[0]
    r = int(min(r, n))
    beta = _classifier.norm(b)
    Q = xp.zeros((n, r + 1), dtype=np.float64)
    H = np.zeros((r + 1, r))
    if beta == 0.0 or not math.isfinite(beta):
        return Q[:, :1], H[:1, :0], beta
    Q[:, 0] = b / beta
    scale = 0.0
    k = r
    for j in range(r):
        v = matvec(Q[:, j])
        Qj = Q[:, : j + 1]
        h = Qj.T @ v
        v = v - Qj @ h
        h2 = Qj.T @ v
        v = v - Qj @ h2
        h = to_numpy(h + h2)
        H[j, j] = h[j]
        if j > 0:
            H[j - 1, j] = H[j, j - 1]  # symmetric tridiagonal
        nv = _classifier.norm(v)
        scale = max(scale, abs(h[j]), nv)
        if nv <= 1e-12 * scale:  # invariant subspace: K_{j+1} = K_{j+2} = ...
            if not restart or j + 1 >= r:
                k = j + 1
                break
            v = _new_direction(Q[:, : j + 1], j, xp)
            if v is None:
                k = j + 1
                break
            Q[:, j + 1] = v  # H[j+1, j] = 0: the new block is decoupled
            continue
        H[j + 1, j] = nv
        Q[:, j + 1] = v / nv
    return Q[:, : k + 1], H[: k + 1, :k], beta


def _new_direction(Qj, seed, xp):
    """A unit vector orthogonal to the columns of ``Qj`` (seeded random, orthogonalised twice)."""
    rng = np.random.default_rng(12345 + seed)
    for _ in range(5):
        v = to_backend(rng.standard_normal(Qj.shape[0]), xp)
        v = v - Qj @ (Qj.T @ v)
        v = v - Qj @ (Qj.T @ v)
        nv = _classifier.norm(v)
        if nv > 1e-8:
            return v / nv
    return None


class _ProjectedTR:
    """The projected subproblem ``min ½‖H_r z − β e₁‖² + λ/2‖z‖²`` via the SVD of ``H_r``."""

    def __init__(self, H, beta):
        U, s, Vt = np.linalg.svd(H, full_matrices=False)
        self.s, self.Vt = s, Vt
        self.c = beta * U[0, :]  # Uᵀ β e₁
        self.T = H[: H.shape[1], :]  # Q_rᵀ ∇²Φ Q_r
        self.beta = beta
        smax = float(s.max()) if s.size else 0.0
        self.keep = s > max(H.shape) * np.finfo(np.float64).eps * smax

    def z(self, lam):
        s = self.s
        d = np.where(self.keep, s / (s * s + lam), 0.0) if lam == 0.0 else s / (s * s + lam)
        return self.Vt.T @ (d * self.c)

    def solve(self, radius):
        """``(z, lam, on_boundary)``."""
        z0 = self.z(0.0)
        n0 = float(np.linalg.norm(z0))
        if n0 <= radius:
            return z0, 0.0, False
        phi = lambda lam: float(np.linalg.norm(self.z(lam))) - radius  # decreasing in λ
        hi = float(np.linalg.norm(self.s * self.c)) / radius  # ‖z*(λ)‖ ≤ ‖Σ c‖/λ
        hi = max(hi, 1e-300)
        while phi(hi) > 0:  # round-off guard
            hi *= 2.0
        from scipy.optimize import brentq  # here, not at import: scipy.optimize adds ~0.1 s to `import meganet`

        lam = brentq(phi, 0.0, hi, xtol=1e-14 * hi, rtol=1e-12, maxiter=200)
        return self.z(lam), lam, True

    def predicted_reduction(self, z):
        """``−(gᵀδw + ½δwᵀ∇²Φδw)`` for ``δw = −Q_r z``: ``β z₁ − ½ zᵀ T_r z``."""
        return float(self.beta * z[0] - 0.5 * z @ (self.T @ z))


def krylov_tr_step(matvec, g, r, radius):
    """One projected step (for tests): ``(δw, pred, on_boundary, z, Q, H)``."""
    Q, H, beta = lanczos(matvec, g, r)
    sub = _ProjectedTR(H, beta)
    z, _, hits = sub.solve(radius)
    k = H.shape[1]
    return -(Q[:, :k] @ _as(z, Q)), sub.predicted_reduction(z), hits, z, Q, H


def _as(a, like):
    return to_backend(np.asarray(a, dtype=np.float64), get_array_module(like))


class KrylovLowRankSolver:
    """``(∇²Φ)⁻¹ ≈ Q_r H_r† Q_{r+1}ᵀ`` from Lanczos on ``K_r(∇²Φ, b₀)`` (lazy: built at the first solve).

    Attributes (after the build): ``Q`` (n_w × (k+1)), ``H`` ((k+1) × k),
    ``rank`` = k (≤ r; smaller on breakdown), ``n_matvec``.
    """

    kind = "krylov_lowrank"

    def __init__(self, matvec, start, r):
        self.matvec, self.start, self.r = matvec, start, int(r)
        self.Q = self.H = self._M = None
        self.rank = 0
        self.n_matvec = 0

    def build(self):
        if self._M is None:
            Q, H, _ = lanczos(self.matvec, self.start, self.r, restart=True)
            k = H.shape[1]
            self.n_matvec = k
            self.Q, self.H, self.rank = Q, H, k
            Hp = np.linalg.pinv(H, rcond=max(H.shape) * np.finfo(np.float64).eps)  # (k, k+1)
            self._M = Q[:, :k] @ _as(Hp, Q)  # Q_r H_r†, (n_w, k+1)
        return self

    def solve(self, b):
        self.build()
        return self._M @ (self.Q.T @ b)


def solve_classifier_krylov(loss, Z, C, mask, reg, *, tol, max_iter, krylov_dim, eta=1e-4, history=None):
    """Minimize ``L(W Z + μ, C) + S(w)`` from ``w = 0`` by the Newton–Krylov trust region (float64).

    Parameters
    ----------
    loss, Z, C, mask, reg : as :func:`._inner_newton.solve_classifier`
    tol : float
        Stop when ``‖∇_w Φ‖ ≤ tol``.
    max_iter : int
        Trust-region iterations (accepted and rejected steps).
    krylov_dim : int
        ``r``, the Krylov dimension of each step and of the low-rank inverse (≤ n_w).
    history : list, optional
        When given, one dict per trial step is appended: ``rho``, ``pred``,
        ``ared``, ``step_norm``, ``on_boundary``, ``radius`` (before) and
        ``new_radius``, ``accepted``, ``grad_norm`` (at the point the step
        starts from), ``roundoff`` (judged by the gradient norm).

    Returns
    -------
    InnerResult
        ``n_cg`` counts the Lanczos steps (Hessian products) of the solve;
        ``solver`` is a :class:`KrylovLowRankSolver` at the final ``w``.
    """
    eps = np.finfo(np.float64).eps
    xp = get_array_module(Z)
    w = xp.zeros(loss.n_w, dtype=np.float64)
    f, g, ev = _value_grad(loss, Z, C, mask, reg, w)
    gnorm = _classifier.norm(g)
    g_last = g  # the gradient that started the last Newton step
    radius = None
    n_lanczos = 0
    status = "max_iter"
    k = 0
    sub = Q = None
    while True:
        if not (math.isfinite(f) and math.isfinite(gnorm)):
            status = "non_finite"
            break
        if gnorm <= tol:
            status = "converged"
            break
        if k >= max_iter:
            break
        if sub is None:  # new point: new Krylov space
            Q, H, beta = lanczos(hessian_operator(loss, ev, reg, w), g, krylov_dim)
            n_lanczos += H.shape[1]
            sub = _ProjectedTR(H, beta)
            g_last = g
            if radius is None:
                radius = float(np.linalg.norm(sub.z(0.0)))  # Meganet.m: Δ⁽⁰⁾ = ‖z*(0)‖ of the first step
        z, _, hits = sub.solve(radius)
        pred = sub.predicted_reduction(z)
        p = -(Q[:, : z.shape[0]] @ _as(z, Q))
        pnorm = float(np.linalg.norm(z))  # = ‖δw‖ (orthonormal Q_r)
        k += 1
        wt = w + p
        ft, gt, evt = _value_grad(loss, Z, C, mask, reg, wt)
        actual = f - ft
        noise = 100.0 * eps * max(abs(f), 1.0)
        roundoff = False
        if not math.isfinite(ft):
            rho = -1.0
        elif pred <= noise and abs(actual) <= noise:
            roundoff = True
            rho = 1.0 if _classifier.norm(gt) < gnorm else -1.0  # round-off: judge by the gradient
        else:
            rho = actual / pred if pred > 0 else -1.0
        old_radius = radius
        if rho < eta:  # reject
            radius = 0.5 * min(radius, pnorm)
        elif rho < 0.1:
            radius = 0.5 * radius
        elif rho > 0.75 and hits and radius <= _GROW_CAP * gnorm:  # trnewton: grow only while Δ ≤ C‖∇_wΦ‖
            radius = 1.5 * radius
        if history is not None:
            history.append(dict(rho=rho, pred=pred, ared=actual, step_norm=pnorm, on_boundary=hits,
                                radius=old_radius, new_radius=radius, accepted=rho >= eta, grad_norm=gnorm,
                                roundoff=roundoff))
        if rho < eta:
            if radius <= 1e-14 * max(1.0, _classifier.norm(w)):
                status = "stalled"
                break
            continue
        w, f, g, ev = wt, ft, gt, evt
        gnorm = _classifier.norm(g)
        sub = None
    start = g_last if _classifier.norm(g_last) > 0 else xp.ones(loss.n_w, dtype=np.float64)
    solver = KrylovLowRankSolver(hessian_operator(loss, ev, reg, w), start, krylov_dim)
    return InnerResult(w=w, loss_eval=ev, value=f, grad_norm=gnorm, n_iter=k, n_cg=n_lanczos, status=status,
                       solver=solver, radius=radius if radius is not None else 0.0)
