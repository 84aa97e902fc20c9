r"""GNvpro: the Gauss-Newton–Krylov trust-region method on the reduced (variable projection) objective.

Newman, Ruthotto, Hart & van Bloemen Waanders, "Train like a (Var)Pro:
efficient training of neural networks with variable projection" (SIAM J.
Math. Data Sci. 2021; arXiv 2007.13171; the GNvpro slides, "Optimizing θ:
Gauss-Newton-Krylov VarPro (GNvpro)" and "The GNVpro Jacobian"):

.. math::

    \min_θ Φ_{red}(θ) = \mathcal{L}(W(θ) F(Y, θ), C) + R(θ) + S(W(θ)),\qquad
    W(θ) = \operatorname*{argmin}_W Φ(W, θ).

Each outer step minimises the quadratic model with the Gauss-Newton matrix
of the reduced problem,

.. math::

    \min_{δθ}\; ∇Φ_{red}ᵀ δθ + ½ δθᵀ \big(J_{red}ᵀ ∇²\mathcal{L} J_{red} + ∇²R\big) δθ
    \quad\text{s.t.}\quad ‖δθ‖ ≤ Δ,\qquad
    J_{red} = W(θ) J_θF + (F(Y, θ)ᵀ ⊗ I) J_θ w(θ),

in a Krylov subspace, where ``∇²_w Φ · J_θ w = −J_θ ∇_w Φ`` (the implicit
Jacobian of the inner solution).  The products ``J_redᵀ ∇²L J_red v`` are
:meth:`meganet.objectives.VarProObjective.hessian_matvec`; the subspace
solve is :func:`~meganet.optimizers.minimize_trust_region_krylov`
(Lanczos/GLTR: the exact trust-region step in ``K_r(H, g)``; Meganet.m's
``trnewton`` builds the same subspace with GMRES/Arnoldi and solves the
projected least-squares problem with a Tikhonov term ``λ`` chosen so that the
step has length ``Δ``, which is the same step when the projected matrix is
positive definite).

Defaults follow Meganet.m ``optimization/trnewton.m`` and the GNvpro example
scripts (``examples/GNvpro/EVP_CDR_GNvpro.m``: ``GMRES('m', 20, 'tol', 1e-2)``):

=====================  ============  =================================================
option                 default       Meganet.m
=====================  ============  =================================================
``krylov_dim``         20            GMRES ``m = 20``
``krylov_rtol``        1e-2          GMRES ``tol = 1e-2``
``eta``                1e-4          ``rho0`` (accept when ρ > rho0)
``shrink_below``       0.1           ``rhoL`` (shrink when ρ < rhoL)
``grow_above``         0.75          ``rhoH`` (grow when ρ > rhoH on the boundary)
``shrink_factor``      0.5           ``wdown``
``grow_factor``        1.5           ``wup``
``initial_radius``     ``"auto"``    ``Delta = norm(z)`` of the first step
=====================  ============  =================================================

Differences from ``trnewton``: a step is accepted exactly when ρ > η (as
in trnewton); for ``η < ρ < shrink_below`` the radius becomes
``shrink_factor · min(Δ, ‖p‖)`` (trnewton: ``wdown · Δ``; the same when the
step lies on the boundary); a very successful boundary step is accepted and
the radius grown (trnewton grows the radius and re-solves from the same
point without moving).  Work units (forward + adjoint
passes, counted by the objective): 2 per accepted iterate (value and
gradient), 2 per Gauss-Newton product (so ``2 + 2r`` per iteration for a
rank-``r`` model), 1 per rejected trial; the inner classifier solves pass
through no network and count nothing (slides, "Work Units").
"""

from __future__ import annotations

import math

from .krylov_trust_region import minimize_trust_region_krylov

__all__ = ["minimize_gnvpro", "GNVPRO_LABEL"]

GNVPRO_LABEL = "GNvpro: Gauss-Newton-Krylov trust region (Lanczos) on the reduced objective"
#: The default label when the objective's products are exact (``hessian_kind='exact'``, issue 15).
NEWTON_VPRO_LABEL = "VarPro Newton-Krylov trust region (Lanczos, exact reduced Hessian) on the reduced objective"


def minimize_gnvpro(objective, theta0, *, krylov_dim=20, krylov_rtol=1e-2, initial_radius="auto",
                    max_radius=math.inf, eta=1e-4, shrink_below=0.1, grow_above=0.75, shrink_factor=0.5,
                    grow_factor=1.5, min_radius=None, max_iter=200, max_work_units=None, gtol=1e-8, rtol=0.0,
                    ftol=0.0, preconditioner=False, callback=None, verbose=False, label=None):
    """Minimize the reduced objective ``Φ_red(θ)`` of a :class:`~meganet.objectives.VarProObjective`
    by the Gauss-Newton–Krylov trust-region method of GNvpro (see the module docstring).

    Parameters
    ----------
    objective : VarProObjective
        Any object with the VarPro interface (``value_and_gradient``,
        ``hessian_matvec`` with the implicit-Jacobian term, and
        ``implicit_derivative``); a plain :class:`NetworkObjective` is refused
        (use :func:`minimize_trust_region_krylov` for the joint problem).
    theta0 : array, shape (objective.n_theta,)
        Network weights only (the classifier is eliminated).
    krylov_dim, krylov_rtol : int, float
        Largest Krylov subspace (rank ``r`` of the Gauss-Newton model) and the
        relative residual at which the subspace stops growing.
    initial_radius : float or "auto"
        ``"auto"``: the length of the first subspace Gauss-Newton step (Meganet.m).
    max_radius, eta, shrink_below, grow_above, shrink_factor, grow_factor, min_radius
        Trust-region radius rule (module docstring; Meganet.m ``trnewton`` defaults).
    max_iter : int
        Outer iterations (rejected steps included).
    max_work_units : float, optional
        Stop (status ``max_work_units``) once this many work units are spent.
    gtol, rtol, ftol : float
        As in :func:`minimize_trust_region_krylov`.
    preconditioner : bool or callable
        Default ``False`` (GNvpro uses none).
    callback, verbose, label
        As in :func:`minimize_trust_region_krylov`; the default label is
        :data:`GNVPRO_LABEL`, or :data:`NEWTON_VPRO_LABEL` for an objective with ``hessian_kind='exact'``.

    Returns
    -------
    OptimizeResult
        ``x`` is θ; the classifier is ``objective.classifier(result.x)``.
    """
    if not (hasattr(objective, "implicit_derivative") and hasattr(objective, "classifier")):
        raise TypeError(f"minimize_gnvpro needs a VarProObjective (the reduced objective with the classifier "
                        f"eliminated), got {type(objective).__name__}; for the joint problem in (θ, w) use "
                        "minimize_trust_region_krylov")
    return minimize_trust_region_krylov(
        objective, theta0, krylov_dim=krylov_dim, krylov_rtol=krylov_rtol, initial_radius=initial_radius,
        max_radius=max_radius, eta=eta, shrink_below=shrink_below, grow_above=grow_above,
        shrink_factor=shrink_factor, grow_factor=grow_factor, min_radius=min_radius, max_iter=max_iter,
        max_work_units=max_work_units, gtol=gtol, rtol=rtol, ftol=ftol, preconditioner=preconditioner,
        callback=callback, verbose=verbose, label=_default_label(objective) if label is None else label)


def _default_label(objective):
    from ._common import hessian_kind

    return NEWTON_VPRO_LABEL if hessian_kind(objective) == "exact" else GNVPRO_LABEL
