"""Newton–Krylov trust region: project the model onto a Lanczos (Krylov)
subspace and solve the small trust-region problem there exactly.

At an iterate with gradient ``g`` and Hessian (or Gauss-Newton) ``H``, ``k``
steps of (preconditioned) Lanczos started from ``g`` give an M-orthonormal
basis ``Q_k`` with ``Q_kᵀ H Q_k = T_k`` tridiagonal and ``Q_kᵀ g = γ₀ e₁``.  The
step is ``p = Q_k y`` where ``y`` solves the small problem

    min_y  γ₀ y₁ + ½ yᵀ T_k y   s.t.  ‖y‖ ≤ Δ

exactly (Moré & Sorensen 1983, including the hard case).  This is the
generalized Lanczos trust-region method (GLTR) of Gould, Lucidi, Roma & Toint
(SIAM J. Optim. 9, 1999), the subspace trust-region step of the GNvpro slides
(Newman, Ruthotto et al. 2020), and close to Meganet.m's ``trnewton`` (which
builds the Krylov space with Arnoldi/GMRES and regularizes the small
least-squares problem instead).  Unlike Steihaug-CG it can follow negative
curvature inside the region, and a rejected step is re-solved with a
smaller radius on the same basis without any new Hessian product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._common import (
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
    hessian_kind,
    options_text,
    prepare_x0,
)
from .trust_region import TRStep, _check_radius_rule, _check_tr_options, run_trust_region

__all__ = ["TRSolution", "solve_trust_region_subproblem", "LanczosSubproblem", "minimize_trust_region_krylov"]


@dataclass
class TRSolution:
    """Exact solution of a small trust-region subproblem.

    Attributes
    ----------
    p : numpy.ndarray, shape (n,)
    sigma : float
        Lagrange multiplier σ ≥ 0: ``(H + σI) p = −g``, ``H + σI`` positive
        semidefinite, ``σ (Δ − ‖p‖) = 0``.
    hits_boundary : bool
    hard_case : bool
        ``g`` is (numerically) orthogonal to the eigenspace of the smallest
        eigenvalue λ₁ ≤ 0 and σ = −λ₁; the solution then adds a multiple of the
        eigenvector to reach the boundary (N&W eq. 4.45) and is not unique
        (the multiple may take either sign).
    model_value : float
        ``m(p) = gᵀp + ½ pᵀHp``.
    """

    p: np.ndarray
    sigma: float
    hits_boundary: bool
    hard_case: bool
    model_value: float


def solve_trust_region_subproblem(H, g, radius, *, rtol=1e-12, max_iter=200):
    """Globally solve ``min gᵀp + ½ pᵀHp  s.t.  ‖p‖ ≤ Δ`` for a small dense symmetric ``H``.

    Uses the characterization of Moré & Sorensen (1983) / N&W Theorem 4.1 and
    the Moré–Sorensen Newton iteration on the secular equation
    ``φ(σ) = 1/‖p(σ)‖ − 1/Δ = 0`` (N&W Alg. 4.3), evaluated in the eigenbasis
    ``H = V diag(λ) Vᵀ`` instead of with Cholesky factorizations: for the
    ``k × k`` Lanczos matrices (k ≲ 100) one eigendecomposition costs less
    than a single Hessian product of the network and makes the hard case
    explicit.  Newton steps are safeguarded by bisection on a bracket.
    ``scipy.optimize`` has the same solver only as private API
    (``_trustregion_exact.IterativeSubproblem``).

    Cases:

    * λ₁ > 0 and ``‖H⁻¹g‖ ≤ Δ``: interior Newton step, σ = 0;
    * otherwise ``‖p(σ)‖ = Δ`` with σ > max(0, −λ₁);
    * hard case: if even at ``σ = −λ₁ + ε`` the step is shorter than Δ (g has
      no component along the λ₁-eigenspace, λ₁ ≤ 0), take σ = −λ₁ and
      ``p = −(H − λ₁I)⁺ g + τ v₁`` with ``‖p‖ = Δ`` (N&W eq. 4.45).

    Parameters
    ----------
    H : array_like, shape (n, n)
        Symmetric.
    g : array_like, shape (n,)
    radius : float
        Δ > 0, or ``math.inf`` for the unconstrained problem: its minimizer
        ``−H⁻¹g`` (σ = 0, interior) when ``H`` is positive definite, else (the
        model is unbounded below) a NaN step with σ = NaN.
    rtol : float
        Accept σ when ``|‖p‖ − Δ| ≤ rtol Δ``.
    max_iter : int
        Newton/bisection iterations on σ.

    Returns
    -------
    TRSolution
        In float64 (host numpy arrays).
    """
    H = np.asarray(H, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or g.shape != (H.shape[0],):
        raise ValueError(f"H must be (n, n) and g (n,), got {H.shape} and {g.shape}")
    if not (np.isfinite(H).all() and np.isfinite(g).all()):
        raise ValueError("H and g must be finite")
    radius = check_real("radius", radius, low=0.0, low_open=True, allow_inf=True)
    lam, V = np.linalg.eigh(0.5 * (H + H.T))
    a = V.T @ g
    if math.isinf(radius):
        if float(lam[0]) > 0.0:
            y = -a / lam
            return TRSolution(V @ y, 0.0, False, False, float(a @ y + 0.5 * (lam * y * y).sum()))
        return TRSolution(np.full_like(a, np.nan), math.nan, False, False, math.nan)
    eps = np.finfo(np.float64).eps
    scale = max(float(np.abs(lam).max()), float(np.linalg.norm(g)) / radius, np.finfo(np.float64).tiny)

    def result(y, sigma, hard):
        p = V @ y
        m = float(a @ y + 0.5 * (lam * y * y).sum())
        hits = sigma > 0.0 or abs(float(np.linalg.norm(y)) - radius) <= 1e-8 * radius
        return TRSolution(p, float(sigma), bool(hits), hard, m)

    lam1 = float(lam[0])
    if lam1 > 0.0:
        y = -a / lam
        if float(np.linalg.norm(y)) <= radius:
            return result(y, 0.0, False)
    lo = max(0.0, -lam1)

    def norm_p(sigma):
        return float(np.linalg.norm(a / (lam + sigma)))

    if lam1 <= 0.0:
        bottom = lam <= lam1 + 10.0 * eps * scale
        if norm_p(lo + eps * scale) <= radius:
            # hard case: the secular equation has no root right of −λ₁ within precision
            y = np.zeros_like(a)
            others = ~bottom
            y[others] = -a[others] / (lam[others] - lam1)
            tau = math.sqrt(max(radius * radius - float(y @ y), 0.0))
            a1 = float(a[0])
            y[0] = (-math.copysign(1.0, a1) if a1 != 0.0 else 1.0) * tau
            return result(y, lo, True)
    # easy case: φ(σ) = 1/‖p(σ)‖ − 1/Δ is increasing and concave on (lo, ∞), φ(lo⁺) < 0 ≤ φ(hi)
    hi = max(lo, float(np.linalg.norm(a)) / radius - lam1) * (1.0 + 4.0 * eps) + eps * scale
    sigma = hi
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # trials next to the pole
        for _ in range(max_iter):
            q = a / (lam + sigma)
            nq = float(np.linalg.norm(q))
            if abs(nq - radius) <= rtol * radius:
                break
            phi = 1.0 / nq - 1.0 / radius
            if phi < 0.0:
                lo = sigma
            else:
                hi = sigma
            u = q / nq
            dphi = float((u * u / (lam + sigma)).sum()) / nq  # φ'(σ) = Σ q_i²/(λ_i+σ) / ‖q‖³
            new = sigma - phi / dphi if dphi > 0.0 else 0.5 * (lo + hi)
            if not (lo < new < hi):
                new = 0.5 * (lo + hi)
            if hi - lo <= 4.0 * eps * max(1.0, hi):
                break
            sigma = new
    y = -a / (lam + sigma)
    return result(y, sigma, False)


class LanczosSubproblem:
    """The model ``m(p) = gᵀp + ½ pᵀHp`` restricted to a Krylov subspace
    ``K_k(M⁻¹H, M⁻¹g)``, built lazily by Lanczos and solved exactly for any radius.

    Preconditioned Lanczos (M-orthonormal basis ``q_j``, ``w_j = M q_j``) with
    full reorthogonalization (classical Gram–Schmidt, twice).  ``solve``
    extends the basis until the GLTR residual estimate
    ``‖(H + σM)p + g‖_{M⁻¹} = γ_{j+1} |e_jᵀ y|`` (Gould et al. 1999, Thm 5.8) is
    below ``rtol · ‖g‖_{M⁻¹}``, the basis reaches ``max_dim``, or Lanczos
    breaks down (an invariant subspace: the projected problem is then exact).

    The small problem is solved exactly, its own hard case included.  In the
    hard case of the *full* problem (``g`` orthogonal to the eigenvectors of
    the leftmost eigenvalue) the Krylov space started from ``g`` does not
    contain those eigenvectors, so the step is the minimizer over the
    subspace only — the known limitation of GLTR; rounding errors and the
    next outer iterations usually recover the direction.

    Parameters
    ----------
    hessp : callable ``v -> Hv``
    g : array, shape (n,)
    precond : callable ``r -> M⁻¹r``, optional
    max_dim : int
        Largest subspace dimension k (k vectors are stored, 2k with a preconditioner).
    rtol : float, optional
        Default: the forcing term ``min(0.5, sqrt(‖g‖_{M⁻¹}))``.
    """

    def __init__(self, hessp, g, *, precond=None, max_dim=20, rtol=None):
        self.hessp, self.precond, self.max_dim = hessp, precond, int(max_dim)
        self.Q, self.W = [], []
        self.diag, self.offdiag = [], []  # T_jj and T_{j,j+1}
        self.info = None
        eps = eps_of(g.dtype)
        z = precond(g) if precond is not None else g
        rz = dot(g, z)
        self._r, self._z = g, z
        self.gamma0 = math.sqrt(rz) if rz > 0.0 else 0.0
        self._gamma = self.gamma0
        if not math.isfinite(rz):
            self.info = "non_finite"
        elif rz <= 0.0 and dot(g, g) > 0.0:
            self.info = "indefinite_preconditioner"
        self.rtol = min(0.5, math.sqrt(self.gamma0)) if rtol is None else rtol
        self._tiny = 100.0 * eps
        self._scale = 0.0
        self._new = 0
        self.breakdown = self.gamma0 == 0.0

    def _extend(self):
        """One Lanczos step: append q_j, compute T_jj and γ_{j+1}."""
        gamma = self._gamma
        q = self._z * (1.0 / gamma)
        w = q if self.precond is None else self._r * (1.0 / gamma)
        Hq = self.hessp(q)
        self._new += 1
        delta = dot(q, Hq)
        if not math.isfinite(delta):
            self.info = "non_finite"
            return
        r = Hq - delta * w
        if self.W:
            r = r - gamma * self.W[-1]
        self.Q.append(q)
        self.W.append(w)
        self.diag.append(delta)
        for _ in range(2):  # full reorthogonalization in the M-inner product: q_iᵀ M z = q_iᵀ r
            for qi, wi in zip(self.Q, self.W):
                r = r - dot(qi, r) * wi
        z = self.precond(r) if self.precond is not None else r
        rz = dot(r, z)
        if not math.isfinite(rz):
            self.info = "non_finite"
            return
        self._scale = max(self._scale, abs(delta), gamma)
        floor = self._tiny * max(self._scale, self.gamma0)
        if rz < -floor * floor:  # clearly negative, not just rounding of a vanishing residual
            self.info = "indefinite_preconditioner"
            return
        gamma_next = math.sqrt(max(rz, 0.0))
        self.offdiag.append(gamma_next)
        self._r, self._z, self._gamma = r, z, gamma_next
        if gamma_next <= floor:
            self.breakdown = True

    def _small_problem(self, radius):
        j = len(self.diag)
        T = np.diag(np.asarray(self.diag))
        if j > 1:
            off = np.asarray(self.offdiag[: j - 1])
            T += np.diag(off, 1) + np.diag(off, -1)
        e1 = np.zeros(j)
        e1[0] = self.gamma0
        return solve_trust_region_subproblem(T, e1, radius)

    def solve(self, radius) -> TRStep:
        self._new = 0
        sol = None
        if self.gamma0 == 0.0 and self.info is None:
            return TRStep(self._r * 0.0, False, 0.0, 0.0, 0, "zero_gradient", dict(krylov_dim=0))
        while self.info is None:
            if self.Q:
                sol = self._small_problem(radius)
                resid = 0.0 if self.breakdown else self.offdiag[-1] * abs(float(sol.p[-1]))
                if resid <= self.rtol * self.gamma0 or len(self.Q) >= self.max_dim or self.breakdown:
                    break
            self._extend()
        if self.info is not None:
            zero = self._r * 0.0
            return TRStep(zero, False, 0.0, 0.0, self._new, self.info, dict(krylov_dim=len(self.Q)))
        y = sol.p
        p = self.Q[0] * float(y[0])
        for yi, qi in zip(y[1:], self.Q[1:]):
            p = p + float(yi) * qi
        info = "breakdown" if self.breakdown else ("max_dim" if len(self.Q) >= self.max_dim else "converged")
        if sol.hard_case:
            info += ",hard_case"
        return TRStep(p, sol.hits_boundary, -sol.model_value, float(np.linalg.norm(y)), self._new, info,
                      dict(krylov_dim=len(self.Q), sigma=sol.sigma))


def minimize_trust_region_krylov(problem, x0, *, krylov_dim=20, krylov_rtol=None, initial_radius=1.0,
                                 max_radius=1000.0, eta=0.15, shrink_below=0.25, grow_above=0.75, shrink_factor=0.25,
                                 grow_factor=2.0, min_radius=None, max_iter=200, max_work_units=None, gtol=1e-5,
                                 rtol=0.0, ftol=0.0, preconditioner=True, callback=None, verbose=False, label=None):
    """Newton–Krylov trust-region method (GLTR; the GNvpro slides' subspace
    trust-region Newton; Meganet.m ``trnewton``), driven by N&W Alg. 4.1.

    Each accepted iterate builds a Lanczos basis of dimension ≤ ``krylov_dim``
    from the gradient (see :class:`LanczosSubproblem`) and solves the
    projected trust-region problem exactly, hard case included
    (:func:`solve_trust_region_subproblem`).  With ``krylov_dim ≥ n`` the step
    is the exact trust-region step.

    Parameters
    ----------
    problem : object
        Needs ``value_and_gradient`` and ``hessian_matvec``.
    x0 : array, shape (n,)
    krylov_dim : int
        Maximum subspace dimension (vectors stored per iteration).
    krylov_rtol : float, optional
        Relative residual target of the projected solve (default
        ``min(0.5, sqrt‖g‖)``).
    initial_radius : float or "auto"
        The first radius (default 1.0).  ``"auto"`` (Meganet.m ``trnewton``,
        ``Delta = norm(z)``): the first Lanczos subproblem is solved with an
        infinite radius, i.e. the (Gauss-)Newton step in the Krylov space;
        when the projected matrix is positive definite and that step finite,
        it is taken as the first step and its length is the first radius (so
        the first history row has ``radius == step_norm`` and ``sigma == 0``;
        capped at ``max_radius``, the subproblem then being re-solved), else
        the radius starts at 1.0.
    max_radius, eta, min_radius, max_iter, gtol, rtol, ftol, preconditioner, callback, verbose
        As in :func:`~meganet.optimizers.minimize_trust_region_steihaug`; the
        header shows ``krylov_dim`` instead of ``cg_max_iter``.
    shrink_below, grow_above, shrink_factor, grow_factor : float
        Radius rule, as in :func:`~meganet.optimizers.minimize_trust_region_steihaug`.
    max_work_units : float, optional
        Work-unit budget, checked at the start of every iteration; as in
        :func:`~meganet.optimizers.minimize_steepest_descent`.
    label : str, optional
        The solver's name in the header and in ``result.solver``.  Default:
        ``"trust-region Gauss-Newton-Krylov (Lanczos)"`` when the problem
        declares a Gauss-Newton Hessian product, else ``"trust-region
        Newton-Krylov (Lanczos)"``.

    Returns
    -------
    OptimizeResult
        The history has the subspace dimension ``krylov_dim`` and multiplier
        ``sigma`` per iteration; ``info["radius"]`` is the final radius,
        ``info["preconditioner"]`` the preconditioner as in the header.
    """
    check_problem(problem, "minimize_trust_region_krylov", "value_and_gradient", "hessian_matvec")
    x0 = prepare_x0(x0)
    max_iter, gtol, rtol, ftol, callback, verbose = check_common(
        max_iter=max_iter, gtol=gtol, rtol=rtol, ftol=ftol, callback=callback, verbose=verbose, dtype=x0.dtype)
    initial_radius, max_radius, eta, min_radius = _check_tr_options(initial_radius, max_radius, eta, min_radius,
                                                                    allow_auto=True)
    shrink_below, grow_above, shrink_factor, grow_factor = _check_radius_rule(eta, shrink_below, grow_above,
                                                                               shrink_factor, grow_factor)
    krylov_dim = check_int("krylov_dim", krylov_dim, minimum=1)
    if krylov_rtol is not None:
        krylov_rtol = check_real("krylov_rtol", krylov_rtol, low=0.0, high=1.0, high_open=True)
    preconditioner = check_preconditioner_option(preconditioner)

    def make(ev, x, g, state):
        return LanczosSubproblem(lambda v: ev.hessp(x, v, state), g,
                                 precond=ev.preconditioner(x, state, preconditioner),
                                 max_dim=krylov_dim, rtol=krylov_rtol)

    hess = hessian_kind(problem)
    default = "trust-region " + ("Gauss-Newton-Krylov" if hess == "gauss_newton" else "Newton-Krylov") + " (Lanczos)"
    label = check_label(label, default)
    kind = SolverKind("second", trust_region=True, step_option="initial_radius", inner=f"krylov_dim = {krylov_dim}",
                      inner_rtol="krylov_rtol", hessian=hess)
    columns = ["iter", "f", "grad_norm", "radius", "step_norm", "rho", "accepted", "cg_iter", "krylov_dim",
               "sigma", "work_units"]
    return run_trust_region(
        problem, x0, make, solver=label, kind=kind, columns=columns, initial_radius=initial_radius,
        max_radius=max_radius, eta=eta, shrink_below=shrink_below, grow_above=grow_above,
        shrink_factor=shrink_factor, grow_factor=grow_factor, min_radius=min_radius, max_iter=max_iter, gtol=gtol,
        rtol=rtol, ftol=ftol, callback=callback, verbose=verbose,
        preconditioner=describe_preconditioner(problem, preconditioner), max_work_units=max_work_units,
        info=options_text(krylov_dim=krylov_dim, krylov_rtol=krylov_rtol, initial_radius=initial_radius,
                          max_iter=max_iter, gtol=gtol, max_radius=max_radius, eta=eta,
                          shrink_below=shrink_below, grow_above=grow_above, shrink_factor=shrink_factor,
                          grow_factor=grow_factor))
