"""Trust-region methods: one driver loop (Nocedal & Wright, Alg. 4.1) and the
Steihaug-CG subproblem (N&W Alg. 7.2).

Structured like scipy's ``_trustregion.py``: the driver owns the radius and
the accept/reject test; a *subproblem* object, built once per accepted
iterate, answers ``solve(radius) -> TRStep``.  A rejected step costs one
objective value (no gradient) plus the subproblem re-solve; the Krylov
subproblem (:mod:`.krylov_trust_region`) re-solves without any new Hessian
product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ._common import (
    Evaluator,
    Monitor,
    SolverKind,
    check_common,
    check_int,
    check_label,
    check_preconditioner_option,
    check_problem,
    check_real,
    describe_preconditioner,
    eps_of,
    ftol_reached,
    gtol_reached,
    hessian_kind,
    isfinite,
    norm,
    options_text,
    prepare_x0,
)
from .cg import steihaug_cg
from .result import Status

__all__ = ["TRStep", "SteihaugSubproblem", "minimize_trust_region_steihaug"]


@dataclass
class TRStep:
    """A trust-region step proposed by a subproblem.

    Attributes
    ----------
    p : array
        The step.
    hits_boundary : bool
        The step lies on the trust-region boundary (the radius is enlarged
        only after such steps).
    predicted_reduction : float
        ``m(0) − m(p)``, positive for a useful step.
    step_norm : float
        ``‖p‖`` in the trust-region norm.
    n_inner : int
        New Hessian products spent by this solve.
    info : str
        How the subproblem solver stopped.
    extra : dict
        Solver-specific values for the history (e.g. the multiplier σ).
    """

    p: object
    hits_boundary: bool
    predicted_reduction: float
    step_norm: float
    n_inner: int
    info: str
    extra: dict = field(default_factory=dict)


class SteihaugSubproblem:
    """The model ``m(p) = gᵀp + ½ pᵀHp`` at one iterate, solved by Steihaug-CG
    (N&W Alg. 7.2) for any radius.

    Parameters
    ----------
    hessp : callable ``v -> Hv``
    g : array
    precond : callable ``r -> M⁻¹r``, optional
        The trust region is then measured in the M-norm.
    rtol : float, optional
        CG relative tolerance (default: the forcing term ``min(0.5, sqrt‖g‖)``).
    max_iter : int, optional
        CG iterations per solve.
    """

    def __init__(self, hessp, g, *, precond=None, rtol=None, max_iter=None):
        self.hessp, self.g, self.precond, self.rtol, self.max_iter = hessp, g, precond, rtol, max_iter

    def solve(self, radius) -> TRStep:
        res = steihaug_cg(self.hessp, self.g, radius, precond=self.precond, rtol=self.rtol, max_iter=self.max_iter)
        return TRStep(res.p, res.hits_boundary, res.predicted_reduction, res.step_norm, res.n_iter, res.info)


def _check_tr_options(initial_radius, max_radius, eta, min_radius, *, allow_auto=False):
    if allow_auto and isinstance(initial_radius, str):
        if initial_radius != "auto":
            raise ValueError(f"initial_radius must be a positive number or 'auto', got {initial_radius!r}")
    else:
        initial_radius = check_real("initial_radius", initial_radius, low=0.0, low_open=True)
    max_radius = check_real("max_radius", max_radius, low=0.0, low_open=True, allow_inf=True)
    if initial_radius != "auto" and initial_radius > max_radius:
        raise ValueError(f"initial_radius must be <= max_radius, got {initial_radius!r} > {max_radius!r}")
    eta = check_real("eta", eta, low=0.0, high=1.0, high_open=True)
    if min_radius is not None:
        min_radius = check_real("min_radius", min_radius, low=0.0)
    return initial_radius, max_radius, eta, min_radius


def _check_radius_rule(eta, shrink_below, grow_above, shrink_factor, grow_factor):
    """The radius-update constants: ``0 ≤ η ≤ shrink_below < grow_above < 1``,
    ``0 < shrink_factor < 1 < grow_factor``."""
    shrink_below = check_real("shrink_below", shrink_below, low=0.0, high=1.0, high_open=True)
    grow_above = check_real("grow_above", grow_above, low=0.0, high=1.0, high_open=True)
    shrink_factor = check_real("shrink_factor", shrink_factor, low=0.0, high=1.0, low_open=True, high_open=True)
    grow_factor = check_real("grow_factor", grow_factor, low=1.0, low_open=True)
    if not eta <= shrink_below < grow_above:
        raise ValueError(f"the trust-region thresholds must satisfy eta <= shrink_below < grow_above, got "
                         f"eta={eta!r}, shrink_below={shrink_below!r}, grow_above={grow_above!r}")
    return shrink_below, grow_above, shrink_factor, grow_factor


def trust_region_label(problem, method):
    """``trust-region Gauss-Newton <method>`` / ``trust-region Newton <method>`` when the problem
    declares its Hessian product, else ``trust-region <method>``."""
    hess = hessian_kind(problem)
    base = {"gauss_newton": "Gauss-Newton ", "exact": "Newton "}.get(hess, "")
    return f"trust-region {base}{method}"


def run_trust_region(problem, x0, make_subproblem, *, solver, kind, columns, initial_radius, max_radius, eta,
                     min_radius, max_iter, gtol, rtol, ftol, callback, verbose, info="", preconditioner=None,
                     shrink_below=0.25, grow_above=0.75, shrink_factor=0.25, grow_factor=2.0, max_work_units=None):
    """The trust-region driver, N&W Alg. 4.1 (private; see the public minimizers).

    ``make_subproblem(evaluator, x, g, state)`` returns an object with
    ``solve(radius) -> TRStep``.  Per iteration: solve the subproblem, compute
    ``ρ = (f(x) − f(x + p)) / (m(0) − m(p))``; if ``ρ < shrink_below`` (¼)
    shrink the radius to ``shrink_factor · min(Δ, ‖p‖)`` (¼; Meganet.m
    ``trnewton``: ½), if ``ρ > grow_above`` (¾) and the step lies on the
    boundary (the subproblem says so, or ``|‖p‖ − Δ| ≤ 10⁻⁸ Δ``) multiply it
    by ``grow_factor`` (2; trnewton 1.5), up to ``max_radius``; accept when
    ``ρ > η``.  ``initial_radius = "auto"`` (Meganet.m ``trnewton``: ``Delta =
    norm(z)`` of the first step): the first subproblem is solved with an
    infinite radius (``solve(math.inf)``; for the Lanczos subproblem the
    Gauss-Newton/Newton step in the Krylov space); when that step is interior
    and finite (the projected matrix positive definite) it is the first step
    and its length the first radius (capped at ``max_radius``, then re-solved),
    otherwise the radius starts at 1.  The budget ``max_work_units`` is checked
    at the start of every iteration (:meth:`Monitor.budget_spent`).
    Round-off in ``ρ`` near convergence is damped by adding
    ``δ = 10 ε max(1, |f|)`` to both reductions (Conn, Gould & Toint §17.4.2).
    A NaN/Inf trial value counts as ``ρ = −∞`` (reject and shrink); if the
    radius collapses on such trials the status is ``non_finite``.  An
    iteration whose subproblem fails (indefinite preconditioner, NaN/Inf) is
    recorded as a rejected step before the run stops.
    """
    x = x0  # validated and copied by the caller
    ev = Evaluator(problem, x)
    mon = Monitor(solver, columns, verbose=verbose, callback=callback, evaluator=ev, kind=kind, info=info,
                  preconditioner=preconditioner, max_work_units=max_work_units)
    mon.start(x.shape[0])
    eps = eps_of(x.dtype)
    radius = initial_radius
    auto = radius == "auto"
    if auto:
        radius = 1.0  # until the first subproblem is solved
    f, g, state = ev.value_and_gradient(x)
    gnorm = norm(g)
    gnorm0 = gnorm
    status = None if (isfinite(f) and isfinite(gnorm)) else Status.NON_FINITE
    mon.record(dict(iter=0, f=f, grad_norm=gnorm, radius=radius), x, callback=False)
    xnorm = norm(x)
    sub = None
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
        if sub is None:
            sub = make_subproblem(ev, x, g, state)
        step = None
        if auto:
            # initial_radius="auto": solve the subproblem without a bound; its interior (σ = 0), finite
            # step is the first step and its length the first radius; otherwise start from radius 1
            auto = False
            free = sub.solve(math.inf)
            length = free.step_norm
            if (free.info not in ("indefinite_preconditioner", "non_finite") and not free.hits_boundary
                    and math.isfinite(length) and length > 0.0):
                if length <= max_radius:
                    radius, step = length, free
                else:
                    radius = max_radius
            if step is None:
                step = sub.solve(radius)
                # the unbounded solve's inner iterations (Hessian products) were spent on this step too
                step = replace(step, n_inner=step.n_inner + free.n_inner)
        else:
            step = sub.solve(radius)
        k += 1
        n_inner += step.n_inner
        if step.info in ("indefinite_preconditioner", "non_finite"):
            status = Status.NON_FINITE if step.info == "non_finite" else Status.INDEFINITE_PRECONDITIONER
            mon.record(dict(iter=k, f=f, grad_norm=gnorm, radius=radius, accepted=False, cg_iter=step.n_inner,
                            cg_info=step.info, **step.extra), x, callback=False)
            break
        x_trial = x + step.p
        f_trial, _ = ev.value(x_trial)
        pred = step.predicted_reduction
        if isfinite(f_trial) and pred > 0.0:
            delta = 10.0 * eps * max(1.0, abs(f))
            rho = (f - f_trial + delta) / (pred + delta)
        else:
            rho = -math.inf
        radius_used = radius
        if rho < shrink_below:
            radius = shrink_factor * (min(radius, step.step_norm) if step.step_norm > 0.0 else radius)
        elif rho > grow_above and (step.hits_boundary or abs(step.step_norm - radius) <= 1e-8 * radius):
            radius = min(grow_factor * radius, max_radius)
        accepted = rho > eta
        if accepted:
            x_prev, f_prev, g_prev, gnorm_prev = x, f, g, gnorm
            x = x_trial
            f, g, state = ev.value_and_gradient(x)
            gnorm = norm(g)
            xnorm = norm(x)
            sub = None
            if not (isfinite(f) and isfinite(gnorm)):
                status = Status.NON_FINITE
                x, f, g, gnorm = x_prev, f_prev, g_prev, gnorm_prev
            elif gtol_reached(gnorm, gnorm0, gtol, rtol):
                status = Status.CONVERGED_GTOL
            elif ftol_reached(f_prev, f, ftol):
                status = Status.CONVERGED_FTOL
        row = dict(iter=k, f=f, grad_norm=gnorm, radius=radius_used, step_norm=step.step_norm, rho=rho,
                   accepted=accepted, cg_iter=step.n_inner, cg_info=step.info, **step.extra)
        if mon.record(row, x) and status is None:
            status = Status.CALLBACK_STOP
        floor = min_radius if min_radius is not None else eps * max(1.0, xnorm)
        if status is None and radius < floor:
            # the radius collapsed; if the trials were NaN/Inf, say so rather than blame the model
            status = Status.RADIUS_TOO_SMALL if isfinite(f_trial) else Status.NON_FINITE
    return mon.result(x=x, fun=f, grad=g, grad_norm=gnorm, nit=k, status=status, n_inner=n_inner,
                      info=dict(radius=radius), row=dict(iter=k, f=f, grad_norm=gnorm))


def minimize_trust_region_steihaug(problem, x0, *, initial_radius=1.0, max_radius=1000.0, eta=0.15, shrink_below=0.25,
                                   grow_above=0.75, shrink_factor=0.25, grow_factor=2.0, min_radius=None,
                                   max_iter=200, max_work_units=None, gtol=1e-5, rtol=0.0, ftol=0.0, cg_max_iter=None,
                                   cg_rtol=None, preconditioner=True, callback=None, verbose=False, label=None):
    """Trust-region Newton / Gauss-Newton with Steihaug-CG (Nocedal & Wright,
    Alg. 7.2 inside Alg. 4.1; scipy's ``trust-ncg``; Meganet.m ``steihaugPCG``).

    The model uses ``problem.hessian_matvec`` (exact Hessian or Gauss-Newton);
    the subproblem is solved inexactly by CG, stopped at the boundary or at
    negative curvature, so indefinite Hessians are handled.

    Parameters
    ----------
    problem : object
        Needs ``value_and_gradient`` and ``hessian_matvec`` (see :mod:`.problem`).
    x0 : array, shape (n,)
        Finite float32/float64 numpy or cupy vector (not modified).
    initial_radius, max_radius : float
        Trust-region radii (M-norm when preconditioned); ``max_radius`` may be
        ``math.inf`` (no cap).
    eta : float
        Acceptance threshold on ``ρ = ared / pred``: a step is accepted iff
        ``ρ > eta``; ``0 ≤ eta ≤ shrink_below`` (default 0.15; Meganet.m
        ``trnewton``'s ``rho0`` is 1e-4).
    shrink_below, grow_above, shrink_factor, grow_factor : float
        Radius rule: if ``ρ < shrink_below`` the radius becomes
        ``shrink_factor · min(Δ, ‖p‖)``; if ``ρ > grow_above`` and the step
        lies on the boundary, ``min(grow_factor · Δ, max_radius)``; a step is
        accepted iff ``ρ > eta`` (``0 ≤ eta ≤ shrink_below < grow_above < 1``,
        ``0 < shrink_factor < 1 < grow_factor``).  Defaults 0.25, 0.75, 0.25,
        2 (N&W Alg. 4.1); Meganet.m
        ``optimization/trnewton.m`` (``trtest``: ``rhoL``, ``rhoH``, ``wdown``,
        ``wup``) uses 0.1, 0.75, 0.5, 1.5 with ``eta = rho0 = 1e-4`` (the
        defaults of :func:`~meganet.optimizers.minimize_gnvpro`).
    min_radius : float, optional
        Stop with ``radius_too_small`` below it (default ``ε max(1, ‖x‖)``).
    max_iter : int
        Iterations, rejected steps included.
    max_work_units : float, optional
        Work-unit budget, checked at the start of every iteration; as in
        :func:`~meganet.optimizers.minimize_steepest_descent`.
    gtol, rtol : float
        Converged when ``‖g‖ ≤ max(gtol, rtol ‖g₀‖)``.
    ftol : float
        Converged when an accepted step decreases ``f`` by at most
        ``ftol max(|f_prev|, |f|, 1)`` (L-BFGS-B's test); 0 disables it.
    cg_max_iter : int, optional
        CG iterations per subproblem (default ``min(n, 200)``).
    cg_rtol : float, optional
        CG relative tolerance (default: forcing term ``min(0.5, sqrt‖g‖)``).
    preconditioner : bool or callable
        ``True``: the problem's ``preconditioner`` if it has one; ``False``:
        none; or a callable ``r -> M⁻¹r``.
    callback : callable ``(x, row)``, optional
        Called after every iteration; raise ``StopIteration`` to stop.
    verbose : bool
        Print the iteration table (iter, f, |g|, radius, |p|, ρ, accepted,
        CG iterations and stop reason, work units) under a header with the
        label, the preconditioner (``none``, ``the problem's (...)`` or
        ``given callable (name)``), ``cg_max_iter``, ``initial_radius`` and
        ``max_iter``.
    label : str, optional
        The solver's name in the header and in ``result.solver``.  Default:
        ``"trust-region Gauss-Newton Steihaug-CG"`` when the problem declares
        a Gauss-Newton Hessian product (``problem.hessian == "gauss_newton"``
        or ``problem.gauss_newton is True``), ``"trust-region Newton
        Steihaug-CG"`` when it declares the exact Hessian, else
        ``"trust-region Steihaug-CG"``.

    Returns
    -------
    OptimizeResult
        ``info["radius"]`` is the final radius, ``info["preconditioner"]``
        the preconditioner as in the header.
    """
    check_problem(problem, "minimize_trust_region_steihaug", "value_and_gradient", "hessian_matvec")
    x0 = prepare_x0(x0)
    max_iter, gtol, rtol, ftol, callback, verbose = check_common(
        max_iter=max_iter, gtol=gtol, rtol=rtol, ftol=ftol, callback=callback, verbose=verbose, dtype=x0.dtype)
    initial_radius, max_radius, eta, min_radius = _check_tr_options(initial_radius, max_radius, eta, min_radius)
    shrink_below, grow_above, shrink_factor, grow_factor = _check_radius_rule(eta, shrink_below, grow_above,
                                                                               shrink_factor, grow_factor)
    n = x0.shape[0]
    cg_max_iter = min(n, 200) if cg_max_iter is None else check_int("cg_max_iter", cg_max_iter, minimum=1)
    if cg_rtol is not None:
        cg_rtol = check_real("cg_rtol", cg_rtol, low=0.0, high=1.0, high_open=True)
    preconditioner = check_preconditioner_option(preconditioner)

    def make(ev, x, g, state):
        return SteihaugSubproblem(lambda v: ev.hessp(x, v, state), g,
                                  precond=ev.preconditioner(x, state, preconditioner),
                                  rtol=cg_rtol, max_iter=cg_max_iter)

    label = check_label(label, trust_region_label(problem, "Steihaug-CG"))
    kind = SolverKind("second", trust_region=True, step_option="initial_radius", inner=f"cg_max_iter = {cg_max_iter}",
                      inner_rtol="cg_rtol", hessian=hessian_kind(problem))
    columns = ["iter", "f", "grad_norm", "radius", "step_norm", "rho", "accepted", "cg_iter", "cg_info", "work_units"]
    return run_trust_region(
        problem, x0, make, solver=label, kind=kind, columns=columns, initial_radius=initial_radius,
        max_radius=max_radius, eta=eta, shrink_below=shrink_below, grow_above=grow_above,
        shrink_factor=shrink_factor, grow_factor=grow_factor, min_radius=min_radius, max_iter=max_iter, gtol=gtol,
        rtol=rtol, ftol=ftol, callback=callback, verbose=verbose,
        preconditioner=describe_preconditioner(problem, preconditioner), max_work_units=max_work_units,
        info=options_text(cg_max_iter=cg_max_iter, cg_rtol=cg_rtol, initial_radius=initial_radius,
                          max_iter=max_iter, gtol=gtol, max_radius=max_radius, eta=eta,
                          shrink_below=shrink_below, grow_above=grow_above, shrink_factor=shrink_factor,
                          grow_factor=grow_factor))
